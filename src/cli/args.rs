//! The command line, as clap definitions.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{flag, Bind, RootMode, Rootfs, Settings, Sourced};
use crate::duration::parse_duration;
use crate::protocol::Protocol;
use crate::size::parse_size;

#[derive(Parser, Debug)]
#[command(
    name = "isotest",
    version,
    about = "Run every integration test in its own Linux container",
    long_about = "Run every integration test in its own Linux container: its own PID, \
                  mount, network, UTS and IPC namespaces on a throwaway overlay of the \
                  host's root filesystem, in its own cgroup."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Discover tests and run each in its own container.
    Run(Box<RunCommand>),
    /// Build a cargo workspace's tests and run each case in its own
    /// container (doctests are not run).
    Cargo(Box<super::cargo::CargoCommand>),
    /// Build Go packages' tests and run each test in its own container.
    Go(Box<super::go::GoCommand>),
    /// Print the tests that `run` would run, with their settings.
    List(ListArgs),
    /// Run one command in a test container, output passed through.
    Exec(ExecArgs),
    /// What this host offers and what isotest will do with it.
    Doctor(DoctorArgs),
    /// List or clean the cache of unpacked root filesystems.
    Cache(super::cache::CacheArgs),
    /// Work with reports: merge the JSON reports of a run's shards, or
    /// make an HTML page of one.
    Report(super::report::ReportArgs),
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// As for run: show the protocol a run with --protocol would use.
    #[arg(long, value_name = "PROTOCOL", value_parser = parse_protocol)]
    pub protocol: Option<Protocol>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Test directories (searched recursively) or files [default: tests]; an
/// argument that is not an existing path selects tests whose name contains
/// it.
#[derive(Args, Debug)]
pub struct Positionals {
    #[arg(value_name = "PATH|FILTER")]
    pub positional: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SelectArgs {
    /// Run only tests whose name matches GLOB (repeatable; `*` stays within
    /// a directory, `**` crosses them).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip tests whose name matches GLOB (repeatable; wins over --include).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Run only tests whose name matches REGEX (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub filter: Vec<String>,
    /// Run only tests with this tag (repeatable: any of them).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Skip tests with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub skip_tag: Vec<String>,
    /// Run one part of the tests, for a CI matrix of N jobs: time:K/N
    /// (parts of equal time, from run history), hash:K/N (stable as tests
    /// are added) or slice:K/N (round-robin), 1-based [default: from
    /// TEST_TOTAL_SHARDS / TEST_SHARD_INDEX when set, by time].
    #[arg(long, value_name = "time:K/N|hash:K/N|slice:K/N")]
    pub partition: Option<String>,
    /// Read run history from this earlier --json report instead of the
    /// cache (what CI jobs pass on as an artifact).
    #[arg(long, value_name = "FILE.json")]
    pub history: Option<PathBuf>,
    /// Neither read nor record run history in the cache.
    #[arg(long)]
    pub no_history: bool,
    /// Run only the tests that did not pass last time (from history or
    /// --history).
    #[arg(long)]
    pub rerun_failed: bool,
    /// Whether to run tests marked `ignore = true`: default (no, report
    /// them as skipped), only, or all.
    #[arg(long, value_enum, default_value = "default", value_name = "WHICH")]
    pub run_ignored: RunIgnoredArg,
    /// Use the [profile.NAME] sections of the isotest.toml files.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct ContainerArgs {
    /// Stop the command after DURATION (e.g. 500ms, 30s, 5m; 0 = never):
    /// SIGTERM, then SIGKILL after the grace period [default: 5m for run,
    /// none for exec].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when stopping a command [default:
    /// 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Option<Duration>,
    /// Set KEY=VALUE in the container's environment (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Copy NAME from isotest's own environment, if set (repeatable).
    #[arg(long, value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Hard memory limit per test (e.g. 256M, 1G); swap is not used.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPU bandwidth per test, in CPUs (e.g. 0.5, 2).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Relative CPU share per test against concurrent tests, 1 to 10000
    /// (cgroup v2 cpu.weight; v1 cpu.shares) [default: the kernel's, 100].
    #[arg(long, value_name = "W", value_parser = parse_cpu_weight)]
    pub cpu_weight: Option<u64>,
    /// Most processes a test may have at once (0 = no limit) [default:
    /// 1024].
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// Turn off all hardening: every capability, no seccomp filter, no
    /// masked /proc paths, no no_new_privs, no rlimits.
    #[arg(long)]
    pub privileged: bool,
    /// The root filesystem: host, a directory, a tarball (.tar, .tar.gz,
    /// .tar.zst) or an OCI image (layout directory or archive, `PATH:TAG`).
    #[arg(long, value_name = "ROOTFS", conflicts_with = "tools")]
    pub rootfs: Option<String>,
    /// A minimal root holding only these host programs (comma-separated).
    #[arg(long, value_name = "PROGRAMS", value_delimiter = ',')]
    pub tools: Vec<String>,
    /// overlay (writable, writes vanish) or bind (read-only root).
    #[arg(long, value_enum, value_name = "MODE")]
    pub rootfs_mode: Option<RootModeArg>,
    /// Show host path SRC at DST in the container (repeatable); read-only
    /// unless `:rw` is added.
    #[arg(long, value_name = "SRC[:DST][:ro|:rw]", value_parser = parse_bind)]
    pub bind: Vec<Bind>,
    /// A fresh, empty, writable directory at PATH (repeatable).
    #[arg(long, value_name = "PATH", value_parser = parse_container_path)]
    pub tmpfs: Vec<String>,
    /// With --rootfs-mode bind: make PATH writable (a fresh directory).
    #[arg(long, value_name = "PATH", value_parser = parse_container_path)]
    pub writable: Vec<String>,
    /// Size of each test's writable space (e.g. 16M, 1G); a test that fills
    /// it gets ENOSPC.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub disk: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RootModeArg {
    Overlay,
    Bind,
}

impl ContainerArgs {
    /// The flags as the top settings layer.
    pub fn settings(&self) -> Settings {
        self.settings_with_retries(None)
    }

