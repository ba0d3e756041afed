//! Checks of the command line that are not fixture-shaped: exit codes of
//! `isotest run` itself, interrupts, stale and unavailable cgroups,
//! `isotest list`, `isotest exec`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};

use nix::sys::signal::Signal;

use crate::support::{self, isotest, wait_until, Finished};
use crate::{cgroups, hooks, junit};

type Check = fn() -> Result<(), Failed>;

pub fn trials() -> Vec<Trial> {
    let trials: [(&str, Check); 24] = [
        ("run_bad_flag_exits_2", run_bad_flag_exits_2),
        ("run_bad_duration_exits_2", run_bad_duration_exits_2),
        ("run_empty_directory_exits_4", run_empty_directory_exits_4),
        ("run_nothing_selected_exits_4", run_nothing_selected_exits_4),
        ("run_defaults_to_tests_dir", run_defaults_to_tests_dir),
        ("run_single_file", run_single_file),
        ("run_reports_to_stdout", run_reports_to_stdout),
        (
            "run_shows_output_of_failures_only",
            run_shows_output_of_failures_only,
        ),
        (
            "run_no_capture_streams_output",
            run_no_capture_streams_output,
        ),
        (
            "run_no_capture_leaves_tap_unread",
            run_no_capture_leaves_tap_unread,
        ),
        ("run_as_nobody_is_rootless", run_as_nobody_is_rootless),
        (
            "run_killed_runner_takes_tests_along",
            run_killed_runner_takes_tests_along,
        ),
        (
            "run_survives_a_killed_sandbox_server",
            run_survives_a_killed_sandbox_server,
        ),
        ("list_prints_names_in_order", list_prints_names_in_order),
        ("list_applies_include_exclude", list_applies_include_exclude),
        (
            "list_star_does_not_cross_slash",
            list_star_does_not_cross_slash,
        ),
        ("exec_passes_exit_code", exec_passes_exit_code),
        (
            "exec_reports_signal_as_128_plus",
            exec_reports_signal_as_128_plus,
        ),
        ("exec_passes_output_through", exec_passes_output_through),
        (
            "exec_runs_in_a_clean_container",
            exec_runs_in_a_clean_container,
        ),
        (
            "exec_timeout_stops_everything",
            exec_timeout_stops_everything,
        ),
        ("interrupt_writes_reports", interrupt_writes_reports),
        ("cgroup_stale_cleanup", cgroup_stale_cleanup),
        ("cgroup_unavailable_warns", cgroup_unavailable_warns),
    ];
    let mut trials: Vec<Trial> = trials
        .into_iter()
        .map(|(name, check)| Trial::test(format!("cli::{name}"), check))
        .collect();
    // Only a pure cgroup v2 host (the VM lane) has the "no internal
    // processes" rule this trial is about; elsewhere it shows as ignored.
    trials.push(
        Trial::test("cli::cgroup_v2_leaf", cgroup_v2_leaf)
            .with_ignored_flag(!cgroups::is_pure_v2()),
    );
    trials.push(
        Trial::test(
            "cli::cgroup_v2_rootless_delegated",
            cgroup_v2_rootless_delegated,
        )
        .with_ignored_flag(!cgroups::is_pure_v2()),
    );
    trials
}

/// Runs `isotest ARGS` from the repository root.
fn isotest_with(args: &[&str]) -> Result<Finished, String> {
    let mut command = isotest();
    command.args(args);
    support::run(command)
}

fn expect_code(finished: &Finished, code: i32, what: &str) -> Result<(), Failed> {
    if finished.code == code {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected exit code {code}\nisotest {}",
            finished.describe()
        )
        .into())
    }
}

fn expect_lines(finished: &Finished, lines: &[&str], what: &str) -> Result<(), Failed> {
    expect_code(finished, 0, what)?;
    let got: Vec<&str> = finished.stdout.lines().collect();
    if got == lines {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {lines:?}, got {got:?}\nisotest {}",
            finished.describe()
        )
        .into())
    }
}

fn run_bad_flag_exits_2() -> Result<(), Failed> {
    let finished = isotest_with(&["run", "--no-such-flag", "fixtures/exit_status/tests"])?;
    expect_code(&finished, 2, "an unknown flag")
}

fn run_bad_duration_exits_2() -> Result<(), Failed> {
    let finished = isotest_with(&["run", "--timeout", "soon", "fixtures/exit_status/tests"])?;
    expect_code(&finished, 2, "--timeout soon")
}

fn run_empty_directory_exits_4() -> Result<(), Failed> {
    support::require_root()?;
    let empty = tempfile::tempdir()?;
    let finished = isotest_with(&["run", &empty.path().to_string_lossy()])?;
    expect_code(&finished, 4, "a directory without tests")
}

