//! The per-test keys of isotest.toml as one table: each key's name and the
//! parser that reads its value into a settings layer. The list of accepted
//! keys in error messages comes from this table, so adding a key is one
//! row here (and its field in `Settings`).

use std::path::{Path, PathBuf};

use toml::de::DeValue;

use super::reader::{Reader, Value};
use super::settings::{Bind, Expect, Network, Protocol, RootMode, Rootfs, Settings, CPU_WEIGHTS};
use super::source::{ConfigError, Source, Sourced};

/// One key's value as given in a table, and where.
pub(super) struct Input<'v, 'i> {
    pub key: &'static str,
    pub value: &'v Value<'i>,
    pub source: Source,
}

impl Input<'_, '_> {
    /// `value`, remembering this key's source.
    fn at<T>(&self, value: T) -> Option<Sourced<T>> {
        Some(Sourced::new(value, self.source.clone()))
    }

    fn error(&self, reader: &Reader, message: impl Into<String>) -> ConfigError {
        reader.error(&self.value.span(), self.key, message)
    }
}

/// Sets a single-valued key.
fn put<T>(slot: &mut Option<Sourced<T>>, i: &Input, value: T) -> Result<(), ConfigError> {
    *slot = i.at(value);
    Ok(())
}

/// Reads one key's value into a layer.
type Parse = fn(&Reader, &Input, &mut Settings) -> Result<(), ConfigError>;

/// A per-test key: its name in isotest.toml and its parser.
pub(super) struct Key {
    pub name: &'static str,
    parse: Parse,
}

const fn key(name: &'static str, parse: Parse) -> Key {
    Key { name, parse }
}

/// Every per-test key, accepted in every table, in the order error
/// messages list them.
#[rustfmt::skip]
pub(super) const SETTINGS: &[Key] = &[
    key("timeout", |r, i, s| put(&mut s.timeout, i, r.optional_duration(i.value, i.key)?)),
    key("grace", |r, i, s| put(&mut s.grace, i, r.duration(i.value, i.key)?)),
    key("memory", |r, i, s| put(&mut s.memory, i, r.optional_size(i.value, i.key)?)),
    key("cpus", cpus),
    key("pids", pids),
    key("env", env),
    key("pass_env", |r, i, s| push_strings(r, i, &mut s.pass_env)),
    key("network", network),
    key("hostname", hostname),
    key("user", |r, i, s| put(&mut s.user, i, r.string(i.value, i.key)?)),
    key("group", |r, i, s| put(&mut s.group, i, r.string(i.value, i.key)?)),
    key("retries", |r, i, s| put(&mut s.retries, i, r.integer(i.value, i.key, 0, 100)? as u32)),
    key("expect", |r, i, s| set_expect(r, i, s, expect_word(r, i)?)),
    key("expect_exit", |r, i, s| set_expect(r, i, s, Expect::Exit(r.integer(i.value, i.key, 0, 255)? as i32))),
    key("expect_signal", |r, i, s| set_expect(r, i, s, Expect::Signal(r.signal(i.value, i.key)?))),
    key("max_memory", |r, i, s| put(&mut s.max_memory, i, r.size(i.value, i.key)?)),
    key("max_cpu_time", |r, i, s| put(&mut s.max_cpu_time, i, r.duration(i.value, i.key)?)),
    key("max_wall_time", |r, i, s| put(&mut s.max_wall_time, i, r.duration(i.value, i.key)?)),
    key("max_pids", |r, i, s| put(&mut s.max_pids, i, r.integer(i.value, i.key, 1, i64::MAX)? as u64)),
    key("ignore", |r, i, s| put(&mut s.ignore, i, r.boolean(i.value, i.key)?)),
    key("ignore_reason", |r, i, s| put(&mut s.ignore_reason, i, r.string(i.value, i.key)?)),
    key("tags", |r, i, s| push_strings(r, i, &mut s.tags)),
    key("privileged", |r, i, s| put(&mut s.privileged, i, r.boolean(i.value, i.key)?)),
    key("seccomp", |r, i, s| put(&mut s.seccomp, i, r.boolean(i.value, i.key)?)),
    key("cap_add", |r, i, s| push_capabilities(r, i, &mut s.cap_add)),
    key("cap_drop", |r, i, s| push_capabilities(r, i, &mut s.cap_drop)),
    key("nofile", |r, i, s| put(&mut s.nofile, i, r.integer(i.value, i.key, 16, 1 << 20)? as u64)),
    key("rootfs", |r, i, s| set_rootfs(r, i, s, rootfs_path(r, i)?)),
    key("tools", |r, i, s| set_rootfs(r, i, s, Rootfs::Tools(tools(r, i)?))),
    key("rootfs_mode", rootfs_mode),
    key("binds", binds),
    key("tmpfs", |r, i, s| push_container_paths(r, i, &mut s.tmpfs)),
    key("writable", |r, i, s| push_container_paths(r, i, &mut s.writable)),
    key("disk", |r, i, s| put(&mut s.disk, i, r.optional_size(i.value, i.key)?)),
    key("protocol", protocol),
    key("skip_exit", |r, i, s| put(&mut s.skip_exit, i, r.integer(i.value, i.key, 1, 255)? as i32)),
    key("threads", |r, i, s| put(&mut s.threads, i, r.integer(i.value, i.key, 1, 4096)? as usize)),
    key("cpu_weight", cpu_weight),
    key("services", |r, i, s| put(&mut s.services, i, r.strings(i.value, i.key)?)),
];

