use super::*;
use crate::report::junit::tests::summary;
use crate::run::{RunSummary, Timing};

/// The shared test summary, with hostile names, one test sampled and
/// every run test in a slot.
fn hostile_summary() -> RunSummary {
    let mut summary = summary();
    summary.results[1].test.name = "</script><script>window.isotestInjected=1</script>".into();
    summary.results[2].test.name = "<img src=x onerror=\"window.isotestInjected=1\">'\"\0".into();
    for (slot, result) in summary.results.iter_mut().enumerate() {
        if !matches!(result.status.label(), "SKIPPED" | "NOT-RUN") {
            result.slot = Some(slot % 2);
            result.timing = Timing {
                test: result.duration,
                ..Timing::default()
            };
        }
    }
    summary.results[0].timing.samples = vec![crate::sandbox::Sample {
        at: Duration::from_millis(5),
        memory_bytes: Some(1 << 20),
        cpu_usec: Some(10),
    }];
    summary
}

fn page() -> String {
    render(&JsonRun::from_summary(&hostile_summary()), None)
}

#[test]
fn hostile_names_and_output_stay_text() {
    let page = page();
    assert!(!page.contains("<img"), "no element from a name");
    assert!(page.contains(
        "&lt;img src=x onerror=&quot;window.isotestInjected=1&quot;&gt;&#39;&quot;\\u{0}"
    ));
    assert_eq!(
        page.matches("<script").count(),
        3,
        "only the page's own scripts"
    );
    assert_eq!(page.matches("</script>").count(), 3);
    // NASTY output: colours as spans, NUL shown, markup escaped.
    assert!(
        page.contains("<span class=\"f1\">red</span> nul\\u{0} cdata]]&gt; bad"),
        "{page}"
    );
    assert!(!page.contains('\0'));
}

#[test]
fn lists_every_test_with_its_status() {
    let summary = hostile_summary();
    let page = page();
    for (index, result) in summary.results.iter().enumerate() {
        let row = format!(
            "<tr id=\"r{index}\" data-i=\"{index}\" data-s=\"{}\"",
            result.status.label()
        );
        assert!(page.contains(&row), "{row}");
        assert!(page.contains(&escape::text(&result.test.name)));
    }
    let failing = summary
        .results
        .iter()
        .filter(|r| !matches!(r.status.label(), "PASS" | "SKIPPED"));
    assert_eq!(page.matches("<details id=\"t").count(), failing.count());
    assert!(page.contains("<li class=\"st s-FAIL\" data-status=\"FAIL\" data-count=\"1\">"));
}

