//! The command line's selection: name substrings, `--filter` regexes,
//! `--tag` / `--skip-tag`, `--include` / `--exclude` globs,
//! `--run-ignored`, `--rerun-failed` and `--partition`, applied to the
//! plan.

use std::time::Duration;

use regex::Regex;

use super::{Filter, Partition};
use crate::discover::TestCase;
use crate::history::History;
use crate::plan::PlannedTest;

/// Whether tests marked `ignore = true` run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunIgnored {
    /// No: they are reported as skipped.
    #[default]
    Default,
    /// Only they run; the others are left out.
    Only,
    /// They run with the others.
    All,
}

/// The selection flags as plain values. Within a kind any value selects a
/// test; a test must pass every kind given.
#[derive(Clone, Debug, Default)]
pub struct Criteria {
    /// Substrings of the name (positional arguments).
    pub substrings: Vec<String>,
    /// Regexes matched anywhere in the name (`--filter`).
    pub filters: Vec<String>,
    /// Tags the test must have one of (`--tag`).
    pub tags: Vec<String>,
    /// Tags that drop a test (`--skip-tag`).
    pub skip_tags: Vec<String>,
    /// Name globs a test must match one of (`--include`).
    pub include: Vec<String>,
    /// Name globs that drop a test (`--exclude`).
    pub exclude: Vec<String>,
    /// Whether ignored tests run (`--run-ignored`).
    pub run_ignored: RunIgnored,
    /// The part of the selected tests to keep (`--partition`).
    pub partition: Option<Partition>,
    /// Only the tests that did not pass last time (`--rerun-failed`).
    pub rerun_failed: bool,
}

/// Validated criteria, ready to apply.
#[derive(Clone, Debug)]
pub struct Selection {
    substrings: Vec<String>,
    filters: Vec<Regex>,
    tags: Vec<String>,
    skip_tags: Vec<String>,
    globs: Filter,
    run_ignored: RunIgnored,
    partition: Option<Partition>,
    rerun_failed: bool,
}

/// The plan after selection, each list in plan order.
#[derive(Clone, Debug)]
pub struct Selected {
    pub run: Vec<PlannedTest>,
    /// Ignored tests not run, to be reported as skipped.
    pub skipped: Vec<PlannedTest>,
    /// Tests selected before the partition was taken: those of all parts.
    pub whole: usize,
}

