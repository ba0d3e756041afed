//! The JUnit XML reporter: at the end of the run, one `<testsuite>` per test
//! suite, one `<testcase>` per test, written atomically.
//!
//! The shape follows the Jenkins xunit `junit-10.xsd`, plus per-testcase
//! `<properties>` (`isotest.*`: status, usage, exit code, signal) and the
//! `skipped` count quick-junit puts on `<testsuites>`. That schema has no
//! timestamp on `<testcase>`, so a test's start time is the
//! `isotest.started_at` property.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::iter::Peekable;
use std::path::{Path, PathBuf};
use std::str::Chars;
use std::time::{SystemTime, UNIX_EPOCH};

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{ReportError, Reporter};
use crate::run::{signal_name, Event, RunSummary, Status, TestResult};

/// quick-junit deletes every control character but `\n` from the text it is
/// given, tabs and carriage returns included. They travel through it as
/// these two noncharacters, which are illegal in XML and so never left in
/// sanitized text, and become character references once serialized.
const TAB_PLACEHOLDER: char = '\u{fffe}';
const CR_PLACEHOLDER: char = '\u{ffff}';

/// Writes the JUnit report of the run to a file when the run finishes.
pub struct JunitReporter {
    path: PathBuf,
}

impl JunitReporter {
    pub fn new(path: PathBuf) -> Self {
        JunitReporter { path }
    }
}

impl Reporter for JunitReporter {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        let Event::RunFinished(summary) = event else {
            return Ok(());
        };
        let xml = render(&build_report(summary))?;
        write_atomically(&self.path, xml.as_bytes()).map_err(|source| ReportError::Write {
            path: self.path.display().to_string(),
            source,
        })
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
        suite.add_test_cases(results.into_iter().map(test_case));
        report.add_test_suite(suite);
    }
    report
}

