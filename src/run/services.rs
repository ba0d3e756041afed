//! A test's services: the scheduler owns their lifetimes. For a test that
//! uses services (or `network = "outbound"`) it asks the sandbox for a
//! private network, starts each service in its own container on it in
//! dependency order, waits until each is ready, runs the test on the same
//! network, then stops the services (SIGTERM, their grace, SIGKILL) and
//! collects what they printed and used.
//!
//! Addresses: the bridge is `.1`, the test `.2`, services `.3` up, in
//! starting order; every container's /etc/hosts names them all (`test`,
//! each service, and `host.isotest` with an uplink).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::container::spec;
use super::readiness::{self, LogWatch, COMMAND_INTERVAL, POLL};
use super::roots::Roots;
use super::shared::{shared_links, shared_results, RunServices, SharedUse};
use crate::config::{
    Network as NetworkSetting, Readiness, ServiceConfig, ServiceScope, Settings, Sourced,
};
use crate::discover::{Program, TestCase};
use crate::plan::PlannedTest;
use crate::sandbox::{
    hosts_file, CapturedOutput, Ending, Limits, Network, NetworkAttachment, Observed, Outcome,
    OutputMode, Rusage, Sandbox, SandboxSpec, SetupFailure, StopRequest, Subnet, TcpProbe, Usage,
};
use crate::size::format_size;

/// How a service ended, from the test's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceStatus {
    /// Ran until isotest stopped it after the test.
    Stopped,
    /// Ended on its own while the test ran.
    Exited,
    /// The OOM killer ended it, or a process of it, while the test ran
    /// (its cgroup's `oom_kill` count): at its `memory` limit.
    OomKilled,
    /// Did not become ready in time, or ended first.
    NotReady,
    /// Its container could not be set up.
    Error,
    /// Not started: a service before it failed.
    NotStarted,
    /// A `scope = "run"` service the test used, still running after it;
    /// its output and usage are the run's (`services` of the run).
    Shared,
}

impl ServiceStatus {
    pub const ALL: [ServiceStatus; 7] = [
        ServiceStatus::Stopped,
        ServiceStatus::Exited,
        ServiceStatus::OomKilled,
        ServiceStatus::NotReady,
        ServiceStatus::Error,
        ServiceStatus::NotStarted,
        ServiceStatus::Shared,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ServiceStatus::Stopped => "stopped",
            ServiceStatus::Exited => "exited",
            ServiceStatus::OomKilled => "oom-killed",
            ServiceStatus::NotReady => "not-ready",
            ServiceStatus::Error => "error",
            ServiceStatus::NotStarted => "not-started",
            ServiceStatus::Shared => "shared",
        }
    }
}

/// One service of a finished test.
#[derive(Clone, Debug)]
pub struct ServiceResult {
    pub name: String,
    pub status: ServiceStatus,
    /// How it ended when that is news: `exit 1 during the test`.
    pub message: Option<String>,
    /// From its start to readiness.
    pub ready_after: Option<Duration>,
    /// When isotest found it ready (by the realtime clock, to compare
    /// with the moment the service opened its port).
    pub ready_at: Option<SystemTime>,
    /// From its start to its end.
    pub duration: Duration,
    pub usage: Option<Usage>,
    /// The limits its container ran under: none where cgroups were not
    /// used, as for a test.
    pub limits: Limits,
    pub rusage: Option<Rusage>,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
}

impl ServiceResult {
    /// A service of a test whose output and usage are not the test's: not
    /// started, or the run's.
    pub(crate) fn without_run(name: &str, status: ServiceStatus) -> ServiceResult {
        ServiceResult {
            name: name.to_string(),
            status,
            message: None,
            ready_after: None,
            ready_at: None,
            duration: Duration::ZERO,
            usage: None,
            limits: Limits::default(),
            rusage: None,
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
        }
    }
}

/// What running services needs from the attempt.
pub struct ServiceContext<'a> {
    pub sandbox: &'a Sandbox,
    pub roots: &'a Roots,
    pub stop: &'a StopRequest,
    /// Bytes of output kept per stream of each service.
    pub output_limit: usize,
    /// The run's `scope = "run"` services.
    pub shared: &'a dyn RunServices,
}

