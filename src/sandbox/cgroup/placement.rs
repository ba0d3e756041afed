//! Where a run's test cgroups go on this host: which cgroup version isotest
//! uses (v1 wherever a v1 memory or pids hierarchy is mounted, hybrid hosts
//! included; else v2) and the parent directory of test groups for each
//! controller. `Cgroups::setup` builds on this choice and `isotest doctor`
//! reports it, so the two cannot disagree.

use std::path::{Path, PathBuf};

use super::layout::{self, Layout, LayoutKind};
use super::version::parent_dir;

/// The v1 controllers isotest uses, in the order it reports them.
pub const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "freezer"];
/// The v2 controllers isotest enables for test groups.
pub const V2_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// The host's cgroup filesystems, as reports describe them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMounts {
    pub layout: LayoutKind,
    /// Where the cgroup2 tree is mounted (v2 and hybrid hosts).
    pub cgroup2: Option<PathBuf>,
}

/// The parent directories test groups are created in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestParents {
    /// Each of `V1_CONTROLLERS` with its parent, `None` where its hierarchy
    /// is not mounted.
    V1(Vec<(&'static str, Option<PathBuf>)>),
    /// The one parent in the cgroup2 tree; `is_root` when it is the tree's
    /// root.
    V2 { dir: PathBuf, is_root: bool },
    /// Neither a v1 memory or pids hierarchy nor a cgroup2 tree.
    Unusable,
}

impl TestParents {
    /// The v1 parent of `controller`'s test groups.
    pub(super) fn v1(
        dirs: &[(&'static str, Option<PathBuf>)],
        controller: &str,
    ) -> Option<PathBuf> {
        dirs.iter()
            .find(|(name, _)| *name == controller)
            .and_then(|(_, dir)| dir.clone())
    }
}

/// The host's cgroups and where isotest puts test groups in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupPlacement {
    pub mounts: CgroupMounts,
    pub parents: TestParents,
}

impl CgroupPlacement {
    /// The placement for this process, under the cgroup path `parent` (like
    /// `/isotest.slice`) or else its own cgroup; why not when the layout
    /// cannot be read.
    pub fn find(parent: Option<&Path>) -> Result<CgroupPlacement, String> {
        Ok(CgroupPlacement::of(&layout::own_layout()?, parent))
    }

    pub(super) fn of(layout: &Layout, parent: Option<&Path>) -> CgroupPlacement {
        let mounts = CgroupMounts {
            layout: layout.kind(),
            cgroup2: layout.v2.as_ref().map(|tree| tree.mount.clone()),
        };
        let parents =
            if layout.v1_hierarchy("memory").is_some() || layout.v1_hierarchy("pids").is_some() {
                let dir = |controller: &'static str| {
                    let hierarchy = layout.v1_hierarchy(controller);
                    (
                        controller,
                        hierarchy.map(|h| parent_dir(&h.mount, &h.own_path, parent)),
                    )
                };
                TestParents::V1(V1_CONTROLLERS.map(dir).into())
            } else if let Some(tree) = &layout.v2 {
                let dir = parent_dir(&tree.mount, &tree.own_path, parent);
                TestParents::V2 {
                    is_root: dir == tree.mount,
                    dir,
                }
            } else {
                TestParents::Unusable
            };
        CgroupPlacement { mounts, parents }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::cgroup::layout::{V1Hierarchy, V2Tree};

    fn hierarchy(controllers: &[&str], own_path: &str) -> V1Hierarchy {
        V1Hierarchy {
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            mount: format!("/sys/fs/cgroup/{}", controllers.join(",")).into(),
            own_path: own_path.into(),
        }
    }

    #[test]
    fn hybrid_hosts_use_v1_under_the_own_cgroup() {
        let layout = Layout {
            v1: vec![
                hierarchy(&["memory"], "user.slice"),
                hierarchy(&["cpu", "cpuacct"], ""),
                hierarchy(&["pids"], "user.slice"),
            ],
            v2: Some(V2Tree {
                mount: "/sys/fs/cgroup/unified".into(),
                own_path: "user.slice".into(),
            }),
        };
        let placement = CgroupPlacement::of(&layout, None);
        assert_eq!(placement.mounts.layout, LayoutKind::Hybrid);
        assert_eq!(
            placement.mounts.cgroup2,
            Some("/sys/fs/cgroup/unified".into())
        );
        let TestParents::V1(dirs) = placement.parents else {
            panic!("v1 expected: {:?}", placement.parents);
        };
        let dir = |c| TestParents::v1(&dirs, c);
        assert_eq!(
            dir("memory"),
            Some("/sys/fs/cgroup/memory/user.slice".into())
        );
        let cpu = dir("cpu").unwrap();
        assert_eq!(
            cpu.to_str(),
            Some("/sys/fs/cgroup/cpu,cpuacct"),
            "no trailing /"
        );
        assert_eq!(dir("cpuacct"), Some(cpu));
        assert_eq!(dir("freezer"), None);
        assert_eq!(dirs.len(), V1_CONTROLLERS.len());
    }

    #[test]
    fn v2_hosts_use_the_given_parent_or_the_own_cgroup() {
        let layout = |own_path: &str| Layout {
            v1: vec![hierarchy(&["cpuset"], "")],
            v2: Some(V2Tree {
                mount: "/sys/fs/cgroup".into(),
                own_path: own_path.into(),
            }),
        };
        let parents = |own_path, parent: Option<&str>| {
            CgroupPlacement::of(&layout(own_path), parent.map(Path::new)).parents
        };
        assert_eq!(
            parents("user.slice/session-2.scope", None),
            TestParents::V2 {
                dir: "/sys/fs/cgroup/user.slice/session-2.scope".into(),
                is_root: false
            }
        );
        assert_eq!(
            parents("user.slice", Some("/isotest.slice")),
            TestParents::V2 {
                dir: "/sys/fs/cgroup/isotest.slice".into(),
                is_root: false
            }
        );
        let TestParents::V2 { dir, is_root } = parents("", None) else {
            panic!("v2 expected");
        };
        assert_eq!((dir.to_str(), is_root), (Some("/sys/fs/cgroup"), true));
    }

    #[test]
    fn no_cgroups_no_placement() {
        let layout = Layout {
            v1: Vec::new(),
            v2: None,
        };
        let placement = CgroupPlacement::of(&layout, None);
        assert_eq!(placement.mounts.layout, LayoutKind::None);
        assert_eq!(placement.parents, TestParents::Unusable);
    }
}
