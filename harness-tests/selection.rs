//! Selection and CI: `--partition hash:K/N` and `slice:K/N`, tags, regex
//! filters and substrings, `--no-tests`, and `isotest list --verbose` /
//! `--format json` showing effective settings and their sources, over one
//! suite of twelve tests (eight files, four `[[test]]` commands).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::junit;
use crate::support::{self, Finished};

type Check = fn() -> Result<(), Failed>;

pub fn trials() -> Vec<Trial> {
    let trials: [(&str, Check); 9] = [
        (
            "partition_hash_covers_each_once",
            partition_hash_covers_each_once,
        ),
        ("partition_hash_is_stable", partition_hash_is_stable),
        (
            "partition_slice_is_round_robin",
            partition_slice_is_round_robin,
        ),
        (
            "partition_runs_cover_the_suite",
            partition_runs_cover_the_suite,
        ),
        ("partition_malformed_exits_2", partition_malformed_exits_2),
        ("tags_filters_substrings", tags_filters_substrings),
        ("run_applies_selection", run_applies_selection),
        ("no_tests_modes", no_tests_modes),
        ("list_verbose_shows_sources", list_verbose_shows_sources),
    ];
    let mut all: Vec<Trial> = trials
        .into_iter()
        .map(|(name, check)| Trial::test(format!("select::{name}"), check))
        .collect();
    all.push(Trial::test(
        "select::list_json_has_settings",
        list_json_has_settings,
    ));
    all
}

/// The top isotest.toml of the suite. Line numbers matter: the sources
/// `isotest list --verbose` shows are checked.
const TOP_CONFIG: &str = r#"timeout = "20s"
memory = "128M"

[[test]]
name = "iota"
command = "exit 0"
tags = ["quick", "db"]

[[test]]
name = "kappa"
command = "exit 0"
tags = ["slow"]

[[test]]
name = "lambda"
command = "exit 0"
tags = ["db"]

[[test]]
name = "mu"
command = "exit 0"
ignore = true
ignore_reason = "flaky upstream"

[[override]]
filter = "sub/**"
grace = "3s"

[profile.ci]
retries = 2
memory = "256M"
"#;

const FILE_TESTS: [&str; 8] = [
    "alpha.sh",
    "beta.sh",
    "gamma.sh",
    "delta.sh",
    "epsilon.sh",
    "zeta.sh",
    "sub/eta.sh",
    "sub/theta.sh",
];

/// Every test of the suite, in the order isotest lists them: files in
/// sorted path order, then the declared commands in file order.
const ALL: [&str; 12] = [
    "alpha.sh",
    "beta.sh",
    "delta.sh",
    "epsilon.sh",
    "gamma.sh",
    "sub/eta.sh",
    "sub/theta.sh",
    "zeta.sh",
    "iota",
    "kappa",
    "lambda",
    "mu",
];

/// A directory holding the suite as `suite/`: isotest runs in the
/// directory and is given the relative path `suite`, so that sources and
/// errors show `suite/isotest.toml`.
struct Suite {
    dir: tempfile::TempDir,
}

impl Suite {
    fn create() -> Result<Suite, String> {
        let dir = support::suite(&[])?;
        let suite = dir.path().join("suite");
        for test in FILE_TESTS {
            support::write_file(&suite.join(test), "#!/bin/sh\nexit 0\n", 0o755)?;
        }
        support::write_file(&suite.join("isotest.toml"), TOP_CONFIG, 0o644)?;
        support::write_file(&suite.join("sub/isotest.toml"), "memory = \"64M\"\n", 0o644)?;
        Ok(Suite { dir })
    }

    fn add_test(&self, name: &str) -> Result<(), String> {
        support::write_file(
            &self.dir.path().join("suite").join(name),
            "#!/bin/sh\nexit 0\n",
            0o755,
        )
    }

    /// `isotest SUBCOMMAND ARGS suite` in the suite's directory.
    fn isotest(&self, subcommand: &str, args: &[&str]) -> Result<Finished, String> {
        let mut command = support::isotest();
        command
            .current_dir(self.dir.path())
            .arg(subcommand)
            .args(args)
            .arg("suite");
        support::run(command)
    }

