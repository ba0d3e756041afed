//! The host's cgroups as the harness sees them, from /proc/self/mountinfo
//! and the cgroup filesystems only: which test cgroups a runner left, and a
//! throwaway parent cgroup for `--cgroup-parent`.

use std::path::{Path, PathBuf};

/// Where cgroup filesystems are mounted; searched recursively.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Every directory under /sys/fs/cgroup named `isotest-<pid>x*`: the test
/// cgroups of the runner with that pid, in any hierarchy and at any depth.
pub fn of_runner(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("isotest-{pid}x");
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::from(CGROUP_ROOT)];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // The entry's own type: symlinks (co-mounted v1 controllers) are
            // not followed, so no hierarchy is walked twice.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(path.clone());
            }
            pending.push(path);
        }
    }
    found.sort();
    found
}

/// Removes cgroup directories, deepest first (best effort: a cgroup that
/// still holds processes stays).
pub fn remove(dirs: &[PathBuf]) {
    let mut dirs = dirs.to_vec();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Mount points of the cgroup (v1) and cgroup2 filesystems.
fn mounts() -> Result<Vec<PathBuf>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            // `id parent dev root MOUNT_POINT options [optional...] - FSTYPE ...`
            let (before, after) = line.split_once(" - ")?;
            let fstype = after.split(' ').next()?;
            let mount_point = before.split(' ').nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect())
}

/// Whether the host has only the unified cgroup2 tree (no v1 hierarchy).
pub fn is_pure_v2() -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let types: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split_once(" - ")?.1.split(' ').next())
        .filter(|t| matches!(*t, "cgroup" | "cgroup2"))
        .collect();
    types.contains(&"cgroup2") && !types.contains(&"cgroup")
}

/// A cgroup `/<name>` created in every mounted hierarchy, as an
/// administrator would prepare one for `--cgroup-parent /<name>`; removed
/// (with any cgroups left in it) on drop. On v2, memory, cpu and pids are
/// made available to it.
pub struct Parent {
    pub path: String,
    dirs: Vec<PathBuf>,
}

impl Parent {
    pub fn create(name: &str) -> Result<Parent, String> {
        let mut parent = Parent {
            path: format!("/{name}"),
            dirs: Vec::new(),
        };
        let mounts = mounts()?;
        if mounts.is_empty() {
            return Err("no cgroup filesystem is mounted".into());
        }
        for mount in mounts {
            if mount.join("cgroup.subtree_control").exists() {
                enable_v2_controllers(&mount);
            }
            let dir = mount.join(name);
            std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            parent.dirs.push(dir);
        }
        Ok(parent)
    }

    /// Its directory in each hierarchy.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether `dir` is directly inside this parent (in any hierarchy).
    pub fn holds(&self, dir: &Path) -> bool {
        dir.parent()
            .is_some_and(|p| self.dirs.iter().any(|d| d == p))
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        let mut dirs = Vec::new();
        for dir in &self.dirs {
            if let Ok(entries) = std::fs::read_dir(dir) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        dirs.extend(self.dirs.iter().cloned());
        remove(&dirs);
    }
}

/// Best effort: a hybrid host's cgroup2 tree has no controllers to enable,
/// and a v2 host's root usually has them enabled already.
fn enable_v2_controllers(mount: &Path) {
    for controller in ["memory", "cpu", "pids"] {
        let _ = std::fs::write(
            mount.join("cgroup.subtree_control"),
            format!("+{controller}"),
        );
    }
}
