//! `[[service]]` tables: a program a test runs beside it (a database, a
//! cache), in a container of its own on the test's network.
//!
//! ```toml
//! [[service]]
//! name = "db"                      # also its hostname on the network
//! command = ["postgres", "-D", "/tmp/pg", "-k", "/tmp"]
//! user = "postgres"
//! setup = "initdb -D /tmp/pg"      # before `command`, in its container
//! ready = { tcp = 5432 }           # or { command = [...] } or { log = "..." }
//! ready_timeout = "30s"
//! depends_on = ["cache"]
//! scope = "test"                   # or "run": one shared by the subtree
//! ```
//!
//! Besides its own keys a service takes the container keys a test does
//! (`rootfs`, `user`, `env`, `memory`, `grace`, `network`...), read by the
//! same code into a settings layer of its own.

use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeValue;

use crate::config::keys::setting_names;
use crate::config::reader::{Reader, Value};
use crate::config::settings::Settings;
use crate::config::source::{ConfigError, Source};

/// How isotest knows a service is ready for the test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Something listens on this TCP port in the service's namespace.
    Tcp(u16),
    /// This command, run in the service's network namespace with its root
    /// and user, exits 0.
    Command(Vec<String>),
    /// The service printed this text (stdout or stderr).
    Log(String),
}

/// Whose a service is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceScope {
    /// One per test that uses it, on the test's own network.
    Test,
    /// One for the whole run, shared by the tests of the subtree that use
    /// it, started at first use.
    Run,
}

/// One `[[service]]` table.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub name: String,
    pub argv: Vec<String>,
    /// A shell command run before `argv`, in the same container and as the
    /// same user.
    pub setup: Option<String>,
    pub ready: Option<Readiness>,
    pub ready_timeout: Duration,
    pub depends_on: Vec<String>,
    pub scope: ServiceScope,
    /// Container keys (`rootfs`, `user`, `env`, limits, `grace`...).
    pub settings: Settings,
    /// Where the table is, for messages.
    pub source: Source,
    /// The directory of its isotest.toml: where it starts, and what
    /// relative paths in it are relative to.
    pub dir: PathBuf,
}

impl ServiceConfig {
    /// The command, after `setup` when there is one: both in one shell, so
    /// that the command replaces it (`exec`) and gets its signals.
    pub fn argv_with_setup(&self) -> Vec<String> {
        match &self.setup {
            None => self.argv.clone(),
            Some(setup) => {
                let script = format!("{setup}\nexec \"$@\"");
                let mut argv = vec!["/bin/sh".into(), "-c".into(), script, "sh".into()];
                argv.extend(self.argv.iter().cloned());
                argv
            }
        }
    }
}

/// Keys of a test's that make no sense for a service.
const NOT_FOR_SERVICES: &[&str] = &[
    "timeout",
    "retries",
    "expect",
    "expect_exit",
    "expect_signal",
    "max_memory",
    "max_cpu_time",
    "max_wall_time",
    "max_pids",
    "ignore",
    "ignore_reason",
    "tags",
    "hostname",
    "services",
];
const SERVICE_KEYS: &[&str] = &[
    "name",
    "command",
    "setup",
    "ready",
    "ready_timeout",
    "depends_on",
    "scope",
];
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

