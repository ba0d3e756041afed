//! The container engine. It knows nothing about tests, reports or the CLI:
//! it takes a `SandboxSpec` and returns an `Outcome`. Every `unsafe` block
//! and raw syscall of the crate lives here.
//!
//! - `spawn`: the runner's side (hand a test over, capture output);
//! - `server`: the server, one single-threaded process per run, forking a
//!   supervisor per test (`ForkServer` is the runner's handle on it);
//! - `supervisor`: one container's supervisor (PID namespace, timeout);
//! - `init`: PID 1 inside the container (and the tracer that lets go of a
//!   PTRACE_TRACEME child);
//! - `rootfs`, `net`: what init sets up (the root, rootless through
//!   fuse-overlayfs where installed; the test's own cgroup at
//!   /sys/fs/cgroup);
//! - `cgroup`: per-test cgroups, limits (`cpu_weight` too) and accounting;
//! - `mountinfo`, `procstat`, `capture`, `step`: parsing, bounded output,
//!   error naming;
//! - `fds`: descriptors at fixed numbers (close_range with its fallback,
//!   dup2 onto a number);
//! - `messages`: the typed, fixed-size messages between the runner, the
//!   server, the supervisor and init;
//! - `sampler`: memory and CPU series of running tests.

mod capture;
mod cgroup;
mod fds;
mod identity;
mod init;
pub mod interrupt;
mod messages;
mod mountinfo;
mod net;
mod network;
mod procstat;
mod rootfs;
mod sampler;
mod scratch;
mod seccomp;
mod security;
mod server;
mod spawn;
mod spec;
mod step;
mod supervisor;
mod userns;

pub use capture::CapturedOutput;
pub use cgroup::{
    available_memory, runner_alive, CgroupLayout, CgroupMounts, CgroupPlacement, Limits,
    TestParents, Usage, V1_CONTROLLERS, V2_CONTROLLERS,
};
pub use network::{
    hosts_file, probe as probe_network, Link, Network, NetworkAttachment, Subnet, TcpProbe,
};
pub use procstat::process_start;
pub use sampler::Sample;
pub use security::{resolve_capabilities, Security};
pub use server::{server_main, SERVER_SUBCOMMAND};
pub use spawn::{rootless_overlay, Observed, OutputMode, RootlessOverlay, Sandbox, StopRequest};
pub use spec::{
    Ending, ExtraMount, Outcome, RootMode, RootSpec, Rusage, SandboxSpec, SetupFailure,
};
pub use supervisor::probe_pidfd;
pub use userns::IdMapping;
