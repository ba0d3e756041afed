//! Reporters turn run events into something people and CI systems read.
//! Adding a reporter never touches the scheduler: it only sees events.

pub mod html;
pub mod json;
pub mod junit;
pub mod merge;
mod rebuild;
pub mod stress;
pub mod terminal;
pub mod trace;

pub use html::HtmlReporter;
pub use json::JsonReporter;
pub use junit::JunitReporter;
pub use terminal::TerminalReporter;
pub use trace::TraceReporter;

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::run::{Event, Status, TestResult};

/// A consumer of run events.
pub trait Reporter {
    /// Called for every event, in order, on one thread.
    fn handle(&mut self, event: &Event) -> Result<(), ReportError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("write report {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("build JUnit report: {0}")]
    Junit(String),
    #[error("build JSON report: {0}")]
    Json(#[from] serde_json::Error),
}

/// Where a report goes: a file, or standard output for `-` (as in
/// `--json -`), so it can be piped; the terminal view then goes to stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    File(PathBuf),
    Stdout,
}

impl From<PathBuf> for Destination {
    fn from(path: PathBuf) -> Self {
        if path.as_os_str() == "-" {
            Destination::Stdout
        } else {
            Destination::File(path)
        }
    }
}

impl Destination {
    /// Writes the whole report: a file atomically (a temporary file beside
    /// it, renamed over it, so readers never see half a report), stdout in
    /// one go.
    fn write(&self, contents: &[u8]) -> Result<(), ReportError> {
        match self {
            Destination::File(path) => write_atomically(path, contents),
            Destination::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout
                    .write_all(contents)
                    .and_then(|()| stdout.flush())
                    .map_err(|source| ReportError::Write {
                        path: "to stdout".to_string(),
                        source,
                    })
            }
        }
    }
}

/// Writes a temporary file beside `path` and renames it over `path`, so
/// readers never see a half-written report.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    replace_file(path, contents).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    fs::create_dir_all(dir)?;
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = dir.join(temp_name);
    let written = write_synced(&temp, contents).and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

fn write_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// How many attempts of the test ran to an end: the earlier ones plus the
/// last, which did not run for SKIPPED and NOT-RUN tests.
fn attempts_run(result: &TestResult) -> usize {
    let last = !matches!(result.status, Status::Skipped | Status::NotRun);
    result.attempts.len() + usize::from(last)
}

/// RFC 3339 in UTC with milliseconds: `2024-02-29T23:59:59.123Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
        since_epoch.subsec_millis()
    )
}

/// The Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let days = days + 719_468; // counted from 0000-03-01
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn formats_timestamps_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(at(951_782_400) + Duration::from_millis(5)),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(rfc3339(at(1_709_251_199)), "2024-02-29T23:59:59.000Z");
        assert_eq!(rfc3339(at(4_102_444_800)), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_dash_is_stdout() {
        assert_eq!(Destination::from(PathBuf::from("-")), Destination::Stdout);
        assert_eq!(
            Destination::from(PathBuf::from("./-")),
            Destination::File(PathBuf::from("./-"))
        );
    }

    #[test]
    fn replaces_files_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports/run.json");
        let destination = Destination::from(path.clone());
        destination.write(b"old").unwrap();
        destination.write(b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["run.json"], "no temporary file is left");
    }

    #[test]
    fn write_errors_name_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let path = blocker.join("report.xml");
        let err = Destination::from(path.clone()).write(b"x").unwrap_err();
        assert!(matches!(err, ReportError::Write { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
