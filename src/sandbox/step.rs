//! Naming setup steps: every syscall of container setup is wrapped so that a
//! failure says which step (`SetupStep`), on which path, failed with which
//! errno, and what to do about it. Decisions (exit 96, exit 126/127) look at
//! the step's kind, never at its text.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use std::fmt;

use super::spec::SetupFailure;

/// One step of container setup. Its `Display` is the step's name in
/// messages: `unshare(CLONE_NEWPID)`, `mount overlay at /newroot`,
/// `exec /t/x.sh`, `create /newroot/dev`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetupStep {
    /// unshare(2) of these namespaces (`CloneFlags` bits).
    Unshare(i32),
    /// mount(2): what and where, e.g. `overlay at /newroot`.
    Mount(String),
    /// execve(2) of the test's command, by its path.
    Exec(String),
    /// Any other step, described in full.
    Other(String),
}

impl SetupStep {
    /// unshare(2) of `namespaces`.
    pub fn unshare(namespaces: CloneFlags) -> SetupStep {
        SetupStep::Unshare(namespaces.bits())
    }

    /// Whether this step creates the container itself (namespaces, mounts):
    /// a permission error there means the host cannot run containers.
    pub fn creates_container(&self) -> bool {
        matches!(self, SetupStep::Unshare(_) | SetupStep::Mount(_))
    }

    /// Whether this step creates a user namespace.
    pub fn creates_user_namespace(&self) -> bool {
        matches!(self, SetupStep::Unshare(bits)
            if CloneFlags::from_bits_retain(*bits).contains(CloneFlags::CLONE_NEWUSER))
    }

    /// Whether this step starts the test's command.
    pub fn is_exec(&self) -> bool {
        matches!(self, SetupStep::Exec(_))
    }
}

impl fmt::Display for SetupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupStep::Unshare(bits) => {
                let names: Vec<&str> = CloneFlags::from_bits_retain(*bits)
                    .iter_names()
                    .map(|(name, _)| name)
                    .collect();
                write!(f, "unshare({})", names.join(" | "))
            }
            SetupStep::Mount(what) => write!(f, "mount {what}"),
            SetupStep::Exec(path) => write!(f, "exec {path}"),
            SetupStep::Other(what) => f.write_str(what),
        }
    }
}

impl From<String> for SetupStep {
    fn from(what: String) -> SetupStep {
        SetupStep::Other(what)
    }
}

impl From<&str> for SetupStep {
    fn from(what: &str) -> SetupStep {
        SetupStep::Other(what.to_string())
    }
}

/// Attaches a step to a failed syscall.
pub trait Step<T>: Sized {
    /// The step, typed.
    fn step_as(self, step: impl FnOnce() -> SetupStep) -> Result<T, SetupFailure>;

    /// Any step but a mount, unshare or exec, described in full.
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupFailure> {
        self.step_as(|| SetupStep::Other(what()))
    }

    /// A mount: what and where (`overlay at /newroot`).
    fn mount_step(self, what: impl FnOnce() -> String) -> Result<T, SetupFailure> {
        self.step_as(|| SetupStep::Mount(what()))
    }

    /// unshare(2) of `namespaces`.
    fn unshare_step(self, namespaces: CloneFlags) -> Result<T, SetupFailure> {
        self.step_as(|| SetupStep::unshare(namespaces))
    }
}

impl<T> Step<T> for nix::Result<T> {
    fn step_as(self, step: impl FnOnce() -> SetupStep) -> Result<T, SetupFailure> {
        self.map_err(|errno| failure(step(), errno))
    }
}

impl<T> Step<T> for std::io::Result<T> {
    fn step_as(self, step: impl FnOnce() -> SetupStep) -> Result<T, SetupFailure> {
        self.map_err(|error| match error.raw_os_error() {
            Some(code) => failure(step(), Errno::from_raw(code)),
            None => SetupFailure {
                step: step(),
                cause: error.to_string(),
                hint: None,
                host_unsupported: false,
                errno: None,
            },
        })
    }
}

/// A failure of `step` with `errno`, classified: permission errors while
/// creating namespaces or mounting mean this host (or user) cannot create
/// containers at all.
pub fn failure(step: SetupStep, errno: Errno) -> SetupFailure {
    let host_unsupported =
        step.creates_container() && matches!(errno, Errno::EPERM | Errno::EACCES);
    let hint = host_unsupported.then(|| {
        if nix::unistd::geteuid().is_root() {
            "the kernel or a security policy forbids it; check seccomp/AppArmor \
             profiles of the environment isotest runs in"
                .to_string()
        } else {
            "isotest needs root to create containers; run it as root".to_string()
        }
    });
    SetupFailure {
        step,
        cause: errno_text(errno),
        hint,
        host_unsupported,
        errno: Some(errno as i32),
    }
}

/// `EPERM: Operation not permitted`.
pub fn errno_text(errno: Errno) -> String {
    format!("{}: {}", errno_name(errno), errno.desc())
}

fn errno_name(errno: Errno) -> String {
    // Errno's Debug is its symbolic name, e.g. `EPERM`.
    format!("{errno:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_step_and_errno() {
        let result: nix::Result<()> = Err(Errno::EINVAL);
        let failure = result
            .mount_step(|| "overlay at /newroot".into())
            .unwrap_err();
        assert_eq!(failure.step, SetupStep::Mount("overlay at /newroot".into()));
        assert_eq!(failure.cause, "EINVAL: Invalid argument");
        assert!(!failure.host_unsupported);
        assert!(failure.is(Errno::EINVAL));
        assert_eq!(
            failure.to_string(),
            "mount overlay at /newroot: EINVAL: Invalid argument"
        );
    }

    #[test]
    fn unshare_steps_are_named_by_their_flags() {
        let one = SetupStep::unshare(CloneFlags::CLONE_NEWPID);
        assert_eq!(one.to_string(), "unshare(CLONE_NEWPID)");
        let two = SetupStep::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS);
        assert_eq!(two.to_string(), "unshare(CLONE_NEWNS | CLONE_NEWUTS)");
        assert!(!two.creates_user_namespace());
        assert!(SetupStep::unshare(CloneFlags::CLONE_NEWUSER).creates_user_namespace());
    }

    #[test]
    fn permission_errors_creating_containers_are_host_problems() {
        let failure = failure(SetupStep::unshare(CloneFlags::CLONE_NEWPID), Errno::EPERM);
        assert!(failure.host_unsupported);
        assert!(failure.hint.is_some());
        let exec = super::failure(SetupStep::Exec("/t/x.sh".into()), Errno::EACCES);
        assert!(!exec.host_unsupported);
        assert!(exec.step.is_exec());
        // The kind decides, not the words: a step merely named like a mount
        // is not one.
        let named = super::failure("mount-like words".into(), Errno::EPERM);
        assert!(!named.host_unsupported);
    }

    #[test]
    fn steps_cross_the_pipe_unchanged() {
        for step in [
            SetupStep::unshare(CloneFlags::CLONE_NEWUSER),
            SetupStep::Mount("tmpfs at /tmp".into()),
            SetupStep::Exec("/t/x.sh".into()),
            SetupStep::Other("poll".into()),
        ] {
            let json = serde_json::to_string(&step).unwrap();
            assert_eq!(serde_json::from_str::<SetupStep>(&json).unwrap(), step);
        }
    }
}