    /// The flags as the top settings layer of a plan: with `--retries`
    /// and `--protocol`.
    pub fn plan_settings(&self, retries: Option<u32>, protocol: Option<Protocol>) -> Settings {
        Settings {
            protocol: protocol.and_then(|p| flag(p, "--protocol")),
            ..self.settings_with_retries(retries)
        }
    }

    /// The flags as the top settings layer, with `--retries`.
    fn settings_with_retries(&self, retries: Option<u32>) -> Settings {
        Settings {
            timeout: self
                .timeout
                .and_then(|t| flag(Some(t).filter(|t| !t.is_zero()), "--timeout")),
            grace: self.grace.and_then(|g| flag(g, "--grace")),
            memory: self.memory.and_then(|m| flag(Some(m), "--memory")),
            cpus: self.cpus.and_then(|c| flag(Some(c), "--cpus")),
            cpu_weight: self.cpu_weight.and_then(|w| flag(Some(w), "--cpu-weight")),
            pids: self
                .pids
                .and_then(|p| flag(Some(p).filter(|p| *p > 0), "--pids")),
            env: self
                .env
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Sourced::new(v.clone(), crate::config::Source::Flag("--env")),
                    )
                })
                .collect(),
            pass_env: self
                .pass_env
                .iter()
                .map(|n| Sourced::new(n.clone(), crate::config::Source::Flag("--pass-env")))
                .collect(),
            retries: retries.and_then(|r| flag(r, "--retries")),
            privileged: if self.privileged {
                flag(true, "--privileged")
            } else {
                None
            },
            rootfs: self.rootfs_flag(),
            rootfs_mode: self.rootfs_mode.and_then(|mode| {
                let mode = match mode {
                    RootModeArg::Overlay => RootMode::Overlay,
                    RootModeArg::Bind => RootMode::Bind,
                };
                flag(mode, "--rootfs-mode")
            }),
            binds: self
                .bind
                .iter()
                .map(|b| Sourced::new(b.clone(), crate::config::Source::Flag("--bind")))
                .collect(),
            tmpfs: self
                .tmpfs
                .iter()
                .map(|p| Sourced::new(p.clone(), crate::config::Source::Flag("--tmpfs")))
                .collect(),
            writable: self
                .writable
                .iter()
                .map(|p| Sourced::new(p.clone(), crate::config::Source::Flag("--writable")))
                .collect(),
            disk: self.disk.and_then(|d| flag(Some(d), "--disk")),
            ..Settings::default()
        }
    }
}

impl ContainerArgs {
    fn rootfs_flag(&self) -> Option<Sourced<Rootfs>> {
        if !self.tools.is_empty() {
            return flag(Rootfs::Tools(self.tools.clone()), "--tools");
        }
        let value = self.rootfs.as_ref()?;
        let rootfs = if value == "host" {
            Rootfs::Host
        } else {
            Rootfs::Path {
                value: value.clone(),
                base: std::env::current_dir().unwrap_or_default(),
            }
        };
        flag(rootfs, "--rootfs")
    }
}

