//! Running the real `isotest` binary, and the preconditions every trial
//! shares: root, xmllint.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test, built by cargo for this test target.
pub const ISOTEST: &str = env!("CARGO_BIN_EXE_isotest");

/// No single `isotest` invocation of the harness may take longer; past this
/// it is killed and the trial fails (rather than hanging the whole run).
const WATCHDOG: Duration = Duration::from_secs(180);

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures_dir() -> PathBuf {
    manifest_dir().join("fixtures")
}

/// `isotest` with the repository root as working directory.
pub fn isotest() -> Command {
    let mut command = Command::new(ISOTEST);
    command.current_dir(manifest_dir());
    command
}

/// A finished command: its exit code (128 + signal when it was killed) and
/// its output, decoded lossily.
pub struct Finished {
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
pub fn run(mut command: Command) -> Result<Finished, String> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > WATCHDOG => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown} still ran after {WATCHDOG:?}; killed it"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("wait for {shown}: {e}")),
        }
    };
    drop(stdin);
    Ok(Finished {
        code: exit_code(status),
        stdout: String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned(),
    })
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

/// Containers need root (rootless mode is a later issue): without it every
/// trial that runs one fails with this, rather than passing silently.
pub fn require_root() -> Result<(), String> {
    let uid = std::fs::metadata("/proc/self")
        .map_err(|e| format!("stat /proc/self: {e}"))?
        .uid();
    if uid == 0 {
        Ok(())
    } else {
        Err(format!(
            "the harness must run as root (running as uid {uid}): isotest creates \
             containers; run `sudo -E cargo test --test harness`"
        ))
    }
}

/// Fails with a clear message when xmllint (package libxml2-utils) is missing.
pub fn require_xmllint() -> Result<(), String> {
    match Command::new("xmllint").arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`xmllint --version` failed: {:?}", output.status)),
        Err(e) => Err(format!(
            "xmllint not found ({e}): the JUnit reports are validated with it; \
             install libxml2-utils (ci/test does)"
        )),
    }
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
