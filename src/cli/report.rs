//! `isotest report merge SHARD.json... [--junit OUT.xml] [--json OUT.json]`:
//! one report from the shards of a run, written by the same reporters a
//! run uses, with the run's summary on the terminal; `isotest report html`
//! (report_html.rs): the HTML page of a --json report.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::run::Destinations;
use super::{exit, fail};
use crate::report::merge::merge;
use crate::report::{JsonReporter, JunitReporter, Reporter, TerminalReporter};
use crate::run::Event;
use crate::style::{color_wanted, Styles};

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// One report from the --json reports of a run's shards.
    Merge(MergeArgs),
    /// Write a self-contained HTML page of a --json report.
    Html(super::report_html::HtmlArgs),
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' --json reports.
    #[arg(required = true, value_name = "SHARD.json")]
    pub shards: Vec<PathBuf>,
    /// Write the merged JUnit XML report to PATH.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the merged JSON report to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Fail unless exactly N shards are given (and they are parts of N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub expect_shards: Option<u64>,
}

/// Exit 0 when every test of the merged run passed, 100 when one did not,
/// 2 when the shards do not merge or a report cannot be written.
pub fn run(args: ReportArgs) -> i32 {
    let args = match args.command {
        ReportCommand::Merge(args) => args,
        ReportCommand::Html(args) => return super::report_html::html(args),
    };
    let merged = match merge(&args.shards, args.expect_shards) {
        Ok(merged) => merged,
        Err(error) => return fail(format!("report merge: {error}"), exit::BAD_USAGE),
    };
    let Destinations {
        junit,
        json,
        to_stdout,
    } = match Destinations::new(&args.junit, &args.json) {
        Ok(destinations) => destinations,
        Err(code) => return code,
    };
    // A report on stdout moves the summary to stderr, as in `isotest run`.
    let (view, on_terminal): (Box<dyn Write + Send>, bool) = match to_stdout {
        Some(_) => (Box::new(std::io::stderr()), std::io::stderr().is_terminal()),
        None => (Box::new(std::io::stdout()), std::io::stdout().is_terminal()),
    };
    let styles = Styles::new(color_wanted(on_terminal));
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(TerminalReporter::new(view, styles))];
    if let Some(junit) = junit {
        reporters.push(Box::new(JunitReporter::new(junit)));
    }
    if let Some(json) = json {
        reporters.push(Box::new(
            JsonReporter::new(json)
                .with_settings(merged.settings)
                .with_identity(merged.run_id, None)
                // The shards' series, when they were written with them.
                .with_samples(true),
        ));
    }
    let all_passed = merged.summary.all_passed();
    let event = Event::RunFinished(merged.summary);
    let mut code = if all_passed {
        exit::ALL_PASSED
    } else {
        exit::TESTS_FAILED
    };
    for reporter in &mut reporters {
        if let Err(error) = reporter.handle(&event) {
            code = fail(error, exit::BAD_USAGE);
        }
    }
    code
}
