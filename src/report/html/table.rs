//! The tests table (every test with its figures, the sort keys in data
//! attributes for the script), the output and reasons of the tests that
//! did not pass, and the sampled series the script draws.

use std::fmt::Write;
use std::time::Duration;

use super::escape;
use crate::duration::format_seconds;
use crate::report::json::{JsonCase, JsonOutput, JsonRun, JsonTest};
use crate::size::format_size;

/// Output shown per stream and test: its head and tail, so a page of
/// many failures stays small (the --json report keeps more).
const OUTPUT_SHOWN: usize = 32 << 10;
/// Once this much output (as HTML) is on the page, each stream shows
/// only its head and tail of `OUTPUT_SHOWN_PAST_BUDGET` bytes...
const OUTPUT_BUDGET: usize = 2 << 20;
const OUTPUT_SHOWN_PAST_BUDGET: usize = 1 << 10;
/// ...and once this much is, output is left out, with a note: a page of
/// 10,000 failures holds at most a few MiB of output besides its table.
const OUTPUT_CAP: usize = 3 << 20;

/// Whether a test's output and reason are shown below the table.
pub fn has_details(test: &JsonTest) -> bool {
    !matches!(test.status.as_str(), "PASS" | "SKIPPED")
}

/// The table of every test; the controls are hidden until the script
/// shows them.
pub fn tests(page: &mut String, run: &JsonRun) {
    page.push_str(
        "<section id=\"tests\"><h2>Tests</h2>\
         <div id=\"controls\" hidden><label>Status <select id=\"status-filter\">\
         <option value=\"\">all</option><option value=\"!PASS\">not passed</option>",
    );
    for (status, _) in super::statuses(run) {
        let status = escape::text(status);
        let _ = write!(page, "<option value=\"{status}\">{status}</option>");
    }
    page.push_str(
        "</select></label> <label>Name <input id=\"text-filter\" type=\"search\" \
         placeholder=\"part of a name\"></label> <span id=\"shown\"></span></div>\
         <div id=\"detail\" hidden></div>\
         <table id=\"results\"><thead><tr>\
         <th data-key=\"s\">Status</th><th data-key=\"n\">Test</th>\
         <th data-key=\"d\" class=\"num\">Duration</th><th data-key=\"m\" class=\"num\">Peak memory</th>\
         <th data-key=\"ml\" class=\"num\">Memory limit</th><th data-key=\"c\" class=\"num\">CPU</th>\
         <th data-key=\"p\" class=\"num\">Pids</th><th data-key=\"l\" class=\"num\">Leaked</th>\
         <th data-key=\"a\" class=\"num\">Attempts</th><th data-key=\"k\" class=\"num\">Cases</th>\
         </tr></thead><tbody>\n",
    );
    for (index, test) in run.tests.iter().enumerate() {
        row(page, index, test);
    }
    page.push_str("</tbody></table></section>\n");
}

fn row(page: &mut String, index: usize, test: &JsonTest) {
    let usage = &test.usage;
    let cases = CaseCounts::of(&test.cases);
    let cpu = usage
        .cpu_user_usec
        .zip(usage.cpu_system_usec)
        .map(|(user, system)| user + system);
    let status = escape::text(&test.status);
    let name = escape::text(&test.name);
    let name_cell = if has_details(test) {
        format!("<a href=\"#t{index}\">{name}</a>")
    } else {
        name
    };
    let key = |value: Option<u64>| value.map_or(String::from("-1"), |v| v.to_string());
    let text = |value: Option<String>| value.unwrap_or_else(|| "–".into());
    let _ = writeln!(
        page,
        "<tr id=\"r{index}\" data-i=\"{index}\" data-s=\"{status}\" \
         data-d=\"{}\" data-m=\"{}\" data-ml=\"{}\" data-c=\"{}\" data-p=\"{}\" data-l=\"{}\" \
         data-a=\"{}\" data-k=\"{}\"><td><span class=\"st s-{status}\">{status}</span></td>\
         <td class=\"name\">{name_cell}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num cases\">{}</td></tr>",
        test.duration_secs,
        key(usage.memory_peak_bytes),
        key(test.limits.memory_bytes),
        key(cpu),
        key(usage.pids_peak),
        test.leaked_processes,
        test.attempts,
        cases.total,
        format_seconds(Duration::from_secs_f64(test.duration_secs.max(0.0))),
        text(usage.memory_peak_bytes.map(format_size)),
        text(test.limits.memory_bytes.map(format_size)),
        text(cpu.map(|usec| format_seconds(Duration::from_micros(usec)))),
        text(usage.pids_peak.map(|p| p.to_string())),
        test.leaked_processes,
        test.attempts,
        cases.cell(),
    );
}

/// How many cases a test holds (its TAP test points, the testcases of
/// its JUnit file, nested subtests included) and how many failed it.
#[derive(Debug, Default, PartialEq, Eq)]
struct CaseCounts {
    total: usize,
    failed: usize,
}

