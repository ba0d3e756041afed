//! Selection: filters, tags, `--run-ignored`, `--rerun-failed` and
//! `--partition` reduce the planned tests to those this run runs (and the
//! ignored ones it reports); `order` says in which order they start.
//! Name globs live here: `*` does not cross `/`; `**` does.

pub mod expression;
mod order;
mod partition;
mod selection;

pub use order::Order;
pub(crate) use partition::fnv1a_64;
pub use partition::Partition;
pub use selection::{Criteria, RunIgnored, Selected, Selection};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Include and exclude globs matched against test names.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Filter {
    /// Builds a filter; an empty include list includes everything.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let include = if include.is_empty() {
            None
        } else {
            Some(build_set(include, "--include")?)
        };
        Ok(Filter {
            include,
            exclude: build_set(exclude, "--exclude")?,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        let included = self.include.as_ref().is_none_or(|set| set.is_match(name));
        included && !self.exclude.is_match(name)
    }
}

fn build_set(patterns: &[String], flag: &str) -> Result<GlobSet, String> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(glob(pattern).map_err(|e| format!("{flag} `{pattern}`: {e}"))?);
    }
    builder.build().map_err(|e| format!("{flag}: {e}"))
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> Filter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Filter::new(&own(include), &own(exclude)).unwrap()
    }

    #[test]
    fn empty_filter_matches_all() {
        assert!(filter(&[], &[]).matches("anything/at/all.sh"));
    }

    #[test]
    fn include_globs_with_classes() {
        let f = filter(&["t[0-9]*.sh"], &[]);
        assert!(f.matches("t1.sh"));
        assert!(f.matches("t42_slow.sh"));
        assert!(!f.matches("tx.sh"));
        assert!(!f.matches("sub/t1.sh"), "* must not cross /");
        assert!(filter(&["**/t1.sh"], &[]).matches("sub/deep/t1.sh"));
    }

    #[test]
    fn exclude_wins_over_include() {
        let f = filter(&["net/*"], &["net/slow_*"]);
        assert!(f.matches("net/echo.sh"));
        assert!(!f.matches("net/slow_echo.sh"));
        assert!(!f.matches("db/migrate.sh"));
    }

    #[test]
    fn bad_glob_names_flag_and_pattern() {
        let err = Filter::new(&["a[".to_string()], &[]).unwrap_err();
        assert!(err.contains("--include `a[`"), "{err}");
    }
}
