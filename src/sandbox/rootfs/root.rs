//! The container's `/` at /newroot, in one of two modes:
//!
//! - overlay: the host root (or the image's layers) read-only below, an
//!   upper layer on the scratch space above; writes succeed and vanish;
//! - bind: a small tmpfs skeleton holding a read-only bind of each
//!   top-level directory of the root, sealed read-only at the end; for hosts
//!   or roots where overlayfs cannot be used.
//!
//! On the host root, host submounts (a separate /home, a data volume) are
//! re-exposed at the same place; image roots get nothing of the host.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use super::super::mountinfo::Mount;
use super::super::spec::{RootMode, RootSpec, SetupFailure};
use super::super::step::{failure, SetupStep, Step};
use super::paths::{escape_overlay_path, in_new_root, in_old_root, NEW_ROOT, OLD_ROOT};

/// Top-level directories the container gets fresh; host mounts under them
/// are not re-exposed. /run holds the host's sockets and runtime state.
pub const REPLACED_DIRS: [&str; 5] = ["/proc", "/sys", "/dev", "/tmp", "/run"];

/// Mount points the container mounts fresh filesystems on.
const KERNEL_DIRS: [&str; 4] = ["proc", "sys", "dev", "tmp"];

/// How the skeleton shows a top-level directory of the root.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    ReadOnly,
    /// An overlay of its own (rootless, where the whole root cannot be a
    /// lower layer), read-only where the kernel refuses that.
    Overlaid,
}

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

/// overlayfs's magic number in statfs(2).
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// Builds the root at /newroot. Returns the host submounts it re-exposed
/// (none for an image root).
///
/// Rootless (in a user namespace) the kernel refuses the host's `/` as an
/// overlay layer and refuses non-recursive binds of it, because mounts
/// under it are locked to this namespace: the root is then a skeleton whose
/// top-level directories are overlaid one by one, or bound recursively and
/// read-only where they hold mounts; the host's submounts come with those.
pub fn build(
    root: &RootSpec,
    host_mounts: &[Mount],
    rootless: bool,
) -> Result<Vec<PathBuf>, SetupFailure> {
    let on_host = root.layers.is_empty();
    let lowers: Vec<PathBuf> = if on_host {
        vec![PathBuf::from(OLD_ROOT)]
    } else {
        root.layers
            .iter()
            .map(|layer| in_old_root(Path::new(OsStr::from_bytes(layer))))
            .collect()
    };
    let replaced: &[&str] = if on_host { &REPLACED_DIRS } else { &[] };
    match root.mode {
        RootMode::Overlay if on_host && rootless => {
            bind_skeleton(&lowers[0], Show::Overlaid, false, replaced)?;
            return Ok(Vec::new());
        }
        RootMode::Overlay => mount_overlay_root(&lowers, rootless)?,
        RootMode::Bind => {
            let [lower] = lowers.as_slice() else {
                return Err(SetupFailure {
                    step: "bind the root read-only".into(),
                    cause: format!("the image has {} layers; a bind needs one", lowers.len()),
                    hint: Some(
                        "use rootfs_mode = \"overlay\", or a tarball or directory root".into(),
                    ),
                    host_unsupported: false,
                    errno: None,
                });
            };
            let noexec = on_host && host_root_is(host_mounts, "noexec");
            bind_skeleton(lower, Show::ReadOnly, noexec, replaced)?;
        }
    }
    if !on_host || rootless {
        return Ok(Vec::new());
    }
    expose_host_submounts(host_mounts, root.mode)
}

/// In bind mode, the skeleton becomes read-only once every mount point in
/// it exists.
pub fn seal(root: &RootSpec) -> Result<(), SetupFailure> {
    if root.mode != RootMode::Bind {
        return Ok(());
    }
    restrict(Path::new(NEW_ROOT), MsFlags::MS_RDONLY)
}

fn host_root_is(host_mounts: &[Mount], option: &str) -> bool {
    host_mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == Path::new("/"))
        .is_some_and(|m| m.has_option(option))
}