fn run_nothing_selected_exits_4() -> Result<(), Failed> {
    support::require_root()?;
    let finished = isotest_with(&[
        "run",
        "--include",
        "no-such-test-*",
        "fixtures/discovery/tests",
    ])?;
    expect_code(&finished, 4, "--include matching nothing")
}

fn run_defaults_to_tests_dir() -> Result<(), Failed> {
    support::require_root()?;
    let scratch = tempfile::tempdir()?;
    let junit_path = scratch.path().join("junit.xml");
    let mut command = isotest();
    command
        .current_dir(support::fixtures_dir().join("discovery"))
        .arg("run")
        .arg("--junit")
        .arg(&junit_path);
    let finished = support::run(command)?;
    expect_code(&finished, 0, "`isotest run` in fixtures/discovery")?;
    expect_tests_in_report(&junit_path, &["sub/nested.sh", "visible.sh"])
}

fn run_single_file() -> Result<(), Failed> {
    support::require_root()?;
    let scratch = tempfile::tempdir()?;
    let junit_path = scratch.path().join("junit.xml");
    let finished = isotest_with(&[
        "run",
        "--junit",
        &junit_path.to_string_lossy(),
        "fixtures/exit_status/tests/exit_3.sh",
    ])?;
    expect_code(&finished, 100, "a single failing file")?;
    expect_tests_in_report(&junit_path, &["exit_3.sh"])
}

/// `--json -` and `--junit -` write the report to stdout and the terminal
/// view to stderr, and no file named `-` appears; both at once, or with
/// --no-capture (whose output goes to stdout too), is a usage error, as is
/// `--html -` or `--trace -`; `report html RUN.json -o -` prints the page.
fn run_reports_to_stdout() -> Result<(), Failed> {
    support::require_root()?;
    let cwd = tempfile::tempdir()?;
    let tests = support::fixtures_dir().join("exit_status/tests");
    let run = |report: &[&str]| -> Result<Finished, String> {
        let mut command = isotest();
        command.current_dir(cwd.path()).arg("run").args(report);
        command
            .arg(tests.join("pass.sh"))
            .arg(tests.join("exit_3.sh"));
        support::run(command)
    };
    let json = run(&["--json", "-"])?;
    expect_code(&json, 100, "--json - with one failing test")?;
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).map_err(|e| {
        format!(
            "stdout is not the JSON report: {e}\nisotest {}",
            json.describe()
        )
    })?;
    let mut names: Vec<&str> = parsed["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort_unstable();
    if names != ["exit_3.sh", "pass.sh"] {
        return Err(format!("tests in the JSON on stdout: {names:?}").into());
    }
    if !json.stderr.contains("FAIL") || !json.stderr.contains("Summary") {
        return Err(format!(
            "the terminal view is not on stderr\nisotest {}",
            json.describe()
        )
        .into());
    }
    let junit = run(&["--junit", "-"])?;
    expect_code(&junit, 100, "--junit - with one failing test")?;
    let mut problems = Vec::new();
    let report = junit::parse(&junit.stdout, &mut problems)
        .map_err(|e| format!("{e}\nisotest {}", junit.describe()))?;
    if report.len() != 2 || !problems.is_empty() {
        return Err(format!(
            "the JUnit report on stdout: {problems:?}\nisotest {}",
            junit.describe()
        )
        .into());
    }
    let stray = cwd.path().join("-");
    if stray.exists() {
        return Err(format!("a file named `-` was written: {}", stray.display()).into());
    }
    for bad in [
        &["--json", "-", "--junit", "-"][..],
        &["--json", "-", "--no-capture"],
        &["--html", "-"],
        &["--trace", "-"],
    ] {
        let finished = run(bad)?;
        expect_code(&finished, 2, &bad.join(" "))?;
    }
    // A page from a saved report goes to stdout with `-o -`.
    std::fs::write(cwd.path().join("run.json"), &json.stdout)?;
    let mut page = isotest();
    page.current_dir(cwd.path())
        .args(["report", "html", "run.json", "-o", "-"]);
    let page = support::run(page)?;
    expect_code(&page, 0, "report html run.json -o -")?;
    if !page.stdout.starts_with("<!DOCTYPE html>") || !page.stdout.contains("exit_3.sh") {
        return Err(format!(
            "report html -o - did not print the page\nisotest {}",
            page.describe()
        )
        .into());
    }
    if stray.exists() {
        return Err(format!("a file named `-` was written: {}", stray.display()).into());
    }
    Ok(())
}

