//! The messages between the sandbox's processes that are not JSON: each
//! channel's messages are an enum with one `encode` / `decode` pair, encoded
//! into a few bytes on the stack, so that a process just forked from the
//! server or the supervisor can send them without allocating.
//!
//! - runner → server (socket, with a test's four descriptors): `ServerRequest`;
//! - supervisor → runner (report socket, with a pidfd): `Announcement`;
//! - between two processes of one container (supervisor → init, supervisor →
//!   id mapper, init ↔ fuse-overlayfs): `GoAhead`, whose absence (EOF) means
//!   the other side gave up;
//! - the command's child → init (close-on-exec pipe): `ExecFailure`.
//!
//! (init → supervisor is JSON lines, `init::InitMessage`; the supervisor's
//! report to the runner is JSON, `spec::Report`.)

use std::os::fd::AsFd;

use nix::errno::Errno;

use super::security;

/// What the runner asks the server to fork, sent with the descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerRequest {
    /// A test's supervisor.
    Test,
    /// The holder of a test's network.
    Network,
}

impl ServerRequest {
    pub fn encode(self) -> [u8; 1] {
        match self {
            ServerRequest::Test => [b't'],
            ServerRequest::Network => [b'n'],
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<ServerRequest> {
        match bytes {
            [b't'] => Some(ServerRequest::Test),
            [b'n'] => Some(ServerRequest::Network),
            _ => None,
        }
    }
}

/// What a pidfd on the report socket is a pidfd of. (Messages without a
/// descriptor are the report's JSON.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announcement {
    /// The supervisor itself, its first message.
    Supervisor,
    /// The container's init, once the command started.
    Init,
}

impl Announcement {
    pub fn encode(self) -> [u8; 1] {
        match self {
            Announcement::Supervisor => [b'p'],
            Announcement::Init => [b'i'],
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<Announcement> {
        match bytes {
            [b'p'] => Some(Announcement::Supervisor),
            [b'i'] => Some(Announcement::Init),
            _ => None,
        }
    }
}

/// The one message of a pipe that holds a process back until another is
/// ready for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoAhead;

impl GoAhead {
    const BYTE: u8 = b'g';

    pub fn encode(self) -> [u8; 1] {
        [GoAhead::BYTE]
    }

    pub fn decode(bytes: &[u8]) -> Option<GoAhead> {
        (bytes == [GoAhead::BYTE]).then_some(GoAhead)
    }

    /// Writes the go-ahead to `pipe`.
    pub fn send(pipe: impl AsFd) -> nix::Result<()> {
        nix::unistd::write(pipe, &GoAhead.encode()).map(drop)
    }

    /// Waits on `pipe` for the go-ahead: `Ok(false)` when the writer closed
    /// it (or wrote something else) instead.
    pub fn wait(pipe: impl AsFd) -> nix::Result<bool> {
        let mut byte = [0u8; 1];
        loop {
            match nix::unistd::read(pipe.as_fd(), &mut byte) {
                Err(Errno::EINTR) => continue,
                Ok(n) => return Ok(GoAhead::decode(&byte[..n]).is_some()),
                Err(errno) => return Err(errno),
            }
        }
    }
}

/// The step of starting the command at which its child failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecStep {
    CloseFds,
    JoinCgroup,
    CgroupNamespace,
    Security(security::Step),
    Identity,
    Chdir,
    Exec,
}

/// The command's child failed at `step` with `errno`; nothing on the pipe
/// (it closes on exec) means the exec succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecFailure {
    pub step: ExecStep,
    pub errno: Errno,
}

/// The encoded length of an `ExecFailure`: the step, then the errno.
pub const EXEC_FAILURE_LEN: usize = 5;

/// `ExecStep::Security` steps are numbered from here.
const SECURITY_STEPS: u8 = 16;

impl ExecStep {
    fn code(self) -> u8 {
        match self {
            ExecStep::Chdir => 0,
            ExecStep::Exec => 1,
            ExecStep::Identity => 2,
            ExecStep::JoinCgroup => 3,
            ExecStep::CloseFds => 4,
            ExecStep::CgroupNamespace => 5,
            ExecStep::Security(step) => SECURITY_STEPS + step as u8,
        }
    }

    fn from_code(code: u8) -> Option<ExecStep> {
        ExecStep::all().find(|step| step.code() == code)
    }

    /// Every step.
    fn all() -> impl Iterator<Item = ExecStep> {
        let simple = [
            ExecStep::CloseFds,
            ExecStep::JoinCgroup,
            ExecStep::CgroupNamespace,
            ExecStep::Identity,
            ExecStep::Chdir,
            ExecStep::Exec,
        ];
        let security = security::Step::ALL.map(ExecStep::Security);
        simple.into_iter().chain(security)
    }
}

impl ExecFailure {
    pub fn encode(self) -> [u8; EXEC_FAILURE_LEN] {
        let mut bytes = [0u8; EXEC_FAILURE_LEN];
        bytes[0] = self.step.code();
        bytes[1..].copy_from_slice(&(self.errno as i32).to_ne_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Option<ExecFailure> {
        let bytes: [u8; EXEC_FAILURE_LEN] = bytes.try_into().ok()?;
        let errno = i32::from_ne_bytes(bytes[1..].try_into().ok()?);
        Some(ExecFailure {
            step: ExecStep::from_code(bytes[0])?,
            errno: Errno::from_raw(errno),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_requests_round_trip() {
        for request in [ServerRequest::Test, ServerRequest::Network] {
            assert_eq!(ServerRequest::decode(&request.encode()), Some(request));
        }
        assert_eq!(ServerRequest::decode(b""), None);
        assert_eq!(ServerRequest::decode(b"x"), None);
    }

    #[test]
    fn announcements_round_trip() {
        for announcement in [Announcement::Supervisor, Announcement::Init] {
            assert_eq!(
                Announcement::decode(&announcement.encode()),
                Some(announcement)
            );
        }
        assert_eq!(Announcement::decode(b"{\"ending\""), None);
    }

    #[test]
    fn go_ahead_crosses_a_pipe_and_eof_is_no_go() {
        assert_eq!(GoAhead::decode(&GoAhead.encode()), Some(GoAhead));
        let (read, write) = nix::unistd::pipe().unwrap();
        GoAhead::send(&write).unwrap();
        assert_eq!(GoAhead::wait(&read), Ok(true));
        drop(write);
        assert_eq!(GoAhead::wait(&read), Ok(false));
    }

    #[test]
    fn exec_failures_round_trip() {
        assert_eq!(ExecStep::all().count(), 6 + security::Step::ALL.len());
        for step in ExecStep::all() {
            let failure = ExecFailure {
                step,
                errno: Errno::EACCES,
            };
            assert_eq!(ExecFailure::decode(&failure.encode()), Some(failure));
        }
        assert_eq!(ExecFailure::decode(&[1, 0, 0]), None, "short");
        assert_eq!(
            ExecFailure::decode(&[200, 1, 0, 0, 0]),
            None,
            "no such step"
        );
    }
}