/// The root as an overlay of `lowers` (top first) with the upper layer on
/// the scratch space, which must not be overlayfs itself.
fn mount_overlay_root(lowers: &[PathBuf], rootless: bool) -> Result<(), SetupFailure> {
    let lowerdir: Vec<String> = lowers.iter().map(|l| escape_overlay_path(l)).collect();
    let mut options = format!(
        "lowerdir={},upperdir=/upper,workdir=/work",
        lowerdir.join(":")
    );
    if rootless {
        // The upper layer's metadata goes in user.* xattrs, which an
        // unprivileged user may write.
        options.push_str(",userxattr");
    }
    mount(
        Some("isotest"),
        NEW_ROOT,
        Some("overlay"),
        // nodev: a test may create device nodes (CAP_MKNOD), but never open
        // one to reach host devices; only the bound /dev entries work.
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|errno| overlay_failure(errno, lowers))
}

fn overlay_failure(errno: Errno, lowers: &[PathBuf]) -> SetupFailure {
    let mut failure = failure(SetupStep::Mount(format!("overlay at {NEW_ROOT}")), errno);
    if failure.host_unsupported {
        return failure;
    }
    let scratch_is_overlay = nix::sys::statfs::statfs("/upper")
        .is_ok_and(|fs| fs.filesystem_type().0 == OVERLAYFS_MAGIC);
    failure.hint = Some(if scratch_is_overlay {
        "the scratch space is itself on overlayfs, which cannot hold an upper layer; \
         pass --scratch on another filesystem, or set rootfs_mode = \"bind\""
            .into()
    } else if errno == Errno::ENODEV {
        "this kernel has no overlayfs (modprobe overlay); or set rootfs_mode = \"bind\"".into()
    } else {
        format!(
            "the kernel refused {} as overlay lower layers; set rootfs_mode = \"bind\" \
             to bind the root read-only instead",
            lowers.len()
        )
    });
    failure
}

/// The scratch directory that holds a skeleton root.
const SKELETON: &str = "/skeleton";

/// A skeleton at /newroot holding each top-level directory and file of
/// `source` (read-only binds, or overlays of their own), its symlinks
/// copied, and empty mount points for the kernel's filesystems and the
/// `replaced` directories. Only the top level can gain mount points where
/// the directories are read-only.
fn bind_skeleton(
    source: &Path,
    show: Show,
    noexec: bool,
    replaced: &[&str],
) -> Result<(), SetupFailure> {
    // The skeleton is a directory of the scratch space, bound in place so
    // that it is a mount (pivot_root needs one).
    let skeleton = Path::new(SKELETON);
    fs::create_dir(skeleton).step(|| format!("create {SKELETON}"))?;
    fs::set_permissions(skeleton, fs::Permissions::from_mode(0o755))
        .step(|| format!("chmod {SKELETON}"))?;
    bind(skeleton, Path::new(NEW_ROOT))?;
    let empty: Vec<&str> = KERNEL_DIRS
        .iter()
        .copied()
        .chain(replaced.iter().map(|d| d.trim_start_matches('/')))
        .collect();
    for dir in &empty {
        let path = Path::new(NEW_ROOT).join(dir);
        if !path.exists() {
            fs::create_dir(&path).step(|| format!("create {}", path.display()))?;
        }
    }
    let entries = fs::read_dir(source).step(|| format!("read {}", source.display()))?;
    for (index, entry) in entries.enumerate() {
        let entry = entry.step(|| format!("read {}", source.display()))?;
        let name = entry.file_name();
        if empty.iter().any(|d| OsStr::new(d) == name) {
            continue;
        }
        let from = entry.path();
        let to = Path::new(NEW_ROOT).join(&name);
        let kind = entry
            .file_type()
            .step(|| format!("stat {}", from.display()))?;
        if kind.is_symlink() {
            let target = fs::read_link(&from).step(|| format!("read link {}", from.display()))?;
            symlink(&target, &to).step(|| format!("create link {}", to.display()))?;
        } else if kind.is_dir() {
            fs::create_dir(&to).step(|| format!("create {}", to.display()))?;
            let overlaid = show == Show::Overlaid
                && overlay(&from, &to, &format!("/top-{index}"), true).is_ok();
            if !overlaid {
                bind_read_only(&from, &to, noexec)?;
            }
        } else if kind.is_file() {
            create_file(&to)?;
            bind_read_only(&from, &to, noexec)?;
        }
        // Sockets, fifos and devices of a root's top level are left out.
    }
    Ok(())
}

