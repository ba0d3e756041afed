//! The charts: which test ran in which job slot and when (an SVG
//! timeline, one row per slot, a bar per attempt coloured by status), and
//! the tests with the highest peak memory against their limits, with the
//! change from a baseline when there is one (bars in HTML).

use std::fmt::Write;
use std::time::Duration;

use super::{attempt_spans, escape, table};
use crate::baseline::Baseline;
use crate::duration::format_seconds;
use crate::report::json::JsonRun;
use crate::report::rebuild::parse_rfc3339;
use crate::size::format_size;

/// The timeline's drawing width, label column included.
const WIDTH: f64 = 1000.0;
const LABEL_WIDTH: f64 = 70.0;
/// The label column of a merged run's timeline (`shard 2 slot 3`).
const SHARD_LABEL_WIDTH: f64 = 105.0;
const ROW_HEIGHT: f64 = 18.0;
/// Tests shown in the memory chart.
const MEMORY_ROWS: usize = 25;

/// The job-slot timeline, or a note when no test ran in a slot.
pub fn timeline(run: &JsonRun) -> String {
    let run_start = parse_rfc3339(&run.started_at).ok();
    let mut bars = Vec::new();
    for (index, test) in run.tests.iter().enumerate() {
        let Some(slot) = test.slot else { continue };
        let spans = attempt_spans(run_start, test);
        let count = spans.len();
        for (number, (start, length)) in spans.into_iter().enumerate() {
            let status = if number + 1 == count {
                test.status.as_str()
            } else {
                test.earlier_attempts[number].status.as_str()
            };
            bars.push((slot, start.max(0.0), length.max(0.0), status, index));
        }
    }
    if bars.is_empty() {
        return "<p>No test ran in a job slot.</p>".into();
    }
    let end = bars
        .iter()
        .map(|(_, start, length, ..)| start + length)
        .fold(run.duration_secs, f64::max)
        .max(1e-6);
    let slots = bars.iter().map(|b| b.0).max().unwrap_or(0) + 1;
    let shards = shard_slots(&run.settings);
    let label_width = if shards.is_empty() {
        LABEL_WIDTH
    } else {
        SHARD_LABEL_WIDTH
    };
    let scale = (WIDTH - label_width) / end;
    let height = slots as f64 * ROW_HEIGHT + 20.0;
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"tests by job slot over time\">"
    );
    for slot in 0..slots {
        let y = slot as f64 * ROW_HEIGHT;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\">{}</text>",
            y + 13.0,
            slot_label(&shards, slot)
        );
    }
    for (slot, start, length, status, index) in bars {
        let test = &run.tests[index];
        let _ = write!(
            svg,
            "<rect class=\"s-{}\" data-i=\"{index}\" x=\"{:.2}\" y=\"{:.1}\" width=\"{:.2}\" \
             height=\"{:.1}\"><title>{} {} {}</title></rect>",
            escape::text(status),
            label_width + start * scale,
            slot as f64 * ROW_HEIGHT + 2.0,
            (length * scale).max(0.5),
            ROW_HEIGHT - 4.0,
            escape::text(&test.name),
            escape::text(status),
            format_seconds(Duration::from_secs_f64(length)),
        );
    }
    for tick in 0..=4 {
        let seconds = end * tick as f64 / 4.0;
        let x = label_width + seconds * scale;
        let anchor = if tick == 4 { "end" } else { "middle" };
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            height - 4.0,
            format_seconds(Duration::from_secs_f64(seconds))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// In a report merged from shards (`isotest report merge`), where each
/// shard's slots begin and how many it has (`merged_from[].first_slot`,
/// `.slots`), shard 1 first; empty for the report of one run.
fn shard_slots(settings: &serde_json::Value) -> Vec<(usize, usize)> {
    let Some(shards) = settings["merged_from"].as_array() else {
        return Vec::new();
    };
    let slots: Option<Vec<(usize, usize)>> = shards
        .iter()
        .map(|shard| {
            let first = shard["first_slot"].as_u64()?;
            let count = shard["slots"].as_u64()?;
            Some((first as usize, count as usize))
        })
        .collect();
    slots.unwrap_or_default()
}

/// `slot 3`, or in a merged report `shard 2 slot 3`.
fn slot_label(shards: &[(usize, usize)], slot: usize) -> String {
    let shard = shards
        .iter()
        .enumerate()
        .find(|(_, (first, count))| (*first..first + count).contains(&slot));
    match shard {
        Some((number, (first, _))) => format!("shard {} slot {}", number + 1, slot - first + 1),
        None => format!("slot {}", slot + 1),
    }
}

/// One test in the memory chart.
struct MemoryRow<'a> {
    index: usize,
    name: &'a str,
    peak: u64,
    limit: Option<u64>,
    before: Option<u64>,
}

