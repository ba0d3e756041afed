//! The JUnit XML reporter: at the end of the run, one `<testsuite>` per test
//! suite, one `<testcase>` per test, written atomically.
//!
//! The shape follows the Jenkins xunit `junit-10.xsd`, plus per-testcase
//! `<properties>` (`isotest.*`: status, usage, exit code, signal) and the
//! `skipped` count quick-junit puts on `<testsuites>`. That schema has no
//! timestamp on `<testcase>` and no time on `<flakyFailure>` /
//! `<rerunFailure>`, so start times and durations are properties:
//! `isotest.started_at`, `isotest.wall_usec`, and per earlier attempt N
//! `isotest.attempt.N.started_at` and `isotest.attempt.N.wall_usec`.
//!
//! Retries: a FLAKY test is a success carrying one `<flakyFailure>` (or
//! `<flakyError>`) per earlier attempt; a test that failed every attempt
//! carries its final `<failure>` / `<error>` and one `<rerunFailure>` (or
//! `<rerunError>`) per earlier attempt, each with that attempt's status as
//! `type`, its message and output.

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use super::{attempts_run, rfc3339, Destination, ReportError, Reporter};
use crate::protocol::{case, Case, CaseStatus};
use crate::run::{signal_name, Attempt, Event, RunSummary, ServiceResult, Status, TestResult};
use crate::sandbox::{CapturedOutput, Limits};
use crate::style::strip_escapes;

/// quick-junit deletes every control character but `\n` from the text it is
/// given, tabs and carriage returns included. They travel through it as
/// these two noncharacters, which are illegal in XML and so never left in
/// sanitized text, and become character references once serialized.
const TAB_PLACEHOLDER: char = '\u{fffe}';
const CR_PLACEHOLDER: char = '\u{ffff}';

/// Writes the JUnit report of the run to a file or stdout when the run finishes.
pub struct JunitReporter {
    destination: Destination,
}

impl JunitReporter {
    pub fn new(destination: impl Into<Destination>) -> Self {
        JunitReporter {
            destination: destination.into(),
        }
    }
}

impl Reporter for JunitReporter {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        let Event::RunFinished(summary) = event else {
            return Ok(());
        };
        let xml = render(&build_report(summary))?;
        self.destination.write(xml.as_bytes())
    }
}

fn build_report(summary: &RunSummary) -> Report {
    // Suites in order of first appearance; plans are small enough for a scan.
    let mut suites: Vec<(&str, Vec<&TestResult>)> = Vec::new();
    for result in &summary.results {
        let name = result.test.suite.as_str();
        match suites.iter_mut().find(|(suite, _)| *suite == name) {
            Some((_, results)) => results.push(result),
            None => suites.push((name, vec![result])),
        }
    }
    let mut report = Report::new("isotest");
    report.set_time(summary.duration);
    for (name, results) in suites {
        let mut suite = TestSuite::new(xml_text(name));
        suite.set_time(results.iter().map(|r| r.duration).sum());
        if let Some(first) = results.iter().map(|r| r.started_at).min() {
            // `TestSuite::set_timestamp` takes a chrono type; isotest does not
            // depend on chrono, so the attribute is written as an extra.
            suite
                .extra
                .insert("timestamp".into(), rfc3339(first).into());
        }
        suite.add_property(Property::new(
            "isotest.cgroup_layout",
            summary.host.cgroup_layout.as_str(),
        ));
        for result in results {
            suite.add_test_case(test_case(result));
            suite.add_test_cases(cases(result));
        }
        report.add_test_suite(suite);
    }
    report
}

