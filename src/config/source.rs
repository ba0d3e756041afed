//! Where a setting came from, and errors that point at a file, line and key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The origin of an effective setting, shown by `isotest list --verbose`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// isotest's built-in default.
    Default,
    /// A key in an isotest.toml: file, line, and the table it was in
    /// (`[profile.ci]`, `[[override]] filter = "db/*"`, `[[test]] migrate`).
    File {
        path: PathBuf,
        line: usize,
        table: Option<String>,
    },
    /// A command-line flag, like `--timeout`.
    Flag(&'static str),
    /// Set by a driver for the cases it found, as the native tool would
    /// (`cargo` sets `CARGO_MANIFEST_DIR`, `#[ignore]` ignores a case).
    Driver(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line, table } => {
                write!(f, "{}:{line}", path.display())?;
                if let Some(table) = table {
                    write!(f, " {table}")?;
                }
                Ok(())
            }
            Source::Flag(flag) => f.write_str(flag),
            Source::Driver(driver) => write!(f, "{driver} (driver)"),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Sourced { value, source }
    }

    pub fn default_value(value: T) -> Self {
        Sourced {
            value,
            source: Source::Default,
        }
    }
}

/// A malformed isotest.toml: file, line, column, key, and what is accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {}{message}", path.display(), key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: Option<String>,
    pub message: String,
}

/// Maps byte offsets of one file's text to lines and columns.
pub struct Positions<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Positions<'_> {
    /// 1-based line and column of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column)
    }

    pub fn line(&self, span: &Range<usize>) -> usize {
        self.line_column(span.start).0
    }

    pub fn error(
        &self,
        span: &Range<usize>,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.line_column(span.start);
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            key: key.map(str::to_string),
            message: message.into(),
        }
    }

    pub fn source(&self, span: &Range<usize>, table: Option<&str>) -> Source {
        Source::File {
            path: self.path.to_path_buf(),
            line: self.line(span),
            table: table.map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let positions = Positions {
            path: Path::new("t/isotest.toml"),
            text: "a = 1\nbb = \"x\"\n",
        };
        assert_eq!(positions.line_column(0), (1, 1));
        assert_eq!(positions.line_column(6), (2, 1));
        assert_eq!(positions.line_column(11), (2, 6));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let positions = Positions {
            path: Path::new("t/isotest.toml"),
            text: "a = 1\ntimeout = \"5x\"\n",
        };
        let error = positions.error(&(16..20), Some("timeout"), "invalid duration `5x`");
        assert_eq!(
            error.to_string(),
            "t/isotest.toml:2:11: key `timeout`: invalid duration `5x`"
        );
        assert_eq!(
            positions.source(&(6..13), Some("[profile.ci]")).to_string(),
            "t/isotest.toml:2 [profile.ci]"
        );
    }
}
