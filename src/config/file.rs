//! One isotest.toml, read strictly: every key is known, every value checked,
//! and an error names the file, line, column, key and what is accepted.
//!
//! ```toml
//! timeout = "30s"               # defaults for this directory's subtree
//! memory = "256M"
//! env = { DB = "sqlite" }
//!
//! [[test]]                      # a test that is a command, not a file
//! name = "migrate"
//! command = ["./migrate.sh", "--check"]   # or a string run by /bin/sh -c
//! tags = ["db"]
//!
//! [[override]]                  # settings for the tests a filter matches
//! filter = "db/** & !tag:quick"
//! timeout = "2m"
//!
//! [profile.ci]                  # selected with --profile ci
//! retries = 2
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::settings::{Bind, Expect, Network, RootMode, Rootfs, Settings, CPU_WEIGHTS};
use super::source::{ConfigError, Positions, Sourced};
use crate::duration::parse_duration;
use crate::select::expression::Expression;
use crate::size::parse_size;

/// The file name isotest looks for.
pub const FILE_NAME: &str = "isotest.toml";

/// Keys that set per-test settings, accepted in every table.
const SETTING_KEYS: &[&str] = &[
    "timeout",
    "grace",
    "memory",
    "cpus",
    "pids",
    "env",
    "pass_env",
    "network",
    "hostname",
    "user",
    "group",
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
    "privileged",
    "seccomp",
    "cap_add",
    "cap_drop",
    "nofile",
    "rootfs",
    "tools",
    "rootfs_mode",
    "binds",
    "tmpfs",
    "writable",
    "disk",
    "threads",
    "cpu_weight",
];
/// Keys about the run or discovery in this subtree: file top level and
/// profiles.
const RUN_KEYS: &[&str] = &["jobs", "include", "exclude"];

/// Run-level keys of a file or profile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSettings {
    pub jobs: Option<Sourced<usize>>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// A `[[test]]` table: a command declared as a test.
#[derive(Clone, Debug)]
pub struct DeclaredTest {
    pub name: String,
    pub argv: Vec<String>,
    /// Absolute working directory.
    pub cwd: PathBuf,
    /// Whether `cwd` was given (else it is the file's directory).
    pub cwd_declared: bool,
    pub settings: Settings,
}

/// An `[[override]]` table.
#[derive(Clone, Debug)]
pub struct Override {
    pub filter: Expression,
    pub settings: Settings,
}

#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub settings: Settings,
    pub run: RunSettings,
}

/// A parsed isotest.toml.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    /// The file, as shown in messages.
    pub path: PathBuf,
    /// The absolute directory it applies to.
    pub dir: PathBuf,
    pub defaults: Settings,
    pub run: RunSettings,
    pub tests: Vec<DeclaredTest>,
    pub overrides: Vec<Override>,
    pub profiles: BTreeMap<String, Profile>,
}

impl ConfigFile {
    /// Parses `text`, the content of `path`, which applies to `dir`.
    pub fn parse(path: &Path, dir: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let positions = Positions { path, text };
        let table = DeTable::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            positions.error(
                &span,
                None,
                format!("not valid TOML: {}", e.message().trim()),
            )
        })?;
        let reader = Reader {
            positions: &positions,
            dir,
        };
        reader.file(table.get_ref())
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

struct Reader<'a> {
    positions: &'a Positions<'a>,
    dir: &'a Path,
}

