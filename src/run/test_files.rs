//! Bazel's test environment: every attempt gets a host directory of its
//! own, bound writable (nosuid, nodev) at `/.isotest` in its container,
//! holding `XML_OUTPUT_FILE` (`test.xml`), `TEST_UNDECLARED_OUTPUTS_DIR`
//! (`outputs/`) and `TEST_TMPDIR` (`tmp/`, private to the attempt). Being
//! on the host, the files outlive the container: the runner reads them
//! after the test ends, with no help from the sandbox, rootless and with
//! `--scratch` alike. What the test left in `outputs/` is then moved to
//! `--artifacts DIR/<test name>/` (device nodes, fifos and sockets
//! dropped, setuid and setgid bits cleared: the test wrote them as root),
//! and the directory removed.
//!
//! The directories live under one per run (`isotest-files-<pid>`), in
//! `--scratch DIR`, else in memory like the tests' writable space
//! (/dev/shm, where it is a tmpfs: on a disk, creating and removing a few
//! directories per test cost more than the test's container), else in the
//! temp directory. It is removed at the end of the run; a later run
//! removes those of runners that are gone.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sandbox::ExtraMount;

/// Where the attempt's directory is in the container.
const CONTAINER_DIR: &str = "/.isotest";
const XML_FILE: &str = "test.xml";
const OUTPUTS: &str = "outputs";
const TMP: &str = "tmp";
const PREFIX: &str = "isotest-files-";

/// The run's directory of per-attempt directories; removed on drop.
pub struct TestFiles {
    dir: PathBuf,
    next: AtomicU64,
}

/// Where the run's directory goes without `--scratch`.
pub fn default_parent() -> PathBuf {
    use nix::sys::statfs::{statfs, TMPFS_MAGIC};
    use nix::unistd::{access, AccessFlags};
    let shm = Path::new("/dev/shm");
    let in_memory = statfs(shm).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC);
    if in_memory && access(shm, AccessFlags::W_OK | AccessFlags::X_OK).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl TestFiles {
    /// Creates the run's directory under `parent`, after removing those
    /// of runners that are gone.
    pub fn create(parent: &Path) -> Result<TestFiles, String> {
        sweep(parent);
        let dir = parent.join(format!("{PREFIX}{}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                format!(
                    "create {}: {e} (the tests' XML_OUTPUT_FILE and outputs go there; \
                     pass --scratch DIR to put them elsewhere)",
                    dir.display()
                )
            })?;
        Ok(TestFiles {
            dir,
            next: AtomicU64::new(0),
        })
    }

    /// A fresh directory for one attempt.
    pub fn attempt(&self) -> io::Result<AttemptFiles> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(n.to_string());
        fs::create_dir(&dir)?;
        let attempt = AttemptFiles { dir };
        let outputs = attempt.dir.join(OUTPUTS);
        fs::create_dir(&outputs)?;
        fs::create_dir(attempt.dir.join(TMP))?;
        // Writable by whichever user the test runs as (`user = ...`).
        for path in [&attempt.dir, &outputs, &attempt.dir.join(TMP)] {
            fs::set_permissions(path, fs::Permissions::from_mode(0o777))?;
        }
        Ok(attempt)
    }
}

impl Drop for TestFiles {
    fn drop(&mut self) {
        remove_tree(&self.dir);
    }
}

/// One attempt's directory; removed on drop.
pub struct AttemptFiles {
    dir: PathBuf,
}

impl AttemptFiles {
    /// The directory, bound at `/.isotest`.
    pub fn mount(&self) -> ExtraMount {
        ExtraMount::Bind {
            source: self.dir.as_os_str().as_encoded_bytes().to_vec(),
            target: CONTAINER_DIR.as_bytes().to_vec(),
            readonly: false,
        }
    }

    /// The host path of the attempt's `XML_OUTPUT_FILE`.
    pub fn xml_file(&self) -> PathBuf {
        self.dir.join(XML_FILE)
    }

    /// Moves what the test left in its outputs directory to `dir` (an
    /// earlier run's copy there is replaced); returns `dir` when there
    /// was something to keep. Symlinks are kept as symlinks, never
    /// followed: they were made by the test.
    pub fn keep_outputs(&self, dir: &Path) -> Result<Option<PathBuf>, String> {
        let outputs = self.dir.join(OUTPUTS);
        let is_dir = fs::symlink_metadata(&outputs).is_ok_and(|m| m.is_dir());
        let empty = !is_dir || fs::read_dir(&outputs).map_or(true, |mut d| d.next().is_none());
        if empty {
            return Ok(None);
        }
        let failed = |step: &str, e: io::Error| format!("{step} {}: {e}", dir.display());
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|e| failed("create the parent of", e))?;
        }
        if fs::symlink_metadata(dir).is_ok() {
            fs::remove_dir_all(dir).map_err(|e| failed("replace", e))?;
        }
        match fs::rename(&outputs, dir) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                copy_tree(&outputs, dir).map_err(|e| failed("copy the outputs to", e))?
            }
            Err(e) => return Err(failed("move the outputs to", e)),
        }
        defuse(dir).map_err(|e| failed("clean", e))?;
        // It was open to every user for the test; not any more.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| failed("chmod", e))?;
        Ok(Some(dir.to_path_buf()))
    }
}

