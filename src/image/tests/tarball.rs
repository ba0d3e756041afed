//! Tarball roots: round trip, refused escapes, corrupt input, zstd,
//! concurrency and stale temp dirs.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::{Arc, Barrier};

use tar::EntryType;

use super::*;
use crate::image::{ImageError, RootfsSource};

fn sample() -> Vec<u8> {
    Tar::new()
        .dir("etc", 0o750)
        .owned_file("etc/config", 0o640, 1234, 4321, b"setting = 1\n")
        .file("bin/tool", 0o4755, b"#!/bin/sh\necho hi\n")
        .symlink("etc/link", "config")
        .symlink("abs", "/etc/passwd")
        .hard_link("etc/hard", "etc/config")
        .fifo("run/pipe", 0o620)
        .char_device("dev/null", 1, 3)
        .file(".wh.kept", 0o644, b"plain tarballs keep .wh. names")
        .dir("readonly", 0o555)
        .file("readonly/inside", 0o444, b"x")
        .bytes()
}

#[test]
fn round_trip_keeps_modes_links_fifos_and_owners() {
    let (dir, cache) = temp_cache();
    let path = write(dir.path(), "root.tar", &sample());
    let prepared = cache.prepare(&RootfsSource::Tarball(path.clone())).unwrap();
    assert!(prepared.built);
    assert_eq!(prepared.layers.len(), 1);
    let root = &prepared.layers[0];

    let mode = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("etc"), 0o750);
    assert_eq!(mode("etc/config"), 0o640);
    assert_eq!(mode("bin/tool"), 0o4755);
    assert_eq!(mode("readonly"), 0o555);
    assert_eq!(mode("run/pipe"), 0o620);
    assert_eq!(fs::read(root.join("etc/config")).unwrap(), b"setting = 1\n");
    assert_eq!(
        fs::read_link(root.join("etc/link")).unwrap(),
        Path::new("config")
    );
    assert_eq!(
        fs::read_link(root.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    let config = fs::metadata(root.join("etc/config")).unwrap();
    assert_eq!(
        fs::metadata(root.join("etc/hard")).unwrap().ino(),
        config.ino()
    );
    assert!(fs::symlink_metadata(root.join("run/pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(!root.join("dev/null").exists(), "device nodes are skipped");
    assert!(root.join(".wh.kept").is_file());
    assert_eq!(
        fs::metadata(root.join("etc/config")).unwrap().mtime(),
        1_600_000_000
    );
    if is_root() {
        assert_eq!((config.uid(), config.gid()), (1234, 4321));
    }

    let again = cache.prepare(&RootfsSource::Tarball(path.clone())).unwrap();
    assert!(!again.built, "second prepare is a cache hit");
    assert_eq!(again.layers, prepared.layers);

    let entries = cache.list().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, EntryKind::Tarball);
    assert_eq!(entries[0].source, path.display().to_string());
    assert!(entries[0].size > 0);
    assert!(entries[0].last_used.is_some());
    assert_eq!(temp_dirs(&cache), Vec::<String>::new());

    // Clean copes with the read-only directory even when not root.
    let summary = cache.clean().unwrap();
    assert_eq!(summary.entries, 1);
    assert_eq!(summary.bytes_freed, entries[0].size);
    assert!(cache.list().unwrap().is_empty());
}

/// Each archive must be refused with an `UnsafeEntry` error naming the
/// entry, and leave nothing in the cache or outside it.
#[test]
fn escapes_are_refused_and_nothing_is_cached() {
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().display().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            Tar::new()
                .raw(EntryType::Regular, "a/../../evil", "", b"x")
                .bytes(),
            "a/../../evil",
        ),
        (
            "absolute",
            Tar::new()
                .raw(EntryType::Regular, "/tmp/evil", "", b"x")
                .bytes(),
            "/tmp/evil",
        ),
        (
            "through-absolute-symlink",
            Tar::new()
                .symlink("escape", &outside_path)
                .file("escape/evil", 0o644, b"x")
                .bytes(),
            "escape/evil",
        ),
        (
            "through-relative-symlink",
            Tar::new()
                .dir("d", 0o755)
                .symlink("d/up", "..")
                .file("d/up/d/x", 0o644, b"x")
                .bytes(),
            "d/up/d/x",
        ),
        (
            "hard-link-escape",
            Tar::new()
                .raw(EntryType::Link, "passwd", "../../etc/passwd", b"")
                .bytes(),
            "passwd",
        ),
        (
            "hard-link-through-symlink",
            Tar::new()
                .symlink("etc", "/etc")
                .hard_link("passwd", "etc/passwd")
                .bytes(),
            "passwd",
        ),
    ];
    for (name, archive, entry) in cases {
        let (dir, cache) = temp_cache();
        let path = write(dir.path(), &format!("{name}.tar"), &archive);
        let error = cache.prepare(&RootfsSource::Tarball(path)).unwrap_err();
        match &error {
            ImageError::UnsafeEntry { entry: named, .. } => assert_eq!(named, entry, "{name}"),
            other => panic!("{name}: expected UnsafeEntry, got {other}"),
        }
        assert!(error.to_string().contains(entry), "{name}: {error}");
        assert_nothing_cached(&cache, EntryKind::Tarball);
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "{name}");
    }
}

