//! The JSON reporter: the whole run as one document, written atomically
//! when the run finishes, and read back as the baseline of a later run.
//!
//! The types below are the schema (documented in docs/json-report.md),
//! kept apart from the runner's own types so that changing those never
//! changes the file silently. `SCHEMA_VERSION` goes up when a field is
//! removed or changes meaning; adding a field keeps it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{attempts_run, rfc3339, Destination, ReportError, Reporter};
use crate::discover::Program;
use crate::protocol::Case;
use crate::run::stress::{summarize, Spread, StressSummary};
use crate::run::{
    signal_name, Attempt, Event, RunSummary, ServiceResult, Status, TestResult, Timing,
};
use crate::sandbox::{CapturedOutput, Limits, Rusage, Usage};

pub const SCHEMA_VERSION: u64 = 1;

/// Writes the JSON report of the run to a file or stdout when the run finishes.
pub struct JsonReporter {
    destination: Destination,
    settings: serde_json::Value,
    samples: bool,
    run_id: Option<String>,
    partition: Option<JsonPartition>,
}

impl JsonReporter {
    pub fn new(destination: impl Into<Destination>) -> Self {
        JsonReporter {
            destination: destination.into(),
            settings: serde_json::Value::Null,
            samples: false,
            run_id: None,
            partition: None,
        }
    }

    /// Whether to write each test's sampled series (`samples`).
    pub fn with_samples(mut self, samples: bool) -> Self {
        self.samples = samples;
        self
    }

    /// The run's id and the part of the suite it ran, which `isotest
    /// report merge` checks.
    pub fn with_identity(mut self, run_id: String, partition: Option<JsonPartition>) -> Self {
        self.run_id = Some(run_id);
        self.partition = partition;
        self
    }

    /// The run's settings (command line and profile), written as `settings`.
    pub fn with_settings(mut self, settings: serde_json::Value) -> Self {
        self.settings = settings;
        self
    }
}

impl Reporter for JsonReporter {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        let Event::RunFinished(summary) = event else {
            return Ok(());
        };
        let mut run = JsonRun::from_summary(summary);
        run.settings = self.settings.clone();
        if !self.samples {
            run.drop_samples();
        }
        run.run_id.clone_from(&self.run_id);
        run.partition.clone_from(&self.partition);
        let mut json = serde_json::to_vec_pretty(&run)?;
        json.push(b'\n');
        self.destination.write(&json)
    }
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonRun {
    pub schema_version: u64,
    /// Shared by the shards of one run (`--run-id`); null in reports
    /// written before ids existed.
    #[serde(default)]
    pub run_id: Option<String>,
    /// The part of the suite this run ran (`--partition`), or null.
    #[serde(default)]
    pub partition: Option<JsonPartition>,
    pub host: JsonHost,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_secs: f64,
    /// The signal that cut the run short (`SIGINT`, `SIGTERM`), if one did.
    pub interrupted_by: Option<String>,
    /// The run's settings as given: jobs, profile, flags (null when the
    /// writer did not record them).
    #[serde(default)]
    pub settings: serde_json::Value,
    /// How many tests ended with each status, by label; every status is
    /// listed.
    pub counts: BTreeMap<String, usize>,
    /// Every test: the ignored (SKIPPED) ones, then the plan in order.
    pub tests: Vec<JsonTest>,
    /// The run's `scope = "run"` services, in starting order (absent from
    /// reports written before services existed).
    #[serde(default)]
    pub services: Vec<JsonService>,
    /// Under `--stress N`: per test, its runs summed up.
    #[serde(default)]
    pub stress: Vec<JsonStress>,
}

/// `--partition K/N` of a run, and how many tests the whole selection had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonPartition {
    /// As given: `time:2/4`.
    pub spec: String,
    /// K, 1-based.
    pub part: u64,
    /// N.
    pub parts: u64,
    /// Tests selected before the partition was taken (all N parts).
    pub selected: usize,
}

