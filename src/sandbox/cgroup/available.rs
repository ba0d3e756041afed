//! How much memory isotest may still use: the least headroom (limit minus
//! usage) of its own cgroup and every ancestor, and the host's
//! MemAvailable. The scheduler's default memory budget.

use std::fs;
use std::path::Path;

use super::layout;
use crate::sandbox::mountinfo;

/// Bytes isotest's cgroup chain and the host have left, or None when not
/// even /proc/meminfo can be read.
pub fn available_memory() -> Option<u64> {
    let host = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_available(&text));
    let cgroup = cgroup_headroom();
    match (host, cgroup) {
        (Some(host), Some(cgroup)) => Some(host.min(cgroup)),
        (host, cgroup) => host.or(cgroup),
    }
}

/// The least headroom along isotest's memory cgroup and its ancestors;
/// None where no memory limit is set or the files cannot be read.
fn cgroup_headroom() -> Option<u64> {
    let mounts = mountinfo::read_own().ok()?;
    let proc_cgroup = fs::read_to_string("/proc/self/cgroup").ok()?;
    let layout = layout::detect(&mounts, &proc_cgroup).ok()?;
    let (mount, own, files) = match (layout.v1_hierarchy("memory"), &layout.v2) {
        (Some(v1), _) => (&v1.mount, &v1.own_path, V1_FILES),
        (None, Some(v2)) => (&v2.mount, &v2.own_path, V2_FILES),
        (None, None) => return None,
    };
    let mut dir = mount.join(own.strip_prefix("/").unwrap_or(own));
    let mut least: Option<u64> = None;
    loop {
        if let Some(room) = headroom_of(&dir, files) {
            least = Some(least.map_or(room, |l| l.min(room)));
        }
        if dir == *mount || !dir.pop() || !dir.starts_with(mount) {
            return least;
        }
    }
}

/// (limit file, usage file) of a cgroup version.
type Files = (&'static str, &'static str);
const V1_FILES: Files = ("memory.limit_in_bytes", "memory.usage_in_bytes");
const V2_FILES: Files = ("memory.max", "memory.current");

fn headroom_of(dir: &Path, (limit, usage): Files) -> Option<u64> {
    let limit = fs::read_to_string(dir.join(limit)).ok()?;
    let usage = fs::read_to_string(dir.join(usage)).ok()?;
    headroom(&limit, &usage)
}

/// Limit minus usage; None when there is no limit (`max`, or v1's
/// "unlimited", a number near 2^63).
fn headroom(limit: &str, usage: &str) -> Option<u64> {
    let limit: u64 = limit.trim().parse().ok()?;
    if limit >= 1 << 62 {
        return None;
    }
    let usage: u64 = usage.trim().parse().ok()?;
    Some(limit.saturating_sub(usage))
}

/// `MemAvailable:  123456 kB` in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_is_limit_minus_usage() {
        assert_eq!(headroom("1073741824\n", "73741824\n"), Some(1_000_000_000));
        assert_eq!(headroom("100", "150"), Some(0), "over the limit: no room");
        assert_eq!(headroom("max\n", "5"), None);
        assert_eq!(headroom("9223372036854771712\n", "5"), None, "v1 unlimited");
    }

    #[test]
    fn reads_mem_available() {
        let meminfo = "MemTotal:       16314736 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(mem_available(meminfo), Some(8_192_000_000));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn this_host_has_some() {
        let available = available_memory().expect("/proc/meminfo is readable");
        assert!(available > 0);
    }
}
