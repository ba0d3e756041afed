//! A diagnosis for people (a verdict, then a line per check with its fix
//! below, levels in the shared styles) and for programs (JSON).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::Diagnosis;
use crate::style::Styles;

impl Diagnosis {
    /// A verdict, then one line per check with its fix below, the levels
    /// painted in `styles`.
    pub fn render_text(&self, styles: Styles) -> String {
        let mut out = format!("isotest doctor: {}\n", self.verdict());
        for check in &self.checks {
            let label = styles.paint(check.level.tone(), &format!("{:>8}", check.level.label()));
            let _ = writeln!(out, "{label}  {:<16}{}", check.name, check.finding);
            if let Some(fix) = &check.fix {
                let _ = writeln!(out, "{:26}fix: {fix}", "");
            }
        }
        out
    }

    /// `{ can_run_tests, checks: [{ name, level, finding, fix }], kernel, cgroup_layout }`.
    pub fn to_json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "level": c.level.label().to_lowercase(),
                    "finding": c.finding,
                    "fix": c.fix,
                })
            })
            .collect();
        json!({
            "can_run_tests": self.can_run_tests(),
            "checks": checks,
            "kernel": self.kernel,
            "cgroup_layout": self.cgroup_layout.to_string(),
        })
    }
}
