//! TAP 13/14 (the Test Anything Protocol) on a test's stdout: the plan
//! (`1..N`, at the start or the end, `1..0 # SKIP why` to skip it all),
//! test points (`ok` / `not ok`, optional number and description,
//! `# SKIP` / `# TODO` directives, `\#` escapes), YAML diagnostics blocks
//! (`  ---` ... `  ...`) after a test point, `Bail out!`, and TAP 14
//! subtests: lines indented by four spaces (when they hold TAP), closed by
//! the test point that sums them up. Comments, pragmas and lines TAP does
//! not know are ignored, as the specification says.

use std::time::Duration;

use super::case::{Case, CaseStatus};
use crate::sandbox::CapturedOutput;

/// What a test's TAP said.
#[derive(Debug, Default, PartialEq)]
pub struct Document {
    pub cases: Vec<Case>,
    /// Why the TAP itself fails the test: a missing or wrong plan, test
    /// points out of sequence, `Bail out!`.
    pub problems: Vec<String>,
    /// `1..0 # SKIP reason`: the whole test was skipped, for this reason.
    pub skip_all: Option<String>,
    bailed: bool,
    /// Whether it held any TAP at all: a plan, a test point, a bail-out.
    any_tap: bool,
}

/// Reads the TAP of captured stdout. When the middle was dropped (over the
/// capture limit) the test points there are unknown, which is a problem.
pub fn read_output(output: &CapturedOutput) -> Document {
    let mut text = String::from_utf8_lossy(&output.head).into_owned();
    if output.dropped_bytes > 0 {
        // The tail starts mid-line; its first, partial line is not TAP.
        let tail = String::from_utf8_lossy(&output.tail);
        let rest = tail.split_once('\n').map_or("", |(_, rest)| rest);
        text.push('\n');
        text.push_str(rest);
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut document = parse(&lines);
    if output.dropped_bytes > 0 {
        document.problems.insert(
            0,
            format!(
                "{} bytes in the middle of stdout were over the capture limit: the TAP there was not read",
                output.dropped_bytes
            ),
        );
    }
    document
}

/// Where the plan was seen.
struct Plan {
    count: usize,
    /// Test points before it.
    after: usize,
}

/// Parses one TAP document (a subtest's lines already dedented).
pub fn parse(lines: &[&str]) -> Document {
    let mut document = Document::default();
    let mut plan: Option<Plan> = None;
    let mut subtest: Option<Document> = None;
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim_end_matches('\r');
        index += 1;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("    ") {
            let (parsed, end) = read_subtest(lines, index - 1);
            index = end;
            if !parsed.any_tap {
                // Indented text that is not TAP (a stack trace): ignored.
                continue;
            }
            if parsed.bailed {
                document.problems.extend(parsed.problems);
                document.bailed = true;
                break;
            }
            subtest = Some(parsed);
            continue;
        }
        if let Some(reason) = line.strip_prefix("Bail out!") {
            let reason = reason.trim();
            document.problems.push(if reason.is_empty() {
                "Bail out!".to_string()
            } else {
                format!("Bail out! {reason}")
            });
            document.bailed = true;
            document.any_tap = true;
            break;
        }
        if let Some(count) = plan_line(line, &mut document) {
            document.any_tap = true;
            if plan.is_some() {
                document.problems.push(format!("a second plan `{line}`"));
            } else {
                plan = Some(Plan {
                    count,
                    after: document.cases.len(),
                });
            }
            continue;
        }
        let Some(mut case) = test_point(line, document.cases.len() + 1, &mut document) else {
            continue;
        };
        document.any_tap = true;
        if let Some(nested) = subtest.take() {
            attach(&mut case, nested, &mut document.problems);
        }
        index = diagnostics(lines, index, &mut case, &mut document.problems);
        document.cases.push(case);
    }
    if let Some(orphan) = subtest {
        document.problems.push(format!(
            "a subtest of {} case(s) has no test point after it",
            orphan.cases.len()
        ));
    }
    if !document.bailed {
        check_plan(plan, &mut document);
    }
    document
}

