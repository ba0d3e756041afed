//! `isotest cargo [CARGO TEST OPTIONS] [FILTER]... [-- FILTER...]`: the
//! cases of a cargo workspace's test binaries, each in its own container.
//! Cargo's own options are spelled as for `cargo test`, except those whose
//! names isotest uses (as nextest spells them): `--cargo-profile`,
//! `--exclude-package`, `--build-jobs`.

use std::path::PathBuf;

use clap::Args;

use super::args::{DriverListArgs, RunArgs};
use super::run::run_driver_cases;
use super::{exit, fail};
use crate::driver::cargo::{discover, CargoOptions};

#[derive(Args, Debug)]
pub struct CargoCommand {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub listing: DriverListArgs,
    #[command(flatten)]
    pub cargo: CargoArgs,
    /// Run only cases whose name contains FILTER (as `cargo test FILTER`);
    /// after `--`, libtest's `--ignored` and `--include-ignored` are taken
    /// as `--run-ignored only` and `all`.
    #[arg(value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// The options passed to `cargo test --no-run` (and `cargo metadata`).
#[derive(Args, Debug)]
#[command(next_help_heading = "Cargo options")]
pub struct CargoArgs {
    /// Package to test (repeatable).
    #[arg(short, long, value_name = "SPEC")]
    pub package: Vec<String>,
    /// Test every package of the workspace.
    #[arg(long, alias = "all")]
    pub workspace: bool,
    /// With --workspace, leave this package out (cargo's --exclude).
    #[arg(long, value_name = "SPEC")]
    pub exclude_package: Vec<String>,
    /// Only the library's unit tests.
    #[arg(long)]
    pub lib: bool,
    /// Only this binary's unit tests (repeatable).
    #[arg(long, value_name = "NAME")]
    pub bin: Vec<String>,
    /// Every binary's unit tests.
    #[arg(long)]
    pub bins: bool,
    /// Only this integration test (repeatable).
    #[arg(long, value_name = "NAME")]
    pub test: Vec<String>,
    /// Every target with `test = true` (integration tests and unit tests).
    #[arg(long)]
    pub tests: bool,
    /// This example (repeatable).
    #[arg(long, value_name = "NAME")]
    pub example: Vec<String>,
    /// Every example.
    #[arg(long)]
    pub examples: bool,
    /// This bench target (repeatable).
    #[arg(long, value_name = "NAME")]
    pub bench: Vec<String>,
    /// Every bench target.
    #[arg(long)]
    pub benches: bool,
    /// Every target.
    #[arg(long)]
    pub all_targets: bool,
    /// Features to activate (space- or comma-separated; repeatable).
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate every feature.
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long)]
    pub no_default_features: bool,
    /// Build with the release profile.
    #[arg(short = 'r', long)]
    pub release: bool,
    /// Build with this cargo profile (cargo's --profile).
    #[arg(long, value_name = "NAME")]
    pub cargo_profile: Option<String>,
    /// Build for this target triple.
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Cargo's target directory.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Parallel build jobs (cargo's --jobs).
    #[arg(long, value_name = "N")]
    pub build_jobs: Option<String>,
    /// Run without accessing the network.
    #[arg(long)]
    pub offline: bool,
    /// Require Cargo.lock to be up to date.
    #[arg(long)]
    pub locked: bool,
    /// Require Cargo.lock and the cache to be up to date.
    #[arg(long)]
    pub frozen: bool,
    /// A cargo configuration value, KEY=VALUE or a file (repeatable).
    #[arg(long, value_name = "KEY=VALUE|PATH")]
    pub config: Vec<String>,
}