/// Where per-test writable space and prepared roots live, and whether
/// containers start in a user namespace.
#[derive(Args, Debug, Default)]
pub struct StorageArgs {
    /// Keep each test's writable space in a directory under DIR instead of
    /// memory (tmpfs); for tests that write more than fits in RAM.
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Cache of unpacked images and built roots [default:
    /// $XDG_CACHE_HOME/isotest, else ~/.cache/isotest].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Run containers in a user namespace even as root, as isotest does for
    /// other users (rootless mode).
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Args, Debug)]
pub struct CgroupArgs {
    /// Create test cgroups under this cgroup path (e.g. /isotest.slice)
    /// instead of isotest's own cgroup.
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<PathBuf>,
    /// Exit with 96 instead of running tests without limits when this host's
    /// cgroups cannot be used.
    #[arg(long)]
    pub require_limits: bool,
}

/// `isotest run`: test paths and name filters, and how to run.
#[derive(Args, Debug)]
pub struct RunCommand {
    #[command(flatten)]
    pub paths: Positionals,
    #[command(flatten)]
    pub run: RunArgs,
}

/// How to select, run and report: `run` and the drivers share them.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub container: ContainerArgs,
    #[command(flatten)]
    pub cgroups: CgroupArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Tests to run at once [default: isotest.toml `jobs`, else the number
    /// of CPUs].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Run a test that did not pass up to N more times; one that passes on
    /// a retry is FLAKY.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: Option<u32>,
    /// Whether FLAKY tests count as passed or failed.
    #[arg(long, value_enum, default_value = "pass", value_name = "RESULT")]
    pub flaky_result: FlakyResult,
    /// The order tests start in: history (last failures first, then
    /// longest first), name, or random:SEED.
    #[arg(
        long,
        value_name = "history|name|random:SEED",
        default_value = "history"
    )]
    pub order: String,
    /// Run each selected test N times, each in a fresh container, and
    /// report its pass rate and the spread of its duration and memory.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub stress: Option<u32>,
    /// Start a test only when the memory demands (limit, else history
    /// peak, else 256M) of the running tests and its own fit SIZE
    /// [default: the memory isotest's cgroup, or the host, has available].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_budget: Option<u64>,
    /// The id of this run in the JSON report, the same for every shard
    /// of one CI run [default: the CI system's pipeline id, else a new
    /// one].
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Stop starting tests after the first failure.
    #[arg(long, conflicts_with = "max_fail")]
    pub fail_fast: bool,
    /// Stop starting tests after N failures.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fail: Option<u32>,
    /// What a run with no tests does: fail (exit 4), warn or pass.
    #[arg(long, value_enum, default_value = "fail", value_name = "WHAT")]
    pub no_tests: NoTests,
    /// How tests report results: exitcode (the exit code alone) or tap
    /// (TAP 13/14 on stdout, every test point a case) [default: exitcode].
    #[arg(long, value_name = "PROTOCOL", value_parser = parse_protocol)]
    pub protocol: Option<Protocol>,
    /// Keep what each test leaves in TEST_UNDECLARED_OUTPUTS_DIR under
    /// DIR/<test name>/.
    #[arg(long, value_name = "DIR", value_parser = parse_absolute)]
    pub artifacts: Option<PathBuf>,
    /// Stream each test's output live instead of capturing it (runs one
    /// test at a time).
    #[arg(long)]
    pub no_capture: bool,
    /// Write a JUnit XML report to PATH (`-`: stdout; the terminal view
    /// then goes to stderr).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the whole run as JSON to PATH (schema: docs/json-report.md;
    /// `-`: stdout, the terminal view then goes to stderr).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report to PATH.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write a Chrome trace-event file to PATH (open it in
    /// ui.perfetto.dev or chrome://tracing).
    #[arg(long, value_name = "PATH")]
    pub trace: Option<PathBuf>,
    /// Sample each test's memory and CPU while it runs and write the
    /// series into --json (--trace and --html sample without it).
    #[arg(long)]
    pub samples: bool,
    /// How often running tests' memory and CPU are sampled.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "100ms")]
    pub sample_interval: Duration,
    /// Compare peak memory and CPU time with this earlier --json report;
    /// tests that grew by more than --max-regression are REGRESSED.
    #[arg(long, value_name = "PREVIOUS.json")]
    pub baseline: Option<PathBuf>,
    /// Growth allowed against --baseline, e.g. 20% or 0.2.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value = "20%",
        requires = "baseline"
    )]
    pub max_regression: String,
    /// Print a table of every test's resource usage at the end.
    #[arg(long)]
    pub show_usage: bool,
    /// Mention tests still running after DURATION.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub slow: Duration,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub paths: Positionals,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub container: ContainerArgs,
    /// As for run: show the retries a run with --retries N would use.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: Option<u32>,
    /// As for run: show the protocol a run with --protocol would use.
    #[arg(long, value_name = "PROTOCOL", value_parser = parse_protocol)]
    pub protocol: Option<Protocol>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Show each test's effective settings and where each came from.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `isotest cargo --list`, `isotest go --list`: the cases, not run.
