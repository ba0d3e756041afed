//! The terminal reporter: one nextest-like line per finished test and
//! notices of slow tests, then the captured output of the tests that did
//! not pass and a summary. On a terminal, indicatif keeps a live progress
//! line at the bottom, fitted to the terminal's width in display columns;
//! elsewhere (CI logs, pipes) the lines come plain.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{ReportError, Reporter};
use crate::duration::format_seconds;
use crate::protocol::case;
use crate::run::{Event, RunSummary, ServiceStatus, Status, TestResult};
use crate::sandbox::Usage;
use crate::size::format_size;
use crate::style::{Styles, Tone};

/// Writes progress and results for people, coloured or not.
pub struct TerminalReporter {
    out: Output,
    styles: Styles,
    usage_table: bool,
    slow_threshold: Duration,
    run: RunState,
}

/// Where the view goes.
enum Output {
    /// Lines only: a log or a pipe, where every redraw would stay.
    Plain(Box<dyn Write + Send>),
    /// Lines printed above a live progress line.
    Live(ProgressBar),
}

/// What the events have told so far.
#[derive(Default)]
struct RunState {
    total: usize,
    finished: usize,
    /// Started and not finished, longest-running first.
    running: Vec<RunningTest>,
    /// The first and the latest instant events carried. RunStarted has only
    /// wall-clock time, and the first test starts right after it.
    clock: Option<(Instant, Instant)>,
}

struct RunningTest {
    name: String,
    started: Instant,
    /// Multiples of the slow threshold already reported.
    slow_notices: u32,
}

impl RunState {
    fn observe(&mut self, at: Instant) {
        let (first, latest) = self.clock.get_or_insert((at, at));
        *first = (*first).min(at);
        *latest = (*latest).max(at);
    }

    fn elapsed(&self) -> Duration {
        self.clock
            .map_or(Duration::ZERO, |(first, latest)| latest - first)
    }
}

impl TerminalReporter {
    /// Plain lines to `writer`.
    pub fn new(writer: Box<dyn Write + Send>, styles: Styles) -> Self {
        TerminalReporter {
            out: Output::Plain(writer),
            styles,
            usage_table: false,
            slow_threshold: Duration::from_secs(60),
            run: RunState::default(),
        }
    }

    /// Lines and a live progress line on `target`, a terminal; the line is
    /// cut to the terminal's width as it is when drawn.
    pub fn live(target: ProgressDrawTarget, styles: Styles) -> Self {
        let style = ProgressStyle::with_template("{wide_msg}").expect("a valid template");
        let bar = ProgressBar::with_draw_target(None, target).with_style(style);
        TerminalReporter {
            out: Output::Live(bar),
            ..TerminalReporter::new(Box::new(std::io::sink()), styles)
        }
    }

    /// Also print every test's resource usage in a table at the end.
    pub fn with_usage_table(mut self, enabled: bool) -> Self {
        self.usage_table = enabled;
        self
    }

