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
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::keys::setting_names;
use super::reader::{Reader, Value};
use super::settings::Settings;
use super::source::{ConfigError, Positions, Sourced};
use crate::select::expression::Expression;

mod service;
pub use service::{Readiness, ServiceConfig, ServiceScope};

/// The file name isotest looks for.
pub const FILE_NAME: &str = "isotest.toml";

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
    /// `[[service]]` tables, for the tests of this subtree.
    pub services: Vec<ServiceConfig>,
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

impl Reader<'_> {
    fn file(&self, table: &DeTable) -> Result<ConfigFile, ConfigError> {
        let mut file = ConfigFile {
            path: self.positions.path.to_path_buf(),
            dir: self.dir.to_path_buf(),
            defaults: Settings::default(),
            run: RunSettings::default(),
            tests: Vec::new(),
            overrides: Vec::new(),
            profiles: BTreeMap::new(),
            services: Vec::new(),
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
                "service" => {
                    for item in self.array_of_tables(value, "service")? {
                        let service = self.service(item)?;
                        if file.services.iter().any(|s| s.name == service.name) {
                            return Err(self.error(
                                &item.span(),
                                "name",
                                format!("a second [[service]] named `{}`", service.name),
                            ));
                        }
                        file.services.push(service);
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
                                return Err(self
                                    .unknown(k, setting_names().chain(RUN_KEYS.iter().copied())));
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
                            setting_names()
                                .chain(RUN_KEYS.iter().copied())
                                .chain(["test", "override", "profile", "service"]),
                        ));
                    }
                }
            }
        }
        Ok(file)
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
                        return Err(self.unknown(
                            key,
                            ["name", "command", "cwd"]
                                .into_iter()
                                .chain(setting_names()),
                        ));
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
                return Err(self.unknown(key, std::iter::once("filter").chain(setting_names())));
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
}