/// The TAP 14 subtest from `start` on (every line indented by four, blank
/// ones too), dedented and parsed, and the index of the line after it.
fn read_subtest(lines: &[&str], start: usize) -> (Document, usize) {
    let mut end = start + 1;
    while end < lines.len() && (lines[end].starts_with("    ") || lines[end].trim().is_empty()) {
        end += 1;
    }
    let nested: Vec<&str> = lines[start..end]
        .iter()
        .map(|l| l.get(4..).unwrap_or(""))
        .collect();
    (parse(&nested), end)
}

/// `1..N`, with an optional `# SKIP reason` when N is 0.
fn plan_line(line: &str, document: &mut Document) -> Option<usize> {
    let rest = line.strip_prefix("1..")?;
    let (count, comment) = match rest.split_once('#') {
        Some((count, comment)) => (count.trim(), Some(comment.trim())),
        None => (rest.trim(), None),
    };
    let count: usize = count.parse().ok()?;
    if count == 0 {
        let reason = comment
            .and_then(|c| directive(c).filter(|(word, _)| word == "skip"))
            .map(|(_, reason)| reason)
            .unwrap_or_default();
        document.skip_all = Some(if reason.is_empty() {
            "skipped: plan 1..0".to_string()
        } else {
            reason
        });
    }
    Some(count)
}

/// `ok 3 - description # SKIP reason`; `expected` is the number an
/// unnumbered test point gets.
fn test_point(line: &str, expected: usize, document: &mut Document) -> Option<Case> {
    let (passed, rest) = match line.strip_prefix("not ok") {
        Some(rest) => (false, rest),
        None => (true, line.strip_prefix("ok")?),
    };
    if !(rest.is_empty() || rest.starts_with([' ', '\t', '#'])) {
        return None;
    }
    let rest = rest.trim_start();
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let number = match rest[..digits].parse::<usize>() {
        Ok(number) => {
            if number != expected {
                document.problems.push(format!(
                    "test point {number} is out of sequence (expected {expected})"
                ));
            }
            number
        }
        Err(_) => expected,
    };
    let rest = rest[digits..].trim_start();
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let (description, comment) = split_directive(rest);
    let mut status = if passed {
        CaseStatus::Pass
    } else {
        CaseStatus::Fail
    };
    let mut message = None;
    if let Some((word, reason)) = comment.as_deref().and_then(directive) {
        status = match (word.as_str(), passed) {
            ("skip", _) => CaseStatus::Skip,
            (_, true) => CaseStatus::Fixed,
            (_, false) => CaseStatus::Todo,
        };
        message = Some(reason).filter(|r| !r.is_empty());
    }
    let name = match description.trim() {
        "" => number.to_string(),
        description => format!("{number} {description}"),
    };
    Some(Case {
        message,
        ..Case::new(name, status)
    })
}

/// The description (with `\#` and `\\` unescaped) and the text after the
/// first unescaped `#`.
fn split_directive(text: &str) -> (String, Option<String>) {
    let mut description = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped @ ('#' | '\\'))) => description.push(escaped),
                Some((_, other)) => {
                    description.push('\\');
                    description.push(other);
                }
                None => description.push('\\'),
            },
            '#' => return (description, Some(text[at + 1..].trim().to_string())),
            c => description.push(c),
        }
    }
    (description, None)
}

/// `SKIP reason` / `todo: reason` as (`skip` | `todo`, reason); any
/// other comment is no directive. The keyword is case-insensitive and
/// may go on (`skipped`), as Test::Harness reads it.
fn directive(comment: &str) -> Option<(String, String)> {
    let word: String = comment
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let lower = word.to_ascii_lowercase();
    let keyword = if lower.starts_with("skip") {
        "skip"
    } else if lower == "todo" {
        "todo"
    } else {
        return None;
    };
    let reason = comment[word.len()..].trim_start_matches([':', ' ', '\t']);
    Some((keyword.to_string(), reason.trim().to_string()))
}

/// A subtest's cases go under the test point that closes it; its
/// problems become the test's, named after that test point.
fn attach(case: &mut Case, nested: Document, problems: &mut Vec<String>) {
    for problem in nested.problems {
        problems.push(format!("subtest `{}`: {problem}", case.name));
    }
    case.cases = nested.cases;
}

