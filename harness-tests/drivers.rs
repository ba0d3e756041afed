//! The drivers on real programs built in the trial: the cargo workspace and
//! the go module of fixtures/drivers/, copied to a fresh directory, built
//! and run by `isotest cargo` / `isotest go` and by the native tool, which
//! must agree on every program's passed / failed / ignored counts; then what
//! only isotest adds: panic and failure messages in the reports, the leaked
//! process, isotest.toml overrides by name, ignored cases on demand, name
//! filters, `--list` and partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::case::DRIVER_FIXTURES;
use crate::{json, junit, support};

pub fn trials() -> Vec<Trial> {
    let no_go = !support::on_path("go");
    if no_go {
        eprintln!(
            "note: `go` is not installed: drivers::go_* are skipped \
             (apt-get install golang-go, as ci/test does)"
        );
    }
    vec![
        Trial::test("drivers::cargo_same_verdicts_as_cargo_test", cargo_verdicts),
        Trial::test("drivers::cargo_ignored_and_filters", cargo_selection),
        Trial::test("drivers::go_same_verdicts_as_go_test", go_verdicts).with_ignored_flag(no_go),
    ]
}

/// Passed, failed, ignored.
type Counts = (u32, u32, u32);

/// A copy of fixtures/drivers/NAME in a fresh directory under the harness's
/// target tmpdir (the source tree stays clean).
fn fixture_copy(name: &str) -> Result<(tempfile::TempDir, PathBuf), String> {
    let base = env!("CARGO_TARGET_TMPDIR");
    std::fs::create_dir_all(base).map_err(|e| format!("create {base}: {e}"))?;
    let dir = tempfile::tempdir_in(base).map_err(|e| format!("temp dir in {base}: {e}"))?;
    let source = support::fixtures_dir().join(DRIVER_FIXTURES).join(name);
    let status = Command::new("cp")
        .arg("-r")
        .arg(&source)
        .arg(dir.path())
        .status()
        .map_err(|e| format!("cp: {e}"))?;
    if !status.success() {
        return Err(format!("cp -r {} failed", source.display()));
    }
    let copy = dir.path().join(name);
    Ok((dir, copy))
}

/// Where the cargo fixture builds: one directory for every run of the
/// trials, so that libtest-mimic and its dependencies are built once.
fn cargo_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("drivers-cargo-target")
}

/// `isotest cargo --offline --target-dir ...` in the workspace, reports to
/// the scratch directory.
fn isotest_cargo(workspace: &Path, extra: &[&str]) -> Result<support::Finished, String> {
    let mut command = support::isotest();
    command
        .current_dir(workspace)
        .env_remove("CARGO_TARGET_DIR")
        .args(["cargo", "--offline", "--target-dir"])
        .arg(cargo_target_dir())
        .args(extra);
    support::run(command)
}

fn cargo_verdicts() -> Result<(), Failed> {
    support::require_root()?;
    let (scratch, workspace) = fixture_copy("cargo_workspace")?;
    let json_path = scratch.path().join("run.json");
    let junit_path = scratch.path().join("run.xml");
    let ours = isotest_cargo(
        &workspace,
        &[
            "--json",
            path_str(&json_path)?,
            "--junit",
            path_str(&junit_path)?,
        ],
    )?;
    if ours.code != 100 {
        return Err(format!(
            "isotest cargo: expected exit 100 (failing cases)\n{}",
            ours.describe()
        )
        .into());
    }
    let native = native_cargo_test(&workspace)?;
    let report = json::read(&json_path)?;
    let mut problems = Vec::new();
    let tests = json::tests(&report, &mut problems);
    let by_binary = counts_by(&tests, |t| {
        t["program"]["command"][0].as_str().map(str::to_string)
    });
    for (binary, counts) in &native.counts {
        match by_binary.get(binary) {
            Some(ours) if ours == counts => {}
            other => problems.push(format!(
                "{binary}: cargo test counted (passed, failed, ignored) {counts:?}, isotest {other:?}"
            )),
        }
    }
    // The custom harnesses print no libtest summary: cargo only ran them.
    let whole: Vec<&String> = by_binary
        .keys()
        .filter(|b| !native.counts.contains_key(*b))
        .collect();
    if whole.len() != 2 || !native.output.contains("custom harness: 1 check passed") {
        problems.push(format!(
            "binaries without a cargo test summary: {whole:?} (expected the two custom harnesses)"
        ));
    }
    check_cargo_cases(&tests, &ours.stdout, &mut problems);
    let xml = std::fs::read_to_string(&junit_path).map_err(|e| format!("read JUnit: {e}"))?;
    if let Err(problem) = junit::validate_schema(&xml, scratch.path()) {
        problems.push(problem);
    }
    let cases = junit::parse(&xml, &mut problems)?;
    let panicked = cases
        .get("alpha tests::panics_with_a_message")
        .and_then(|c| c.verdicts.first())
        .and_then(|v| v.message.clone())
        .unwrap_or_default();
    if !(panicked.contains("panicked at alpha/src/lib.rs")
        && panicked.contains("the answer was 41"))
    {
        problems.push(format!(
            "JUnit failure message of the panicking case: {panicked:?}"
        ));
    }
    finish(problems, &ours)
}