#[test]
fn draws_slots_memory_and_samples() {
    let page = page();
    assert!(page.contains("<text x=\"0\" y=\"13.0\">slot 1</text>"));
    assert!(page.contains("<text x=\"0\" y=\"31.0\">slot 2</text>"));
    let bars = page.matches("<rect class=\"s-").count();
    let attempts: usize = hostile_summary()
        .results
        .iter()
        .filter(|r| r.slot.is_some())
        .map(|r| r.attempts.len() + 1)
        .sum();
    assert_eq!(bars, attempts, "a bar per attempt");
    assert!(page.contains("<td class=\"num\">3.0 MiB</td><td class=\"num\">of 256.0 MiB</td>"));
    assert!(page.contains(r#"id="samples">{"0":[[0.005,1048576,10]]}</script>"#));
}

#[test]
fn compares_peak_memory_with_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.json");
    let mut run = JsonRun::from_summary(&summary());
    run.tests[0].usage.memory_peak_bytes = Some(2 << 20);
    std::fs::write(&old, serde_json::to_vec(&run).unwrap()).unwrap();
    let baseline = Baseline::load(&old, 0.2).unwrap();
    let page = render(&JsonRun::from_summary(&summary()), Some(&baseline));
    assert!(
        page.contains("<span class=\"up\">+50% from 2.0 MiB</span>"),
        "{page}"
    );
}

#[test]
fn shows_settings_and_host() {
    let mut run = JsonRun::from_summary(&summary());
    run.settings = serde_json::json!({
        "jobs": 2, "profile": null, "partition": "hash:1/2",
        "flags": [{ "key": "memory", "value": "<256M>" }]
    });
    let page = render(&run, None);
    assert!(page.contains("<dt>jobs</dt><dd>2</dd>"));
    assert!(page.contains("<dt>partition</dt><dd>hash:1/2</dd>"));
    assert!(page.contains("<dt>flag memory</dt><dd>&lt;256M&gt;</dd>"));
    assert!(!page.contains("<dt>profile</dt>"));
    assert!(page.contains("<dt>cgroups</dt><dd>hybrid</dd>"));
}

#[test]
fn reads_reports_written_before_slots_and_phases() {
    let mut run = JsonRun::from_summary(&summary());
    let mut old = serde_json::to_value(&run).unwrap();
    for test in old["tests"].as_array_mut().unwrap() {
        let test = test.as_object_mut().unwrap();
        test.remove("slot");
        test.remove("phases");
    }
    run = serde_json::from_value(old).unwrap();
    let page = render(&run, None);
    assert!(page.contains("<p>No test ran in a job slot.</p>"));
    assert_eq!(page.matches("<tr id=\"r").count(), run.tests.len());
}

#[test]
fn the_self_check_hears_console_errors_and_policy_violations() {
    let page = page();
    let head = &page[..page.find("</head>").unwrap()];
    assert!(head.contains("window.isotestErrors=[]"), "{head}");
    assert!(head.contains("window.addEventListener('error'"), "{head}");
    assert!(head.contains("console.error=function()"), "{head}");
    assert!(
        head.contains("document.addEventListener('securitypolicyviolation'"),
        "{head}"
    );
}

/// 10,000 failing tests, each with 2 KiB of coloured output on stdout
/// and a line on stderr.
fn many_failures() -> JsonRun {
    let mut run = JsonRun::from_summary(&summary());
    let failing = run
        .tests
        .iter()
        .find(|t| t.status == "FAIL")
        .expect("a failing test")
        .clone();
    let line = "\u{1b}[1;31merror\u{1b}[0m: \u{1b}[33mexpected\u{1b}[0m <a> & \"b\" got 'c'\n";
    let stdout: String = line.repeat(2048 / line.len() + 1);
    run.tests = (0..10_000)
        .map(|i| {
            let mut test = failing.clone();
            test.name = format!("suite/group-{}/test_number_{i}.sh", i / 100);
            test.earlier_attempts.clear();
            test.attempts = 1;
            test.output.stdout = stdout.clone();
            test.output.stdout_bytes = stdout.len() as u64;
            test.output.stderr = "assertion failed\n".into();
            test.output.stderr_bytes = 17;
            test
        })
        .collect();
    run.counts = [("FAIL".to_string(), 10_000)].into_iter().collect();
    run
}

#[test]
fn a_page_of_many_failures_stays_small() {
    let run = many_failures();
    let page = render(&run, None);
    assert!(page.len() < 12 << 20, "{} bytes", page.len());
    let failures = &page[page.find("<section id=\"failures\"").unwrap()..];
    let output: usize = failures
        .split("<pre class=\"output\">")
        .skip(1)
        .map(|pre| pre.find("</pre>").unwrap())
        .sum();
    assert!(output < (3 << 20) + (64 << 10), "{output} bytes of output");
    // Every test keeps its row and its entry below the table.
    assert_eq!(page.matches("<tr id=\"r").count(), 10_000);
    assert_eq!(page.matches("<details id=\"t").count(), 10_000);
    // The first failures' output is there in full, the last ones' not.
    assert!(page.contains("<span class=\"ab f1\">error</span>"));
    let last = &page[page.find("id=\"t9999\"").unwrap()..];
    assert!(!last.contains("f1\">error"), "{}", &last[..2000]);
    assert!(
        last.contains("stdout 2052 bytes, stderr 17 bytes: not shown, the page is full"),
        "{}",
        &last[..1000]
    );
}

/// (x, y, width) of each bar of the timeline.
fn bars(page: &str) -> Vec<(f64, f64, f64)> {
    let attribute = |rect: &str, name: &str| -> f64 {
        let start = rect.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        rect[start..start + rect[start..].find('"').unwrap()]
            .parse()
            .unwrap()
    };
    page.split("<rect ")
        .skip(1)
        .map(|rect| {
            let rect = &rect[..rect.find('>').unwrap()];
            (
                attribute(rect, "x"),
                attribute(rect, "y"),
                attribute(rect, "width"),
            )
        })
        .collect()
}

#[test]
fn merged_shards_have_timeline_rows_of_their_own() {
    // Two shards of one job each, started together: each ran its tests
    // one after the other in its slot 0.
    let mut summary = summary();
    let start = summary.started_at;
    let mut next = [start, start];
    for (index, result) in summary.results.iter_mut().enumerate() {
        result.attempts.clear();
        if matches!(result.status.label(), "SKIPPED" | "NOT-RUN") {
            continue;
        }
        let shard = &mut next[index % 2];
        result.slot = Some(0);
        result.started_at = *shard;
        result.duration = Duration::from_millis(300);
        result.timing = Timing {
            test: result.duration,
            ..Timing::default()
        };
        *shard += result.duration;
    }
    let whole = JsonRun::from_summary(&summary);
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<std::path::PathBuf> = (0..2)
        .map(|k| {
            let mut run = whole.clone();
            run.tests = run.tests.into_iter().skip(k).step_by(2).collect();
            run.run_id = Some("r1".into());
            run.settings = serde_json::json!({ "jobs": 1 });
            run.partition = Some(crate::report::json::JsonPartition {
                spec: format!("slice:{}/2", k + 1),
                part: k as u64 + 1,
                parts: 2,
                selected: whole.tests.len(),
            });
            let path = dir.path().join(format!("shard-{k}.json"));
            std::fs::write(&path, serde_json::to_vec(&run).unwrap()).unwrap();
            path
        })
        .rev()
        .collect();
    let merged = crate::report::merge::merge(&paths, Some(2)).unwrap();
    let mut run = JsonRun::from_summary(&merged.summary);
    run.settings = merged.settings;
    let page = render(&run, None);

    assert!(page.contains(">shard 1 slot 1</text>"), "{page}");
    assert!(page.contains(">shard 2 slot 1</text>"), "{page}");
    let bars = bars(&page);
    let ran = whole.tests.iter().filter(|t| t.slot.is_some()).count();
    assert_eq!(bars.len(), ran);
    let rows: std::collections::BTreeSet<u64> = bars.iter().map(|b| b.1 as u64).collect();
    assert_eq!(rows.len(), 2, "a row per shard: {bars:?}");
    for (i, a) in bars.iter().enumerate() {
        for b in &bars[i + 1..] {
            let apart = a.0 + a.2 <= b.0 + 0.01 || b.0 + b.2 <= a.0 + 0.01;
            assert!(a.1 != b.1 || apart, "bars overlap: {a:?} {b:?}");
        }
    }
    // Time runs from the earliest shard's start: both rows begin there.
    for row in rows {
        let first = bars
            .iter()
            .filter(|b| b.1 as u64 == row)
            .map(|b| b.0)
            .fold(f64::MAX, f64::min);
        assert!((first - 105.0).abs() < 0.01, "row {row} begins at {first}");
    }
}

#[test]
fn links_the_artifacts_a_test_left() {
    let mut summary = hostile_summary();
    summary.results[2].artifacts = Some("/tmp/arts/a b/<x>".into());
    let page = render(&JsonRun::from_summary(&summary), None);
    assert!(page.contains("<h2>Artifacts (1)</h2>"), "{page}");
    assert!(page.contains("<a href=\"file:///tmp/arts/a%20b/%3Cx%3E\">/tmp/arts/a b/&lt;x&gt;</a>"));
    assert!(!page.contains("<x>"));
    assert!(
        !self::page().contains("id=\"artifacts\""),
        "no section without artifacts"
    );
}
