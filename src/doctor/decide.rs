//! Facts become checks: each check is a pure function of what `probe` read,
//! with a level, a finding and, unless OK, the fix.

use nix::errno::Errno;

use super::probe::{CgroupDir, CgroupFacts, HostFacts, NetworkProbe};
use super::{Check, Diagnosis};
use crate::sandbox::{
    CgroupLayout as LayoutKind, CgroupMounts, IdMapping, RootlessOverlay, V1_CONTROLLERS,
    V2_CONTROLLERS,
};

/// Every check, in the order shown.
pub(super) fn diagnose(facts: &HostFacts) -> Diagnosis {
    let mut checks = vec![
        Check::ok("kernel", format!("{} ({})", facts.kernel, facts.machine)),
        privileges_check(facts.euid, &facts.mapping),
        user_namespaces_check(
            facts.max_user_namespaces,
            facts.unprivileged_userns_clone,
            facts.apparmor_restrict_userns,
            facts.euid != 0,
        ),
        namespaces_check(&facts.absent_namespaces, facts.namespace_probe.clone()),
        overlay_check(
            &facts.proc_filesystems,
            facts.overlay_module,
            kernel_version(&facts.kernel),
        ),
        scratch_check(facts.tmp_exists),
        rootless_root_check(&facts.rootless_overlay, facts.euid != 0),
    ];
    checks.extend(cgroup_checks(&facts.cgroups));
    checks.push(seccomp_check(
        &facts.proc_status,
        facts.seccomp_actions.as_deref(),
    ));
    checks.push(pidfd_check(facts.pidfd));
    checks.extend(network_checks(facts.euid, &facts.network));
    Diagnosis {
        kernel: facts.kernel.clone(),
        cgroup_layout: facts.cgroups.kind(),
        checks,
    }
}

/// `(major, minor)` of a release like `6.1.0-18-amd64`.
pub(super) fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// Root, or rootless: what the user namespace will map.
pub(super) fn privileges_check(euid: u32, mapping: &IdMapping) -> Check {
    const NAME: &str = "privileges";
    if euid == 0 {
        return Check::ok(NAME, "running as root");
    }
    let finding = format!(
        "running as uid {euid}: rootless, each container starts in a user namespace \
         mapping {}",
        mapping.describe()
    );
    if mapping.range.is_some() {
        Check::ok(NAME, finding)
    } else {
        Check::degraded(
            NAME,
            format!("{finding}; tests cannot switch to other users (`user =`)"),
            "give this user a range in /etc/subuid and /etc/subgid (usermod --add-subuids, \
             --add-subgids) and install newuidmap/newgidmap (package uidmap)",
        )
    }
}

/// Whether unprivileged users may create user namespaces: rootless mode
/// needs them; as root isotest does not use them.
pub(super) fn user_namespaces_check(
    max_user_namespaces: Option<u64>,
    debian_unprivileged_clone: Option<u64>,
    ubuntu_apparmor_restrict: Option<u64>,
    rootless: bool,
) -> Check {
    const NAME: &str = "user namespaces";
    let later = if rootless {
        "rootless mode needs them"
    } else {
        "only rootless mode needs them"
    };
    let unavailable = |finding: String, fix: &str| {
        if rootless {
            Check::missing(NAME, finding, fix)
        } else {
            Check::degraded(NAME, finding, fix)
        }
    };
    match (
        max_user_namespaces,
        debian_unprivileged_clone,
        ubuntu_apparmor_restrict,
    ) {
        (None, _, _) => unavailable(
            format!("the kernel has none (no /proc/sys/user/max_user_namespaces); {later}"),
            "a kernel built with CONFIG_USER_NS",
        ),
        (Some(0), _, _) => unavailable(
            format!("disabled by user.max_user_namespaces = 0; {later}"),
            "sysctl -w user.max_user_namespaces=15000",
        ),
        (_, Some(0), _) => unavailable(
            format!("disabled for unprivileged users by kernel.unprivileged_userns_clone = 0; {later}"),
            "sysctl -w kernel.unprivileged_userns_clone=1",
        ),
        (_, _, Some(restrict)) if restrict != 0 => unavailable(
            format!(
                "restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns = {restrict}); {later}"
            ),
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, \
             or an AppArmor profile that allows userns for isotest",
        ),
        (Some(max), _, _) => Check::ok(
            NAME,
            format!("available (user.max_user_namespaces = {max}); {later}"),
        ),
    }
}

