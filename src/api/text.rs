//! Words a target chose (a `grpc-message`, DNS names and records, certificate fields, a
//! `Location`) shown as data: control characters and the Unicode marks that reorder or break
//! lines are escaped (`\n`, `\u{1b}`), and the length is cut, so a target can neither forge a
//! log line or an Event note nor paint a terminal. Expectations match the raw values; only what
//! is shown goes through here. The probe engine applies [`display_text`] to every outcome it
//! returns, so status, Events, logs, the page and `canary check` all show the same safe text.

use std::{borrow::Cow, fmt};

/// Most characters shown of one target-supplied string inside a message.
pub const MAX_TARGET_CHARS: usize = 256;

/// Marks a cut.
const CUT: char = '…';

/// Whether `c` is shown escaped: C0 and C1 controls and DEL, and the format characters that
/// reorder text or end a line without being controls (bidi overrides and isolates, the line
/// and paragraph separators, the byte-order mark).
fn escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` as it may be shown: each character of [`escaped`] written as Rust writes it (`\n`,
/// `\u{1b}`), then cut to `max` characters (the last one `…` when something was cut). Text
/// without such characters that fits is returned as it is, so applying it twice changes nothing.
pub fn display_text(text: &str, max: usize) -> Cow<'_, str> {
    let width = |c: char| {
        if escaped(c) {
            c.escape_default().count()
        } else {
            1
        }
    };
    let total: usize = text.chars().map(width).sum();
    if total <= max && !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    // Room for the cut mark when the text does not fit; an escape is never split.
    let room = if total <= max {
        max
    } else {
        max.saturating_sub(1)
    };
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut count = 0;
    for c in text.chars() {
        count += width(c);
        if count > room {
            break;
        }
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if total > max {
        out.push(CUT);
    }
    Cow::Owned(out)
}

/// A target-supplied string in a `format!`: shown through [`display_text`] with
/// [`MAX_TARGET_CHARS`], so one long header cannot push the rest of a message out.
#[derive(Debug, Clone, Copy)]
pub struct TargetText<'a>(pub &'a str);

impl fmt::Display for TargetText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_text(self.0, MAX_TARGET_CHARS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_reordering_marks_are_escaped() {
        let forged = "down\n2024-01-01T00:00:00Z INFO check is ready\r\u{1b}[2J\u{202E}ok\u{85}";
        let shown = display_text(forged, 1000);
        assert_eq!(
            shown,
            "down\\n2024-01-01T00:00:00Z INFO check is ready\\r\\u{1b}[2J\\u{202e}ok\\u{85}"
        );
        assert!(!shown.chars().any(escaped));
        assert_eq!(display_text(&shown, 1000), shown, "idempotent");
        assert!(matches!(
            display_text("plain é 漢字", 100),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(display_text("abcdef", 6), "abcdef");
        assert_eq!(display_text("abcdefg", 6), "abcde…");
        assert_eq!(display_text("漢字漢字漢字漢", 3), "漢字…");
        // An escape is never split: it is shown whole or cut with what follows it.
        assert_eq!(display_text("ab\u{1b}cd", 5), "ab…");
        assert_eq!(display_text("ab\ncd", 5), "ab\\n…");
        assert_eq!(
            TargetText(&"x".repeat(10_000)).to_string().chars().count(),
            256
        );
    }
}
