//! What differs between cgroup v1 and v2, behind one interface (`Version`)
//! with one implementation each: the files limits are written to and usage
//! is read from, how a group is killed at once, and how the test sees its
//! group. Everything else of a test's cgroup is the same on both.

use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};

use super::files;
use super::{read_keyed, read_value, write, CgroupView};
use crate::sandbox::spec::SetupFailure;

/// One cgroup version's files and mechanisms. Directories are those of a
/// test's group per controller (the same one on v2), `None` when that
/// controller is not available.
pub(super) trait Version: Debug + Send + Sync {
    /// Limits memory to `bytes`, swap included.
    fn limit_memory(&self, dir: &Path, bytes: u64) -> Result<(), SetupFailure>;
    /// Limits CPU time to `quota` µs per `period` µs.
    fn limit_cpu(&self, dir: &Path, quota: u64, period: u64) -> Result<(), SetupFailure>;
    /// Sets the CPU weight (1..=10000, as on v2).
    fn weigh_cpu(&self, dir: &Path, weight: u64) -> Result<(), SetupFailure>;
    /// The file with the memory limit, in bytes (or "max", or v1's
    /// unlimited: a number near 2^63).
    fn memory_limit(&self) -> &'static str;
    /// The file with the memory charged now, in bytes.
    fn memory_current(&self) -> &'static str;
    /// The file with the highest memory charged, where the kernel keeps it.
    fn memory_peak(&self) -> &'static str;
    /// User and system CPU time so far, in µs.
    fn cpu_times(&self, cpuacct: &Option<PathBuf>) -> (Option<u64>, Option<u64>);
    /// Total CPU time so far, in µs.
    fn cpu_total(&self, cpuacct: &Option<PathBuf>) -> Option<u64>;
    /// How often the OOM killer killed in the group.
    fn oom_kills(&self, memory: &Option<PathBuf>) -> Option<u64>;
    /// Kills every process of the group in one step, if this version can.
    fn kill_at_once(&self, dirs: &[PathBuf]) -> bool;
    /// How the test sees its group's directories (bytes of their paths),
    /// given the v1 hierarchy name of each parent.
    fn view(&self, dirs: &[PathBuf], hierarchy_names: &[(PathBuf, String)]) -> CgroupView;
}

/// cgroup v1: a hierarchy per controller (or a few co-mounted).
#[derive(Debug)]
pub(super) struct V1;

/// cgroup v2: one unified tree.
#[derive(Debug)]
pub(super) struct V2;

fn bytes(dir: &Path) -> Vec<u8> {
    dir.as_os_str().as_encoded_bytes().to_vec()
}

impl Version for V1 {
    fn limit_memory(&self, dir: &Path, bytes: u64) -> Result<(), SetupFailure> {
        write(dir, self.memory_limit(), &bytes.to_string())?;
        // Swap counts against the same limit: no swapping.
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            write(dir, "memory.memsw.limit_in_bytes", &bytes.to_string())
        } else {
            write(dir, "memory.swappiness", "0")
        }
    }

    fn limit_cpu(&self, dir: &Path, quota: u64, period: u64) -> Result<(), SetupFailure> {
        write(dir, "cpu.cfs_period_us", &period.to_string())?;
        write(dir, "cpu.cfs_quota_us", &quota.to_string())
    }

    fn weigh_cpu(&self, dir: &Path, weight: u64) -> Result<(), SetupFailure> {
        let shares = files::weight_to_shares(weight);
        write(dir, "cpu.shares", &shares.to_string())
    }

    fn memory_limit(&self) -> &'static str {
        "memory.limit_in_bytes"
    }

    fn memory_current(&self) -> &'static str {
        "memory.usage_in_bytes"
    }

    fn memory_peak(&self) -> &'static str {
        "memory.max_usage_in_bytes"
    }

    fn cpu_times(&self, cpuacct: &Option<PathBuf>) -> (Option<u64>, Option<u64>) {
        (
            read_value(cpuacct, "cpuacct.usage_user").map(|ns| ns / 1000),
            read_value(cpuacct, "cpuacct.usage_sys").map(|ns| ns / 1000),
        )
    }

    fn cpu_total(&self, cpuacct: &Option<PathBuf>) -> Option<u64> {
        read_value(cpuacct, "cpuacct.usage").map(|ns| ns / 1000)
    }

    fn oom_kills(&self, memory: &Option<PathBuf>) -> Option<u64> {
        read_keyed(memory, "memory.oom_control", "oom_kill")
    }

    fn kill_at_once(&self, _: &[PathBuf]) -> bool {
        false
    }

    fn view(&self, dirs: &[PathBuf], hierarchy_names: &[(PathBuf, String)]) -> CgroupView {
        let hierarchies = dirs
            .iter()
            .filter_map(|dir| {
                let parent = dir.parent()?;
                let (_, name) = hierarchy_names.iter().find(|(p, _)| p == parent)?;
                Some((name.clone(), bytes(dir)))
            })
            .collect();
        CgroupView::V1 { hierarchies }
    }
}

impl Version for V2 {
    fn limit_memory(&self, dir: &Path, bytes: u64) -> Result<(), SetupFailure> {
        write(dir, self.memory_limit(), &bytes.to_string())?;
        if dir.join("memory.swap.max").exists() {
            write(dir, "memory.swap.max", "0")?;
        }
        Ok(())
    }

    fn limit_cpu(&self, dir: &Path, quota: u64, period: u64) -> Result<(), SetupFailure> {
        write(dir, "cpu.max", &format!("{quota} {period}"))
    }

    fn weigh_cpu(&self, dir: &Path, weight: u64) -> Result<(), SetupFailure> {
        write(dir, "cpu.weight", &weight.to_string())
    }

    fn memory_limit(&self) -> &'static str {
        "memory.max"
    }

    fn memory_current(&self) -> &'static str {
        "memory.current"
    }

    fn memory_peak(&self) -> &'static str {
        "memory.peak"
    }

    fn cpu_times(&self, cpuacct: &Option<PathBuf>) -> (Option<u64>, Option<u64>) {
        (
            read_keyed(cpuacct, "cpu.stat", "user_usec"),
            read_keyed(cpuacct, "cpu.stat", "system_usec"),
        )
    }

    fn cpu_total(&self, cpuacct: &Option<PathBuf>) -> Option<u64> {
        read_keyed(cpuacct, "cpu.stat", "usage_usec")
    }

    fn oom_kills(&self, memory: &Option<PathBuf>) -> Option<u64> {
        read_keyed(memory, "memory.events", "oom_kill")
    }

    fn kill_at_once(&self, dirs: &[PathBuf]) -> bool {
        dirs.first()
            .is_some_and(|dir| fs::write(dir.join("cgroup.kill"), "1").is_ok())
    }

    fn view(&self, dirs: &[PathBuf], _: &[(PathBuf, String)]) -> CgroupView {
        dirs.first()
            .map_or(CgroupView::Empty, |dir| CgroupView::V2 {
                group: bytes(dir),
            })
    }
}

/// Where test groups go under a hierarchy mounted at `mount`: the given
/// `parent` cgroup path (like `/isotest.slice`), or isotest's own cgroup
/// there (`own_path`, relative to `mount`). No trailing `/` when that is
/// the root, so messages name the directory as users write it.
pub(super) fn parent_dir(mount: &Path, own_path: &Path, parent: Option<&Path>) -> PathBuf {
    let relative = match parent {
        Some(p) => p.strip_prefix("/").unwrap_or(p),
        None => own_path,
    };
    mount.components().chain(relative.components()).collect()
}
