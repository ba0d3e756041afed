//! OCI images: an image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/...`), or an OCI-archive / `docker save` tarball, which is
//! first unpacked into the cache and then read as a layout.
//!
//! The index is resolved to one manifest (following nested indexes; picked
//! by tag, preferring linux/amd64), every JSON blob and layer is checked
//! against its digest, and each layer is unpacked once, keyed by digest,
//! with overlay whiteouts. A process that cannot write those (not root)
//! gets one flattened tree instead, keyed by the chain of layer digests.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::cache::{Cache, EntryKind};
use super::digest::{self, is_sha256_hex, sha256_hex, sha256_of_digest};
use super::tarball::{unpack_file, Unpacker, Verify, Whiteouts};
use super::{ImageError, PreparedRoot};

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const LAYER_TYPES: [&str; 9] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize, Clone, Debug)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ImageConfig {
    #[serde(default)]
    config: Option<RuntimeConfig>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RuntimeConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// A layer file and the digest it must have (hex), which is also its key.
struct Layer {
    path: PathBuf,
    digest: String,
    uncompressed: bool,
}

/// A resolved image: its layers, bottom first, and runtime config.
struct Image {
    layers: Vec<Layer>,
    config: RuntimeConfig,
}

/// One image of an index or docker manifest, before choosing.
struct Candidate<T> {
    names: Vec<String>,
    platform: Option<Platform>,
    image: T,
}

impl<T> Candidate<T> {
    fn describe(&self, digest: Option<&str>) -> String {
        let name = self
            .names
            .first()
            .cloned()
            .or_else(|| digest.map(|d| d.chars().take(19).collect()))
            .unwrap_or_else(|| "(untagged)".into());
        match &self.platform {
            Some(p) => format!("{name} ({}/{})", p.os, p.architecture),
            None => name,
        }
    }
}

/// Prepares the image at `path` (a layout directory or an archive).
pub(crate) fn prepare(
    cache: &Cache,
    path: &Path,
    reference: Option<&str>,
) -> Result<PreparedRoot, ImageError> {
    let mut built = false;
    let layout = if path.is_dir() {
        path.to_path_buf()
    } else {
        let key = cache.file_digest(path)?;
        let label = path.display().to_string();
        let entry = cache.ensure(EntryKind::Archive, &key, &label, |tree| {
            let mut unpacker = Unpacker::new(tree, Whiteouts::Keep);
            unpack_file(&mut unpacker, path, &label, Verify::Stored(&key))?;
            unpacker.finish()
        })?;
        built |= entry.built;
        entry.tree
    };
    let image = resolve(&layout, path, reference)?;
    let name = match reference {
        Some(tag) => format!("{}:{tag}", path.display()),
        None => path.display().to_string(),
    };
    let layers = if cache.overlay_whiteouts() && !image.layers.is_empty() {
        let mut trees = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            let label = format!("layer sha256:{} of {name}", layer.digest);
            let entry = cache.ensure(EntryKind::Layer, &layer.digest, &label, |tree| {
                let mut unpacker = Unpacker::new(tree, Whiteouts::Overlay);
                unpack_file(&mut unpacker, &layer.path, &label, layer.verify())?;
                unpacker.finish()
            })?;
            built |= entry.built;
            trees.push(entry.tree);
        }
        trees.reverse();
        trees
    } else {
        let chain: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
        let key = sha256_hex(format!("flat\n{}", chain.join("\n")).as_bytes());
        let label = format!("{name} ({} layers flattened)", chain.len());
        let entry = cache.ensure(EntryKind::Flat, &key, &label, |tree| {
            let mut unpacker = Unpacker::new(tree, Whiteouts::Apply);
            for layer in &image.layers {
                let label = format!("layer sha256:{} of {name}", layer.digest);
                unpack_file(&mut unpacker, &layer.path, &label, layer.verify())?;
            }
            unpacker.finish()
        })?;
        built |= entry.built;
        vec![entry.tree]
    };
    let config = image.config;
    Ok(PreparedRoot {
        layers,
        env: config
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => (pair, String::new()),
            })
            .collect(),
        working_dir: config.working_dir.filter(|d| !d.is_empty()),
        user: config.user.filter(|u| !u.is_empty()),
        built,
    })
}

impl Layer {
    fn verify(&self) -> Verify<'_> {
        if self.uncompressed {
            Verify::Uncompressed(&self.digest)
        } else {
            Verify::Stored(&self.digest)
        }
    }
}

/// Reads the image layout at `layout` (which came from `image`) and picks
/// the image `reference` names.
fn resolve(layout: &Path, image: &Path, reference: Option<&str>) -> Result<Image, ImageError> {
    if layout.join("index.json").is_file() {
        resolve_oci(layout, image, reference)
    } else if layout.join("manifest.json").is_file() {
        resolve_docker(layout, image, reference)
    } else {
        Err(ImageError::bad_image(
            image,
            "has neither an OCI index.json nor a docker manifest.json at its top",
        ))
    }
}

