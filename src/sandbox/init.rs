//! PID 1 of the container. It finishes the container's setup from inside
//! (mount, network, UTS and IPC namespaces, root filesystem, hostname,
//! loopback), starts the command, reaps every orphan, forwards SIGTERM,
//! SIGINT and SIGHUP to the command's process group, and when the command
//! exits reports how, counts what it left running, and exits itself, which
//! kills the rest of the PID namespace.
//!
//! It runs in a forked child of the single-threaded supervisor, so allocating
//! and everything else is allowed here.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{
    kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    chdir, chown, execve, fork, pipe2, setgid, setgroups, sethostname, setsid, setuid, ForkResult,
    Gid, Pid, Uid,
};
use serde::{Deserialize, Serialize};

use super::identity::{self, Identity};
use super::messages::{ExecFailure, ExecStep, GoAhead};
use super::security;
use super::spec::{SandboxSpec, SetupFailure, SupervisorRequest};
use super::step::{failure, SetupStep, Step};
use super::{fds, net, network, rootfs};

/// Signals init handles through its signalfd; the supervisor blocks them before
/// forking so none is lost in between.
pub(super) fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(signal);
    }
    set
}

/// What init tells the supervisor, one JSON line per message.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum InitMessage {
    /// The command has started (at `monotonic_ns`); the timeout runs
    /// from here. Daemon processes (fuse-overlayfs) are not the
    /// test's: they are not counted as left behind.
    Started {
        monotonic_ns: u64,
        daemon_processes: u32,
    },
    Finished {
        exit: CommandExit,
        wall_nanos: u64,
        leaked_processes: u32,
    },
    SetupFailed(SetupFailure),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) enum CommandExit {
    Code(i32),
    Signal(i32),
}

/// The body of PID 1; never returns.
pub(super) fn run(
    request: &SupervisorRequest,
    report: OwnedFd,
    lifeline: OwnedFd,
    cgroup_procs: Vec<File>,
) -> ! {
    let mut report = File::from(report);
    let code = match supervise_command(request, &mut report, lifeline, &cgroup_procs) {
        Ok(code) => code,
        Err(failure) => {
            send(&mut report, &InitMessage::SetupFailed(failure));
            1
        }
    };
    // SAFETY: _exit skips atexit handlers and stdio flushing, which belong
    // to the supervisor this process was forked from.
    unsafe { libc::_exit(code) }
}

fn supervise_command(
    request: &SupervisorRequest,
    report: &mut File,
    lifeline: OwnedFd,
    cgroup_procs: &[File],
) -> Result<i32, SetupFailure> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).step(|| "set parent-death signal".into())?;
    // EOF instead of the go-ahead: the supervisor is gone.
    if GoAhead::wait(&lifeline) != Ok(true) {
        // The supervisor died (before the death signal was armed, perhaps).
        unsafe { libc::_exit(1) }
    }
    drop(lifeline);
    let spec = &request.spec;
    let mut namespaces =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    let own_loopback = !spec.host_network && spec.network.is_none();
    if let Some(attachment) = &spec.network {
        // Before the mount namespace: /proc is still the host's.
        network::join(attachment)?;
    } else if own_loopback {
        namespaces |= CloneFlags::CLONE_NEWNET;
    }
    unshare(namespaces).unshare_step(namespaces)?;
    let daemons = rootfs::enter_new_root(request)?;
    sethostname(&spec.hostname).step(|| format!("set hostname {}", spec.hostname))?;
    if own_loopback {
        net::bring_up_loopback()?;
    }
    let identity = identity::resolve(spec.user.as_deref(), spec.group.as_deref())?;
    if let Some(id) = identity {
        let home = OsStr::from_bytes(&spec.home);
        chown(
            home,
            Some(Uid::from_raw(id.uid)),
            Some(Gid::from_raw(id.gid)),
        )
        .step(|| format!("give {} to uid {}", home.to_string_lossy(), id.uid))?;
    }

    let signals = SignalFd::with_flags(&handled_signals(), SfdFlags::SFD_CLOEXEC)
        .step(|| "create signalfd".into())?;
    // The clock starts at the fork: the command's own exec counts, and a
    // `sleep 2` never shows as 1.999s.
    let started = Instant::now();
    let monotonic_ns = super::spec::monotonic_ns();
    let command = start_command(spec, identity, cgroup_procs)?;
    send(
        report,
        &InitMessage::Started {
            monotonic_ns,
            daemon_processes: daemons.len() as u32,
        },
    );

    let (exit, forwarded_signal) = wait_for_command(command, &signals)?;
    let wall_nanos = started.elapsed().as_nanos() as u64;
    // Killed by a signal (a test's own `kill -9 -1`, say): its group may
    // still be dying too.
    let killed = matches!(exit, CommandExit::Signal(_));
    let leaked_processes = count_leftovers(forwarded_signal || killed, &daemons);
    send(
        report,
        &InitMessage::Finished {
            exit,
            wall_nanos,
            leaked_processes,
        },
    );
    Ok(match exit {
        CommandExit::Code(code) => code,
        CommandExit::Signal(signal) => 128 + signal,
    })
}