/// One test's runs under `--stress`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonStress {
    pub name: String,
    pub runs: usize,
    pub passed: usize,
    pub pass_rate: f64,
    /// `{"min": .., "median": .., "max": ..}`.
    pub duration_secs: JsonSpread<f64>,
    pub memory_peak_bytes: Option<JsonSpread<u64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonSpread<T> {
    pub min: T,
    pub median: T,
    pub max: T,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonHost {
    /// Kernel release, as `uname -r` prints it.
    pub kernel: Option<String>,
    /// `v1`, `v2`, `hybrid` or `none`.
    pub cgroup_layout: String,
    /// False when tests ran without cgroup limits and accounting.
    pub cgroups_in_use: bool,
    pub rootless: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonTest {
    pub name: String,
    pub suite: String,
    pub tags: Vec<String>,
    pub program: JsonProgram,
    /// The status label: `PASS`, `FLAKY`, `FAIL`, ...
    pub status: String,
    pub message: Option<String>,
    pub exit_code: Option<i32>,
    /// Signal name (`SIGSEGV`) when the command was killed by a signal.
    pub signal: Option<String>,
    /// Start of the last attempt, RFC 3339, UTC.
    pub started_at: String,
    pub duration_secs: f64,
    /// Attempts that ran: `earlier_attempts` plus the last one, which
    /// SKIPPED and NOT-RUN tests did not run.
    pub attempts: usize,
    /// Earlier attempts that did not pass, oldest first; the other fields
    /// describe the last attempt.
    pub earlier_attempts: Vec<JsonAttempt>,
    pub usage: JsonUsage,
    pub limits: JsonLimits,
    /// wait4 on the container's init; null when the test did not run.
    pub rusage: Option<JsonRusage>,
    pub leaked_processes: u32,
    /// The cases inside the test: its TAP test points, the testcases of
    /// the JUnit file it wrote.
    #[serde(default)]
    pub cases: Vec<JsonCase>,
    /// Where what it left in TEST_UNDECLARED_OUTPUTS_DIR was kept.
    #[serde(default)]
    pub artifacts: Option<String>,
    /// The job slot (0-based) the test ran in; null when it did not run.
    #[serde(default)]
    pub slot: Option<usize>,
    /// Where the last attempt's time went; null when it did not run.
    #[serde(default)]
    pub phases: Option<JsonPhases>,
    /// The last attempt's memory and CPU over time (`--samples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<Vec<JsonSample>>,
    /// Which run of the test this is under `--stress N` (1-based), else
    /// null.
    #[serde(default)]
    pub iteration: Option<u32>,
    /// Seconds the test was held back because the memory budget was
    /// taken, or null when it was not.
    #[serde(default)]
    pub waited_for_memory_secs: Option<f64>,
    #[serde(flatten)]
    pub output: JsonOutput,
    /// The services of the last attempt, in starting order (absent from
    /// reports written before services existed).
    #[serde(default)]
    pub services: Vec<JsonService>,
}

/// One `[[service]]` of a test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonService {
    pub name: String,
    /// `stopped`, `exited`, `oom-killed`, `not-ready`, `error`,
    /// `not-started` or `shared`.
    pub status: String,
    pub message: Option<String>,
    /// From its start to readiness; null when it never was ready.
    pub ready_secs: Option<f64>,
    /// When it was found ready, in seconds since the Unix epoch (to the
    /// microsecond, to compare with clocks inside the containers).
    #[serde(default)]
    pub ready_at_unix_secs: Option<f64>,
    pub duration_secs: f64,
    pub usage: JsonUsage,
    /// The limits its container ran under, as a test's (absent from
    /// reports written before services had them).
    #[serde(default)]
    pub limits: JsonLimits,
    pub rusage: Option<JsonRusage>,
    #[serde(flatten)]
    pub output: JsonOutput,
}

/// One case of a test; `cases` holds a TAP 14 subtest's test points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonCase {
    pub name: String,
    /// `pass`, `fail`, `error`, `skip`, `todo` or `fixed`.
    pub status: String,
    pub message: Option<String>,
    pub duration_secs: Option<f64>,
    #[serde(default)]
    pub cases: Vec<JsonCase>,
}

