//! Run history: per test, its last few durations, statuses and memory
//! peaks. It orders the next run (longest first, last failures first),
//! splits a suite by time (`--partition time:K/N`), selects
//! `--rerun-failed`, and sizes tests without a memory limit for the memory
//! budget. `store` keeps it in the cache, one file per suite; a `--json`
//! report of an earlier run can stand in for it (`--history FILE.json`).

mod store;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use store::{Store, StoreError};

use crate::report::json::JsonRun;
use crate::run::{Status, TestResult};

/// Samples kept per test; the oldest go first.
const SAMPLES_KEPT: usize = 10;
/// A test not seen in this many recorded runs is forgotten.
const RUNS_KEPT: u64 = 200;

/// What earlier runs saw of each test, by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Runs recorded so far; each test remembers the last one it was in.
    pub runs: u64,
    pub tests: BTreeMap<String, TestHistory>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TestHistory {
    /// The run (counted by `History::runs`) that last saw the test.
    pub last_run: u64,
    /// Oldest first, at most `SAMPLES_KEPT`.
    pub samples: Vec<Sample>,
}

/// One attempt's end as history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The status label (`PASS`, `FAIL`, `NOT-RUN`...).
    pub status: String,
    /// Wall time; None when the test did not run (NOT-RUN).
    pub duration_secs: Option<f64>,
    pub memory_peak_bytes: Option<u64>,
}

impl Sample {
    fn passed(&self) -> bool {
        matches!(self.status.as_str(), "PASS" | "FLAKY")
    }
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// The test's expected duration: the median of its recorded ones.
    pub fn duration(&self, name: &str) -> Option<Duration> {
        let mut secs: Vec<f64> = self
            .tests
            .get(name)?
            .samples
            .iter()
            .filter_map(|s| s.duration_secs)
            .collect();
        median(&mut secs).map(Duration::from_secs_f64)
    }

    /// The median expected duration over every test with one: what a new
    /// test is assumed to take.
    pub fn median_duration(&self) -> Option<Duration> {
        let mut secs: Vec<f64> = self
            .tests
            .keys()
            .filter_map(|name| self.duration(name))
            .map(|d| d.as_secs_f64())
            .collect();
        median(&mut secs).map(Duration::from_secs_f64)
    }

    /// Whether the test's last recorded end was not a pass (failed, or
    /// never started). Unknown tests did not fail.
    pub fn failed_last_time(&self, name: &str) -> bool {
        self.last_sample(name).is_some_and(|s| !s.passed())
    }

    /// The largest memory peak recorded for the test.
    pub fn memory_peak(&self, name: &str) -> Option<u64> {
        let samples = &self.tests.get(name)?.samples;
        samples.iter().filter_map(|s| s.memory_peak_bytes).max()
    }

    fn last_sample(&self, name: &str) -> Option<&Sample> {
        self.tests.get(name)?.samples.last()
    }

    /// Adds a run's results: one sample per test that ran or was not
    /// started (ignored tests are left out), then forgets tests not seen
    /// for `RUNS_KEPT` runs.
    pub fn record(&mut self, results: &[TestResult]) {
        self.runs += 1;
        let samples = results
            .iter()
            .filter(|r| r.status != Status::Skipped)
            .map(|result| {
                let ran = result.status != Status::NotRun;
                let sample = Sample {
                    status: result.status.label().to_string(),
                    duration_secs: ran.then_some(result.duration.as_secs_f64()),
                    memory_peak_bytes: result.usage.and_then(|u| u.memory_peak_bytes),
                };
                (result.test.name.as_str(), sample)
            })
            .collect();
        self.add_run(samples);
        let oldest_kept = self.runs.saturating_sub(RUNS_KEPT);
        self.tests.retain(|_, test| test.last_run > oldest_kept);
    }

    /// Adds one run's samples. A test run several times (`--stress`) gets
    /// its passing samples first, so that one failed run makes it a test
    /// that failed last time.
    fn add_run(&mut self, mut samples: Vec<(&str, Sample)>) {
        samples.sort_by_key(|(_, sample)| !sample.passed());
        for (name, sample) in samples {
            self.add(name, sample);
        }
    }

    fn add(&mut self, name: &str, sample: Sample) {
        let test = self.tests.entry(name.to_string()).or_default();
        test.last_run = self.runs;
        test.samples.push(sample);
        let excess = test.samples.len().saturating_sub(SAMPLES_KEPT);
        test.samples.drain(..excess);
    }

