//! Events the scheduler emits; reporters subscribe to them.

use std::time::{Duration, Instant, SystemTime};

use super::result::{Status, TestResult};
use super::services::ServiceResult;

#[derive(Clone, Debug)]
pub enum Event {
    RunStarted {
        test_count: usize,
        jobs: usize,
        started_at: SystemTime,
        host: HostFacts,
    },
    TestStarted {
        name: String,
        at: Instant,
    },
    /// An attempt did not pass and the test runs again.
    TestRetrying {
        name: String,
        /// The attempt that just ended, 1-based.
        attempt: u32,
        duration: Duration,
        status: Status,
        message: Option<String>,
    },
    TestFinished(Box<TestResult>),
    /// Sent every few hundred milliseconds while tests run, so reporters
    /// can redraw progress and notice slow tests.
    Tick {
        now: Instant,
    },
    RunFinished(RunSummary),
}

/// What the host offered this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// `v1`, `v2`, `hybrid` or `none`.
    pub cgroup_layout: String,
    /// False when tests ran without cgroup limits and accounting.
    pub cgroups_in_use: bool,
    /// Containers were set up in a user namespace, without root.
    pub rootless: bool,
}

/// The whole run, once it is over.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub started_at: SystemTime,
    pub duration: Duration,
    /// Every test of the plan, finished or not, in plan order.
    pub results: Vec<TestResult>,
    pub host: HostFacts,
    /// The signal that cut the run short (SIGINT, SIGTERM), if one did.
    pub interrupted_by: Option<i32>,
    /// The run's `scope = "run"` services, in starting order.
    pub services: Vec<ServiceResult>,
}

impl RunSummary {
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted_by.is_some()
    }

    /// The first setup failure that shows this host cannot create
    /// containers at all.
    pub fn host_failure(&self) -> Option<&crate::sandbox::SetupFailure> {
        self.results
            .iter()
            .filter_map(|r| r.setup_failure.as_ref())
            .find(|f| f.host_unsupported)
    }

    pub fn all_passed(&self) -> bool {
        self.results.iter().all(|r| r.status.is_success())
    }

    /// Tests that ran and did not end well.
    pub fn failures(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.status.is_failure())
            .count()
    }
}