impl From<&Case> for JsonCase {
    fn from(case: &Case) -> Self {
        JsonCase {
            name: case.name.clone(),
            status: case.status.label().to_string(),
            message: case.message.clone(),
            duration_secs: case.duration.map(|d| d.as_secs_f64()),
            cases: case.cases.iter().map(JsonCase::from).collect(),
        }
    }
}

/// Where an attempt's time went: `root_secs` (preparing the root
/// filesystem, first attempt only) before `started_at`, then setup, the
/// command (`test_secs`) and teardown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonPhases {
    pub root_secs: f64,
    pub setup_secs: f64,
    pub test_secs: f64,
    pub teardown_secs: f64,
}

/// One reading of the test's cgroup, `at_secs` after `started_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonSample {
    pub at_secs: f64,
    pub memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
}

/// What a test runs: `{"file": PATH}` or `{"command": [ARGV...]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonProgram {
    File(String),
    Command(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonAttempt {
    pub status: String,
    pub message: Option<String>,
    pub started_at: String,
    pub duration_secs: f64,
    #[serde(default)]
    pub phases: Option<JsonPhases>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<Vec<JsonSample>>,
    #[serde(flatten)]
    pub output: JsonOutput,
}

/// Captured output, bounded as in the terminal: head and tail with a
/// marker line where the middle was dropped; the byte counts are totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonOutput {
    pub stdout: String,
    pub stdout_bytes: u64,
    pub stderr: String,
    pub stderr_bytes: u64,
}

/// cgroup accounting; a figure is null where it was not measured, never 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonUsage {
    pub memory_peak_bytes: Option<u64>,
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
    pub pids_peak: Option<u64>,
    pub oom_kills: Option<u64>,
    pub pids_max_hits: Option<u64>,
}

/// The limits in force; null is no limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonLimits {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    /// Absent in reports written before it existed.
    #[serde(default)]
    pub cpu_weight: Option<u64>,
    pub pids: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonRusage {
    pub user_usec: u64,
    pub system_usec: u64,
    pub max_rss_bytes: u64,
}

impl JsonRun {
    pub fn from_summary(summary: &RunSummary) -> JsonRun {
        let kernel = nix::sys::utsname::uname()
            .ok()
            .map(|uts| uts.release().to_string_lossy().into_owned());
        JsonRun {
            schema_version: SCHEMA_VERSION,
            run_id: None,
            partition: None,
            host: JsonHost {
                kernel,
                cgroup_layout: summary.host.cgroup_layout.clone(),
                cgroups_in_use: summary.host.cgroups_in_use,
                rootless: summary.host.rootless,
            },
            started_at: rfc3339(summary.started_at),
            duration_secs: summary.duration.as_secs_f64(),
            interrupted_by: summary.interrupted_by.map(signal_name),
            settings: serde_json::Value::Null,
            counts: Status::ALL
                .iter()
                .map(|&status| (status.label().to_string(), summary.count(status)))
                .collect(),
            tests: summary.results.iter().map(JsonTest::from).collect(),
            services: summary.services.iter().map(JsonService::from).collect(),
            stress: summarize(&summary.results)
                .into_iter()
                .map(JsonStress::from)
                .collect(),
        }
    }

    /// Leaves the sampled series out (they are written only when asked).
    pub fn drop_samples(&mut self) {
        for test in &mut self.tests {
            test.samples = None;
            for attempt in &mut test.earlier_attempts {
                attempt.samples = None;
            }
        }
    }
}

impl From<StressSummary> for JsonStress {
    fn from(stress: StressSummary) -> Self {
        fn spread<T, U>(s: Spread<T>, f: impl Fn(T) -> U) -> JsonSpread<U> {
            JsonSpread {
                min: f(s.min),
                median: f(s.median),
                max: f(s.max),
            }
        }
        JsonStress {
            pass_rate: stress.pass_rate(),
            name: stress.name,
            runs: stress.runs,
            passed: stress.passed,
            duration_secs: spread(stress.duration, |d: Duration| d.as_secs_f64()),
            memory_peak_bytes: stress.memory_peak_bytes.map(|p| spread(p, |b: u64| b)),
        }
    }
}

