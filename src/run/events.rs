//! Events the scheduler emits; reporters subscribe to them.

use std::time::{Duration, SystemTime};

use super::result::{Status, TestResult};

#[derive(Clone, Debug)]
pub enum Event {
    RunStarted {
        test_count: usize,
        jobs: usize,
        started_at: SystemTime,
    },
    TestStarted {
        name: String,
    },
    TestFinished(Box<TestResult>),
    RunFinished(RunSummary),
}

/// The whole run, once it is over.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub started_at: SystemTime,
    pub duration: Duration,
    /// Every test of the plan, finished or not, in plan order.
    pub results: Vec<TestResult>,
    /// True when the run was cut short (Ctrl-C, SIGTERM).
    pub interrupted: bool,
}

impl RunSummary {
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    pub fn all_passed(&self) -> bool {
        self.results.iter().all(|r| r.status.is_success())
    }
}
