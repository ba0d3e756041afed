//! The resource-regression check (`--baseline PREVIOUS.json
//! --max-regression 20%`): each test's peak memory and CPU time are
//! compared with those of an earlier run's JSON report, and a test that
//! otherwise passed but grew by more than the threshold is REGRESSED.
//!
//! Small figures are noise (page cache, libraries, process start-up), so a
//! baseline figure below its floor counts as the floor: a trivial test
//! cannot fail CI by growing from 1 to 3 MiB, but still does by growing to
//! 50 MiB.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::duration::format_seconds;
use crate::report::json::{self, JsonRun};
use crate::run::{Status, TestResult};
use crate::size::format_size;

/// Baseline peak memory below this counts as this much.
pub const MEMORY_FLOOR_BYTES: u64 = 4 << 20;
/// Baseline CPU time (user + system) below this counts as this much.
pub const CPU_FLOOR_USEC: u64 = 50_000;

/// A figure compared with the baseline.
struct Figure {
    name: &'static str,
    floor: u64,
    format: fn(u64) -> String,
}

const MEMORY_PEAK: Figure = Figure {
    name: "memory peak",
    floor: MEMORY_FLOOR_BYTES,
    format: format_size,
};

const CPU_TIME: Figure = Figure {
    name: "CPU time",
    floor: CPU_FLOOR_USEC,
    format: format_cpu_usec,
};

fn format_cpu_usec(usec: u64) -> String {
    format_seconds(Duration::from_micros(usec))
}

/// One test's compared figures; `None` where not measured.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    memory_peak_bytes: Option<u64>,
    cpu_usec: Option<u64>,
}

impl Figures {
    fn new(
        memory_peak_bytes: Option<u64>,
        user_usec: Option<u64>,
        system_usec: Option<u64>,
    ) -> Self {
        Figures {
            memory_peak_bytes,
            cpu_usec: user_usec
                .zip(system_usec)
                .map(|(user, system)| user + system),
        }
    }
}

/// An earlier run's figures, by test name.
#[derive(Clone, Debug)]
pub struct Baseline {
    tests: BTreeMap<String, Figures>,
    /// Allowed growth: 0.2 is 20%.
    max_regression: f64,
}

impl Baseline {
    /// Reads the JSON report at `path`.
    pub fn load(path: &Path, max_regression: f64) -> Result<Baseline, String> {
        let run = json::read(path).map_err(|err| format!("--baseline: {err}"))?;
        Ok(Baseline::from_run(&run, max_regression))
    }

    fn from_run(run: &JsonRun, max_regression: f64) -> Baseline {
        // Only a test that ran to its expected end there has figures worth
        // comparing: one that failed may have stopped early.
        let ran_to_end = [
            Status::Pass,
            Status::Flaky,
            Status::OverLimit,
            Status::Regressed,
        ]
        .map(Status::label);
        let tests = run
            .tests
            .iter()
            .map(|test| {
                let figures = if ran_to_end.contains(&test.status.as_str()) {
                    let usage = &test.usage;
                    Figures::new(
                        usage.memory_peak_bytes,
                        usage.cpu_user_usec,
                        usage.cpu_system_usec,
                    )
                } else {
                    Figures::default()
                };
                (test.name.clone(), figures)
            })
            .collect();
        Baseline {
            tests,
            max_regression,
        }
    }

    /// The baseline's peak memory of the test named `name`, when it
    /// measured one worth comparing.
    pub fn memory_peak(&self, name: &str) -> Option<u64> {
        self.tests.get(name)?.memory_peak_bytes
    }

    /// Makes a test that passed (or was flaky) REGRESSED when its peak
    /// memory or CPU time grew past the threshold; the message names each
    /// figure that did.
    pub fn check(&self, result: &mut TestResult) {
        if !matches!(result.status, Status::Pass | Status::Flaky) {
            return;
        }
        let (Some(old), Some(usage)) = (self.tests.get(&result.test.name), result.usage) else {
            return;
        };
        let new = Figures::new(
            usage.memory_peak_bytes,
            usage.cpu_user_usec,
            usage.cpu_system_usec,
        );
        let findings: Vec<String> = [
            (MEMORY_PEAK, old.memory_peak_bytes, new.memory_peak_bytes),
            (CPU_TIME, old.cpu_usec, new.cpu_usec),
        ]
        .into_iter()
        .filter_map(|(figure, old, new)| self.regression(&figure, old?, new?))
        .collect();
        if !findings.is_empty() {
            result.status = Status::Regressed;
            result.message = Some(findings.join("; "));
        }
    }