impl CaseCounts {
    fn of(cases: &[JsonCase]) -> CaseCounts {
        let mut counts = CaseCounts::default();
        for case in cases {
            let inner = CaseCounts::of(&case.cases);
            counts.total += 1 + inner.total;
            counts.failed += usize::from(case_failed(case)) + inner.failed;
        }
        counts
    }

    /// `12`, `12 (2 failed)`, or a dash for a test without cases.
    fn cell(&self) -> String {
        match (self.total, self.failed) {
            (0, _) => "–".into(),
            (total, 0) => total.to_string(),
            (total, failed) => format!("{total} ({failed} failed)"),
        }
    }
}

fn case_failed(case: &JsonCase) -> bool {
    matches!(case.status.as_str(), "fail" | "error")
}

/// Each test that did not pass: why, and its output (earlier attempts'
/// too).
/// How many tests the artifacts section names before it points to the
/// JSON report for the rest.
const ARTIFACT_LINKS: usize = 1000;

/// The tests that left files in TEST_UNDECLARED_OUTPUTS_DIR (`--artifacts`),
/// each linked to its directory; nothing when none did.
pub fn artifacts(page: &mut String, run: &JsonRun) {
    let kept: Vec<(&str, &str)> = run
        .tests
        .iter()
        .filter_map(|t| Some((t.name.as_str(), t.artifacts.as_deref()?)))
        .collect();
    if kept.is_empty() {
        return;
    }
    let _ = write!(
        page,
        "<section id=\"artifacts\"><h2>Artifacts ({})</h2><ul>",
        kept.len()
    );
    for (name, dir) in kept.iter().take(ARTIFACT_LINKS) {
        let _ = write!(
            page,
            "<li><span class=\"name\">{}</span>: <a href=\"{}\">{}</a></li>",
            escape::text(name),
            escape::text(&file_url(dir)),
            escape::text(dir)
        );
    }
    if kept.len() > ARTIFACT_LINKS {
        let _ = write!(
            page,
            "<li>and {} more (the --json report names them all)</li>",
            kept.len() - ARTIFACT_LINKS
        );
    }
    page.push_str("</ul></section>\n");
}

/// `file://` and the path, percent-encoded but for unreserved bytes and `/`.
fn file_url(path: &str) -> String {
    let mut url = String::from("file://");
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(byte as char);
        } else {
            let _ = write!(url, "%{byte:02X}");
        }
    }
    url
}

pub fn failures(page: &mut String, run: &JsonRun) {
    let mut shown_bytes = 0;
    let failing: Vec<(usize, &JsonTest)> = run
        .tests
        .iter()
        .enumerate()
        .filter(|(_, test)| has_details(test))
        .collect();
    let _ = writeln!(
        page,
        "<section id=\"failures\"><h2>Not passed ({})</h2>",
        failing.len()
    );
    if failing.is_empty() {
        page.push_str("<p>Every test passed.</p>");
    }
    for (index, test) in failing {
        let status = escape::text(&test.status);
        let _ = write!(
            page,
            "<details id=\"t{index}\" class=\"failure\" open><summary><span class=\"st s-{status}\">\
             {status}</span> <span class=\"name\">{}</span></summary>",
            escape::text(&test.name)
        );
        reason(page, test);
        failed_cases(page, &test.cases);
        output(page, &test.output, &mut shown_bytes);
        for (number, attempt) in test.earlier_attempts.iter().enumerate() {
            let _ = write!(
                page,
                "<div class=\"attempt\"><h4>Attempt {}: <span class=\"st s-{}\">{}</span> {}</h4>",
                number + 1,
                escape::text(&attempt.status),
                escape::text(&attempt.status),
                escape::text(attempt.message.as_deref().unwrap_or(""))
            );
            output(page, &attempt.output, &mut shown_bytes);
            page.push_str("</div>");
        }
        page.push_str("</details>\n");
    }
    page.push_str("</section>\n");
}

fn reason(page: &mut String, test: &JsonTest) {
    let mut facts = Vec::new();
    if let Some(message) = &test.message {
        facts.push(message.clone());
    }
    if test.message.is_none() {
        facts.extend(test.exit_code.map(|code| format!("exit code {code}")));
        facts.extend(
            test.signal
                .as_ref()
                .map(|signal| format!("signal {signal}")),
        );
    }
    if test.leaked_processes > 0 {
        facts.push(format!("{} leaked processes", test.leaked_processes));
    }
    if test.attempts > 1 {
        facts.push(format!("{} attempts", test.attempts));
    }
    let _ = write!(
        page,
        "<p class=\"reason\">{}</p>",
        escape::text(&facts.join("; "))
    );
}

