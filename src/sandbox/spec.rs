//! What the sandbox is asked to run (`SandboxSpec`) and what it says happened
//! (`Outcome`). Both cross a pipe between the runner and the single-threaded
//! supervisor as JSON, so paths and arguments are raw bytes: test names
//! and arguments need not be UTF-8.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::capture::CapturedOutput;
use super::cgroup::{CgroupView, Limits, Usage};
use super::network::NetworkAttachment;
use super::sampler::Sample;
use super::security::Security;
use super::step::SetupStep;
use super::userns::IdMapping;

/// Everything needed to run one command in one fresh container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The command; `argv[0]` is a path, or a name searched in the
    /// container's `PATH` when it has no `/`.
    pub argv: Vec<Vec<u8>>,
    /// The complete environment of the command (nothing is inherited).
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// Working directory inside the container.
    pub cwd: Vec<u8>,
    pub hostname: String,
    /// Share the host's network namespace instead of a fresh one with only
    /// `lo`.
    pub host_network: bool,
    /// Join a test's private network (with its services) instead of a
    /// namespace with only `lo`.
    pub network: Option<NetworkAttachment>,
    /// Run the command as this user / group (name or number, looked up in
    /// the container's /etc/passwd and /etc/group); root when unset.
    pub user: Option<String>,
    pub group: Option<String>,
    /// Created as an empty directory before the command starts (its HOME).
    pub home: Vec<u8>,
    /// Host directories that must show at the same path even where the
    /// container mounts something fresh over them (a test under /tmp): they
    /// get an overlay of their own, writable, with writes vanishing.
    pub visible_host_dirs: Vec<Vec<u8>>,
    /// After this long the command gets SIGTERM; `None` waits for ever.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when the container is stopped.
    pub grace: Duration,
    /// cgroup limits; applied when the host's cgroups can be used.
    pub limits: Limits,
    /// Capabilities, seccomp, no_new_privs, rlimits, masked /proc paths.
    pub security: Security,
    /// The root filesystem.
    pub root: RootSpec,
    /// Mounts on top of the root (binds, fresh directories), any order.
    pub mounts: Vec<ExtraMount>,
    /// Size of the test's writable space (overlay upper layer, /tmp, fresh
    /// directories); a test that fills it gets ENOSPC. Unlimited when None.
    pub disk_bytes: Option<u64>,
    /// A per-test host directory holding the writable space instead of a
    /// tmpfs; filled in by the sandbox under `--scratch`.
    pub scratch_dir: Option<Vec<u8>>,
    /// Rootless: the user namespace the container starts in; filled in by
    /// the sandbox when isotest is not root (or `--rootless`).
    pub user_namespace: Option<IdMapping>,
}

/// Where the container's `/` comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootSpec {
    /// Read-only layers, top first; empty means the host's `/`.
    pub layers: Vec<Vec<u8>>,
    pub mode: RootMode,
}

/// How the root is made writable, or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootMode {
    /// An overlay: the layers below, a per-test writable layer above.
    #[default]
    Overlay,
    /// The root bind-mounted read-only; only /tmp and the fresh
    /// directories are writable.
    Bind,
}

/// A mount the test asked for, on top of the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtraMount {
    /// A host file or directory (absolute path) shown at `target`.
    Bind {
        source: Vec<u8>,
        target: Vec<u8>,
        readonly: bool,
    },
    /// A fresh, empty, writable directory at `target`, on the test's
    /// writable space.
    Fresh { target: Vec<u8> },
}

/// What the runner sends the supervisor: the spec, the cgroup.procs files
/// that put the test's command into its cgroup, and how the test sees that
/// cgroup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SupervisorRequest {
    pub spec: SandboxSpec,
    pub cgroup_procs: Vec<Vec<u8>>,
    pub cgroup_view: CgroupView,
    /// Rootless: the fuse-overlayfs program that overlays the host's root,
    /// where it is installed and /dev/fuse is usable.
    pub fuse_overlayfs: Option<Vec<u8>>,
}

/// How a sandboxed command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    /// The command exited with this code.
    Exited(i32),
    /// The command was killed by a signal the sandbox did not send.
    Signaled(i32),
    /// The timeout expired and the sandbox stopped the command.
    TimedOut,
    /// The runner asked the sandbox to stop (e.g. Ctrl-C).
    Stopped,
    /// The container could not be set up, or the command not started.
    SetupFailed(SetupFailure),
}

/// A setup step that failed, with the errno when it came from a syscall.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupFailure {
    /// The step, with the path it worked on: `mount overlay at /…/root`.
    pub step: SetupStep,
    /// errno name and text, e.g. `EPERM: Operation not permitted`.
    pub cause: String,
    /// A hint on what to do, when we know one.
    pub hint: Option<String>,
    /// True when the host itself cannot create containers (not the test's
    /// fault): no permission for namespaces or mounts.
    pub host_unsupported: bool,
    /// The errno, when a syscall failed: what decisions look at (`cause`
    /// is its text, for people).
    #[serde(default)]
    pub errno: Option<i32>,
}

impl SetupFailure {
    /// Whether a syscall failed with `errno`.
    pub fn is(&self, errno: nix::errno::Errno) -> bool {
        self.errno == Some(errno as i32)
    }
}

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.cause)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Resource usage from `wait4` on the container's init, which reaps every
/// process of the container: totals for the whole container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rusage {
    pub user_usec: u64,
    pub system_usec: u64,
    /// Largest resident set of any single process, in bytes.
    pub max_rss_bytes: u64,
}

/// What the supervisor reports back for one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub ending: Ending,
    /// From the command's start to its end (or to the kill).
    pub wall: Duration,
    /// Processes still alive in the container when the command ended; they
    /// were killed with the PID namespace.
    pub leaked_processes: u32,
    pub rusage: Option<Rusage>,
    /// When the command started, on the host's monotonic clock
    /// (`monotonic_ns`); None when it never did.
    #[serde(default)]
    pub command_started_ns: Option<u64>,
}

impl Report {
    /// The report of a run whose command never started (or of none at all).
    pub fn without_command(ending: Ending) -> Report {
        Report {
            ending,
            wall: Duration::ZERO,
            leaked_processes: 0,
            rusage: None,
            command_started_ns: None,
        }
    }
}

/// A finished container run: the supervisor's report plus captured output.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub ending: Ending,
    pub wall: Duration,
    pub leaked_processes: u32,
    pub rusage: Option<Rusage>,
    /// cgroup accounting; None when tests run without cgroups.
    pub usage: Option<Usage>,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    /// Where the time around the command went.
    pub phases: Phases,
    /// Memory and CPU read from the cgroup while the test ran (when the
    /// sandbox samples: `Sandbox::sample_every`).
    pub samples: Vec<Sample>,
}

impl Outcome {
    /// A container that could not be set up: nothing ran.
    pub fn setup_failed(failure: SetupFailure) -> Outcome {
        Outcome {
            ending: Ending::SetupFailed(failure),
            wall: Duration::ZERO,
            leaked_processes: 0,
            rusage: None,
            usage: None,
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            phases: Phases::default(),
            samples: Vec::new(),
        }
    }
}

/// Where a container's time went besides the command itself (`wall`),
/// measured by the runner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// From the request to the command's start: the cgroup, the hand-off
    /// to the server, namespaces, root filesystem, security; all of it
    /// when the command never started.
    pub setup: Duration,
    /// From the command's end to the outcome: the supervisor's report,
    /// emptying and removing the cgroup.
    pub teardown: Duration,
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the
/// host, so a supervisor's timestamps mean something to the runner.
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail; 0 if it somehow did, as before.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
        now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
    })
}
