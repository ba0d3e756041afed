//! Running the real `isotest` binary, and the preconditions every trial
//! shares: root, xmllint (unless `ISOTEST_HARNESS_NO_XMLLINT` is set).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The binary under test, built by cargo for this test target.
pub const ISOTEST: &str = env!("CARGO_BIN_EXE_isotest");

/// No single `isotest` invocation of the harness may take longer; past this
/// it is killed and the trial fails (rather than hanging the whole run).
const WATCHDOG: Duration = Duration::from_secs(180);

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// fixtures/ of the repository, or a copy named by ISOTEST_HARNESS_FIXTURES
/// (the rootless lane gives its user a copy of its own, as a developer owns
/// their checkout).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("ISOTEST_HARNESS_FIXTURES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifest_dir().join("fixtures"),
    }
}

/// `isotest` with the repository root as working directory and a cache
/// of its own ($XDG_CACHE_HOME), so that no run reads the run history of
/// another; a trial that wants history kept across runs sets its own.
pub fn isotest() -> Command {
    let mut command = Command::new(ISOTEST);
    command
        .current_dir(manifest_dir())
        .env("XDG_CACHE_HOME", fresh_cache_dir());
    command
}

/// Where this harness process keeps the caches of its isotest runs.
fn caches_dir() -> PathBuf {
    std::env::temp_dir().join(format!("isotest-harness-caches-{}", std::process::id()))
}

/// A new, not yet created, directory under `caches_dir()`.
fn fresh_cache_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    caches_dir().join(NEXT.fetch_add(1, Ordering::SeqCst).to_string())
}

/// Removes the caches of this harness process's isotest runs.
pub fn remove_caches() {
    let dir = caches_dir();
    if let Err(error) = std::fs::remove_dir_all(&dir) {
        if error.kind() != std::io::ErrorKind::NotFound {
            eprintln!("note: could not remove {}: {error}", dir.display());
        }
    }
}

/// A finished command: its exit code (128 + signal when it was killed) and
/// its output, decoded lossily.
pub struct Finished {
    /// The process ID it ran as (isotest names its cgroups after it).
    pub pid: u32,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The output, shortened, for a failure message.
    pub fn describe(&self) -> String {
        format!(
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            shorten(&self.stdout),
            shorten(&self.stderr)
        )
    }
}

/// Runs `command` to completion, capturing its output. Its stdin is a pipe
/// that stays open and never delivers data, so anything that wrongly reads
/// the runner's stdin blocks instead of seeing EOF.
pub fn run(command: Command) -> Result<Finished, String> {
    start(command)?.finish()
}

/// A started command whose output is being captured; `finish` waits for it.
/// Dropped unfinished (a trial gave up early), it is killed.
pub struct Running {
    shown: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
    reaped: bool,
}

