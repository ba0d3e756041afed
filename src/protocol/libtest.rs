//! One case of a libtest or libtest-mimic binary: the panic that failed it
//! (`thread 'NAME' panicked at FILE:LINE:COL:` and the message after it),
//! a libtest-mimic failure message (`---- NAME ----`), and a binary that
//! ran no test of that name.

use super::{bounded, Verdict};
use crate::run::Status;

/// Reads a finished case's output.
pub fn interpret(status: Status, stdout: &str, stderr: &str, case: &str) -> Option<Verdict> {
    if status == Status::Pass {
        return ran_nothing(stdout, case);
    }
    let message = panic_message(stderr, case)
        .or_else(|| panic_message(stdout, case))
        .or_else(|| mimic_failure(stdout, case))?;
    Some(Verdict { status, message })
}

/// A binary that exited 0 after running nothing (the case was renamed or
/// removed since it was listed) has not passed it.
fn ran_nothing(stdout: &str, case: &str) -> Option<Verdict> {
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("test result: "))?;
    let ran = summary.contains(" 0 passed;") && summary.contains(" 0 failed;");
    if !ran {
        return None;
    }
    let ignored = !summary.contains(" 0 ignored;");
    Some(if ignored {
        Verdict {
            status: Status::Skipped,
            message: format!("the test binary ignored `{case}`"),
        }
    } else {
        Verdict {
            status: Status::Fail,
            message: format!(
                "the test binary ran no test named `{case}` (renamed or removed since it was listed?)"
            ),
        }
    })
}

/// `thread 'CASE' panicked at LOCATION:` and the message lines after it,
/// up to the backtrace note. The case's own thread is preferred; a panic
/// in another thread is taken when the case's thread did not panic.
fn panic_message(output: &str, case: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        // `thread 'NAME' panicked at`, or with its id: `'NAME' (3) panicked`.
        .filter(|(_, l)| l.starts_with("thread '") && l.contains(" panicked at "))
        .map(|(i, _)| i)
        .collect();
    let own = format!("thread '{case}' ");
    let start = starts
        .iter()
        .find(|&&i| lines[i].starts_with(&own))
        .or(starts.first())?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            l.starts_with("note: run with `RUST_BACKTRACE")
                || l.starts_with("stack backtrace:")
                || l.starts_with("thread '")
                || l.starts_with("test result: ")
        })
        .map_or(lines.len(), |n| start + 1 + n);
    Some(bounded(&lines[*start..end]))
}

/// libtest-mimic's failure block: `---- CASE ----`, then the message up to
/// an empty line.
fn mimic_failure(stdout: &str, case: &str) -> Option<String> {
    let header = format!("---- {case} ----");
    let mut lines = stdout.lines().skip_while(|l| l.trim_end() != header);
    lines.next()?;
    let message: Vec<&str> = lines.take_while(|l| !l.trim().is_empty()).collect();
    (!message.is_empty()).then(|| bounded(&message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PANIC: &str = "\
thread 'tests::adds' panicked at src/lib.rs:12:9:
assertion `left == right` failed
  left: 3
 right: 4
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
";

    #[test]
    fn a_panic_is_the_message() {
        let stdout = "running 1 test\ntest tests::adds ... FAILED\n\nfailures:\n\nfailures:\n    tests::adds\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 9 filtered out\n";
        let verdict = interpret(Status::Fail, stdout, PANIC, "tests::adds").unwrap();
        assert_eq!(verdict.status, Status::Fail);
        assert_eq!(
            verdict.message,
            "thread 'tests::adds' panicked at src/lib.rs:12:9:\nassertion `left == right` failed\n  left: 3\n right: 4"
        );
    }

    #[test]
    fn the_cases_own_panic_wins_over_another_threads() {
        let stderr =
            format!("thread '<unnamed>' panicked at src/worker.rs:3:5:\nworker died\n{PANIC}");
        let verdict = interpret(Status::Fail, "", &stderr, "tests::adds").unwrap();
        assert!(
            verdict.message.starts_with("thread 'tests::adds'"),
            "{}",
            verdict.message
        );
        let verdict = interpret(Status::Fail, "", &stderr, "tests::other").unwrap();
        assert_eq!(
            verdict.message,
            "thread '<unnamed>' panicked at src/worker.rs:3:5:\nworker died"
        );
    }

    #[test]
    fn a_thread_id_is_allowed() {
        let stderr = "thread 'boom' (3) panicked at tests/api.rs:32:9:\nexpected 42, got 41\n";
        let verdict = interpret(Status::Fail, "", stderr, "boom").unwrap();
        assert_eq!(verdict.message, stderr.trim_end());
    }

    #[test]
    fn a_libtest_mimic_failure_is_the_message() {
        let stdout = "running 1 test\ntest check_a ... FAILED\n\nfailures:\n\n---- check_a ----\nexpected 1, got 2\nsecond line\n\n\nfailures:\n    check_a\n";
        let verdict = interpret(Status::Fail, stdout, "", "check_a").unwrap();
        assert_eq!(verdict.message, "expected 1, got 2\nsecond line");
    }

    #[test]
    fn no_panic_leaves_the_exit_code() {
        assert_eq!(interpret(Status::Fail, "", "segfault?\n", "a"), None);
        let passed = "test a ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out\n";
        assert_eq!(interpret(Status::Pass, passed, "", "a"), None);
        assert_eq!(interpret(Status::Pass, "", "", "a"), None, "--no-capture");
    }

    #[test]
    fn running_nothing_is_not_a_pass() {
        let none = "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 4 filtered out; finished in 0.00s\n";
        let verdict = interpret(Status::Pass, none, "", "gone").unwrap();
        assert_eq!(verdict.status, Status::Fail);
        assert!(
            verdict.message.contains("no test named `gone`"),
            "{}",
            verdict.message
        );
        let ignored = "test slow ... ignored\n\ntest result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 4 filtered out\n";
        assert_eq!(
            interpret(Status::Pass, ignored, "", "slow").unwrap().status,
            Status::Skipped
        );
    }
}
