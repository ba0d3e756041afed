//! Maps a planned test's settings (plain config values) to the sandbox's
//! types: the container spec of one attempt, its limits, security and
//! root mode. The only place where config meets the sandbox.

use std::path::Path;

use super::environment::{test_environment, HOME};
use super::roots::Root;
use crate::config::{self, Network, Settings};
use crate::plan::PlannedTest;
use crate::sandbox::{
    resolve_capabilities, ExtraMount, Limits, RootMode, RootSpec, SandboxSpec, Security,
};

/// The container for one attempt of `test`, in `root`.
pub fn spec(test: &PlannedTest, root: &Root) -> SandboxSpec {
    let settings = &test.settings;
    let bytes = |path: &Path| path.as_os_str().as_encoded_bytes().to_vec();
    let dir = bytes(&test.case.dir);
    let on_host = root.layers.is_empty();
    let mode = root_mode(settings.rootfs_mode());
    let mut mounts = Vec::new();
    let starts_in_image_workdir = test.case.default_dir && root.working_dir.is_some();
    // The test's own directory (and what else it needs), at the same path:
    // a test file runs as it does on the host root. Parents come first.
    let mut host_dirs: Vec<Vec<u8>> = test.case.host_dirs.iter().map(|d| bytes(d)).collect();
    if !starts_in_image_workdir {
        host_dirs.push(dir.clone());
    }
    host_dirs.sort();
    host_dirs.dedup();
    if !on_host {
        mounts.extend(host_dirs.iter().map(|dir| ExtraMount::Bind {
            source: dir.clone(),
            target: dir.clone(),
            readonly: true,
        }));
    }
    for bind in &settings.binds {
        mounts.push(ExtraMount::Bind {
            source: bytes(&bind.value.source),
            target: bind.value.target.as_bytes().to_vec(),
            readonly: bind.value.readonly,
        });
    }
    let writable = settings.writable.iter().filter(|_| mode == RootMode::Bind);
    for path in settings.tmpfs.iter().chain(writable) {
        mounts.push(ExtraMount::Fresh {
            target: path.value.as_bytes().to_vec(),
        });
    }
    // An image's `User` may be `user:group`; the test's own settings win.
    let (image_user, image_group) = match root.user.as_deref().map(|u| u.split_once(':')) {
        Some(Some((user, group))) => (Some(user), Some(group)),
        Some(None) => (root.user.as_deref(), None),
        None => (None, None),
    };
    let (user, group) = match settings.user() {
        Some(user) => (Some(user), settings.group()),
        None => (image_user, settings.group().or(image_group)),
    };
    // A `[[test]]` without `cwd` starts in the image's WorkingDir.
    let cwd = match &root.working_dir {
        Some(workdir) if test.case.default_dir => workdir.as_bytes().to_vec(),
        _ => dir.clone(),
    };
    SandboxSpec {
        argv: test.case.argv(),
        env: test_environment(&test.case.name, settings, &root.env),
        cwd,
        hostname: settings.hostname().to_string(),
        host_network: settings.network() == Network::Host,
        network: None,
        user: user.filter(|u| !u.is_empty()).map(str::to_string),
        group: group.filter(|g| !g.is_empty()).map(str::to_string),
        home: HOME.as_bytes().to_vec(),
        visible_host_dirs: if on_host { host_dirs } else { Vec::new() },
        timeout: settings.timeout(),
        grace: settings.grace(),
        limits: limits(test),
        security: security(settings),
        root: RootSpec {
            layers: root.layers.iter().map(|l| bytes(l)).collect(),
            mode,
        },
        mounts,
        disk_bytes: settings.disk(),
        scratch_dir: None,
        user_namespace: None,
    }
}

pub fn limits(test: &PlannedTest) -> Limits {
    Limits {
        memory_bytes: test.settings.memory(),
        cpus: test.settings.cpus(),
        cpu_weight: test.settings.cpu_weight(),
        pids: test.settings.pids(),
    }
}

/// The sandbox's security settings of a resolved layer.
fn security(settings: &Settings) -> Security {
    let names =
        |list: &[config::Sourced<String>]| list.iter().map(|c| c.value.clone()).collect::<Vec<_>>();
    Security {
        privileged: settings.privileged(),
        capabilities: resolve_capabilities(&names(&settings.cap_add), &names(&settings.cap_drop)),
        seccomp: settings.seccomp(),
        nofile: settings.nofile(),
        nproc: None,
    }
}

fn root_mode(mode: config::RootMode) -> RootMode {
    match mode {
        config::RootMode::Overlay => RootMode::Overlay,
        config::RootMode::Bind => RootMode::Bind,
    }
}
