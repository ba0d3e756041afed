//! `scope = "run"` services: one container per service for the whole run,
//! started when the first test that uses it needs it (the tests that need
//! it meanwhile wait for the same start), on a network shared by the
//! services of one isotest.toml directory (10.90.0.0/16, 10.91.0.0/16...).
//! A test that uses one gets a link to that network besides its own
//! private one, with an address of its own there. The services are
//! stopped when the run ends; their output and usage are the run's.
//!
//! A service that could not start, or was never ready, stays that way for
//! the run: every test that uses it is an ERROR naming it, without waiting
//! again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::Scope;
use std::time::{Duration, SystemTime};

use super::roots::Roots;
use super::services::{
    stop_all, Ended, RunningService, ServiceContext, ServiceResult, ServiceStatus,
};
use crate::config::{Network as NetworkSetting, ServiceConfig};
use crate::sandbox::{hosts_file, Link, Network, Sandbox, SetupFailure, StopRequest, Subnet};

/// What the tests of a run can ask of its shared services.
pub trait RunServices: Sync {
    /// The running, ready service `config` (started now if it is not
    /// yet), for a test.
    fn use_service(
        &self,
        config: &Arc<ServiceConfig>,
        stop: &StopRequest,
    ) -> Result<SharedUse, SetupFailure>;
}

/// A run's network for the shared services of one directory.
pub struct SharedNetwork {
    network: Network,
    /// The next host number to hand out (wrapping within the subnet).
    next: AtomicU32,
}

impl SharedNetwork {
    /// A link with an address not handed out recently.
    fn new_link(&self) -> Link {
        let hosts = self.network.subnet.hosts();
        let n = self.next.fetch_add(1, Ordering::SeqCst) % hosts + 2;
        self.network.link(n, false)
    }
}

impl SharedUse {
    pub fn network(&self) -> &Network {
        &self.network.network
    }
}

/// A test's use of a shared service.
#[derive(Clone)]
pub struct SharedUse {
    pub name: String,
    pub address: [u8; 4],
    network: Arc<SharedNetwork>,
    ready_after: Option<Duration>,
    ready_at: Option<SystemTime>,
    /// How it ended, once it has.
    ended: Arc<OnceLock<Ended>>,
}

/// Links for one container to every shared network `uses` are on, each
/// once, with addresses of its own.
pub fn shared_links(uses: &[SharedUse]) -> Vec<Link> {
    let mut seen: Vec<&Arc<SharedNetwork>> = Vec::new();
    for used in uses {
        if !seen.iter().any(|n| Arc::ptr_eq(n, &used.network)) {
            seen.push(&used.network);
        }
    }
    seen.into_iter().map(|n| n.new_link()).collect()
}

/// The entries of a test's result for the shared services it used.
pub fn shared_results(uses: &[SharedUse]) -> Vec<ServiceResult> {
    uses.iter()
        .map(|used| {
            let ended = used.ended.get();
            let status = match ended {
                Some(ended) if ended.oom_killed => ServiceStatus::OomKilled,
                Some(_) => ServiceStatus::Exited,
                None => ServiceStatus::Shared,
            };
            ServiceResult {
                message: ended.map(|e| format!("{} (a run service)", e.how)),
                ready_after: used.ready_after,
                ready_at: used.ready_at,
                ..ServiceResult::without_run(&used.name, status)
            }
        })
        .collect()
}

type Started = Result<SharedUse, SetupFailure>;
/// A service by its directory and name.
type ServiceKey = (PathBuf, String);
/// Where a service's start ends up, once, for every test that waits.
type Slot = Arc<OnceLock<Started>>;

/// The run's shared services; their threads live in `scope`.
pub struct SharedServices<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    sandbox: &'env Sandbox,
    roots: &'env Roots,
    output_limit: usize,
    /// By directory; the index gives the subnet.
    networks: Mutex<Vec<(PathBuf, Arc<SharedNetwork>)>>,
    /// By directory and name, each started once.
    services: Mutex<Vec<(ServiceKey, Slot)>>,
    running: Mutex<Vec<RunningService<'scope>>>,
}

