//! The supervisor of one container: a child the server forked for one
//! test (so single-threaded, with only that test's descriptors). It reads
//! its `SandboxSpec` from stdin, creates the PID namespace and forks the
//! container's init into it, enforces the timeout (SIGTERM, grace,
//! SIGKILL), honours stop requests from the runner, and sends a `Report`
//! on the report socket (fd 3).
//!
//! Doing this in a fork of the single-threaded server, never in a forked
//! child of the multi-threaded runner, is what makes allocation and locks
//! safe here.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{fork, pipe2, ForkResult, Pid};

use super::init::{self, CommandExit, InitMessage};
use super::messages::{Announcement, GoAhead};
use super::server;
use super::spec::{Ending, Report, Rusage, SandboxSpec, SetupFailure, SupervisorRequest};
use super::step::Step;

/// The fd of the report socket.
pub(super) const REPORT_FD: i32 = 3;

/// Supervises one container, with the request on stdin and the report
/// socket on fd 3 (the server arranged both, and armed PDEATHSIG). First
/// sends the runner a pidfd of this process, for stop requests; last, the
/// report. Returns the exit code.
pub(super) fn run_one() -> i32 {
    // SAFETY: fd 3 is the report socket the server put there for us.
    let report_out = unsafe { OwnedFd::from_raw_fd(REPORT_FD) };
    let mut mount_namespace = None;
    let report = match announce(report_out.as_fd()) {
        Err(failure) => setup_failed(failure),
        Ok(()) => match read_request() {
            Ok(request) => supervise(&request, report_out.as_fd(), &mut mount_namespace),
            Err(failure) => setup_failed(failure),
        },
    };
    let json = serde_json::to_vec(&report).expect("reports serialize");
    let sent = File::from(report_out).write_all(&json);
    // The runner goes on at EOF of the report; only then is the container's
    // mount namespace torn down (see `watch`).
    drop(mount_namespace);
    match sent {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Sends the runner a pidfd of this process.
fn announce(report: BorrowedFd<'_>) -> Result<(), SetupFailure> {
    let own = pidfd_open(Pid::this()).step(|| "pidfd_open(sandbox supervisor)".into())?;
    server::send(report, &Announcement::Supervisor.encode(), &[own.as_fd()])
        .step(|| "send the supervisor's pidfd".into())
}

/// Reads the request from stdin, then puts /dev/null there: the
/// container's stdin.
fn read_request() -> Result<SupervisorRequest, SetupFailure> {
    let mut json = Vec::new();
    std::io::stdin()
        .read_to_end(&mut json)
        .step(|| "read sandbox spec from the runner".into())?;
    let request = serde_json::from_slice(&json).map_err(|e| SetupFailure {
        step: "parse sandbox request".into(),
        cause: e.to_string(),
        hint: Some("the runner and supervisor binaries differ; reinstall isotest".into()),
        host_unsupported: false,
        errno: None,
    })?;
    let null = File::open("/dev/null").step(|| "open /dev/null".into())?;
    nix::unistd::dup2_stdin(&null).step(|| "put /dev/null on stdin".into())?;
    Ok(request)
}

pub(super) fn setup_failed(failure: SetupFailure) -> Report {
    Report::without_command(Ending::SetupFailed(failure))
}

/// Why the supervisor is stopping the container, if it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Timeout,
    Runner,
}

struct Stopping {
    reason: StopReason,
    kill_at: Instant,
    killed: bool,
}

fn supervise(
    request: &SupervisorRequest,
    report: BorrowedFd<'_>,
    mount_namespace: &mut Option<File>,
) -> Report {
    match start_and_watch(request, report, mount_namespace) {
        Ok(report) => report,
        Err(failure) => setup_failed(failure),
    }
}

fn start_and_watch(
    request: &SupervisorRequest,
    report: BorrowedFd<'_>,
    mount_namespace: &mut Option<File>,
) -> Result<Report, SetupFailure> {
    let spec = &request.spec;
    let mut blocked = init::handled_signals();
    blocked.thread_block().step(|| "block signals".into())?;
    blocked.remove(Signal::SIGCHLD);
    let stop_signals =
        SignalFd::with_flags(&blocked, SfdFlags::SFD_CLOEXEC).step(|| "create signalfd".into())?;
    let (messages_read, messages_write) =
        pipe2(OFlag::O_CLOEXEC).step(|| "create init report pipe".into())?;
    let (lifeline_read, lifeline_write) =
        pipe2(OFlag::O_CLOEXEC).step(|| "create lifeline pipe".into())?;
    let cgroup_procs = open_cgroup_procs(&request.cgroup_procs)?;
    match (&spec.user_namespace, &spec.network) {
        (Some(_), Some(network)) if network.user_namespace.is_some() => {
            let path = network.user_namespace.as_deref().unwrap_or_default();
            super::network::join_user_namespace(path)?;
        }
        (Some(mapping), _) => {
            super::userns::enter(mapping).map_err(super::userns::explain)?;
        }
        (None, _) => {}
    }
    unshare(CloneFlags::CLONE_NEWPID).unshare_step(CloneFlags::CLONE_NEWPID)?;
    // SAFETY: the supervisor is single-threaded; the child may do anything.
    let init_pid = match unsafe { fork() }.step(|| "fork the container init".into())? {
        ForkResult::Child => {
            drop((messages_read, lifeline_write, stop_signals));
            init::run(request, messages_write, lifeline_read, cgroup_procs)
        }
        ForkResult::Parent { child } => child,
    };
    drop((messages_write, lifeline_read, cgroup_procs));
    // Only the container writes the output: holding it here would keep the
    // runner from seeing its end until this process exits.
    let null = File::open("/dev/null").step(|| "open /dev/null".into())?;
    nix::unistd::dup2_stdout(&null).step(|| "put /dev/null on stdout".into())?;
    nix::unistd::dup2_stderr(&null).step(|| "put /dev/null on stderr".into())?;
    // Init waits for this byte, which shows the supervisor is alive after it
    // armed its parent-death signal.
    GoAhead::send(&lifeline_write).step(|| "start the container init".into())?;
    let watched = watch(
        spec,
        init_pid,
        report,
        &messages_read,
        &stop_signals,
        lifeline_write,
        mount_namespace,
    );
    let rusage = wait_for_init(init_pid);
    let (ending, wall, leaked_processes, command_started_ns) = watched?;
    Ok(Report {
        ending,
        wall,
        leaked_processes,
        rusage,
        command_started_ns,
    })
}

/// Opens the test cgroup's cgroup.procs files (every v1 hierarchy, or the
/// v2 group). The command's process writes `0` to them just before exec,
/// so only the command and what it starts are charged to the test, not the
/// container's setup.
fn open_cgroup_procs(paths: &[Vec<u8>]) -> Result<Vec<File>, SetupFailure> {
    use std::os::unix::ffi::OsStrExt;
    paths
        .iter()
        .map(|file| {
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(file));
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .step(|| format!("open {}", path.display()))
        })
        .collect()
}

