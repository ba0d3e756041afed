//! The rootfs cache: one directory per unpacked tarball, image archive, OCI
//! layer, flattened image or tools root, each keyed by a SHA-256.
//!
//! ```text
//! CACHE/KIND/KEY/tree        what was unpacked or built (a lower layer)
//! CACHE/KIND/KEY/source      one line: what it came from
//! CACHE/KIND/KEY/last-used   touched by every prepare that uses it
//! CACHE/tmp/NAME.PID.START.N entries being built, by process PID (started at START)
//! CACHE/locks/KIND-KEY.lock  flock(2)ed while an entry is built
//! ```
//!
//! An entry is built in `tmp/` and `rename`d into place, so an entry that
//! exists is complete. A lock per key makes concurrent builders (threads or
//! processes) wait for the first instead of repeating its work; should two
//! still race, the loser deletes its copy and uses the winner's. Temp dirs
//! of processes that are gone are deleted by later builds and by `clean`.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

use super::digest::DigestMemo;
use super::tarball::remove_tree;
use super::{oci, tarball, tools, ImageError, PreparedRoot, RootfsSource};

/// The kinds of cache entries, each a directory of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A root filesystem tarball, unpacked.
    Tarball,
    /// An OCI or docker-save archive, unpacked into an image layout.
    Archive,
    /// One OCI layer with overlay whiteouts.
    Layer,
    /// All layers of an image applied onto one tree (when not root).
    Flat,
    /// A minimal root of host programs.
    Tools,
}

impl EntryKind {
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Tarball,
        EntryKind::Archive,
        EntryKind::Layer,
        EntryKind::Flat,
        EntryKind::Tools,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Tarball => "tarball",
            EntryKind::Archive => "archive",
            EntryKind::Layer => "layer",
            EntryKind::Flat => "flat",
            EntryKind::Tools => "tools",
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One cache entry, as `isotest cache list` shows it.
#[derive(Clone, Debug)]
pub struct CacheEntry {
    pub kind: EntryKind,
    /// The full SHA-256 hex key.
    pub key: String,
    /// Bytes of file content (hard-linked files counted once).
    pub size: u64,
    /// When a prepare last used it; `None` if the stamp is missing.
    pub last_used: Option<SystemTime>,
    /// What it came from (a path, a layer digest and its image, a tool list).
    pub source: String,
    /// The entry's directory.
    pub path: PathBuf,
}

/// What `Cache::clean` removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanSummary {
    pub entries: usize,
    /// Temp dirs left by processes that died while building an entry.
    pub stale_temp_dirs: usize,
    pub bytes_freed: u64,
}

/// An entry made sure of: its tree, and whether this call built it.
pub(crate) struct Ensured {
    pub(crate) tree: PathBuf,
    pub(crate) built: bool,
}

/// The rootfs cache directory.
pub struct Cache {
    root: PathBuf,
    digests: DigestMemo,
    overlay_whiteouts: OnceLock<bool>,
}

const TREE: &str = "tree";
const SOURCE: &str = "source";
const LAST_USED: &str = "last-used";
const TMP: &str = "tmp";
const LOCKS: &str = "locks";