#[derive(Args, Debug)]
pub struct DriverListArgs {
    /// Build and list the cases that would run (and the ignored ones), as
    /// `isotest list` does; start no container.
    #[arg(long)]
    pub list: bool,
    /// With --list: output format.
    #[arg(long, value_enum, default_value = "text", requires = "list")]
    pub format: Format,
    /// With --list: each case's effective settings and where each came
    /// from.
    #[arg(short, long, requires = "list")]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub container: ContainerArgs,
    #[command(flatten)]
    pub cgroups: CgroupArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunIgnoredArg {
    Default,
    Only,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlakyResult {
    Pass,
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NoTests {
    Fail,
    Warn,
    Pass,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// A path made absolute, so that reports name it wherever they are read.
fn parse_absolute(text: &str) -> Result<PathBuf, String> {
    std::path::absolute(text).map_err(|e| e.to_string())
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    Protocol::from_name(text).ok_or_else(|| format!("expected {}", Protocol::accepted()))
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(cpus) if (0.01..=4096.0).contains(&cpus) => Ok(cpus),
        _ => Err(format!(
            "`{text}` is not a CPU count between 0.01 and 4096 (e.g. 0.5, 2)"
        )),
    }
}

fn parse_cpu_weight(text: &str) -> Result<u64, String> {
    match text.parse::<i64>() {
        Ok(weight) if crate::config::CPU_WEIGHTS.contains(&weight) => Ok(weight as u64),
        _ => Err(format!(
            "`{text}` is not a CPU weight between 1 and 10000 (100 is the default share)"
        )),
    }
}

/// `SRC[:DST][:ro|:rw]`; a relative SRC is taken from the current
/// directory, DST defaults to SRC's absolute path.
fn parse_bind(text: &str) -> Result<Bind, String> {
    let (rest, readonly) = match text.rsplit_once(':') {
        Some((rest, "ro")) => (rest, true),
        Some((rest, "rw")) => (rest, false),
        _ => (text, true),
    };
    let (source, target) = match rest.split_once(':') {
        Some((source, target)) => (source, Some(target)),
        None => (rest, None),
    };
    if source.is_empty() {
        return Err(format!(
            "`{text}` has no source path (expected SRC[:DST][:ro|:rw])"
        ));
    }
    let source = std::env::current_dir()
        .map_err(|e| format!("current directory: {e}"))?
        .join(source);
    let target = match target {
        Some(target) => parse_container_path(target)?,
        None => source.to_string_lossy().into_owned(),
    };
    Ok(Bind {
        source,
        target,
        readonly,
    })
}

fn parse_container_path(text: &str) -> Result<String, String> {
    if text.starts_with('/') && text.len() > 1 && !text.split('/').any(|p| p == "..") {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not an absolute path below / (like /var/cache)"
        ))
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
    fn bind_flags() {
        let bind = parse_bind("/src:/dst:rw").unwrap();
        assert_eq!(bind.source, PathBuf::from("/src"));
        assert_eq!(bind.target, "/dst");
        assert!(!bind.readonly);
        let bind = parse_bind("/opt/tool").unwrap();
        assert_eq!(bind.target, "/opt/tool");
        assert!(bind.readonly);
        assert!(parse_bind("/a:relative").is_err());
        assert!(parse_bind(":/x").is_err());
    }

    #[test]
    fn flags_become_the_top_layer() {
        let args = ContainerArgs {
            timeout: Some(Duration::ZERO),
            pids: Some(0),
            memory: Some(1 << 30),
            ..ContainerArgs::default()
        };
        let settings = Settings::resolve([&args.settings()]);
        assert_eq!(settings.timeout(), None, "0 means no timeout");
        assert_eq!(settings.pids(), None, "0 means no limit");
        assert_eq!(settings.memory(), Some(1 << 30));
        assert_eq!(settings.grace(), Duration::from_secs(10), "default kept");
        let unset = Settings::resolve([&ContainerArgs::default().settings()]);
        assert_eq!(unset.pids(), Some(1024));
    }
}
