//! The terminal reporter: one nextest-like line per finished test, then the
//! captured output of the tests that did not pass and a summary.

use std::ffi::OsStr;
use std::io::Write;

use super::{ReportError, Reporter};
use crate::duration::format_seconds;
use crate::run::{Event, RunSummary, Status, TestResult};
use crate::sandbox::Usage;
use crate::size::format_size;
use std::time::Duration;

const GREEN: &str = "\x1b[32m";
const BOLD_RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// Writes progress and results for people, coloured or not.
pub struct TerminalReporter {
    writer: Box<dyn Write + Send>,
    color: bool,
    usage_table: bool,
}

/// Whether to colour output: only on a terminal, and never when `NO_COLOR`
/// is set to a non-empty value (<https://no-color.org>).
pub fn color_wanted(is_tty: bool) -> bool {
    color_allowed(is_tty, std::env::var_os("NO_COLOR").as_deref())
}

fn color_allowed(is_tty: bool, no_color: Option<&OsStr>) -> bool {
    match no_color {
        Some(value) if !value.is_empty() => false,
        _ => is_tty,
    }
}

impl TerminalReporter {
    pub fn new(writer: Box<dyn Write + Send>, color: bool) -> Self {
        TerminalReporter {
            writer,
            color,
            usage_table: false,
        }
    }

    /// Also print every test's resource usage in a table at the end.
    pub fn with_usage_table(mut self, enabled: bool) -> Self {
        self.usage_table = enabled;
        self
    }

    /// `    FAIL [   0.210s] db/migrate.sh (exit 1)`
    fn status_line(&self, result: &TestResult) -> String {
        let status = result.status;
        let color = match status {
            Status::Pass => GREEN,
            Status::Flaky | Status::Skipped | Status::NotRun => YELLOW,
            Status::Fail
            | Status::Signal
            | Status::Oom
            | Status::Timeout
            | Status::OverLimit
            | Status::Regressed
            | Status::Error => BOLD_RED,
        };
        let label = self.paint(&format!("{:>8}", status.label()), color);
        let mut line = format!(
            "{label} [{:>9}] {}",
            format_seconds(result.duration),
            result.test.name
        );
        let leaked = match result.leaked_processes {
            0 => None,
            1 => Some("1 leaked process".to_string()),
            n => Some(format!("{n} leaked processes")),
        };
        let details: Vec<&str> = result
            .message
            .as_deref()
            .into_iter()
            .chain(leaked.as_deref())
            .collect();
        if !details.is_empty() {
            line.push_str(&format!(" ({})", details.join(", ")));
        }
        if let Some(usage) = usage_brief(result) {
            line.push_str(&format!(" [{usage}]"));
        }
        line.push('\n');
        line
    }

