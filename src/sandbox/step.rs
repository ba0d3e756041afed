//! Naming setup steps: every syscall of container setup is wrapped so that a
//! failure says which step, on which path, failed with which errno, and what
//! to do about it.

use nix::errno::Errno;

use super::spec::SetupFailure;

/// Attaches a step description to a failed syscall.
pub trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupFailure>;
}

impl<T> Step<T> for nix::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupFailure> {
        self.map_err(|errno| failure(what(), errno))
    }
}

impl<T> Step<T> for std::io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupFailure> {
        self.map_err(|error| match error.raw_os_error() {
            Some(code) => failure(what(), Errno::from_raw(code)),
            None => SetupFailure {
                step: what(),
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
pub fn failure(step: String, errno: Errno) -> SetupFailure {
    let creates_container = step.starts_with("unshare") || step.starts_with("mount");
    let host_unsupported = creates_container && matches!(errno, Errno::EPERM | Errno::EACCES);
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
            .step(|| "mount overlay at /newroot".into())
            .unwrap_err();
        assert_eq!(failure.step, "mount overlay at /newroot");
        assert_eq!(failure.cause, "EINVAL: Invalid argument");
        assert!(!failure.host_unsupported);
        assert!(failure.is(Errno::EINVAL));
        assert_eq!(
            failure.to_string(),
            "mount overlay at /newroot: EINVAL: Invalid argument"
        );
    }

    #[test]
    fn permission_errors_creating_containers_are_host_problems() {
        let failure = failure("unshare(CLONE_NEWPID)".into(), Errno::EPERM);
        assert!(failure.host_unsupported);
        assert!(failure.hint.is_some());
        let exec = super::failure("exec /t/x.sh".into(), Errno::EACCES);
        assert!(!exec.host_unsupported);
    }
}
