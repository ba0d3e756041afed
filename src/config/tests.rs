//! Unit tests of the isotest.toml schema, its errors and the merge order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::parse(Path::new("t/isotest.toml"), Path::new("/abs/t"), text)
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn reads_every_kind_of_table() {
    let file = parse(
        r#"
timeout = "30s"
memory = "256M"
cpus = 0.5
pids = 64
env = { DB = "sqlite", MODE = "fast" }
pass_env = ["HOME"]
network = "host"
hostname = "db-test"
retries = 2
jobs = 3
include = ["db/*"]

[[test]]
name = "migrate"
command = ["./migrate.sh", "--check"]
cwd = "sub"
tags = ["db", "slow"]
expect_exit = 3

[[test]]
name = "shell"
command = "echo hi | grep hi"
expect = "oom"

[[override]]
filter = "db/** & !tag:quick"
timeout = "2m"
max_memory = "64M"

[profile.ci]
retries = 1
jobs = 1
"#,
    )
    .unwrap();
    let defaults = &file.defaults;
    assert_eq!(
        defaults.timeout.as_ref().unwrap().value,
        Some(Duration::from_secs(30))
    );
    assert_eq!(defaults.memory.as_ref().unwrap().value, Some(256 << 20));
    assert_eq!(defaults.cpus.as_ref().unwrap().value, Some(0.5));
    assert_eq!(defaults.pids.as_ref().unwrap().value, Some(64));
    assert_eq!(defaults.env.len(), 2);
    assert_eq!(defaults.network.as_ref().unwrap().value, Network::Host);
    assert_eq!(file.run.jobs.as_ref().unwrap().value, 3);
    assert_eq!(file.run.include, ["db/*"]);
    assert_eq!(
        defaults.timeout.as_ref().unwrap().source.to_string(),
        "t/isotest.toml:2"
    );

    let migrate = &file.tests[0];
    assert_eq!(migrate.name, "migrate");
    assert_eq!(migrate.argv, ["./migrate.sh", "--check"]);
    assert_eq!(migrate.cwd, PathBuf::from("/abs/t/sub"));
    assert_eq!(
        migrate.settings.expect.as_ref().unwrap().value,
        Expect::Exit(3)
    );
    assert_eq!(migrate.settings.tag_names(), ["db", "slow"]);
    assert_eq!(
        migrate.settings.expect.as_ref().unwrap().source.to_string(),
        "t/isotest.toml:19 [[test]] migrate"
    );
    assert_eq!(file.tests[1].argv, ["/bin/sh", "-c", "echo hi | grep hi"]);
    assert_eq!(file.tests[1].settings.expect(), Expect::Oom);

    let timeout_override = &file.overrides[0];
    assert_eq!(
        timeout_override.settings.max_memory.as_ref().unwrap().value,
        64 << 20
    );
    let profile = &file.profiles["ci"];
    assert_eq!(profile.settings.retries.as_ref().unwrap().value, 1);
    assert_eq!(profile.run.jobs.as_ref().unwrap().value, 1);
}

#[test]
fn zero_or_none_lifts_limits() {
    let file = parse("timeout = 0\nmemory = \"none\"\npids = 0\n").unwrap();
    assert_eq!(file.defaults.timeout.unwrap().value, None);
    assert_eq!(file.defaults.memory.unwrap().value, None);
    assert_eq!(file.defaults.pids.unwrap().value, None);
}

#[test]
fn unknown_keys_name_what_is_accepted() {
    let message = error("timout = \"5s\"\n");
    assert!(
        message
            .starts_with("t/isotest.toml:1:1: key `timout`: unknown key (accepted here: timeout,"),
        "{message}"
    );
    let message = error("[[test]]\nname = \"a\"\ncommand = \"true\"\nbogus = 1\n");
    assert!(
        message.starts_with("t/isotest.toml:4:1: key `bogus`: unknown key (accepted here: name, command, cwd, timeout"),
        "{message}"
    );
}

#[test]
fn bad_values_name_line_key_and_accepted_form() {
    assert_eq!(
        error("\ntimeout = \"5x\"\n"),
        "t/isotest.toml:2:11: key `timeout`: invalid duration unit `x` in `5x` (expected ms, s, m or h)"
    );
    assert_eq!(
        error("memory = true\n"),
        "t/isotest.toml:1:10: key `memory`: expected a size like \"256M\" or \"1G\", found a boolean"
    );
    assert_eq!(
        error("memory = \"12X\"\n"),
        "t/isotest.toml:1:10: key `memory`: invalid size unit `X` in `12X` (expected K, M, G or T)"
    );
    assert_eq!(
        error("retries = 500\n"),
        "t/isotest.toml:1:11: key `retries`: expected an integer from 0 to 100"
    );
    assert_eq!(
        error("network = \"bridge\"\n"),
        "t/isotest.toml:1:11: key `network`: `bridge` is not a network (expected \"none\": loopback only, \"outbound\": a private network with NAT to the host's, or \"host\")"
    );
    assert!(error("expect_signal = \"SIGNOPE\"\n").contains("unknown signal"));
    assert!(error("expect = \"oom\"\nexpect_exit = 1\n").contains("only one of"));
    assert!(error("env = { A = 1 }\n").contains("key `env.A`: expected a string"));
    assert!(error("cpus = 0\n").contains("between 0.01 and 4096"));
    assert!(error("cpu_weight = 0\n").contains("1"));
    assert!(error("cpu_weight = 10001\n").contains("10000"));
    let weighted = parse("cpu_weight = 300\n").unwrap();
    assert_eq!(weighted.defaults.cpu_weight.unwrap().value, Some(300));
    assert!(error("include = [\"a[\"]\n").contains("bad glob"));
    let heavy = parse("[[override]]\nfilter = \"big/*\"\nthreads = 2\n").unwrap();
    assert_eq!(
        heavy.overrides[0].settings.threads.as_ref().unwrap().value,
        2
    );
    assert!(error("threads = 0\n").contains("key `threads`"));
}

