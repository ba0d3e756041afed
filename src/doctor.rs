//! `isotest doctor`: what this host offers and what isotest will do with it.
//!
//! Each check is a pure function of what was read from the host, so tests
//! can feed it any host; `examine` does the reading. Doctor changes nothing:
//! its probes (a namespace set, a cgroup `isotest-doctor-<pid>`) are gone
//! again before it returns.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::unistd::geteuid;
use serde_json::{json, Value};

use crate::sandbox::cgroup::layout::{self, Layout, LayoutKind};
use crate::sandbox::mountinfo;
use crate::sandbox::userns::IdMapping;
use crate::sandbox::RootlessOverlay;

/// How far a check stands between this host and a full isotest run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Tests run, without something (limits, a figure, a future mode).
    Degraded,
    /// Tests cannot run here.
    Missing,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Degraded => "DEGRADED",
            Level::Missing => "MISSING",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Level::Ok => "\x1b[32m",
            Level::Degraded => "\x1b[33m",
            Level::Missing => "\x1b[1;31m",
        }
    }
}

/// One line of the diagnosis; `fix` is set for every level but OK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub finding: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, finding: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Ok,
            finding: finding.into(),
            fix: None,
        }
    }

    fn degraded(name: &'static str, finding: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Degraded,
            finding: finding.into(),
            fix: Some(fix.into()),
        }
    }

    fn missing(name: &'static str, finding: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Missing,
            finding: finding.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// The kernel release, as uname -r prints it.
    pub kernel: String,
    pub cgroup_layout: LayoutKind,
    pub checks: Vec<Check>,
}

impl Diagnosis {
    /// Nothing isotest cannot work without is missing.
    pub fn can_run_tests(&self) -> bool {
        self.checks.iter().all(|c| c.level != Level::Missing)
    }

    /// A verdict, then one line per check with its fix below; `color`
    /// paints the levels.
    pub fn render_text(&self, color: bool) -> String {
        let mut out = format!("isotest doctor: {}\n", self.verdict());
        for check in &self.checks {
            // Pad before colouring: escape codes have no width.
            let label = format!("{:>8}", check.level.label());
            let label = if color {
                format!("{}{label}\x1b[0m", check.level.color())
            } else {
                label
            };
            let _ = writeln!(out, "{label}  {:<16}{}", check.name, check.finding);
            if let Some(fix) = &check.fix {
                let _ = writeln!(out, "{:26}fix: {fix}", "");
            }
        }
        out
    }

    /// `{ can_run_tests, checks: [{ name, level, finding, fix }], kernel, cgroup_layout }`.
    pub fn to_json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "level": c.level.label().to_lowercase(),
                    "finding": c.finding,
                    "fix": c.fix,
                })
            })
            .collect();
        json!({
            "can_run_tests": self.can_run_tests(),
            "checks": checks,
            "kernel": self.kernel,
            "cgroup_layout": self.cgroup_layout.to_string(),
        })
    }

    fn verdict(&self) -> &'static str {
        if !self.can_run_tests() {
            "this host cannot run tests"
        } else if self.checks.iter().any(|c| c.level == Level::Degraded) {
            "this host can run tests, with limitations"
        } else {
            "this host can run tests"
        }
    }
}

/// Reads the host and runs every check.
pub fn examine() -> Diagnosis {
    // uname(2) fails only on a bad pointer; the other checks still tell.
    let (kernel, machine) = match nix::sys::utsname::uname() {
        Ok(uts) => (
            uts.release().to_string_lossy().into_owned(),
            uts.machine().to_string_lossy().into_owned(),
        ),
        Err(e) => ("unknown".to_string(), format!("uname: {e}")),
    };
    let version = kernel_version(&kernel);
    let euid = geteuid().as_raw();
    let cgroups = read_cgroups();
    let mut checks = vec![
        Check::ok("kernel", format!("{kernel} ({machine})")),
        privileges_check(euid, &IdMapping::for_caller()),
        user_namespaces_check(
            read_number("/proc/sys/user/max_user_namespaces"),
            read_number("/proc/sys/kernel/unprivileged_userns_clone"),
            read_number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
            euid != 0,
        ),
        namespaces_check(&absent_namespaces(), probe_namespaces(euid)),
        overlay_check(
            &fs::read_to_string("/proc/filesystems").unwrap_or_default(),
            overlay_module_present(&kernel),
            version,
        ),
        scratch_check(Path::new("/tmp").is_dir()),
        rootless_root_check(crate::sandbox::rootless_overlay(), euid != 0),
    ];
    checks.extend(cgroup_checks(&cgroups));
    checks.push(seccomp_check(
        &fs::read_to_string("/proc/self/status").unwrap_or_default(),
        fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
            .ok()
            .as_deref(),
    ));
    checks.push(pidfd_check(pidfd_open_self()));
    Diagnosis {
        kernel,
        cgroup_layout: cgroups.kind(),
        checks,
    }
}