fn expect_tests_in_report(junit_path: &std::path::Path, names: &[&str]) -> Result<(), Failed> {
    let xml = std::fs::read_to_string(junit_path)
        .map_err(|e| format!("read {}: {e}", junit_path.display()))?;
    let mut problems = Vec::new();
    let report = junit::parse(&xml, &mut problems)?;
    let got: Vec<&str> = report.keys().map(String::as_str).collect();
    if got != names {
        problems.push(format!("tests in the report: {got:?}, expected {names:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn run_shows_output_of_failures_only() -> Result<(), Failed> {
    support::require_root()?;
    let finished = isotest_with(&[
        "run",
        "fixtures/exit_status/tests/pass.sh",
        "examples/basic/hello.sh",
        "fixtures/exit_status/tests/exit_3.sh",
    ])?;
    expect_code(&finished, 100, "one failing test among passing ones")?;
    if !finished.stdout.contains("about to exit 3") {
        return Err(format!(
            "the failing test's output is not shown\nisotest {}",
            finished.describe()
        )
        .into());
    }
    if finished.stdout.contains("hello from") {
        return Err(format!(
            "a passing test's output is shown\nisotest {}",
            finished.describe()
        )
        .into());
    }
    Ok(())
}

fn run_no_capture_streams_output() -> Result<(), Failed> {
    support::require_root()?;
    let finished = isotest_with(&["run", "--no-capture", "examples/basic/hello.sh"])?;
    expect_code(&finished, 0, "--no-capture")?;
    if finished.stdout.contains("hello from") && finished.stdout.contains("(ISOTEST=1)") {
        Ok(())
    } else {
        Err(format!(
            "the test's output did not reach isotest's stdout\nisotest {}",
            finished.describe()
        )
        .into())
    }
}

/// Under --no-capture a TAP test's stdout goes to the terminal unread: the
/// exit code decides (a `not ok` with exit 0 passes), where a captured run
/// fails the same test on the case.
fn run_no_capture_leaves_tap_unread() -> Result<(), Failed> {
    support::require_root()?;
    let test = "fixtures/protocol_tap/tests/case_fails.sh";
    let streamed = isotest_with(&["run", "--no-capture", "--protocol", "tap", test])?;
    expect_code(&streamed, 0, "--no-capture --protocol tap")?;
    if !streamed.stdout.contains("not ok 2 - compares") {
        return Err(format!(
            "the TAP did not reach isotest's stdout\nisotest {}",
            streamed.describe()
        )
        .into());
    }
    let captured = isotest_with(&["run", "--protocol", "tap", test])?;
    expect_code(&captured, 100, "--protocol tap")
}

/// Without root (as nobody) isotest runs rootless: the test is root in its
/// user namespace, mapped from nobody, and its root filesystem takes
/// writes; this host gives nobody no cgroups, so limits are off with a
/// warning, and `--require-limits` makes that exit 96. The binary and the
/// test are copied to a directory nobody can reach, as the repository may
/// sit under a private home directory.
fn run_as_nobody_is_rootless() -> Result<(), Failed> {
    support::require_root()?;
    let dir = tempfile::tempdir()?;
    let open = |path: &std::path::Path| {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
    };
    open(dir.path())?;
    let binary = dir.path().join("isotest");
    std::fs::copy(support::ISOTEST, &binary)?;
    open(&binary)?;
    let test = dir.path().join("pass.sh");
    // Root inside, the caller outside; the root filesystem takes writes.
    std::fs::write(
        &test,
        "#!/bin/sh\nset -e\nread inside outside count < /proc/self/uid_map\n[ \"$inside $outside\" = \"0 65534\" ]\ntouch /etc/isotest-rootless\n",
    )?;
    open(&test)?;

    let as_nobody = |args: &[&str]| {
        let mut command = Command::new("setpriv");
        command
            .current_dir(dir.path())
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&binary)
            .args(args);
        support::run(command)
    };
    // Somewhere nobody may write the report.
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports)?;
    std::fs::set_permissions(
        &reports,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )?;
    let report_path = reports.join("report.json");
    let report_arg = report_path.to_string_lossy().into_owned();
    let finished = as_nobody(&["run", "--json", &report_arg, "pass.sh"])?;
    expect_code(&finished, 0, "running as nobody (rootless)")?;
    if !finished.stderr.contains("without cgroup limits") {
        return Err("no warning that limits are off".into());
    }
    let report = crate::json::read(&report_path)?;
    if report["host"]["rootless"] != true {
        return Err(format!(
            "the JSON report of a rootless run says host.rootless = {}",
            report["host"]["rootless"]
        )
        .into());
    }
    let finished = as_nobody(&["run", "--require-limits", "pass.sh"])?;
    expect_code(&finished, 96, "running as nobody with --require-limits")?;
    if !finished.stderr.contains("--require-limits") {
        return Err("exit 96 without a word on stderr about what failed".into());
    }
    Ok(())
}

/// When the runner dies (SIGKILL, no chance to clean up), its containers die
/// with it: nothing of a running test survives on the host.
fn run_killed_runner_takes_tests_along() -> Result<(), Failed> {
    support::require_root()?;
    const MARKER: &str = "1000.7373";
    let suite = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let test = suite.path().join("sleeps.sh");
    std::fs::write(
        &test,
        format!("#!/bin/sh\nsleep {MARKER} &\nsleep {MARKER}\n"),
    )?;
    std::fs::set_permissions(&test, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

    let mut runner = isotest()
        .arg("run")
        .arg(suite.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = wait_until(Duration::from_secs(10), || {
        !hooks::processes_with(MARKER).is_empty()
    });
    runner.kill()?;
    runner.wait()?;
    if !started {
        hooks::kill_leftovers(MARKER)?;
        return Err("the test did not start within 10 s".into());
    }
    wait_until(Duration::from_secs(5), || {
        hooks::processes_with(MARKER).is_empty()
    });
    hooks::kill_leftovers(MARKER)
        .map_err(|e| format!("5 s after the runner was killed: {e}").into())
}

/// When the sandbox server (the runner's child that forks every test's
/// supervisor) dies, the test it was running ends as an ERROR naming it,
/// with nothing of it left, and the next test runs under a new server.
fn run_survives_a_killed_sandbox_server() -> Result<(), Failed> {
    support::require_root()?;
    const MARKER: &str = "1000.6262";
    let suite = support::suite(&[
        ("a_sleeps.sh", &format!("#!/bin/sh\nsleep {MARKER}\n")),
        ("b_passes.sh", "#!/bin/sh\nexit 0\n"),
    ])?;
    let mut command = isotest();
    command.args(["run", "-j1"]).arg(suite.path());
    let runner = support::start(command)?;
    let runner_pid = runner.pid().to_string();
    let started = wait_until(Duration::from_secs(10), || {
        !hooks::processes_with(MARKER).is_empty()
    });
    // The server: the runner's child running the hidden subcommand.
    let server = hooks::processes_with(&format!("__sandbox-server {runner_pid}"))
        .into_iter()
        .map(|(pid, _)| pid)
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    == Some(runner_pid.as_str())
            })
        });
    let (true, Some(server)) = (started, server) else {
        let _ = runner.signal(Signal::SIGKILL);
        let finished = runner.finish();
        hooks::kill_leftovers(MARKER)?;
        let output = finished.map(|f| f.describe()).unwrap_or_else(|e| e);
        return Err(format!(
            "within 10 s the test did not start or no sandbox server was found\nisotest {output}"
        )
        .into());
    };
    let killed = Command::new("kill").args(["-KILL", &server]).status()?;
    let finished = runner.finish_within(Duration::from_secs(30))?;
    let mut problems = Vec::new();
    if !killed.success() {
        problems.push(format!("kill -KILL {server} failed"));
    }
    wait_until(Duration::from_secs(2), || {
        hooks::processes_with(MARKER).is_empty()
    });
    if let Err(e) = hooks::kill_leftovers(MARKER) {
        problems.push(format!("2 s after the server was killed: {e}"));
    }
    if finished.code != 100 {
        problems.push(format!("exited with {}, expected 100", finished.code));
    }
    let line = |status: &str, name: &str| {
        finished
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{status} [")) && l.contains(name))
            .map(str::to_owned)
    };
    match line("ERROR", "a_sleeps.sh") {
        Some(l) if l.contains("sandbox server") => {}
        other => problems.push(format!(
            "a_sleeps.sh: expected an ERROR line naming the sandbox server, got {other:?}"
        )),
    }
    if line("PASS", "b_passes.sh").is_none() {
        problems.push("b_passes.sh did not pass under a new server".to_owned());
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "SIGKILL to the sandbox server while a test ran:\n  - {}\nisotest {}",
        problems.join("\n  - "),
        finished.describe()
    )
    .into())
}

