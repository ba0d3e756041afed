//! Faults a fixture case cannot hold (fixtures/faults has the rest): test
//! files whose names git cannot carry reliably (a newline, bytes that are
//! not UTF-8), created at run time, and test files deleted or made
//! non-executable on the host while the run goes on.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use libtest_mimic::{Failed, Trial};

use crate::support::{self, isotest, Finished};
use crate::{hooks, json, junit};

type Check = fn() -> Result<(), Failed>;

pub fn trials() -> Vec<Trial> {
    let trials: [(&str, Check); 2] = [
        ("hostile_file_names", hostile_file_names),
        ("test_files_vanish_mid_run", test_files_vanish_mid_run),
    ];
    trials
        .into_iter()
        .map(|(name, check)| Trial::test(format!("faults::{name}"), check))
        .collect()
}

/// Writes an executable test script named by raw bytes into `dir`.
fn write_test(dir: &Path, name: &[u8], body: &str) -> Result<(), String> {
    let path = dir.join(OsStr::from_bytes(name));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))
        .and_then(|_| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// The JUnit report (valid against junit-10.xsd, well-formed) and the JSON
/// report (parses, documented shape) of a finished run, as
/// (JUnit testcases by name, JSON tests' (name, status)).
type Reports = (
    std::collections::BTreeMap<String, junit::TestCase>,
    Vec<(String, String)>,
);

fn read_reports(
    junit_path: &Path,
    json_path: &Path,
    scratch: &Path,
    problems: &mut Vec<String>,
) -> Result<Reports, String> {
    let xml = std::fs::read(junit_path)
        .map_err(|e| format!("no JUnit report at {}: {e}", junit_path.display()))?;
    let xml = String::from_utf8(xml).map_err(|e| format!("the JUnit report is not UTF-8: {e}"))?;
    if let Err(e) = junit::validate_schema(&xml, scratch) {
        problems.push(e);
    }
    let cases = junit::parse(&xml, problems)?;
    let report = json::read(json_path)?;
    json::tests(&report, problems);
    let tests = report["tests"]
        .as_array()
        .map(|tests| {
            tests
                .iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        t["status"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((cases, tests))
}

fn fail_with(what: &str, problems: Vec<String>, finished: &Finished) -> Result<(), Failed> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what}:\n  - {}\nisotest {}",
            problems.join("\n  - "),
            finished.describe()
        )
        .into())
    }
}

/// Tests whose file names hold spaces, a newline, XML specials and bytes
/// that are not UTF-8 run like any other: the JUnit report is valid and has
/// one testcase per test with its status, and the JSON report parses and
/// agrees.
fn hostile_file_names() -> Result<(), Failed> {
    support::require_root()?;
    support::require_xmllint()?;
    let suite = support::suite(&[])?;
    // (file name, body, how the name reads in the reports, status)
    let tests: [(&[u8], &str, &str, &str); 5] = [
        (b"with  spaces .sh", "exit 0", "with  spaces .sh", "PASS"),
        (b"new\nline.sh", "exit 1", "new\\x0aline.sh", "FAIL"),
        (
            b"xml <&>\"' ]]> specials.sh",
            "exit 0",
            "xml <&>\"' ]]> specials.sh",
            "PASS",
        ),
        (
            b"bytes-\xff\xfe-not-utf8.sh",
            "exit 2",
            "bytes-\\xff\\xfe-not-utf8.sh",
            "FAIL",
        ),
        // Differs from the one above only in bytes that are not UTF-8: the
        // two must keep distinct names.
        (
            b"bytes-\xfe\xff-not-utf8.sh",
            "exit 0",
            "bytes-\\xfe\\xff-not-utf8.sh",
            "PASS",
        ),
    ];
    for (name, body, _, _) in &tests {
        write_test(suite.path(), name, body)?;
    }
    let scratch = tempfile::tempdir()?;
    let junit_path = scratch.path().join("junit.xml");
    let json_path = scratch.path().join("report.json");
    let mut command = isotest();
    command
        .args(["run", "-j2", "--junit"])
        .arg(&junit_path)
        .arg("--json")
        .arg(&json_path)
        .arg(suite.path());
    let finished = support::run(command)?;

    let mut problems = Vec::new();
    if finished.code != 100 {
        problems.push(format!("exited with {}, expected 100", finished.code));
    }
    let (cases, json_tests) = read_reports(&junit_path, &json_path, scratch.path(), &mut problems)?;
    if cases.len() != tests.len() {
        problems.push(format!(
            "{} testcases in the JUnit report, expected {}: {:?}",
            cases.len(),
            tests.len(),
            cases.keys().collect::<Vec<_>>()
        ));
    }
    if json_tests.len() != tests.len() {
        problems.push(format!(
            "{} tests in the JSON report, expected {}: {json_tests:?}",
            json_tests.len(),
            tests.len()
        ));
    }
    for (_, _, shown, status) in &tests {
        // Test names write control characters and bytes that are not UTF-8
        // as `\xNN`: the same in every report, and distinct files keep
        // distinct names.
        let matches = |name: &str| name == *shown;
        let found: Vec<_> = cases.iter().filter(|(n, _)| matches(n)).collect();
        match found.as_slice() {
            [(_, case)] => {
                let got = case.properties.get("isotest.status").map(String::as_str);
                if got != Some(*status) {
                    problems.push(format!(
                        "{shown:?}: isotest.status is {got:?} in the JUnit report, expected {status}"
                    ));
                }
            }
            _ => problems.push(format!(
                "{shown:?}: {} matching testcases in the JUnit report, expected 1",
                found.len()
            )),
        }
        let found: Vec<_> = json_tests.iter().filter(|(n, _)| matches(n)).collect();
        match found.as_slice() {
            [(_, got)] if got == status => {}
            _ => problems.push(format!(
                "{shown:?}: JSON report has {found:?}, expected one test with status {status}"
            )),
        }
    }
    fail_with("tests with hostile file names", problems, &finished)
}