/// Runs `spec` (the test) with its services beside it, through `run`;
/// without services or an outbound network, it only calls `run`.
pub fn run_with_services(
    test: &PlannedTest,
    spec: &SandboxSpec,
    context: &ServiceContext,
    run: &dyn Fn(&SandboxSpec) -> Outcome,
) -> (Outcome, Vec<ServiceResult>) {
    let test_outbound = is_outbound(&test.settings);
    if test.services.is_empty() && !test_outbound {
        return (run(spec), Vec::new());
    }
    if test.settings.network() == NetworkSetting::Host {
        let failure = SetupFailure {
            step: "give the test its services".into(),
            cause: "services live on a private network, and the test has network = \"host\"".into(),
            hint: Some("drop `network = \"host\"`, or the test's `services`".into()),
            host_unsupported: false,
            errno: None,
        };
        return (Outcome::setup_failed(failure), not_started(&test.services));
    }
    let (shared, own): (Vec<_>, Vec<_>) = test
        .services
        .iter()
        .partition(|s| s.scope == ServiceScope::Run);
    let mut uses = Vec::new();
    for config in &shared {
        match context.shared.use_service(config, context.stop) {
            Ok(used) => uses.push(used),
            Err(failure) => {
                let mut results = shared_results(&uses);
                results.extend(not_started(&test.services[results.len()..]));
                return (Outcome::setup_failed(failure), results);
            }
        }
    }
    let uplink = test_outbound || own.iter().any(|s| is_outbound(&s.settings));
    let beside = uses.first().map(SharedUse::network);
    let network = match context
        .sandbox
        .create_network(Subnet::PRIVATE, uplink, beside)
    {
        Ok(network) => network,
        Err(failure) => {
            let mut results = shared_results(&uses);
            results.extend(not_started(own));
            return (Outcome::setup_failed(failure), results);
        }
    };
    let hosts = hosts_for(&own, &network, &uses);
    let on_network = OnNetwork {
        network: &network,
        hosts: &hosts,
        shared: &uses,
    };
    let (outcome, own_results) = std::thread::scope(|scope| {
        let (running, failure) = start_own(scope, &own, &on_network, context);
        let outcome = match &failure {
            Some((failure, _)) => Outcome::setup_failed(failure.clone()),
            None => {
                let mut spec = spec.clone();
                spec.network = Some(on_network.attachment(2, test_outbound));
                run(&spec)
            }
        };
        let mut results = stop_all(running);
        let mut rest = not_started(own[results.len()..].iter().copied());
        if let (Some(first), Some((_, Some(error)))) = (rest.first_mut(), failure) {
            first.status = ServiceStatus::Error;
            first.message = Some(error);
        }
        results.extend(rest);
        (outcome, results)
    });
    // Every container on it has ended: the next test may have it.
    context.sandbox.reuse_network(network);
    let mut results = shared_results(&uses);
    results.extend(own_results);
    (outcome, results)
}

/// A test's network as its containers join it.
struct OnNetwork<'a> {
    network: &'a Network,
    hosts: &'a [u8],
    /// The run services the test uses: a link to each of their networks.
    shared: &'a [SharedUse],
}

impl OnNetwork<'_> {
    /// The container at host number `n`.
    fn attachment(&self, n: u32, outbound: bool) -> NetworkAttachment {
        let mut links = vec![self.network.link(n, outbound)];
        links.extend(shared_links(self.shared));
        self.network.attachment(links, self.hosts)
    }
}

/// Why the test's own services did not all get ready: the failure, and
/// when a service could not start at all, the message for its entry.
type OwnFailure = (SetupFailure, Option<String>);

/// Starts the test's own services in order, each ready before the next;
/// stops at the first failure.
fn start_own<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    own: &[&Arc<ServiceConfig>],
    on_network: &OnNetwork,
    context: &ServiceContext<'env>,
) -> (Vec<RunningService<'scope>>, Option<OwnFailure>) {
    let mut running: Vec<RunningService> = Vec::new();
    for (index, config) in own.iter().enumerate() {
        let attachment = on_network.attachment(3 + index as u32, is_outbound(&config.settings));
        match RunningService::start(scope, context.sandbox, config, attachment, context) {
            Ok(service) => running.push(service),
            Err(error) => {
                let message = error.to_string();
                return (running, Some((error, Some(message))));
            }
        }
        let service = running.last_mut().expect("just pushed");
        if let Err(error) = service.wait_ready(on_network.network, on_network.hosts, context) {
            return (running, Some((error, None)));
        }
    }
    (running, None)
}

fn is_outbound(settings: &Settings) -> bool {
    settings.network() == NetworkSetting::Outbound
}

