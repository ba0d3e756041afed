//! The HTML report (`--html`, `isotest report html`): one self-contained
//! page from a run's JSON report: the summary, a table of every test,
//! the output of those that did not pass, a timeline of the job slots and
//! a chart of peak memory. The page is complete without JavaScript (the
//! summary, table, charts and output are plain HTML and SVG); the embedded
//! script (`report.js`) adds sorting, filtering, memory over time for a
//! selected test and a self-check (`#selftest`). Nothing is fetched: the
//! content security policy forbids it.
//!
//! - `escape`: untrusted text and ANSI output into HTML;
//! - `table`: the tests table and the failures' output;
//! - `charts`: the job-slot timeline and the memory chart (SVG, bars).

mod charts;
mod escape;
mod table;

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::json::{JsonRun, JsonTest};
use super::rebuild::parse_rfc3339;
use super::{write_atomically, ReportError, Reporter};
use crate::baseline::Baseline;
use crate::duration::format_seconds;
use crate::run::{Event, Status};

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");
/// Run first, in the head: collects what the self-check (`#selftest`)
/// reports as errors: uncaught errors, `console.error` calls (still passed
/// on to the console) and content security policy violations.
const ERRORS: &str = "window.isotestErrors=[];(function(){var errors=window.isotestErrors,\
logError=console.error;\
window.addEventListener('error',function(e){errors.push(String(e.message))});\
console.error=function(){errors.push('console.error: '+Array.prototype.map.call(arguments,String)\
.join(' '));return logError.apply(console,arguments)};\
document.addEventListener('securitypolicyviolation',function(e){errors.push(\
'content security policy: '+e.violatedDirective+' blocked '+(e.blockedURI||'inline'))})}());";

/// Writes the HTML report when the run finishes.
pub struct HtmlReporter {
    path: PathBuf,
    settings: serde_json::Value,
    baseline: Option<Baseline>,
}

impl HtmlReporter {
    pub fn new(path: PathBuf) -> Self {
        HtmlReporter {
            path,
            settings: serde_json::Value::Null,
            baseline: None,
        }
    }

    /// The run's settings, shown in the summary.
    pub fn with_settings(mut self, settings: serde_json::Value) -> Self {
        self.settings = settings;
        self
    }

    /// The baseline the memory chart compares against.
    pub fn with_baseline(mut self, baseline: Option<Baseline>) -> Self {
        self.baseline = baseline;
        self
    }
}

impl Reporter for HtmlReporter {
    fn handle(&mut self, event: &Event) -> Result<(), ReportError> {
        let Event::RunFinished(summary) = event else {
            return Ok(());
        };
        let mut run = JsonRun::from_summary(summary);
        run.settings = self.settings.clone();
        write_atomically(&self.path, render(&run, self.baseline.as_ref()).as_bytes())
    }
}

/// The page for `run`; `baseline` adds the change in peak memory.
pub fn render(run: &JsonRun, baseline: Option<&Baseline>) -> String {
    let failed: usize = run
        .counts
        .iter()
        .filter(|(status, _)| !matches!(status.as_str(), "PASS" | "FLAKY" | "SKIPPED"))
        .map(|(_, count)| count)
        .sum();
    let title = format!(
        "isotest: {} tests, {failed} not passed ({})",
        run.tests.len(),
        run.started_at
    );
    let mut page = String::with_capacity(4096 + run.tests.len() * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style>\
         <script>{ERRORS}</script></head><body>\n",
        escape::text(&title)
    );
    summary(&mut page, run, failed);
    let timeline = charts::timeline(run);
    let _ = writeln!(
        page,
        "<section id=\"timeline\"><h2>Job slots</h2>{timeline}</section>"
    );
    let memory = charts::memory(run, baseline);
    let _ = writeln!(
        page,
        "<section id=\"memory\"><h2>Peak memory</h2>{memory}</section>"
    );
    table::tests(&mut page, run);
    table::failures(&mut page, run);
    table::artifacts(&mut page, run);
    let _ = writeln!(
        page,
        "<pre id=\"selftest\" hidden></pre>\
         <script type=\"application/json\" id=\"samples\">{}</script>\
         <script>{SCRIPT}</script></body></html>",
        escape::script_json(&table::samples(run))
    );
    page
}

