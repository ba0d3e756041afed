//! Discovery: test roots (directories or single files) become test cases.
//! Every executable regular file is a test; hidden entries are skipped;
//! directories are walked in sorted order so the plan is stable.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::FILE_NAME as CONFIG_FILE_NAME;
use crate::protocol::Harness;

/// One test: an executable file found under a root, or a command declared
/// in an isotest.toml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
    /// Path relative to the root it was found under, `/`-separated
    /// (invalid UTF-8 shown with replacement characters); for a declared
    /// command, its table's directory and `name`.
    pub name: String,
    /// The directory part of the name, or the root's own name for
    /// top-level tests.
    pub suite: String,
    pub program: Program,
    /// Absolute path of its working directory: the directory holding the
    /// file, or the declared `cwd`.
    pub dir: PathBuf,
    /// Tags from isotest.toml (filled in by planning).
    pub tags: Vec<String>,
    /// True when `dir` is only a default (a `[[test]]` without `cwd`): an
    /// image's WorkingDir takes its place.
    pub default_dir: bool,
    /// The harness running it, for a driver's case: its output says more
    /// than the exit code (a panic, a skip). None for files and commands.
    pub harness: Option<Harness>,
    /// Host directories besides `dir` the test needs at their own paths (a
    /// driver's build output): shown like `dir`, even under the fresh
    /// /tmp, and bound read-only into another root.
    pub host_dirs: Vec<PathBuf>,
}

#[cfg(test)]
impl TestCase {
    /// The file test `/s/t.sh` of suite `s`, for unit tests.
    pub fn example() -> TestCase {
        TestCase {
            name: "t.sh".into(),
            suite: "s".into(),
            program: Program::File("/s/t.sh".into()),
            dir: "/s".into(),
            tags: Vec::new(),
            default_dir: false,
            harness: None,
            host_dirs: Vec::new(),
        }
    }
}

/// What a test runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// An executable file, by absolute path.
    File(PathBuf),
    /// A declared command: argv, the program searched in PATH if it has no
    /// `/`.
    Command(Vec<String>),
}

