//! `isotest report merge`: one run from the `--json` reports of its
//! shards. The shards must be of one run (the same run id), each part of
//! the partition exactly once, with no test twice and none missing; the
//! merged run's wall time is the longest shard's. Each shard's job slots
//! follow those of the shards before it, so that no two shards share a
//! slot (and a timeline of the merged run a row). Anything else is an
//! error that names the files, never a silent merge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::json::{self, JsonRun};
use super::rebuild::{self, known_fields, unknown_fields};
use crate::run::{HostFacts, RunSummary, Status, TestResult};

/// The shards, read and checked, and the run they make.
pub struct Merged {
    pub run_id: String,
    pub summary: RunSummary,
    /// Each shard's `settings`, with the file it came from.
    pub settings: serde_json::Value,
}

/// Reads the shard reports at `paths` and merges them; `expect_shards` is
/// `--expect-shards N`.
pub fn merge(paths: &[PathBuf], expect_shards: Option<u64>) -> Result<Merged, String> {
    let mut shards: Vec<(&Path, JsonRun)> = paths
        .iter()
        .map(|path| Ok((path.as_path(), read_strictly(path)?)))
        .collect::<Result<_, String>>()?;
    let run_id = one_run(&shards)?;
    check_parts(&shards, expect_shards)?;
    // Shard K is part K (a stable sort: unpartitioned shards keep their order).
    shards.sort_by_key(|(_, run)| run.partition.as_ref().map(|p| p.part));
    let first_slots = first_slots(&shards);
    let results = merged_results(&shards, &first_slots)?;
    if let Some(partition) = shards.iter().find_map(|(_, run)| run.partition.as_ref()) {
        let reported = results
            .iter()
            .filter(|r| r.scheduled.iteration.is_none_or(|i| i == 1))
            .count();
        if reported != partition.selected {
            return Err(format!(
                "the shards report {reported} tests, but the suite they split had {}: \
                 were they given different tests or filters?",
                partition.selected
            ));
        }
    }
    let first = &shards[0].1;
    let started_at = shards
        .iter()
        .map(|(_, run)| rebuild::parse_rfc3339(&run.started_at))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .min()
        .expect("at least one shard");
    let longest = shards
        .iter()
        .map(|(_, run)| run.duration_secs)
        .fold(0.0, f64::max);
    let interrupted_by = shards
        .iter()
        .find_map(|(_, run)| run.interrupted_by.as_deref())
        .map(rebuild::signal_number)
        .transpose()?;
    let summary = RunSummary {
        started_at,
        duration: Duration::from_secs_f64(longest),
        results,
        host: HostFacts {
            cgroup_layout: first.host.cgroup_layout.clone(),
            cgroups_in_use: shards.iter().all(|(_, run)| run.host.cgroups_in_use),
            rootless: shards.iter().any(|(_, run)| run.host.rootless),
        },
        interrupted_by,
        services: shards
            .iter()
            .flat_map(|(_, run)| run.services.iter().map(rebuild::service))
            .collect::<Result<_, _>>()?,
    };
    let settings = shards
        .iter()
        .zip(&first_slots)
        .map(|((path, run), first_slot)| {
            serde_json::json!({
                "report": path.display().to_string(),
                "settings": run.settings,
                "first_slot": first_slot,
                "slots": slots(run),
            })
        })
        .collect();
    Ok(Merged {
        run_id,
        summary,
        settings: serde_json::json!({ "merged_from": serde_json::Value::Array(settings) }),
    })
}

/// A shard's report; a field this isotest does not know is an error,
/// since merging would drop it.
fn read_strictly(path: &Path) -> Result<JsonRun, String> {
    let (run, original) = json::read_with_value(path).map_err(|e| e.to_string())?;
    let unknown = unknown_fields(&original, &known_fields(&run));
    if !unknown.is_empty() {
        return Err(format!(
            "{} has fields this isotest does not know ({}); merging would drop them: \
             merge with the isotest version that wrote the reports",
            path.display(),
            unknown.join(", ")
        ));
    }
    Ok(run)
}

