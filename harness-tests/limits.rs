//! Limits that are relations between tests rather than bounds on one:
//! `cpu_weight` shares a contended CPU between concurrent tests.

use libtest_mimic::{Failed, Trial};

use crate::json;
use crate::support::{self, isotest};

pub fn trials() -> Vec<Trial> {
    vec![Trial::test(
        "limits::cgroup_cpu_weight_splits_one_cpu",
        cgroup_cpu_weight_splits_one_cpu,
    )]
}

/// How long both tests spin on CPU 0 at the same time.
const BUSY_SECS: u32 = 3;

/// Two tests spinning on the same CPU at once, with `cpu_weight` 300 and
/// 100, split it 3:1 (within 15%), as cgroup v2 `cpu.weight` or v1
/// `cpu.shares` divide a contended CPU. Other load on that CPU takes from
/// both alike, so the ratio holds on a busy host too.
fn cgroup_cpu_weight_splits_one_cpu() -> Result<(), Failed> {
    support::require_root()?;
    // Each test spins for a fixed wall time, pinned to CPU 0, then stops.
    let busy =
        format!("taskset -c 0 sh -c 'while :; do :; done' & sleep {BUSY_SECS}; kill $!; wait");
    let config = format!(
        "[[test]]\nname = \"heavy\"\ncommand = \"{busy}\"\ncpu_weight = 300\n\n\
         [[test]]\nname = \"light\"\ncommand = \"{busy}\"\ncpu_weight = 100\n"
    );
    let suite = support::suite(&[])?;
    std::fs::write(suite.path().join("isotest.toml"), config)?;
    let report = suite.path().join("report.json");
    let mut command = isotest();
    command
        .args(["run", "-j2", "--json"])
        .arg(&report)
        .arg(suite.path());
    let finished = support::run(command)?;
    if finished.code != 0 {
        return Err(format!(
            "expected both tests to pass\nisotest {}",
            finished.describe()
        )
        .into());
    }
    let report = json::read(&report)?;
    let mut problems = Vec::new();
    let tests = json::tests(&report, &mut problems);
    let cpu_usec = |name: &str| -> Result<f64, String> {
        let test = tests
            .get(name)
            .ok_or(format!("{name} is not in the report"))?;
        let usage = &test["usage"];
        match (
            usage["cpu_user_usec"].as_u64(),
            usage["cpu_system_usec"].as_u64(),
        ) {
            (Some(user), Some(system)) => Ok((user + system) as f64),
            _ => Err(format!("{name} has no CPU figures: {usage}")),
        }
    };
    let (heavy, light) = (cpu_usec("heavy")?, cpu_usec("light")?);
    if !problems.is_empty() {
        return Err(problems.join("\n").into());
    }
    let ratio = heavy / light.max(1.0);
    if !(2.55..=3.45).contains(&ratio) {
        return Err(format!(
            "CPU time heavy : light is {ratio:.2} ({heavy} µs : {light} µs), expected 3 ± 15% \
             (weights 300 and 100 on one CPU)"
        )
        .into());
    }
    Ok(())
}