impl TestCase {
    /// The command line, as raw bytes.
    pub fn argv(&self) -> Vec<Vec<u8>> {
        match &self.program {
            Program::File(path) => vec![path.as_os_str().as_encoded_bytes().to_vec()],
            Program::Command(argv) => argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("test path {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("test path {0} is neither a directory nor an executable file")]
    NotATest(PathBuf),
}

/// Discovers the tests under each root, in root order then sorted path order.
pub fn discover(roots: &[PathBuf]) -> Result<Vec<TestCase>, DiscoverError> {
    let mut tests = Vec::new();
    for root in roots {
        let absolute = absolute(root)?;
        let meta = fs::metadata(&absolute).map_err(|source| DiscoverError::Io {
            path: root.clone(),
            source,
        })?;
        if meta.is_dir() {
            let root_name = display_name(&absolute);
            walk(&absolute, &absolute, &root_name, &mut tests)?;
        } else if is_executable_file(&meta) {
            let dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
            tests.push(TestCase {
                name: display_name(&absolute),
                suite: display_name(&dir),
                program: Program::File(absolute.clone()),
                dir,
                tags: Vec::new(),
                default_dir: false,
                harness: None,
                host_dirs: Vec::new(),
            });
        } else {
            return Err(DiscoverError::NotATest(root.clone()));
        }
    }
    Ok(tests)
}

fn walk(
    root: &Path,
    dir: &Path,
    root_name: &str,
    tests: &mut Vec<TestCase>,
) -> Result<(), DiscoverError> {
    let io_error = |source| DiscoverError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io_error)?
        .collect::<Result<_, _>>()
        .map_err(io_error)?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let file_name = entry.file_name();
        if file_name.as_encoded_bytes().starts_with(b".") || file_name == CONFIG_FILE_NAME {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(io_error)?;
        if file_type.is_dir() {
            walk(root, &path, root_name, tests)?;
            continue;
        }
        // Symlinks to executables count; symlinked directories are not
        // followed (no loops, no escaping the root).
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if !is_executable_file(&meta) {
            continue;
        }
        let relative = path.strip_prefix(root).expect("walked under root");
        let name = relative_name(relative);
        let suite = match relative.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => relative_name(parent),
            _ => root_name.to_string(),
        };
        tests.push(TestCase {
            name,
            suite,
            program: Program::File(path.clone()),
            dir: dir.to_path_buf(),
            tags: Vec::new(),
            default_dir: false,
            harness: None,
            host_dirs: Vec::new(),
        });
    }
    Ok(())
}

fn is_executable_file(meta: &fs::Metadata) -> bool {
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

fn absolute(path: &Path) -> Result<PathBuf, DiscoverError> {
    std::path::absolute(path).map_err(|source| DiscoverError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `a/b/c` from a relative path, whatever the platform separator.
pub fn relative_name(path: &Path) -> String {
    path.components()
        .map(|c| printable(c.as_os_str().as_encoded_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// A file name as a test name: valid UTF-8 kept, invalid bytes and control
/// characters written as `\xNN`, so that distinct files keep distinct
/// names and every report (terminal, XML attributes, JSON) shows the same.
pub fn printable(bytes: &[u8]) -> String {
    let mut name = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    name.push_str(&format!("\\x{byte:02x}"));
                }
            } else {
                name.push(c);
            }
        }
        for byte in chunk.invalid() {
            name.push_str(&format!("\\x{byte:02x}"));
        }
    }
    name
}

/// The last component of a path, printable: a root's or a suite's name.
pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| printable(n.as_encoded_bytes()))
        .unwrap_or_else(|| "/".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn touch(path: &Path, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn finds_executables_sorted_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tests");
        touch(&root.join("b.sh"), 0o755);
        touch(&root.join("a.sh"), 0o755);
        touch(&root.join("data.txt"), 0o644);
        touch(&root.join(".hidden.sh"), 0o755);
        touch(&root.join(".git/hook.sh"), 0o755);
        touch(&root.join("net/echo.sh"), 0o700);
        touch(&root.join("net/deep/x"), 0o755);

        let tests = discover(std::slice::from_ref(&root)).unwrap();
        let names: Vec<_> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a.sh", "b.sh", "net/deep/x", "net/echo.sh"]);
        let suites: Vec<_> = tests.iter().map(|t| t.suite.as_str()).collect();
        assert_eq!(suites, ["tests", "tests", "net/deep", "net"]);
        assert_eq!(tests[3].dir, root.join("net"));
        assert_eq!(tests[3].program, Program::File(root.join("net/echo.sh")));
    }

    #[test]
    fn names_keep_distinct_bytes_apart() {
        assert_eq!(printable(b"plain name.sh"), "plain name.sh");
        assert_eq!(printable(b"b-\xff.sh"), "b-\\xff.sh");
        assert_ne!(printable(b"b-\xff.sh"), printable(b"b-\xfe.sh"));
        assert_eq!(printable(b"new\nline"), "new\\x0aline");
        assert_eq!(printable("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }

    #[test]
    fn a_single_file_is_one_test() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("suite/one.sh");
        touch(&file, 0o755);
        let tests = discover(std::slice::from_ref(&file)).unwrap();
        assert_eq!(tests.len(), 1);
        assert_eq!(tests[0].name, "one.sh");
        assert_eq!(tests[0].suite, "suite");
    }

    #[test]
    fn missing_or_non_executable_roots_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = discover(std::slice::from_ref(&missing)).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let data = dir.path().join("data.txt");
        touch(&data, 0o644);
        assert!(matches!(
            discover(&[data]).unwrap_err(),
            DiscoverError::NotATest(_)
        ));
    }
}
