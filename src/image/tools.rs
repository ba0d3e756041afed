//! Tools roots: a minimal root filesystem holding only the host programs a
//! test declares, at the same paths as on the host (symlink chains such as
//! `/bin -> usr/bin` and `sh -> dash` kept), plus what they load: the ELF
//! interpreter, shared libraries found as ld.so finds them (DT_RPATH,
//! DT_RUNPATH with `$ORIGIN`, /etc/ld.so.cache, default directories) and
//! script interpreters (`#!`), recursively. A few /etc files and empty
//! mount points complete it.
//!
//! The root is planned first (every path and where its content comes from),
//! then keyed by the tool list and every planned file's path, mode and
//! content, and built only when that key is not cached yet.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::cache::{Cache, EntryKind};
use super::digest::{self, sha256_hex, HashingReader};
use super::elf::{self, Dynamic};
use super::ldcache;
use super::{ImageError, PreparedRoot};

/// Where tools are looked up, in order.
pub const TOOLS_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const LD_SO_CACHE: &str = "/etc/ld.so.cache";
const DEFAULT_LIBRARY_DIRS: [&str; 4] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
];
/// Symlinks followed at most, as the kernel's ELOOP limit.
const MAX_SYMLINKS: usize = 40;

const GENERATED: [(&str, &str); 5] = [
    (
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    ),
    ("/etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    (
        "/etc/hosts",
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    ),
    (
        "/etc/nsswitch.conf",
        "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n\
         protocols: files\nservices: files\n",
    ),
    (
        "/etc/resolv.conf",
        "# isotest tools root: no DNS server is configured.\nnameserver 127.0.0.1\n",
    ),
];
/// Empty directories the container runtime mounts over, with their modes.
const MOUNT_POINTS: [(&str, u32); 6] = [
    ("/proc", 0o555),
    ("/sys", 0o555),
    ("/dev", 0o755),
    ("/tmp", 0o1777),
    ("/etc", 0o755),
    ("/root", 0o700),
];

/// One path of the planned root.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Dir {
        mode: u32,
    },
    Symlink {
        target: PathBuf,
    },
    /// A copy of a host file whose content has this digest.
    File {
        mode: u32,
        digest: String,
    },
    Generated {
        content: &'static str,
    },
}

/// The planned root: absolute paths inside it, each with its content.
#[derive(Default)]
struct Plan {
    items: BTreeMap<PathBuf, Item>,
}

/// Prepares the tools root for `tools`.
pub(crate) fn prepare(cache: &Cache, tools: &[String]) -> Result<PreparedRoot, ImageError> {
    let tools: BTreeSet<&str> = tools.iter().map(String::as_str).collect();
    if tools.is_empty() {
        return Err(ImageError::EmptyToolList);
    }
    let plan = Planner::new(cache).plan(&tools)?;
    let key = plan.key(&tools);
    let list: Vec<&str> = tools.iter().copied().collect();
    let source = format!("tools {}", list.join(", "));
    let entry = cache.ensure(EntryKind::Tools, &key, &source, |tree| plan.build(tree))?;
    Ok(PreparedRoot::layers(vec![entry.tree], entry.built))
}

/// Where `tool` is on the host: the first PATH directory holding an
/// executable file of that name. An absolute path is taken as it is, and
/// may be any file (a library a program loads with dlopen, a data file).
fn find_tool(tool: &str) -> Result<PathBuf, ImageError> {
    let executable = |path: &Path| {
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let not_found = || ImageError::ToolNotFound {
        tool: tool.to_string(),
        searched: TOOLS_PATH.to_string(),
    };
    if tool.contains('/') {
        let path = PathBuf::from(tool);
        return if path.is_absolute() && path.is_file() {
            Ok(path)
        } else {
            Err(not_found())
        };
    }
    TOOLS_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| executable(path))
        .ok_or_else(not_found)
}

struct Planner<'c> {
    cache: &'c Cache,
    plan: Plan,
    /// Host files (real paths) whose needs are known or queued.
    seen: BTreeSet<PathBuf>,
    queue: VecDeque<PathBuf>,
    ld_cache: Option<Vec<ldcache::Library>>,
}

impl<'c> Planner<'c> {
    fn new(cache: &'c Cache) -> Self {
        Planner {
            cache,
            plan: Plan::default(),
            seen: BTreeSet::new(),
            queue: VecDeque::new(),
            ld_cache: None,
        }
    }