pub(super) fn namespaces_check(absent: &[&str], probe: Option<Result<(), String>>) -> Check {
    const NAME: &str = "namespaces";
    if !absent.is_empty() {
        return Check::missing(
            NAME,
            format!("the kernel lacks {} namespaces", absent.join(", ")),
            "a kernel built with CONFIG_PID_NS, CONFIG_NET_NS, CONFIG_UTS_NS and CONFIG_IPC_NS",
        );
    }
    match probe {
        Some(Ok(())) => Check::ok(
            NAME,
            "pid, mount, net, uts, ipc: a probe set was created and ended",
        ),
        Some(Err(e)) => Check::missing(
            NAME,
            format!("creating them failed: {e}"),
            "run isotest on the host or in a privileged container (docker run --privileged); \
             a seccomp or AppArmor policy may block unshare",
        ),
        None => Check::ok(
            NAME,
            "pid, mount, net, uts, ipc present (not probed: that needs root and unshare(1))",
        ),
    }
}

/// Whether a /proc/filesystems text (`nodev\toverlay` lines) lists `name`.
pub(super) fn lists_filesystem(proc_filesystems: &str, name: &str) -> bool {
    proc_filesystems
        .lines()
        .any(|line| line.split_whitespace().last() == Some(name))
}

pub(super) fn overlay_check(
    proc_filesystems: &str,
    module: bool,
    version: Option<(u32, u32)>,
) -> Check {
    // userxattr lets overlay work inside a user namespace (rootless mode).
    let userxattr = match version {
        Some(v) if v >= (5, 11) => "userxattr for rootless mode: yes",
        Some(_) => "userxattr for rootless mode: no (kernel older than 5.11)",
        None => "userxattr for rootless mode: unknown kernel version",
    };
    if lists_filesystem(proc_filesystems, "overlay") {
        Check::ok(
            "overlay",
            format!("overlay in /proc/filesystems; {userxattr}"),
        )
    } else if module {
        Check::ok(
            "overlay",
            format!("overlay module present, loaded on first mount; {userxattr}"),
        )
    } else {
        Check::missing(
            "overlay",
            "overlayfs is not in /proc/filesystems and no overlay module is installed",
            "modprobe overlay, or a kernel built with CONFIG_OVERLAY_FS",
        )
    }
}

/// How a rootless container's root takes writes: fuse-overlayfs, or the
/// kernel's overlay, under which writes below host directories of unmapped
/// owners (/var/tmp/x) fail.
pub(super) fn rootless_root_check(overlay: &RootlessOverlay, rootless: bool) -> Check {
    const NAME: &str = "rootless root";
    match overlay {
        RootlessOverlay::Fuse(program) => Check::ok(
            NAME,
            format!(
                "fuse-overlayfs ({}) with /dev/fuse: rootless writes anywhere in the root work",
                program.display()
            ),
        ),
        RootlessOverlay::Kernel { .. } if !rootless => Check::ok(
            NAME,
            "no usable fuse-overlayfs; only rootless mode needs it (for writes below \
             host directories like /var/tmp)",
        ),
        RootlessOverlay::Kernel { .. } => Check::degraded(
            NAME,
            "no usable fuse-overlayfs: the kernel's overlay refuses writes below host \
             directories the caller does not own (/var/tmp/x: EOVERFLOW)",
            "apt-get install fuse-overlayfs, and chmod 0666 /dev/fuse",
        ),
    }
}

fn scratch_check(tmp_exists: bool) -> Check {
    if tmp_exists {
        Check::ok(
            "scratch",
            "/tmp exists (each container mounts its scratch tmpfs there)",
        )
    } else {
        Check::missing(
            "scratch",
            "no /tmp directory to mount each container's scratch tmpfs on",
            "mkdir -m 1777 /tmp",
        )
    }
}

const DELEGATE_FIX: &str = "run isotest in a cgroup it may manage, \
    e.g. `systemd-run --scope -p Delegate=yes isotest run ...` as root, \
    `systemd-run --user --scope -p Delegate=yes isotest run ...` as a user (cgroup v2), \
    or pass `--cgroup-parent PATH` naming a writable cgroup";

/// The one line when isotest cannot use cgroups at all.
fn no_limits(finding: String, fix: &str) -> Vec<Check> {
    vec![Check::degraded(
        "cgroups",
        format!("{finding}: tests run without limits and usage figures"),
        format!("{fix} (`--require-limits` makes this an error instead)"),
    )]
}

