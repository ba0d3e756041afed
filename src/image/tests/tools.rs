//! Tools roots built from this host's programs, run with a real chroot.

use std::fs;
use std::process::Command;

use super::*;
use crate::image::{ImageError, RootfsSource};

#[test]
fn a_tools_root_runs_its_programs_and_holds_nothing_else() {
    let (_c, cache) = temp_cache();
    let source = RootfsSource::parse("tools:sh,ls", Path::new("/")).unwrap();
    assert_eq!(source, RootfsSource::Tools(vec!["sh".into(), "ls".into()]));
    let prepared = cache.prepare(&source).unwrap();
    assert!(prepared.built);
    let root = &prepared.layers[0];

    let loader = fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|_| {
            let bytes = fs::read("/bin/ls").ok()?;
            crate::image::elf::dynamic(&bytes).ok()?.interpreter
        })
        .unwrap();
    let inside = |host: &str| root.join(host.trim_start_matches('/'));
    assert!(inside(&loader).is_file(), "loader {loader} is in the root");
    assert!(inside("/etc/ld.so.cache").is_file());
    assert!(
        [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6"
        ]
        .iter()
        .any(|libc| inside(libc).is_file()),
        "libc is in the root"
    );
    assert!(!inside("/usr/bin/git").exists());
    assert!(
        !inside("/usr/bin/cat").exists(),
        "undeclared programs stay out"
    );
    for dir in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    assert!(fs::read_to_string(inside("/etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));

    if is_root() {
        let listed = stdout_of(
            Command::new("chroot")
                .arg(root)
                .args(["/bin/sh", "-c", "ls /"]),
        );
        for name in ["bin", "etc", "proc", "tmp", "usr"] {
            assert!(listed.lines().any(|l| l == name), "{name} in {listed}");
        }
    }

    let again = cache.prepare(&source).unwrap();
    assert!(!again.built, "second prepare is a cache hit");
    assert_eq!(again.layers, prepared.layers);
    let same = cache
        .prepare(&RootfsSource::Tools(vec![
            "ls".into(),
            "sh".into(),
            "ls".into(),
        ]))
        .unwrap();
    assert!(!same.built, "the key ignores order and repeats");
    let entries = cache.list().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].source, "tools ls, sh");
}

#[test]
fn scripts_bring_their_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let script = write(dir.path(), "hello", b"#!/bin/sh\necho hello\n");
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (_c, cache) = temp_cache();
    let tool = script.display().to_string();
    let root = &cache
        .prepare(&RootfsSource::Tools(vec![tool]))
        .unwrap()
        .layers[0];
    assert!(root.join(script.strip_prefix("/").unwrap()).is_file());
    let sh = fs::canonicalize("/bin/sh").unwrap();
    assert!(root.join(sh.strip_prefix("/").unwrap()).is_file());
    assert!(!root.join("usr/bin/ls").exists());
}

#[test]
fn unknown_tools_are_named_with_the_path_searched() {
    let (_c, cache) = temp_cache();
    let error = cache
        .prepare(&RootfsSource::Tools(vec![
            "sh".into(),
            "no-such-program-xyz".into(),
        ]))
        .unwrap_err();
    assert!(matches!(error, ImageError::ToolNotFound { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("no-such-program-xyz"), "{message}");
    assert!(message.contains("/usr/local/sbin:"), "{message}");
    assert!(cache.list().unwrap().is_empty());
}