/// The tests with the highest peak memory: a bar each, the limit marked,
/// and with a baseline its figure marked and the change given.
pub fn memory(run: &JsonRun, baseline: Option<&Baseline>) -> String {
    let mut rows: Vec<MemoryRow> = run
        .tests
        .iter()
        .enumerate()
        .filter_map(|(index, test)| {
            Some(MemoryRow {
                index,
                name: &test.name,
                peak: test.usage.memory_peak_bytes?,
                limit: test.limits.memory_bytes,
                before: baseline.and_then(|b| b.memory_peak(&test.name)),
            })
        })
        .collect();
    if rows.is_empty() {
        return "<p>No memory figures (cgroups were not in use).</p>".into();
    }
    rows.sort_by(|a, b| b.peak.cmp(&a.peak).then(a.index.cmp(&b.index)));
    let measured = rows.len();
    rows.truncate(MEMORY_ROWS);
    let scale = rows
        .iter()
        .flat_map(|r| [Some(r.peak), r.limit, r.before])
        .flatten()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let percent = |bytes: u64| bytes as f64 * 100.0 / scale;
    let mut html = format!(
        "<p>The {} highest of {measured} measured peaks; a line marks the test's limit{}.</p>\
         <table class=\"memory\"><tbody>",
        rows.len(),
        if baseline.is_some() {
            ", a dot the baseline's peak"
        } else {
            ""
        }
    );
    for row in rows {
        let limit = row.limit.map_or(String::new(), |limit| {
            format!(
                "<i class=\"limit\" style=\"left:{:.2}%\" title=\"limit {}\"></i>",
                percent(limit),
                format_size(limit)
            )
        });
        let before = row.before.map_or(String::new(), |before| {
            format!(
                "<i class=\"before\" style=\"left:{:.2}%\" title=\"baseline {}\"></i>",
                percent(before),
                format_size(before)
            )
        });
        let change = row.before.map_or(String::new(), |before| {
            format!(
                "{} from {}</span>",
                change_span(row.peak, before),
                format_size(before)
            )
        });
        let name = escape::text(row.name);
        let name = if table::has_details(&run.tests[row.index]) {
            format!("<a href=\"#t{}\">{name}</a>", row.index)
        } else {
            name
        };
        let _ = write!(
            html,
            "<tr><td class=\"name\">{name}</td><td class=\"bar\"><b style=\"width:{:.2}%\"></b>\
             {limit}{before}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{change}</td></tr>",
            percent(row.peak),
            format_size(row.peak),
            row.limit.map_or("no limit".into(), |l| format!("of {}", format_size(l))),
        );
    }
    html.push_str("</tbody></table>");
    html
}

/// The opening `<span>` and the change from `before` to `peak` in whole
/// percent: `+50%` up, `-20%` down, and `±0%` (neutral) when it rounds to
/// no change at all.
fn change_span(peak: u64, before: u64) -> String {
    let change = (peak as f64 - before as f64) * 100.0 / before.max(1) as f64;
    if change.abs() < 0.5 {
        "<span class=\"same\">±0%".into()
    } else if change > 0.0 {
        format!("<span class=\"up\">{change:+.0}%")
    } else {
        format!("<span class=\"down\">{change:+.0}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_change_is_neutral() {
        assert_eq!(change_span(100, 100), "<span class=\"same\">±0%");
        assert_eq!(change_span(1000, 1001), "<span class=\"same\">±0%");
        assert_eq!(change_span(150, 100), "<span class=\"up\">+50%");
        assert_eq!(change_span(80, 100), "<span class=\"down\">-20%");
        assert_eq!(change_span(0, 0), "<span class=\"same\">±0%");
    }
}
