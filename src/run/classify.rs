//! From a container's outcome to a test status: how it ended, what the
//! cgroup figures add (OOM, the process limit), whether that is what the
//! test expected (`expect*`), and whether it stayed within its `max_*`
//! bounds.

use std::time::{Duration, SystemTime};

use super::result::{Status, TestResult, Timing};
use super::services::ServiceStatus;
use super::signal_name;
use crate::config::{Expect, Settings};
use crate::discover::TestCase;
use crate::duration::format_seconds;
use crate::sandbox::{Ending, Limits, Outcome};
use crate::size::format_size;

/// Classifies one attempt.
pub fn classify(
    test: TestCase,
    outcome: Outcome,
    started_at: SystemTime,
    duration: Duration,
    settings: &Settings,
    limits: Limits,
) -> TestResult {
    let mut result = TestResult {
        duration,
        leaked_processes: outcome.leaked_processes,
        rusage: outcome.rusage,
        usage: outcome.usage,
        limits,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        timing: Timing {
            root: Duration::ZERO,
            setup: outcome.phases.setup,
            test: outcome.wall,
            teardown: outcome.phases.teardown,
            samples: outcome.samples,
        },
        ..TestResult::new(test, Status::Pass, started_at)
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
            let limit = settings.timeout().map(format_seconds).unwrap_or_default();
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
    apply_expectation(&mut result, settings.expect());
    if result.status == Status::Pass {
        check_bounds(&mut result, settings);
    }
    result
}

/// An OOM kill makes the status OOM (unless the test timed out or never
/// started); hitting pids.max is named in the message whatever the status:
/// a test that passed only because its forks were refused should say so.
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
        append(
            result,
            format!("hit the process limit{limit}: {hits} fork(s) refused"),
        );
    }
}

/// A service OOM-killed while the test ran is named in the test's message,
/// whatever its status (a test that failed because its database died
/// should say why; one that passed anyway, that it did).
pub fn note_oom_killed_services(result: &mut TestResult) {
    let notes: Vec<String> = result
        .services
        .iter()
        .filter(|s| s.status == ServiceStatus::OomKilled)
        .map(|s| {
            let how = s.message.as_deref().unwrap_or("OOM-killed");
            format!("service `{}` {how}", s.name)
        })
        .collect();
    for note in notes {
        append(result, note);
    }
}

/// A test passes when it ends the way it expects; ending another way is a
/// failure that says what was expected.
fn apply_expectation(result: &mut TestResult, expect: Expect) {
    if matches!(result.status, Status::Error | Status::NotRun) {
        return;
    }
    let (met, wanted) = match expect {
        Expect::Exit(0) => return,
        Expect::Exit(code) => (
            result.status != Status::Oom && result.exit_code == Some(code),
            format!("expected exit {code}"),
        ),
        Expect::Signal(signal) => (
            result.status == Status::Signal && result.signal == Some(signal),
            format!("expected {}", signal_name(signal)),
        ),
        Expect::Oom => (
            result.status == Status::Oom,
            "expected an OOM kill".to_string(),
        ),
        Expect::Timeout => (
            result.status == Status::Timeout,
            "expected a timeout".to_string(),
        ),
    };
    if met {
        result.status = Status::Pass;
        result.message = None;
        return;
    }
    if result.status == Status::Pass {
        result.status = Status::Fail;
        result.message = Some("exit 0".into());
    }
    append(result, wanted);
}

/// `max_memory`, `max_cpu_time`, `max_wall_time`, `max_pids`: a passing
/// test that used more is OVER-LIMIT; one whose figure this host cannot
/// measure is an ERROR, since the check would otherwise pass silently.
fn check_bounds(result: &mut TestResult, settings: &Settings) {
    let usage = result.usage.unwrap_or_default();
    let cpu = usage
        .cpu_user_usec
        .zip(usage.cpu_system_usec)
        .map(|(user, system)| Duration::from_micros(user + system));
    let mut over = Vec::new();
    let mut unmeasured = Vec::new();
    if let Some(bound) = &settings.max_memory {
        match usage.memory_peak_bytes {
            Some(peak) if peak > bound.value => over.push(format!(
                "memory peak {} > max_memory {}",
                format_size(peak),
                format_size(bound.value)
            )),
            Some(_) => {}
            None => unmeasured.push("max_memory"),
        }
    }
    if let Some(bound) = &settings.max_cpu_time {
        match cpu {
            Some(cpu) if cpu > bound.value => over.push(format!(
                "CPU time {} > max_cpu_time {}",
                format_seconds(cpu),
                format_seconds(bound.value)
            )),
            Some(_) => {}
            None => unmeasured.push("max_cpu_time"),
        }
    }
    if let Some(bound) = &settings.max_wall_time {
        if result.duration > bound.value {
            over.push(format!(
                "wall time {} > max_wall_time {}",
                format_seconds(result.duration),
                format_seconds(bound.value)
            ));
        }
    }
    if let Some(bound) = &settings.max_pids {
        match usage.pids_peak {
            Some(peak) if peak > bound.value => {
                over.push(format!("{peak} processes > max_pids {}", bound.value))
            }
            Some(_) => {}
            None => unmeasured.push("max_pids"),
        }
    }
    if !unmeasured.is_empty() {
        result.status = Status::Error;
        append(
            result,
            format!(
                "cannot check {}: this host gives no cgroup figures for it",
                unmeasured.join(", ")
            ),
        );
    } else if !over.is_empty() {
        result.status = Status::OverLimit;
        append(result, over.join("; "));
    }
}

