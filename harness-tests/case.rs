//! Fixture cases: `fixtures/<case>/case.toml` plus the suite it runs. Each
//! case is one trial: run `isotest run` on the suite with `--junit` and
//! `--json`, then check the exit code, the JUnit report (valid against
//! junit-10.xsd unless ISOTEST_HARNESS_NO_XMLLINT is set, exactly the
//! expected tests, each as expected), the JSON report (its documented shape,
//! and the same tests, statuses, attempts and figures as the JUnit report),
//! the terminal lines, and the hooks.
//!
//! case.toml:
//!
//! ```toml
//! about = "what this case proves"
//! root_only = "why"                   # skipped in the rootless lane (cgroups, other ids)
//! args = ["-j2", "--timeout", "1s"]   # extra `isotest run` arguments
//! paths = ["tests"]                   # suite paths, relative to the case (default)
//! exit_code = 100                     # of `isotest run`
//! suite_properties = { "isotest.cgroup_layout" = ["v2", "hybrid"] }
//!                                     # every <testsuite> has one of these values
//!
//! [json]                              # values in the JSON report, by JSON pointer
//! "/host/cgroups_in_use" = false
//!
//! [env]                               # set in isotest's own environment
//! NAME = "value"
//!
//! [hooks]                             # see hooks.rs
//! host_sleeper = true
//! check_no_cgroups = true
//!
//! [tests."dir/name.sh"]               # one table per test: exactly these run
//! status = "FAIL"                     # PASS, FLAKY, FAIL, SIGNAL, TIMEOUT, OOM,
//!                                     # OVER-LIMIT, REGRESSED, ERROR, SKIPPED or NOT-RUN
//! exit_code = 3                       # isotest.exit_code
//! signal = "SIGSEGV"                  # isotest.signal
//! leaked_processes = 0                # isotest.leaked_processes (absent = 0)
//! min_leaked_processes = 1            # at least this many
//! message_contains = "exit 3"         # in the verdict's message and the terminal line
//! message_matches = '^exit \d+$'      # a regex the verdict's message matches
//! output_contains = ["text"]          # in system-out + system-err (of the last attempt)
//! max_time = 4.0                      # testcase time, seconds
//! suite = "dir"                       # default: the directory part, or the root's name
//! properties = { "isotest.limit.pids" = "64" }            # exact values
//! ranges = { "isotest.oom_kills" = [1, inf] }             # numbers, bounds included
//! cpu_wall_ratio = [0.35, 0.65]       # (cpu_user_usec + cpu_system_usec) / wall_usec
//! attempts = 3                        # isotest.attempts and the JSON `attempts` (a JUnit
//!                                     # report without it means 1, or 0 for SKIPPED/NOT-RUN)
//! flaky_failures = 1                  # <flakyFailure> elements (default 0)
//! rerun_failures = 2                  # <rerunFailure> elements (default 0)
//! earlier_output = ["attempt 1"]      # the k-th earlier attempt's output contains the k-th
//! cases = { "1 first" = "pass" }      # the test's cases, `case_messages`, `artifacts`
//! terminal_contains = "(3 cases)"     # and `terminal_contains`: see cases.rs
//! ```
//!
//! Every run gets `--artifacts DIR` (a temporary directory), so what each
//! test keeps is checked.
//!
//! The verdict: a passing test (PASS, FLAKY) has no `<failure>`, `<error>`
//! or `<skipped>`; FAIL, SIGNAL, TIMEOUT, OOM, OVER-LIMIT and REGRESSED have
//! one `<failure type="STATUS">`, ERROR one `<error type="ERROR">`, SKIPPED
//! and NOT-RUN one `<skipped>` (its message is the one checked). Earlier
//! attempts of a retried test are `<flakyFailure>` (FLAKY) or
//! `<rerunFailure>` elements, one per failed attempt, and each shows on the
//! terminal as `   RETRY [ …s] name (attempt K …)`, K = 1, 2, ... A property
//! named in `properties`, `ranges` or `suite_properties` (or needed by
//! `cpu_wall_ratio`) that the report lacks is a problem. Every test has its
//! terminal line except NOT-RUN ones (a test that never started has none).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};
use serde::Deserialize;

