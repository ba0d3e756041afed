//! Parsers for the cgroup file formats we read, v1 and v2 alike
//! (Documentation/admin-guide/cgroup-v2.rst, "Interface Files"):
//! single values (`123`, `max`), flat keyed files (`key value` lines:
//! memory.events, pids.events, cpu.stat, cpuacct.stat, memory.oom_control)
//! and the controller lists of cgroup.controllers / subtree_control.

/// A single-value file: a number, or `max` for no limit (None).
pub fn parse_value(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "max" => Ok(None),
        value => value
            .parse()
            .map(Some)
            .map_err(|_| format!("expected a number or `max`, found `{value}`")),
    }
}

/// The value of `key` in a flat keyed file.
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.trim().split_once(char::is_whitespace)?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

/// A space-separated controller list: `cpuset cpu io memory pids`.
pub fn controllers(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The v1 `cpu.shares` (2..=262144) for a v2 `cpu.weight` (1..=10000):
/// the inverse of runc's and crun's linear shares-to-weight mapping, so
/// that a weight set here and a share set for runc mean the same.
pub fn weight_to_shares(weight: u64) -> u64 {
    let weight = weight.clamp(1, 10_000);
    2 + (weight - 1) * 262_142 / 9_999
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_map_to_v1_shares_as_runc_maps_back() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        for weight in [1, 50, 100, 300, 9_999, 10_000] {
            let shares = weight_to_shares(weight);
            // runc: weight = 1 + (shares - 2) * 9999 / 262142.
            let back = 1 + (shares - 2) * 9_999 / 262_142;
            assert!(back.abs_diff(weight) <= 1, "{weight} -> {shares} -> {back}");
        }
        let ratio = weight_to_shares(300) as f64 / weight_to_shares(100) as f64;
        assert!((ratio - 3.0).abs() < 0.05, "{ratio}");
    }

    // Samples read off a 6.x kernel.
    const MEMORY_EVENTS_V2: &str = "low 0\nhigh 0\nmax 1532\noom 1\noom_kill 1\noom_group_kill 0\n";
    const CPU_STAT_V2: &str = "usage_usec 2003145\nuser_usec 1000123\nsystem_usec 1003022\n\
        core_sched.force_idle_usec 0\nnr_periods 40\nnr_throttled 38\nthrottled_usec 1912012\n\
        nr_bursts 0\nburst_usec 0\n";
    const OOM_CONTROL_V1: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
    const CPUACCT_STAT_V1: &str = "user 8268\nsystem 3411\n";
    const PIDS_EVENTS: &str = "max 17\n";

    #[test]
    fn single_values() {
        assert_eq!(parse_value("268435456\n").unwrap(), Some(268435456));
        assert_eq!(parse_value("max\n").unwrap(), None);
        assert!(parse_value("lots").is_err());
    }

    #[test]
    fn keyed_files() {
        assert_eq!(keyed_value(MEMORY_EVENTS_V2, "oom_kill"), Some(1));
        assert_eq!(keyed_value(MEMORY_EVENTS_V2, "oom"), Some(1));
        assert_eq!(keyed_value(MEMORY_EVENTS_V2, "max"), Some(1532));
        assert_eq!(keyed_value(CPU_STAT_V2, "user_usec"), Some(1000123));
        assert_eq!(keyed_value(CPU_STAT_V2, "system_usec"), Some(1003022));
        assert_eq!(keyed_value(OOM_CONTROL_V1, "oom_kill"), Some(2));
        assert_eq!(keyed_value(CPUACCT_STAT_V1, "system"), Some(3411));
        assert_eq!(keyed_value(PIDS_EVENTS, "max"), Some(17));
        assert_eq!(keyed_value(PIDS_EVENTS, "absent"), None);
    }

    #[test]
    fn controller_lists() {
        assert_eq!(
            controllers("cpuset cpu io memory hugetlb pids rdma misc\n"),
            ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"]
        );
        assert!(controllers("\n").is_empty());
    }
}
