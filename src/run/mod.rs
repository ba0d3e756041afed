//! The scheduler: runs the plan with N job slots, one container per test,
//! and emits events in the order things happen. Reporters run on the
//! calling thread; workers only run containers.

mod attempt;
mod classify;
mod container;
mod environment;
mod events;
mod result;
mod roots;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

pub use container::spec;
pub use environment::{test_environment, HOME};
pub use events::{Event, HostFacts, RunSummary};
pub use result::{Attempt, Status, TestResult};
pub use roots::{Root, Roots};

use crate::plan::PlannedTest;
use crate::sandbox::{interrupt, OutputMode, Sandbox, StopRequest};
use attempt::AttemptSettings;
use classify::not_run;

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
    };
    let jobs = settings.jobs.clamp(1, plan.len().max(1));
    on_event(&Event::RunStarted {
        test_count: plan.len() + skipped.len(),
        jobs,
        started_at,
        host: host.clone(),
    });
    let mut finished = report_skipped(skipped, started_at, on_event);
    let workers = Workers {
        plan: &plan,
        settings,
        attempt_settings: AttemptSettings {
            output: settings.output,
            flaky_is_failure: settings.flaky_is_failure,
            post_check: settings.post_check,
            roots: settings.roots,
        },
        sandbox,
        stop: StopRequest::new(),
        next: AtomicUsize::new(0),
        failures: AtomicUsize::new(0),
        stop_starting: AtomicBool::new(false),
        host_broken: AtomicBool::new(false),
    };
    let mut results: Vec<Option<TestResult>> = vec![None; plan.len()];
    let interrupted_by = std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<Message>();
        for _ in 0..jobs {
            let sender = sender.clone();
            let workers = &workers;
            scope.spawn(move || workers.work(&sender));
        }
        drop(sender);
        dispatch(&receiver, &mut results, &workers.stop, on_event)
    });
    let reason = not_run_reason(
        workers.host_broken.load(Ordering::SeqCst),
        interrupted_by.is_some(),
        settings.max_fail,
    );
    finished.extend(results.into_iter().zip(&plan).map(|(result, test)| {
        result.unwrap_or_else(|| {
            not_run(
                test.case.clone(),
                started_at,
                Status::NotRun,
                reason.clone(),
            )
        })
    }));
    let summary = RunSummary {
        started_at,
        duration: clock.elapsed(),
        results: finished,
        host,
        interrupted_by,
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

/// What the job slots share: the plan, the next test to take, and when to
/// stop taking more.
struct Workers<'a> {
    plan: &'a [PlannedTest],
    settings: &'a RunSettings<'a>,
    attempt_settings: AttemptSettings<'a>,
    sandbox: &'a Sandbox,
    stop: StopRequest,
    next: AtomicUsize,
    failures: AtomicUsize,
    stop_starting: AtomicBool,
    /// A test found that this host cannot create containers.
    host_broken: AtomicBool,
}

impl Workers<'_> {
    /// One job slot: takes the next test until none is left or the run
    /// stops, and sends its events and result to the dispatching thread.
    fn work(&self, sender: &mpsc::Sender<Message>) {
        loop {
            if self.stop.is_requested() || self.stop_starting.load(Ordering::SeqCst) {
                return;
            }
            let index = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(test) = self.plan.get(index) else {
                return;
            };
            let _ = sender.send(Message::Event(Event::TestStarted {
                name: test.case.name.clone(),
                at: Instant::now(),
            }));
            let emit = |event| {
                let _ = sender.send(Message::Event(event));
            };
            let result = attempt::run_test(
                test,
                self.sandbox,
                &self.attempt_settings,
                &self.stop,
                &emit,
            );
            self.note(&result);
            let _ = sender.send(Message::Finished(index, Box::new(result)));
        }
    }

    /// Stops starting tests when the host cannot run them or after
    /// `max_fail` failures.
    fn note(&self, result: &TestResult) {
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
            if self.settings.max_fail.is_some_and(|max| failed >= max) {
                self.stop_starting.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Passes the workers' events on, in order, with a Tick every TICK, until
/// every worker is done; Ctrl-C (once: gracefully, twice: at once) stops
/// the run. Returns the signal that interrupted it.
fn dispatch(
    receiver: &mpsc::Receiver<Message>,
    results: &mut [Option<TestResult>],
    stop: &StopRequest,
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
