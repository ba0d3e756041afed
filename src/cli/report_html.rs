//! `isotest report html RUN.json -o PAGE.html`: the HTML report of a run
//! from its --json report (one run, or shards merged into one report).

use std::path::PathBuf;

use clap::Args;

use super::{exit, fail};
use crate::baseline::Baseline;
use crate::report::{html, json};

#[derive(Args, Debug)]
pub struct HtmlArgs {
    /// A report written by `isotest run --json`.
    #[arg(value_name = "RUN.json")]
    pub report: PathBuf,
    /// Where to write the page (`-`: stdout).
    #[arg(short, long, value_name = "PATH")]
    pub output: PathBuf,
    /// An earlier --json report: the memory chart shows the change from it.
    #[arg(long, value_name = "PREVIOUS.json")]
    pub baseline: Option<PathBuf>,
}

pub fn html(args: HtmlArgs) -> i32 {
    let run = match json::read(&args.report) {
        Ok(run) => run,
        Err(error) => return fail(error, exit::BAD_USAGE),
    };
    let baseline = match args.baseline.as_deref().map(|p| Baseline::load(p, 0.0)) {
        None => None,
        Some(Ok(baseline)) => Some(baseline),
        Some(Err(error)) => return fail(error, exit::BAD_USAGE),
    };
    let page = html::render(&run, baseline.as_ref());
    let written = if args.output.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout()
            .lock()
            .write_all(page.as_bytes())
            .map_err(|e| format!("write the page to stdout: {e}"))
    } else {
        crate::report::write_atomically(&args.output, page.as_bytes()).map_err(|e| e.to_string())
    };
    match written {
        Ok(()) => exit::ALL_PASSED,
        Err(error) => fail(error, exit::BAD_USAGE),
    }
}
