//! Per-test settings as layers: built-in defaults, then each isotest.toml
//! from the root down (its profile section, its matching overrides, its
//! `[[test]]` table), then command-line flags. A later layer's value
//! replaces an earlier one; `env` merges by name, `pass_env` and `tags`
//! add up. Every value remembers where it came from.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::source::{Source, Sourced};

/// RLIMIT_NOFILE unless `nofile` says otherwise.
pub const DEFAULT_NOFILE: u64 = 1024;

/// How the root filesystem is made writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RootMode {
    /// A copy-on-write overlay over the root, writable everywhere.
    Overlay,
    /// The root bound read-only; `writable` paths are fresh directories.
    Bind,
}

pub use crate::protocol::Protocol;
use crate::protocol::DEFAULT_SKIP_EXIT;

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
    /// A private network (as with services) with a NAT'd route to the
    /// host's networks.
    Outbound,
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
    /// Names of the `[[service]]`s the test runs beside it; a later layer's
    /// list replaces an earlier one.
    pub services: Option<Sourced<Vec<String>>>,
    /// How the test's output becomes results (exit code, TAP).
    pub protocol: Option<Sourced<Protocol>>,
    /// The exit code that means the test skipped itself.
    pub skip_exit: Option<Sourced<i32>>,
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
            nofile: d(DEFAULT_NOFILE),
            rootfs: d(Rootfs::Host),
            rootfs_mode: d(RootMode::Overlay),
            disk: d(None),
            protocol: d(Protocol::ExitCode),
            skip_exit: d(DEFAULT_SKIP_EXIT),
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
        over(&mut self.services, &upper.services);
        over(&mut self.protocol, &upper.protocol);
        over(&mut self.skip_exit, &upper.skip_exit);
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
    pub fn services(&self) -> &[String] {
        self.services.as_ref().map_or(&[], |s| s.value.as_slice())
    }
    pub fn protocol(&self) -> Protocol {
        self.protocol
            .as_ref()
            .map_or(Protocol::ExitCode, |s| s.value)
    }
    pub fn skip_exit(&self) -> i32 {
        self.skip_exit
            .as_ref()
            .map_or(DEFAULT_SKIP_EXIT, |s| s.value)
    }
    pub fn privileged(&self) -> bool {
        self.privileged.as_ref().is_some_and(|s| s.value)
    }

    pub fn seccomp(&self) -> bool {
        self.seccomp.as_ref().is_none_or(|s| s.value)
    }
    pub fn nofile(&self) -> u64 {
        self.nofile.as_ref().map_or(DEFAULT_NOFILE, |s| s.value)
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
        let mut rows = Rows(Vec::new());
        let secs = |d: &Duration| json!(d.as_secs_f64());
        rows.one("timeout_secs", &self.timeout, |t| {
            t.as_ref().map_or(Value::Null, secs)
        });
        rows.one("grace_secs", &self.grace, secs);
        rows.one("memory_bytes", &self.memory, |v| json!(v));
        rows.one("cpus", &self.cpus, |v| json!(v));
        rows.one("cpu_weight", &self.cpu_weight, |v| json!(v));
        rows.one("pids", &self.pids, |v| json!(v));
        rows.one("network", &self.network, |n| match n {
            Network::None => json!("none"),
            Network::Host => json!("host"),
            Network::Outbound => json!("outbound"),
        });
        rows.one("services", &self.services, |v| json!(v));
        rows.one("hostname", &self.hostname, |v| json!(v));
        rows.one("user", &self.user, |v| json!(v));
        rows.one("group", &self.group, |v| json!(v));
        rows.one("retries", &self.retries, |v| json!(v));
        rows.one("threads", &self.threads, |v| json!(v));
        rows.one("expect", &self.expect, |e| json!(expect_text(*e)));
        rows.one("max_memory_bytes", &self.max_memory, |v| json!(v));
        rows.one("max_cpu_time_secs", &self.max_cpu_time, secs);
        rows.one("max_wall_time_secs", &self.max_wall_time, secs);
        rows.one("max_pids", &self.max_pids, |v| json!(v));
        rows.one("ignore", &self.ignore, |v| json!(v));
        rows.one("ignore_reason", &self.ignore_reason, |v| json!(v));
        for (name, value) in &self.env {
            rows.push(&format!("env.{name}"), json!(value.value), &value.source);
        }
        rows.each("pass_env", &self.pass_env, |v| json!(v));
        rows.each("tags", &self.tags, |v| json!(v));
        rows.one("privileged", &self.privileged, |v| json!(v));
        rows.one("seccomp", &self.seccomp, |v| json!(v));
        rows.one("nofile", &self.nofile, |v| json!(v));
        rows.each("cap_add", &self.cap_add, |v| json!(v));
        rows.each("cap_drop", &self.cap_drop, |v| json!(v));
        rows.one("rootfs", &self.rootfs, |r| match r {
            Rootfs::Host => json!("host"),
            Rootfs::Path { value, .. } => json!(value),
            Rootfs::Tools(tools) => json!({ "tools": tools }),
        });
        rows.one("rootfs_mode", &self.rootfs_mode, |m| match m {
            RootMode::Overlay => json!("overlay"),
            RootMode::Bind => json!("bind"),
        });
        rows.each(
            "binds",
            &self.binds,
            |b| json!({ "source": b.source, "target": b.target, "readonly": b.readonly }),
        );
        rows.each("tmpfs", &self.tmpfs, |v| json!(v));
        rows.each("writable", &self.writable, |v| json!(v));
        rows.one("disk_bytes", &self.disk, |v| json!(v));
        rows.one("protocol", &self.protocol, |p| json!(p.name()));
        rows.one("skip_exit", &self.skip_exit, |v| json!(v));
        rows.0
    }
}

/// `exit 0`, `signal SIGKILL`, `oom`, `timeout`.
fn expect_text(expect: Expect) -> String {
    match expect {
        Expect::Exit(code) => format!("exit {code}"),
        Expect::Signal(signal) => format!("signal {}", crate::run::signal_name(signal)),
        Expect::Oom => "oom".to_string(),
        Expect::Timeout => "timeout".to_string(),
    }
}

/// The rows of `describe`, as they are added.
struct Rows(Vec<Described>);

impl Rows {
    fn push(&mut self, key: &str, value: Value, source: &Source) {
        self.0.push(Described {
            key: key.to_string(),
            value,
            source: source.clone(),
        });
    }

    /// A single-valued key, when set.
    fn one<T>(&mut self, key: &str, setting: &Option<Sourced<T>>, show: impl Fn(&T) -> Value) {
        if let Some(s) = setting {
            self.push(key, show(&s.value), &s.source);
        }
    }

    /// A list key: a row per entry.
    fn each<T>(&mut self, key: &str, list: &[Sourced<T>], show: impl Fn(&T) -> Value) {
        for entry in list {
            self.push(key, show(&entry.value), &entry.source);
        }
    }
}
