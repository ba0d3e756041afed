//! isotest's own end-to-end tests, on the real kernel with the real binary.
//!
//! One trial per fixture case (`fixtures/<case>/case.toml` plus its suite;
//! see case.rs for the format and hooks.rs for the hooks), and plain trials
//! for the command line (cli.rs). Every trial that creates containers needs
//! root and fails, saying so, without it. Run with
//! `cargo test --test harness` (filters work: `cargo test --test harness ipc`).

mod case;
mod cgroups;
mod cli;
mod hooks;
mod junit;
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
    libtest_mimic::run(&args, trials).exit();
}