fn send(report: &mut File, message: &InitMessage) {
    let mut line = serde_json::to_vec(message).expect("init messages serialize");
    line.push(b'\n');
    // Nobody is left to tell if the supervisor is gone.
    let _ = report.write_all(&line);
}

/// Forks the command. The child reports a failed chdir or exec through a
/// close-on-exec pipe: EOF without data means exec succeeded.
fn start_command(
    spec: &SandboxSpec,
    identity: Option<Identity>,
    cgroup_procs: &[File],
) -> Result<Pid, SetupFailure> {
    let (status_read, status_write) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).step(|| "create exec status pipe".into())?;
    // SAFETY: init is single-threaded, so the child may do anything.
    match unsafe { fork() }.step(|| "fork the test command".into())? {
        ForkResult::Child => {
            drop(status_read);
            let failed = exec_command(spec, identity, cgroup_procs);
            let _ = nix::unistd::write(&status_write, &failed.encode());
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(status_write);
            let mut status = Vec::new();
            File::from(status_read)
                .read_to_end(&mut status)
                .step(|| "read exec status".into())?;
            let Some(failed) = ExecFailure::decode(&status) else {
                return Ok(child);
            };
            let _ = waitpid(child, None);
            Err(failure(
                failed_step(failed.step, spec, identity),
                failed.errno,
            ))
        }
    }
}

/// How a failed step of starting the command shows in messages.
fn failed_step(step: ExecStep, spec: &SandboxSpec, identity: Option<Identity>) -> SetupStep {
    match step {
        ExecStep::CloseFds => "close inherited file descriptors".into(),
        ExecStep::JoinCgroup => "join the test's cgroup".into(),
        ExecStep::CgroupNamespace => SetupStep::unshare(CloneFlags::CLONE_NEWCGROUP),
        ExecStep::Security(step) => step.describe().into(),
        ExecStep::Identity => format!("switch to {}", describe(identity)).into(),
        ExecStep::Chdir => format!("chdir {}", lossy(&spec.cwd)).into(),
        ExecStep::Exec => SetupStep::Exec(lossy(&spec.argv[0]).to_string()),
    }
}

fn describe(identity: Option<Identity>) -> String {
    identity.map_or_else(String::new, |id| format!("uid {} gid {}", id.uid, id.gid))
}

