//! One suite over many machines, run history and scheduling (issue 13):
//! a skewed suite split 4 ways by time and merged back into the run a
//! single machine gives; `report merge` refusing what is not one whole
//! run; `--rerun-failed` and the failures-first order after a failing
//! run; `--stress 5` on a flaky test; a memory budget that keeps two
//! 300 MiB tests apart while small ones run beside them; Bazel's
//! `TEST_TOTAL_SHARDS` alone; runs finishing at once all recorded in the
//! history. Timings come from the JSON reports (test durations and start
//! times), never from the wall clock of a process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::support::{self, Finished};
use crate::{json, junit};

type Check = fn() -> Result<(), Failed>;

pub fn trials() -> Vec<Trial> {
    let trials: [(&str, Check); 7] = [
        (
            "time_split_balances_and_merges",
            time_split_balances_and_merges,
        ),
        (
            "merge_refuses_what_is_not_one_run",
            merge_refuses_what_is_not_one_run,
        ),
        (
            "rerun_failed_after_a_failing_run",
            rerun_failed_after_a_failing_run,
        ),
        ("stress_a_flaky_test", stress_a_flaky_test),
        (
            "memory_budget_keeps_big_tests_apart",
            memory_budget_keeps_big_tests_apart,
        ),
        ("bazel_total_shards_alone", bazel_total_shards_alone),
        ("concurrent_runs_all_recorded", concurrent_runs_all_recorded),
    ];
    trials
        .into_iter()
        .map(|(name, check)| Trial::test(format!("shards::{name}"), check))
        .collect()
}

/// Seconds each test of the skewed suite sleeps: the longest is a quarter
/// of the total (24 s), so 4 shards can each take 6 s; long enough that
/// container start-up on a busy machine (in the history run too, whose
/// durations the split packs) stays a small part of it.
const SKEWED: [(&str, &str); 12] = [
    ("long.sh", "6.0"),
    ("a/one.sh", "3.0"),
    ("a/two.sh", "3.0"),
    ("b/three.sh", "2.4"),
    ("b/four.sh", "1.8"),
    ("b/five.sh", "1.8"),
    ("c/six.sh", "1.5"),
    ("c/seven.sh", "1.5"),
    ("c/eight.sh", "1.2"),
    ("d/nine.sh", "0.9"),
    ("d/ten.sh", "0.6"),
    ("d/fails.sh", "0.3"),
];

/// The skewed suite (d/fails.sh exits 1), plus one ignored test.
fn skewed_suite() -> Result<tempfile::TempDir, String> {
    let scripts: Vec<(String, String)> = SKEWED
        .iter()
        .map(|(name, secs)| {
            let end = if name.contains("fails") {
                "exit 1"
            } else {
                "exit 0"
            };
            (
                name.to_string(),
                format!("#!/bin/sh\nsleep {secs}\n{end}\n"),
            )
        })
        .chain([("ignored.sh".to_string(), "#!/bin/sh\nexit 0\n".to_string())])
        .collect();
    let scripts: Vec<(&str, &str)> = scripts
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    let dir = support::suite(&scripts)?;
    support::write_file(
        &dir.path().join("isotest.toml"),
        "[[override]]\nfilter = \"ignored.sh\"\nignore = true\n",
        0o644,
    )?;
    Ok(dir)
}

/// `isotest run SUITE ARGS...`, checked to exit with one of `codes`.
fn run_isotest(suite: &Path, args: &[&str], codes: &[i32]) -> Result<Finished, String> {
    let mut command = support::isotest();
    command.arg("run").arg(suite).args(args);
    run_checked(command, codes)
}

fn run_checked(command: Command, codes: &[i32]) -> Result<Finished, String> {
    let finished = support::run(command)?;
    if !codes.contains(&finished.code) {
        return Err(format!("expected exit {codes:?}\n{}", finished.describe()));
    }
    Ok(finished)
}

