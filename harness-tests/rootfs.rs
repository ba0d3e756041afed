//! Root filesystems other than the host's, built by the trials themselves
//! from the host's busybox (no network): a tarball, a two-layer OCI image
//! layout (a whiteout and an opaque directory), a minimal `tools` root, and
//! broken ones (a truncated tarball, an entry escaping the root, a layer
//! whose digest is wrong), each an ERROR for its tests while the run goes
//! on and the cache keeps nothing half-made.

use std::path::Path;
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::support::{self, Finished};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("rootfs::tarball_root", tarball_root),
        Trial::test("rootfs::oci_layers_merge", oci_layers_merge),
        Trial::test("rootfs::tools_root_holds_only_what_is_declared", tools_root),
        Trial::test("rootfs::broken_roots_are_errors", broken_roots),
        Trial::test("rootfs::scratch_dir_holds_writes", scratch_dir),
        Trial::test("rootfs::overlay_refused_names_bind_mode", overlay_refused),
    ]
}

/// Builds, under `dir`: base/ (busybox and a few files), base.tar.gz, an OCI
/// layout oci/ (tag v1) whose second layer deletes /etc/deleted with a
/// whiteout, makes /data opaque and replaces /etc/marker, and broken
/// copies: truncated.tar.gz, escape.tar, oci-bad/ (a layer one byte off).
const BUILD_IMAGES: &str = r#"
set -eu
w=$1
busybox=$(command -v busybox)
mkdir -p $w/base/bin $w/base/etc $w/base/data/old
cp "$busybox" $w/base/bin/busybox
for c in sh ls cat echo test touch rm mkdir grep wc tr sleep id; do ln -s busybox $w/base/bin/$c; done
echo base > $w/base/etc/marker
echo doomed > $w/base/etc/deleted
echo old > $w/base/data/old/file
tar -C $w/base -czf $w/base.tar.gz .

mkdir -p $w/l2/etc $w/l2/data $w/oci/blobs/sha256
touch $w/l2/etc/.wh.deleted $w/l2/data/.wh..wh..opq
echo new > $w/l2/data/new
echo top > $w/l2/etc/marker
tar -C $w/base -cf $w/l1.tar .
tar -C $w/l2 -czf $w/l2.tar.gz .
blob() { d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" $w/oci/blobs/sha256/$d; echo $d; }
size() { stat -c %s "$1"; }
l1=$(blob $w/l1.tar)
l2=$(blob $w/l2.tar.gz)
d2=$(gzip -dc $w/l2.tar.gz | sha256sum | cut -d' ' -f1)
cat > $w/config.json <<JSON
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","IMAGE_VAR=from-config"]},"rootfs":{"type":"layers","diff_ids":["sha256:$l1","sha256:$d2"]}}
JSON
c=$(blob $w/config.json)
cat > $w/manifest.json <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$c","size":$(size $w/config.json)},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$l1","size":$(size $w/l1.tar)},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$l2","size":$(size $w/l2.tar.gz)}]}
JSON
m=$(blob $w/manifest.json)
echo '{"imageLayoutVersion":"1.0.0"}' > $w/oci/oci-layout
cat > $w/oci/index.json <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$m","size":$(size $w/manifest.json),"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}
JSON

cp -r $w/oci $w/oci-bad
printf x >> $w/oci-bad/blobs/sha256/$l2
head -c 300 $w/base.tar.gz > $w/truncated.tar.gz
mkdir -p $w/evil
echo x > $w/evil/f
tar -C $w/evil -P --transform 's,^f$,../isotest-escaped-entry,' -cf $w/escape.tar f
"#;

fn build_images(dir: &Path) -> Result<(), Failed> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(BUILD_IMAGES)
        .arg("build-images")
        .arg(dir)
        .status()?;
    if !status.success() {
        return Err(format!("building the test images failed: {status}").into());
    }
    Ok(())
}

/// `isotest run` with a private cache in `work`.
fn run(work: &Path, args: &[&str]) -> Result<Finished, Failed> {
    let mut command = support::isotest();
    command
        .arg("run")
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .args(args);
    Ok(support::run(command)?)
}

fn expect(finished: &Finished, code: i32, what: &str) -> Result<(), Failed> {
    if finished.code != code {
        return Err(format!(
            "{what}: expected exit {code}\nisotest {}",
            finished.describe()
        )
        .into());
    }
    Ok(())
}

fn prepared_notes(finished: &Finished) -> usize {
    finished.stderr.matches("prepared in the cache").count()
}

