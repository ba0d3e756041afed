//! Per-test cgroups: limits (memory, CPU bandwidth, processes) and
//! accounting (peak memory, CPU time, peak processes, OOM kills) on v1, v2
//! and hybrid hosts. Our own module rather than cgroups-rs: DESIGN.md says
//! why.
//!
//! One `Cgroups` per run finds the layout, the parent cgroups (nested under
//! isotest's own, per hierarchy on v1), and removes stale groups a crashed
//! run left. Each test then gets a `TestCgroup` named
//! `isotest-<run id>-<n>`, removed again after its test.
//!
//! Which version is used and where test groups go is `placement`'s one
//! choice, which `isotest doctor` reports too. What differs between v1 and
//! v2 (file names, formats, cgroup.kill, the test's view) is behind
//! `version::Version`, implemented by `V1` and `V2`, chosen once in
//! `setup`.

mod available;
mod files;
mod janitor;
mod layout;
mod placement;
mod version;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use self::janitor::Janitor;
use self::layout::{Layout, LayoutKind};
use self::version::{Version, V1, V2};
use super::spec::SetupFailure;
use super::step::Step;

pub use available::available_memory;
pub use layout::LayoutKind as CgroupLayout;
pub use placement::{CgroupMounts, CgroupPlacement, TestParents, V1_CONTROLLERS, V2_CONTROLLERS};

/// Limits for one test; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CPU bandwidth in CPUs (0.5 = half of one CPU).
    pub cpus: Option<f64>,
    /// Relative CPU share against concurrent tests: v2 `cpu.weight`
    /// (1..=10000), v1 `cpu.shares` converted.
    #[serde(default)]
    pub cpu_weight: Option<u64>,
    pub pids: Option<u64>,
}

/// What one test used. A figure is `None` when this host cannot measure it
/// (never zero-filled).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// v1 memory.max_usage_in_bytes; v2 memory.peak, or the largest
    /// memory.current sampled while the test ran on kernels without it.
    pub memory_peak_bytes: Option<u64>,
    /// v1 cpuacct.usage_user; v2 cpu.stat user_usec.
    pub cpu_user_usec: Option<u64>,
    /// v1 cpuacct.usage_sys; v2 cpu.stat system_usec.
    pub cpu_system_usec: Option<u64>,
    /// pids.peak, or the largest pids.current sampled.
    pub pids_peak: Option<u64>,
    /// v1 memory.oom_control oom_kill; v2 memory.events oom_kill.
    pub oom_kills: Option<u64>,
    /// Forks refused because pids.max was reached (pids.events max).
    pub pids_max_hits: Option<u64>,
}

/// What a test sees of its own cgroup at /sys/fs/cgroup (read-only), as
/// Docker and Podman show it: its group of the v2 tree, or on v1 a tmpfs
/// holding its group of each hierarchy it has one in. Paths are the host's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupView {
    /// No cgroup of its own (cgroups unavailable): an empty directory.
    #[default]
    Empty,
    V2 {
        group: Vec<u8>,
    },
    /// `(name, group)`: the hierarchy's controllers joined by `,`, as its
    /// mount point is named (`cpu,cpuacct`), and the test's group in it.
    V1 {
        hierarchies: Vec<(String, Vec<u8>)>,
    },
}

/// The parent directory of test cgroups for each controller we use.
#[derive(Clone, Debug, Default)]
struct Parents {
    memory: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    pids: Option<PathBuf>,
    freezer: Option<PathBuf>,
}

impl Parents {
    /// Each distinct parent once (v1 hierarchies may co-mount controllers).
    fn distinct(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = Vec::new();
        for dir in [
            &self.memory,
            &self.cpu,
            &self.cpuacct,
            &self.pids,
            &self.freezer,
        ]
        .into_iter()
        .flatten()
        {
            if !dirs.contains(&dir.as_path()) {
                dirs.push(dir);
            }
        }
        dirs
    }
}

/// Where the runner moved itself on v2 to free its cgroup for controllers.
#[derive(Debug)]
struct RunnerLeaf {
    original: PathBuf,
    leaf: PathBuf,
    enabled: Vec<String>,
}

