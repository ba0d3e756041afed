//! `isotest run`: plan, select, run in containers, report. The drivers
//! (`isotest cargo`, `isotest go`) plan their own cases and share the rest
//! of the path, from selection to reports, through `run_planned`.

use std::path::PathBuf;

use console::Term;
use indicatif::ProgressDrawTarget;

use super::args::{
    DriverListArgs, FlakyResult, NoTests, RunArgs, RunCommand, RunIgnoredArg, SelectArgs,
};
use super::history::{self, RunHistory};
use super::list::render;
use super::{exit, fail, load_plan, prepare_sandbox, split_positional, write_stdout, Positional};
use crate::baseline::{parse_percent, Baseline};
use crate::config::Configs;
use crate::driver::Discovered;
use crate::history::History;
use crate::plan::{plan_driver_cases, PlannedTest};
use crate::report::json::JsonPartition;
use crate::report::{
    Destination, HtmlReporter, JsonReporter, JunitReporter, Reporter, TerminalReporter,
    TraceReporter,
};
use crate::run::{self, Demand, Roots, RunSettings, RunSummary, TestFiles, TestResult};
use crate::sandbox::{available_memory, interrupt, OutputMode};
use crate::select::{Criteria, Order, Partition, RunIgnored, Selected, Selection};
use crate::size::format_size;
use crate::style::{color_wanted, Styles};

pub fn run(command: RunCommand) -> i32 {
    let args = command.run;
    let positional = split_positional(&command.paths.positional);
    let flags = args.container.plan_settings(args.retries, args.protocol);
    let (configs, planned) = match load_plan(&args.select, &positional, &flags) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let first_root = std::path::absolute(&positional.roots[0]).unwrap_or_default();
    let config_jobs = configs
        .run_settings(&first_root, args.select.profile.as_deref())
        .jobs
        .map(|j| j.value);
    run_planned(&args, planned, &positional, config_jobs)
}

/// Selects from `planned` (with `positional`'s name filters), runs the
/// selection in containers and reports it; returns the exit code.
/// `config_jobs` is the isotest.toml `jobs`, used without `--jobs`.
pub(super) fn run_planned(
    args: &RunArgs,
    planned: Vec<PlannedTest>,
    positional: &Positional,
    config_jobs: Option<usize>,
) -> i32 {
    match run_tests(args, planned, positional, config_jobs) {
        Ok(code) | Err(code) => code,
    }
}

