//! `isotest list`: the tests `run` would run (and the ignored ones it would
//! report as skipped), with their effective settings.

use serde_json::{json, Map, Value};

use super::args::{Format, ListArgs};
use super::history::RunHistory;
use super::run::select;
use super::{exit, load_plan, split_positional, write_stdout};
use crate::discover::Program;
use crate::plan::PlannedTest;
use crate::select::Selected;

pub fn list(args: ListArgs) -> i32 {
    let positional = split_positional(&args.paths.positional);
    let flags = args.container.plan_settings(args.retries, args.protocol);
    let planned = match load_plan(&args.select, &positional, &flags) {
        Ok((_, planned)) => planned,
        Err(code) => return code,
    };
    let history = match RunHistory::load(&args.select, &positional.roots, None) {
        Ok(history) => history,
        Err(code) => return code,
    };
    let selected = match select(&args.select, &positional, planned, &history.history) {
        Ok(selected) => selected,
        Err(code) => return code,
    };
    let text = render(&selected, args.format, args.verbose);
    write_stdout(&text);
    exit::ALL_PASSED
}

/// The selection as `isotest list` prints it: what would run, then the
/// ignored tests it would report as skipped.
pub(super) fn render(selected: &Selected, format: Format, verbose: bool) -> String {
    let Selected { run, skipped, .. } = selected;
    let tests = run
        .iter()
        .map(|t| (t, false))
        .chain(skipped.iter().map(|t| (t, true)));
    match format {
        Format::Json => {
            let list: Vec<Value> = tests
                .map(|(t, skipped)| as_json(t, skipped, verbose))
                .collect();
            serde_json::to_string_pretty(&list).expect("JSON values serialize") + "\n"
        }
        Format::Text => {
            let mut text = String::new();
            for (test, skipped) in tests {
                let note = if skipped { "  (ignored: not run)" } else { "" };
                text.push_str(&format!("{}{note}\n", test.case.name));
                if verbose {
                    for row in test.settings.describe() {
                        let value = compact(&row.value);
                        text.push_str(&format!("    {:<20} {value:<24} {}\n", row.key, row.source));
                    }
                }
            }
            text
        }
    }
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn as_json(test: &PlannedTest, skipped: bool, verbose: bool) -> Value {
    let program = match &test.case.program {
        Program::File(path) => json!({ "file": path.to_string_lossy() }),
        Program::Command(argv) => json!({ "command": argv }),
    };
    let mut settings = Map::new();
    let mut sources = Map::new();
    for row in test.settings.describe() {
        let key = row.key.clone();
        match settings.get_mut(&key) {
            // Repeated keys (tags, pass_env) become arrays.
            Some(Value::Array(items)) => items.push(row.value),
            _ if matches!(key.as_str(), "tags" | "pass_env") => {
                settings.insert(key.clone(), Value::Array(vec![row.value]));
            }
            _ => {
                settings.insert(key.clone(), row.value);
            }
        }
        sources.insert(key, json!(row.source.to_string()));
    }
    let mut entry = json!({
        "name": test.case.name,
        "suite": test.case.suite,
        "tags": test.case.tags,
        "program": program,
        "cwd": test.case.dir.to_string_lossy(),
        "ignored": skipped,
        "settings": settings,
    });
    if verbose {
        entry["sources"] = Value::Object(sources);
    }
    entry
}
