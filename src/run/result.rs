//! How a test ended, in the runner's words: statuses and results.

use std::time::{Duration, SystemTime};

use crate::discover::TestCase;
use crate::sandbox::{CapturedOutput, Limits, Rusage, SetupFailure, Usage};

/// The status of one finished (or never started) test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Exit code 0.
    Pass,
    /// Non-zero exit code.
    Fail,
    /// Killed by a signal isotest did not send.
    Signal,
    /// It, or one of its processes, was killed by the OOM killer.
    Oom,
    /// Stopped by isotest when its timeout expired.
    Timeout,
    /// Its container could not be set up or the command not started.
    Error,
    /// Not started (the run was interrupted), or stopped by the interrupt.
    NotRun,
}

impl Status {
    /// Every status, in the order summaries list them.
    pub const ALL: [Status; 7] = [
        Status::Pass,
        Status::Fail,
        Status::Signal,
        Status::Oom,
        Status::Timeout,
        Status::Error,
        Status::NotRun,
    ];

    /// The upper-case label used in the terminal and in reports.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Signal => "SIGNAL",
            Status::Oom => "OOM",
            Status::Timeout => "TIMEOUT",
            Status::Error => "ERROR",
            Status::NotRun => "NOT-RUN",
        }
    }

    pub fn is_success(self) -> bool {
        self == Status::Pass
    }
}

/// One test's result.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub test: TestCase,
    pub status: Status,
    /// Exit code when the command exited.
    pub exit_code: Option<i32>,
    /// Signal number when the command was killed by a signal.
    pub signal: Option<i32>,
    /// One line saying why it did not pass: `exit 1`, `killed by SIGSEGV`,
    /// `timed out after 5.000s`, the setup step that failed. None for PASS.
    pub message: Option<String>,
    pub setup_failure: Option<SetupFailure>,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub leaked_processes: u32,
    /// wait4 on the container's init: every process of the container.
    pub rusage: Option<Rusage>,
    /// cgroup accounting; None when the host's cgroups could not be used.
    pub usage: Option<Usage>,
    /// The limits the test ran under (when cgroups were in use).
    pub limits: Limits,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
}
