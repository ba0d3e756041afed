//! Services and their networks when the runner dies: SIGINT, SIGTERM and
//! SIGKILL of `isotest run` while a test and its service run leave no
//! service or test process, no network holder, no `isotest-*` link on the
//! host; after SIGKILL the next run removes the cgroups the dead one left.

use std::collections::BTreeSet;
use std::time::Duration;

use libtest_mimic::{Failed, Trial};
use nix::sys::signal::Signal;

use crate::support::{self, wait_until};
use crate::{cgroups, hooks};

pub fn trials() -> Vec<Trial> {
    [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL]
        .into_iter()
        .map(|signal| {
            let name = format!(
                "services::runner_{}_leaves_nothing",
                signal.as_str().to_lowercase()
            );
            Trial::test(name, move || runner_killed_leaves_nothing(signal))
        })
        .collect()
}

/// The suite: a test with a service, both sleeping with a marker of the
/// signal's own; as root the test's network is outbound (so the host gets
/// an uplink link), which rootless cannot have.
fn suite(service_marker: &str, test_marker: &str) -> Result<tempfile::TempDir, String> {
    let suite = support::suite(&[])?;
    let network = if support::rootless_lane() {
        "none"
    } else {
        "outbound"
    };
    let config = format!(
        "[[service]]\nname = \"sleeper\"\ncommand = \"exec sleep {service_marker}\"\n\n\
         [[test]]\nname = \"waits\"\nnetwork = \"{network}\"\nservices = [\"sleeper\"]\n\
         command = \"exec sleep {test_marker}\"\n"
    );
    support::write_file(&suite.path().join("isotest.toml"), &config, 0o644)?;
    Ok(suite)
}

fn runner_killed_leaves_nothing(signal: Signal) -> Result<(), Failed> {
    support::require_root()?;
    let number = signal as i32;
    let service_marker = format!("1000.61{number:02}");
    let test_marker = format!("1000.62{number:02}");
    let suite = suite(&service_marker, &test_marker)?;
    let links_before = isotest_links();

    let mut command = support::isotest();
    command.arg("run").arg(suite.path());
    let runner = support::start(command)?;
    let pid = runner.pid();
    let helper = format!("__sandbox-server {pid}");
    let started = wait_until(Duration::from_secs(15), || {
        !hooks::processes_with(&service_marker).is_empty()
            && !hooks::processes_with(&test_marker).is_empty()
    });
    let new_links = isotest_links().difference(&links_before).count();
    runner.signal(signal)?;
    let finished = runner.finish_within(Duration::from_secs(30))?;
    let mut problems = Vec::new();
    if !started {
        problems.push("within 15 s the service and the test did not both start".to_string());
    }
    if new_links == 0 && !support::rootless_lane() {
        problems.push("no isotest-* link appeared on the host for the outbound test".into());
    }
    wait_until(Duration::from_secs(5), || {
        [&service_marker, &test_marker, &helper]
            .iter()
            .all(|marker| hooks::processes_with(marker).is_empty())
            && isotest_links().is_subset(&links_before)
    });
    for (marker, what) in [
        (&service_marker, "service"),
        (&test_marker, "test"),
        (
            &helper,
            "sandbox helper (server, supervisor or network holder)",
        ),
    ] {
        if let Err(e) = hooks::kill_leftovers(marker) {
            problems.push(format!("5 s after {signal}: a {what} survived: {e}"));
        }
    }
    let left_links: Vec<String> = isotest_links().difference(&links_before).cloned().collect();
    if !left_links.is_empty() {
        problems.push(format!(
            "5 s after {signal}: host links left: {left_links:?}"
        ));
    }
    if signal == Signal::SIGKILL {
        let trivial = support::suite(&[("passes.sh", "#!/bin/sh\nexit 0\n")])?;
        let mut next = support::isotest();
        next.arg("run").arg(trivial.path());
        support::run(next)?;
    }
    let cgroups = cgroups::of_runner(pid);
    if !cgroups.is_empty() {
        cgroups::remove(&cgroups);
        problems.push(format!("cgroups of the runner left: {cgroups:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nisotest {}", problems.join("\n"), finished.describe()).into())
    }
}

/// The host's links named `isotest-*` (outbound uplinks).
fn isotest_links() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("isotest-"))
                .collect()
        })
        .unwrap_or_default()
}
