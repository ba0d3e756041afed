//! Untrusted text into HTML: every test name, message and output goes
//! through `text` or `ansi`, so nothing a test prints can become markup or
//! script. `ansi` renders SGR colours (16, 256 and true colour) as spans
//! (parsed by vte) and drops every other escape sequence; control
//! characters show as `\u{N}`.

use std::fmt::Write;

/// `text`, escaped for an element's content or a quoted attribute.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_text(&mut out, text);
    out
}

fn push_text(out: &mut String, text: &str) {
    for c in text.chars() {
        push_char(out, c);
    }
}

fn push_char(out: &mut String, c: char) {
    match c {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        '\n' | '\t' => out.push(c),
        // NUL and other controls are parse errors in HTML: shown, not sent.
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// JSON for a `<script type="application/json">` block: `<`, `>` and `&`
/// as JSON escapes, so no `</script>` can end the block early.
pub fn script_json(value: &serde_json::Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            // Line and paragraph separators end lines in older JS parsers.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Terminal output as escaped HTML, SGR colours and weights as
/// `<span class="..." style="...">` (the style only for colours beyond
/// the basic 16).
pub fn ansi(output: &str) -> String {
    let mut renderer = AnsiHtml::default();
    vte::Parser::new().advance(&mut renderer, output.as_bytes());
    renderer.close_span();
    renderer.out
}

/// A colour: one of the 16 a stylesheet class names, or any other (the
/// 256-colour palette and true colour) as RGB for an inline style.
#[derive(Clone, Copy, PartialEq)]
enum Colour {
    Basic(u8),
    Rgb(u8, u8, u8),
}

impl Colour {
    /// Entry `n` of the xterm 256-colour palette.
    fn palette(n: u8) -> Colour {
        const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
        match n {
            0..=15 => Colour::Basic(n),
            16..=231 => {
                let i = n - 16;
                let level = |k: u8| LEVELS[usize::from(k)];
                Colour::Rgb(level(i / 36), level(i / 6 % 6), level(i % 6))
            }
            _ => {
                let grey = 8 + 10 * (n - 232);
                Colour::Rgb(grey, grey, grey)
            }
        }
    }

    /// The colour of a `38;5;N` or `38;2;R;G;B` tail (`params` after 38 or
    /// 48), its arguments consumed.
    fn extended(params: &mut impl Iterator<Item = u16>) -> Option<Colour> {
        let byte = |value: Option<u16>| value.map(|v| v.min(255) as u8);
        match params.next()? {
            5 => byte(params.next()).map(Colour::palette),
            2 => Some(Colour::Rgb(
                byte(params.next())?,
                byte(params.next())?,
                byte(params.next())?,
            )),
            _ => None,
        }
    }
}

/// The SGR state: a CSS class per attribute and basic colour, an inline
/// style for other colours.
#[derive(Clone, Default, PartialEq)]
struct Style {
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    foreground: Option<Colour>,
    background: Option<Colour>,
}

impl Style {
    /// The span's attributes: ` class="..."` and ` style="..."`, each when
    /// needed.
    fn attributes(&self) -> String {
        let mut classes = Vec::new();
        for (on, class) in [
            (self.bold, "ab"),
            (self.dim, "ad"),
            (self.italic, "ai"),
            (self.underline, "au"),
        ] {
            if on {
                classes.push(class.to_string());
            }
        }
        let mut styles = Vec::new();
        for (colour, class, property) in [
            (self.foreground, "f", "color"),
            (self.background, "g", "background"),
        ] {
            match colour {
                Some(Colour::Basic(n)) => classes.push(format!("{class}{n}")),
                Some(Colour::Rgb(r, g, b)) => {
                    styles.push(format!("{property}:#{r:02x}{g:02x}{b:02x}"))
                }
                None => {}
            }
        }
        let mut attributes = String::new();
        if !classes.is_empty() {
            let _ = write!(attributes, " class=\"{}\"", classes.join(" "));
        }
        if !styles.is_empty() {
            let _ = write!(attributes, " style=\"{}\"", styles.join(";"));
        }
        attributes
    }

    /// Applies one SGR sequence's parameters.
    fn apply(&mut self, params: &[u16]) {
        let mut params = params.iter().copied();
        while let Some(code) = params.next() {
            match code {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => (self.bold, self.dim) = (false, false),
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.foreground = Some(Colour::Basic((code - 30) as u8)),
                90..=97 => self.foreground = Some(Colour::Basic((code - 90 + 8) as u8)),
                39 => self.foreground = None,
                40..=47 => self.background = Some(Colour::Basic((code - 40) as u8)),
                100..=107 => self.background = Some(Colour::Basic((code - 100 + 8) as u8)),
                49 => self.background = None,
                38 => self.foreground = Colour::extended(&mut params).or(self.foreground),
                48 => self.background = Colour::extended(&mut params).or(self.background),
                _ => {}
            }
        }
    }
}

#[derive(Default)]
struct AnsiHtml {
    out: String,
    style: Style,
    /// The style of the open span, if one is open.
    open: Option<Style>,
}

impl AnsiHtml {
    fn close_span(&mut self) {
        if self.open.take().is_some() {
            self.out.push_str("</span>");
        }
    }

    fn push(&mut self, c: char) {
        if self.open.as_ref() != Some(&self.style) {
            self.close_span();
            if self.style != Style::default() {
                let _ = write!(self.out, "<span{}>", self.style.attributes());
                self.open = Some(self.style.clone());
            }
        }
        push_char(&mut self.out, c);
    }
}

impl vte::Perform for AnsiHtml {
    fn print(&mut self, c: char) {
        self.push(c);
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' | b'\t' => self.push(byte as char),
            // CR (of CRLF) moves nowhere on a page.
            b'\r' => {}
            other => self.push(other as char),
        }
    }

    fn csi_dispatch(&mut self, params: &vte::Params, _: &[u8], ignore: bool, action: char) {
        if action == 'm' && !ignore {
            let flat: Vec<u16> = params.iter().flatten().copied().collect();
            // `ESC[m` is a reset, as `ESC[0m`.
            self.style.apply(if flat.is_empty() { &[0] } else { &flat });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            text("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            text("nul\0 bell\x07 \u{9b}"),
            "nul\\u{0} bell\\u{7} \\u{9b}"
        );
    }

    #[test]
    fn keeps_scripts_closed() {
        let value = serde_json::json!({ "name": "</script><script>alert(1)</script>&\u{2028}" });
        let json = script_json(&value);
        assert!(
            !json.contains('<') && !json.contains('>') && !json.contains('&'),
            "{json}"
        );
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn renders_colours_as_spans() {
        assert_eq!(
            ansi("\x1b[1;31mred <b>\x1b[0m plain \x1b[32mgreen\x1b[m\n"),
            "<span class=\"ab f1\">red &lt;b&gt;</span> plain <span class=\"f2\">green</span>\n"
        );
        assert_eq!(
            ansi("\x1b[38;5;196mx\x1b[39;1my"),
            "<span style=\"color:#ff0000\">x</span><span class=\"ab\">y</span>"
        );
        assert_eq!(
            ansi("\x1b[38;5;3;48;2;1;2;300mq\x1b[48;5;244mr"),
            "<span class=\"f3\" style=\"background:#0102ff\">q</span>\
             <span class=\"f3\" style=\"background:#808080\">r</span>"
        );
        assert_eq!(
            ansi("\x1b[38;2;1mz"),
            "z",
            "a short true-colour form is dropped"
        );
        assert_eq!(ansi("\x1b[91;44mz"), "<span class=\"f9 g4\">z</span>");
    }

    #[test]
    fn drops_other_escapes_and_shows_controls() {
        assert_eq!(
            ansi("\x1b]0;title\x07a\x1b[2Kb\r\nc\0d\x1b[31"),
            "ab\nc\\u{0}d"
        );
    }
}