impl CargoArgs {
    /// The arguments of `cargo test --no-run` and of `cargo metadata`.
    fn options(&self) -> CargoOptions {
        let metadata = self.workspace_args();
        let mut build = metadata.clone();
        let repeated = [
            ("--package", &self.package),
            ("--exclude", &self.exclude_package),
            ("--bin", &self.bin),
            ("--test", &self.test),
            ("--example", &self.example),
            ("--bench", &self.bench),
            ("--features", &self.features),
        ];
        for (flag, values) in repeated {
            for value in values {
                build.extend([flag.to_string(), value.clone()]);
            }
        }
        let switches = [
            (self.workspace, "--workspace"),
            (self.lib, "--lib"),
            (self.bins, "--bins"),
            (self.tests, "--tests"),
            (self.examples, "--examples"),
            (self.benches, "--benches"),
            (self.all_targets, "--all-targets"),
            (self.all_features, "--all-features"),
            (self.no_default_features, "--no-default-features"),
            (self.release, "--release"),
        ];
        build.extend(
            switches
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| f.to_string()),
        );
        let valued = [
            ("--profile", self.cargo_profile.clone()),
            ("--target", self.target.clone()),
            (
                "--target-dir",
                self.target_dir
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
            ),
            ("--jobs", self.build_jobs.clone()),
        ];
        for (flag, value) in valued {
            if let Some(value) = value {
                build.extend([flag.to_string(), value]);
            }
        }
        CargoOptions {
            // As cargo does for its subcommands; tests get it as `CARGO`.
            cargo: std::env::var_os("CARGO")
                .map(PathBuf::from)
                .unwrap_or_else(|| in_path("cargo")),
            target_dir: self
                .target_dir
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            build_args: build,
            metadata_args: metadata,
        }
    }

    /// What both `cargo test` and `cargo metadata` take: which workspace,
    /// and how to reach the registry.
    fn workspace_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut add = |flag: &str, value: Option<String>| {
            args.push(flag.to_string());
            args.extend(value);
        };
        if let Some(path) = &self.manifest_path {
            add("--manifest-path", Some(path.to_string_lossy().into_owned()));
        }
        for (on, flag) in [
            (self.offline, "--offline"),
            (self.locked, "--locked"),
            (self.frozen, "--frozen"),
        ] {
            if on {
                add(flag, None);
            }
        }
        for value in &self.config {
            add("--config", Some(value.clone()));
        }
        args
    }
}

/// `program`'s absolute path from PATH, or the bare name when it is not
/// there (running it then says it is missing).
fn in_path(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(program))
}

pub fn run(mut command: CargoCommand) -> i32 {
    if let Err(code) = libtest_flags(&mut command) {
        return code;
    }
    let discovered = match discover(&command.cargo.options()) {
        Ok(discovered) => discovered,
        Err(error) => return fail(error, exit::BAD_USAGE),
    };
    run_driver_cases(&command.run, &command.listing, discovered, command.filters)
}

/// libtest's `--ignored` / `--include-ignored` among the filters become
/// `--run-ignored`; any other flag there is refused, saying why.
fn libtest_flags(command: &mut CargoCommand) -> Result<(), i32> {
    use super::args::RunIgnoredArg;
    let mut filters = Vec::new();
    for filter in std::mem::take(&mut command.filters) {
        match filter.as_str() {
            "--ignored" => command.run.select.run_ignored = RunIgnoredArg::Only,
            "--include-ignored" => command.run.select.run_ignored = RunIgnoredArg::All,
            flag if flag.starts_with('-') => {
                return Err(fail(
                    format!(
                        "`{flag}` after `--`: isotest runs each case alone as `BINARY --exact NAME \
                         --nocapture --test-threads 1`, so libtest flags other than --ignored and \
                         --include-ignored do not apply; use isotest's options (--no-capture, \
                         -j, --filter, --run-ignored)"
                    ),
                    exit::BAD_USAGE,
                ))
            }
            _ => filters.push(filter),
        }
    }
    command.filters = filters;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::args::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> super::CargoCommand {
        let argv = ["isotest", "cargo"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Cargo(command) => *command,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn cargo_options_pass_through_under_their_cargo_names() {
        let command = parse(&[
            "-p",
            "a",
            "--workspace",
            "--exclude-package",
            "b",
            "--release",
            "--cargo-profile",
            "ci",
            "-F",
            "x,y",
            "--offline",
            "--manifest-path",
            "/w/Cargo.toml",
            "-j",
            "3",
            "--build-jobs",
            "4",
            "--exclude",
            "slow*",
            "creates",
        ]);
        let options = command.cargo.options();
        assert_eq!(
            options.metadata_args,
            ["--manifest-path", "/w/Cargo.toml", "--offline"]
        );
        let build = options.build_args.join(" ");
        for part in [
            "--package a",
            "--exclude b",
            "--features x,y",
            "--workspace",
            "--release",
            "--profile ci",
            "--jobs 4",
        ] {
            assert!(build.contains(part), "{part} in {build}");
        }
        assert_eq!(command.run.jobs, Some(3), "-j is isotest's");
        assert_eq!(
            command.run.select.exclude,
            ["slow*"],
            "--exclude is isotest's glob"
        );
        assert_eq!(command.filters, ["creates"]);
    }

    #[test]
    fn libtest_flags_after_the_separator() {
        use super::super::args::RunIgnoredArg;
        let mut command = parse(&["--", "--include-ignored", "adds"]);
        super::libtest_flags(&mut command).unwrap();
        assert_eq!(command.run.select.run_ignored, RunIgnoredArg::All);
        assert_eq!(command.filters, ["adds"]);
        let mut refused = parse(&["--", "--nocapture"]);
        assert!(super::libtest_flags(&mut refused).is_err());
    }
}
