//! Safe unpacking of tar archives into a directory we own.
//!
//! Every entry path is checked before anything is written: no `..`, no
//! absolute paths, and no parent component that is a symlink (each one is
//! looked at with `symlink_metadata`, and since only this unpacker writes in
//! the directory, nothing can swap a component between check and use). Files
//! are created with `O_EXCL`, so a symlink at the final component is never
//! followed either. Ownership is kept when running as root; modes, symlinks,
//! hard links (whose target must lie inside the root) and fifos are kept;
//! character and block devices are skipped.
//!
//! OCI layer whiteouts are handled per [`Whiteouts`]: turned into overlayfs
//! whiteouts (a 0:0 character device, the `trusted.overlay.opaque` xattr) or
//! applied as deletions when several layers are flattened into one tree.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::stat::{Mode, SFlag};
use tar::EntryType;

use super::cache::{Cache, EntryKind};
use super::compress;
use super::digest::{self, HashingReader};
use super::{ImageError, PreparedRoot};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What to do with OCI whiteout entries (`.wh.NAME`, `.wh..wh..opq`, and
/// 0:0 character devices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Whiteouts {
    /// A plain root filesystem tarball: `.wh.` names are ordinary files.
    Keep,
    /// One OCI layer as an overlayfs lower layer: write overlay whiteouts.
    Overlay,
    /// Layers applied in order onto one tree: whiteouts delete what lower
    /// layers wrote.
    Apply,
}

/// A directory's final mode and mtime, set once every entry is in, so a
/// read-only directory does not stop its own children from being written.
struct DirMeta {
    mode: u32,
    mtime: u64,
}

/// Unpacks one or more archives (layers) into `dest`.
pub(crate) struct Unpacker {
    dest: PathBuf,
    whiteouts: Whiteouts,
    as_root: bool,
    dirs: BTreeMap<PathBuf, DirMeta>,
}

impl Unpacker {
    /// `dest` must exist and be a directory only this unpacker writes to.
    pub(crate) fn new(dest: &Path, whiteouts: Whiteouts) -> Self {
        Unpacker {
            dest: dest.to_path_buf(),
            whiteouts,
            as_root: nix::unistd::geteuid().is_root(),
            dirs: BTreeMap::new(),
        }
    }

    /// Unpacks the (decompressed) tar stream `reader`; `label` names it in
    /// errors. Stops at the end-of-archive marker without reading further.
    pub(crate) fn unpack(&mut self, reader: impl Read, label: &str) -> Result<(), ImageError> {
        let mut archive = tar::Archive::new(reader);
        let corrupt = |source| ImageError::CorruptArchive {
            archive: label.to_string(),
            source,
        };
        let mut layer = Layer {
            unpacker: self,
            label,
            written: HashSet::new(),
        };
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            layer.entry(&mut entry)?;
        }
        Ok(())
    }

    /// Sets the directories' final modes and times (deepest first).
    pub(crate) fn finish(self) -> Result<(), ImageError> {
        for (rel, meta) in self.dirs.iter().rev() {
            let path = self.dest.join(rel);
            match fs::symlink_metadata(&path) {
                Ok(found) if found.is_dir() => {}
                _ => continue,
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode))
                .map_err(|e| ImageError::io(&path, "set mode", e))?;
            set_mtime(&path, meta.mtime).map_err(|e| ImageError::io(&path, "set mtime", e))?;
        }
        Ok(())
    }
}

/// One archive being unpacked, and the paths it wrote so far (whiteouts
/// and opaque markers only remove what earlier layers wrote).
struct Layer<'u> {
    unpacker: &'u mut Unpacker,
    label: &'u str,
    written: HashSet<PathBuf>,
}