    /// The names `isotest list ARGS` prints, in order (without the
    /// `  (ignored: ...)` note).
    fn list(&self, args: &[&str]) -> Result<Vec<String>, String> {
        let finished = self.isotest("list", args)?;
        if finished.code != 0 {
            return Err(format!(
                "`isotest list {}` failed\nisotest {}",
                args.join(" "),
                finished.describe()
            ));
        }
        Ok(finished
            .stdout
            .lines()
            .filter(|line| !line.starts_with(' '))
            .map(|line| line.split("  (").next().unwrap_or(line).to_owned())
            .collect())
    }

    /// The tests in the JUnit report of `isotest run ARGS`, which must exit
    /// with `code`.
    fn run(&self, args: &[&str], code: i32) -> Result<Vec<String>, String> {
        let junit_path = self.dir.path().join("junit.xml");
        let mut all_args = vec!["--junit", junit_path.to_str().unwrap_or_default()];
        all_args.extend_from_slice(args);
        let finished = self.isotest("run", &all_args)?;
        if finished.code != code {
            return Err(format!(
                "`isotest run {}` exited with {}, expected {code}\nisotest {}",
                args.join(" "),
                finished.code,
                finished.describe()
            ));
        }
        let xml = std::fs::read_to_string(&junit_path)
            .map_err(|e| format!("read {}: {e}", junit_path.display()))?;
        let mut problems = Vec::new();
        let report = junit::parse(&xml, &mut problems)?;
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        Ok(report.into_keys().collect())
    }
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names
}

/// Every test in exactly one of the `parts`, each part in list order.
fn check_cover(parts: &[Vec<String>], all: &[String], what: &str) -> Result<(), String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        for name in part {
            if let Some(earlier) = seen.insert(name, k + 1) {
                problems.push(format!("{name} is in partitions {earlier} and {}", k + 1));
            }
        }
        let in_order: Vec<&String> = all.iter().filter(|n| part.contains(n)).collect();
        if part.iter().collect::<Vec<_>>() != in_order {
            problems.push(format!(
                "partition {} is not in list order: {part:?}",
                k + 1
            ));
        }
    }
    for name in all {
        if !seen.contains_key(name.as_str()) {
            problems.push(format!("{name} is in no partition"));
        }
    }
    let extra: Vec<_> = seen
        .keys()
        .filter(|n| !all.iter().any(|a| a == *n))
        .collect();
    if !extra.is_empty() {
        problems.push(format!("partitions hold tests not in the suite: {extra:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}\npartitions: {parts:?}",
            problems.join("; ")
        ))
    }
}

fn partition_hash_covers_each_once() -> Result<(), Failed> {
    let suite = Suite::create()?;
    let all = suite.list(&[])?;
    if all != ALL {
        return Err(format!("isotest list: {all:?}, expected {ALL:?}").into());
    }
    for n in [1, 2, 3, 5] {
        let parts = (1..=n)
            .map(|k| suite.list(&["--partition", &format!("hash:{k}/{n}")]))
            .collect::<Result<Vec<_>, _>>()?;
        check_cover(&parts, &all, &format!("--partition hash:K/{n}"))?;
    }
    Ok(())
}

