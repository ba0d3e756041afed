//! Rootless mode: a user namespace created first by the sandbox supervisor,
//! mapping the caller's uid and gid to root inside, so that every other
//! namespace is owned by it and the supervisor and init may mount and pivot there. A
//! full range is mapped with newuidmap/newgidmap when /etc/subuid and
//! /etc/subgid grant the caller one, else the single id (with setgroups
//! denied first, as the kernel requires for an unprivileged gid_map).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{unshare, CloneFlags};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};
use serde::{Deserialize, Serialize};

use super::messages::GoAhead;
use super::spec::SetupFailure;
use super::step::Step;

/// How the supervisor maps ids into the user namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// The caller's ids, root inside.
    pub uid: u32,
    pub gid: u32,
    /// Subordinate ids mapped from 1 up, and the setuid helpers that may
    /// write them; None maps the single id.
    pub range: Option<SubordinateRange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubordinateRange {
    pub uid_start: u32,
    pub gid_start: u32,
    /// Ids in both ranges (the smaller of the two).
    pub count: u32,
    pub newuidmap: PathBuf,
    pub newgidmap: PathBuf,
}

impl IdMapping {
    /// The mapping for the calling user: a full range where /etc/subuid,
    /// /etc/subgid and the newuidmap/newgidmap programs allow it.
    pub fn for_caller() -> IdMapping {
        let uid = Uid::current().as_raw();
        let gid = Gid::current().as_raw();
        let user = nix::unistd::User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        let range = (|| {
            let uids = subordinate_range("/etc/subuid", uid, user.as_deref())?;
            let gids = subordinate_range("/etc/subgid", uid, user.as_deref())?;
            Some(SubordinateRange {
                uid_start: uids.0,
                gid_start: gids.0,
                count: uids.1.min(gids.1),
                newuidmap: find_program("newuidmap")?,
                newgidmap: find_program("newgidmap")?,
            })
        })();
        IdMapping { uid, gid, range }
    }

    /// `uid` and `gid` with `count` subordinate ids from 100000 and the
    /// helpers in /usr/bin (for tests of what reads a mapping).
    #[cfg(test)]
    pub fn with_subordinate_ids(uid: u32, gid: u32, count: u32) -> IdMapping {
        IdMapping {
            uid,
            gid,
            range: Some(SubordinateRange {
                uid_start: 100000,
                gid_start: 100000,
                count,
                newuidmap: "/usr/bin/newuidmap".into(),
                newgidmap: "/usr/bin/newgidmap".into(),
            }),
        }
    }

    /// How many ids the container has: 1, or 1 + the subordinate range.
    pub fn describe(&self) -> String {
        match &self.range {
            None => format!(
                "uid {} and gid {} as root, no other ids",
                self.uid, self.gid
            ),
            Some(range) => format!(
                "uid {} and gid {} as root, {} subordinate ids from /etc/subuid and /etc/subgid",
                self.uid, self.gid, range.count
            ),
        }
    }
}

/// The first `start:count` line of a subordinate id file for `uid` (by
/// number or name).
fn subordinate_range(file: &str, uid: u32, user: Option<&str>) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).ok()?;
    parse_subordinate(&text, uid, user)
}

fn parse_subordinate(text: &str, uid: u32, user: Option<&str>) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        let start = fields.next()?.parse().ok()?;
        let count: u32 = fields.next()?.parse().ok()?;
        let mine = owner == uid.to_string() || Some(owner) == user;
        (mine && count > 0).then_some((start, count))
    })
}

/// A system program by name, in the usual directories (the server runs
/// with an empty environment, so without PATH).
pub(super) fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// Whether this kernel mounts overlayfs inside a user namespace (5.11 and
/// later); before that, rootless roots are bound read-only instead.
pub fn overlay_supported() -> bool {
    let Ok(uts) = nix::sys::utsname::uname() else {
        return true;
    };
    let release = uts.release().to_string_lossy().into_owned();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    version >= (5, 11)
}

