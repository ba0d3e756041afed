//! OCI images: layouts built here, mounted with a real overlay; flattened
//! trees; digest checks; docker-save and OCI archives; tag selection.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use serde_json::{json, Value};

use super::*;
use crate::image::digest::sha256_hex;
use crate::image::{ImageError, PreparedRoot, RootfsSource};

const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Writes `bytes` as a blob of the layout at `dir`; returns its descriptor.
fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let hex = sha256_hex(bytes);
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}

fn json_blob(dir: &Path, media_type: &str, value: &Value) -> Value {
    blob(dir, media_type, &serde_json::to_vec(value).unwrap())
}

/// Layer 1 has etc/keep, etc/gone and opq/old; layer 2 deletes etc/gone
/// with a `.wh.` file, makes opq opaque and adds opq/new and etc/added.
fn layers() -> (Vec<u8>, Vec<u8>) {
    let first = Tar::new()
        .dir("etc", 0o755)
        .file("etc/keep", 0o644, b"keep")
        .file("etc/gone", 0o644, b"gone")
        .dir("opq", 0o755)
        .file("opq/old", 0o644, b"old")
        .dir("opq/olddir", 0o755)
        .file("opq/olddir/deep", 0o644, b"deep")
        .bytes();
    let second = Tar::new()
        .dir("opq", 0o755)
        .file("opq/new", 0o644, b"new")
        .file("opq/.wh..wh..opq", 0o644, b"")
        .file("etc/.wh.gone", 0o644, b"")
        .file("etc/added", 0o600, b"added")
        .bytes();
    (first, second)
}

fn config() -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", "GREETING=hello=world"],
            "WorkingDir": "/srv",
            "User": "1000:1000"
        },
        "rootfs": {"type": "layers", "diff_ids": []}
    })
}

/// An image manifest blob over `layers`; returns its descriptor.
fn manifest(dir: &Path, layers: &[(&str, Vec<u8>)], config: &Value) -> Value {
    let config = json_blob(dir, "application/vnd.oci.image.config.v1+json", config);
    let layers: Vec<Value> = layers
        .iter()
        .map(|(media_type, bytes)| blob(dir, media_type, bytes))
        .collect();
    json_blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &json!({"schemaVersion": 2, "config": config, "layers": layers}),
    )
}

fn write_index(dir: &Path, manifests: Vec<Value>) {
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn tagged(mut descriptor: Value, tag: &str) -> Value {
    descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    descriptor
}

/// The two-layer image as a layout at `dir`/image.
fn two_layer_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("image");
    let (first, second) = layers();
    let m = manifest(
        &layout,
        &[(LAYER_TAR, first), (LAYER_GZIP, gzip(&second))],
        &config(),
    );
    write_index(&layout, vec![tagged(m, "v1")]);
    layout
}

/// Paths of a tree (files and dirs), relative and sorted, with whiteout
/// devices shown as `NAME (whiteout)`.
fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for child in fs::read_dir(dir).unwrap() {
            let child = child.unwrap();
            let rel = child
                .path()
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string();
            let kind = child.file_type().unwrap();
            if kind.is_char_device() {
                out.push(format!("{rel} (whiteout)"));
            } else {
                out.push(rel);
            }
            if kind.is_dir() {
                walk(root, &child.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

const MERGED: [&str; 5] = ["etc", "etc/added", "etc/keep", "opq", "opq/new"];

fn check_config(prepared: &PreparedRoot) {
    assert_eq!(
        prepared.env,
        vec![
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("GREETING".to_string(), "hello=world".to_string())
        ]
    );
    assert_eq!(prepared.working_dir.as_deref(), Some("/srv"));
    assert_eq!(prepared.user.as_deref(), Some("1000:1000"));
}

#[test]
fn layers_get_overlay_whiteouts_and_mount_as_the_image() {
    if !is_root() {
        return; // overlay whiteouts need root; the flattened test covers the rest
    }
    let dir = tempfile::tempdir().unwrap();
    let (_c, cache) = temp_cache();
    let layout = two_layer_layout(dir.path());
    let source = RootfsSource::parse("image", dir.path()).unwrap();
    assert_eq!(
        source,
        RootfsSource::Oci {
            path: layout.clone(),
            reference: None
        }
    );
    let prepared = cache.prepare(&source).unwrap();
    assert!(prepared.built);
    check_config(&prepared);
    assert_eq!(prepared.layers.len(), 2);
    let (top, bottom) = (&prepared.layers[0], &prepared.layers[1]);
    assert!(listing(bottom).contains(&"etc/gone".to_string()));
    assert_eq!(
        listing(top),
        ["etc", "etc/added", "etc/gone (whiteout)", "opq", "opq/new"]
    );
    let mut value = [0u8; 8];
    let opaque = rustix::fs::lgetxattr(top.join("opq"), "trusted.overlay.opaque", &mut value);
    assert_eq!(opaque.unwrap(), 1);
    assert_eq!(
        fs::metadata(top.join("etc/added")).unwrap().mode() & 0o777,
        0o600
    );

    let mount_point = dir.path().join("merged");
    fs::create_dir(&mount_point).unwrap();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={}:{} {} && cd {} && find . -mindepth 1 | sort",
        top.display(),
        bottom.display(),
        mount_point.display(),
        mount_point.display()
    );
    let merged: Vec<String> = stdout_of(Command::new("unshare").args(["-m", "sh", "-c", &script]))
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect();
    assert_eq!(merged, MERGED);

    let again = cache.prepare(&source).unwrap();
    assert!(!again.built);
    assert_eq!(again.layers, prepared.layers);
    let kinds: Vec<EntryKind> = cache.list().unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EntryKind::Layer, EntryKind::Layer]);
}