/// The names of every per-test key, for "accepted here" lists.
pub(super) fn setting_names() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|key| key.name)
}

impl Reader<'_> {
    /// Reads one per-test key into `settings`; false if `key` is not one.
    /// `table` labels the table it is in, for the value's source.
    pub fn setting(
        &self,
        key: &str,
        value: &Value,
        settings: &mut Settings,
        table: Option<&str>,
    ) -> Result<bool, ConfigError> {
        let Some(entry) = SETTINGS.iter().find(|k| k.name == key) else {
            return Ok(false);
        };
        let input = Input {
            key: entry.name,
            value,
            source: self.positions.source(&value.span(), table),
        };
        (entry.parse)(self, &input, settings)?;
        Ok(true)
    }
}

fn cpus(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    let cpus = r.number(i.value, i.key)?;
    if !(0.01..=4096.0).contains(&cpus) {
        return Err(i.error(
            r,
            "expected a CPU count between 0.01 and 4096, like 0.5 or 2",
        ));
    }
    s.cpus = i.at(Some(cpus));
    Ok(())
}

/// A relative CPU share, in cgroup v2's `cpu.weight` range.
fn cpu_weight(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    let weight = r.integer(i.value, i.key, *CPU_WEIGHTS.start(), *CPU_WEIGHTS.end())?;
    s.cpu_weight = i.at(Some(weight as u64));
    Ok(())
}

/// A process limit; 0, "none" or "max" lift it.
fn pids(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    let pids = match i.value.get_ref() {
        DeValue::String(text) if text == "none" || text == "max" => None,
        _ => Some(r.integer(i.value, i.key, 0, i64::MAX)? as u64).filter(|p| *p > 0),
    };
    s.pids = i.at(pids);
    Ok(())
}

fn env(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    for (name, value) in r.table(i.value, i.key)?.iter() {
        let text = r.string(value, &format!("env.{}", name.get_ref()))?;
        s.env.push((
            name.get_ref().to_string(),
            Sourced::new(text, i.source.clone()),
        ));
    }
    Ok(())
}

fn push_strings(r: &Reader, i: &Input, list: &mut Vec<Sourced<String>>) -> Result<(), ConfigError> {
    for text in r.strings(i.value, i.key)? {
        list.push(Sourced::new(text, i.source.clone()));
    }
    Ok(())
}