#[test]
fn truncated_or_corrupt_archives_are_refused() {
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let tar = Tar::new().file("data", 0o644, &big).bytes();
    let gz = gzip(&tar);
    let zst = zstd(&tar);
    let mut bad_crc = gz.clone();
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 0xff;
    let cases = [
        ("truncated.tar.gz", gz[..gz.len() / 2].to_vec()),
        ("crc.tar.gz", bad_crc),
        ("truncated.tar.zst", zst[..zst.len() / 2].to_vec()),
        ("truncated.tar", tar[..tar.len() / 2].to_vec()),
    ];
    for (name, bytes) in cases {
        let (dir, cache) = temp_cache();
        let path = write(dir.path(), name, &bytes);
        let error = cache.prepare(&RootfsSource::Tarball(path)).unwrap_err();
        assert!(
            matches!(error, ImageError::CorruptArchive { .. }),
            "{name}: {error}"
        );
        assert!(error.to_string().contains(name), "{name}: {error}");
        assert_nothing_cached(&cache, EntryKind::Tarball);
    }
}

#[test]
fn zstd_tarballs_unpack_including_multi_frame_ones() {
    let tar = Tar::new()
        .file("a", 0o644, &[b'a'; 5000])
        .file("b", 0o600, b"bee")
        .bytes();
    let mut frames = zstd(&tar[..1000]);
    frames.extend(zstd(&tar[1000..]));
    for (name, bytes) in [("one.tar.zst", zstd(&tar)), ("two.tar.zst", frames)] {
        let (dir, cache) = temp_cache();
        let path = write(dir.path(), name, &bytes);
        let source = RootfsSource::parse(name, dir.path()).unwrap();
        assert_eq!(source, RootfsSource::Tarball(path));
        let root = &cache.prepare(&source).unwrap().layers[0];
        assert_eq!(
            fs::read(root.join("a")).unwrap(),
            vec![b'a'; 5000],
            "{name}"
        );
        assert_eq!(fs::read(root.join("b")).unwrap(), b"bee", "{name}");
    }
}

#[test]
fn concurrent_prepares_unpack_once() {
    let (dir, _cache) = temp_cache();
    let big: Vec<u8> = (0..500_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let archive = gzip(&Tar::new().file("big", 0o644, &big).bytes());
    let path = write(dir.path(), "root.tar.gz", &archive);
    let cache_dir = dir.path().join("cache");
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (barrier, path, cache_dir) = (barrier.clone(), path.clone(), cache_dir.clone());
            std::thread::spawn(move || {
                // One Cache each, as separate processes would have.
                let cache = Cache::open(Some(&cache_dir)).unwrap();
                barrier.wait();
                cache.prepare(&RootfsSource::Tarball(path)).unwrap()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.built).count(), 1);
    assert!(results.iter().all(|r| r.layers == results[0].layers));
    let cache = Cache::open(Some(&cache_dir)).unwrap();
    assert_eq!(cache.list().unwrap().len(), 1);
    assert_eq!(temp_dirs(&cache), Vec::<String>::new());
}

#[test]
fn stale_temp_dirs_of_dead_processes_are_removed() {
    let (dir, cache) = temp_cache();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let tmp = cache.root().join("tmp");
    let stale = tmp.join(format!("tarball-0123456789abcdef.{dead}.12345.0"));
    fs::create_dir_all(stale.join("tree/half/unpacked")).unwrap();
    fs::write(stale.join("tree/half/unpacked/file"), b"partial").unwrap();
    fs::set_permissions(
        stale.join("tree/half"),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    let me = std::process::id();
    let started = crate::image::cache::process_start(me).unwrap();
    let live = tmp.join(format!("tarball-fedcba9876543210.{me}.{started}.999999"));
    fs::create_dir_all(&live).unwrap();

    let path = write(
        dir.path(),
        "r.tar",
        &Tar::new().file("f", 0o644, b"f").bytes(),
    );
    cache.prepare(&RootfsSource::Tarball(path)).unwrap();
    assert!(!stale.exists(), "a dead process's temp dir is removed");
    assert!(live.exists(), "a live process's temp dir is kept");

    fs::remove_dir(&live).unwrap();
    fs::create_dir_all(stale.join("tree")).unwrap();
    fs::write(stale.join("tree/file"), b"1234").unwrap();
    let summary = cache.clean().unwrap();
    assert_eq!(summary.entries, 1);
    assert_eq!(summary.stale_temp_dirs, 1);
    assert!(summary.bytes_freed >= 5);
    assert!(cache.list().unwrap().is_empty());
    assert_eq!(temp_dirs(&cache), Vec::<String>::new());
}

#[test]
fn directories_are_used_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache_dir, cache) = temp_cache();
    fs::create_dir(dir.path().join("root")).unwrap();
    let source = RootfsSource::parse("root", dir.path()).unwrap();
    let prepared = cache.prepare(&source).unwrap();
    assert_eq!(
        prepared.layers,
        vec![fs::canonicalize(dir.path().join("root")).unwrap()]
    );
    assert!(!prepared.built);
    assert!(cache
        .prepare(&RootfsSource::Host)
        .unwrap()
        .layers
        .is_empty());
    let gone = RootfsSource::Directory(dir.path().join("gone"));
    assert!(cache
        .prepare(&gone)
        .unwrap_err()
        .to_string()
        .contains("gone"));
}
