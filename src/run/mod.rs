//! The scheduler: runs the plan with N job slots, one container per test,
//! and emits events in the order things happen. Reporters run on the
//! calling thread; workers only run containers. `admission` decides which
//! test starts next (start order, job slots, memory budget); `--stress N`
//! runs each test N times.

mod admission;
mod attempt;
mod classify;
mod container;
mod environment;
mod events;
mod readiness;
mod result;
mod roots;
mod services;
mod shared;
pub mod stress;
mod test_files;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

pub use admission::Demand;
pub use container::spec;
pub use environment::{test_environment, HOME};
pub use events::{Event, HostFacts, RunSummary};
pub use result::{Attempt, Scheduled, Status, TestResult, Timing};
pub use roots::{Root, Roots};
pub use services::{ServiceResult, ServiceStatus};

/// Bytes of output kept per stream of a test (or service): the first and
/// last half of it.
pub const OUTPUT_LIMIT: usize = 4 << 20;
pub use test_files::{default_parent as test_files_parent, TestFiles};

use crate::plan::PlannedTest;
use crate::sandbox::{interrupt, OutputMode, Sandbox, StopRequest};
use admission::Admission;
use attempt::AttemptSettings;
pub use classify::not_run;
use shared::{RunServices, SharedServices};

/// How the plan is run.
pub struct RunSettings<'a> {
    pub jobs: usize,
    pub output: OutputMode,
    /// Stop starting tests once this many have failed (`--fail-fast` is 1).
    pub max_fail: Option<usize>,
    /// `--flaky-result fail`.
    pub flaky_is_failure: bool,
    /// A last check of each final result (the baseline comparison).
    pub post_check: Option<&'a (dyn Fn(&mut TestResult) + Sync)>,
    /// The run's root filesystems.
    pub roots: &'a Roots,
    /// Where attempts' XML_OUTPUT_FILE and outputs directories are made.
    pub files: &'a TestFiles,
    /// `--artifacts DIR`: where TEST_UNDECLARED_OUTPUTS_DIR is kept.
    pub artifacts: Option<&'a std::path::Path>,
    /// Plan positions in the order tests start (`--order`).
    pub start_order: Vec<usize>,
    /// What each test of the plan holds while it runs, by plan position.
    pub demands: Vec<Demand>,
    /// Memory the running tests' demands may add up to.
    pub memory_budget: u64,
    /// Runs of each test (`--stress N`); 1 is a normal run.
    pub runs_per_test: u32,
}

/// How often reporters get a Tick while tests run.
const TICK: Duration = Duration::from_millis(250);