/// Follows init's messages, stop requests and the timeout until init exits.
///
/// When the command has started, it also takes a reference to the
/// container's mount namespace: tearing it down (and the overlay with it)
/// waits for expedited RCU grace periods, which would otherwise happen in
/// init's exit, before the report; holding it moves that wait after the
/// report, off the runner's path.
///
/// Then it sends the runner a pidfd of init (`Announcement::Init`): its
/// namespaces are the container's from then on (a service's readiness is
/// read there).
///
/// (Some 85 lines: one poll loop whose branches share its state, the
/// deadline, the stop in progress and init's messages; split, each part
/// would take all of it by `&mut`.)
fn watch(
    spec: &SandboxSpec,
    init_pid: Pid,
    report: BorrowedFd<'_>,
    messages: &OwnedFd,
    stop_signals: &SignalFd,
    _lifeline: OwnedFd,
    mount_namespace: &mut Option<File>,
) -> Result<(Ending, Duration, u32, Option<u64>), SetupFailure> {
    let init_exited = pidfd_open(init_pid).step(|| "pidfd_open(container init)".into())?;
    let mut inbox = Inbox::default();
    let mut started: Option<Instant> = None;
    let mut stopping: Option<Stopping> = None;
    let mut killed_processes = 0;
    let mut messages_open = true;

    loop {
        let now = Instant::now();
        let deadline = match (&stopping, started, spec.timeout) {
            (Some(s), _, _) if !s.killed => Some(s.kill_at),
            (None, Some(start), Some(timeout)) => Some(start + timeout),
            _ => None,
        };
        if deadline.is_some_and(|d| d <= now) {
            match &mut stopping {
                None => stopping = Some(begin_stop(init_pid, StopReason::Timeout, spec.grace)),
                Some(s) => {
                    // Init's daemons (fuse-overlayfs) are not the test's.
                    killed_processes =
                        count_descendants(init_pid).saturating_sub(inbox.daemon_processes);
                    let _ = kill(init_pid, Signal::SIGKILL);
                    s.killed = true;
                }
            }
            continue;
        }
        let timeout = match deadline {
            Some(d) => PollTimeout::try_from(d - now).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let mut fds = vec![
            PollFd::new(init_exited.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop_signals.as_fd(), PollFlags::POLLIN),
        ];
        if messages_open {
            fds.push(PollFd::new(messages.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(errno) => return Err(super::step::failure("poll".into(), errno)),
            Ok(_) => {}
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let init_done = ready(&fds[0]);
        let stop_requested = ready(&fds[1]);
        let messages_ready = messages_open && ready(&fds[2]);
        drop(fds);
        if messages_ready {
            messages_open = inbox.read_from(messages);
            if started.is_none() && inbox.started_ns.is_some() {
                started = Some(Instant::now());
                // Best effort: without it the teardown is only slower.
                *mount_namespace = File::open(format!("/proc/{init_pid}/ns/mnt")).ok();
                // Best effort: a runner that needs it waits in vain, and
                // says so.
                let _ = server::send(report, &Announcement::Init.encode(), &[init_exited.as_fd()]);
            }
        }
        if stop_requested {
            let _ = stop_signals.read_signal();
            match &mut stopping {
                None => stopping = Some(begin_stop(init_pid, StopReason::Runner, spec.grace)),
                // A second request skips the grace period.
                Some(s) => s.kill_at = Instant::now(),
            }
        }
        if init_done {
            while inbox.read_from(messages) {}
            break;
        }
    }

    let wall = started.map(|s| s.elapsed()).unwrap_or_default();
    let started_ns = inbox.started_ns;
    let (ending, wall, leaked) = verdict(stopping.map(|s| s.reason), inbox, wall, killed_processes);
    Ok((ending, wall, leaked, started_ns))
}

/// How the container ended, for how long the command ran and how many
/// processes it left behind: from why the supervisor stopped it (if it
/// did) and what init said.
fn verdict(
    stopped: Option<StopReason>,
    inbox: Inbox,
    wall: Duration,
    killed_processes: u32,
) -> (Ending, Duration, u32) {
    match (stopped, inbox.finished, inbox.failure) {
        (_, _, Some(failure)) => (Ending::SetupFailed(failure), Duration::ZERO, 0),
        (Some(StopReason::Timeout), finished, None) => {
            (Ending::TimedOut, wall, leaked(finished, killed_processes))
        }
        (Some(StopReason::Runner), finished, None) => {
            (Ending::Stopped, wall, leaked(finished, killed_processes))
        }
        (None, Some((exit, wall_nanos, leaked)), None) => {
            let ending = match exit {
                CommandExit::Code(code) => Ending::Exited(code),
                CommandExit::Signal(signal) => Ending::Signaled(signal),
            };
            (ending, Duration::from_nanos(wall_nanos), leaked)
        }
        (None, None, None) => (
            Ending::SetupFailed(SetupFailure {
                step: "container init".into(),
                cause: "exited before reporting how the command ended".into(),
                hint: None,
                host_unsupported: false,
                errno: None,
            }),
            wall,
            0,
        ),
    }
}

/// Leftover processes: as init counted them when the command ended, else
/// the processes killed with the container, less the command itself.
fn leaked(finished: Option<(CommandExit, u64, u32)>, killed_processes: u32) -> u32 {
    match finished {
        Some((_, _, leaked)) => leaked,
        None => killed_processes.saturating_sub(1),
    }
}

fn begin_stop(init_pid: Pid, reason: StopReason, grace: Duration) -> Stopping {
    // init forwards SIGTERM to the command's process group.
    let _ = kill(init_pid, Signal::SIGTERM);
    Stopping {
        reason,
        kill_at: Instant::now() + grace,
        killed: false,
    }
}

/// Messages from init, parsed as complete lines arrive.
#[derive(Default)]
struct Inbox {
    buffer: Vec<u8>,
    /// When the command started (`monotonic_ns`), once init said so.
    started_ns: Option<u64>,
    daemon_processes: u32,
    finished: Option<(CommandExit, u64, u32)>,
    failure: Option<SetupFailure>,
}

impl Inbox {
    /// Reads what is available; false at EOF.
    fn read_from(&mut self, fd: &OwnedFd) -> bool {
        let mut chunk = [0u8; 4096];
        let n = match nix::unistd::read(fd, &mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        self.buffer.extend_from_slice(&chunk[..n]);
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            match serde_json::from_slice(&line) {
                Ok(InitMessage::Started {
                    monotonic_ns,
                    daemon_processes,
                }) => {
                    self.started_ns = Some(monotonic_ns);
                    self.daemon_processes = daemon_processes;
                }
                Ok(InitMessage::Finished {
                    exit,
                    wall_nanos,
                    leaked_processes,
                }) => self.finished = Some((exit, wall_nanos, leaked_processes)),
                Ok(InitMessage::SetupFailed(failure)) => self.failure = Some(failure),
                Err(_) => {}
            }
        }
        true
    }
}

/// Reaps init; its rusage covers every process of the container, since
/// init reaped them all (wait4 reports the child and its waited-for
/// descendants).
fn wait_for_init(init_pid: Pid) -> Option<Rusage> {
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        let r = unsafe { libc::wait4(init_pid.as_raw(), &mut status, libc::__WALL, &mut usage) };
        if r >= 0 || Errno::last() != Errno::EINTR {
            break r;
        }
    };
    (reaped == init_pid.as_raw()).then(|| Rusage {
        user_usec: timeval_usec(usage.ru_utime),
        system_usec: timeval_usec(usage.ru_stime),
        max_rss_bytes: usage.ru_maxrss as u64 * 1024,
    })
}

fn timeval_usec(tv: libc::timeval) -> u64 {
    tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64
}

/// pidfd_open(2), which nix does not wrap (rustix does), with nix's errors
/// like the rest of the sandbox.
pub(super) fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid.as_raw()).ok_or(Errno::EINVAL)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).map_err(nix_errno)
}

