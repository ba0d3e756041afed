//! Hooks: what a fixture case asks the harness to do on the host around its
//! run, declared in the `[hooks]` table of its case.toml. `arm` sets them up
//! before the run and says which `--env` variables to pass; `Armed::check`
//! adds what it finds after the run to the problems; dropping `Armed`
//! cleans up whatever the hooks left on the host.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
}

/// The hooks of one run, set up.
#[derive(Default)]
pub struct Armed {
    /// `--env` variables to pass to isotest.
    pub env: Vec<(String, String)>,
    sleeper: Option<Child>,
    listener: Option<TcpListener>,
    ipc: Option<HostIpc>,
    absent: Vec<PathBuf>,
    intact: Vec<(PathBuf, Vec<u8>)>,
    leftover_marker: Option<String>,
    check_no_cgroups: bool,
    /// Host processes before the run, when their count is checked.
    processes_before: Option<BTreeMap<u32, String>>,
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
        if self.host_interfaces {
            armed
                .env
                .push(("HOST_INTERFACES".into(), host_interfaces()?.join(" ")));
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
