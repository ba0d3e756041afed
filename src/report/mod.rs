//! Reporters turn run events into something people and CI systems read.
//! Adding a reporter never touches the scheduler: it only sees events.

pub mod junit;
pub mod terminal;

pub use junit::JunitReporter;
pub use terminal::TerminalReporter;

use crate::run::Event;

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
}