/// In the command's child: a new session, default signal handling, the
/// test's cgroup, the user and group, the working directory, then exec.
/// Returns only on failure.
fn exec_command(
    spec: &SandboxSpec,
    identity: Option<Identity>,
    cgroup_procs: &[File],
) -> ExecFailure {
    let fail = |step, errno| ExecFailure { step, errno };
    let _ = setsid();
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if signal != Signal::SIGKILL && signal != Signal::SIGSTOP {
            // SAFETY: restoring default dispositions installs no handler.
            let _ = unsafe { sigaction(signal, &default) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Whatever isotest itself inherited from its caller (an open host
    // directory, a jobserver pipe) must not reach the test, where
    // /proc/self/fd would lead out of the container. Our own pipes stay
    // usable until exec.
    if let Err(errno) = fds::cloexec_from(3) {
        return fail(ExecStep::CloseFds, errno);
    }
    for mut procs in cgroup_procs {
        // `0` is the writing process itself.
        if let Err(error) = procs.write_all(b"0") {
            let errno = Errno::from_raw(error.raw_os_error().unwrap_or(0));
            return fail(ExecStep::JoinCgroup, errno);
        }
    }
    // Its own cgroup namespace, rooted at the group it just joined:
    // /proc/self/cgroup shows `/`, as the group shows at /sys/fs/cgroup.
    if let Err(errno) = unshare(CloneFlags::CLONE_NEWCGROUP) {
        return fail(ExecStep::CgroupNamespace, errno);
    }
    if let Err((step, errno)) = security::before_user_switch(&spec.security) {
        return fail(ExecStep::Security(step), errno);
    }
    if let Some(id) = identity {
        let gid = Gid::from_raw(id.gid);
        let switched = setgroups(&[gid])
            .and_then(|()| setgid(gid))
            .and_then(|()| setuid(Uid::from_raw(id.uid)));
        if let Err(errno) = switched {
            return fail(ExecStep::Identity, errno);
        }
    }
    if let Err((step, errno)) = security::after_user_switch(&spec.security) {
        return fail(ExecStep::Security(step), errno);
    }
    if let Err(errno) = chdir(OsStr::from_bytes(&spec.cwd)) {
        return fail(ExecStep::Chdir, errno);
    }
    let argv: Vec<CString> = spec.argv.iter().map(|a| cstring(a)).collect();
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|(key, value)| cstring(&[key.as_slice(), b"=", value.as_slice()].concat()))
        .collect();
    fail(ExecStep::Exec, exec_searching_path(&argv, &env, spec))
}

/// execvpe: a program name without `/` is looked up in the command's PATH.
fn exec_searching_path(argv: &[CString], env: &[CString], spec: &SandboxSpec) -> Errno {
    let program = &spec.argv[0];
    if program.contains(&b'/') {
        return execve(&argv[0], argv, env).unwrap_err();
    }
    let path = spec
        .env
        .iter()
        .find(|(key, _)| key == b"PATH")
        .map(|(_, value)| value.as_slice())
        .unwrap_or(b"/usr/bin:/bin");
    let mut error = Errno::ENOENT;
    for dir in path.split(|b| *b == b':').filter(|d| !d.is_empty()) {
        let candidate = cstring(&[dir, b"/", program.as_slice()].concat());
        match execve(&candidate, argv, env).unwrap_err() {
            Errno::ENOENT | Errno::ENOTDIR => {}
            other => error = other,
        }
    }
    error
}

/// Reaps children and forwards termination signals until the command exits.
/// Also says whether a signal was forwarded (the command is being stopped).
fn wait_for_command(command: Pid, signals: &SignalFd) -> Result<(CommandExit, bool), SetupFailure> {
    let mut forwarded_signal = false;
    loop {
        let Some(info) = signals.read_signal().step(|| "read signalfd".into())? else {
            continue;
        };
        match Signal::try_from(info.ssi_signo as i32).ok() {
            Some(Signal::SIGCHLD) => {
                if let Some(exit) = reap_zombies(Some(command)) {
                    return Ok((exit, forwarded_signal));
                }
            }
            Some(forwarded) => {
                // The command leads its own process group (setsid).
                let _ = kill(Pid::from_raw(-command.as_raw()), forwarded);
                forwarded_signal = true;
            }
            None => {}
        }
    }
}

/// Processes the command left running. When it was being stopped, the rest
/// of its group got the same signal: give them a moment to finish dying so
/// they are not counted as left behind.
fn count_leftovers(forwarded_signal: bool, daemons: &[Pid]) -> u32 {
    let settle_until = Instant::now() + SETTLE_TIME;
    loop {
        reap_zombies(None);
        let count = count_live_processes(daemons);
        if count == 0 || !forwarded_signal || Instant::now() >= settle_until {
            return count;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

const SETTLE_TIME: Duration = Duration::from_millis(100);

/// Reaps every exited child; returns how `command` ended if it was among them.
fn reap_zombies(command: Option<Pid>) -> Option<CommandExit> {
    let mut command_exit = None;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if Some(pid) == command => {
                command_exit = Some(CommandExit::Code(code));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if Some(pid) == command => {
                command_exit = Some(CommandExit::Signal(signal as i32));
            }
            Ok(WaitStatus::Stopped(pid, signal)) => let_tracee_go(pid, signal),
            Ok(WaitStatus::StillAlive) | Err(_) => return command_exit,
            Ok(_) => {}
        }
    }
}

/// A child that called ptrace(PTRACE_TRACEME) made init its tracer, and
/// init sees it stop at every signal: detach it so it goes on, handing on
/// the signal that stopped it, except the SIGTRAP of an exec, which only
/// exists for a tracer and would kill the process.
fn let_tracee_go(pid: Pid, signal: Signal) {
    let deliver = (signal != Signal::SIGTRAP).then_some(signal);
    // ESRCH: it died meanwhile; nothing is left to release.
    let _ = nix::sys::ptrace::detach(pid, deliver);
}

/// Processes in the container other than init and its `daemons` that are
/// neither zombies nor already dying from a SIGKILL.
fn count_live_processes(daemons: &[Pid]) -> u32 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != 1 && !daemons.contains(&Pid::from_raw(*pid as i32)))
        .filter(|pid| !is_leaving(*pid))
        .count() as u32
}

/// A zombie, or one with SIGKILL pending: it is on its way out.
fn is_leaving(pid: u32) -> bool {
    match super::procstat::read(pid) {
        None => return true, // gone already
        Some(stat) if stat.has_exited() => return true,
        Some(_) => {}
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    status.lines().any(|line| {
        let pending = line
            .strip_prefix("SigPnd:")
            .or_else(|| line.strip_prefix("ShdPnd:"));
        pending
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & SIGKILL_BIT != 0)
    })
}

fn cstring(bytes: &[u8]) -> CString {
    // Arguments with NUL bytes cannot be passed to exec; cut at the NUL,
    // as the kernel would read them.
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("no NUL before end")
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
