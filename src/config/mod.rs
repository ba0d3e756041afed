//! isotest.toml files and command-line flags become typed, validated
//! settings for each test.
//!
//! A file applies to its directory's subtree; deeper files override
//! shallower ones (like .gitignore); within a file the order is: defaults,
//! the selected profile, matching `[[override]]`s in file order, then a
//! `[[test]]` table's own keys; command-line flags override everything.

mod file;
mod keys;
mod reader;
mod services;
mod settings;
mod source;

use std::fs;
use std::path::{Path, PathBuf};

pub use file::{
    ConfigFile, DeclaredTest, Override, Profile, Readiness, RunSettings, ServiceConfig,
    ServiceScope, FILE_NAME,
};
pub use settings::{
    flag, Bind, Described, Expect, Network, RootMode, Rootfs, Settings, CPU_WEIGHTS,
};
pub use source::{ConfigError, Source, Sourced};

use crate::select::expression::Subject;

/// Every isotest.toml under the test roots.
#[derive(Clone, Debug, Default)]
pub struct Configs {
    /// Sorted by directory, so parents come before children.
    files: Vec<ConfigFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("profile `{0}` is not defined in any isotest.toml under the test paths")]
    UnknownProfile(String),
}

impl Configs {
    /// Finds and parses every isotest.toml in `roots` (directories) and
    /// their subdirectories; hidden directories are skipped, as in
    /// discovery.
    pub fn load(roots: &[PathBuf]) -> Result<Configs, LoadError> {
        let mut files = Vec::new();
        for root in roots {
            let absolute = std::path::absolute(root).unwrap_or_else(|_| root.clone());
            if absolute.is_dir() {
                find(&absolute, root, &mut files)?;
            }
        }
        files.sort_by(|a, b| a.dir.cmp(&b.dir));
        files.dedup_by(|a, b| a.dir == b.dir);
        Ok(Configs { files })
    }

    /// Parses the isotest.toml in each of `dirs`, without searching their
    /// subdirectories: a driver's workspace root and package directories,
    /// whose build outputs are no place to look for test settings.
    pub fn load_dirs(dirs: &[PathBuf]) -> Result<Configs, LoadError> {
        let mut files = Vec::new();
        for dir in dirs {
            load_file(dir, dir, &mut files)?;
        }
        files.sort_by(|a, b| a.dir.cmp(&b.dir));
        files.dedup_by(|a, b| a.dir == b.dir);
        Ok(Configs { files })
    }

    pub fn files(&self) -> &[ConfigFile] {
        &self.files
    }

    /// Checks that `profile` exists somewhere.
    pub fn check_profile(&self, profile: &str) -> Result<(), LoadError> {
        if self.files.iter().any(|f| f.profiles.contains_key(profile)) {
            Ok(())
        } else {
            Err(LoadError::UnknownProfile(profile.to_string()))
        }
    }

    /// The files that apply to something in `dir`, shallowest first.
    pub fn chain(&self, dir: &Path) -> Vec<&ConfigFile> {
        self.files
            .iter()
            .filter(|f| dir.starts_with(&f.dir))
            .collect()
    }

    /// The settings layers for a test living in `dir`: for each file from
    /// the root down, its defaults, its profile, and its overrides matching
    /// the test. The caller adds the test's own table and the flags.
    pub fn layers<'a>(
        &'a self,
        dir: &Path,
        subject: &Subject,
        profile: Option<&str>,
    ) -> Vec<&'a Settings> {
        let mut layers = Vec::new();
        for file in self.chain(dir) {
            layers.push(&file.defaults);
            if let Some(profile) = profile.and_then(|p| file.profiles.get(p)) {
                layers.push(&profile.settings);
            }
            for matching in file.overrides.iter().filter(|o| o.filter.matches(subject)) {
                layers.push(&matching.settings);
            }
        }
        layers
    }

    /// Run-level settings (jobs, include, exclude) for `dir`: deeper files
    /// and the profile win for `jobs`; globs add up.
    pub fn run_settings(&self, dir: &Path, profile: Option<&str>) -> RunSettings {
        let mut run = RunSettings::default();
        for file in self.chain(dir) {
            let profile_run = profile.and_then(|p| file.profiles.get(p)).map(|p| &p.run);
            for layer in std::iter::once(&file.run).chain(profile_run) {
                if layer.jobs.is_some() {
                    run.jobs.clone_from(&layer.jobs);
                }
                run.include.extend(layer.include.iter().cloned());
                run.exclude.extend(layer.exclude.iter().cloned());
            }
        }
        run
    }
}

/// The isotest.toml in `dir`, if there is one (`shown` is how the user
/// named the directory).
fn load_file(dir: &Path, shown: &Path, files: &mut Vec<ConfigFile>) -> Result<(), LoadError> {
    let candidate = dir.join(FILE_NAME);
    if candidate.is_file() {
        let shown_path = shown.join(FILE_NAME);
        let text = fs::read_to_string(&candidate).map_err(|source| LoadError::Read {
            path: shown_path.clone(),
            source,
        })?;
        files.push(ConfigFile::parse(&shown_path, dir, &text)?);
    }
    Ok(())
}

fn find(dir: &Path, shown: &Path, files: &mut Vec<ConfigFile>) -> Result<(), LoadError> {
    load_file(dir, shown, files)?;
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    let mut subdirs: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
        .map(|e| e.file_name())
        .collect();
    subdirs.sort();
    for name in subdirs {
        find(&dir.join(&name), &shown.join(&name), files)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
