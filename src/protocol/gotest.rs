//! One test of a Go test binary run with `-test.v`: a test that called
//! `t.Skip` (`--- SKIP: NAME`) is skipped, a failure's message is what the
//! test logged (`    file_test.go:12: got 1, want 2`) and its panic, and a
//! binary that ran no test matching the name has not passed it.

use super::{bounded, Verdict};
use crate::run::Status;

/// Reads a finished test's output.
pub fn interpret(status: Status, stdout: &str, stderr: &str, case: &str) -> Option<Verdict> {
    if status != Status::Pass {
        return failure(stdout, stderr, case).map(|message| Verdict { status, message });
    }
    if stdout.contains("testing: warning: no tests to run") {
        return Some(Verdict {
            status: Status::Fail,
            message: format!(
                "the test binary ran no test named `{case}` (renamed or removed since it was listed?)"
            ),
        });
    }
    let skip = format!("--- SKIP: {case} (");
    let skipped = stdout.lines().any(|l| l.starts_with(&skip));
    skipped.then(|| {
        let logged = logged(stdout, case);
        Verdict {
            status: Status::Skipped,
            message: if logged.is_empty() {
                "skipped".to_string()
            } else {
                bounded(&logged)
            },
        }
    })
}

/// What the test logged (`t.Log`, `t.Error`, `t.Skip` lines and failed
/// subtests), then a panic's first lines.
fn failure(stdout: &str, stderr: &str, case: &str) -> Option<String> {
    let mut lines = logged(stdout, case);
    for output in [stdout, stderr] {
        let panic = output
            .lines()
            .skip_while(|l| !l.starts_with("panic: "))
            .take_while(|l| !l.trim().is_empty());
        lines.extend(panic);
    }
    (!lines.is_empty()).then(|| bounded(&lines))
}

/// The indented lines between `=== RUN   CASE` and `--- RESULT: CASE`,
/// de-indented once; the framework's own `=== ` lines left out.
fn logged<'a>(stdout: &'a str, case: &str) -> Vec<&'a str> {
    let run = format!("=== RUN   {case}");
    let end = format!(": {case} (");
    stdout
        .lines()
        .skip_while(|l| l.trim_end() != run)
        .skip(1)
        .take_while(|l| !(l.starts_with("--- ") && l.contains(&end)))
        .filter(|l| l.starts_with("    ") || l.starts_with('\t'))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_test_is_skipped_with_its_reason() {
        let stdout = "=== RUN   TestNet\n    net_test.go:9: needs a network\n--- SKIP: TestNet (0.00s)\nPASS\n";
        let verdict = interpret(Status::Pass, stdout, "", "TestNet").unwrap();
        assert_eq!(verdict.status, Status::Skipped);
        assert_eq!(verdict.message, "net_test.go:9: needs a network");
        let passed = "=== RUN   TestNet\n=== RUN   TestNet/sub\n--- SKIP: TestNet/sub (0.00s)\n--- PASS: TestNet (0.00s)\nPASS\n";
        assert_eq!(
            interpret(Status::Pass, passed, "", "TestNet"),
            None,
            "a skipped subtest"
        );
    }

    #[test]
    fn a_failure_says_what_the_test_logged() {
        let stdout = "=== RUN   TestAdd\n=== RUN   TestAdd/big\n    add_test.go:14: got 1, want 2\n--- FAIL: TestAdd (0.00s)\n    --- FAIL: TestAdd/big (0.00s)\nFAIL\n";
        let verdict = interpret(Status::Fail, stdout, "", "TestAdd").unwrap();
        assert_eq!(verdict.message, "add_test.go:14: got 1, want 2");
    }

    #[test]
    fn a_panic_is_in_the_message() {
        let stdout = "=== RUN   TestBoom\n--- FAIL: TestBoom (0.00s)\n";
        let stderr = "panic: boom [recovered]\n\tpanic: boom\n\ngoroutine 6 [running]:\n";
        let verdict = interpret(Status::Fail, stdout, stderr, "TestBoom").unwrap();
        assert_eq!(verdict.message, "panic: boom [recovered]\n\tpanic: boom");
    }

    #[test]
    fn running_nothing_is_not_a_pass() {
        let stdout = "testing: warning: no tests to run\nPASS\n";
        let verdict = interpret(Status::Pass, stdout, "", "TestGone").unwrap();
        assert_eq!(verdict.status, Status::Fail);
        assert_eq!(
            interpret(
                Status::Pass,
                "=== RUN   TestA\n--- PASS: TestA (0.00s)\n",
                "",
                "TestA"
            ),
            None
        );
    }
}
