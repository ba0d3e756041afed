//! Per-test scratch directories under `--scratch DIR`: the test's writable
//! space on disk instead of a tmpfs. Each is named after the runner's pid,
//! removed when its container ends, and swept by a later run if the runner
//! died first.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::spec::SetupFailure;
use super::step::Step;

const PREFIX: &str = "isotest-scratch-";

/// One test's scratch directory; removed on drop.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A fresh, empty directory under `parent`, readable only by us.
    pub fn create(parent: &Path) -> Result<ScratchDir, SetupFailure> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = parent.join(name);
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .step(|| format!("create scratch directory {}", path.display()))?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// Removes `path` and everything in it. overlayfs leaves its work
/// directory with mode 000, which only root may enter regardless: others
/// (rootless) first give their own directories back their permissions.
fn remove_tree(path: &Path) -> bool {
    if fs::remove_dir_all(path).is_ok() {
        return true;
    }
    open_up(path);
    fs::remove_dir_all(path).is_ok()
}

fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&entry.path());
        }
    }
}

/// Checks that `parent` can hold scratch directories, and removes those
/// of runners that are gone. Returns how many were removed.
pub fn prepare_parent(parent: &Path) -> Result<usize, String> {
    let entries =
        fs::read_dir(parent).map_err(|e| format!("--scratch {}: {e}", parent.display()))?;
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !super::cgroup::runner_alive(pid) && remove_tree(&entry.path()) {
            removed += 1;
        }
    }
    Ok(removed)
}
