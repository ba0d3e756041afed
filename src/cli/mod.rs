//! Command-line dispatch: parse, call the library, map what happened to an
//! exit code. `args` holds the clap definitions; one module per subcommand.

mod args;
mod cache;
mod cargo;
mod exec;
mod go;
mod history;
mod list;
mod report;
mod report_html;
mod run;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{Configs, Settings};
use crate::plan::{self, PlannedTest};
use crate::sandbox::{self, Sandbox};
use args::{CgroupArgs, Cli, Command, SelectArgs, StorageArgs};

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

/// The whole program; returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == sandbox::SERVER_SUBCOMMAND) {
        let runner = args
            .get(2)
            .and_then(|pid| pid.to_str()?.parse().ok())
            .unwrap_or(0);
        return sandbox::server_main(runner);
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
        Command::Run(args) => run::run(*args),
        Command::Cargo(args) => cargo::run(*args),
        Command::Go(args) => go::run(*args),
        Command::List(args) => list::list(args),
        Command::Exec(args) => exec::exec(args),
        Command::Doctor(args) => doctor(args),
        Command::Cache(args) => cache::run(args),
        Command::Report(args) => report::run(args),
    }
}

/// `isotest doctor`: exit 0 when this host can run tests, 96 otherwise.
fn doctor(args: args::DoctorArgs) -> i32 {
    use std::io::IsTerminal;
    let diagnosis = crate::doctor::examine();
    let text = match args.format {
        args::Format::Text => diagnosis.render_text(crate::style::Styles::new(
            crate::style::color_wanted(std::io::stdout().is_terminal()),
        )),
        args::Format::Json => {
            serde_json::to_string_pretty(&diagnosis.to_json()).expect("JSON values serialize")
                + "\n"
        }
    };
    write_stdout(&text);
    if diagnosis.can_run_tests() {
        exit::ALL_PASSED
    } else {
        exit::HOST_UNSUPPORTED
    }
}

/// Writes to stdout; a closed pipe (`isotest list | head`) is not an error.
fn write_stdout(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Prints `isotest: MESSAGE` and returns `code`.
fn fail(message: impl std::fmt::Display, code: i32) -> i32 {
    eprintln!("isotest: {message}");
    code
}

/// Test roots and name substrings from the positional arguments: an
/// existing path is a root; anything else selects by name.
struct Positional {
    roots: Vec<PathBuf>,
    substrings: Vec<String>,
}

fn split_positional(positional: &[PathBuf]) -> Positional {
    let (roots, filters): (Vec<PathBuf>, Vec<PathBuf>) =
        positional.iter().cloned().partition(|p| p.exists());
    Positional {
        roots: if roots.is_empty() {
            vec![PathBuf::from("tests")]
        } else {
            roots
        },
        substrings: filters
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect(),
    }
}

/// Loads the isotest.toml files and plans every test under the roots, with
/// the command-line `flags` as the top settings layer.
fn load_plan(
    select: &SelectArgs,
    positional: &Positional,
    flags: &Settings,
) -> Result<(Configs, Vec<PlannedTest>), i32> {
    let configs = Configs::load(&positional.roots).map_err(|e| fail(e, exit::BAD_USAGE))?;
    if let Some(profile) = &select.profile {
        configs
            .check_profile(profile)
            .map_err(|e| fail(e, exit::BAD_USAGE))?;
    }
    let planned = plan::plan(
        &positional.roots,
        &configs,
        select.profile.as_deref(),
        flags,
    )
    .map_err(|e| fail(e, exit::BAD_USAGE))?;
    Ok((configs, planned))
}

/// Sets up the sandbox, telling the user once what the host's cgroups
/// allow; with --require-limits, no cgroups is the exit code 96.
/// The sandbox for a run; `tests_to_run` false (an empty run) keeps quiet
/// about limits that no test would miss.
fn prepare_sandbox(
    args: &CgroupArgs,
    storage: &StorageArgs,
    tests_to_run: bool,
) -> Result<Sandbox, i32> {
    let (mut sandbox, notes) = Sandbox::new(args.cgroup_parent.as_deref());
    for notice in notes.notices {
        eprintln!("isotest: note: {notice}");
    }
    if storage.rootless || !nix::unistd::geteuid().is_root() {
        if let Some(notice) = sandbox.use_user_namespace(crate::sandbox::IdMapping::for_caller()) {
            eprintln!("isotest: note: {notice}");
        }
    }
    if let Some(dir) = &storage.scratch {
        match sandbox.use_scratch_dir(dir) {
            Ok(Some(notice)) => eprintln!("isotest: note: {notice}"),
            Ok(None) => {}
            Err(error) => return Err(fail(error, exit::BAD_USAGE)),
        }
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
        if tests_to_run {
            eprintln!(
                "isotest: warning: tests run without cgroup limits or usage figures: {}",
                unavailable.reason
            );
        }
    }
    Ok(sandbox)
}