/// The heading, counts by status, host facts and settings.
fn summary(page: &mut String, run: &JsonRun, failed: usize) {
    let verdict = if failed == 0 { "passed" } else { "failed" };
    let interrupted = run
        .interrupted_by
        .as_deref()
        .map(|signal| format!(" (interrupted by {})", escape::text(signal)))
        .unwrap_or_default();
    let _ = write!(
        page,
        "<header class=\"{verdict}\"><h1>isotest run {verdict}{interrupted}</h1>\
         <p>{} tests in {}, started {}</p></header>\n<section id=\"summary\"><ul class=\"counts\">",
        run.tests.len(),
        format_seconds(Duration::from_secs_f64(run.duration_secs.max(0.0))),
        escape::text(&run.started_at)
    );
    for (status, count) in statuses(run) {
        let status = escape::text(status);
        let _ = write!(
            page,
            "<li class=\"st s-{status}\" data-status=\"{status}\" data-count=\"{count}\">\
             {status} <b>{count}</b></li>"
        );
    }
    let host = &run.host;
    let facts = [
        (
            "kernel",
            host.kernel.clone().unwrap_or_else(|| "unknown".into()),
        ),
        ("cgroups", host.cgroup_layout.clone()),
        ("limits and usage", on_off(host.cgroups_in_use).into()),
        ("rootless", on_off(host.rootless).into()),
    ];
    page.push_str("</ul><dl class=\"facts\">");
    let facts = facts
        .into_iter()
        .map(|(key, value)| (key.to_string(), value));
    for (key, value) in facts.chain(settings(&run.settings)) {
        let _ = write!(
            page,
            "<dt>{}</dt><dd>{}</dd>",
            escape::text(&key),
            escape::text(&value)
        );
    }
    page.push_str("</dl></section>\n");
}

/// The run's counts by status, in the order summaries list them (then
/// any status this isotest does not know, from a newer report).
fn statuses(run: &JsonRun) -> Vec<(&str, usize)> {
    let known = Status::ALL.map(Status::label);
    let mut counts: Vec<(&str, usize)> = known
        .iter()
        .map(|&label| (label, run.counts.get(label).copied().unwrap_or(0)))
        .collect();
    let unknown = run
        .counts
        .iter()
        .filter(|(s, _)| !known.contains(&s.as_str()));
    counts.extend(unknown.map(|(status, &count)| (status.as_str(), count)));
    counts
}

fn on_off(on: bool) -> &'static str {
    if on {
        "yes"
    } else {
        "no"
    }
}

/// The run's settings as key and value: scalars as they are, the flags
/// (`[{key, value}]`) one by one; nulls left out.
fn settings(settings: &serde_json::Value) -> Vec<(String, String)> {
    let Some(object) = settings.as_object() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (key, value) in object {
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(text) => rows.push((key.clone(), text.clone())),
            serde_json::Value::Array(items) if key == "flags" => {
                rows.extend(items.iter().map(|flag| {
                    let value = match &flag["value"] {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (
                        format!("flag {}", flag["key"].as_str().unwrap_or("?")),
                        value,
                    )
                }));
            }
            other => rows.push((key.clone(), other.to_string())),
        }
    }
    rows
}

/// When each attempt of `test` began (its root preparation first) and
/// how long it took, in seconds since the run began, oldest first.
fn attempt_spans(run_start: Option<std::time::SystemTime>, test: &JsonTest) -> Vec<(f64, f64)> {
    let Some(run_start) = run_start else {
        return Vec::new();
    };
    let since_start = |started_at: &str| {
        let at = parse_rfc3339(started_at).ok()?;
        Some(match at.duration_since(run_start) {
            Ok(after) => after.as_secs_f64(),
            Err(before) => -before.duration().as_secs_f64(),
        })
    };
    let earlier = test
        .earlier_attempts
        .iter()
        .map(|a| (&a.started_at, a.duration_secs, &a.phases));
    let last = (&test.started_at, test.duration_secs, &test.phases);
    let ran = test.slot.is_some() || test.phases.is_some();
    earlier
        .chain(ran.then_some(last))
        .filter_map(|(started_at, duration, phases)| {
            let start = since_start(started_at)?;
            Some(match phases {
                Some(p) => (
                    start - p.root_secs,
                    p.root_secs + p.setup_secs + p.test_secs + p.teardown_secs,
                ),
                None => (start, duration),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
