//! What a socket shows of a room's online list, for the tests of presence.

use std::collections::BTreeSet;

use tokio::time::{Duration, Instant};

use crate::{Event, JsSocket};

/// What one socket shows of `general`'s online list: the names, and the count the server
/// gave with them, from the `presence` and `presence change` events it received, in order.
#[derive(Debug, Default)]
pub struct OnlineList {
    names: BTreeSet<String>,
    online: Option<u64>,
}

impl OnlineList {
    /// Applies `event`, if it is a `presence` or a `presence change` of `general`.
    pub fn apply(&mut self, event: &Event) {
        let data = event.data();
        if data["room"] != "general" {
            return;
        }
        let names = |key: &str| -> Vec<String> {
            let users = data[key].as_array().cloned().unwrap_or_default();
            let names = users.iter().filter_map(|user| user["username"].as_str());
            names.map(str::to_owned).collect()
        };
        match event.name.as_str() {
            "presence" => self.names = names("users").into_iter().collect(),
            "presence change" => {
                for name in names("left") {
                    self.names.remove(&name);
                }
                self.names.extend(names("joined"));
            }
            _ => return,
        }
        self.online = data["online"].as_u64();
    }

    /// Reads `socket`'s events until it shows exactly `expected` (with the count to match),
    /// or panics at `deadline`.
    pub async fn wait_for(
        &mut self,
        who: &str,
        socket: &JsSocket,
        expected: &[&str],
        deadline: Instant,
    ) {
        let expected: BTreeSet<String> = expected.iter().map(|name| name.to_string()).collect();
        loop {
            let shown = self.names == expected && self.online == Some(expected.len() as u64);
            if shown {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{who} shows {:?} (online: {:?}), not {expected:?}",
                self.names,
                self.online
            );
            for event in socket.drain(Duration::from_millis(100)).await {
                self.apply(&event);
            }
        }
    }
}
