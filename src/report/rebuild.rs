//! The runner's results rebuilt from a `--json` report: the inverse of the
//! conversions in `json`, so that `isotest report merge` hands the same
//! in-memory results to the same writers as a run does. A report field
//! this isotest does not know is an error, not silently dropped.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::json::{
    JsonAttempt, JsonCase, JsonLimits, JsonOutput, JsonPhases, JsonRun, JsonSample, JsonService,
    JsonTest, JsonUsage,
};
use crate::discover::{Program, TestCase};
use crate::protocol::{Case, CaseStatus};
use crate::run::{Attempt, Scheduled, ServiceResult, ServiceStatus, Status, TestResult, Timing};
use crate::sandbox::{CapturedOutput, Limits, Rusage, Sample, Usage};

/// Field paths (`tests[3].coverage`) of `original` that `known`, the report
/// as this isotest reads and writes it, lacks.
pub fn unknown_fields(original: &Value, known: &Value) -> Vec<String> {
    let mut found = Vec::new();
    collect_unknown(original, known, "", &mut found);
    found
}

fn collect_unknown(original: &Value, known: &Value, at: &str, found: &mut Vec<String>) {
    match (original, known) {
        (Value::Object(original), Value::Object(known)) => {
            for (key, value) in original {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                match known.get(key) {
                    Some(known) => collect_unknown(value, known, &path, found),
                    None => found.push(path),
                }
            }
        }
        (Value::Array(original), Value::Array(known)) => {
            for (i, (value, known)) in original.iter().zip(known).enumerate() {
                collect_unknown(value, known, &format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// One test's result as the run had it (its setup failure's details,
/// which the report keeps only as the message, aside).
pub fn test_result(test: &JsonTest) -> Result<TestResult, String> {
    rebuild(test).map_err(|e| format!("test {}: {e}", test.name))
}

fn rebuild(test: &JsonTest) -> Result<TestResult, String> {
    let usage = usage(&test.usage);
    let (stdout, stderr) = outputs(&test.output);
    Ok(TestResult {
        test: test_case(test),
        status: status(&test.status)?,
        exit_code: test.exit_code,
        signal: test.signal.as_deref().map(signal_number).transpose()?,
        message: test.message.clone(),
        setup_failure: None,
        started_at: parse_rfc3339(&test.started_at)?,
        duration: seconds(test.duration_secs)?,
        leaked_processes: test.leaked_processes,
        rusage: test.rusage.as_ref().map(|r| Rusage {
            user_usec: r.user_usec,
            system_usec: r.system_usec,
            max_rss_bytes: r.max_rss_bytes,
        }),
        usage: (usage != Usage::default()).then_some(usage),
        limits: limits(&test.limits),
        stdout,
        stderr,
        attempts: test
            .earlier_attempts
            .iter()
            .map(attempt)
            .collect::<Result<_, _>>()?,
        cases: test.cases.iter().map(case).collect::<Result<_, _>>()?,
        artifacts: test.artifacts.as_ref().map(PathBuf::from),
        slot: test.slot,
        timing: timing(test.phases.as_ref(), test.samples.as_deref())?,
        scheduled: Scheduled {
            iteration: test.iteration,
            waited_for_memory: test.waited_for_memory_secs.map(seconds).transpose()?,
        },
        services: test
            .services
            .iter()
            .map(service)
            .collect::<Result<_, _>>()?,
    })
}

fn test_case(test: &JsonTest) -> TestCase {
    let (program, dir) = match &test.program {
        super::json::JsonProgram::File(path) => {
            let path = PathBuf::from(path);
            let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
            (Program::File(path), dir)
        }
        super::json::JsonProgram::Command(argv) => (Program::Command(argv.clone()), PathBuf::new()),
    };
    TestCase {
        name: test.name.clone(),
        suite: test.suite.clone(),
        program,
        dir,
        tags: test.tags.clone(),
        default_dir: false,
        // A report holds results: how the output was read is done.
        harness: None,
        host_dirs: Vec::new(),
    }
}

fn case(case: &JsonCase) -> Result<Case, String> {
    Ok(Case {
        name: case.name.clone(),
        status: CaseStatus::from_label(&case.status)
            .ok_or_else(|| format!("case {}: unknown status `{}`", case.name, case.status))?,
        message: case.message.clone(),
        duration: case.duration_secs.map(seconds).transpose()?,
        cases: case
            .cases
            .iter()
            .map(self::case)
            .collect::<Result<_, _>>()?,
    })
}

fn attempt(attempt: &JsonAttempt) -> Result<Attempt, String> {
    let (stdout, stderr) = outputs(&attempt.output);
    Ok(Attempt {
        status: status(&attempt.status)?,
        message: attempt.message.clone(),
        started_at: parse_rfc3339(&attempt.started_at)?,
        duration: seconds(attempt.duration_secs)?,
        stdout,
        stderr,
        timing: timing(attempt.phases.as_ref(), attempt.samples.as_deref())?,
    })
}

/// Where an attempt's time went, as far as the report says.
fn timing(phases: Option<&JsonPhases>, samples: Option<&[JsonSample]>) -> Result<Timing, String> {
    let samples = samples.unwrap_or_default().iter().map(|sample| {
        Ok(Sample {
            at: seconds(sample.at_secs)?,
            memory_bytes: sample.memory_bytes,
            cpu_usec: sample.cpu_usec,
        })
    });
    let samples = samples.collect::<Result<_, String>>()?;
    let Some(phases) = phases else {
        return Ok(Timing {
            samples,
            ..Timing::default()
        });
    };
    Ok(Timing {
        root: seconds(phases.root_secs)?,
        setup: seconds(phases.setup_secs)?,
        test: seconds(phases.test_secs)?,
        teardown: seconds(phases.teardown_secs)?,
        samples,
    })
}

fn usage(json: &JsonUsage) -> Usage {
    Usage {
        memory_peak_bytes: json.memory_peak_bytes,
        cpu_user_usec: json.cpu_user_usec,
        cpu_system_usec: json.cpu_system_usec,
        pids_peak: json.pids_peak,
        oom_kills: json.oom_kills,
        pids_max_hits: json.pids_max_hits,
    }
}

fn limits(json: &JsonLimits) -> Limits {
    Limits {
        memory_bytes: json.memory_bytes,
        cpus: json.cpus,
        cpu_weight: json.cpu_weight,
        pids: json.pids,
    }
}

/// A service of a test, or of the run.
pub fn service(json: &JsonService) -> Result<ServiceResult, String> {
    let status = ServiceStatus::ALL
        .into_iter()
        .find(|s| s.label() == json.status)
        .ok_or_else(|| {
            format!(
                "service {}: `{}` is not a service status",
                json.name, json.status
            )
        })?;
    let usage = usage(&json.usage);
    let (stdout, stderr) = outputs(&json.output);
    Ok(ServiceResult {
        name: json.name.clone(),
        status,
        message: json.message.clone(),
        ready_after: json.ready_secs.map(seconds).transpose()?,
        ready_at: json
            .ready_at_unix_secs
            .map(|s| seconds(s).map(|since| UNIX_EPOCH + since))
            .transpose()?,
        duration: seconds(json.duration_secs)?,
        usage: (usage != Usage::default()).then_some(usage),
        limits: limits(&json.limits),
        rusage: json.rusage.as_ref().map(|r| Rusage {
            user_usec: r.user_usec,
            system_usec: r.system_usec,
            max_rss_bytes: r.max_rss_bytes,
        }),
        stdout,
        stderr,
    })
}

fn status(label: &str) -> Result<Status, String> {
    Status::ALL
        .into_iter()
        .find(|s| s.label() == label)
        .ok_or_else(|| format!("`{label}` is not a status"))
}

/// `SIGSEGV` or `signal 40`, as `signal_name` writes them.
pub fn signal_number(name: &str) -> Result<i32, String> {
    if let Some(number) = name.strip_prefix("signal ") {
        return number
            .parse()
            .map_err(|_| format!("`{name}` is not a signal"));
    }
    nix::sys::signal::Signal::from_str(name)
        .map(|s| s as i32)
        .map_err(|_| format!("`{name}` is not a signal"))
}

/// Seconds as the report wrote them (`Duration::as_secs_f64`), back to
/// the same nanoseconds: rounded to the nearest, since truncating would
/// turn 1.2618955729999999 into 1.261895572 and the figure would not
/// round-trip.
fn seconds(secs: f64) -> Result<Duration, String> {
    let invalid = || format!("{secs} is not a duration in seconds");
    let whole = Duration::try_from_secs_f64(secs).map_err(|_| invalid())?;
    let nanos = (secs.fract() * 1e9).round() as u32;
    Ok(match nanos {
        1_000_000_000 => Duration::from_secs(whole.as_secs() + 1),
        nanos => Duration::new(whole.as_secs(), nanos),
    })
}

/// Captured output from the report's text: where the writer dropped the
/// middle, its marker line splits head from tail again, and each U+FFFD
/// (which stood for invalid UTF-8) becomes one invalid byte, so the text
/// comes out as it went in, and the byte count too unless an invalid
/// sequence was longer than a byte.
fn outputs(output: &JsonOutput) -> (CapturedOutput, CapturedOutput) {
    (
        captured(&output.stdout, output.stdout_bytes),
        captured(&output.stderr, output.stderr_bytes),
    )
}

fn captured(text: &str, total_bytes: u64) -> CapturedOutput {
    static MARKER: OnceLock<regex::Regex> = OnceLock::new();
    let marker = MARKER.get_or_init(|| {
        regex::Regex::new(r"\[isotest: \d+ bytes of output dropped here\]\n")
            .expect("a valid pattern")
    });
    let Some(found) = marker.find(text) else {
        return CapturedOutput {
            head: raw_bytes(text),
            tail: Vec::new(),
            dropped_bytes: 0,
        };
    };
    let head = raw_bytes(&text[..found.start()]);
    let tail = raw_bytes(&text[found.end()..]);
    let kept = (head.len() + tail.len()) as u64;
    CapturedOutput {
        dropped_bytes: total_bytes.saturating_sub(kept).max(1),
        head,
        tail,
    }
}

/// `text` with each replacement character as the byte 0xFF, which is
/// invalid UTF-8 and shown as one replacement character again.
fn raw_bytes(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for piece in text.split('\u{fffd}') {
        bytes.extend_from_slice(piece.as_bytes());
        bytes.push(0xff);
    }
    bytes.pop();
    bytes
}

/// `2024-02-29T23:59:59.123Z`, as `rfc3339` writes it.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let error = || format!("`{text}` is not a time like 2024-02-29T23:59:59.123Z");
    let number = |range: std::ops::Range<usize>| -> Result<u64, String> {
        text.get(range)
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(error)
    };
    let shape_ok = text.len() == 24
        && text.is_char_boundary(24)
        && [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ]
        .iter()
        .all(|&(i, c)| text.as_bytes()[i] == c);
    if !shape_ok {
        return Err(error());
    }
    let days = days_from_civil(number(0..4)?, number(5..7)?, number(8..10)?);
    let seconds = days * 86_400 + number(11..13)? * 3600 + number(14..16)? * 60 + number(17..19)?;
    Ok(UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(number(20..23)?))
}

/// Days from 1970-01-01 to the Gregorian date (Howard Hinnant's
/// `days_from_civil`, the inverse of `civil_from_days`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).saturating_sub(719_468)
}

/// The report's own view of the run, read back to compare.
pub fn known_fields(run: &JsonRun) -> Value {
    serde_json::to_value(run).expect("reports serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_trip_to_the_nanosecond() {
        for nanos in [0, 1, 999_999_999, 1_261_895_573, 86_400_123_456_789] {
            let duration = Duration::from_nanos(nanos);
            assert_eq!(seconds(duration.as_secs_f64()), Ok(duration), "{nanos} ns");
        }
        assert!(seconds(-1.0).is_err());
    }
    use crate::report::json::JsonRun;
    use crate::report::junit::tests::{output, summary};
    use crate::report::rfc3339;
    use serde_json::json;

    #[test]
    fn results_come_back_as_they_went_in() {
        let mut summary = summary();
        summary.results[0].stdout = output(b"head\n");
        summary.results[0].stdout.dropped_bytes = 1000;
        summary.results[0].stdout.tail = b"tail\n".to_vec();
        summary.results[1].scheduled = Scheduled {
            iteration: Some(2),
            waited_for_memory: Some(Duration::from_millis(1500)),
        };
        let mut parent = Case::new("1 parser".into(), CaseStatus::Fail);
        parent.cases = vec![Case {
            message: Some("got: 1".into()),
            duration: Some(Duration::from_millis(12)),
            ..Case::new("2 brackets".into(), CaseStatus::Todo)
        }];
        summary.results[1].cases = vec![parent];
        summary.results[1].artifacts = Some("/out/t.sh".into());
        let report = JsonRun::from_summary(&summary);
        for (json, original) in report.tests.iter().zip(&summary.results) {
            let rebuilt = test_result(json).unwrap();
            assert_eq!(JsonTest::from(&rebuilt), *json, "{}", original.test.name);
            assert_eq!(rebuilt.status, original.status);
            assert_eq!(rebuilt.signal, original.signal);
            assert_eq!(rebuilt.cases, original.cases);
            assert_eq!(rebuilt.artifacts, original.artifacts);
            let shown = |c: &CapturedOutput| (c.to_string_lossy(), c.total_bytes());
            assert_eq!(shown(&rebuilt.stdout), shown(&original.stdout));
        }
    }

    #[test]
    fn times_parse_back() {
        for seconds in [0, 951_782_400, 1_709_251_199, 4_102_444_800] {
            let time = UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(5);
            assert_eq!(parse_rfc3339(&rfc3339(time)), Ok(time));
        }
        for bad in [
            "",
            "2024-02-29",
            "2024-02-29T23:59:59.123",
            "2024-0x-29T23:59:59.123Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_fields_it_does_not_know() {
        let report = JsonRun::from_summary(&summary());
        let mut original = known_fields(&report);
        assert!(unknown_fields(&original, &known_fields(&report)).is_empty());
        original["tests"][1]["coverage"] = json!([{"name": "a"}]);
        original["shard_host"] = json!("ci-7");
        assert_eq!(
            unknown_fields(&original, &known_fields(&report)),
            ["shard_host", "tests[1].coverage"]
        );
    }

    #[test]
    fn errors_name_the_test() {
        let mut report = JsonRun::from_summary(&summary());
        report.tests[2].status = "MAYBE".into();
        let error = test_result(&report.tests[2]).unwrap_err();
        assert_eq!(
            error,
            format!("test {}: `MAYBE` is not a status", report.tests[2].name)
        );
    }

    #[test]
    fn signals_and_statuses_by_name() {
        assert_eq!(signal_number("SIGSEGV"), Ok(11));
        assert_eq!(signal_number("signal 40"), Ok(40));
        assert!(signal_number("SIGNOPE").is_err());
        assert_eq!(status("OVER-LIMIT"), Ok(Status::OverLimit));
        assert!(status("MAYBE").is_err());
    }
}