#[test]
fn test_and_override_tables_need_their_keys() {
    assert!(error("[[test]]\nname = \"a\"\n").contains("key `command`: missing"));
    assert!(error("[[test]]\ncommand = \"true\"\n").contains("key `name`: missing"));
    assert!(error("[[test]]\nname = \"../x\"\ncommand = \"true\"\n").contains("relative name"));
    assert!(error("[[test]]\nname = \"a\"\ncommand = []\n").contains("the command is empty"));
    assert!(error("[[override]]\ntimeout = \"1s\"\n").contains("key `filter`: missing"));
    assert!(error("[[override]]\nfilter = \"(a\"\n").contains("key `filter`: missing `)`"));
}

#[test]
fn syntax_errors_have_positions() {
    let message = error("a = = 1\n");
    assert!(message.starts_with("t/isotest.toml:1:"), "{message}");
    assert!(message.contains("not valid TOML"), "{message}");
}

fn subject<'a>(name: &'a str, tags: &'a [String]) -> Subject<'a> {
    Subject {
        name,
        suite: "",
        tags,
    }
}

#[test]
fn deeper_files_profiles_and_overrides_layer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tests");
    std::fs::create_dir_all(root.join("db/deep")).unwrap();
    std::fs::write(
        root.join("isotest.toml"),
        "timeout = \"30s\"\nmemory = \"1G\"\nretries = 1\njobs = 4\n\
         [[override]]\nfilter = \"db/**\"\nmemory = \"512M\"\n\
         [profile.ci]\nretries = 3\njobs = 2\n",
    )
    .unwrap();
    std::fs::write(root.join("db/isotest.toml"), "timeout = \"5s\"\n").unwrap();
    std::fs::write(
        root.join("db/deep/isotest.toml"),
        "[profile.ci]\ntimeout = \"9s\"\n",
    )
    .unwrap();
    let configs = Configs::load(std::slice::from_ref(&root)).unwrap();
    assert_eq!(configs.files().len(), 3);

    let no_tags: Vec<String> = Vec::new();
    let resolve = |dir: &Path, name: &str, profile| {
        Settings::resolve(configs.layers(dir, &subject(name, &no_tags), profile))
    };
    let top = resolve(&root, "a.sh", None);
    assert_eq!(top.timeout(), Some(Duration::from_secs(30)));
    assert_eq!(top.memory(), Some(1 << 30));
    assert_eq!(top.retries(), 1);

    let db = resolve(&root.join("db"), "db/x.sh", None);
    assert_eq!(
        db.timeout(),
        Some(Duration::from_secs(5)),
        "deeper file wins"
    );
    assert_eq!(db.memory(), Some(512 << 20), "override matched");

    let deep_ci = resolve(&root.join("db/deep"), "db/deep/x.sh", Some("ci"));
    assert_eq!(deep_ci.timeout(), Some(Duration::from_secs(9)));
    assert_eq!(deep_ci.retries(), 3);
    assert!(deep_ci
        .timeout
        .as_ref()
        .unwrap()
        .source
        .to_string()
        .ends_with("[profile.ci]"));

    assert_eq!(configs.run_settings(&root, None).jobs.unwrap().value, 4);
    assert_eq!(
        configs.run_settings(&root, Some("ci")).jobs.unwrap().value,
        2
    );
    assert!(configs.check_profile("ci").is_ok());
    assert!(configs.check_profile("nightly").is_err());
}

#[test]
fn a_broken_file_deep_in_the_tree_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("suite");
    std::fs::create_dir_all(root.join("net")).unwrap();
    std::fs::write(root.join("net/isotest.toml"), "\n\ngrace = \"soon\"\n").unwrap();
    let shown = root.clone();
    let message = Configs::load(std::slice::from_ref(&shown))
        .unwrap_err()
        .to_string();
    let expected = format!("{}/net/isotest.toml:3:9: key `grace`:", shown.display());
    assert!(message.starts_with(&expected), "{message}");
}
