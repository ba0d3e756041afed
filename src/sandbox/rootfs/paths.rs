//! Paths during setup: the scratch space is `/`, the host root sits at
//! /oldroot and the container's root is built at /newroot. Paths inside the
//! new root are resolved as the container will see them, so a symlink in an
//! image (`/var/run -> /run`) cannot send a mount outside it.

use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::super::spec::SetupFailure;

pub const SCRATCH: &str = "/tmp";
pub const OLD_ROOT: &str = "/oldroot";
pub const NEW_ROOT: &str = "/newroot";

/// Symlinks followed before giving up, as the kernel's ELOOP limit.
const MAX_LINKS: usize = 40;

pub fn in_new_root(path: &Path) -> PathBuf {
    Path::new(NEW_ROOT).join(path.strip_prefix("/").unwrap_or(path))
}

pub fn in_old_root(path: &Path) -> PathBuf {
    Path::new(OLD_ROOT).join(path.strip_prefix("/").unwrap_or(path))
}

/// `path` inside the new root with every symlink on the way resolved as if
/// /newroot were `/`. The last component may be missing.
pub fn resolve_in_new_root(path: &Path) -> Result<PathBuf, SetupFailure> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<OsString> = components(path);
    pending.reverse();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = Path::new(NEW_ROOT).join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(SetupFailure {
                        step: format!("resolve {} in the root", path.display()).into(),
                        cause: "too many levels of symbolic links".into(),
                        hint: None,
                        host_unsupported: false,
                        errno: None,
                    });
                }
                let target = fs::read_link(&full).map_err(|e| SetupFailure {
                    step: format!("read link {}", candidate.display()).into(),
                    cause: e.to_string(),
                    hint: None,
                    host_unsupported: false,
                    errno: None,
                })?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                let mut more = components(&target);
                more.reverse();
                pending.extend(more);
            }
            _ => resolved = candidate,
        }
    }
    Ok(Path::new(NEW_ROOT).join(resolved))
}

fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// overlayfs splits its options at `,` and lower layers at `:`; a
/// backslash escapes them.
pub fn escape_overlay_path(path: &Path) -> String {
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '\\' | ',' | ':') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_paths_escape_separators() {
        assert_eq!(
            escape_overlay_path(Path::new("/tmp/a,b:c")),
            "/tmp/a\\,b\\:c"
        );
        assert_eq!(escape_overlay_path(Path::new("/plain dir")), "/plain dir");
    }

    #[test]
    fn new_and_old_root_paths() {
        assert_eq!(
            in_new_root(Path::new("/dev/null")),
            Path::new("/newroot/dev/null")
        );
        assert_eq!(in_old_root(Path::new("/")), Path::new("/oldroot"));
    }

    #[test]
    fn parent_components_stay_inside() {
        // Nothing under /newroot exists here, so no link is followed.
        assert_eq!(
            resolve_in_new_root(Path::new("/../../etc/./passwd")).unwrap(),
            Path::new("/newroot/etc/passwd")
        );
    }
}
