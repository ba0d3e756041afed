//! The runner's side of a container: hand the test to the server
//! (`server`) with its request and pipes, capture the command's output
//! within bounds, pass on stop requests, and collect the supervisor's
//! report.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::Signal;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::pipe2;

use super::capture::BoundedBuffer;
use super::cgroup::{CgroupLayout, Cgroups, TestCgroup, Unavailable};
use super::messages::Announcement;
use super::network::{Network, NetworkRequest, Subnet};
use super::sampler::Sampler;
use super::scratch::ScratchDir;
use super::server::{self, ForkServer, Server, TestFds};
use super::spec::{
    monotonic_ns, Ending, Outcome, Phases, Report, RootMode, SandboxSpec, SetupFailure,
    SupervisorRequest,
};
use super::step::Step;
use super::supervisor::{pidfd_pid, pidfd_send_signal};
use super::userns::IdMapping;

/// What happens to the command's stdout and stderr.
#[derive(Clone, Copy, Debug)]
pub enum OutputMode {
    /// Captured, keeping at most this many bytes per stream.
    Capture { limit_per_stream: usize },
    /// Passed through to the runner's own stdout and stderr.
    Inherit,
}

/// A stop request shared between whoever decides to stop (Ctrl-C handling,
/// the end of a service's test) and running containers: 0 run, 1 stop
/// gracefully, 2 stop now. The first request also wakes the containers'
/// runners at once (an eventfd they poll), rather than at their next
/// periodic look.
#[derive(Debug, Default)]
pub struct StopRequest {
    level: AtomicU8,
    /// Readable from the first request on; None if it could not be made
    /// (runners then notice within `STOP_POLL`).
    wake: Option<EventFd>,
}

impl StopRequest {
    pub fn new() -> Self {
        StopRequest {
            level: AtomicU8::new(0),
            wake: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).ok(),
        }
    }

    /// Asks running containers to stop: SIGTERM, then SIGKILL after grace.
    pub fn stop_gracefully(&self) {
        self.request(1);
    }

    /// Asks running containers to stop without waiting for the grace period.
    pub fn stop_now(&self) {
        self.request(2);
    }

    fn request(&self, level: u8) {
        self.level.fetch_max(level, Ordering::SeqCst);
        if let Some(wake) = &self.wake {
            let _ = wake.write(1);
        }
    }

    pub fn is_requested(&self) -> bool {
        self.level() > 0
    }

    fn level(&self) -> u8 {
        self.level.load(Ordering::SeqCst)
    }

    /// What to poll for the first request: it stays readable afterwards,
    /// so only while none came.
    fn first_request(&self) -> Option<BorrowedFd<'_>> {
        self.wake
            .as_ref()
            .filter(|_| self.level() == 0)
            .map(AsFd::as_fd)
    }
}

/// How often a running container checks for stop requests.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Slack the supervisor gets beyond timeout + grace before the runner
/// kills it.
const SUPERVISOR_SLACK: Duration = Duration::from_secs(10);

/// The container engine for one run: it owns the run's cgroups, if the
/// host lets us use them, and its server.
pub struct Sandbox {
    /// Finished tests' networks, for the next tests (see `create_network`).
    spare_networks: Mutex<Vec<Network>>,
    /// Declared (so dropped) before the cgroups: the server lives in the
    /// runner's cgroup and must be gone before isotest leaves its leaf
    /// cgroup on v2 and removes it.
    server: ForkServer,
    cgroups: Result<Cgroups, Unavailable>,
    /// `--scratch`: per-test writable space goes in directories under it.
    scratch: Option<PathBuf>,
    /// Rootless: containers start in a user namespace mapped this way.
    user_namespace: Option<IdMapping>,
    /// Roots are bound read-only, never overlaid (rootless on a kernel
    /// without overlayfs in user namespaces).
    bind_roots_only: bool,
    /// Rootless: fuse-overlayfs overlays the host's root, when installed.
    fuse_overlayfs: Option<PathBuf>,
    /// Reads running tests' cgroups for `Outcome::samples`, when asked to.
    sampler: Option<Sampler>,
}

/// How a rootless container overlays the host's root.
pub enum RootlessOverlay {
    /// fuse-overlayfs (this program), as rootless Podman does: writes
    /// anywhere succeed.
    Fuse(PathBuf),
    /// The kernel's overlay, one per top-level directory: creating a file
    /// in a directory of an unmapped owner below the top level (/var/tmp/x)
    /// fails with EOVERFLOW. `hint` says what to install.
    Kernel { hint: String },
}