/// /etc/hosts of every container of the test's network: the test, its own
/// services, the run's services it uses, and `host.isotest` with an uplink.
fn hosts_for(own: &[&Arc<ServiceConfig>], network: &Network, shared: &[SharedUse]) -> Vec<u8> {
    let mut names = vec![("test".to_string(), network.subnet.address(2))];
    for (index, service) in own.iter().enumerate() {
        names.push((
            service.name.clone(),
            network.subnet.address(3 + index as u32),
        ));
    }
    names.extend(shared.iter().map(|used| (used.name.clone(), used.address)));
    if let Some(host) = network.host_address {
        names.push(("host.isotest".to_string(), host));
    }
    hosts_file(&names)
}

/// What a service's thread tells the one waiting for it to be ready.
enum Heard {
    Started(u32),
    Output(Vec<u8>),
}

pub(super) struct RunningService<'scope> {
    config: Arc<ServiceConfig>,
    stop: Arc<StopRequest>,
    thread: Option<ScopedJoinHandle<'scope, Outcome>>,
    outcome: Option<Outcome>,
    heard: Receiver<Heard>,
    /// Whether output still goes to `heard` (until the service is ready).
    watching: Arc<AtomicBool>,
    init_pid: Option<u32>,
    started: Instant,
    ready_after: Option<Duration>,
    ready_at: Option<SystemTime>,
    not_ready: Option<String>,
    /// Its container's limits.
    limits: Limits,
    /// How it ended, set by its thread.
    ended: Arc<OnceLock<Ended>>,
}

/// How a service's container ended, as its entries tell it.
#[derive(Clone, Debug)]
pub(super) struct Ended {
    /// Its cgroup counted an OOM kill.
    pub oom_killed: bool,
    /// `exit 1`, `killed by SIGSEGV`, `OOM-killed (memory limit 32.0 MiB,
    /// peak 32.0 MiB)`.
    pub how: String,
}

impl Ended {
    pub(super) fn of(outcome: &Outcome, limits: &Limits) -> Ended {
        let oom_kills = outcome.usage.and_then(|u| u.oom_kills).unwrap_or(0);
        if oom_kills == 0 || matches!(outcome.ending, Ending::SetupFailed(_)) {
            return Ended {
                oom_killed: false,
                how: describe_ending(&outcome.ending),
            };
        }
        let limit = limits
            .memory_bytes
            .map_or("no memory limit of its own".to_string(), |bytes| {
                format!("memory limit {}", format_size(bytes))
            });
        let peak = outcome
            .usage
            .and_then(|u| u.memory_peak_bytes)
            .map_or(String::new(), |peak| {
                format!(", peak {}", format_size(peak))
            });
        Ended {
            oom_killed: true,
            how: format!("OOM-killed ({limit}{peak})"),
        }
    }
}

