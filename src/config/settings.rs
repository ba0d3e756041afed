//! Per-test settings as layers: built-in defaults, then each isotest.toml
//! from the root down (its profile section, its matching overrides, its
//! `[[test]]` table), then command-line flags. A later layer's value
//! replaces an earlier one; `env` merges by name, `pass_env` and `tags`
//! add up. Every value remembers where it came from.

use std::path::PathBuf;
use std::time::Duration;

use super::source::{Source, Sourced};
pub use crate::sandbox::RootMode;

/// Where a test's root filesystem comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Rootfs {
    /// The host's own `/`.
    Host,
    /// A directory, tarball or OCI image, as written; relative paths are
    /// resolved from `base` (the isotest.toml's directory, or the current
    /// directory for a flag).
    Path { value: String, base: PathBuf },
    /// A minimal root holding only these host programs.
    Tools(Vec<String>),
}

/// A host file or directory shown in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute path in the container.
    pub target: String,
    pub readonly: bool,
}

/// The network a test sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// A fresh network namespace with only `lo`.
    None,
    /// The host's network namespace.
    Host,
}

/// How a test must end to pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Exit(i32),
    Signal(i32),
    Oom,
    Timeout,
}

/// One layer. Unset keys are None (or empty) and leave lower layers alone.
/// Accepted `cpu_weight` values: cgroup v2's `cpu.weight` range (100 is
/// the kernel's default share).
pub const CPU_WEIGHTS: std::ops::RangeInclusive<i64> = 1..=10_000;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// `None` inside means no timeout.
    pub timeout: Option<Sourced<Option<Duration>>>,
    pub grace: Option<Sourced<Duration>>,
    pub memory: Option<Sourced<Option<u64>>>,
    pub cpus: Option<Sourced<Option<f64>>>,
    /// Relative CPU share against concurrent tests (cgroup v2 `cpu.weight`).
    pub cpu_weight: Option<Sourced<Option<u64>>>,
    pub pids: Option<Sourced<Option<u64>>>,
    pub env: Vec<(String, Sourced<String>)>,
    pub pass_env: Vec<Sourced<String>>,
    pub network: Option<Sourced<Network>>,
    pub hostname: Option<Sourced<String>>,
    pub user: Option<Sourced<String>>,
    pub group: Option<Sourced<String>>,
    pub retries: Option<Sourced<u32>>,
    /// Job slots the test takes while it runs (nextest's
    /// `threads-required`).
    pub threads: Option<Sourced<usize>>,
    pub expect: Option<Sourced<Expect>>,
    pub max_memory: Option<Sourced<u64>>,
    pub max_cpu_time: Option<Sourced<Duration>>,
    pub max_wall_time: Option<Sourced<Duration>>,
    pub max_pids: Option<Sourced<u64>>,
    pub ignore: Option<Sourced<bool>>,
    pub ignore_reason: Option<Sourced<String>>,
    pub tags: Vec<Sourced<String>>,
    /// All hardening off: every capability, no seccomp, no masked paths.
    pub privileged: Option<Sourced<bool>>,
    /// The default seccomp filter.
    pub seccomp: Option<Sourced<bool>>,
    /// Capabilities added to / dropped from Docker's default set (`CAP_*`
    /// names, or `ALL`).
    pub cap_add: Vec<Sourced<String>>,
    pub cap_drop: Vec<Sourced<String>>,
    /// RLIMIT_NOFILE.
    pub nofile: Option<Sourced<u64>>,
    pub rootfs: Option<Sourced<Rootfs>>,
    pub rootfs_mode: Option<Sourced<RootMode>>,
    /// Host paths shown in the container; a later layer's bind replaces
    /// one with the same target.
    pub binds: Vec<Sourced<Bind>>,
    /// Fresh empty directories.
    pub tmpfs: Vec<Sourced<String>>,
    /// Paths made writable (fresh directories) when the root is bound
    /// read-only; the overlay root is writable everywhere already.
    pub writable: Vec<Sourced<String>>,
    /// Size of the test's writable space; `None` inside means unlimited.
    pub disk: Option<Sourced<Option<u64>>>,
}