fn layout_summary(mounts: &CgroupMounts) -> String {
    match (mounts.layout, &mounts.cgroup2) {
        (LayoutKind::V2, Some(mount)) => format!("v2 at {}", mount.display()),
        (LayoutKind::Hybrid, Some(mount)) => format!("hybrid (cgroup2 at {})", mount.display()),
        (kind, _) => kind.to_string(),
    }
}

/// The `cgroups` line: `finding`, then the controllers of `wanted` that
/// isotest cannot use (`how`: not mounted, not delegated) and what each
/// costs.
fn cgroups_line(
    finding: String,
    wanted: &[&str],
    used: impl Fn(&str) -> bool,
    how: &str,
    fix: &str,
) -> Check {
    let absent: Vec<String> = wanted
        .iter()
        .filter(|c| !used(c))
        .map(|c| format!("{c} ({})", without(c)))
        .collect();
    if absent.is_empty() {
        Check::ok("cgroups", finding)
    } else {
        Check::degraded(
            "cgroups",
            format!("{finding}; {how}: {}", absent.join(", ")),
            fix,
        )
    }
}

/// What isotest loses without a controller.
fn without(controller: &str) -> &'static str {
    match controller {
        "memory" => "no memory limit or peak",
        "cpu" => "no CPU limit",
        "cpuacct" => "no CPU time",
        _ => "no process limit or peak",
    }
}

pub(super) fn cgroup_checks(facts: &CgroupFacts) -> Vec<Check> {
    match facts {
        CgroupFacts::Unreadable(_, reason) => no_limits(reason.clone(), DELEGATE_FIX),
        CgroupFacts::Unusable(mounts) if mounts.layout == LayoutKind::None => no_limits(
            "no cgroup filesystem is mounted".into(),
            "mount cgroup2: `mount -t cgroup2 none /sys/fs/cgroup`",
        ),
        CgroupFacts::Unusable(mounts) => no_limits(
            format!(
                "{}: neither a memory nor a pids hierarchy is mounted",
                layout_summary(mounts)
            ),
            "mount the v1 memory and pids hierarchies, or boot with cgroup v2 \
             (systemd.unified_cgroup_hierarchy=1)",
        ),
        CgroupFacts::V1 { mounts, dirs } => v1_checks(mounts, dirs),
        CgroupFacts::V2 {
            mounts,
            dir,
            is_root,
            delegated,
            enabled,
            other_procs,
        } => v2_checks(mounts, dir, *is_root, delegated, enabled, *other_procs),
    }
}