    fn plan(mut self, tools: &BTreeSet<&str>) -> Result<Plan, ImageError> {
        let found: Vec<PathBuf> = tools
            .iter()
            .map(|t| find_tool(t))
            .collect::<Result<_, _>>()?;
        // PATH directories that are symlinks on the host (/bin -> usr/bin on
        // merged-/usr systems) stay symlinks, so /bin/sh works in the root
        // when sh was found in /usr/bin.
        for dir in TOOLS_PATH.split(':').map(Path::new) {
            if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) && dir.is_dir() {
                self.add(dir)?;
            }
        }
        for path in found {
            let real = self.add(&path)?;
            self.enqueue(real);
        }
        if Path::new(LD_SO_CACHE).is_file() {
            self.add(Path::new(LD_SO_CACHE))?;
            let bytes =
                fs::read(LD_SO_CACHE).map_err(|e| ImageError::io(LD_SO_CACHE, "read", e))?;
            self.ld_cache = Some(ldcache::parse(&bytes).map_err(|problem| ImageError::Tools {
                path: LD_SO_CACHE.into(),
                problem,
            })?);
        }
        while let Some(file) = self.queue.pop_front() {
            self.needs_of(&file)?;
        }
        for (path, mode) in MOUNT_POINTS {
            self.plan
                .items
                .insert(PathBuf::from(path), Item::Dir { mode });
        }
        for (path, content) in GENERATED {
            self.plan
                .items
                .insert(PathBuf::from(path), Item::Generated { content });
        }
        Ok(self.plan)
    }

    fn enqueue(&mut self, real: PathBuf) {
        if self.seen.insert(real.clone()) {
            self.queue.push_back(real);
        }
    }

    /// Adds what the file at `real` loads: its ELF interpreter and
    /// libraries, or its script interpreter.
    fn needs_of(&mut self, real: &Path) -> Result<(), ImageError> {
        let bytes = fs::read(real).map_err(|e| ImageError::io(real, "read", e))?;
        if let Some(script) = bytes.strip_prefix(b"#!") {
            let line = script.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            if let Some(interpreter) = line.split_whitespace().next() {
                let resolved = self.add(Path::new(interpreter))?;
                self.enqueue(resolved);
            }
            return Ok(());
        }
        if !elf::is_elf(&bytes) {
            return Ok(());
        }
        let dynamic = elf::dynamic(&bytes).map_err(|problem| ImageError::Tools {
            path: real.to_path_buf(),
            problem,
        })?;
        if let Some(interpreter) = &dynamic.interpreter {
            let resolved = self.add(Path::new(interpreter))?;
            self.enqueue(resolved);
        }
        let origin = real.parent().unwrap_or(Path::new("/"));
        for name in &dynamic.needed {
            let library =
                self.find_library(name, &dynamic, origin)
                    .ok_or_else(|| ImageError::Tools {
                        path: real.to_path_buf(),
                        problem: format!(
                            "needs the library {name}, which is in none of its RPATH/RUNPATH, \
                         {LD_SO_CACHE} or {}",
                            DEFAULT_LIBRARY_DIRS.join(", ")
                        ),
                    })?;
            let resolved = self.add(&library)?;
            self.enqueue(resolved);
        }
        Ok(())
    }

    /// Finds library `name` for `object` as ld.so would: DT_RPATH (only
    /// without DT_RUNPATH), DT_RUNPATH, /etc/ld.so.cache, default dirs;
    /// a candidate must match the object's word size and machine.
    fn find_library(&self, name: &str, object: &Dynamic, origin: &Path) -> Option<PathBuf> {
        let fits = |path: &Path| path.is_file() && elf::identity(path) == Some(object.identity);
        if name.contains('/') {
            let path = PathBuf::from(name);
            return (path.is_absolute() && fits(&path)).then_some(path);
        }
        let expand = |dir: &String| {
            let origin = origin.to_string_lossy();
            PathBuf::from(
                dir.replace("${ORIGIN}", &origin)
                    .replace("$ORIGIN", &origin),
            )
        };
        let rpath = if object.runpath.is_empty() {
            object.rpath.as_slice()
        } else {
            &[]
        };
        let search_dirs = rpath.iter().chain(&object.runpath).map(expand);
        let from_cache = self
            .ld_cache
            .iter()
            .flatten()
            .filter(|l| l.name == name && l.hwcap == 0)
            .map(|l| PathBuf::from(&l.path));
        let defaults = DEFAULT_LIBRARY_DIRS.iter().map(|d| Path::new(d).join(name));
        search_dirs
            .map(|dir| dir.join(name))
            .chain(from_cache)
            .chain(defaults)
            .find(|path| fits(path))
    }

    /// Adds the host path `host` to the plan with every symlink on the way
    /// (each directory, each link, then what it points to), and returns the
    /// real path it leads to.
    fn add(&mut self, host: &Path) -> Result<PathBuf, ImageError> {
        let mut pending: VecDeque<Part> = parts(host).collect();
        let mut current = PathBuf::from("/");
        let mut links = 0;
        while let Some(part) = pending.pop_front() {
            let name = match part {
                Part::Name(name) => name,
                Part::Parent => {
                    current.pop();
                    continue;
                }
                Part::Root => {
                    current = PathBuf::from("/");
                    continue;
                }
            };
            let next = current.join(name);
            let meta =
                fs::symlink_metadata(&next).map_err(|e| ImageError::io(&next, "inspect", e))?;
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ImageError::io(
                        host,
                        "resolve",
                        io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                let target =
                    fs::read_link(&next).map_err(|e| ImageError::io(&next, "read link", e))?;
                self.plan.items.insert(
                    next,
                    Item::Symlink {
                        target: target.clone(),
                    },
                );
                let parts: Vec<Part> = parts(&target).collect();
                for part in parts.into_iter().rev() {
                    pending.push_front(part);
                }
                continue;
            }
            if meta.is_dir() {
                self.plan
                    .items
                    .entry(next.clone())
                    .or_insert(Item::Dir { mode });
                current = next;
                continue;
            }
            if !pending.is_empty() {
                return Err(ImageError::io(
                    host,
                    "resolve",
                    io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is not a directory", next.display()),
                    ),
                ));
            }
            let digest = self.cache.file_digest(&next)?;
            self.plan
                .items
                .insert(next.clone(), Item::File { mode, digest });
            return Ok(next);
        }
        Ok(current)
    }
}

