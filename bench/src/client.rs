//! A minimal Socket.IO v5 client over a WebSocket (Engine.IO v4), just enough for the load
//! generator.
//!
//! Why not the official JavaScript client? At 200,000 deliveries a second one Node.js process
//! is the bottleneck, not the server. This client does one thing per frame and parses only the
//! `chat message` payload's `id` and `text`.
//!
//! The wire, one WebSocket text frame per packet (`4` = an Engine.IO message, then the
//! Socket.IO packet type):
//!
//! | Frame | Meaning |
//! | --- | --- |
//! | `0{"sid":...}` | server: Engine.IO open |
//! | `40` or `40{"serverOffset":7}` | client: connect to `/`, with the handshake `auth` |
//! | `40{"sid":...}` / `44{"message":...}` | server: connected / `connect_error` |
//! | `2` / `3` | server ping / client pong |
//! | `42["event",data]` | an event |
//! | `42<id>["event",data]` / `43<id>[data]` | an event that asks for an ack / the ack |
//! | `41`, `1` | server: Socket.IO / Engine.IO disconnect |

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Why a connection could not be opened or went away.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The WebSocket failed (refused, reset, bad handshake...).
    #[error("websocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    /// The server answered the connect with `connect_error` (`44`), e.g. no valid session.
    #[error("connect_error: {0}")]
    Refused(String),
    /// The server sent something this client does not expect at that point.
    #[error("unexpected packet: {0}")]
    Protocol(String),
    /// The server closed the connection.
    #[error("closed by the server")]
    Closed,
}

/// A packet from the server that the caller has to deal with (pings are answered inside).
#[derive(Debug)]
pub enum Packet {
    /// `42[...]`: an event, the whole frame; see [`chat_message`].
    Event(Utf8Bytes),
    /// `43<id>[...]`: the acknowledgement of our event `id`; `ok` if it carries `"ok":true`.
    Ack {
        /// The id we sent the event with.
        id: u64,
        /// Whether the server accepted it (`{"ok":true,...}`), rather than `{"error":...}`.
        ok: bool,
    },
}

/// One connected Socket.IO socket on the default namespace.
#[derive(Debug)]
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// A `chat message` as far as the load generator reads it.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Delivery<'a> {
    /// The server's id: global, growing.
    pub id: i64,
    /// The text, as sent.
    pub text: &'a str,
}

impl Connection {
    /// Connects to the server at `addr` like a page served by it would: `Origin` is the
    /// server's own, `cookie` (if any) is the session, and `server_offset` (if any) goes in the
    /// handshake's `auth`, as `io({ auth: { serverOffset } })` does.
    pub async fn connect(
        addr: SocketAddr,
        cookie: Option<&str>,
        server_offset: Option<i64>,
    ) -> Result<Self, ClientError> {
        let mut request =
            format!("ws://{addr}/socket.io/?EIO=4&transport=websocket").into_client_request()?;
        let headers = request.headers_mut();
        headers.insert("origin", header(&format!("http://{addr}"))?);
        if let Some(cookie) = cookie {
            headers.insert("cookie", header(cookie)?);
        }
        // No Nagle: a small frame goes out at once, or latency would include its 40 ms delay.
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(ws_config()), true).await?;
        let mut connection = Connection { ws };
        connection.handshake(server_offset).await?;
        Ok(connection)
    }

    async fn handshake(&mut self, server_offset: Option<i64>) -> Result<(), ClientError> {
        let open = self.next_text().await?;
        if !open.starts_with('0') {
            return Err(ClientError::Protocol(open.to_string()));
        }
        let connect = match server_offset {
            Some(offset) => format!(r#"40{{"serverOffset":{offset}}}"#),
            None => "40".to_owned(),
        };
        self.send(connect).await?;
        loop {
            let frame = self.next_text().await?;
            if frame.starts_with("40") {
                return Ok(());
            }
            if let Some(error) = frame.strip_prefix("44") {
                return Err(ClientError::Refused(error.to_owned()));
            }
            if !frame.starts_with('4') {
                continue; // an Engine.IO noop or the like
            }
            return Err(ClientError::Protocol(frame.to_string()));
        }
    }

    /// The next event or ack. Pings are answered on the way; a disconnect is
    /// [`ClientError::Closed`].
    pub async fn next(&mut self) -> Result<Packet, ClientError> {
        loop {
            let frame = self.next_text().await?;
            if frame.starts_with("42") {
                return Ok(Packet::Event(frame));
            }
            if let Some(ack) = frame.strip_prefix("43") {
                return parse_ack(ack).ok_or_else(|| ClientError::Protocol(frame.to_string()));
            }
            if frame.starts_with("41") || frame.starts_with('1') {
                return Err(ClientError::Closed);
            }
            // Anything else (a `noop`, an event for a namespace we did not join) is not ours.
        }
    }

    /// Sends `42<ack_id>["chat message",{"room":room,"text":text}]`. `room` and `text` go in
    /// as they are: the caller passes JSON-safe strings (no quote, no backslash).
    pub async fn send_chat_message(
        &mut self,
        ack_id: u64,
        room: &str,
        text: &str,
    ) -> Result<(), ClientError> {
        self.send(format!(
            r#"42{ack_id}["chat message",{{"room":"{room}","text":"{text}"}}]"#
        ))
        .await
    }

    /// The same with a `clientOffset`, the message's own id: the page sends one so that a
    /// message sent again (its acknowledgement never came) is stored once. `client_offset` goes
    /// in as it is, like `text`.
    pub async fn send_chat_message_with_offset(
        &mut self,
        ack_id: u64,
        room: &str,
        text: &str,
        client_offset: &str,
    ) -> Result<(), ClientError> {
        self.send(format!(
            r#"42{ack_id}["chat message",{{"room":"{room}","text":"{text}","clientOffset":"{client_offset}"}}]"#
        ))
        .await
    }

    /// Sends `42<ack_id>["join","<room>"]`; `room` goes in as it is, like `text` above.
    pub async fn join(&mut self, ack_id: u64, room: &str) -> Result<(), ClientError> {
        self.send(format!(r#"42{ack_id}["join","{room}"]"#)).await
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        self.ws.close(None).await.ok();
    }

    async fn send(&mut self, text: String) -> Result<(), ClientError> {
        Ok(self.ws.send(Message::text(text)).await?)
    }

    /// The next text frame, after answering Engine.IO pings (`2`); WebSocket pings are answered
    /// by tungstenite itself.
    async fn next_text(&mut self) -> Result<Utf8Bytes, ClientError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                    self.send("3".to_owned()).await?;
                }
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(_))) | None => return Err(ClientError::Closed),
                Some(Ok(_)) => {} // binary, pings, pongs: nothing for us
                Some(Err(error)) => return Err(error.into()),
            }
        }
    }
}

