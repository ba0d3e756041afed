//! The typed values of isotest.toml: strings, integers, durations, sizes,
//! signals... read from a spanned TOML value, with errors that name the
//! file, line, column, key and what the key accepts.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::source::{ConfigError, Positions};
use crate::duration::parse_duration;
use crate::size::parse_size;

/// One value of the file, with its byte span.
pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// Reads values of one file, applying to `dir`.
pub(super) struct Reader<'a> {
    pub positions: &'a Positions<'a>,
    pub dir: &'a Path,
}

impl Reader<'_> {
    pub fn error(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        self.positions.error(span, Some(key), message)
    }

    /// An unknown key, with the keys `accepted` in its table.
    pub fn unknown<'k>(
        &self,
        key: &Spanned<std::borrow::Cow<str>>,
        accepted: impl IntoIterator<Item = &'k str>,
    ) -> ConfigError {
        let accepted: Vec<&str> = accepted.into_iter().collect();
        self.error(
            &key.span(),
            key.get_ref(),
            format!("unknown key (accepted here: {})", accepted.join(", ")),
        )
    }

    // Typed values. Each error says what the key accepts.

    pub fn table<'t>(&self, value: &'t Value, key: &str) -> Result<&'t DeTable<'t>, ConfigError> {
        match value.get_ref() {
            DeValue::Table(table) => Ok(table),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected a table, found {}", kind(other)),
            )),
        }
    }

    pub fn array_of_tables<'t>(
        &self,
        value: &'t Value,
        key: &str,
    ) -> Result<Vec<&'t Value<'t>>, ConfigError> {
        match value.get_ref() {
            DeValue::Array(items) => Ok(items.iter().collect()),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected [[{key}]] tables, found {}", kind(other)),
            )),
        }
    }

    pub fn string(&self, value: &Value, key: &str) -> Result<String, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected a string, found {}", kind(other)),
            )),
        }
    }

    pub fn strings(&self, value: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
        match value.get_ref() {
            DeValue::Array(items) => items.iter().map(|item| self.string(item, key)).collect(),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected an array of strings, found {}", kind(other)),
            )),
        }
    }

    /// An argv array, or a string run by `/bin/sh -c`.
    pub fn command(&self, value: &Value) -> Result<Vec<String>, ConfigError> {
        let argv = match value.get_ref() {
            DeValue::String(script) => vec!["/bin/sh".into(), "-c".into(), script.to_string()],
            DeValue::Array(_) => self.strings(value, "command")?,
            other => {
                return Err(self.error(
                    &value.span(),
                    "command",
                    format!(
                        "expected an array of arguments or a shell command string, found {}",
                        kind(other)
                    ),
                ))
            }
        };
        if argv.first().is_none_or(|program| program.is_empty()) {
            return Err(self.error(&value.span(), "command", "the command is empty"));
        }
        Ok(argv)
    }

    pub fn boolean(&self, value: &Value, key: &str) -> Result<bool, ConfigError> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected true or false, found {}", kind(other)),
            )),
        }
    }

    pub fn integer(
        &self,
        value: &Value,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            other => {
                return Err(self.error(
                    &value.span(),
                    key,
                    format!("expected an integer, found {}", kind(other)),
                ))
            }
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ if max == i64::MAX => Err(self.error(
                &value.span(),
                key,
                format!("expected an integer of at least {min}"),
            )),
            _ => Err(self.error(
                &value.span(),
                key,
                format!("expected an integer from {min} to {max}"),
            )),
        }
    }

    pub fn number(&self, value: &Value, key: &str) -> Result<f64, ConfigError> {
        match value.get_ref() {
            DeValue::Float(f) => f
                .as_str()
                .replace('_', "")
                .parse()
                .map_err(|_| self.error(&value.span(), key, "expected a number")),
            DeValue::Integer(_) => Ok(self.integer(value, key, i64::MIN, i64::MAX)? as f64),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected a number, found {}", kind(other)),
            )),
        }
    }

    pub fn duration(&self, value: &Value, key: &str) -> Result<Duration, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => parse_duration(s).map_err(|e| self.error(&value.span(), key, e)),
            DeValue::Integer(_) => Ok(Duration::from_secs(
                self.integer(value, key, 0, i64::MAX)? as u64
            )),
            other => Err(self.error(
                &value.span(),
                key,
                format!(
                    "expected a duration like \"30s\", \"500ms\" or \"5m\", found {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A duration, where 0 or "none" means no limit.
    pub fn optional_duration(
        &self,
        value: &Value,
        key: &str,
    ) -> Result<Option<Duration>, ConfigError> {
        if matches!(value.get_ref(), DeValue::String(s) if s == "none") {
            return Ok(None);
        }
        Ok(Some(self.duration(value, key)?).filter(|d| !d.is_zero()))
    }

    pub fn size(&self, value: &Value, key: &str) -> Result<u64, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => parse_size(s).map_err(|e| self.error(&value.span(), key, e)),
            DeValue::Integer(_) => Ok(self.integer(value, key, 1, i64::MAX)? as u64),
            other => Err(self.error(
                &value.span(),
                key,
                format!(
                    "expected a size like \"256M\" or \"1G\", found {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A size, where "none" means no limit.
    pub fn optional_size(&self, value: &Value, key: &str) -> Result<Option<u64>, ConfigError> {
        if matches!(value.get_ref(), DeValue::String(s) if s == "none") {
            return Ok(None);
        }
        self.size(value, key).map(Some)
    }

    pub fn signal(&self, value: &Value, key: &str) -> Result<i32, ConfigError> {
        let signal = match value.get_ref() {
            DeValue::Integer(_) => {
                let n = self.integer(value, key, 1, 64)? as i32;
                return Ok(n);
            }
            DeValue::String(s) => {
                let name = s.to_ascii_uppercase();
                let name = if name.starts_with("SIG") {
                    name
                } else {
                    format!("SIG{name}")
                };
                name.parse::<nix::sys::signal::Signal>().ok()
            }
            other => {
                return Err(self.error(
                    &value.span(),
                    key,
                    format!(
                        "expected a signal name like \"SIGKILL\", found {}",
                        kind(other)
                    ),
                ))
            }
        };
        signal.map(|s| s as i32).ok_or_else(|| {
            self.error(
                &value.span(),
                key,
                "unknown signal (expected a name like \"SIGKILL\", \"SIGSEGV\" or \"TERM\")",
            )
        })
    }
}

fn kind(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}
