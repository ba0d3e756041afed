//! `RootfsSource::parse`: what each kind of value becomes.

use std::fs;

use super::*;
use crate::image::{ImageError, RootfsSource};

#[test]
fn values_become_sources() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    fs::create_dir(base.join("plain")).unwrap();
    fs::create_dir(base.join("layout")).unwrap();
    fs::write(base.join("layout/oci-layout"), b"{}").unwrap();
    let tar = Tar::new()
        .dir("etc", 0o755)
        .file("etc/x", 0o644, b"x")
        .bytes();
    write(base, "root.tar", &tar);
    write(base, "root.tgz", &gzip(&tar));
    write(base, "notes.txt", &[b'n'; 600]);

    let parse = |value: &str| RootfsSource::parse(value, base);
    assert_eq!(parse("host").unwrap(), RootfsSource::Host);
    assert_eq!(
        parse("plain").unwrap(),
        RootfsSource::Directory(base.join("plain"))
    );
    assert_eq!(
        parse("layout").unwrap(),
        RootfsSource::Oci {
            path: base.join("layout"),
            reference: None
        }
    );
    assert_eq!(
        parse("layout:v2").unwrap(),
        RootfsSource::Oci {
            path: base.join("layout"),
            reference: Some("v2".into())
        }
    );
    let absolute = base.join("root.tgz").display().to_string();
    assert_eq!(
        parse(&absolute).unwrap(),
        RootfsSource::Tarball(base.join("root.tgz"))
    );
    assert_eq!(
        parse("root.tar").unwrap(),
        RootfsSource::Tarball(base.join("root.tar"))
    );
    assert_eq!(
        parse("tools: sh, git ,python3").unwrap(),
        RootfsSource::Tools(vec!["sh".into(), "git".into(), "python3".into()])
    );
    assert_eq!(parse("tools:sh,ls").unwrap().to_string(), "tools:sh,ls");
    assert!(matches!(parse("tools:"), Err(ImageError::EmptyToolList)));
    assert!(matches!(
        parse("root.tar:v1"),
        Err(ImageError::TagOnPlainRootfs { .. })
    ));
    assert!(matches!(
        parse("notes.txt"),
        Err(ImageError::UnknownFormat { .. })
    ));
    let missing = parse("missing.tar").unwrap_err();
    assert!(matches!(missing, ImageError::NotFound { .. }));
    assert!(missing.to_string().contains("missing.tar"), "{missing}");
}