/// Eight tests at -j8, each writing a file of its own to `/` and then
/// checking that it sees no other test's file.
fn private_writers() -> Vec<(String, String)> {
    (1..=8)
        .map(|k| {
            let script = format!(
                "#!/bin/sh\necho {k} > /written-by-{k}\nsleep 0.3\n\
                 [ \"$(ls / | grep -c written-by-)\" = 1 ] || {{ echo \"FAILED: sees $(ls / | grep written-by-)\"; exit 1; }}\n"
            );
            (format!("writes_{k}.sh"), script)
        })
        .collect()
}

fn suite_with(extra: &[(&str, &str)]) -> Result<tempfile::TempDir, Failed> {
    let writers = private_writers();
    let mut tests: Vec<(&str, &str)> = writers
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    tests.extend_from_slice(extra);
    Ok(support::suite(&tests)?)
}

/// A tarball root: the test sees the tarball's files, not the host's;
/// writes vanish and stay private at -j8; the tarball is unpacked once
/// (the second run is a cache hit) and the host is untouched. The same
/// tests pass on the unpacked directory as a root.
fn tarball_root() -> Result<(), Failed> {
    support::require_root()?;
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    build_images(work.path())?;
    let suite = suite_with(&[(
        "sees_base.sh",
        "#!/bin/sh\n[ \"$(cat /etc/marker)\" = base ] && [ -e /etc/deleted ] && [ ! -e /usr/bin/env ] \
         || { echo \"FAILED: not the tarball's root\"; ls /; exit 1; }\n",
    )])?;
    let image = work.path().join("base.tar.gz");
    let args = [
        "-j8",
        "--rootfs",
        image.to_str().unwrap(),
        suite.path().to_str().unwrap(),
    ];
    let first = run(work.path(), &args)?;
    expect(&first, 0, "first run on the tarball")?;
    let second = run(work.path(), &args)?;
    expect(&second, 0, "second run on the tarball")?;
    if (prepared_notes(&first), prepared_notes(&second)) != (1, 0) {
        return Err(format!(
            "expected one unpack, then a cache hit\nfirst: {}\nsecond: {}",
            first.stderr, second.stderr
        )
        .into());
    }
    // The same suite on the unpacked directory itself: no cache involved,
    // and the directory is left as it was.
    let base = work.path().join("base");
    let args = [
        "-j8",
        "--rootfs",
        base.to_str().unwrap(),
        suite.path().to_str().unwrap(),
    ];
    let on_dir = run(work.path(), &args)?;
    expect(&on_dir, 0, "the same tests on a directory root")?;
    if prepared_notes(&on_dir) != 0 {
        return Err(format!("a directory root went through the cache\n{}", on_dir.stderr).into());
    }
    if Path::new("/written-by-1").exists() || base.join("written-by-1").exists() {
        return Err("a test's write reached the host".into());
    }
    Ok(())
}

/// A two-layer OCI layout: the merged view (whiteout, opaque directory, the
/// top layer's file winning), the image config's Env; private writes at
/// -j8; layers unpacked once (rootless: flattened into one, once).
fn oci_layers_merge() -> Result<(), Failed> {
    support::require_root()?;
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    build_images(work.path())?;
    let suite = suite_with(&[(
        "merged.sh",
        "#!/bin/sh\nfail() { echo \"FAILED: $*\"; exit 1; }\n\
         [ \"$(cat /etc/marker)\" = top ] || fail \"/etc/marker is not the top layer's\"\n\
         [ ! -e /etc/deleted ] || fail \"the whiteout did not hide /etc/deleted\"\n\
         [ ! -e /data/old ] || fail \"/data is not opaque\"\n\
         [ \"$(cat /data/new)\" = new ] || fail \"/data/new missing\"\n\
         [ \"$IMAGE_VAR\" = from-config ] || fail \"the image's Env is missing\"\n",
    )])?;
    let image = format!("{}:v1", work.path().join("oci").display());
    let args = ["-j8", "--rootfs", &image, suite.path().to_str().unwrap()];
    let first = run(work.path(), &args)?;
    expect(&first, 0, "first run on the OCI layout")?;
    let second = run(work.path(), &args)?;
    expect(&second, 0, "second run on the OCI layout")?;
    if (prepared_notes(&first), prepared_notes(&second)) != (1, 0) {
        return Err(format!(
            "expected the layers unpacked once, then a cache hit\nfirst: {}\nsecond: {}",
            first.stderr, second.stderr
        )
        .into());
    }
    let mut list = support::isotest();
    list.args(["cache", "list", "--cache-dir"])
        .arg(work.path().join("cache"));
    let listed = support::run(list)?;
    // Rootless, whiteouts cannot be made: the layers are applied onto one.
    let two_layers = if support::rootless_lane() {
        listed.stdout.contains("2 layers flattened")
    } else {
        listed.stdout.matches("\nlayer ").count() == 2
    };
    if listed.code != 0 || !two_layers {
        return Err(format!(
            "`cache list` does not show the two layers\n{}",
            listed.describe()
        )
        .into());
    }
    Ok(())
}