impl Drop for AttemptFiles {
    fn drop(&mut self) {
        remove_tree(&self.dir);
    }
}

/// The Bazel variables of an attempt of the test `name`.
pub fn environment(name: &str) -> [(&'static str, String); 4] {
    [
        ("XML_OUTPUT_FILE", format!("{CONTAINER_DIR}/{XML_FILE}")),
        (
            "TEST_UNDECLARED_OUTPUTS_DIR",
            format!("{CONTAINER_DIR}/{OUTPUTS}"),
        ),
        ("TEST_TMPDIR", format!("{CONTAINER_DIR}/{TMP}")),
        ("TEST_TARGET", name.to_string()),
    ]
}

/// Copies a tree across filesystems: directories, regular files and
/// symlinks (as links); fifos, sockets and devices are left out.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Drops what a test, as root in its container, could leave to harm the
/// host's users: device nodes, fifos and sockets go, setuid and setgid
/// bits are cleared. Symlinks stay links; the test is over, so nothing
/// changes the tree meanwhile.
fn defuse(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = fs::symlink_metadata(entry.path())?;
        let kind = meta.file_type();
        let mode = meta.permissions().mode();
        if kind.is_dir() {
            defuse(&entry.path())?;
        } else if kind.is_file() {
            if mode & 0o6000 != 0 {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode & 0o1777))?;
            }
        } else if !kind.is_symlink() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Removes the run directories of runners that are gone.
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|pid| !crate::sandbox::runner_alive(pid)) {
            remove_tree(&entry.path());
        }
    }
}

/// Removes a tree, best effort: a test running as another user may have
/// left directories the runner cannot empty (rootless with a subordinate
/// id range); those are reported once, on stderr.
fn remove_tree(path: &Path) {
    if let Err(error) = fs::remove_dir_all(path) {
        if error.kind() != io::ErrorKind::NotFound {
            eprintln!(
                "isotest: warning: could not remove {}: {error}",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_get_writable_directories_removed_after() {
        let parent = tempfile::tempdir().unwrap();
        let files = TestFiles::create(parent.path()).unwrap();
        let attempt = files.attempt().unwrap();
        let dir = attempt.dir.clone();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o777);
        assert_eq!(mode(&dir.join(OUTPUTS)), 0o777);
        assert!(dir.join(TMP).is_dir());
        assert_eq!(attempt.xml_file(), dir.join("test.xml"));
        drop(attempt);
        assert!(!dir.exists());
        let run_dir = files.dir.clone();
        drop(files);
        assert!(!run_dir.exists());
    }

    #[test]
    fn outputs_are_kept_only_when_there_are_some() {
        let parent = tempfile::tempdir().unwrap();
        let files = TestFiles::create(parent.path()).unwrap();
        let artifacts = parent.path().join("artifacts/net/echo.sh");
        let empty = files.attempt().unwrap();
        assert_eq!(empty.keep_outputs(&artifacts).unwrap(), None);

        let full = files.attempt().unwrap();
        let outputs = full.dir.join(OUTPUTS);
        fs::create_dir(outputs.join("logs")).unwrap();
        fs::write(outputs.join("logs/server.log"), "up").unwrap();
        fs::write(outputs.join("setuid"), "").unwrap();
        fs::set_permissions(outputs.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
        nix::unistd::mkfifo(&outputs.join("logs/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", outputs.join("link")).unwrap();
        fs::create_dir_all(&artifacts).unwrap();
        fs::write(artifacts.join("stale"), "from an earlier run").unwrap();
        assert_eq!(
            full.keep_outputs(&artifacts).unwrap().as_deref(),
            Some(artifacts.as_path())
        );
        assert_eq!(
            fs::read_to_string(artifacts.join("logs/server.log")).unwrap(),
            "up"
        );
        assert!(fs::symlink_metadata(artifacts.join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!artifacts.join("stale").exists());
        let mode = fs::metadata(artifacts.join("setuid"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "setuid cleared");
        assert!(!artifacts.join("logs/fifo").exists(), "fifos dropped");

        let copy = parent.path().join("copy");
        copy_tree(&artifacts, &copy).unwrap();
        assert_eq!(
            fs::read_to_string(copy.join("logs/server.log")).unwrap(),
            "up"
        );
        assert_eq!(
            fs::read_link(copy.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
    }

    #[test]
    fn directories_of_gone_runners_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        // No process has a pid this large (pid_max is at most 2^22).
        let stale = parent.path().join(format!("{PREFIX}99999999"));
        fs::create_dir_all(stale.join("0/outputs")).unwrap();
        let _files = TestFiles::create(parent.path()).unwrap();
        assert!(!stale.exists());
    }
}
