//! `ImageError`: everything that can go wrong while reading a rootfs source or
//! filling the cache. Each message names the file, layer or archive entry and
//! says what to do about it.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "rootfs `{value}`: {path} does not exist (expected `host`, `tools:PROG,...`, a \
         directory, a .tar/.tar.gz/.tar.zst root filesystem, or an OCI layout or \
         docker-save/OCI archive, optionally followed by `:TAG`)"
    )]
    NotFound { value: String, path: PathBuf },

    #[error(
        "rootfs {path}: not a directory, tar, gzip or zstd file (expected a root filesystem \
         tarball, an OCI image layout or a docker-save/OCI archive)"
    )]
    UnknownFormat { path: PathBuf },

    #[error(
        "rootfs `{value}`: {path} is a plain root filesystem, not an OCI or docker image, so \
         `:{tag}` cannot select anything (drop the tag, or point at an image)"
    )]
    TagOnPlainRootfs {
        value: String,
        path: PathBuf,
        tag: String,
    },

    #[error("rootfs `tools:`: the list of programs is empty (e.g. `tools:sh,ls`)")]
    EmptyToolList,

    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "neither --cache-dir, $XDG_CACHE_HOME nor $HOME is set, so there is no place for the \
         rootfs cache (pass --cache-dir DIR)"
    )]
    NoCacheDir,

    #[error(
        "{archive}: cannot read it as a tar archive: {source} (the file is corrupted or \
         truncated; fetch or build it again)"
    )]
    CorruptArchive {
        archive: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "{archive}: entry `{entry}` {problem}; refusing to unpack an archive that could write \
         outside its root"
    )]
    UnsafeEntry {
        archive: String,
        entry: String,
        problem: String,
    },

    #[error("{archive}: entry `{entry}`: {action}: {source}")]
    Unpack {
        archive: String,
        entry: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "{what}: content has digest sha256:{actual}, but sha256:{expected} was expected (the \
         image is corrupted or was changed while being read; fetch it again)"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{image}: {problem}")]
    BadImage { image: PathBuf, problem: String },

    #[error("{image}: no image matches `{reference}`; the image holds: {choices}")]
    NoSuchTag {
        image: PathBuf,
        reference: String,
        choices: String,
    },

    #[error("{image}: {count} images match{reference}; pick one with `{image}:TAG`, one of: {choices}",
        count = choices.len(),
        reference = reference.as_ref().map(|r| format!(" `{r}`")).unwrap_or_default(),
        choices = choices.join(", "))]
    AmbiguousImage {
        image: PathBuf,
        reference: Option<String>,
        choices: Vec<String>,
    },

    #[error("tools root: program `{tool}` not found in {searched} (install it, or drop it from the list)")]
    ToolNotFound { tool: String, searched: String },

    #[error("tools root: {path}: {problem}")]
    Tools { path: PathBuf, problem: String },
}

impl ImageError {
    /// An I/O error on `path` while doing `action` (e.g. "create directory").
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    pub(crate) fn bad_image(image: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        ImageError::BadImage {
            image: image.into(),
            problem: problem.into(),
        }
    }
}