impl Settings {
    /// isotest's defaults, every key set.
    pub fn defaults() -> Settings {
        fn d<T>(value: T) -> Option<Sourced<T>> {
            Some(Sourced::default_value(value))
        }
        Settings {
            timeout: d(Some(Duration::from_secs(300))),
            grace: d(Duration::from_secs(10)),
            memory: d(None),
            cpus: d(None),
            cpu_weight: d(None),
            pids: d(Some(1024)),
            network: d(Network::None),
            hostname: d("isotest".to_string()),
            retries: d(0),
            threads: d(1),
            expect: d(Expect::Exit(0)),
            ignore: d(false),
            privileged: d(false),
            seccomp: d(true),
            nofile: d(crate::sandbox::security::DEFAULT_NOFILE),
            rootfs: d(Rootfs::Host),
            rootfs_mode: d(RootMode::Overlay),
            disk: d(None),
            ..Settings::default()
        }
    }

    /// Puts `upper` on top of this layer.
    pub fn apply(&mut self, upper: &Settings) {
        fn over<T: Clone>(lower: &mut Option<T>, upper: &Option<T>) {
            if upper.is_some() {
                lower.clone_from(upper);
            }
        }
        over(&mut self.timeout, &upper.timeout);
        over(&mut self.grace, &upper.grace);
        over(&mut self.memory, &upper.memory);
        over(&mut self.cpus, &upper.cpus);
        over(&mut self.cpu_weight, &upper.cpu_weight);
        over(&mut self.pids, &upper.pids);
        over(&mut self.network, &upper.network);
        over(&mut self.hostname, &upper.hostname);
        over(&mut self.user, &upper.user);
        over(&mut self.group, &upper.group);
        over(&mut self.retries, &upper.retries);
        over(&mut self.threads, &upper.threads);
        over(&mut self.expect, &upper.expect);
        over(&mut self.max_memory, &upper.max_memory);
        over(&mut self.max_cpu_time, &upper.max_cpu_time);
        over(&mut self.max_wall_time, &upper.max_wall_time);
        over(&mut self.max_pids, &upper.max_pids);
        over(&mut self.ignore, &upper.ignore);
        over(&mut self.ignore_reason, &upper.ignore_reason);
        over(&mut self.privileged, &upper.privileged);
        over(&mut self.seccomp, &upper.seccomp);
        over(&mut self.nofile, &upper.nofile);
        over(&mut self.rootfs, &upper.rootfs);
        over(&mut self.rootfs_mode, &upper.rootfs_mode);
        over(&mut self.disk, &upper.disk);
        for bind in &upper.binds {
            self.binds.retain(|b| b.value.target != bind.value.target);
            self.binds.push(bind.clone());
        }
        for (lower, upper) in [
            (&mut self.tmpfs, &upper.tmpfs),
            (&mut self.writable, &upper.writable),
        ] {
            for path in upper {
                if !lower.iter().any(|p| p.value == path.value) {
                    lower.push(path.clone());
                }
            }
        }
        for (lower, upper) in [
            (&mut self.cap_add, &upper.cap_add),
            (&mut self.cap_drop, &upper.cap_drop),
        ] {
            for cap in upper {
                if !lower.iter().any(|c| c.value == cap.value) {
                    lower.push(cap.clone());
                }
            }
        }
        for (name, value) in &upper.env {
            match self.env.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = value.clone(),
                None => self.env.push((name.clone(), value.clone())),
            }
        }
        for name in &upper.pass_env {
            if !self.pass_env.iter().any(|n| n.value == name.value) {
                self.pass_env.push(name.clone());
            }
        }
        for tag in &upper.tags {
            if !self.tags.iter().any(|t| t.value == tag.value) {
                self.tags.push(tag.clone());
            }
        }
    }

    /// The layers in order, applied on top of the defaults.
    pub fn resolve<'a>(layers: impl IntoIterator<Item = &'a Settings>) -> Settings {
        let mut settings = Settings::defaults();
        for layer in layers {
            settings.apply(layer);
        }
        settings
    }

    // Accessors for resolved settings (every key set by `defaults`).

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.as_ref().and_then(|s| s.value)
    }
    pub fn grace(&self) -> Duration {
        self.grace
            .as_ref()
            .map_or(Duration::from_secs(10), |s| s.value)
    }
    pub fn memory(&self) -> Option<u64> {
        self.memory.as_ref().and_then(|s| s.value)
    }
    pub fn cpus(&self) -> Option<f64> {
        self.cpus.as_ref().and_then(|s| s.value)
    }
    pub fn cpu_weight(&self) -> Option<u64> {
        self.cpu_weight.as_ref().and_then(|s| s.value)
    }
    pub fn pids(&self) -> Option<u64> {
        self.pids.as_ref().and_then(|s| s.value)
    }
    pub fn network(&self) -> Network {
        self.network.as_ref().map_or(Network::None, |s| s.value)
    }
    pub fn hostname(&self) -> &str {
        self.hostname
            .as_ref()
            .map_or("isotest", |s| s.value.as_str())
    }
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|s| s.value.as_str())
    }
    pub fn group(&self) -> Option<&str> {
        self.group.as_ref().map(|s| s.value.as_str())
    }
    pub fn retries(&self) -> u32 {
        self.retries.as_ref().map_or(0, |s| s.value)
    }
    pub fn threads(&self) -> usize {
        self.threads.as_ref().map_or(1, |s| s.value)
    }
    pub fn expect(&self) -> Expect {
        self.expect.as_ref().map_or(Expect::Exit(0), |s| s.value)
    }
    pub fn ignored(&self) -> bool {
        self.ignore.as_ref().is_some_and(|s| s.value)
    }
    pub fn tag_names(&self) -> Vec<String> {
        self.tags.iter().map(|t| t.value.clone()).collect()
    }
    pub fn rootfs(&self) -> &Rootfs {
        self.rootfs.as_ref().map_or(&Rootfs::Host, |s| &s.value)
    }
    pub fn rootfs_mode(&self) -> RootMode {
        self.rootfs_mode
            .as_ref()
            .map_or(RootMode::Overlay, |s| s.value)
    }
    pub fn disk(&self) -> Option<u64> {
        self.disk.as_ref().and_then(|s| s.value)
    }
    pub fn privileged(&self) -> bool {
        self.privileged.as_ref().is_some_and(|s| s.value)
    }

    /// The security settings of a resolved layer.
    pub fn security(&self) -> crate::sandbox::security::Security {
        use crate::sandbox::security::{resolve_capabilities, Security, DEFAULT_NOFILE};
        let names =
            |list: &[Sourced<String>]| list.iter().map(|c| c.value.clone()).collect::<Vec<_>>();
        Security {
            privileged: self.privileged(),
            capabilities: resolve_capabilities(&names(&self.cap_add), &names(&self.cap_drop)),
            seccomp: self.seccomp.as_ref().is_none_or(|s| s.value),
            nofile: self.nofile.as_ref().map_or(DEFAULT_NOFILE, |s| s.value),
            nproc: None,
        }
    }
}

