//! What a test process may do, applied in the command's child just before
//! exec: capabilities cut to Docker's default set (bounding, permitted,
//! effective and inheritable; ambient cleared), no_new_privs, the default
//! seccomp filter, and limits on open files and core dumps. A privileged
//! test gets none of it.

use nix::errno::Errno;
use nix::sys::resource::{setrlimit, Resource};
use serde::{Deserialize, Serialize};

use caps::{CapSet, CapsHashSet};

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The open-files limit a test gets unless it sets its own.
pub const DEFAULT_NOFILE: u64 = 1024;

/// A test's security settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// All hardening off (`privileged = true`).
    pub privileged: bool,
    /// Capabilities the command keeps, as `CAP_*` names.
    pub capabilities: Vec<String>,
    /// Install the default seccomp filter.
    pub seccomp: bool,
    /// RLIMIT_NOFILE.
    pub nofile: u64,
    /// RLIMIT_NPROC: the process limit where no cgroup can hold one
    /// (rootless). In a user namespace of its own the kernel counts the
    /// container's processes alone, so it bounds a fork bomb per test.
    #[serde(default)]
    pub nproc: Option<u64>,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            privileged: false,
            capabilities: DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            seccomp: true,
            nofile: DEFAULT_NOFILE,
            nproc: None,
        }
    }
}

/// The kept set: Docker's defaults with `cap_add` and `cap_drop` applied as
/// Docker does (dropping ALL keeps only what is added).
pub fn resolve_capabilities(add: &[String], drop: &[String]) -> Vec<String> {
    let all = || {
        let mut names: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        names.sort();
        names
    };
    let mut kept: Vec<String> = if drop.iter().any(|d| d == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    if add.iter().any(|a| a == "ALL") {
        kept = all();
    } else {
        for cap in add {
            if !kept.contains(cap) {
                kept.push(cap.clone());
            }
        }
    }
    kept.retain(|cap| !drop.contains(cap));
    kept
}

fn capability_set(names: &[String]) -> CapsHashSet {
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

/// The steps below, for error reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Rlimits,
    Bounding,
    Capabilities,
    NoNewPrivs,
    Seccomp,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 5] = [
        Step::Rlimits,
        Step::Bounding,
        Step::Capabilities,
        Step::NoNewPrivs,
        Step::Seccomp,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Step::Rlimits => "set resource limits (RLIMIT_NOFILE, RLIMIT_CORE, RLIMIT_NPROC)",
            Step::Bounding => "drop capabilities from the bounding set",
            Step::Capabilities => "set capabilities",
            Step::NoNewPrivs => "set no_new_privs",
            Step::Seccomp => "install the seccomp filter",
        }
    }
}

/// Before the user switch: limits, and the bounding set (dropping from it
/// needs CAP_SETPCAP, which the user switch may take away).
pub fn before_user_switch(security: &Security) -> Result<(), (Step, Errno)> {
    if let Some(nproc) = security.nproc {
        setrlimit(Resource::RLIMIT_NPROC, nproc, nproc).map_err(|e| (Step::Rlimits, e))?;
    }
    if security.privileged {
        return Ok(());
    }
    setrlimit(Resource::RLIMIT_NOFILE, security.nofile, security.nofile)
        .and_then(|()| setrlimit(Resource::RLIMIT_CORE, 0, 0))
        .map_err(|e| (Step::Rlimits, e))?;
    let kept = capability_set(&security.capabilities);
    for cap in caps::all() {
        if kept.contains(&cap) {
            continue;
        }
        // Capabilities newer than the running kernel are not in its set.
        if caps::drop(None, CapSet::Bounding, cap).is_err() && Errno::last() != Errno::EINVAL {
            return Err((Step::Bounding, Errno::last()));
        }
    }
    Ok(())
}

/// After the user switch: the remaining sets, ambient cleared, then
/// no_new_privs and seccomp (which needs no_new_privs when the process
/// lacks CAP_SYS_ADMIN, as a test usually does).
pub fn after_user_switch(security: &Security) -> Result<(), (Step, Errno)> {
    if security.privileged {
        return Ok(());
    }
    let kept = capability_set(&security.capabilities);
    let failed = |_| (Step::Capabilities, Errno::last());
    caps::clear(None, CapSet::Ambient).map_err(failed)?;
    // Root keeps the kept set; another user has none left after setuid,
    // and intersecting with what is there keeps capset from refusing.
    let permitted: CapsHashSet = caps::read(None, CapSet::Permitted)
        .map_err(failed)?
        .intersection(&kept)
        .copied()
        .collect();
    caps::set(None, CapSet::Effective, &permitted).map_err(failed)?;
    caps::set(None, CapSet::Inheritable, &permitted).map_err(failed)?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(failed)?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| (Step::NoNewPrivs, e))?;
    if security.seccomp {
        super::seccomp::install_default_filter().map_err(|_| (Step::Seccomp, Errno::last()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_drop_like_docker() {
        let default = resolve_capabilities(&[], &[]);
        assert_eq!(default.len(), 14);
        let add = resolve_capabilities(&["CAP_SYS_PTRACE".into()], &["CAP_NET_RAW".into()]);
        assert!(add.contains(&"CAP_SYS_PTRACE".to_string()));
        assert!(!add.contains(&"CAP_NET_RAW".to_string()));
        assert_eq!(add.len(), 14);
        let only = resolve_capabilities(&["CAP_CHOWN".into()], &["ALL".into()]);
        assert_eq!(only, ["CAP_CHOWN"]);
        let everything = resolve_capabilities(&["ALL".into()], &[]);
        assert!(everything.contains(&"CAP_SYS_ADMIN".to_string()));
        let none = resolve_capabilities(&[], &["ALL".into()]);
        assert!(none.is_empty());
    }
}
