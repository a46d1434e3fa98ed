//! Sending to one socket without ever losing a packet in silence: step 4's
//! `delivery` (step 5 sends through it too), plus [`Encoded`], a payload
//! serialised once for a whole room.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
pub use step04_socket_middleware::delivery::{acknowledge, is_lagging, send};

// ANCHOR: encoded
/// A payload turned into JSON once, to be sent to many sockets. [`send`]
/// serialises what it is given for each socket; a room of 10,000 sockets would
/// serialise each message 10,000 times (the floor's broadcast does it once).
/// Sending an `Encoded` copies the JSON instead.
#[derive(Debug, Clone)]
pub struct Encoded(Box<RawValue>);

impl Encoded {
    pub fn new<T: Serialize + ?Sized>(data: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(data).map(Encoded)
    }
}

impl Serialize for Encoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // As a one-element tuple: Socket.IO spreads a tuple into the event's
        // arguments, so this is the event's single argument, written out as the
        // JSON it already is.
        (&*self.0,).serialize(serializer)
    }
}
// ANCHOR_END: encoded