/// A root of `sh` and `ls` only: `ls /` shows the minimal tree, a program
/// not declared is not found (the test fails honestly), and the same
/// passing test passes on the host root too.
fn tools_root() -> Result<(), Failed> {
    support::require_root()?;
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let suite = support::suite(&[
        (
            "uses_declared.sh",
            "#!/bin/sh\nls / > /dev/null && sh -c 'exit 0'\n",
        ),
        (
            "minimal_tree.sh",
            // Nothing but the minimal tree and the top directory of the
            // suite's own path, bound there.
            "#!/bin/sh\nd=${0#/}\ntop=${d%%/*}\nextra=\n\
             for e in $(ls /); do case \" bin dev etc lib lib64 proc root sbin sys tmp usr $top \" in \
             *\" $e \"*) ;; *) extra=\"$extra $e\" ;; esac; done\n\
             [ -z \"$extra\" ] || { echo \"FAILED: / also holds$extra\"; exit 1; }\n\
             for e in bin etc lib usr; do [ -d /$e ] || { echo \"FAILED: no /$e\"; exit 1; }; done\n",
        ),
        ("uses_undeclared.sh", "#!/bin/sh\nhead -n 1 /etc/passwd\n"),
    ])?;
    let dir = suite.path().to_str().unwrap();
    let finished = run(work.path(), &["--tools", "sh,ls", dir])?;
    expect(&finished, 100, "the tools root")?;
    let lines = |status: &str, name: &str| {
        finished
            .stdout
            .lines()
            .any(|l| l.contains(status) && l.contains(name))
    };
    if !lines("PASS", "uses_declared.sh")
        || !lines("PASS", "minimal_tree.sh")
        || !lines("FAIL", "uses_undeclared.sh")
        || !finished.stdout.contains("head: not found")
    {
        return Err(format!(
            "unexpected results in the tools root\n{}",
            finished.describe()
        )
        .into());
    }
    let on_host = run(work.path(), &[&format!("{dir}/uses_declared.sh")])?;
    expect(&on_host, 0, "the same test on the host root")?;
    Ok(())
}