/// The header fields an entry is written with.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl Layer<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), ImageError> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let path = entry
            .path()
            .map_err(|e| self.unpack_error(&shown, "read path", e))?;
        let rel = in_root(&path).map_err(|problem| self.unsafe_entry(&shown, problem))?;
        let meta = self.meta(entry, &shown)?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() && kind != EntryType::Directory {
            return Err(self.unsafe_entry(&shown, "names the root itself but is not a directory"));
        }

        if self.unpacker.whiteouts != Whiteouts::Keep {
            if let Some(name) = rel.file_name().and_then(OsStr::to_str) {
                if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                    let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
                    self.parents(&rel, &shown)?;
                    return if name == OPAQUE_MARKER {
                        self.opaque(&parent, &shown)
                    } else if hidden.starts_with(WHITEOUT_PREFIX) {
                        Ok(()) // other `.wh..wh.` names are aufs bookkeeping
                    } else {
                        self.whiteout(&parent.join(hidden), &shown)
                    };
                }
            }
        }
        if kind.is_character_special() && self.is_overlay_whiteout(entry) {
            if self.unpacker.whiteouts == Whiteouts::Keep {
                return Ok(());
            }
            self.parents(&rel, &shown)?;
            return self.whiteout(&rel, &shown);
        }

        match kind {
            EntryType::Directory => self.directory(&rel, &meta, &shown),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, &rel, &meta, &shown)
            }
            EntryType::Symlink => {
                let target = self.link_target(entry, &shown)?;
                self.symlink(&rel, &target, &meta, &shown)
            }
            EntryType::Link => {
                let target = self.link_target(entry, &shown)?;
                self.hard_link(&rel, &target, &shown)
            }
            EntryType::Fifo => self.fifo(&rel, &meta, &shown),
            // Device nodes are the container runtime's business, and pax or
            // GNU extension headers the tar reader has already applied.
            _ => Ok(()),
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<R>, shown: &str) -> Result<Meta, ImageError> {
        let header = entry.header();
        let field = |e| self.unpack_error(shown, "read header", e);
        let mut meta = Meta {
            mode: header.mode().map_err(field)? & 0o7777,
            uid: header.uid().map_err(field)?,
            gid: header.gid().map_err(field)?,
            mtime: header.mtime().map_err(field)?,
        };
        // Large ids live in pax records, which the header fields do not show.
        if let Some(extensions) = entry.pax_extensions().map_err(field)? {
            for extension in extensions.flatten() {
                let value = extension.value().ok().and_then(|v| v.parse::<u64>().ok());
                match (extension.key(), value) {
                    (Ok("uid"), Some(uid)) => meta.uid = uid,
                    (Ok("gid"), Some(gid)) => meta.gid = gid,
                    _ => {}
                }
            }
        }
        Ok(meta)
    }

    fn link_target<R: Read>(
        &self,
        entry: &tar::Entry<R>,
        shown: &str,
    ) -> Result<PathBuf, ImageError> {
        entry
            .link_name()
            .map_err(|e| self.unpack_error(shown, "read link target", e))?
            .map(|target| target.into_owned())
            .ok_or_else(|| self.unsafe_entry(shown, "is a link without a target"))
    }

    fn is_overlay_whiteout<R: Read>(&self, entry: &tar::Entry<R>) -> bool {
        let header = entry.header();
        matches!(
            (header.device_major(), header.device_minor()),
            (Ok(Some(0)), Ok(Some(0)))
        )
    }

    /// Makes sure every parent of `rel` is a real directory inside the root,
    /// creating missing ones.
    fn parents(&mut self, rel: &Path, shown: &str) -> Result<(), ImageError> {
        let mut prefix = PathBuf::new();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for component in parent.components() {
            prefix.push(component);
            let full = self.unpacker.dest.join(&prefix);
            match fs::symlink_metadata(&full) {
                Ok(found) if found.file_type().is_symlink() => {
                    return Err(self.unsafe_entry(
                        shown,
                        format!("goes through the symlink `{}`", prefix.display()),
                    ))
                }
                Ok(found) if found.is_dir() => {}
                Ok(_) => {
                    return Err(self.unpack_error(
                        shown,
                        "create parent directory",
                        io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("`{}` is not a directory", prefix.display()),
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&full)
                        .map_err(|e| self.unpack_error(shown, "create parent directory", e))?;
                    self.written.insert(prefix.clone());
                }
                Err(e) => return Err(self.unpack_error(shown, "inspect parent directory", e)),
            }
        }
        Ok(())
    }

    /// Prepares `rel` to be written as an entry of this layer: parents
    /// exist, and whatever was there before is gone (unless both are
    /// directories, which merge). Returns the full path.
    fn replace(&mut self, rel: &Path, is_dir: bool, shown: &str) -> Result<PathBuf, ImageError> {
        self.parents(rel, shown)?;
        let full = self.unpacker.dest.join(rel);
        match fs::symlink_metadata(&full) {
            Ok(found) if found.is_dir() && is_dir => {}
            Ok(found) if found.is_dir() => {
                remove_tree(&full).map_err(|e| self.unpack_error(shown, "replace directory", e))?
            }
            Ok(_) => fs::remove_file(&full)
                .map_err(|e| self.unpack_error(shown, "replace earlier entry", e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.unpack_error(shown, "inspect", e)),
        }
        self.written.insert(rel.to_path_buf());
        Ok(full)
    }

    fn directory(&mut self, rel: &Path, meta: &Meta, shown: &str) -> Result<(), ImageError> {
        let full = self.replace(rel, true, shown)?;
        if !full.is_dir() {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&full)
                .map_err(|e| self.unpack_error(shown, "create directory", e))?;
        }
        self.chown(&full, meta, shown)?;
        self.unpacker.dirs.insert(
            rel.to_path_buf(),
            DirMeta {
                mode: meta.mode,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        rel: &Path,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ImageError> {
        let full = self.replace(rel, false, shown)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&full)
            .map_err(|e| self.unpack_error(shown, "create file", e))?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buffer)
                .map_err(|e| ImageError::CorruptArchive {
                    archive: format!("{} (entry `{shown}`)", self.label),
                    source: e,
                })?;
            if n == 0 {
                break;
            }
            file.write_all(&buffer[..n])
                .map_err(|e| self.unpack_error(shown, "write file", e))?;
        }
        if self.unpacker.as_root {
            std::os::unix::fs::fchown(&file, Some(meta.uid as u32), Some(meta.gid as u32))
                .map_err(|e| self.unpack_error(shown, "set owner", e))?;
        }
        file.set_permissions(fs::Permissions::from_mode(meta.mode))
            .map_err(|e| self.unpack_error(shown, "set mode", e))?;
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(meta.mtime))
            .map_err(|e| self.unpack_error(shown, "set mtime", e))
    }

    fn symlink(
        &mut self,
        rel: &Path,
        target: &Path,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ImageError> {
        let full = self.replace(rel, false, shown)?;
        std::os::unix::fs::symlink(target, &full)
            .map_err(|e| self.unpack_error(shown, "create symlink", e))?;
        self.chown(&full, meta, shown)
    }

    fn hard_link(&mut self, rel: &Path, target: &Path, shown: &str) -> Result<(), ImageError> {
        let target_rel = in_root(target).map_err(|problem| {
            self.unsafe_entry(
                shown,
                format!("is a hard link to `{}`, which {problem}", target.display()),
            )
        })?;
        let mut prefix = PathBuf::new();
        for component in target_rel.parent().into_iter().flat_map(Path::components) {
            prefix.push(component);
            let is_link = fs::symlink_metadata(self.unpacker.dest.join(&prefix))
                .is_ok_and(|found| found.file_type().is_symlink());
            if is_link {
                return Err(self.unsafe_entry(
                    shown,
                    format!("is a hard link through the symlink `{}`", prefix.display()),
                ));
            }
        }
        let target_full = self.unpacker.dest.join(&target_rel);
        match fs::symlink_metadata(&target_full) {
            Ok(found) if !found.is_dir() => {}
            _ => {
                return Err(self.unpack_error(
                    shown,
                    "create hard link",
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "its target `{}` is not a file earlier in the archive",
                            target.display()
                        ),
                    ),
                ))
            }
        }
        if target_rel == rel {
            return Ok(());
        }
        let full = self.replace(rel, false, shown)?;
        fs::hard_link(&target_full, &full)
            .map_err(|e| self.unpack_error(shown, "create hard link", e))
    }

    fn fifo(&mut self, rel: &Path, meta: &Meta, shown: &str) -> Result<(), ImageError> {
        let full = self.replace(rel, false, shown)?;
        nix::unistd::mkfifo(&full, Mode::from_bits_truncate(0o600))
            .map_err(|e| self.unpack_error(shown, "create fifo", e.into()))?;
        self.chown(&full, meta, shown)?;
        fs::set_permissions(&full, fs::Permissions::from_mode(meta.mode))
            .map_err(|e| self.unpack_error(shown, "set mode", e))
    }

    /// `hidden` (a path in the root) is deleted by this layer.
    fn whiteout(&mut self, hidden: &Path, shown: &str) -> Result<(), ImageError> {
        if self.written.contains(hidden) {
            return Ok(()); // a whiteout never hides its own layer's entries
        }
        let full = self.unpacker.dest.join(hidden);
        match self.unpacker.whiteouts {
            Whiteouts::Keep => Ok(()),
            Whiteouts::Overlay => nix::sys::stat::mknod(&full, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|e| self.unpack_error(shown, "create overlay whiteout", e.into())),
            Whiteouts::Apply => match fs::symlink_metadata(&full) {
                Ok(found) if found.is_dir() => {
                    remove_tree(&full).map_err(|e| self.unpack_error(shown, "apply whiteout", e))
                }
                Ok(_) => fs::remove_file(&full)
                    .map_err(|e| self.unpack_error(shown, "apply whiteout", e)),
                Err(_) => Ok(()),
            },
        }
    }

    /// The directory `dir` hides everything earlier layers put in it.
    fn opaque(&mut self, dir: &Path, shown: &str) -> Result<(), ImageError> {
        let full = self.unpacker.dest.join(dir);
        if !full.is_dir() {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&full)
                .map_err(|e| self.unpack_error(shown, "create opaque directory", e))?;
            self.written.insert(dir.to_path_buf());
        }
        match self.unpacker.whiteouts {
            Whiteouts::Keep => Ok(()),
            Whiteouts::Overlay => rustix::fs::lsetxattr(
                &full,
                OVERLAY_OPAQUE_XATTR,
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|e| self.unpack_error(shown, "mark directory opaque", e.into())),
            Whiteouts::Apply => self
                .clear_lower(dir)
                .map_err(|e| self.unpack_error(shown, "apply opaque whiteout", e)),
        }
    }

    /// Removes what earlier layers left under `dir`, keeping this layer's.
    fn clear_lower(&self, dir: &Path) -> io::Result<()> {
        for child in fs::read_dir(self.unpacker.dest.join(dir))? {
            let child = child?;
            let rel = dir.join(child.file_name());
            let is_dir = child.file_type()?.is_dir();
            if !self.written.contains(&rel) {
                if is_dir {
                    remove_tree(&child.path())?;
                } else {
                    fs::remove_file(child.path())?;
                }
            } else if is_dir {
                self.clear_lower(&rel)?;
            }
        }
        Ok(())
    }

    fn chown(&self, full: &Path, meta: &Meta, shown: &str) -> Result<(), ImageError> {
        if !self.unpacker.as_root {
            return Ok(());
        }
        std::os::unix::fs::lchown(full, Some(meta.uid as u32), Some(meta.gid as u32))
            .map_err(|e| self.unpack_error(shown, "set owner", e))
    }

    fn unsafe_entry(&self, shown: &str, problem: impl Into<String>) -> ImageError {
        ImageError::UnsafeEntry {
            archive: self.label.to_string(),
            entry: shown.to_string(),
            problem: problem.into(),
        }
    }

    fn unpack_error(&self, shown: &str, action: &'static str, source: io::Error) -> ImageError {
        ImageError::Unpack {
            archive: self.label.to_string(),
            entry: shown.to_string(),
            action,
            source,
        }
    }
}

