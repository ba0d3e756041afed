//! `RootfsSource`: what a `rootfs =` value or `--rootfs` names, found out
//! by looking at the path (a directory, or a file sniffed by its content).

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::compress;
use super::digest::is_sha256_hex;
use super::ImageError;

/// Where a test's root filesystem comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootfsSource {
    /// The host's own `/`.
    Host,
    /// A directory, used as-is as a read-only lower layer.
    Directory(PathBuf),
    /// A root filesystem tarball: .tar, .tar.gz/.tgz, .tar.zst.
    Tarball(PathBuf),
    /// An OCI image layout directory, or an OCI-archive / docker-save
    /// tarball; `reference` picks one image by tag.
    Oci {
        path: PathBuf,
        reference: Option<String>,
    },
    /// A minimal root holding only these host programs (and what they load).
    Tools(Vec<String>),
}

/// The prefix of a tools source: `tools:sh,git,python3`.
const TOOLS_PREFIX: &str = "tools:";

impl RootfsSource {
    /// Parses a `rootfs` value; relative paths resolve against `base_dir`
    /// (the isotest.toml's directory, or the working directory).
    ///
    /// `host` is the host root; `tools:PROG,PROG...` a tools root; an
    /// existing directory with an `oci-layout` file an OCI layout, any other
    /// directory a plain root; a file is sniffed (an archive with
    /// `oci-layout`/`index.json` or `manifest.json` at its top is an image,
    /// anything else tar, gzip or zstd a root filesystem tarball);
    /// `PATH:TAG`, where PATH exists and `PATH:TAG` does not, is the image
    /// at PATH tagged TAG.
    pub fn parse(value: &str, base_dir: &Path) -> Result<RootfsSource, ImageError> {
        if value == "host" {
            return Ok(RootfsSource::Host);
        }
        if let Some(list) = value.strip_prefix(TOOLS_PREFIX) {
            let tools: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            if tools.is_empty() {
                return Err(ImageError::EmptyToolList);
            }
            return Ok(RootfsSource::Tools(tools));
        }
        let path = base_dir.join(value);
        if path.exists() {
            return classify(&path);
        }
        for (colon, _) in value.match_indices(':') {
            let (prefix, tag) = (&value[..colon], &value[colon + 1..]);
            let candidate = base_dir.join(prefix);
            if prefix.is_empty() || tag.is_empty() || !candidate.exists() {
                continue;
            }
            return match classify(&candidate)? {
                RootfsSource::Oci { path, .. } => Ok(RootfsSource::Oci {
                    path,
                    reference: Some(tag.to_string()),
                }),
                _ => Err(ImageError::TagOnPlainRootfs {
                    value: value.to_string(),
                    path: candidate,
                    tag: tag.to_string(),
                }),
            };
        }
        Err(ImageError::NotFound {
            value: value.to_string(),
            path,
        })
    }
}

impl std::fmt::Display for RootfsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootfsSource::Host => f.write_str("host"),
            RootfsSource::Directory(path) | RootfsSource::Tarball(path) => {
                write!(f, "{}", path.display())
            }
            RootfsSource::Oci {
                path,
                reference: None,
            } => write!(f, "{}", path.display()),
            RootfsSource::Oci {
                path,
                reference: Some(tag),
            } => write!(f, "{}:{tag}", path.display()),
            RootfsSource::Tools(tools) => write!(f, "{TOOLS_PREFIX}{}", tools.join(",")),
        }
    }
}

fn classify(path: &Path) -> Result<RootfsSource, ImageError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if path.is_dir() {
        return Ok(if path.join("oci-layout").is_file() {
            RootfsSource::Oci {
                path,
                reference: None,
            }
        } else {
            RootfsSource::Directory(path)
        });
    }
    if is_image_archive(&path)? {
        Ok(RootfsSource::Oci {
            path,
            reference: None,
        })
    } else {
        Ok(RootfsSource::Tarball(path))
    }
}

/// Whether the archive at `path` holds an image (an OCI layout or a
/// docker-save manifest at its top) rather than a root filesystem. Reads
/// entries only until the first name an image never has at its top.
fn is_image_archive(path: &Path) -> Result<bool, ImageError> {
    let mut file = File::open(path).map_err(|e| ImageError::io(path, "open", e))?;
    let mut head = Vec::with_capacity(512);
    (&mut file)
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| ImageError::io(path, "read", e))?;
    if compress::sniff(&head).is_none() {
        return Err(ImageError::UnknownFormat {
            path: path.to_path_buf(),
        });
    }
    let file = File::open(path).map_err(|e| ImageError::io(path, "open", e))?;
    let corrupt = |source| ImageError::CorruptArchive {
        archive: path.display().to_string(),
        source,
    };
    let mut archive = tar::Archive::new(compress::decompressed(file).map_err(corrupt)?);
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let name = entry.path().map_err(corrupt)?;
        let mut parts = name
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        let Some(top) = parts.next() else { continue };
        match top.as_str() {
            "oci-layout" | "index.json" | "manifest.json" => return Ok(true),
            "blobs" | "repositories" => {}
            other if is_sha256_hex(other.trim_end_matches(".json")) => {}
            _ => return Ok(false),
        }
    }
    Ok(false)
}
