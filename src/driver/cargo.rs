//! `isotest cargo`: builds a workspace's test binaries with
//! `cargo test --no-run --message-format json-render-diagnostics` (cargo's
//! progress stays on stderr), lists each binary's cases with
//! `--list --format terse` (and `--ignored` for the ignored ones), and makes
//! each case the command `BINARY --exact NAME --nocapture --test-threads 1`,
//! run in its package's directory with the environment cargo gives tests.
//! Names follow nextest: `mycrate::api tests::creates_user`. A binary that
//! does not answer `--list` (a custom harness) is one test, run whole.
//! Doctests are not run: rustdoc builds them only when it runs them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{in_parallel, listing, output, sourced, Discovered, DriverError};
use crate::config::Settings;
use crate::discover::{Program, TestCase};
use crate::plan::DriverCase;
use crate::protocol::Harness;

const DRIVER: &str = "cargo";

/// How to call cargo: the program, and the arguments of
/// `cargo test --no-run` (package and target selection, features,
/// profile) and of `cargo metadata` (manifest path, offline/locked).
pub struct CargoOptions {
    pub cargo: PathBuf,
    /// `--target-dir`, which `cargo metadata` does not take.
    pub target_dir: Option<PathBuf>,
    pub build_args: Vec<String>,
    pub metadata_args: Vec<String>,
}

/// A package, from `cargo metadata`.
struct Package {
    name: String,
    dir: PathBuf,
    /// `CARGO_PKG_*` and `CARGO_MANIFEST_*`, as cargo sets them.
    env: Vec<(String, String)>,
}

/// A test binary, from the build's messages.
struct TestBinary {
    package_id: String,
    /// `lib`, `bin`, `test`, `example`, `bench` (`proc-macro` and the
    /// library crate types count as `lib`).
    kind: String,
    target: String,
    executable: PathBuf,
}

/// What the build produced besides test binaries.
#[derive(Default)]
struct Build {
    tests: Vec<TestBinary>,
    /// Each package's binaries, for `CARGO_BIN_EXE_<name>`.
    bins: HashMap<String, Vec<(String, PathBuf)>>,
    /// Each package's build-script `OUT_DIR`.
    out_dirs: HashMap<String, PathBuf>,
}

/// Builds and lists; cases in build order, then listing order.
pub fn discover(options: &CargoOptions) -> Result<Discovered, DriverError> {
    let (root, target_dir, packages) = metadata(options)?;
    let target_dir = options.target_dir.clone().unwrap_or(target_dir);
    let build = build(options)?;
    let cargo = options.cargo.to_string_lossy().into_owned();
    let binaries = build
        .tests
        .iter()
        .map(|binary| {
            let package = packages
                .get(&binary.package_id)
                .ok_or_else(|| DriverError::Output {
                    command: "cargo test --no-run".into(),
                    message: format!(
                        "package {} of {} is not in `cargo metadata`",
                        binary.package_id,
                        binary.executable.display()
                    ),
                })?;
            let env = environment(package, binary, &build, &target_dir, &cargo);
            Ok((binary, package, env))
        })
        .collect::<Result<Vec<_>, DriverError>>()?;
    let listings = in_parallel(&binaries, |(binary, package, env)| {
        list(&binary.executable, &package.dir, env)
    });
    let mut cases = Vec::new();
    for ((binary, package, env), listing) in binaries.iter().zip(listings) {
        cases.extend(binary_cases(binary, package, env, &target_dir, listing?));
    }
    let mut config_dirs = vec![root.clone()];
    config_dirs.extend(packages.values().map(|p| p.dir.clone()));
    Ok(Discovered {
        root,
        config_dirs,
        cases,
    })
}

/// The workspace root, the target directory and the workspace's packages
/// by id, from `cargo metadata --no-deps`.
fn metadata(
    options: &CargoOptions,
) -> Result<(PathBuf, PathBuf, HashMap<String, Package>), DriverError> {
    let mut command = Command::new(&options.cargo);
    command.args(["metadata", "--format-version", "1", "--no-deps"]);
    command.args(&options.metadata_args);
    let shown = super::shown(&command);
    let out = output(command, true)?;
    let bad = |message: &str| DriverError::Output {
        command: shown.clone(),
        message: message.to_string(),
    };
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| bad(&e.to_string()))?;
    let path = |key: &str| {
        json[key]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| bad(&format!("no `{key}`")))
    };
    let root = path("workspace_root")?;
    let target_dir = path("target_directory")?;
    let packages = json["packages"]
        .as_array()
        .ok_or_else(|| bad("no `packages`"))?
        .iter()
        .filter_map(package)
        .collect();
    Ok((root, target_dir, packages))
}

