//! The HTML report (`--html`, `isotest report html`) and the trace
//! (`--trace`) of one run of a suite made to be hard to show: names with
//! markup and quotes, output with `</script>`, ANSI colours, NUL and
//! invalid UTF-8, a retried test, a timeout and a test holding 48 MiB.
//!
//! The page is opened in headless Chromium (Debian's `chromium`; the
//! trials that need it are skipped, saying so, without it): its own
//! self-check (`#selftest`) applies every status filter, a name filter and
//! two sorts, draws memory over time and reports script errors and any
//! injected element into the DOM, which `--dump-dom` shows; the rows of
//! that DOM are compared with the JSON report, and a screenshot is left in
//! the target directory (`html-report/page.png`) for a person to look at.
//! The trace is checked against the trace-event format's rules and the
//! JSON report's timings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

use crate::support;

/// The suite: file name and script.
const SUITE: [(&str, &str); 7] = [
    ("pass.sh", "#!/bin/sh\necho fine\n"),
    (
        "colour_failure.sh",
        "#!/bin/sh\nprintf '\\033[1;31mFAILED\\033[0m </pre></details><b>x</b> \
         </script><script>window.isotestInjected=2</script> nul:\\0: bad:\\377\\376:\\n' >&2\nexit 3\n",
    ),
    ("<img src=x onerror=window.isotestInjected=1>.sh", "#!/bin/sh\nexit 0\n"),
    ("quote'\"&amp;.sh", "#!/bin/sh\nexit 1\n"),
    ("flaky.sh", "#!/bin/sh\n[ \"$ISOTEST_ATTEMPT\" = 2 ]\n"),
    (
        "holds_memory.sh",
        "#!/bin/sh\nexec perl -e '$x = \"a\" x (48 << 20); select(undef, undef, undef, 1.0)'\n",
    ),
    ("times_out.sh", "#!/bin/sh\nexec sleep 30\n"),
];

const CONFIG: &str = r#"
[[override]]
filter = "flaky.sh"
retries = 1

[[override]]
filter = "times_out.sh"
timeout = "1s"
grace = "200ms"

[[test]]
name = "</script><script>window.isotestInjected=3</script>"
command = "exit 0"
"#;

pub fn trials() -> Vec<Trial> {
    let no_chromium = chromium().is_none();
    if no_chromium {
        eprintln!(
            "note: chromium is not installed: the html:: trials that open the page are skipped \
             (apt-get install chromium; ci/test does)"
        );
    }
    type Check = fn() -> Result<(), Failed>;
    let trials: [(&str, Check, bool); 5] = [
        ("page_in_chromium", page_in_chromium, no_chromium),
        (
            "selftest_reports_console_and_policy_errors",
            selftest_reports_console_and_policy_errors,
            no_chromium,
        ),
        (
            "page_without_javascript",
            page_without_javascript,
            no_chromium,
        ),
        ("report_html_from_json", report_html_from_json, false),
        ("trace_matches_json", trace_matches_json, false),
    ];
    trials
        .into_iter()
        .map(|(name, check, skip)| {
            Trial::test(format!("html::{name}"), check).with_ignored_flag(skip)
        })
        .collect()
}

/// The run's files, made once for every trial here.
struct Run {
    dir: PathBuf,
    report: Value,
}

impl Run {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Runs the suite once (`-j2`, every report), in
/// `$CARGO_TARGET_TMPDIR/html-report`, replaced each time.
fn run() -> Result<&'static Run, String> {
    static RUN: OnceLock<Result<Run, String>> = OnceLock::new();
    RUN.get_or_init(|| {
        support::require_root()?;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report");
        let _ = std::fs::remove_dir_all(&dir);
        let suite = dir.join("suite");
        for (name, script) in SUITE {
            support::write_file(&suite.join(name), script, 0o755)?;
        }
        support::write_file(&suite.join("isotest.toml"), CONFIG, 0o644)?;
        let mut command = support::isotest();
        command
            .arg("run")
            .arg(&suite)
            .args(["-j2", "--samples", "--sample-interval", "50ms"]);
        for (flag, file) in [
            ("--html", "page.html"),
            ("--json", "run.json"),
            ("--trace", "trace.json"),
        ] {
            command.arg(flag).arg(dir.join(file));
        }
        let finished = support::run(command)?;
        if finished.code != 100 {
            return Err(format!(
                "expected exit 100 (some tests fail)\nisotest {}",
                finished.describe()
            ));
        }
        let report = crate::json::read(&dir.join("run.json"))?;
        Ok(Run { dir, report })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Headless Chromium on `url` with `args`; a fresh profile each time, and
/// nothing that reaches the network on its own.
fn headless(args: &[&str], url: &str) -> Result<String, String> {
    let profile = tempfile::tempdir().map_err(|e| format!("profile directory: {e}"))?;
    let mut command = Command::new(chromium().ok_or("chromium is not installed")?);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url);
    let finished = support::run(command)?;
    if finished.code != 0 {
        return Err(format!("chromium {args:?} {url}: {}", finished.describe()));
    }
    Ok(finished.stdout)
}

fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                url.push(*byte as char)
            }
            other => url.push_str(&format!("%{other:02X}")),
        }
    }
    url
}

fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// (name, status) of every row of the tests table in a DOM dump, by row
/// index.
fn rows(dom: &str) -> BTreeMap<usize, (String, String)> {
    let row = regex::Regex::new(
        r#"<tr id="r(\d+)"[^>]*data-s="([^"]+)"[^>]*>.*?<td class="name">(.*?)</td>"#,
    )
    .unwrap();
    let tag = regex::Regex::new("<[^>]+>").unwrap();
    row.captures_iter(dom)
        .map(|c| {
            let name = unescape(&tag.replace_all(&c[3], ""));
            (c[1].parse().unwrap(), (name, c[2].to_string()))
        })
        .collect()
}

/// Every test of the JSON report has its row, with its name as text and
/// its status.
fn check_rows(dom: &str, report: &Value, problems: &mut Vec<String>) {
    let rows = rows(dom);
    let tests = report["tests"].as_array().cloned().unwrap_or_default();
    if rows.len() != tests.len() {
        problems.push(format!("{} rows for {} tests", rows.len(), tests.len()));
    }
    for (index, test) in tests.iter().enumerate() {
        let expected = (
            test["name"].as_str().unwrap_or("").to_string(),
            test["status"].as_str().unwrap_or("").to_string(),
        );
        if rows.get(&index) != Some(&expected) {
            problems.push(format!(
                "row {index} is {:?}, expected {expected:?}",
                rows.get(&index)
            ));
        }
    }
}

