//! The runner's side of a container: start the helper (a re-exec of
//! /proc/self/exe), hand it the spec, capture the command's output within
//! bounds, pass on stop requests, and collect the helper's report.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{pipe2, Pid};

use super::capture::{BoundedBuffer, CapturedOutput};
use super::cgroup::{CgroupLayout, Cgroups, TestCgroup, Unavailable};
use super::scratch::ScratchDir;
use super::spec::{
    Ending, HelperRequest, Outcome, Report, RootMode, SandboxSpec, SetupFailure,
};
use super::supervisor::REPORT_FD;
use super::userns::IdMapping;

/// The hidden subcommand that runs the helper.
pub const HELPER_SUBCOMMAND: &str = "__sandbox-helper";

/// What happens to the command's stdout and stderr.
#[derive(Clone, Copy, Debug)]
pub enum OutputMode {
    /// Captured, keeping at most this many bytes per stream.
    Capture { limit_per_stream: usize },
    /// Passed through to the runner's own stdout and stderr.
    Inherit,
}

/// A stop request shared between whoever decides to stop (Ctrl-C handling)
/// and running containers: 0 run, 1 stop gracefully, 2 stop now.
#[derive(Debug, Default)]
pub struct StopRequest(AtomicU8);

impl StopRequest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks running containers to stop: SIGTERM, then SIGKILL after grace.
    pub fn stop_gracefully(&self) {
        self.0.fetch_max(1, Ordering::SeqCst);
    }

    /// Asks running containers to stop without waiting for the grace period.
    pub fn stop_now(&self) {
        self.0.fetch_max(2, Ordering::SeqCst);
    }

    pub fn is_requested(&self) -> bool {
        self.level() > 0
    }

    fn level(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How often a running container checks for stop requests.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Slack the helper gets beyond timeout + grace before the runner kills it.
const HELPER_SLACK: Duration = Duration::from_secs(10);

/// The container engine for one run: it owns the run's cgroups, if the
/// host lets us use them.
pub struct Sandbox {
    cgroups: Result<Cgroups, Unavailable>,
    /// `--scratch`: per-test writable space goes in directories under it.
    scratch: Option<PathBuf>,
    /// Rootless: containers start in a user namespace mapped this way.
    user_namespace: Option<IdMapping>,
    /// Roots are bound read-only, never overlaid (rootless on a kernel
    /// without overlayfs in user namespaces).
    bind_roots_only: bool,
}

/// What preparing the sandbox found out, for the user to hear once.
pub struct SandboxNotes {
    pub notices: Vec<String>,
}

impl Sandbox {
    /// Prepares cgroups under `cgroup_parent` (default: isotest's own
    /// cgroup); when they cannot be used, tests run without limits.
    pub fn new(cgroup_parent: Option<&Path>) -> (Sandbox, SandboxNotes) {
        match Cgroups::setup(cgroup_parent) {
            Ok(ready) => (
                Sandbox {
                    cgroups: Ok(ready.cgroups),
                    scratch: None,
                    user_namespace: None,
                    bind_roots_only: false,
                },
                SandboxNotes {
                    notices: ready.notices,
                },
            ),
            Err(unavailable) => (
                Sandbox {
                    cgroups: Err(unavailable),
                    scratch: None,
                    user_namespace: None,
                    bind_roots_only: false,
                },
                SandboxNotes { notices: vec![] },
            ),
        }
    }

    /// Puts each test's writable space in a directory under `dir` instead
    /// of a tmpfs; removes what crashed runners left there. Returns a
    /// notice when it removed something.
    pub fn use_scratch_dir(&mut self, dir: &Path) -> Result<Option<String>, String> {
        let removed = super::scratch::prepare_parent(dir)?;
        self.scratch = Some(dir.to_path_buf());
        Ok((removed > 0).then(|| {
            format!(
                "removed {removed} scratch directories left in {} by an earlier run",
                dir.display()
            )
        }))
    }

    /// Runs every container in a user namespace of its own, mapping the
    /// caller to root inside (rootless mode).
    /// Returns a notice when the kernel cannot mount overlays there, and
    /// roots are bound read-only instead.
    pub fn use_user_namespace(&mut self, mapping: IdMapping) -> Option<String> {
        self.user_namespace = Some(mapping);
        self.bind_roots_only = !super::userns::overlay_supported();
        self.bind_roots_only.then(|| {
            "rootless on a kernel before 5.11, which has no overlayfs in user namespaces: \
             every root is bound read-only (rootfs_mode = \"bind\"); /tmp, `tmpfs` and \
             `writable` paths take writes"
                .to_string()
        })
    }

    /// The user namespace mapping in rootless mode.
    pub fn user_namespace(&self) -> Option<&IdMapping> {
        self.user_namespace.as_ref()
    }

    /// The host's cgroup layout.
    pub fn cgroup_layout(&self) -> CgroupLayout {
        match &self.cgroups {
            Ok(cgroups) => cgroups.layout(),
            Err(unavailable) => unavailable.layout,
        }
    }

    /// Why limits and usage figures are unavailable, if they are.
    pub fn cgroups_unavailable(&self) -> Option<&Unavailable> {
        self.cgroups.as_ref().err()
    }

    /// Runs `spec` in a fresh container (and cgroup) and waits for it.
    pub fn run(&self, spec: &SandboxSpec, output: OutputMode, stop: &StopRequest) -> Outcome {
        let cgroup = match &self.cgroups {
            Ok(cgroups) => match cgroups.create(&spec.limits) {
                Ok(group) => Some(group),
                Err(failure) => return failed_outcome(failure),
            },
            Err(_) => None,
        };
        if self.scratch.is_some() && spec.disk_bytes.is_some() {
            // A directory on the host's disk has no size of its own.
            return failed_outcome(SetupFailure {
                step: "limit the test's disk space".into(),
                cause: "`disk` needs the default scratch space (a tmpfs of that size), \
                        and --scratch DIR replaces it"
                    .into(),
                hint: Some("drop --scratch, or the test's `disk` setting".into()),
                host_unsupported: false,
            });
        }
        let scratch = match self.scratch.as_deref().map(ScratchDir::create).transpose() {
            Ok(scratch) => scratch,
            Err(failure) => return failed_outcome(failure),
        };
        let mut spec = spec.clone();
        spec.scratch_dir = scratch
            .as_ref()
            .map(|s| s.path().as_os_str().as_encoded_bytes().to_vec());
        spec.user_namespace.clone_from(&self.user_namespace);
        if self.bind_roots_only {
            spec.root.mode = RootMode::Bind;
        }
        if cgroup.is_none() && spec.user_namespace.is_some() {
            spec.security.nproc = spec.limits.pids;
        }
        let spec = &spec;
        let request = HelperRequest {
            spec: spec.clone(),
            cgroup_procs: cgroup
                .iter()
                .flat_map(|g| g.procs_files())
                .map(|p| p.into_os_string().into_encoded_bytes())
                .collect(),
        };
        match start_helper(&request, output) {
            Ok((child, report)) => collect(child, report, spec, output, stop, cgroup),
            Err(failure) => failed_outcome(failure),
        }
    }
}

fn failed_outcome(failure: SetupFailure) -> Outcome {
    Outcome {
        ending: Ending::SetupFailed(failure),
        wall: Duration::ZERO,
        leaked_processes: 0,
        rusage: None,
        usage: None,
        stdout: CapturedOutput::default(),
        stderr: CapturedOutput::default(),
    }
}

fn start_helper(
    request: &HelperRequest,
    output: OutputMode,
) -> Result<(Child, OwnedFd), SetupFailure> {
    let failed = |step: &str, error: std::io::Error| SetupFailure {
        step: step.to_string(),
        cause: error.to_string(),
        hint: None,
        host_unsupported: false,
    };
    let (report_read, report_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| failed("create report pipe", e.into()))?;
    let output_stdio = || match output {
        OutputMode::Capture { .. } => Stdio::piped(),
        OutputMode::Inherit => Stdio::inherit(),
    };
    let mut command = Command::new("/proc/self/exe");
    command
        .arg(HELPER_SUBCOMMAND)
        .arg(std::process::id().to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(output_stdio())
        .stderr(output_stdio())
        // Its own process group: a terminal's Ctrl-C reaches only the
        // runner, which decides how to stop each container.
        .process_group(0);
    let report_raw = report_write.as_raw_fd();
    // SAFETY: between fork and exec this only calls dup2/fcntl, which are
    // async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let result = if report_raw == REPORT_FD {
                libc::fcntl(REPORT_FD, libc::F_SETFD, 0)
            } else {
                libc::dup2(report_raw, REPORT_FD)
            };
            if result < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| failed("start the sandbox helper (/proc/self/exe)", e))?;
    drop(report_write);
    let spec_json = serde_json::to_vec(request).expect("requests serialize");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A helper that died early shows in its report (or lack of one).
    let _ = stdin.write_all(&spec_json);
    drop(stdin);
    Ok((child, report_read))
}

