//! The terminal view as people see it: isotest runs on a pseudo-terminal
//! (`script`) of a given size, and what it wrote is replayed on an
//! emulated screen (vt100) of that width, so a line that wrapped, or a
//! progress line left behind, shows as it would. And colour: a test's own
//! escape codes reach a terminal with colour on and nothing else.

use std::path::Path;
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::support::{self, Finished, ISOTEST};

type Check = fn() -> Result<(), Failed>;

pub fn trials() -> Vec<Trial> {
    let trials: [(&str, Check); 3] = [
        (
            "progress_line_fits_a_narrow_terminal",
            progress_line_fits_a_narrow_terminal,
        ),
        (
            "test_colours_are_stripped_with_colour_off",
            test_colours_are_stripped_with_colour_off,
        ),
        (
            "test_colours_reach_a_colour_terminal",
            test_colours_reach_a_colour_terminal,
        ),
    ];
    trials
        .into_iter()
        .map(|(name, check)| Trial::test(format!("terminal::{name}"), check))
        .collect()
}

/// What a failing test prints: red, bold, and a hyperlink.
const COLOURED: &str =
    r"printf '\033[31mred\033[0m \033[1mbold\033[0m \033]8;;http://x\007link\033]8;;\007\n'";

/// Two slow tests with names longer than the terminal is wide, and a
/// failing one that prints escape codes.
fn suite() -> Result<tempfile::TempDir, String> {
    let slow = "#!/bin/sh\nsleep 1.2\n";
    support::suite(&[
        ("a_test_whose_name_is_wider_than_forty_columns_1.sh", slow),
        ("a_test_whose_name_is_wider_than_forty_columns_2.sh", slow),
        ("colours.sh", &format!("#!/bin/sh\n{COLOURED}\nexit 1\n")),
    ])
}

/// `isotest run -j2 SUITE` on a pseudo-terminal of `columns` × 24, with
/// `env` added (`script` passes its environment on).
fn run_on_terminal(suite: &Path, columns: u16, env: &[(&str, &str)]) -> Result<Finished, String> {
    let inner = format!(
        "stty rows 24 cols {columns} && exec {ISOTEST} run -j2 {}",
        suite.display()
    );
    let mut command = Command::new("script");
    command.args(["-q", "-e", "-c", &inner, "/dev/null"]);
    command
        .current_dir(support::manifest_dir())
        .env_remove("NO_COLOR");
    command.envs(env.iter().copied());
    support::run(command)
}

/// The screen after `output`, on a terminal `columns` wide and tall enough
/// that nothing scrolls away.
fn replay(output: &str, columns: u16) -> vt100::Parser {
    let mut screen = vt100::Parser::new(500, columns, 0);
    screen.process(output.as_bytes());
    screen
}

fn describe(finished: &Finished, screen: &vt100::Parser) -> String {
    format!(
        "isotest exit code {}\n--- screen ---\n{}\n--- raw ---\n{:?}",
        finished.code,
        screen.screen().contents(),
        support::shorten(&finished.stdout)
    )
}

/// On a 40-column terminal the live line was drawn, never wider than the
/// terminal (a wider one wraps, and erasing it leaves its first row on the
/// screen), and is gone at the end.
fn progress_line_fits_a_narrow_terminal() -> Result<(), Failed> {
    support::require_root()?;
    let suite = suite()?;
    let finished = run_on_terminal(suite.path(), 40, &[("NO_COLOR", "1")])?;
    let screen = replay(&finished.stdout, 40);
    let contents = screen.screen().contents();
    let mut problems = Vec::new();
    if finished.code != 100 {
        problems.push("expected exit code 100 (one test fails)".to_string());
    }
    if !finished.stdout.contains(" running") {
        problems.push("no progress line was drawn on the terminal".to_string());
    }
    if !contents.contains("Summary [") {
        problems.push("no summary on the screen".to_string());
    }
    let left_behind: Vec<&str> = contents
        .lines()
        .filter(|row| row.contains(" running"))
        .collect();
    if !left_behind.is_empty() {
        problems.push(format!(
            "progress line rows left on the screen: {left_behind:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{}", problems.join("\n"), describe(&finished, &screen)).into())
    }
}

/// Colour off (stdout is a pipe, or NO_COLOR on a terminal): the failing
/// test's output is shown without its escape codes, and nothing else is
/// coloured either.
fn test_colours_are_stripped_with_colour_off() -> Result<(), Failed> {
    support::require_root()?;
    let suite = suite()?;
    let mut piped = support::isotest();
    piped.arg("run").arg("-j2").arg(suite.path());
    let piped = support::run(piped)?;
    let on_terminal = run_on_terminal(suite.path(), 80, &[("NO_COLOR", "1")])?;
    for (what, finished) in [("piped", &piped), ("NO_COLOR on a terminal", &on_terminal)] {
        let colour_codes = ["\x1b[31m", "\x1b[1m", "\x1b]8;"];
        let plain = finished.stdout.contains("red bold link");
        if finished.code != 100
            || !plain
            || colour_codes.iter().any(|c| finished.stdout.contains(c))
        {
            return Err(format!(
                "{what}: expected the test's output as plain `red bold link` and no colour codes\nisotest {}",
                finished.describe()
            )
            .into());
        }
    }
    Ok(())
}

/// Colour on (a terminal, no NO_COLOR): statuses are coloured and the
/// test's own escape codes are passed through as it wrote them.
fn test_colours_reach_a_colour_terminal() -> Result<(), Failed> {
    support::require_root()?;
    let suite = suite()?;
    let finished = run_on_terminal(suite.path(), 80, &[])?;
    let passed_through = finished
        .stdout
        .contains("\x1b[31mred\x1b[0m \x1b[1mbold\x1b[0m");
    let painted_status = finished.stdout.contains("\x1b[32m    PASS\x1b[0m");
    if finished.code == 100 && passed_through && painted_status {
        Ok(())
    } else {
        Err(format!(
            "expected coloured statuses and the test's own colours\nisotest {}",
            finished.describe()
        )
        .into())
    }
}