/// Runs `command`, which must exit 2 saying `expected` on stderr.
fn refused(command: Command, expected: &str, problems: &mut Vec<String>) -> Result<(), String> {
    let finished = run_checked(command, &[2])?;
    if !finished.stderr.contains(expected) {
        problems.push(format!("expected `{expected}`:\n{}", finished.describe()));
    }
    Ok(())
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("harness paths are UTF-8")
}

/// Name → status of a JSON report.
fn statuses(report: &Value) -> BTreeMap<String, String> {
    string_pairs(report, "name", "status").into_iter().collect()
}

/// Two string fields of each test of a JSON report.
fn string_pairs(report: &Value, first: &str, second: &str) -> Vec<(String, String)> {
    let text = |test: &Value, key: &str| test[key].as_str().unwrap_or_default().to_string();
    report["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (text(t, first), text(t, second)))
        .collect()
}

fn time_split_balances_and_merges() -> Result<(), Failed> {
    support::require_root()?;
    let suite = skewed_suite()?;
    let work = tempfile::tempdir()?;
    let file = |name: &str| work.path().join(name);
    // The single-machine run, whose report is also the shards' history
    // (at -j2: fewer containers starting at once on a busy machine keep
    // its durations true).
    let last = file("last.json");
    run_isotest(suite.path(), &["-j2", "--json", path_arg(&last)], &[100])?;
    let single = json::read(&last)?;

    // The four shards at once, as a CI matrix runs them.
    let mut running = Vec::new();
    let mut shard_files = Vec::new();
    for k in 1..=4 {
        let shard = file(&format!("shard-{k}.json"));
        let mut command = support::isotest();
        command.arg("run").arg(suite.path()).args([
            "-j1",
            "--partition",
            &format!("time:{k}/4"),
            "--history",
            path_arg(&last),
            "--run-id",
            "ci-42",
            "--json",
            path_arg(&shard),
        ]);
        running.push(support::start(command)?);
        shard_files.push(shard);
    }
    for (k, shard) in running.into_iter().enumerate() {
        let finished = shard.finish()?;
        if ![0, 100].contains(&finished.code) {
            return Err(format!("shard {}: {}", k + 1, finished.describe()).into());
        }
    }
    let mut problems = Vec::new();
    let mut busy = Vec::new();
    let mut walls = Vec::new();
    for (k, shard) in shard_files.iter().enumerate() {
        let report = json::read(shard)?;
        walls.push(report["duration_secs"].as_f64().unwrap_or(0.0));
        let partition = format!("time:{}/4", k + 1);
        if report["partition"]["spec"] != partition.as_str() || report["run_id"] != "ci-42" {
            problems.push(format!(
                "shard {}: partition {} run_id {}",
                k + 1,
                report["partition"],
                report["run_id"]
            ));
        }
        busy.push(summed_durations(&report));
    }
    // Each shard's tests, and its wall time (start-up, reports and all),
    // take within 20% of a quarter of them all.
    let ideal = busy.iter().sum::<f64>() / 4.0;
    for (k, (secs, wall)) in busy.iter().zip(&walls).enumerate() {
        if (secs - ideal).abs() > 0.2 * ideal || (wall - ideal).abs() > 0.2 * ideal {
            problems.push(format!(
                "shard {}: {secs:.2}s of tests, {wall:.2}s wall, ideal {ideal:.2}s (tests: {busy:.2?}; walls: {walls:.2?})",
                k + 1
            ));
        }
    }

    let merged_json = file("merged.json");
    let merged_xml = file("merged.xml");
    let mut merge = support::isotest();
    merge
        .args(["report", "merge", "--expect-shards", "4", "--json"])
        .arg(&merged_json)
        .arg("--junit")
        .arg(&merged_xml)
        .args(&shard_files);
    let finished = run_checked(merge, &[100])?;
    if !finished
        .stdout
        .contains("13 tests run: 11 passed, 1 failed, 1 skipped")
    {
        problems.push(format!("the merge's summary:\n{}", finished.stdout));
    }
    let merged = json::read(&merged_json)?;
    json::tests(&merged, &mut problems);
    if statuses(&merged) != statuses(&single) || merged["counts"] != single["counts"] {
        problems.push(format!(
            "merged {:?} {}\nsingle {:?} {}",
            statuses(&merged),
            merged["counts"],
            statuses(&single),
            single["counts"]
        ));
    }
    let longest = shard_files
        .iter()
        .map(|f| json::read(f).map(|r| r["duration_secs"].as_f64().unwrap_or(0.0)))
        .collect::<Result<Vec<_>, _>>()?;
    let longest = longest.into_iter().fold(0.0, f64::max);
    if merged["duration_secs"].as_f64() != Some(longest) {
        problems.push(format!(
            "merged wall {} is not the longest shard's {longest}",
            merged["duration_secs"]
        ));
    }
    // The merged report is the next run's history (docs/ci.md's last.json).
    let rerun = file("rerun.json");
    run_isotest(
        suite.path(),
        &[
            "--no-history",
            "--history",
            path_arg(&merged_json),
            "--rerun-failed",
            "--json",
            path_arg(&rerun),
        ],
        &[100],
    )?;
    let reran: Vec<String> = statuses(&json::read(&rerun)?).into_keys().collect();
    if reran != ["d/fails.sh"] {
        problems.push(format!(
            "--rerun-failed from the merged report ran {reran:?}"
        ));
    }
    let xml = std::fs::read_to_string(&merged_xml)?;
    junit::validate_schema(&xml, work.path())?;
    let cases = junit::parse(&xml, &mut problems)?;
    if cases.len() != 13 {
        problems.push(format!(
            "the merged JUnit has {} testcases, expected 13",
            cases.len()
        ));
    }
    // `--json -`: the merged report on stdout, the summary on stderr.
    let mut to_stdout = support::isotest();
    to_stdout
        .args(["report", "merge", "--json", "-"])
        .args(&shard_files);
    let finished = run_checked(to_stdout, &[100])?;
    match serde_json::from_str::<Value>(&finished.stdout) {
        Ok(piped) if statuses(&piped) == statuses(&merged) => {}
        _ => problems.push(format!(
            "report merge --json - did not write the merged report to stdout\n{}",
            finished.describe()
        )),
    }
    if !finished.stderr.contains("13 tests run") {
        problems.push(format!(
            "the summary is not on stderr\n{}",
            finished.describe()
        ));
    }
    problems_to_result(problems)
}

/// The summed durations of a report's tests, in seconds.
fn summed_durations(report: &Value) -> f64 {
    report["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["duration_secs"].as_f64())
        .sum()
}

fn problems_to_result(problems: Vec<String>) -> Result<(), Failed> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn merge_refuses_what_is_not_one_run() -> Result<(), Failed> {
    support::require_root()?;
    let suite = support::suite(&[
        ("a.sh", "#!/bin/sh\n"),
        ("b.sh", "#!/bin/sh\n"),
        ("c.sh", "#!/bin/sh\n"),
    ])?;
    let work = tempfile::tempdir()?;
    let shard = |run: &str, k: u32| -> Result<PathBuf, String> {
        let path = work.path().join(format!("{run}-{k}.json"));
        let partition = format!("slice:{k}/2");
        run_isotest(
            suite.path(),
            &[
                "--partition",
                &partition,
                "--run-id",
                run,
                "--json",
                path_arg(&path),
            ],
            &[0],
        )?;
        Ok(path)
    };
    let (one_1, one_2, other_2) = (shard("one", 1)?, shard("one", 2)?, shard("other", 2)?);
    let mut problems = Vec::new();
    for (files, expected) in [
        (
            vec![&one_1, &other_2],
            "shards of different runs do not merge",
        ),
        (vec![&one_1], "part(s) 2 of 2 are missing"),
        (vec![&one_1, &one_1], "are both part 1 of 2"),
    ] {
        let mut merge = support::isotest();
        merge.args(["report", "merge"]).args(files);
        refused(merge, expected, &mut problems)?;
    }
    let mut merge = support::isotest();
    merge
        .args(["report", "merge", "--expect-shards", "3"])
        .args([&one_1, &one_2]);
    refused(
        merge,
        "--expect-shards 3, but 2 shard report(s)",
        &mut problems,
    )?;
    let mut merge = support::isotest();
    merge.args(["report", "merge"]).args([&one_1, &one_2]);
    run_checked(merge, &[0])?;
    problems_to_result(problems)
}

fn rerun_failed_after_a_failing_run() -> Result<(), Failed> {
    support::require_root()?;
    let suite = support::suite(&[
        ("a_quick.sh", "#!/bin/sh\nexit 0\n"),
        ("b_fails.sh", "#!/bin/sh\nexit 3\n"),
        ("c_slow.sh", "#!/bin/sh\nsleep 0.5\n"),
        ("d_times_out.sh", "#!/bin/sh\nsleep 30\n"),
    ])?;
    let work = tempfile::tempdir()?;
    let cache = work.path().join("cache");
    let run = |args: &[&str], codes: &[i32]| {
        let mut command = support::isotest();
        command
            .env("XDG_CACHE_HOME", &cache)
            .arg("run")
            .arg(suite.path())
            .args(args);
        run_checked(command, codes)
    };
    let first = work.path().join("first.json");
    run(
        &[
            "-j1",
            "--timeout",
            "1s",
            "--grace",
            "0s",
            "--json",
            path_arg(&first),
        ],
        &[100],
    )?;
    let mut problems = Vec::new();
    // From the history in the cache: only what did not pass.
    let again = work.path().join("again.json");
    run(
        &[
            "-j1",
            "--timeout",
            "1s",
            "--rerun-failed",
            "--json",
            path_arg(&again),
        ],
        &[100],
    )?;
    let names: Vec<String> = statuses(&json::read(&again)?).into_keys().collect();
    if names != ["b_fails.sh", "d_times_out.sh"] {
        problems.push(format!("--rerun-failed ran {names:?}"));
    }
    // From a report instead, with the cache left out.
    let from_file = work.path().join("from-file.json");
    run(
        &[
            "--no-history",
            "--history",
            path_arg(&first),
            "--rerun-failed",
            "--filter",
            "b_",
            "--json",
            path_arg(&from_file),
        ],
        &[100],
    )?;
    let names: Vec<String> = statuses(&json::read(&from_file)?).into_keys().collect();
    if names != ["b_fails.sh"] {
        problems.push(format!(
            "--history --rerun-failed --filter b_ ran {names:?}"
        ));
    }
    // The whole suite again at -j1: last failures first, then longest
    // first (d_times_out.sh took 1 s, the longest of the two failures).
    let ordered = work.path().join("ordered.json");
    run(
        &["-j1", "--timeout", "1s", "--json", path_arg(&ordered)],
        &[100],
    )?;
    let order = start_order(&json::read(&ordered)?);
    if order != ["d_times_out.sh", "b_fails.sh", "c_slow.sh", "a_quick.sh"] {
        problems.push(format!("history order: {order:?}"));
    }
    let by_name = work.path().join("by-name.json");
    run(
        &[
            "-j1",
            "--timeout",
            "1s",
            "--order",
            "name",
            "--json",
            path_arg(&by_name),
        ],
        &[100],
    )?;
    let order = start_order(&json::read(&by_name)?);
    if order != ["a_quick.sh", "b_fails.sh", "c_slow.sh", "d_times_out.sh"] {
        problems.push(format!("--order name: {order:?}"));
    }
    // --no-history neither reads the cache (so --rerun-failed has nothing
    // to go on) nor records into it.
    let recorded = || -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
        let dir = cache.join("isotest/history");
        let mut files = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .map(|entry| {
                let path = entry.map_err(|e| e.to_string())?.path();
                let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
                Ok((path, bytes))
            })
            .collect::<Result<Vec<_>, String>>()?;
        files.sort();
        Ok(files)
    };
    let before = recorded()?;
    run(&["-j1", "--timeout", "1s", "--no-history"], &[100])?;
    if recorded()? != before {
        problems.push("a run with --no-history changed the history in the cache".into());
    }
    let mut unread = support::isotest();
    unread
        .env("XDG_CACHE_HOME", &cache)
        .arg("run")
        .arg(suite.path())
        .args(["--no-history", "--rerun-failed"]);
    refused(unread, "--rerun-failed", &mut problems)?;
    // Without any history, --rerun-failed is a usage error.
    let mut fresh = support::isotest();
    fresh.arg("run").arg(suite.path()).arg("--rerun-failed");
    refused(fresh, "no run history for this suite yet", &mut problems)?;
    problems_to_result(problems)
}

/// Test names of a report in the order they started.
fn start_order(report: &Value) -> Vec<String> {
    let mut tests = string_pairs(report, "started_at", "name");
    tests.sort();
    tests.into_iter().map(|(_, name)| name).collect()
}

fn stress_a_flaky_test() -> Result<(), Failed> {
    support::require_root()?;
    let work = tempfile::tempdir()?;
    let state = work.path().join("state");
    std::fs::create_dir(&state)?;
    // Every other run fails: a counter kept on a writable bind mount.
    let flaky = "#!/bin/sh\nn=$(cat /state/runs 2>/dev/null || echo 0)\necho $((n + 1)) > /state/runs\nexit $((n % 2))\n";
    // steady.sh passes only in a fresh container each time: nothing it
    // wrote in an earlier run (in /tmp, or in the root) is there.
    let steady = "#!/bin/sh\ntest ! -e /tmp/mark && test ! -e /etc/isotest-stress-mark || exit 1\n\
                  touch /tmp/mark /etc/isotest-stress-mark\n";
    let suite = support::suite(&[("flaky.sh", flaky), ("steady.sh", steady)])?;
    let report = work.path().join("stress.json");
    let bind = format!("{}:/state:rw", state.display());
    let finished = run_isotest(
        suite.path(),
        &[
            "-j1",
            "--stress",
            "5",
            "--bind",
            &bind,
            "--json",
            path_arg(&report),
        ],
        &[100],
    )?;
    let mut problems = Vec::new();
    for line in [
        "STRESS flaky.sh: 3/5 passed (60%)",
        "STRESS steady.sh: 5/5 passed (100%)",
        "10 tests run: 8 passed, 2 failed",
    ] {
        if !finished.stdout.contains(line) {
            problems.push(format!("no `{line}` in\n{}", finished.stdout));
        }
    }
    let report = json::read(&report)?;
    let stress = report["stress"].as_array().cloned().unwrap_or_default();
    let flaky = stress.iter().find(|s| s["name"] == "flaky.sh");
    match flaky {
        Some(s) if s["runs"] == 5 && s["passed"] == 3 && s["pass_rate"] == 0.6 => {
            let spread = &s["duration_secs"];
            let ordered = spread["min"].as_f64() <= spread["median"].as_f64()
                && spread["median"].as_f64() <= spread["max"].as_f64();
            // Peaks are measured where cgroups are in use (not rootless).
            let peak = s["memory_peak_bytes"]["max"].as_u64();
            let peak_ok = match report["host"]["cgroups_in_use"].as_bool() {
                Some(true) => peak.is_some_and(|b| b > 0),
                _ => s["memory_peak_bytes"].is_null(),
            };
            if !ordered || !peak_ok {
                problems.push(format!("flaky.sh spread: {s}"));
            }
        }
        other => problems.push(format!("the JSON stress entry of flaky.sh: {other:?}")),
    }
    let mut runs: Vec<u64> = report["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["name"] == "flaky.sh")
        .filter_map(|t| t["iteration"].as_u64())
        .collect();
    runs.sort();
    if runs != [1, 2, 3, 4, 5] {
        problems.push(format!("flaky.sh runs in the JSON report: {runs:?}"));
    }
    problems_to_result(problems)
}

fn memory_budget_keeps_big_tests_apart() -> Result<(), Failed> {
    support::require_root()?;
    let sleep = |secs: &str| format!("#!/bin/sh\nsleep {secs}\n");
    let (big, small, huge) = (sleep("1.5"), sleep("0.5"), sleep("0.3"));
    let suite = support::suite(&[
        ("big1.sh", big.as_str()),
        ("big2.sh", big.as_str()),
        ("small1.sh", small.as_str()),
        ("small2.sh", small.as_str()),
        ("small3.sh", small.as_str()),
        ("huge.sh", huge.as_str()),
    ])?;
    support::write_file(
        &suite.path().join("isotest.toml"),
        "memory = \"16M\"\n\n[[override]]\nfilter = \"big*\"\nmemory = \"300M\"\n\n\
         [[override]]\nfilter = \"huge.sh\"\nmemory = \"700M\"\n",
        0o644,
    )?;
    let work = tempfile::tempdir()?;
    let report = work.path().join("run.json");
    let finished = run_isotest(
        suite.path(),
        &[
            "-j4",
            "--memory-budget",
            "500M",
            "--order",
            "name",
            "--json",
            path_arg(&report),
        ],
        &[0],
    )?;
    let report = json::read(&report)?;
    let intervals = intervals(&report)?;
    let overlap = |a: &str, b: &str| {
        let (a, b) = (intervals[a], intervals[b]);
        a.0 < b.1 && b.0 < a.1
    };
    let mut problems = Vec::new();
    if overlap("big1.sh", "big2.sh") {
        problems.push(format!("the 300 MiB tests overlap: {intervals:?}"));
    }
    if !["small1.sh", "small2.sh", "small3.sh"]
        .iter()
        .any(|s| overlap(s, "big1.sh") || overlap(s, "big2.sh"))
    {
        problems.push(format!("no small test ran beside a big one: {intervals:?}"));
    }
    for other in intervals.keys().filter(|n| *n != "huge.sh") {
        if overlap("huge.sh", other) {
            problems.push(format!(
                "huge.sh (over the budget) ran beside {other}: {intervals:?}"
            ));
        }
    }
    if !finished.stderr.contains(
        "huge.sh needs 700.0 MiB, more than the memory budget of 500.0 MiB: it runs alone",
    ) {
        problems.push(format!("no note on huge.sh:\n{}", finished.stderr));
    }
    let waited = report["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "big2.sh")
        .map(|t| t["waited_for_memory_secs"].clone());
    if !waited
        .as_ref()
        .and_then(Value::as_f64)
        .is_some_and(|w| w > 0.5)
    {
        problems.push(format!("big2.sh waited_for_memory_secs: {waited:?}"));
    }
    if !finished
        .stdout
        .lines()
        .any(|l| l.contains("big2.sh") && l.contains("for memory"))
    {
        problems.push(format!(
            "the terminal does not say big2.sh waited:\n{}",
            finished.stdout
        ));
    }
    problems_to_result(problems)
}

/// Each test's run interval (start, end) in seconds since the epoch.
fn intervals(report: &Value) -> Result<BTreeMap<String, (f64, f64)>, String> {
    let mut found = BTreeMap::new();
    for test in report["tests"].as_array().into_iter().flatten() {
        let name = test["name"].as_str().unwrap_or_default().to_string();
        let start = seconds_since_epoch(test["started_at"].as_str().unwrap_or_default())?;
        let end = start + test["duration_secs"].as_f64().unwrap_or_default();
        found.insert(name, (start, end));
    }
    Ok(found)
}

/// `2024-02-29T23:59:59.123Z` → seconds since the epoch (same day math
/// as the report's writer, written out again here).
fn seconds_since_epoch(text: &str) -> Result<f64, String> {
    let field = |range: std::ops::Range<usize>| -> Result<i64, String> {
        text.get(range)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("bad time {text}"))
    };
    let (y, m, d) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + field(11..13)? * 3600 + field(14..16)? * 60 + field(17..19)?;
    Ok(secs as f64 + field(20..23)? as f64 / 1000.0)
}

fn bazel_total_shards_alone() -> Result<(), Failed> {
    support::require_root()?;
    let names = ["a.sh", "b.sh", "c.sh", "d.sh", "e.sh", "f.sh", "g.sh"];
    let scripts: Vec<(&str, &str)> = names.iter().map(|n| (*n, "#!/bin/sh\n")).collect();
    let suite = support::suite(&scripts)?;
    let work = tempfile::tempdir()?;
    let status_file = work.path().join("shard-status");
    let mut seen: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for index in 0..3 {
        let report = work.path().join(format!("shard-{index}.json"));
        let mut command = support::isotest();
        command
            .env("TEST_TOTAL_SHARDS", "3")
            .env("TEST_SHARD_INDEX", index.to_string())
            .env("TEST_SHARD_STATUS_FILE", &status_file)
            .arg("run")
            .arg(suite.path())
            .args(["--no-tests", "pass", "--json"])
            .arg(&report);
        run_checked(command, &[0])?;
        let report = json::read(&report)?;
        let expected = format!("time:{}/3", index + 1);
        if report["partition"]["spec"] != expected.as_str() || report["partition"]["selected"] != 7
        {
            problems.push(format!("shard {index}: partition {}", report["partition"]));
        }
        seen.extend(statuses(&report).into_keys());
    }
    seen.sort();
    if seen != names {
        problems.push(format!("the three shards ran {seen:?}"));
    }
    if !status_file.exists() {
        problems.push("TEST_SHARD_STATUS_FILE was not touched".into());
    }
    // Eight shards of seven tests: some shard is empty, and passes with its
    // (empty) report, no `--no-tests pass` needed, for the merge.
    let mut seen: Vec<String> = Vec::new();
    let mut empty = 0;
    for index in 0..8 {
        let report = work.path().join(format!("eighth-{index}.json"));
        let mut command = support::isotest();
        command
            .env("TEST_TOTAL_SHARDS", "8")
            .env("TEST_SHARD_INDEX", index.to_string())
            .arg("run")
            .arg(suite.path())
            .args(["--run-id", "eighths", "--json"])
            .arg(&report);
        run_checked(command, &[0])?;
        let ran = statuses(&json::read(&report)?);
        empty += usize::from(ran.is_empty());
        seen.extend(ran.into_keys());
    }
    seen.sort();
    if seen != names || empty == 0 {
        problems.push(format!("eight shards ran {seen:?}, {empty} of them none"));
    }
    let mut bad = support::isotest();
    bad.env("TEST_TOTAL_SHARDS", "2")
        .env("TEST_SHARD_INDEX", "2")
        .arg("run")
        .arg(suite.path());
    let expected = "TEST_TOTAL_SHARDS=2 TEST_SHARD_INDEX=2: the index is out of range";
    refused(bad, expected, &mut problems)?;
    problems_to_result(problems)
}

/// Three runs of one suite finishing at once, with one cache: the history
/// file counts all three, holds no half-written state, and no temporary
/// file is left beside it.
fn concurrent_runs_all_recorded() -> Result<(), Failed> {
    support::require_root()?;
    let suite = support::suite(&[("a.sh", "#!/bin/sh\n"), ("b.sh", "#!/bin/sh\nexit 1\n")])?;
    let work = tempfile::tempdir()?;
    let cache = work.path().join("cache");
    let running: Vec<_> = (0..3)
        .map(|_| {
            let mut command = support::isotest();
            command
                .env("XDG_CACHE_HOME", &cache)
                .arg("run")
                .arg(suite.path());
            support::start(command)
        })
        .collect::<Result<_, _>>()?;
    for run in running {
        let finished = run.finish()?;
        if finished.code != 100 {
            return Err(finished.describe().into());
        }
    }
    let dir = cache.join("isotest/history");
    let mut files: Vec<String> = std::fs::read_dir(&dir)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let [history, lock] = files.as_slice() else {
        return Err(format!("{} holds {files:?}", dir.display()).into());
    };
    if !(history.ends_with(".json") && lock.ends_with(".lock")) {
        return Err(format!("{} holds {files:?}", dir.display()).into());
    }
    let recorded = json::read(&dir.join(history))?;
    let samples = recorded["tests"]["b.sh"]["samples"]
        .as_array()
        .map(Vec::len);
    if recorded["runs"] != 3 || samples != Some(3) {
        return Err(format!("runs {}, samples of b.sh {samples:?}", recorded["runs"]).into());
    }
    Ok(())
}
