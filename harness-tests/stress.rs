//! Load: 2,000 generated tests at -j8 mixing every way a test can end
//! (pass, fail, timeout, OOM, fork bomb, daemons left behind, large output).
//! Every result must be classified right, the runner's open file
//! descriptors must not grow with the number of tests run, and nothing of
//! the run may be left behind: cgroups, mounts, processes, /tmp paths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::support::{self, isotest};
use crate::{cgroups, hooks, json, junit};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "stress::two_thousand_tests",
        two_thousand_tests,
    )]
}

/// In the command line of the processes the daemon tests leave behind.
const DAEMON_MARKER: &str = "1000.5151";
/// The process limit of the fork bombs' directory.
const BOMB_PIDS: u64 = 32;
/// Bytes each large-output test prints.
const LARGE_OUTPUT: u64 = 8 << 20;
/// How much the runner's open fd count may exceed its early level at the
/// end of the run (slots busy at different moments, a report being written).
const FD_SLACK: usize = 8;

/// How a generated test is made to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Pass,
    Fail(u8),
    Timeout,
    Oom,
    ForkBomb,
    Daemon,
    LargeOutput,
}

/// The suite: (test name, its kind). Slow kinds are few, so the run stays
/// short on a small machine; 2,000 tests in all.
fn plan() -> Vec<(String, Kind)> {
    let mut tests = Vec::new();
    let mut add = |dir: &str, stem: &str, count: usize, kind: fn(usize) -> Kind| {
        for i in 0..count {
            tests.push((format!("{dir}/{stem}_{i:04}.sh"), kind(i)));
        }
    };
    add("timeout", "sleeps", 20, |_| Kind::Timeout);
    add("oom", "hog", 20, |_| Kind::Oom);
    add("bomb", "bomb", 10, |_| Kind::ForkBomb);
    add("daemon", "daemon", 50, |_| Kind::Daemon);
    add("output", "large", 10, |_| Kind::LargeOutput);
    // Exit codes 1..=125 (126 and up read as "not executable", "not found",
    // signals; 77 is SKIPPED).
    add("fail", "fails", 400, |i| Kind::Fail((i % 125) as u8 + 1));
    add("pass", "passes", 1490, |_| Kind::Pass);
    tests
}

fn script(kind: Kind) -> String {
    let body = match kind {
        Kind::Pass => "exit 0".to_owned(),
        Kind::Fail(code) => format!("exit {code}"),
        Kind::Timeout => "sleep 30".to_owned(),
        Kind::Oom => "dd if=/dev/zero of=/dev/null bs=64M count=1".to_owned(),
        // The sleeper starts before the bomb can take every process slot,
        // and the bomb runs in a subshell (a dash that cannot fork exits 2:
        // the test's own shell forks once). The shell waits for the sleeper
        // alone (the bomb never ends by itself) and exits 0 while the bomb
        // still runs: the container kills it.
        Kind::ForkBomb => "sleep 0.5 &\nsleeper=$!\nbomb() { bomb | bomb & }\n\
                           (bomb 2>/dev/null) &\nwait \"$sleeper\"\nexit 0"
            .to_owned(),
        Kind::Daemon => format!("(sleep {DAEMON_MARKER} &); exit 0"),
        Kind::LargeOutput => format!("head -c {LARGE_OUTPUT} /dev/zero | tr '\\0' x"),
    };
    format!("#!/bin/sh\n{body}\n")
}

/// Host state a run may leave debris in, before and after.
struct HostState {
    isotest_mounts: BTreeSet<String>,
    tmp_paths: BTreeSet<String>,
}

impl HostState {
    fn now() -> Result<Self, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
        let isotest_mounts = mountinfo
            .lines()
            .filter(|l| l.contains("isotest"))
            .map(str::to_owned)
            .collect();
        let tmp_paths = std::fs::read_dir("/tmp")
            .map_err(|e| format!("read /tmp: {e}"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // The harnesses' own cache directories (support::isotest) are
            // not isotest's: this one's may appear during the trial when it
            // runs alone, and other harness processes come and go.
            .filter(|name| name.contains("isotest") && !name.starts_with("isotest-harness-caches-"))
            .collect();
        Ok(HostState {
            isotest_mounts,
            tmp_paths,
        })
    }
}

/// Samples the open fd count of `pid` every ~200 ms until `stop` is set,
/// as (seconds since start, count); samples after the process went away
/// are dropped.
fn sample_fds(pid: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<(f64, usize)>> {
    thread::spawn(move || {
        let started = Instant::now();
        let dir = format!("/proc/{pid}/fd");
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let count = entries.count();
                if count > 0 {
                    samples.push((started.elapsed().as_secs_f64(), count));
                }
            }
            thread::sleep(Duration::from_millis(200));
        }
        samples
    })
}