/// One package of `cargo metadata`, by id.
fn package(json: &Value) -> Option<(String, Package)> {
    let text = |key: &str| json[key].as_str().unwrap_or_default().to_string();
    let manifest = PathBuf::from(json["manifest_path"].as_str()?);
    let dir = manifest.parent()?.to_path_buf();
    let version = text("version");
    let (core, pre) = version.split_once('-').unwrap_or((&version, ""));
    let mut numbers = core.split('.').map(|n| n.split('+').next().unwrap_or(n));
    let (major, minor, patch) = (numbers.next(), numbers.next(), numbers.next());
    let authors: Vec<&str> = json["authors"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Cargo gives license_file and readme relative to the package.
    let relative = |key: &str| {
        json[key]
            .as_str()
            .map(|p| dir.join(p).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let env = vec![
        ("CARGO_MANIFEST_DIR", dir.to_string_lossy().into_owned()),
        (
            "CARGO_MANIFEST_PATH",
            manifest.to_string_lossy().into_owned(),
        ),
        ("CARGO_PKG_NAME", text("name")),
        ("CARGO_PKG_VERSION", version.clone()),
        ("CARGO_PKG_VERSION_MAJOR", major.unwrap_or("").to_string()),
        ("CARGO_PKG_VERSION_MINOR", minor.unwrap_or("").to_string()),
        ("CARGO_PKG_VERSION_PATCH", patch.unwrap_or("").to_string()),
        ("CARGO_PKG_VERSION_PRE", pre.to_string()),
        ("CARGO_PKG_AUTHORS", authors.join(":")),
        ("CARGO_PKG_DESCRIPTION", text("description")),
        ("CARGO_PKG_HOMEPAGE", text("homepage")),
        ("CARGO_PKG_REPOSITORY", text("repository")),
        ("CARGO_PKG_LICENSE", text("license")),
        ("CARGO_PKG_LICENSE_FILE", relative("license_file")),
        ("CARGO_PKG_RUST_VERSION", text("rust_version")),
        ("CARGO_PKG_README", relative("readme")),
    ];
    let package = Package {
        name: text("name"),
        dir,
        env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    Some((text("id"), package))
}

/// Runs the build, reading its JSON messages as they come.
fn build(options: &CargoOptions) -> Result<Build, DriverError> {
    let mut command = Command::new(&options.cargo);
    command.args([
        "test",
        "--no-run",
        "--message-format",
        "json-render-diagnostics",
    ]);
    command.args(&options.build_args);
    let out = output(command, false)?;
    let mut build = Build::default();
    for line in out.stdout.split(|&b| b == b'\n') {
        let Ok(message) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        read_message(&message, &mut build);
    }
    Ok(build)
}

/// Takes what matters from one build message.
fn read_message(message: &Value, build: &mut Build) {
    let package_id = message["package_id"].as_str().unwrap_or_default();
    match message["reason"].as_str() {
        Some("build-script-executed") => {
            if let Some(out_dir) = message["out_dir"].as_str() {
                build
                    .out_dirs
                    .insert(package_id.to_string(), PathBuf::from(out_dir));
            }
        }
        Some("compiler-artifact") => {
            let Some(executable) = message["executable"].as_str() else {
                return;
            };
            let target = &message["target"];
            let name = target["name"].as_str().unwrap_or_default().to_string();
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let kind = match kinds.first() {
                Some(&k @ ("bin" | "test" | "example" | "bench")) => k,
                _ => "lib",
            };
            if message["profile"]["test"].as_bool() == Some(true) {
                build.tests.push(TestBinary {
                    package_id: package_id.to_string(),
                    kind: kind.to_string(),
                    target: name,
                    executable: PathBuf::from(executable),
                });
            } else if kind == "bin" {
                build
                    .bins
                    .entry(package_id.to_string())
                    .or_default()
                    .push((name, PathBuf::from(executable)));
            }
        }
        _ => {}
    }
}

/// nextest's binary id: `pkg` for the library's unit tests, `pkg::NAME`
/// for an integration test, `pkg::bin/NAME`, `pkg::example/NAME`,
/// `pkg::bench/NAME`.
fn binary_id(package: &str, kind: &str, target: &str) -> String {
    match kind {
        "lib" => package.to_string(),
        "test" => format!("{package}::{target}"),
        other => format!("{package}::{other}/{target}"),
    }
}

/// The environment cargo (and nextest) give a test binary at run time.
fn environment(
    package: &Package,
    binary: &TestBinary,
    build: &Build,
    target_dir: &Path,
    cargo: &str,
) -> Vec<(String, String)> {
    let mut env = package.env.clone();
    env.push(("CARGO".into(), cargo.to_string()));
    env.push(("CARGO_CRATE_NAME".into(), binary.target.replace('-', "_")));
    if binary.kind == "bin" {
        env.push(("CARGO_BIN_NAME".into(), binary.target.clone()));
    }
    if matches!(binary.kind.as_str(), "test" | "bench") {
        let tmp = target_dir.join("tmp");
        env.push((
            "CARGO_TARGET_TMPDIR".into(),
            tmp.to_string_lossy().into_owned(),
        ));
    }
    for (name, path) in build.bins.get(&binary.package_id).into_iter().flatten() {
        env.push((
            format!("CARGO_BIN_EXE_{name}"),
            path.to_string_lossy().into_owned(),
        ));
    }
    if let Some(out_dir) = build.out_dirs.get(&binary.package_id) {
        env.push(("OUT_DIR".into(), out_dir.to_string_lossy().into_owned()));
    }
    env
}

/// What a binary said it holds.
#[derive(Debug, PartialEq, Eq)]
enum Listing {
    /// Its cases, and whether each is ignored.
    Cases(Vec<(String, bool)>),
    /// It did not answer `--list`: run it whole.
    Whole,
}

/// `BINARY --list --format terse`, then the same with `--ignored`.
fn list(binary: &Path, dir: &Path, env: &[(String, String)]) -> Result<Listing, DriverError> {
    let run = |ignored: bool| -> Result<Option<Vec<String>>, DriverError> {
        let mut command = Command::new(binary);
        command.args(["--list", "--format", "terse"]);
        if ignored {
            command.arg("--ignored");
        }
        command
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)));
        Ok(listing(command)?.and_then(|text| parse_terse(&text)))
    };
    let Some(all) = run(false)? else {
        return Ok(Listing::Whole);
    };
    // An empty terse listing is a harness with no cases, or a custom one
    // that printed nothing; libtest's plain listing tells them apart.
    if all.is_empty() {
        let mut command = Command::new(binary);
        command
            .arg("--list")
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)));
        if !listing(command)?.is_some_and(|text| counts_no_tests(&text)) {
            return Ok(Listing::Whole);
        }
    }
    let ignored = run(true)?.unwrap_or_default();
    Ok(Listing::Cases(
        all.into_iter()
            .map(|name| {
                let is_ignored = ignored.contains(&name);
                (name, is_ignored)
            })
            .collect(),
    ))
}

