//! Rootless, the host's root as one fuse-overlayfs mount (what rootless
//! Podman does). The kernel's overlay cannot copy up a directory whose
//! owner is not mapped into the user namespace (root's /var/tmp: creating
//! /var/tmp/x fails with EOVERFLOW); fuse-overlayfs copies it up as the
//! caller and shows every file as root's (`squash_to_root`), so such writes
//! succeed and vanish like any other.
//!
//! Init opens /dev/fuse and mounts the FUSE filesystem at /newroot itself;
//! the daemon gets that descriptor (`/dev/fd/3`, which libfuse takes as
//! "already mounted") and serves it from a mount namespace of its own in
//! which the host's `/` is the root again and the scratch space sits at
//! /tmp: so it finds its program, its libraries and its layers, and the
//! FUSE mount, which exists only in the container's namespace, never
//! shows inside its own lower layer. It runs in the foreground as a child
//! of init, outside the test's cgroup, and dies with the PID namespace.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, FdFlag, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::{
    chdir, dup2_raw, dup2_stderr, dup2_stdin, dup2_stdout, execv, fork, pipe2, pivot_root,
    ForkResult, Pid,
};

use super::super::messages::GoAhead;
use super::super::spec::SetupFailure;
use super::super::step::Step;
use super::paths::{in_old_root, NEW_ROOT, OLD_ROOT, SCRATCH};

/// The descriptor of /dev/fuse in the daemon.
const DAEMON_FUSE_FD: i32 = 3;

/// Mounts the host's root at /newroot through fuse-overlayfs at `program`
/// (a host path), with the upper layer at /upper on the scratch space.
/// Returns the daemon's pid.
pub fn mount_host_root(program: &Path) -> Result<Pid, SetupFailure> {
    let fuse_device = in_old_root(Path::new("/dev/fuse"));
    let fuse = open(
        &fuse_device,
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| {
        let mut failure =
            super::super::step::failure(format!("open {}", fuse_device.display()).into(), errno);
        failure.hint = Some(
            "fuse-overlayfs needs /dev/fuse open to every user \
                 (chmod 0666 /dev/fuse, as the fuse3 package's udev rule does)"
                .into(),
        );
        failure
    })?;
    // The daemon's mount namespace must be copied before the FUSE mount
    // exists, or its lower layer would hold its own mount (and it would
    // wait on itself): it says when it has its namespace, then waits for
    // the mount before it starts.
    let (unshared_read, unshared_write) =
        pipe2(OFlag::O_CLOEXEC).step(|| "create a pipe for fuse-overlayfs".into())?;
    let (mounted_read, mounted_write) =
        pipe2(OFlag::O_CLOEXEC).step(|| "create a pipe for fuse-overlayfs".into())?;
    // SAFETY: init is single-threaded; the child only sets up and execs.
    let daemon = match unsafe { fork() }.step(|| "fork fuse-overlayfs".into())? {
        ForkResult::Child => {
            drop((unshared_read, mounted_write));
            exec_daemon(program, fuse, unshared_write, mounted_read);
            // SAFETY: leaves without running the forked parent's exit code.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => child,
    };
    drop((unshared_write, mounted_read));
    // No go-ahead (it died first) shows as the mount's failure below.
    GoAhead::wait(&unshared_read).step(|| "wait for fuse-overlayfs to start".into())?;
    let options = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other",
        fuse.as_raw_fd()
    );
    mount(
        Some("isotest"),
        NEW_ROOT,
        Some("fuse.fuse-overlayfs"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some(options.as_str()),
    )
    .mount_step(|| format!("fuse-overlayfs at {NEW_ROOT}"))?;
    GoAhead::send(&mounted_write).step(|| "start fuse-overlayfs".into())?;
    // Only the daemon holds the device now: if it fails to start, the
    // mount answers ENOTCONN instead of waiting for it for ever.
    drop(fuse);
    std::fs::read_dir(NEW_ROOT)
        .step(|| format!("read the fuse-overlayfs root at {NEW_ROOT}"))
        .map_err(|mut failure| {
            failure.hint = Some(format!(
                "{} did not start; run it by hand to see why, or uninstall it \
                 to use the kernel's overlay",
                program.display()
            ));
            failure
        })?;
    Ok(daemon)
}

/// In the daemon's child: its own mount namespace with the host's root as
/// `/` and the scratch space at /tmp, quiet stdio, then exec. Returns only
/// on failure.
fn exec_daemon(program: &Path, fuse: OwnedFd, unshared: OwnedFd, mounted: OwnedFd) -> Errno {
    let result = (|| -> nix::Result<std::convert::Infallible> {
        unshare(CloneFlags::CLONE_NEWNS)?;
        GoAhead::send(&unshared)?;
        if !GoAhead::wait(&mounted)? {
            return Err(Errno::ECANCELED); // init gave up
        }
        chdir(OLD_ROOT)?;
        // The scratch space (now `/`) moves under the host root, at /tmp.
        pivot_root(".", &Path::new(".").join(SCRATCH.trim_start_matches('/')))?;
        chdir("/")?;
        let null = open("/dev/null", OFlag::O_RDWR, Mode::empty())?;
        dup2_stdin(&null)?;
        dup2_stdout(&null)?;
        dup2_stderr(&null)?;
        if fuse.as_raw_fd() != DAEMON_FUSE_FD {
            // SAFETY: fd 3 becomes /dev/fuse and must outlive this scope.
            std::mem::forget(unsafe { dup2_raw(&fuse, DAEMON_FUSE_FD)? });
        }
        // The daemon inherits it: no close-on-exec.
        // SAFETY: fd 3 is open (the dup above, or /dev/fuse itself).
        let device = unsafe { BorrowedFd::borrow_raw(DAEMON_FUSE_FD) };
        fcntl(device, FcntlArg::F_SETFD(FdFlag::empty()))?;
        let layers =
            format!("lowerdir=/,upperdir={SCRATCH}/upper,workdir={SCRATCH}/work,squash_to_root");
        let argv = [
            c"fuse-overlayfs".to_owned(),
            c"-f".to_owned(),
            c"-o".to_owned(),
            CString::new(layers).expect("no NUL"),
            CString::new(format!("/dev/fd/{DAEMON_FUSE_FD}")).expect("no NUL"),
        ];
        let program = CString::new(program.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
        execv(&program, &argv)
    })();
    match result {
        Err(errno) => errno,
        Ok(never) => match never {},
    }
}

/// Whether fuse-overlayfs can serve rootless roots here: the program
/// found in `PATH` (or the usual places), and /dev/fuse open to us.
pub fn find_program() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/bin".into(), "/usr/local/bin".into()]);
    let program = dirs
        .map(|dir| dir.join("fuse-overlayfs"))
        .find(|candidate| nix::unistd::access(candidate, nix::unistd::AccessFlags::X_OK).is_ok())?;
    let device_usable = nix::unistd::access(
        OsStr::new("/dev/fuse"),
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
    )
    .is_ok();
    device_usable.then_some(program)
}