impl<'scope, 'env> SharedServices<'scope, 'env> {
    pub fn new(
        scope: &'scope Scope<'scope, 'env>,
        sandbox: &'env Sandbox,
        roots: &'env Roots,
        output_limit: usize,
    ) -> Self {
        SharedServices {
            scope,
            sandbox,
            roots,
            output_limit,
            networks: Mutex::new(Vec::new()),
            services: Mutex::new(Vec::new()),
            running: Mutex::new(Vec::new()),
        }
    }

    /// Stops every shared service; their results, in starting order.
    pub fn stop_all(&self) -> Vec<ServiceResult> {
        let running = std::mem::take(&mut *lock(&self.running));
        stop_all(running)
    }

    fn slot(&self, config: &ServiceConfig) -> Slot {
        let key = (config.dir.clone(), config.name.clone());
        let mut services = lock(&self.services);
        if let Some((_, slot)) = services.iter().find(|(k, _)| *k == key) {
            return slot.clone();
        }
        let slot = Arc::new(OnceLock::new());
        services.push((key, slot.clone()));
        slot
    }

    fn network(&self, config: &ServiceConfig) -> Result<Arc<SharedNetwork>, SetupFailure> {
        let mut networks = lock(&self.networks);
        if let Some((_, network)) = networks.iter().find(|(dir, _)| *dir == config.dir) {
            return Ok(network.clone());
        }
        let outbound = false;
        let subnet = Subnet::shared(networks.len() as u8);
        // Rootless, every network of the run shares one user namespace.
        let first = networks.first().map(|(_, n)| &n.network);
        let network = Arc::new(SharedNetwork {
            network: self.sandbox.create_network(subnet, outbound, first)?,
            next: AtomicU32::new(0),
        });
        networks.push((config.dir.clone(), network.clone()));
        Ok(network)
    }

    fn start(&self, config: &Arc<ServiceConfig>, stop: &StopRequest) -> Started {
        if config.settings.network() == NetworkSetting::Outbound {
            return Err(SetupFailure {
                step: format!("start service `{}` (scope = \"run\")", config.name).into(),
                cause: "a run's shared network has no uplink".into(),
                hint: Some("give it scope = \"test\" for network = \"outbound\"".into()),
                host_unsupported: false,
                errno: None,
            });
        }
        let network = self.network(config)?;
        let link = network.new_link();
        let address = link.address;
        let mut names = vec![(config.name.clone(), address)];
        names.extend(self.dependencies(config));
        let hosts = hosts_file(&names);
        let context = ServiceContext {
            sandbox: self.sandbox,
            roots: self.roots,
            stop,
            output_limit: self.output_limit,
            shared: self,
        };
        let attachment = network.network.attachment(vec![link], &hosts);
        let mut service =
            RunningService::start(self.scope, self.sandbox, config, attachment, &context)?;
        let ready = service.wait_ready(&network.network, &hosts, &context);
        let used = SharedUse {
            name: config.name.clone(),
            address,
            network,
            ready_after: service.ready_after(),
            ready_at: service.ready_at(),
            ended: service.ended(),
        };
        lock(&self.running).push(service);
        ready.map(|()| used)
    }

    /// The names and addresses of the started services `config` depends on.
    fn dependencies(&self, config: &ServiceConfig) -> Vec<(String, [u8; 4])> {
        let services = lock(&self.services);
        config
            .depends_on
            .iter()
            .filter_map(|name| {
                let key = (config.dir.clone(), name.clone());
                let (_, slot) = services.iter().find(|(k, _)| *k == key)?;
                let used = slot.get()?.as_ref().ok()?;
                Some((used.name.clone(), used.address))
            })
            .collect()
    }
}

impl RunServices for SharedServices<'_, '_> {
    fn use_service(
        &self,
        config: &Arc<ServiceConfig>,
        stop: &StopRequest,
    ) -> Result<SharedUse, SetupFailure> {
        let slot = self.slot(config);
        let used = slot.get_or_init(|| self.start(config, stop)).clone()?;
        match used.ended.get() {
            None => Ok(used),
            Some(ended) => Err(SetupFailure {
                step: format!("use service `{}` (scope = \"run\")", config.name).into(),
                cause: format!("it ended earlier in the run ({})", ended.how),
                hint: Some("its output is in the run's `services`".into()),
                host_unsupported: false,
                errno: None,
            }),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
