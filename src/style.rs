//! The look of isotest's terminal output, defined once for `run` and
//! `doctor`: whether to colour, the three tones a status label takes, and
//! text from tests made safe to show (their colour codes removed when
//! colour is off). Escape sequences come from `console`, never by hand.

use std::borrow::Cow;
use std::ffi::OsStr;

use console::Style;

/// What a label says about how things went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Passed, available.
    Good,
    /// Flaky, skipped, not run, degraded, slow.
    Warn,
    /// Failed, missing.
    Bad,
}

/// Paints text in tones, or leaves it plain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Styles {
    color: bool,
}

impl Styles {
    /// Colour on or off; [`color_wanted`] decides for a stream.
    pub fn new(color: bool) -> Styles {
        Styles { color }
    }

    pub fn color(self) -> bool {
        self.color
    }

    /// `text` in the colour of `tone`. Pad before painting: escape codes
    /// have no width.
    pub fn paint(self, tone: Tone, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let style = match tone {
            Tone::Good => Style::new().green(),
            Tone::Warn => Style::new().yellow(),
            Tone::Bad => Style::new().red().bold(),
        };
        style.force_styling(true).apply_to(text).to_string()
    }

    /// A test's own output as shown: as written with colour on (a test's
    /// colours are part of what it says), without its escape codes with
    /// colour off, so logs and pipes get plain text.
    pub fn output<'a>(self, text: &'a str) -> Cow<'a, str> {
        if self.color {
            Cow::Borrowed(text)
        } else {
            strip_escapes(text)
        }
    }
}

/// `text` without terminal escape sequences (colours, titles, links), as
/// `console` strips them, one line at a time: an unterminated sequence
/// (`ESC ]` with no end) loses the rest of its line, not the lines after
/// it. A stray ESC goes too.
pub fn strip_escapes(text: &str) -> Cow<'_, str> {
    if !text.contains('\x1b') {
        return Cow::Borrowed(text);
    }
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| console::strip_ansi_codes(line).replace('\x1b', ""))
        .collect();
    Cow::Owned(lines.join("\n"))
}

/// Whether to colour a stream: only a terminal, and never when `NO_COLOR`
/// is set to a non-empty value (<https://no-color.org>).
pub fn color_wanted(is_tty: bool) -> bool {
    color_allowed(is_tty, std::env::var_os("NO_COLOR").as_deref())
}

fn color_allowed(is_tty: bool, no_color: Option<&OsStr>) -> bool {
    match no_color {
        Some(value) if !value.is_empty() => false,
        _ => is_tty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_tty_and_no_no_color() {
        assert!(color_allowed(true, None));
        assert!(color_allowed(true, Some(OsStr::new(""))));
        assert!(!color_allowed(true, Some(OsStr::new("1"))));
        assert!(!color_allowed(false, None));
    }

    #[test]
    fn tones_are_painted_only_with_colour_on() {
        let on = Styles::new(true);
        assert_eq!(on.paint(Tone::Good, "PASS"), "\x1b[32mPASS\x1b[0m");
        assert_eq!(on.paint(Tone::Warn, "SKIP"), "\x1b[33mSKIP\x1b[0m");
        assert_eq!(on.paint(Tone::Bad, "FAIL"), "\x1b[31m\x1b[1mFAIL\x1b[0m");
        assert_eq!(Styles::new(false).paint(Tone::Bad, "FAIL"), "FAIL");
    }

    #[test]
    fn unterminated_or_stray_escapes_cost_at_most_their_line() {
        assert_eq!(strip_escapes("a\x1b]0;never ends\nnext"), "a\nnext");
        assert_eq!(strip_escapes("a\x1b[31"), "a");
        assert_eq!(strip_escapes("a\x1b(Bb\x1b"), "ab");
        assert_eq!(strip_escapes("a\x1bPdcs\x1b\\b\n"), "ab\n");
        assert!(matches!(strip_escapes("plain\n"), Cow::Borrowed("plain\n")));
    }

    #[test]
    fn test_output_loses_its_escape_codes_with_colour_off() {
        let text = "\x1b[1;31merror\x1b[0m: \x1b]8;;http://x\x07link\x1b]8;;\x07 ok\n";
        assert_eq!(Styles::new(false).output(text), "error: link ok\n");
        assert_eq!(Styles::new(true).output(text), text);
    }
}
