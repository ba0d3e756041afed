//! isotest's own end-to-end tests, on the real kernel with the real binary.
//!
//! One trial per fixture case (`fixtures/<case>/case.toml` plus its suite;
//! see case.rs for the format and hooks.rs for the hooks; cases whose suite
//! has isotest.toml files are named `config_*`), and plain trials: the
//! command line (cli.rs), malformed isotest.toml files (config_errors.rs),
//! selection, partitions and `isotest list` (selection.rs), the
//! resource-regression check (baseline.rs), and faults a fixture cannot
//! hold: hostile file names, test files vanishing mid-run (faults.rs), and
//! load: 2,000 mixed tests, fds and leftovers measured (stress.rs); the
//! cargo and go drivers on programs built in the trial (drivers.rs).
//! json.rs reads the JSON report; cases.rs checks the cases inside tests
//! (TAP, XML_OUTPUT_FILE) and the outputs they keep; html.rs opens the
//! HTML report in headless Chromium and checks the trace. shards.rs: run
//! history, time partitions and `report merge`, `--rerun-failed`,
//! `--stress`, the memory budget and Bazel's shard variables. terminal.rs
//! replays the terminal view of a run on a pseudo-terminal on an emulated
//! screen. limits.rs holds limits between tests (`cpu_weight`).
//! Every trial that creates containers needs root and fails, saying so,
//! without it, except in the rootless lane (ci/test-rootless), which runs
//! the harness as `nobody` and skips what needs root. Run with `cargo test --test harness` (filters work:
//! `cargo test --test harness ipc`).

mod baseline;
mod case;
mod cases;
mod cgroups;
mod cli;
mod config_errors;
mod drivers;
mod faults;
mod hooks;
mod html;
mod json;
mod junit;
mod limits;
mod rootfs;
mod selection;
mod services;
mod shards;
mod stress;
mod support;
mod terminal;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    if support::xmllint_skipped() {
        eprintln!(
            "note: {} is set: JUnit reports are not validated against junit-10.xsd",
            support::NO_XMLLINT
        );
    }
    let mut trials = case::trials();
    trials.extend(cli::trials());
    trials.extend(config_errors::trials());
    trials.extend(selection::trials());
    trials.extend(shards::trials());
    trials.extend(baseline::trials());
    trials.extend(faults::trials());
    trials.extend(stress::trials());
    trials.extend(rootfs::trials());
    trials.extend(limits::trials());
    trials.extend(services::trials());
    trials.extend(terminal::trials());
    trials.extend(drivers::trials());
    trials.extend(html::trials());
    if support::rootless_lane() {
        trials = trials
            .into_iter()
            .map(|trial| {
                let skip = trial.has_ignored_flag() || ROOT_ONLY.contains(&trial.name());
                trial.with_ignored_flag(skip)
            })
            .collect();
    }
    let conclusion = libtest_mimic::run(&args, trials);
    support::remove_caches();
    conclusion.exit();
}

/// Plain trials the rootless lane skips: they need cgroup limits (which
/// this host gives only to root) or manipulate cgroups themselves. Fixture
/// cases say `root_only` in their case.toml instead.
const ROOT_ONLY: &[&str] = &[
    "cli::cgroup_stale_cleanup",
    "baseline::memory_growth_is_regressed",
    "stress::two_thousand_tests",
    "limits::cgroup_cpu_weight_splits_one_cpu",
    // It switches to nobody itself.
    "cli::run_as_nobody_is_rootless",
    // It mounts an overlay on the host.
    "rootfs::overlay_refused_names_bind_mode",
    // They build with root's toolchains and caches (~/.cargo, go's).
    "drivers::cargo_same_verdicts_as_cargo_test",
    "drivers::cargo_ignored_and_filters",
    "drivers::go_same_verdicts_as_go_test",
    // They check the memory sampled from cgroups (and share that run).
    "html::page_in_chromium",
    "html::selftest_reports_console_and_policy_errors",
    "html::page_without_javascript",
    "html::report_html_from_json",
    "html::trace_matches_json",
];