#[test]
fn without_overlay_whiteouts_layers_are_flattened() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, cache) = temp_cache();
    let cache = cache.without_overlay_whiteouts();
    let layout = two_layer_layout(dir.path());
    let source = RootfsSource::Oci {
        path: layout,
        reference: Some("v1".into()),
    };
    let prepared = cache.prepare(&source).unwrap();
    assert!(prepared.built);
    check_config(&prepared);
    assert_eq!(prepared.layers.len(), 1);
    assert_eq!(listing(&prepared.layers[0]), MERGED);
    assert!(!cache.prepare(&source).unwrap().built);
    let entries = cache.list().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, EntryKind::Flat);
}

#[test]
fn a_layer_with_the_wrong_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    let (first, _) = layers();
    let descriptor = manifest(&layout, &[(LAYER_ZSTD, zstd(&first))], &config());
    write_index(&layout, vec![descriptor]);
    // Corrupt the layer blob in place: same name, other content.
    let layer_hex = sha256_hex(&zstd(&first));
    let layer_path = layout.join("blobs/sha256").join(&layer_hex);
    let tampered = zstd(&Tar::new().file("etc/evil", 0o644, b"evil").bytes());
    fs::write(&layer_path, tampered).unwrap();

    for flatten in [false, true] {
        let (_c, cache) = temp_cache();
        let cache = if flatten {
            cache.without_overlay_whiteouts()
        } else {
            cache
        };
        let error = cache
            .prepare(&RootfsSource::Oci {
                path: layout.clone(),
                reference: None,
            })
            .unwrap_err();
        assert!(
            matches!(error, ImageError::DigestMismatch { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&layer_hex), "{error}");
        assert!(cache.list().unwrap().is_empty());
        assert_eq!(temp_dirs(&cache), Vec::<String>::new());
    }
}

#[test]
fn tags_pick_one_of_several_images() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    let one = manifest(
        &layout,
        &[(LAYER_TAR, Tar::new().file("one", 0o644, b"1").bytes())],
        &config(),
    );
    let two = manifest(
        &layout,
        &[(LAYER_TAR, Tar::new().file("two", 0o644, b"2").bytes())],
        &json!({"config": {}}),
    );
    write_index(&layout, vec![tagged(one, "one"), tagged(two, "two")]);
    let (_c, cache) = temp_cache();
    let cache = cache.without_overlay_whiteouts();

    let picked = RootfsSource::parse("image:two", dir.path()).unwrap();
    let prepared = cache.prepare(&picked).unwrap();
    assert!(prepared.layers[0].join("two").is_file());
    assert!(!prepared.layers[0].join("one").exists());
    assert!(prepared.env.is_empty() && prepared.user.is_none());

    let untagged = RootfsSource::parse("image", dir.path()).unwrap();
    let error = cache.prepare(&untagged).unwrap_err().to_string();
    assert!(
        error.contains("one") && error.contains("two") && error.contains(":TAG"),
        "{error}"
    );
    let missing = RootfsSource::parse("image:three", dir.path()).unwrap();
    let error = cache.prepare(&missing).unwrap_err();
    assert!(matches!(error, ImageError::NoSuchTag { .. }), "{error}");
    assert!(error.to_string().contains("one, two"), "{error}");
}