    /// Mention a test still running after `threshold`, and again after each
    /// further multiple of it (default 60s; zero mentions none).
    pub fn with_slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow_threshold = threshold;
        self
    }

    /// `    FAIL [   0.210s] db/migrate.sh (exit 1)`
    fn status_line(&self, result: &TestResult) -> String {
        let status = result.status;
        let tone = match status {
            Status::Pass => Tone::Good,
            Status::Flaky | Status::Skipped | Status::NotRun => Tone::Warn,
            Status::Fail
            | Status::Signal
            | Status::Oom
            | Status::Timeout
            | Status::OverLimit
            | Status::Regressed
            | Status::Error => Tone::Bad,
        };
        let label = self.styles.paint(tone, &format!("{:>8}", status.label()));
        let mut line = format!(
            "{label} [{:>9}] {}",
            format_seconds(result.duration),
            result.test.name
        );
        // A FLAKY line says which attempt passed, counted from the record.
        // A message of several lines (a panic) continues indented, under
        // the name.
        let message = match status {
            Status::Flaky => Some(format!("passed on attempt {}", result.attempts.len() + 1)),
            _ => result
                .message
                .as_ref()
                .map(|m| self.styles.output(m).replace('\n', &format!("\n{:21}", ""))),
        };
        let leaked = match result.leaked_processes {
            0 => None,
            1 => Some("1 leaked process".to_string()),
            n => Some(format!("{n} leaked processes")),
        };
        // Services that ended on their own during the test.
        let services: Vec<String> = result
            .services
            .iter()
            .filter(|s| s.status == ServiceStatus::Exited)
            .map(|s| {
                format!(
                    "service {}: {}",
                    s.name,
                    s.message.as_deref().unwrap_or("exited")
                )
            })
            .collect();
        // The count of cases, unless the message says which ones failed.
        let cases = (!result.cases.is_empty() && case::failing(&result.cases).is_empty())
            .then(|| plural(case::count(&result.cases), "case"));
        let scheduled = super::stress::scheduling_notes(result);
        let details: Vec<&str> = cases
            .as_deref()
            .into_iter()
            .chain(message.as_deref())
            .chain(leaked.as_deref())
            .chain(services.iter().map(String::as_str))
            .chain(scheduled.iter().map(String::as_str))
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

    /// `   RETRY             db/migrate.sh (attempt 1 FAIL: exit 1)`; the
    /// duration column stays blank as the event carries no duration.
    fn retry_line(
        &self,
        name: &str,
        attempt: u32,
        duration: Duration,
        status: Status,
        message: Option<&str>,
    ) -> String {
        let label = self.styles.paint(Tone::Warn, &format!("{:>8}", "RETRY"));
        let detail = message.map(|m| format!(": {m}")).unwrap_or_default();
        format!(
            "{label} [{:>9}] {name} (attempt {attempt} {}{detail})\n",
            format_seconds(duration),
            status.label()
        )
    }

    /// `    SLOW [  60.000s] db/migrate.sh (still running)` for each test
    /// that ran past a further multiple of the threshold by `now`.
    fn slow_notices(&mut self, now: Instant) -> String {
        let threshold = self.slow_threshold;
        if threshold.is_zero() {
            return String::new();
        }
        let label = self.styles.paint(Tone::Warn, &format!("{:>8}", "SLOW"));
        let mut out = String::new();
        for test in &mut self.run.running {
            let elapsed = now.saturating_duration_since(test.started);
            let multiples =
                u32::try_from(elapsed.as_nanos() / threshold.as_nanos()).unwrap_or(u32::MAX);
            if multiples > test.slow_notices {
                test.slow_notices = multiples;
                out.push_str(&format!(
                    "{label} [{:>9}] {} (still running)\n",
                    format_seconds(threshold * multiples),
                    test.name
                ));
            }
        }
        out
    }

    fn run_finished(&self, summary: &RunSummary) -> String {
        // Tests that never ran are left out: after Ctrl-C they could be
        // most of the plan.
        let attention: Vec<&TestResult> = summary
            .results
            .iter()
            .filter(|r| r.status.is_failure())
            .collect();
        let mut out = String::new();
        for result in &attention {
            let own = [("", &result.stdout, &result.stderr)];
            let services = result
                .services
                .iter()
                .map(|s| (s.name.as_str(), &s.stdout, &s.stderr));
            for (service, stdout, stderr) in own.into_iter().chain(services) {
                let whose = match service {
                    "" => result.test.name.clone(),
                    name => format!("{} [service {name}]", result.test.name),
                };
                for (stream, captured) in [("STDOUT", stdout), ("STDERR", stderr)] {
                    if captured.is_empty() {
                        continue;
                    }
                    out.push_str(&format!("--- {stream}: {whose} ---\n"));
                    out.push_str(&self.styles.output(&captured.to_string_lossy()));
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
            out.push_str(&failed_cases(result, self.styles));
        }
        // A run service that did not run to the end: its output once.
        for service in summary
            .services
            .iter()
            .filter(|s| s.status != ServiceStatus::Stopped)
        {
            for (stream, captured) in [("STDOUT", &service.stdout), ("STDERR", &service.stderr)] {
                if captured.is_empty() {
                    continue;
                }
                out.push_str(&format!(
                    "--- {stream}: [run service {}] ---\n",
                    service.name
                ));
                out.push_str(&self.styles.output(&captured.to_string_lossy()));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out.push_str("------------\n");
        if self.usage_table {
            out.push_str(&usage_table(summary));
        }
        out.push_str(&super::stress::stress_table(summary));
        out.push_str(&summary_line(summary));
        for result in &attention {
            out.push_str(&self.status_line(result));
        }
        out
    }

    /// Writes `lines`. Live, they go above the progress line, which is
    /// redrawn below them unless the run is over.
    fn show(&mut self, lines: &str, run_is_over: bool) -> Result<(), ReportError> {
        match &mut self.out {
            Output::Plain(writer) if !lines.is_empty() => writer
                .write_all(lines.as_bytes())
                .and_then(|()| writer.flush())
                .map_err(|source| ReportError::Write {
                    path: "<terminal>".to_string(),
                    source,
                }),
            Output::Plain(_) => Ok(()),
            Output::Live(bar) => {
                // The message first: printing redraws the line below.
                if !run_is_over {
                    bar.set_message(progress_line(&self.run));
                }
                if !lines.is_empty() {
                    bar.println(lines.strip_suffix('\n').unwrap_or(lines));
                }
                if run_is_over {
                    bar.finish_and_clear();
                }
                Ok(())
            }
        }
    }
}

impl Reporter for TerminalReporter {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        let lines = match event {
            Event::RunStarted {
                test_count, jobs, ..
            } => {
                self.run.total = *test_count;
                format!(
                    "    Starting {} (jobs: {jobs})\n",
                    plural(*test_count, "test")
                )
            }
            Event::TestStarted { name, at } => {
                self.run.observe(*at);
                self.run.running.push(RunningTest {
                    name: name.clone(),
                    started: *at,
                    slow_notices: 0,
                });
                String::new()
            }
            Event::TestRetrying {
                name,
                attempt,
                duration,
                status,
                message,
            } => self.retry_line(name, *attempt, *duration, *status, message.as_deref()),
            Event::TestFinished(result) => {
                self.run.finished += 1;
                self.run.running.retain(|t| t.name != result.test.name);
                self.status_line(result)
            }
            Event::Tick { now } => {
                self.run.observe(*now);
                self.slow_notices(*now)
            }
            Event::RunFinished(summary) => {
                let text = self.run_finished(summary);
                return self.show(&text, true);
            }
        };
        self.show(&lines, false)
    }
}

/// `[ 12/120] 00:01:23  2 running: db/migrate.sh, net/echo.sh`: done and
/// total, elapsed time, then the running tests, longest-running first, so
/// that what the terminal's width cuts off (indicatif fits the line to it,
/// counting display columns) is the least useful part.
fn progress_line(run: &RunState) -> String {
    let total = run.total.to_string();
    let seconds = run.elapsed().as_secs();
    let mut line = format!(
        "  [{:>digits$}/{total}] {:02}:{:02}:{:02}  {} running",
        run.finished,
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        run.running.len(),
        digits = total.len()
    );
    if !run.running.is_empty() {
        let names: Vec<&str> = run.running.iter().map(|t| t.name.as_str()).collect();
        line.push_str(": ");
        line.push_str(&names.join(", "));
    }
    line
}

/// The cases of a test that failed it, each with its message indented:
/// `--- FAILED CASES: t0001.sh ---` then `fail  3 parses input`.
fn failed_cases(result: &TestResult, styles: Styles) -> String {
    let failed = case::failing(&result.cases);
    if failed.is_empty() {
        return String::new();
    }
    let mut out = format!("--- FAILED CASES: {} ---\n", result.test.name);
    for (path, case) in failed {
        let path = styles.output(&path);
        out.push_str(&format!("{:<5} {path}\n", case.status.label()));
        let message = case.message.as_deref().map(|m| styles.output(m));
        for line in message.iter().flat_map(|m| m.lines()) {
            out.push_str(&format!("      {line}\n"));
        }
    }
    out
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
        Status::Fail => "failed",
        Status::Signal => "signalled",
        Status::Oom => "OOM-killed",
        Status::Timeout => "timed out",
        Status::OverLimit => "over limit",
        Status::Regressed => "regressed",
        Status::Error => "errored",
        Status::Skipped => "skipped",
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

/// Every test's usage, each of its services on a line below it, `-`
/// where a figure is not available.
fn usage_table(summary: &RunSummary) -> String {
    let mut out = format!(
        "{:>8} {:>10} {:>10} {:>10} {:>12} {:>6} {:>4}  {}\n",
        "STATUS", "WALL", "CPU USER", "CPU SYS", "PEAK MEM", "PIDS", "OOM", "TEST"
    );
    for result in &summary.results {
        let name = &result.test.name;
        out.push_str(&usage_row(
            result.status.label(),
            result.duration,
            result.usage,
            name,
        ));
        for service in result
            .services
            .iter()
            .filter(|s| s.status != ServiceStatus::Shared)
        {
            let name = format!("{name} [service {}]", service.name);
            let status = service.status.label();
            out.push_str(&usage_row(status, service.duration, service.usage, &name));
        }
    }
    for service in &summary.services {
        let name = format!("[run service {}]", service.name);
        let status = service.status.label();
        out.push_str(&usage_row(status, service.duration, service.usage, &name));
    }
    out
}

fn usage_row(status: &str, wall: Duration, usage: Option<Usage>, name: &str) -> String {
    let usage = usage.unwrap_or_default();
    let dash = || "-".to_string();
    let seconds = |usec: Option<u64>| {
        usec.map(|u| format_seconds(Duration::from_micros(u)))
            .unwrap_or_else(dash)
    };
    format!(
        "{:>8} {:>10} {:>10} {:>10} {:>12} {:>6} {:>4}  {}\n",
        status,
        format_seconds(wall),
        seconds(usage.cpu_user_usec),
        seconds(usage.cpu_system_usec),
        usage
            .memory_peak_bytes
            .map(format_size)
            .unwrap_or_else(dash),
        usage.pids_peak.map(|p| p.to_string()).unwrap_or_else(dash),
        usage.oom_kills.map(|p| p.to_string()).unwrap_or_else(dash),
        name
    )
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
    use crate::run::Attempt;
    use crate::run::HostFacts;
    use crate::sandbox::{CapturedOutput, Usage};
    use indicatif::InMemoryTerm;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant, SystemTime};

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
            message: message.map(str::to_string),
            ..crate::report::junit::tests::result(name, "suite", status, 0, millis)
        }
    }

    fn host() -> HostFacts {
        HostFacts {
            cgroup_layout: "v2".into(),
            cgroups_in_use: true,
            rootless: false,
        }
    }

    fn output(text: &[u8]) -> CapturedOutput {
        CapturedOutput {
            head: text.to_vec(),
            ..CapturedOutput::default()
        }
    }

    fn render(events: &[Event], color: bool) -> String {
        render_with(events, |writer| {
            TerminalReporter::new(writer, Styles::new(color))
        })
    }

    fn render_with(
        events: &[Event],
        reporter: impl FnOnce(Box<dyn Write + Send>) -> TerminalReporter,
    ) -> String {
        let buffer = SharedBuffer::default();
        let mut reporter = reporter(Box::new(buffer.clone()));
        for event in events {
            reporter.handle(event).unwrap();
        }
        buffer.text()
    }

    /// The screen of a `columns`-wide terminal after `events`, the live
    /// reporter drawing on it.
    fn screen(events: &[Event], columns: u16) -> String {
        let term = InMemoryTerm::new(20, columns);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let mut reporter = TerminalReporter::live(target, Styles::new(false));
        for event in events {
            reporter.handle(event).unwrap();
        }
        term.contents()
    }

    fn run_started(test_count: usize) -> Event {
        Event::RunStarted {
            test_count,
            jobs: 2,
            started_at: SystemTime::UNIX_EPOCH,
            host: host(),
        }
    }

    fn started(name: &str, at: Instant) -> Event {
        Event::TestStarted {
            name: name.to_string(),
            at,
        }
    }

    fn tick(now: Instant) -> Event {
        Event::Tick { now }
    }

    fn secs(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn run_finished(results: Vec<TestResult>, millis: u64) -> Event {
        Event::RunFinished(RunSummary {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(millis),
            results,
            host: host(),
            interrupted_by: None,
            services: Vec::new(),
        })
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
             \x1b[31m\x1b[1m    FAIL\x1b[0m [   0.001s] bad.sh (exit 1)\n\
             \x1b[33m NOT-RUN\x1b[0m [   0.000s] later.sh\n"
        );
    }

    #[test]
    fn a_tests_escape_codes_go_with_colour_off() {
        let message = "1 of 1 cases failed: 1 \x1b[31mred\x1b[0m thing";
        let events = [finished(result("t", Status::Fail, 1, Some(message)))];
        assert_eq!(
            render(&events, false),
            "    FAIL [   0.001s] t (1 of 1 cases failed: 1 red thing)\n"
        );
        assert!(render(&events, true).contains("\x1b[31mred"));
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
            services: Vec::new(),
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
            services: Vec::new(),
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
    fn services_on_the_line_in_the_table_and_after_the_run() {
        use crate::run::{ServiceResult, ServiceStatus};
        let service = |name: &str, status, message: Option<&str>| ServiceResult {
            name: name.into(),
            status,
            message: message.map(str::to_string),
            ready_after: None,
            ready_at: None,
            duration: Duration::from_millis(300),
            usage: None,
            limits: Default::default(),
            rusage: None,
            stdout: CapturedOutput::default(),
            stderr: output(b"db log\n"),
        };
        let mut test = result("migrates", Status::Fail, 100, Some("exit 1"));
        test.services = vec![
            service("store", ServiceStatus::Shared, None),
            service("db", ServiceStatus::Exited, Some("exit 3 during the test")),
        ];
        assert_eq!(
            render(&[finished(test.clone())], false),
            "    FAIL [   0.100s] migrates (exit 1, service db: exit 3 during the test)\n"
        );
        let summary = RunSummary {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(405),
            results: vec![test],
            host: host(),
            interrupted_by: None,
            services: vec![service("store", ServiceStatus::NotReady, None)],
        };
        let table = usage_table(&summary);
        let rows: Vec<&str> = table.lines().skip(1).map(|l| l.trim_start()).collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert!(rows[1].starts_with("exited") && rows[1].ends_with("migrates [service db]"));
        assert!(rows[2].starts_with("not-ready") && rows[2].ends_with("[run service store]"));
        let after = TerminalReporter::new(Box::new(std::io::sink()), Styles::new(false))
            .run_finished(&summary);
        assert!(after.contains("--- STDERR: migrates [service db] ---\ndb log\n"));
        assert!(after.contains("--- STDERR: [run service store] ---\ndb log\n"));
    }

    #[test]
    fn summary_of_a_clean_or_empty_run() {
        let summary = |results| RunSummary {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            results,
            host: host(),
            interrupted_by: None,
            services: Vec::new(),
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
        let mut reporter = TerminalReporter::new(Box::new(Broken), Styles::new(false));
        let event = finished(result("ok.sh", Status::Pass, 1, None));
        let err = reporter.handle(&event).unwrap_err();
        assert!(
            err.to_string().starts_with("write report <terminal>: "),
            "{err}"
        );
    }

    #[test]
    fn progress_line_is_redrawn_below_output_and_erased_at_the_end() {
        let t0 = Instant::now();
        let events = [
            run_started(2),
            started("a.sh", t0),
            tick(t0 + secs(1.5)),
            finished(result("a.sh", Status::Pass, 12, None)),
            run_finished(vec![result("a.sh", Status::Pass, 12, None)], 1500),
        ];
        assert_eq!(
            screen(&events[..4], 80),
            "    Starting 2 tests (jobs: 2)\n\
             \x20   PASS [   0.012s] a.sh\n  [1/2] 00:00:01  0 running"
        );
        assert_eq!(
            screen(&events, 80),
            "    Starting 2 tests (jobs: 2)\n\
             \x20   PASS [   0.012s] a.sh\n\
             ------------\n\
             \x20    Summary [   1.500s] 1 test run: 1 passed"
        );
        assert_eq!(
            render(&events, false),
            "    Starting 2 tests (jobs: 2)\n\
             \x20   PASS [   0.012s] a.sh\n\
             ------------\n\
             \x20    Summary [   1.500s] 1 test run: 1 passed\n"
        );
    }

    #[test]
    fn progress_line_names_the_longest_running_tests() {
        let t0 = Instant::now();
        let mut run = RunState {
            total: 120,
            finished: 12,
            ..RunState::default()
        };
        for (name, at) in [("db/migrate.sh", 0.0), ("net/echo.sh", 2.0)] {
            run.running.push(RunningTest {
                name: name.to_string(),
                started: t0 + secs(at),
                slow_notices: 0,
            });
            run.observe(t0 + secs(at));
        }
        run.observe(t0 + secs(83.2));
        assert_eq!(
            progress_line(&run),
            "  [ 12/120] 00:01:23  2 running: db/migrate.sh, net/echo.sh"
        );
    }

    #[test]
    fn progress_line_fits_a_narrow_terminal_in_display_columns() {
        let t0 = Instant::now();
        let events = [
            run_started(3),
            started("数据库/迁移.sh", t0),
            started("net/echo.sh", t0),
            tick(t0 + secs(45.0)),
            finished(result("net/echo.sh", Status::Pass, 5, None)),
        ];
        // 29 columns, then a name of 2-column characters: one fits in 32.
        let shown = screen(&events, 32);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 3, "nothing wrapped: {shown:?}");
        assert_eq!(lines[2], "  [1/3] 00:00:45  1 running: 数");
        for line in lines {
            assert!(console::measure_text_width(line) <= 32, "{line:?}");
        }
    }

    #[test]
    fn slow_tests_are_noticed_at_each_multiple_of_the_threshold() {
        let t0 = Instant::now();
        let events = [
            started("a.sh", t0),
            started("b.sh", t0 + secs(30.0)),
            tick(t0 + secs(59.999)),
            tick(t0 + secs(60.0)),
            tick(t0 + secs(89.999)),
            tick(t0 + secs(90.0)),
            tick(t0 + secs(150.0)),
            finished(result("a.sh", Status::Pass, 160_000, None)),
            tick(t0 + secs(200.0)),
            // Multiples passed between two Ticks make one notice.
            tick(t0 + secs(400.0)),
        ];
        let slow_after_minute = |writer| {
            TerminalReporter::new(writer, Styles::new(false))
                .with_slow_threshold(Duration::from_secs(60))
        };
        assert_eq!(
            render_with(&events, slow_after_minute),
            "    SLOW [  60.000s] a.sh (still running)\n\
             \x20   SLOW [  60.000s] b.sh (still running)\n\
             \x20   SLOW [ 120.000s] a.sh (still running)\n\
             \x20   SLOW [ 120.000s] b.sh (still running)\n\
             \x20   PASS [ 160.000s] a.sh\n\
             \x20   SLOW [ 360.000s] b.sh (still running)\n"
        );
        let never_slow = |writer| {
            TerminalReporter::new(writer, Styles::new(false)).with_slow_threshold(Duration::ZERO)
        };
        assert_eq!(render_with(&events[..7], never_slow), "");
    }

    #[test]
    fn retry_flaky_and_skipped_lines() {
        let attempt = |status, message: &str| Attempt {
            status,
            message: Some(message.to_string()),
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(100),
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            timing: Default::default(),
        };
        let mut flaky = result("flaky.sh", Status::Flaky, 123, Some("passed on attempt 3"));
        flaky.attempts = vec![
            attempt(Status::Fail, "exit 1"),
            attempt(Status::Timeout, "timed out after 1.000s"),
        ];
        let retrying = |attempt, status, message: Option<&str>| Event::TestRetrying {
            name: "flaky.sh".to_string(),
            attempt,
            duration: Duration::from_millis(120),
            status,
            message: message.map(str::to_string),
        };
        let events = [
            retrying(1, Status::Fail, Some("exit 1")),
            retrying(2, Status::Timeout, None),
            finished(flaky),
            finished(result("gpu.sh", Status::Skipped, 0, Some("needs a GPU"))),
        ];
        assert_eq!(
            render(&events, false),
            "   RETRY [   0.120s] flaky.sh (attempt 1 FAIL: exit 1)\n\
             \x20  RETRY [   0.120s] flaky.sh (attempt 2 TIMEOUT)\n\
             \x20  FLAKY [   0.123s] flaky.sh (passed on attempt 3)\n\
             \x20SKIPPED [   0.000s] gpu.sh (needs a GPU)\n"
        );
    }

    #[test]
    fn summary_counts_every_status_and_repeats_every_failure() {
        let results = Status::ALL
            .into_iter()
            .rev()
            .map(|status| {
                let name = format!("{}.sh", status.label().to_lowercase());
                result(&name, status, 1, None)
            })
            .collect();
        let out = render(&[run_finished(results, 2000)], false);
        assert_eq!(
            out,
            "------------\n\
             \x20    Summary [   2.000s] 11 tests run: 1 passed, 1 flaky, 1 failed, 1 signalled, \
             1 OOM-killed, 1 timed out, 1 over limit, 1 regressed, 1 errored, 1 skipped, 1 not run\n\
             \x20  ERROR [   0.001s] error.sh\n\
             REGRESSED [   0.001s] regressed.sh\n\
             OVER-LIMIT [   0.001s] over-limit.sh\n\
             \x20TIMEOUT [   0.001s] timeout.sh\n\
             \x20    OOM [   0.001s] oom.sh\n\
             \x20 SIGNAL [   0.001s] signal.sh\n\
             \x20   FAIL [   0.001s] fail.sh\n"
        );
    }
}