/// 2,000 tests at -j8 under `--timeout 1s --grace 0.5s`: every status is
/// the one its test was generated for, the run exits 100, the runner's fd
/// count does not grow with the tests run (see `check_fds`),
/// and no cgroup, mount, process or /tmp path of the run is left.
fn two_thousand_tests() -> Result<(), Failed> {
    support::require_root()?;
    support::require_xmllint()?;
    let plan = plan();
    let scripts: Vec<(String, String)> = plan
        .iter()
        .map(|(name, kind)| (name.clone(), script(*kind)))
        .collect();
    let borrowed: Vec<(&str, &str)> = scripts
        .iter()
        .map(|(name, content)| (name.as_str(), content.as_str()))
        .collect();
    let suite = support::suite(&borrowed)?;
    support::write_file(
        &suite.path().join("oom/isotest.toml"),
        "[[override]]\nfilter = \"oom/*\"\nmemory = \"16M\"\n",
        0o644,
    )?;
    support::write_file(
        &suite.path().join("bomb/isotest.toml"),
        &format!("pids = {BOMB_PIDS}\n"),
        0o644,
    )?;
    let scratch = tempfile::tempdir()?;
    let junit_path = scratch.path().join("junit.xml");
    let json_path = scratch.path().join("report.json");

    let before = HostState::now()?;
    let started = Instant::now();
    let mut command = isotest();
    command
        .args([
            "run",
            "-j8",
            "--timeout",
            "1s",
            "--grace",
            "0.5s",
            "--junit",
        ])
        .arg(&junit_path)
        .arg("--json")
        .arg(&json_path)
        .arg(suite.path());
    let runner = support::start(command)?;
    let runner_pid = runner.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_fds(runner_pid, stop.clone());
    let finished = runner.finish_within(Duration::from_secs(170));
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    let finished = finished?;
    let wall = started.elapsed();

    let mut problems = Vec::new();
    check_leftovers(runner_pid, &before, &mut problems);
    if finished.code != 100 {
        problems.push(format!("exited with {}, expected 100", finished.code));
    }
    check_fds(&samples, &mut problems);
    check_reports(
        &plan,
        &json_path,
        &junit_path,
        scratch.path(),
        &mut problems,
    )?;
    if problems.is_empty() {
        eprintln!(
            "stress: 2000 tests in {:.1} s; runner fds {}",
            wall.as_secs_f64(),
            fd_summary(&samples)
        );
        return Ok(());
    }
    Err(format!(
        "2,000 tests at -j8 ({:.1} s; runner fds {}):\n  - {}\nisotest {}",
        wall.as_secs_f64(),
        fd_summary(&samples),
        problems.join("\n  - "),
        finished.describe()
    )
    .into())
}

fn fd_summary(samples: &[(f64, usize)]) -> String {
    let counts: Vec<usize> = samples.iter().map(|(_, n)| *n).collect();
    format!(
        "{} samples, min {}, max {}, first {:?}, last {:?}",
        counts.len(),
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0),
        counts.first(),
        counts.last()
    )
}

/// Two checks, each with `FD_SLACK`: the fd count at the end of the run
/// against the most in the first quarter of the run, and the median of the
/// last quarter against the median of the first (one sample depends on what
/// the 8 slots were doing at that instant; a leak per test moves the median).
fn check_fds(samples: &[(f64, usize)], problems: &mut Vec<String>) {
    if samples.len() < 8 {
        problems.push(format!(
            "only {} samples of the runner's fd count (expected a run of several seconds): {samples:?}",
            samples.len()
        ));
        return;
    }
    let quarter = samples.len() / 4;
    let counts = |range: &[(f64, usize)]| {
        let mut counts: Vec<usize> = range.iter().map(|(_, n)| *n).collect();
        counts.sort_unstable();
        counts
    };
    let early = counts(&samples[..quarter]);
    let late = counts(&samples[samples.len() - quarter..]);
    let early_max = early[early.len() - 1];
    let (early_median, late_median) = (early[early.len() / 2], late[late.len() / 2]);
    let last = samples[samples.len() - 1].1;
    if last > early_max + FD_SLACK || late_median > early_median + FD_SLACK {
        problems.push(format!(
            "the runner's open fds grew: {last} at the end against at most {early_max} in the \
             first quarter of the run; median {late_median} in the last quarter against \
             {early_median} in the first (slack {FD_SLACK}); samples (s, fds): {samples:?}"
        ));
    }
}

fn check_leftovers(runner_pid: u32, before: &HostState, problems: &mut Vec<String>) {
    let left = cgroups::of_runner(runner_pid);
    if !left.is_empty() {
        problems.push(format!("test cgroups left behind: {left:?}"));
        cgroups::remove(&left);
    }
    if let Err(e) = hooks::kill_leftovers(DAEMON_MARKER) {
        problems.push(e);
    }
    if let Err(e) = hooks::kill_leftovers(&format!("__sandbox-server {runner_pid}")) {
        problems.push(e);
    }
    match HostState::now() {
        Ok(after) => {
            let mounts: Vec<_> = after
                .isotest_mounts
                .difference(&before.isotest_mounts)
                .collect();
            if !mounts.is_empty() {
                problems.push(format!("mounts left behind: {mounts:?}"));
            }
            let paths: Vec<_> = after.tmp_paths.difference(&before.tmp_paths).collect();
            if !paths.is_empty() {
                problems.push(format!("/tmp paths left behind: {paths:?}"));
            }
        }
        Err(e) => problems.push(e),
    }
}

