//! The container's filesystem view, built inside the container's fresh mount
//! namespace (bubblewrap's approach):
//!
//! 1. `/` made recursively private, so nothing propagates to the host;
//! 2. a scratch tmpfs becomes the root, the host root stays at /oldroot;
//! 3. an overlay at /newroot: host `/` read-only below, a tmpfs upper above;
//! 4. host submounts (a separate /home, ...) re-exposed read-only;
//! 5. fresh /proc, minimal /dev, read-only /sys, fresh /tmp, and the
//!    test's own directory overlaid again where a fresh mount hid it;
//! 6. pivot into /newroot and detach everything else.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use super::mountinfo::{self, Mount};
use super::spec::{SandboxSpec, SetupFailure};
use super::step::Step;

const SCRATCH: &str = "/tmp";
const OLD_ROOT: &str = "/oldroot";
const NEW_ROOT: &str = "/newroot";

/// Top-level directories the container gets fresh; host mounts under them
/// are not re-exposed. /run holds the host's sockets and runtime state.
const REPLACED_DIRS: [&str; 5] = ["/proc", "/sys", "/dev", "/tmp", "/run"];

/// Filesystems that describe the host kernel or runtime, not files a test
/// reads: never re-exposed.
const PSEUDO_FS: [&str; 20] = [
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "mqueue",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "fusectl",
    "configfs",
    "pstore",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "efivarfs",
    "selinuxfs",
];

/// Device nodes bind-mounted from the host into the container's /dev.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Builds the container's root and pivots into it. Must run in a fresh
/// mount namespace (and, for /proc, inside the container's PID namespace).
pub fn enter_new_root(spec: &SandboxSpec) -> Result<(), SetupFailure> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .step(|| "make / recursively private".into())?;
    let host_mounts = mountinfo::read_own().map_err(|cause| SetupFailure {
        step: "read host mounts".into(),
        cause,
        hint: None,
        host_unsupported: false,
    })?;

    enter_scratch()?;
    mount_overlay()?;
    let exposed = expose_host_submounts(&host_mounts)?;
    mount_proc()?;
    mount_dev()?;
    mount_fs("sysfs", "/sys", MsFlags::MS_RDONLY, None)?;
    mount_fs("tmpfs", "/tmp", MsFlags::empty(), Some("mode=1777"))?;
    if !spec.security.privileged {
        mask_kernel_interfaces()?;
    }
    for (index, dir) in spec.visible_host_dirs.iter().enumerate() {
        let dir = Path::new(OsStr::from_bytes(dir));
        if !is_visible(dir, &host_mounts, &exposed) {
            overlay_host_dir(dir, index)?;
        }
    }
    pivot_into_new_root()?;
    let home = Path::new(OsStr::from_bytes(&spec.home));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .step(|| format!("create home directory {}", home.display()))?;
    Ok(())
}