impl Reader<'_> {
    pub(super) fn service(&self, item: &Value) -> Result<ServiceConfig, ConfigError> {
        let table = self.table(item, "service")?;
        let name = match table.get("name") {
            Some(value) => self.service_name(value)?,
            None => {
                return Err(self.error(
                    &item.span(),
                    "name",
                    "missing: every [[service]] needs `name` and `command`",
                ))
            }
        };
        let label = format!("[[service]] {name}");
        let mut service = ServiceConfig {
            name: name.clone(),
            argv: Vec::new(),
            setup: None,
            ready: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            depends_on: Vec::new(),
            scope: ServiceScope::Test,
            settings: Settings::default(),
            source: self.positions.source(&item.span(), Some(&label)),
            dir: self.dir.to_path_buf(),
        };
        for (key, value) in table.iter() {
            let key_name = key.get_ref().as_ref();
            match key_name {
                "name" => {}
                "command" => service.argv = self.command(value)?,
                "setup" => service.setup = Some(self.string(value, key_name)?),
                "ready" => service.ready = Some(self.readiness(value)?),
                "ready_timeout" => service.ready_timeout = self.duration(value, key_name)?,
                "depends_on" => service.depends_on = self.strings(value, key_name)?,
                "scope" => service.scope = self.scope(value)?,
                other if NOT_FOR_SERVICES.contains(&other) => {
                    return Err(self.error(
                        &key.span(),
                        other,
                        "not a service key: it is about tests (a service lives as long as \
                         the test, or the run, that uses it)",
                    ))
                }
                other => {
                    if !self.setting(other, value, &mut service.settings, Some(&label))? {
                        let container_keys =
                            setting_names().filter(|k| !NOT_FOR_SERVICES.contains(k));
                        return Err(
                            self.unknown(key, SERVICE_KEYS.iter().copied().chain(container_keys))
                        );
                    }
                }
            }
        }
        if service.argv.is_empty() {
            return Err(self.error(
                &item.span(),
                "command",
                format!("missing: [[service]] `{name}` needs a `command`"),
            ));
        }
        Ok(service)
    }

    /// A name that is also a hostname on the network.
    fn service_name(&self, value: &Value) -> Result<String, ConfigError> {
        let name = self.string(value, "name")?;
        let valid = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(self.error(
                &value.span(),
                "name",
                "expected a hostname: 1 to 63 letters, digits, `-` or `_`",
            ));
        }
        if matches!(name.as_str(), "test" | "localhost" | "host") {
            return Err(self.error(
                &value.span(),
                "name",
                format!("`{name}` is taken on the test's network (it names the test, loopback or the host)"),
            ));
        }
        Ok(name)
    }

    fn readiness(&self, value: &Value) -> Result<Readiness, ConfigError> {
        let expected = "expected one of { tcp = PORT }, { command = [...] } or { log = \"text\" }";
        let table = self.table(value, "ready")?;
        let mut entries = table.iter();
        let (Some((kind, inner)), None) = (entries.next(), entries.next()) else {
            return Err(self.error(&value.span(), "ready", expected));
        };
        match kind.get_ref().as_ref() {
            "tcp" => Ok(Readiness::Tcp(
                self.integer(inner, "ready.tcp", 1, 65535)? as u16
            )),
            "command" => Ok(Readiness::Command(self.command(inner)?)),
            "log" => match inner.get_ref() {
                DeValue::String(text) if !text.is_empty() => Ok(Readiness::Log(text.to_string())),
                _ => Err(self.error(&inner.span(), "ready.log", "expected non-empty text")),
            },
            _ => Err(self.error(&kind.span(), "ready", expected)),
        }
    }

    fn scope(&self, value: &Value) -> Result<ServiceScope, ConfigError> {
        match self.string(value, "scope")?.as_str() {
            "test" => Ok(ServiceScope::Test),
            "run" => Ok(ServiceScope::Run),
            other => Err(self.error(
                &value.span(),
                "scope",
                format!("`{other}` is not a scope (expected \"test\": one per test, or \"run\": one shared by the run)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;
    use std::path::Path;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(Path::new("isotest.toml"), Path::new("/suite"), text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn services_parse_with_their_container_keys() {
        let file = parse(
            r#"
[[service]]
name = "db"
command = ["postgres", "-D", "/tmp/pg"]
user = "postgres"
setup = "initdb -D /tmp/pg"
ready = { tcp = 5432 }
ready_timeout = "5s"
memory = "512M"
depends_on = ["cache"]

[[service]]
name = "cache"
command = "redis-server"
ready = { log = "Ready to accept" }
scope = "run"
"#,
        )
        .unwrap();
        let db = &file.services[0];
        assert_eq!(db.argv, ["postgres", "-D", "/tmp/pg"]);
        assert_eq!(db.ready, Some(Readiness::Tcp(5432)));
        assert_eq!(db.ready_timeout, Duration::from_secs(5));
        assert_eq!(db.settings.user.as_ref().unwrap().value, "postgres");
        assert_eq!(db.settings.memory.as_ref().unwrap().value, Some(512 << 20));
        assert_eq!(db.depends_on, ["cache"]);
        assert_eq!(db.scope, ServiceScope::Test);
        let wrapped = db.argv_with_setup();
        assert_eq!(wrapped[..2], ["/bin/sh", "-c"]);
        assert_eq!(wrapped[2], "initdb -D /tmp/pg\nexec \"$@\"");
        assert_eq!(wrapped[3..], ["sh", "postgres", "-D", "/tmp/pg"]);
        let cache = &file.services[1];
        assert_eq!(cache.argv, ["/bin/sh", "-c", "redis-server"]);
        assert_eq!(cache.ready, Some(Readiness::Log("Ready to accept".into())));
        assert_eq!(cache.scope, ServiceScope::Run);
    }

    #[test]
    fn bad_services_are_refused_with_the_key() {
        let cases = [
            ("[[service]]\ncommand = \"x\"", "`name` and `command`"),
            ("[[service]]\nname = \"db\"", "needs a `command`"),
            ("[[service]]\nname = \"a b\"\ncommand = \"x\"", "hostname"),
            ("[[service]]\nname = \"test\"\ncommand = \"x\"", "is taken"),
            (
                "[[service]]\nname = \"db\"\ncommand = \"x\"\nready = { tcp = 0 }",
                "ready.tcp",
            ),
            (
                "[[service]]\nname = \"db\"\ncommand = \"x\"\nready = { http = 80 }",
                "expected one of",
            ),
            (
                "[[service]]\nname = \"db\"\ncommand = \"x\"\ntimeout = \"1s\"",
                "not a service key",
            ),
            (
                "[[service]]\nname = \"db\"\ncommand = \"x\"\nscope = \"suite\"",
                "not a scope",
            ),
            (
                "[[service]]\nname = \"db\"\ncommand = \"x\"\n[[service]]\nname = \"db\"\ncommand = \"y\"",
                "a second [[service]]",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