impl Selection {
    /// Compiles the criteria; an error names the flag and the bad pattern.
    pub fn new(criteria: Criteria) -> Result<Selection, String> {
        let filters = criteria
            .filters
            .iter()
            .map(|f| Regex::new(f).map_err(|e| format!("--filter `{f}`: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Selection {
            substrings: criteria.substrings,
            filters,
            tags: criteria.tags,
            skip_tags: criteria.skip_tags,
            globs: Filter::new(&criteria.include, &criteria.exclude)?,
            run_ignored: criteria.run_ignored,
            partition: criteria.partition,
            rerun_failed: criteria.rerun_failed,
        })
    }

    /// Filters the plan, then takes the partition. Ignored tests count in
    /// the partition even when they only get reported, so that across the
    /// N parts every test is reported exactly once. `history` answers
    /// `--rerun-failed` and gives `time:` partitions their durations.
    pub fn apply(&self, plan: Vec<PlannedTest>, history: &History) -> Selected {
        let chosen: Vec<PlannedTest> = plan
            .into_iter()
            .filter(|t| self.matches(&t.case))
            .filter(|t| self.run_ignored != RunIgnored::Only || t.settings.ignored())
            .filter(|t| !self.rerun_failed || history.failed_last_time(&t.case.name))
            .collect();
        let whole = chosen.len();
        let members = match &self.partition {
            None => vec![true; chosen.len()],
            Some(partition) => {
                let names: Vec<&str> = chosen.iter().map(|t| t.case.name.as_str()).collect();
                // A test that will only be reported takes no time.
                let durations: Vec<Option<Duration>> = chosen
                    .iter()
                    .map(|t| {
                        if self.reported_only(t) {
                            Some(Duration::ZERO)
                        } else {
                            history.duration(&t.case.name)
                        }
                    })
                    .collect();
                partition.members(&names, &durations)
            }
        };
        let (skipped, run) = chosen
            .into_iter()
            .zip(members)
            .filter(|(_, member)| *member)
            .map(|(t, _)| t)
            .partition(|t| self.reported_only(t));
        Selected {
            run,
            skipped,
            whole,
        }
    }

    /// Whether the test is ignored and not run, only reported as skipped.
    fn reported_only(&self, test: &PlannedTest) -> bool {
        self.run_ignored == RunIgnored::Default && test.settings.ignored()
    }

    fn matches(&self, case: &TestCase) -> bool {
        let name = case.name.as_str();
        let has_tag = |tags: &[String]| tags.iter().any(|tag| case.tags.contains(tag));
        (self.substrings.is_empty() || self.substrings.iter().any(|s| name.contains(s.as_str())))
            && (self.filters.is_empty() || self.filters.iter().any(|f| f.is_match(name)))
            && (self.tags.is_empty() || has_tag(&self.tags))
            && !has_tag(&self.skip_tags)
            && self.globs.matches(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{flag, Settings};
    use crate::discover::Program;
    use std::path::PathBuf;

    fn test(name: &str, tags: &[&str], ignored: bool) -> PlannedTest {
        PlannedTest {
            case: TestCase {
                name: name.to_string(),
                suite: name
                    .rsplit_once('/')
                    .map_or("tests", |(s, _)| s)
                    .to_string(),
                program: Program::File(PathBuf::from("/tests").join(name)),
                dir: PathBuf::from("/tests"),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                default_dir: false,
                harness: None,
                host_dirs: Vec::new(),
            },
            settings: Settings {
                ignore: flag(ignored, "test"),
                ..Settings::default()
            },
            services: Vec::new(),
        }
    }

    fn plan() -> Vec<PlannedTest> {
        vec![
            test("db/migrate.sh", &["db", "slow"], false),
            test("db/query.sh", &["db"], false),
            test("net/echo.sh", &["net"], false),
            test("net/flaky.sh", &["net", "flaky"], true),
            test("smoke.sh", &[], false),
        ]
    }

    fn own(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn names(tests: &[PlannedTest]) -> Vec<&str> {
        tests.iter().map(|t| t.case.name.as_str()).collect()
    }

    /// The names run with `criteria` over `plan()`.
    fn run(criteria: Criteria) -> Vec<String> {
        let selected = Selection::new(criteria)
            .unwrap()
            .apply(plan(), &History::default());
        names(&selected.run).into_iter().map(String::from).collect()
    }

    #[test]
    fn no_criteria_runs_all_but_ignored() {
        let selected = Selection::new(Criteria::default())
            .unwrap()
            .apply(plan(), &History::default());
        assert_eq!(
            names(&selected.run),
            ["db/migrate.sh", "db/query.sh", "net/echo.sh", "smoke.sh"]
        );
        assert_eq!(names(&selected.skipped), ["net/flaky.sh"]);
    }

    #[test]
    fn substrings_select_any() {
        let criteria = Criteria {
            substrings: own(&["query", "echo"]),
            ..Criteria::default()
        };
        assert_eq!(run(criteria), ["db/query.sh", "net/echo.sh"]);
    }

    #[test]
    fn regex_filters_select_any() {
        let criteria = Criteria {
            filters: own(&["^db/m", r"o\.sh$"]),
            ..Criteria::default()
        };
        assert_eq!(run(criteria), ["db/migrate.sh", "net/echo.sh"]);
    }

    #[test]
    fn bad_regex_names_flag_and_pattern() {
        let error = Selection::new(Criteria {
            filters: own(&["ok", "a(b"]),
            ..Criteria::default()
        })
        .unwrap_err();
        assert!(error.starts_with("--filter `a(b`: "), "{error}");
    }

    #[test]
    fn tags_select_any_and_skip_tags_drop() {
        let tagged = Criteria {
            tags: own(&["slow", "net"]),
            ..Criteria::default()
        };
        assert_eq!(run(tagged), ["db/migrate.sh", "net/echo.sh"]);
        let skipping = Criteria {
            tags: own(&["db"]),
            skip_tags: own(&["slow"]),
            ..Criteria::default()
        };
        assert_eq!(run(skipping), ["db/query.sh"]);
    }

    #[test]
    fn globs_and_kinds_combine() {
        let criteria = Criteria {
            substrings: own(&["e"]),
            include: own(&["db/*", "*.sh"]),
            exclude: own(&["db/query.sh"]),
            ..Criteria::default()
        };
        assert_eq!(run(criteria), ["db/migrate.sh", "smoke.sh"]);
        let error = Selection::new(Criteria {
            exclude: own(&["["]),
            ..Criteria::default()
        })
        .unwrap_err();
        assert!(error.starts_with("--exclude `[`"), "{error}");
    }

    #[test]
    fn run_ignored_modes() {
        let select = |run_ignored| {
            Selection::new(Criteria {
                substrings: own(&["net/"]),
                run_ignored,
                ..Criteria::default()
            })
            .unwrap()
            .apply(plan(), &History::default())
        };
        let default = select(RunIgnored::Default);
        assert_eq!(names(&default.run), ["net/echo.sh"]);
        assert_eq!(names(&default.skipped), ["net/flaky.sh"]);
        let only = select(RunIgnored::Only);
        assert_eq!(names(&only.run), ["net/flaky.sh"]);
        assert!(only.skipped.is_empty(), "the others are not reported");
        let all = select(RunIgnored::All);
        assert_eq!(names(&all.run), ["net/echo.sh", "net/flaky.sh"]);
        assert!(all.skipped.is_empty());
    }

    #[test]
    fn partitions_come_after_filters_and_cover_skipped_tests_once() {
        let plan: Vec<PlannedTest> = (0..300)
            .map(|i| test(&format!("s{}/t{i}", i % 5), &[], i % 4 == 0))
            .chain([test("dropped", &["slow"], false)])
            .collect();
        // Durations for some tests, so that time: packs and hashes both.
        let runs: Vec<(String, f64)> = (0..300)
            .filter(|i| i % 3 != 0)
            .map(|i| (format!("s{}/t{i}", i % 5), f64::from(i % 17)))
            .collect();
        let runs: Vec<(&str, &str, f64)> =
            runs.iter().map(|(n, d)| (n.as_str(), "PASS", *d)).collect();
        let history = crate::history::tests::history(&runs);
        for kind in ["hash", "slice", "time"] {
            for parts in [1, 2, 3, 7] {
                let mut reported = Vec::new();
                for part in 1..=parts {
                    let selected = Selection::new(Criteria {
                        skip_tags: own(&["slow"]),
                        partition: Some(format!("{kind}:{part}/{parts}").parse().unwrap()),
                        ..Criteria::default()
                    })
                    .unwrap()
                    .apply(plan.clone(), &history);
                    assert!(selected.run.iter().all(|t| !t.settings.ignored()));
                    assert!(selected.skipped.iter().all(|t| t.settings.ignored()));
                    reported.extend(names(&selected.run).into_iter().map(String::from));
                    reported.extend(names(&selected.skipped).into_iter().map(String::from));
                }
                reported.sort();
                let mut expected: Vec<String> =
                    names(&plan[..300]).into_iter().map(String::from).collect();
                expected.sort();
                assert_eq!(reported, expected, "{kind} with {parts} parts");
            }
        }
    }

    #[test]
    fn slices_count_positions_after_filtering() {
        let criteria = Criteria {
            substrings: own(&["db/", "net/"]),
            partition: Some("slice:2/2".parse().unwrap()),
            ..Criteria::default()
        };
        let selected = Selection::new(criteria)
            .unwrap()
            .apply(plan(), &History::default());
        assert_eq!(names(&selected.run), ["db/query.sh"]);
        assert_eq!(names(&selected.skipped), ["net/flaky.sh"]);
    }

    #[test]
    fn ignored_tests_weigh_nothing_in_time_parts() {
        let history = crate::history::tests::history(&[
            ("db/migrate.sh", "PASS", 4.0),
            ("db/query.sh", "PASS", 2.0),
            ("net/echo.sh", "PASS", 2.0),
            ("smoke.sh", "PASS", 0.0),
        ]);
        let part = |k| {
            let criteria = Criteria {
                partition: Some(format!("time:{k}/2").parse().unwrap()),
                ..Criteria::default()
            };
            let selected = Selection::new(criteria).unwrap().apply(plan(), &history);
            names(&selected.run).join(" ")
        };
        // net/flaky.sh is ignored: were it counted as the median (2 s), one
        // part would hold it instead of a test that runs.
        assert_eq!(part(1), "db/migrate.sh smoke.sh");
        assert_eq!(part(2), "db/query.sh net/echo.sh");
    }

    #[test]
    fn rerun_failed_keeps_what_did_not_pass() {
        let history = crate::history::tests::history(&[
            ("db/migrate.sh", "PASS", 1.0),
            ("db/query.sh", "FAIL", 1.0),
            ("net/echo.sh", "NOT-RUN", 0.0),
            ("smoke.sh", "FLAKY", 1.0),
        ]);
        let criteria = Criteria {
            rerun_failed: true,
            ..Criteria::default()
        };
        let selected = Selection::new(criteria).unwrap().apply(plan(), &history);
        assert_eq!(names(&selected.run), ["db/query.sh", "net/echo.sh"]);
    }
}
