//! Text that one client sends and other people will read. A payload can be
//! valid JSON and still attack the reader: control characters (a NUL, an
//! escape sequence), bidirectional overrides ("txt.exe" shown as "exe.txt"),
//! text made of nothing visible, or a letter under a tower of accents
//! ("Zalgo" text) that spills over the lines around it.

use icu_properties::CodePointMapData;
use icu_properties::props::{
    BinaryProperty, DefaultIgnorableCodePoint, GeneralCategory,
    GeneralCategoryGroup, WhiteSpace,
};
use unicode_segmentation::UnicodeSegmentation;

/// The most marks (accents, vowel signs) one grapheme may carry: Vietnamese,
/// Hebrew with niqqud, Thai or Devanagari need a few; "Zalgo" needs dozens.
pub const MAX_MARKS_PER_GRAPHEME: usize = 8;

/// Why a text cannot be shown to others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text must not contain control characters")]
    ControlCharacters,
    #[error("text must contain something visible")]
    NothingVisible,
}

/// `value`, if it is a string of 1 to `max` bytes, each character `allowed`:
/// for the names and ids a client sends (a room, a message's id), which are
/// kept short and plain.
pub fn short_string(
    value: &serde_json::Value,
    max: usize,
    allowed: fn(char) -> bool,
) -> Option<String> {
    let text = value.as_str()?;
    let fits = !text.is_empty() && text.len() <= max;
    (fits && text.chars().all(allowed)).then(|| text.to_owned())
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
/// `Ok` if `text` has no control character but new lines, and at least one
/// grapheme (what a reader sees as one character: `unicode-segmentation`
/// finds them) that shows something, none of them under more than
/// [`MAX_MARKS_PER_GRAPHEME`] marks.
pub fn shows_something(text: &str) -> Result<(), TextError> {
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(TextError::ControlCharacters);
    }
    let mut visible = false;
    for grapheme in text.graphemes(true) {
        let marks = grapheme.chars().filter(|&c| is_mark(c)).count();
        if marks > MAX_MARKS_PER_GRAPHEME {
            return Err(TextError::NothingVisible);
        }
        visible |= grapheme.chars().any(shows);
    }
    visible.then_some(()).ok_or(TextError::NothingVisible)
}
// ANCHOR_END: shows_something

// ANCHOR: shows
/// Whether `c` puts ink on the screen, by its Unicode properties: not white
/// space, not "default ignorable" (the invisible fillers, joiners, tags and
/// direction marks), not a mark (it needs a letter to sit on), not a format
/// character.
fn shows(c: char) -> bool {
    use GeneralCategory::{EnclosingMark, Format, NonspacingMark};
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    let invisible = WhiteSpace::for_char(c)
        || DefaultIgnorableCodePoint::for_char(c)
        || matches!(category, NonspacingMark | EnclosingMark | Format);
    // U+2800, the blank Braille pattern: a symbol by its category, and the
    // one blank character no property tells apart.
    !invisible && c != '\u{2800}'
}

/// Whether `c` is a mark: general category Mn, Mc or Me.
fn is_mark(c: char) -> bool {
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    GeneralCategoryGroup::Mark.contains(category)
}
// ANCHOR_END: shows

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused, with the reason: text that shows nothing, or hides control
    /// characters, or piles marks on a letter.
    fn refused() -> Vec<(String, TextError)> {
        use TextError::{
            ControlCharacters as Control, NothingVisible as Nothing,
        };
        let zalgo = format!("Z{}", "\u{0301}\u{0316}\u{0353}".repeat(3));
        vec![
            ("\u{200B}\u{200B}\u{200D}".into(), Nothing), // zero-width
            ("\u{3164}".into(), Nothing),                 // Hangul filler
            ("\u{115F}\u{1160}".into(), Nothing),         // Hangul fillers
            ("\u{FFA0}".into(), Nothing),                 // halfwidth filler
            ("\u{2800}\u{2800}".into(), Nothing),         // blank Braille
            ("\u{E0067}\u{E0062}\u{E007F}".into(), Nothing), // tags
            ("\u{061C}".into(), Nothing),                 // Arabic letter mark
            ("\u{180E}\u{2061}\u{FE0F}".into(), Nothing), // and others
            ("\u{0301}".repeat(10), Nothing),             // marks on nothing
            (zalgo, Nothing),                             // 9 marks on a letter
            (format!("ok {}", "\u{0E49}".repeat(9)), Nothing), // Thai tower
            ("nul\u{0}here".into(), Control),
            ("esc\u{1b}[31mred".into(), Control),
        ]
    }

    /// Accepted: the world's ordinary writing.
    const ACCEPTED: [&str; 14] = [
        "two\nlines",
        "e\u{0301}te\u{0301}", // é written as e + accent
        "สวัสดีครับ ที่นี่",          // Thai
        "שָׁלוֹם, בְּרֵאשִׁית",        // Hebrew with niqqud
        "مَرْحَبًا بِكُمْ",           // Arabic with harakat
        "Tiếng Việt rất đẹp",  // Vietnamese
        "नमस्ते, क्षत्रिय",        // Devanagari
        "👩\u{200D}💻 👨\u{200D}👩\u{200D}👧", // emoji ZWJ sequences
        "🇫🇷🇯🇵",                // flags
        "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // Scotland
        "1\u{FE0F}\u{20E3}",   // keycap one
        "🦀",
        "日本",
        "Z\u{0301}\u{0316}\u{0353}\u{0301}\u{0316}\u{0353}\u{0301}\u{0316}", // 8
    ];

    #[test]
    fn text_that_shows_nothing_piles_marks_or_hides_controls_is_refused() {
        for (text, error) in refused() {
            assert_eq!(shows_something(&text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn ordinary_writing_in_many_scripts_shows_and_bidi_overrides_go() {
        for text in ACCEPTED {
            assert_eq!(shows_something(text), Ok(()), "{text:?}");
        }
        assert_eq!(without_bidi_controls("a\u{202E}b\u{2066}c"), "abc");
    }
}
