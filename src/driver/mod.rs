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
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Asks a test program for its cases: its stdout when it exits 0, None
/// when it does not (it does not take the listing flags). Its stderr is
/// not shown: a program that does not answer runs whole, which is no error.
fn listing(mut command: Command) -> Result<Option<String>, DriverError> {
    let text = shown(&command);
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DriverError::Spawn {
            command: text,
            source,
        })?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn exit_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// `work` on every item, as many at once as there are CPUs; results in
/// the items' order. Listing (and building) programs one by one would
/// leave CPUs idle while each starts.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(items.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(index) else {
                            return done;
                        };
                        done.push((index, work(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("driver workers do not panic"))
            .collect()
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// A value a driver set, marked as the driver's.
fn sourced<T>(value: T, driver: &'static str) -> Sourced<T> {
    Sourced::new(value, Source::Driver(driver))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parallel_work_keeps_the_order() {
        let items: Vec<u64> = (0..50).collect();
        let squares = super::in_parallel(&items, |n| n * n);
        assert_eq!(squares, items.iter().map(|n| n * n).collect::<Vec<_>>());
        assert!(super::in_parallel(&[] as &[u8], |_| 0).is_empty());
    }
}