/// Runs `plan` (and reports `skipped`, the ignored tests, as SKIPPED) and
/// returns the summary; `on_event` sees every event, on this thread, and
/// last the same summary as RunFinished.
pub fn run(
    plan: Vec<PlannedTest>,
    skipped: Vec<PlannedTest>,
    settings: &RunSettings,
    sandbox: &Sandbox,
    on_event: &mut dyn FnMut(&Event),
) -> RunSummary {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let host = HostFacts {
        cgroup_layout: sandbox.cgroup_layout().to_string(),
        cgroups_in_use: sandbox.cgroups_unavailable().is_none(),
        rootless: sandbox.rootless(),
    };
    let runs = settings.runs_per_test.max(1) as usize;
    let units = plan.len() * runs;
    let jobs = settings.jobs.clamp(1, units.max(1));
    on_event(&Event::RunStarted {
        test_count: units + skipped.len(),
        jobs,
        started_at,
        host: host.clone(),
    });
    let mut finished = report_skipped(skipped, started_at, on_event);

    // Unit u is run u % runs of test u / runs; runs go round by round.
    let order: Vec<usize> = (0..runs)
        .flat_map(|run| settings.start_order.iter().map(move |&i| i * runs + run))
        .collect();
    let demands = (0..units).map(|u| settings.demands[u / runs]).collect();
    let output_limit = match settings.output {
        OutputMode::Capture { limit_per_stream } => limit_per_stream,
        OutputMode::Inherit => OUTPUT_LIMIT,
    };
    let admission = Admission::new(order, demands, jobs, settings.memory_budget);
    let mut results: Vec<Option<TestResult>> = vec![None; units];
    // `scope = "run"` services outlive the jobs: their threads live in an
    // outer scope, and they stop once every job is done.
    let (interrupted_by, host_broken, run_services) = std::thread::scope(|service_scope| {
        let run_scoped = SharedServices::new(service_scope, sandbox, settings.roots, output_limit);
        let shared = Jobs::new(&plan, runs, admission, settings, sandbox, &run_scoped);
        let interrupted_by = std::thread::scope(|scope| {
            let (sender, receiver) = mpsc::channel::<Message>();
            for slot in 0..jobs {
                let sender = sender.clone();
                let shared = &shared;
                scope.spawn(move || shared.work(slot, &sender));
            }
            drop(sender);
            relay(&receiver, &shared.stop, &mut results, on_event)
        });
        let host_broken = shared.host_broken.load(Ordering::SeqCst);
        (interrupted_by, host_broken, run_scoped.stop_all())
    });

    let reason = not_run_reason(host_broken, interrupted_by.is_some(), settings.max_fail);
    finished.extend(results.into_iter().enumerate().map(|(unit, result)| {
        result.unwrap_or_else(|| {
            let case = plan[unit / runs].case.clone();
            let mut result = not_run(case, started_at, Status::NotRun, reason.clone());
            result.scheduled.iteration = (runs > 1).then_some((unit % runs) as u32 + 1);
            result
        })
    }));
    let summary = RunSummary {
        started_at,
        duration: clock.elapsed(),
        results: finished,
        host,
        interrupted_by,
        services: run_services,
    };
    // Emitted, then taken back: a summary holds every test's output.
    let event = Event::RunFinished(summary);
    on_event(&event);
    let Event::RunFinished(summary) = event else {
        unreachable!("built as RunFinished above")
    };
    summary
}

/// The ignored tests, reported SKIPPED with their reason.
fn report_skipped(
    skipped: Vec<PlannedTest>,
    started_at: SystemTime,
    on_event: &mut dyn FnMut(&Event),
) -> Vec<TestResult> {
    skipped
        .into_iter()
        .map(|test| {
            let reason = test
                .settings
                .ignore_reason
                .as_ref()
                .map_or("ignored".to_string(), |r| r.value.clone());
            let result = not_run(test.case, started_at, Status::Skipped, reason);
            emit_finished(on_event, Box::new(result))
        })
        .collect()
}

/// Why the tests that did not start did not run.
fn not_run_reason(host_broken: bool, interrupted: bool, max_fail: Option<usize>) -> String {
    if host_broken {
        "not run: this host cannot create containers".to_string()
    } else if interrupted {
        "not run: the run was interrupted".to_string()
    } else {
        let max = max_fail.unwrap_or(0);
        format!("not run: stopped after {max} failure(s) (--fail-fast / --max-fail)")
    }
}

impl<'a> Jobs<'a> {
    fn new(
        plan: &'a [PlannedTest],
        runs: usize,
        admission: Admission,
        settings: &RunSettings<'a>,
        sandbox: &'a Sandbox,
        shared: &'a dyn RunServices,
    ) -> Self {
        Jobs {
            plan,
            runs,
            admission,
            stop: StopRequest::new(),
            stop_starting: AtomicBool::new(false),
            host_broken: AtomicBool::new(false),
            failures: AtomicUsize::new(0),
            max_fail: settings.max_fail,
            attempt_settings: AttemptSettings {
                output: settings.output,
                flaky_is_failure: settings.flaky_is_failure,
                post_check: settings.post_check,
                roots: settings.roots,
                files: settings.files,
                artifacts: settings.artifacts,
                shared,
            },
            sandbox,
        }
    }
}

