//! `--stress N`: the runs of each test summed up — pass rate and the
//! spread of duration and peak memory over the runs.

use std::time::Duration;

use super::result::TestResult;

/// One test's runs under `--stress`.
#[derive(Clone, Debug, PartialEq)]
pub struct StressSummary {
    pub name: String,
    pub runs: usize,
    pub passed: usize,
    pub duration: Spread<Duration>,
    /// None when no run measured its peak.
    pub memory_peak_bytes: Option<Spread<u64>>,
}

/// Smallest, median and largest value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread<T> {
    pub min: T,
    pub median: T,
    pub max: T,
}

impl StressSummary {
    /// Passed runs as a fraction of all runs.
    pub fn pass_rate(&self) -> f64 {
        self.passed as f64 / self.runs as f64
    }
}

/// The summaries of the tests that ran several times (`iteration` set),
/// in the order of their first result.
pub fn summarize(results: &[TestResult]) -> Vec<StressSummary> {
    let mut groups: Vec<(&str, Vec<&TestResult>)> = Vec::new();
    for result in results.iter().filter(|r| r.scheduled.iteration.is_some()) {
        let name = result.test.name.as_str();
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, runs)) => runs.push(result),
            None => groups.push((name, vec![result])),
        }
    }
    groups
        .into_iter()
        .map(|(name, runs)| StressSummary {
            name: name.to_string(),
            runs: runs.len(),
            passed: runs.iter().filter(|r| r.status.is_success()).count(),
            duration: spread(runs.iter().map(|r| r.duration).collect()).expect("a group has a run"),
            memory_peak_bytes: spread(
                runs.iter()
                    .filter_map(|r| r.usage.and_then(|u| u.memory_peak_bytes))
                    .collect(),
            ),
        })
        .collect()
}

fn spread<T: Ord + Copy>(mut values: Vec<T>) -> Option<Spread<T>> {
    values.sort();
    Some(Spread {
        min: *values.first()?,
        median: values[(values.len() - 1) / 2],
        max: *values.last()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::tests::summary;
    use crate::run::Status;
    use crate::sandbox::Usage;

    #[test]
    fn sums_up_each_tests_runs() {
        let template = summary().results[0].clone();
        let mut results = Vec::new();
        for (i, (status, secs, peak)) in [
            (Status::Pass, 3, Some(10)),
            (Status::Fail, 1, Some(30)),
            (Status::Pass, 2, None),
            (Status::Pass, 5, Some(20)),
        ]
        .into_iter()
        .enumerate()
        {
            let mut result = template.clone();
            result.status = status;
            result.duration = Duration::from_secs(secs);
            result.usage = peak.map(|p| Usage {
                memory_peak_bytes: Some(p),
                ..Usage::default()
            });
            result.scheduled.iteration = Some(i as u32 + 1);
            results.push(result);
        }
        results.push(summary().results[1].clone()); // not a stress run
        let summaries = summarize(&results);
        assert_eq!(summaries.len(), 1);
        let only = &summaries[0];
        assert_eq!((only.runs, only.passed, only.pass_rate()), (4, 3, 0.75));
        let secs = |d: Duration| d.as_secs();
        let duration = &only.duration;
        assert_eq!(
            (
                secs(duration.min),
                secs(duration.median),
                secs(duration.max)
            ),
            (1, 2, 5)
        );
        assert_eq!(
            only.memory_peak_bytes,
            Some(Spread {
                min: 10,
                median: 20,
                max: 30
            })
        );
    }
}
