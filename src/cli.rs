//! Command-line definitions and dispatch: parse, call the library, map what
//! happened to an exit code.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::discover::{discover, TestCase};
use crate::duration::{format_seconds, parse_duration};
use crate::report::{terminal::color_wanted, JunitReporter, Reporter, TerminalReporter};
use crate::run::{self, EnvSettings, RunSettings, RunSummary};
use crate::sandbox::{
    self, interrupt, Ending, Limits, OutputMode, Sandbox, SandboxSpec, StopRequest,
};
use crate::select::Filter;
use crate::size::parse_size;

/// Exit codes (README "Exit codes").
pub mod exit {
    pub const ALL_PASSED: i32 = 0;
    pub const BAD_USAGE: i32 = 2;
    pub const NO_TESTS: i32 = 4;
    pub const HOST_UNSUPPORTED: i32 = 96;
    pub const TESTS_FAILED: i32 = 100;
    /// `isotest exec`: the command ran past its timeout (as timeout(1)).
    pub const EXEC_TIMED_OUT: i32 = 124;
    /// `isotest exec`: the container could not be set up.
    pub const EXEC_SETUP_FAILED: i32 = 125;
    pub const EXEC_NOT_EXECUTABLE: i32 = 126;
    pub const EXEC_NOT_FOUND: i32 = 127;
}

/// Output kept per stream and test; the middle of longer output is dropped.
const OUTPUT_LIMIT: usize = 4 << 20;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Parser, Debug)]
#[command(
    name = "isotest",
    version,
    about = "Run every integration test in its own Linux container",
    long_about = "Run every integration test in its own Linux container: its own PID, \
                  mount, network, UTS and IPC namespaces on a throwaway overlay of the \
                  host's root filesystem."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Discover tests and run each in its own container.
    Run(RunArgs),
    /// Print the tests that `run` would run, one a line.
    List(SelectArgs),
    /// Run one command in a test container, output passed through.
    Exec(ExecArgs),
}

#[derive(Args, Debug)]
struct SelectArgs {
    /// Test directories (searched recursively) or single test files.
    #[arg(default_value = "tests")]
    paths: Vec<PathBuf>,
    /// Run only tests whose name matches GLOB (repeatable; `*` stays within
    /// a directory, `**` crosses them).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Skip tests whose name matches GLOB (repeatable; wins over --include).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
}

#[derive(Args, Debug)]
struct ContainerArgs {
    /// Stop the command after DURATION (e.g. 500ms, 30s, 5m; 0 = never):
    /// SIGTERM, then SIGKILL after the grace period [default: 5m for run,
    /// none for exec].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when stopping a command.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    grace: Duration,
    /// Set KEY=VALUE in the container's environment (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    env: Vec<(String, String)>,
    /// Copy NAME from isotest's own environment, if set (repeatable).
    #[arg(long, value_name = "NAME")]
    pass_env: Vec<String>,
}

#[derive(Args, Debug)]
struct LimitArgs {
    /// Hard memory limit per test (e.g. 256M, 1G); swap is not used.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// CPU bandwidth per test, in CPUs (e.g. 0.5, 2).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    cpus: Option<f64>,
    /// Most processes a test may have at once (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pids: u64,
    /// Create test cgroups under this cgroup path (e.g. /isotest.slice)
    /// instead of isotest's own cgroup.
    #[arg(long, value_name = "PATH")]
    cgroup_parent: Option<PathBuf>,
    /// Exit with 96 instead of running tests without limits when this host's
    /// cgroups cannot be used.
    #[arg(long)]
    require_limits: bool,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.memory,
            cpus: self.cpus,
            pids: (self.pids > 0).then_some(self.pids),
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    container: ContainerArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Print a table of every test's resource usage at the end.
    #[arg(long)]
    show_usage: bool,
    /// Tests to run at once [default: number of CPUs].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// Stream each test's output live instead of capturing it (runs one
    /// test at a time).
    #[arg(long)]
    no_capture: bool,
    /// Write a JUnit XML report to PATH.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ExecArgs {
    #[command(flatten)]
    container: ContainerArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// The whole program; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == sandbox::HELPER_SUBCOMMAND) {
        let runner = args
            .get(2)
            .and_then(|pid| pid.to_str()?.parse().ok())
            .unwrap_or(0);
        return sandbox::helper_main(runner);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                exit::BAD_USAGE
            } else {
                exit::ALL_PASSED
            };
        }
    };
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::List(args) => list_command(args),
        Command::Exec(args) => exec_command(args),
    }
}

