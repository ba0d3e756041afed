//! How a test ended, in the runner's words: statuses and results.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::services::ServiceResult;
use crate::discover::TestCase;
use crate::protocol::Case;
use crate::sandbox::{CapturedOutput, Limits, Rusage, Sample, SetupFailure, Usage};

/// The status of one finished (or never started) test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Ended as expected (by default: exit 0) within its resource bounds.
    Pass,
    /// Failed, then passed on a retry.
    Flaky,
    /// Non-zero exit code (or not the expected one).
    Fail,
    /// Killed by a signal isotest did not send.
    Signal,
    /// It, or one of its processes, was killed by the OOM killer.
    Oom,
    /// Stopped by isotest when its timeout expired.
    Timeout,
    /// Ended as expected but used more than a `max_*` bound allows.
    OverLimit,
    /// Used more memory or CPU than the baseline run allows.
    Regressed,
    /// Its container could not be set up or the command not started.
    Error,
    /// Ignored in isotest.toml (`ignore = true`), exited with the skip
    /// code (`skip_exit`, 77), or skipped by its TAP plan (`1..0 # SKIP`).
    Skipped,
    /// Not started (the run was interrupted or stopped early), or stopped
    /// by the interrupt.
    NotRun,
}

impl Status {
    /// Every status, in the order summaries list them.
    pub const ALL: [Status; 11] = [
        Status::Pass,
        Status::Flaky,
        Status::Fail,
        Status::Signal,
        Status::Oom,
        Status::Timeout,
        Status::OverLimit,
        Status::Regressed,
        Status::Error,
        Status::Skipped,
        Status::NotRun,
    ];

    /// The upper-case label used in the terminal and in reports.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Flaky => "FLAKY",
            Status::Fail => "FAIL",
            Status::Signal => "SIGNAL",
            Status::Oom => "OOM",
            Status::Timeout => "TIMEOUT",
            Status::OverLimit => "OVER-LIMIT",
            Status::Regressed => "REGRESSED",
            Status::Error => "ERROR",
            Status::Skipped => "SKIPPED",
            Status::NotRun => "NOT-RUN",
        }
    }

    /// Whether the run counts this test as good. FLAKY counts unless
    /// `--flaky-result fail` turned it into a failure.
    pub fn is_success(self) -> bool {
        matches!(self, Status::Pass | Status::Flaky | Status::Skipped)
    }

    /// Whether the test ran and did not end well: output and status are
    /// repeated at the end of the run.
    pub fn is_failure(self) -> bool {
        !self.is_success() && self != Status::NotRun
    }
}

/// An earlier attempt of a retried test that did not pass.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub status: Status,
    pub message: Option<String>,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub timing: Timing,
}

/// Where one attempt's time went, for traces and the HTML report. The
/// attempt's `started_at` is the start of `setup`; `root` comes before it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timing {
    /// Preparing the root filesystem, before the first attempt (zero for
    /// later attempts).
    pub root: Duration,
    /// From the request to the command's start (all of it when the
    /// command never started).
    pub setup: Duration,
    /// The command itself; zero when it never started.
    pub test: Duration,
    /// From the command's end until the container and cgroup were gone.
    pub teardown: Duration,
    /// The cgroup's memory and CPU over time, when the run sampled them.
    pub samples: Vec<Sample>,
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
    /// Earlier attempts that did not pass (with `retries`), oldest first;
    /// the fields above describe the last attempt.
    pub attempts: Vec<Attempt>,
    /// The services of the last attempt, in starting order.
    pub services: Vec<ServiceResult>,
    /// The cases inside the test (its TAP test points, the testcases of
    /// its XML_OUTPUT_FILE), from the last attempt.
    pub cases: Vec<Case>,
    /// Where what the test left in TEST_UNDECLARED_OUTPUTS_DIR was kept
    /// (`--artifacts DIR/<test name>`), if it left anything.
    pub artifacts: Option<PathBuf>,
    /// The job slot (0-based) the test ran in; None when it did not run.
    pub slot: Option<usize>,
    /// Where the last attempt's time went.
    pub timing: Timing,
    pub scheduled: Scheduled,
}

/// How the scheduler ran a test.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scheduled {
    /// Which run of the test this is, 1-based, under `--stress N`.
    pub iteration: Option<u32>,
    /// How long the test was held back because the memory budget was
    /// taken by tests running.
    pub waited_for_memory: Option<Duration>,
}

impl TestResult {
    /// `test` ended as `status`, with nothing measured, captured or said
    /// yet: the fields a classification fills in are empty.
    pub fn new(test: TestCase, status: Status, started_at: SystemTime) -> TestResult {
        TestResult {
            test,
            status,
            exit_code: None,
            signal: None,
            message: None,
            setup_failure: None,
            started_at,
            duration: Duration::ZERO,
            leaked_processes: 0,
            rusage: None,
            usage: None,
            limits: Limits::default(),
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            attempts: Vec::new(),
            services: Vec::new(),
            cases: Vec::new(),
            artifacts: None,
            slot: None,
            timing: Timing::default(),
            scheduled: Scheduled::default(),
        }
    }
}