/// A setting given on the command line.
pub fn flag<T>(value: T, flag: &'static str) -> Option<Sourced<T>> {
    Some(Sourced::new(value, Source::Flag(flag)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn at(line: usize) -> Source {
        Source::File {
            path: PathBuf::from("isotest.toml"),
            line,
            table: None,
        }
    }

    #[test]
    fn later_layers_win_and_keep_their_source() {
        let root = Settings {
            timeout: Some(Sourced::new(Some(Duration::from_secs(30)), at(1))),
            memory: Some(Sourced::new(Some(64 << 20), at(2))),
            ..Settings::default()
        };
        let deeper = Settings {
            timeout: Some(Sourced::new(Some(Duration::from_secs(5)), at(7))),
            ..Settings::default()
        };
        let cli = Settings {
            memory: flag(Some(1 << 30), "--memory"),
            ..Settings::default()
        };
        let settings = Settings::resolve([&root, &deeper, &cli]);
        assert_eq!(settings.timeout(), Some(Duration::from_secs(5)));
        assert_eq!(settings.timeout.as_ref().unwrap().source, at(7));
        assert_eq!(settings.memory(), Some(1 << 30));
        assert_eq!(
            settings.memory.as_ref().unwrap().source,
            Source::Flag("--memory")
        );
        assert_eq!(settings.grace(), Duration::from_secs(10));
        assert_eq!(settings.grace.as_ref().unwrap().source, Source::Default);
        assert_eq!(settings.pids(), Some(1024));
    }

    #[test]
    fn env_merges_by_name_and_lists_add_up() {
        let env = |pairs: &[(&str, &str)], line| Settings {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Sourced::new(v.to_string(), at(line))))
                .collect(),
            pass_env: vec![Sourced::new("HOME".to_string(), at(line))],
            tags: vec![Sourced::new(format!("t{line}"), at(line))],
            ..Settings::default()
        };
        let settings =
            Settings::resolve([&env(&[("A", "1"), ("B", "1")], 1), &env(&[("B", "2")], 2)]);
        let pairs: Vec<_> = settings
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(pairs, [("A", "1"), ("B", "2")]);
        assert_eq!(settings.pass_env.len(), 1);
        assert_eq!(settings.tag_names(), ["t1", "t2"]);
    }
}

/// One row of `isotest list --verbose`: a setting, its value and where it
/// came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Described {
    pub key: String,
    pub value: serde_json::Value,
    pub source: Source,
}

