//! The resource-regression check: `--baseline PREVIOUS.json
//! --max-regression 20%` against the `--json` report of an earlier run of
//! the same suite (docs/json-report.md, "Resource-regression check").

use std::path::Path;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::json;
use crate::junit;
use crate::support::{self, Finished};

type Check = fn() -> Result<(), Failed>;

pub fn trials() -> Vec<Trial> {
    let trials: [(&str, Check); 2] = [
        ("memory_growth_is_regressed", memory_growth_is_regressed),
        ("bad_baseline_exits_2", bad_baseline_exits_2),
    ];
    trials
        .into_iter()
        .map(|(name, check)| Trial::test(format!("baseline::{name}"), check))
        .collect()
}

/// Touches $BLOCK of memory (a block size passed with `--env`).
const GROWS: &str = "#!/bin/sh\nexec dd if=/dev/zero of=/dev/null bs=$BLOCK count=1\n";
/// The same 16 MiB on every run.
const STEADY: &str = "#!/bin/sh\nexec dd if=/dev/zero of=/dev/null bs=16M count=1\n";
const TRIVIAL: &str = "#!/bin/sh\nexit 0\n";

/// `isotest run ARGS SUITE`, from the repository root.
fn run(suite: &Path, args: &[&str]) -> Result<Finished, String> {
    let mut command = support::isotest();
    command.arg("run").args(args).arg(suite);
    support::run(command)
}

/// A figure as isotest shows sizes: MiB with one decimal.
fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / 1048576.0)
}

fn memory_peak(report: &Value, name: &str) -> Option<f64> {
    report["tests"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)?["usage"]["memory_peak_bytes"]
        .as_f64()
}

