//! The server process: a fresh, single-threaded isotest (re-exec of
//! /proc/self/exe with a hidden subcommand) that the runner starts once per
//! run. For each test it receives the request pipe, the stdout and stderr
//! pipes and the report socket, and forks a supervisor child that runs one
//! container (`supervisor::run_one`). It only receives, forks and reaps, so
//! it never holds a test up.
//!
//! Forking from here rather than from the multi-threaded runner is what
//! makes allocation and locks safe in the supervisor; forking rather than
//! exec'ing is what makes it cheap.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

use super::passing;
use crate::sandbox::fds;
use crate::sandbox::messages::ServerRequest;
use crate::sandbox::network;
use crate::sandbox::seccomp;
use crate::sandbox::step::failure;
use crate::sandbox::supervisor::{self, REPORT_FD};

/// The fd on which the server talks to the runner.
pub(super) const SOCKET_FD: i32 = 3;

/// Entry point of the hidden subcommand. `runner` is the pid of the process
/// that started us, to detect that it died before we armed PDEATHSIG.
pub fn server_main(runner: i32) -> i32 {
    if fcntl(borrow(SOCKET_FD), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).is_err() {
        eprintln!("isotest: the sandbox server is internal; run `isotest exec` instead");
        return 2;
    }
    // SAFETY: fd 3 was handed to us by the runner for this purpose.
    let socket = unsafe { OwnedFd::from_raw_fd(SOCKET_FD) };
    // The runner's thread that started us lives for the whole run, so this
    // fires when the runner dies, and takes every supervisor along.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || getppid().as_raw() != runner {
        return 1;
    }
    // Compiled once here, inherited by every fork.
    seccomp::prepare_default_filter();
    match serve(&socket) {
        Ok(()) => 0,
        Err(errno) => {
            eprintln!("isotest: sandbox server: {errno}");
            1
        }
    }
}

fn borrow(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: only used on fds that stay open for the process lifetime.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Forks a supervisor per request and reaps them until the runner closes
/// its end; then kills what is left (nothing, after a normal run).
fn serve(socket: &OwnedFd) -> nix::Result<()> {
    let mut child_exits = SigSet::empty();
    child_exits.add(Signal::SIGCHLD);
    child_exits.thread_block()?;
    let reaper =
        SignalFd::with_flags(&child_exits, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let server = getpid();
    let mut children = BTreeSet::new();
    loop {
        let mut fds = [
            PollFd::new(socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(reaper.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            other => other?,
        };
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let (request, reap) = (ready(&fds[0]), ready(&fds[1]));
        if reap {
            while let Ok(Some(_)) = reaper.read_signal() {}
            reap_exited(&mut children);
        }
        if request {
            let mut message = [0u8; 1];
            let (len, fds) = passing::receive(socket.as_fd(), &mut message)?;
            if len == 0 {
                break;
            }
            // Anything but a request with four descriptors is not one;
            // dropping them ends whatever waits on them.
            let request = ServerRequest::decode(&message[..len]);
            if let (Some(request), Ok(fds)) = (request, <[OwnedFd; 4]>::try_from(fds)) {
                if let Some(child) = start_supervisor(server, fds, request) {
                    children.insert(child);
                }
            }
        }
    }
    for child in &children {
        let _ = kill(*child, Signal::SIGKILL);
    }
    for child in children {
        let _ = waitpid(child, None);
    }
    Ok(())
}

fn reap_exited(children: &mut BTreeSet<Pid>) {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    children.remove(&pid);
                }
            }
        }
    }
}

/// Forks the supervisor of one test, or the holder of one test's network;
/// the parent keeps none of its fds. When fork fails, the test's report
/// says so.
fn start_supervisor(server: Pid, fds: [OwnedFd; 4], request: ServerRequest) -> Option<Pid> {
    // SAFETY: the server is single-threaded, so the child may do anything.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = match (take_test_fds(server, fds), request) {
                (Ok(()), ServerRequest::Network) => network::run_holder(),
                (Ok(()), ServerRequest::Test) => supervisor::run_one(),
                (Err(_), _) => 1,
            };
            // SAFETY: _exit skips atexit handlers and stdio flushing, which
            // belong to the server.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => Some(child),
        Err(errno) => {
            let report =
                supervisor::setup_failed(failure("fork the sandbox supervisor".into(), errno));
            let json = serde_json::to_vec(&report).expect("reports serialize");
            let _ = nix::unistd::write(&fds[3], &json);
            None
        }
    }
}

/// In the supervisor child: dies with the server, and keeps only its own
/// test's descriptors: the request pipe on stdin, output on stdout and
/// stderr, the report socket on fd 3; every other descriptor (the server's
/// socket, its signalfd) is closed. There is no exec to drop them.
fn take_test_fds(server: Pid, fds: [OwnedFd; 4]) -> nix::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if getppid() != server {
        return Err(Errno::ESRCH);
    }
    // Above 3 first, so that no target overwrites a source. (On an error
    // the child exits, which closes everything.)
    let high: Vec<i32> = fds
        .iter()
        .map(|fd| fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(REPORT_FD + 1)))
        .collect::<nix::Result<_>>()?;
    for (target, fd) in high.into_iter().enumerate() {
        // SAFETY: our copy, open until close_from below.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        fds::dup_onto(fd, target as i32)?;
    }
    // Closed below with everything else above 3, not again on drop.
    std::mem::forget(fds);
    fds::close_from(REPORT_FD + 1)?;
    // The report socket stays out of the container (init and the command
    // inherit it across fork, not exec).
    fcntl(borrow(REPORT_FD), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}
