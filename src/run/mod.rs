//! The scheduler: runs the plan with N job slots, one container per test,
//! and emits events in the order things happen. Reporters run on the
//! calling thread; workers only run containers.

mod attempt;
mod classify;
mod environment;
mod events;
mod result;
mod roots;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

pub use attempt::spec;
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
        rootless: sandbox.rootless(),
    };
    let jobs = settings.jobs.clamp(1, plan.len().max(1));
    on_event(&Event::RunStarted {
        test_count: plan.len() + skipped.len(),
        jobs,
        started_at,
        host: host.clone(),
    });
    let mut finished: Vec<TestResult> = skipped
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
        .collect();

    let stop = StopRequest::new();
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let stop_starting = AtomicBool::new(false);
    let host_broken = AtomicBool::new(false);
    let attempt_settings = AttemptSettings {
        output: settings.output,
        flaky_is_failure: settings.flaky_is_failure,
        post_check: settings.post_check,
        roots: settings.roots,
    };
    let mut results: Vec<Option<TestResult>> = vec![None; plan.len()];
    let mut interrupted_by = None;

    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<Message>();
        for _ in 0..jobs {
            let sender = sender.clone();
            let shared = (&plan, &next, &stop, &stop_starting, &host_broken, &failures);
            let attempt_settings = &attempt_settings;
            scope.spawn(move || {
                let (plan, next, stop, stop_starting, host_broken, failures) = shared;
                loop {
                    if stop.is_requested() || stop_starting.load(Ordering::SeqCst) {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(test) = plan.get(index) else { return };
                    let _ = sender.send(Message::Event(Event::TestStarted {
                        name: test.case.name.clone(),
                        at: Instant::now(),
                    }));
                    let emit = |event| {
                        let _ = sender.send(Message::Event(event));
                    };
                    let result = attempt::run_test(test, sandbox, attempt_settings, stop, &emit);
                    if result
                        .setup_failure
                        .as_ref()
                        .is_some_and(|f| f.host_unsupported)
                    {
                        host_broken.store(true, Ordering::SeqCst);
                        stop_starting.store(true, Ordering::SeqCst);
                    }
                    if result.status.is_failure() {
                        let failed = failures.fetch_add(1, Ordering::SeqCst) + 1;
                        if settings.max_fail.is_some_and(|max| failed >= max) {
                            stop_starting.store(true, Ordering::SeqCst);
                        }
                    }
                    let _ = sender.send(Message::Finished(index, Box::new(result)));
                }
            });
        }
        drop(sender);
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
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
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
    });

    let reason = if host_broken.load(Ordering::SeqCst) {
        "not run: this host cannot create containers".to_string()
    } else if interrupted_by.is_some() {
        "not run: the run was interrupted".to_string()
    } else {
        let max = settings.max_fail.unwrap_or(0);
        format!("not run: stopped after {max} failure(s) (--fail-fast / --max-fail)")
    };
    finished.extend(results.into_iter().zip(plan).map(|(result, test)| {
        result.unwrap_or_else(|| not_run(test.case, started_at, Status::NotRun, reason.clone()))
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
