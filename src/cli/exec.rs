//! `isotest exec -- CMD ARGS...`: one command in a test container, output
//! passed through, its exit status returned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::args::ExecArgs;
use super::{exit, fail, prepare_sandbox};
use crate::config::{flag, Settings};
use crate::discover::{Program, TestCase};
use crate::duration::format_seconds;
use crate::plan::PlannedTest;
use crate::run;
use crate::sandbox::{interrupt, Ending, OutputMode, SandboxSpec, StopRequest};

pub fn exec(args: ExecArgs) -> i32 {
    let cwd = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(e) => return fail(format!("current directory: {e}"), exit::BAD_USAGE),
    };
    let program = args.command[0].to_string_lossy().into_owned();
    let test = planned_test(&args, program.clone(), cwd);
    let roots = run::Roots::new(args.storage.cache_dir.clone());
    let root = match roots.get(test.settings.rootfs()) {
        Ok(root) => root,
        Err(error) => return fail(format!("root filesystem: {error}"), exit::EXEC_SETUP_FAILED),
    };
    let mut spec = run::spec(&test, &root);
    // Arguments need not be UTF-8.
    spec.argv = args
        .command
        .iter()
        .map(|a| a.as_encoded_bytes().to_vec())
        .collect();
    let sandbox = match prepare_sandbox(&args.cgroups, &args.storage, true) {
        Ok(sandbox) => sandbox,
        Err(code) => return code,
    };
    if let Err(errno) = interrupt::install() {
        return fail(format!("install Ctrl-C handler: {errno}"), exit::BAD_USAGE);
    }
    let stop = StopRequest::new();
    let done = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| forward_interrupts(&stop, &done));
        let outcome = sandbox.run(&spec, OutputMode::Inherit, &stop);
        done.store(true, Ordering::SeqCst);
        outcome
    });
    exit_code(outcome.ending, &program, &spec)
}

/// The test `exec` runs: the command as given, in the current directory,
/// with no timeout unless asked for (exec is for debugging and ad-hoc use).
fn planned_test(args: &ExecArgs, program: String, cwd: std::path::PathBuf) -> PlannedTest {
    let no_timeout = Settings {
        timeout: flag(None, "exec"),
        ..Settings::default()
    };
    PlannedTest {
        case: TestCase {
            name: program,
            suite: String::new(),
            program: Program::Command(
                args.command
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
            ),
            dir: cwd,
            tags: Vec::new(),
            default_dir: false,
            harness: None,
            host_dirs: Vec::new(),
        },
        settings: Settings::resolve([&no_timeout, &args.container.settings()]),
        services: Vec::new(),
    }
}

/// exec's exit status: the command's own, 128 + a signal, or one of
/// isotest's codes when the container could not run it.
fn exit_code(ending: Ending, program: &str, spec: &SandboxSpec) -> i32 {
    match ending {
        Ending::Exited(code) => code,
        Ending::Signaled(signal) => 128 + signal,
        Ending::TimedOut => fail(
            format!(
                "{program}: timed out after {}",
                spec.timeout.map(format_seconds).unwrap_or_default()
            ),
            exit::EXEC_TIMED_OUT,
        ),
        Ending::Stopped => 128 + interrupt::received().1,
        Ending::SetupFailed(failure) => {
            let code = if failure.host_unsupported {
                exit::HOST_UNSUPPORTED
            } else if failure.step.is_exec() && failure.is(nix::errno::Errno::ENOENT) {
                exit::EXEC_NOT_FOUND
            } else if failure.step.is_exec() {
                exit::EXEC_NOT_EXECUTABLE
            } else {
                exit::EXEC_SETUP_FAILED
            };
            fail(failure, code)
        }
    }
}

/// Turns Ctrl-C / SIGTERM into stop requests until `done`.
fn forward_interrupts(stop: &StopRequest, done: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        match interrupt::received().0 {
            0 => {}
            1 => stop.stop_gracefully(),
            _ => stop.stop_now(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
