//! Reading isotest's JSON report (docs/json-report.md): its shape, checked
//! against the documented schema, and its agreement with the JUnit report
//! of the same run.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::junit::TestCase;

/// Every status, as the `counts` object lists them.
pub const STATUSES: [&str; 11] = [
    "PASS",
    "FLAKY",
    "FAIL",
    "SIGNAL",
    "OOM",
    "TIMEOUT",
    "OVER-LIMIT",
    "REGRESSED",
    "ERROR",
    "SKIPPED",
    "NOT-RUN",
];

/// The `usage` fields, each with the JUnit property that carries the same
/// figure.
pub const USAGE: [(&str, &str); 6] = [
    ("memory_peak_bytes", "isotest.memory_peak_bytes"),
    ("cpu_user_usec", "isotest.cpu_user_usec"),
    ("cpu_system_usec", "isotest.cpu_system_usec"),
    ("pids_peak", "isotest.pids_peak"),
    ("oom_kills", "isotest.oom_kills"),
    ("pids_max_hits", "isotest.pids_max_hits"),
];

/// The `limits` fields and their JUnit properties.
pub const LIMITS: [(&str, &str); 3] = [
    ("memory_bytes", "isotest.limit.memory_bytes"),
    ("cpus", "isotest.limit.cpus"),
    ("pids", "isotest.limit.pids"),
];

/// Reads and parses a JSON report.
pub fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("no JSON report at {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("the JSON report {} does not parse: {e}", path.display()))
}

/// Checks the run-level fields and the shape of every test against
/// docs/json-report.md, and returns the tests by name.
pub fn tests<'a>(report: &'a Value, problems: &mut Vec<String>) -> BTreeMap<String, &'a Value> {
    let mut problem = |what: String| problems.push(format!("JSON report: {what}"));
    if report["schema_version"] != 1 {
        problem(format!(
            "schema_version is {}, expected 1",
            report["schema_version"]
        ));
    }
    let host = &report["host"];
    if !(host["kernel"].is_string() || host["kernel"].is_null()) {
        problem(format!("host.kernel is {}", host["kernel"]));
    }
    let layouts = ["v1", "v2", "hybrid", "none"];
    if !host["cgroup_layout"]
        .as_str()
        .is_some_and(|l| layouts.contains(&l))
    {
        problem(format!(
            "host.cgroup_layout is {}, expected one of {layouts:?}",
            host["cgroup_layout"]
        ));
    }
    for key in ["cgroups_in_use", "rootless"] {
        if !host[key].is_boolean() {
            problem(format!("host.{key} is {}, expected a boolean", host[key]));
        }
    }
    // Every isotest of the rootless lane runs without root.
    if crate::support::rootless_lane() && host["rootless"] != true {
        problem(format!(
            "host.rootless is {} in the rootless lane",
            host["rootless"]
        ));
    }
    if !report["started_at"].is_string() || !report["duration_secs"].is_number() {
        problem("started_at or duration_secs is missing".to_owned());
    }
    let Some(tests) = report["tests"].as_array() else {
        problem(format!("tests is {}, not an array", report["tests"]));
        return BTreeMap::new();
    };
    let mut counted = BTreeMap::new();
    for status in STATUSES {
        match report["counts"][status].as_u64() {
            Some(n) => {
                counted.insert(status, n);
            }
            None => problem(format!("counts.{status} is {}", report["counts"][status])),
        }
    }
    let mut by_name = BTreeMap::new();
    let mut actual_counts: BTreeMap<&str, u64> = BTreeMap::new();
    for test in tests {
        let Some(name) = test["name"].as_str() else {
            problem(format!("a test without a name: {test}"));
            continue;
        };
        check_test_shape(name, test, &mut problem);
        if let Some(status) = test["status"].as_str() {
            *actual_counts.entry(status).or_default() += 1;
        }
        if by_name.insert(name.to_owned(), test).is_some() {
            problem(format!("{name} appears twice"));
        }
    }
    for (status, count) in counted {
        let actual = actual_counts.get(status).copied().unwrap_or(0);
        if actual != count {
            problem(format!(
                "counts.{status} is {count}, but {actual} test(s) have that status"
            ));
        }
    }
    by_name
}