fn resolve_oci(layout: &Path, image: &Path, reference: Option<&str>) -> Result<Image, ImageError> {
    let index: Index = read_json(&layout.join("index.json"), image)?;
    let mut candidates = Vec::new();
    collect_manifests(layout, image, index, &[], &mut candidates, 0)?;
    let chosen = choose(candidates, image, reference, |c| Some(&c.image.digest))?;
    let manifest: Manifest = read_blob_json(layout, image, &chosen.digest, "manifest")?;
    let config: ImageConfig = read_blob_json(layout, image, &manifest.config.digest, "config")?;
    let layers = manifest
        .layers
        .iter()
        .map(|descriptor| {
            let hex = blob_hex(image, &descriptor.digest, "layer")?;
            if !LAYER_TYPES.contains(&descriptor.media_type.as_str()) {
                return Err(ImageError::bad_image(
                    image,
                    format!(
                        "layer {} has media type `{}`, which is not a tar, tar+gzip or \
                         tar+zstd layer",
                        descriptor.digest, descriptor.media_type
                    ),
                ));
            }
            let path = layout.join("blobs/sha256").join(hex);
            if !path.is_file() {
                return Err(ImageError::bad_image(
                    image,
                    format!(
                        "layer {} is missing from blobs/sha256 (a non-distributable layer? \
                         save the image with all its layers)",
                        descriptor.digest
                    ),
                ));
            }
            Ok(Layer {
                path,
                digest: hex.to_string(),
                uncompressed: false,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Image {
        layers,
        config: config.config.unwrap_or_default(),
    })
}

/// Gathers the image manifests of `index`, following nested indexes;
/// names given to an index apply to the manifests inside it.
fn collect_manifests(
    layout: &Path,
    image: &Path,
    index: Index,
    inherited: &[String],
    out: &mut Vec<Candidate<Descriptor>>,
    depth: usize,
) -> Result<(), ImageError> {
    if depth > 8 {
        return Err(ImageError::bad_image(
            image,
            "image indexes nest more than 8 deep",
        ));
    }
    for descriptor in index.manifests {
        if descriptor
            .annotations
            .get(REFERENCE_TYPE)
            .map(String::as_str)
            == Some("attestation-manifest")
        {
            continue;
        }
        let mut names: Vec<String> = [REF_NAME, CONTAINERD_NAME]
            .iter()
            .filter_map(|key| descriptor.annotations.get(*key).cloned())
            .collect();
        names.extend(inherited.iter().cloned());
        if INDEX_TYPES.contains(&descriptor.media_type.as_str()) {
            let nested: Index = read_blob_json(layout, image, &descriptor.digest, "index")?;
            collect_manifests(layout, image, nested, &names, out, depth + 1)?;
        } else {
            out.push(Candidate {
                names,
                platform: descriptor.platform.clone(),
                image: descriptor,
            });
        }
    }
    Ok(())
}

fn resolve_docker(
    layout: &Path,
    image: &Path,
    reference: Option<&str>,
) -> Result<Image, ImageError> {
    let images: Vec<DockerImage> = read_json(&layout.join("manifest.json"), image)?;
    let candidates = images
        .into_iter()
        .map(|docker| Candidate {
            names: docker.repo_tags.clone().unwrap_or_default(),
            platform: None,
            image: docker,
        })
        .collect();
    let chosen = choose(candidates, image, reference, |_| None)?;
    let config_path = inside(layout, image, &chosen.config)?;
    let config_bytes = read(&config_path, image)?;
    let named_hex = config_path
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(".json"))
        .filter(|n| is_sha256_hex(n));
    if let Some(expected) = named_hex {
        check_digest(
            &config_bytes,
            expected,
            &format!("{}: config", image.display()),
        )?;
    }
    let config: ImageConfig = parse_json(&config_bytes, &config_path, image)?;
    let diff_ids = config
        .rootfs
        .as_ref()
        .map(|r| r.diff_ids.clone())
        .unwrap_or_default();
    if diff_ids.len() != chosen.layers.len() {
        return Err(ImageError::bad_image(
            image,
            format!(
                "manifest.json lists {} layers but the config's rootfs.diff_ids has {}",
                chosen.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let layers = chosen
        .layers
        .iter()
        .zip(&diff_ids)
        .map(|(file, diff_id)| {
            let hex = blob_hex(image, diff_id, "layer diff_id")?;
            Ok(Layer {
                path: inside(layout, image, file)?,
                digest: hex.to_string(),
                uncompressed: true,
            })
        })
        .collect::<Result<_, ImageError>>()?;
    Ok(Image {
        layers,
        config: config.config.unwrap_or_default(),
    })
}

/// Picks the one image `reference` names (or the only one), preferring
/// linux/amd64 among several.
fn choose<T>(
    candidates: Vec<Candidate<T>>,
    image: &Path,
    reference: Option<&str>,
    digest: impl Fn(&Candidate<T>) -> Option<&String>,
) -> Result<T, ImageError> {
    let describe = |c: &Candidate<T>| c.describe(digest(c).map(String::as_str));
    let everything: Vec<String> = candidates.iter().map(describe).collect();
    let mut matching: Vec<Candidate<T>> = match reference {
        Some(reference) => candidates
            .into_iter()
            .filter(|c| c.names.iter().any(|n| name_matches(n, reference)))
            .collect(),
        None => candidates,
    };
    if matching.is_empty() {
        return Err(match reference {
            Some(reference) => ImageError::NoSuchTag {
                image: image.to_path_buf(),
                reference: reference.to_string(),
                choices: if everything.is_empty() {
                    "nothing".into()
                } else {
                    everything.join(", ")
                },
            },
            None => ImageError::bad_image(image, "the index lists no image manifest"),
        });
    }
    if matching.len() > 1 && matching.iter().any(|c| is_linux_amd64(&c.platform)) {
        matching.retain(|c| is_linux_amd64(&c.platform));
    }
    if matching.len() > 1 {
        return Err(ImageError::AmbiguousImage {
            image: image.to_path_buf(),
            reference: reference.map(str::to_string),
            choices: matching.iter().map(describe).collect(),
        });
    }
    Ok(matching.remove(0).image)
}

fn is_linux_amd64(platform: &Option<Platform>) -> bool {
    platform
        .as_ref()
        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
}

/// Whether the image name `name` (`3.19`, `alpine:3.19`,
/// `docker.io/library/alpine:3.19`) is what the user's `reference` means.
fn name_matches(name: &str, reference: &str) -> bool {
    let tag = name
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .filter(|tag| !tag.contains('/'));
    name == reference
        || tag == Some(reference)
        || name.ends_with(&format!("/{reference}"))
        || reference.ends_with(&format!("/{name}"))
}

fn blob_hex<'d>(image: &Path, digest: &'d str, what: &str) -> Result<&'d str, ImageError> {
    sha256_of_digest(digest).ok_or_else(|| {
        ImageError::bad_image(
            image,
            format!("{what} digest `{digest}` is not sha256:<64 hex digits>"),
        )
    })
}

/// Reads the blob `digest` as JSON, checking the digest.
fn read_blob_json<T: DeserializeOwned>(
    layout: &Path,
    image: &Path,
    digest: &str,
    what: &str,
) -> Result<T, ImageError> {
    let hex = blob_hex(image, digest, what)?;
    let path = layout.join("blobs/sha256").join(hex);
    let bytes = read(&path, image)?;
    check_digest(
        &bytes,
        hex,
        &format!("{}: {what} {digest}", image.display()),
    )?;
    parse_json(&bytes, &path, image)
}

fn check_digest(bytes: &[u8], expected: &str, what: &str) -> Result<(), ImageError> {
    digest::expect(what, expected, sha256_hex(bytes))
}

fn read_json<T: DeserializeOwned>(path: &Path, image: &Path) -> Result<T, ImageError> {
    parse_json(&read(path, image)?, path, image)
}

fn read(path: &Path, image: &Path) -> Result<Vec<u8>, ImageError> {
    fs::read(path)
        .map_err(|e| ImageError::bad_image(image, format!("cannot read {}: {e}", path.display())))
}

fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    image: &Path,
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::bad_image(image, format!("{} is not valid: {e}", path.display())))
}

/// `relative` (from manifest.json) inside the layout, refusing `..` and
/// absolute paths.
fn inside(layout: &Path, image: &Path, relative: &str) -> Result<PathBuf, ImageError> {
    let path = Path::new(relative);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ImageError::bad_image(
            image,
            format!("manifest.json names `{relative}`, which is outside the image"),
        ));
    }
    Ok(layout.join(path))
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn references_match_names_by_tag_or_repository_suffix() {
        assert!(name_matches("3.19", "3.19"));
        assert!(name_matches("alpine:3.19", "3.19"));
        assert!(name_matches("alpine:3.19", "alpine:3.19"));
        assert!(name_matches("docker.io/library/alpine:3.19", "alpine:3.19"));
        assert!(name_matches("alpine:3.19", "docker.io/library/alpine:3.19"));
        assert!(!name_matches("alpine:3.19", "3.1"));
        assert!(!name_matches("localhost:5000/alpine", "5000"));
        assert!(!name_matches("debian:12", "alpine:3.19"));
    }
}