/// What only isotest reports: names, messages, the leak, the override.
fn check_cargo_cases(tests: &BTreeMap<String, &Value>, terminal: &str, problems: &mut Vec<String>) {
    let expect = [
        ("alpha tests::adds", "PASS"),
        ("alpha tests::ignored_slow", "SKIPPED"),
        (
            "alpha tests::runs_in_its_package_with_cargos_environment",
            "PASS",
        ),
        ("alpha::bin/greet tests::greets", "PASS"),
        ("alpha::api runs_the_binary", "PASS"),
        ("alpha::api leaks_a_process", "PASS"),
        ("alpha::api fails_with_a_message", "FAIL"),
        ("alpha::mimic mimic_fails", "FAIL"),
        ("alpha::mimic mimic_ignored", "SKIPPED"),
        ("beta::custom", "PASS"),
        ("beta::silent", "PASS"),
        ("beta tests::sees_its_own_hostname", "PASS"),
    ];
    for (name, status) in expect {
        let got = tests.get(name).map(|t| t["status"].clone());
        if got.as_ref().and_then(Value::as_str) != Some(status) {
            problems.push(format!("{name}: status {got:?}, expected {status}"));
        }
    }
    let message = |name: &str| {
        tests
            .get(name)
            .and_then(|t| t["message"].as_str())
            .unwrap_or_default()
    };
    if message("alpha::mimic mimic_fails") != "expected 1, got 2" {
        problems.push(format!(
            "libtest-mimic failure message: {:?}",
            message("alpha::mimic mimic_fails")
        ));
    }
    if !message("alpha::api fails_with_a_message")
        .ends_with("panicked at alpha/tests/api.rs:32:9:\nexpected 42, got 41")
    {
        problems.push(format!(
            "panic message: {:?}",
            message("alpha::api fails_with_a_message")
        ));
    }
    if !terminal.contains("panicked at alpha/tests/api.rs:32:9:")
        || !terminal.contains("expected 42, got 41)")
    {
        problems.push("the terminal does not show the panic message".into());
    }
    let leaked = tests
        .get("alpha::api leaks_a_process")
        .map(|t| t["leaked_processes"].clone());
    if leaked != Some(Value::from(1)) {
        problems.push(format!(
            "leaks_a_process: leaked_processes {leaked:?}, expected 1"
        ));
    }
    override_memory(tests, "alpha::api", "alpha", 256 << 20, problems);
}

/// `[[override]] filter = "suite:SUITE"` sets `memory` for that suite's
/// cases only (visible where cgroups are in use).
fn override_memory(
    tests: &BTreeMap<String, &Value>,
    suite: &str,
    other: &str,
    bytes: u64,
    problems: &mut Vec<String>,
) {
    for test in tests.values() {
        let limit = test["limits"]["memory_bytes"].as_u64();
        if limit.is_none() && test["usage"].is_null() {
            continue;
        }
        let in_suite = test["suite"] == suite;
        let wanted = in_suite.then_some(bytes);
        if limit != wanted && (in_suite || test["suite"] == other) {
            problems.push(format!(
                "{}: memory limit {limit:?}, expected {wanted:?}",
                test["name"]
            ));
        }
    }
}