/// `isotest run -j1` on a suite whose first test sleeps; meanwhile the
/// harness deletes the second test's file and makes the third's
/// non-executable. Those two end as ERROR naming exec and the errno, the
/// fourth still runs and passes, the run completes with 100, and nothing of
/// it is left running.
fn test_files_vanish_mid_run() -> Result<(), Failed> {
    support::require_root()?;
    support::require_xmllint()?;
    const MARKER: &str = "2.4343";
    let suite = support::suite(&[
        ("a_sleeps.sh", &format!("#!/bin/sh\nsleep {MARKER}\n")),
        ("b_deleted.sh", "#!/bin/sh\nexit 0\n"),
        ("c_made_not_executable.sh", "#!/bin/sh\nexit 0\n"),
        ("d_passes.sh", "#!/bin/sh\nexit 0\n"),
    ])?;
    let scratch = tempfile::tempdir()?;
    let junit_path = scratch.path().join("junit.xml");
    let json_path = scratch.path().join("report.json");
    let mut command = isotest();
    command
        .args(["run", "-j1", "--junit"])
        .arg(&junit_path)
        .arg("--json")
        .arg(&json_path)
        .arg(suite.path());
    let runner = support::start(command)?;
    let started = wait_until(Duration::from_secs(10), || {
        !hooks::processes_with(MARKER).is_empty()
    });
    let changed = std::fs::remove_file(suite.path().join("b_deleted.sh")).and_then(|_| {
        std::fs::set_permissions(
            suite.path().join("c_made_not_executable.sh"),
            std::fs::Permissions::from_mode(0o644),
        )
    });
    let finished = runner.finish_within(Duration::from_secs(60))?;
    if !started {
        hooks::kill_leftovers(MARKER)?;
        return Err(format!(
            "the sleeping first test did not start within 10 s\nisotest {}",
            finished.describe()
        )
        .into());
    }
    changed.map_err(|e| format!("delete / chmod the later tests: {e}"))?;

    let mut problems = Vec::new();
    if let Err(e) = hooks::kill_leftovers(MARKER) {
        problems.push(e);
    }
    if finished.code != 100 {
        problems.push(format!("exited with {}, expected 100", finished.code));
    }
    let (cases, json_tests) = read_reports(&junit_path, &json_path, scratch.path(), &mut problems)?;
    let expected = [
        ("a_sleeps.sh", "PASS", None),
        ("b_deleted.sh", "ERROR", Some("ENOENT")),
        ("c_made_not_executable.sh", "ERROR", Some("EACCES")),
        ("d_passes.sh", "PASS", None),
    ];
    let names: Vec<&str> = cases.keys().map(String::as_str).collect();
    let want: Vec<&str> = expected.iter().map(|(name, _, _)| *name).collect();
    if names != want {
        problems.push(format!("JUnit testcases {names:?}, expected {want:?}"));
    }
    let want_json: Vec<(String, String)> = expected
        .iter()
        .map(|(name, status, _)| (name.to_string(), status.to_string()))
        .collect();
    if json_tests != want_json {
        problems.push(format!(
            "JSON report tests {json_tests:?}, expected {want_json:?}"
        ));
    }
    for (name, status, errno) in expected {
        let Some(case) = cases.get(name) else {
            continue;
        };
        let got = case.properties.get("isotest.status").map(String::as_str);
        if got != Some(status) {
            problems.push(format!(
                "{name}: isotest.status is {got:?}, expected {status}"
            ));
        }
        if let Some(errno) = errno {
            let message = case
                .verdicts
                .iter()
                .find(|v| v.element == "error")
                .and_then(|v| v.message.clone())
                .unwrap_or_default();
            if !(message.contains("exec") && message.contains(errno) && message.contains(name)) {
                problems.push(format!(
                    "{name}: <error> message {message:?} does not name exec, the file and {errno}"
                ));
            }
            let line = finished
                .stdout
                .lines()
                .find(|l| l.starts_with("   ERROR [") && l.contains(&format!("] {name} (")));
            if !line.is_some_and(|l| l.contains(errno)) {
                problems.push(format!(
                    "{name}: terminal line {line:?}, expected `   ERROR [ …s] {name} (… {errno} …)`"
                ));
            }
        }
    }
    fail_with(
        "test files deleted / made non-executable during the run",
        problems,
        &finished,
    )
}

/// Polls `condition` until it holds (true) or `limit` has passed (false).
fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}