/// Moves the calling (single-threaded) process into a new user namespace
/// and maps its ids. Afterwards it is root there, with every capability
/// over the namespaces it creates next.
pub fn enter(mapping: &IdMapping) -> Result<(), SetupFailure> {
    match &mapping.range {
        None => {
            unshare(CloneFlags::CLONE_NEWUSER).unshare_step(CloneFlags::CLONE_NEWUSER)?;
            write_map("/proc/self/uid_map", &format!("0 {} 1\n", mapping.uid))?;
            write_map("/proc/self/setgroups", "deny")?;
            write_map("/proc/self/gid_map", &format!("0 {} 1\n", mapping.gid))
        }
        Some(range) => enter_with_range(mapping, range),
    }
}

fn write_map(path: &str, text: &str) -> Result<(), SetupFailure> {
    fs::write(path, text).step(|| format!("write {path}"))
}

/// newuidmap must run outside the new namespace: a child forked before the
/// unshare writes both maps once the parent is in it.
fn enter_with_range(mapping: &IdMapping, range: &SubordinateRange) -> Result<(), SetupFailure> {
    let (ready_read, ready_write) = nix::unistd::pipe().step(|| "create id-map pipe".into())?;
    let parent = Pid::this();
    // SAFETY: the supervisor is single-threaded; the child only reads a pipe,
    // runs two programs and exits.
    match unsafe { fork() }.step(|| "fork the id mapper".into())? {
        ForkResult::Child => {
            drop(ready_write);
            let code = match GoAhead::wait(&ready_read) {
                Ok(true) => i32::from(!run_mappers(parent, mapping, range)),
                _ => 1,
            };
            // SAFETY: leave without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(ready_read);
            let unshared = unshare(CloneFlags::CLONE_NEWUSER);
            if unshared.is_ok() {
                let _ = GoAhead::send(&ready_write);
            }
            drop(ready_write);
            let status = nix::sys::wait::waitpid(child, None);
            unshared.unshare_step(CloneFlags::CLONE_NEWUSER)?;
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ => Err(SetupFailure {
                    step: format!(
                        "map ids with {} and {}",
                        range.newuidmap.display(),
                        range.newgidmap.display()
                    )
                    .into(),
                    cause: "it failed (see its message above)".into(),
                    hint: Some("check /etc/subuid and /etc/subgid for this user".into()),
                    host_unsupported: true,
                    errno: None,
                }),
            }
        }
    }
}

/// Runs newuidmap and newgidmap on `pid`; true when both succeeded.
fn run_mappers(pid: Pid, mapping: &IdMapping, range: &SubordinateRange) -> bool {
    let run = |program: &Path, own: u32, start: u32| {
        Command::new(program)
            .arg(pid.to_string())
            .args(["0", &own.to_string(), "1"])
            .args(["1", &start.to_string(), &range.count.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    run(&range.newuidmap, mapping.uid, range.uid_start)
        && run(&range.newgidmap, mapping.gid, range.gid_start)
}

/// A failed unshare(CLONE_NEWUSER), explained.
pub fn explain(mut failure: SetupFailure) -> SetupFailure {
    if failure.step.creates_user_namespace() {
        failure.host_unsupported = true;
        failure.hint = Some(
            "this host does not let unprivileged users create user namespaces \
             (see `isotest doctor`: user.max_user_namespaces, \
             kernel.apparmor_restrict_unprivileged_userns); run as root instead"
                .into(),
        );
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_number() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(
            parse_subordinate(text, 1000, Some("alice")),
            Some((100000, 65536))
        );
        assert_eq!(parse_subordinate(text, 1001, None), Some((200000, 1000)));
        assert_eq!(
            parse_subordinate(text, 1002, Some("bob")),
            None,
            "empty range"
        );
        assert_eq!(parse_subordinate("", 1, None), None);
    }
}