fn cargo_selection() -> Result<(), Failed> {
    support::require_root()?;
    let (scratch, workspace) = fixture_copy("cargo_workspace")?;
    let ignored = isotest_cargo(&workspace, &["--", "--ignored"])?;
    let mut problems = Vec::new();
    if ignored.code != 0 || !ignored.stdout.contains("2 tests run: 2 passed") {
        problems.push(format!(
            "-- --ignored runs the 2 ignored cases:\n{}",
            ignored.describe()
        ));
    }
    let filtered = isotest_cargo(&workspace, &["-p", "alpha", "--bin", "greet", "greets"])?;
    if filtered.code != 0 || !filtered.stdout.contains("1 test run: 1 passed") {
        problems.push(format!(
            "-p alpha --bin greet greets runs one case:\n{}",
            filtered.describe()
        ));
    }
    // What `isotest run` offers works on cases too: tags from an override
    // by exact (quoted) case names, retries.
    let json_path = scratch.path().join("tagged.json");
    let tagged = isotest_cargo(
        &workspace,
        &["--tag", "quick", "--json", path_str(&json_path)?],
    )?;
    let report = json::read(&json_path).unwrap_or_default();
    let quick: Vec<String> = json::tests(&report, &mut problems).into_keys().collect();
    if tagged.code != 0 || quick != ["alpha tests::adds", "beta tests::writes_vanish"] {
        problems.push(format!(
            "--tag quick (an override tagging two cases by name) ran {quick:?}:\n{}",
            tagged.describe()
        ));
    }
    let json_path = scratch.path().join("retried.json");
    let retried = isotest_cargo(
        &workspace,
        &[
            "--retries",
            "1",
            "--json",
            path_str(&json_path)?,
            "--",
            "fails_with_a_message",
        ],
    )?;
    let report = json::read(&json_path).unwrap_or_default();
    let attempts = report["tests"][0]["attempts"].clone();
    if retried.code != 100 || attempts != 2 || !retried.stdout.contains("RETRY") {
        problems.push(format!(
            "--retries 1 on a failing case: attempts {attempts}:\n{}",
            retried.describe()
        ));
    }
    let listed = isotest_cargo(&workspace, &["--list"])?;
    let names: Vec<&str> = listed.stdout.lines().collect();
    if listed.code != 0 || names.len() != 16 || listed.stdout.contains("Starting") {
        problems.push(format!(
            "--list names the 16 cases and runs none:\n{}",
            listed.describe()
        ));
    }
    let mut parts: Vec<String> = Vec::new();
    for part in ["hash:1/2", "hash:2/2"] {
        let half = isotest_cargo(&workspace, &["--list", "--partition", part])?;
        parts.extend(half.stdout.lines().map(str::to_string));
    }
    parts.sort();
    let mut all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    all.sort();
    if parts != all {
        problems.push(format!(
            "--partition hash:1/2 and 2/2 list {parts:?}, not every case once"
        ));
    }
    let refused = isotest_cargo(&workspace, &["--", "--nocapture"])?;
    if refused.code != 2 || !refused.stderr.contains("--no-capture") {
        problems.push(format!(
            "-- --nocapture is refused, naming --no-capture:\n{}",
            refused.describe()
        ));
    }
    finish(problems, &ignored)
}

/// `cargo test --no-fail-fast` over the same target directory: its output
/// (stdout and stderr interleaved) and each binary's counts.
struct Native {
    output: String,
    counts: BTreeMap<String, Counts>,
}

fn native_cargo_test(workspace: &Path) -> Result<Native, String> {
    let mut command = Command::new("sh");
    command
        .current_dir(workspace)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUST_BACKTRACE")
        .arg("-c")
        .arg("exec cargo test --offline --no-fail-fast --target-dir \"$1\" 2>&1")
        .arg("sh")
        .arg(cargo_target_dir());
    let finished = support::run(command)?;
    let mut counts = BTreeMap::new();
    let mut binary: Option<String> = None;
    for line in finished.stdout.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("Running ") {
            binary = line
                .rsplit_once('(')
                .map(|(_, b)| b.trim_end_matches(')').to_string());
        } else if trimmed.starts_with("Doc-tests ") {
            binary = None;
        } else if let (Some(name), Some(summary)) = (&binary, line.strip_prefix("test result: ")) {
            counts.insert(name.clone(), libtest_counts(summary));
        }
    }
    if counts.is_empty() {
        return Err(format!(
            "cargo test ran no binary:\n{}",
            finished.describe()
        ));
    }
    Ok(Native {
        output: finished.stdout,
        counts,
    })
}