/// The run id all shards share.
fn one_run(shards: &[(&Path, JsonRun)]) -> Result<String, String> {
    let (first_path, first) = &shards[0];
    let id_of = |path: &Path, run: &JsonRun| {
        run.run_id.clone().ok_or_else(|| {
            format!(
                "{} has no run_id: it was written by an isotest without run ids; run the shards again",
                path.display()
            )
        })
    };
    let id = id_of(first_path, first)?;
    for (path, run) in &shards[1..] {
        let other = id_of(path, run)?;
        if other != id {
            return Err(format!(
                "{} is of run `{id}` but {} of run `{other}`: shards of different runs do not merge \
                 (give the shards of one run the same --run-id)",
                first_path.display(),
                path.display()
            ));
        }
    }
    Ok(id)
}

/// Every part of the partition exactly once (and `--expect-shards`).
fn check_parts(shards: &[(&Path, JsonRun)], expect_shards: Option<u64>) -> Result<(), String> {
    if let Some(expected) = expect_shards {
        if shards.len() as u64 != expected {
            return Err(format!(
                "--expect-shards {expected}, but {} shard report(s) were given",
                shards.len()
            ));
        }
    }
    let partitioned = shards
        .iter()
        .filter(|(_, run)| run.partition.is_some())
        .count();
    if partitioned == 0 {
        return Ok(());
    }
    if partitioned != shards.len() {
        return Err("some shard reports have a --partition and some do not".into());
    }
    let mut parts: BTreeMap<u64, &Path> = BTreeMap::new();
    let first = shards[0].1.partition.as_ref().expect("checked above");
    let kind = |spec: &str| spec.split(':').next().unwrap_or_default().to_string();
    for (path, run) in shards {
        let partition = run.partition.as_ref().expect("checked above");
        if partition.parts != first.parts || kind(&partition.spec) != kind(&first.spec) {
            return Err(format!(
                "{} ran --partition {} but {} ran --partition {}: not parts of one split",
                shards[0].0.display(),
                first.spec,
                path.display(),
                partition.spec
            ));
        }
        if let Some(other) = parts.insert(partition.part, path) {
            return Err(format!(
                "{} and {} are both part {} of {}",
                other.display(),
                path.display(),
                partition.part,
                partition.parts
            ));
        }
    }
    if expect_shards.is_some_and(|n| n != first.parts) {
        return Err(format!(
            "--expect-shards {}, but the shards are parts of {}",
            expect_shards.unwrap_or_default(),
            first.parts
        ));
    }
    let missing: Vec<String> = (1..=first.parts)
        .filter(|part| !parts.contains_key(part))
        .map(|part| part.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "part(s) {} of {} are missing: every shard's report is needed",
            missing.join(", "),
            first.parts
        ));
    }
    Ok(())
}

/// A shard's job slots: its `--jobs`, or as many as its tests used.
fn slots(run: &JsonRun) -> usize {
    let used = run
        .tests
        .iter()
        .filter_map(|t| t.slot)
        .max()
        .map_or(0, |s| s + 1);
    let jobs = run.settings["jobs"].as_u64().unwrap_or(0) as usize;
    used.max(jobs)
}

/// Where each shard's slots begin in the merged run: after the slots of
/// the shards before it, so that no two shards share a slot.
fn first_slots(shards: &[(&Path, JsonRun)]) -> Vec<usize> {
    let mut next = 0;
    shards
        .iter()
        .map(|(_, run)| {
            let first = next;
            next += slots(run);
            first
        })
        .collect()
}

