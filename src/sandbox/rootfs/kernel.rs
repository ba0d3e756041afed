//! The kernel's interfaces in the container: a fresh /proc (it shows only
//! the container's PID namespace), a minimal /dev, a read-only /sys, and
//! the /proc and /sys paths a test has no business with masked or made
//! read-only.

use std::fs;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::super::spec::SetupFailure;
use super::super::step::Step;
use super::paths::{in_new_root, in_old_root};

/// Device nodes bind-mounted from the host into the container's /dev.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// /proc, /dev and /sys in the new root; their mount points exist.
/// Rootless with the host's network, the kernel refuses a fresh sysfs (it
/// belongs to the network namespace): the host's is bound read-only.
pub fn mount_kernel_interfaces(rootless: bool) -> Result<(), SetupFailure> {
    mount_proc()?;
    mount_dev()?;
    match mount_fs("sysfs", "/sys", MsFlags::MS_RDONLY, None) {
        Err(failure) if rootless && failure.is(nix::errno::Errno::EPERM) => {
            let target = in_new_root(Path::new("/sys"));
            mount(
                Some(&in_old_root(Path::new("/sys"))),
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .step(|| "bind the host's /sys".into())?;
            super::root::restrict(&target, MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC)
        }
        other => other,
    }
}

fn mount_proc() -> Result<(), SetupFailure> {
    mount_fs("proc", "/proc", MsFlags::empty(), None)
}

/// /dev: a tmpfs with only harmless devices, a private devpts and a /dev/shm.
fn mount_dev() -> Result<(), SetupFailure> {
    mount_fs(
        "tmpfs",
        "/dev",
        MsFlags::MS_NOEXEC,
        Some("mode=0755,size=1m"),
    )?;
    let dev = in_new_root(Path::new("/dev"));
    for name in DEVICES {
        let target = dev.join(name);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&target)
            .step(|| format!("create {}", target.display()))?;
        let source = in_old_root(&Path::new("/dev").join(name));
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .step(|| format!("bind {} at {}", source.display(), target.display()))?;
    }
    for dir in ["pts", "shm"] {
        let path = dev.join(dir);
        fs::create_dir(&path).step(|| format!("create {}", path.display()))?;
    }
    mount_fs(
        "devpts",
        "/dev/pts",
        MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    mount_fs("tmpfs", "/dev/shm", MsFlags::MS_NOEXEC, Some("mode=1777"))?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = dev.join(link);
        symlink(target, &path).step(|| format!("create link {}", path.display()))?;
    }
    Ok(())
}

/// /proc files that leak host kernel state or memory, hidden behind
/// /dev/null (files) or an empty read-only tmpfs (directories).
const MASKED_PATHS: [&str; 9] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/interrupts",
    "/proc/acpi",
    "/proc/scsi",
    "/sys/firmware",
];

/// /proc entries that would change the host kernel: read-only.
const READ_ONLY_PATHS: [&str; 5] = [
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
];

/// Masks and write-protects the kernel interfaces a test has no business
/// with (the list is runc's and Docker's).
pub fn mask_kernel_interfaces() -> Result<(), SetupFailure> {
    let null = in_new_root(Path::new("/dev/null"));
    // Bind only the real null device over files: anything else there would
    // expose (or let a test write) whatever it is.
    let meta = fs::metadata(&null).step(|| format!("stat {}", null.display()))?;
    let is_null = {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        meta.file_type().is_char_device() && meta.rdev() == nix::sys::stat::makedev(1, 3)
    };
    if !is_null {
        return Err(SetupFailure {
            step: format!("check {}", null.display()).into(),
            cause: "not the null device (1:3)".into(),
            hint: None,
            host_unsupported: false,
            errno: None,
        });
    }
    for path in MASKED_PATHS {
        let target = in_new_root(Path::new(path));
        let Ok(meta) = fs::symlink_metadata(&target) else {
            continue; // not on this kernel
        };
        if meta.is_dir() {
            mount(
                Some("isotest"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )
            .step(|| format!("mask {path}"))?;
        } else {
            mount(
                Some(&null),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .step(|| format!("mask {path}"))?;
        }
    }
    for path in READ_ONLY_PATHS {
        let target = in_new_root(Path::new(path));
        if fs::symlink_metadata(&target).is_err() {
            continue;
        }
        mount(
            Some(&target),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .step(|| format!("bind {path} read-only"))?;
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .step(|| format!("remount {path} read-only"))?;
    }
    Ok(())
}

/// Mounts a fresh `fs_type` at `path` in the new root, nosuid and nodev.
pub fn mount_fs(
    fs_type: &str,
    path: &str,
    extra: MsFlags,
    data: Option<&str>,
) -> Result<(), SetupFailure> {
    let target = in_new_root(Path::new(path));
    mount(
        Some(fs_type),
        &target,
        Some(fs_type),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | extra,
        data,
    )
    .mount_step(|| format!("{fs_type} at {}", target.display()))
}
