//! The cases inside one test (TAP test points, JUnit testcases the test
//! wrote), and which of them fail it.

use std::time::Duration;

/// How one case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaseStatus {
    Pass,
    Fail,
    /// The case could not run (a JUnit `<error>`).
    Error,
    /// `# SKIP`, or a JUnit `<skipped>`.
    Skip,
    /// `not ok ... # TODO`: a known failure, which does not fail the test.
    Todo,
    /// `ok ... # TODO`: a TODO case that passes (TAP's "bonus").
    Fixed,
}

impl CaseStatus {
    /// The lower-case label in reports.
    pub fn label(self) -> &'static str {
        match self {
            CaseStatus::Pass => "pass",
            CaseStatus::Fail => "fail",
            CaseStatus::Error => "error",
            CaseStatus::Skip => "skip",
            CaseStatus::Todo => "todo",
            CaseStatus::Fixed => "fixed",
        }
    }

    pub const ALL: [CaseStatus; 6] = [
        CaseStatus::Pass,
        CaseStatus::Fail,
        CaseStatus::Error,
        CaseStatus::Skip,
        CaseStatus::Todo,
        CaseStatus::Fixed,
    ];

    /// The status a label names (as `--json` reports write it).
    pub fn from_label(label: &str) -> Option<CaseStatus> {
        CaseStatus::ALL.into_iter().find(|s| s.label() == label)
    }

    /// Whether this case fails its test.
    pub fn fails(self) -> bool {
        matches!(self, CaseStatus::Fail | CaseStatus::Error)
    }
}

/// One case of a test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// `3 parses empty input` for TAP (number and description);
    /// `classname.name` for a JUnit testcase.
    pub name: String,
    pub status: CaseStatus,
    /// Why it failed or was skipped: the directive's reason, YAML
    /// diagnostics, a JUnit failure's message and text.
    pub message: Option<String>,
    pub duration: Option<Duration>,
    /// Nested cases: a TAP 14 subtest's test points.
    pub cases: Vec<Case>,
}

impl Case {
    pub fn new(name: String, status: CaseStatus) -> Case {
        Case {
            name,
            status,
            message: None,
            duration: None,
            cases: Vec::new(),
        }
    }

    /// This case and every nested one, parents first, each with its path
    /// of names from the top (`["2 parent", "1 child"]`).
    pub fn walk(cases: &[Case]) -> Vec<(Vec<&str>, &Case)> {
        let mut all = Vec::new();
        for case in cases {
            all.push((vec![case.name.as_str()], case));
            for (mut path, nested) in Case::walk(&case.cases) {
                path.insert(0, case.name.as_str());
                all.push((path, nested));
            }
        }
        all
    }
}

/// Every case at every depth.
pub fn count(cases: &[Case]) -> usize {
    cases.iter().map(|c| 1 + count(&c.cases)).sum()
}

/// The cases that fail their test, with their paths joined by `::`. Inside
/// a TODO case nothing fails the test.
pub fn failing(cases: &[Case]) -> Vec<(String, &Case)> {
    let mut failed = Vec::new();
    for case in cases {
        if case.status.fails() {
            failed.push((case.name.clone(), case));
        } else if !matches!(case.status, CaseStatus::Todo | CaseStatus::Fixed) {
            failed.extend(
                failing(&case.cases)
                    .into_iter()
                    .map(|(path, nested)| (format!("{}::{path}", case.name), nested)),
            );
        }
    }
    failed
}

/// The names kept in a test's message; the rest are counted.
const NAMED_FAILURES: usize = 5;

/// `2 of 87 cases failed: 3 parses input, 7 exits` when cases failed.
pub fn failures(cases: &[Case]) -> Option<String> {
    let failed: Vec<String> = failing(cases).into_iter().map(|(path, _)| path).collect();
    if failed.is_empty() {
        return None;
    }
    let mut named = failed[..failed.len().min(NAMED_FAILURES)].join(", ");
    if failed.len() > NAMED_FAILURES {
        named.push_str(&format!(" and {} more", failed.len() - NAMED_FAILURES));
    }
    Some(format!(
        "{} of {} cases failed: {named}",
        failed.len(),
        count(cases)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, status: CaseStatus, cases: Vec<Case>) -> Case {
        Case {
            cases,
            ..Case::new(name.to_string(), status)
        }
    }

    #[test]
    fn failures_count_every_depth_but_not_inside_todo() {
        let cases = vec![
            case("1 a", CaseStatus::Pass, vec![]),
            case(
                "2 parent",
                CaseStatus::Fail,
                vec![case("1 child", CaseStatus::Fail, vec![])],
            ),
            case(
                "3 ok parent",
                CaseStatus::Pass,
                vec![case("1 bad child", CaseStatus::Error, vec![])],
            ),
            case(
                "4 todo",
                CaseStatus::Todo,
                vec![case("1 known", CaseStatus::Fail, vec![])],
            ),
            case("5 skipped", CaseStatus::Skip, vec![]),
        ];
        assert_eq!(count(&cases), 8);
        let paths: Vec<String> = failing(&cases).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["2 parent", "3 ok parent::1 bad child"]);
        assert_eq!(
            failures(&cases).as_deref(),
            Some("2 of 8 cases failed: 2 parent, 3 ok parent::1 bad child")
        );
        assert_eq!(failures(&cases[..1]), None);
        let paths: Vec<String> = Case::walk(&cases)
            .into_iter()
            .map(|(path, _)| path.join("::"))
            .collect();
        assert_eq!(paths[1..3], ["2 parent", "2 parent::1 child"]);
    }

    #[test]
    fn long_lists_of_failures_are_cut() {
        let cases: Vec<Case> = (1..=7)
            .map(|n| case(&n.to_string(), CaseStatus::Fail, vec![]))
            .collect();
        assert_eq!(
            failures(&cases).as_deref(),
            Some("7 of 7 cases failed: 1, 2, 3, 4, 5 and 2 more")
        );
    }
}
