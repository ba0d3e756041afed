//! isotest's own end-to-end tests, on the real kernel with the real binary.
//!
//! One trial per fixture case (`fixtures/<case>/case.toml` plus its suite;
//! see case.rs for the format and hooks.rs for the hooks; cases whose suite
//! has isotest.toml files are named `config_*`), and plain trials: the
//! command line (cli.rs), malformed isotest.toml files (config_errors.rs),
//! selection, partitions and `isotest list` (selection.rs), the
//! resource-regression check (baseline.rs), and faults a fixture cannot
//! hold: hostile file names, test files vanishing mid-run (faults.rs), and
//! load: 2,000 mixed tests, fds and leftovers measured (stress.rs).
//! json.rs reads the JSON report.
//! Every trial that creates containers needs root and fails, saying so,
//! without it. Run with `cargo test --test harness` (filters work:
//! `cargo test --test harness ipc`).

mod baseline;
mod case;
mod cgroups;
mod cli;
mod config_errors;
mod faults;
mod hooks;
mod json;
mod junit;
mod selection;
mod stress;
mod support;

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
    trials.extend(baseline::trials());
    trials.extend(faults::trials());
    trials.extend(stress::trials());
    libtest_mimic::run(&args, trials).exit();
}
