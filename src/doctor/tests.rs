//! Unit tests of the doctor: checks from made-up hosts, rendering, and
//! one examination of this host.

use nix::errno::Errno;
use serde_json::json;

use super::decide::*;
use super::probe::{words, CgroupDir, CgroupFacts};
use super::*;
use crate::sandbox::{CgroupLayout as LayoutKind, CgroupMounts, IdMapping, V1_CONTROLLERS};
use crate::style::Styles;

fn dir(path: &str, files: &[&'static str]) -> CgroupDir {
    CgroupDir {
        path: path.into(),
        writable: Ok(()),
        files: files.to_vec(),
    }
}

/// A hybrid host: v1 hierarchies and a cgroup2 tree without controllers.
fn hybrid_mounts() -> CgroupMounts {
    CgroupMounts {
        layout: LayoutKind::Hybrid,
        cgroup2: Some("/sys/fs/cgroup/unified".into()),
    }
}

fn v1_facts(controllers: &[&'static str], files: &[&'static str]) -> CgroupFacts {
    CgroupFacts::V1 {
        mounts: hybrid_mounts(),
        dirs: V1_CONTROLLERS
            .iter()
            .map(|&c| {
                let path = format!("/sys/fs/cgroup/{c}");
                (c, controllers.contains(&c).then(|| dir(&path, files)))
            })
            .collect(),
    }
}

fn v2_facts(delegated: &str, enabled: &str, other_procs: usize) -> CgroupFacts {
    CgroupFacts::V2 {
        mounts: CgroupMounts {
            layout: LayoutKind::V2,
            cgroup2: Some("/sys/fs/cgroup".into()),
        },
        dir: dir(
            "/sys/fs/cgroup/user.slice/session-2.scope",
            &["memory.peak", "pids.peak", "memory.swap.max", "cgroup.kill"],
        ),
        is_root: false,
        delegated: words(delegated),
        enabled: words(enabled),
        other_procs,
    }
}

fn levels(checks: &[Check]) -> Vec<(&str, Level)> {
    checks.iter().map(|c| (c.name, c.level)).collect()
}

#[test]
fn kernel_versions() {
    assert_eq!(kernel_version("6.1.0-18-amd64"), Some((6, 1)));
    assert_eq!(kernel_version("5.11"), Some((5, 11)));
    assert_eq!(kernel_version("6.18.44-fc-v657"), Some((6, 18)));
    assert_eq!(kernel_version("garbage"), None);
    let userxattr = |release| overlay_check("nodev\toverlay\n", false, kernel_version(release));
    assert!(userxattr("5.11.0").finding.contains("rootless mode: yes"));
    assert!(userxattr("5.10.200").finding.contains("older than 5.11"));
    assert!(userxattr("6.0.1").finding.contains("rootless mode: yes"));
    assert!(userxattr("4.19.0").finding.contains("older than 5.11"));
}

#[test]
fn overlay_from_proc_filesystems() {
    let text = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n";
    assert!(lists_filesystem(text, "overlay"));
    assert!(lists_filesystem(text, "ext4"));
    assert!(!lists_filesystem("nodev\toverlayfs\n", "overlay"));
    assert_eq!(overlay_check(text, false, Some((6, 1))).level, Level::Ok);
    assert_eq!(
        overlay_check("\text4\n", true, Some((6, 1))).level,
        Level::Ok
    );
    assert_eq!(
        overlay_check("\text4\n", false, Some((6, 1))).level,
        Level::Missing
    );
}

#[test]
fn privileges_and_user_namespaces() {
    let single = IdMapping {
        uid: 1000,
        gid: 1000,
        range: None,
    };
    assert_eq!(privileges_check(0, &single).level, Level::Ok);
    let user = privileges_check(1000, &single);
    assert_eq!(user.level, Level::Degraded);
    assert!(user.fix.unwrap().contains("/etc/subuid"));
    let ranged = IdMapping::with_subordinate_ids(1000, 1000, 65536);
    assert_eq!(privileges_check(1000, &ranged).level, Level::Ok);
    assert_eq!(
        user_namespaces_check(Some(0), None, None, true).level,
        Level::Missing,
        "rootless cannot run without them"
    );

    assert_eq!(
        user_namespaces_check(Some(63000), None, None, false).level,
        Level::Ok
    );
    assert_eq!(
        user_namespaces_check(Some(63000), Some(1), Some(0), false).level,
        Level::Ok
    );
    let fix = |check: Check| check.fix.unwrap();
    assert!(
        fix(user_namespaces_check(Some(0), None, None, false)).contains("user.max_user_namespaces")
    );
    assert!(fix(user_namespaces_check(Some(9), Some(0), None, false))
        .contains("kernel.unprivileged_userns_clone=1"));
    assert!(fix(user_namespaces_check(Some(9), None, Some(1), false))
        .contains("kernel.apparmor_restrict_unprivileged_userns=0"));
    assert!(fix(user_namespaces_check(None, None, None, false)).contains("CONFIG_USER_NS"));
}

#[test]
fn namespaces() {
    assert_eq!(namespaces_check(&[], Some(Ok(()))).level, Level::Ok);
    assert_eq!(namespaces_check(&[], None).level, Level::Ok);
    assert_eq!(namespaces_check(&["net"], None).level, Level::Missing);
    let refused = namespaces_check(&[], Some(Err("unshare failed: EPERM".into())));
    assert_eq!(refused.level, Level::Missing);
    assert!(refused.finding.contains("EPERM"));
}

#[test]
fn hybrid_host_uses_v1_controllers() {
    let facts = v1_facts(&V1_CONTROLLERS, &["memory.memsw.limit_in_bytes"]);
    let checks = cgroup_checks(&facts);
    assert_eq!(
        checks[0].finding,
        "hybrid (cgroup2 at /sys/fs/cgroup/unified): isotest uses v1 memory, cpu, cpuacct, pids, freezer"
    );
    assert_eq!(
        levels(&checks),
        [
            ("cgroups", Level::Ok),
            ("peak usage", Level::Degraded),
            ("swap", Level::Ok),
            ("cleanup", Level::Ok),
        ]
    );
    assert!(checks[1]
        .finding
        .contains("processes sampled from pids.current"));
}

#[test]
fn v1_without_some_controllers() {
    let checks = cgroup_checks(&v1_facts(&["memory", "pids"], &["pids.peak"]));
    assert_eq!(
        levels(&checks),
        [
            ("cgroups", Level::Degraded),
            ("peak usage", Level::Ok),
            ("swap", Level::Degraded),
            ("cleanup", Level::Degraded),
        ]
    );
    assert!(checks[0]
        .finding
        .ends_with("not mounted: cpu (no CPU limit), cpuacct (no CPU time)"));
}

#[test]
fn unwritable_cgroups_mean_no_limits() {
    let CgroupFacts::V1 { mounts, mut dirs } = v1_facts(&V1_CONTROLLERS, &[]) else {
        unreachable!()
    };
    dirs[3].1.as_mut().unwrap().writable =
        Err("cannot create cgroups in /sys/fs/cgroup/pids: EACCES".into());
    let checks = cgroup_checks(&CgroupFacts::V1 { mounts, dirs });
    assert_eq!(levels(&checks), [("cgroups", Level::Degraded)]);
    assert!(checks[0]
        .finding
        .ends_with("EACCES: tests run without limits and usage figures"));
    assert!(checks[0].fix.as_ref().unwrap().contains("Delegate=yes"));
    assert!(checks[0].fix.as_ref().unwrap().contains("--cgroup-parent"));
}

#[test]
fn v2_moves_into_a_leaf_when_alone() {
    let checks = cgroup_checks(&v2_facts("cpuset cpu io memory pids", "", 0));
    assert_eq!(
        levels(&checks),
        [
            ("cgroups", Level::Ok),
            ("cgroup leaf", Level::Ok),
            ("peak usage", Level::Ok),
            ("swap", Level::Ok),
            ("cleanup", Level::Ok),
        ]
    );
    assert!(checks[1]
        .finding
        .starts_with("isotest moves itself into a leaf"));
    let enabled = cgroup_checks(&v2_facts("memory cpu pids", "memory cpu pids", 3));
    assert!(enabled[1].finding.contains("already enabled"));
}

#[test]
fn v2_shared_or_undelegated_cgroup_means_no_limits() {
    let shared = cgroup_checks(&v2_facts("memory cpu pids", "", 2));
    assert_eq!(levels(&shared), [("cgroups", Level::Degraded)]);
    assert!(shared[0].finding.contains("2 other process(es)"));
    let none = cgroup_checks(&v2_facts("cpuset io", "", 0));
    assert_eq!(levels(&none), [("cgroups", Level::Degraded)]);
    let partial = cgroup_checks(&v2_facts("memory pids", "", 0));
    assert_eq!(partial[0].level, Level::Degraded);
    assert!(partial[0]
        .finding
        .ends_with("not delegated: cpu (no CPU limit)"));
}

#[test]
fn seccomp_from_proc_status() {
    let actions = Some("kill_process kill_thread trap errno user_notif trace log allow");
    let unfiltered = "Name:\tisotest\nSeccomp:\t0\nSeccomp_filters:\t0\n";
    assert_eq!(seccomp_check(unfiltered, actions).level, Level::Ok);
    let filtered = seccomp_check("Seccomp:\t2\nSeccomp_filters:\t1\n", actions);
    assert!(filtered.finding.contains("under 1 filter(s)"));
    assert_eq!(
        seccomp_check("Name:\tisotest\n", None).level,
        Level::Degraded
    );
    assert_eq!(
        seccomp_check(unfiltered, Some("kill allow")).level,
        Level::Degraded
    );
}

#[test]
fn pidfd() {
    assert_eq!(pidfd_check(Ok(())).level, Level::Ok);
    assert!(pidfd_check(Err(Errno::ENOSYS)).finding.contains("5.3"));
    assert_eq!(pidfd_check(Err(Errno::EPERM)).level, Level::Missing);
}

fn with_levels(levels: &[Level]) -> Diagnosis {
    Diagnosis {
        kernel: "6.1.0-18-amd64".into(),
        cgroup_layout: LayoutKind::Hybrid,
        checks: levels
            .iter()
            .map(|&level| Check {
                name: "kernel",
                level,
                finding: "x".into(),
                fix: (level != Level::Ok).then(|| "y".into()),
            })
            .collect(),
    }
}

#[test]
fn rootless_root_says_which_overlay_applies() {
    use crate::sandbox::RootlessOverlay;
    let fuse = RootlessOverlay::Fuse("/usr/bin/fuse-overlayfs".into());
    let check = rootless_root_check(&fuse, true);
    assert_eq!(check.level, Level::Ok);
    assert!(check.finding.contains("/usr/bin/fuse-overlayfs"));
    let kernel = RootlessOverlay::Kernel {
        hint: String::new(),
    };
    let rootless = rootless_root_check(&kernel, true);
    assert_eq!(rootless.level, Level::Degraded);
    assert!(rootless
        .fix
        .as_deref()
        .is_some_and(|f| f.contains("fuse-overlayfs")));
    assert_eq!(rootless_root_check(&kernel, false).level, Level::Ok);
}

#[test]
fn only_missing_checks_stop_tests() {
    assert!(with_levels(&[Level::Ok, Level::Ok]).can_run_tests());
    assert!(with_levels(&[Level::Ok, Level::Degraded]).can_run_tests());
    assert!(!with_levels(&[Level::Degraded, Level::Missing]).can_run_tests());
}

#[test]
fn renders_text() {
    let diagnosis = Diagnosis {
        kernel: "6.1.0-18-amd64".into(),
        cgroup_layout: LayoutKind::V2,
        checks: vec![
            Check::ok("kernel", "6.1.0-18-amd64 (x86_64)"),
            Check::degraded("swap", "no memory.swap.max", "boot with swapaccount=1"),
        ],
    };
    assert_eq!(
        diagnosis.render_text(Styles::new(false)),
        "isotest doctor: this host can run tests, with limitations\n\
         \x20     OK  kernel          6.1.0-18-amd64 (x86_64)\n\
         DEGRADED  swap            no memory.swap.max\n\
         \x20                         fix: boot with swapaccount=1\n"
    );
    let colored = diagnosis.render_text(Styles::new(true));
    assert!(colored.contains("\x1b[32m      OK\x1b[0m  kernel"));
    assert!(colored.contains("\x1b[33mDEGRADED\x1b[0m  swap"));
    assert!(with_levels(&[Level::Missing])
        .render_text(Styles::new(false))
        .starts_with("isotest doctor: this host cannot run tests\n"));
}

#[test]
fn renders_json() {
    let json = with_levels(&[Level::Ok, Level::Missing]).to_json();
    assert_eq!(json["can_run_tests"], false);
    assert_eq!(json["kernel"], "6.1.0-18-amd64");
    assert_eq!(json["cgroup_layout"], "hybrid");
    assert_eq!(
        json["checks"][0],
        json!({ "name": "kernel", "level": "ok", "finding": "x", "fix": null })
    );
    assert_eq!(json["checks"][1]["level"], "missing");
    assert_eq!(json["checks"][1]["fix"], "y");
}

#[test]
fn examines_this_host() {
    let diagnosis = examine();
    println!("{}", diagnosis.render_text(Styles::new(false)));
    assert!(diagnosis.checks.iter().any(|c| c.name == "kernel"));
}

#[test]
fn network_checks_name_what_failed() {
    use super::probe::NetworkProbe;
    let probe = |bridge: Result<(), &str>, outbound: Option<Result<(), &str>>| NetworkProbe {
        bridge: bridge.map_err(str::to_string),
        outbound: outbound.map(|o| o.map_err(str::to_string)),
    };
    let all = network_checks(0, &probe(Ok(()), Some(Ok(()))));
    assert_eq!(
        levels(&all),
        [("networks", Level::Ok), ("outbound", Level::Ok)]
    );
    let broken = network_checks(
        0,
        &probe(Err("create bridge br0: EOPNOTSUPP"), Some(Err("no nft"))),
    );
    assert_eq!(
        levels(&broken),
        [("networks", Level::Degraded), ("outbound", Level::Degraded)]
    );
    assert!(broken[0].finding.contains("EOPNOTSUPP"));
    let rootless = network_checks(1000, &probe(Ok(()), None));
    assert!(rootless[1].finding.contains("rootless"));
}
