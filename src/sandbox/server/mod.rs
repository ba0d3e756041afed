//! The server: one single-threaded process per run (a re-exec
//! of /proc/self/exe, `process`) that forks a supervisor for each test, so
//! that a test pays for a fork rather than an exec and a Rust start-up.
//! This side is the runner's: it starts the server on first use, from a
//! thread that lives as long as the server (PDEATHSIG fires when the
//! *thread* that forked dies), hands it each test's descriptors over a Unix
//! socket (`passing`), and starts a new one if it died.

mod passing;
mod process;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{shutdown, socketpair, AddressFamily, Shutdown, SockFlag, SockType};

use super::fds;
use super::messages::ServerRequest;
use super::spec::SetupFailure;
use super::step::{failure, Step};

pub(super) use passing::{receive, send};
pub use process::server_main;

/// The hidden subcommand that runs the server. (Its name and the runner's
/// pid after it mark the server and every supervisor as the run's own.)
pub const SERVER_SUBCOMMAND: &str = "__sandbox-server";

/// One test's descriptors, in the order the server expects them.
pub(super) struct TestFds<'a> {
    /// Read end of the pipe the request is written to.
    pub request: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    /// The supervisor's end of the report socket.
    pub report: BorrowedFd<'a>,
}

/// The run's server, started on first use and again if it died.
#[derive(Default)]
pub(super) struct ForkServer {
    current: Mutex<Option<Arc<Server>>>,
}

impl ForkServer {
    /// Hands one test to the server. Returns the server it went to, whose
    /// fate explains a test that ends without a report.
    pub fn submit(&self, fds: &TestFds<'_>) -> Result<Arc<Server>, SetupFailure> {
        self.submit_as(ServerRequest::Test, fds)
    }

    /// Hands the server the descriptors of a network holder: the request,
    /// output and the holder's socket in the places of a test's.
    pub fn submit_network(&self, fds: &TestFds<'_>) -> Result<Arc<Server>, SetupFailure> {
        self.submit_as(ServerRequest::Network, fds)
    }

    fn submit_as(
        &self,
        request: ServerRequest,
        fds: &TestFds<'_>,
    ) -> Result<Arc<Server>, SetupFailure> {
        let mut restarted = false;
        loop {
            let server = self.running()?;
            match server.send(request, fds) {
                Ok(()) => return Ok(server),
                // The server died since the last test: start another once.
                Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) if !restarted => {
                    self.forget(&server);
                    restarted = true;
                }
                Err(errno) => {
                    let mut failed = failure("hand the test to the sandbox server".into(), errno);
                    failed.hint = server.exit().map(|exit| format!("the server {exit}"));
                    return Err(failed);
                }
            }
        }
    }

    fn running(&self) -> Result<Arc<Server>, SetupFailure> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(server) = current.as_ref().filter(|s| s.exit().is_none()) {
            return Ok(server.clone());
        }
        let server = Arc::new(Server::start()?);
        *current = Some(server.clone());
        Ok(server)
    }

    fn forget(&self, server: &Arc<Server>) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, server)) {
            *current = None;
        }
    }
}

/// A running server. Dropping it (when the run is over and no test uses
/// it) closes the socket, which ends the server, and waits for it.
pub(super) struct Server {
    socket: OwnedFd,
    /// How the server ended, once it has.
    exit: Arc<OnceLock<String>>,
    keeper: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Result<Server, SetupFailure> {
        let (socket, server_end) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .step(|| "create the sandbox server's socket".into())?;
        let exit = Arc::new(OnceLock::new());
        let (started_tx, started) = mpsc::sync_channel(1);
        let exit_of_keeper = exit.clone();
        // The keeper starts the server and reaps it; it must outlive it.
        let keeper = std::thread::Builder::new()
            .name("sandbox-server".into())
            .spawn(move || match spawn_server(server_end) {
                Err(error) => {
                    let _ = started_tx.send(Err(error));
                }
                Ok(mut child) => {
                    let _ = started_tx.send(Ok(()));
                    let status = child.wait();
                    let _ = exit_of_keeper.set(status.map_or_else(
                        |e| format!("could not be waited for: {e}"),
                        |s| format!("ended ({s})"),
                    ));
                }
            })
            .step(|| "start the sandbox server's thread".into())?;
        let server = Server {
            socket,
            exit,
            keeper: Some(keeper),
        };
        match started.recv() {
            Ok(Ok(())) => Ok(server),
            Ok(Err(error)) => Err(error)
                .step(|| format!("start the sandbox server (/proc/self/exe {SERVER_SUBCOMMAND})")),
            Err(_) => Err(SetupFailure {
                step: "start the sandbox server".into(),
                cause: "its thread ended early".into(),
                hint: None,
                host_unsupported: false,
                errno: None,
            }),
        }
    }

    fn send(&self, request: ServerRequest, fds: &TestFds<'_>) -> nix::Result<()> {
        send(
            self.socket.as_fd(),
            &request.encode(),
            &[fds.request, fds.stdout, fds.stderr, fds.report],
        )
    }

    /// How the server ended, if it has: `ended (signal: 9 (SIGKILL))`.
    pub fn exit(&self) -> Option<&str> {
        self.exit.get().map(String::as_str)
    }

    /// Like `exit`, but also knows of a death its thread has not reaped
    /// yet: the server's end of the socket closes as it dies, before its
    /// supervisors die with it.
    pub fn fate(&self) -> Option<String> {
        if let Some(exit) = self.exit() {
            return Some(exit.to_string());
        }
        let mut socket = [PollFd::new(self.socket.as_fd(), PollFlags::empty())];
        let hung_up = poll(&mut socket, PollTimeout::ZERO).is_ok()
            && socket[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP));
        hung_up.then(|| "died".to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = shutdown(self.socket.as_raw_fd(), Shutdown::Both);
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

fn spawn_server(socket: OwnedFd) -> std::io::Result<std::process::Child> {
    let mut command = Command::new("/proc/self/exe");
    command
        .arg(SERVER_SUBCOMMAND)
        .arg(std::process::id().to_string())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A panic message from the server reaches the user.
        .stderr(Stdio::inherit())
        // Its own process group: a terminal's Ctrl-C reaches only the
        // runner, which decides how to stop each container.
        .process_group(0);
    let raw = socket.as_raw_fd();
    // SAFETY: between fork and exec this only calls dup2/fcntl, which are
    // async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // `socket` stays open in the runner until spawn returns.
            let socket = BorrowedFd::borrow_raw(raw);
            if raw == process::SOCKET_FD {
                fcntl(socket, FcntlArg::F_SETFD(FdFlag::empty()))?;
            } else {
                fds::dup_onto(socket, process::SOCKET_FD)?;
            }
            Ok(())
        });
    }
    let child = command.spawn();
    drop(socket);
    child
}