/// A tmpfs at /tmp becomes `/`; the host root moves to /oldroot. pivot_root
/// moves the tmpfs off /tmp, so /oldroot/tmp shows the host's /tmp again.
fn enter_scratch() -> Result<(), SetupFailure> {
    mount(
        Some("isotest"),
        SCRATCH,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .step(|| format!("mount scratch tmpfs at {SCRATCH}"))?;
    chdir(SCRATCH).step(|| format!("chdir {SCRATCH}"))?;
    for dir in ["oldroot", "newroot", "upper", "work"] {
        fs::create_dir(dir).step(|| format!("create {SCRATCH}/{dir}"))?;
    }
    pivot_root(".", "oldroot").step(|| format!("pivot_root into scratch tmpfs {SCRATCH}"))?;
    chdir("/").step(|| "chdir / in scratch".into())
}

/// The root: host `/` read-only as the lower layer, writes to a tmpfs upper
/// that dies with the container. Upper and lower are different filesystems,
/// as overlayfs requires.
fn mount_overlay() -> Result<(), SetupFailure> {
    mount(
        Some("isotest"),
        NEW_ROOT,
        Some("overlay"),
        // nodev: a test may create device nodes (CAP_MKNOD), but never open
        // one to reach host devices; only the bound /dev entries work.
        MsFlags::MS_NODEV,
        Some("lowerdir=/oldroot,upperdir=/upper,workdir=/work"),
    )
    .map_err(|errno| {
        let mut failure = super::step::failure(format!("mount overlay at {NEW_ROOT}"), errno);
        if errno == nix::errno::Errno::EINVAL {
            failure.hint =
                Some("the kernel refused the host root as an overlay lower layer".into());
        }
        failure
    })
}

/// Re-exposes host submounts that hold files (a separate /home, /boot, a
/// data volume) at the same place, parents before children, each through
/// its own overlay like the root: writes vanish, and the overlay refuses
/// connections to Unix sockets on it. Always nodev and nosuid. Where a
/// filesystem cannot be an overlay layer, a read-only bind is the
/// fallback. Returns the mount points it exposed.
fn expose_host_submounts(host_mounts: &[Mount]) -> Result<Vec<PathBuf>, SetupFailure> {
    let mut wanted: Vec<&Mount> = host_mounts
        .iter()
        .filter(|m| m.mount_point != Path::new("/"))
        .filter(|m| !PSEUDO_FS.contains(&m.fs_type.as_str()))
        .filter(|m| {
            !REPLACED_DIRS
                .iter()
                .any(|dir| m.mount_point.starts_with(dir))
        })
        .collect();
    wanted.sort_by_key(|m| m.mount_point.components().count());
    let mut exposed = Vec::new();
    for (index, host_mount) in wanted.into_iter().enumerate() {
        let target = in_new_root(&host_mount.mount_point);
        // A mount point whose parent is not exposed has nowhere to go.
        if !target.is_dir() && !target.is_file() {
            continue;
        }
        let source = in_old_root(&host_mount.mount_point);
        if !target.is_dir() || overlay(&source, &target, &format!("/submount-{index}")).is_err() {
            bind_read_only(&source, &target, host_mount)?;
        }
        exposed.push(host_mount.mount_point.clone());
    }
    Ok(exposed)
}

/// An overlay of `lower` at `target`, its upper layer on the scratch tmpfs
/// under `layer`: writes succeed inside and vanish with the container.
fn overlay(lower: &Path, target: &Path, layer: &str) -> Result<(), SetupFailure> {
    let layer = PathBuf::from(layer);
    for sub in ["upper", "work"] {
        let path = layer.join(sub);
        fs::create_dir_all(&path).step(|| format!("create {}", path.display()))?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        escape_overlay_path(lower),
        escape_overlay_path(&layer.join("upper")),
        escape_overlay_path(&layer.join("work")),
    );
    // nodev: a test may create device nodes (CAP_MKNOD), but never open one
    // to reach host devices.
    mount(
        Some("isotest"),
        target,
        Some("overlay"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some(options.as_str()),
    )
    .step(|| {
        format!(
            "mount overlay of {} at {}",
            lower.display(),
            target.display()
        )
    })
}

fn bind_read_only(source: &Path, target: &Path, like: &Mount) -> Result<(), SetupFailure> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .step(|| format!("bind {} at {}", source.display(), target.display()))?;
    let mut flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    if like.has_option("noexec") {
        flags |= MsFlags::MS_NOEXEC;
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .step(|| format!("remount {} read-only", target.display()))
}

/// Whether `dir` shows through the new root as it is on the host: it lies on
/// the root filesystem or on an exposed mount, and not under a fresh mount.
fn is_visible(dir: &Path, host_mounts: &[Mount], exposed: &[PathBuf]) -> bool {
    let covering = host_mounts
        .iter()
        .map(|m| m.mount_point.as_path())
        .filter(|point| dir.starts_with(point))
        .max_by_key(|point| point.components().count());
    let on_shown_mount = match covering {
        None => false,
        Some(point) => point == Path::new("/") || exposed.iter().any(|e| e == point),
    };
    on_shown_mount && !REPLACED_DIRS.iter().any(|fresh| dir.starts_with(fresh))
}

/// Makes a host directory that the container would otherwise hide (a test
/// under /tmp, say) visible at the same path, writable the way the rest of
/// the root is: an overlay whose upper layer lives on the scratch tmpfs, so
/// writes succeed inside and vanish with the container.
fn overlay_host_dir(dir: &Path, index: usize) -> Result<(), SetupFailure> {
    let target = in_new_root(dir);
    fs::create_dir_all(&target).step(|| format!("create mount point {}", target.display()))?;
    overlay(&in_old_root(dir), &target, &format!("/visible-{index}"))
}

/// overlayfs splits its options at `,` and lower layers at `:`; a
/// backslash escapes them.
fn escape_overlay_path(path: &Path) -> String {
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '\\' | ',' | ':') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
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
fn mask_kernel_interfaces() -> Result<(), SetupFailure> {
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
            step: format!("check {}", null.display()),
            cause: "not the null device (1:3)".into(),
            hint: None,
            host_unsupported: false,
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
fn mount_fs(
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
    .step(|| format!("mount {fs_type} at {}", target.display()))
}

/// pivot_root(".", ".") stacks the old root on the new one; detaching it
/// leaves only the new root (runc's approach, no put_old directory needed).
fn pivot_into_new_root() -> Result<(), SetupFailure> {
    chdir(NEW_ROOT).step(|| format!("chdir {NEW_ROOT}"))?;
    pivot_root(".", ".").step(|| format!("pivot_root into {NEW_ROOT}"))?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach the old root".into())?;
    chdir("/").step(|| "chdir / in the new root".into())
}

fn in_new_root(path: &Path) -> PathBuf {
    Path::new(NEW_ROOT).join(path.strip_prefix("/").unwrap_or(path))
}

fn in_old_root(path: &Path) -> PathBuf {
    Path::new(OLD_ROOT).join(path.strip_prefix("/").unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts(points: &[&str]) -> Vec<Mount> {
        points
            .iter()
            .enumerate()
            .map(|(i, point)| Mount {
                id: i as u32,
                parent_id: 0,
                root: "/".into(),
                mount_point: point.into(),
                mount_options: vec!["rw".into()],
                fs_type: "ext4".into(),
                source: "/dev/x".into(),
                super_options: vec![],
            })
            .collect()
    }

    #[test]
    fn dirs_on_root_or_exposed_mounts_are_visible() {
        let host = mounts(&["/", "/home", "/mnt/private"]);
        let exposed = vec![PathBuf::from("/home")];
        assert!(is_visible(Path::new("/work/tests"), &host, &exposed));
        assert!(is_visible(Path::new("/home/me/tests"), &host, &exposed));
        assert!(!is_visible(
            Path::new("/mnt/private/tests"),
            &host,
            &exposed
        ));
    }

    #[test]
    fn dirs_under_fresh_mounts_are_hidden() {
        let host = mounts(&["/"]);
        assert!(!is_visible(Path::new("/tmp/clone/tests"), &host, &[]));
        assert!(!is_visible(Path::new("/run/user/1/t"), &host, &[]));
    }

    #[test]
    fn overlay_paths_escape_separators() {
        assert_eq!(
            escape_overlay_path(Path::new("/tmp/a,b:c")),
            "/tmp/a\\,b\\:c"
        );
        assert_eq!(escape_overlay_path(Path::new("/plain dir")), "/plain dir");
    }

    #[test]
    fn new_and_old_root_paths() {
        assert_eq!(
            in_new_root(Path::new("/dev/null")),
            Path::new("/newroot/dev/null")
        );
        assert_eq!(in_old_root(Path::new("/")), Path::new("/oldroot"));
    }
}
