//! Root filesystem sources and their cache.
//!
//! A test's root filesystem is the host's `/`, a directory, a tarball, an
//! OCI image (layout directory, OCI archive or `docker save` tarball), or a
//! minimal root of declared host programs. [`RootfsSource::parse`] reads a
//! `rootfs =` value; [`Cache::prepare`] unpacks or builds it once into the
//! cache and returns the read-only lower layers the sandbox stacks under a
//! test's overlay, top first. See docs/rootfs.md.
//!
//! - `source`: what a `rootfs` value names (sniffing files by content)
//! - `cache`: cache layout, atomic entry creation, locking, list and clean
//! - `tarball`: safe tar unpacking (no escapes, no writes through symlinks)
//! - `compress`: gzip and zstd detection and decoding
//! - `digest`: SHA-256 content keys and digest checks
//! - `oci`: OCI layouts, OCI archives, docker-save tarballs
//! - `tools`, `elf`, `ldcache`: minimal roots of host programs

mod cache;
mod compress;
mod digest;
mod elf;
mod error;
mod ldcache;
mod oci;
mod source;
mod tarball;
mod tools;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use cache::{default_dir as default_cache_dir, Cache, CacheEntry, CleanSummary, EntryKind};
pub use error::ImageError;
pub use source::RootfsSource;
pub use tools::TOOLS_PATH;

/// A root filesystem ready to mount: its layers and, for OCI images, the
/// image's runtime defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedRoot {
    /// Read-only lower layers, TOP FIRST (the order of overlayfs
    /// `lowerdir=`). Empty for the host root.
    pub layers: Vec<PathBuf>,
    /// The image config's `Env`, as (KEY, VALUE) pairs.
    pub env: Vec<(String, String)>,
    /// The image config's `WorkingDir`.
    pub working_dir: Option<String>,
    /// The image config's `User` (`name`, `uid`, `uid:gid`...).
    pub user: Option<String>,
    /// Whether this call unpacked or built something (false: cache hit).
    pub built: bool,
}

impl PreparedRoot {
    fn layers(layers: Vec<PathBuf>, built: bool) -> Self {
        PreparedRoot {
            layers,
            env: Vec::new(),
            working_dir: None,
            user: None,
            built,
        }
    }
}