impl<'scope> RunningService<'scope> {
    /// Starts `config` in a container on `attachment`'s networks, in a
    /// thread of `scope`.
    pub(super) fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        sandbox: &'env Sandbox,
        config: &Arc<ServiceConfig>,
        attachment: NetworkAttachment,
        context: &ServiceContext,
    ) -> Result<RunningService<'scope>, SetupFailure> {
        let mut spec = service_spec(config, &config.argv_with_setup(), context.roots)?;
        spec.network = Some(attachment);
        let limits = spec.limits;
        let ended = Arc::new(OnceLock::new());
        let thread_ended = ended.clone();
        let stop = Arc::new(StopRequest::new());
        let watching = Arc::new(AtomicBool::new(true));
        let (tell, heard) = mpsc::channel();
        let output = OutputMode::Capture {
            limit_per_stream: context.output_limit,
        };
        let (thread_stop, thread_watching) = (stop.clone(), watching.clone());
        let thread = scope.spawn(move || {
            let mut observer = |observed: Observed<'_>| {
                let heard = match observed {
                    Observed::Started { init_pid } => Heard::Started(init_pid),
                    Observed::Output(_) if !thread_watching.load(Ordering::Relaxed) => return,
                    Observed::Output(chunk) => Heard::Output(chunk.to_vec()),
                };
                let _ = tell.send(heard);
            };
            let outcome = sandbox.run_observed(&spec, output, &thread_stop, &mut observer);
            let _ = thread_ended.set(Ended::of(&outcome, &limits));
            outcome
        });
        Ok(RunningService {
            config: config.clone(),
            stop,
            thread: Some(thread),
            outcome: None,
            heard,
            watching,
            init_pid: None,
            started: Instant::now(),
            ready_after: None,
            ready_at: None,
            not_ready: None,
            limits,
            ended,
        })
    }

    pub(super) fn ready_after(&self) -> Option<Duration> {
        self.ready_after
    }

    pub(super) fn ready_at(&self) -> Option<SystemTime> {
        self.ready_at
    }

    /// How it ended, once it has.
    pub(super) fn ended(&self) -> Arc<OnceLock<Ended>> {
        self.ended.clone()
    }

    /// Waits until the service is ready; a timeout, or the service ending
    /// first, is a failure naming it.
    pub(super) fn wait_ready(
        &mut self,
        network: &Network,
        hosts: &[u8],
        context: &ServiceContext,
    ) -> Result<(), SetupFailure> {
        let deadline = self.started + self.config.ready_timeout;
        let mut log = match &self.config.ready {
            Some(Readiness::Log(text)) => Some(LogWatch::new(text)),
            _ => None,
        };
        let mut next_command = Instant::now();
        let mut last_check = String::new();
        let mut probe = None;
        loop {
            let mut ready = false;
            match self.heard.recv_timeout(POLL) {
                Ok(Heard::Started(pid)) => self.init_pid = Some(pid),
                Ok(Heard::Output(chunk)) => ready = log.as_mut().is_some_and(|l| l.push(&chunk)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(self.ended_before_ready()),
            }
            ready = ready
                || match (&self.config.ready, self.init_pid) {
                    (_, None) | (Some(Readiness::Log(_)), _) => false,
                    (None, Some(_)) => true,
                    (Some(Readiness::Tcp(port)), Some(pid)) => probe
                        .get_or_insert_with(|| TcpProbe::new(pid))
                        .listening(*port),
                    (Some(Readiness::Command(argv)), Some(pid))
                        if Instant::now() >= next_command =>
                    {
                        next_command = Instant::now() + COMMAND_INTERVAL;
                        let check = self.run_check(argv, pid, network, hosts, deadline, context);
                        check.map_err(|output| last_check = output).is_ok()
                    }
                    (Some(Readiness::Command(_)), Some(_)) => false,
                };
            if ready {
                self.ready_at = Some(SystemTime::now());
                self.ready_after = Some(self.started.elapsed());
                self.watching.store(false, Ordering::Relaxed);
                return Ok(());
            }
            if context.stop.is_requested() {
                return Err(self.not_ready_failure("the run was interrupted".into(), None));
            }
            if Instant::now() >= deadline {
                let waited = crate::duration::format_seconds(self.config.ready_timeout);
                let hint = (!last_check.is_empty())
                    .then(|| format!("the last check printed: {}", last_check.trim()));
                return Err(self.not_ready_failure(format!("not ready after {waited}"), hint));
            }
        }
    }

    /// Runs a readiness command once, in the service's network namespace;
    /// Err carries what it printed.
    fn run_check(
        &self,
        argv: &[String],
        init_pid: u32,
        network: &Network,
        hosts: &[u8],
        deadline: Instant,
        context: &ServiceContext,
    ) -> Result<(), String> {
        let mut spec =
            service_spec(&self.config, argv, context.roots).map_err(|f| f.to_string())?;
        spec.network = Some(network.beside(init_pid, hosts));
        spec.hostname = format!("{}-ready", self.config.name);
        spec.timeout = Some(deadline.saturating_duration_since(Instant::now()));
        spec.grace = Duration::ZERO;
        let output = OutputMode::Capture {
            limit_per_stream: 4096,
        };
        let outcome = context.sandbox.run(&spec, output, context.stop);
        match outcome.ending {
            Ending::Exited(0) => Ok(()),
            _ => Err(format!(
                "{}{}",
                outcome.stdout.to_string_lossy(),
                outcome.stderr.to_string_lossy()
            )),
        }
    }

    fn ended_before_ready(&mut self) -> SetupFailure {
        let limits = self.limits;
        let outcome = self.join();
        let how = Ended::of(outcome, &limits).how;
        let hint = match &outcome.ending {
            Ending::SetupFailed(_) => None,
            _ => Some("its output is in the report".to_string()),
        };
        self.not_ready_failure(format!("it ended before it was ready ({how})"), hint)
    }

    fn not_ready_failure(&mut self, cause: String, hint: Option<String>) -> SetupFailure {
        let how = self
            .config
            .ready
            .as_ref()
            .map_or("started".to_string(), readiness::describe);
        self.not_ready = Some(cause.clone());
        SetupFailure {
            step: format!(
                "wait for service `{}` to be ready ({how})",
                self.config.name
            )
            .into(),
            cause,
            hint,
            host_unsupported: false,
            errno: None,
        }
    }

    fn join(&mut self) -> &Outcome {
        if let Some(thread) = self.thread.take() {
            let outcome = thread.join().unwrap_or_else(|_| {
                Outcome::setup_failed(SetupFailure {
                    step: format!("run service `{}`", self.config.name).into(),
                    cause: "its thread panicked".into(),
                    hint: None,
                    host_unsupported: false,
                    errno: None,
                })
            });
            self.outcome = Some(outcome);
        }
        self.outcome.as_ref().expect("joined above")
    }
}