fn test_case(result: &TestResult) -> TestCase {
    let status = match result.status {
        Status::Pass => TestCaseStatus::success(),
        Status::NotRun => {
            let mut status = TestCaseStatus::skipped();
            status.set_message("not run");
            status
        }
        other => {
            let kind = match other {
                Status::Error => NonSuccessKind::Error,
                _ => NonSuccessKind::Failure,
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_type(other.label());
            if let Some(message) = &result.message {
                status.set_message(xml_text(message));
            }
            status
        }
    };
    let mut case = TestCase::new(xml_text(&result.test.name), status);
    case.set_classname(xml_text(&result.test.suite))
        .set_time(result.duration)
        .add_properties(properties(result));
    if !result.status.is_success() {
        if !result.stdout.is_empty() {
            case.set_system_out(xml_text(&result.stdout.to_string_lossy()));
        }
        if !result.stderr.is_empty() {
            case.set_system_err(xml_text(&result.stderr.to_string_lossy()));
        }
    }
    case
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
    // cgroup accounting; a figure the host cannot measure is left out.
    if let Some(usage) = result.usage {
        let figures = [
            ("isotest.memory_peak_bytes", usage.memory_peak_bytes),
            ("isotest.cpu_user_usec", usage.cpu_user_usec),
            ("isotest.cpu_system_usec", usage.cpu_system_usec),
            ("isotest.pids_peak", usage.pids_peak),
            ("isotest.oom_kills", usage.oom_kills),
            ("isotest.pids_max_hits", usage.pids_max_hits),
        ];
        for (name, value) in figures {
            if let Some(value) = value {
                properties.push((name, value.to_string()));
            }
        }
    }
    let limits = &result.limits;
    if let Some(bytes) = limits.memory_bytes {
        properties.push(("isotest.limit.memory_bytes", bytes.to_string()));
    }
    if let Some(cpus) = limits.cpus {
        properties.push(("isotest.limit.cpus", cpus.to_string()));
    }
    if let Some(pids) = limits.pids {
        properties.push(("isotest.limit.pids", pids.to_string()));
    }
    // wait4 on the container's init, a cross-check of the cgroup figures.
    if let Some(rusage) = result.rusage {
        properties.extend([
            ("isotest.rusage.user_usec", rusage.user_usec.to_string()),
            ("isotest.rusage.system_usec", rusage.system_usec.to_string()),
            (
                "isotest.rusage.max_rss_bytes",
                rusage.max_rss_bytes.to_string(),
            ),
        ]);
    }
    properties
        .into_iter()
        .map(|(name, value)| Property::new(name, value))
        .collect()
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
fn xml_text(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => skip_escape_sequence(&mut chars),
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

/// Skips the rest of an escape sequence whose ESC was just read: a CSI
/// (`ESC [ 3 1 m`), a string command such as OSC (`ESC ] … BEL`), or a short
/// escape (`ESC ( B`, and `ESC \`, which ends string commands).
fn skip_escape_sequence(chars: &mut Peekable<Chars>) {
    match chars.next_if(|c| matches!(c, '[' | ']' | 'P' | 'X' | '^' | '_')) {
        Some('[') => {
            // Parameter and intermediate bytes, then one final byte.
            while chars.next_if(|c| matches!(c, '\x20'..='\x3f')).is_some() {}
            chars.next_if(|c| matches!(c, '\x40'..='\x7e'));
        }
        Some(_) => {
            // Up to BEL, or up to the ESC of `ESC \`. An unterminated one
            // stops at the end of the line, so a stray `ESC ]` cannot
            // swallow the rest of the output.
            while let Some(c) = chars.next_if(|&c| c != '\x1b' && c != '\n') {
                if c == '\x07' {
                    break;
                }
            }
        }
        None => {
            while chars.next_if(|c| matches!(c, '\x20'..='\x2f')).is_some() {}
            chars.next_if(|c| matches!(c, '\x30'..='\x7e'));
        }
    }
}

/// RFC 3339 in UTC with milliseconds: `2024-02-29T23:59:59.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
        since_epoch.subsec_millis()
    )
}

/// The Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let days = days + 719_468; // counted from 0000-03-01
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// Writes a temporary file beside `path` and renames it over `path`, so
/// readers never see a half-written report.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    fs::create_dir_all(dir)?;
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = dir.join(temp_name);
    let written = write_synced(&temp, contents).and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

fn write_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::TestCase as Test;
    use crate::run::HostFacts;
    use crate::sandbox::{CapturedOutput, Limits, Rusage, Usage};
    use std::process::Command;
    use std::time::Duration;

    const NASTY: &[u8] =
        b"\x1b[31mred\x1b[0m nul\0 cdata]]> bad\xff\xfe <&>\"' tab\tcr\r\n\x1b]0;title\x07end\n";
    const NASTY_SANITIZED: &str =
        "red nul\\u{0} cdata]]> bad\u{fffd}\u{fffd} <&>\"' tab\tcr\r\nend\n";

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn result(name: &str, suite: &str, status: Status, started: u64, millis: u64) -> TestResult {
        TestResult {
            test: Test {
                name: name.to_string(),
                suite: suite.to_string(),
                program: crate::discover::Program::File(format!("/t/{name}").into()),
                dir: "/t".into(),
                tags: Vec::new(),
            },
            status,
            exit_code: None,
            signal: None,
            message: None,
            setup_failure: None,
            started_at: at(started),
            duration: Duration::from_millis(millis),
            leaked_processes: 0,
            rusage: None,
            usage: None,
            limits: Limits::default(),
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            attempts: Vec::new(),
        }
    }

    fn output(bytes: &[u8]) -> CapturedOutput {
        CapturedOutput {
            head: bytes.to_vec(),
            ..CapturedOutput::default()
        }
    }

    /// One test of every status, over three suites, with hostile output.
    fn summary() -> RunSummary {
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
            pids: Some(1024),
        };
        passed.stdout = output(b"passing output is not kept\n");
        let mut failed = result("db/migrate.sh", "db", Status::Fail, 1_700_000_005, 210);
        failed.exit_code = Some(1);
        failed.message = Some("exit 1".to_string());
        failed.leaked_processes = 2;
        failed.stdout = output(NASTY);
        failed.stderr = output(b"\x1b[1mdb down\x1b[0m\n");
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
        RunSummary {
            started_at: at(1_700_000_000),
            duration: Duration::from_millis(6000),
            results: vec![passed, failed, signalled, timed_out, errored, not_run],
            host: HostFacts {
                cgroup_layout: "hybrid".into(),
                cgroups_in_use: true,
            },
            interrupted_by: Some(2),
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

    #[test]
    fn formats_timestamps_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(at(951_782_400) + Duration::from_millis(5)),
            "2000-02-29T00:00:00.005Z"
        );
        assert_eq!(rfc3339(at(1_709_251_199)), "2024-02-29T23:59:59.000Z");
        assert_eq!(rfc3339(at(4_102_444_800)), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn writes_the_report() {
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
        let attrs = |node: roxmltree::Node, names: &[&str]| -> Vec<String> {
            names
                .iter()
                .map(|name| node.attribute(*name).unwrap_or("-").to_string())
                .collect()
        };
        assert_eq!(
            attrs(
                root,
                &["name", "tests", "failures", "errors", "skipped", "time"]
            ),
            ["isotest", "6", "3", "1", "1", "6.000"]
        );

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
                    "1",
                    "1",
                    "0",
                    "0",
                    "0.210",
                    "2023-11-14T22:13:25.000Z"
                ],
                [
                    "tests",
                    "3",
                    "1",
                    "1",
                    "1",
                    "5.004",
                    "2023-11-14T22:13:21.000Z"
                ],
            ]
        );

        let cases: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
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
                ["slow\t<&>.sh", "tests", "5.001"],
                ["x.sh", "tests", "0.003"],
                ["later.sh", "tests", "0.000"],
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
                vec!["failure", "TIMEOUT", "timed out after 5.000s"],
                vec!["error", "ERROR", "mount proc: EPERM"],
                vec!["skipped", "-", "not run"],
            ]
        );

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
    }

    /// The report validates against junit-10.xsd once the two extensions it
    /// carries are taken out.
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

    #[test]
    fn write_errors_name_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let path = blocker.join("junit.xml");
        let err = JunitReporter::new(path.clone())
            .handle(&Event::RunFinished(summary()))
            .unwrap_err();
        assert!(matches!(err, ReportError::Write { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
