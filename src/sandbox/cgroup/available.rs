//! How much memory isotest may still use: the least headroom (limit minus
//! usage) of its own cgroup and every ancestor, and the host's
//! MemAvailable. The scheduler's default memory budget.

use std::fs;
use std::path::Path;

use super::layout;
use super::version::{parent_dir, Version, V1, V2};

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
    let layout = layout::own_layout().ok()?;
    // Where this process's memory is charged: the v1 memory hierarchy if
    // one is mounted, else the cgroup2 tree.
    let (version, mount, own): (&dyn Version, _, _) = match layout.v1_hierarchy("memory") {
        Some(v1) => (&V1, &v1.mount, &v1.own_path),
        None => {
            let v2 = layout.v2.as_ref()?;
            (&V2, &v2.mount, &v2.own_path)
        }
    };
    let mut dir = parent_dir(mount, own, None);
    let mut least: Option<u64> = None;
    loop {
        if let Some(room) = headroom_of(&dir, version) {
            least = Some(least.map_or(room, |l| l.min(room)));
        }
        if dir == *mount || !dir.pop() || !dir.starts_with(mount) {
            return least;
        }
    }
}

fn headroom_of(dir: &Path, version: &dyn Version) -> Option<u64> {
    let limit = fs::read_to_string(dir.join(version.memory_limit())).ok()?;
    let usage = fs::read_to_string(dir.join(version.memory_current())).ok()?;
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