fn fail(message: impl std::fmt::Display, code: i32) -> i32 {
    eprintln!("isotest: {message}");
    code
}

/// Discovery and selection: the plan, or the exit code to stop with.
fn plan(select: &SelectArgs) -> Result<Vec<TestCase>, i32> {
    let filter =
        Filter::new(&select.include, &select.exclude).map_err(|e| fail(e, exit::BAD_USAGE))?;
    let tests = discover(&select.paths).map_err(|e| fail(e, exit::BAD_USAGE))?;
    let plan = filter.apply(tests);
    if plan.is_empty() {
        let roots: Vec<String> = select
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let filtered = if select.include.is_empty() && select.exclude.is_empty() {
            ""
        } else {
            " (after --include/--exclude)"
        };
        return Err(fail(
            format!("no tests found in {}{filtered}", roots.join(", ")),
            exit::NO_TESTS,
        ));
    }
    Ok(plan)
}

fn list_command(select: SelectArgs) -> i32 {
    match plan(&select) {
        Ok(plan) => {
            for test in plan {
                println!("{}", test.name);
            }
            exit::ALL_PASSED
        }
        Err(code) => code,
    }
}

fn run_command(args: RunArgs) -> i32 {
    let plan = match plan(&args.select) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let jobs = if args.no_capture {
        1
    } else {
        args.jobs
            .map(|j| j as usize)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    };
    let settings = RunSettings {
        jobs,
        timeout: effective_timeout(args.container.timeout, Some(DEFAULT_TIMEOUT)),
        grace: args.container.grace,
        env: EnvSettings::new(&args.container.pass_env, args.container.env),
        limits: args.limits.limits(),
        output: if args.no_capture {
            OutputMode::Inherit
        } else {
            OutputMode::Capture {
                limit_per_stream: OUTPUT_LIMIT,
            }
        },
    };
    let sandbox = match prepare_sandbox(&args.limits) {
        Ok(sandbox) => sandbox,
        Err(code) => return code,
    };
    if let Err(errno) = interrupt::install() {
        return fail(format!("install Ctrl-C handler: {errno}"), exit::BAD_USAGE);
    }

    let stdout = std::io::stdout();
    let color = color_wanted(stdout.is_terminal());
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(
        TerminalReporter::new(Box::new(stdout), color).with_usage_table(args.show_usage),
    )];
    if let Some(path) = args.junit {
        reporters.push(Box::new(JunitReporter::new(path)));
    }
    let mut report_failed = false;
    let summary = run::run(plan, &settings, &sandbox, &mut |event| {
        for reporter in reporters.iter_mut() {
            if let Err(error) = reporter.handle(event) {
                report_failed = true;
                eprintln!("isotest: {error}");
            }
        }
    });
    run_exit_code(&summary, report_failed)
}

/// Sets up the sandbox, telling the user once what the host's cgroups
/// allow; with --require-limits, no cgroups is the exit code 96.
fn prepare_sandbox(args: &LimitArgs) -> Result<Sandbox, i32> {
    let (sandbox, notes) = Sandbox::new(args.cgroup_parent.as_deref());
    for notice in notes.notices {
        eprintln!("isotest: note: {notice}");
    }
    if let Some(unavailable) = sandbox.cgroups_unavailable() {
        if args.require_limits {
            return Err(fail(
                format!(
                    "--require-limits: cgroups cannot be used here ({} layout): {}",
                    unavailable.layout, unavailable.reason
                ),
                exit::HOST_UNSUPPORTED,
            ));
        }
        eprintln!(
            "isotest: warning: tests run without cgroup limits or usage figures: {}",
            unavailable.reason
        );
    }
    Ok(sandbox)
}