/// A YAML diagnostics block right after a test point: indented two
/// spaces, from `---` to `...`. It becomes the case's message; a
/// `duration_ms` key its duration. Returns the index after the block.
fn diagnostics(lines: &[&str], index: usize, case: &mut Case, problems: &mut Vec<String>) -> usize {
    let is = |i: usize, marker: &str| {
        lines
            .get(i)
            .is_some_and(|l| l.trim_end() == format!("  {marker}"))
    };
    if !is(index, "---") {
        return index;
    }
    let Some(end) = (index + 1..lines.len()).find(|&i| is(i, "...")) else {
        problems.push(format!(
            "the YAML block after test point `{}` has no `...` line",
            case.name
        ));
        return lines.len();
    };
    let yaml: Vec<&str> = lines[index + 1..end]
        .iter()
        .map(|l| l.get(2..).unwrap_or("").trim_end_matches('\r'))
        .collect();
    case.duration = yaml.iter().find_map(|l| {
        let millis: f64 = l.strip_prefix("duration_ms:")?.trim().parse().ok()?;
        Duration::try_from_secs_f64(millis / 1000.0).ok()
    });
    let yaml = yaml.join("\n");
    case.message = Some(match case.message.take() {
        Some(reason) => format!("{reason}\n{yaml}"),
        None => yaml,
    });
    end + 1
}