impl From<&Timing> for JsonPhases {
    fn from(timing: &Timing) -> Self {
        JsonPhases {
            root_secs: timing.root.as_secs_f64(),
            setup_secs: timing.setup.as_secs_f64(),
            test_secs: timing.test.as_secs_f64(),
            teardown_secs: timing.teardown.as_secs_f64(),
        }
    }
}

/// The series, or None when nothing was sampled.
fn json_samples(timing: &Timing) -> Option<Vec<JsonSample>> {
    let samples = timing.samples.iter().map(|sample| JsonSample {
        at_secs: sample.at.as_secs_f64(),
        memory_bytes: sample.memory_bytes,
        cpu_usec: sample.cpu_usec,
    });
    Some(samples.collect::<Vec<_>>()).filter(|s| !s.is_empty())
}

impl From<&TestResult> for JsonTest {
    fn from(result: &TestResult) -> Self {
        let program = match &result.test.program {
            Program::File(path) => JsonProgram::File(path.to_string_lossy().into_owned()),
            Program::Command(argv) => JsonProgram::Command(argv.clone()),
        };
        JsonTest {
            name: result.test.name.clone(),
            suite: result.test.suite.clone(),
            tags: result.test.tags.clone(),
            program,
            status: result.status.label().to_string(),
            message: result.message.clone(),
            exit_code: result.exit_code,
            signal: result.signal.map(signal_name),
            started_at: rfc3339(result.started_at),
            duration_secs: result.duration.as_secs_f64(),
            attempts: attempts_run(result),
            earlier_attempts: result.attempts.iter().map(JsonAttempt::from).collect(),
            usage: result.usage.unwrap_or_default().into(),
            limits: result.limits.into(),
            rusage: result.rusage.map(JsonRusage::from),
            leaked_processes: result.leaked_processes,
            cases: result.cases.iter().map(JsonCase::from).collect(),
            artifacts: result
                .artifacts
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            slot: result.slot,
            phases: result.slot.map(|_| JsonPhases::from(&result.timing)),
            samples: json_samples(&result.timing),
            iteration: result.scheduled.iteration,
            waited_for_memory_secs: result.scheduled.waited_for_memory.map(|w| w.as_secs_f64()),
            output: JsonOutput::new(&result.stdout, &result.stderr),
            services: result.services.iter().map(JsonService::from).collect(),
        }
    }
}

/// Seconds since the Unix epoch.
fn unix_secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl From<&ServiceResult> for JsonService {
    fn from(service: &ServiceResult) -> Self {
        JsonService {
            name: service.name.clone(),
            status: service.status.label().to_string(),
            message: service.message.clone(),
            ready_secs: service.ready_after.map(|d| d.as_secs_f64()),
            ready_at_unix_secs: service.ready_at.map(unix_secs),
            duration_secs: service.duration.as_secs_f64(),
            usage: service.usage.unwrap_or_default().into(),
            limits: service.limits.into(),
            rusage: service.rusage.map(JsonRusage::from),
            output: JsonOutput::new(&service.stdout, &service.stderr),
        }
    }
}

impl From<&Attempt> for JsonAttempt {
    fn from(attempt: &Attempt) -> Self {
        JsonAttempt {
            status: attempt.status.label().to_string(),
            message: attempt.message.clone(),
            started_at: rfc3339(attempt.started_at),
            duration_secs: attempt.duration.as_secs_f64(),
            phases: Some(JsonPhases::from(&attempt.timing)),
            samples: json_samples(&attempt.timing),
            output: JsonOutput::new(&attempt.stdout, &attempt.stderr),
        }
    }
}

impl JsonOutput {
    fn new(stdout: &CapturedOutput, stderr: &CapturedOutput) -> Self {
        JsonOutput {
            stdout: stdout.to_string_lossy(),
            stdout_bytes: stdout.total_bytes(),
            stderr: stderr.to_string_lossy(),
            stderr_bytes: stderr.total_bytes(),
        }
    }
}