fn run_tests(
    args: &RunArgs,
    planned: Vec<PlannedTest>,
    positional: &Positional,
    config_jobs: Option<usize>,
) -> Result<i32, i32> {
    let order: Order = args
        .order
        .parse()
        .map_err(|e| fail(format!("--order: {e}"), exit::BAD_USAGE))?;
    let cache_dir = args.storage.cache_dir.as_deref();
    let history = RunHistory::load(&args.select, &positional.roots, cache_dir)?;
    let (selected, partition) = select_part(&args.select, positional, planned, &history.history)?;
    let Selected {
        run: plan,
        skipped,
        whole,
    } = selected;
    if plan.is_empty() && skipped.is_empty() {
        if args.select.rerun_failed {
            eprintln!("isotest: note: --rerun-failed: every test passed last time");
        }
        if let Some(part) = partition.filter(|_| whole > 0) {
            // Small suites, or a first split by hash, leave a shard empty:
            // it still writes its (empty) reports for the merge.
            eprintln!("isotest: note: shard {part} got none of the {whole} selected tests");
        } else {
            no_tests(args.no_tests, positional)?;
        }
        // warn / pass: the run goes on, empty, so reports are still written.
    }
    let jobs = job_count(args, config_jobs);
    let baseline = load_baseline(args)?;
    let mut sandbox = prepare_sandbox(&args.cgroups, &args.storage, !plan.is_empty())?;
    if args.samples || args.trace.is_some() || args.html.is_some() {
        sandbox
            .sample_every(args.sample_interval)
            .map_err(|e| fail(format!("start the usage sampler: {e}"), exit::BAD_USAGE))?;
    }
    let roots = Roots::new(args.storage.cache_dir.clone())
        .with_notices(|notice| eprintln!("isotest: note: {notice}"));
    let files_parent = args.storage.scratch.clone();
    let files_parent = files_parent.unwrap_or_else(run::test_files_parent);
    let files = TestFiles::create(&files_parent).map_err(|e| fail(e, exit::BAD_USAGE))?;
    interrupt::install()
        .map_err(|e| fail(format!("install Ctrl-C handler: {e}"), exit::BAD_USAGE))?;

    let partition = partition.map(|p| JsonPartition {
        spec: p.to_string(),
        part: p.part(),
        parts: p.parts(),
        selected: whole,
    });
    let schedule = Schedule::new(&plan, order, &history.history, args.memory_budget);
    let shown = RunShown {
        jobs,
        memory_budget: (schedule.memory_budget != u64::MAX).then_some(schedule.memory_budget),
    };
    let mut reporters = reporters(args, shown, partition.clone(), baseline.as_ref())?;
    let check = |result: &mut TestResult| {
        if let Some(baseline) = &baseline {
            baseline.check(result);
        }
    };
    let settings = run_settings(args, jobs, schedule, &check, &roots, &files);
    let mut report_failed = false;
    let summary = run::run(plan, skipped, &settings, &sandbox, &mut |event| {
        for reporter in reporters.iter_mut() {
            if let Err(error) = reporter.handle(event) {
                report_failed = true;
                eprintln!("isotest: {error}");
            }
        }
    });
    // A shard does not record: its siblings, maybe still starting on this
    // machine, must split the suite by the same history.
    if partition.is_none() {
        history.record(&summary);
    }
    if let Some(baseline) = &baseline {
        baseline_notes(baseline, &summary);
    }
    Ok(run_exit_code(&summary, report_failed))
}

/// How the plan runs, from the flags and the schedule.
fn run_settings<'a>(
    args: &'a RunArgs,
    jobs: usize,
    schedule: Schedule,
    check: &'a (dyn Fn(&mut TestResult) + Sync),
    roots: &'a Roots,
    files: &'a TestFiles,
) -> RunSettings<'a> {
    RunSettings {
        jobs,
        output: if args.no_capture {
            OutputMode::Inherit
        } else {
            OutputMode::Capture {
                limit_per_stream: run::OUTPUT_LIMIT,
            }
        },
        max_fail: args
            .fail_fast
            .then_some(1)
            .or(args.max_fail.map(|n| n as usize)),
        flaky_is_failure: args.flaky_result == FlakyResult::Fail,
        post_check: Some(check),
        roots,
        files,
        artifacts: args.artifacts.as_deref(),
        start_order: schedule.start_order,
        demands: schedule.demands,
        memory_budget: schedule.memory_budget,
        runs_per_test: args.stress.unwrap_or(1),
    }
}

/// `--baseline` with `--max-regression`, when given.
fn load_baseline(args: &RunArgs) -> Result<Option<Baseline>, i32> {
    let Some(path) = &args.baseline else {
        return Ok(None);
    };
    let threshold = parse_percent(&args.max_regression)
        .map_err(|e| fail(format!("--max-regression: {e}"), exit::BAD_USAGE))?;
    let baseline = Baseline::load(path, threshold).map_err(|e| fail(e, exit::BAD_USAGE))?;
    Ok(Some(baseline))
}