/// The run's cgroup manager.
#[derive(Debug)]
pub struct Cgroups {
    version: &'static dyn Version,
    layout: LayoutKind,
    parents: Parents,
    run_id: String,
    counter: AtomicU32,
    runner_leaf: Option<RunnerLeaf>,
    janitor: Janitor,
    /// Whether test groups have memory.peak (v2) or max_usage_in_bytes
    /// (v1), and pids.peak.
    peak_files: OnceLock<(bool, bool)>,
    /// v1: each parent directory and the name of its hierarchy.
    hierarchy_names: Vec<(PathBuf, String)>,
}

/// Cgroups are ready, with things the user should hear about once.
pub struct Ready {
    pub cgroups: Cgroups,
    pub notices: Vec<String>,
}

/// Why tests will run without cgroup limits here.
#[derive(Debug, Clone)]
pub struct Unavailable {
    pub layout: LayoutKind,
    pub reason: String,
}

const PREFIX: &str = "isotest-";

impl Cgroups {
    /// Finds the layout and prepares the parent cgroups. `parent`, if given,
    /// is a cgroup path (like `/isotest.slice`) used instead of isotest's
    /// own cgroup.
    pub fn setup(parent: Option<&Path>) -> Result<Ready, Unavailable> {
        let layout = layout::own_layout().map_err(|reason| Unavailable {
            layout: LayoutKind::None,
            reason,
        })?;
        let kind = layout.kind();
        let unavailable = |reason: String| Unavailable {
            layout: kind,
            reason,
        };
        let run_id = format!("{}x{:04x}", std::process::id(), random_u16());
        let mut notices = Vec::new();
        let (version, parents, runner_leaf) = match CgroupPlacement::of(&layout, parent).parents {
            TestParents::V1(dirs) => {
                let (parents, notice) = v1_setup(&dirs);
                notices.extend(notice);
                (&V1 as &'static dyn Version, parents, None)
            }
            TestParents::V2 { dir, .. } => {
                let (parents, leaf, notice) =
                    v2_setup(dir, parent.is_none(), &run_id).map_err(unavailable)?;
                notices.extend(notice);
                (&V2 as &'static dyn Version, parents, leaf)
            }
            TestParents::Unusable => {
                return Err(unavailable(match kind {
                    LayoutKind::None => "no cgroup filesystem is mounted".into(),
                    _ => "no usable cgroup controllers (memory, cpu, pids) are mounted".into(),
                }))
            }
        };

        for dir in parents.distinct() {
            if !dir.is_dir() {
                return Err(unavailable(format!(
                    "cgroup parent {} does not exist",
                    dir.display()
                )));
            }
            if nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err() {
                return Err(unavailable(format!(
                    "no permission to create cgroups in {}",
                    dir.display()
                )));
            }
        }
        let removed = remove_stale(&parents);
        if removed > 0 {
            notices.push(format!(
                "removed {removed} stale cgroup(s) left by an earlier isotest run"
            ));
        }
        let hierarchy_names = hierarchy_names(&layout, &parents);
        Ok(Ready {
            cgroups: Cgroups {
                version,
                layout: kind,
                parents,
                run_id,
                counter: AtomicU32::new(0),
                runner_leaf,
                janitor: Janitor::start(),
                peak_files: OnceLock::new(),
                hierarchy_names,
            },
            notices,
        })
    }

    pub fn layout(&self) -> LayoutKind {
        self.layout
    }

    /// Creates the next test's cgroup with `limits` applied.
    pub fn create(&self, limits: &Limits) -> Result<TestCgroup, SetupFailure> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let name = format!("{PREFIX}{}-{n}", self.run_id);
        let in_parent = |dir: &Option<PathBuf>| dir.as_ref().map(|d| d.join(&name));
        let mut group = TestCgroup {
            version: self.version,
            dirs: Vec::new(),
            memory: in_parent(&self.parents.memory),
            cpu: in_parent(&self.parents.cpu),
            cpuacct: in_parent(&self.parents.cpuacct),
            pids: in_parent(&self.parents.pids),
            freezer: in_parent(&self.parents.freezer),
            sampled_memory_peak: None,
            sampled_pids_peak: None,
            memory_peak_file: false,
            pids_peak_file: false,
            view: CgroupView::Empty,
        };
        // A v1 `cpu` hierarchy of its own is only needed for a CPU limit;
        // every directory costs a mkdir, a move and an rmdir per test.
        if limits.cpus.is_none()
            && limits.cpu_weight.is_none()
            && self.parents.cpu != self.parents.cpuacct
        {
            group.cpu = None;
        }
        let wanted = [
            &group.memory,
            &group.cpu,
            &group.cpuacct,
            &group.pids,
            &group.freezer,
        ];
        let mut dirs: Vec<PathBuf> = Vec::new();
        for dir in wanted.into_iter().flatten() {
            if !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        for dir in dirs {
            fs::create_dir(&dir).step(|| format!("create cgroup {}", dir.display()))?;
            group.dirs.push(dir);
        }
        group.view = self.view_of(&group.dirs);
        // On error `group` is dropped, which removes what was created.
        group.apply(limits)?;
        // Every test group has the same files: look once per run.
        (group.memory_peak_file, group.pids_peak_file) = *self.peak_files.get_or_init(|| {
            (
                group.file_exists(&group.memory, group.version.memory_peak()),
                group.file_exists(&group.pids, "pids.peak"),
            )
        });
        Ok(group)
    }

    fn view_of(&self, dirs: &[PathBuf]) -> CgroupView {
        self.version.view(dirs, &self.hierarchy_names)
    }

    /// Removes a finished test's group (killing anything left in it) in
    /// the background.
    pub fn remove(&self, group: TestCgroup) {
        self.janitor.remove(group);
    }
}

impl Drop for Cgroups {
    /// Waits for the test groups' removal, then gives the runner its
    /// original cgroup back on v2 (best effort).
    fn drop(&mut self) {
        self.janitor.finish();
        let Some(leaf) = self.runner_leaf.take() else {
            return;
        };
        let disable: Vec<String> = leaf.enabled.iter().map(|c| format!("-{c}")).collect();
        let _ = fs::write(
            leaf.original.join("cgroup.subtree_control"),
            disable.join(" "),
        );
        let _ = fs::write(
            leaf.original.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = fs::remove_dir(&leaf.leaf);
    }
}

/// The parents of test groups on a v1 (or hybrid) host, and a notice of
/// the controllers missing there.
fn v1_setup(dirs: &[(&'static str, Option<PathBuf>)]) -> (Parents, Option<String>) {
    let dir = |controller: &str| TestParents::v1(dirs, controller);
    let parents = Parents {
        memory: dir("memory"),
        cpu: dir("cpu"),
        cpuacct: dir("cpuacct"),
        pids: dir("pids"),
        freezer: dir("freezer"),
    };
    let missing: Vec<&str> = [
        ("memory", &parents.memory),
        ("cpu", &parents.cpu),
        ("cpuacct", &parents.cpuacct),
        ("pids", &parents.pids),
    ]
    .into_iter()
    .filter(|(_, dir)| dir.is_none())
    .map(|(name, _)| name)
    .collect();
    let notice = (!missing.is_empty()).then(|| {
        format!(
            "cgroup v1 controllers not mounted: {}; their limits and figures are unavailable",
            missing.join(", ")
        )
    });
    (parents, notice)
}

/// The parent of test groups on a v2 host (`dir`, isotest's own cgroup
/// when `is_own`) with its controllers enabled, the runner's leaf if it had
/// to move, and a notice of the controllers missing there.
fn v2_setup(
    dir: PathBuf,
    is_own: bool,
    run_id: &str,
) -> Result<(Parents, Option<RunnerLeaf>, Option<String>), String> {
    let (enabled, leaf) = v2_enable_controllers(&dir, is_own, run_id)?;
    let has = |c: &str| enabled.iter().any(|e| e == c);
    let missing: Vec<&str> = V2_CONTROLLERS.into_iter().filter(|c| !has(c)).collect();
    let notice = (!missing.is_empty()).then(|| {
        format!(
            "cgroup v2 controllers not available in {}: {}; their limits are not applied",
            dir.display(),
            missing.join(", ")
        )
    });
    let parents = Parents {
        memory: has("memory").then(|| dir.clone()),
        cpu: has("cpu").then(|| dir.clone()),
        // cpu.stat's usage figures exist without the cpu controller.
        cpuacct: Some(dir.clone()),
        pids: has("pids").then(|| dir.clone()),
        freezer: None,
    };
    Ok((parents, leaf, notice))
}

/// The v1 hierarchy name of each parent directory (none on v2).
fn hierarchy_names(layout: &Layout, parents: &Parents) -> Vec<(PathBuf, String)> {
    parents
        .distinct()
        .into_iter()
        .filter_map(|dir| {
            let hierarchy = layout.v1.iter().find(|h| dir.starts_with(&h.mount))?;
            Some((dir.to_path_buf(), hierarchy.controllers.join(",")))
        })
        .collect()
}

/// Makes memory, cpu and pids available to children of `dir` on v2.
/// Enabling controllers fails with EBUSY while `dir` itself holds processes
/// ("no internal processes"), so when `dir` is our own cgroup the runner
/// first moves into a leaf beside the tests. Returns the controllers
/// children get, and the leaf if we moved.
fn v2_enable_controllers(
    dir: &Path,
    is_own: bool,
    run_id: &str,
) -> Result<(Vec<String>, Option<RunnerLeaf>), String> {
    let read = |name: &str| {
        fs::read_to_string(dir.join(name))
            .map(|t| files::controllers(&t))
            .map_err(|e| format!("read {}: {e}", dir.join(name).display()))
    };
    let available = read("cgroup.controllers")?;
    let wanted: Vec<String> = V2_CONTROLLERS
        .into_iter()
        .filter(|c| available.iter().any(|a| a == c))
        .map(str::to_string)
        .collect();
    if wanted.is_empty() {
        return Err(format!(
            "no controllers are delegated to {} (its cgroup.controllers lists none of memory, cpu, pids)",
            dir.display()
        ));
    }
    let enabled_now = read("cgroup.subtree_control")?;
    let to_enable: Vec<String> = wanted
        .iter()
        .filter(|c| !enabled_now.contains(c))
        .cloned()
        .collect();
    if to_enable.is_empty() {
        return Ok((wanted, None));
    }
    let control = dir.join("cgroup.subtree_control");
    let enable = || {
        let text: Vec<String> = to_enable.iter().map(|c| format!("+{c}")).collect();
        fs::write(&control, text.join(" "))
    };
    let mut leaf = None;
    if let Err(error) = enable() {
        if error.raw_os_error() != Some(libc::EBUSY) || !is_own {
            return Err(format!(
                "enable controllers in {}: {error}",
                control.display()
            ));
        }
        let leaf_dir = dir.join(format!("{PREFIX}{run_id}-runner"));
        fs::create_dir(&leaf_dir)
            .and_then(|_| {
                fs::write(
                    leaf_dir.join("cgroup.procs"),
                    std::process::id().to_string(),
                )
            })
            .map_err(|e| format!("move isotest into leaf cgroup {}: {e}", leaf_dir.display()))?;
        leaf = Some(RunnerLeaf {
            original: dir.to_path_buf(),
            leaf: leaf_dir,
            enabled: to_enable.clone(),
        });
        enable().map_err(|e| {
            format!(
                "enable controllers in {}: {e} (other processes share isotest's cgroup; \
                 start isotest in a cgroup of its own, e.g. `systemd-run --scope -p Delegate=yes isotest ...`)",
                control.display()
            )
        })?;
    }
    Ok((wanted, leaf))
}

/// Removes `isotest-*` cgroups whose runner (the pid in the run id) is gone;
/// returns how many groups (by name, across hierarchies) it removed.
fn remove_stale(parents: &Parents) -> usize {
    let mut removed = std::collections::BTreeSet::new();
    for parent in parents.distinct() {
        let Ok(entries) = fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            match runner_pid(&name) {
                Some(pid) if !runner_alive(pid) => {}
                _ => continue,
            }
            let dir = entry.path();
            for _ in 0..100 {
                kill_procs(&dir);
                if fs::remove_dir(&dir).is_ok() {
                    removed.insert(name);
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    removed.len()
}

/// Whether an isotest runner with this pid still exists: not gone, not a
/// zombie, and not a reused pid running something else. A runner's name
/// only starts with `isotest`: a copy named `isotest-1.2` (a second version
/// beside the first, as benchmarks keep) is a live runner whose cgroups
/// and scratch space another run must leave alone.
pub fn runner_alive(pid: i32) -> bool {
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    super::procstat::read(pid)
        .is_some_and(|stat| stat.comm.starts_with("isotest") && !stat.has_exited())
}

/// The runner pid in `isotest-<pid>x<rand>-<n>`.
fn runner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('x')?;
    pid.parse().ok()
}

fn random_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}

/// SIGKILL every process listed in `dir`'s cgroup.procs.
fn kill_procs(dir: &Path) -> usize {
    let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return 0;
    };
    let pids: Vec<i32> = procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    pids.len()
}

/// One test's cgroup (one directory per v1 hierarchy, or one on v2).
#[derive(Debug)]
pub struct TestCgroup {
    version: &'static dyn Version,
    dirs: Vec<PathBuf>,
    memory: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    pids: Option<PathBuf>,
    freezer: Option<PathBuf>,
    sampled_memory_peak: Option<u64>,
    sampled_pids_peak: Option<u64>,
    memory_peak_file: bool,
    pids_peak_file: bool,
    view: CgroupView,
}

impl TestCgroup {
    /// How the test sees this group at /sys/fs/cgroup.
    pub fn view(&self) -> &CgroupView {
        &self.view
    }

    /// The files a process's pid is written to, to put it in this group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    fn apply(&self, limits: &Limits) -> Result<(), SetupFailure> {
        if let (Some(bytes), Some(dir)) = (limits.memory_bytes, &self.memory) {
            self.version.limit_memory(dir, bytes)?;
        }
        if let (Some(cpus), Some(dir)) = (limits.cpus, &self.cpu) {
            let period: u64 = 100_000;
            let quota = ((cpus * period as f64).round() as u64).max(1000);
            self.version.limit_cpu(dir, quota, period)?;
        }
        if let (Some(weight), Some(dir)) = (limits.cpu_weight, &self.cpu) {
            self.version.weigh_cpu(dir, weight)?;
        }
        if let (Some(pids), Some(dir)) = (limits.pids, &self.pids) {
            write(dir, "pids.max", &pids.to_string())?;
        }
        Ok(())
    }

    fn file_exists(&self, dir: &Option<PathBuf>, name: &str) -> bool {
        dir.as_ref().is_some_and(|d| d.join(name).exists())
    }

    /// Samples current usage, for peaks the kernel does not track itself.
    pub fn sample(&mut self) {
        if !self.memory_peak_file {
            if let Some(now) = read_value(&self.memory, self.version.memory_current()) {
                self.sampled_memory_peak = self.sampled_memory_peak.max(Some(now));
            }
        }
        if !self.pids_peak_file {
            if let Some(now) = read_value(&self.pids, "pids.current") {
                self.sampled_pids_peak = self.sampled_pids_peak.max(Some(now));
            }
        }
    }

    /// What the sampler reads this group's current use through.
    pub fn probe(&self) -> UsageProbe {
        UsageProbe {
            version: self.version,
            memory: self.memory.clone(),
            cpuacct: self.cpuacct.clone(),
        }
    }

    pub fn usage(&self) -> Usage {
        let (user, system) = self.version.cpu_times(&self.cpuacct);
        let oom_kills = self.version.oom_kills(&self.memory);
        let memory_peak_bytes = if self.memory_peak_file {
            read_value(&self.memory, self.version.memory_peak())
        } else {
            self.sampled_memory_peak
        };
        let pids_peak = if self.pids_peak_file {
            read_value(&self.pids, "pids.peak")
        } else {
            self.sampled_pids_peak
        };
        Usage {
            memory_peak_bytes,
            cpu_user_usec: user,
            cpu_system_usec: system,
            pids_peak,
            oom_kills,
            pids_max_hits: read_keyed(&self.pids, "pids.events", "max"),
        }
    }

    fn remove_dirs(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut first_try = true;
        while !self.dirs.is_empty() {
            // The container is normally gone with its PID namespace: try
            // removing first, and only kill when something is still in it.
            if !first_try {
                self.kill_all();
            }
            first_try = false;
            self.dirs.retain(|dir| match fs::remove_dir(dir) {
                Ok(()) => false,
                // Busy: processes are still exiting; anything else: give up.
                Err(e) => e.raw_os_error() == Some(libc::EBUSY),
            });
            if self.dirs.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Ends every process of the group so none escapes: cgroup.kill on v2;
    /// on v1 freeze, kill each listed process, thaw (frozen processes cannot
    /// fork away from the kill).
    fn kill_all(&self) {
        if self.version.kill_at_once(&self.dirs) {
            return;
        }
        let frozen = self
            .freezer
            .as_ref()
            .is_some_and(|dir| fs::write(dir.join("freezer.state"), "FROZEN").is_ok());
        for dir in &self.dirs {
            kill_procs(dir);
        }
        if let (true, Some(dir)) = (frozen, &self.freezer) {
            let _ = fs::write(dir.join("freezer.state"), "THAWED");
        }
    }
}

impl Drop for TestCgroup {
    /// Kills whatever is still in the group and removes it.
    fn drop(&mut self) {
        self.remove_dirs();
    }
}

fn write(dir: &Path, name: &str, value: &str) -> Result<(), SetupFailure> {
    let path = dir.join(name);
    fs::write(&path, value).step(|| format!("write {value} to {}", path.display()))
}

/// Reads a test group's memory and CPU use as they are now, from any
/// thread (the sampler's).
#[derive(Clone, Debug)]
pub struct UsageProbe {
    version: &'static dyn Version,
    memory: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
}

impl UsageProbe {
    /// A v2 group's files in `dir` (for tests of the sampler).
    #[cfg(test)]
    pub fn v2_files_in(dir: &Path) -> UsageProbe {
        UsageProbe {
            version: &V2,
            memory: Some(dir.to_path_buf()),
            cpuacct: Some(dir.to_path_buf()),
        }
    }

    /// Memory charged now (bytes) and CPU time used so far (µs).
    pub fn read(&self) -> (Option<u64>, Option<u64>) {
        (
            read_value(&self.memory, self.version.memory_current()),
            self.version.cpu_total(&self.cpuacct),
        )
    }
}

fn read_value(dir: &Option<PathBuf>, name: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.as_ref()?.join(name)).ok()?;
    files::parse_value(&text).ok().flatten()
}

fn read_keyed(dir: &Option<PathBuf>, name: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.as_ref()?.join(name)).ok()?;
    files::keyed_value(&text, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live process of `sleep` under the file name `name`.
    fn sleeping_as(name: &str, dir: &Path) -> std::process::Child {
        let program = dir.join(name);
        fs::copy("/bin/sleep", &program).unwrap();
        std::process::Command::new(program)
            .arg("30")
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_renamed_runner_is_alive_other_programs_are_not() {
        let dir = tempfile::tempdir().unwrap();
        for (name, alive) in [("isotest", true), ("isotest-0.9", true), ("sleep", false)] {
            let mut child = sleeping_as(name, dir.path());
            let pid = child.id() as i32;
            assert_eq!(runner_alive(pid), alive, "a process named {name}");
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(!runner_alive(pid), "{name} after it ended");
        }
    }

    #[test]
    fn runner_pid_from_group_names() {
        assert_eq!(runner_pid("isotest-1234x9f3a-7"), Some(1234));
        assert_eq!(runner_pid("isotest-1234x9f3a-runner"), Some(1234));
        assert_eq!(runner_pid("isotest-abc"), None);
        assert_eq!(runner_pid("user.slice"), None);
    }

    #[test]
    fn distinct_parents_dedupe_co_mounted_hierarchies() {
        let parents = Parents {
            memory: Some("/m".into()),
            cpu: Some("/c".into()),
            cpuacct: Some("/c".into()),
            pids: None,
            freezer: Some("/f".into()),
        };
        assert_eq!(
            parents.distinct(),
            [Path::new("/m"), Path::new("/c"), Path::new("/f")]
        );
    }
}