#[test]
fn nested_indexes_prefer_linux_amd64() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    let mut arm = manifest(
        &layout,
        &[(LAYER_TAR, Tar::new().file("arm", 0o644, b"").bytes())],
        &config(),
    );
    arm["platform"] = json!({"os": "linux", "architecture": "arm64"});
    let mut amd = manifest(
        &layout,
        &[(LAYER_TAR, Tar::new().file("amd", 0o644, b"").bytes())],
        &config(),
    );
    amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let nested = json_blob(
        &layout,
        "application/vnd.oci.image.index.v1+json",
        &json!({"schemaVersion": 2, "manifests": [arm, amd]}),
    );
    write_index(&layout, vec![tagged(nested, "multi")]);
    let (_c, cache) = temp_cache();
    let cache = cache.without_overlay_whiteouts();
    for reference in [None, Some("multi".to_string())] {
        let prepared = cache
            .prepare(&RootfsSource::Oci {
                path: layout.clone(),
                reference,
            })
            .unwrap();
        assert!(prepared.layers[0].join("amd").is_file());
    }
}

#[test]
fn oci_archives_are_unpacked_then_read_as_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let layout = two_layer_layout(dir.path());
    let mut archive = Tar::new();
    for path in ["oci-layout", "index.json"] {
        archive = archive.file(path, 0o644, &fs::read(layout.join(path)).unwrap());
    }
    for blob in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        let name = format!("blobs/sha256/{}", blob.file_name().to_string_lossy());
        archive = archive.file(&name, 0o644, &fs::read(blob.path()).unwrap());
    }
    write(dir.path(), "image.tar", &archive.bytes());
    let source = RootfsSource::parse("image.tar:v1", dir.path()).unwrap();
    assert!(matches!(&source, RootfsSource::Oci { reference: Some(r), .. } if r == "v1"));
    let (_c, cache) = temp_cache();
    let cache = cache.without_overlay_whiteouts();
    let prepared = cache.prepare(&source).unwrap();
    assert!(prepared.built);
    assert_eq!(listing(&prepared.layers[0]), MERGED);
    check_config(&prepared);
    assert!(!cache.prepare(&source).unwrap().built);
    let mut kinds: Vec<EntryKind> = cache.list().unwrap().iter().map(|e| e.kind).collect();
    kinds.sort();
    assert_eq!(kinds, [EntryKind::Archive, EntryKind::Flat]);
}

/// A `docker save` archive of the two-layer image (old format: layers as
/// DIR/layer.tar, the config named by its digest); `layer_one` replaces
/// the first layer's content.
fn docker_save(layer_one: Option<Vec<u8>>) -> Vec<u8> {
    let (first, second) = layers();
    let mut config = config();
    config["rootfs"]["diff_ids"] = json!([
        format!("sha256:{}", sha256_hex(&first)),
        format!("sha256:{}", sha256_hex(&second)),
    ]);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", sha256_hex(&config_bytes));
    let layer_dirs = [sha256_hex(b"layer one"), sha256_hex(b"layer two")];
    let layer_files = layer_dirs.map(|dir| format!("{dir}/layer.tar"));
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": ["demo:1.0"],
        "Layers": layer_files,
    }]);
    Tar::new()
        .file(&config_name, 0o644, &config_bytes)
        .file(&layer_files[0], 0o644, &layer_one.unwrap_or(first))
        .file(&layer_files[1], 0o644, &second)
        .file(
            "manifest.json",
            0o644,
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .bytes()
}

#[test]
fn docker_save_tarballs_are_images() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "saved.tar", &docker_save(None));
    let (_c, cache) = temp_cache();
    let cache = cache.without_overlay_whiteouts();
    for value in ["saved.tar", "saved.tar:demo:1.0", "saved.tar:1.0"] {
        let source = RootfsSource::parse(value, dir.path()).unwrap();
        assert!(matches!(source, RootfsSource::Oci { .. }), "{value}");
        let prepared = cache.prepare(&source).unwrap();
        assert_eq!(listing(&prepared.layers[0]), MERGED, "{value}");
        check_config(&prepared);
    }
    let wrong = RootfsSource::parse("saved.tar:2.0", dir.path()).unwrap();
    let error = cache.prepare(&wrong).unwrap_err().to_string();
    assert!(error.contains("demo:1.0"), "{error}");
}

#[test]
fn docker_layers_must_match_their_diff_ids() {
    let dir = tempfile::tempdir().unwrap();
    let evil = Tar::new().file("evil", 0o644, b"evil").bytes();
    write(dir.path(), "saved.tar", &docker_save(Some(evil)));
    let source = RootfsSource::parse("saved.tar", dir.path()).unwrap();
    let (_c, cache) = temp_cache();
    let cache = cache.without_overlay_whiteouts();
    let error = cache.prepare(&source).unwrap_err();
    assert!(
        matches!(error, ImageError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("saved.tar"), "{error}");
    let kinds: Vec<EntryKind> = cache.list().unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EntryKind::Archive]);
}
