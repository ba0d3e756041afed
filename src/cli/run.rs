//! `isotest run`: plan, select, run in containers, report.

use console::Term;
use indicatif::ProgressDrawTarget;

use super::args::{FlakyResult, NoTests, RunArgs, RunIgnoredArg, SelectArgs};
use super::{exit, fail, load_plan, prepare_sandbox, split_positional, Positional};
use crate::baseline::{parse_percent, Baseline};
use crate::config::Configs;
use crate::plan::PlannedTest;
use crate::report::{Destination, JsonReporter, JunitReporter, Reporter, TerminalReporter};
use crate::run::{self, Roots, RunSettings, RunSummary, TestResult};
use crate::sandbox::{interrupt, OutputMode};
use crate::select::{Criteria, Partition, RunIgnored, Selected, Selection};
use crate::style::{color_wanted, Styles};

/// Output kept per stream and test; the middle of longer output is dropped.
const OUTPUT_LIMIT: usize = 4 << 20;

pub fn run(args: RunArgs) -> i32 {
    match run_tests(args) {
        Ok(code) | Err(code) => code,
    }
}

fn run_tests(args: RunArgs) -> Result<i32, i32> {
    let positional = split_positional(&args.select.positional);
    let flags = args.container.settings_with_retries(args.retries);
    let (configs, planned) = load_plan(&args.select, &positional, &flags)?;
    let Selected { run: plan, skipped } = select(&args.select, &positional, planned)?;
    if plan.is_empty() && skipped.is_empty() {
        no_tests(args.no_tests, &positional)?;
        // warn / pass: the run goes on, empty, so reports are still written.
    }
    let jobs = job_count(&args, &configs, &positional);
    let baseline = match &args.baseline {
        None => None,
        Some(path) => {
            let threshold = parse_percent(&args.max_regression)
                .map_err(|e| fail(format!("--max-regression: {e}"), exit::BAD_USAGE))?;
            Some(Baseline::load(path, threshold).map_err(|e| fail(e, exit::BAD_USAGE))?)
        }
    };
    let sandbox = prepare_sandbox(&args.cgroups, &args.storage, !plan.is_empty())?;
    let roots = Roots::new(args.storage.cache_dir.clone())
        .with_notices(|notice| eprintln!("isotest: note: {notice}"));
    interrupt::install()
        .map_err(|e| fail(format!("install Ctrl-C handler: {e}"), exit::BAD_USAGE))?;

    let mut reporters = reporters(&args, jobs)?;
    let check = |result: &mut TestResult| {
        if let Some(baseline) = &baseline {
            baseline.check(result);
        }
    };
    let settings = RunSettings {
        jobs,
        output: if args.no_capture {
            OutputMode::Inherit
        } else {
            OutputMode::Capture {
                limit_per_stream: OUTPUT_LIMIT,
            }
        },
        max_fail: if args.fail_fast {
            Some(1)
        } else {
            args.max_fail.map(|n| n as usize)
        },
        flaky_is_failure: args.flaky_result == FlakyResult::Fail,
        post_check: Some(&check),
        roots: &roots,
    };
    let mut report_failed = false;
    let summary = run::run(plan, skipped, &settings, &sandbox, &mut |event| {
        for reporter in reporters.iter_mut() {
            if let Err(error) = reporter.handle(event) {
                report_failed = true;
                eprintln!("isotest: {error}");
            }
        }
    });
    if let Some(baseline) = &baseline {
        let names: Vec<String> = summary
            .results
            .iter()
            .map(|r| r.test.name.clone())
            .collect();
        for name in baseline.new_tests(&names) {
            eprintln!("isotest: note: {name} is new (not in the baseline)");
        }
        for name in baseline.vanished(&names) {
            eprintln!("isotest: note: {name} is in the baseline but did not run");
        }
    }
    Ok(run_exit_code(&summary, report_failed))
}

/// Tests at once: 1 with --no-capture, else -j, else `jobs` of the first
/// root's isotest.toml, else the CPUs.
fn job_count(args: &RunArgs, configs: &Configs, positional: &Positional) -> usize {
    if args.no_capture {
        return 1;
    }
    if let Some(jobs) = args.jobs {
        return jobs as usize;
    }
    let first_root = std::path::absolute(&positional.roots[0]).unwrap_or_default();
    configs
        .run_settings(&first_root, args.select.profile.as_deref())
        .jobs
        .map(|j| j.value)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The terminal view and the reports asked for. A report written to
/// stdout (`--json -`, `--junit -`) moves the terminal view to stderr.
fn reporters(args: &RunArgs, jobs: usize) -> Result<Vec<Box<dyn Reporter>>, i32> {
    let junit = args.junit.clone().map(Destination::from);
    let json = args.json.clone().map(Destination::from);
    let to_stdout: Vec<&str> = [("--junit", &junit), ("--json", &json)]
        .into_iter()
        .filter(|(_, d)| matches!(d, Some(Destination::Stdout)))
        .map(|(flag, _)| flag)
        .collect();
    if to_stdout.len() > 1 {
        let message = "--junit - and --json - both write to stdout; write one of them to a file";
        return Err(fail(message, exit::BAD_USAGE));
    }
    if !to_stdout.is_empty() && args.no_capture {
        let message = format!(
            "{} - writes the report to stdout, where --no-capture streams the tests' output; write the report to a file",
            to_stdout[0]
        );
        return Err(fail(message, exit::BAD_USAGE));
    }
    let terminal = terminal_view(args, !to_stdout.is_empty());
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(terminal)];
    if let Some(junit) = junit {
        reporters.push(Box::new(JunitReporter::new(junit)));
    }
    if let Some(json) = json {
        let settings = run_settings_json(args, jobs);
        reporters.push(Box::new(JsonReporter::new(json).with_settings(settings)));
    }
    Ok(reporters)
}