/// The page's self-check passes in Chromium; the DOM holds every test and
/// status, hostile names as text; a screenshot is written.
fn page_in_chromium() -> Result<(), Failed> {
    let run = run()?;
    let page = run.path("page.html");
    let dom = headless(&["--dump-dom"], &format!("{}#selftest", file_url(&page)))?;
    let mut problems = Vec::new();
    let selftest = regex::Regex::new(r#"<pre id="selftest">(.*?)</pre>"#).unwrap();
    match selftest.captures(&dom) {
        None => problems.push("no self-check result in the DOM (did the script run?)".into()),
        Some(found) => {
            let result: Value = serde_json::from_str(&unescape(&found[1]))
                .map_err(|e| format!("self-check result: {e}: {}", &found[1]))?;
            if result["ok"] != true {
                problems.push(format!("the self-check failed: {result:#}"));
            }
            let tests = run.report["tests"].as_array().map_or(0, Vec::len);
            if result["rows"] != tests {
                problems.push(format!(
                    "self-check saw {} rows, the report has {tests}",
                    result["rows"]
                ));
            }
        }
    }
    check_rows(&dom, &run.report, &mut problems);
    for marker in ["<img", "isotestInjected=1>", "<b>x</b>"] {
        if dom.contains(marker) {
            problems.push(format!("the DOM holds markup from a test: {marker}"));
        }
    }
    if !dom.contains("&lt;/script&gt;&lt;script&gt;window.isotestInjected=2&lt;/script&gt;") {
        problems.push("colour_failure.sh's output is not shown as text".into());
    }
    if !dom.contains(r#"<span class="ab f1">FAILED</span>"#) {
        problems.push("ANSI colours are not rendered as spans".into());
    }
    let screenshot = run.path("page.png");
    headless(
        &[
            "--window-size=1280,2400",
            &format!("--screenshot={}", screenshot.display()),
        ],
        &file_url(&page),
    )?;
    let png = std::fs::read(&screenshot).map_err(|e| format!("no screenshot: {e}"))?;
    if !png.starts_with(b"\x89PNG") || png.len() < 20_000 {
        problems.push(format!(
            "the screenshot is not a page ({} bytes)",
            png.len()
        ));
    }
    verdict(problems, &format!("page {}", page.display()))
}

/// A copy of the page that calls `console.error` and asks for a
/// stylesheet its content security policy forbids fails its self-check,
/// naming both.
fn selftest_reports_console_and_policy_errors() -> Result<(), Failed> {
    let run = run()?;
    let html = std::fs::read_to_string(run.path("page.html"))?;
    let planted = "<body>\n<script>console.error('planted', 'console error')</script>\
                   <link rel=\"stylesheet\" href=\"http://127.0.0.1:9/planted.css\">";
    if !html.contains("<body>\n") {
        return Err("the page has no <body>".into());
    }
    let page = run.path("page-with-errors.html");
    std::fs::write(&page, html.replacen("<body>\n", planted, 1))?;
    let dom = headless(&["--dump-dom"], &format!("{}#selftest", file_url(&page)))?;
    let selftest = regex::Regex::new(r#"<pre id="selftest">(.*?)</pre>"#).unwrap();
    let found = selftest
        .captures(&dom)
        .ok_or("no self-check result in the DOM (did the script run?)")?;
    let result: Value = serde_json::from_str(&unescape(&found[1]))
        .map_err(|e| format!("self-check result: {e}: {}", &found[1]))?;
    let errors: Vec<&str> = result["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut problems = Vec::new();
    if result["ok"] != false {
        problems.push("the self-check passed".to_string());
    }
    if !errors.contains(&"console.error: planted console error") {
        problems.push("the console.error call is not among the errors".into());
    }
    if !errors
        .iter()
        .any(|e| e.starts_with("content security policy: style-src") && e.contains("planted.css"))
    {
        problems.push("the blocked stylesheet is not among the errors".into());
    }
    if !problems.is_empty() {
        problems.push(format!("self-check result: {result:#}"));
    }
    verdict(problems, &format!("page {}", page.display()))
}

/// With scripts off the summary and the whole table are there; the
/// script-only controls stay hidden. (Headless Chromium's own switches
/// either still run scripts or dump nothing, so a copy of the page forbids
/// them in its content security policy.)
fn page_without_javascript() -> Result<(), Failed> {
    let run = run()?;
    let allowed = "script-src 'unsafe-inline'";
    let html = std::fs::read_to_string(run.path("page.html"))?;
    if !html.contains(allowed) {
        return Err(format!("the page's policy has no `{allowed}`").into());
    }
    let page = run.path("page-without-scripts.html");
    std::fs::write(&page, html.replacen(allowed, "script-src 'none'", 1))?;
    let dom = headless(&["--dump-dom"], &file_url(&page))?;
    let mut problems = Vec::new();
    check_rows(&dom, &run.report, &mut problems);
    for (marker, what) in [
        (
            "<div id=\"controls\" hidden=\"\">",
            "the filter controls are hidden",
        ),
        ("<section id=\"summary\">", "the summary"),
        ("<svg class=\"timeline\"", "the job-slot timeline"),
        ("<table class=\"memory\">", "the memory chart"),
        ("<details id=\"t", "the failures' output"),
    ] {
        if !dom.contains(marker) {
            problems.push(format!("without JavaScript, missing: {what}"));
        }
    }
    verdict(problems, &format!("page {}", page.display()))
}

/// `isotest report html` makes the same page from the JSON report, also
/// when the report has fields this isotest does not know; a missing report
/// is exit 2, named.
fn report_html_from_json() -> Result<(), Failed> {
    let run = run()?;
    let mut extended = run.report.clone();
    for test in extended["tests"].as_array_mut().into_iter().flatten() {
        test["x_from_a_later_isotest"] = serde_json::json!([{ "name": "case 1" }]);
    }
    let json = run.path("extended.json");
    std::fs::write(&json, serde_json::to_vec(&extended)?)?;
    let again = run.path("again.html");
    let mut command = support::isotest();
    command
        .args(["report", "html"])
        .arg(&json)
        .arg("-o")
        .arg(&again);
    let finished = support::run(command)?;
    if finished.code != 0 {
        return Err(format!("isotest report html: {}", finished.describe()).into());
    }
    if std::fs::read(&again)? != std::fs::read(run.path("page.html"))? {
        return Err(format!(
            "{} differs from the page of the run, {}",
            again.display(),
            run.path("page.html").display()
        )
        .into());
    }
    let mut command = support::isotest();
    let missing = run.path("missing.json");
    command
        .args(["report", "html"])
        .arg(&missing)
        .arg("-o")
        .arg(&again);
    let finished = support::run(command)?;
    if finished.code != 2 || !finished.stderr.contains(&missing.display().to_string()) {
        return Err(format!("a missing report: {}", finished.describe()).into());
    }
    Ok(())
}

/// Seconds between two of the report's timestamps (same format, UTC).
fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let of_day = |t: &str| -> Option<f64> {
        let (h, m, s) = (t.get(11..13)?, t.get(14..16)?, t.get(17..t.len() - 1)?);
        Some(
            h.parse::<f64>().ok()? * 3600.0
                + m.parse::<f64>().ok()? * 60.0
                + s.parse::<f64>().ok()?,
        )
    };
    let next_day = if from.get(..10) == to.get(..10) {
        0.0
    } else {
        86_400.0
    };
    Some(of_day(to)? + next_day - of_day(from)?)
}

/// A finished top-level span (an attempt) of a job-slot track.
#[derive(Debug, Default, Clone)]
struct AttemptSpan {
    name: String,
    /// Where its `container setup` phase began, and how long its `test`
    /// phase lasted, in µs.
    setup_start: Option<f64>,
    test_length: Option<f64>,
}

/// What a trace holds, gathered while its rules are checked.
#[derive(Default)]
struct TraceFacts {
    spans: BTreeMap<u64, Vec<AttemptSpan>>,
    instants: BTreeMap<String, usize>,
    counters: BTreeMap<String, Vec<f64>>,
}

/// Every B has its E on its track, timestamps never go back on a track,
/// each attempt's span sits where the JSON report says it started and its
/// `test` phase lasts what the report says; retries and the timeout show
/// as instants, and the sampled memory stays within the exact peak.
fn trace_matches_json() -> Result<(), Failed> {
    let run = run()?;
    let trace = crate::json::read(&run.path("trace.json"))?;
    let events = trace["traceEvents"]
        .as_array()
        .ok_or("traceEvents is not an array")?;
    let mut problems = Vec::new();
    let facts = read_trace(events, &mut problems);
    check_spans(run, &facts, &mut problems);
    check_counters(run, &facts, &mut problems);
    verdict(
        problems,
        &format!("trace {}", run.path("trace.json").display()),
    )
}

fn read_trace(events: &[Value], problems: &mut Vec<String>) -> TraceFacts {
    let mut facts = TraceFacts::default();
    let mut stacks: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    let mut last_ts: BTreeMap<String, f64> = BTreeMap::new();
    let mut open: BTreeMap<u64, AttemptSpan> = BTreeMap::new();
    for event in events {
        let ph = event["ph"].as_str().unwrap_or("");
        let name = event["name"].as_str().unwrap_or("").to_string();
        if ph == "M" {
            continue;
        }
        let Some(ts) = event["ts"].as_f64() else {
            problems.push(format!("no ts: {event}"));
            continue;
        };
        let tid = event["tid"].as_u64().unwrap_or(0);
        let track = if ph == "C" {
            format!("counter {name}")
        } else {
            format!("tid {tid}")
        };
        if let Some(&last) = last_ts.get(&track) {
            if ts < last {
                problems.push(format!("{track}: {ts} comes after {last}"));
            }
        }
        last_ts.insert(track.clone(), ts);
        let stack = stacks.entry(track).or_default();
        match ph {
            "B" => stack.push((name, ts)),
            "E" => match stack.pop() {
                Some((begun, start)) if begun == name => {
                    let span = open.entry(tid).or_default();
                    match (stack.len(), name.as_str()) {
                        (0, _) => {
                            span.name = name;
                            facts
                                .spans
                                .entry(tid)
                                .or_default()
                                .push(std::mem::take(span));
                        }
                        (1, "container setup") => span.setup_start = Some(start),
                        (1, "test") => span.test_length = Some(ts - start),
                        _ => {}
                    }
                }
                other => problems.push(format!("E {name} at {ts} closes {other:?}")),
            },
            "i" => *facts.instants.entry(name).or_default() += 1,
            "C" => {
                let args = &event["args"];
                let value = args["bytes"]
                    .as_f64()
                    .or(args["cpus"].as_f64())
                    .unwrap_or(-1.0);
                facts.counters.entry(name).or_default().push(value);
            }
            other => problems.push(format!("unexpected phase {other}: {event}")),
        }
    }
    for (track, stack) in &stacks {
        if !stack.is_empty() {
            problems.push(format!("{track}: spans never ended: {stack:?}"));
        }
    }
    facts
}

/// Each test's attempts are its spans on its slot's track, in order, at
/// the report's start times, with its `test_secs`.
fn check_spans(run: &Run, facts: &TraceFacts, problems: &mut Vec<String>) {
    let run_start = run.report["started_at"].as_str().unwrap_or("");
    let (mut retries, mut timeouts) = (0, 0);
    for test in run.report["tests"].as_array().into_iter().flatten() {
        let name = test["name"].as_str().unwrap_or("");
        let Some(slot) = test["slot"].as_u64() else {
            continue;
        };
        let attempts: Vec<&Value> = test["earlier_attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .chain([test])
            .collect();
        retries += attempts.len() - 1;
        timeouts += attempts.iter().filter(|a| a["status"] == "TIMEOUT").count();
        let spans: Vec<&AttemptSpan> = facts
            .spans
            .get(&(slot + 1))
            .into_iter()
            .flatten()
            .filter(|s| s.name == name)
            .collect();
        if spans.len() != attempts.len() {
            problems.push(format!(
                "{name}: {} spans for {} attempts",
                spans.len(),
                attempts.len()
            ));
            continue;
        }
        for (attempt, span) in attempts.iter().zip(spans) {
            let started = seconds_between(run_start, attempt["started_at"].as_str().unwrap_or(""));
            let setup = span.setup_start.map(|us| us / 1e6);
            // The report's timestamps have milliseconds.
            if !started
                .zip(setup)
                .is_some_and(|(a, b)| (a - b).abs() < 0.0015)
            {
                problems.push(format!(
                    "{name}: setup begins at {setup:?} s, the report says {started:?}"
                ));
            }
            let test_secs = attempt["phases"]["test_secs"].as_f64();
            let length = span.test_length.map(|us| us / 1e6);
            if !test_secs
                .zip(length)
                .is_some_and(|(a, b)| (a - b).abs() < 1e-5)
            {
                problems.push(format!(
                    "{name}: test phase {length:?} s, the report says {test_secs:?}"
                ));
            }
        }
        let phases = &test["phases"];
        if phases["test_secs"].as_f64() > Some(0.0) && phases["test_secs"] != test["duration_secs"]
        {
            problems.push(format!(
                "{name}: test_secs {} is not duration_secs {}",
                phases["test_secs"], test["duration_secs"]
            ));
        }
    }
    for (instant, expected) in [("retry", retries), ("timeout", timeouts)] {
        let found = facts.instants.get(instant).copied().unwrap_or(0);
        if found != expected || expected == 0 {
            problems.push(format!(
                "{found} {instant} instants, expected {expected} (and some)"
            ));
        }
    }
}

/// holds_memory.sh's memory track shows its 48 MiB, never above the
/// exact peak of the report.
fn check_counters(run: &Run, facts: &TraceFacts, problems: &mut Vec<String>) {
    let test = run.report["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "holds_memory.sh");
    let peak = test.and_then(|t| t["usage"]["memory_peak_bytes"].as_f64());
    let samples = facts.counters.get("memory holds_memory.sh");
    let highest = samples.map(|s| s.iter().copied().fold(0.0, f64::max));
    match (peak, highest) {
        (Some(peak), Some(highest)) if highest >= 40.0 * 1048576.0 && highest <= peak => {}
        _ => problems.push(format!(
            "memory holds_memory.sh: sampled {samples:?}, highest {highest:?}, peak {peak:?}"
        )),
    }
    if !facts.counters.keys().any(|k| k.starts_with("cpu ")) {
        problems.push("no CPU counter track".into());
    }
}

/// Passes when nothing was found wrong; else names each problem and what
/// was checked.
fn verdict(problems: Vec<String>, checked: &str) -> Result<(), Failed> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!("{checked}:\n  {}", problems.join("\n  ")).into())
}
