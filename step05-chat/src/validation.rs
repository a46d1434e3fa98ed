//! Turning what a client sent into values the server can trust.
//!
//! Any browser console can emit `socket.emit("chat message", {user: {id: 1},
//! text: 12})`. So handlers take the payload as a plain [`serde_json::Value`]
//! and pass it through these functions, which return checked values or an
//! [`InputError`] fit to send back in the ack. Nothing here panics.

use serde_json::Value;
use step04_socket_middleware::text::{
    TextError, short_string, shows_something, without_bidi_controls,
};

use crate::chat::GENERAL as DEFAULT_ROOM;

/// The longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 32;
/// The longest message, in characters (not bytes: "héllo" is 5).
pub const MAX_TEXT_CHARS: usize = 1000;
/// The longest `clientOffset`: a UUID with a counter fits with room to spare.
pub const MAX_CLIENT_OFFSET_CHARS: usize = 64;

/// Why a payload was refused: the text is what the client is told, in the ack
/// `{"error": "..."}`, saying what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("expected {{\"room\", \"text\"}} or a string")]
    NotAMessage,
    #[error("room must be 1 to {} of a-z, 0-9, _ and -", MAX_ROOM_CHARS)]
    InvalidRoom,
    #[error(
        "clientOffset must be 1 to {} printable ASCII characters",
        MAX_CLIENT_OFFSET_CHARS
    )]
    InvalidClientOffset,
    #[error("after must be a user id (an integer)")]
    InvalidAfter,
    #[error("text must be a string")]
    TextNotAString,
    #[error("text must be 1 to {} characters", MAX_TEXT_CHARS)]
    TextLength,
    /// Step 4's rules for text others will read.
    #[error(transparent)]
    Text(#[from] TextError),
}

/// A message a client wants to send, checked. Who sends it is not here: the
/// server knows that already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingText {
    pub room: String,
    pub text: String,
    /// The client's own id for this message, if it sent one.
    pub client_offset: Option<String>,
}

/// A room name: 1 to 32 of `a-z`, `0-9`, `_` and `-`. Room names end up in
/// Socket.IO, the database and the page: a small alphabet means none of them
/// worries about escaping or look-alike names.
pub fn parse_room(value: &Value) -> Result<String, InputError> {
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
    };
    short_string(value, MAX_ROOM_CHARS, allowed).ok_or(InputError::InvalidRoom)
}

// ANCHOR: parse_chat_message
/// A chat message from a client: `{"room": "...", "text": "...",
/// "clientOffset": "..."}`, or just `"text"` (for `general`). Every other
/// field is ignored: `"user": {"id": 1}` does not make anyone user 1.
pub fn parse_chat_message(value: &Value) -> Result<OutgoingText, InputError> {
    let (room, text, client_offset) = match value {
        Value::String(text) => (DEFAULT_ROOM.to_owned(), text.as_str(), None),
        Value::Object(fields) => {
            let room = match fields.get("room") {
                Some(room) => parse_room(room)?,
                None => DEFAULT_ROOM.to_owned(),
            };
            let text = fields
                .get("text")
                .and_then(Value::as_str)
                .ok_or(InputError::TextNotAString)?;
            let client_offset = match fields.get("clientOffset") {
                None | Some(Value::Null) => None,
                Some(offset) => Some(parse_client_offset(offset)?),
            };
            (room, text, client_offset)
        }
        _ => return Err(InputError::NotAMessage),
    };
    Ok(OutgoingText { room, text: parse_text(text)?, client_offset })
}
// ANCHOR_END: parse_chat_message

// ANCHOR: parse_client_offset
/// A client's id for its message: 1 to 64 printable ASCII characters (it is
/// stored, so it is kept short and plain).
fn parse_client_offset(value: &Value) -> Result<String, InputError> {
    let printable = |c: char| c.is_ascii_graphic();
    short_string(value, MAX_CLIENT_OFFSET_CHARS, printable)
        .ok_or(InputError::InvalidClientOffset)
}
// ANCHOR_END: parse_client_offset

