//! Checks of the cases inside tests (TAP test points, testcases of an
//! XML_OUTPUT_FILE) and of the outputs a test keeps, for fixture cases:
//!
//! ```toml
//! [tests."t.sh"]
//! cases = { "1 first" = "pass", "2 parent::1 child" = "fail" }
//!                                     # exactly these cases, by path, with these statuses:
//!                                     # <testcase name="t.sh::PATH"> (isotest.status) and
//!                                     # the JSON `cases` tree; the count in isotest.cases
//! case_messages = { "2 parent" = "got: 1" }   # in the case's JSON message and its
//!                                     # <failure>/<skipped> message or text
//! artifacts = { "log.txt" = "up" }    # files kept under --artifacts DIR/t.sh/, with text
//! terminal_contains = "(3 cases)"     # in the test's terminal line
//! ```
//!
//! A test without `cases` has no case testcases and an empty JSON `cases`;
//! one without `artifacts` keeps none (no directory, no property, null in
//! JSON). Kept outputs hold no device nodes, fifos, sockets or setuid /
//! setgid files. After every run, the run's directory of test files is
//! gone.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::junit::TestCase;

/// What a fixture expects of one test's cases and outputs.
pub struct ExpectedCases<'a> {
    pub name: &'a str,
    pub cases: Option<&'a BTreeMap<String, String>>,
    pub case_messages: &'a BTreeMap<String, String>,
    pub artifacts: &'a BTreeMap<String, String>,
}

/// The case testcases of `test` in the JUnit report, by case path.
pub fn junit_cases<'a>(
    test: &str,
    report: &'a BTreeMap<String, TestCase>,
) -> BTreeMap<String, &'a TestCase> {
    let prefix = format!("{test}::");
    report
        .iter()
        .filter_map(|(name, case)| Some((name.strip_prefix(&prefix)?.to_owned(), case)))
        .collect()
}

/// Whether a testcase name is a case of one of `tests`.
pub fn is_case_of_any<'a>(name: &str, mut tests: impl Iterator<Item = &'a String>) -> bool {
    tests.any(|test| name.starts_with(&format!("{test}::")))
}

pub fn check(
    expected: &ExpectedCases,
    report: &BTreeMap<String, TestCase>,
    json_test: Option<&Value>,
    artifacts_dir: &Path,
    problems: &mut Vec<String>,
) {
    let name = expected.name;
    let mut problem = |what: String| problems.push(format!("{name}: {what}"));
    let want: BTreeMap<String, String> = expected.cases.cloned().unwrap_or_default();
    let junit = junit_cases(name, report);
    let junit_statuses: BTreeMap<String, String> = junit
        .iter()
        .map(|(path, case)| {
            let status = case.properties.get("isotest.status").cloned();
            (path.clone(), status.unwrap_or_default())
        })
        .collect();
    if junit_statuses != want {
        problem(format!("JUnit cases {junit_statuses:?}, expected {want:?}"));
    }
    if let Some(test) = report.get(name) {
        let count = test.properties.get("isotest.cases");
        let want_count = (!want.is_empty()).then(|| want.len().to_string());
        if count != want_count.as_ref() {
            problem(format!(
                "isotest.cases is {count:?}, expected {want_count:?}"
            ));
        }
    }
    let mut json_cases = BTreeMap::new();
    if let Some(test) = json_test {
        flatten(&test["cases"], "", &mut json_cases);
    }
    let json_statuses: BTreeMap<String, String> = json_cases
        .iter()
        .map(|(path, case)| (path.clone(), case["status"].as_str().unwrap_or("").into()))
        .collect();
    if json_statuses != want {
        problem(format!("JSON cases {json_statuses:?}, expected {want:?}"));
    }
    for (path, text) in expected.case_messages {
        let in_json = json_cases
            .get(path)
            .and_then(|c| c["message"].as_str())
            .is_some_and(|m| m.contains(text.as_str()));
        let in_junit = junit.get(path).is_some_and(|case| {
            case.verdicts.iter().any(|v| {
                v.message
                    .as_deref()
                    .is_some_and(|m| m.contains(text.as_str()))
                    || v.output.contains(text.as_str())
            })
        });
        if !in_json || !in_junit {
            problem(format!(
                "case {path:?}: message lacks {text:?} (JSON: {in_json}, JUnit: {in_junit})"
            ));
        }
    }
    check_artifacts(expected, report, json_test, artifacts_dir, &mut problem);
}

/// The JSON `cases` tree as `path -> case`, paths joined by `::`.
fn flatten<'a>(cases: &'a Value, prefix: &str, into: &mut BTreeMap<String, &'a Value>) {
    for case in cases.as_array().into_iter().flatten() {
        let path = format!("{prefix}{}", case["name"].as_str().unwrap_or(""));
        into.insert(path.clone(), case);
        flatten(&case["cases"], &format!("{path}::"), into);
    }
}

fn check_artifacts(
    expected: &ExpectedCases,
    report: &BTreeMap<String, TestCase>,
    json_test: Option<&Value>,
    artifacts_dir: &Path,
    problem: &mut impl FnMut(String),
) {
    let dir = artifacts_dir.join(expected.name);
    let want = (!expected.artifacts.is_empty()).then(|| dir.display().to_string());
    let property = report
        .get(expected.name)
        .and_then(|t| t.properties.get("isotest.artifacts"));
    if property != want.as_ref() {
        problem(format!(
            "isotest.artifacts is {property:?}, expected {want:?}"
        ));
    }
    let json = json_test.and_then(|t| t["artifacts"].as_str().map(str::to_owned));
    if json != want {
        problem(format!("JSON artifacts is {json:?}, expected {want:?}"));
    }
    if want.is_none() && dir.exists() {
        problem(format!(
            "{} exists, but the test kept nothing",
            dir.display()
        ));
    }
    for harmful in harmful_files(&dir) {
        problem(format!("kept outputs hold {harmful}"));
    }
    for (file, text) in expected.artifacts {
        match std::fs::read_to_string(dir.join(file)) {
            Ok(content) if content.contains(text.as_str()) => {}
            Ok(content) => problem(format!(
                "artifact {file}: {content:?} does not contain {text:?}"
            )),
            Err(e) => problem(format!("artifact {file}: {e}")),
        }
    }
}

/// The run's directory of per-attempt test files (XML_OUTPUT_FILE,
/// outputs) is removed when the run ends.
pub fn check_files_removed(isotest_pid: u32, problems: &mut Vec<String>) {
    for parent in [Path::new("/dev/shm").to_path_buf(), std::env::temp_dir()] {
        let dir = parent.join(format!("isotest-files-{isotest_pid}"));
        if dir.exists() {
            problems.push(format!("{} is left behind after the run", dir.display()));
        }
    }
}

/// Device nodes, fifos, sockets and setuid / setgid files under `dir`.
fn harmful_files(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            found.extend(harmful_files(&entry.path()));
        } else if kind.is_file() && meta.permissions().mode() & 0o6000 != 0 {
            found.push(format!("a setuid/setgid file {}", entry.path().display()));
        } else if !kind.is_file() && !kind.is_symlink() {
            found.push(format!("a special file {}", entry.path().display()));
        }
    }
    found
}