/// What the job threads share.
struct Jobs<'a> {
    plan: &'a [PlannedTest],
    /// Runs of each test (`--stress`).
    runs: usize,
    admission: Admission,
    stop: StopRequest,
    stop_starting: AtomicBool,
    host_broken: AtomicBool,
    failures: AtomicUsize,
    max_fail: Option<usize>,
    attempt_settings: AttemptSettings<'a>,
    sandbox: &'a Sandbox,
}

impl Jobs<'_> {
    /// One job thread: runs the tests admission lets it start until none
    /// is left or the run stops starting tests.
    fn work(&self, slot: usize, sender: &mpsc::Sender<Message>) {
        let stopping = || self.stop.is_requested() || self.stop_starting.load(Ordering::SeqCst);
        while let Some(admitted) = self.admission.next(&stopping) {
            let test = &self.plan[admitted.index / self.runs];
            let _ = sender.send(Message::Event(Event::TestStarted {
                name: test.case.name.clone(),
                at: Instant::now(),
            }));
            let emit = |event| {
                let _ = sender.send(Message::Event(event));
            };
            let iteration = (self.runs > 1).then_some((admitted.index % self.runs) as u32 + 1);
            let mut result = attempt::run_test(
                test,
                iteration,
                self.sandbox,
                &self.attempt_settings,
                &self.stop,
                &emit,
            );
            self.admission.finished(admitted.index);
            result.slot = Some(slot);
            result.scheduled = Scheduled {
                iteration,
                waited_for_memory: admitted.waited_for_memory,
            };
            if result
                .setup_failure
                .as_ref()
                .is_some_and(|f| f.host_unsupported)
            {
                self.host_broken.store(true, Ordering::SeqCst);
                self.stop_starting.store(true, Ordering::SeqCst);
            }
            if result.status.is_failure() {
                let failed = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
                if self.max_fail.is_some_and(|max| failed >= max) {
                    self.stop_starting.store(true, Ordering::SeqCst);
                }
            }
            let _ = sender.send(Message::Finished(admitted.index, Box::new(result)));
        }
    }
}

/// Passes the job threads' events on, on this thread, with a Tick every
/// `TICK`, and turns Ctrl-C into stop requests, until every job thread has
/// ended; returns the signal that interrupted the run, if one did.
fn relay(
    receiver: &mpsc::Receiver<Message>,
    stop: &StopRequest,
    results: &mut [Option<TestResult>],
    on_event: &mut dyn FnMut(&Event),
) -> Option<i32> {
    let mut interrupted_by = None;
    let mut interrupts_seen = 0;
    let mut next_tick = Instant::now() + TICK;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(wait) {
            Ok(Message::Event(event)) => on_event(&event),
            Ok(Message::Finished(index, result)) => {
                results[index] = Some(emit_finished(on_event, result));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return interrupted_by,
        }
        if Instant::now() >= next_tick {
            on_event(&Event::Tick {
                now: Instant::now(),
            });
            next_tick = Instant::now() + TICK;
        }
        let (count, signal) = interrupt::received();
        if count > interrupts_seen {
            interrupts_seen = count;
            interrupted_by = Some(signal);
            if count == 1 {
                stop.stop_gracefully();
            } else {
                stop.stop_now();
            }
        }
    }
}

/// Emits TestFinished and hands the result back, without copying its
/// captured output.
fn emit_finished(on_event: &mut dyn FnMut(&Event), result: Box<TestResult>) -> TestResult {
    let event = Event::TestFinished(result);
    on_event(&event);
    let Event::TestFinished(result) = event else {
        unreachable!("built as TestFinished above")
    };
    *result
}

enum Message {
    Event(Event),
    Finished(usize, Box<TestResult>),
}

/// `SIGSEGV`, or `signal 40` for signals without a name.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_signals() {
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(40), "signal 40");
    }
}
