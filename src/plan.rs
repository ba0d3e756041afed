//! Planning: the tests under the roots (executable files and `[[test]]`
//! commands from isotest.toml files), each with its effective settings
//! (defaults, isotest.toml layers, flags) and tags, after the files'
//! include/exclude globs.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Configs, ServiceConfig, Settings};
use crate::discover::{self, display_name, relative_name, DiscoverError, Program, TestCase};
use crate::select::expression::Subject;
use crate::select::Filter;

/// One test of the plan, with its settings resolved.
#[derive(Clone, Debug)]
pub struct PlannedTest {
    pub case: TestCase,
    pub settings: Settings,
    /// The `[[service]]`s it runs beside it, in starting order.
    pub services: Vec<Arc<ServiceConfig>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error("{0}")]
    Glob(String),
    #[error("two tests are named `{0}` (a file and a [[test]] table, or two tables); rename one")]
    Duplicate(String),
    #[error("{place}: key `services` of test `{test}`: {message}")]
    Services {
        test: String,
        /// Where the test's `services` was set.
        place: String,
        message: String,
    },
}

/// Builds the plan: tests in discovery order (declared tests after the
/// files of their root), settings resolved with `flags` on top.
pub fn plan(
    roots: &[PathBuf],
    configs: &Configs,
    profile: Option<&str>,
    flags: &Settings,
) -> Result<Vec<PlannedTest>, PlanError> {
    let mut planner = Planner::new(configs, profile, flags);
    for root in roots {
        let absolute = std::path::absolute(root).unwrap_or_else(|_| root.clone());
        let mut cases: Vec<(TestCase, PathBuf, Option<&Settings>)> =
            discover::discover(std::slice::from_ref(root))?
                .into_iter()
                .map(|case| {
                    let dir = case.dir.clone();
                    (case, dir, None)
                })
                .collect();
        if absolute.is_dir() {
            cases.extend(declared_tests(&absolute, configs));
        }
        for (case, config_dir, own) in cases {
            planner.add(case, &config_dir, None, own)?;
        }
    }
    Ok(planner.planned)
}

/// A case a driver found, with the directory whose isotest.toml files
/// apply to it and what the driver set (the native tool's environment,
/// `ignore` for an ignored case).
pub struct DriverCase {
    pub case: TestCase,
    pub config_dir: PathBuf,
    pub settings: Settings,
}

/// Plans a driver's cases in the order given: the driver's settings are
/// the lowest layer above the defaults, so isotest.toml files and flags
/// can change anything it set.
pub fn plan_driver_cases(
    cases: Vec<DriverCase>,
    configs: &Configs,
    profile: Option<&str>,
    flags: &Settings,
) -> Result<Vec<PlannedTest>, PlanError> {
    let mut planner = Planner::new(configs, profile, flags);
    for found in cases {
        planner.add(found.case, &found.config_dir, Some(&found.settings), None)?;
    }
    Ok(planner.planned)
}

/// Resolves cases one by one: the files' globs, settings, tags, and
/// unique names.
struct Planner<'a> {
    configs: &'a Configs,
    profile: Option<&'a str>,
    flags: &'a Settings,
    /// The files' include/exclude globs depend only on the directory.
    filters: HashMap<PathBuf, Option<Filter>>,
    names: BTreeSet<String>,
    planned: Vec<PlannedTest>,
}

impl<'a> Planner<'a> {
    fn new(configs: &'a Configs, profile: Option<&'a str>, flags: &'a Settings) -> Self {
        Planner {
            configs,
            profile,
            flags,
            filters: HashMap::new(),
            names: BTreeSet::new(),
            planned: Vec::new(),
        }
    }

    /// Plans `case` unless the globs of `config_dir`'s files leave it out;
    /// `below` goes under the files' layers, `own` (a `[[test]]` table)
    /// over them.
    fn add(
        &mut self,
        mut case: TestCase,
        config_dir: &Path,
        below: Option<&Settings>,
        own: Option<&Settings>,
    ) -> Result<(), PlanError> {
        let filter = match self.filters.get(config_dir) {
            Some(filter) => filter,
            None => {
                let filter = file_filter(config_dir, self.configs, self.profile)?;
                self.filters
                    .entry(config_dir.to_path_buf())
                    .or_insert(filter)
            }
        };
        if filter.as_ref().is_some_and(|f| !f.matches(&case.name)) {
            return Ok(());
        }
        let tags: Vec<String> = own.map(Settings::tag_names).unwrap_or_default();
        // Overrides may match on tags from the test's own table.
        let subject = Subject {
            name: &case.name,
            suite: &case.suite,
            tags: &tags,
        };
        let layers = self.configs.layers(config_dir, &subject, self.profile);
        let settings = Settings::resolve(
            below
                .into_iter()
                .chain(layers)
                .chain(own)
                .chain([self.flags]),
        );
        case.tags = settings.tag_names();
        if !self.names.insert(case.name.clone()) {
            return Err(PlanError::Duplicate(case.name));
        }
        let services = self
            .configs
            .services_for(config_dir, settings.services())
            .map_err(|message| PlanError::Services {
                test: case.name.clone(),
                place: settings
                    .services
                    .as_ref()
                    .map_or("isotest.toml".into(), |s| s.source.to_string()),
                message,
            })?;
        self.planned.push(PlannedTest {
            case,
            settings,
            services,
        });
        Ok(())
    }
}

