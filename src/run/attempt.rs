//! One planned test: the container it runs in, built from its settings,
//! and its attempts: a test that does not pass is run again up to
//! `retries` times, and one that passes after failing is FLAKY.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::classify::classify;
use super::environment::{test_environment, HOME};
use super::events::Event;
use super::result::{Attempt, Status, TestResult};
use super::roots::{Root, Roots};
use crate::config::Network;
use crate::plan::PlannedTest;
use crate::sandbox::{
    ExtraMount, Limits, Outcome, OutputMode, RootMode, RootSpec, Sandbox, SandboxSpec,
    SetupFailure, StopRequest,
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

/// The container for one attempt of `test`, in `root`.
pub fn spec(test: &PlannedTest, root: &Root) -> SandboxSpec {
    let settings = &test.settings;
    let bytes = |path: &Path| path.as_os_str().as_encoded_bytes().to_vec();
    let dir = bytes(&test.case.dir);
    let on_host = root.layers.is_empty();
    let mode = settings.rootfs_mode();
    let mut mounts = Vec::new();
    let starts_in_image_workdir = test.case.default_dir && root.working_dir.is_some();
    if !on_host && !starts_in_image_workdir {
        // The test's own directory, at the same path: a test file runs as
        // it does on the host root.
        mounts.push(ExtraMount::Bind {
            source: dir.clone(),
            target: dir.clone(),
            readonly: true,
        });
    }
    for bind in &settings.binds {
        mounts.push(ExtraMount::Bind {
            source: bytes(&bind.value.source),
            target: bind.value.target.as_bytes().to_vec(),
            readonly: bind.value.readonly,
        });
    }
    let writable = settings.writable.iter().filter(|_| mode == RootMode::Bind);
    for path in settings.tmpfs.iter().chain(writable) {
        mounts.push(ExtraMount::Fresh {
            target: path.value.as_bytes().to_vec(),
        });
    }
    // An image's `User` may be `user:group`; the test's own settings win.
    let (image_user, image_group) = match root.user.as_deref().map(|u| u.split_once(':')) {
        Some(Some((user, group))) => (Some(user), Some(group)),
        Some(None) => (root.user.as_deref(), None),
        None => (None, None),
    };
    let (user, group) = match settings.user() {
        Some(user) => (Some(user), settings.group()),
        None => (image_user, settings.group().or(image_group)),
    };
    // A `[[test]]` without `cwd` starts in the image's WorkingDir.
    let cwd = match &root.working_dir {
        Some(workdir) if test.case.default_dir => workdir.as_bytes().to_vec(),
        _ => dir.clone(),
    };
    SandboxSpec {
        argv: test.case.argv(),
        env: test_environment(&test.case.name, settings, &root.env),
        cwd,
        hostname: settings.hostname().to_string(),
        host_network: settings.network() == Network::Host,
        user: user.filter(|u| !u.is_empty()).map(str::to_string),
        group: group.filter(|g| !g.is_empty()).map(str::to_string),
        home: HOME.as_bytes().to_vec(),
        visible_host_dirs: if on_host { vec![dir] } else { Vec::new() },
        timeout: settings.timeout(),
        grace: settings.grace(),
        limits: limits(test),
        security: settings.security(),
        root: RootSpec {
            layers: root.layers.iter().map(|l| bytes(l)).collect(),
            mode,
        },
        mounts,
        disk_bytes: settings.disk(),
        scratch_dir: None,
        user_namespace: None,
    }
}

fn limits(test: &PlannedTest) -> Limits {
    Limits {
        memory_bytes: test.settings.memory(),
        cpus: test.settings.cpus(),
        cpu_weight: test.settings.cpu_weight(),
        pids: test.settings.pids(),
    }
}

/// Runs `test` until it passes or its retries are used up.
pub fn run_test(
    test: &PlannedTest,
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

/// The result of a test whose root filesystem could not be prepared.
fn root_failed(test: &PlannedTest, cause: String) -> TestResult {
    let failure = SetupFailure {
        step: "prepare the root filesystem".into(),
        cause,
        hint: None,
        host_unsupported: false,
        errno: None,
    };
    let outcome = Outcome::setup_failed(failure);
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