    /// The history an earlier run's `--json` report stands for: one sample
    /// per test (per stress iteration) it reported, ignored ones left out.
    pub fn from_report(report: &JsonRun) -> History {
        let mut history = History {
            runs: 1,
            ..History::default()
        };
        let samples = report
            .tests
            .iter()
            .filter(|t| t.status != "SKIPPED")
            .map(|test| {
                let sample = Sample {
                    status: test.status.clone(),
                    duration_secs: (test.status != "NOT-RUN").then_some(test.duration_secs),
                    memory_peak_bytes: test.usage.memory_peak_bytes,
                };
                (test.name.as_str(), sample)
            })
            .collect();
        history.add_run(samples);
        history
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::junit::tests::summary;
    use crate::sandbox::Usage;

    /// A history in which each `(name, status, seconds)` ran once.
    pub(crate) fn history(tests: &[(&str, &str, f64)]) -> History {
        let mut history = History::default();
        for &(name, status, secs) in tests {
            let sample = Sample {
                status: status.to_string(),
                duration_secs: Some(secs),
                memory_peak_bytes: None,
            };
            history.add(name, sample);
        }
        history
    }

    #[test]
    fn records_runs_and_answers_from_them() {
        let mut run = summary().results;
        run[0].duration = Duration::from_secs(3);
        run[0].usage = Some(Usage {
            memory_peak_bytes: Some(5 << 20),
            ..Usage::default()
        });
        let mut history = History::default();
        history.record(&run);
        run[0].duration = Duration::from_secs(1);
        run[0].usage = None;
        history.record(&run);
        run[0].duration = Duration::from_secs(2);
        history.record(&run);

        let passing = &run[0].test.name;
        assert_eq!(history.runs, 3);
        assert_eq!(history.duration(passing), Some(Duration::from_secs(2)));
        assert_eq!(history.memory_peak(passing), Some(5 << 20));
        assert!(!history.failed_last_time(passing));
        let failing = &run[1].test.name;
        assert!(history.failed_last_time(failing));
        let skipped = run.iter().find(|r| r.status == Status::Skipped).unwrap();
        assert!(!history.tests.contains_key(&skipped.test.name));
        let not_run = run.iter().find(|r| r.status == Status::NotRun).unwrap();
        assert!(history.failed_last_time(&not_run.test.name));
        assert_eq!(history.duration(&not_run.test.name), None);
        assert!(!history.failed_last_time("never/seen.sh"));
    }

    #[test]
    fn one_failed_stress_run_is_a_failure() {
        let mut run = vec![summary().results[0].clone(); 3];
        run[1].status = Status::Fail;
        for (i, result) in run.iter_mut().enumerate() {
            result.scheduled.iteration = Some(i as u32 + 1);
        }
        let mut history = History::default();
        history.record(&run);
        let name = &run[0].test.name;
        assert!(history.failed_last_time(name));
        assert_eq!(history.tests[name].samples.len(), 3);
        let report = JsonRun::from_summary(&crate::run::RunSummary {
            results: run.clone(),
            ..summary()
        });
        assert!(History::from_report(&report).failed_last_time(name));
    }

    #[test]
    fn stays_bounded() {
        let mut history = History::default();
        for i in 0..25 {
            history.add("a.sh", sample("PASS", i as f64));
        }
        assert_eq!(history.tests["a.sh"].samples.len(), SAMPLES_KEPT);
        assert_eq!(history.tests["a.sh"].samples[0].duration_secs, Some(15.0));

        let mut run = summary().results;
        run.truncate(1);
        history.record(&run);
        let gone = run[0].test.name.clone();
        run[0].test.name = "other.sh".into();
        for _ in 0..RUNS_KEPT {
            history.record(&run);
        }
        assert!(
            !history.tests.contains_key(&gone),
            "forgotten after RUNS_KEPT runs"
        );
        assert!(history.tests.contains_key("other.sh"));
    }

    fn sample(status: &str, secs: f64) -> Sample {
        Sample {
            status: status.into(),
            duration_secs: Some(secs),
            memory_peak_bytes: None,
        }
    }

    #[test]
    fn medians() {
        let history = history(&[("a", "PASS", 1.0), ("b", "PASS", 4.0), ("c", "FAIL", 10.0)]);
        assert_eq!(history.median_duration(), Some(Duration::from_secs(4)));
        assert_eq!(median(&mut [3.0, 1.0]), Some(2.0));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn reads_a_report() {
        let summary = summary();
        let report = JsonRun::from_summary(&summary);
        let history = History::from_report(&report);
        for result in &summary.results {
            let name = &result.test.name;
            match result.status {
                Status::Skipped => assert!(!history.tests.contains_key(name)),
                Status::NotRun => assert_eq!(history.duration(name), None),
                _ => assert_eq!(history.duration(name), Some(result.duration), "{name}"),
            }
            if result.status != Status::Skipped {
                assert_eq!(
                    history.failed_last_time(name),
                    !result.status.is_success(),
                    "{name}"
                );
            }
        }
    }
}