/// Every shard's results, their slots moved to `first_slots`: the ignored
/// (SKIPPED) tests first, then the rest by name (and stress run); a test
/// in two shards is an error.
fn merged_results(
    shards: &[(&Path, JsonRun)],
    first_slots: &[usize],
) -> Result<Vec<TestResult>, String> {
    let mut seen: BTreeMap<(String, Option<u32>), &Path> = BTreeMap::new();
    let mut results = Vec::new();
    for ((path, run), first_slot) in shards.iter().zip(first_slots) {
        for test in &run.tests {
            if let Some(other) = seen.insert((test.name.clone(), test.iteration), path) {
                return Err(format!(
                    "test {} is in both {} and {}: a test must run on one shard only",
                    test.name,
                    other.display(),
                    path.display()
                ));
            }
            let mut result =
                rebuild::test_result(test).map_err(|e| format!("{}: {e}", path.display()))?;
            result.slot = result.slot.map(|slot| first_slot + slot);
            results.push(result);
        }
    }
    results.sort_by(|a, b| {
        (
            a.status != Status::Skipped,
            &a.test.name,
            a.scheduled.iteration,
        )
            .cmp(&(
                b.status != Status::Skipped,
                &b.test.name,
                b.scheduled.iteration,
            ))
    });
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::json::JsonPartition;
    use crate::report::junit::tests::summary;

    /// The test summary split into `parts` shards (round-robin), written
    /// as reports of run `id`; returns their paths.
    fn shards(dir: &Path, id: &str, parts: usize) -> Vec<PathBuf> {
        let summary = summary();
        let total = summary.results.len();
        (0..parts)
            .map(|k| {
                let mut run = JsonRun::from_summary(&summary);
                run.tests = run.tests.into_iter().skip(k).step_by(parts).collect();
                run.duration_secs = k as f64 + 1.0;
                run.run_id = Some(id.to_string());
                run.partition = Some(JsonPartition {
                    spec: format!("slice:{}/{parts}", k + 1),
                    part: k as u64 + 1,
                    parts: parts as u64,
                    selected: total,
                });
                write(dir, &format!("{id}-{k}.json"), &run)
            })
            .collect()
    }

    fn write(dir: &Path, name: &str, run: &JsonRun) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_vec(run).unwrap()).unwrap();
        path
    }

    #[test]
    fn merges_shards_into_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let merged = merge(&shards(dir.path(), "r1", 3), Some(3)).unwrap();
        let single = summary();
        assert_eq!(merged.run_id, "r1");
        assert_eq!(
            merged.summary.duration,
            Duration::from_secs(3),
            "the longest shard"
        );
        assert_eq!(merged.summary.results.len(), single.results.len());
        for status in Status::ALL {
            assert_eq!(
                merged.summary.count(status),
                single.count(status),
                "{status:?}"
            );
        }
        let mut names: Vec<_> = merged
            .summary
            .results
            .iter()
            .map(|r| &r.test.name)
            .collect();
        let mut expected: Vec<_> = single.results.iter().map(|r| &r.test.name).collect();
        names.sort();
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(
            merged.summary.results[0].status,
            Status::Skipped,
            "ignored tests first"
        );
    }

    #[test]
    fn refuses_what_is_not_one_whole_run() {
        let dir = tempfile::tempdir().unwrap();
        let error = |paths: &[PathBuf], expect| merge(paths, expect).err().unwrap();
        let one = shards(dir.path(), "r1", 3);
        let other = shards(dir.path(), "r2", 3);

        let missing = error(&one[..2], None);
        assert!(missing.contains("part(s) 3 of 3 are missing"), "{missing}");
        let mixed = error(&[one[0].clone(), one[1].clone(), other[2].clone()], None);
        assert!(
            mixed.contains("shards of different runs do not merge"),
            "{mixed}"
        );
        let twice = error(&[one[0].clone(), one[0].clone(), one[1].clone()], None);
        assert!(twice.contains("are both part 1 of 3"), "{twice}");
        let count = error(&one, Some(4));
        assert!(
            count.contains("--expect-shards 4, but 3 shard report(s)"),
            "{count}"
        );

        let mut run: JsonRun = serde_json::from_slice(&std::fs::read(&one[1]).unwrap()).unwrap();
        run.tests.push(
            serde_json::from_slice::<JsonRun>(&std::fs::read(&one[0]).unwrap())
                .unwrap()
                .tests[0]
                .clone(),
        );
        let duplicated = write(dir.path(), "dup.json", &run);
        let duplicate = error(&[one[0].clone(), duplicated, one[2].clone()], None);
        assert!(
            duplicate.contains("a test must run on one shard only"),
            "{duplicate}"
        );

        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&one[2]).unwrap()).unwrap();
        value["tests"][0]["coverage"] = serde_json::json!([]);
        let newer = dir.path().join("newer.json");
        std::fs::write(&newer, value.to_string()).unwrap();
        let unknown = error(&[one[0].clone(), one[1].clone(), newer], None);
        assert!(
            unknown.contains("(tests[0].coverage); merging would drop them"),
            "{unknown}"
        );
    }
}
