//! The command line's view of run history and shards: which history a
//! run reads (`--history FILE.json`, else the cache unless
//! `--no-history`) and records, which part of the suite it runs
//! (`--partition`, else Bazel's `TEST_TOTAL_SHARDS` / `TEST_SHARD_INDEX`),
//! and the id that ties the shards of one run together.

use std::path::{Path, PathBuf};

use super::args::SelectArgs;
use super::{exit, fail};
use crate::history::{History, Store};
use crate::report::json;
use crate::run::RunSummary;
use crate::select::Partition;

/// The history a run reads, and where it records its own.
pub(super) struct RunHistory {
    pub history: History,
    store: Option<Store>,
}

impl RunHistory {
    /// `--history FILE.json` if given, else the suite's history in the
    /// cache; nothing is read or recorded with `--no-history` (unless a
    /// file is named).
    pub fn load(
        select: &SelectArgs,
        roots: &[PathBuf],
        cache_dir: Option<&Path>,
    ) -> Result<RunHistory, i32> {
        let store = if select.no_history {
            None
        } else {
            let cache_dir = cache_dir
                .map(Path::to_path_buf)
                .or_else(crate::image::default_cache_dir);
            if cache_dir.is_none() {
                eprintln!(
                    "isotest: note: no cache directory (neither --cache-dir, $XDG_CACHE_HOME \
                     nor $HOME is set): run history is not kept"
                );
            }
            cache_dir.map(|dir| Store::new(&dir, roots))
        };
        let history = match (&select.history, &store) {
            (Some(path), _) => {
                let report = json::read(path)
                    .map_err(|e| fail(format!("--history: {e}"), exit::BAD_USAGE))?;
                History::from_report(&report)
            }
            (None, Some(store)) => store.load().unwrap_or_else(|error| {
                eprintln!("isotest: warning: {error}");
                History::default()
            }),
            (None, None) => History::default(),
        };
        if select.rerun_failed && history.is_empty() {
            return Err(fail(
                "--rerun-failed: there is no run history for this suite yet (run it once, or \
                 pass --history LAST.json)",
                exit::BAD_USAGE,
            ));
        }
        Ok(RunHistory { history, store })
    }

    /// Adds the run to the history in the cache; a failure is a warning.
    pub fn record(&self, summary: &RunSummary) {
        let Some(store) = &self.store else { return };
        if let Err(error) = store.update(|history| history.record(&summary.results)) {
            eprintln!("isotest: warning: the run was not recorded: {error}");
        }
    }
}

/// `--partition`, else the shard Bazel's test sharding protocol names
/// (`TEST_TOTAL_SHARDS`, 0-based `TEST_SHARD_INDEX`), split by time;
/// `TEST_SHARD_STATUS_FILE` is touched to tell Bazel isotest shards.
pub(super) fn partition(select: &SelectArgs) -> Result<Option<Partition>, i32> {
    let bad = |e: String| fail(e, exit::BAD_USAGE);
    if let Some(text) = &select.partition {
        return text
            .parse()
            .map(Some)
            .map_err(|e| bad(format!("--partition: {e}")));
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(total) = var("TEST_TOTAL_SHARDS") else {
        return Ok(None);
    };
    let index = var("TEST_SHARD_INDEX").unwrap_or_else(|| "0".into());
    let shards = |what: &str| {
        bad(format!(
            "TEST_TOTAL_SHARDS={total} TEST_SHARD_INDEX={index}: {what} (expected 0 ≤ index < total)"
        ))
    };
    let (total_n, index_n): (u64, u64) = match (total.parse(), index.parse()) {
        (Ok(t), Ok(i)) => (t, i),
        _ => return Err(shards("not numbers")),
    };
    if index_n >= total_n {
        return Err(shards("the index is out of range"));
    }
    if let Some(status_file) = var("TEST_SHARD_STATUS_FILE") {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&status_file)
            .map_err(|e| bad(format!("touch TEST_SHARD_STATUS_FILE {status_file}: {e}")))?;
    }
    format!("time:{}/{total_n}", index_n + 1)
        .parse()
        .map(Some)
        .map_err(|e: String| shards(&e))
}

/// `--run-id`, else the CI system's id of this pipeline run (GitHub
/// Actions, GitLab CI, Buildkite, CircleCI), else a fresh one.
pub(super) fn run_id(flag: Option<&str>) -> String {
    if let Some(id) = flag {
        return id.to_string();
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let from_ci = [
        ("GITHUB_RUN_ID", Some("GITHUB_RUN_ATTEMPT")),
        ("CI_PIPELINE_ID", None),
        ("BUILDKITE_BUILD_ID", Some("BUILDKITE_RETRY_COUNT")),
        ("CIRCLE_WORKFLOW_ID", None),
    ];
    for (id, attempt) in from_ci {
        if let Some(id) = var(id) {
            return match attempt.and_then(var) {
                Some(attempt) => format!("{id}-{attempt}"),
                None => id,
            };
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}-{:x}", now.as_micros(), std::process::id())
}