fn test_case(result: &TestResult) -> TestCase {
    let mut status = match result.status {
        Status::Pass | Status::Flaky => TestCaseStatus::success(),
        Status::Skipped | Status::NotRun => {
            let default = match result.status {
                Status::Skipped => "ignored",
                _ => "not run",
            };
            let mut status = TestCaseStatus::skipped();
            status.set_message(xml_text(result.message.as_deref().unwrap_or(default)));
            status
        }
        other => {
            let mut status = TestCaseStatus::non_success(failure_kind(other));
            status.set_type(other.label());
            if let Some(message) = &result.message {
                status.set_message(xml_text(message));
            }
            status
        }
    };
    // Flaky runs on a success, reruns on a failure (quick-junit decides).
    status.add_reruns(result.attempts.iter().map(rerun));
    // Under --stress each run is a testcase of its own, named apart.
    let name = match result.scheduled.iteration {
        Some(run) => format!("{} (run {run})", result.test.name),
        None => result.test.name.clone(),
    };
    let mut case = TestCase::new(xml_text(&name), status);
    case.set_classname(xml_text(&result.test.suite))
        .set_time(result.duration)
        .add_properties(properties(result));
    if !result.status.is_success() {
        let stdout = with_services(&result.stdout, result, "stdout", |s| &s.stdout);
        if !stdout.is_empty() {
            case.set_system_out(stdout);
        }
        let stderr = with_services(&result.stderr, result, "stderr", |s| &s.stderr);
        if !stderr.is_empty() {
            case.set_system_err(stderr);
        }
    }
    case
}

/// The test's stream, then each service's, in a section headed by its
/// name and status.
fn with_services(
    own: &CapturedOutput,
    result: &TestResult,
    stream: &str,
    of: impl Fn(&ServiceResult) -> &CapturedOutput,
) -> String {
    let mut text = if own.is_empty() {
        String::new()
    } else {
        output_text(own)
    };
    for service in result.services.iter().filter(|s| !of(s).is_empty()) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[isotest: {stream} of service `{}` ({})]\n",
            xml_text(&service.name),
            service.status.label()
        ));
        text.push_str(&output_text(of(service)));
    }
    text
}

/// The test's cases (TAP test points, testcases of its XML_OUTPUT_FILE),
/// each its own `<testcase>` named `TEST::CASE` (`TEST::2 parent::1
/// child` for a nested one). A TODO case that failed is skipped with its
/// reason: known, and not a failure.
fn cases(result: &TestResult) -> Vec<TestCase> {
    Case::walk(&result.cases)
        .into_iter()
        .map(|(path, case)| {
            let name = format!("{}::{}", result.test.name, path.join("::"));
            let mut testcase = TestCase::new(xml_text(&name), case_status(case));
            testcase
                .set_classname(xml_text(&result.test.suite))
                .add_property(Property::new("isotest.status", case.status.label()));
            if let Some(duration) = case.duration {
                testcase.set_time(duration);
            }
            testcase
        })
        .collect()
}