/// Stops every service at once (SIGTERM, grace, SIGKILL, by the sandbox),
/// noting those that had ended on their own, and collects their results.
pub(super) fn stop_all(mut running: Vec<RunningService>) -> Vec<ServiceResult> {
    let ended_early: Vec<bool> = running
        .iter()
        .map(|s| s.thread.as_ref().is_none_or(|t| t.is_finished()))
        .collect();
    for service in &running {
        service.stop.stop_gracefully();
    }
    running
        .iter_mut()
        .zip(ended_early)
        .map(|(service, ended_early)| {
            let (ready_after, ready_at) = (service.ready_after, service.ready_at);
            let not_ready = service.not_ready.clone();
            let name = service.config.name.clone();
            let limits = service.limits;
            let outcome = service.join().clone();
            let ended = Ended::of(&outcome, &limits);
            let (status, message) = match (&outcome.ending, not_ready) {
                (_, Some(reason)) => (ServiceStatus::NotReady, Some(reason)),
                (Ending::SetupFailed(failure), None) => {
                    (ServiceStatus::Error, Some(failure.to_string()))
                }
                // A process of it OOM-killed counts even if it went on.
                _ if ended.oom_killed => (
                    ServiceStatus::OomKilled,
                    Some(format!("{} during the test", ended.how)),
                ),
                (Ending::Stopped, None) if !ended_early => (ServiceStatus::Stopped, None),
                (_, None) => (
                    ServiceStatus::Exited,
                    Some(format!("{} during the test", ended.how)),
                ),
            };
            // Limits are only in force where cgroups were used.
            let limits = if outcome.usage.is_some() {
                limits
            } else {
                Limits::default()
            };
            ServiceResult {
                name,
                status,
                message,
                ready_after,
                ready_at,
                duration: outcome.wall,
                usage: outcome.usage,
                limits,
                rusage: outcome.rusage,
                stdout: outcome.stdout,
                stderr: outcome.stderr,
            }
        })
        .collect()
}

pub(super) fn describe_ending(ending: &Ending) -> String {
    match ending {
        Ending::Exited(code) => format!("exit {code}"),
        Ending::Signaled(signal) => format!("killed by {}", super::signal_name(*signal)),
        Ending::TimedOut | Ending::Stopped => "stopped".into(),
        Ending::SetupFailed(failure) => format!("could not start: {failure}"),
    }
}

fn not_started<'a>(
    services: impl IntoIterator<Item = &'a Arc<ServiceConfig>>,
) -> Vec<ServiceResult> {
    services
        .into_iter()
        .map(|config| ServiceResult::without_run(&config.name, ServiceStatus::NotStarted))
        .collect()
}

/// The container of a service (or of its readiness command, `argv`): its
/// table's keys over the defaults, named and reached by its name.
fn service_spec(
    config: &ServiceConfig,
    argv: &[String],
    roots: &Roots,
) -> Result<SandboxSpec, SetupFailure> {
    let hostname = Settings {
        hostname: Some(Sourced::new(config.name.clone(), config.source.clone())),
        ..Settings::default()
    };
    let planned = PlannedTest {
        case: TestCase {
            name: config.name.clone(),
            suite: String::new(),
            program: Program::Command(argv.to_vec()),
            dir: config.dir.clone(),
            tags: Vec::new(),
            default_dir: true,
            harness: None,
            host_dirs: Vec::new(),
        },
        settings: Settings::resolve([&config.settings, &hostname]),
        services: Vec::new(),
    };
    let root = roots
        .get(planned.settings.rootfs())
        .map_err(|cause| SetupFailure {
            step: format!("prepare the root filesystem of service `{}`", config.name).into(),
            cause,
            hint: None,
            host_unsupported: false,
            errno: None,
        })?;
    let mut spec = spec(&planned, &root);
    spec.timeout = None;
    Ok(spec)
}