use crate::cases;
use crate::hooks::Hooks;
use crate::json;
use crate::junit::{self, TestCase};
use crate::support::{self, Finished};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// What the case proves; shown when it fails.
    about: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default = "default_paths")]
    paths: Vec<String>,
    exit_code: i32,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    suite_properties: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    json: BTreeMap<String, toml::Value>,
    #[serde(default)]
    hooks: Hooks,
    /// Why the case needs root (cgroups, ids other than the caller's);
    /// the rootless lane skips it.
    #[serde(default)]
    #[allow(dead_code)]
    root_only: Option<String>,
    tests: BTreeMap<String, Expected>,
}

fn default_paths() -> Vec<String> {
    vec!["tests".to_owned()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    status: Status,
    exit_code: Option<i32>,
    signal: Option<String>,
    leaked_processes: Option<u32>,
    min_leaked_processes: Option<u32>,
    message_contains: Option<String>,
    message_matches: Option<String>,
    #[serde(default)]
    output_contains: Vec<String>,
    max_time: Option<f64>,
    suite: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    ranges: BTreeMap<String, [f64; 2]>,
    cpu_wall_ratio: Option<[f64; 2]>,
    attempts: Option<u32>,
    #[serde(default)]
    flaky_failures: usize,
    #[serde(default)]
    rerun_failures: usize,
    #[serde(default)]
    earlier_output: Vec<String>,
    /// See cases.rs.
    cases: Option<BTreeMap<String, String>>,
    #[serde(default)]
    case_messages: BTreeMap<String, String>,
    #[serde(default)]
    artifacts: BTreeMap<String, String>,
    terminal_contains: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Status {
    Pass,
    Flaky,
    Fail,
    Signal,
    Timeout,
    #[serde(rename = "OOM")]
    Oom,
    #[serde(rename = "OVER-LIMIT")]
    OverLimit,
    Regressed,
    Error,
    Skipped,
    #[serde(rename = "NOT-RUN")]
    NotRun,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Flaky => "FLAKY",
            Status::Fail => "FAIL",
            Status::Signal => "SIGNAL",
            Status::Timeout => "TIMEOUT",
            Status::Oom => "OOM",
            Status::OverLimit => "OVER-LIMIT",
            Status::Regressed => "REGRESSED",
            Status::Error => "ERROR",
            Status::Skipped => "SKIPPED",
            Status::NotRun => "NOT-RUN",
        }
    }

    /// The element a non-passing test carries in the report.
    fn verdict_element(self) -> Option<&'static str> {
        match self {
            Status::Pass | Status::Flaky => None,
            Status::Fail
            | Status::Signal
            | Status::Timeout
            | Status::Oom
            | Status::OverLimit
            | Status::Regressed => Some("failure"),
            Status::Error => Some("error"),
            Status::Skipped | Status::NotRun => Some("skipped"),
        }
    }
}

/// One trial per directory of fixtures/ (each must hold a case.toml),
/// except fixtures/drivers/: the programs the driver trials build
/// (drivers.rs).
pub fn trials() -> Vec<Trial> {
    let dir = support::fixtures_dir();
    let mut cases: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.ends_with(DRIVER_FIXTURES))
            .collect(),
        Err(e) => {
            let message = format!("read {}: {e}", dir.display());
            return vec![Trial::test("fixtures", move || Err(message.into()))];
        }
    };
    cases.sort();
    cases
        .into_iter()
        .map(|case_dir| {
            let name = case_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let skip = support::rootless_lane() && is_root_only(&case_dir);
            Trial::test(format!("fixture::{name}"), move || run_case(&case_dir))
                .with_ignored_flag(skip)
        })
        .collect()
}

/// The driver trials' fixtures, under fixtures/.
pub const DRIVER_FIXTURES: &str = "drivers";

/// Whether the case's case.toml says `root_only` (read when listing, so
/// the rootless lane can skip it).
fn is_root_only(case_dir: &Path) -> bool {
    std::fs::read_to_string(case_dir.join("case.toml"))
        .is_ok_and(|text| text.lines().any(|line| line.starts_with("root_only")))
}