impl Cache {
    /// `dir` from --cache-dir, else $XDG_CACHE_HOME/isotest, else
    /// $HOME/.cache/isotest. Created (mode 0700) on first use.
    pub fn open(dir: Option<&Path>) -> Result<Cache, ImageError> {
        let root = match dir {
            Some(dir) => dir.to_path_buf(),
            None => default_dir().ok_or(ImageError::NoCacheDir)?,
        };
        let root = std::path::absolute(&root).unwrap_or(root);
        Ok(Cache {
            root,
            digests: DigestMemo::default(),
            overlay_whiteouts: OnceLock::new(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Unpacks or builds `source` once and returns the layers to stack.
    /// Safe to call from several threads and processes at once.
    pub fn prepare(&self, source: &RootfsSource) -> Result<PreparedRoot, ImageError> {
        match source {
            RootfsSource::Host => Ok(PreparedRoot::layers(Vec::new(), false)),
            RootfsSource::Directory(dir) => {
                let dir = fs::canonicalize(dir).map_err(|e| ImageError::io(dir, "open", e))?;
                if !dir.is_dir() {
                    return Err(ImageError::io(
                        &dir,
                        "use as root filesystem",
                        io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                    ));
                }
                Ok(PreparedRoot::layers(vec![dir], false))
            }
            RootfsSource::Tarball(path) => tarball::prepare(self, path),
            RootfsSource::Oci { path, reference } => oci::prepare(self, path, reference.as_deref()),
            RootfsSource::Tools(programs) => tools::prepare(self, programs),
        }
    }

    /// Every entry, most recently used first.
    pub fn list(&self) -> Result<Vec<CacheEntry>, ImageError> {
        let mut entries = Vec::new();
        for kind in EntryKind::ALL {
            let dir = self.root.join(kind.as_str());
            let children = match fs::read_dir(&dir) {
                Ok(children) => children,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ImageError::io(&dir, "list cache entries", e)),
            };
            for child in children {
                let child = child.map_err(|e| ImageError::io(&dir, "list cache entries", e))?;
                let path = child.path();
                let Some(key) = child.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let source = fs::read_to_string(path.join(SOURCE))
                    .map(|text| text.trim().to_string())
                    .unwrap_or_default();
                let last_used = fs::metadata(path.join(LAST_USED))
                    .and_then(|m| m.modified())
                    .ok();
                let size = tree_size(&path).map_err(|e| ImageError::io(&path, "measure", e))?;
                entries.push(CacheEntry {
                    kind,
                    key,
                    size,
                    last_used,
                    source,
                    path,
                });
            }
        }
        entries.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.key.cmp(&b.key)));
        Ok(entries)
    }

    /// Removes every entry and the temp dirs of dead processes. Do not run
    /// it while tests use the cache: their lower layers would vanish.
    pub fn clean(&self) -> Result<CleanSummary, ImageError> {
        let mut summary = CleanSummary::default();
        for entry in self.list()? {
            // Out of sight first, so no prepare trusts a half-deleted entry;
            // a clean killed midway leaves a temp dir the next one removes.
            let doomed = self.temp_path("removing")?;
            match fs::rename(&entry.path, &doomed) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ImageError::io(&entry.path, "remove cache entry", e)),
            }
            remove_tree(&doomed).map_err(|e| ImageError::io(&doomed, "remove", e))?;
            summary.entries += 1;
            summary.bytes_freed += entry.size;
        }
        let (count, bytes) = self.remove_stale_temps()?;
        summary.stale_temp_dirs = count;
        summary.bytes_freed += bytes;
        self.remove_idle_locks();
        Ok(summary)
    }

    /// The hex SHA-256 of a file (computed once per file version per process).
    pub(crate) fn file_digest(&self, path: &Path) -> Result<String, ImageError> {
        self.digests.file(path)
    }

    /// Whether this process can write overlayfs whiteouts (a 0:0 character
    /// device and `trusted.*` xattrs) in the cache: root on a filesystem
    /// that takes them. Found out once, by trying.
    pub(crate) fn overlay_whiteouts(&self) -> bool {
        *self.overlay_whiteouts.get_or_init(|| {
            if !nix::unistd::geteuid().is_root() {
                return false;
            }
            let Ok(probe) = self.temp_dir("probe") else {
                return false;
            };
            let device = nix::sys::stat::mknod(
                &probe.join("whiteout"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            );
            let xattr = rustix::fs::lsetxattr(
                &probe,
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            );
            let _ = remove_tree(&probe);
            device.is_ok() && xattr.is_ok()
        })
    }

    /// This cache as a non-root process sees it: images are flattened.
    #[cfg(test)]
    pub(crate) fn without_overlay_whiteouts(self) -> Self {
        let _ = self.overlay_whiteouts.set(false);
        self
    }

    /// Makes sure the entry `kind/key` exists, building it with `build`
    /// (given an empty directory to fill) if not. `source` says what it
    /// came from, for `cache list`.
    pub(crate) fn ensure(
        &self,
        kind: EntryKind,
        key: &str,
        source: &str,
        build: impl FnOnce(&Path) -> Result<(), ImageError>,
    ) -> Result<Ensured, ImageError> {
        let entry = self.root.join(kind.as_str()).join(key);
        if let Some(hit) = self.hit(&entry) {
            return Ok(hit);
        }
        let _lock = self.lock(kind, key)?;
        if let Some(hit) = self.hit(&entry) {
            return Ok(hit);
        }
        self.remove_stale_temps()?;
        let temp = self.temp_dir(&format!("{kind}-{}", &key[..key.len().min(16)]))?;
        let built = (|| {
            let tree = temp.join(TREE);
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&tree)
                .map_err(|e| ImageError::io(&tree, "create directory", e))?;
            build(&tree)?;
            write_file(&temp.join(SOURCE), format!("{source}\n").as_bytes())?;
            write_file(&temp.join(LAST_USED), b"")?;
            let parent = self.root.join(kind.as_str());
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&parent)
                .map_err(|e| ImageError::io(&parent, "create directory", e))
        })();
        if let Err(error) = built {
            let _ = remove_tree(&temp);
            return Err(error);
        }
        match fs::rename(&temp, &entry) {
            Ok(()) => {}
            // Lost a race to another builder: theirs is as good as ours.
            Err(e) if is_dir_not_empty(&e) && entry.join(TREE).is_dir() => {
                let _ = remove_tree(&temp);
            }
            Err(e) => {
                let _ = remove_tree(&temp);
                return Err(ImageError::io(&entry, "move unpacked entry into place", e));
            }
        }
        Ok(Ensured {
            tree: entry.join(TREE),
            built: true,
        })
    }

    fn hit(&self, entry: &Path) -> Option<Ensured> {
        let tree = entry.join(TREE);
        if !tree.is_dir() {
            return None;
        }
        let stamp = entry.join(LAST_USED);
        if let Ok(file) = OpenOptions::new().create(true).append(true).open(&stamp) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(Ensured { tree, built: false })
    }

    /// Holds the build lock of `kind/key` until dropped.
    fn lock(&self, kind: EntryKind, key: &str) -> Result<Flock<File>, ImageError> {
        let dir = self.create_subdir(LOCKS)?;
        let path = dir.join(format!("{kind}-{key}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::io(&path, "open lock file", e))?;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => return Ok(lock),
                Err((back, nix::errno::Errno::EINTR)) => file = back,
                Err((_, errno)) => return Err(ImageError::io(&path, "lock", errno.into())),
            }
        }
    }

    /// Removes lock files nobody holds (a held one is in use by a build).
    fn remove_idle_locks(&self) {
        let dir = self.root.join(LOCKS);
        let Ok(children) = fs::read_dir(&dir) else {
            return;
        };
        for child in children.flatten() {
            let Ok(file) = File::open(child.path()) else {
                continue;
            };
            if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                let _ = fs::remove_file(child.path());
                drop(lock);
            }
        }
    }

    fn create_subdir(&self, name: &str) -> Result<PathBuf, ImageError> {
        let dir = self.root.join(name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ImageError::io(&dir, "create cache directory", e))?;
        Ok(dir)
    }

    /// A fresh path in `tmp/` named after `purpose` and this process.
    fn temp_path(&self, purpose: &str) -> Result<PathBuf, ImageError> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let dir = self.create_subdir(TMP)?;
        let me = std::process::id();
        let started = process_start(me).unwrap_or(0);
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        Ok(dir.join(format!("{purpose}.{me}.{started}.{n}")))
    }

    /// A fresh, empty directory in `tmp/`.
    fn temp_dir(&self, purpose: &str) -> Result<PathBuf, ImageError> {
        let path = self.temp_path(purpose)?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| ImageError::io(&path, "create temp directory", e))?;
        Ok(path)
    }

    /// Removes temp dirs whose process is gone; returns how many, and bytes.
    fn remove_stale_temps(&self) -> Result<(usize, u64), ImageError> {
        let dir = self.root.join(TMP);
        let children = match fs::read_dir(&dir) {
            Ok(children) => children,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(ImageError::io(&dir, "list temp directories", e)),
        };
        let (mut count, mut bytes) = (0, 0);
        for child in children.flatten() {
            let name = child.file_name();
            if owner_alive(&name.to_string_lossy()) {
                continue;
            }
            let path = child.path();
            bytes += tree_size(&path).unwrap_or(0);
            remove_tree(&path).map_err(|e| ImageError::io(&path, "remove stale temp dir", e))?;
            count += 1;
        }
        Ok((count, bytes))
    }
}