fn case_status(case: &Case) -> TestCaseStatus {
    let message = case.message.as_deref();
    match case.status {
        CaseStatus::Pass | CaseStatus::Fixed => TestCaseStatus::success(),
        CaseStatus::Skip | CaseStatus::Todo => {
            let mut status = TestCaseStatus::skipped();
            let reason = match (case.status, message) {
                (CaseStatus::Todo, Some(reason)) => format!("TODO {reason}"),
                (CaseStatus::Todo, None) => "TODO".to_string(),
                (_, reason) => reason.unwrap_or_default().to_string(),
            };
            status.set_message(xml_text(&reason));
            status
        }
        CaseStatus::Fail | CaseStatus::Error => {
            let kind = match case.status {
                CaseStatus::Error => NonSuccessKind::Error,
                _ => NonSuccessKind::Failure,
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_type(case.status.label());
            if let Some(message) = message {
                let first = message.lines().next().unwrap_or_default();
                status.set_message(xml_text(first));
                status.set_description(xml_text(message));
            }
            status
        }
    }
}

/// `<error>` is for tests that could not run; everything else that did not
/// pass is a `<failure>`.
fn failure_kind(status: Status) -> NonSuccessKind {
    match status {
        Status::Error => NonSuccessKind::Error,
        _ => NonSuccessKind::Failure,
    }
}

/// An earlier attempt. Its time is not set: junit-10.xsd has no `time` on
/// rerun elements, so it is a property (see `properties`).
fn rerun(attempt: &Attempt) -> TestRerun {
    let mut rerun = TestRerun::new(failure_kind(attempt.status));
    rerun.set_type(attempt.status.label());
    if let Some(message) = &attempt.message {
        rerun.set_message(xml_text(message));
    }
    if !attempt.stdout.is_empty() {
        rerun.set_system_out(output_text(&attempt.stdout));
    }
    if !attempt.stderr.is_empty() {
        rerun.set_system_err(output_text(&attempt.stderr));
    }
    rerun
}

/// The limits a container (a test's, a service's) ran under, by name
/// (`memory_bytes`); no limit, no figure.
fn limit_figures(limits: &Limits) -> Vec<(&'static str, String)> {
    let figures = [
        ("memory_bytes", limits.memory_bytes.map(|b| b.to_string())),
        ("cpus", limits.cpus.map(|c| c.to_string())),
        ("cpu_weight", limits.cpu_weight.map(|w| w.to_string())),
        ("pids", limits.pids.map(|p| p.to_string())),
    ];
    figures
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
}

/// What the test used (cgroup figures the host measured, and wait4's),
/// and the limits it ran under.
fn measured(result: &TestResult) -> Vec<(String, String)> {
    let mut figures = Vec::new();
    // cgroup accounting; a figure the host cannot measure is left out.
    if let Some(usage) = result.usage {
        let cgroup = [
            ("isotest.memory_peak_bytes", usage.memory_peak_bytes),
            ("isotest.cpu_user_usec", usage.cpu_user_usec),
            ("isotest.cpu_system_usec", usage.cpu_system_usec),
            ("isotest.pids_peak", usage.pids_peak),
            ("isotest.oom_kills", usage.oom_kills),
            ("isotest.pids_max_hits", usage.pids_max_hits),
        ];
        for (name, value) in cgroup {
            if let Some(value) = value {
                figures.push((name.to_string(), value.to_string()));
            }
        }
    }
    figures.extend(
        limit_figures(&result.limits)
            .into_iter()
            .map(|(name, value)| (format!("isotest.limit.{name}"), value)),
    );
    // wait4 on the container's init, a cross-check of the cgroup figures.
    if let Some(rusage) = result.rusage {
        let rusage = [
            ("isotest.rusage.user_usec", rusage.user_usec),
            ("isotest.rusage.system_usec", rusage.system_usec),
            ("isotest.rusage.max_rss_bytes", rusage.max_rss_bytes),
        ];
        figures.extend(rusage.map(|(name, value)| (name.to_string(), value.to_string())));
    }
    figures
}

fn properties(result: &TestResult) -> Vec<Property> {
    let mut properties = vec![
        ("isotest.status", result.status.label().to_string()),
        ("isotest.started_at", rfc3339(result.started_at)),
        ("isotest.wall_usec", result.duration.as_micros().to_string()),
        (
            "isotest.leaked_processes",
            result.leaked_processes.to_string(),
        ),
    ];
    if let Some(code) = result.exit_code {
        properties.push(("isotest.exit_code", code.to_string()));
    }
    if let Some(signal) = result.signal {
        properties.push(("isotest.signal", signal_name(signal)));
    }
    if !result.cases.is_empty() {
        properties.push(("isotest.cases", case::count(&result.cases).to_string()));
    }
    if let Some(dir) = &result.artifacts {
        properties.push(("isotest.artifacts", dir.display().to_string()));
    }
    if let Some(wait) = result.scheduled.waited_for_memory {
        properties.push((
            "isotest.waited_for_memory_usec",
            wait.as_micros().to_string(),
        ));
    }
    let attempts = attempts_run(result);
    if attempts > 1 {
        properties.push(("isotest.attempts", attempts.to_string()));
    }
    let mut properties: Vec<Property> = properties
        .into_iter()
        .map(|(name, value)| Property::new(name, value))
        .chain(
            measured(result)
                .into_iter()
                .map(|(n, v)| Property::new(n, v)),
        )
        .collect();
    for service in &result.services {
        let prefix = format!("isotest.service.{}", service.name);
        properties.push(Property::new(
            format!("{prefix}.status"),
            service.status.label(),
        ));
        if let Some(ready) = service.ready_after {
            properties.push(Property::new(
                format!("{prefix}.ready_usec"),
                ready.as_micros().to_string(),
            ));
        }
        if let Some(peak) = service.usage.and_then(|u| u.memory_peak_bytes) {
            properties.push(Property::new(
                format!("{prefix}.memory_peak_bytes"),
                peak.to_string(),
            ));
        }
        for (name, value) in limit_figures(&service.limits) {
            properties.push(Property::new(format!("{prefix}.limit.{name}"), value));
        }
    }
    for (n, attempt) in (1..).zip(&result.attempts) {
        properties.extend([
            Property::new(
                format!("isotest.attempt.{n}.started_at"),
                rfc3339(attempt.started_at),
            ),
            Property::new(
                format!("isotest.attempt.{n}.wall_usec"),
                attempt.duration.as_micros().to_string(),
            ),
        ]);
    }
    properties
}

fn render(report: &Report) -> Result<String, ReportError> {
    let xml = report
        .to_string()
        .map_err(|err| ReportError::Junit(err.to_string()))?;
    Ok(xml
        .replace(TAB_PLACEHOLDER, "&#9;")
        .replace(CR_PLACEHOLDER, "&#13;"))
}

/// Makes text a test printed safe for quick-junit and XML 1.0: ANSI escape
/// sequences are removed; other characters XML forbids, and C1 controls
/// (which quick-junit's ANSI stripper would act on), become visible escapes
/// like `\u{0}`; tabs and carriage returns become placeholders (see
/// `TAB_PLACEHOLDER`).
/// Most bytes of one stream in the report. Escaping can make captured
/// output several times longer (a NUL becomes `\u{0}`), and libxml2-based
/// readers refuse text nodes over 10 MB.
const MAX_OUTPUT_BYTES: usize = 8 << 20;

/// Captured output as report text: escaped, then bounded again, keeping
/// its head and tail.
fn output_text(output: &CapturedOutput) -> String {
    let text = xml_text(&output.to_string_lossy());
    if text.len() <= MAX_OUTPUT_BYTES {
        return text;
    }
    let half = MAX_OUTPUT_BYTES / 2;
    let head_end = (0..=half)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let tail_start = (text.len() - half..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    format!(
        "{}\n[isotest: {} bytes of escaped output dropped here]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

/// `raw` as XML text can carry it: escape sequences removed, tabs and
/// carriage returns through quick-junit as placeholders, other control
/// characters and noncharacters written as `\u{..}`.
fn xml_text(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    for c in strip_escapes(raw).chars() {
        match c {
            '\t' => text.push(TAB_PLACEHOLDER),
            '\r' => text.push(CR_PLACEHOLDER),
            '\n' => text.push('\n'),
            c if c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}') => {
                text.extend(c.escape_unicode())
            }
            c => text.push(c),
        }
    }
    text
}

/// Also the sample run of the JSON reporter's and the baseline's tests.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::discover::TestCase as Test;
    use crate::run::HostFacts;
    use crate::sandbox::{CapturedOutput, Limits, Rusage, Usage};
    use std::fs;
    use std::path::Path;
    use std::process::Command;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub(crate) const NASTY: &[u8] =
        b"\x1b[31mred\x1b[0m nul\0 cdata]]> bad\xff\xfe <&>\"' tab\tcr\r\n\x1b]0;title\x07end\n";
    const NASTY_SANITIZED: &str =
        "red nul\\u{0} cdata]]> bad\u{fffd}\u{fffd} <&>\"' tab\tcr\r\nend\n";

    pub(crate) fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    pub(crate) fn result(
        name: &str,
        suite: &str,
        status: Status,
        started: u64,
        millis: u64,
    ) -> TestResult {
        let test = Test {
            name: name.to_string(),
            suite: suite.to_string(),
            program: crate::discover::Program::File(format!("/t/{name}").into()),
            dir: "/t".into(),
            ..Test::example()
        };
        TestResult {
            duration: Duration::from_millis(millis),
            ..TestResult::new(test, status, at(started))
        }
    }

    pub(crate) fn output(bytes: &[u8]) -> CapturedOutput {
        CapturedOutput {
            head: bytes.to_vec(),
            ..CapturedOutput::default()
        }
    }

    fn attempt(status: Status, message: &str, started: u64, millis: u64) -> Attempt {
        Attempt {
            status,
            message: Some(message.to_string()),
            started_at: at(started),
            duration: Duration::from_millis(millis),
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            timing: Default::default(),
        }
    }

    /// One test of every status, over three suites, with hostile output
    /// and retries.
    pub(crate) fn summary() -> RunSummary {
        let mut passed = result("net/echo.sh", "net", Status::Pass, 1_700_000_010, 12);
        passed.exit_code = Some(0);
        passed.rusage = Some(Rusage {
            user_usec: 1500,
            system_usec: 700,
            max_rss_bytes: 4_194_304,
        });
        passed.usage = Some(Usage {
            memory_peak_bytes: Some(3_145_728),
            cpu_user_usec: Some(1400),
            cpu_system_usec: Some(650),
            pids_peak: Some(3),
            oom_kills: Some(0),
            pids_max_hits: None,
        });
        passed.limits = Limits {
            memory_bytes: Some(268_435_456),
            cpus: Some(0.5),
            cpu_weight: Some(300),
            pids: Some(1024),
        };
        passed.stdout = output(b"passing output is not kept\n");
        let mut failed = result("db/migrate.sh", "db", Status::Fail, 1_700_000_005, 210);
        failed.exit_code = Some(1);
        failed.message = Some("exit 1".to_string());
        failed.leaked_processes = 2;
        failed.stdout = output(NASTY);
        failed.stderr = output(b"\x1b[1mdb down\x1b[0m\n");
        let mut first_try = attempt(
            Status::Timeout,
            "timed out after 5.000s",
            1_699_999_990,
            5001,
        );
        first_try.stdout = output(b"first try\n");
        failed.attempts = vec![
            first_try,
            attempt(Status::Error, "mount proc: EPERM", 1_699_999_996, 4),
        ];
        let mut flaky = result("db/retry.sh", "db", Status::Flaky, 1_700_000_006, 20);
        flaky.exit_code = Some(0);
        flaky.message = Some("passed on attempt 2".to_string());
        let mut refused = attempt(Status::Fail, "exit 1", 1_700_000_005, 30);
        refused.stderr = output(b"\x1b[1mconnection refused\x1b[0m\n");
        flaky.attempts = vec![refused];
        let mut signalled = result("net/crash.sh", "net", Status::Signal, 1_700_000_000, 50);
        signalled.signal = Some(11);
        signalled.message = Some("killed by SIGSEGV".to_string());
        let mut timed_out = result(
            "slow\t<&>.sh",
            "tests",
            Status::Timeout,
            1_700_000_001,
            5001,
        );
        timed_out.message = Some("timed out after 5.000s".to_string());
        let mut errored = result("x.sh", "tests", Status::Error, 1_700_000_002, 3);
        errored.message = Some("mount proc: EPERM\x1b[0m".to_string());
        let not_run = result("later.sh", "tests", Status::NotRun, 1_700_000_003, 0);
        let mut skipped = result("gpu.sh", "tests", Status::Skipped, 1_700_000_003, 0);
        skipped.message = Some("needs a GPU".to_string());
        let mut regressed = result("big.sh", "tests", Status::Regressed, 1_700_000_004, 100);
        regressed.exit_code = Some(0);
        regressed.message = Some("memory peak 12.0 MiB → 20.5 MiB (+71%, limit +20%)".to_string());
        RunSummary {
            started_at: at(1_700_000_000),
            duration: Duration::from_millis(6000),
            results: vec![
                passed, failed, signalled, timed_out, errored, not_run, flaky, skipped, regressed,
            ],
            host: HostFacts {
                cgroup_layout: "hybrid".into(),
                cgroups_in_use: true,
                rootless: false,
            },
            interrupted_by: Some(2),
            services: Vec::new(),
        }
    }

    #[test]
    fn sanitizes_what_xml_cannot_carry() {
        let text = String::from_utf8_lossy(NASTY);
        let sanitized = xml_text(&text)
            .replace(TAB_PLACEHOLDER, "\t")
            .replace(CR_PLACEHOLDER, "\r");
        assert_eq!(sanitized, NASTY_SANITIZED);
        assert_eq!(
            xml_text("a\u{fffe}b\u{9b}c\x7f"),
            "a\\u{fffe}b\\u{9b}c\\u{7f}"
        );
        // Unterminated or cut-off sequences cost at most the rest of a line.
        assert_eq!(xml_text("a\x1b]0;never ends\nnext"), "a\nnext");
        assert_eq!(xml_text("a\x1b[31"), "a");
        assert_eq!(xml_text("a\x1b(Bb\x1b"), "ab");
    }

    /// The report of `summary()`, as written.
    fn written_report() -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut reporter = JunitReporter::new(path.clone());
        reporter.handle(&Event::RunFinished(summary())).unwrap();
        fs::read_to_string(&path).unwrap()
    }

    /// The `names` attributes of `node`, `-` for those it lacks.
    fn attrs(node: roxmltree::Node, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .map(|name| node.attribute(*name).unwrap_or("-").to_string())
            .collect()
    }

    fn testcases<'a, 'i>(doc: &'a roxmltree::Document<'i>) -> Vec<roxmltree::Node<'a, 'i>> {
        doc.root_element()
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect()
    }

    #[test]
    fn writes_the_report_once_the_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports/junit.xml");
        let mut reporter = JunitReporter::new(path.clone());
        reporter
            .handle(&Event::TestStarted {
                name: "x".into(),
                at: std::time::Instant::now(),
            })
            .unwrap();
        assert!(!path.exists(), "nothing is written before the run ends");
        reporter.handle(&Event::RunFinished(summary())).unwrap();

        let leftovers: Vec<_> = fs::read_dir(dir.path().join("reports"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["junit.xml"]);
        let xml = fs::read_to_string(&path).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(
            attrs(
                root,
                &["name", "tests", "failures", "errors", "skipped", "time"]
            ),
            ["isotest", "9", "4", "1", "2", "6.000"]
        );
    }

    #[test]
    fn suites_count_their_cases() {
        let xml = written_report();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
        let suite_attrs: Vec<_> = suites
            .iter()
            .map(|s| {
                attrs(
                    *s,
                    &[
                        "name",
                        "tests",
                        "failures",
                        "errors",
                        "skipped",
                        "time",
                        "timestamp",
                    ],
                )
            })
            .collect();
        assert_eq!(
            suite_attrs,
            [
                [
                    "net",
                    "2",
                    "1",
                    "0",
                    "0",
                    "0.062",
                    "2023-11-14T22:13:20.000Z"
                ],
                [
                    "db",
                    "2",
                    "1",
                    "0",
                    "0",
                    "0.230",
                    "2023-11-14T22:13:25.000Z"
                ],
                [
                    "tests",
                    "5",
                    "2",
                    "1",
                    "2",
                    "5.104",
                    "2023-11-14T22:13:21.000Z"
                ],
            ]
        );
    }

    #[test]
    fn cases_carry_their_outcome() {
        let xml = written_report();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let cases = testcases(&doc);
        let case_attrs: Vec<_> = cases
            .iter()
            .map(|c| attrs(*c, &["name", "classname", "time"]))
            .collect();
        assert_eq!(
            case_attrs,
            [
                ["net/echo.sh", "net", "0.012"],
                ["net/crash.sh", "net", "0.050"],
                ["db/migrate.sh", "db", "0.210"],
                ["db/retry.sh", "db", "0.020"],
                ["slow\t<&>.sh", "tests", "5.001"],
                ["x.sh", "tests", "0.003"],
                ["later.sh", "tests", "0.000"],
                ["gpu.sh", "tests", "0.000"],
                ["big.sh", "tests", "0.100"],
            ]
        );
        let outcome = |case: &roxmltree::Node| -> Vec<String> {
            match case.children().find(|n| {
                n.has_tag_name("failure") || n.has_tag_name("error") || n.has_tag_name("skipped")
            }) {
                Some(node) => [node.tag_name().name().to_string()]
                    .into_iter()
                    .chain(attrs(node, &["type", "message"]))
                    .collect(),
                None => vec!["success".to_string()],
            }
        };
        let outcomes: Vec<_> = cases.iter().map(outcome).collect();
        assert_eq!(
            outcomes,
            [
                vec!["success"],
                vec!["failure", "SIGNAL", "killed by SIGSEGV"],
                vec!["failure", "FAIL", "exit 1"],
                vec!["success"],
                vec!["failure", "TIMEOUT", "timed out after 5.000s"],
                vec!["error", "ERROR", "mount proc: EPERM"],
                vec!["skipped", "-", "not run"],
                vec!["skipped", "-", "needs a GPU"],
                vec![
                    "failure",
                    "REGRESSED",
                    "memory peak 12.0 MiB → 20.5 MiB (+71%, limit +20%)"
                ],
            ]
        );
    }

    #[test]
    fn earlier_attempts_are_reruns_or_flaky_runs_and_output_is_kept_for_failures() {
        let xml = written_report();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let cases = testcases(&doc);
        // Earlier attempts: reruns of a failure, flaky runs of a success.
        let earlier = |case: &roxmltree::Node| -> Vec<Vec<String>> {
            case.children()
                .filter(|n| {
                    n.tag_name().name().starts_with("rerun")
                        || n.tag_name().name().starts_with("flaky")
                })
                .map(|node| {
                    let text = |tag: &str| {
                        node.children()
                            .find(|n| n.has_tag_name(tag))
                            .map_or("-".to_string(), |n| n.text().unwrap_or("").to_string())
                    };
                    [node.tag_name().name().to_string()]
                        .into_iter()
                        .chain(attrs(node, &["type", "message", "time"]))
                        .chain([text("system-out"), text("system-err")])
                        .collect()
                })
                .collect()
        };
        assert_eq!(
            earlier(&cases[2]),
            [
                [
                    "rerunFailure",
                    "TIMEOUT",
                    "timed out after 5.000s",
                    "-",
                    "first try\n",
                    "-"
                ],
                ["rerunError", "ERROR", "mount proc: EPERM", "-", "-", "-"],
            ]
        );
        assert_eq!(
            earlier(&cases[3]),
            [[
                "flakyFailure",
                "FAIL",
                "exit 1",
                "-",
                "-",
                "connection refused\n"
            ]]
        );
        assert!(earlier(&cases[0]).is_empty());

        let text_of = |case: &roxmltree::Node, tag: &str| {
            case.children()
                .find(|n| n.has_tag_name(tag))
                .map(|n| n.text().unwrap_or("").to_string())
        };
        assert_eq!(
            text_of(&cases[0], "system-out"),
            None,
            "passing output is left out"
        );
        assert_eq!(
            text_of(&cases[2], "system-out").as_deref(),
            Some(NASTY_SANITIZED)
        );
        assert_eq!(
            text_of(&cases[2], "system-err").as_deref(),
            Some("db down\n")
        );
        assert_eq!(
            text_of(&cases[1], "system-out"),
            None,
            "empty output is left out"
        );
    }

    #[test]
    fn cases_carry_usage_limits_and_attempts_as_properties() {
        let xml = written_report();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let cases = testcases(&doc);
        let properties = |case: &roxmltree::Node| -> Vec<(String, String)> {
            case.descendants()
                .filter(|n| n.has_tag_name("property"))
                .map(|p| {
                    (
                        p.attribute("name").unwrap().into(),
                        p.attribute("value").unwrap().into(),
                    )
                })
                .collect()
        };
        let expect = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            properties(&cases[0]),
            expect(&[
                ("isotest.status", "PASS"),
                ("isotest.started_at", "2023-11-14T22:13:30.000Z"),
                ("isotest.wall_usec", "12000"),
                ("isotest.leaked_processes", "0"),
                ("isotest.exit_code", "0"),
                ("isotest.memory_peak_bytes", "3145728"),
                ("isotest.cpu_user_usec", "1400"),
                ("isotest.cpu_system_usec", "650"),
                ("isotest.pids_peak", "3"),
                ("isotest.oom_kills", "0"),
                ("isotest.limit.memory_bytes", "268435456"),
                ("isotest.limit.cpus", "0.5"),
                ("isotest.limit.cpu_weight", "300"),
                ("isotest.limit.pids", "1024"),
                ("isotest.rusage.user_usec", "1500"),
                ("isotest.rusage.system_usec", "700"),
                ("isotest.rusage.max_rss_bytes", "4194304"),
            ])
        );
        assert_eq!(
            properties(&cases[1]),
            expect(&[
                ("isotest.status", "SIGNAL"),
                ("isotest.started_at", "2023-11-14T22:13:20.000Z"),
                ("isotest.wall_usec", "50000"),
                ("isotest.leaked_processes", "0"),
                ("isotest.signal", "SIGSEGV"),
            ])
        );
        assert!(properties(&cases[2]).contains(&("isotest.leaked_processes".into(), "2".into())));
        assert_eq!(
            properties(&cases[3]),
            expect(&[
                ("isotest.status", "FLAKY"),
                ("isotest.started_at", "2023-11-14T22:13:26.000Z"),
                ("isotest.wall_usec", "20000"),
                ("isotest.leaked_processes", "0"),
                ("isotest.exit_code", "0"),
                ("isotest.attempts", "2"),
                ("isotest.attempt.1.started_at", "2023-11-14T22:13:25.000Z"),
                ("isotest.attempt.1.wall_usec", "30000"),
            ])
        );
        let attempts = |case: &roxmltree::Node| {
            properties(case)
                .into_iter()
                .find(|(name, _)| name == "isotest.attempts")
                .map(|(_, value)| value)
        };
        assert_eq!(attempts(&cases[2]).as_deref(), Some("3"));
        assert_eq!(attempts(&cases[0]), None, "one attempt is not noted");
    }

    #[test]
    fn services_carry_their_status_usage_and_limits_as_properties() {
        use crate::run::ServiceStatus;
        let mut result = summary().results.remove(0);
        result.services = vec![ServiceResult {
            usage: Some(Usage {
                memory_peak_bytes: Some(33_554_432),
                oom_kills: Some(1),
                ..Usage::default()
            }),
            limits: Limits {
                memory_bytes: Some(33_554_432),
                cpus: Some(0.5),
                ..Limits::default()
            },
            ..ServiceResult::without_run("db", ServiceStatus::OomKilled)
        }];
        let service: Vec<(String, String)> = properties(&result)
            .iter()
            .map(|p| (p.name.to_string(), p.value.to_string()))
            .filter(|(name, _)| name.starts_with("isotest.service."))
            .collect();
        let expected = [
            ("isotest.service.db.status", "oom-killed"),
            ("isotest.service.db.memory_peak_bytes", "33554432"),
            ("isotest.service.db.limit.memory_bytes", "33554432"),
            ("isotest.service.db.limit.cpus", "0.5"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(service, expected);
    }

    #[test]
    fn validates_against_the_junit_schema() {
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/schemas/junit-10.xsd");
        let has_xmllint = Command::new("xmllint").arg("--version").output().is_ok();
        if !schema.exists() || !has_xmllint {
            eprintln!("skipped: needs xmllint and {}", schema.display());
            return;
        }
        let mut report = build_report(&summary());
        for suite in &mut report.test_suites {
            for case in &mut suite.test_cases {
                case.properties.clear();
            }
        }
        let skipped = format!(" skipped=\"{}\"", report.skipped);
        let xml = render(&report).unwrap().replacen(&skipped, "", 1);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junit.xml");
        fs::write(&file, &xml).unwrap();
        let check = Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(&schema)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}\n{xml}",
            String::from_utf8_lossy(&check.stderr)
        );
    }

    /// A test's cases follow it as testcases named `TEST::PATH`, nested
    /// ones by their path; a TODO failure is skipped, not a failure.
    #[test]
    fn cases_are_testcases_of_their_own() {
        let mut tap = result("t0001.sh", "tests", Status::Fail, 1_700_000_000, 5);
        let case = |name: &str, status, message: Option<&str>| Case {
            message: message.map(str::to_string),
            ..Case::new(name.to_string(), status)
        };
        let mut parent = case("2 parent", CaseStatus::Pass, None);
        parent.cases = vec![case("1 child", CaseStatus::Fail, Some("got: 1\nwant: 2"))];
        parent.duration = Some(Duration::from_millis(250));
        tap.cases = vec![
            case("1 first", CaseStatus::Pass, None),
            parent,
            case("3 later", CaseStatus::Todo, Some("not yet")),
        ];
        tap.artifacts = Some("/out/t0001.sh".into());
        let summary = RunSummary {
            results: vec![tap],
            ..summary()
        };
        let xml = render(&build_report(&summary)).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let testcases: Vec<(&str, Vec<&str>)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .map(|n| {
                let verdicts = n
                    .children()
                    .filter(|c| matches!(c.tag_name().name(), "failure" | "skipped"))
                    .map(|c| c.attribute("message").unwrap_or(""))
                    .collect();
                (n.attribute("name").unwrap(), verdicts)
            })
            .collect();
        assert_eq!(
            testcases,
            [
                ("t0001.sh", vec![""]),
                ("t0001.sh::1 first", vec![]),
                ("t0001.sh::2 parent", vec![]),
                ("t0001.sh::2 parent::1 child", vec!["got: 1"]),
                ("t0001.sh::3 later", vec!["TODO not yet"]),
            ]
        );
        assert!(
            xml.contains(r#"<testcase name="t0001.sh::2 parent" classname="tests" time="0.250">"#)
        );
        assert!(xml.contains(r#"<property name="isotest.cases" value="4"/>"#));
        assert!(xml.contains(r#"<property name="isotest.artifacts" value="/out/t0001.sh"/>"#));
        assert!(xml.contains("got: 1\nwant: 2</failure>"));
    }
}
