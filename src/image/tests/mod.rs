//! Tests of the image module through its public API, on real files: tar
//! archives, OCI layouts and docker-save tarballs built here, real overlay
//! mounts and chroots.

mod oci;
mod source;
mod tarball;
mod tools;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::{Cache, EntryKind};

/// Builds a tar archive in memory, entry by entry.
pub(super) struct Tar {
    builder: tar::Builder<Vec<u8>>,
}

impl Tar {
    pub(super) fn new() -> Self {
        Tar {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn push(mut self, mut header: Header, path: &str, data: &[u8]) -> Self {
        header.set_path(path).unwrap();
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    pub(super) fn dir(self, path: &str, mode: u32) -> Self {
        self.push(Self::header(EntryType::Directory, mode, 0), path, b"")
    }

    pub(super) fn file(self, path: &str, mode: u32, content: &[u8]) -> Self {
        self.owned_file(path, mode, 0, 0, content)
    }

    pub(super) fn owned_file(
        self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        content: &[u8],
    ) -> Self {
        let mut header = Self::header(EntryType::Regular, mode, content.len() as u64);
        header.set_uid(uid);
        header.set_gid(gid);
        self.push(header, path, content)
    }

    pub(super) fn symlink(self, path: &str, target: &str) -> Self {
        let mut header = Self::header(EntryType::Symlink, 0o777, 0);
        header.set_link_name(target).unwrap();
        self.push(header, path, b"")
    }

    pub(super) fn hard_link(self, path: &str, target: &str) -> Self {
        let mut header = Self::header(EntryType::Link, 0o644, 0);
        header.set_link_name(target).unwrap();
        self.push(header, path, b"")
    }

    pub(super) fn fifo(self, path: &str, mode: u32) -> Self {
        self.push(Self::header(EntryType::Fifo, mode, 0), path, b"")
    }

    pub(super) fn char_device(self, path: &str, major: u32, minor: u32) -> Self {
        let mut header = Self::header(EntryType::Char, 0o600, 0);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        self.push(header, path, b"")
    }

    /// An entry whose path (and link target) bytes are written as they are,
    /// past the tar crate's own checks: how a hostile archive looks.
    pub(super) fn raw(mut self, kind: EntryType, path: &str, link: &str, data: &[u8]) -> Self {
        let mut header = Self::header(kind, 0o644, data.len() as u64);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    pub(super) fn bytes(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

pub(super) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub(super) fn zstd(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

/// A cache in a fresh temp dir (kept alive by the returned guard).
pub(super) fn temp_cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(Some(&dir.path().join("cache"))).unwrap();
    (dir, cache)
}

pub(super) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// The cache holds no entry of `kind` and no temp dir.
pub(super) fn assert_nothing_cached(cache: &Cache, kind: EntryKind) {
    let entries = cache.list().unwrap();
    assert!(
        entries.iter().all(|e| e.kind != kind),
        "unexpected entries: {entries:?}"
    );
    assert_eq!(temp_dirs(cache), Vec::<String>::new());
}

pub(super) fn temp_dirs(cache: &Cache) -> Vec<String> {
    match fs::read_dir(cache.root().join("tmp")) {
        Ok(children) => children
            .map(|c| c.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Runs `command`, which must succeed, and returns its stdout.
pub(super) fn stdout_of(command: &mut std::process::Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub(super) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