/// Starts `command` as `run` does, without waiting for it.
pub fn start(mut command: Command) -> Result<Running, String> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    Ok(Running {
        shown,
        stdin: child.stdin.take(),
        stdout: Some(read_in_background(child.stdout.take())),
        stderr: Some(read_in_background(child.stderr.take())),
        child,
        reaped: false,
    })
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the command (not to its children).
    pub fn signal(&self, signal: Signal) -> Result<(), String> {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).map_err(|e| format!("send {signal} to {}: {e}", self.shown))
    }

    /// Waits for the command to end (killing it after `WATCHDOG`) and
    /// collects its output.
    pub fn finish(self) -> Result<Finished, String> {
        self.finish_within(WATCHDOG)
    }

    /// Waits at most `limit` for the command to end (then kills it and
    /// fails) and collects its output.
    pub fn finish_within(mut self, limit: Duration) -> Result<Finished, String> {
        let started = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > limit => {
                    return Err(format!(
                        "{} still ran after {limit:?}; killed it",
                        self.shown
                    ));
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("wait for {}: {e}", self.shown)),
            }
        };
        self.reaped = true;
        self.stdin = None;
        let collect = |reader: Option<thread::JoinHandle<Vec<u8>>>| {
            let bytes = reader.and_then(|r| r.join().ok()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Ok(Finished {
            pid: self.child.id(),
            code: exit_code(status),
            stdout: collect(self.stdout.take()),
            stderr: collect(self.stderr.take()),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

/// The harness runs as root, or as another user in the rootless lane
/// (ISOTEST_HARNESS_ROOTLESS set, as `ci/test-rootless` does): without
/// either every trial that runs a container fails with this, rather than
/// passing silently.
pub fn require_root() -> Result<(), String> {
    let uid = std::fs::metadata("/proc/self")
        .map_err(|e| format!("stat /proc/self: {e}"))?
        .uid();
    if uid == 0 || rootless_lane() {
        Ok(())
    } else {
        Err(format!(
            "the harness must run as root (running as uid {uid}): isotest creates \
             containers; run `sudo -E cargo test --test harness`"
        ))
    }
}

/// Whether this is the rootless lane: the harness runs as an ordinary
/// user, and so does isotest.
pub fn rootless_lane() -> bool {
    std::env::var_os("ISOTEST_HARNESS_ROOTLESS").is_some_and(|v| !v.is_empty())
}

/// Set (non-empty) where xmllint and the schema are not available, as in the
/// pure cgroup v2 guest of ci/vm-cgroup-v2: JUnit reports are then checked
/// for everything but their validity against junit-10.xsd.
pub const NO_XMLLINT: &str = "ISOTEST_HARNESS_NO_XMLLINT";

pub fn xmllint_skipped() -> bool {
    std::env::var_os(NO_XMLLINT).is_some_and(|value| !value.is_empty())
}

/// Fails with a clear message when xmllint (package libxml2-utils) is
/// missing, unless `NO_XMLLINT` is set.
pub fn require_xmllint() -> Result<(), String> {
    if xmllint_skipped() {
        return Ok(());
    }
    match Command::new("xmllint").arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`xmllint --version` failed: {:?}", output.status)),
        Err(e) => Err(format!(
            "xmllint not found ({e}): the JUnit reports are validated with it; \
             install libxml2-utils (ci/test does)"
        )),
    }
}

/// A fresh directory holding executable test scripts `(name, content)`
/// (a name may have directories: `sub/t.sh`). It is under the target
/// directory (created if needed), which tests can see through their overlay
/// root.
pub fn suite(tests: &[(&str, &str)]) -> Result<tempfile::TempDir, String> {
    let base = env!("CARGO_TARGET_TMPDIR");
    std::fs::create_dir_all(base).map_err(|e| format!("create {base}: {e}"))?;
    let dir =
        tempfile::tempdir_in(base).map_err(|e| format!("create a directory in {base}: {e}"))?;
    for (name, content) in tests {
        write_file(&dir.path().join(name), content, 0o755)?;
    }
    Ok(dir)
}

/// Writes `content` to `path` with `mode`, creating its directory.
pub fn write_file(path: &Path, content: &str, mode: u32) -> Result<(), String> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .and_then(|_| std::fs::write(path, content))
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// The host's hostname, as the kernel has it.
pub fn host_hostname() -> Result<String, String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim_end().to_owned())
        .map_err(|e| format!("read /proc/sys/kernel/hostname: {e}"))
}

/// At most a few kilobytes of `text`: its head and its tail.
pub fn shorten(text: &str) -> String {
    const KEEP: usize = 3000;
    if text.len() <= 2 * KEEP {
        return text.to_owned();
    }
    let head_end = (0..=KEEP)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let tail_start = (text.len() - KEEP..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    format!(
        "{}\n[... {} bytes left out ...]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

/// Polls `condition` until it holds (true) or `limit` has passed (false).
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

/// Whether `program` is an executable file in one of PATH's directories.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}
