//! Hooks: what a fixture case asks the harness to do on the host around its
//! run, declared in the `[hooks]` table of its case.toml. `arm` sets them up
//! before the run and says which `--env` variables to pass; `Armed::prepare`
//! hands the isotest command what it must inherit; `Armed::check` adds what
//! it finds after the run to the problems; dropping `Armed` cleans up
//! whatever the hooks left on the host.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use serde::Deserialize;

use crate::cgroups;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Start `sleep 1000` on the host; pass its PID as HOST_PID; after the
    /// run it must still be alive.
    #[serde(default)]
    host_sleeper: bool,
    /// Listen on 0.0.0.0:<port> on the host; pass HOST_PORT and HOST_ADDR
    /// (the host's first global IPv4 address, or empty); after the run the
    /// listener must not have received a connection.
    #[serde(default)]
    host_listener: bool,
    /// Serve TCP on 0.0.0.0:<port> on the host, answering each connection
    /// with `isotest-host-server` and a newline; pass HOST_SERVER_PORT.
    /// After the run it must have served at least one connection (a test
    /// with `network = "outbound"` reached the host).
    #[serde(default)]
    host_server: bool,
    /// Pass HOST_INTERFACES: the names of the host's network interfaces
    /// (from its /proc/net/dev), sorted, separated by spaces.
    #[serde(default)]
    host_interfaces: bool,
    /// Create a SysV shared memory segment and message queue on the host;
    /// pass HOST_SHMID and HOST_MSQID; after the run no SysV IPC object may
    /// have appeared on the host.
    #[serde(default)]
    host_ipc: bool,
    /// Paths that must not exist on the host, before or after the run
    /// (relative paths are relative to the case directory).
    #[serde(default)]
    check_host_unchanged: Vec<String>,
    /// Files whose content must be the same after the run as before.
    #[serde(default)]
    check_host_files_intact: Vec<String>,
    /// After the run, no host process may have this in its command line.
    check_no_leftover_processes: Option<String>,
    /// After the run, no cgroup named `isotest-<pid>x*` (pid: of the
    /// `isotest run` of this case) may exist anywhere under /sys/fs/cgroup.
    #[serde(default)]
    check_no_cgroups: bool,
    /// After the run, the host has at most 10 more processes than before
    /// (waiting up to 5 s for it to settle). Counted from /proc: live
    /// processes, not kernel threads, and not the harness's own process
    /// tree (which holds the runs of the cases running beside this one).
    #[serde(default)]
    check_host_process_count: bool,
    /// Hand isotest an open file descriptor (not close-on-exec, as a
    /// careless parent process would) to a fresh, empty host directory that
    /// the container cannot otherwise see (under the host's /tmp); pass its
    /// number as HOST_FD. After the run the directory must still be empty.
    #[serde(default)]
    host_dir_fd: bool,
    /// Listen on a Unix socket in a fresh host directory that the container
    /// sees through its root (under the target directory), and on an
    /// abstract Unix socket; pass HOST_SOCKET (the path) and
    /// HOST_ABSTRACT_SOCKET (the name, without the leading NUL). After the
    /// run neither may have received a connection.
    #[serde(default)]
    host_unix_listener: bool,
    /// After the run, the host's wall clock has moved as its monotonic clock
    /// did (within a second): nothing set it.
    #[serde(default)]
    check_host_clock: bool,
    /// Mount a fresh tmpfs on the host (under the target directory, without
    /// nodev, as a separate /home or data volume might be) for the run; in it
    /// a Unix socket listener (`host.sock`) and a device node for the
    /// harmless /dev/null (`null`, char 1:3). Pass HOST_SUBMOUNT, its path.
    /// After the run the listener must not have received a connection; the
    /// mount is then removed.
    #[serde(default)]
    host_submount: bool,
    /// Pass HOST_CAPBND: the harness's own capability bounding set, as in
    /// the `CapBnd:` line of /proc/self/status (hex, 16 digits).
    #[serde(default)]
    host_capabilities: bool,
}

/// The hooks of one run, set up.
#[derive(Default)]
pub struct Armed {
    /// `--env` variables to pass to isotest.
    pub env: Vec<(String, String)>,
    sleeper: Option<Child>,
    listener: Option<TcpListener>,
    /// The host server's count of connections served.
    served: Option<Arc<AtomicUsize>>,
    ipc: Option<HostIpc>,
    absent: Vec<PathBuf>,
    intact: Vec<(PathBuf, Vec<u8>)>,
    leftover_marker: Option<String>,
    check_no_cgroups: bool,
    /// Host processes before the run, when their count is checked.
    processes_before: Option<BTreeMap<u32, String>>,
    dir_fd: Option<InheritedDir>,
    unix_listener: Option<HostUnixListener>,
    submount: Option<HostSubmount>,
    /// The host's wall and monotonic clocks before the run.
    clocks_before: Option<(SystemTime, Instant)>,
}

