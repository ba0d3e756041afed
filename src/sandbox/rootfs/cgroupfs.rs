//! The test's own cgroup at /sys/fs/cgroup, read-only, as Docker and Podman
//! show a container's: on v2 its group of the unified tree; on v1 a tmpfs
//! holding its group of each hierarchy it has one in (`memory`, `pids`,
//! ...), with links for co-mounted controllers (`cpu -> cpu,cpuacct`).
//! Without a group of its own (cgroups unavailable) the directory is an
//! empty read-only tmpfs, so nothing of the host's cgroups shows.
//!
//! With the cgroup namespace the command enters after joining its group
//! (see init), /proc/self/cgroup shows `/` for the same groups.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::super::cgroup::CgroupView;
use super::super::spec::SetupFailure;
use super::super::step::Step;
use super::paths::{in_new_root, in_old_root};
use super::root::bind_read_only;

const CGROUP_DIR: &str = "/sys/fs/cgroup";

/// Mounts `view` at /sys/fs/cgroup in the new root, whose /sys is mounted.
pub fn mount_own_cgroup(view: &CgroupView) -> Result<(), SetupFailure> {
    let target = in_new_root(Path::new(CGROUP_DIR));
    match view {
        CgroupView::V2 { group } => bind_read_only(&host_path(group), &target, true),
        CgroupView::Empty => mount_tmpfs(&target, MsFlags::MS_RDONLY),
        CgroupView::V1 { hierarchies } => {
            mount_tmpfs(&target, MsFlags::empty())?;
            for (name, group) in hierarchies {
                let dir = target.join(name);
                fs::create_dir(&dir).step(|| format!("create {}", dir.display()))?;
                bind_read_only(&host_path(group), &dir, true)?;
                for controller in name.split(',').filter(|c| c != name) {
                    let link = target.join(controller);
                    symlink(name, &link).step(|| format!("create link {}", link.display()))?;
                }
            }
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags();
            mount(
                None::<&str>,
                &target,
                None::<&str>,
                flags,
                Some(TMPFS_OPTIONS),
            )
            .step(|| format!("remount {} read-only", target.display()))
        }
    }
}

const TMPFS_OPTIONS: &str = "mode=0755,size=64k";

fn tmpfs_flags() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

fn mount_tmpfs(target: &Path, extra: MsFlags) -> Result<(), SetupFailure> {
    mount(
        Some("cgroup"),
        target,
        Some("tmpfs"),
        tmpfs_flags() | extra,
        Some(TMPFS_OPTIONS),
    )
    .mount_step(|| format!("tmpfs at {}", target.display()))
}

/// A host path (the test's group), seen from the setup's scratch root.
fn host_path(path: &[u8]) -> std::path::PathBuf {
    in_old_root(Path::new(std::ffi::OsStr::from_bytes(path)))
}