/// `ok. 2 passed; 1 failed; 1 ignored; ...`
fn libtest_counts(summary: &str) -> Counts {
    let count = |what: &str| {
        summary
            .split(';')
            .find_map(|part| {
                part.trim()
                    .strip_suffix(what)?
                    .trim()
                    .rsplit(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    (count("passed"), count("failed"), count("ignored"))
}

/// Each group's (passed, failed, ignored) from the JSON report's tests.
fn counts_by(
    tests: &BTreeMap<String, &Value>,
    key: impl Fn(&Value) -> Option<String>,
) -> BTreeMap<String, Counts> {
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for test in tests.values() {
        let Some(group) = key(test) else { continue };
        let entry = counts.entry(group).or_default();
        match test["status"].as_str() {
            Some("PASS") => entry.0 += 1,
            Some("SKIPPED") => entry.2 += 1,
            _ => entry.1 += 1,
        }
    }
    counts
}

/// go's caches, kept between runs where cargo keeps the harness's
/// scratch files (`cargo clean` removes them).
fn go_env(command: &mut Command) {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    for (name, dir) in [("GOCACHE", "cache"), ("GOPATH", "path")] {
        if std::env::var_os(name).is_none() {
            command.env(name, base.join(dir));
        }
    }
    command.env("GOFLAGS", "-mod=mod").env("GOPROXY", "off");
}

fn go_verdicts() -> Result<(), Failed> {
    support::require_root()?;
    let (scratch, module) = fixture_copy("go_module")?;
    let json_path = scratch.path().join("run.json");
    let mut command = support::isotest();
    command
        .current_dir(&module)
        .args(["go", "--json", path_str(&json_path)?]);
    go_env(&mut command);
    let ours = support::run(command)?;
    if ours.code != 100 {
        return Err(format!(
            "isotest go: expected exit 100 (failing tests)\n{}",
            ours.describe()
        )
        .into());
    }
    let mut native = Command::new("go");
    native.current_dir(&module).args(["test", "-v", "./..."]);
    go_env(&mut native);
    let native = support::run(native)?;
    let report = json::read(&json_path)?;
    let mut problems = Vec::new();
    let tests = json::tests(&report, &mut problems);
    let ours_counts = counts_by(&tests, |t| t["suite"].as_str().map(str::to_string));
    let native_counts = go_test_counts(&native.stdout);
    if ours_counts != native_counts {
        problems.push(format!(
            "(passed, failed, ignored) per package: go test -v {native_counts:?}, isotest go {ours_counts:?}"
        ));
    }
    check_go_tests(&tests, &mut problems);
    let leftovers: Vec<_> = std::fs::read_dir("/var/tmp")
        .map_err(|e| format!("read /var/tmp: {e}"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("isotest-go-"))
        .collect();
    if !leftovers.is_empty() {
        problems.push(format!(
            "test binary directories left in /var/tmp: {leftovers:?}"
        ));
    }
    finish(problems, &ours)
}

/// What only isotest reports: messages, the skip reason, the leak, the
/// override.
fn check_go_tests(tests: &BTreeMap<String, &Value>, problems: &mut Vec<String>) {
    let field = |name: &str, key: &str| {
        tests
            .get(name)
            .map(|t| t[key].clone())
            .unwrap_or(Value::Null)
    };
    let expect = [
        (
            "example.com/isofix/calc TestAddFails",
            "message",
            Value::from("calc_test.go:19: got 3, want 4"),
        ),
        (
            "example.com/isofix/calc TestSkipped",
            "message",
            Value::from("calc_test.go:24: needs a network"),
        ),
        (
            "example.com/isofix/calc TestLeaksAProcess",
            "leaked_processes",
            Value::from(1),
        ),
        (
            "example.com/isofix/calc ExampleAdd",
            "status",
            Value::from("PASS"),
        ),
        (
            "example.com/isofix/boom TestPanics",
            "status",
            Value::from("FAIL"),
        ),
    ];
    for (name, key, value) in expect {
        if field(name, key) != value {
            problems.push(format!(
                "{name}: {key} is {}, expected {value}",
                field(name, key)
            ));
        }
    }
    if !field("example.com/isofix/boom TestPanics", "message")
        .as_str()
        .unwrap_or_default()
        .starts_with("panic: boom")
    {
        problems.push(format!(
            "TestPanics message: {}",
            field("example.com/isofix/boom TestPanics", "message")
        ));
    }
    override_memory(
        tests,
        "example.com/isofix/strutil",
        "example.com/isofix/calc",
        128 << 20,
        problems,
    );
}

/// `go test -v ./...`: top-level `--- PASS/FAIL/SKIP: NAME` lines, counted
/// for the package named by the `ok` / `FAIL` line that ends its output.
fn go_test_counts(output: &str) -> BTreeMap<String, Counts> {
    let mut counts = BTreeMap::new();
    let mut pending: Counts = (0, 0, 0);
    for line in output.lines() {
        if line.starts_with("--- PASS: ") {
            pending.0 += 1;
        } else if line.starts_with("--- FAIL: ") {
            pending.1 += 1;
        } else if line.starts_with("--- SKIP: ") {
            pending.2 += 1;
        } else if let Some(rest) = line
            .strip_prefix("ok  \t")
            .or_else(|| line.strip_prefix("FAIL\t"))
        {
            let package = rest.split('\t').next().unwrap_or_default().to_string();
            counts.insert(package, std::mem::take(&mut pending));
        }
    }
    counts
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

fn finish(problems: Vec<String>, run: &support::Finished) -> Result<(), Failed> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", problems.join("\n"), run.describe()).into())
    }
}
