//! Where history lives: `CACHE/history/KEY.json`, one file per suite, the
//! key a hash of the suite's roots. Runs that finish at the same time
//! take turns under `KEY.lock` (flock) to read, add to and replace the
//! file; it is replaced by renaming a complete temporary file, so a
//! reader never sees half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::History;
use crate::select::fnv1a_64;

/// The history file of one suite.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
    roots: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run history {}: {action}: {source} (pass --no-history to run without it)", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("run history {}: not history this isotest reads ({reason}); this run records afresh", .path.display())]
    Unreadable { path: PathBuf, reason: String },
}

/// The file's contents: the roots say whose history it is.
#[derive(Serialize, Deserialize)]
struct HistoryFile {
    version: u64,
    roots: Vec<String>,
    #[serde(flatten)]
    history: History,
}

const VERSION: u64 = 1;

/// The suites whose history is kept: the cache stays bounded as suites
/// come and go (a CI runner's checkouts, deleted worktrees).
const MAX_SUITES: usize = 64;

/// Removes the histories (and lock files) of all but the `keep` suites
/// recorded last. Best effort: the cache is only a cache.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .filter_map(|path| Some((fs::metadata(&path).ok()?.modified().ok()?, path)))
        .collect();
    if files.len() <= keep {
        return;
    }
    files.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in files.drain(keep..) {
        let _ = fs::remove_file(path.with_extension("lock"));
        let _ = fs::remove_file(path);
    }
}

impl Store {
    /// The history of the suite under `roots` (made absolute), kept in
    /// `cache_dir/history/`.
    pub fn new(cache_dir: &Path, roots: &[PathBuf]) -> Store {
        let roots: Vec<String> = roots
            .iter()
            .map(|root| {
                let absolute = fs::canonicalize(root)
                    .or_else(|_| std::path::absolute(root))
                    .unwrap_or_else(|_| root.clone());
                absolute.display().to_string()
            })
            .collect();
        let key = fnv1a_64(roots.join("\0").as_bytes());
        Store {
            path: cache_dir.join("history").join(format!("{key:016x}.json")),
            roots,
        }
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded history; empty when there is none yet.
    pub fn load(&self) -> Result<History, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(History::default()),
            Err(source) => return Err(self.error("read", source)),
        };
        let unreadable = |reason: String| StoreError::Unreadable {
            path: self.path.clone(),
            reason,
        };
        match serde_json::from_slice::<HistoryFile>(&bytes) {
            Ok(file) if file.version == VERSION => Ok(file.history),
            Ok(file) => Err(unreadable(format!("version {}", file.version))),
            Err(error) => Err(unreadable(error.to_string())),
        }
    }

    /// Adds to the recorded history with `change`, holding the lock from
    /// reading to replacing the file.
    pub fn update(&self, change: impl FnOnce(&mut History)) -> Result<(), StoreError> {
        let dir = self
            .path
            .parent()
            .expect("the history file is in a directory");
        fs::create_dir_all(dir).map_err(|e| self.error("create the directory", e))?;
        let lock_path = self.path.with_extension("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.error("open the lock file", e))?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| self.error("lock", errno.into()))?;
        // A damaged file is replaced, so that one bad write never stops
        // history for good.
        let mut history = match self.load() {
            Err(StoreError::Unreadable { .. }) => History::default(),
            other => other?,
        };
        change(&mut history);
        let file = HistoryFile {
            version: VERSION,
            roots: self.roots.clone(),
            history,
        };
        let json = serde_json::to_vec(&file).expect("history serializes");
        self.replace(&json)?;
        prune(dir, MAX_SUITES);
        Ok(())
    }

    fn replace(&self, contents: &[u8]) -> Result<(), StoreError> {
        let temp = self
            .path
            .with_extension(format!("json.tmp-{}", std::process::id()));
        let written = File::create(&temp)
            .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()))
            .and_then(|()| fs::rename(&temp, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written.map_err(|e| self.error("write", e))
    }

    fn error(&self, action: &'static str, source: io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::junit::tests::summary;

    #[test]
    fn keyed_by_the_roots() {
        let cache = Path::new("/cache");
        let a = Store::new(cache, &[PathBuf::from("/suite/a")]);
        let b = Store::new(cache, &[PathBuf::from("/suite/b")]);
        assert_ne!(a.path(), b.path());
        assert_eq!(
            a.path(),
            Store::new(cache, &[PathBuf::from("/suite/a")]).path()
        );
        assert!(a.path().starts_with("/cache/history"));
    }

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), &[PathBuf::from("/suite")]);
        assert!(store.load().unwrap().is_empty(), "no file yet");
        let results = summary().results;
        store.update(|h| h.record(&results)).unwrap();
        let mut expected = History::default();
        expected.record(&results);
        assert_eq!(store.load().unwrap(), expected);
        let names: Vec<_> = fs::read_dir(dir.path().join("history"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    #[test]
    fn concurrent_updates_all_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), &[PathBuf::from("/suite")]);
        let results = summary().results;
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        store.update(|h| h.record(&results)).unwrap();
                    }
                });
            }
        });
        assert_eq!(store.load().unwrap().runs, 40, "no update was lost");
    }

    #[test]
    fn only_the_suites_recorded_last_are_kept() {
        let cache = tempfile::tempdir().unwrap();
        for n in 0..5 {
            let root = cache.path().join(format!("suite{n}"));
            Store::new(cache.path(), &[root]).update(|_| {}).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let dir = cache.path().join("history");
        prune(&dir, 3);
        let kept = |n: usize| {
            Store::new(cache.path(), &[cache.path().join(format!("suite{n}"))])
                .path()
                .exists()
        };
        assert_eq!(
            (0..5).map(kept).collect::<Vec<_>>(),
            [false, false, true, true, true]
        );
        let locks = fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "lock")
            .count();
        assert_eq!(locks, 3);
    }

    #[test]
    fn a_damaged_file_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), &[PathBuf::from("/suite")]);
        fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        fs::write(store.path(), "{ not json").unwrap();
        let error = store.load().unwrap_err().to_string();
        assert!(error.contains("not history this isotest reads"), "{error}");
        store.update(|h| h.runs = 7).unwrap();
        assert_eq!(store.load().unwrap().runs, 7);
    }
}
