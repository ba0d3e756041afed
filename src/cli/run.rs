//! `isotest run`: plan, select, run in containers, report.

use std::io::IsTerminal;

use super::args::{FlakyResult, NoTests, RunArgs, RunIgnoredArg, SelectArgs};
use super::history::{self, RunHistory};
use super::{exit, fail, load_plan, prepare_sandbox, split_positional, Positional};
use crate::baseline::{parse_percent, Baseline};
use crate::history::History;
use crate::plan::PlannedTest;
use crate::report::json::JsonPartition;
use crate::report::{
    terminal::color_wanted, HtmlReporter, JsonReporter, JunitReporter, Reporter, TerminalReporter,
    TraceReporter,
};
use crate::run::{self, Demand, Roots, RunSettings, RunSummary, TestResult};
use crate::sandbox::{available_memory, interrupt, OutputMode};
use crate::select::{Criteria, Order, Partition, RunIgnored, Selected, Selection};
use crate::size::format_size;

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
    let order: Order = args
        .order
        .parse()
        .map_err(|e| fail(format!("--order: {e}"), exit::BAD_USAGE))?;
    let cache_dir = args.storage.cache_dir.as_deref();
    let history = RunHistory::load(&args.select, &positional.roots, cache_dir)?;
    let (selected, partition) = select_part(&args.select, &positional, planned, &history.history)?;
    let Selected {
        run: plan,
        skipped,
        whole,
    } = selected;
    if plan.is_empty() && skipped.is_empty() {
        if args.select.rerun_failed {
            eprintln!("isotest: note: --rerun-failed: every test passed last time");
        }
        no_tests(args.no_tests, &positional)?;
        // warn / pass: the run goes on, empty, so reports are still written.
    }
    let jobs = if args.no_capture {
        1
    } else if let Some(jobs) = args.jobs {
        jobs as usize
    } else {
        let first_root = std::path::absolute(&positional.roots[0]).unwrap_or_default();
        configs
            .run_settings(&first_root, args.select.profile.as_deref())
            .jobs
            .map(|j| j.value)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    };
    let baseline = match &args.baseline {
        None => None,
        Some(path) => {
            let threshold = parse_percent(&args.max_regression)
                .map_err(|e| fail(format!("--max-regression: {e}"), exit::BAD_USAGE))?;
            Some(Baseline::load(path, threshold).map_err(|e| fail(e, exit::BAD_USAGE))?)
        }
    };
    let mut sandbox = prepare_sandbox(&args.cgroups, &args.storage, !plan.is_empty())?;
    if args.samples || args.trace.is_some() || args.html.is_some() {
        sandbox
            .sample_every(args.sample_interval)
            .map_err(|e| fail(format!("start the usage sampler: {e}"), exit::BAD_USAGE))?;
    }
    let roots = Roots::new(args.storage.cache_dir.clone())
        .with_notices(|notice| eprintln!("isotest: note: {notice}"));
    interrupt::install()
        .map_err(|e| fail(format!("install Ctrl-C handler: {e}"), exit::BAD_USAGE))?;

    let partition = partition.map(|p| JsonPartition {
        spec: p.to_string(),
        part: p.part(),
        parts: p.parts(),
        selected: whole,
    });
    let mut reporters = reporters(&args, jobs, partition.clone(), baseline.as_ref());
    let schedule = Schedule::new(&plan, order, &history.history, args.memory_budget);
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
        start_order: schedule.start_order,
        demands: schedule.demands,
        memory_budget: schedule.memory_budget,
        runs_per_test: args.stress.unwrap_or(1),
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
    // A shard does not record: its siblings, maybe still starting on this
    // machine, must split the suite by the same history.
    if partition.is_none() {
        history.record(&summary);
    }
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

/// The terminal, and the --junit and --json reports asked for.
fn reporters(
    args: &RunArgs,
    jobs: usize,
    partition: Option<JsonPartition>,
    baseline: Option<&Baseline>,
) -> Vec<Box<dyn Reporter>> {
    let stdout = std::io::stdout();
    let on_terminal = stdout.is_terminal();
    let terminal = TerminalReporter::new(Box::new(stdout), color_wanted(on_terminal))
        .with_usage_table(args.show_usage)
        // Live output from --no-capture would garble the progress line.
        .with_progress(on_terminal && !args.no_capture)
        .with_slow_threshold(args.slow);
    let mut reporters: Vec<Box<dyn Reporter>> = vec![Box::new(terminal)];
    if let Some(path) = &args.junit {
        reporters.push(Box::new(JunitReporter::new(path.clone())));
    }
    if let Some(path) = &args.json {
        reporters.push(Box::new(
            JsonReporter::new(path.clone())
                .with_settings(run_settings_json(args, jobs))
                .with_identity(history::run_id(args.run_id.as_deref()), partition)
                .with_samples(args.samples),
        ));
    }
    if let Some(path) = &args.trace {
        reporters.push(Box::new(TraceReporter::new(path.clone())));
    }
    if let Some(path) = &args.html {
        reporters.push(Box::new(
            HtmlReporter::new(path.clone())
                .with_settings(run_settings_json(args, jobs))
                .with_baseline(baseline.cloned()),
        ));
    }
    reporters
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
        "history": args.select.history.as_ref().map(|p| p.display().to_string()),
        "rerun_failed": args.select.rerun_failed,
        "order": args.order,
        "stress": args.stress,
        "memory_budget": args.memory_budget,
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