/// Tests new since the baseline, and tests of the baseline that did not run.
fn baseline_notes(baseline: &Baseline, summary: &RunSummary) {
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

/// Tests at once: 1 with --no-capture, else -j, else `jobs` of the first
/// root's isotest.toml (`config_jobs`), else the CPUs.
fn job_count(args: &RunArgs, config_jobs: Option<usize>) -> usize {
    if args.no_capture {
        return 1;
    }
    if let Some(jobs) = args.jobs {
        return jobs as usize;
    }
    config_jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The terminal view and the reports asked for. A report written to
/// stdout (`--json -`, `--junit -`) moves the terminal view to stderr.
fn reporters(
    args: &RunArgs,
    shown: RunShown,
    partition: Option<JsonPartition>,
    baseline: Option<&Baseline>,
) -> Result<Vec<Box<dyn Reporter>>, i32> {
    let Destinations {
        junit,
        json,
        to_stdout,
    } = Destinations::new(&args.junit, &args.json)?;
    if let (Some(flag), true) = (to_stdout, args.no_capture) {
        let message = format!(
            "{flag} - writes the report to stdout, where --no-capture streams the tests' output; write the report to a file"
        );
        return Err(fail(message, exit::BAD_USAGE));
    }
    for (flag, path) in [("--html", &args.html), ("--trace", &args.trace)] {
        if path.as_deref() == Some(std::path::Path::new("-")) {
            let message = format!(
                "{flag} - : only --json and --junit write to stdout; give {flag} a file (or write --json and make the page with `isotest report html RUN.json -o -`)"
            );
            return Err(fail(message, exit::BAD_USAGE));
        }
    }
    let terminal = terminal_view(args, to_stdout.is_some());
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(terminal)];
    if let Some(junit) = junit {
        reporters.push(Box::new(JunitReporter::new(junit)));
    }
    if let Some(json) = json {
        let settings = run_settings_json(args, shown);
        let id = history::run_id(args.run_id.as_deref());
        let reporter = JsonReporter::new(json)
            .with_settings(settings)
            .with_identity(id, partition)
            .with_samples(args.samples);
        reporters.push(Box::new(reporter));
    }
    if let Some(path) = &args.trace {
        reporters.push(Box::new(TraceReporter::new(path.clone())));
    }
    if let Some(path) = &args.html {
        reporters.push(Box::new(
            HtmlReporter::new(path.clone())
                .with_settings(run_settings_json(args, shown))
                .with_baseline(baseline.cloned()),
        ));
    }
    Ok(reporters)
}

/// Where `--junit` and `--json` write.
pub(super) struct Destinations {
    pub junit: Option<Destination>,
    pub json: Option<Destination>,
    /// The flag whose report goes to stdout (`-`), if one does; only one may.
    pub to_stdout: Option<&'static str>,
}

impl Destinations {
    pub fn new(junit: &Option<PathBuf>, json: &Option<PathBuf>) -> Result<Destinations, i32> {
        let junit = junit.clone().map(Destination::from);
        let json = json.clone().map(Destination::from);
        let to_stdout: Vec<&'static str> = [("--junit", &junit), ("--json", &json)]
            .into_iter()
            .filter(|(_, d)| matches!(d, Some(Destination::Stdout)))
            .map(|(flag, _)| flag)
            .collect();
        if to_stdout.len() > 1 {
            let message =
                "--junit - and --json - both write to stdout; write one of them to a file";
            return Err(fail(message, exit::BAD_USAGE));
        }
        Ok(Destinations {
            junit,
            json,
            to_stdout: to_stdout.first().copied(),
        })
    }
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

/// When each test of the plan starts and what it holds while it runs.
struct Schedule {
    start_order: Vec<usize>,
    demands: Vec<Demand>,
    memory_budget: u64,
}

impl Schedule {
    /// `budget` is --memory-budget; without it, the memory isotest's
    /// cgroup or the host has available. Tests over the budget are named.
    fn new(plan: &[PlannedTest], order: Order, history: &History, budget: Option<u64>) -> Self {
        let names: Vec<&str> = plan.iter().map(|t| t.case.name.as_str()).collect();
        let demands: Vec<Demand> = plan.iter().map(|t| Demand::of(t, history)).collect();
        let memory_budget = budget.or_else(available_memory).unwrap_or(u64::MAX);
        for (test, demand) in plan.iter().zip(&demands) {
            if demand.memory_bytes > memory_budget {
                eprintln!(
                    "isotest: note: {} needs {}, more than the memory budget of {}: it runs alone",
                    test.case.name,
                    format_size(demand.memory_bytes),
                    format_size(memory_budget)
                );
            }
        }
        Schedule {
            start_order: order.start_order(&names, history),
            demands,
            memory_budget,
        }
    }
}

/// The run-level settings, for the JSON report.
/// What the run's settings in the reports say beyond the flags: the job
/// count and memory budget in effect (defaults resolved).
#[derive(Clone, Copy)]
struct RunShown {
    jobs: usize,
    memory_budget: Option<u64>,
}

fn run_settings_json(args: &RunArgs, shown: RunShown) -> serde_json::Value {
    let flags: Vec<serde_json::Value> = args
        .container
        .plan_settings(args.retries, args.protocol)
        .describe()
        .into_iter()
        .map(|row| serde_json::json!({ "key": row.key, "value": row.value }))
        .collect();
    serde_json::json!({
        "jobs": shown.jobs,
        "profile": args.select.profile,
        "fail_fast": args.fail_fast,
        "max_fail": args.max_fail,
        "flaky_result": format!("{:?}", args.flaky_result).to_lowercase(),
        "partition": args.select.partition,
        "history": args.select.history.as_ref().map(|p| p.display().to_string()),
        "rerun_failed": args.select.rerun_failed,
        "order": args.order,
        "stress": args.stress,
        "memory_budget": shown.memory_budget,
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
    history: &History,
) -> Result<Selected, i32> {
    select_part(args, positional, planned, history).map(|(selected, _)| selected)
}

/// `select`, and the partition taken (`--partition` or Bazel's shard).
fn select_part(
    args: &SelectArgs,
    positional: &Positional,
    planned: Vec<PlannedTest>,
    history: &History,
) -> Result<(Selected, Option<Partition>), i32> {
    let partition = history::partition(args)?;
    if partition.is_some_and(|p| p.by_time()) && history.is_empty() {
        eprintln!(
            "isotest: note: no run history for a time partition yet: tests are split by name hash"
        );
    }
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
        rerun_failed: args.rerun_failed,
    })
    .map_err(|e| fail(e, exit::BAD_USAGE))?;
    Ok((selection.apply(planned, history), partition))
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

/// Plans a driver's cases with the isotest.toml files of its root and
/// package directories, then runs them as `run` does (or, with `--list`,
/// prints them); `filters` select by name substring.
pub(super) fn run_driver_cases(
    args: &RunArgs,
    listing: &DriverListArgs,
    found: Discovered,
    filters: Vec<String>,
) -> i32 {
    let planned = Configs::load_dirs(&found.config_dirs)
        .map_err(|e| fail(e, exit::BAD_USAGE))
        .and_then(|configs| {
            if let Some(profile) = &args.select.profile {
                configs
                    .check_profile(profile)
                    .map_err(|e| fail(e, exit::BAD_USAGE))?;
            }
            let flags = args.container.plan_settings(args.retries, args.protocol);
            let profile = args.select.profile.as_deref();
            let planned = plan_driver_cases(found.cases, &configs, profile, &flags)
                .map_err(|e| fail(e, exit::BAD_USAGE))?;
            let jobs = configs.run_settings(&found.root, profile).jobs;
            Ok((planned, jobs.map(|j| j.value)))
        });
    match planned {
        Ok((planned, config_jobs)) => {
            let positional = Positional {
                roots: vec![found.root],
                substrings: filters,
            };
            if !listing.list {
                return run_planned(args, planned, &positional, config_jobs);
            }
            let cache_dir = args.storage.cache_dir.as_deref();
            let selected = RunHistory::load(&args.select, &positional.roots, cache_dir)
                .and_then(|h| select(&args.select, &positional, planned, &h.history));
            match selected {
                Ok(selected) => {
                    write_stdout(&render(&selected, listing.format, listing.verbose));
                    exit::ALL_PASSED
                }
                Err(code) => code,
            }
        }
        Err(code) => code,
    }
}