/// The `[[test]]` tables of every file under `root`, as test cases with
/// the directory whose files apply to them and their own settings.
fn declared_tests<'a>(
    root: &Path,
    configs: &'a Configs,
) -> Vec<(TestCase, PathBuf, Option<&'a Settings>)> {
    let root_name = display_name(root);
    let mut cases = Vec::new();
    for file in configs.files().iter().filter(|f| f.dir.starts_with(root)) {
        let relative = file.dir.strip_prefix(root).unwrap_or(Path::new(""));
        let prefix = relative_name(relative);
        for test in &file.tests {
            let name = if prefix.is_empty() {
                test.name.clone()
            } else {
                format!("{prefix}/{}", test.name)
            };
            let suite = match name.rsplit_once('/') {
                Some((dir, _)) => dir.to_string(),
                None => root_name.clone(),
            };
            let case = TestCase {
                name,
                suite,
                program: Program::Command(test.argv.clone()),
                dir: test.cwd.clone(),
                tags: Vec::new(),
                default_dir: !test.cwd_declared,
                harness: None,
                host_dirs: Vec::new(),
            };
            cases.push((case, file.dir.clone(), Some(&test.settings)));
        }
    }
    cases
}

/// The include/exclude globs of the isotest.toml files that apply to
/// `config_dir`, if there are any.
fn file_filter(
    config_dir: &Path,
    configs: &Configs,
    profile: Option<&str>,
) -> Result<Option<Filter>, PlanError> {
    let run = configs.run_settings(config_dir, profile);
    if run.include.is_empty() && run.exclude.is_empty() {
        return Ok(None);
    }
    Filter::new(&run.include, &run.exclude)
        .map(Some)
        .map_err(PlanError::Glob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flag;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn executable(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn files_and_declared_commands_with_their_settings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tests");
        executable(&root.join("a.sh"));
        executable(&root.join("db/migrate.sh"));
        executable(&root.join("db/skipped_by_glob.sh"));
        std::fs::write(
            root.join("isotest.toml"),
            "timeout = \"30s\"\n[[override]]\nfilter = \"tag:slow\"\ntimeout = \"2m\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("db/isotest.toml"),
            "exclude = [\"db/skipped_*\"]\n[[test]]\nname = \"query\"\ncommand = \"echo select\"\ntags = [\"slow\"]\n",
        )
        .unwrap();
        let configs = Configs::load(std::slice::from_ref(&root)).unwrap();
        let flags = Settings {
            memory: flag(Some(64 << 20), "--memory"),
            ..Settings::default()
        };
        let planned = plan(std::slice::from_ref(&root), &configs, None, &flags).unwrap();
        let names: Vec<&str> = planned.iter().map(|p| p.case.name.as_str()).collect();
        assert_eq!(names, ["a.sh", "db/migrate.sh", "db/query"]);

        let query = &planned[2];
        assert_eq!(query.case.suite, "db");
        assert_eq!(query.case.dir, root.join("db"));
        assert_eq!(query.case.tags, ["slow"]);
        assert_eq!(
            query.case.program,
            Program::Command(vec!["/bin/sh".into(), "-c".into(), "echo select".into()])
        );
        assert_eq!(
            query.settings.timeout(),
            Some(Duration::from_secs(120)),
            "override by tag"
        );
        assert_eq!(planned[0].settings.timeout(), Some(Duration::from_secs(30)));
        assert_eq!(planned[0].settings.memory(), Some(64 << 20), "flags on top");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tests");
        executable(&root.join("same"));
        std::fs::write(
            root.join("isotest.toml"),
            "[[test]]\nname = \"same\"\ncommand = \"true\"\n",
        )
        .unwrap();
        let configs = Configs::load(std::slice::from_ref(&root)).unwrap();
        let error = plan(
            std::slice::from_ref(&root),
            &configs,
            None,
            &Settings::default(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("two tests are named `same`"),
            "{error}"
        );
    }
}