/// Re-exposes host submounts that hold files, parents before children. In
/// overlay mode each gets its own overlay like the root (writes vanish, and
/// the overlay refuses connections to Unix sockets on it), with a
/// read-only bind where a filesystem cannot be an overlay layer; in bind
/// mode each is a read-only bind. Always nodev and nosuid.
fn expose_host_submounts(
    host_mounts: &[Mount],
    mode: RootMode,
) -> Result<Vec<PathBuf>, SetupFailure> {
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
        let overlaid = mode == RootMode::Overlay
            && target.is_dir()
            && overlay(&source, &target, &format!("/submount-{index}"), false).is_ok();
        if !overlaid {
            bind_read_only(&source, &target, host_mount.has_option("noexec"))?;
        }
        exposed.push(host_mount.mount_point.clone());
    }
    Ok(exposed)
}

/// An overlay of `lower` at `target`, its upper layer on the scratch space
/// under `layer`: writes succeed inside and vanish with the container.
/// `rootless` keeps overlay metadata in user.* xattrs.
pub fn overlay(
    lower: &Path,
    target: &Path,
    layer: &str,
    rootless: bool,
) -> Result<(), SetupFailure> {
    let layer = PathBuf::from(layer);
    for sub in ["upper", "work"] {
        let path = layer.join(sub);
        fs::create_dir_all(&path).step(|| format!("create {}", path.display()))?;
    }
    let mut options = format!(
        "lowerdir={},upperdir={},workdir={}",
        escape_overlay_path(lower),
        escape_overlay_path(&layer.join("upper")),
        escape_overlay_path(&layer.join("work")),
    );
    if rootless {
        options.push_str(",userxattr");
    }
    // nodev: a test may create device nodes (CAP_MKNOD), but never open one
    // to reach host devices.
    mount(
        Some("isotest"),
        target,
        Some("overlay"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some(options.as_str()),
    )
    .mount_step(|| format!("overlay of {} at {}", lower.display(), target.display()))
}

/// A read-only, nosuid, nodev bind of `source` at `target` (which exists).
/// Where mounts under `source` are locked (in a user namespace), the bind
/// must be recursive: they come along, with their own flags.
pub fn bind_read_only(source: &Path, target: &Path, noexec: bool) -> Result<(), SetupFailure> {
    match bind(source, target) {
        Err(failure) if failure.is(Errno::EINVAL) => mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .step(|| {
            format!(
                "bind {} at {} recursively",
                source.display(),
                target.display()
            )
        })?,
        other => other?,
    }
    let mut flags = MsFlags::MS_RDONLY;
    if noexec {
        flags |= MsFlags::MS_NOEXEC;
    }
    restrict(target, flags)
}

/// A plain bind of `source` at `target`.
pub fn bind(source: &Path, target: &Path) -> Result<(), SetupFailure> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .step(|| format!("bind {} at {}", source.display(), target.display()))
}

/// Remounts the bind at `target` nosuid and nodev, plus `extra`.
pub fn restrict(target: &Path, extra: MsFlags) -> Result<(), SetupFailure> {
    let flags =
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | extra;
    let what = if extra.contains(MsFlags::MS_RDONLY) {
        "read-only"
    } else {
        "nosuid,nodev"
    };
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .step(|| format!("remount {} {what}", target.display()))
}

/// An empty file, a mount point for a file bind.
pub fn create_file(path: &Path) -> Result<(), SetupFailure> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map(drop)
        .step(|| format!("create {}", path.display()))
}

/// Whether `dir` shows through the new root as it is on the host: it lies on
/// the root filesystem or on an exposed mount, and not under a fresh mount.
pub fn is_visible(dir: &Path, host_mounts: &[Mount], exposed: &[PathBuf]) -> bool {
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
}