/// A timeout of 0 means none.
fn effective_timeout(flag: Option<Duration>, default: Option<Duration>) -> Option<Duration> {
    match flag {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => default,
    }
}

fn run_exit_code(summary: &RunSummary, report_failed: bool) -> i32 {
    if let Some(failure) = summary.host_failure() {
        return fail(
            format!("this host cannot create containers: {failure}"),
            exit::HOST_UNSUPPORTED,
        );
    }
    if let Some(signal) = summary.interrupted_by {
        return 128 + signal;
    }
    if report_failed {
        return exit::BAD_USAGE;
    }
    if summary.all_passed() {
        exit::ALL_PASSED
    } else {
        exit::TESTS_FAILED
    }
}

fn exec_command(args: ExecArgs) -> i32 {
    let cwd = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(e) => return fail(format!("current directory: {e}"), exit::BAD_USAGE),
    };
    let program = args.command[0].to_string_lossy().into_owned();
    let env = EnvSettings::new(&args.container.pass_env, args.container.env);
    let cwd_bytes = cwd.as_os_str().as_encoded_bytes().to_vec();
    let spec = SandboxSpec {
        argv: args
            .command
            .iter()
            .map(|a| a.as_encoded_bytes().to_vec())
            .collect(),
        env: run::test_environment(&program, &env),
        cwd: cwd_bytes.clone(),
        hostname: run::HOSTNAME.to_string(),
        home: run::HOME.as_bytes().to_vec(),
        visible_host_dirs: vec![cwd_bytes],
        timeout: effective_timeout(args.container.timeout, None),
        grace: args.container.grace,
        limits: args.limits.limits(),
    };
    let sandbox = match prepare_sandbox(&args.limits) {
        Ok(sandbox) => sandbox,
        Err(code) => return code,
    };
    if let Err(errno) = interrupt::install() {
        return fail(format!("install Ctrl-C handler: {errno}"), exit::BAD_USAGE);
    }
    let stop = StopRequest::new();
    let done = std::sync::atomic::AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| forward_interrupts(&stop, &done));
        let outcome = sandbox.run(&spec, OutputMode::Inherit, &stop);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        outcome
    });
    match outcome.ending {
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
            } else if failure.step.starts_with("exec") && failure.cause.starts_with("ENOENT") {
                exit::EXEC_NOT_FOUND
            } else if failure.step.starts_with("exec") {
                exit::EXEC_NOT_EXECUTABLE
            } else {
                exit::EXEC_SETUP_FAILED
            };
            fail(failure, code)
        }
    }
}

/// Turns Ctrl-C / SIGTERM into stop requests until `done`.
fn forward_interrupts(stop: &StopRequest, done: &std::sync::atomic::AtomicBool) {
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        match interrupt::received().0 {
            0 => {}
            1 => stop.stop_gracefully(),
            _ => stop.stop_now(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(cpus) if (0.01..=4096.0).contains(&cpus) => Ok(cpus),
        _ => Err(format!(
            "`{text}` is not a CPU count between 0.01 and 4096 (e.g. 0.5, 2)"
        )),
    }
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env_pair("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env_pair("A=").unwrap(), ("A".into(), "".into()));
        assert!(parse_env_pair("=x").is_err());
        assert!(parse_env_pair("novalue").is_err());
    }

    #[test]
    fn zero_timeout_means_none() {
        let default = Some(Duration::from_secs(300));
        assert_eq!(effective_timeout(None, default), default);
        assert_eq!(effective_timeout(None, None), None);
        assert_eq!(effective_timeout(Some(Duration::ZERO), default), None);
        assert_eq!(
            effective_timeout(Some(Duration::from_secs(2)), default),
            Some(Duration::from_secs(2))
        );
    }
}