/// The cases that failed the test, each with its message.
fn failed_cases(page: &mut String, cases: &[JsonCase]) {
    let mut failed = Vec::new();
    collect_failed(cases, "", &mut failed);
    if failed.is_empty() {
        return;
    }
    page.push_str("<ul class=\"cases\">");
    for (name, case) in failed {
        let _ = write!(
            page,
            "<li><span class=\"st s-FAIL\">{}</span> {}",
            escape::text(&case.status),
            escape::text(&name)
        );
        if let Some(message) = &case.message {
            let _ = write!(
                page,
                "<pre class=\"output\">{}</pre>",
                escape::text(message)
            );
        }
        page.push_str("</li>");
    }
    page.push_str("</ul>");
}

/// Failed cases under `cases`, named with their parents' names.
fn collect_failed<'a>(cases: &'a [JsonCase], parent: &str, into: &mut Vec<(String, &'a JsonCase)>) {
    for case in cases {
        let name = if parent.is_empty() {
            case.name.clone()
        } else {
            format!("{parent} › {}", case.name)
        };
        if case_failed(case) {
            into.push((name.clone(), case));
        }
        collect_failed(&case.cases, &name, into);
    }
}

/// An attempt's output; `shown_bytes` counts the output's HTML on the
/// page so far, against `OUTPUT_BUDGET` and `OUTPUT_CAP`.
fn output(page: &mut String, output: &JsonOutput, shown_bytes: &mut usize) {
    let streams = [
        ("stdout", &output.stdout, output.stdout_bytes),
        ("stderr", &output.stderr, output.stderr_bytes),
    ];
    let streams = streams.into_iter().filter(|(_, text, _)| !text.is_empty());
    if *shown_bytes >= OUTPUT_CAP {
        let sizes: Vec<String> = streams
            .map(|(stream, _, total)| format!("{stream} {total} bytes"))
            .collect();
        if !sizes.is_empty() {
            let _ = write!(
                page,
                "<p class=\"omitted\">{}: not shown, the page is full (the --json report \
                 has it)</p>",
                sizes.join(", ")
            );
        }
        return;
    }
    for (stream, text, total) in streams {
        let limit = if *shown_bytes < OUTPUT_BUDGET {
            OUTPUT_SHOWN
        } else {
            OUTPUT_SHOWN_PAST_BUDGET
        };
        let html = escape::ansi(&bounded(text, limit));
        *shown_bytes += html.len();
        let _ = write!(
            page,
            "<h4>{stream} ({total} bytes)</h4><pre class=\"output\">{html}</pre>"
        );
    }
}

/// The first and last `limit / 2` bytes of `text` (at character
/// boundaries) with a line saying how much was left out between them.
fn bounded(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= limit {
        return text.into();
    }
    let mut head = limit / 2;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - limit / 2;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[isotest: {} bytes not shown here; the --json report has more]\n{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
    .into()
}

/// The sampled series, by row index: `[[seconds, memory bytes, CPU µs],
/// ...]` of the last attempt, with null where a figure was not read.
pub fn samples(run: &JsonRun) -> serde_json::Value {
    let series = run.tests.iter().enumerate().filter_map(|(index, test)| {
        let samples = test.samples.as_ref()?;
        let points = samples
            .iter()
            .map(|s| serde_json::json!([s.at_secs, s.memory_bytes, s.cpu_usec]))
            .collect();
        Some((index.to_string(), serde_json::Value::Array(points)))
    });
    serde_json::Value::Object(series.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, status: &str, cases: Vec<JsonCase>) -> JsonCase {
        JsonCase {
            name: name.into(),
            status: status.into(),
            message: Some(format!("<{name}>")),
            duration_secs: None,
            cases,
        }
    }

    #[test]
    fn counts_cases_and_lists_the_failed_ones_escaped() {
        let cases = vec![
            case("1 a", "pass", Vec::new()),
            case("2 b", "fail", vec![case("1 inner", "fail", Vec::new())]),
            case("3 c", "todo", Vec::new()),
        ];
        let counts = CaseCounts::of(&cases);
        assert_eq!(
            counts,
            CaseCounts {
                total: 4,
                failed: 2
            }
        );
        assert_eq!(counts.cell(), "4 (2 failed)");
        assert_eq!(CaseCounts::of(&[]).cell(), "–");
        let mut page = String::new();
        failed_cases(&mut page, &cases);
        assert!(page.contains("2 b › 1 inner"), "{page}");
        assert!(page.contains("&lt;2 b&gt;"), "{page}");
        assert!(!page.contains("<2 b>"), "{page}");
    }

    #[test]
    fn bounds_output_at_character_boundaries() {
        assert_eq!(bounded("short", 10), "short");
        let text = "ééééé-middle-ààààà";
        let shown = bounded(text, 8);
        assert!(shown.starts_with("éé\n[isotest: "), "{shown}");
        assert!(shown.ends_with("]\nàà"), "{shown}");
        assert!(
            shown.contains(&format!("{} bytes not shown", text.len() - 8)),
            "{shown}"
        );
    }
}