/// The plan must exist, come first or last, and match the test points.
fn check_plan(plan: Option<Plan>, document: &mut Document) {
    let ran = document.cases.len();
    let Some(plan) = plan else {
        document.problems.push(match ran {
            0 => "no TAP output (no plan, no test points)".to_string(),
            n => format!("no TAP plan (1..N) after {n} test point(s)"),
        });
        return;
    };
    if plan.after != 0 && plan.after != ran {
        document.problems.push(format!(
            "the plan 1..{} is in the middle of the test points (after {})",
            plan.count, plan.after
        ));
    }
    if plan.count != ran {
        document
            .problems
            .push(format!("planned {} tests but ran {ran}", plan.count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(text: &str) -> Document {
        let lines: Vec<&str> = text.lines().collect();
        parse(&lines)
    }

    fn summary(document: &Document) -> Vec<(String, &'static str)> {
        document
            .cases
            .iter()
            .map(|c| (c.name.clone(), c.status.label()))
            .collect()
    }

    #[test]
    fn test_points_and_the_plan() {
        let document =
            tap("TAP version 13\n1..4\nok 1 - first\nnot ok 2 second one\nok\nok 4 -\n# a comment\nsome noise\n");
        assert_eq!(
            summary(&document),
            [
                ("1 first".to_string(), "pass"),
                ("2 second one".to_string(), "fail"),
                ("3".to_string(), "pass"),
                ("4".to_string(), "pass"),
            ]
        );
        assert!(document.problems.is_empty(), "{:?}", document.problems);
        let trailing = tap("ok 1\nok 2\n1..2\n");
        assert!(trailing.problems.is_empty(), "the plan may come last");
        assert!(
            tap("okay 1\n1..0\n").cases.is_empty(),
            "`okay` is no test point"
        );
    }

    #[test]
    fn directives_skip_and_todo() {
        let document = tap(
            "1..6\nok 1 - a # SKIP no network\nnot ok 2 b # TODO not written yet\n\
             ok 3 c # todo: fixed\nok 4 d \\# not a directive\nok 5 # skipped\nok 6 - e # just a comment\n",
        );
        assert_eq!(
            summary(&document),
            [
                ("1 a".to_string(), "skip"),
                ("2 b".to_string(), "todo"),
                ("3 c".to_string(), "fixed"),
                ("4 d # not a directive".to_string(), "pass"),
                ("5".to_string(), "skip"),
                ("6 e".to_string(), "pass"),
            ]
        );
        assert_eq!(document.cases[0].message.as_deref(), Some("no network"));
        assert_eq!(
            document.cases[1].message.as_deref(),
            Some("not written yet")
        );
        assert_eq!(document.cases[2].message.as_deref(), Some("fixed"));
        assert!(document.problems.is_empty());
        assert!(super::super::case::failing(&document.cases).is_empty());
    }

    #[test]
    fn plan_problems() {
        assert_eq!(
            tap("1..3\nok 1\nok 2\n").problems,
            ["planned 3 tests but ran 2"]
        );
        assert_eq!(
            tap("1..1\nok 1\nok 2\n").problems,
            ["planned 1 tests but ran 2"]
        );
        assert_eq!(
            tap("ok 1\n").problems,
            ["no TAP plan (1..N) after 1 test point(s)"]
        );
        assert_eq!(
            tap("").problems,
            ["no TAP output (no plan, no test points)"]
        );
        assert_eq!(
            tap("ok 1\n1..2\nok 2\n").problems,
            ["the plan 1..2 is in the middle of the test points (after 1)"]
        );
        assert_eq!(tap("1..1\nok 1\n1..1\n").problems, ["a second plan `1..1`"]);
        assert_eq!(
            tap("1..2\nok 2\nok 1\n").problems,
            [
                "test point 2 is out of sequence (expected 1)",
                "test point 1 is out of sequence (expected 2)"
            ]
        );
    }

    #[test]
    fn skip_all_plan() {
        let document = tap("1..0 # Skipped: no database\n");
        assert_eq!(document.skip_all.as_deref(), Some("no database"));
        assert!(document.problems.is_empty());
        assert_eq!(
            tap("1..0\n").skip_all.as_deref(),
            Some("skipped: plan 1..0")
        );
    }

    #[test]
    fn bail_out_stops_reading() {
        let document = tap("1..3\nok 1\nBail out! database is gone\nok 2\nok 3\n");
        assert_eq!(document.cases.len(), 1);
        assert_eq!(document.problems, ["Bail out! database is gone"]);
        let nested = tap("1..1\n    1..2\n    Bail out!\nok 1 - sub\n");
        assert_eq!(nested.problems, ["Bail out!"]);
    }

    #[test]
    fn yaml_diagnostics_become_the_message() {
        let document = tap(
            "1..2\nnot ok 1 - equal\n  ---\n  message: values differ\n  data:\n    got: 1\n    expected: 2\n  duration_ms: 12.5\n  ...\nok 2\n",
        );
        assert_eq!(document.cases.len(), 2);
        let case = &document.cases[0];
        assert_eq!(
            case.message.as_deref(),
            Some("message: values differ\ndata:\n  got: 1\n  expected: 2\nduration_ms: 12.5")
        );
        assert_eq!(case.duration, Some(Duration::from_micros(12_500)));
        assert!(document.problems.is_empty(), "{:?}", document.problems);
        let open = tap("1..1\nnot ok 1\n  ---\n  message: x\n");
        assert_eq!(
            open.problems,
            ["the YAML block after test point `1` has no `...` line"]
        );
    }

    #[test]
    fn subtests_nest() {
        let document = tap(
            "TAP version 14\n1..2\n# Subtest: parser\n    1..2\n    ok 1 - tokens\n    \
             # Subtest: deeper\n        1..1\n        not ok 1 - leaf\n    not ok 2 - deeper\n\
             not ok 1 - parser\nok 2 - after\n",
        );
        assert!(document.problems.is_empty(), "{:?}", document.problems);
        assert_eq!(document.cases.len(), 2);
        let parser = &document.cases[0];
        assert_eq!(parser.name, "1 parser");
        assert_eq!(parser.status, CaseStatus::Fail);
        assert_eq!(parser.cases.len(), 2);
        assert_eq!(parser.cases[1].cases[0].name, "1 leaf");
        let wrong = tap("1..1\n    1..2\n    ok 1\nok 1 - sub\n");
        assert_eq!(
            wrong.problems,
            ["subtest `1 sub`: planned 2 tests but ran 1"]
        );
        let orphan = tap("1..0\n    1..1\n    ok 1\n");
        assert_eq!(
            orphan.problems,
            ["a subtest of 1 case(s) has no test point after it"]
        );
        let trace = tap("1..1\nnot ok 1 - throws\n    at parse (parser.js:3)\n    at main\n");
        assert!(trace.problems.is_empty(), "indented text that is not TAP");
    }

    #[test]
    fn dropped_output_is_a_problem() {
        let output = CapturedOutput {
            head: b"1..3\nok 1\n".to_vec(),
            tail: b"k 2\nok 3\n".to_vec(),
            dropped_bytes: 100,
        };
        let document = read_output(&output);
        assert_eq!(document.cases.len(), 2);
        assert_eq!(
            document.problems,
            [
                "100 bytes in the middle of stdout were over the capture limit: the TAP there was not read",
                "test point 3 is out of sequence (expected 2)",
                "planned 3 tests but ran 2"
            ]
        );
    }
}
