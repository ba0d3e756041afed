//! The root filesystems of a run: each distinct `rootfs` is prepared once
//! (unpacked or built into the cache) when the first test needs it, and
//! shared by every test using it. A root that cannot be prepared is an
//! ERROR for the tests that use it; the run goes on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::config::Rootfs;
use crate::image::{Cache, RootfsSource};

/// What a test's container needs to know of its root.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Root {
    /// Read-only layers, top first; empty for the host's root.
    pub layers: Vec<PathBuf>,
    /// Defaults from an image's config: environment, working directory
    /// (for `[[test]]` commands without `cwd`), user.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

type Prepared = Arc<OnceLock<Result<Arc<Root>, String>>>;

/// The run's roots, prepared on first use.
pub struct Roots {
    cache_dir: Option<PathBuf>,
    cache: OnceLock<Result<Cache, String>>,
    prepared: Mutex<HashMap<Rootfs, Prepared>>,
    /// Called with a line for the user when a root was unpacked or built
    /// (not on a cache hit).
    on_built: Box<dyn Fn(String) + Send + Sync>,
}

impl Roots {
    /// `cache_dir` is `--cache-dir`; the default cache is used otherwise.
    pub fn new(cache_dir: Option<PathBuf>) -> Roots {
        Roots {
            cache_dir,
            cache: OnceLock::new(),
            prepared: Mutex::new(HashMap::new()),
            on_built: Box::new(|_| {}),
        }
    }

    /// Tells `notify` about every root unpacked or built into the cache.
    pub fn with_notices(mut self, notify: impl Fn(String) + Send + Sync + 'static) -> Roots {
        self.on_built = Box::new(notify);
        self
    }

    /// The root for `rootfs`, prepared once; tests asking for the same one
    /// meanwhile wait for it.
    pub fn get(&self, rootfs: &Rootfs) -> Result<Arc<Root>, String> {
        let slot = {
            let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
            prepared.entry(rootfs.clone()).or_default().clone()
        };
        slot.get_or_init(|| self.prepare(rootfs).map(Arc::new))
            .clone()
    }

    fn prepare(&self, rootfs: &Rootfs) -> Result<Root, String> {
        let source = match rootfs {
            Rootfs::Host => return Ok(Root::default()),
            Rootfs::Path { value, base } => {
                RootfsSource::parse(value, base).map_err(|e| e.to_string())?
            }
            Rootfs::Tools(tools) => RootfsSource::Tools(tools.clone()),
        };
        if let RootfsSource::Directory(dir) = &source {
            return Ok(Root {
                layers: vec![dir.clone()],
                ..Root::default()
            });
        }
        let cache = self
            .cache
            .get_or_init(|| Cache::open(self.cache_dir.as_deref()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)?;
        let started = Instant::now();
        let prepared = cache.prepare(&source).map_err(|e| e.to_string())?;
        if prepared.built {
            (self.on_built)(format!(
                "rootfs {source}: prepared in the cache {} in {:.1}s",
                cache.root().display(),
                started.elapsed().as_secs_f64()
            ));
        }
        let bytes = |text: String| text.into_bytes();
        Ok(Root {
            layers: prepared.layers,
            env: prepared
                .env
                .into_iter()
                .map(|(k, v)| (bytes(k), bytes(v)))
                .collect(),
            working_dir: prepared.working_dir.filter(|dir| dir.starts_with('/')),
            user: prepared.user.filter(|user| !user.is_empty()),
        })
    }
}