/// The tests of a terse listing (`NAME: test`; benchmarks, `NAME: bench`
/// or criterion's `NAME: benchmark`, left out); None when a line is not
/// of that form (the binary ignored `--list`).
fn parse_terse(text: &str) -> Option<Vec<String>> {
    let mut tests = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(name) = line.strip_suffix(": test") {
            tests.push(name.to_string());
        } else if !(line.ends_with(": bench") || line.ends_with(": benchmark")) {
            return None;
        }
    }
    Some(tests)
}

/// Whether a plain `--list` said `0 tests, 0 benchmarks`, as libtest and
/// libtest-mimic do for a binary without cases.
fn counts_no_tests(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        line.starts_with("0 tests, ") && line.ends_with(" benchmarks")
    })
}

/// The binary's cases, or the binary as one case.
fn binary_cases(
    binary: &TestBinary,
    package: &Package,
    env: &[(String, String)],
    target_dir: &Path,
    listing: Listing,
) -> Vec<DriverCase> {
    let id = binary_id(&package.name, &binary.kind, &binary.target);
    let exe = binary.executable.to_string_lossy().into_owned();
    let settings = Settings {
        env: env
            .iter()
            .map(|(k, v)| (k.clone(), sourced(v.clone(), DRIVER)))
            .collect(),
        ..Settings::default()
    };
    let case = |name: String, argv: Vec<String>, harness| DriverCase {
        case: TestCase {
            name,
            suite: id.clone(),
            program: Program::Command(argv),
            dir: package.dir.clone(),
            tags: Vec::new(),
            default_dir: false,
            harness,
            // The binaries, CARGO_BIN_EXE_ programs, OUT_DIR and
            // CARGO_TARGET_TMPDIR live there.
            host_dirs: vec![target_dir.to_path_buf()],
        },
        config_dir: package.dir.clone(),
        settings: settings.clone(),
    };
    let names = match listing {
        Listing::Whole => return vec![case(id.clone(), vec![exe], None)],
        Listing::Cases(names) => names,
    };
    names
        .into_iter()
        .map(|(name, ignored)| {
            let mut argv = vec![exe.clone(), "--exact".into(), name.clone()];
            argv.extend(["--nocapture", "--test-threads", "1"].map(String::from));
            if ignored {
                argv.push("--ignored".into());
            }
            let mut found = case(format!("{id} {name}"), argv, Some(Harness::Libtest(name)));
            if ignored {
                found.settings.ignore = Some(sourced(true, DRIVER));
                found.settings.ignore_reason = Some(sourced("#[ignore]".into(), DRIVER));
            }
            found
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_ids_follow_nextest() {
        assert_eq!(binary_id("mycrate", "lib", "mycrate"), "mycrate");
        assert_eq!(binary_id("mycrate", "test", "api"), "mycrate::api");
        assert_eq!(binary_id("mycrate", "bin", "tool"), "mycrate::bin/tool");
        assert_eq!(
            binary_id("my-crate", "example", "demo"),
            "my-crate::example/demo"
        );
        assert_eq!(
            binary_id("my-crate", "bench", "speed"),
            "my-crate::bench/speed"
        );
    }

    #[test]
    fn terse_listings() {
        assert_eq!(
            parse_terse("tests::a: test\ntests::b: test\nbench_x: bench\ngroup/c: benchmark\n"),
            Some(vec!["tests::a".to_string(), "tests::b".to_string()])
        );
        assert_eq!(parse_terse(""), Some(vec![]));
        assert_eq!(parse_terse("running custom harness\nall good\n"), None);
        assert!(counts_no_tests("\n0 tests, 0 benchmarks\n"));
        assert!(!counts_no_tests(""));
        assert!(!counts_no_tests("2 tests, 0 benchmarks\n"));
    }

    #[test]
    fn build_messages_give_tests_bins_and_out_dirs() {
        let mut build = Build::default();
        let messages = [
            r#"{"reason":"compiler-artifact","package_id":"p 0.1.0","target":{"kind":["lib"],"name":"p"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"compiler-artifact","package_id":"p 0.1.0","target":{"kind":["bin"],"name":"tool"},"profile":{"test":false},"executable":"/t/tool"}"#,
            r#"{"reason":"compiler-artifact","package_id":"p 0.1.0","target":{"kind":["test"],"name":"api"},"profile":{"test":true},"executable":"/t/api-1"}"#,
            r#"{"reason":"compiler-artifact","package_id":"p 0.1.0","target":{"kind":["proc-macro"],"name":"p"},"profile":{"test":true},"executable":"/t/p-2"}"#,
            r#"{"reason":"build-script-executed","package_id":"p 0.1.0","out_dir":"/t/out"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ];
        for message in messages {
            read_message(&serde_json::from_str(message).unwrap(), &mut build);
        }
        let tests: Vec<(&str, &str)> = build
            .tests
            .iter()
            .map(|t| (t.kind.as_str(), t.target.as_str()))
            .collect();
        assert_eq!(tests, [("test", "api"), ("lib", "p")]);
        assert_eq!(
            build.bins["p 0.1.0"],
            [("tool".to_string(), PathBuf::from("/t/tool"))]
        );
        assert_eq!(build.out_dirs["p 0.1.0"], PathBuf::from("/t/out"));
    }

    #[test]
    fn package_environment_is_cargos() {
        let json = serde_json::json!({
            "id": "path+file:///w/a#0.2.3-beta.1",
            "name": "a",
            "version": "0.2.3-beta.1",
            "authors": ["A <a@x>", "B"],
            "manifest_path": "/w/a/Cargo.toml",
            "license_file": "LICENSE",
        });
        let (id, package) = package(&json).unwrap();
        assert_eq!(id, "path+file:///w/a#0.2.3-beta.1");
        let get = |key: &str| {
            package
                .env
                .iter()
                .find(|(k, _)| k == key)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(get("CARGO_MANIFEST_DIR"), "/w/a");
        assert_eq!(get("CARGO_PKG_VERSION_MAJOR"), "0");
        assert_eq!(get("CARGO_PKG_VERSION_PATCH"), "3");
        assert_eq!(get("CARGO_PKG_VERSION_PRE"), "beta.1");
        assert_eq!(get("CARGO_PKG_AUTHORS"), "A <a@x>:B");
        assert_eq!(get("CARGO_PKG_LICENSE_FILE"), "/w/a/LICENSE");
        assert_eq!(get("CARGO_PKG_DESCRIPTION"), "");
    }
}
