//! `--trace PATH`: the run as Chrome trace-event JSON, which Perfetto
//! (ui.perfetto.dev) and chrome://tracing open. One track per job slot, a
//! span per test attempt with its phases nested inside (root preparation,
//! container setup, the test, teardown), instant events for retries, OOM
//! kills and timeouts, and counter tracks for the memory and CPU sampled
//! from the test's cgroup, a pair per attempt and `--stress` run. Times
//! are microseconds since the run started.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::{write_atomically, ReportError, Reporter};
use crate::run::{Event, RunSummary, Status, Timing};
use crate::sandbox::Sample;

/// The trace's one process.
const PID: u64 = 1;

/// Writes the trace when the run finishes.
pub struct TraceReporter {
    path: PathBuf,
}

impl TraceReporter {
    pub fn new(path: PathBuf) -> Self {
        TraceReporter { path }
    }
}

impl Reporter for TraceReporter {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        let Event::RunFinished(summary) = event else {
            return Ok(());
        };
        let mut json = serde_json::to_vec(&trace(summary))?;
        json.push(b'\n');
        write_atomically(&self.path, &json)
    }
}

/// One attempt of a test, placed on its slot's track.
struct Span<'a> {
    name: &'a str,
    slot: usize,
    attempt: usize,
    status: Status,
    message: Option<&'a str>,
    /// When the attempt's root preparation began, µs since the run began.
    start: f64,
    timing: &'a Timing,
    /// Another attempt follows (this one was retried).
    retried: bool,
    /// What tells this attempt's counter tracks from those of the test's
    /// other attempts and `--stress` runs (which may run at the same
    /// time): empty for a test run once without retries.
    track_suffix: String,
}