/// Adding tests moves no existing test to another hash partition.
fn partition_hash_is_stable() -> Result<(), Failed> {
    let suite = Suite::create()?;
    let parts_of = |suite: &Suite| -> Result<BTreeMap<String, usize>, String> {
        let mut part_of = BTreeMap::new();
        for k in 1..=3 {
            for name in suite.list(&["--partition", &format!("hash:{k}/3")])? {
                part_of.insert(name, k);
            }
        }
        Ok(part_of)
    };
    let before = parts_of(&suite)?;
    for name in ["nu.sh", "sub/xi.sh", "omicron/pi.sh"] {
        suite.add_test(name)?;
    }
    let after = parts_of(&suite)?;
    let moved: Vec<_> = before
        .iter()
        .filter(|(name, k)| after.get(*name) != Some(k))
        .map(|(name, k)| format!("{name}: {k} → {:?}", after.get(name)))
        .collect();
    if !moved.is_empty() {
        return Err(format!("adding three tests moved existing ones: {moved:?}").into());
    }
    let all = suite.list(&[])?;
    let parts = (1..=3)
        .map(|k| suite.list(&["--partition", &format!("hash:{k}/3")]))
        .collect::<Result<Vec<_>, _>>()?;
    check_cover(&parts, &all, "--partition hash:K/3 after adding tests")?;
    Ok(())
}

/// slice:K/N takes every N-th test of the list, starting at the K-th.
fn partition_slice_is_round_robin() -> Result<(), Failed> {
    let suite = Suite::create()?;
    let all = suite.list(&[])?;
    for n in [1, 3, 5] {
        let mut parts = Vec::new();
        for k in 1..=n {
            let part = suite.list(&["--partition", &format!("slice:{k}/{n}")])?;
            let want: Vec<String> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| i % n == k - 1)
                .map(|(_, name)| name.clone())
                .collect();
            if part != want {
                return Err(
                    format!("--partition slice:{k}/{n}: {part:?}, expected {want:?}").into(),
                );
            }
            parts.push(part);
        }
        check_cover(&parts, &all, &format!("--partition slice:K/{n}"))?;
    }
    Ok(())
}

/// `isotest run --partition hash:K/3` runs (or reports skipped) exactly
/// what `isotest list --partition hash:K/3` lists; together, the suite.
fn partition_runs_cover_the_suite() -> Result<(), Failed> {
    support::require_root()?;
    let suite = Suite::create()?;
    let mut parts = Vec::new();
    for k in 1..=3 {
        let partition = format!("hash:{k}/3");
        let listed = suite.list(&["--partition", &partition])?;
        let ran = suite.run(&["-j2", "--partition", &partition], 0)?;
        if ran != sorted(&listed) {
            return Err(format!(
                "--partition {partition}: the run reported {ran:?}, the list has {listed:?}"
            )
            .into());
        }
        parts.push(listed);
    }
    check_cover(&parts, &ALL.map(String::from), "run --partition hash:K/3")?;
    Ok(())
}

fn partition_malformed_exits_2() -> Result<(), Failed> {
    let suite = Suite::create()?;
    for partition in [
        "hash:0/3",
        "hash:4/3",
        "slice:1/0",
        "round:1/3",
        "hash:1",
        "hash:a/3",
    ] {
        let finished = suite.isotest("list", &["--partition", partition])?;
        if finished.code != 2
            || !finished.stdout.is_empty()
            || !finished.stderr.contains("--partition")
            || !finished.stderr.contains(partition)
        {
            return Err(format!(
                "--partition {partition}: expected exit 2, nothing listed, and a message \
                 naming --partition and the value\nisotest {}",
                finished.describe()
            )
            .into());
        }
    }
    Ok(())
}