fn v1_checks(mounts: &CgroupMounts, dirs: &[(&'static str, Option<CgroupDir>)]) -> Vec<Check> {
    let summary = layout_summary(mounts);
    let mounted: Vec<(&str, &CgroupDir)> = dirs
        .iter()
        .filter_map(|(c, dir)| Some((*c, dir.as_ref()?)))
        .collect();
    if let Some(Err(reason)) = mounted
        .iter()
        .map(|(_, dir)| &dir.writable)
        .find(|w| w.is_err())
    {
        return no_limits(format!("{summary}: {reason}"), DELEGATE_FIX);
    }
    let used = |c: &str| mounted.iter().any(|(name, _)| *name == c);
    let has_file = |f: &str| mounted.iter().any(|(_, dir)| dir.has(f));
    let names: Vec<&str> = mounted.iter().map(|(c, _)| *c).collect();
    let finding = format!("{summary}: isotest uses v1 {}", names.join(", "));
    // A missing freezer only changes cleanup, reported below.
    let cgroups = cgroups_line(
        finding,
        &V1_CONTROLLERS[..4],
        used,
        "not mounted",
        "mount the missing v1 hierarchies, or boot with cgroup v2 \
         (systemd.unified_cgroup_hierarchy=1)",
    );
    let mut checks = vec![
        cgroups,
        peak_check(
            used("memory").then_some(Peak::Kernel("memory.max_usage_in_bytes")),
            used("pids").then(|| pids_peak(has_file("pids.peak"))),
        ),
    ];
    if used("memory") {
        checks.push(if has_file("memory.memsw.limit_in_bytes") {
            Check::ok(
                "swap",
                "memory.memsw.limit_in_bytes: swap counts against a test's memory limit",
            )
        } else {
            Check::degraded(
                "swap",
                "no swap accounting (memory.memsw.*): isotest sets memory.swappiness to 0 instead",
                "boot with swapaccount=1",
            )
        });
    }
    checks.push(if used("freezer") {
        Check::ok(
            "cleanup",
            "freezer: anything left in a finished test's cgroup is frozen, killed, then thawed",
        )
    } else {
        Check::degraded(
            "cleanup",
            "no freezer hierarchy: leftover processes are killed one by one and may fork meanwhile",
            "mount the v1 freezer hierarchy",
        )
    });
    checks
}

fn v2_checks(
    mounts: &CgroupMounts,
    dir: &CgroupDir,
    is_root: bool,
    delegated: &[String],
    enabled: &[String],
    other_procs: usize,
) -> Vec<Check> {
    let summary = layout_summary(mounts);
    let path = dir.path.display();
    let used: Vec<&str> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| delegated.iter().any(|d| d == c))
        .collect();
    if used.is_empty() {
        return no_limits(
            format!("{summary}: no controllers are delegated to isotest's cgroup {path} (its cgroup.controllers has none of memory, cpu, pids)"),
            DELEGATE_FIX,
        );
    }
    if let Err(reason) = &dir.writable {
        return no_limits(format!("{summary}: {reason}"), DELEGATE_FIX);
    }
    let to_enable: Vec<&str> = used
        .iter()
        .copied()
        .filter(|c| !enabled.iter().any(|e| e == c))
        .collect();
    let leaf = if to_enable.is_empty() {
        Check::ok(
            "cgroup leaf",
            format!("{} already enabled for children of {path}", used.join(", ")),
        )
    } else if is_root {
        Check::ok(
            "cgroup leaf",
            format!(
                "in the root cgroup isotest enables {} without moving",
                to_enable.join(", ")
            ),
        )
    } else if other_procs > 0 {
        // Cgroups::setup moves only itself, so the others keep the cgroup
        // busy and enabling controllers fails ("no internal processes").
        return no_limits(
            format!(
                "{summary}: {other_procs} other process(es) share isotest's cgroup {path}, \
                 so controllers cannot be enabled for tests there"
            ),
            "start isotest in a cgroup of its own, e.g. `systemd-run --scope -p Delegate=yes isotest run ...`, \
             or pass `--cgroup-parent PATH`",
        );
    } else {
        Check::ok(
            "cgroup leaf",
            format!(
                "isotest moves itself into a leaf in {path}, then enables {} for tests",
                to_enable.join(", ")
            ),
        )
    };
    let finding = format!("{summary}: isotest uses {} in {path}", used.join(", "));
    let cgroups = cgroups_line(
        finding,
        &V2_CONTROLLERS,
        |c| used.contains(&c),
        "not delegated",
        DELEGATE_FIX,
    );
    let mut checks = vec![cgroups, leaf];
    checks.extend(v2_figures(dir, &used));
    checks
}

/// Peak figures, swap and cleanup on v2, given the controllers isotest uses.
fn v2_figures(dir: &CgroupDir, used: &[&str]) -> Vec<Check> {
    let memory = used.contains(&"memory");
    let mut checks = vec![peak_check(
        memory.then(|| {
            if dir.has("memory.peak") {
                Peak::Kernel("memory.peak")
            } else {
                Peak::Sampled("memory.current")
            }
        }),
        used.contains(&"pids")
            .then(|| pids_peak(dir.has("pids.peak"))),
    )];
    if memory {
        checks.push(if dir.has("memory.swap.max") {
            Check::ok("swap", "memory.swap.max is set to 0: tests cannot swap")
        } else {
            Check::degraded(
                "swap",
                "no memory.swap.max (no swap accounting): a test can swap beyond its memory limit",
                "boot with swapaccount=1 (kernel with CONFIG_MEMCG_SWAP)",
            )
        });
    }
    checks.push(if dir.has("cgroup.kill") {
        Check::ok(
            "cleanup",
            "cgroup.kill ends a finished test's leftover processes at once",
        )
    } else {
        Check::degraded(
            "cleanup",
            "no cgroup.kill: leftover processes are killed one by one and may fork meanwhile",
            "a kernel ≥ 5.14",
        )
    });
    checks
}

/// Where a peak figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peak {
    /// A file the kernel keeps.
    Kernel(&'static str),
    /// Sampling this file while the test runs, which can miss short spikes.
    Sampled(&'static str),
}

fn pids_peak(has_peak_file: bool) -> Peak {
    if has_peak_file {
        Peak::Kernel("pids.peak")
    } else {
        Peak::Sampled("pids.current")
    }
}

/// `None` for a controller isotest does not use (the cgroups line says so).
fn peak_check(memory: Option<Peak>, pids: Option<Peak>) -> Check {
    let parts: Vec<String> = [("memory", memory), ("processes", pids)]
        .into_iter()
        .filter_map(|(what, peak)| {
            Some(match peak? {
                Peak::Kernel(file) => format!("{what} from {file}"),
                Peak::Sampled(file) => format!("{what} sampled from {file}"),
            })
        })
        .collect();
    if parts.is_empty() {
        return Check::ok("peak usage", "none measured");
    }
    let finding = format!("peak {}", parts.join(", "));
    if [memory, pids]
        .iter()
        .any(|p| matches!(p, Some(Peak::Sampled(_))))
    {
        Check::degraded(
            "peak usage",
            format!("{finding} (sampling can miss short spikes)"),
            "a newer kernel: memory.peak arrived in 5.19, pids.peak later",
        )
    } else {
        Check::ok("peak usage", finding)
    }
}

/// `Seccomp:` in /proc/self/status exists when the kernel has seccomp; the
/// `errno` action (how isotest's filter refuses calls) needs filter support.
pub(super) fn seccomp_check(proc_status: &str, actions_avail: Option<&str>) -> Check {
    const FIX: &str =
        "set `seccomp = false` in isotest.toml, or use a kernel built with CONFIG_SECCOMP_FILTER";
    let field = |name: &str| {
        proc_status
            .lines()
            .find_map(|line| Some(line.strip_prefix(name)?.strip_prefix(':')?.trim()))
    };
    let Some(mode) = field("Seccomp") else {
        return Check::degraded(
            "seccomp",
            "the kernel has no seccomp: isotest cannot filter tests' syscalls",
            FIX,
        );
    };
    if !actions_avail.is_some_and(|a| a.split_whitespace().any(|x| x == "errno")) {
        return Check::degraded(
            "seccomp",
            "the kernel has no seccomp filters: isotest cannot filter tests' syscalls",
            FIX,
        );
    }
    match (mode, field("Seccomp_filters")) {
        ("0", _) => Check::ok("seccomp", "filters supported; isotest itself runs unfiltered"),
        (_, Some(n)) => Check::ok(
            "seccomp",
            format!("filters supported; isotest already runs under {n} filter(s), which its tests inherit"),
        ),
        (_, None) => Check::ok(
            "seccomp",
            "filters supported; isotest already runs under a filter, which its tests inherit",
        ),
    }
}

pub(super) fn pidfd_check(result: Result<(), Errno>) -> Check {
    match result {
        Ok(()) => Check::ok("pidfd", "pidfd_open works"),
        Err(Errno::ENOSYS) => Check::missing(
            "pidfd",
            "pidfd_open: ENOSYS (kernel older than 5.3)",
            "a kernel ≥ 5.3",
        ),
        Err(e) => Check::missing(
            "pidfd",
            format!("pidfd_open on isotest's own pid: {e}"),
            "allow pidfd_open (a container's seccomp policy may block it)",
        ),
    }
}

/// Whether a test gets services (bridge, veths) and an outbound uplink.
pub(super) fn network_checks(euid: u32, probe: &NetworkProbe) -> Vec<Check> {
    let networks = match &probe.bridge {
        Ok(()) => Check::ok(
            "networks",
            "a bridge and veth pairs in a namespace of their own: tests get services",
        ),
        Err(e) => Check::degraded(
            "networks",
            format!("a test network could not be built: {e}"),
            "a kernel with CONFIG_BRIDGE and CONFIG_VETH; until then tests with \
             `services` or network = \"outbound\" are errors",
        ),
    };
    let outbound = match &probe.outbound {
        Some(Ok(())) => Check::ok(
            "outbound",
            "an uplink veth to the host with NAT (nftables or iptables) in the test network",
        ),
        Some(Err(e)) => Check::degraded(
            "outbound",
            format!("network = \"outbound\" does not work here: {e}"),
            "install nftables (or iptables) and a kernel with CONFIG_NFT_MASQ or \
             CONFIG_IP_NF_TARGET_MASQUERADE",
        ),
        None if euid != 0 => Check::degraded(
            "outbound",
            "rootless: a user namespace cannot add an uplink to the host's network",
            "run as root for network = \"outbound\"",
        ),
        None => Check::ok("outbound", "not probed"),
    };
    vec![networks, outbound]
}