/// Reads output and the report until the helper is done, then reaps it.
fn collect(
    mut child: Child,
    report_fd: OwnedFd,
    spec: &SandboxSpec,
    output: OutputMode,
    stop: &StopRequest,
    mut cgroup: Option<TestCgroup>,
) -> Outcome {
    let limit = match output {
        OutputMode::Capture { limit_per_stream } => limit_per_stream,
        OutputMode::Inherit => 0,
    };
    let mut streams = [
        Stream::new(child.stdout.take().map(OwnedFd::from), limit),
        Stream::new(child.stderr.take().map(OwnedFd::from), limit),
        Stream::new(Some(report_fd), usize::MAX),
    ];
    let helper = Pid::from_raw(child.id() as i32);
    let backstop = spec
        .timeout
        .map(|t| Instant::now() + t + spec.grace + HELPER_SLACK);
    let mut stop_level_sent = 0;
    let mut killed_by_backstop = false;

    while streams.iter().any(Stream::is_open) {
        if let Some(group) = cgroup.as_mut() {
            group.sample();
        }
        let level = stop.level();
        if level > stop_level_sent {
            // The helper stops the container; a second SIGTERM skips grace.
            let _ = kill(helper, Signal::SIGTERM);
            stop_level_sent = level;
        }
        if backstop.is_some_and(|b| Instant::now() >= b) && !killed_by_backstop {
            // The helper is stuck: killing it kills init (PDEATHSIG) and so
            // the whole container.
            let _ = kill(helper, Signal::SIGKILL);
            killed_by_backstop = true;
        }
        let mut fds: Vec<PollFd> = streams
            .iter()
            .filter_map(|s| {
                s.fd.as_ref()
                    .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            })
            .collect();
        match poll(
            &mut fds,
            PollTimeout::try_from(STOP_POLL).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut ready = ready.into_iter();
        for stream in streams.iter_mut().filter(|s| s.is_open()) {
            if ready.next() == Some(true) {
                stream.read_available();
            }
        }
    }
    let status = child.wait();
    let usage = cgroup.as_ref().map(TestCgroup::usage);
    // Dropping the group kills anything left in it and removes it.
    drop(cgroup);
    let [stdout, stderr, report] = streams;
    let report: Option<Report> = serde_json::from_slice(&report.raw).ok();
    let (stdout, stderr) = (stdout.buffer.finish(), stderr.buffer.finish());
    match report {
        Some(report) => Outcome {
            ending: report.ending,
            wall: report.wall,
            leaked_processes: report.leaked_processes,
            rusage: report.rusage,
            usage,
            stdout,
            stderr,
        },
        None => {
            let ending = if killed_by_backstop {
                Ending::TimedOut
            } else if stop.is_requested() {
                Ending::Stopped
            } else {
                Ending::SetupFailed(SetupFailure {
                    step: "sandbox helper".into(),
                    cause: format!(
                        "ended ({}) without a report",
                        status.map_or_else(|e| e.to_string(), |s| s.to_string())
                    ),
                    hint: None,
                    host_unsupported: false,
                })
            };
            Outcome {
                ending,
                wall: Duration::ZERO,
                leaked_processes: 0,
                rusage: None,
                usage,
                stdout,
                stderr,
            }
        }
    }
}

/// One pipe from the helper, read until EOF.
struct Stream {
    fd: Option<OwnedFd>,
    buffer: BoundedBuffer,
    /// The report stream keeps everything (it is small and ours).
    raw: Vec<u8>,
    is_report: bool,
}

impl Stream {
    fn new(fd: Option<OwnedFd>, limit: usize) -> Self {
        Stream {
            fd,
            buffer: BoundedBuffer::new(if limit == usize::MAX { 0 } else { limit }),
            raw: Vec::new(),
            is_report: limit == usize::MAX,
        }
    }

    fn is_open(&self) -> bool {
        self.fd.is_some()
    }

    fn read_available(&mut self) {
        let Some(fd) = &self.fd else { return };
        let mut chunk = [0u8; 64 * 1024];
        match read_fd(fd.as_fd(), &mut chunk) {
            Ok(0) | Err(_) => self.fd = None,
            Ok(n) if self.is_report => self.raw.extend_from_slice(&chunk[..n]),
            Ok(n) => self.buffer.push(&chunk[..n]),
        }
    }
}

fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: a borrowed fd stays open for the call; File is not closed
    // because it is forgotten.
    let mut file =
        std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd.as_raw_fd()) });
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