/// A tmpfs mounted on the host for one run; unmounted when dropped.
struct HostSubmount {
    dir: tempfile::TempDir,
    listener: Option<UnixListener>,
}

impl Drop for HostSubmount {
    fn drop(&mut self) {
        self.listener = None;
        let _ = umount2(self.dir.path(), MntFlags::MNT_DETACH);
    }
}

/// A host directory and a descriptor of it that isotest inherits.
struct InheritedDir {
    dir: tempfile::TempDir,
    fd: OwnedFd,
}

struct HostUnixListener {
    /// Holds the socket file; removed with it.
    _dir: tempfile::TempDir,
    on_path: UnixListener,
    abstract_name: String,
    in_abstract: UnixListener,
}

struct HostIpc {
    /// Every SysV object on the host before the run, ours included.
    before: BTreeSet<String>,
    shm_id: String,
    msq_id: String,
}

impl Hooks {
    pub fn arm(&self, case_dir: &Path) -> Result<Armed, String> {
        let mut armed = Armed::default();
        armed.leftover_marker = self.check_no_leftover_processes.clone();
        armed.check_no_cgroups = self.check_no_cgroups;
        if self.check_host_process_count {
            armed.processes_before = Some(host_processes());
        }
        for path in &self.check_host_unchanged {
            let path = case_dir.join(path);
            if path.symlink_metadata().is_ok() {
                return Err(format!(
                    "{} exists on the host before the run (left by an earlier broken \
                     run?): remove it",
                    path.display()
                ));
            }
            armed.absent.push(path);
        }
        for path in &self.check_host_files_intact {
            let path = case_dir.join(path);
            let content =
                std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
            armed.intact.push((path, content));
        }
        if self.host_sleeper {
            let sleeper = Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| format!("start the host sleeper: {e}"))?;
            armed
                .env
                .push(("HOST_PID".into(), sleeper.id().to_string()));
            armed.sleeper = Some(sleeper);
        }
        if self.host_listener {
            let listener = TcpListener::bind(("0.0.0.0", 0))
                .map_err(|e| format!("listen on the host: {e}"))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| format!("make the host listener non-blocking: {e}"))?;
            let port = listener
                .local_addr()
                .map_err(|e| format!("host listener address: {e}"))?
                .port();
            armed.env.push(("HOST_PORT".into(), port.to_string()));
            armed.env.push(("HOST_ADDR".into(), host_address()));
            armed.listener = Some(listener);
        }
        if self.host_server {
            armed.served = Some(host_server(&mut armed.env)?);
        }
        if self.host_interfaces {
            armed
                .env
                .push(("HOST_INTERFACES".into(), host_interfaces()?.join(" ")));
        }
        if self.host_dir_fd {
            armed.dir_fd = Some(inherited_dir(&mut armed.env)?);
        }
        if self.host_unix_listener {
            armed.unix_listener = Some(host_unix_listener(&mut armed.env)?);
        }
        if self.host_submount {
            armed.submount = Some(host_submount(&mut armed.env)?);
        }
        if self.check_host_clock {
            armed.clocks_before = Some((SystemTime::now(), Instant::now()));
        }
        if self.host_capabilities {
            armed.env.push(("HOST_CAPBND".into(), own_bounding_set()?));
        }
        if self.host_ipc {
            let shm_id = ipcmk(&["-M", "4096"])?;
            let msq_id = ipcmk(&["-Q"]);
            let msq_id = msq_id.inspect_err(|_| ipcrm("-m", &shm_id))?;
            armed.env.push(("HOST_SHMID".into(), shm_id.clone()));
            armed.env.push(("HOST_MSQID".into(), msq_id.clone()));
            armed.ipc = Some(HostIpc {
                before: sysv_objects(),
                shm_id,
                msq_id,
            });
        }
        Ok(armed)
    }
}