/// A path component to resolve, owned so symlink targets can be spliced in.
enum Part {
    Root,
    Parent,
    Name(OsString),
}

fn parts(path: &Path) -> impl Iterator<Item = Part> + '_ {
    path.components().filter_map(|component| match component {
        Component::RootDir => Some(Part::Root),
        Component::ParentDir => Some(Part::Parent),
        Component::Normal(name) => Some(Part::Name(name.to_os_string())),
        Component::CurDir | Component::Prefix(_) => None,
    })
}

impl Plan {
    /// SHA-256 over the sorted tool list and every path with its kind,
    /// mode and content.
    fn key(&self, tools: &BTreeSet<&str>) -> String {
        let mut text = String::from("isotest tools root v1\n");
        for tool in tools {
            text.push_str(&format!("tool {tool}\n"));
        }
        for (path, item) in &self.items {
            let path = path.display();
            let line = match item {
                Item::Dir { mode } => format!("dir {path} {mode:o}\n"),
                Item::Symlink { target } => format!("symlink {path} {}\n", target.display()),
                Item::File { mode, digest } => format!("file {path} {mode:o} {digest}\n"),
                Item::Generated { content } => {
                    format!("file {path} 644 {}\n", sha256_hex(content.as_bytes()))
                }
            };
            text.push_str(&line);
        }
        sha256_hex(text.as_bytes())
    }

    /// Writes the planned root under `tree` (parents sort before children).
    fn build(&self, tree: &Path) -> Result<(), ImageError> {
        let mut dir_modes = Vec::new();
        for (path, item) in &self.items {
            let inside = tree.join(path.strip_prefix("/").unwrap_or(path));
            match item {
                Item::Dir { mode } => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&inside)
                        .map_err(|e| ImageError::io(&inside, "create directory", e))?;
                    dir_modes.push((inside, *mode));
                }
                Item::Symlink { target } => std::os::unix::fs::symlink(target, &inside)
                    .map_err(|e| ImageError::io(&inside, "create symlink", e))?,
                Item::File { mode, digest } => copy_checked(path, &inside, *mode, digest)?,
                Item::Generated { content } => {
                    fs::write(&inside, content).map_err(|e| ImageError::io(&inside, "write", e))?;
                }
            }
        }
        for (dir, mode) in dir_modes.iter().rev() {
            fs::set_permissions(dir, fs::Permissions::from_mode(*mode))
                .map_err(|e| ImageError::io(dir, "set mode", e))?;
        }
        Ok(())
    }
}

/// Copies the host file `host` to `inside`, checking it still has the
/// content the root's key was computed from.
fn copy_checked(host: &Path, inside: &Path, mode: u32, expected: &str) -> Result<(), ImageError> {
    let source = File::open(host).map_err(|e| ImageError::io(host, "open", e))?;
    let mut reader = HashingReader::new(source);
    let mut copy = File::create(inside).map_err(|e| ImageError::io(inside, "create", e))?;
    io::copy(&mut reader, &mut copy).map_err(|e| ImageError::io(host, "copy", e))?;
    copy.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| ImageError::io(inside, "set mode", e))?;
    let actual = reader
        .finish()
        .map_err(|e| ImageError::io(host, "read", e))?;
    digest::expect(
        format!(
            "{} (changed while the tools root was built)",
            host.display()
        ),
        expected,
        actual,
    )
}