/// The terminal view on stdout, or on stderr when a report goes to stdout:
/// a live progress line on a terminal (not with --no-capture, whose
/// output would garble it), plain lines elsewhere.
fn terminal_view(args: &RunArgs, on_stderr: bool) -> TerminalReporter {
    let (term, plain): (Term, Box<dyn std::io::Write + Send>) = if on_stderr {
        (Term::stderr(), Box::new(std::io::stderr()))
    } else {
        (Term::stdout(), Box::new(std::io::stdout()))
    };
    let on_terminal = term.is_term();
    let styles = Styles::new(color_wanted(on_terminal));
    let view = if on_terminal && !args.no_capture {
        TerminalReporter::live(ProgressDrawTarget::term(term, 20), styles)
    } else {
        TerminalReporter::new(plain, styles)
    };
    view.with_usage_table(args.show_usage)
        .with_slow_threshold(args.slow)
}

/// The run-level settings, for the JSON report.
fn run_settings_json(args: &RunArgs, jobs: usize) -> serde_json::Value {
    let flags: Vec<serde_json::Value> = args
        .container
        .settings_with_retries(args.retries)
        .describe()
        .into_iter()
        .map(|row| serde_json::json!({ "key": row.key, "value": row.value }))
        .collect();
    serde_json::json!({
        "jobs": jobs,
        "profile": args.select.profile,
        "fail_fast": args.fail_fast,
        "max_fail": args.max_fail,
        "flaky_result": format!("{:?}", args.flaky_result).to_lowercase(),
        "partition": args.select.partition,
        "baseline": args.baseline.as_ref().map(|p| p.display().to_string()),
        "max_regression": args.baseline.as_ref().map(|_| &args.max_regression),
        "flags": flags,
    })
}

/// The selection flags and positional name filters, applied to the plan.
pub(super) fn select(
    args: &SelectArgs,
    positional: &Positional,
    planned: Vec<PlannedTest>,
) -> Result<Selected, i32> {
    let partition = args
        .partition
        .as_deref()
        .map(str::parse::<Partition>)
        .transpose()
        .map_err(|e| fail(format!("--partition: {e}"), exit::BAD_USAGE))?;
    let selection = Selection::new(Criteria {
        substrings: positional.substrings.clone(),
        filters: args.filter.clone(),
        tags: args.tag.clone(),
        skip_tags: args.skip_tag.clone(),
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        run_ignored: match args.run_ignored {
            RunIgnoredArg::Default => RunIgnored::Default,
            RunIgnoredArg::Only => RunIgnored::Only,
            RunIgnoredArg::All => RunIgnored::All,
        },
        partition,
    })
    .map_err(|e| fail(e, exit::BAD_USAGE))?;
    Ok(selection.apply(planned))
}

/// An empty selection: an error (exit 4) for `--no-tests fail`, else a
/// warning or nothing.
fn no_tests(mode: NoTests, positional: &Positional) -> Result<(), i32> {
    let roots: Vec<String> = positional
        .roots
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let message = format!("no tests to run in {}", roots.join(", "));
    match mode {
        NoTests::Fail => Err(fail(format!("{message} (--no-tests fail)"), exit::NO_TESTS)),
        NoTests::Warn => {
            eprintln!("isotest: warning: {message}");
            Ok(())
        }
        NoTests::Pass => Ok(()),
    }
}

fn run_exit_code(summary: &RunSummary, report_failed: bool) -> i32 {
    if let Some(failure) = summary.host_failure() {
        return fail(
            format!("this host cannot create containers: {failure}"),
            exit::HOST_UNSUPPORTED,
        );
    }
    if let Some(signal) = summary.interrupted_by {
        return 128 + signal;
    }
    if report_failed {
        return exit::BAD_USAGE;
    }
    if summary.all_passed() {
        exit::ALL_PASSED
    } else {
        exit::TESTS_FAILED
    }
}