/// Broken roots: a truncated tarball, an entry escaping the root and a
/// layer whose digest is wrong are ERRORs naming the problem for the tests
/// that use them; a test on the host root passes in the same run; nothing
/// escaped, and the cache holds no temp dirs and no entry for them.
fn broken_roots() -> Result<(), Failed> {
    support::require_root()?;
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    build_images(work.path())?;
    let w = work.path().display().to_string();
    let config = |rootfs: &str| format!("rootfs = \"{rootfs}\"\n");
    let test = "#!/bin/sh\necho \"FAILED: ran on a broken root\"\nexit 1\n";
    let suite = support::suite(&[
        (
            "truncated/isotest.toml",
            &config(&format!("{w}/truncated.tar.gz")),
        ),
        ("truncated/t.sh", test),
        ("escape/isotest.toml", &config(&format!("{w}/escape.tar"))),
        ("escape/t.sh", test),
        ("digest/isotest.toml", &config(&format!("{w}/oci-bad:v1"))),
        ("digest/t.sh", test),
        ("host.sh", "#!/bin/sh\nexit 0\n"),
    ])?;
    let finished = run(work.path(), &["-j1", suite.path().to_str().unwrap()])?;
    expect(&finished, 100, "a run with broken roots")?;
    let mut problems = Vec::new();
    for (name, words) in [
        ("truncated/t.sh", "truncated"),
        ("escape/t.sh", "isotest-escaped-entry"),
        ("digest/t.sh", "digest"),
    ] {
        let line = finished.stdout.lines().find(|l| l.contains(name));
        if !line.is_some_and(|l| l.contains("ERROR") && l.to_lowercase().contains(words)) {
            problems.push(format!(
                "{name}: expected an ERROR mentioning {words:?}: {line:?}"
            ));
        }
    }
    if !finished
        .stdout
        .lines()
        .any(|l| l.contains("PASS") && l.contains("host.sh"))
    {
        problems.push("host.sh did not pass".into());
    }
    if work.path().join("isotest-escaped-entry").exists() {
        problems.push("the escaping entry was written outside the root".into());
    }
    let cache = work.path().join("cache");
    let temp_left = std::fs::read_dir(cache.join("tmp"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    if temp_left > 0 {
        problems.push(format!("{temp_left} temp dirs left in the cache"));
    }
    if cache
        .join("tarball")
        .read_dir()
        .is_ok_and(|mut e| e.next().is_some())
    {
        problems.push("a broken tarball has a cache entry".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nisotest {}", problems.join("\n"), finished.describe()).into())
    }
}

/// `--scratch DIR`: a test's writes land in a directory of its own under
/// DIR while it runs and are gone after; what a dead runner left there is
/// removed, with a note; `disk` and `--scratch` together are an ERROR.
fn scratch_dir() -> Result<(), Failed> {
    support::require_root()?;
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let scratch = work.path().join("scratch");
    // A dead runner's leftover (pid 2^22 + 1 is beyond pid_max's ceiling).
    let stale = scratch.join("isotest-scratch-4194305-0/upper");
    std::fs::create_dir_all(&stale)?;
    let suite = support::suite(&[
        (
            "writes.sh",
            "#!/bin/sh\ndd if=/dev/zero of=/var/big bs=1M count=64 status=none || exit 1\n\
             [ \"$(stat -f -c %T /tmp)\" != tmpfs ] || { echo \"FAILED: /tmp is a tmpfs\"; exit 1; }\n",
        ),
        ("limited/isotest.toml", "disk = \"16M\"\n"),
        ("limited/t.sh", "#!/bin/sh\nexit 0\n"),
    ])?;
    let finished = run(
        work.path(),
        &[
            "--scratch",
            scratch.to_str().unwrap(),
            suite.path().to_str().unwrap(),
        ],
    )?;
    let mut problems = Vec::new();
    if finished.code != 100
        || !finished
            .stdout
            .lines()
            .any(|l| l.contains("PASS") && l.contains("writes.sh"))
    {
        problems.push("writes.sh did not pass with --scratch".to_string());
    }
    if !finished
        .stdout
        .lines()
        .any(|l| l.contains("ERROR") && l.contains("limited/t.sh") && l.contains("--scratch"))
    {
        problems.push("`disk` with --scratch is not an ERROR naming --scratch".to_string());
    }
    if !finished.stderr.contains("removed 1 scratch directories") {
        problems.push("no note about the removed leftover".to_string());
    }
    let left: Vec<_> = std::fs::read_dir(&scratch)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    if !left.is_empty() {
        problems.push(format!("left in the scratch directory: {left:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nisotest {}", problems.join("\n"), finished.describe()).into())
    }
}

/// A scratch space on overlayfs cannot hold an upper layer: the overlay
/// root is refused, and the ERROR says why and names rootfs_mode = "bind".
fn overlay_refused() -> Result<(), Failed> {
    support::require_root()?;
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let dirs = ["lower", "upper", "work", "merged"].map(|d| work.path().join(d));
    for dir in &dirs {
        std::fs::create_dir(dir)?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        dirs[0].display(),
        dirs[1].display(),
        dirs[2].display()
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "isotest-test", "-o", &options])
        .arg(&dirs[3])
        .status()?;
    if !status.success() {
        return Err(format!("mount an overlay for the scratch space: {status}").into());
    }
    let suite = support::suite(&[("t.sh", "#!/bin/sh\nexit 0\n")]);
    let finished = suite.map_err(Failed::from).and_then(|suite| {
        run(
            work.path(),
            &[
                "--scratch",
                dirs[3].to_str().unwrap(),
                suite.path().to_str().unwrap(),
            ],
        )
    });
    let _ = Command::new("umount").arg(&dirs[3]).status();
    let finished = finished?;
    let line = finished.stdout.lines().find(|l| l.contains("t.sh"));
    if finished.code != 100
        || !line.is_some_and(|l| {
            l.contains("ERROR") && l.contains("overlayfs") && l.contains("rootfs_mode = \"bind\"")
        })
    {
        return Err(format!(
            "expected an ERROR naming overlayfs and bind mode\nisotest {}",
            finished.describe()
        )
        .into());
    }
    Ok(())
}
