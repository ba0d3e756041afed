//! `isotest report`: reports made from --json reports after a run.

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Write a self-contained HTML page of a --json report.
    Html(super::report_html::HtmlArgs),
}

pub fn run(args: ReportArgs) -> i32 {
    match args.command {
        ReportCommand::Html(args) => super::report_html::html(args),
    }
}