/// A smaller read buffer than tungstenite's 128 KiB: frames here are a few hundred bytes, and
/// 10,000 sockets × 128 KiB would be 1.3 GB for the load generator alone.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024)
}

fn header(value: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(value)
        .map_err(|_| ClientError::Protocol(format!("not a valid header value: {value:?}")))
}

/// `<id>[data]` (after the `43`) into an [`Packet::Ack`].
fn parse_ack(ack: &str) -> Option<Packet> {
    let digits = ack.find('[')?;
    let id = ack[..digits].parse().ok()?;
    Some(Packet::Ack {
        id,
        ok: ack[digits..].contains(r#""ok":true"#),
    })
}

/// The `id` and `text` of a `42["chat message",{...}]` frame; `None` for any other event.
pub fn chat_message(frame: &str) -> Option<Delivery<'_>> {
    let payload = frame
        .strip_prefix(r#"42["chat message","#)?
        .strip_suffix(']')?;
    serde_json::from_str(payload).ok()
}

/// A `history` event, as far as the load generator reads it.
#[derive(Debug, Deserialize)]
pub struct History<'a> {
    /// The room.
    #[serde(borrow)]
    pub room: &'a str,
    /// Its messages, oldest first.
    #[serde(borrow, default)]
    pub messages: Vec<Delivery<'a>>,
}

/// The room and messages of a `42["history",{...}]` frame; `None` for any other event.
pub fn history(frame: &str) -> Option<History<'_>> {
    let payload = frame.strip_prefix(r#"42["history","#)?.strip_suffix(']')?;
    serde_json::from_str(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_message_frame_gives_its_id_and_text() {
        let frame = r#"42["chat message",{"id":7,"room":"general","user":{"id":1,"username":"a"},"text":"3 4 5","ts":1}]"#;
        assert_eq!(
            chat_message(frame),
            Some(Delivery {
                id: 7,
                text: "3 4 5"
            })
        );
    }

    #[test]
    fn other_events_are_not_chat_messages() {
        assert_eq!(
            chat_message(r#"42["history",{"room":"general","messages":[]}]"#),
            None
        );
        assert_eq!(chat_message(r#"42["chat message",{"id":"x"}]"#), None);
    }

    #[test]
    fn a_history_frame_gives_its_room_and_messages() {
        let frame = r#"42["history",{"room":"general","messages":[{"id":3,"room":"general","user":{"id":1,"username":"a"},"text":"0 1 2","ts":1}],"truncated":false}]"#;
        let parsed = history(frame).expect("a history");
        assert_eq!(parsed.room, "general");
        assert_eq!(
            parsed.messages,
            [Delivery {
                id: 3,
                text: "0 1 2"
            }]
        );
        let empty = history(r#"42["history",{"room":"general","messages":[]}]"#);
        assert!(empty.is_some_and(|empty| empty.messages.is_empty()));
        assert!(history(r#"42["chat message",{"id":1,"text":"x"}]"#).is_none());
    }

    #[test]
    fn acks_are_parsed_with_their_id_and_outcome() {
        let Some(Packet::Ack { id, ok }) = parse_ack(r#"12[{"ok":true,"id":3}]"#) else {
            panic!("not an ack");
        };
        assert_eq!((id, ok), (12, true));
        let Some(Packet::Ack { id, ok }) = parse_ack(r#"5[{"error":"rate limited"}]"#) else {
            panic!("not an ack");
        };
        assert_eq!((id, ok), (5, false));
        assert!(parse_ack("x").is_none());
    }
}
