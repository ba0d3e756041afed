//! Writable places and requested mounts on top of the root: /tmp, fresh
//! directories and host binds (`tmpfs`, `writable`, `binds`), and host
//! directories a fresh mount would hide (a test under /tmp). Every writable
//! place lives on the scratch space, so `disk` bounds them all together.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use super::super::spec::{ExtraMount, RootMode, SetupFailure};
use super::super::step::{failure, Step};
use super::paths::{in_old_root, resolve_in_new_root};
use super::root::{bind, bind_read_only, create_file, overlay, restrict};

/// The scratch directory that becomes the container's /tmp.
pub const SCRATCH_TMP: &str = "/tmp-dir";

/// Creates the scratch directories for /tmp and the fresh mounts.
pub fn prepare_scratch(mounts: &[ExtraMount]) -> Result<(), SetupFailure> {
    let fresh = mounts
        .iter()
        .filter(|m| matches!(m, ExtraMount::Fresh { .. }))
        .count();
    let dirs = std::iter::once(SCRATCH_TMP.to_string()).chain((0..fresh).map(fresh_dir));
    for dir in dirs {
        fs::DirBuilder::new()
            .create(&dir)
            .step(|| format!("create {dir}"))?;
        // Like a tmpfs: everyone may write, only owners may delete.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777))
            .step(|| format!("chmod {dir}"))?;
    }
    Ok(())
}

fn fresh_dir(index: usize) -> String {
    format!("/fresh-{index}")
}

/// The container's /tmp: an empty directory of the scratch space.
pub fn mount_tmp(mode: RootMode) -> Result<(), SetupFailure> {
    let target = mount_point(Path::new("/tmp"), true, mode)?;
    bind(Path::new(SCRATCH_TMP), &target)?;
    restrict(&target, MsFlags::empty())
}

/// The requested mounts, parents before children.
pub fn mount_extra(mounts: &[ExtraMount], mode: RootMode) -> Result<(), SetupFailure> {
    let mut fresh_index = 0;
    let mut ordered: Vec<(usize, &ExtraMount)> = mounts
        .iter()
        .map(|m| {
            let index = fresh_index;
            if matches!(m, ExtraMount::Fresh { .. }) {
                fresh_index += 1;
            }
            (index, m)
        })
        .collect();
    ordered.sort_by_key(|(_, m)| depth(target_of(m)));
    for (index, extra) in ordered {
        match extra {
            ExtraMount::Fresh { target } => {
                let target = mount_point(path(target), true, mode)?;
                let source = fresh_dir(index);
                bind(Path::new(&source), &target)?;
                restrict(&target, MsFlags::empty())?;
            }
            ExtraMount::Bind {
                source,
                target,
                readonly,
            } => {
                let host_path = path(source);
                let source = in_old_root(host_path);
                let meta = fs::metadata(&source).map_err(|error| {
                    let mut failure = failure(
                        format!("bind {} at {}", host_path.display(), lossy(target)).into(),
                        Errno::from_raw(error.raw_os_error().unwrap_or(0)),
                    );
                    failure.cause = format!("the source: {error}");
                    failure.hint = Some("check the `binds` of isotest.toml".into());
                    failure
                })?;
                let target = mount_point(path(target), meta.is_dir(), mode)?;
                if *readonly {
                    bind_read_only(&source, &target, false)?;
                } else {
                    bind(&source, &target)?;
                    restrict(&target, MsFlags::empty())?;
                }
            }
        }
    }
    Ok(())
}

/// A file written on the scratch space as `scratch_name`, shown read-only
/// at `target` (the test network's /etc/hosts).
pub fn mount_file(
    scratch_name: &str,
    content: &[u8],
    target: &Path,
    mode: RootMode,
) -> Result<(), SetupFailure> {
    fs::write(scratch_name, content).step(|| format!("write {scratch_name}"))?;
    let target_in_root = mount_point(target, false, mode)?;
    bind_read_only(Path::new(scratch_name), &target_in_root, true)
}

/// Makes a host directory that a fresh mount hides (a test under /tmp)
/// visible at the same path, the way the rest of the root is: writable
/// through an overlay whose upper layer lives on the scratch space, or
/// read-only in bind mode.
pub fn show_host_dir(
    dir: &Path,
    index: usize,
    mode: RootMode,
    rootless: bool,
) -> Result<(), SetupFailure> {
    let target = mount_point(dir, true, mode)?;
    let source = in_old_root(dir);
    match mode {
        RootMode::Overlay => overlay(&source, &target, &format!("/visible-{index}"), rootless),
        RootMode::Bind => bind_read_only(&source, &target, false),
    }
}

/// `target` in the new root (symlinks resolved inside it), created as an
/// empty directory or file when missing.
pub fn mount_point(target: &Path, dir: bool, mode: RootMode) -> Result<PathBuf, SetupFailure> {
    let resolved = resolve_in_new_root(target)?;
    if fs::symlink_metadata(&resolved).is_ok() {
        return Ok(resolved);
    }
    let created = if dir {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&resolved)
            .step(|| format!("create mount point {}", target.display()))
    } else {
        match resolved.parent() {
            Some(parent) => fs::create_dir_all(parent)
                .step(|| format!("create mount point {}", target.display())),
            None => Ok(()),
        }
        .and_then(|()| create_file(&resolved))
    };
    created.map_err(|mut failure| {
        if mode == RootMode::Bind && failure.is(Errno::EROFS) {
            failure.hint = Some(format!(
                "the root is read-only (rootfs_mode = \"bind\"): only top-level mount points \
                 can be made; create {} in the root, or use rootfs_mode = \"overlay\"",
                target.display()
            ));
        }
        failure
    })?;
    Ok(resolved)
}

fn target_of(mount: &ExtraMount) -> &[u8] {
    match mount {
        ExtraMount::Fresh { target } | ExtraMount::Bind { target, .. } => target,
    }
}

fn depth(target: &[u8]) -> usize {
    path(target).components().count()
}

fn path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
