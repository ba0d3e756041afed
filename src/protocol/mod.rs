//! Protocols: how a finished test's output becomes its result, a step
//! after the sandbox and before the reporters. The sandbox returns an
//! `Outcome`, classification turns it into a status from the exit code;
//! a protocol then reads what the test printed to say more: the panic of a
//! failed Rust test, a Go test that skipped itself, a test program that ran
//! no test at all.

mod gotest;
mod libtest;

use crate::run::{Status, TestResult};

/// How a test's output is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// The exit code alone decides.
    #[default]
    ExitCode,
    /// The case of this name in a libtest (or libtest-mimic) binary, run
    /// with `--exact NAME --nocapture`.
    Libtest(String),
    /// The test of this name in a Go test binary, run with
    /// `-test.run '^NAME$' -test.v`.
    GoTest(String),
}

/// Refines `result` from its captured output. Only tests that ran to an
/// exit (or died of a signal) are read; the output must be captured (with
/// `--no-capture` there is nothing to read and the exit code stands).
pub fn interpret(result: &mut TestResult, protocol: &Protocol) {
    if !matches!(result.status, Status::Pass | Status::Fail | Status::Signal) {
        return;
    }
    let stdout = result.stdout.to_string_lossy();
    let stderr = result.stderr.to_string_lossy();
    let verdict = match protocol {
        Protocol::ExitCode => return,
        Protocol::Libtest(case) => libtest::interpret(result.status, &stdout, &stderr, case),
        Protocol::GoTest(case) => gotest::interpret(result.status, &stdout, &stderr, case),
    };
    if let Some(Verdict { status, message }) = verdict {
        result.status = status;
        result.message = Some(message);
    }
}

/// What a protocol read in the output: the status and why.
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