fn run_case(case_dir: &Path) -> Result<(), Failed> {
    support::require_root()?;
    support::require_xmllint()?;
    let case_file = case_dir.join("case.toml");
    let text = std::fs::read_to_string(&case_file)
        .map_err(|e| format!("read {}: {e}", case_file.display()))?;
    let case: CaseFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", case_file.display()))?;
    let roots = case
        .paths
        .iter()
        .map(|p| {
            case_dir
                .join(p)
                .canonicalize()
                .map_err(|e| format!("{p}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if roots.is_empty() {
        return Err(format!("{}: `paths` is empty", case_file.display()).into());
    }

    let scratch = tempfile::tempdir().map_err(|e| format!("create a temporary directory: {e}"))?;
    let junit_path = scratch.path().join("junit.xml");
    let json_path = scratch.path().join("report.json");
    let hostname = support::host_hostname()?;
    let armed = case.hooks.arm(case_dir)?;

    let mut command = support::isotest();
    command.arg("run").args(&case.args);
    for (key, value) in &armed.env {
        command.arg("--env").arg(format!("{key}={value}"));
    }
    command
        .arg("--artifacts")
        .arg(scratch.path().join("artifacts"))
        .arg("--junit")
        .arg(&junit_path)
        .arg("--json")
        .arg(&json_path)
        .args(&roots)
        .envs(&case.env);
    armed.prepare(&mut command);
    let finished = support::run(command)?;

    let mut problems = Vec::new();
    armed.check(finished.pid, &mut problems);
    cases::check_files_removed(finished.pid, &mut problems);
    match support::host_hostname() {
        Ok(after) if after == hostname => {}
        Ok(after) => problems.push(format!(
            "the host's hostname changed from {hostname:?} to {after:?}"
        )),
        Err(e) => problems.push(e),
    }
    if finished.code != case.exit_code {
        problems.push(format!(
            "`isotest run` exited with {}, expected {}",
            finished.code, case.exit_code
        ));
    }
    let root_name = roots[0]
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let reports = Reports {
        junit: &junit_path,
        json: &json_path,
        scratch: scratch.path(),
    };
    check_report(&case, &root_name, &reports, &finished, &mut problems);

    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{} problem(s):\n  - {}\n\nisotest {}",
            case.about,
            problems.len(),
            problems.join("\n  - "),
            finished.describe()
        )
        .into())
    }
}

/// Where a run wrote its reports.
struct Reports<'a> {
    junit: &'a Path,
    json: &'a Path,
    /// A directory for files the checks need.
    scratch: &'a Path,
}

fn check_report(
    case: &CaseFile,
    root_name: &str,
    reports: &Reports,
    finished: &Finished,
    problems: &mut Vec<String>,
) {
    let junit_path = reports.junit;
    let xml = match std::fs::read(junit_path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(xml) => xml,
            Err(e) => return problems.push(format!("the JUnit report is not UTF-8: {e}")),
        },
        Err(e) => {
            return problems.push(format!("no JUnit report at {}: {e}", junit_path.display()))
        }
    };
    if let Err(e) = junit::validate_schema(&xml, reports.scratch) {
        problems.push(e);
    }
    let report = match junit::parse(&xml, problems) {
        Ok(report) => report,
        Err(e) => return problems.push(e),
    };

    let unexpected: Vec<_> = report
        .keys()
        .filter(|name| {
            !case.tests.contains_key(*name) && !cases::is_case_of_any(name, case.tests.keys())
        })
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!(
            "tests in the report that should not have run: {unexpected:?}"
        ));
    }
    for (name, expected) in &case.tests {
        match report.get(name) {
            None => problems.push(format!("{name}: not in the JUnit report")),
            Some(actual) => {
                check_test(name, expected, actual, root_name, problems);
                check_usage(name, expected, actual, problems);
                check_suite_properties(name, &case.suite_properties, actual, problems);
            }
        }
        check_terminal_line(name, expected, &finished.stdout, problems);
        check_retry_lines(name, expected, &finished.stdout, problems);
    }
    check_json(case, reports.json, &report, problems);
    check_cases(case, reports, &report, problems);
}

