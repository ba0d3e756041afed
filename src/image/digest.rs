//! SHA-256 content keys: of whole files (remembered per process by inode and
//! change time, so preparing the same tarball from many threads hashes it
//! once), of streams as they are read, and of OCI `sha256:HEX` digests.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::ImageError;

/// Lower-case hex of a SHA-256 hasher's result.
pub(crate) fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of `bytes`, as lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    hex(hasher)
}

/// The hex part of an OCI digest `sha256:HEX`; `None` for other algorithms
/// or for anything that is not 64 lower-case hex digits (which also keeps a
/// digest from naming a path outside `blobs/sha256/`).
pub(crate) fn sha256_of_digest(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    is_sha256_hex(hex).then_some(hex)
}

pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `Ok` when `actual` is the `expected` hex digest, else an error naming
/// `what`.
pub(crate) fn expect(
    what: impl Into<String>,
    expected: &str,
    actual: String,
) -> Result<(), ImageError> {
    if actual == expected {
        return Ok(());
    }
    Err(ImageError::DigestMismatch {
        what: what.into(),
        expected: expected.to_string(),
        actual,
    })
}

/// A reader that hashes everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Reads what is left, then returns the hex digest of everything read.
    pub(crate) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex(self.hasher))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Identifies one version of a file: if none of these changed, neither did
/// its content.
#[derive(Clone, PartialEq, Eq, Hash)]
struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileVersion {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileVersion {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// File digests already computed by this process.
#[derive(Default)]
pub(crate) struct DigestMemo {
    known: Mutex<HashMap<FileVersion, String>>,
}

impl DigestMemo {
    /// The hex SHA-256 of the file at `path` (following symlinks).
    pub(crate) fn file(&self, path: &Path) -> Result<String, ImageError> {
        let file = File::open(path).map_err(|e| ImageError::io(path, "open", e))?;
        let meta = file
            .metadata()
            .map_err(|e| ImageError::io(path, "stat", e))?;
        let version = FileVersion::of(&meta);
        if let Some(digest) = self.lock().get(&version) {
            return Ok(digest.clone());
        }
        let digest = HashingReader::new(file)
            .finish()
            .map_err(|e| ImageError::io(path, "read", e))?;
        self.lock().insert(version, digest.clone());
        Ok(digest)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileVersion, String>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_digest_syntax() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let good = format!("sha256:{}", sha256_hex(b""));
        assert!(sha256_of_digest(&good).is_some());
        assert!(sha256_of_digest("sha512:00").is_none());
        assert!(sha256_of_digest("sha256:../../etc/passwd").is_none());
        let mut reader = HashingReader::new(&b"abc"[..]);
        let mut first = [0u8; 1];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(reader.finish().unwrap(), sha256_hex(b"abc"));
    }
}