impl From<Usage> for JsonUsage {
    fn from(usage: Usage) -> Self {
        JsonUsage {
            memory_peak_bytes: usage.memory_peak_bytes,
            cpu_user_usec: usage.cpu_user_usec,
            cpu_system_usec: usage.cpu_system_usec,
            pids_peak: usage.pids_peak,
            oom_kills: usage.oom_kills,
            pids_max_hits: usage.pids_max_hits,
        }
    }
}

impl From<Limits> for JsonLimits {
    fn from(limits: Limits) -> Self {
        JsonLimits {
            memory_bytes: limits.memory_bytes,
            cpus: limits.cpus,
            cpu_weight: limits.cpu_weight,
            pids: limits.pids,
        }
    }
}

impl From<Rusage> for JsonRusage {
    fn from(rusage: Rusage) -> Self {
        JsonRusage {
            user_usec: rusage.user_usec,
            system_usec: rusage.system_usec,
            max_rss_bytes: rusage.max_rss_bytes,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not an isotest JSON report: {reason}", .path.display())]
    NotAReport { path: PathBuf, reason: String },
    #[error(
        "{} has schema_version {found}, but this isotest reads version {SCHEMA_VERSION}; \
         write the report again with this isotest's --json",
        .path.display()
    )]
    Version { path: PathBuf, found: u64 },
}

/// Loads a report written by `JsonReporter`.
pub fn read(path: &Path) -> Result<JsonRun, ReadError> {
    read_with_value(path).map(|(run, _)| run)
}