fn list_prints_names_in_order() -> Result<(), Failed> {
    let finished = isotest_with(&["list", "fixtures/include_exclude/tests"])?;
    expect_lines(
        &finished,
        &[
            "a.sh",
            "b.sh",
            "sub/c.sh",
            "sub/d.sh",
            "sub/deep/e.sh",
            "sub/t3.sh",
            "t1.sh",
            "t2.sh",
        ],
        "isotest list",
    )
}

fn list_applies_include_exclude() -> Result<(), Failed> {
    let finished = isotest_with(&[
        "list",
        "fixtures/include_exclude/tests",
        "--include",
        "t[0-9]*.sh",
        "--include",
        "sub/*",
        "--exclude",
        "sub/d.sh",
    ])?;
    expect_lines(
        &finished,
        &["sub/c.sh", "sub/t3.sh", "t1.sh", "t2.sh"],
        "isotest list with filters",
    )
}

fn list_star_does_not_cross_slash() -> Result<(), Failed> {
    let finished = isotest_with(&[
        "list",
        "fixtures/include_exclude/tests",
        "--include",
        "*.sh",
    ])?;
    expect_lines(
        &finished,
        &["a.sh", "b.sh", "t1.sh", "t2.sh"],
        "isotest list --include '*.sh'",
    )
}

