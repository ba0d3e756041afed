//! One planned test: the container it runs in, built from its settings,
//! and its attempts: a test that does not pass is run again up to
//! `retries` times, and one that passes after failing is FLAKY.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::classify::{classify, note_oom_killed_services};
use super::container::{limits, spec};
use super::environment::set_variable;
use super::events::Event;
use super::result::{Attempt, Status, TestResult};
use super::roots::Roots;
use super::services::{run_with_services, ServiceContext};
use super::shared::RunServices;
use super::test_files::{self, AttemptFiles, TestFiles};
use crate::plan::PlannedTest;
use crate::protocol::{self, Reading};
use crate::sandbox::{
    Limits, Outcome, OutputMode, Sandbox, SandboxSpec, SetupFailure, StopRequest,
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
    /// The run's `scope = "run"` services.
    pub shared: &'a dyn RunServices,
    /// Where attempts' XML_OUTPUT_FILE and outputs directories are made.
    pub files: &'a TestFiles,
    /// `--artifacts DIR`.
    pub artifacts: Option<&'a Path>,
}

/// Runs `test` until it passes or its retries are used up; `iteration`
/// is its run under `--stress N`.
pub fn run_test(
    test: &PlannedTest,
    iteration: Option<u32>,
    sandbox: &Sandbox,
    settings: &AttemptSettings,
    stop: &StopRequest,
    emit: &dyn Fn(Event),
) -> TestResult {
    let preparing = Instant::now();
    let root = match settings.roots.get(test.settings.rootfs()) {
        Ok(root) => root,
        Err(cause) => {
            let mut result = root_failed(test, cause);
            result.timing.root = preparing.elapsed();
            return result;
        }
    };
    let root_time = preparing.elapsed();
    let mut spec = spec(test, &root);
    for (key, value) in test_files::environment(&test.case.name) {
        set_variable(&mut spec.env, key.as_bytes(), value.as_bytes());
    }
    let own_mounts = spec.mounts.len();
    let retries = test.settings.retries();
    let mut earlier: Vec<Attempt> = Vec::new();
    loop {
        let files = match prepare_attempt(&mut spec, own_mounts, earlier.len() + 1, settings) {
            Ok(files) => files,
            Err(error) => {
                let step = "create the test's XML_OUTPUT_FILE and outputs directory";
                return setup_failed(test, step, error.to_string());
            }
        };
        let mut result = run_attempt(test, &spec, &files, sandbox, settings, stop);
        if earlier.is_empty() {
            result.timing.root = root_time;
        }
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
            if let Some(artifacts) = settings.artifacts {
                let mut dir = artifacts.join(&result.test.name);
                if let Some(run) = iteration {
                    dir.push(format!("run-{run}"));
                }
                keep_outputs(&mut result, &files, &dir);
            }
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
            timing: result.timing,
        });
    }
}

/// Makes `spec` the container of attempt `number`: its number in the
/// environment, its own directory of test files bound in (replacing the
/// last attempt's, after the test's `own_mounts`).
fn prepare_attempt(
    spec: &mut SandboxSpec,
    own_mounts: usize,
    number: usize,
    settings: &AttemptSettings,
) -> std::io::Result<AttemptFiles> {
    // Tests can tell attempts apart (and log which one failed).
    let number = number.to_string();
    set_variable(
        &mut spec.env,
        ATTEMPT_VARIABLE.as_bytes(),
        number.as_bytes(),
    );
    let files = settings.files.attempt()?;
    spec.mounts.truncate(own_mounts);
    spec.mounts.push(files.mount());
    Ok(files)
}

/// The result of a test whose root filesystem could not be prepared.
fn root_failed(test: &PlannedTest, cause: String) -> TestResult {
    setup_failed(test, "prepare the root filesystem", cause)
}

/// The result of a test whose container could not be prepared at `step`.
fn setup_failed(test: &PlannedTest, step: &str, cause: String) -> TestResult {
    let failure = SetupFailure {
        step: step.into(),
        cause,
        hint: None,
        host_unsupported: false,
        errno: None,
    };
    classify(
        test.case.clone(),
        Outcome::setup_failed(failure),
        SystemTime::now(),
        Duration::ZERO,
        &test.settings,
        Limits::default(),
    )
}

/// One attempt: the container, then what its protocol and the files it
/// wrote say.
fn run_attempt(
    test: &PlannedTest,
    spec: &SandboxSpec,
    files: &AttemptFiles,
    sandbox: &Sandbox,
    settings: &AttemptSettings,
    stop: &StopRequest,
) -> TestResult {
    let output = settings.output;
    let context = ServiceContext {
        sandbox,
        roots: settings.roots,
        stop,
        output_limit: match output {
            OutputMode::Capture { limit_per_stream } => limit_per_stream,
            OutputMode::Inherit => super::OUTPUT_LIMIT,
        },
        shared: settings.shared,
    };
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let (outcome, services) = run_with_services(test, spec, &context, &|spec| {
        sandbox.run(spec, settings.output, stop)
    });
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
    let mut result = classify(
        test.case.clone(),
        outcome,
        started_at,
        duration,
        &test.settings,
        limits,
    );
    result.services = services;
    let xml_file = files.xml_file();
    let reading = Reading {
        protocol: test.settings.protocol(),
        harness: test.case.harness.as_ref(),
        skip_exit: test.settings.skip_exit(),
        stdout_captured: matches!(settings.output, OutputMode::Capture { .. }),
        xml_file: Some(&xml_file),
    };
    protocol::interpret(&mut result, &reading);
    note_oom_killed_services(&mut result);
    result
}

/// Keeps what the final attempt left in TEST_UNDECLARED_OUTPUTS_DIR in
/// `dir` (`--artifacts DIR/<test name>`, `/run-K` for the K-th run under
/// `--stress`); a failure to keep it is an ERROR of a test that otherwise
/// passed.
fn keep_outputs(result: &mut TestResult, files: &AttemptFiles, dir: &Path) {
    match files.keep_outputs(dir) {
        Ok(kept) => result.artifacts = kept,
        Err(error) => {
            let note = format!("keep TEST_UNDECLARED_OUTPUTS_DIR: {error}");
            if result.status.is_success() {
                result.status = Status::Error;
            }
            result.message = Some(match result.message.take() {
                Some(message) => format!("{message}; {note}"),
                None => note,
            });
        }
    }
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
