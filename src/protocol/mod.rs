//! Protocols: how a finished test's output becomes results. This step runs
//! after the sandbox (which only returns an `Outcome`) and before the
//! reporters: `interpret` takes one classified attempt and adds what the
//! test said about itself: the skip exit code, TAP cases on stdout
//! (`tap`), and the JUnit XML it wrote to `XML_OUTPUT_FILE`
//! (`junit_file`). A test program a driver listed (`isotest cargo`,
//! `isotest go`) runs one case under its own harness, whose output says
//! more than the exit code: the panic of a failed Rust test, a Go test that
//! skipped itself, a program that ran no test of that name (`libtest`,
//! `gotest`). A new protocol is a variant of `Protocol` (or `Harness`) and
//! an arm of `interpret`, in a file of its own.

pub mod case;
mod gotest;
mod junit_file;
mod libtest;
mod tap;

use std::path::Path;

pub use case::{Case, CaseStatus};

use crate::run::{Status, TestResult};

/// How a test's stdout is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The exit code alone says how the test went.
    #[default]
    ExitCode,
    /// TAP 13/14 on stdout: every test point is a case of the test.
    Tap,
}

impl Protocol {
    /// Every protocol, in the order error messages list them.
    pub const ALL: [Protocol; 2] = [Protocol::ExitCode, Protocol::Tap];

    /// The name in isotest.toml and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::ExitCode => "exitcode",
            Protocol::Tap => "tap",
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `"exitcode" or "tap"`, for error messages.
    pub fn accepted() -> String {
        let names: Vec<String> = Protocol::ALL
            .iter()
            .map(|p| format!("\"{}\"", p.name()))
            .collect();
        names.join(" or ")
    }
}

/// The harness inside a test program that a driver listed, running one of
/// its cases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Harness {
    /// The case of this name in a libtest (or libtest-mimic) binary, run
    /// with `--exact NAME --nocapture`.
    Libtest(String),
    /// The test of this name in a Go test binary, run with
    /// `-test.run '^NAME$' -test.v`.
    GoTest(String),
}

/// The exit code that means "skipped" (automake, meson), unless
/// `skip_exit` says otherwise.
pub const DEFAULT_SKIP_EXIT: i32 = 77;

/// What `interpret` needs besides the result.
pub struct Reading<'a> {
    pub protocol: Protocol,
    /// The harness running the case, for a driver's test.
    pub harness: Option<&'a Harness>,
    pub skip_exit: i32,
    /// False under `--no-capture`: stdout went to the terminal, so the
    /// protocol has nothing to read and the exit code decides.
    pub stdout_captured: bool,
    /// The host path of the attempt's `XML_OUTPUT_FILE`, when it has one.
    pub xml_file: Option<&'a Path>,
}

/// Turns one classified attempt into the test's final word: SKIPPED on the
/// skip exit code; the cases its protocol and its JUnit file report; and
/// a passing test that any of them fails becomes FAIL with the reason.
pub fn interpret(result: &mut TestResult, reading: &Reading) {
    if matches!(result.status, Status::Error | Status::NotRun) {
        return;
    }
    if let Some(harness) = reading.harness.filter(|_| reading.stdout_captured) {
        read_harness(result, harness);
    }
    // Only a plain exit with the code: not one with notes (the process
    // limit hit) or a missed expectation (`expect_exit = 3`); never a
    // driver's case, which fails on it as under `cargo test` or `go test`.
    let skipped = reading.harness.is_none()
        && result.status == Status::Fail
        && result.exit_code == Some(reading.skip_exit)
        && result.message.as_deref() == Some(&format!("exit {}", reading.skip_exit));
    if skipped {
        result.status = Status::Skipped;
        result.message = Some(format!("skipped: exit {}", reading.skip_exit));
    }
    let mut problems = Vec::new();
    match reading.protocol {
        _ if !reading.stdout_captured => {}
        Protocol::ExitCode => {}
        Protocol::Tap => {
            let read = tap::read_output(&result.stdout);
            result.cases.extend(read.cases);
            problems.extend(read.problems);
            if read.skip_all.is_some() && result.status == Status::Pass {
                result.status = Status::Skipped;
                result.message = read.skip_all;
            }
        }
    }
    if let Some(path) = reading.xml_file {
        match junit_file::read(path) {
            Ok(cases) => result.cases.extend(cases),
            Err(problem) => problems.push(problem),
        }
    }
    problems.extend(case::failures(&result.cases));
    if problems.is_empty() || result.status == Status::Skipped {
        return;
    }
    let reason = problems.join("; ");
    if result.status == Status::Pass {
        result.status = Status::Fail;
        result.message = Some(reason);
    } else {
        result.message = Some(match result.message.take() {
            Some(message) => format!("{message}; {reason}"),
            None => reason,
        });
    }
}

/// Refines a driver's case from what its harness printed. Only cases that
/// ran to an exit (or died of a signal) are read.
fn read_harness(result: &mut TestResult, harness: &Harness) {
    if !matches!(result.status, Status::Pass | Status::Fail | Status::Signal) {
        return;
    }
    let stdout = result.stdout.to_string_lossy();
    let stderr = result.stderr.to_string_lossy();
    let verdict = match harness {
        Harness::Libtest(case) => libtest::interpret(result.status, &stdout, &stderr, case),
        Harness::GoTest(case) => gotest::interpret(result.status, &stdout, &stderr, case),
    };
    if let Some(Verdict { status, message }) = verdict {
        result.status = status;
        result.message = Some(message);
    }
}