fn append(result: &mut TestResult, note: String) {
    result.message = Some(match result.message.take() {
        Some(message) => format!("{message}; {note}"),
        None => note,
    });
}

/// A test that never ran.
pub fn not_run(
    test: TestCase,
    started_at: SystemTime,
    status: Status,
    reason: String,
) -> TestResult {
    TestResult {
        message: Some(reason),
        ..TestResult::new(test, status, started_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, Sourced};
    use crate::sandbox::{CapturedOutput, Rusage, Usage};

    fn outcome(ending: Ending, usage: Option<Usage>) -> Outcome {
        Outcome {
            ending,
            wall: Duration::from_millis(10),
            leaked_processes: 0,
            rusage: Some(Rusage::default()),
            usage,
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            phases: Default::default(),
            samples: Vec::new(),
        }
    }

    fn run(
        ending: Ending,
        usage: Option<Usage>,
        settings: &Settings,
        limits: Limits,
    ) -> TestResult {
        let test = TestCase::example();
        let settings = Settings::resolve([settings]);
        classify(
            test,
            outcome(ending, usage),
            SystemTime::UNIX_EPOCH,
            Duration::from_millis(10),
            &settings,
            limits,
        )
    }

    fn plain(ending: Ending) -> TestResult {
        run(ending, None, &Settings::default(), Limits::default())
    }

    fn expecting(expect: Expect) -> Settings {
        Settings {
            expect: Some(Sourced::new(expect, Source::Default)),
            ..Settings::default()
        }
    }

    #[test]
    fn endings_become_statuses() {
        let pass = plain(Ending::Exited(0));
        assert_eq!(
            (pass.status, pass.exit_code, pass.message),
            (Status::Pass, Some(0), None)
        );
        let fail = plain(Ending::Exited(3));
        assert_eq!(
            (fail.status, fail.message.as_deref()),
            (Status::Fail, Some("exit 3"))
        );
        let signal = plain(Ending::Signaled(11));
        assert_eq!(signal.message.as_deref(), Some("killed by SIGSEGV"));
        let timeout = plain(Ending::TimedOut);
        assert_eq!(timeout.status, Status::Timeout);
        assert_eq!(timeout.message.as_deref(), Some("timed out after 300.000s"));
        assert_eq!(plain(Ending::Stopped).status, Status::NotRun);
    }

    #[test]
    fn an_oom_killed_service_is_named_with_its_limit_in_the_test_message() {
        use crate::run::services::{Ended, ServiceResult};
        let limits = Limits {
            memory_bytes: Some(32 << 20),
            ..Limits::default()
        };
        let usage = Usage {
            memory_peak_bytes: Some(32 << 20),
            oom_kills: Some(1),
            ..Usage::default()
        };
        let killed = Ended::of(&outcome(Ending::Signaled(9), Some(usage)), &limits);
        assert!(killed.oom_killed);
        assert_eq!(
            killed.how,
            "OOM-killed (memory limit 32.0 MiB, peak 32.0 MiB)"
        );
        let crashed = Ended::of(&outcome(Ending::Signaled(9), None), &limits);
        assert!(!crashed.oom_killed);
        assert_eq!(crashed.how, "killed by SIGKILL");

        let mut result = plain(Ending::Exited(1));
        result.services = vec![
            ServiceResult {
                message: Some(format!("{} during the test", killed.how)),
                ..ServiceResult::without_run("db", ServiceStatus::OomKilled)
            },
            ServiceResult::without_run("cache", ServiceStatus::Stopped),
        ];
        note_oom_killed_services(&mut result);
        assert_eq!(
            result.message.as_deref(),
            Some(
                "exit 1; service `db` OOM-killed (memory limit 32.0 MiB, peak 32.0 MiB) \
                 during the test"
            )
        );
    }

    #[test]
    fn oom_kills_make_oom_and_pid_limit_hits_are_named() {
        let limits = Limits {
            memory_bytes: Some(256 << 20),
            pids: Some(64),
            ..Limits::default()
        };
        let usage = Usage {
            memory_peak_bytes: Some(256 << 20),
            oom_kills: Some(1),
            ..Usage::default()
        };
        let killed = run(
            Ending::Signaled(9),
            Some(usage),
            &Settings::default(),
            limits,
        );
        assert_eq!(killed.status, Status::Oom);
        assert_eq!(
            killed.message.as_deref(),
            Some("peak 256.0 MiB of 256.0 MiB")
        );
        let child_killed = run(Ending::Exited(0), Some(usage), &Settings::default(), limits);
        assert_eq!(child_killed.status, Status::Oom);
        let timed_out = run(Ending::TimedOut, Some(usage), &Settings::default(), limits);
        assert_eq!(timed_out.status, Status::Timeout);

        let forks = Usage {
            pids_max_hits: Some(12),
            ..Usage::default()
        };
        let fail = run(Ending::Exited(1), Some(forks), &Settings::default(), limits);
        assert_eq!(
            fail.message.as_deref(),
            Some("exit 1; hit the process limit of 64: 12 fork(s) refused")
        );
        let pass = run(Ending::Exited(0), Some(forks), &Settings::default(), limits);
        assert_eq!(pass.status, Status::Pass);
        assert!(pass.message.unwrap().contains("hit the process limit"));
    }

    #[test]
    fn expectations_decide_what_passes() {
        let oom = Usage {
            oom_kills: Some(1),
            ..Usage::default()
        };
        let limits = Limits::default();
        let check = |ending: Ending, usage, expect| run(ending, usage, &expecting(expect), limits);

        assert_eq!(
            check(Ending::Exited(3), None, Expect::Exit(3)).status,
            Status::Pass
        );
        let wrong = check(Ending::Exited(0), None, Expect::Exit(3));
        assert_eq!(
            (wrong.status, wrong.message.as_deref()),
            (Status::Fail, Some("exit 0; expected exit 3"))
        );
        assert_eq!(
            check(Ending::Signaled(9), None, Expect::Signal(9)).status,
            Status::Pass
        );
        let other = check(Ending::Signaled(15), None, Expect::Signal(9));
        assert_eq!(other.status, Status::Signal);
        assert_eq!(
            other.message.as_deref(),
            Some("killed by SIGTERM; expected SIGKILL")
        );
        assert_eq!(
            check(Ending::Signaled(9), Some(oom), Expect::Oom).status,
            Status::Pass
        );
        let survived = check(Ending::Exited(0), None, Expect::Oom);
        assert_eq!(
            survived.message.as_deref(),
            Some("exit 0; expected an OOM kill")
        );
        assert_eq!(
            check(Ending::TimedOut, None, Expect::Timeout).status,
            Status::Pass
        );
        assert_eq!(
            check(Ending::Exited(1), None, Expect::Timeout).status,
            Status::Fail
        );
        let setup = check(
            Ending::SetupFailed(crate::sandbox::SetupFailure {
                step: "mount".into(),
                cause: "EPERM".into(),
                hint: None,
                host_unsupported: false,
                errno: None,
            }),
            None,
            Expect::Oom,
        );
        assert_eq!(
            setup.status,
            Status::Error,
            "an ERROR is never what a test expects"
        );
    }

    #[test]
    fn resource_bounds_make_over_limit() {
        let usage = Usage {
            memory_peak_bytes: Some(80 << 20),
            cpu_user_usec: Some(1_500_000),
            cpu_system_usec: Some(600_000),
            pids_peak: Some(3),
            ..Usage::default()
        };
        let bounds = Settings {
            max_memory: Some(Sourced::new(64 << 20, Source::Default)),
            max_cpu_time: Some(Sourced::new(Duration::from_secs(2), Source::Default)),
            max_pids: Some(Sourced::new(5, Source::Default)),
            ..Settings::default()
        };
        let over = run(Ending::Exited(0), Some(usage), &bounds, Limits::default());
        assert_eq!(over.status, Status::OverLimit);
        assert_eq!(
            over.message.as_deref(),
            Some(
                "memory peak 80.0 MiB > max_memory 64.0 MiB; CPU time 2.100s > max_cpu_time 2.000s"
            )
        );
        let wall = Settings {
            max_wall_time: Some(Sourced::new(Duration::from_millis(5), Source::Default)),
            ..Settings::default()
        };
        let slow = run(Ending::Exited(0), None, &wall, Limits::default());
        assert_eq!(
            slow.message.as_deref(),
            Some("wall time 0.010s > max_wall_time 0.005s")
        );
        let unmeasured = run(Ending::Exited(0), None, &bounds, Limits::default());
        assert_eq!(unmeasured.status, Status::Error);
        assert!(unmeasured
            .message
            .unwrap()
            .contains("cannot check max_memory, max_cpu_time, max_pids"));
        let failing = run(Ending::Exited(1), Some(usage), &bounds, Limits::default());
        assert_eq!(
            failing.status,
            Status::Fail,
            "bounds are checked only for passing tests"
        );
    }
}
