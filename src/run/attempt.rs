//! One planned test: the container it runs in, built from its settings,
//! and its attempts: a test that does not pass is run again up to
//! `retries` times, and one that passes after failing is FLAKY.

use std::time::{Duration, Instant, SystemTime};

use super::classify::classify;
use super::container::{limits, spec};
use super::events::Event;
use super::result::{Attempt, Status, TestResult};
use super::roots::Roots;
use crate::plan::PlannedTest;
use crate::sandbox::{
    Ending, Limits, Outcome, OutputMode, Sandbox, SandboxSpec, SetupFailure, StopRequest,
};

/// The 1-based attempt number, in every test's environment.
const ATTEMPT_VARIABLE: &str = "ISOTEST_ATTEMPT";

/// How attempts run and end.
pub struct AttemptSettings<'a> {
    pub output: OutputMode,
    /// `--flaky-result fail`: a test that needed a retry fails the run.
    pub flaky_is_failure: bool,
    /// A last check of each final result (the baseline comparison).
    pub post_check: Option<&'a (dyn Fn(&mut TestResult) + Sync)>,
    /// The run's root filesystems.
    pub roots: &'a Roots,
}

/// Runs `test` until it passes or its retries are used up.
pub fn run_test(
    test: &PlannedTest,
    sandbox: &Sandbox,
    settings: &AttemptSettings,
    stop: &StopRequest,
    emit: &dyn Fn(Event),
) -> TestResult {
    let root = match settings.roots.get(test.settings.rootfs()) {
        Ok(root) => root,
        Err(cause) => return root_failed(test, cause),
    };
    let mut spec = spec(test, &root);
    let retries = test.settings.retries();
    let mut earlier: Vec<Attempt> = Vec::new();
    loop {
        // Tests can tell attempts apart (and log which one failed).
        let attempt = (earlier.len() + 1).to_string();
        spec.env
            .retain(|(key, _)| key != ATTEMPT_VARIABLE.as_bytes());
        spec.env
            .push((ATTEMPT_VARIABLE.as_bytes().to_vec(), attempt.into_bytes()));
        let mut result = run_attempt(test, &spec, sandbox, settings.output, stop);
        let last_try = earlier.len() as u32 >= retries;
        let host_broken = result
            .setup_failure
            .as_ref()
            .is_some_and(|f| f.host_unsupported);
        let final_result = result.status.is_success()
            || result.status == Status::NotRun
            || last_try
            || host_broken
            || stop.is_requested();
        if final_result {
            finish(&mut result, earlier, settings);
            return result;
        }
        emit(Event::TestRetrying {
            name: test.case.name.clone(),
            attempt: earlier.len() as u32 + 1,
            duration: result.duration,
            status: result.status,
            message: result.message.clone(),
        });
        earlier.push(Attempt {
            status: result.status,
            message: result.message,
            started_at: result.started_at,
            duration: result.duration,
            stdout: result.stdout,
            stderr: result.stderr,
        });
    }
}

/// The result of a test whose root filesystem could not be prepared.
fn root_failed(test: &PlannedTest, cause: String) -> TestResult {
    let failure = SetupFailure {
        step: "prepare the root filesystem".into(),
        cause,
        hint: None,
        host_unsupported: false,
    };
    let outcome = Outcome {
        ending: Ending::SetupFailed(failure),
        wall: Duration::ZERO,
        leaked_processes: 0,
        rusage: None,
        usage: None,
        stdout: Default::default(),
        stderr: Default::default(),
    };
    classify(
        test.case.clone(),
        outcome,
        SystemTime::now(),
        Duration::ZERO,
        &test.settings,
        Limits::default(),
    )
}

fn run_attempt(
    test: &PlannedTest,
    spec: &SandboxSpec,
    sandbox: &Sandbox,
    output: OutputMode,
    stop: &StopRequest,
) -> TestResult {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let outcome = sandbox.run(spec, output, stop);
    let duration = if outcome.wall.is_zero() {
        clock.elapsed()
    } else {
        outcome.wall
    };
    // Limits are only in force where cgroups were used.
    let limits = if outcome.usage.is_some() {
        limits(test)
    } else {
        Limits::default()
    };
    classify(
        test.case.clone(),
        outcome,
        started_at,
        duration,
        &test.settings,
        limits,
    )
}

/// The final result: FLAKY when it passed after failing, the earlier
/// attempts attached, then the post-check.
fn finish(result: &mut TestResult, earlier: Vec<Attempt>, settings: &AttemptSettings) {
    if result.status == Status::Pass && !earlier.is_empty() {
        let tries = earlier.len() + 1;
        if settings.flaky_is_failure {
            result.status = Status::Fail;
            result.message = Some(format!(
                "flaky: passed only on attempt {tries} (--flaky-result fail)"
            ));
        } else {
            result.status = Status::Flaky;
            result.message = Some(format!("passed on attempt {tries}"));
        }
    }
    result.attempts = earlier;
    if let Some(check) = settings.post_check {
        check(result);
    }
}
