//! What the scheduler did, in the terminal's words: a test line's notes
//! (which `--stress` run, how long it waited for memory) and the
//! `--stress` table printed before the summary.

use std::time::Duration;

use crate::duration::format_seconds;
use crate::run::stress::{summarize, Spread};
use crate::run::{RunSummary, TestResult};
use crate::size::format_size;

/// Waits shorter than this are not worth a note on the line.
const NOTABLE_WAIT: Duration = Duration::from_millis(1);

/// `run 3`, `waited 1.204s for memory`.
pub fn scheduling_notes(result: &TestResult) -> Vec<String> {
    let scheduled = &result.scheduled;
    let run = scheduled.iteration.map(|i| format!("run {i}"));
    let wait = scheduled
        .waited_for_memory
        .filter(|wait| *wait >= NOTABLE_WAIT)
        .map(|wait| format!("waited {} for memory", format_seconds(wait)));
    run.into_iter().chain(wait).collect()
}

/// One line per test run several times, or nothing:
/// `  STRESS net/echo.sh: 4/5 passed (80%), duration 0.010s / 0.012s / 0.020s, peak 3.0 MiB / 3.1 MiB / 3.4 MiB (min / median / max)`
pub fn stress_table(summary: &RunSummary) -> String {
    summarize(&summary.results)
        .into_iter()
        .map(|test| {
            let duration = spread(test.duration, format_seconds);
            let peak = test
                .memory_peak_bytes
                .map_or("not measured".to_string(), |p| spread(p, format_size));
            format!(
                "  STRESS {}: {}/{} passed ({:.0}%), duration {duration}, peak {peak} (min / median / max)\n",
                test.name,
                test.passed,
                test.runs,
                test.pass_rate() * 100.0
            )
        })
        .collect()
}

fn spread<T: Copy>(spread: Spread<T>, format: impl Fn(T) -> String) -> String {
    format!(
        "{} / {} / {}",
        format(spread.min),
        format(spread.median),
        format(spread.max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::tests::summary;

    #[test]
    fn notes_and_table() {
        let mut summary = summary();
        summary.results.truncate(2);
        assert_eq!(scheduling_notes(&summary.results[0]), Vec::<String>::new());
        assert_eq!(stress_table(&summary), "");
        for (i, result) in summary.results.iter_mut().enumerate() {
            result.test.name = "t.sh".into();
            result.scheduled.iteration = Some(i as u32 + 1);
        }
        summary.results[1].scheduled.waited_for_memory = Some(Duration::from_millis(1500));
        assert_eq!(
            scheduling_notes(&summary.results[1]),
            ["run 2", "waited 1.500s for memory"]
        );
        let table = stress_table(&summary);
        assert!(
            table.starts_with("  STRESS t.sh: 1/2 passed (50%), duration "),
            "{table}"
        );
        assert!(table.ends_with("(min / median / max)\n"), "{table}");
    }
}
