//! Which cgroup layout the host has, read from /proc/self/mountinfo and
//! /proc/self/cgroup: v1 (one hierarchy per controller or group of
//! controllers), v2 (one unified tree), or hybrid (v1 controllers plus a
//! cgroup2 tree, usually at /sys/fs/cgroup/unified, without controllers).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::sandbox::mountinfo::Mount;

/// The layout, as reports name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutKind {
    V1,
    V2,
    Hybrid,
    /// No cgroup filesystem is mounted.
    None,
}

impl fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutKind::V1 => "v1",
            LayoutKind::V2 => "v2",
            LayoutKind::Hybrid => "hybrid",
            LayoutKind::None => "none",
        })
    }
}

/// A mounted v1 hierarchy and where this process sits in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
    /// This process's cgroup, relative to `mount`.
    pub own_path: PathBuf,
}

impl V1Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The cgroup2 tree and where this process sits in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Tree {
    pub mount: PathBuf,
    /// This process's cgroup, relative to `mount`.
    pub own_path: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub v1: Vec<V1Hierarchy>,
    pub v2: Option<V2Tree>,
}

impl Layout {
    pub fn kind(&self) -> LayoutKind {
        match (self.v1.is_empty(), &self.v2) {
            (false, Some(_)) => LayoutKind::Hybrid,
            (false, None) => LayoutKind::V1,
            (true, Some(_)) => LayoutKind::V2,
            (true, None) => LayoutKind::None,
        }
    }

    /// The v1 hierarchy holding `controller`, if one is mounted.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }
}

/// One line of /proc/self/cgroup: `ID:controller,list:/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Membership {
    controllers: Vec<String>,
    path: PathBuf,
}

fn parse_proc_cgroup(text: &str) -> Result<Vec<Membership>, String> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("malformed /proc/self/cgroup line: {line}"));
            };
            Ok(Membership {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// The layout as the calling process sees it: its mount table and
/// /proc/self/cgroup.
pub fn own_layout() -> Result<Layout, String> {
    let mounts = crate::sandbox::mountinfo::read_own()?;
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    detect(&mounts, &proc_cgroup)
}

/// Detects the layout from the mount table and the text of /proc/self/cgroup.
/// Named v1 hierarchies without controllers (name=systemd) are ignored.
pub fn detect(mounts: &[Mount], proc_cgroup: &str) -> Result<Layout, String> {
    let memberships = parse_proc_cgroup(proc_cgroup)?;
    let mut v1 = Vec::new();
    let mut v2 = None;
    for membership in &memberships {
        let real: Vec<String> = membership
            .controllers
            .iter()
            .filter(|c| !c.starts_with("name="))
            .cloned()
            .collect();
        if membership.controllers.is_empty() {
            v2 = mounts
                .iter()
                .find(|m| m.fs_type == "cgroup2")
                .map(|m| V2Tree {
                    mount: m.mount_point.clone(),
                    own_path: relative_to_mount_root(&membership.path, &m.root),
                });
        } else if !real.is_empty() {
            let mount = mounts.iter().find(|m| {
                m.fs_type == "cgroup" && real.iter().all(|c| m.super_options.contains(c))
            });
            if let Some(mount) = mount {
                v1.push(V1Hierarchy {
                    controllers: real,
                    mount: mount.mount_point.clone(),
                    own_path: relative_to_mount_root(&membership.path, &mount.root),
                });
            }
        }
    }
    Ok(Layout { v1, v2 })
}

/// A cgroup path as seen from a mount whose root may itself be a cgroup
/// (cgroup namespaces and bind-mounted cgroup trees in containers).
fn relative_to_mount_root(path: &Path, mount_root: &Path) -> PathBuf {
    let relative = path.strip_prefix(mount_root).unwrap_or(path);
    relative.strip_prefix("/").unwrap_or(relative).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::mountinfo;

    // Read off this project's hybrid CI host.
    const HYBRID_MOUNTINFO: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/5459a69b
2:cpuacct:/
1:cpu:/
0::/
";
    // A systemd host with the unified layout.
    const V2_MOUNTINFO: &str = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";
    const V2_CGROUP: &str = "0::/user.slice/user-1000.slice/session-2.scope\n";
    // Classic v1 with co-mounted cpu,cpuacct.
    const V1_MOUNTINFO: &str = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
    const V1_CGROUP: &str = "3:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n";

    fn layout(mountinfo_text: &str, cgroup: &str) -> Layout {
        detect(&mountinfo::parse(mountinfo_text).unwrap(), cgroup).unwrap()
    }

    #[test]
    fn detects_hybrid() {
        let layout = layout(HYBRID_MOUNTINFO, HYBRID_CGROUP);
        assert_eq!(layout.kind(), LayoutKind::Hybrid);
        let memory = layout.v1_hierarchy("memory").unwrap();
        assert_eq!(memory.mount, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(memory.own_path, Path::new("process_api/5459a69b"));
        assert_eq!(layout.v1_hierarchy("pids").unwrap().own_path, Path::new(""));
        assert!(layout.v1_hierarchy("systemd").is_none());
        assert_eq!(
            layout.v2.unwrap().mount,
            Path::new("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn detects_v2() {
        let layout = layout(V2_MOUNTINFO, V2_CGROUP);
        assert_eq!(layout.kind(), LayoutKind::V2);
        let tree = layout.v2.unwrap();
        assert_eq!(tree.mount, Path::new("/sys/fs/cgroup"));
        assert_eq!(
            tree.own_path,
            Path::new("user.slice/user-1000.slice/session-2.scope")
        );
    }

    #[test]
    fn detects_v1_with_co_mounted_controllers() {
        let layout = layout(V1_MOUNTINFO, V1_CGROUP);
        assert_eq!(layout.kind(), LayoutKind::V1);
        let cpu = layout.v1_hierarchy("cpuacct").unwrap();
        assert_eq!(cpu.mount, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(cpu.has("cpu"));
        assert_eq!(cpu.own_path, Path::new("docker/abc"));
    }

    #[test]
    fn mount_root_inside_a_cgroup_namespace() {
        let mounts = "30 25 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let layout = layout(mounts, "0::/docker/abc/inner\n");
        assert_eq!(layout.v2.unwrap().own_path, Path::new("inner"));
    }

    #[test]
    fn nothing_mounted() {
        let layout = layout("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "");
        assert_eq!(layout.kind(), LayoutKind::None);
    }

    #[test]
    fn malformed_proc_cgroup() {
        assert!(detect(&[], "garbage\n").is_err());
    }
}