fn exec_passes_exit_code() -> Result<(), Failed> {
    support::require_root()?;
    let finished = isotest_with(&["exec", "--", "sh", "-c", "exit 7"])?;
    expect_code(&finished, 7, "exec of `exit 7`")
}

fn exec_reports_signal_as_128_plus() -> Result<(), Failed> {
    support::require_root()?;
    let finished = isotest_with(&["exec", "--", "sh", "-c", "kill -USR1 $$"])?;
    expect_code(&finished, 128 + 10, "exec of a command killed by SIGUSR1")
}

fn exec_passes_output_through() -> Result<(), Failed> {
    support::require_root()?;
    let finished = isotest_with(&[
        "exec",
        "--env",
        "GREETING=hello",
        "--",
        "sh",
        "-c",
        "echo \"$GREETING from $(hostname)\"; echo to-stderr >&2",
    ])?;
    expect_code(&finished, 0, "exec")?;
    if finished.stdout != "hello from isotest\n" || !finished.stderr.contains("to-stderr") {
        return Err(format!(
            "expected stdout \"hello from isotest\\n\" and \"to-stderr\" on stderr\nisotest {}",
            finished.describe()
        )
        .into());
    }
    Ok(())
}

fn exec_runs_in_a_clean_container() -> Result<(), Failed> {
    support::require_root()?;
    let mut command = isotest();
    command
        .args(["exec", "--pass-env", "HARNESS_PASSED", "--", "sh", "-c"])
        .arg("echo \"pid=$$ passed=${HARNESS_PASSED-unset} secret=${HARNESS_SECRET-unset}\"")
        .env("HARNESS_PASSED", "yes")
        .env("HARNESS_SECRET", "must not leak");
    let finished = support::run(command)?;
    expect_code(&finished, 0, "exec")?;
    let line = finished.stdout.trim();
    let pid_ok = line
        .strip_prefix("pid=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid < 10);
    if pid_ok && line.contains("passed=yes secret=unset") {
        Ok(())
    } else {
        Err(format!(
            "expected a small PID, the passed variable and no secret\nisotest {}",
            finished.describe()
        )
        .into())
    }
}

fn exec_timeout_stops_everything() -> Result<(), Failed> {
    support::require_root()?;
    const MARKER: &str = "1000.6262";
    let started = Instant::now();
    let finished = isotest_with(&[
        "exec",
        "--timeout",
        "1s",
        "--grace",
        "1s",
        "--",
        "sh",
        "-c",
        &format!("trap '' TERM; (sleep {MARKER} &); sleep {MARKER}"),
    ])?;
    let took = started.elapsed();
    if finished.code == 0 {
        return Err(format!("a timed-out exec exited 0\nisotest {}", finished.describe()).into());
    }
    if took > Duration::from_secs(10) {
        return Err(format!("--timeout 1s --grace 1s took {took:?}").into());
    }
    hooks::kill_leftovers(MARKER)?;
    Ok(())
}

/// SIGINT (exit 130) or SIGTERM (exit 143) to `isotest run -j1` while its
/// first test sleeps: the running test is stopped, it and the tests not
/// started yet are reported NOT-RUN (<skipped>), the JUnit report is
/// written, and nothing of the test survives.
fn interrupt_writes_reports() -> Result<(), Failed> {
    support::require_root()?;
    support::require_xmllint()?;
    const MARKER: &str = "1000.9191";
    let suite = support::suite(&[
        ("a_sleeps.sh", &format!("#!/bin/sh\nsleep {MARKER}\n")),
        ("b_passes.sh", "#!/bin/sh\nexit 0\n"),
        ("c_passes.sh", "#!/bin/sh\nexit 0\n"),
    ])?;
    let names = ["a_sleeps.sh", "b_passes.sh", "c_passes.sh"];
    for (signal, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let scratch = tempfile::tempdir()?;
        let junit_path = scratch.path().join("junit.xml");
        let mut command = isotest();
        command
            .args(["run", "-j1", "--grace", "2s", "--junit"])
            .arg(&junit_path)
            .arg(suite.path());
        let runner = support::start(command)?;
        let started = wait_until(Duration::from_secs(10), || {
            !hooks::processes_with(MARKER).is_empty()
        });
        if !started {
            let _ = runner.signal(Signal::SIGKILL);
            let finished = runner.finish();
            hooks::kill_leftovers(MARKER)?;
            let output = finished.map(|f| f.describe()).unwrap_or_else(|e| e);
            return Err(
                format!("the sleeping test did not start within 10 s\nisotest {output}").into(),
            );
        }
        runner.signal(signal)?;
        let finished = runner.finish_within(Duration::from_secs(30))?;
        let what = format!("{signal} to `isotest run -j1` while a test runs");

        let mut problems = Vec::new();
        wait_until(Duration::from_secs(2), || {
            hooks::processes_with(MARKER).is_empty()
        });
        if let Err(e) = hooks::kill_leftovers(MARKER) {
            problems.push(format!("2 s after isotest exited: {e}"));
        }
        if finished.code != code {
            problems.push(format!("exited with {}, expected {code}", finished.code));
        }
        if !finished
            .stdout
            .lines()
            .any(|l| l.starts_with(" NOT-RUN [") && l.contains("] a_sleeps.sh"))
        {
            problems.push("no terminal line ` NOT-RUN [ …s] a_sleeps.sh`".to_owned());
        }
        match std::fs::read_to_string(&junit_path) {
            Err(e) => problems.push(format!("no JUnit report at {}: {e}", junit_path.display())),
            Ok(xml) => {
                if let Err(e) = junit::validate_schema(&xml, scratch.path()) {
                    problems.push(e);
                }
                let report = junit::parse(&xml, &mut problems)?;
                let got: Vec<&str> = report.keys().map(String::as_str).collect();
                if got != names {
                    problems.push(format!("tests in the report: {got:?}, expected {names:?}"));
                }
                for (name, case) in &report {
                    let status = case.properties.get("isotest.status");
                    let elements: Vec<&str> =
                        case.verdicts.iter().map(|v| v.element.as_str()).collect();
                    if status.map(String::as_str) != Some("NOT-RUN") || elements != ["skipped"] {
                        problems.push(format!(
                            "{name}: isotest.status {status:?} with {elements:?}, \
                             expected NOT-RUN with one <skipped>"
                        ));
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(format!(
                "{what}:\n  - {}\nisotest {}",
                problems.join("\n  - "),
                finished.describe()
            )
            .into());
        }
    }
    Ok(())
}

/// A runner killed with SIGKILL cannot remove its test cgroups; its test
/// dies with it, and the next run removes the cgroups and says so. Both runs
/// use a parent cgroup of their own (`--cgroup-parent`), so that no other
/// isotest run on this host (the harness runs trials in parallel) removes
/// the stale cgroups first.
fn cgroup_stale_cleanup() -> Result<(), Failed> {
    support::require_root()?;
    const MARKER: &str = "1000.8484";
    let suite = support::suite(&[("sleeps.sh", &format!("#!/bin/sh\nsleep {MARKER}\n"))])?;
    let trivial = support::suite(&[("passes.sh", "#!/bin/sh\nexit 0\n")])?;
    let parent = cgroups::Parent::create(&format!("harness-stale-cleanup-{}", std::process::id()))?;

    let mut command = isotest();
    command
        .args(["run", "--cgroup-parent", &parent.path])
        .arg(suite.path());
    let runner = support::start(command)?;
    let pid = runner.pid();
    let started = wait_until(Duration::from_secs(10), || {
        !hooks::processes_with(MARKER).is_empty() && !cgroups::of_runner(pid).is_empty()
    });
    runner.signal(Signal::SIGKILL)?;
    let killed = runner.finish()?;
    if !started {
        hooks::kill_leftovers(MARKER)?;
        return Err(format!(
            "within 10 s, the test did not start or no cgroup isotest-{pid}x* appeared \
             (cgroups: {:?})\nisotest {}",
            cgroups::of_runner(pid),
            killed.describe()
        )
        .into());
    }
    wait_until(Duration::from_secs(2), || {
        hooks::processes_with(MARKER).is_empty()
    });
    hooks::kill_leftovers(MARKER).map_err(|e| format!("2 s after the runner was killed: {e}"))?;
    let stale = cgroups::of_runner(pid);
    if stale.is_empty() {
        return Err(format!(
            "no cgroup isotest-{pid}x* is left after SIGKILL of its runner: nothing stale to clean"
        )
        .into());
    }
    if let Some(outside) = stale.iter().find(|dir| !parent.holds(dir)) {
        return Err(format!(
            "test cgroup {} is not in --cgroup-parent {}",
            outside.display(),
            parent.path
        )
        .into());
    }

    let finished = isotest_with(&[
        "run",
        "--cgroup-parent",
        &parent.path,
        &trivial.path().to_string_lossy(),
    ])?;
    expect_code(&finished, 0, "the run after the killed one")?;
    let left = cgroups::of_runner(pid);
    if !left.is_empty() {
        return Err(format!(
            "the next run did not remove the stale cgroups {left:?}\nisotest {}",
            finished.describe()
        )
        .into());
    }
    let note = "isotest: note: removed 1 stale cgroup(s) left by an earlier isotest run";
    if !finished.stderr.lines().any(|line| line == note) {
        return Err(format!(
            "the next run removed the stale cgroups without the line {note:?} on stderr\nisotest {}",
            finished.describe()
        )
        .into());
    }
    Ok(())
}

/// The usage figures isotest reports only when it measures them.
const USAGE_PROPERTIES: [&str; 9] = [
    "isotest.memory_peak_bytes",
    "isotest.cpu_user_usec",
    "isotest.cpu_system_usec",
    "isotest.pids_peak",
    "isotest.oom_kills",
    "isotest.pids_max_hits",
    "isotest.limit.memory_bytes",
    "isotest.limit.cpus",
    "isotest.limit.pids",
];

/// With a cgroup parent that does not exist, tests run without limits after
/// one warning, and the report leaves the figures out (not zero);
/// `--require-limits` makes that exit 96 without running anything.
fn cgroup_unavailable_warns() -> Result<(), Failed> {
    support::require_root()?;
    support::require_xmllint()?;
    let suite = support::suite(&[("passes.sh", "#!/bin/sh\nexit 0\n")])?;
    let scratch = tempfile::tempdir()?;
    let junit_path = scratch.path().join("junit.xml");
    let suite_path = suite.path().to_string_lossy().into_owned();
    let finished = isotest_with(&[
        "run",
        "--memory",
        "64M",
        "--cgroup-parent",
        "/isotest-does-not-exist",
        "--junit",
        &junit_path.to_string_lossy(),
        &suite_path,
    ])?;
    expect_code(&finished, 0, "a run whose cgroup parent does not exist")?;
    let mut problems = Vec::new();
    let warnings: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|line| line.contains("warning"))
        .collect();
    let prefix = "isotest: warning: tests run without cgroup limits or usage figures: ";
    if !matches!(warnings.as_slice(), [line] if line.starts_with(prefix) && line.len() > prefix.len())
    {
        problems.push(format!(
            "expected exactly one warning line `{prefix}<reason>` on stderr, got {warnings:?}"
        ));
    }
    match finished.stdout.lines().find(|l| l.contains("] passes.sh")) {
        Some(line) if line.starts_with("    PASS [") && !line.contains("[peak") => {}
        line => problems.push(format!(
            "expected a PASS terminal line without usage figures, got {line:?}"
        )),
    }
    let xml = std::fs::read_to_string(&junit_path)
        .map_err(|e| format!("read {}: {e}", junit_path.display()))?;
    if let Err(e) = junit::validate_schema(&xml, scratch.path()) {
        problems.push(e);
    }
    let report = junit::parse(&xml, &mut problems)?;
    match report.get("passes.sh") {
        None => problems.push("passes.sh is not in the JUnit report".to_owned()),
        Some(case) => {
            if case.properties.get("isotest.status").map(String::as_str) != Some("PASS") {
                problems.push(format!(
                    "passes.sh: isotest.status is {:?}, expected PASS",
                    case.properties.get("isotest.status")
                ));
            }
            for key in USAGE_PROPERTIES {
                if let Some(value) = case.properties.get(key) {
                    problems.push(format!(
                        "passes.sh: {key} is {value:?}, expected absent (not measured, no limit)"
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "without usable cgroups:\n  - {}\nisotest {}",
            problems.join("\n  - "),
            finished.describe()
        )
        .into());
    }

    let strict_junit = scratch.path().join("strict.xml");
    let finished = isotest_with(&[
        "run",
        "--require-limits",
        "--cgroup-parent",
        "/isotest-does-not-exist",
        "--junit",
        &strict_junit.to_string_lossy(),
        &suite_path,
    ])?;
    expect_code(&finished, 96, "--require-limits without usable cgroups")?;
    let ran = finished.stdout.lines().any(|l| l.contains("passes.sh"))
        || std::fs::read_to_string(&strict_junit).is_ok_and(|xml| xml.contains("<testcase"));
    if ran || finished.stderr.trim().is_empty() {
        return Err(format!(
            "--require-limits: expected nothing run and the reason on stderr\nisotest {}",
            finished.describe()
        )
        .into());
    }
    Ok(())
}

/// On v2, a cgroup holding processes cannot hand controllers to children.
/// isotest started alone in a fresh cgroup must move itself into a leaf
/// beside its tests, run them with limits, and afterwards leave the cgroup
/// as it found it: back in it, leaf removed, controllers off again.
fn cgroup_v2_leaf() -> Result<(), Failed> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    support::require_root()?;
    let parent = cgroups::Parent::create(&format!("isotest-leaf-{}", std::process::id()))?;
    let dir = parent.dirs()[0].clone();
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .map_err(|e| format!("open {}/cgroup.procs: {e}", dir.display()))?;
    let suite = support::suite(&[(
        "hog.sh",
        "#!/bin/sh\nexec dd if=/dev/zero of=/dev/null bs=100M count=1 status=none\n",
    )])?;
    let mut command = isotest();
    command
        .args(["run", "--memory", "32M", "--require-limits"])
        .arg(suite.path());
    let fd = procs.as_raw_fd();
    // SAFETY: only write(2) between fork and exec: the child joins `dir`
    // before it becomes isotest, so isotest starts alone in that cgroup.
    unsafe {
        command.pre_exec(move || {
            if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let finished = support::run(command)?;
    let mut problems = Vec::new();
    if finished.code != 100 || !finished.stdout.contains("OOM") {
        problems.push("the 100 MiB hog under --memory 32M was not OOM-killed".to_string());
    }
    let children = child_cgroups(&dir);
    if !children.is_empty() {
        problems.push(format!("cgroups left in {}: {children:?}", dir.display()));
    }
    let control = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    if !control.trim().is_empty() {
        problems.push(format!(
            "controllers still enabled in {}: {control}",
            dir.display()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nisotest {}", problems.join("\n"), finished.describe()).into())
    }
}

/// Rootless with a delegated cgroup (what `systemd-run --user --scope -p
/// Delegate=yes` gives a user): isotest, started as nobody in a v2 cgroup
/// that nobody owns, runs its tests with limits and accounting: a hog is
/// OOM-killed at --memory, and nothing is left in the cgroup afterwards.
fn cgroup_v2_rootless_delegated() -> Result<(), Failed> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    const NOBODY: u32 = 65534;
    support::require_root()?;
    let parent = cgroups::Parent::create(&format!("isotest-delegated-{}", std::process::id()))?;
    let dir = parent.dirs()[0].clone();
    // Delegation as systemd does it: the directory and the files that move
    // processes and hand out controllers belong to the user.
    for path in [
        dir.clone(),
        dir.join("cgroup.procs"),
        dir.join("cgroup.subtree_control"),
        dir.join("cgroup.threads"),
    ] {
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .map_err(|e| format!("open {}/cgroup.procs: {e}", dir.display()))?;
    let suite = support::suite(&[(
        "hog.sh",
        "#!/bin/sh\nread -r inside outside count < /proc/self/uid_map\n\
         [ \"$outside\" = 65534 ] || { echo \"FAILED: not rootless: $outside\"; exit 1; }\n\
         exec dd if=/dev/zero of=/dev/null bs=100M count=1 status=none\n",
    )])?;
    for path in [suite.path().to_path_buf(), suite.path().join("hog.sh")] {
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let mut command = isotest();
    command
        .env("HOME", "/tmp")
        .args(["run", "--memory", "32M", "--require-limits"])
        .arg(suite.path());
    let fd = procs.as_raw_fd();
    // SAFETY: only write(2), setgroups(2), setgid(2) and setuid(2) between
    // fork and exec: the child joins the delegated cgroup as root, then
    // becomes nobody, then isotest.
    unsafe {
        command.pre_exec(move || {
            let joined = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            if joined
                && libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(NOBODY) == 0
                && libc::setuid(NOBODY) == 0
            {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let finished = support::run(command)?;
    let mut problems = Vec::new();
    if finished.code != 100 || !finished.stdout.contains("OOM") {
        problems.push("the 100 MiB hog under --memory 32M was not OOM-killed".to_string());
    }
    let children = child_cgroups(&dir);
    if !children.is_empty() {
        problems.push(format!("cgroups left in {}: {children:?}", dir.display()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nisotest {}", problems.join("\n"), finished.describe()).into())
    }
}

/// The cgroups directly under `dir`.
fn child_cgroups(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