    fn paint(&self, text: &str, color: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn run_finished(&self, summary: &RunSummary) -> String {
        let attention: Vec<&TestResult> = summary
            .results
            .iter()
            .filter(|r| needs_attention(r.status))
            .collect();
        let mut out = String::new();
        for result in &attention {
            for (stream, captured) in [("STDOUT", &result.stdout), ("STDERR", &result.stderr)] {
                if captured.is_empty() {
                    continue;
                }
                out.push_str(&format!("--- {stream}: {} ---\n", result.test.name));
                out.push_str(&captured.to_string_lossy());
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out.push_str("------------\n");
        if self.usage_table {
            out.push_str(&usage_table(summary));
        }
        out.push_str(&summary_line(summary));
        for result in &attention {
            out.push_str(&self.status_line(result));
        }
        out
    }

    fn write(&mut self, text: &str) -> Result<(), ReportError> {
        self.writer
            .write_all(text.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|source| ReportError::Write {
                path: "<terminal>".to_string(),
                source,
            })
    }
}

impl Reporter for TerminalReporter {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        let text = match event {
            Event::RunStarted {
                test_count, jobs, ..
            } => format!(
                "    Starting {} (jobs: {jobs})\n",
                plural(*test_count, "test")
            ),
            Event::TestStarted { .. } | Event::Tick { .. } => return Ok(()),
            Event::TestRetrying {
                name,
                attempt,
                status,
                message,
            } => {
                let detail = message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                let label = self.paint(&format!("{:>8}", "RETRY"), YELLOW);
                format!(
                    "{label} {name}: attempt {attempt} was {}{detail}\n",
                    status.label()
                )
            }
            Event::TestFinished(result) => self.status_line(result),
            Event::RunFinished(summary) => self.run_finished(summary),
        };
        self.write(&text)
    }
}

/// Tests whose output and status are repeated at the end. Tests that never
/// ran are left out: after Ctrl-C they could be most of the plan.
fn needs_attention(status: Status) -> bool {
    status.is_failure()
}

/// `     Summary [   1.234s] 12 tests run: 10 passed, 1 failed, 1 timed out`
fn summary_line(summary: &RunSummary) -> String {
    let counts: Vec<String> = Status::ALL
        .into_iter()
        .filter_map(|status| match summary.count(status) {
            0 => None,
            n => Some(format!("{n} {}", count_word(status))),
        })
        .collect();
    let mut line = format!(
        "     Summary [{:>9}] {} run",
        format_seconds(summary.duration),
        plural(summary.results.len(), "test")
    );
    if !counts.is_empty() {
        line.push_str(&format!(": {}", counts.join(", ")));
    }
    if summary.interrupted() {
        line.push_str(" (interrupted)");
    }
    line.push('\n');
    line
}

fn count_word(status: Status) -> &'static str {
    match status {
        Status::Pass => "passed",
        Status::Flaky => "flaky",
        Status::OverLimit => "over limit",
        Status::Regressed => "regressed",
        Status::Skipped => "skipped",
        Status::Fail => "failed",
        Status::Signal => "signalled",
        Status::Oom => "OOM-killed",
        Status::Timeout => "timed out",
        Status::Error => "errored",
        Status::NotRun => "not run",
    }
}

/// `peak 12.3 MiB, cpu 0.120s` from the cgroup figures that exist.
fn usage_brief(result: &TestResult) -> Option<String> {
    let usage = result.usage?;
    let mut parts = Vec::new();
    if let Some(peak) = usage.memory_peak_bytes {
        parts.push(format!("peak {}", format_size(peak)));
    }
    if let Some(cpu) = cpu_usec(&usage) {
        parts.push(format!(
            "cpu {}",
            format_seconds(Duration::from_micros(cpu))
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn cpu_usec(usage: &Usage) -> Option<u64> {
    Some(usage.cpu_user_usec? + usage.cpu_system_usec?)
}

/// Every test's usage, `-` where a figure is not available.
fn usage_table(summary: &RunSummary) -> String {
    let mut out = format!(
        "{:>8} {:>10} {:>10} {:>10} {:>12} {:>6} {:>4}  {}\n",
        "STATUS", "WALL", "CPU USER", "CPU SYS", "PEAK MEM", "PIDS", "OOM", "TEST"
    );
    let dash = || "-".to_string();
    for result in &summary.results {
        let usage = result.usage.unwrap_or_default();
        let seconds = |usec: Option<u64>| {
            usec.map(|u| format_seconds(Duration::from_micros(u)))
                .unwrap_or_else(dash)
        };
        out.push_str(&format!(
            "{:>8} {:>10} {:>10} {:>10} {:>12} {:>6} {:>4}  {}\n",
            result.status.label(),
            format_seconds(result.duration),
            seconds(usage.cpu_user_usec),
            seconds(usage.cpu_system_usec),
            usage
                .memory_peak_bytes
                .map(format_size)
                .unwrap_or_else(dash),
            usage.pids_peak.map(|p| p.to_string()).unwrap_or_else(dash),
            usage.oom_kills.map(|p| p.to_string()).unwrap_or_else(dash),
            result.test.name
        ));
    }
    out
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::TestCase;
    use crate::run::HostFacts;
    use crate::sandbox::{CapturedOutput, Usage};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    #[derive(Clone, Default)]
    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SharedBuffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn result(name: &str, status: Status, millis: u64, message: Option<&str>) -> TestResult {
        TestResult {
            test: TestCase {
                name: name.to_string(),
                suite: "suite".to_string(),
                program: crate::discover::Program::File(format!("/t/{name}").into()),
                dir: "/t".into(),
                tags: Vec::new(),
            },
            status,
            exit_code: None,
            signal: None,
            message: message.map(str::to_string),
            setup_failure: None,
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(millis),
            leaked_processes: 0,
            rusage: None,
            usage: None,
            limits: Default::default(),
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            attempts: Vec::new(),
        }
    }

    fn host() -> HostFacts {
        HostFacts {
            cgroup_layout: "v2".into(),
            cgroups_in_use: true,
        }
    }

    fn output(text: &[u8]) -> CapturedOutput {
        CapturedOutput {
            head: text.to_vec(),
            ..CapturedOutput::default()
        }
    }

    fn render(events: &[Event], color: bool) -> String {
        let buffer = SharedBuffer::default();
        let mut reporter = TerminalReporter::new(Box::new(buffer.clone()), color);
        for event in events {
            reporter.handle(event).unwrap();
        }
        buffer.text()
    }

    fn finished(result: TestResult) -> Event {
        Event::TestFinished(Box::new(result))
    }

    #[test]
    fn one_line_per_finished_test() {
        let mut leaky = result("leaky.sh", Status::Pass, 1, None);
        leaky.leaked_processes = 2;
        let mut leaky_fail = result("db/migrate.sh", Status::Fail, 210, Some("exit 1"));
        leaky_fail.leaked_processes = 1;
        let events = [
            Event::RunStarted {
                test_count: 12,
                jobs: 2,
                started_at: SystemTime::UNIX_EPOCH,
                host: host(),
            },
            Event::TestStarted {
                name: "net/echo.sh".to_string(),
                at: std::time::Instant::now(),
            },
            finished(result("net/echo.sh", Status::Pass, 12, None)),
            finished(leaky),
            finished(leaky_fail),
            finished(result("crash.sh", Status::Signal, 50, Some("SIGSEGV"))),
            finished(result(
                "slow.sh",
                Status::Timeout,
                5001,
                Some("timed out after 5.000s"),
            )),
            finished(result("x.sh", Status::Error, 3, Some("mount proc: EPERM"))),
            finished(result("later.sh", Status::NotRun, 0, None)),
        ];
        assert_eq!(
            render(&events, false),
            "    Starting 12 tests (jobs: 2)\n\
             \x20   PASS [   0.012s] net/echo.sh\n\
             \x20   PASS [   0.001s] leaky.sh (2 leaked processes)\n\
             \x20   FAIL [   0.210s] db/migrate.sh (exit 1, 1 leaked process)\n\
             \x20 SIGNAL [   0.050s] crash.sh (SIGSEGV)\n\
             \x20TIMEOUT [   5.001s] slow.sh (timed out after 5.000s)\n\
             \x20  ERROR [   0.003s] x.sh (mount proc: EPERM)\n\
             \x20NOT-RUN [   0.000s] later.sh\n"
        );
    }

    #[test]
    fn colours_only_the_status() {
        let events = [
            finished(result("ok.sh", Status::Pass, 1, None)),
            finished(result("bad.sh", Status::Fail, 1, Some("exit 1"))),
            finished(result("later.sh", Status::NotRun, 0, None)),
        ];
        assert_eq!(
            render(&events, true),
            "\x1b[32m    PASS\x1b[0m [   0.001s] ok.sh\n\
             \x1b[1;31m    FAIL\x1b[0m [   0.001s] bad.sh (exit 1)\n\
             \x1b[33m NOT-RUN\x1b[0m [   0.000s] later.sh\n"
        );
    }

    #[test]
    fn run_finished_shows_output_summary_and_failures() {
        let mut failed = result("db/migrate.sh", Status::Fail, 210, Some("exit 1"));
        failed.stdout = output(b"migrating\nbad \xff byte");
        failed.stderr = output(b"error: no table\n");
        let mut timed_out = result(
            "slow.sh",
            Status::Timeout,
            5001,
            Some("timed out after 5.000s"),
        );
        timed_out.stderr = output(b"still waiting\n");
        let mut passed = result("ok.sh", Status::Pass, 12, None);
        passed.stdout = output(b"not shown\n");
        let mut not_run = result("later.sh", Status::NotRun, 0, None);
        not_run.stdout = output(b"not shown either\n");
        let summary = RunSummary {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(1234),
            results: vec![passed.clone(), failed, passed, timed_out, not_run],
            host: host(),
            interrupted_by: Some(2),
        };
        assert_eq!(
            render(&[Event::RunFinished(summary)], false),
            "--- STDOUT: db/migrate.sh ---\n\
             migrating\n\
             bad \u{fffd} byte\n\
             --- STDERR: db/migrate.sh ---\n\
             error: no table\n\
             --- STDERR: slow.sh ---\n\
             still waiting\n\
             ------------\n\
             \x20    Summary [   1.234s] 5 tests run: 2 passed, 1 failed, 1 timed out, 1 not run (interrupted)\n\
             \x20   FAIL [   0.210s] db/migrate.sh (exit 1)\n\
             \x20TIMEOUT [   5.001s] slow.sh (timed out after 5.000s)\n"
        );
    }

    #[test]
    fn usage_on_lines_and_in_the_table() {
        let mut hog = result(
            "hog.sh",
            Status::Oom,
            400,
            Some("peak 256.0 MiB of 256.0 MiB"),
        );
        hog.usage = Some(Usage {
            memory_peak_bytes: Some(256 << 20),
            cpu_user_usec: Some(100_000),
            cpu_system_usec: Some(300_000),
            pids_peak: Some(2),
            oom_kills: Some(1),
            pids_max_hits: Some(0),
        });
        let unmeasured = result("plain.sh", Status::Pass, 5, None);
        let line = render(&[finished(hog.clone())], false);
        assert_eq!(
            line,
            "     OOM [   0.400s] hog.sh (peak 256.0 MiB of 256.0 MiB) [peak 256.0 MiB, cpu 0.400s]\n"
        );
        let summary = RunSummary {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(405),
            results: vec![hog, unmeasured],
            host: host(),
            interrupted_by: None,
        };
        let table = usage_table(&summary);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("PEAK MEM") && lines[0].ends_with("TEST"));
        assert_eq!(
            lines[1],
            "     OOM     0.400s     0.100s     0.300s    256.0 MiB      2    1  hog.sh"
        );
        assert_eq!(
            lines[2],
            "    PASS     0.005s          -          -            -      -    -  plain.sh"
        );
    }

    #[test]
    fn summary_of_a_clean_or_empty_run() {
        let summary = |results| RunSummary {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            results,
            host: host(),
            interrupted_by: None,
        };
        let one = summary(vec![result("ok.sh", Status::Pass, 1, None)]);
        assert_eq!(
            summary_line(&one),
            "     Summary [   0.000s] 1 test run: 1 passed\n"
        );
        assert_eq!(
            summary_line(&summary(Vec::new())),
            "     Summary [   0.000s] 0 tests run\n"
        );
    }

    #[test]
    fn colour_needs_a_tty_and_no_no_color() {
        assert!(color_allowed(true, None));
        assert!(color_allowed(true, Some(OsStr::new(""))));
        assert!(!color_allowed(true, Some(OsStr::new("1"))));
        assert!(!color_allowed(false, None));
    }

    #[test]
    fn write_errors_name_the_terminal() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut reporter = TerminalReporter::new(Box::new(Broken), false);
        let event = finished(result("ok.sh", Status::Pass, 1, None));
        let err = reporter.handle(&event).unwrap_err();
        assert!(
            err.to_string().starts_with("write report <terminal>: "),
            "{err}"
        );
    }
}