/// Loads a report, and the document as it was in the file (with any
/// fields this isotest does not know).
pub fn read_with_value(path: &Path) -> Result<(JsonRun, serde_json::Value), ReadError> {
    let not_a_report = |reason: String| ReadError::NotAReport {
        path: path.to_owned(),
        reason,
    };
    let bytes = fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|err| not_a_report(err.to_string()))?;
    // The version is checked first, so that a report of another version
    // is named as such rather than by its first unexpected field.
    match value.get("schema_version").map(serde_json::Value::as_u64) {
        None => return Err(not_a_report("it has no schema_version".into())),
        Some(None) => return Err(not_a_report("its schema_version is not a number".into())),
        Some(Some(SCHEMA_VERSION)) => {}
        Some(Some(found)) => {
            return Err(ReadError::Version {
                path: path.to_owned(),
                found,
            })
        }
    }
    let run = serde_json::from_value(value.clone()).map_err(|err| not_a_report(err.to_string()))?;
    Ok((run, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::tests::{output, summary, NASTY};
    use crate::sandbox::Sample;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn write(summary: &RunSummary) -> (tempfile::TempDir, PathBuf) {
        write_with_samples(summary, false)
    }

    fn write_with_samples(summary: &RunSummary, samples: bool) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reports/run.json");
        JsonReporter::new(path.clone())
            .with_samples(samples)
            .handle(&Event::RunFinished(summary.clone()))
            .unwrap();
        (dir, path)
    }

    /// The first test ran in slot 1 and was sampled twice.
    fn timed_summary() -> RunSummary {
        let mut summary = summary();
        let ms = Duration::from_millis;
        summary.results[0].slot = Some(1);
        summary.results[0].timing = Timing {
            root: ms(250),
            setup: ms(2),
            test: ms(12),
            teardown: ms(1),
            samples: [(0, 0), (12, 3_145_728)]
                .map(|(at, memory)| Sample {
                    at: ms(at),
                    memory_bytes: Some(memory),
                    cpu_usec: Some(at * 100),
                })
                .to_vec(),
        };
        summary
    }

    #[test]
    fn writes_samples_only_when_asked() {
        let summary = timed_summary();
        let (_dir, path) = write_with_samples(&summary, true);
        let run: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            run["tests"][0]["samples"],
            json!([
                { "at_secs": 0.0, "memory_bytes": 0, "cpu_usec": 0 },
                { "at_secs": 0.012, "memory_bytes": 3_145_728, "cpu_usec": 1200 }
            ])
        );
        assert!(run["tests"][1].get("samples").is_none(), "nothing sampled");
        assert_eq!(read(&path).unwrap(), JsonRun::from_summary(&summary));
    }

    #[test]
    fn services_are_listed_under_their_test() {
        use crate::run::{ServiceResult, ServiceStatus};
        let mut summary = summary();
        summary.results[0].services = vec![ServiceResult {
            name: "db".into(),
            status: ServiceStatus::Exited,
            message: Some("exit 1 during the test".into()),
            ready_after: Some(std::time::Duration::from_millis(1500)),
            ready_at: Some(UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_250_001)),
            duration: std::time::Duration::from_secs(2),
            usage: None,
            limits: crate::sandbox::Limits {
                memory_bytes: Some(32 << 20),
                pids: Some(16),
                ..Default::default()
            },
            rusage: None,
            stdout: CapturedOutput::default(),
            stderr: crate::report::junit::tests::output(b"FATAL: crashed\n"),
        }];
        let (_dir, path) = write(&summary);
        let run: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let service = &run["tests"][0]["services"][0];
        assert_eq!(service["name"], "db");
        assert_eq!(service["status"], "exited");
        assert_eq!(service["message"], "exit 1 during the test");
        assert_eq!(service["ready_secs"], 1.5);
        assert_eq!(service["ready_at_unix_secs"], 1_700_000_000.250_001);
        assert_eq!(service["duration_secs"], 2.0);
        assert_eq!(service["usage"]["memory_peak_bytes"], Value::Null);
        assert_eq!(service["limits"]["memory_bytes"], 33_554_432);
        assert_eq!(service["limits"]["cpus"], Value::Null);
        assert_eq!(service["limits"]["pids"], 16);
        assert_eq!(service["stderr"], "FATAL: crashed\n");
        let back = read(&path).unwrap();
        assert_eq!(back.tests[0].services[0].status, "exited");
        assert_eq!(back.tests[0].services[0].limits.pids, Some(16));
    }

    /// The report of `timed_summary()`, with part of the first test's
    /// output dropped, as read back.
    fn written_run() -> Value {
        let mut summary = timed_summary();
        summary.results[0].stdout.dropped_bytes = 1000;
        let (_dir, path) = write(&summary);
        serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn writes_the_run_and_its_host() {
        let run = written_run();
        assert_eq!(run["schema_version"], 1);
        let kernel = run["host"]["kernel"].as_str().unwrap();
        assert!(kernel.chars().next().unwrap().is_ascii_digit(), "{kernel}");
        assert_eq!(run["host"]["cgroup_layout"], "hybrid");
        assert_eq!(run["host"]["cgroups_in_use"], true);
        assert_eq!(run["host"]["rootless"], false);
        assert_eq!(run["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(run["duration_secs"], 6.0);
        assert_eq!(run["interrupted_by"], "SIGINT");
        assert_eq!(
            run["counts"],
            json!({
                "PASS": 1, "FLAKY": 1, "FAIL": 1, "SIGNAL": 1, "OOM": 0, "TIMEOUT": 1,
                "OVER-LIMIT": 0, "REGRESSED": 1, "ERROR": 1, "SKIPPED": 1, "NOT-RUN": 1
            })
        );
        assert_eq!(run["tests"].as_array().unwrap().len(), 9);
    }

    #[test]
    fn writes_every_field_of_a_test() {
        let run = written_run();
        assert_eq!(
            run["tests"][0],
            json!({
                "name": "net/echo.sh",
                "suite": "net",
                "tags": [],
                "program": { "file": "/t/net/echo.sh" },
                "status": "PASS",
                "message": null,
                "exit_code": 0,
                "signal": null,
                "started_at": "2023-11-14T22:13:30.000Z",
                "duration_secs": 0.012,
                "attempts": 1,
                "earlier_attempts": [],
                "usage": {
                    "memory_peak_bytes": 3_145_728,
                    "cpu_user_usec": 1400,
                    "cpu_system_usec": 650,
                    "pids_peak": 3,
                    "oom_kills": 0,
                    "pids_max_hits": null
                },
                "limits": { "memory_bytes": 268_435_456, "cpus": 0.5, "cpu_weight": 300, "pids": 1024 },
                "rusage": { "user_usec": 1500, "system_usec": 700, "max_rss_bytes": 4_194_304 },
                "leaked_processes": 0,
                "cases": [],
                "artifacts": null,
                "slot": 1,
                "phases": {
                    "root_secs": 0.25,
                    "setup_secs": 0.002,
                    "test_secs": 0.012,
                    "teardown_secs": 0.001
                },
                "iteration": null,
                "waited_for_memory_secs": null,
                "stdout": "passing output is not kept\n\
                           [isotest: 1000 bytes of output dropped here]\n",
                "stdout_bytes": 1027,
                "stderr": "",
                "stderr_bytes": 0,
                "services": []
            })
        );
    }

    #[test]
    fn writes_attempts_and_leaves_unmeasured_figures_null() {
        let run = written_run();
        let failed = &run["tests"][1];
        assert_eq!(failed["status"], "FAIL");
        assert_eq!(failed["stdout"], String::from_utf8_lossy(NASTY).as_ref());
        assert_eq!(failed["attempts"], 3);
        assert_eq!(
            failed["earlier_attempts"][0],
            json!({
                "status": "TIMEOUT",
                "message": "timed out after 5.000s",
                "started_at": "2023-11-14T22:13:10.000Z",
                "duration_secs": 5.001,
                "phases": {
                    "root_secs": 0.0, "setup_secs": 0.0, "test_secs": 0.0, "teardown_secs": 0.0
                },
                "stdout": "first try\n",
                "stdout_bytes": 10,
                "stderr": "",
                "stderr_bytes": 0
            })
        );
        assert_eq!(failed["earlier_attempts"][1]["status"], "ERROR");
        assert!(
            failed["usage"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_null),
            "figures that were not measured are null, not 0: {}",
            failed["usage"]
        );
        assert_eq!(failed["rusage"], Value::Null);
        assert_eq!(failed["limits"]["memory_bytes"], Value::Null);

        let crashed = &run["tests"][2];
        assert_eq!(crashed["signal"], "SIGSEGV");
        assert_eq!(crashed["exit_code"], Value::Null);
        let skipped = &run["tests"][7];
        assert_eq!(
            (
                &skipped["status"],
                &skipped["message"],
                &skipped["attempts"]
            ),
            (&json!("SKIPPED"), &json!("needs a GPU"), &json!(0))
        );
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let mut summary = summary();
        summary.results[1].test.program =
            Program::Command(vec!["sh".into(), "-c".into(), "exit 1".into()]);
        summary.results[1].test.tags = vec!["db".into()];
        summary.results[3].stdout = output(b"\xff not UTF-8");
        let (_dir, path) = write(&summary);
        assert_eq!(read(&path).unwrap(), JsonRun::from_summary(&summary));
    }

    #[test]
    fn names_files_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let error_for = |name: &str, contents: Option<&str>| {
            let path = dir.path().join(name);
            if let Some(contents) = contents {
                fs::write(&path, contents).unwrap();
            }
            let message = read(&path).unwrap_err().to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            message
        };
        let missing = error_for("missing.json", None);
        assert!(missing.starts_with("read "), "{missing}");
        let xml = error_for("junit.xml", Some("<testsuites/>"));
        assert!(
            xml.contains("is not an isotest JSON report: expected value"),
            "{xml}"
        );
        let other = error_for("other.json", Some(r#"{"tests": []}"#));
        assert!(other.ends_with("it has no schema_version"), "{other}");
        let future = error_for("future.json", Some(r#"{"schema_version": 2}"#));
        assert!(
            future.contains("has schema_version 2, but this isotest reads version 1"),
            "{future}"
        );
        let partial = error_for("partial.json", Some(r#"{"schema_version": 1}"#));
        assert!(partial.ends_with("missing field `host`"), "{partial}");
    }
}