impl Settings {
    /// Every set key of a resolved layer, for listing.
    pub fn describe(&self) -> Vec<Described> {
        use serde_json::{json, Value};
        let mut rows = Vec::new();
        let mut row = |key: &str, value: Value, source: &Source| {
            rows.push(Described {
                key: key.to_string(),
                value,
                source: source.clone(),
            })
        };
        let secs = |d: Duration| json!(d.as_secs_f64());
        if let Some(s) = &self.timeout {
            row("timeout_secs", s.value.map_or(Value::Null, secs), &s.source);
        }
        if let Some(s) = &self.grace {
            row("grace_secs", secs(s.value), &s.source);
        }
        if let Some(s) = &self.memory {
            row("memory_bytes", json!(s.value), &s.source);
        }
        if let Some(s) = &self.cpus {
            row("cpus", json!(s.value), &s.source);
        }
        if let Some(s) = &self.cpu_weight {
            row("cpu_weight", json!(s.value), &s.source);
        }
        if let Some(s) = &self.pids {
            row("pids", json!(s.value), &s.source);
        }
        if let Some(s) = &self.network {
            let name = match s.value {
                Network::None => "none",
                Network::Host => "host",
            };
            row("network", json!(name), &s.source);
        }
        if let Some(s) = &self.hostname {
            row("hostname", json!(s.value), &s.source);
        }
        if let Some(s) = &self.user {
            row("user", json!(s.value), &s.source);
        }
        if let Some(s) = &self.group {
            row("group", json!(s.value), &s.source);
        }
        if let Some(s) = &self.retries {
            row("retries", json!(s.value), &s.source);
        }
        if let Some(s) = &self.threads {
            row("threads", json!(s.value), &s.source);
        }
        if let Some(s) = &self.expect {
            let text = match s.value {
                Expect::Exit(code) => format!("exit {code}"),
                Expect::Signal(signal) => format!("signal {}", crate::run::signal_name(signal)),
                Expect::Oom => "oom".to_string(),
                Expect::Timeout => "timeout".to_string(),
            };
            row("expect", json!(text), &s.source);
        }
        if let Some(s) = &self.max_memory {
            row("max_memory_bytes", json!(s.value), &s.source);
        }
        if let Some(s) = &self.max_cpu_time {
            row("max_cpu_time_secs", secs(s.value), &s.source);
        }
        if let Some(s) = &self.max_wall_time {
            row("max_wall_time_secs", secs(s.value), &s.source);
        }
        if let Some(s) = &self.max_pids {
            row("max_pids", json!(s.value), &s.source);
        }
        if let Some(s) = &self.ignore {
            row("ignore", json!(s.value), &s.source);
        }
        if let Some(s) = &self.ignore_reason {
            row("ignore_reason", json!(s.value), &s.source);
        }
        for (name, value) in &self.env {
            row(&format!("env.{name}"), json!(value.value), &value.source);
        }
        for name in &self.pass_env {
            row("pass_env", json!(name.value), &name.source);
        }
        for tag in &self.tags {
            row("tags", json!(tag.value), &tag.source);
        }
        if let Some(s) = &self.privileged {
            row("privileged", json!(s.value), &s.source);
        }
        if let Some(s) = &self.seccomp {
            row("seccomp", json!(s.value), &s.source);
        }
        if let Some(s) = &self.nofile {
            row("nofile", json!(s.value), &s.source);
        }
        for cap in &self.cap_add {
            row("cap_add", json!(cap.value), &cap.source);
        }
        for cap in &self.cap_drop {
            row("cap_drop", json!(cap.value), &cap.source);
        }
        if let Some(s) = &self.rootfs {
            let value = match &s.value {
                Rootfs::Host => json!("host"),
                Rootfs::Path { value, .. } => json!(value),
                Rootfs::Tools(tools) => json!({ "tools": tools }),
            };
            row("rootfs", value, &s.source);
        }
        if let Some(s) = &self.rootfs_mode {
            let mode = match s.value {
                RootMode::Overlay => "overlay",
                RootMode::Bind => "bind",
            };
            row("rootfs_mode", json!(mode), &s.source);
        }
        for bind in &self.binds {
            let b = &bind.value;
            let value = json!({ "source": b.source, "target": b.target, "readonly": b.readonly });
            row("binds", value, &bind.source);
        }
        for path in &self.tmpfs {
            row("tmpfs", json!(path.value), &path.source);
        }
        for path in &self.writable {
            row("writable", json!(path.value), &path.source);
        }
        if let Some(s) = &self.disk {
            row("disk_bytes", json!(s.value), &s.source);
        }
        rows
    }
}
