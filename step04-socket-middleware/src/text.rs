//! Text that one client sends and other people will read. A payload can be
//! valid JSON and still attack the reader: control characters (a NUL, an
//! escape sequence), bidirectional overrides ("txt.exe" shown as "exe.txt"),
//! text made of nothing visible, or a letter under a tower of accents
//! ("Zalgo" text) that spills over the lines around it.

/// The most combining marks (accents) allowed on one character.
pub const MAX_COMBINING_MARKS: usize = 4;

/// Why a text cannot be shown to others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text must not contain control characters")]
    ControlCharacters,
    #[error("text must contain something visible")]
    NothingVisible,
}

// ANCHOR: without_bidi
/// `text` without the characters that reorder it (LRE, RLE, PDF, LRO, RLO,
/// LRI ... PDI).
pub fn without_bidi_controls(text: &str) -> String {
    let reorders = |c: char| {
        let embedding = ('\u{202A}'..='\u{202E}').contains(&c);
        embedding || ('\u{2066}'..='\u{2069}').contains(&c) // isolates
    };
    text.chars().filter(|&c| !reorders(c)).collect()
}

// ANCHOR_END: without_bidi

// ANCHOR: shows_something
/// `Ok` if `text` has no control character but new lines, something visible,
/// and at most [`MAX_COMBINING_MARKS`] combining marks on a character.
pub fn shows_something(text: &str) -> Result<(), TextError> {
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(TextError::ControlCharacters);
    }
    let mut visible = false;
    let mut marks_in_a_row = 0;
    for c in text.chars() {
        if unicode_normalization::char::is_combining_mark(c) {
            marks_in_a_row += 1;
            if marks_in_a_row > MAX_COMBINING_MARKS {
                return Err(TextError::NothingVisible);
            }
        } else {
            marks_in_a_row = 0;
            visible |= !c.is_whitespace() && !is_invisible(c);
        }
    }
    visible.then_some(()).ok_or(TextError::NothingVisible)
}

// ANCHOR_END: shows_something

/// Characters that take no room on screen: zero-width spaces and joiners,
/// direction marks, the byte-order mark, the soft hyphen.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_shows_nothing_or_hides_control_characters_is_refused() {
        let cases = [
            (
                "\u{200B}\u{200B}\u{200D}".to_owned(),
                TextError::NothingVisible,
            ),
            ("\u{0301}".repeat(10), TextError::NothingVisible),
            (
                format!("Z{}", "\u{0301}".repeat(5)),
                TextError::NothingVisible,
            ),
            ("nul\u{0}here".to_owned(), TextError::ControlCharacters),
            ("esc\u{1b}[31mred".to_owned(), TextError::ControlCharacters),
        ];
        for (text, error) in cases {
            assert_eq!(shows_something(&text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn new_lines_accents_and_emoji_show_and_bidi_overrides_go() {
        let accents = "e\u{0301}t\u{0301}e\u{0301}";
        for text in ["two\nlines", accents, "🦀", "日本"] {
            assert_eq!(shows_something(text), Ok(()), "{text:?}");
        }
        assert_eq!(without_bidi_controls("a\u{202E}b\u{2066}c"), "abc");
    }
}