fn check_test_shape(name: &str, test: &Value, problem: &mut impl FnMut(String)) {
    if !test["status"]
        .as_str()
        .is_some_and(|s| STATUSES.contains(&s))
    {
        problem(format!("{name}: status is {}", test["status"]));
    }
    for key in ["suite", "started_at"] {
        if !test[key].is_string() {
            problem(format!("{name}: {key} is {}, expected a string", test[key]));
        }
    }
    for key in [
        "attempts",
        "leaked_processes",
        "stdout_bytes",
        "stderr_bytes",
    ] {
        if !test[key].is_u64() {
            problem(format!("{name}: {key} is {}, expected a count", test[key]));
        }
    }
    if !test["duration_secs"].is_number() {
        problem(format!(
            "{name}: duration_secs is {}",
            test["duration_secs"]
        ));
    }
    if !test["earlier_attempts"].is_array() || !test["tags"].is_array() {
        problem(format!("{name}: earlier_attempts or tags is not an array"));
    }
    if !(test["slot"].is_null() || test["slot"].is_u64()) {
        problem(format!("{name}: slot is {}", test["slot"]));
    }
    let phases = &test["phases"];
    let phase_keys = ["root_secs", "setup_secs", "test_secs", "teardown_secs"];
    if !(phases.is_null()
        || phase_keys
            .iter()
            .all(|key| phases[key].as_f64() >= Some(0.0)))
    {
        problem(format!("{name}: phases is {phases}"));
    }
    if test["slot"].is_null() != phases.is_null() {
        problem(format!("{name}: slot and phases: a test that ran has both"));
    }
    let program = &test["program"];
    if !(program["file"].is_string() || program["command"].is_array()) {
        problem(format!(
            "{name}: program is {program}, expected {{\"file\": ..}} or {{\"command\": [..]}}"
        ));
    }
    for (object, fields) in [
        ("usage", USAGE.map(|(field, _)| field).to_vec()),
        ("limits", LIMITS.map(|(field, _)| field).to_vec()),
    ] {
        for field in fields {
            let value = &test[object][field];
            if !(value.is_null() || value.is_number()) {
                problem(format!(
                    "{name}: {object}.{field} is {value}, expected a number or null"
                ));
            }
        }
    }
}

/// The JSON entry of a test says what its JUnit testcase says: status,
/// exit code, signal, attempts, leaked processes, and every usage figure
/// and limit (null in JSON exactly where the JUnit property is absent).
/// Without cgroups in use, every usage figure and limit is null.
pub fn check_agrees_with_junit(
    name: &str,
    test: &Value,
    junit: &TestCase,
    cgroups_in_use: bool,
    problems: &mut Vec<String>,
) {
    let mut problem = |what: String| problems.push(format!("{name}: JSON report: {what}"));
    let property = |key: &str| junit.properties.get(key).map(String::as_str);
    if test["status"].as_str() != property("isotest.status") {
        problem(format!(
            "status {} but JUnit isotest.status {:?}",
            test["status"],
            property("isotest.status")
        ));
    }
    let same_number = |json: &Value, junit: Option<&str>| match (json, junit) {
        (Value::Null, None) => true,
        (json, Some(text)) => json
            .as_f64()
            .zip(text.parse::<f64>().ok())
            .is_some_and(|(a, b)| a == b),
        _ => false,
    };
    let mut pairs = vec![
        (
            "exit_code".to_owned(),
            &test["exit_code"],
            "isotest.exit_code",
        ),
        (
            "leaked_processes".to_owned(),
            &test["leaked_processes"],
            "isotest.leaked_processes",
        ),
    ];
    for (field, key) in USAGE {
        pairs.push((format!("usage.{field}"), &test["usage"][field], key));
    }
    for (field, key) in LIMITS {
        pairs.push((format!("limits.{field}"), &test["limits"][field], key));
    }
    for (field, value, key) in pairs {
        // The JUnit report may leave out a zero count of leaked processes.
        if key == "isotest.leaked_processes" && property(key).is_none() && value == 0 {
            continue;
        }
        if !same_number(value, property(key)) {
            problem(format!(
                "{field} is {value}, but JUnit {key} is {:?}",
                property(key)
            ));
        }
    }
    if test["signal"].as_str() != property("isotest.signal") {
        problem(format!(
            "signal is {}, but JUnit isotest.signal is {:?}",
            test["signal"],
            property("isotest.signal")
        ));
    }
    let attempts = test["attempts"].as_u64().unwrap_or(0);
    let earlier = test["earlier_attempts"].as_array().map_or(0, Vec::len) as u64;
    if junit.reruns.len() as u64 != earlier {
        problem(format!(
            "{earlier} earlier_attempts, but {} flakyFailure/rerunFailure elements in JUnit",
            junit.reruns.len()
        ));
    }
    if attempts > 0 && attempts != earlier + 1 {
        problem(format!(
            "attempts is {attempts} with {earlier} earlier_attempts"
        ));
    }
    if let Some(text) = property("isotest.attempts") {
        if text != attempts.to_string() {
            problem(format!(
                "attempts is {attempts}, but JUnit isotest.attempts is {text:?}"
            ));
        }
    }
    if !cgroups_in_use {
        for (object, fields) in [
            ("usage", USAGE.map(|(field, _)| field).to_vec()),
            ("limits", LIMITS.map(|(field, _)| field).to_vec()),
        ] {
            for field in fields {
                if !test[object][field].is_null() {
                    problem(format!(
                        "{object}.{field} is {}, expected null: cgroups were not in use",
                        test[object][field]
                    ));
                }
            }
        }
    }
}