/// The trace of a finished run.
pub fn trace(summary: &RunSummary) -> Value {
    let mut spans = Vec::new();
    for result in &summary.results {
        let Some(slot) = result.slot else { continue };
        let attempts = result.attempts.len() + 1;
        let earlier = result.attempts.iter().map(|a| {
            (
                a.status,
                a.message.as_deref(),
                a.started_at,
                &a.timing,
                true,
            )
        });
        let last = (
            result.status,
            result.message.as_deref(),
            result.started_at,
            &result.timing,
            false,
        );
        for (index, (status, message, started_at, timing, retried)) in
            earlier.chain([last]).enumerate()
        {
            spans.push(Span {
                name: &result.test.name,
                slot,
                attempt: index + 1,
                status,
                message,
                start: micros_between(summary.started_at, started_at) - micros(timing.root),
                timing,
                retried,
                track_suffix: track_suffix(result.scheduled.iteration, index + 1, attempts),
            });
        }
    }
    spans.sort_by(|a, b| (a.slot, a.start).partial_cmp(&(b.slot, b.start)).unwrap());
    let slots = spans.iter().map(|s| s.slot + 1).max().unwrap_or(0);
    let mut events = vec![json!({
        "name": "process_name", "ph": "M", "pid": PID, "args": { "name": "isotest run" }
    })];
    for slot in 0..slots {
        events.push(json!({
            "name": "thread_name", "ph": "M", "pid": PID, "tid": slot + 1,
            "args": { "name": format!("job slot {}", slot + 1) }
        }));
    }
    let mut track_end = vec![0.0f64; slots];
    for span in &mut spans {
        // Clocks differ by microseconds: an attempt never starts before
        // the previous one on its slot ended.
        span.start = span.start.max(track_end[span.slot]);
        track_end[span.slot] = span_events(span, &mut events);
        counter_events(span, &mut events);
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}

/// The attempt's span, its phases and instants; returns where it ended.
fn span_events(span: &Span, events: &mut Vec<Value>) -> f64 {
    let tid = span.slot + 1;
    let event = |name: &str, ph: &str, ts: f64, args: Value| json!({ "name": name, "cat": "test", "ph": ph, "pid": PID, "tid": tid, "ts": ts, "args": args });
    let args = json!({
        "attempt": span.attempt,
        "status": span.status.label(),
        "message": span.message,
    });
    events.push(event(span.name, "B", span.start, args));
    let timing = span.timing;
    let phases = [
        ("root preparation", timing.root),
        ("container setup", timing.setup),
        ("test", timing.test),
        ("teardown", timing.teardown),
    ];
    let ending = match span.status {
        Status::Timeout => Some("timeout"),
        Status::Oom => Some("OOM kill"),
        _ => None,
    };
    let mut at = span.start;
    for (name, length) in phases {
        if name == "root preparation" && length.is_zero() {
            continue;
        }
        events.push(event(name, "B", at, json!({})));
        at += micros(length);
        events.push(event(name, "E", at, json!({})));
        if let Some(ending) = ending.filter(|_| name == "test") {
            let mut marker = event(ending, "i", at, json!({ "message": span.message }));
            marker["s"] = json!("t");
            events.push(marker);
        }
    }
    if span.retried {
        let mut marker = event("retry", "i", at, json!({ "after": span.status.label() }));
        marker["s"] = json!("t");
        events.push(marker);
    }
    events.push(event(span.name, "E", at, json!({})));
    at
}

/// The test's memory (bytes) and CPU (CPUs busy between two readings)
/// counter tracks.
fn counter_events(span: &Span, events: &mut Vec<Value>) {
    let setup_start = span.start + micros(span.timing.root);
    let counter = |track: String, ts: f64, args: Value| json!({ "name": track, "cat": "usage", "ph": "C", "pid": PID, "ts": ts, "args": args });
    let mut previous: Option<&Sample> = None;
    for sample in &span.timing.samples {
        let ts = setup_start + micros(sample.at);
        if let Some(bytes) = sample.memory_bytes {
            let track = format!("memory {}{}", span.name, span.track_suffix);
            events.push(counter(track, ts, json!({ "bytes": bytes })));
        }
        if let Some(cpus) = previous.and_then(|p| cpus_busy(p, sample)) {
            let track = format!("cpu {}{}", span.name, span.track_suffix);
            events.push(counter(track, ts, json!({ "cpus": cpus })));
        }
        previous = Some(sample);
    }
}

/// ` (run 2, attempt 1)`: the `--stress` run and, for a retried test, the
/// attempt; empty when there is neither.
fn track_suffix(iteration: Option<u32>, attempt: usize, attempts: usize) -> String {
    let run = iteration.map(|i| format!("run {i}"));
    let attempt = (attempts > 1).then(|| format!("attempt {attempt}"));
    let parts: Vec<String> = run.into_iter().chain(attempt).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// CPU time used between two readings over the time between them.
pub fn cpus_busy(before: &Sample, after: &Sample) -> Option<f64> {
    let used = after.cpu_usec?.checked_sub(before.cpu_usec?)?;
    let elapsed = after.at.checked_sub(before.at)?.as_micros();
    (elapsed > 0).then(|| used as f64 / elapsed as f64)
}

fn micros(duration: Duration) -> f64 {
    duration.as_nanos() as f64 / 1000.0
}

fn micros_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(after) => micros(after),
        Err(before) => -micros(before.duration()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::tests::summary;
    use crate::run::Attempt;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn timing(root: u64, setup: u64, test: u64, teardown: u64) -> Timing {
        Timing {
            root: ms(root),
            setup: ms(setup),
            test: ms(test),
            teardown: ms(teardown),
            samples: Vec::new(),
        }
    }

    fn events_named<'a>(trace: &'a Value, name: &str) -> Vec<&'a Value> {
        trace["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == name)
            .collect()
    }

    #[test]
    fn nests_phases_in_attempts_on_slot_tracks() {
        let mut summary = summary();
        let run_start = summary.started_at;
        for result in &mut summary.results {
            result.slot = None;
        }
        let test = &mut summary.results[0];
        test.slot = Some(1);
        test.started_at = run_start + ms(100);
        test.timing = timing(20, 3, 50, 2);
        test.timing.samples = vec![
            Sample {
                at: ms(0),
                memory_bytes: Some(1024),
                cpu_usec: Some(0),
            },
            Sample {
                at: ms(40),
                memory_bytes: Some(4096),
                cpu_usec: Some(20_000),
            },
        ];
        test.status = Status::Flaky;
        test.attempts = vec![Attempt {
            status: Status::Timeout,
            message: Some("timed out after 0.010s".into()),
            started_at: run_start + ms(10),
            duration: ms(12),
            stdout: Default::default(),
            stderr: Default::default(),
            timing: timing(0, 1, 12, 1),
        }];
        let trace = trace(&summary);

        let spans = events_named(&trace, "net/echo.sh");
        let phases: Vec<(&str, f64)> = spans
            .iter()
            .map(|e| (e["ph"].as_str().unwrap(), e["ts"].as_f64().unwrap()))
            .collect();
        // The retried attempt, then the last one (with its root first).
        assert_eq!(
            phases,
            [
                ("B", 10_000.0),
                ("E", 24_000.0),
                ("B", 80_000.0),
                ("E", 155_000.0)
            ]
        );
        assert!(spans.iter().all(|e| e["tid"] == 2), "slot 1 is track 2");
        let tests = events_named(&trace, "test");
        assert_eq!(tests[2]["ts"], 103_000.0);
        assert_eq!(tests[3]["ts"], 153_000.0);
        assert_eq!(events_named(&trace, "root preparation").len(), 2);
        assert_eq!(events_named(&trace, "timeout")[0]["ts"], 23_000.0);
        assert_eq!(events_named(&trace, "retry")[0]["ts"], 24_000.0);
        let memory = events_named(&trace, "memory net/echo.sh (attempt 2)");
        assert_eq!(memory[1]["ts"], 140_000.0);
        assert_eq!(memory[1]["args"]["bytes"], 4096);
        assert_eq!(
            events_named(&trace, "cpu net/echo.sh (attempt 2)")[0]["args"]["cpus"],
            0.5
        );
        assert_eq!(events_named(&trace, "thread_name").len(), 2);
    }

    #[test]
    fn overlapping_stress_runs_have_counter_tracks_of_their_own() {
        let mut summary = summary();
        let run_start = summary.started_at;
        for result in &mut summary.results {
            result.slot = None;
        }
        let sample = |at: u64| Sample {
            at: ms(at),
            memory_bytes: Some(at * 1000),
            cpu_usec: Some(at * 100),
        };
        let mut runs = Vec::new();
        // Run 1 on slot 1 starts after run 2 on slot 0, and they overlap.
        for (iteration, slot, start) in [(1, 1, 30), (2, 0, 0)] {
            let mut result = summary.results[0].clone();
            result.scheduled.iteration = Some(iteration);
            result.slot = Some(slot);
            result.started_at = run_start + ms(start);
            result.attempts.clear();
            result.timing = timing(0, 0, 100, 0);
            result.timing.samples = (0..5).map(|i| sample(i * 20)).collect();
            runs.push(result);
        }
        summary.results = runs;
        let trace = trace(&summary);

        let mut tracks: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for event in trace["traceEvents"].as_array().unwrap() {
            if event["ph"] == "C" {
                let name = event["name"].as_str().unwrap().to_string();
                tracks
                    .entry(name)
                    .or_default()
                    .push(event["ts"].as_f64().unwrap());
            }
        }
        let names: Vec<&str> = tracks.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "cpu net/echo.sh (run 1)",
                "cpu net/echo.sh (run 2)",
                "memory net/echo.sh (run 1)",
                "memory net/echo.sh (run 2)"
            ]
        );
        for (name, times) in &tracks {
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{name}: {times:?}");
        }
        assert_eq!(track_suffix(None, 1, 1), "");
        assert_eq!(track_suffix(Some(3), 2, 2), " (run 3, attempt 2)");
    }

    #[test]
    fn cpu_is_time_used_over_time_passed() {
        let at = |ms: u64, cpu| Sample {
            at: Duration::from_millis(ms),
            memory_bytes: None,
            cpu_usec: cpu,
        };
        assert_eq!(
            cpus_busy(&at(0, Some(0)), &at(100, Some(150_000))),
            Some(1.5)
        );
        assert_eq!(cpus_busy(&at(0, None), &at(100, Some(1))), None);
        assert_eq!(cpus_busy(&at(100, Some(0)), &at(100, Some(1))), None);
    }
}