/// $XDG_CACHE_HOME/isotest, else $HOME/.cache/isotest: the cache of
/// images and, beside them, the run history.
pub fn default_dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    from("XDG_CACHE_HOME")
        .map(|dir| dir.join("isotest"))
        .or_else(|| from("HOME").map(|home| home.join(".cache").join("isotest")))
}

fn write_file(path: &Path, content: &[u8]) -> Result<(), ImageError> {
    fs::write(path, content).map_err(|e| ImageError::io(path, "write", e))
}

fn is_dir_not_empty(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
    )
}

/// Whether the process named in a temp dir name `PURPOSE.PID.START.N`
/// still runs: a process with that pid that started at that time.
fn owner_alive(name: &str) -> bool {
    let mut fields = name.rsplit('.');
    let (Some(_), Some(started), Some(pid)) = (fields.next(), fields.next(), fields.next()) else {
        return false;
    };
    match (pid.parse::<u32>(), started.parse::<u64>()) {
        (Ok(pid), Ok(started)) => process_start(pid) == Some(started),
        _ => false,
    }
}

pub(crate) use crate::sandbox::process_start;

/// Bytes of content under `path` (each inode once).
fn tree_size(path: &Path) -> io::Result<u64> {
    fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
        let meta = fs::symlink_metadata(path)?;
        if !seen.insert((meta.dev(), meta.ino())) {
            return Ok(0);
        }
        if !meta.is_dir() {
            return Ok(meta.len());
        }
        // An unpacked directory may be unreadable to a non-root user (mode
        // 0 in the archive); its content is then left out of the count.
        let Ok(children) = fs::read_dir(path) else {
            return Ok(0);
        };
        let mut total = 0;
        for child in children {
            total += walk(&child?.path(), seen)?;
        }
        Ok(total)
    }
    walk(path, &mut HashSet::new())
}
