//! The scheduler: runs the plan with N job slots, one container per test,
//! and emits events in the order things happen. Reporters run on the
//! calling thread; workers only run containers.

mod environment;
mod events;
mod result;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

pub use environment::{test_environment, EnvSettings, HOME};
pub use events::{Event, HostFacts, RunSummary};
pub use result::{Attempt, Status, TestResult};

use crate::discover::TestCase;
use crate::duration::format_seconds;
use crate::sandbox::{
    interrupt, CapturedOutput, Ending, Limits, Outcome, OutputMode, Sandbox, SandboxSpec,
    StopRequest,
};
use crate::size::format_size;

/// How the plan is run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub jobs: usize,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    pub env: EnvSettings,
    pub output: OutputMode,
    pub limits: Limits,
}

/// The container's hostname.
pub const HOSTNAME: &str = "isotest";

/// Runs every test of `plan` and returns the summary; `on_event` sees
/// every event (the same summary arrives last as RunFinished).
pub fn run(
    plan: Vec<TestCase>,
    settings: &RunSettings,
    sandbox: &Sandbox,
    on_event: &mut dyn FnMut(&Event),
) -> RunSummary {
    let started_at = SystemTime::now();
    let host = HostFacts {
        cgroup_layout: sandbox.cgroup_layout().to_string(),
        cgroups_in_use: sandbox.cgroups_unavailable().is_none(),
    };
    let clock = Instant::now();
    let jobs = settings.jobs.clamp(1, plan.len().max(1));
    on_event(&Event::RunStarted {
        test_count: plan.len(),
        jobs,
        started_at,
        host: host.clone(),
    });

    let stop = StopRequest::new();
    let next = AtomicUsize::new(0);
    let host_broken = AtomicBool::new(false);
    let mut results: Vec<Option<TestResult>> = vec![None; plan.len()];
    let mut interrupted_by = None;

    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<Message>();
        for _ in 0..jobs {
            let sender = sender.clone();
            let (plan, next, stop, host_broken) = (&plan, &next, &stop, &host_broken);
            scope.spawn(move || loop {
                if stop.is_requested() || host_broken.load(Ordering::SeqCst) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(test) = plan.get(index) else { return };
                let _ = sender.send(Message::Started(index));
                let result = run_test(test, settings, sandbox, stop);
                if result
                    .setup_failure
                    .as_ref()
                    .is_some_and(|f| f.host_unsupported)
                {
                    host_broken.store(true, Ordering::SeqCst);
                }
                let _ = sender.send(Message::Finished(index, Box::new(result)));
            });
        }
        drop(sender);
        let mut interrupts_seen = 0;
        loop {
            match receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(Message::Started(index)) => on_event(&Event::TestStarted {
                    name: plan[index].name.clone(),
                    at: Instant::now(),
                }),
                Ok(Message::Finished(index, result)) => {
                    on_event(&Event::TestFinished(result.clone()));
                    results[index] = Some(*result);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
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

    let host_failure = host_broken.load(Ordering::SeqCst);
    let results: Vec<TestResult> = results
        .into_iter()
        .zip(plan)
        .map(|(result, test)| {
            result.unwrap_or_else(|| {
                let reason = if host_failure {
                    "not run: this host cannot create containers"
                } else {
                    "not run: the run was interrupted"
                };
                not_run(test, started_at, reason)
            })
        })
        .collect();
    let summary = RunSummary {
        started_at,
        duration: clock.elapsed(),
        results,
        host,
        interrupted_by,
    };
    on_event(&Event::RunFinished(summary.clone()));
    summary
}

enum Message {
    Started(usize),
    Finished(usize, Box<TestResult>),
}

/// One test, one container.
fn run_test(
    test: &TestCase,
    settings: &RunSettings,
    sandbox: &Sandbox,
    stop: &StopRequest,
) -> TestResult {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let spec = SandboxSpec {
        argv: test.argv(),
        env: test_environment(&test.name, &settings.env),
        cwd: test.dir.as_os_str().as_encoded_bytes().to_vec(),
        hostname: HOSTNAME.to_string(),
        home: HOME.as_bytes().to_vec(),
        visible_host_dirs: vec![test.dir.as_os_str().as_encoded_bytes().to_vec()],
        timeout: settings.timeout,
        grace: settings.grace,
        limits: settings.limits,
    };
    let outcome = sandbox.run(&spec, settings.output, stop);
    let duration = if outcome.wall.is_zero() {
        clock.elapsed()
    } else {
        outcome.wall
    };
    // Limits are only in force where cgroups were used.
    let limits = if outcome.usage.is_some() {
        settings.limits
    } else {
        Limits::default()
    };
    result_from_outcome(
        test.clone(),
        outcome,
        started_at,
        duration,
        settings.timeout,
        limits,
    )
}

/// Classifies a container's outcome as a test status.
pub fn result_from_outcome(
    test: TestCase,
    outcome: Outcome,
    started_at: SystemTime,
    duration: Duration,
    timeout: Option<Duration>,
    limits: Limits,
) -> TestResult {
    let mut result = TestResult {
        test,
        status: Status::Pass,
        exit_code: None,
        signal: None,
        message: None,
        setup_failure: None,
        started_at,
        duration,
        leaked_processes: outcome.leaked_processes,
        rusage: outcome.rusage,
        usage: outcome.usage,
        limits,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        attempts: Vec::new(),
    };
    match outcome.ending {
        Ending::Exited(0) => result.exit_code = Some(0),
        Ending::Exited(code) => {
            result.status = Status::Fail;
            result.exit_code = Some(code);
            result.message = Some(format!("exit {code}"));
        }
        Ending::Signaled(signal) => {
            result.status = Status::Signal;
            result.signal = Some(signal);
            result.message = Some(format!("killed by {}", signal_name(signal)));
        }
        Ending::TimedOut => {
            result.status = Status::Timeout;
            let limit = timeout.map(format_seconds).unwrap_or_default();
            result.message = Some(format!("timed out after {limit}"));
        }
        Ending::Stopped => {
            result.status = Status::NotRun;
            result.message = Some("stopped: the run was interrupted".into());
        }
        Ending::SetupFailed(failure) => {
            result.status = Status::Error;
            result.message = Some(failure.to_string());
            result.setup_failure = Some(failure);
        }
    }
    classify_usage(&mut result);
    result
}

/// What cgroup accounting adds: an OOM kill makes the status OOM (unless
/// the test timed out or never started), and hitting pids.max is named in
/// the message, whatever the status: a test that passed only because its
/// forks were refused should say so.
fn classify_usage(result: &mut TestResult) {
    let Some(usage) = result.usage else { return };
    let ran = matches!(result.status, Status::Pass | Status::Fail | Status::Signal);
    if ran && usage.oom_kills.unwrap_or(0) > 0 {
        result.status = Status::Oom;
        let peak = usage.memory_peak_bytes.map(format_size);
        let limit = result.limits.memory_bytes.map(format_size);
        result.message = Some(match (peak, limit) {
            (Some(peak), Some(limit)) => format!("peak {peak} of {limit}"),
            (Some(peak), None) => format!("peak {peak}"),
            _ => "killed by the OOM killer".to_string(),
        });
    }
    let hits = usage.pids_max_hits.unwrap_or(0);
    if hits > 0 {
        let limit = result
            .limits
            .pids
            .map_or(String::new(), |max| format!(" of {max}"));
        let note = format!("hit the process limit{limit}: {hits} fork(s) refused");
        result.message = Some(match result.message.take() {
            Some(message) => format!("{message}; {note}"),
            None => note,
        });
    }
}

fn not_run(test: TestCase, started_at: SystemTime, reason: &str) -> TestResult {
    TestResult {
        test,
        status: Status::NotRun,
        exit_code: None,
        signal: None,
        message: Some(reason.to_string()),
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
    }
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
    use crate::sandbox::{Rusage, Usage};

    fn outcome(ending: Ending, usage: Option<Usage>) -> Outcome {
        Outcome {
            ending,
            wall: Duration::from_millis(10),
            leaked_processes: 0,
            rusage: Some(Rusage::default()),
            usage,
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
        }
    }

    fn classify(ending: Ending, usage: Option<Usage>, limits: Limits) -> TestResult {
        let test = TestCase {
            name: "t.sh".into(),
            suite: "s".into(),
            program: crate::discover::Program::File("/s/t.sh".into()),
            dir: "/s".into(),
            tags: Vec::new(),
        };
        let timeout = Some(Duration::from_secs(5));
        result_from_outcome(
            test,
            outcome(ending, usage),
            SystemTime::UNIX_EPOCH,
            Duration::from_millis(10),
            timeout,
            limits,
        )
    }

    #[test]
    fn endings_become_statuses() {
        let none = Limits::default();
        let pass = classify(Ending::Exited(0), None, none);
        assert_eq!(
            (pass.status, pass.exit_code, pass.message),
            (Status::Pass, Some(0), None)
        );
        let fail = classify(Ending::Exited(3), None, none);
        assert_eq!(fail.status, Status::Fail);
        assert_eq!(fail.message.as_deref(), Some("exit 3"));
        let signal = classify(Ending::Signaled(11), None, none);
        assert_eq!(signal.status, Status::Signal);
        assert_eq!(signal.message.as_deref(), Some("killed by SIGSEGV"));
        let timeout = classify(Ending::TimedOut, None, none);
        assert_eq!(timeout.status, Status::Timeout);
        assert_eq!(timeout.message.as_deref(), Some("timed out after 5.000s"));
        assert_eq!(classify(Ending::Stopped, None, none).status, Status::NotRun);
    }

    #[test]
    fn oom_kills_make_oom() {
        let limits = Limits {
            memory_bytes: Some(256 << 20),
            ..Limits::default()
        };
        let usage = Usage {
            memory_peak_bytes: Some(256 << 20),
            oom_kills: Some(1),
            ..Usage::default()
        };
        let killed = classify(Ending::Signaled(9), Some(usage), limits);
        assert_eq!(killed.status, Status::Oom);
        assert_eq!(
            killed.message.as_deref(),
            Some("peak 256.0 MiB of 256.0 MiB")
        );
        // A child was OOM-killed but the test itself exited 0: still OOM.
        assert_eq!(
            classify(Ending::Exited(0), Some(usage), limits).status,
            Status::Oom
        );
        // A timeout stays a timeout.
        assert_eq!(
            classify(Ending::TimedOut, Some(usage), limits).status,
            Status::Timeout
        );
    }

    #[test]
    fn pids_limit_hits_are_named() {
        let limits = Limits {
            pids: Some(64),
            ..Limits::default()
        };
        let usage = Usage {
            pids_max_hits: Some(12),
            ..Usage::default()
        };
        let fail = classify(Ending::Exited(1), Some(usage), limits);
        assert_eq!(
            fail.message.as_deref(),
            Some("exit 1; hit the process limit of 64: 12 fork(s) refused")
        );
        let pass = classify(Ending::Exited(0), Some(usage), limits);
        assert_eq!(pass.status, Status::Pass);
        assert!(pass.message.unwrap().contains("hit the process limit"));
    }

    #[test]
    fn names_signals() {
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(40), "signal 40");
    }
}