impl Armed {
    /// Lets `command` (isotest) inherit what the hooks hand it: the
    /// `host_dir_fd` descriptor stays open across its exec.
    pub fn prepare(&self, command: &mut Command) {
        if let Some(inherited) = &self.dir_fd {
            let fd = inherited.fd.as_raw_fd();
            // SAFETY: between fork and exec the closure only calls fcntl,
            // which is async-signal-safe, on a descriptor this process owns
            // (and keeps open until the child has been spawned).
            unsafe {
                command.pre_exec(move || {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }

    /// Checks, after the run of the runner with `runner_pid`, what the hooks
    /// promise.
    pub fn check(mut self, runner_pid: u32, problems: &mut Vec<String>) {
        if let Some(sleeper) = &mut self.sleeper {
            match sleeper.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => problems.push(format!(
                    "the host sleeper (PID {}) did not survive the run: {status}",
                    sleeper.id()
                )),
                Err(e) => problems.push(format!("wait for the host sleeper: {e}")),
            }
        }
        if let Some(listener) = &self.listener {
            match listener.accept() {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Ok((_, peer)) => problems.push(format!(
                    "the host listener received a connection from {peer}"
                )),
                Err(e) => problems.push(format!("accept on the host listener: {e}")),
            }
        }
        if let Some(served) = &self.served {
            if served.load(Ordering::SeqCst) == 0 {
                problems.push("the host server was never reached".to_owned());
            }
        }
        if let Some(inherited) = &self.dir_fd {
            match std::fs::read_dir(inherited.dir.path()) {
                Ok(entries) => {
                    let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
                    if !names.is_empty() {
                        problems.push(format!(
                            "the test wrote into the host directory {} through the \
                             descriptor isotest inherited (fd {}): {names:?}",
                            inherited.dir.path().display(),
                            inherited.fd.as_raw_fd()
                        ));
                    }
                }
                Err(e) => problems.push(format!("read {}: {e}", inherited.dir.path().display())),
            }
        }
        if let Some(unix) = &self.unix_listener {
            for (listener, what) in [
                (&unix.on_path, "the host's Unix socket listener".to_owned()),
                (
                    &unix.in_abstract,
                    format!("the host's abstract Unix socket @{}", unix.abstract_name),
                ),
            ] {
                match listener.accept() {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Ok(_) => problems.push(format!("{what} received a connection")),
                    Err(e) => problems.push(format!("accept on {what}: {e}")),
                }
            }
        }
        if let Some(submount) = &self.submount {
            if let Some(listener) = &submount.listener {
                match listener.accept() {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Ok(_) => problems.push(format!(
                        "the Unix socket listener in the host mount {} received a connection",
                        submount.dir.path().display()
                    )),
                    Err(e) => problems.push(format!("accept on the host mount's listener: {e}")),
                }
            }
            // Writes inside land in the container's own layer; the host
            // mount keeps exactly what the hook put there.
            let mut names: Vec<String> = std::fs::read_dir(submount.dir.path())
                .map(|entries| {
                    entries
                        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            if names != ["host.sock", "null"] {
                problems.push(format!(
                    "the host mount {} changed: it holds {names:?}",
                    submount.dir.path().display()
                ));
            }
        }
        if let Some((wall_before, monotonic_before)) = self.clocks_before {
            let monotonic = monotonic_before.elapsed();
            match SystemTime::now().duration_since(wall_before) {
                Ok(wall) if wall.abs_diff(monotonic) <= CLOCK_SLACK => {}
                Ok(wall) => problems.push(format!(
                    "the host's wall clock moved {wall:?} while its monotonic clock moved \
                     {monotonic:?}: something set it during the run"
                )),
                Err(e) => problems.push(format!(
                    "the host's wall clock went back {:?} during the run",
                    e.duration()
                )),
            }
        }
        if let Some(ipc) = &self.ipc {
            let new: Vec<_> = sysv_objects().difference(&ipc.before).cloned().collect();
            if !new.is_empty() {
                problems.push(format!(
                    "new SysV IPC objects on the host after the run: {new:?}"
                ));
            }
        }
        for path in &self.absent {
            if path.symlink_metadata().is_ok() {
                problems.push(format!(
                    "{} exists on the host after the run (removed it)",
                    path.display()
                ));
                let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
            }
        }
        for (path, before) in &self.intact {
            match std::fs::read(path) {
                Ok(after) if after == *before => {}
                Ok(_) => problems.push(format!(
                    "{} changed on the host during the run",
                    path.display()
                )),
                Err(e) => problems.push(format!("{} after the run: {e}", path.display())),
            }
        }
        if let Some(marker) = &self.leftover_marker {
            if let Err(e) = kill_leftovers(marker) {
                problems.push(e);
            }
        }
        if self.check_no_cgroups {
            let left = cgroups::of_runner(runner_pid);
            if !left.is_empty() {
                problems.push(format!(
                    "cgroups of the runner (PID {runner_pid}) left after the run (removed the empty ones): {left:?}"
                ));
                cgroups::remove(&left);
            }
        }
        if let Some(before) = &self.processes_before {
            check_process_count(before, problems);
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(sleeper) = &mut self.sleeper {
            let _ = sleeper.kill();
            let _ = sleeper.wait();
        }
        if let Some(ipc) = &self.ipc {
            ipcrm("-m", &ipc.shm_id);
            ipcrm("-q", &ipc.msq_id);
        }
    }
}

/// How far the host's wall clock may drift from its monotonic clock during
/// a run (NTP slews by at most half a millisecond a second).
const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// A TCP server on the host, serving from a thread for the rest of the
/// harness's life (it holds nothing but its socket); returns its count of
/// connections served.
fn host_server(env: &mut Vec<(String, String)>) -> Result<Arc<AtomicUsize>, String> {
    let listener =
        TcpListener::bind(("0.0.0.0", 0)).map_err(|e| format!("serve on the host: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("host server address: {e}"))?
        .port();
    env.push(("HOST_SERVER_PORT".into(), port.to_string()));
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"isotest-host-server\n");
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok(served)
}

/// A fresh directory in the host's /tmp (which every container replaces),
/// opened; its descriptor number goes to the test as HOST_FD.
fn inherited_dir(env: &mut Vec<(String, String)>) -> Result<InheritedDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("isotest-harness-fd-")
        .tempdir_in("/tmp")
        .map_err(|e| format!("create a directory in /tmp: {e}"))?;
    // std opens it close-on-exec; `Armed::prepare` clears that in the child.
    let fd: OwnedFd = std::fs::File::open(dir.path())
        .map_err(|e| format!("open {}: {e}", dir.path().display()))?
        .into();
    env.push(("HOST_FD".into(), fd.as_raw_fd().to_string()));
    Ok(InheritedDir { dir, fd })
}

/// Unix socket listeners on the host: one on a path the container sees
/// through its root (the target directory, like the suites of support.rs),
/// one abstract.
fn host_unix_listener(env: &mut Vec<(String, String)>) -> Result<HostUnixListener, String> {
    let base = env!("CARGO_TARGET_TMPDIR");
    std::fs::create_dir_all(base).map_err(|e| format!("create {base}: {e}"))?;
    let dir =
        tempfile::tempdir_in(base).map_err(|e| format!("create a directory in {base}: {e}"))?;
    let path = dir.path().join("host.sock");
    let on_path =
        UnixListener::bind(&path).map_err(|e| format!("listen on {}: {e}", path.display()))?;
    let abstract_name = format!(
        "isotest-harness-{}-{}",
        std::process::id(),
        dir.path().file_name().unwrap_or_default().to_string_lossy()
    );
    let in_abstract = SocketAddr::from_abstract_name(&abstract_name)
        .and_then(|address| UnixListener::bind_addr(&address))
        .map_err(|e| format!("listen on the abstract Unix socket @{abstract_name}: {e}"))?;
    for listener in [&on_path, &in_abstract] {
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("make a host Unix listener non-blocking: {e}"))?;
    }
    env.push(("HOST_SOCKET".into(), path.display().to_string()));
    env.push(("HOST_ABSTRACT_SOCKET".into(), abstract_name.clone()));
    Ok(HostUnixListener {
        _dir: dir,
        on_path,
        abstract_name,
        in_abstract,
    })
}

/// A tmpfs mounted on the host under the target directory, which isotest
/// re-exposes read-only in every container, holding a listening Unix
/// socket and a node for /dev/null.
fn host_submount(env: &mut Vec<(String, String)>) -> Result<HostSubmount, String> {
    let base = env!("CARGO_TARGET_TMPDIR");
    std::fs::create_dir_all(base).map_err(|e| format!("create {base}: {e}"))?;
    let dir =
        tempfile::tempdir_in(base).map_err(|e| format!("create a directory in {base}: {e}"))?;
    mount(
        Some("isotest-harness"),
        dir.path(),
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=64k,mode=0755"),
    )
    .map_err(|e| format!("mount a tmpfs at {}: {e}", dir.path().display()))?;
    let mut submount = HostSubmount {
        dir,
        listener: None,
    };
    let socket = submount.dir.path().join("host.sock");
    let listener =
        UnixListener::bind(&socket).map_err(|e| format!("listen on {}: {e}", socket.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("make {} non-blocking: {e}", socket.display()))?;
    submount.listener = Some(listener);
    let node = submount.dir.path().join("null");
    mknod(
        &node,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .map_err(|e| format!("mknod {} c 1 3: {e}", node.display()))?;
    env.push((
        "HOST_SUBMOUNT".into(),
        submount.dir.path().display().to_string(),
    ));
    Ok(submount)
}

/// The `CapBnd:` value of this process's /proc/self/status.
fn own_bounding_set() -> Result<String, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .map(|value| value.trim().to_owned())
        .ok_or_else(|| "no CapBnd line in /proc/self/status".to_owned())
}

/// The host's first global IPv4 address, or "" when it has none.
fn host_address() -> String {
    let output = Command::new("/usr/sbin/ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output();
    let Ok(output) = output else {
        return String::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// The host's network interfaces, sorted, from the harness's /proc/net/dev
/// (the harness runs in the host's network namespace).
fn host_interfaces() -> Result<Vec<String>, String> {
    let table =
        std::fs::read_to_string("/proc/net/dev").map_err(|e| format!("read /proc/net/dev: {e}"))?;
    let mut names: Vec<String> = table
        .lines()
        .skip(2)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Runs `ipcmk ARGS` and returns the id it printed ("Shared memory id: 3").
fn ipcmk(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ipcmk")
        .args(args)
        .output()
        .map_err(|e| format!("run ipcmk (util-linux): {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.split_whitespace().last() {
        Some(id) if output.status.success() && id.parse::<u32>().is_ok() => Ok(id.to_owned()),
        _ => Err(format!(
            "ipcmk {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

fn ipcrm(kind: &str, id: &str) {
    let _ = Command::new("ipcrm").args([kind, id]).status();
}

/// Every SysV IPC object on the host, as "shm 3", "msg 0", "sem 1".
fn sysv_objects() -> BTreeSet<String> {
    let mut objects = BTreeSet::new();
    for kind in ["shm", "msg", "sem"] {
        let table = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).unwrap_or_default();
        for line in table.lines().skip(1) {
            if let Some(id) = line.split_whitespace().nth(1) {
                objects.insert(format!("{kind} {id}"));
            }
        }
    }
    objects
}

/// How many more processes than before the host may have after a run.
const PROCESS_COUNT_SLACK: usize = 10;

fn check_process_count(before: &BTreeMap<u32, String>, problems: &mut Vec<String>) {
    let started = Instant::now();
    let mut after = host_processes();
    while after.len() > before.len() + PROCESS_COUNT_SLACK
        && started.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(100));
        after = host_processes();
    }
    if after.len() > before.len() + PROCESS_COUNT_SLACK {
        let mut new: BTreeMap<&str, usize> = BTreeMap::new();
        for (pid, comm) in &after {
            if !before.contains_key(pid) {
                *new.entry(comm.as_str()).or_default() += 1;
            }
        }
        problems.push(format!(
            "the host had {} processes before the run and {} five seconds after it \
             (new, by name: {new:?})",
            before.len(),
            after.len()
        ));
    }
}

/// The host's live processes (PID to command name), from /proc: not kernel
/// threads, not zombies, and not this harness or its descendants.
fn host_processes() -> BTreeMap<u32, String> {
    const PF_KTHREAD: u64 = 0x0020_0000;
    struct Stat {
        comm: String,
        parent: u32,
        counted: bool,
    }
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID PGRP SESSION TTY TPGID FLAGS ...`
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (Some(state), Some(parent), Some(flags)) = (
            fields.first(),
            fields.get(1).and_then(|p| p.parse().ok()),
            fields.get(6).and_then(|f| f.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let counted = !matches!(*state, "Z" | "X") && flags & PF_KTHREAD == 0;
        let comm = stat[open + 1..close].to_owned();
        all.insert(
            pid,
            Stat {
                comm,
                parent,
                counted,
            },
        );
    }
    let own = std::process::id();
    let in_harness = |mut pid: u32| {
        for _ in 0..all.len() {
            if pid == own {
                return true;
            }
            match all.get(&pid) {
                Some(stat) if stat.parent != 0 => pid = stat.parent,
                _ => return false,
            }
        }
        false
    };
    all.iter()
        .filter(|(pid, stat)| stat.counted && !in_harness(**pid))
        .map(|(pid, stat)| (*pid, stat.comm.clone()))
        .collect()
}

/// Fails, naming them, when host processes (other than this one) have
/// `marker` in their command line; kills them by PID so that they do not
/// outlive the harness.
pub fn kill_leftovers(marker: &str) -> Result<(), String> {
    let survivors = processes_with(marker);
    if survivors.is_empty() {
        return Ok(());
    }
    for (pid, _) in &survivors {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    Err(format!(
        "host processes with {marker:?} in their command line survived the run (killed them): {survivors:?}"
    ))
}

/// Host processes (other than this one) whose command line contains
/// `marker`, as (pid, command line).
pub fn processes_with(marker: &str) -> Vec<(String, String)> {
    let own = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == own {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push((pid, cmdline.trim_end().to_owned()));
        }
    }
    found
}