/// Each test's cases and kept outputs (cases.rs).
fn check_cases(
    case: &CaseFile,
    reports: &Reports,
    report: &BTreeMap<String, TestCase>,
    problems: &mut Vec<String>,
) {
    let json_report = json::read(reports.json).unwrap_or_default();
    let json_tests: BTreeMap<&str, &serde_json::Value> = json_report["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["name"].as_str()?, t)))
        .collect();
    for (name, expected) in &case.tests {
        let expected_cases = cases::ExpectedCases {
            name,
            cases: expected.cases.as_ref(),
            case_messages: &expected.case_messages,
            artifacts: &expected.artifacts,
        };
        let artifacts = reports.scratch.join("artifacts");
        let json_test = json_tests.get(name.as_str()).copied();
        cases::check(&expected_cases, report, json_test, &artifacts, problems);
    }
}

/// The JSON report holds the same tests as the JUnit report, each agreeing
/// with its testcase.
fn check_json(
    case: &CaseFile,
    json_path: &Path,
    junit_report: &BTreeMap<String, TestCase>,
    problems: &mut Vec<String>,
) {
    let report = match json::read(json_path) {
        Ok(report) => report,
        Err(e) => return problems.push(e),
    };
    for (pointer, want) in &case.json {
        let want = serde_json::to_value(want).unwrap_or_default();
        match report.pointer(pointer) {
            Some(value) if *value == want => {}
            value => problems.push(format!(
                "JSON report: {pointer} is {value:?}, expected {want}"
            )),
        }
    }
    let tests = json::tests(&report, problems);
    let names: Vec<&String> = tests.keys().collect();
    let expected: Vec<&String> = case.tests.keys().collect();
    if names != expected {
        problems.push(format!(
            "JSON report: tests {names:?}, expected {expected:?}"
        ));
    }
    let cgroups_in_use = report["host"]["cgroups_in_use"].as_bool().unwrap_or(true);
    for (name, test) in tests {
        if let Some(junit) = junit_report.get(&name) {
            json::check_agrees_with_junit(&name, test, junit, cgroups_in_use, problems);
        }
        let want = case.tests.get(&name).and_then(|e| e.attempts);
        if let Some(want) = want.filter(|want| test["attempts"] != *want) {
            problems.push(format!(
                "{name}: JSON report: attempts is {}, expected {want}",
                test["attempts"]
            ));
        }
    }
}

fn check_test(
    name: &str,
    expected: &Expected,
    actual: &TestCase,
    root_name: &str,
    problems: &mut Vec<String>,
) {
    let mut problem = |what: String| problems.push(format!("{name}: {what}"));
    let property = |key: &str| actual.properties.get(key).map(String::as_str);
    let label = expected.status.label();

    if property("isotest.status") != Some(label) {
        problem(format!(
            "isotest.status is {:?}, expected {label:?}",
            property("isotest.status")
        ));
    }
    let verdicts: Vec<_> = actual.verdicts.iter().collect();
    match expected.status.verdict_element() {
        None if verdicts.is_empty() => {}
        None => problem(format!("passed, but has a <{}>", verdicts[0].element)),
        Some(element) => match verdicts.as_slice() {
            // <skipped> has no type; the status property says which it is.
            [verdict]
                if verdict.element == element
                    && (element == "skipped" || verdict.kind.as_deref() == Some(label)) =>
            {
                let message = verdict.message.as_deref().unwrap_or_default();
                if let Some(text) = &expected.message_contains {
                    if !message.contains(text.as_str()) {
                        problem(format!(
                            "<{element}> message {message:?} does not contain {text:?}"
                        ));
                    }
                }
                if let Some(pattern) = &expected.message_matches {
                    match regex::Regex::new(pattern) {
                        Ok(regex) if regex.is_match(message) => {}
                        Ok(_) => problem(format!(
                            "<{element}> message {message:?} does not match /{pattern}/"
                        )),
                        Err(e) => problem(format!("bad message_matches /{pattern}/: {e}")),
                    }
                }
            }
            _ => problem(format!(
                "expected one <{element}{}>, found {:?}",
                if element == "skipped" {
                    String::new()
                } else {
                    format!(" type=\"{label}\"")
                },
                verdicts
                    .iter()
                    .map(|v| (&v.element, &v.kind))
                    .collect::<Vec<_>>()
            )),
        },
    }
    if expected.message_matches.is_some() && expected.status.verdict_element().is_none() {
        problem("message_matches is given for a passing status: no message to match".into());
    }
    check_reruns(expected, actual, &mut problem);
    if let Some(code) = expected.exit_code {
        if property("isotest.exit_code") != Some(code.to_string().as_str()) {
            problem(format!(
                "isotest.exit_code is {:?}, expected {code}",
                property("isotest.exit_code")
            ));
        }
    }
    if let Some(signal) = &expected.signal {
        if property("isotest.signal") != Some(signal.as_str()) {
            problem(format!(
                "isotest.signal is {:?}, expected {signal:?}",
                property("isotest.signal")
            ));
        }
    }
    let leaked = property("isotest.leaked_processes").unwrap_or("0");
    match leaked.parse::<u32>() {
        Ok(count) => {
            if expected.leaked_processes.is_some_and(|want| count != want) {
                problem(format!(
                    "{count} leaked processes, expected {:?}",
                    expected.leaked_processes
                ));
            }
            if expected.min_leaked_processes.is_some_and(|min| count < min) {
                problem(format!(
                    "{count} leaked processes, expected at least {:?}",
                    expected.min_leaked_processes
                ));
            }
        }
        Err(_) => problem(format!(
            "isotest.leaked_processes is {leaked:?}, not a count"
        )),
    }
    for text in &expected.output_contains {
        if !actual.output.contains(text.as_str()) {
            problem(format!("system-out/system-err does not contain {text:?}"));
        }
    }
    if let Some(max) = expected.max_time {
        match actual.time {
            Some(time) if time <= max => {}
            time => problem(format!("time {time:?}, expected at most {max}s")),
        }
    }
    let suite = expected
        .suite
        .clone()
        .unwrap_or_else(|| match name.rsplit_once('/') {
            Some((dir, _)) => dir.to_owned(),
            None => root_name.to_owned(),
        });
    if actual.suite != suite {
        problem(format!("in suite {:?}, expected {suite:?}", actual.suite));
    }
}

/// The earlier attempts: `<flakyFailure>` / `<rerunFailure>` elements, each
/// with a type and message and its own output; `attempts`.
fn check_reruns(expected: &Expected, actual: &TestCase, problem: &mut impl FnMut(String)) {
    let count = |element: &str| {
        actual
            .reruns
            .iter()
            .filter(|r| r.element == element)
            .count()
    };
    for (element, want) in [
        ("flakyFailure", expected.flaky_failures),
        ("rerunFailure", expected.rerun_failures),
        ("flakyError", 0),
        ("rerunError", 0),
    ] {
        if count(element) != want {
            problem(format!(
                "{} <{element}> element(s), expected {want}",
                count(element)
            ));
        }
    }
    for (k, rerun) in actual.reruns.iter().enumerate() {
        if rerun.kind.is_none() || rerun.message.is_none() {
            problem(format!(
                "earlier attempt {}: <{}> lacks its type or message",
                k + 1,
                rerun.element
            ));
        }
        if let Some(text) = expected.earlier_output.get(k) {
            if !rerun.output.contains(text.as_str()) {
                problem(format!(
                    "earlier attempt {}: its output {:?} does not contain {text:?}",
                    k + 1,
                    rerun.output
                ));
            }
        }
    }
    if expected.earlier_output.len() > actual.reruns.len() {
        problem(format!(
            "earlier_output names {} attempts, the report has {}",
            expected.earlier_output.len(),
            actual.reruns.len()
        ));
    }
    let attempts = actual.properties.get("isotest.attempts");
    if let Some(want) = expected.attempts {
        let default = match expected.status {
            Status::Skipped | Status::NotRun => 0,
            _ => 1,
        };
        let got = attempts.map_or(Ok(default), |a| a.parse::<u32>());
        if got != Ok(want) {
            problem(format!("isotest.attempts is {attempts:?}, expected {want}"));
        }
    }
}

/// `properties`, `ranges` and `cpu_wall_ratio`.
fn check_usage(name: &str, expected: &Expected, actual: &TestCase, problems: &mut Vec<String>) {
    let mut problem = |what: String| problems.push(format!("{name}: {what}"));
    let property = |key: &str| actual.properties.get(key).map(String::as_str);
    let number = |key: &str| match property(key) {
        None => Err(format!("{key} is absent")),
        Some(value) => value
            .parse::<f64>()
            .map_err(|_| format!("{key} is {value:?}, not a number")),
    };
    for (key, want) in &expected.properties {
        if property(key) != Some(want.as_str()) {
            problem(format!("{key} is {:?}, expected {want:?}", property(key)));
        }
    }
    for (key, [min, max]) in &expected.ranges {
        match number(key) {
            Ok(value) if (*min..=*max).contains(&value) => {}
            Ok(value) => problem(format!("{key} is {value}, expected {min} to {max}")),
            Err(e) => problem(e),
        }
    }
    if let Some([min, max]) = expected.cpu_wall_ratio {
        let figures = (
            number("isotest.cpu_user_usec"),
            number("isotest.cpu_system_usec"),
            number("isotest.wall_usec"),
        );
        match figures {
            (Ok(user), Ok(system), Ok(wall)) if wall > 0.0 => {
                let ratio = (user + system) / wall;
                if !(min..=max).contains(&ratio) {
                    problem(format!(
                        "CPU time / wall time is {ratio:.3} ({user} + {system} µs in {wall} µs), \
                         expected {min} to {max} (a host busy with other work gives less: \
                         load average now {}, {} CPUs)",
                        std::fs::read_to_string("/proc/loadavg")
                            .unwrap_or_default()
                            .split(' ')
                            .take(3)
                            .collect::<Vec<_>>()
                            .join(" "),
                        std::thread::available_parallelism().map_or(0, |n| n.get())
                    ));
                }
            }
            (Ok(_), Ok(_), Ok(wall)) => problem(format!("isotest.wall_usec is {wall}")),
            (user, system, wall) => {
                for e in [user, system, wall].into_iter().filter_map(Result::err) {
                    problem(e);
                }
            }
        }
    }
}

/// Each `suite_properties` key is on the test's <testsuite>, with one of the
/// accepted values.
fn check_suite_properties(
    name: &str,
    expected: &BTreeMap<String, Vec<String>>,
    actual: &TestCase,
    problems: &mut Vec<String>,
) {
    for (key, accepted) in expected {
        let value = actual.suite_properties.get(key);
        if !value.is_some_and(|v| accepted.contains(v)) {
            problems.push(format!(
                "{name}: its testsuite's {key} is {value:?}, expected one of {accepted:?}"
            ));
        }
    }
}

/// The terminal shows `    FAIL [   0.210s] dir/name.sh (exit 1)`: status
/// right-aligned in 8 columns, the time, the name, then details (the message
/// and leaked processes in parentheses, maybe more). No colour: stdout is a
/// pipe.
fn check_terminal_line(name: &str, expected: &Expected, stdout: &str, problems: &mut Vec<String>) {
    let prefix = format!("{:>8} [", expected.status.label());
    let line = stdout.lines().find(|line| {
        let Some(rest) = line.strip_prefix(prefix.as_str()) else {
            return false;
        };
        let Some((time, after)) = rest.split_once("] ") else {
            return false;
        };
        let time_ok = time
            .trim()
            .strip_suffix('s')
            .is_some_and(|t| t.parse::<f64>().is_ok());
        time_ok && (after == name || after.starts_with(&format!("{name} ")))
    });
    let Some(line) = line else {
        if expected.status == Status::NotRun {
            return;
        }
        return problems.push(format!(
            "{name}: no terminal line `{prefix}  …s] {name}` in isotest's stdout"
        ));
    };
    if line.contains('\x1b') {
        problems.push(format!(
            "{name}: terminal line has colour codes though stdout is not a TTY: {line:?}"
        ));
    }
    for text in [&expected.message_contains, &expected.terminal_contains]
        .into_iter()
        .flatten()
    {
        if !line.contains(text.as_str()) {
            problems.push(format!(
                "{name}: terminal line {line:?} does not contain {text:?}"
            ));
        }
    }
    if expected.min_leaked_processes.is_some_and(|n| n > 0) && !line.contains("leaked process") {
        problems.push(format!(
            "{name}: terminal line {line:?} does not mention the leaked processes"
        ));
    }
}

/// One `   RETRY [   0.012s] name (attempt K STATUS: message)` line per
/// earlier attempt, K = 1, 2, ... in order.
fn check_retry_lines(name: &str, expected: &Expected, stdout: &str, problems: &mut Vec<String>) {
    let numbers: Vec<Option<usize>> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("   RETRY ["))
        .filter_map(|rest| rest.split_once("] ").map(|(_, after)| after))
        .filter_map(|after| after.strip_prefix(&format!("{name} (attempt ")))
        .map(|rest| rest.split(' ').next().and_then(|k| k.parse::<usize>().ok()))
        .collect();
    let earlier = expected.flaky_failures + expected.rerun_failures;
    let want: Vec<Option<usize>> = (1..=earlier).map(Some).collect();
    if numbers != want {
        problems.push(format!(
            "{name}: RETRY lines for attempts {numbers:?}, expected {want:?} \
             (`   RETRY [ …s] {name} (attempt K …)`)"
        ));
    }
}
