//! The container's filesystem view, built inside the container's fresh mount
//! namespace (bubblewrap's approach):
//!
//! 1. `/` made recursively private, so nothing propagates to the host;
//! 2. the scratch space (a tmpfs of the test's `disk` size, or a per-test
//!    host directory) becomes the root, the host root stays at /oldroot;
//!    every writable layer of the test lives on it;
//! 3. the container's root at /newroot (`root`): an overlay of the host
//!    root or image layers, or a read-only bind; rootless, the host root
//!    through fuse-overlayfs where it is installed (`fuse`);
//! 4. fresh /proc, minimal /dev, read-only /sys (`kernel`) with the test's
//!    own cgroup at /sys/fs/cgroup (`cgroupfs`), /tmp and the requested
//!    mounts (`mounts`);
//! 5. pivot into /newroot and detach everything else.

mod cgroupfs;
mod fuse;
mod kernel;
mod mounts;
mod paths;
mod root;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root, Pid};

use super::mountinfo;
use super::spec::{RootMode, SandboxSpec, SetupFailure, SupervisorRequest};
use super::step::Step;
use paths::{NEW_ROOT, SCRATCH};

pub use fuse::find_program as find_fuse_overlayfs;

/// Builds the container's root and pivots into it. Must run in a fresh
/// mount namespace (and, for /proc, inside the container's PID namespace).
/// Returns the pids of the daemons it started (a fuse-overlayfs
/// daemon), which live as long as the container.
pub fn enter_new_root(request: &SupervisorRequest) -> Result<Vec<Pid>, SetupFailure> {
    let spec = &request.spec;
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
        errno: None,
    })?;

    enter_scratch(spec)?;
    mounts::prepare_scratch(&spec.mounts)?;
    let mode = spec.root.mode;
    let rootless = spec.user_namespace.is_some();
    let mut daemons = Vec::new();
    let fuse_root = match &request.fuse_overlayfs {
        Some(program) if rootless && spec.root.layers.is_empty() && mode == RootMode::Overlay => {
            Some(Path::new(OsStr::from_bytes(program)))
        }
        _ => None,
    };
    let exposed = match fuse_root {
        Some(program) => {
            daemons.push(fuse::mount_host_root(program)?);
            // The host's /run (its sockets and runtime state) shows through
            // the FUSE root: a fresh one hides it.
            kernel::mount_fs("tmpfs", "/run", MsFlags::MS_NOEXEC, Some("mode=0755"))?;
            Vec::new()
        }
        None => root::build(&spec.root, &host_mounts, rootless)?,
    };
    for dir in ["/proc", "/dev", "/sys"] {
        mounts::mount_point(Path::new(dir), true, mode)?;
    }
    kernel::mount_kernel_interfaces(rootless)?;
    cgroupfs::mount_own_cgroup(&request.cgroup_view)?;
    mounts::mount_tmp(mode)?;
    if !spec.security.privileged {
        kernel::mask_kernel_interfaces()?;
    }
    if spec.root.layers.is_empty() {
        for (index, dir) in spec.visible_host_dirs.iter().enumerate() {
            let dir = Path::new(OsStr::from_bytes(dir));
            if !root::is_visible(dir, &host_mounts, &exposed) {
                mounts::show_host_dir(dir, index, mode, rootless)?;
            }
        }
    }
    mounts::mount_extra(&spec.mounts, mode)?;
    if let Some(network) = &spec.network {
        mounts::mount_file("/hosts", &network.hosts, Path::new("/etc/hosts"), mode)?;
    }
    root::seal(&spec.root)?;
    pivot_into_new_root()?;
    let home = Path::new(OsStr::from_bytes(&spec.home));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .step(|| format!("create home directory {}", home.display()))?;
    Ok(daemons)
}

/// The scratch space becomes `/` and the host root moves to /oldroot:
/// a tmpfs mounted at /tmp (of the `disk` size when set), or the per-test
/// scratch directory bound there. pivot_root moves it off /tmp, so
/// /oldroot/tmp shows the host's /tmp again.
fn enter_scratch(spec: &SandboxSpec) -> Result<(), SetupFailure> {
    match &spec.scratch_dir {
        None => {
            let mut options = "mode=0755".to_string();
            if let Some(bytes) = spec.disk_bytes {
                options.push_str(&format!(",size={bytes}"));
            }
            mount(
                Some("isotest"),
                SCRATCH,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .mount_step(|| format!("scratch tmpfs at {SCRATCH}"))?;
        }
        Some(dir) => {
            let dir = Path::new(OsStr::from_bytes(dir));
            root::bind(dir, Path::new(SCRATCH))?;
            root::restrict(Path::new(SCRATCH), MsFlags::empty())?;
        }
    }
    chdir(SCRATCH).step(|| format!("chdir {SCRATCH}"))?;
    for dir in ["oldroot", "newroot", "upper", "work"] {
        fs::create_dir(dir).step(|| format!("create {SCRATCH}/{dir}"))?;
    }
    pivot_root(".", "oldroot").step(|| format!("pivot_root into the scratch space {SCRATCH}"))?;
    chdir("/").step(|| "chdir / in scratch".into())
}

/// pivot_root(".", ".") stacks the old root on the new one; detaching it
/// leaves only the new root (runc's approach, no put_old directory needed).
fn pivot_into_new_root() -> Result<(), SetupFailure> {
    chdir(NEW_ROOT).step(|| format!("chdir {NEW_ROOT}"))?;
    pivot_root(".", ".").step(|| format!("pivot_root into {NEW_ROOT}"))?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach the old root".into())?;
    chdir("/").step(|| "chdir / in the new root".into())
}
