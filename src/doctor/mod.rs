//! `isotest doctor`: what this host offers and what isotest will do with it,
//! in three steps: `probe` reads the host into plain facts (the only step
//! that touches it, through the sandbox's public API), `decide` turns facts
//! into checks (pure, so tests can feed it any host), and `render` shows a
//! diagnosis as text or JSON. Doctor changes nothing: its probes (a
//! namespace set, a cgroup `isotest-doctor-<pid>`) are gone again before it
//! returns.

mod decide;
mod probe;
mod render;
#[cfg(test)]
mod tests;

use crate::sandbox::CgroupLayout;
use crate::style::Tone;

/// How far a check stands between this host and a full isotest run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Tests run, without something (limits, a figure, a future mode).
    Degraded,
    /// Tests cannot run here.
    Missing,
}

impl Level {
    pub(super) fn label(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Degraded => "DEGRADED",
            Level::Missing => "MISSING",
        }
    }

    pub(super) fn tone(self) -> Tone {
        match self {
            Level::Ok => Tone::Good,
            Level::Degraded => Tone::Warn,
            Level::Missing => Tone::Bad,
        }
    }
}

/// One line of the diagnosis; `fix` is set for every level but OK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub finding: String,
    pub fix: Option<String>,
}

impl Check {
    pub(super) fn ok(name: &'static str, finding: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Ok,
            finding: finding.into(),
            fix: None,
        }
    }

    pub(super) fn degraded(
        name: &'static str,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::with_fix(name, Level::Degraded, finding, fix)
    }

    pub(super) fn missing(
        name: &'static str,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::with_fix(name, Level::Missing, finding, fix)
    }

    fn with_fix(
        name: &'static str,
        level: Level,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            level,
            finding: finding.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// The kernel release, as uname -r prints it.
    pub kernel: String,
    pub cgroup_layout: CgroupLayout,
    pub checks: Vec<Check>,
}

impl Diagnosis {
    /// Nothing isotest cannot work without is missing.
    pub fn can_run_tests(&self) -> bool {
        self.checks.iter().all(|c| c.level != Level::Missing)
    }

    pub(super) fn verdict(&self) -> &'static str {
        if !self.can_run_tests() {
            "this host cannot run tests"
        } else if self.checks.iter().any(|c| c.level == Level::Degraded) {
            "this host can run tests, with limitations"
        } else {
            "this host can run tests"
        }
    }
}

/// Reads the host and runs every check.
pub fn examine() -> Diagnosis {
    decide::diagnose(&probe::HostFacts::read())
}