/// `path` as a relative path inside the root, or what is wrong with it.
fn in_root(path: &Path) -> Result<PathBuf, &'static str> {
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => rel.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err("has a `..` component"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok(rel)
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let when = nix::sys::time::TimeSpec::new(mtime as i64, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &when,
        &when,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

/// Removes a directory tree, first making read-only directories in it
/// writable (a non-root user cannot otherwise empty them).
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path)?;
            fs::remove_dir_all(path)
        }
        Err(e) => Err(e),
    }
}

fn make_writable(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Ok(());
    }
    if meta.mode() & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() | 0o700))?;
    }
    for child in fs::read_dir(dir)? {
        let child = child?;
        if child.file_type()?.is_dir() {
            make_writable(&child.path())?;
        }
    }
    Ok(())
}

/// The digest an archive file must have: of its bytes as stored (OCI blob
/// digests, tarball cache keys), or of its decompressed tar stream (docker
/// `diff_ids`). Hex, without `sha256:`.
pub(crate) enum Verify<'a> {
    Stored(&'a str),
    Uncompressed(&'a str),
}

/// Unpacks the tar, tar.gz or tar.zst file at `path`, checking its digest;
/// `label` names it in errors. On error the caller discards `unpacker`'s
/// directory: it may hold part of the archive.
pub(crate) fn unpack_file(
    unpacker: &mut Unpacker,
    path: &Path,
    label: &str,
    verify: Verify,
) -> Result<(), ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io(path, "open", e))?;
    let corrupt = |source| ImageError::CorruptArchive {
        archive: label.to_string(),
        source,
    };
    let (expected, actual) = match verify {
        Verify::Stored(expected) => {
            let mut hashing = HashingReader::new(file);
            {
                let mut decoder = compress::decompressed(&mut hashing).map_err(corrupt)?;
                unpacker.unpack(&mut decoder, label)?;
                // Reading to the end checks the gzip/zstd trailer too.
                io::copy(&mut decoder, &mut io::sink()).map_err(corrupt)?;
            }
            let actual = hashing
                .finish()
                .map_err(|e| ImageError::io(path, "read", e))?;
            (expected, actual)
        }
        Verify::Uncompressed(expected) => {
            let decoder = compress::decompressed(file).map_err(corrupt)?;
            let mut hashing = HashingReader::new(decoder);
            unpacker.unpack(&mut hashing, label)?;
            (expected, hashing.finish().map_err(corrupt)?)
        }
    };
    digest::expect(label, expected, actual)
}

/// A tarball root: unpacked once, keyed by the file's SHA-256.
pub(crate) fn prepare(cache: &Cache, path: &Path) -> Result<PreparedRoot, ImageError> {
    let key = cache.file_digest(path)?;
    let label = path.display().to_string();
    let entry = cache.ensure(EntryKind::Tarball, &key, &label, |tree| {
        let mut unpacker = Unpacker::new(tree, Whiteouts::Keep);
        unpack_file(&mut unpacker, path, &label, Verify::Stored(&key))?;
        unpacker.finish()
    })?;
    Ok(PreparedRoot::layers(vec![entry.tree], entry.built))
}