    /// `memory peak 12.0 MiB → 20.5 MiB (+71%, limit +20%)` when `new`
    /// grew past the threshold.
    fn regression(&self, figure: &Figure, old: u64, new: u64) -> Option<String> {
        let bound = old.max(figure.floor) as f64 * (1.0 + self.max_regression);
        if new as f64 <= bound {
            return None;
        }
        let change = match old {
            0 => String::new(),
            _ => format!("{:+.0}%, ", (new as f64 / old as f64 - 1.0) * 100.0),
        };
        Some(format!(
            "{} {} → {} ({change}limit +{}%)",
            figure.name,
            (figure.format)(old),
            (figure.format)(new),
            (self.max_regression * 1000.0).round() / 10.0
        ))
    }

    /// Tests of `names` that the baseline does not have, in that order.
    pub fn new_tests(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|name| !self.tests.contains_key(*name))
            .cloned()
            .collect()
    }

    /// Tests of the baseline that are not in `names`, sorted.
    pub fn vanished(&self, names: &[String]) -> Vec<String> {
        self.tests
            .keys()
            .filter(|name| !names.contains(name))
            .cloned()
            .collect()
    }
}

/// Parses `--max-regression`: a percentage (`20%`) or a fraction (`0.2`).
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let (number, percent) = match trimmed.strip_suffix('%') {
        Some(number) => (number.trim_end(), true),
        None => (trimmed, false),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid percentage `{text}` (expected e.g. 20% or 0.2)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{text}` is out of range (expected 0% or more)"));
    }
    if percent {
        Ok(value / 100.0)
    } else if value <= 1.0 {
        Ok(value)
    } else {
        // "20" is more likely 20% than 2000%.
        Err(format!(
            "`{text}` is ambiguous: write `{trimmed}%` for a percentage \
             (a bare number is a fraction: 0.2 is 20%)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::tests::result;
    use crate::report::{JsonReporter, Reporter};
    use crate::run::{Event, HostFacts, RunSummary};
    use crate::sandbox::Usage;

    const MIB: f64 = (1 << 20) as f64;

    /// A result with a peak of `memory_mib` and `cpu_ms` of CPU time, split
    /// between user and system.
    fn measured(name: &str, status: Status, memory_mib: f64, cpu_ms: u64) -> TestResult {
        let mut result = result(name, "tests", status, 1_700_000_000, 100);
        result.usage = Some(Usage {
            memory_peak_bytes: Some((memory_mib * MIB) as u64),
            cpu_user_usec: Some(cpu_ms * 600),
            cpu_system_usec: Some(cpu_ms * 400),
            ..Usage::default()
        });
        result
    }

    fn summary(results: Vec<TestResult>) -> RunSummary {
        RunSummary {
            started_at: results[0].started_at,
            duration: std::time::Duration::from_secs(1),
            results,
            host: HostFacts {
                cgroup_layout: "v2".into(),
                cgroups_in_use: true,
                rootless: false,
            },
            interrupted_by: None,
            services: Vec::new(),
        }
    }

    fn baseline(results: Vec<TestResult>) -> Baseline {
        Baseline::from_run(&JsonRun::from_summary(&summary(results)), 0.2)
    }

    /// Status and message of `result` after the check.
    fn checked(baseline: &Baseline, mut result: TestResult) -> (Status, Option<String>) {
        baseline.check(&mut result);
        (result.status, result.message)
    }

    #[test]
    fn flags_growth_past_the_threshold() {
        let baseline = baseline(vec![
            measured("mem", Status::Pass, 12.0, 100),
            measured("cpu", Status::Pass, 12.0, 100),
            measured("both", Status::Pass, 12.0, 100),
        ]);
        assert_eq!(
            checked(&baseline, measured("mem", Status::Pass, 20.5, 110)),
            (
                Status::Regressed,
                Some("memory peak 12.0 MiB → 20.5 MiB (+71%, limit +20%)".into())
            )
        );
        assert_eq!(
            checked(&baseline, measured("cpu", Status::Flaky, 12.0, 300)),
            (
                Status::Regressed,
                Some("CPU time 0.100s → 0.300s (+200%, limit +20%)".into())
            )
        );
        assert_eq!(
            checked(&baseline, measured("both", Status::Pass, 24.0, 130)).1,
            Some(
                "memory peak 12.0 MiB → 24.0 MiB (+100%, limit +20%); \
                 CPU time 0.100s → 0.130s (+30%, limit +20%)"
                    .into()
            )
        );
    }

    #[test]
    fn allows_growth_within_the_threshold() {
        let baseline = baseline(vec![measured("t", Status::Pass, 12.0, 100)]);
        assert_eq!(
            checked(&baseline, measured("t", Status::Pass, 14.0, 119)),
            (Status::Pass, None)
        );
        assert_eq!(
            checked(&baseline, measured("t", Status::Pass, 6.0, 10)),
            (Status::Pass, None),
            "shrinking is fine"
        );
    }

    #[test]
    fn small_baseline_figures_count_as_the_floor() {
        let baseline = baseline(vec![measured("tiny", Status::Pass, 1.0, 5)]);
        // Below floor × 1.2 (4.8 MiB, 60 ms): noise.
        assert_eq!(
            checked(&baseline, measured("tiny", Status::Pass, 4.5, 55)),
            (Status::Pass, None)
        );
        assert_eq!(
            checked(&baseline, measured("tiny", Status::Pass, 50.0, 5)),
            (
                Status::Regressed,
                Some("memory peak 1.0 MiB → 50.0 MiB (+4900%, limit +20%)".into())
            )
        );
        assert_eq!(
            checked(&baseline, measured("tiny", Status::Pass, 1.0, 80)).0,
            Status::Regressed
        );
    }

    #[test]
    fn compares_only_tests_that_ran_to_their_end_in_both_runs() {
        let mut unmeasured = measured("unmeasured", Status::Pass, 12.0, 100);
        unmeasured.usage = None;
        let baseline = baseline(vec![
            measured("failing", Status::Pass, 12.0, 100),
            measured("failed-before", Status::Fail, 1.0, 5),
            unmeasured,
            measured("over", Status::OverLimit, 12.0, 100),
        ]);
        let mut failing = measured("failing", Status::Fail, 100.0, 1000);
        failing.message = Some("exit 1".into());
        assert_eq!(
            checked(&baseline, failing),
            (Status::Fail, Some("exit 1".into())),
            "a failure stays a failure"
        );
        for name in ["failed-before", "unmeasured", "new"] {
            assert_eq!(
                checked(&baseline, measured(name, Status::Pass, 100.0, 1000)),
                (Status::Pass, None),
                "{name}"
            );
        }
        let mut unmeasured_now = measured("over", Status::Pass, 100.0, 1000);
        unmeasured_now.usage = None;
        assert_eq!(checked(&baseline, unmeasured_now).0, Status::Pass);
        assert_eq!(
            checked(&baseline, measured("over", Status::Pass, 100.0, 100)).0,
            Status::Regressed,
            "an OVER-LIMIT test ran to its end: its figures count"
        );
    }

    #[test]
    fn compares_the_figures_both_runs_measured() {
        let mut no_cpu = measured("t", Status::Pass, 12.0, 100);
        no_cpu.usage.as_mut().unwrap().cpu_system_usec = None;
        let baseline = baseline(vec![no_cpu]);
        assert_eq!(
            checked(&baseline, measured("t", Status::Pass, 12.0, 1000)),
            (Status::Pass, None)
        );
        assert_eq!(
            checked(&baseline, measured("t", Status::Pass, 20.0, 1000)).0,
            Status::Regressed
        );
    }

    #[test]
    fn lists_new_and_vanished_tests() {
        let baseline = baseline(vec![
            measured("b", Status::Pass, 1.0, 1),
            measured("a", Status::Skipped, 1.0, 1),
            measured("kept", Status::Fail, 1.0, 1),
        ]);
        let names = ["z-new", "kept", "c-new"].map(String::from);
        assert_eq!(baseline.new_tests(&names), ["z-new", "c-new"]);
        assert_eq!(baseline.vanished(&names), ["a", "b"]);
    }

    #[test]
    fn loads_a_report_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("previous.json");
        let run = summary(vec![measured("t", Status::Pass, 12.0, 100)]);
        JsonReporter::new(path.clone())
            .handle(&Event::RunFinished(run))
            .unwrap();
        let baseline = Baseline::load(&path, 0.5).unwrap();
        assert_eq!(
            checked(&baseline, measured("t", Status::Pass, 20.0, 100)),
            (
                Status::Regressed,
                Some("memory peak 12.0 MiB → 20.0 MiB (+67%, limit +50%)".into())
            )
        );

        let error = Baseline::load(&dir.path().join("missing.json"), 0.2).unwrap_err();
        assert!(error.starts_with("--baseline: read "), "{error}");
        assert!(error.contains("missing.json"), "{error}");
    }

    #[test]
    fn parses_percentages_and_fractions() {
        assert_eq!(parse_percent("20%"), Ok(0.2));
        assert_eq!(parse_percent(" 12.5 % "), Ok(0.125));
        assert_eq!(parse_percent("150%"), Ok(1.5));
        assert_eq!(parse_percent("0.2"), Ok(0.2));
        assert_eq!(parse_percent("0"), Ok(0.0));
        assert_eq!(parse_percent("1"), Ok(1.0));
        let error = parse_percent("20").unwrap_err();
        assert!(error.contains("write `20%`"), "{error}");
        for bad in ["", "%", "abc", "-5%", "inf", "NaN%", "20%%"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }
}