fn tags_filters_substrings() -> Result<(), Failed> {
    let suite = Suite::create()?;
    let cases: [(&[&str], &[&str]); 10] = [
        (&["--tag", "db"], &["iota", "lambda"]),
        (
            &["--tag", "db", "--tag", "slow"],
            &["iota", "kappa", "lambda"],
        ),
        (
            &["--skip-tag", "db"],
            &[
                "alpha.sh",
                "beta.sh",
                "delta.sh",
                "epsilon.sh",
                "gamma.sh",
                "sub/eta.sh",
                "sub/theta.sh",
                "zeta.sh",
                "kappa",
                "mu",
            ],
        ),
        (&["--tag", "db", "--skip-tag", "quick"], &["lambda"]),
        (&["--tag", "no-such-tag"], &[]),
        (&["--filter", "^sub/"], &["sub/eta.sh", "sub/theta.sh"]),
        (
            &["--filter", "^(alpha|gamma)\\.sh$", "--filter", "^k"],
            &["alpha.sh", "gamma.sh", "kappa"],
        ),
        (&["--filter", "a$", "--tag", "db"], &["iota", "lambda"]),
        // Substrings: "eta" is in beta, eta, theta and zeta.
        (
            &["eta"],
            &["beta.sh", "sub/eta.sh", "sub/theta.sh", "zeta.sh"],
        ),
        (
            &["eta", "lambda"],
            &["beta.sh", "sub/eta.sh", "sub/theta.sh", "zeta.sh", "lambda"],
        ),
    ];
    let mut problems = Vec::new();
    for (args, want) in cases {
        // Positional filters come after the path; flags before it.
        let (flags, substrings): (Vec<&str>, Vec<&str>) = if args[0].starts_with('-') {
            (args.to_vec(), Vec::new())
        } else {
            (Vec::new(), args.to_vec())
        };
        let mut command = support::isotest();
        command
            .current_dir(suite.dir.path())
            .arg("list")
            .args(&flags)
            .arg("suite")
            .args(&substrings);
        let finished = support::run(command)?;
        let got: Vec<&str> = finished
            .stdout
            .lines()
            .filter(|line| !line.starts_with(' '))
            .map(|line| line.split("  (").next().unwrap_or(line))
            .collect();
        if finished.code != 0 || got != want {
            problems.push(format!(
                "isotest list {args:?}: exit {} and {got:?}, expected 0 and {want:?} ({})",
                finished.code,
                finished.stderr.trim()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// `isotest run` selects as `isotest list` does.
fn run_applies_selection() -> Result<(), Failed> {
    support::require_root()?;
    let suite = Suite::create()?;
    let cases: [(&[&str], &[&str]); 2] = [
        (&["--tag", "db"], &["iota", "lambda"]),
        (
            &["--skip-tag", "db", "--filter", "^(alpha|sub/)"],
            &["alpha.sh", "sub/eta.sh", "sub/theta.sh"],
        ),
    ];
    for (args, want) in cases {
        let got = suite.run(args, 0)?;
        if got != want {
            return Err(format!("isotest run {args:?}: ran {got:?}, expected {want:?}").into());
        }
    }
    let mut command = support::isotest();
    let junit_path = suite.dir.path().join("substrings.xml");
    command
        .current_dir(suite.dir.path())
        .arg("run")
        .arg("--junit")
        .arg(&junit_path)
        .args(["suite", "eta"]);
    let finished = support::run(command)?;
    let xml = std::fs::read_to_string(&junit_path).map_err(|e| {
        format!(
            "read {}: {e}\nisotest {}",
            junit_path.display(),
            finished.describe()
        )
    })?;
    let mut problems = Vec::new();
    let got: Vec<String> = junit::parse(&xml, &mut problems)?.into_keys().collect();
    let want = ["beta.sh", "sub/eta.sh", "sub/theta.sh", "zeta.sh"];
    if finished.code != 0 || got != want || !problems.is_empty() {
        return Err(format!(
            "isotest run suite eta: exit {} and {got:?}, expected 0 and {want:?} {problems:?}\nisotest {}",
            finished.code,
            finished.describe()
        )
        .into());
    }
    Ok(())
}

/// Nothing selected: `--no-tests fail` (the default) exits 4 before
/// anything starts; `warn` exits 0 with a warning, `pass` exits 0, both
/// after an empty run (so reports are still written).
fn no_tests_modes() -> Result<(), Failed> {
    support::require_root()?;
    let suite = Suite::create()?;
    let modes: [(&[&str], i32, &str); 4] = [
        (
            &[],
            4,
            "isotest: no tests to run in suite (--no-tests fail)",
        ),
        (
            &["--no-tests", "fail"],
            4,
            "isotest: no tests to run in suite (--no-tests fail)",
        ),
        (
            &["--no-tests", "warn"],
            0,
            "isotest: warning: no tests to run in suite",
        ),
        (&["--no-tests", "pass"], 0, ""),
    ];
    let mut problems = Vec::new();
    for (args, code, stderr) in modes {
        let mut command = support::isotest();
        command
            .current_dir(suite.dir.path())
            .arg("run")
            .args(args)
            .args(["suite", "no-such-test"]);
        let finished = support::run(command)?;
        let lines: Vec<&str> = finished.stderr.lines().collect();
        let want_lines: Vec<&str> = stderr.lines().collect();
        let empty_run = finished.stdout.contains("0 tests run");
        let stdout_as_expected = if code == 0 {
            empty_run
        } else {
            finished.stdout.is_empty()
        };
        if finished.code != code || lines != want_lines || !stdout_as_expected {
            problems.push(format!(
                "{args:?}: expected exit {code}, stderr {want_lines:?} and nothing run\nisotest {}",
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

/// `isotest list --verbose` output: for each test, its settings as
/// `key value source` (runs of spaces collapsed).
fn verbose_settings(stdout: &str) -> BTreeMap<String, Vec<String>> {
    let mut tests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in stdout.lines() {
        if line.starts_with(' ') {
            if let Some(name) = &current {
                let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
                tests
                    .entry(String::clone(name))
                    .or_default()
                    .push(collapsed);
            }
        } else {
            let name = line.split("  (").next().unwrap_or(line).to_owned();
            tests.entry(name.clone()).or_default();
            current = Some(name);
        }
    }
    tests
}

/// Where each setting came from: the file and line (and table), the
/// profile, an override, a flag, or the default; deeper files over
/// shallower ones, flags over files.
fn list_verbose_shows_sources() -> Result<(), Failed> {
    let suite = Suite::create()?;
    let expectations: [(&[&str], &str, &[&str]); 7] = [
        (
            &[],
            "alpha.sh",
            &[
                "timeout_secs 20.0 suite/isotest.toml:1",
                "grace_secs 10.0 default",
                "memory_bytes 134217728 suite/isotest.toml:2",
                "retries 0 default",
                "hostname isotest default",
                "network none default",
            ],
        ),
        (
            &[],
            "sub/eta.sh",
            &[
                "timeout_secs 20.0 suite/isotest.toml:1",
                "grace_secs 3.0 suite/isotest.toml:27 [[override]] filter = \"sub/**\"",
                "memory_bytes 67108864 suite/sub/isotest.toml:1",
            ],
        ),
        (
            &[],
            "iota",
            &[
                "tags quick suite/isotest.toml:7 [[test]] iota",
                "tags db suite/isotest.toml:7 [[test]] iota",
            ],
        ),
        (
            &[],
            "mu",
            &[
                "ignore true suite/isotest.toml:22 [[test]] mu",
                "ignore_reason flaky upstream suite/isotest.toml:23 [[test]] mu",
            ],
        ),
        (
            &["--profile", "ci"],
            "alpha.sh",
            &[
                "memory_bytes 268435456 suite/isotest.toml:31 [profile.ci]",
                "retries 2 suite/isotest.toml:30 [profile.ci]",
            ],
        ),
        // The deeper file's default beats the shallower file's profile.
        (
            &["--profile", "ci"],
            "sub/eta.sh",
            &[
                "memory_bytes 67108864 suite/sub/isotest.toml:1",
                "retries 2 suite/isotest.toml:30 [profile.ci]",
            ],
        ),
        (
            &["--profile", "ci", "--timeout", "9s", "--memory", "32M"],
            "sub/eta.sh",
            &[
                "timeout_secs 9.0 --timeout",
                "memory_bytes 33554432 --memory",
                "retries 2 suite/isotest.toml:30 [profile.ci]",
                "grace_secs 3.0 suite/isotest.toml:27 [[override]] filter = \"sub/**\"",
            ],
        ),
    ];
    let mut problems = Vec::new();
    for (args, name, lines) in expectations {
        let mut all_args = vec!["--verbose"];
        all_args.extend_from_slice(args);
        let finished = suite.isotest("list", &all_args)?;
        if finished.code != 0 {
            return Err(
                format!("isotest list {all_args:?}\nisotest {}", finished.describe()).into(),
            );
        }
        let settings = verbose_settings(&finished.stdout);
        if settings.keys().cloned().collect::<Vec<_>>() != sorted(&ALL.map(String::from)) {
            problems.push(format!(
                "isotest list {all_args:?}: tests {:?}, expected {ALL:?}",
                settings.keys().collect::<Vec<_>>()
            ));
        }
        let shown = settings.get(name).cloned().unwrap_or_default();
        for line in lines {
            if !shown.iter().any(|l| l == line) {
                problems.push(format!(
                    "isotest list {all_args:?}: {name} has no line `{line}`; it shows {shown:#?}"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn list_json_has_settings() -> Result<(), Failed> {
    let suite = Suite::create()?;
    let finished = suite.isotest("list", &["--format", "json", "--profile", "ci"])?;
    if finished.code != 0 {
        return Err(format!(
            "isotest list --format json\nisotest {}",
            finished.describe()
        )
        .into());
    }
    let tests: Value = serde_json::from_str(&finished.stdout).map_err(|e| {
        format!(
            "isotest list --format json: not JSON: {e}\n{}",
            finished.stdout
        )
    })?;
    let Some(tests) = tests.as_array() else {
        return Err(format!("isotest list --format json: not an array: {tests}").into());
    };
    let names: Vec<&str> = tests.iter().filter_map(|t| t["name"].as_str()).collect();
    let mut problems = Vec::new();
    if names != ALL {
        problems.push(format!("names {names:?}, expected {ALL:?}"));
    }
    let by_name: BTreeMap<&str, &Value> = names.iter().copied().zip(tests).collect();
    let keys: BTreeSet<&str> = [
        "timeout_secs",
        "grace_secs",
        "memory_bytes",
        "cpus",
        "pids",
        "network",
        "hostname",
        "retries",
        "expect",
        "ignore",
    ]
    .into();
    for (name, test) in &by_name {
        let have: BTreeSet<&str> = test["settings"]
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if !keys.is_subset(&have) {
            problems.push(format!(
                "{name}: settings lack {:?}",
                keys.difference(&have).collect::<Vec<_>>()
            ));
        }
    }
    let expect = |name: &str, pointer: &str, want: Value, problems: &mut Vec<String>| {
        let got = by_name.get(name).and_then(|t| t.pointer(pointer));
        if got != Some(&want) {
            problems.push(format!("{name}: {pointer} is {got:?}, expected {want}"));
        }
    };
    expect(
        "alpha.sh",
        "/settings/timeout_secs",
        20.0.into(),
        &mut problems,
    );
    expect(
        "alpha.sh",
        "/settings/memory_bytes",
        268435456.into(),
        &mut problems,
    );
    expect("alpha.sh", "/settings/retries", 2.into(), &mut problems);
    expect("alpha.sh", "/suite", "suite".into(), &mut problems);
    expect(
        "sub/eta.sh",
        "/settings/memory_bytes",
        67108864.into(),
        &mut problems,
    );
    expect(
        "sub/eta.sh",
        "/settings/grace_secs",
        3.0.into(),
        &mut problems,
    );
    expect("sub/eta.sh", "/suite", "sub".into(), &mut problems);
    expect(
        "iota",
        "/tags",
        serde_json::json!(["quick", "db"]),
        &mut problems,
    );
    expect(
        "iota",
        "/program/command",
        serde_json::json!(["/bin/sh", "-c", "exit 0"]),
        &mut problems,
    );
    expect("mu", "/ignored", true.into(), &mut problems);
    expect("kappa", "/ignored", false.into(), &mut problems);
    let file = by_name
        .get("alpha.sh")
        .and_then(|t| t["program"]["file"].as_str())
        .unwrap_or_default();
    if !Path::new(file).ends_with("suite/alpha.sh") || !Path::new(file).is_absolute() {
        problems.push(format!(
            "alpha.sh: program.file is {file:?}, expected the absolute path of suite/alpha.sh"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}