/// Checks both reports: valid, 2,000 tests, and every test's status and
/// figures as its kind requires.
fn check_reports(
    plan: &[(String, Kind)],
    json_path: &Path,
    junit_path: &Path,
    scratch: &Path,
    problems: &mut Vec<String>,
) -> Result<(), String> {
    let xml = std::fs::read_to_string(junit_path)
        .map_err(|e| format!("no JUnit report at {}: {e}", junit_path.display()))?;
    if let Err(e) = junit::validate_schema(&xml, scratch) {
        problems.push(e);
    }
    let cases = junit::parse(&xml, problems)?;
    if cases.len() != plan.len() {
        problems.push(format!(
            "{} testcases in the JUnit report, expected {}",
            cases.len(),
            plan.len()
        ));
    }
    let report = json::read(json_path)?;
    let tests = json::tests(&report, problems);
    if tests.len() != plan.len() {
        problems.push(format!(
            "{} tests in the JSON report, expected {}",
            tests.len(),
            plan.len()
        ));
    }
    let mut misclassified: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for (name, kind) in plan {
        let Some(test) = tests.get(name) else {
            problems.push(format!("{name} ({kind:?}) is missing from the JSON report"));
            continue;
        };
        if let Err(why) = classified(*kind, test) {
            misclassified
                .entry(*kind)
                .or_default()
                .push(format!("{name}: {why}"));
        }
        if let Some(case) = cases.get(name) {
            let got = case.properties.get("isotest.status");
            if got.map(String::as_str) != test["status"].as_str() {
                problems.push(format!(
                    "{name}: isotest.status {got:?} in the JUnit report, {} in the JSON report",
                    test["status"]
                ));
            }
        }
    }
    for (kind, wrong) in misclassified {
        let shown: Vec<_> = wrong.iter().take(5).collect();
        problems.push(format!(
            "{} {kind:?} test(s) misclassified, e.g. {shown:#?}",
            wrong.len()
        ));
    }
    Ok(())
}

/// Whether a test of `kind` ended as it must, or why not.
fn classified(kind: Kind, test: &Value) -> Result<(), String> {
    let status = test["status"].as_str().unwrap_or_default();
    let message = test["message"].as_str().unwrap_or_default();
    let exit_code = test["exit_code"].as_i64();
    let leaked = test["leaked_processes"].as_u64().unwrap_or(0);
    let usage = &test["usage"];
    let seen = || {
        format!(
            "status {status}, message {message:?}, exit code {exit_code:?}, signal {}, \
             leaked {leaked}, usage {usage}, limits {}",
            test["signal"], test["limits"]
        )
    };
    let ok = match kind {
        Kind::Pass => status == "PASS" && exit_code == Some(0),
        // 77 is the skip exit code.
        Kind::Fail(77) => {
            status == "SKIPPED" && exit_code == Some(77) && message == "skipped: exit 77"
        }
        Kind::Fail(code) => {
            status == "FAIL" && exit_code == Some(code.into()) && message == format!("exit {code}")
        }
        Kind::Timeout => status == "TIMEOUT" && message.contains("timed out after 1.0"),
        Kind::Oom => {
            status == "OOM"
                && usage["oom_kills"].as_u64().is_some_and(|n| n >= 1)
                && test["limits"]["memory_bytes"] == 16 << 20
        }
        // Exits 0 while the bomb runs (PASS); on a starved machine the
        // sleeper may not be reaped within the timeout (TIMEOUT). Either
        // way the process limit held, and the message names it.
        Kind::ForkBomb => {
            let max = format!("process limit of {BOMB_PIDS}");
            (status == "PASS" && exit_code == Some(0) || status == "TIMEOUT")
                && message.contains(&max)
                && message.contains("fork(s) refused")
                && usage["pids_max_hits"].as_u64().is_some_and(|n| n >= 1)
                && usage["pids_peak"].as_u64().is_some_and(|n| n <= BOMB_PIDS)
                && test["limits"]["pids"] == BOMB_PIDS
        }
        Kind::Daemon => status == "PASS" && exit_code == Some(0) && leaked >= 1,
        Kind::LargeOutput => {
            status == "PASS"
                && exit_code == Some(0)
                && test["stdout_bytes"].as_u64() == Some(LARGE_OUTPUT)
                && test["stdout"]
                    .as_str()
                    .is_some_and(|s| s.contains("bytes of output dropped here"))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(seen())
    }
}