/// What a harness's output said: the status and why.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    status: Status,
    message: String,
}

/// Longest message taken from a test's output, in lines.
const MESSAGE_LINES: usize = 20;

/// The first `MESSAGE_LINES` lines of `lines`, trimmed at the end, with a
/// note of how many more there were.
fn bounded(lines: &[&str]) -> String {
    let mut text = lines
        .iter()
        .take(MESSAGE_LINES)
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > MESSAGE_LINES {
        text.push_str(&format!("\n({} more lines)", lines.len() - MESSAGE_LINES));
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::TestCase;
    use crate::sandbox::CapturedOutput;
    use std::time::{Duration, SystemTime};

    fn result(status: Status, exit: i32, stdout: &str) -> TestResult {
        let test = TestCase::example();
        let mut result = crate::run::not_run(test, SystemTime::UNIX_EPOCH, status, String::new());
        result.message = (exit != 0).then(|| format!("exit {exit}"));
        result.exit_code = Some(exit);
        result.duration = Duration::from_millis(5);
        result.stdout = CapturedOutput {
            head: stdout.as_bytes().to_vec(),
            ..CapturedOutput::default()
        };
        result
    }

    fn read(result: &mut TestResult, protocol: Protocol, skip_exit: i32) {
        let reading = Reading {
            protocol,
            harness: None,
            skip_exit,
            stdout_captured: true,
            xml_file: None,
        };
        interpret(result, &reading);
    }

    #[test]
    fn names_round_trip() {
        for protocol in Protocol::ALL {
            assert_eq!(Protocol::from_name(protocol.name()), Some(protocol));
        }
        assert_eq!(Protocol::from_name("TAP"), None);
        assert_eq!(Protocol::accepted(), "\"exitcode\" or \"tap\"");
    }

    #[test]
    fn the_skip_exit_code_skips() {
        let mut skipped = result(Status::Fail, 77, "");
        read(&mut skipped, Protocol::ExitCode, DEFAULT_SKIP_EXIT);
        assert_eq!(skipped.status, Status::Skipped);
        assert_eq!(skipped.message.as_deref(), Some("skipped: exit 77"));

        let mut other = result(Status::Fail, 77, "");
        read(&mut other, Protocol::ExitCode, 3);
        assert_eq!(other.status, Status::Fail, "skip_exit = 3 moves it");

        let mut moved = result(Status::Fail, 3, "");
        read(&mut moved, Protocol::ExitCode, 3);
        assert_eq!(moved.status, Status::Skipped);

        let mut oom = result(Status::Oom, 77, "");
        oom.message = Some("peak 64.0 MiB".into());
        read(&mut oom, Protocol::ExitCode, DEFAULT_SKIP_EXIT);
        assert_eq!(oom.status, Status::Oom, "only a plain exit 77 skips");

        let mut case = result(Status::Fail, 77, "");
        let harness = Harness::Libtest("tests::exits".into());
        let reading = Reading {
            protocol: Protocol::ExitCode,
            harness: Some(&harness),
            skip_exit: DEFAULT_SKIP_EXIT,
            stdout_captured: true,
            xml_file: None,
        };
        interpret(&mut case, &reading);
        assert_eq!(
            case.status,
            Status::Fail,
            "a driver's case fails, as under cargo test"
        );
    }

    #[test]
    fn tap_failures_fail_a_passing_test() {
        let mut passing = result(Status::Pass, 0, "1..2\nok 1 - a\nok 2 - b\n");
        read(&mut passing, Protocol::Tap, DEFAULT_SKIP_EXIT);
        assert_eq!(passing.status, Status::Pass);
        assert_eq!(passing.cases.len(), 2);

        let mut failing = result(Status::Pass, 0, "1..2\nok 1 - a\nnot ok 2 - b\n");
        read(&mut failing, Protocol::Tap, DEFAULT_SKIP_EXIT);
        assert_eq!(failing.status, Status::Fail);
        assert_eq!(failing.message.as_deref(), Some("1 of 2 cases failed: 2 b"));

        let mut exit = result(Status::Fail, 1, "1..3\nok 1 - a\n");
        read(&mut exit, Protocol::Tap, DEFAULT_SKIP_EXIT);
        assert_eq!(exit.status, Status::Fail);
        assert_eq!(
            exit.message.as_deref(),
            Some("exit 1; planned 3 tests but ran 1")
        );

        let mut exit_code_only = result(Status::Pass, 0, "not ok 1\n");
        read(&mut exit_code_only, Protocol::ExitCode, DEFAULT_SKIP_EXIT);
        assert_eq!(exit_code_only.status, Status::Pass);
        assert!(exit_code_only.cases.is_empty());
    }

    #[test]
    fn uncaptured_output_leaves_the_exit_code_to_decide() {
        let mut passing = result(Status::Pass, 0, "");
        let reading = Reading {
            protocol: Protocol::Tap,
            harness: None,
            skip_exit: DEFAULT_SKIP_EXIT,
            stdout_captured: false,
            xml_file: None,
        };
        interpret(&mut passing, &reading);
        assert_eq!((passing.status, passing.cases.len()), (Status::Pass, 0));
    }

    #[test]
    fn a_skip_all_plan_skips_the_test() {
        let mut skipped = result(Status::Pass, 0, "1..0 # SKIP no database here\n");
        read(&mut skipped, Protocol::Tap, DEFAULT_SKIP_EXIT);
        assert_eq!(skipped.status, Status::Skipped);
        assert_eq!(skipped.message.as_deref(), Some("no database here"));
    }
}