fn network(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    let network = match r.string(i.value, i.key)?.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        "outbound" => Network::Outbound,
        other => {
            return Err(i.error(
                r,
                format!(
                    "`{other}` is not a network (expected \"none\": loopback only, \
                     \"outbound\": a private network with NAT to the host's, or \"host\")"
                ),
            ))
        }
    };
    s.network = i.at(network);
    Ok(())
}

fn hostname(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    let name = r.string(i.value, i.key)?;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(i.error(r, "expected 1 to 64 letters, digits, `-` or `.`"));
    }
    s.hostname = i.at(name);
    Ok(())
}

/// `expect = "oom" | "timeout" | "pass"`.
fn expect_word(r: &Reader, i: &Input) -> Result<Expect, ConfigError> {
    match r.string(i.value, i.key)?.as_str() {
        "oom" => Ok(Expect::Oom),
        "timeout" => Ok(Expect::Timeout),
        "pass" => Ok(Expect::Exit(0)),
        other => Err(i.error(
            r,
            format!("`{other}` is not an expectation (expected \"oom\", \"timeout\" or \"pass\"; or use expect_exit / expect_signal)"),
        )),
    }
}

/// One of `expect`, `expect_exit` and `expect_signal` per table.
fn set_expect(r: &Reader, i: &Input, s: &mut Settings, expect: Expect) -> Result<(), ConfigError> {
    if s.expect.is_some() {
        return Err(i.error(
            r,
            "only one of `expect`, `expect_exit` and `expect_signal` may be given in a table",
        ));
    }
    s.expect = i.at(expect);
    Ok(())
}

fn push_capabilities(
    r: &Reader,
    i: &Input,
    list: &mut Vec<Sourced<String>>,
) -> Result<(), ConfigError> {
    for name in r.strings(i.value, i.key)? {
        let Some(cap) = canonical_capability(&name) else {
            return Err(i.error(
                r,
                format!("`{name}` is not a capability (expected a name like \"NET_ADMIN\" or \"CAP_SYS_PTRACE\", or \"ALL\")"),
            ));
        };
        list.push(Sourced::new(cap, i.source.clone()));
    }
    Ok(())
}