/// Which overlay rootless containers get on this host.
pub fn rootless_overlay() -> RootlessOverlay {
    match super::rootfs::find_fuse_overlayfs() {
        Some(program) => RootlessOverlay::Fuse(program),
        None => RootlessOverlay::Kernel {
            hint: "rootless without fuse-overlayfs: creating files below a host directory \
                   the caller does not own (/var/tmp/x) fails with EOVERFLOW, as the \
                   kernel's overlay cannot copy up a directory of an unmapped owner; \
                   install fuse-overlayfs (apt-get install fuse-overlayfs) with /dev/fuse \
                   open to every user (chmod 0666 /dev/fuse)"
                .to_string(),
        },
    }
}

/// What a caller of `Sandbox::run_observed` hears while the container runs.
pub enum Observed<'a> {
    /// The command started; `init_pid` (in the runner's PID namespace) is
    /// in the container's namespaces.
    Started { init_pid: u32 },
    /// A chunk of the command's stdout or stderr, as it arrives.
    Output(&'a [u8]),
}

/// What preparing the sandbox found out, for the user to hear once.
pub struct SandboxNotes {
    pub notices: Vec<String>,
}

impl Sandbox {
    /// Prepares cgroups under `cgroup_parent` (default: isotest's own
    /// cgroup); when they cannot be used, tests run without limits.
    pub fn new(cgroup_parent: Option<&Path>) -> (Sandbox, SandboxNotes) {
        let (cgroups, notices) = match Cgroups::setup(cgroup_parent) {
            Ok(ready) => (Ok(ready.cgroups), ready.notices),
            Err(unavailable) => (Err(unavailable), Vec::new()),
        };
        let sandbox = Sandbox {
            cgroups,
            spare_networks: Mutex::default(),
            server: ForkServer::default(),
            scratch: None,
            user_namespace: None,
            bind_roots_only: false,
            fuse_overlayfs: None,
            sampler: None,
        };
        (sandbox, SandboxNotes { notices })
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
    /// caller to root inside (rootless mode). Returns a notice when the
    /// kernel cannot mount overlays there, and roots are bound read-only
    /// instead.
    pub fn use_user_namespace(&mut self, mapping: IdMapping) -> Option<String> {
        self.user_namespace = Some(mapping);
        self.bind_roots_only = !super::userns::overlay_supported();
        if self.bind_roots_only {
            return Some(
                "rootless on a kernel before 5.11, which has no overlayfs in user namespaces: \
                 every root is bound read-only (rootfs_mode = \"bind\"); /tmp, `tmpfs` and \
                 `writable` paths take writes"
                    .to_string(),
            );
        }
        match rootless_overlay() {
            RootlessOverlay::Fuse(program) => {
                self.fuse_overlayfs = Some(program);
                None
            }
            RootlessOverlay::Kernel { hint } => Some(hint),
        }
    }

    /// A network for a test and its services, or for a run's shared
    /// services, on `subnet` (`outbound`: with a NAT'd route to the host's
    /// networks). Rootless, it is owned by the user namespace of `beside`
    /// when given, so that a container can be on both. It lasts as long as
    /// the value.
    ///
    /// A test's plain network (private, no uplink, no other network beside
    /// it) comes from a finished test when one was given back
    /// (`reuse_network`): a bridge costs the kernel ~10 ms to make and tear
    /// down. Nothing of the last test answers on it: its holder has
    /// taken the bridge's ends of its veths down (waited for here), and has
    /// meanwhile prepared fresh namespaces for the new test's containers
    /// (`network::slots`).
    pub fn create_network(
        &self,
        subnet: Subnet,
        outbound: bool,
        beside: Option<&Network>,
    ) -> Result<Network, SetupFailure> {
        if subnet == Subnet::PRIVATE && !outbound && beside.is_none() {
            // The lock is not held while a network settles.
            let spare = || {
                self.spare_networks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()
            };
            while let Some(network) = spare() {
                if network.is_alive() && network.settle() {
                    return Ok(network);
                }
            }
        }
        let request = NetworkRequest {
            user_namespace: self.user_namespace.clone(),
            outbound,
            subnet,
            join_user_namespace: beside.and_then(Network::user_namespace),
        };
        super::network::create(&self.server, &request)
    }

    /// Takes back a test's network once every container on it has ended,
    /// for the next test; one that cannot serve again is let go.
    pub fn reuse_network(&self, network: Network) {
        if network.reusable && network.is_alive() {
            network.renew_slots();
            let mut spare = self
                .spare_networks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            spare.push(network);
        }
    }

    /// Samples each test's memory and CPU use every `interval` while it
    /// runs (`Outcome::samples`); without cgroups there is nothing to read.
    pub fn sample_every(&mut self, interval: Duration) -> std::io::Result<()> {
        if self.cgroups.is_ok() {
            self.sampler = Some(Sampler::start(interval)?);
        }
        Ok(())
    }

    /// The host's cgroup layout.
    pub fn cgroup_layout(&self) -> CgroupLayout {
        match &self.cgroups {
            Ok(cgroups) => cgroups.layout(),
            Err(unavailable) => unavailable.layout,
        }
    }

    /// Whether containers start in a user namespace of their own (rootless
    /// mode), as they do when isotest runs without root.
    pub fn rootless(&self) -> bool {
        self.user_namespace.is_some()
    }

    /// Why limits and usage figures are unavailable, if they are.
    pub fn cgroups_unavailable(&self) -> Option<&Unavailable> {
        self.cgroups.as_ref().err()
    }

    /// Runs `spec` in a fresh container (and cgroup) and waits for it.
    pub fn run(&self, spec: &SandboxSpec, output: OutputMode, stop: &StopRequest) -> Outcome {
        self.run_observed(spec, output, stop, &mut |_| {})
    }

    /// `run`, telling `observer` when the command starts and what it
    /// prints (when captured) as it goes.
    ///
    /// (Some 85 lines: the runner's whole per-test path, cgroup, scratch,
    /// network, hand-over, collect, teardown, in the order it happens.)
    pub fn run_observed(
        &self,
        spec: &SandboxSpec,
        output: OutputMode,
        stop: &StopRequest,
        observer: &mut dyn FnMut(Observed<'_>),
    ) -> Outcome {
        let requested = (Instant::now(), monotonic_ns());
        let mut cgroup = match &self.cgroups {
            Ok(cgroups) => match cgroups.create(&spec.limits) {
                Ok(group) => Some(group),
                Err(failure) => return Outcome::setup_failed(failure),
            },
            Err(_) => None,
        };
        if self.scratch.is_some() && spec.disk_bytes.is_some() {
            // A directory on the host's disk has no size of its own.
            return Outcome::setup_failed(SetupFailure {
                step: "limit the test's disk space".into(),
                cause: "`disk` needs the default scratch space (a tmpfs of that size), \
                        and --scratch DIR replaces it"
                    .into(),
                hint: Some("drop --scratch, or the test's `disk` setting".into()),
                host_unsupported: false,
                errno: None,
            });
        }
        let scratch = match self.scratch.as_deref().map(ScratchDir::create).transpose() {
            Ok(scratch) => scratch,
            Err(failure) => return Outcome::setup_failed(failure),
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
        let request = SupervisorRequest {
            spec,
            cgroup_procs: cgroup
                .iter()
                .flat_map(|g| g.procs_files())
                .map(|p| p.into_os_string().into_encoded_bytes())
                .collect(),
            cgroup_view: cgroup
                .as_ref()
                .map(|g| g.view().clone())
                .unwrap_or_default(),
            // fuse-overlayfs gives copied-up directories their owners' ids
            // (subordinate ones), which the runner could not remove from a
            // --scratch directory: there the kernel's overlay serves.
            fuse_overlayfs: self
                .fuse_overlayfs
                .as_ref()
                .filter(|_| self.scratch.is_none())
                .map(|p| p.as_os_str().as_encoded_bytes().to_vec()),
        };
        let watch = self
            .sampler
            .as_ref()
            .zip(cgroup.as_ref())
            .map(|(sampler, group)| sampler.watch(group.probe(), requested.0));
        let (mut outcome, command_started_ns) = match self.start(&request, output) {
            Ok(started) => collect(started, &request.spec, stop, cgroup.as_mut(), observer),
            Err(failure) => (failed_outcome(failure), None),
        };
        if let (Some(sampler), Some(watch)) = (&self.sampler, watch) {
            outcome.samples = sampler.finish(watch);
        }
        if let (Some(group), Ok(cgroups)) = (cgroup, &self.cgroups) {
            cgroups.remove(group);
        }
        outcome.phases = phases(
            requested.1,
            command_started_ns,
            outcome.wall,
            monotonic_ns(),
        );
        outcome
    }

    /// Hands the test to the server: the request on a pipe, the
    /// output pipes (or the runner's own stdout and stderr), and a report
    /// socket, on which the supervisor sends a pidfd of itself, then its
    /// report.
    fn start(
        &self,
        request: &SupervisorRequest,
        output: OutputMode,
    ) -> Result<Started, SetupFailure> {
        let (request_read, request_write) =
            pipe2(OFlag::O_CLOEXEC).step(|| "create the request pipe".into())?;
        let (report, report_theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .step(|| "create the report socket".into())?;
        let capture = || pipe2(OFlag::O_CLOEXEC).step(|| "create an output pipe".into());
        let (stdout, stderr, ours) = match output {
            OutputMode::Capture { limit_per_stream } => {
                let (out_read, out_write) = capture()?;
                let (err_read, err_write) = capture()?;
                let ours = [Some(out_read), Some(err_read)];
                (Some(out_write), Some(err_write), (ours, limit_per_stream))
            }
            OutputMode::Inherit => (None, None, ([None, None], 0)),
        };
        let server = self.server.submit(&TestFds {
            request: request_read.as_fd(),
            stdout: stdout
                .as_ref()
                .map_or(std::io::stdout().as_fd(), |fd| fd.as_fd()),
            stderr: stderr
                .as_ref()
                .map_or(std::io::stderr().as_fd(), |fd| fd.as_fd()),
            report: report_theirs.as_fd(),
        })?;
        // Only the supervisor may hold the write ends, or EOF never comes.
        drop((request_read, stdout, stderr, report_theirs));
        let json = serde_json::to_vec(request).expect("requests serialize");
        // A supervisor that died early shows in its report (or lack of one).
        let _ = std::fs::File::from(request_write).write_all(&json);
        let ([stdout, stderr], limit) = ours;
        Ok(Started {
            server,
            streams: [
                Stream::output(stdout, limit),
                Stream::output(stderr, limit),
                Stream::report(report),
            ],
        })
    }
}

/// A test the server took: the streams to read until EOF.
struct Started {
    server: Arc<Server>,
    streams: [Stream; 3],
}

fn failed_outcome(failure: SetupFailure) -> Outcome {
    Outcome::setup_failed(failure)
}

/// Setup runs from the request to the command's start (all of it when
/// the command never started), teardown from the command's end to `ended`;
/// times in `monotonic_ns`.
fn phases(requested: u64, command_started: Option<u64>, wall: Duration, ended: u64) -> Phases {
    let span = |from: u64, to: u64| Duration::from_nanos(to.saturating_sub(from));
    match command_started {
        Some(started) => Phases {
            setup: span(requested, started),
            teardown: span(started + wall.as_nanos() as u64, ended),
        },
        None => Phases {
            setup: span(requested, ended),
            teardown: Duration::ZERO,
        },
    }
}

/// Reads output and the report until the supervisor is done; also
/// returns when the command started (`monotonic_ns`), if it did.
fn collect(
    started: Started,
    spec: &SandboxSpec,
    stop: &StopRequest,
    mut cgroup: Option<&mut TestCgroup>,
    observer: &mut dyn FnMut(Observed<'_>),
) -> (Outcome, Option<u64>) {
    let Started {
        server,
        mut streams,
    } = started;
    let backstop = spec
        .timeout
        .map(|t| Instant::now() + t + spec.grace + SUPERVISOR_SLACK);
    let mut stop_level_sent = 0;
    let mut killed_by_backstop = false;

    while streams.iter().any(Stream::is_open) {
        if let Some(group) = cgroup.as_mut() {
            group.sample();
        }
        // Signals wait for the supervisor's pidfd, its first message.
        if let Some(supervisor) = &streams[2].pidfd {
            let level = stop.level();
            if level > stop_level_sent {
                // The supervisor stops the container; a second SIGTERM
                // skips grace.
                let _ = pidfd_send_signal(supervisor.as_fd(), Signal::SIGTERM);
                stop_level_sent = level;
            }
            if backstop.is_some_and(|b| Instant::now() >= b) && !killed_by_backstop {
                // The supervisor is stuck: killing it kills init
                // (PDEATHSIG) and so the whole container.
                let _ = pidfd_send_signal(supervisor.as_fd(), Signal::SIGKILL);
                killed_by_backstop = true;
            }
        }
        if !read_ready(&mut streams, stop, observer) {
            break;
        }
    }
    let usage = cgroup.map(|group| group.usage());
    let [stdout, stderr, report] = streams;
    let report: Option<Report> = serde_json::from_slice(&report.raw).ok();
    let report = report.unwrap_or_else(|| {
        let ending = if killed_by_backstop {
            Ending::TimedOut
        } else if stop.is_requested() {
            Ending::Stopped
        } else {
            Ending::SetupFailed(SetupFailure {
                step: "sandbox supervisor".into(),
                cause: match server.fate() {
                    Some(exit) => format!("the sandbox server {exit} while the test ran"),
                    None => "ended without a report".into(),
                },
                hint: None,
                host_unsupported: false,
                errno: None,
            })
        };
        Report::without_command(ending)
    });
    let outcome = Outcome {
        ending: report.ending,
        wall: report.wall,
        leaked_processes: report.leaked_processes,
        rusage: report.rusage,
        usage,
        stdout: stdout.buffer.finish(),
        stderr: stderr.buffer.finish(),
        phases: Phases::default(),
        samples: Vec::new(),
    };
    (outcome, report.command_started_ns)
}

/// Waits until a stream has something (or a stop request arrives, or
/// `STOP_POLL` passes) and reads what is there. False when poll failed.
fn read_ready(
    streams: &mut [Stream; 3],
    stop: &StopRequest,
    observer: &mut dyn FnMut(Observed<'_>),
) -> bool {
    let mut fds: Vec<PollFd> = streams
        .iter()
        .filter_map(|s| {
            s.fd.as_ref()
                .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
        })
        .collect();
    // Last, so that the streams' readiness lines up with them below.
    if let Some(wake) = stop.first_request() {
        fds.push(PollFd::new(wake, PollFlags::POLLIN));
    }
    match poll(
        &mut fds,
        PollTimeout::try_from(STOP_POLL).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(0) | Err(Errno::EINTR) => return true,
        Err(_) => return false,
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
            stream.read_available(observer);
        }
    }
    true
}

/// One stream from the supervisor, read until EOF: an output pipe, or the
/// report socket.
struct Stream {
    fd: Option<OwnedFd>,
    buffer: BoundedBuffer,
    /// The report stream keeps everything (it is small and ours).
    raw: Vec<u8>,
    is_report: bool,
    /// The supervisor's pidfd, the report socket's first message.
    pidfd: Option<OwnedFd>,
}

impl Stream {
    fn output(fd: Option<OwnedFd>, limit: usize) -> Self {
        Stream {
            fd,
            buffer: BoundedBuffer::new(limit),
            raw: Vec::new(),
            is_report: false,
            pidfd: None,
        }
    }

    fn report(fd: OwnedFd) -> Self {
        Stream {
            is_report: true,
            ..Stream::output(Some(fd), 0)
        }
    }

    fn is_open(&self) -> bool {
        self.fd.is_some()
    }

    fn read_available(&mut self, observer: &mut dyn FnMut(Observed<'_>)) {
        let Some(fd) = &self.fd else { return };
        let mut chunk = [0u8; 64 * 1024];
        if self.is_report {
            match server::receive(fd.as_fd(), &mut chunk) {
                Ok((0, _)) | Err(_) => self.fd = None,
                Ok((n, fds)) if fds.is_empty() => self.raw.extend_from_slice(&chunk[..n]),
                Ok((n, fds)) => match Announcement::decode(&chunk[..n]) {
                    Some(Announcement::Init) => {
                        if let Some(init_pid) = fds.first().and_then(|fd| pidfd_pid(fd.as_fd())) {
                            observer(Observed::Started { init_pid });
                        }
                    }
                    Some(Announcement::Supervisor) => self.pidfd = fds.into_iter().next(),
                    None => {}
                },
            }
            return;
        }
        match read_fd(fd.as_fd(), &mut chunk) {
            Ok(0) | Err(_) => self.fd = None,
            Ok(n) => {
                self.buffer.push(&chunk[..n]);
                observer(Observed::Output(&chunk[..n]));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_time_around_the_command() {
        let ms = |n: u64| Duration::from_millis(n);
        let at = |n: u64| n * 1_000_000;
        assert_eq!(
            phases(at(100), Some(at(103)), ms(50), at(160)),
            Phases {
                setup: ms(3),
                teardown: ms(7)
            }
        );
        assert_eq!(
            phases(at(100), None, Duration::ZERO, at(104)),
            Phases {
                setup: ms(4),
                teardown: Duration::ZERO
            },
            "a command that never started: all of it was setup"
        );
        assert_eq!(
            phases(at(100), Some(at(101)), ms(80), at(160)).teardown,
            Duration::ZERO,
            "clock skew never makes a negative span"
        );
    }
}
