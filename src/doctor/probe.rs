//! Reads the host into plain facts for `decide`: kernel, privileges, sysctls,
//! namespaces (created once in a throwaway `unshare`), filesystems, cgroups
//! (a probe child created and removed in each parent isotest would use),
//! seccomp and pidfd. Everything doctor learns of the host comes from here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::unistd::geteuid;

use crate::sandbox::{
    probe_pidfd, rootless_overlay, CgroupLayout as LayoutKind, CgroupMounts, CgroupPlacement,
    IdMapping, RootlessOverlay, TestParents,
};

/// What was read of the host.
pub(super) struct HostFacts {
    /// `uname -r`, or "unknown".
    pub kernel: String,
    /// `uname -m`, or why uname failed.
    pub machine: String,
    pub euid: u32,
    /// What a rootless container's user namespace would map.
    pub mapping: IdMapping,
    /// user.max_user_namespaces, kernel.unprivileged_userns_clone (Debian),
    /// kernel.apparmor_restrict_unprivileged_userns (Ubuntu).
    pub max_user_namespaces: Option<u64>,
    pub unprivileged_userns_clone: Option<u64>,
    pub apparmor_restrict_userns: Option<u64>,
    /// Namespaces the kernel lacks, by our names.
    pub absent_namespaces: Vec<&'static str>,
    /// The throwaway `unshare`, if it could be tried.
    pub namespace_probe: Option<Result<(), String>>,
    pub proc_filesystems: String,
    pub overlay_module: bool,
    pub tmp_exists: bool,
    /// Which overlay rootless containers would get.
    pub rootless_overlay: RootlessOverlay,
    pub cgroups: CgroupFacts,
    pub proc_status: String,
    pub seccomp_actions: Option<String>,
    /// pidfd_open on isotest's own pid.
    pub pidfd: Result<(), Errno>,
    /// A throwaway test network, built as a test's is.
    pub network: NetworkProbe,
}

/// What building a throwaway test network did: the bridge (with its
/// veths), and as root the outbound uplink with NAT. The probe runs through
/// the sandbox's own server, as a test's network does.
pub(super) struct NetworkProbe {
    pub bridge: Result<(), String>,
    pub outbound: Option<Result<(), String>>,
}

fn probe_network(euid: u32) -> NetworkProbe {
    let rootless = (euid != 0).then(IdMapping::for_caller);
    let bridge = crate::sandbox::probe_network(false, rootless).map_err(|f| f.to_string());
    let outbound =
        (euid == 0).then(|| crate::sandbox::probe_network(true, None).map_err(|f| f.to_string()));
    NetworkProbe { bridge, outbound }
}

impl HostFacts {
    pub fn read() -> HostFacts {
        // uname(2) fails only on a bad pointer; the other checks still tell.
        let (kernel, machine) = match nix::sys::utsname::uname() {
            Ok(uts) => (
                uts.release().to_string_lossy().into_owned(),
                uts.machine().to_string_lossy().into_owned(),
            ),
            Err(e) => ("unknown".to_string(), format!("uname: {e}")),
        };
        let euid = geteuid().as_raw();
        HostFacts {
            overlay_module: overlay_module_present(&kernel),
            kernel,
            machine,
            euid,
            mapping: IdMapping::for_caller(),
            max_user_namespaces: read_number("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read_number("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict_userns: read_number(
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
            absent_namespaces: absent_namespaces(),
            namespace_probe: probe_namespaces(euid),
            proc_filesystems: fs::read_to_string("/proc/filesystems").unwrap_or_default(),
            tmp_exists: Path::new("/tmp").is_dir(),
            rootless_overlay: rootless_overlay(),
            cgroups: read_cgroups(),
            proc_status: fs::read_to_string("/proc/self/status").unwrap_or_default(),
            seccomp_actions: fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").ok(),
            pidfd: probe_pidfd(),
            network: probe_network(euid),
        }
    }
}

fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
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

/// Interface files whose presence changes what isotest measures or does.
const V1_FILES: [&str; 2] = ["memory.memsw.limit_in_bytes", "pids.peak"];
const V2_FILES: [&str; 4] = ["memory.peak", "pids.peak", "memory.swap.max", "cgroup.kill"];

/// A parent directory isotest would create test cgroups in.
pub(super) struct CgroupDir {
    pub path: PathBuf,
    /// A probe child was created and removed again, or why not.
    pub writable: Result<(), String>,
    /// Which of the interface files looked for exist here or in the probe.
    pub files: Vec<&'static str>,
}

impl CgroupDir {
    pub fn has(&self, file: &str) -> bool {
        self.files.contains(&file)
    }
}

/// What the host's cgroups look like from where isotest runs.
pub(super) enum CgroupFacts {
    Unreadable(LayoutKind, String),
    /// No v1 memory or pids hierarchy and no cgroup2 tree.
    Unusable(CgroupMounts),
    /// v1 controllers: isotest's own cgroup in each mounted hierarchy.
    V1 {
        mounts: CgroupMounts,
        dirs: Vec<(&'static str, Option<CgroupDir>)>,
    },
    V2 {
        mounts: CgroupMounts,
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
    pub fn kind(&self) -> LayoutKind {
        match self {
            CgroupFacts::Unreadable(kind, _) => *kind,
            CgroupFacts::Unusable(mounts)
            | CgroupFacts::V1 { mounts, .. }
            | CgroupFacts::V2 { mounts, .. } => mounts.layout,
        }
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

/// What isotest's test cgroups would meet, where `Cgroups::setup` would
/// put them.
fn read_cgroups() -> CgroupFacts {
    let CgroupPlacement { mounts, parents } = match CgroupPlacement::find(None) {
        Ok(placement) => placement,
        Err(reason) => return CgroupFacts::Unreadable(LayoutKind::None, reason),
    };
    let (path, is_root) = match parents {
        TestParents::Unusable => return CgroupFacts::Unusable(mounts),
        TestParents::V1(dirs) => {
            let dirs = dirs
                .into_iter()
                .map(|(c, dir)| (c, dir.map(|dir| inspect_dir(dir, &V1_FILES))))
                .collect();
            return CgroupFacts::V1 { mounts, dirs };
        }
        TestParents::V2 { dir, is_root } => (dir, is_root),
    };
    let read = |name: &str| read_text(&path.join(name));
    let texts = (
        read("cgroup.controllers"),
        read("cgroup.subtree_control"),
        read("cgroup.procs"),
    );
    let (delegated, enabled, procs) = match texts {
        (Ok(d), Ok(e), Ok(p)) => (d, e, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return CgroupFacts::Unreadable(mounts.layout, e)
        }
    };
    let own = std::process::id().to_string();
    CgroupFacts::V2 {
        dir: inspect_dir(path, &V2_FILES),
        is_root,
        delegated: words(&delegated),
        enabled: words(&enabled),
        other_procs: procs.lines().filter(|pid| pid.trim() != own).count(),
        mounts,
    }
}

pub(super) fn words(text: &str) -> Vec<String> {
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
