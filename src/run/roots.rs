//! The root filesystems of a run: each distinct `rootfs` is prepared once
//! (unpacked or built into the cache) when the first test needs it, and
//! shared by every test using it. A root that cannot be prepared is an
//! ERROR for the tests that use it; the run goes on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::Rootfs;

/// What a test's container needs to know of its root.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Root {
    /// Read-only layers, top first; empty for the host's root.
    pub layers: Vec<PathBuf>,
    /// Defaults from an image's config: environment, user.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub user: Option<String>,
}

type Prepared = Arc<OnceLock<Result<Arc<Root>, String>>>;

/// The run's roots, prepared on first use.
pub struct Roots {
    cache_dir: Option<PathBuf>,
    prepared: Mutex<HashMap<Rootfs, Prepared>>,
}

impl Roots {
    /// `cache_dir` is `--cache-dir`; the default cache is used otherwise.
    pub fn new(cache_dir: Option<PathBuf>) -> Roots {
        Roots {
            cache_dir,
            prepared: Mutex::new(HashMap::new()),
        }
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
        match rootfs {
            Rootfs::Host => Ok(Root::default()),
            Rootfs::Path { value, base } => {
                let _ = &self.cache_dir;
                let dir = base.join(value);
                if dir.is_dir() {
                    Ok(Root {
                        layers: vec![dir],
                        ..Root::default()
                    })
                } else {
                    Err(format!("rootfs {}: not a directory", dir.display()))
                }
            }
            Rootfs::Tools(_) => Err("tools roots: not yet".into()),
        }
    }
}