/// `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN` as `CAP_NET_ADMIN`, if the
/// kernel headers know it; `ALL` stays `ALL`.
fn canonical_capability(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Some(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<caps::Capability>().ok().map(|_| full)
}

/// How the test's results are read: `exitcode` or `tap`.
fn protocol(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    let name = r.string(i.value, i.key)?;
    let Some(protocol) = Protocol::from_name(&name) else {
        return Err(i.error(
            r,
            format!(
                "`{name}` is not a protocol (expected {})",
                Protocol::accepted()
            ),
        ));
    };
    put(&mut s.protocol, i, protocol)
}

/// One of `rootfs` and `tools` per table.
fn set_rootfs(r: &Reader, i: &Input, s: &mut Settings, rootfs: Rootfs) -> Result<(), ConfigError> {
    if s.rootfs.is_some() {
        return Err(i.error(
            r,
            "only one of `rootfs` and `tools` may be given in a table",
        ));
    }
    s.rootfs = i.at(rootfs);
    Ok(())
}

/// `rootfs = "host"`, or a directory, tarball or OCI image relative to the
/// file's directory.
fn rootfs_path(r: &Reader, i: &Input) -> Result<Rootfs, ConfigError> {
    match r.string(i.value, i.key)?.as_str() {
        "" => Err(i.error(
            r,
            "expected \"host\", or the path of a directory, tarball or OCI image",
        )),
        "host" => Ok(Rootfs::Host),
        path => Ok(Rootfs::Path {
            value: path.to_string(),
            base: r.dir.to_path_buf(),
        }),
    }
}

/// `tools`: program names (found in the host's PATH) or absolute paths.
fn tools(r: &Reader, i: &Input) -> Result<Vec<String>, ConfigError> {
    let tools = r.strings(i.value, i.key)?;
    if tools.is_empty() {
        return Err(i.error(r, "expected at least one program, like [\"sh\", \"ls\"]"));
    }
    for tool in &tools {
        if tool.is_empty() || (tool.contains('/') && !tool.starts_with('/')) {
            return Err(i.error(
                r,
                format!("`{tool}` is not a program name or absolute path"),
            ));
        }
    }
    Ok(tools)
}

fn rootfs_mode(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    let mode = match r.string(i.value, i.key)?.as_str() {
        "overlay" => RootMode::Overlay,
        "bind" => RootMode::Bind,
        other => {
            return Err(i.error(
                r,
                format!("`{other}` is not a mode (expected \"overlay\" or \"bind\")"),
            ))
        }
    };
    s.rootfs_mode = i.at(mode);
    Ok(())
}

fn binds(r: &Reader, i: &Input, s: &mut Settings) -> Result<(), ConfigError> {
    let DeValue::Array(items) = i.value.get_ref() else {
        return Err(i.error(
            r,
            "expected a list of tables like { source = \"build/\", target = \"/opt/app\" }",
        ));
    };
    for item in items {
        s.binds.push(Sourced::new(bind(r, item)?, i.source.clone()));
    }
    Ok(())
}

/// One `binds` entry: `{ source, target, readonly }`; a relative source is
/// resolved from the file's directory, the target defaults to the source's
/// path, and binds are read-only unless `readonly = false`.
fn bind(r: &Reader, item: &Value) -> Result<Bind, ConfigError> {
    let mut source = None;
    let mut target = None;
    let mut readonly = true;
    for (key, value) in r.table(item, "binds")?.iter() {
        match key.get_ref().as_ref() {
            "source" => {
                let text = r.string(value, "binds.source")?;
                if text.is_empty() {
                    return Err(r.error(&value.span(), "binds.source", "expected a path"));
                }
                source = Some(r.dir.join(text));
            }
            "target" => target = Some(container_path(r, value, "binds.target")?),
            "readonly" => readonly = r.boolean(value, "binds.readonly")?,
            _ => return Err(r.unknown(key, ["source", "target", "readonly"])),
        }
    }
    let Some(source) = source else {
        return Err(r.error(
            &item.span(),
            "binds.source",
            "missing: every bind needs a `source`",
        ));
    };
    let source = normalize(&source);
    let target = target.unwrap_or_else(|| source.to_string_lossy().into_owned());
    Ok(Bind {
        source,
        target,
        readonly,
    })
}

fn push_container_paths(
    r: &Reader,
    i: &Input,
    list: &mut Vec<Sourced<String>>,
) -> Result<(), ConfigError> {
    let DeValue::Array(items) = i.value.get_ref() else {
        return Err(i.error(r, "expected a list of absolute paths"));
    };
    for item in items {
        list.push(Sourced::new(
            container_path(r, item, i.key)?,
            i.source.clone(),
        ));
    }
    Ok(())
}

/// An absolute path inside the container, not `/` itself.
fn container_path(r: &Reader, value: &Value, key: &str) -> Result<String, ConfigError> {
    let path = r.string(value, key)?;
    let valid =
        path.starts_with('/') && path.len() > 1 && !path.split('/').any(|part| part == "..");
    if !valid {
        return Err(r.error(
            &value.span(),
            key,
            format!("`{path}` is not an absolute path below / (like \"/var/cache\")"),
        ));
    }
    Ok(path)
}

/// `path` without `.` parts and with `..` applied to the part before it
/// (lexically, as the user wrote it: `build/../out` is `out`).
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_are_canonical() {
        assert_eq!(
            canonical_capability("net_admin").as_deref(),
            Some("CAP_NET_ADMIN")
        );
        assert_eq!(
            canonical_capability("CAP_SYS_PTRACE").as_deref(),
            Some("CAP_SYS_PTRACE")
        );
        assert_eq!(canonical_capability("all").as_deref(), Some("ALL"));
        assert_eq!(canonical_capability("CAP_FLY"), None);
    }

    #[test]
    fn every_key_is_listed_once() {
        let mut names: Vec<_> = setting_names().collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