fn nix_errno(errno: rustix::io::Errno) -> Errno {
    Errno::from_raw(errno.raw_os_error())
}

/// Opens and closes a pidfd on this process: whether the supervisor can
/// wait for a container's init through one here (`isotest doctor`).
pub fn probe_pidfd() -> nix::Result<()> {
    pidfd_open(Pid::this()).map(drop)
}

/// The pid a pidfd refers to (`Pid:` in its /proc/self/fdinfo entry).
pub fn pidfd_pid(pidfd: BorrowedFd<'_>) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|pid| pid.trim().parse().ok())
        .filter(|pid: &u32| *pid > 0)
}

/// pidfd_send_signal(2), which nix does not wrap (rustix does).
pub(super) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> nix::Result<()> {
    let signal = rustix::process::Signal::from_named_raw(signal as i32).ok_or(Errno::EINVAL)?;
    rustix::process::pidfd_send_signal(pidfd, signal).map_err(nix_errno)
}

/// Counts the processes under `pid` through /proc/PID/task/TID/children.
fn count_descendants(pid: Pid) -> u32 {
    let mut count = 0;
    let mut pending = vec![pid.as_raw()];
    while let Some(pid) = pending.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.filter_map(Result::ok) {
            let path = task.path().join("children");
            let Ok(children) = std::fs::read_to_string(path) else {
                continue;
            };
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                count += 1;
                pending.push(child);
            }
        }
    }
    count
}