// ANCHOR: parse_text
/// Trims the text and counts its characters (not bytes: emoji count as one),
/// then applies step 4's rules for text others will read: no control
/// characters but new lines, no bidirectional overrides (removed), something
/// visible, no tower of accents.
fn parse_text(text: &str) -> Result<String, InputError> {
    let text = without_bidi_controls(text);
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_TEXT_CHARS {
        return Err(InputError::TextLength);
    }
    shows_something(text)?;
    Ok(text.to_owned())
}
// ANCHOR_END: parse_text

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outgoing(room: &str, text: &str) -> OutgoingText {
        OutgoingText {
            room: room.to_owned(),
            text: text.to_owned(),
            client_offset: None,
        }
    }

    #[test]
    fn text_a_reader_cannot_see_or_that_hides_control_characters_is_refused() {
        let refused = [
            (
                "\u{200B}\u{200B}\u{200D}".to_owned(),
                InputError::Text(TextError::NothingVisible),
            ),
            (
                "\u{0301}".repeat(MAX_TEXT_CHARS - 1),
                InputError::Text(TextError::NothingVisible),
            ),
            (
                format!("Z{}", "\u{0301}".repeat(9)),
                InputError::Text(TextError::NothingVisible),
            ),
            (
                "nul\u{0}here".to_owned(),
                InputError::Text(TextError::ControlCharacters),
            ),
            (
                "esc\u{1b}[31mred".to_owned(),
                InputError::Text(TextError::ControlCharacters),
            ),
        ];
        for (text, error) in refused {
            assert_eq!(parse_text(&text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn new_lines_accents_and_emoji_are_fine_and_bidi_overrides_are_removed() {
        assert_eq!(parse_text("two\nlines"), Ok("two\nlines".to_owned()));
        assert_eq!(
            parse_text("cafe\u{0301} 👋"),
            Ok("cafe\u{0301} 👋".to_owned())
        );
        assert_eq!(
            parse_text("invoice\u{202E}fdp.exe"),
            Ok("invoicefdp.exe".to_owned())
        );
        assert_eq!(parse_text("\u{202E}"), Err(InputError::TextLength));
    }

    #[test]
    fn a_client_offset_is_kept_when_it_is_short_printable_ascii() {
        let parsed = parse_chat_message(
            &json!({"text": "hi", "clientOffset": "tab1-7"}),
        );
        assert_eq!(
            parsed.map(|message| message.client_offset),
            Ok(Some("tab1-7".to_owned()))
        );
        for bad in [json!(""), json!(7), json!("a b"), json!("x".repeat(65))] {
            let parsed =
                parse_chat_message(&json!({"text": "hi", "clientOffset": bad}));
            assert_eq!(parsed, Err(InputError::InvalidClientOffset), "{bad}");
        }
    }

    #[test]
    fn accepts_an_object_with_room_and_text() {
        let parsed =
            parse_chat_message(&json!({"room": "rust", "text": "hello"}));

        assert_eq!(parsed, Ok(outgoing("rust", "hello")));
    }

    #[test]
    fn a_bare_string_or_an_object_without_a_room_goes_to_general() {
        for payload in [json!("hello"), json!({"text": "hello"})] {
            let parsed = parse_chat_message(&payload);
            assert_eq!(parsed, Ok(outgoing("general", "hello")), "{payload}");
        }
    }

    #[test]
    fn a_forged_user_and_other_extra_fields_are_ignored() {
        let forged = json!({"room": "general", "text": "I am the admin",
            "user": {"id": 1, "username": "admin"}, "id": 1, "ts": 0});

        assert_eq!(
            parse_chat_message(&forged),
            Ok(outgoing("general", "I am the admin"))
        );
    }

    #[test]
    fn text_is_trimmed() {
        assert_eq!(
            parse_chat_message(&json!("  \n hello there \t ")),
            Ok(outgoing("general", "hello there"))
        );
    }

    #[test]
    fn empty_or_blank_text_is_refused() {
        for payload in [json!(""), json!("   \n\t"), json!({"text": ""})] {
            assert_eq!(
                parse_chat_message(&payload),
                Err(InputError::TextLength),
                "{payload}"
            );
        }
    }

    #[test]
    fn text_length_is_counted_in_characters_not_bytes() {
        // The most characters allowed, each four bytes long: within the limit.
        let emoji = "🦀".repeat(MAX_TEXT_CHARS);
        assert_eq!(
            parse_chat_message(&json!(emoji)).map(|m| m.text),
            Ok(emoji.clone())
        );

        let too_long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(
            parse_chat_message(&json!(too_long)),
            Err(InputError::TextLength)
        );
    }

    #[test]
    fn the_length_limit_applies_after_trimming() {
        let padded = format!("   {}   ", "a".repeat(MAX_TEXT_CHARS));

        assert!(parse_chat_message(&json!(padded)).is_ok());
    }

    #[test]
    fn text_of_the_wrong_type_or_missing_is_refused() {
        for payload in [
            json!({"room": "general"}),
            json!({"text": 42}),
            json!({"text": null}),
            json!({"text": ["hello"]}),
            json!({"text": {"nested": "hello"}}),
        ] {
            assert_eq!(
                parse_chat_message(&payload),
                Err(InputError::TextNotAString),
                "{payload}"
            );
        }
    }

    #[test]
    fn payloads_that_are_neither_object_nor_string_are_refused() {
        for payload in
            [json!(null), json!(42), json!(true), json!(["room", "text"])]
        {
            assert_eq!(
                parse_chat_message(&payload),
                Err(InputError::NotAMessage),
                "{payload}"
            );
        }
    }

    #[test]
    fn an_invalid_room_in_a_message_is_refused() {
        let parsed =
            parse_chat_message(&json!({"room": "General!", "text": "hello"}));

        assert_eq!(parsed, Err(InputError::InvalidRoom));
    }

    #[test]
    fn accepts_room_names_of_the_allowed_alphabet_and_length() {
        let longest = "a".repeat(MAX_ROOM_CHARS);
        for room in
            ["general", "a", "rust-2024", "off_topic", "0", longest.as_str()]
        {
            assert_eq!(parse_room(&json!(room)), Ok(room.to_owned()));
        }
    }

    #[test]
    fn refuses_room_names_outside_the_alphabet_or_length() {
        let too_long = "a".repeat(MAX_ROOM_CHARS + 1);
        for room in [
            "",
            too_long.as_str(),
            "General",
            "with space",
            "dots.are.out",
            "café",
            "../etc",
            " general",
        ] {
            assert_eq!(
                parse_room(&json!(room)),
                Err(InputError::InvalidRoom),
                "{room:?}"
            );
        }
    }

    #[test]
    fn refuses_a_room_that_is_not_a_string() {
        for room in [
            json!(null),
            json!(1),
            json!(["general"]),
            json!({"name": "general"}),
        ] {
            assert_eq!(
                parse_room(&room),
                Err(InputError::InvalidRoom),
                "{room}"
            );
        }
    }

    #[test]
    fn error_messages_are_the_ones_clients_are_told() {
        assert_eq!(
            InputError::NotAMessage.to_string(),
            r#"expected {"room", "text"} or a string"#
        );
        assert_eq!(
            InputError::InvalidRoom.to_string(),
            "room must be 1 to 32 of a-z, 0-9, _ and -"
        );
        assert_eq!(
            InputError::TextNotAString.to_string(),
            "text must be a string"
        );
        assert_eq!(
            InputError::TextLength.to_string(),
            format!("text must be 1 to {MAX_TEXT_CHARS} characters")
        );
    }
}