/// A suite run with `--json`, then again with one test using six times the
/// memory and `--baseline` that report: the test is REGRESSED naming memory
/// peak, old, new and change; the others pass; exit 100; a removed test is
/// listed as vanished and an added one as new. A third run with the
/// original memory passes against the same baseline.
fn memory_growth_is_regressed() -> Result<(), Failed> {
    support::require_root()?;
    support::require_xmllint()?;
    let suite = support::suite(&[
        ("grows.sh", GROWS),
        ("steady.sh", STEADY),
        ("removed.sh", TRIVIAL),
    ])?;
    let scratch = tempfile::tempdir()?;
    let path = |name: &str| scratch.path().join(name).to_string_lossy().into_owned();
    let (baseline, junit_path, json_path) = (path("a.json"), path("b.xml"), path("b.json"));

    let first = run(
        suite.path(),
        &["-j2", "--env", "BLOCK=8M", "--json", &baseline],
    )?;
    if first.code != 0 {
        return Err(format!("the baseline run failed\nisotest {}", first.describe()).into());
    }
    let old_report = json::read(Path::new(&baseline))?;
    std::fs::remove_file(suite.path().join("removed.sh"))?;
    support::write_file(&suite.path().join("added.sh"), TRIVIAL, 0o755)?;

    let second = run(
        suite.path(),
        &[
            "-j2",
            "--env",
            "BLOCK=48M",
            "--baseline",
            &baseline,
            "--max-regression",
            "20%",
            "--junit",
            &junit_path,
            "--json",
            &json_path,
        ],
    )?;
    let mut problems = Vec::new();
    if second.code != 100 {
        problems.push(format!("exited with {}, expected 100", second.code));
    }
    let new_report = json::read(Path::new(&json_path))?;
    let (Some(old), Some(new)) = (
        memory_peak(&old_report, "grows.sh"),
        memory_peak(&new_report, "grows.sh"),
    ) else {
        return Err(format!(
            "grows.sh has no memory peak in one of the JSON reports\nisotest {}",
            second.describe()
        )
        .into());
    };
    if !(7.5 * 1048576.0..=14.0 * 1048576.0).contains(&old)
        || !(47.0 * 1048576.0..=60.0 * 1048576.0).contains(&new)
    {
        problems.push(format!(
            "grows.sh peaks: {} MiB then {} MiB, expected about 8 then 48",
            mib(old),
            mib(new)
        ));
    }
    let message_pattern = format!(
        r"memory peak {} MiB → {} MiB \(\+(\d+)%, limit \+20%\)",
        regex::escape(&mib(old)),
        regex::escape(&mib(new))
    );
    let message_regex = regex::Regex::new(&message_pattern)?;

    let xml = std::fs::read_to_string(&junit_path)
        .map_err(|e| format!("read {junit_path}: {e}\nisotest {}", second.describe()))?;
    if let Err(e) = junit::validate_schema(&xml, scratch.path()) {
        problems.push(e);
    }
    let report = junit::parse(&xml, &mut problems)?;
    let names: Vec<&str> = report.keys().map(String::as_str).collect();
    if names != ["added.sh", "grows.sh", "steady.sh"] {
        problems.push(format!(
            "tests in the report: {names:?}, expected added.sh, grows.sh, steady.sh"
        ));
    }
    for (name, case) in &report {
        let status = case.properties.get("isotest.status").map(String::as_str);
        let verdicts: Vec<_> = case
            .verdicts
            .iter()
            .map(|v| (v.element.as_str(), v.kind.as_deref(), v.message.as_deref()))
            .collect();
        if name == "grows.sh" {
            match verdicts.as_slice() {
                [("failure", Some("REGRESSED"), Some(message))]
                    if status == Some("REGRESSED") && message_regex.is_match(message) =>
                {
                    let percent = message_regex
                        .captures(message)
                        .and_then(|c| c[1].parse::<f64>().ok())
                        .unwrap_or(0.0);
                    let change = (new / old - 1.0) * 100.0;
                    if (percent - change).abs() > 1.0 {
                        problems.push(format!(
                            "grows.sh: the message says +{percent}%, the figures give +{change:.1}%"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "grows.sh: isotest.status {status:?} with {verdicts:?}, expected REGRESSED \
                     with one <failure type=\"REGRESSED\"> whose message matches /{message_pattern}/"
                )),
            }
        } else if status != Some("PASS") || !verdicts.is_empty() {
            problems.push(format!(
                "{name}: isotest.status {status:?} with {verdicts:?}, expected PASS"
            ));
        }
    }
    let json_tests = json::tests(&new_report, &mut problems);
    if json_tests.get("grows.sh").is_none_or(|t| {
        t["status"] != "REGRESSED"
            || !t["message"]
                .as_str()
                .is_some_and(|m| message_regex.is_match(m))
    }) {
        problems.push(format!(
            "JSON report: grows.sh is {:?}, expected REGRESSED with the message",
            json_tests.get("grows.sh")
        ));
    }
    if !second.stdout.lines().any(|line| {
        line.starts_with("REGRESSED [")
            && line
                .split_once("] ")
                .is_some_and(|(_, rest)| rest.starts_with("grows.sh (memory peak "))
    }) {
        problems.push("no terminal line `REGRESSED [ …s] grows.sh (memory peak …`".to_owned());
    }
    for note in [
        "isotest: note: added.sh is new (not in the baseline)",
        "isotest: note: removed.sh is in the baseline but did not run",
    ] {
        if !second.stderr.lines().any(|line| line == note) {
            problems.push(format!("no line {note:?} on stderr"));
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "the run with grows.sh at 48M against the 8M baseline:\n  - {}\nisotest {}",
            problems.join("\n  - "),
            second.describe()
        )
        .into());
    }

    let third = run(
        suite.path(),
        &[
            "-j2",
            "--env",
            "BLOCK=8M",
            "--baseline",
            &baseline,
            "--max-regression",
            "20%",
        ],
    )?;
    if third.code != 0 || third.stdout.contains("REGRESSED [") {
        return Err(format!(
            "the run with the baseline's own figures must pass\nisotest {}",
            third.describe()
        )
        .into());
    }
    Ok(())
}

/// A baseline that is not an isotest JSON report, or cannot be read, or a
/// bad threshold: exit 2 with the reason, nothing run.
fn bad_baseline_exits_2() -> Result<(), Failed> {
    let suite = support::suite(&[("passes.sh", TRIVIAL)])?;
    let scratch = tempfile::tempdir()?;
    let write = |name: &str, content: &str| -> Result<String, String> {
        let path = scratch.path().join(name);
        support::write_file(&path, content, 0o644)?;
        Ok(path.to_string_lossy().into_owned())
    };
    let not_json = write("junit.xml", "<testsuites/>\n")?;
    let not_report = write("other.json", "{\"hello\": 1}\n")?;
    let future = write("future.json", "{\"schema_version\": 7}\n")?;
    let missing = scratch
        .path()
        .join("missing.json")
        .to_string_lossy()
        .into_owned();
    let cases: [(Vec<&str>, String); 5] = [
        (
            vec!["--baseline", &not_json],
            format!("isotest: --baseline: {not_json} is not an isotest JSON report: "),
        ),
        (
            vec!["--baseline", &not_report],
            format!("isotest: --baseline: {not_report} is not an isotest JSON report: "),
        ),
        (
            vec!["--baseline", &future],
            format!(
                "isotest: --baseline: {future} has schema_version 7, but this isotest reads \
                 version 1; write the report again with this isotest's --json"
            ),
        ),
        (
            vec!["--baseline", &missing],
            format!("isotest: --baseline: read {missing}: "),
        ),
        (
            vec!["--baseline", &not_json, "--max-regression", "lots"],
            "isotest: --max-regression: invalid percentage `lots`".to_owned(),
        ),
    ];
    let mut problems = Vec::new();
    for (args, start) in cases {
        let finished = run(suite.path(), &args)?;
        let lines: Vec<&str> = finished.stderr.lines().collect();
        let ok = finished.code == 2
            && finished.stdout.is_empty()
            && matches!(lines.as_slice(), [line] if line.starts_with(&start));
        if !ok {
            problems.push(format!(
                "{args:?}: expected exit 2, nothing on stdout, and one line on stderr \
                 starting with {start:?}\nisotest {}",
                finished.describe()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}
