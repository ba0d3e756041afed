//! Drivers: discovery for test programs that hold many cases. A driver
//! builds the programs with the native tool (`cargo test --no-run`,
//! `go test -c`), asks each program for its cases, and returns one command
//! per case, named as nextest names them, with the environment the native
//! tool would give it. After discovery a case is a command like any other:
//! planning, selection, the sandbox and the reports do not know which
//! driver made it; only its protocol (how its output is read) says what
//! kind of program it is.

pub mod cargo;
pub mod go;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::config::{Source, Sourced};
use crate::plan::DriverCase;

/// What a driver found.
pub struct Discovered {
    /// The workspace or module root: its isotest.toml configures the run.
    pub root: PathBuf,
    /// Directories whose isotest.toml applies (the root and each package).
    pub config_dirs: Vec<PathBuf>,
    pub cases: Vec<DriverCase>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot run `{command}`: {source} (is it installed and in PATH?)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}){detail}")]
    Failed {
        command: String,
        status: String,
        /// What it printed on stderr, or where to look for it.
        detail: String,
    },
    #[error("`{command}`: unexpected output: {message}")]
    Output { command: String, message: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `command` as the user would type it, for messages.
fn shown(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` to the end with stdout captured; stderr is captured too
/// when `quiet`, else it goes to the user (the build's progress and
/// errors). A failure is an error quoting what it printed.
fn output(mut command: Command, quiet: bool) -> Result<Output, DriverError> {
    let text = shown(&command);
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    command.stderr(if quiet {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let output = command.output().map_err(|source| DriverError::Spawn {
        command: text.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(DriverError::Failed {
        command: text,
        status: exit_status(output.status),
        detail: if quiet {
            format!(": {}", stderr.trim())
        } else {
            "; its output is above".to_string()
        },
    })
}

fn exit_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// A value a driver set, marked as the driver's.
fn sourced<T>(value: T, driver: &'static str) -> Sourced<T> {
    Sourced::new(value, Source::Driver(driver))
}
