//! Descriptors at fixed numbers: every one from a number up closed or
//! marked close-on-exec in one step (close_range(2) where the kernel has
//! it, else one by one as /proc/self/fd lists them), and a copy onto a
//! given number. The server's supervisor child and the container's init
//! use them after fork (both forked from a single-threaded process, so the
//! fallback may allocate); `dup_onto` does not allocate, for the runner's
//! fork before exec.

use std::mem::ManuallyDrop;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Closes every descriptor from `first` up.
pub(super) fn close_from(first: RawFd) -> nix::Result<()> {
    // Kernels before 5.9 lack close_range.
    for_each_from(first, 0, |fd| {
        // The listing's own descriptor is closed already: EBADF at worst.
        let _ = nix::unistd::close(fd);
    })
}

/// Marks every descriptor from `first` up close-on-exec; they stay usable
/// until exec.
pub(super) fn cloexec_from(first: RawFd) -> nix::Result<()> {
    // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC.
    for_each_from(first, libc::CLOSE_RANGE_CLOEXEC, |fd| {
        // SAFETY: only borrowed for this one call; a descriptor closed
        // since the listing (the listing's own) gives EBADF.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    })
}

/// close_range(2) from `first` up with `flags`, which nix does not wrap;
/// where it fails, `each` on every open descriptor from `first` up.
fn for_each_from(first: RawFd, flags: libc::c_uint, each: impl Fn(RawFd)) -> nix::Result<()> {
    // SAFETY: close_range takes plain integers and touches only our fds.
    let result = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, flags) };
    if result == 0 {
        return Ok(());
    }
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|_| Errno::last())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in open {
        each(fd);
    }
    Ok(())
}

/// dup2(2) of `fd` onto `target`, open or not. nix's dup2 wants the target
/// as an `OwnedFd`; the one made here is never dropped, so it closes
/// nothing. Allocates nothing.
pub(super) fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> nix::Result<()> {
    // SAFETY: the OwnedFd only names `target` for dup2, which makes it a
    // copy of `fd`; ManuallyDrop keeps it from being closed or used after.
    let mut target = ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(target) });
    nix::unistd::dup2(fd, &mut target)
}