/// `(major, minor)` of a release like `6.1.0-18-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Root, or rootless: what the user namespace will map.
fn privileges_check(euid: u32, mapping: &IdMapping) -> Check {
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
fn user_namespaces_check(
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

/// The namespaces every container gets: (/proc/self/ns name, what we call it).
const NAMESPACES: [(&str, &str); 5] = [
    ("pid", "pid"),
    ("mnt", "mount"),
    ("net", "net"),
    ("uts", "uts"),
    ("ipc", "ipc"),
];

fn absent_namespaces() -> Vec<&'static str> {
    NAMESPACES
        .iter()
        .filter(|(file, _)| !Path::new("/proc/self/ns").join(file).exists())
        .map(|(_, name)| *name)
        .collect()
}

/// Creates the namespaces once in a throwaway `unshare` (util-linux) rather
/// than in a fork of isotest, which may be multi-threaded. `None` when that
/// cannot be tried: not root, or no `unshare`.
fn probe_namespaces(euid: u32) -> Option<Result<(), String>> {
    if euid != 0 {
        return None;
    }
    let output = Command::new("unshare")
        .args([
            "--pid", "--mount", "--net", "--uts", "--ipc", "--fork", "true",
        ])
        .output();
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(format!("run unshare: {e}"))),
        Ok(output) if output.status.success() => Some(Ok(())),
        Ok(output) => Some(Err(format!(
            "unshare --pid --mount --net --uts --ipc: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

fn namespaces_check(absent: &[&str], probe: Option<Result<(), String>>) -> Check {
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
fn lists_filesystem(proc_filesystems: &str, name: &str) -> bool {
    proc_filesystems
        .lines()
        .any(|line| line.split_whitespace().last() == Some(name))
}

/// A module the kernel loads on the first overlay mount.
fn overlay_module_present(release: &str) -> bool {
    let dir = Path::new("/lib/modules")
        .join(release)
        .join("kernel/fs/overlayfs");
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("overlay.ko"))
    })
}

fn overlay_check(proc_filesystems: &str, module: bool, version: Option<(u32, u32)>) -> Check {
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
fn rootless_root_check(overlay: RootlessOverlay, rootless: bool) -> Check {
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

/// The controllers isotest uses, in the order Cgroups::setup checks them.
const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "freezer"];
const V2_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];
/// Interface files whose presence changes what isotest measures or does.
const V1_FILES: [&str; 2] = ["memory.memsw.limit_in_bytes", "pids.peak"];
const V2_FILES: [&str; 4] = ["memory.peak", "pids.peak", "memory.swap.max", "cgroup.kill"];

/// A parent directory isotest would create test cgroups in.
struct CgroupDir {
    path: PathBuf,
    /// A probe child was created and removed again, or why not.
    writable: Result<(), String>,
    /// Which of the interface files looked for exist here or in the probe.
    files: Vec<&'static str>,
}

impl CgroupDir {
    fn has(&self, file: &str) -> bool {
        self.files.contains(&file)
    }
}

/// What the host's cgroups look like from where isotest runs.
enum CgroupFacts {
    Unreadable(LayoutKind, String),
    /// No v1 memory or pids hierarchy and no cgroup2 tree.
    Unusable(Layout),
    /// v1 controllers: isotest's own cgroup in each mounted hierarchy.
    V1 {
        layout: Layout,
        dirs: Vec<(&'static str, Option<CgroupDir>)>,
    },
    V2 {
        layout: Layout,
        /// isotest's own cgroup.
        dir: CgroupDir,
        is_root: bool,
        /// Its cgroup.controllers: what its parent delegates.
        delegated: Vec<String>,
        /// Its cgroup.subtree_control: what its children already get.
        enabled: Vec<String>,
        /// Processes other than isotest in it.
        other_procs: usize,
    },
}

impl CgroupFacts {
    fn kind(&self) -> LayoutKind {
        match self {
            CgroupFacts::Unreadable(kind, _) => *kind,
            CgroupFacts::Unusable(layout)
            | CgroupFacts::V1 { layout, .. }
            | CgroupFacts::V2 { layout, .. } => layout.kind(),
        }
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn read_cgroups() -> CgroupFacts {
    let layout = mountinfo::read_own()
        .and_then(|mounts| layout::detect(&mounts, &read_text(Path::new("/proc/self/cgroup"))?));
    let layout = match layout {
        Ok(layout) => layout,
        Err(reason) => return CgroupFacts::Unreadable(LayoutKind::None, reason),
    };
    // The same choice Cgroups::setup makes: v1 wherever it has memory or pids.
    if layout.v1_hierarchy("memory").is_some() || layout.v1_hierarchy("pids").is_some() {
        let dirs = V1_CONTROLLERS
            .iter()
            .map(|&c| {
                let dir = layout
                    .v1_hierarchy(c)
                    .map(|h| inspect_dir(cgroup_dir(&h.mount, &h.own_path), &V1_FILES));
                (c, dir)
            })
            .collect();
        return CgroupFacts::V1 { layout, dirs };
    }
    let Some(tree) = &layout.v2 else {
        return CgroupFacts::Unusable(layout);
    };
    let path = cgroup_dir(&tree.mount, &tree.own_path);
    let is_root = tree.own_path.as_os_str().is_empty();
    let read = |name: &str| read_text(&path.join(name));
    let texts = (
        read("cgroup.controllers"),
        read("cgroup.subtree_control"),
        read("cgroup.procs"),
    );
    let (delegated, enabled, procs) = match texts {
        (Ok(d), Ok(e), Ok(p)) => (d, e, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return CgroupFacts::Unreadable(layout.kind(), e)
        }
    };
    let own = std::process::id().to_string();
    CgroupFacts::V2 {
        dir: inspect_dir(path, &V2_FILES),
        is_root,
        delegated: words(&delegated),
        enabled: words(&enabled),
        other_procs: procs.lines().filter(|pid| pid.trim() != own).count(),
        layout,
    }
}

/// `mount` joined with `own_path`, without the trailing `/` an empty
/// (root) `own_path` would leave in messages.
fn cgroup_dir(mount: &Path, own_path: &Path) -> PathBuf {
    mount.components().chain(own_path.components()).collect()
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Tries to create a child cgroup in `path`, removing it at once, and looks
/// for `files` there and in the child (a root cgroup lacks most of them).
fn inspect_dir(path: PathBuf, files: &[&'static str]) -> CgroupDir {
    let probe = path.join(format!("isotest-doctor-{}", std::process::id()));
    let created = fs::create_dir(&probe)
        .map_err(|e| format!("cannot create cgroups in {}: {e}", path.display()));
    let files = files
        .iter()
        .copied()
        .filter(|f| path.join(f).exists() || probe.join(f).exists())
        .collect();
    let writable = created.and_then(|()| {
        fs::remove_dir(&probe).map_err(|e| {
            format!(
                "could not remove the probe cgroup {}: {e}; remove it by hand",
                probe.display()
            )
        })
    });
    CgroupDir {
        path,
        writable,
        files,
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

fn layout_summary(layout: &Layout) -> String {
    match (layout.kind(), &layout.v2) {
        (LayoutKind::V2, Some(tree)) => format!("v2 at {}", tree.mount.display()),
        (LayoutKind::Hybrid, Some(tree)) => format!("hybrid (cgroup2 at {})", tree.mount.display()),
        (kind, _) => kind.to_string(),
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

fn cgroup_checks(facts: &CgroupFacts) -> Vec<Check> {
    match facts {
        CgroupFacts::Unreadable(_, reason) => no_limits(reason.clone(), DELEGATE_FIX),
        CgroupFacts::Unusable(layout) if layout.kind() == LayoutKind::None => no_limits(
            "no cgroup filesystem is mounted".into(),
            "mount cgroup2: `mount -t cgroup2 none /sys/fs/cgroup`",
        ),
        CgroupFacts::Unusable(layout) => no_limits(
            format!(
                "{}: neither a memory nor a pids hierarchy is mounted",
                layout_summary(layout)
            ),
            "mount the v1 memory and pids hierarchies, or boot with cgroup v2 \
             (systemd.unified_cgroup_hierarchy=1)",
        ),
        CgroupFacts::V1 { layout, dirs } => v1_checks(layout, dirs),
        CgroupFacts::V2 {
            layout,
            dir,
            is_root,
            delegated,
            enabled,
            other_procs,
        } => v2_checks(layout, dir, *is_root, delegated, enabled, *other_procs),
    }
}

fn v1_checks(layout: &Layout, dirs: &[(&'static str, Option<CgroupDir>)]) -> Vec<Check> {
    let summary = layout_summary(layout);
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
    let absent: Vec<String> = V1_CONTROLLERS[..4]
        .iter()
        .filter(|c| !used(c))
        .map(|c| format!("{c} ({})", without(c)))
        .collect();
    let cgroups = if absent.is_empty() {
        Check::ok("cgroups", finding)
    } else {
        Check::degraded(
            "cgroups",
            format!("{finding}; not mounted: {}", absent.join(", ")),
            "mount the missing v1 hierarchies, or boot with cgroup v2 \
             (systemd.unified_cgroup_hierarchy=1)",
        )
    };
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
    layout: &Layout,
    dir: &CgroupDir,
    is_root: bool,
    delegated: &[String],
    enabled: &[String],
    other_procs: usize,
) -> Vec<Check> {
    let summary = layout_summary(layout);
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
    let absent: Vec<String> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| !used.contains(c))
        .map(|c| format!("{c} ({})", without(c)))
        .collect();
    let cgroups = if absent.is_empty() {
        Check::ok("cgroups", finding)
    } else {
        Check::degraded(
            "cgroups",
            format!("{finding}; not delegated: {}", absent.join(", ")),
            DELEGATE_FIX,
        )
    };
    let memory = used.contains(&"memory");
    let mut checks = vec![
        cgroups,
        leaf,
        peak_check(
            memory.then(|| {
                if dir.has("memory.peak") {
                    Peak::Kernel("memory.peak")
                } else {
                    Peak::Sampled("memory.current")
                }
            }),
            used.contains(&"pids")
                .then(|| pids_peak(dir.has("pids.peak"))),
        ),
    ];
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
fn seccomp_check(proc_status: &str, actions_avail: Option<&str>) -> Check {
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

/// Opens and closes a pidfd on isotest itself: the supervisor waits for each
/// container's init through one.
fn pidfd_open_self() -> Result<(), Errno> {
    let own = nix::unistd::Pid::this();
    crate::sandbox::pidfd_open(own).map(drop)
}

fn pidfd_check(result: Result<(), Errno>) -> Check {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::cgroup::layout::{V1Hierarchy, V2Tree};
    use crate::sandbox::userns::SubordinateRange;

    fn dir(path: &str, files: &[&'static str]) -> CgroupDir {
        CgroupDir {
            path: path.into(),
            writable: Ok(()),
            files: files.to_vec(),
        }
    }

    fn v1_layout(controllers: &[&str], with_v2: bool) -> Layout {
        Layout {
            v1: controllers
                .iter()
                .map(|c| V1Hierarchy {
                    controllers: vec![c.to_string()],
                    mount: format!("/sys/fs/cgroup/{c}").into(),
                    own_path: PathBuf::new(),
                })
                .collect(),
            v2: with_v2.then(|| V2Tree {
                mount: "/sys/fs/cgroup/unified".into(),
                own_path: PathBuf::new(),
            }),
        }
    }

    fn v1_facts(controllers: &[&'static str], files: &[&'static str]) -> CgroupFacts {
        CgroupFacts::V1 {
            layout: v1_layout(controllers, true),
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
            layout: Layout {
                v1: Vec::new(),
                v2: Some(V2Tree {
                    mount: "/sys/fs/cgroup".into(),
                    own_path: "user.slice/session-2.scope".into(),
                }),
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
        let ranged = IdMapping {
            range: Some(SubordinateRange {
                uid_start: 100000,
                gid_start: 100000,
                count: 65536,
                newuidmap: "/usr/bin/newuidmap".into(),
                newgidmap: "/usr/bin/newgidmap".into(),
            }),
            ..single
        };
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
        assert!(fix(user_namespaces_check(Some(0), None, None, false))
            .contains("user.max_user_namespaces"));
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
        let CgroupFacts::V1 { layout, mut dirs } = v1_facts(&V1_CONTROLLERS, &[]) else {
            unreachable!()
        };
        dirs[3].1.as_mut().unwrap().writable =
            Err("cannot create cgroups in /sys/fs/cgroup/pids: EACCES".into());
        let checks = cgroup_checks(&CgroupFacts::V1 { layout, dirs });
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
        let fuse = rootless_root_check(
            RootlessOverlay::Fuse("/usr/bin/fuse-overlayfs".into()),
            true,
        );
        assert_eq!(fuse.level, Level::Ok);
        assert!(fuse.finding.contains("/usr/bin/fuse-overlayfs"));
        let kernel = || RootlessOverlay::Kernel {
            hint: String::new(),
        };
        let rootless = rootless_root_check(kernel(), true);
        assert_eq!(rootless.level, Level::Degraded);
        assert!(rootless
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("fuse-overlayfs")));
        assert_eq!(rootless_root_check(kernel(), false).level, Level::Ok);
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
            diagnosis.render_text(false),
            "isotest doctor: this host can run tests, with limitations\n\
             \x20     OK  kernel          6.1.0-18-amd64 (x86_64)\n\
             DEGRADED  swap            no memory.swap.max\n\
             \x20                         fix: boot with swapaccount=1\n"
        );
        let colored = diagnosis.render_text(true);
        assert!(colored.contains("\x1b[32m      OK\x1b[0m  kernel"));
        assert!(colored.contains("\x1b[33mDEGRADED\x1b[0m  swap"));
        assert!(with_levels(&[Level::Missing])
            .render_text(false)
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
        println!("{}", diagnosis.render_text(false));
        assert!(diagnosis.checks.iter().any(|c| c.name == "kernel"));
    }
}