impl Reader<'_> {
    fn error(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        self.positions.error(span, Some(key), message)
    }

    fn file(&self, table: &DeTable) -> Result<ConfigFile, ConfigError> {
        let mut file = ConfigFile {
            path: self.positions.path.to_path_buf(),
            dir: self.dir.to_path_buf(),
            defaults: Settings::default(),
            run: RunSettings::default(),
            tests: Vec::new(),
            overrides: Vec::new(),
            profiles: BTreeMap::new(),
        };
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            match name {
                "test" => {
                    for item in self.array_of_tables(value, "test")? {
                        file.tests.push(self.declared_test(item)?);
                    }
                }
                "override" => {
                    for item in self.array_of_tables(value, "override")? {
                        file.overrides.push(self.override_table(item)?);
                    }
                }
                "profile" => {
                    for (profile, body) in self.table(value, "profile")?.iter() {
                        let profile_name = profile.get_ref().to_string();
                        let label = format!("[profile.{profile_name}]");
                        let key = format!("profile.{profile_name}");
                        let mut parsed = Profile::default();
                        for (k, v) in self.table(body, &key)?.iter() {
                            let k_name = k.get_ref().as_ref();
                            if !self.run_key(k_name, v, &mut parsed.run)?
                                && !self.setting(k_name, v, &mut parsed.settings, Some(&label))?
                            {
                                return Err(self.unknown(k, &[SETTING_KEYS, RUN_KEYS]));
                            }
                        }
                        file.profiles.insert(profile_name, parsed);
                    }
                }
                _ => {
                    if !self.run_key(name, value, &mut file.run)?
                        && !self.setting(name, value, &mut file.defaults, None)?
                    {
                        return Err(self.unknown(
                            key,
                            &[SETTING_KEYS, RUN_KEYS, &["test", "override", "profile"]],
                        ));
                    }
                }
            }
        }
        Ok(file)
    }

    fn unknown(&self, key: &Spanned<std::borrow::Cow<str>>, accepted: &[&[&str]]) -> ConfigError {
        let accepted: Vec<&str> = accepted.iter().flat_map(|k| k.iter().copied()).collect();
        self.error(
            &key.span(),
            key.get_ref(),
            format!("unknown key (accepted here: {})", accepted.join(", ")),
        )
    }

    fn declared_test(&self, item: &Value) -> Result<DeclaredTest, ConfigError> {
        let table = self.table(item, "test")?;
        let mut name = None;
        let mut argv = None;
        let mut cwd = self.dir.to_path_buf();
        let mut cwd_declared = false;
        let mut settings = Settings::default();
        let label =
            |name: &Option<String>| format!("[[test]] {}", name.as_deref().unwrap_or("(unnamed)"));
        // The name first, so sources can mention it.
        if let Some(value) = table.get("name") {
            let text = self.string(value, "name")?;
            let bad = text.is_empty()
                || text.starts_with('/')
                || text
                    .split('/')
                    .any(|part| part.is_empty() || part == "." || part == "..");
            if bad {
                return Err(self.error(
                    &value.span(),
                    "name",
                    "expected a relative name like `migrate` or `db/migrate` (no empty, `.` or `..` parts)",
                ));
            }
            name = Some(text);
        }
        for (key, value) in table.iter() {
            match key.get_ref().as_ref() {
                "name" => {}
                "command" => argv = Some(self.command(value)?),
                "cwd" => {
                    cwd = self.dir.join(self.string(value, "cwd")?);
                    cwd_declared = true;
                }
                other => {
                    if !self.setting(other, value, &mut settings, Some(&label(&name)))? {
                        return Err(self.unknown(key, &[&["name", "command", "cwd"], SETTING_KEYS]));
                    }
                }
            }
        }
        let missing = |key: &str| {
            self.error(
                &item.span(),
                key,
                "missing: every [[test]] needs `name` and `command`",
            )
        };
        Ok(DeclaredTest {
            name: name.ok_or_else(|| missing("name"))?,
            argv: argv.ok_or_else(|| missing("command"))?,
            cwd,
            cwd_declared,
            settings,
        })
    }

    fn override_table(&self, item: &Value) -> Result<Override, ConfigError> {
        let table = self.table(item, "override")?;
        let Some(filter_value) = table.get("filter") else {
            return Err(self.error(
                &item.span(),
                "filter",
                "missing: every [[override]] needs a `filter`",
            ));
        };
        let filter_text = self.string(filter_value, "filter")?;
        let filter = Expression::parse(&filter_text)
            .map_err(|e| self.error(&filter_value.span(), "filter", e))?;
        let label = format!("[[override]] filter = {filter_text:?}");
        let mut settings = Settings::default();
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            if name != "filter" && !self.setting(name, value, &mut settings, Some(&label))? {
                return Err(self.unknown(key, &[&["filter"], SETTING_KEYS]));
            }
        }
        Ok(Override { filter, settings })
    }

    fn run_key(
        &self,
        key: &str,
        value: &Value,
        run: &mut RunSettings,
    ) -> Result<bool, ConfigError> {
        match key {
            "jobs" => {
                let jobs = self.integer(value, key, 1, 4096)? as usize;
                run.jobs = Some(Sourced::new(
                    jobs,
                    self.positions.source(&value.span(), None),
                ));
            }
            "include" | "exclude" => {
                let globs = self.strings(value, key)?;
                for glob in &globs {
                    globset::GlobBuilder::new(glob)
                        .literal_separator(true)
                        .build()
                        .map_err(|e| {
                            self.error(&value.span(), key, format!("bad glob `{glob}`: {e}"))
                        })?;
                }
                if key == "include" {
                    run.include = globs;
                } else {
                    run.exclude = globs;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Reads one settings key into `settings`; false if `key` is not one.
    fn setting(
        &self,
        key: &str,
        value: &Value,
        settings: &mut Settings,
        table: Option<&str>,
    ) -> Result<bool, ConfigError> {
        let source = self.positions.source(&value.span(), table);
        let sourced = |v| Some(Sourced::new(v, source.clone()));
        match key {
            "timeout" => settings.timeout = sourced(self.optional_duration(value, key)?),
            "grace" => settings.grace = Some(Sourced::new(self.duration(value, key)?, source)),
            "memory" => {
                settings.memory = Some(Sourced::new(self.optional_size(value, key)?, source))
            }
            "cpus" => {
                let cpus = self.number(value, key)?;
                if !(0.01..=4096.0).contains(&cpus) {
                    return Err(self.error(
                        &value.span(),
                        key,
                        "expected a CPU count between 0.01 and 4096, like 0.5 or 2",
                    ));
                }
                settings.cpus = Some(Sourced::new(Some(cpus), source));
            }
            "cpu_weight" => {
                let weight = self.integer(value, key, *CPU_WEIGHTS.start(), *CPU_WEIGHTS.end())?;
                settings.cpu_weight = Some(Sourced::new(Some(weight as u64), source));
            }
            "pids" => {
                let pids = match value.get_ref() {
                    DeValue::String(s) if s == "none" || s == "max" => None,
                    _ => Some(self.integer(value, key, 0, i64::MAX)? as u64).filter(|p| *p > 0),
                };
                settings.pids = Some(Sourced::new(pids, source));
            }
            "env" => {
                for (name, v) in self.table(value, key)?.iter() {
                    let text = self.string(v, &format!("env.{}", name.get_ref()))?;
                    settings.env.push((
                        name.get_ref().to_string(),
                        Sourced::new(text, source.clone()),
                    ));
                }
            }
            "pass_env" => {
                for name in self.strings(value, key)? {
                    settings.pass_env.push(Sourced::new(name, source.clone()));
                }
            }
            "network" => {
                let network = match self.string(value, key)?.as_str() {
                    "none" => Network::None,
                    "host" => Network::Host,
                    other => {
                        return Err(self.error(&value.span(), key, format!("`{other}` is not a network (expected \"none\": loopback only, or \"host\")")))
                    }
                };
                settings.network = Some(Sourced::new(network, source));
            }
            "hostname" => {
                let name = self.string(value, key)?;
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if !valid {
                    return Err(self.error(
                        &value.span(),
                        key,
                        "expected 1 to 64 letters, digits, `-` or `.`",
                    ));
                }
                settings.hostname = Some(Sourced::new(name, source));
            }
            "user" => settings.user = Some(Sourced::new(self.string(value, key)?, source)),
            "group" => settings.group = Some(Sourced::new(self.string(value, key)?, source)),
            "retries" => {
                settings.retries = Some(Sourced::new(
                    self.integer(value, key, 0, 100)? as u32,
                    source,
                ))
            }
            "threads" => {
                settings.threads = Some(Sourced::new(
                    self.integer(value, key, 1, 4096)? as usize,
                    source,
                ))
            }
            "expect" | "expect_exit" | "expect_signal" => {
                if settings.expect.is_some() {
                    return Err(self.error(&value.span(), key, "only one of `expect`, `expect_exit` and `expect_signal` may be given in a table"));
                }
                let expect = match key {
                    "expect_exit" => Expect::Exit(self.integer(value, key, 0, 255)? as i32),
                    "expect_signal" => Expect::Signal(self.signal(value, key)?),
                    _ => match self.string(value, key)?.as_str() {
                        "oom" => Expect::Oom,
                        "timeout" => Expect::Timeout,
                        "pass" => Expect::Exit(0),
                        other => {
                            return Err(self.error(&value.span(), key, format!("`{other}` is not an expectation (expected \"oom\", \"timeout\" or \"pass\"; or use expect_exit / expect_signal)")))
                        }
                    },
                };
                settings.expect = Some(Sourced::new(expect, source));
            }
            "max_memory" => {
                settings.max_memory = Some(Sourced::new(self.size(value, key)?, source))
            }
            "max_cpu_time" => {
                settings.max_cpu_time = Some(Sourced::new(self.duration(value, key)?, source))
            }
            "max_wall_time" => {
                settings.max_wall_time = Some(Sourced::new(self.duration(value, key)?, source))
            }
            "max_pids" => {
                settings.max_pids = Some(Sourced::new(
                    self.integer(value, key, 1, i64::MAX)? as u64,
                    source,
                ))
            }
            "ignore" => settings.ignore = Some(Sourced::new(self.boolean(value, key)?, source)),
            "ignore_reason" => {
                settings.ignore_reason = Some(Sourced::new(self.string(value, key)?, source))
            }
            "tags" => {
                for tag in self.strings(value, key)? {
                    settings.tags.push(Sourced::new(tag, source.clone()));
                }
            }
            "privileged" => {
                settings.privileged = Some(Sourced::new(self.boolean(value, key)?, source))
            }
            "seccomp" => settings.seccomp = Some(Sourced::new(self.boolean(value, key)?, source)),
            "nofile" => {
                settings.nofile = Some(Sourced::new(
                    self.integer(value, key, 16, 1 << 20)? as u64,
                    source,
                ))
            }
            "cap_add" | "cap_drop" => {
                for name in self.strings(value, key)? {
                    let Some(cap) = crate::sandbox::security::canonical_capability(&name) else {
                        return Err(self.error(&value.span(), key, format!("`{name}` is not a capability (expected a name like \"NET_ADMIN\" or \"CAP_SYS_PTRACE\", or \"ALL\")")));
                    };
                    let list = if key == "cap_add" {
                        &mut settings.cap_add
                    } else {
                        &mut settings.cap_drop
                    };
                    list.push(Sourced::new(cap, source.clone()));
                }
            }
            "rootfs" | "tools" => {
                if settings.rootfs.is_some() {
                    return Err(self.error(
                        &value.span(),
                        key,
                        "only one of `rootfs` and `tools` may be given in a table",
                    ));
                }
                let rootfs = if key == "tools" {
                    Rootfs::Tools(self.tools(value)?)
                } else {
                    match self.string(value, key)?.as_str() {
                        "" => return Err(self.error(
                            &value.span(),
                            key,
                            "expected \"host\", or the path of a directory, tarball or OCI image",
                        )),
                        "host" => Rootfs::Host,
                        path => Rootfs::Path {
                            value: path.to_string(),
                            base: self.dir.to_path_buf(),
                        },
                    }
                };
                settings.rootfs = Some(Sourced::new(rootfs, source));
            }
            "rootfs_mode" => {
                let mode = match self.string(value, key)?.as_str() {
                    "overlay" => RootMode::Overlay,
                    "bind" => RootMode::Bind,
                    other => {
                        return Err(self.error(
                            &value.span(),
                            key,
                            format!("`{other}` is not a mode (expected \"overlay\" or \"bind\")"),
                        ))
                    }
                };
                settings.rootfs_mode = Some(Sourced::new(mode, source));
            }
            "binds" => {
                let DeValue::Array(items) = value.get_ref() else {
                    return Err(self.error(&value.span(), key, "expected a list of tables like { source = \"build/\", target = \"/opt/app\" }"));
                };
                for item in items {
                    settings
                        .binds
                        .push(Sourced::new(self.bind(item)?, source.clone()));
                }
            }
            "tmpfs" | "writable" => {
                let DeValue::Array(items) = value.get_ref() else {
                    return Err(self.error(
                        &value.span(),
                        key,
                        "expected a list of absolute paths",
                    ));
                };
                for item in items {
                    let path = self.container_path(item, key)?;
                    let list = if key == "tmpfs" {
                        &mut settings.tmpfs
                    } else {
                        &mut settings.writable
                    };
                    list.push(Sourced::new(path, source.clone()));
                }
            }
            "disk" => settings.disk = Some(Sourced::new(self.optional_size(value, key)?, source)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `tools`: program names (found in the host's PATH) or absolute paths.
    fn tools(&self, value: &Value) -> Result<Vec<String>, ConfigError> {
        let tools = self.strings(value, "tools")?;
        if tools.is_empty() {
            return Err(self.error(
                &value.span(),
                "tools",
                "expected at least one program, like [\"sh\", \"ls\"]",
            ));
        }
        for tool in &tools {
            if tool.is_empty() || (tool.contains('/') && !tool.starts_with('/')) {
                return Err(self.error(
                    &value.span(),
                    "tools",
                    format!("`{tool}` is not a program name or absolute path"),
                ));
            }
        }
        Ok(tools)
    }

    /// One `binds` entry: `{ source, target, readonly }`; a relative source
    /// is resolved from this file's directory, the target defaults to the
    /// source's path, and binds are read-only unless `readonly = false`.
    fn bind(&self, item: &Value) -> Result<Bind, ConfigError> {
        let table = self.table(item, "binds")?;
        let mut source = None;
        let mut target = None;
        let mut readonly = true;
        for (key, value) in table.iter() {
            match key.get_ref().as_ref() {
                "source" => {
                    let text = self.string(value, "binds.source")?;
                    if text.is_empty() {
                        return Err(self.error(&value.span(), "binds.source", "expected a path"));
                    }
                    source = Some(self.dir.join(text));
                }
                "target" => target = Some(self.container_path(value, "binds.target")?),
                "readonly" => readonly = self.boolean(value, "binds.readonly")?,
                _ => return Err(self.unknown(key, &[&["source", "target", "readonly"]])),
            }
        }
        let Some(source) = source else {
            return Err(self.error(
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

    /// An absolute path inside the container, not `/` itself.
    fn container_path(&self, value: &Value, key: &str) -> Result<String, ConfigError> {
        let path = self.string(value, key)?;
        let valid =
            path.starts_with('/') && path.len() > 1 && !path.split('/').any(|part| part == "..");
        if !valid {
            return Err(self.error(
                &value.span(),
                key,
                format!("`{path}` is not an absolute path below / (like \"/var/cache\")"),
            ));
        }
        Ok(path)
    }

    // Typed values. Each error says what the key accepts.

    fn table<'t>(&self, value: &'t Value, key: &str) -> Result<&'t DeTable<'t>, ConfigError> {
        match value.get_ref() {
            DeValue::Table(table) => Ok(table),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected a table, found {}", kind(other)),
            )),
        }
    }

    fn array_of_tables<'t>(
        &self,
        value: &'t Value,
        key: &str,
    ) -> Result<Vec<&'t Value<'t>>, ConfigError> {
        match value.get_ref() {
            DeValue::Array(items) => Ok(items.iter().collect()),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected [[{key}]] tables, found {}", kind(other)),
            )),
        }
    }

    fn string(&self, value: &Value, key: &str) -> Result<String, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected a string, found {}", kind(other)),
            )),
        }
    }

    fn strings(&self, value: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
        match value.get_ref() {
            DeValue::Array(items) => items.iter().map(|item| self.string(item, key)).collect(),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected an array of strings, found {}", kind(other)),
            )),
        }
    }

    /// An argv array, or a string run by `/bin/sh -c`.
    fn command(&self, value: &Value) -> Result<Vec<String>, ConfigError> {
        let argv = match value.get_ref() {
            DeValue::String(script) => vec!["/bin/sh".into(), "-c".into(), script.to_string()],
            DeValue::Array(_) => self.strings(value, "command")?,
            other => {
                return Err(self.error(
                    &value.span(),
                    "command",
                    format!(
                        "expected an array of arguments or a shell command string, found {}",
                        kind(other)
                    ),
                ))
            }
        };
        if argv.first().is_none_or(|program| program.is_empty()) {
            return Err(self.error(&value.span(), "command", "the command is empty"));
        }
        Ok(argv)
    }

    fn boolean(&self, value: &Value, key: &str) -> Result<bool, ConfigError> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected true or false, found {}", kind(other)),
            )),
        }
    }

    fn integer(&self, value: &Value, key: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            other => {
                return Err(self.error(
                    &value.span(),
                    key,
                    format!("expected an integer, found {}", kind(other)),
                ))
            }
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ if max == i64::MAX => Err(self.error(
                &value.span(),
                key,
                format!("expected an integer of at least {min}"),
            )),
            _ => Err(self.error(
                &value.span(),
                key,
                format!("expected an integer from {min} to {max}"),
            )),
        }
    }

    fn number(&self, value: &Value, key: &str) -> Result<f64, ConfigError> {
        match value.get_ref() {
            DeValue::Float(f) => f
                .as_str()
                .replace('_', "")
                .parse()
                .map_err(|_| self.error(&value.span(), key, "expected a number")),
            DeValue::Integer(_) => Ok(self.integer(value, key, i64::MIN, i64::MAX)? as f64),
            other => Err(self.error(
                &value.span(),
                key,
                format!("expected a number, found {}", kind(other)),
            )),
        }
    }

    fn duration(&self, value: &Value, key: &str) -> Result<Duration, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => parse_duration(s).map_err(|e| self.error(&value.span(), key, e)),
            DeValue::Integer(_) => Ok(Duration::from_secs(
                self.integer(value, key, 0, i64::MAX)? as u64
            )),
            other => Err(self.error(
                &value.span(),
                key,
                format!(
                    "expected a duration like \"30s\", \"500ms\" or \"5m\", found {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A duration, where 0 or "none" means no limit.
    fn optional_duration(&self, value: &Value, key: &str) -> Result<Option<Duration>, ConfigError> {
        if matches!(value.get_ref(), DeValue::String(s) if s == "none") {
            return Ok(None);
        }
        Ok(Some(self.duration(value, key)?).filter(|d| !d.is_zero()))
    }

    fn size(&self, value: &Value, key: &str) -> Result<u64, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => parse_size(s).map_err(|e| self.error(&value.span(), key, e)),
            DeValue::Integer(_) => Ok(self.integer(value, key, 1, i64::MAX)? as u64),
            other => Err(self.error(
                &value.span(),
                key,
                format!(
                    "expected a size like \"256M\" or \"1G\", found {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A size, where "none" means no limit.
    fn optional_size(&self, value: &Value, key: &str) -> Result<Option<u64>, ConfigError> {
        if matches!(value.get_ref(), DeValue::String(s) if s == "none") {
            return Ok(None);
        }
        self.size(value, key).map(Some)
    }

    fn signal(&self, value: &Value, key: &str) -> Result<i32, ConfigError> {
        let signal = match value.get_ref() {
            DeValue::Integer(_) => {
                let n = self.integer(value, key, 1, 64)? as i32;
                return Ok(n);
            }
            DeValue::String(s) => {
                let name = s.to_ascii_uppercase();
                let name = if name.starts_with("SIG") {
                    name
                } else {
                    format!("SIG{name}")
                };
                name.parse::<nix::sys::signal::Signal>().ok()
            }
            other => {
                return Err(self.error(
                    &value.span(),
                    key,
                    format!(
                        "expected a signal name like \"SIGKILL\", found {}",
                        kind(other)
                    ),
                ))
            }
        };
        signal.map(|s| s as i32).ok_or_else(|| {
            self.error(
                &value.span(),
                key,
                "unknown signal (expected a name like \"SIGKILL\", \"SIGSEGV\" or \"TERM\")",
            )
        })
    }
}

fn kind(value: &DeValue) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
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
