//! Malformed isotest.toml files: each stops `isotest run` (and `isotest
//! list`) before anything runs, with exit 2 and one line on stderr naming
//! the file as given on the command line, the line and column, the key, and
//! what is accepted. The whole line is asserted, so a change of wording is a
//! deliberate change of this table; only the lists of accepted keys may grow
//! (keys of later issues, like the rootfs and security ones, come after
//! these).

use libtest_mimic::{Failed, Trial};

use crate::support::{self, Finished};

/// A suite with these isotest.toml files (beside the executable tests
/// `t.sh` and `sub/u.sh`), run with `args`, must fail with `stderr`.
struct Malformed {
    name: &'static str,
    /// (path relative to the suite, content)
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    /// The whole of isotest's stderr, one line.
    stderr: &'static str,
}

/// The keys every settings table accepts, in the order isotest lists them.
const SETTING_KEYS: &str = "timeout, grace, memory, cpus, pids, env, pass_env, network, \
    hostname, user, group, retries, expect, expect_exit, expect_signal, max_memory, max_cpu_time, \
    max_wall_time, max_pids, ignore, ignore_reason, tags";

/// `{TOP}` in an expected line: the keys accepted at the top of a file.
/// `{TEST}`: in a `[[test]]` table. Both may hold more setting keys after
/// `tags`.
fn accepted(placeholder: &str) -> String {
    let more = "(, [a-z_]+)*";
    match placeholder {
        "{TOP}" => format!(
            "{}{more}{}",
            regex::escape(SETTING_KEYS),
            regex::escape(", jobs, include, exclude, test, override, profile, service")
        ),
        _ => format!(
            "{}{more}",
            regex::escape(&format!("name, command, cwd, {SETTING_KEYS}"))
        ),
    }
}

/// The expected line as an anchored regex: the text literally, the
/// placeholders as above.
fn line_pattern(line: &str) -> regex::Regex {
    let mut pattern = String::from("^");
    let mut rest = line;
    while let Some(start) = rest.find('{') {
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        pattern.push_str(&regex::escape(&rest[..start]));
        pattern.push_str(&accepted(&rest[start..end]));
        rest = &rest[end..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push_str("\n$");
    regex::Regex::new(&pattern).expect("a valid pattern")
}

const CASES: &[Malformed] = &[
    Malformed {
        name: "unknown_key",
        files: &[("isotest.toml", "timout = \"5s\"\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:1:1: key `timout`: unknown key (accepted here: {TOP})",
    },
    Malformed {
        name: "unknown_key_in_test_table",
        files: &[(
            "isotest.toml",
            "[[test]]\nname = \"a\"\ncommand = \"true\"\n  comand = \"x\"\n",
        )],
        args: &[],
        stderr:
            "isotest: suite/isotest.toml:4:3: key `comand`: unknown key (accepted here: {TEST})",
    },
    Malformed {
        name: "bad_duration",
        files: &[(
            "isotest.toml",
            "# defaults for the suite\n\ntimeout = \"5x\"\n",
        )],
        args: &[],
        stderr: "isotest: suite/isotest.toml:3:11: key `timeout`: invalid duration unit `x` in \
                 `5x` (expected ms, s, m or h)",
    },
    Malformed {
        name: "wrong_type_duration",
        files: &[("isotest.toml", "timeout = true\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:1:11: key `timeout`: expected a duration like \
                 \"30s\", \"500ms\" or \"5m\", found a boolean",
    },
    Malformed {
        name: "wrong_type_in_profile",
        files: &[("isotest.toml", "[profile.ci]\nretries = \"2\"\n")],
        args: &[],
        stderr:
            "isotest: suite/isotest.toml:2:11: key `retries`: expected an integer, found a string",
    },
    Malformed {
        name: "out_of_range",
        files: &[("isotest.toml", "retries = 101\n")],
        args: &[],
        stderr:
            "isotest: suite/isotest.toml:1:11: key `retries`: expected an integer from 0 to 100",
    },
    Malformed {
        name: "bad_size_in_deeper_file",
        files: &[
            ("isotest.toml", "memory = \"64M\"\n"),
            (
                "sub/isotest.toml",
                "[[override]]\nfilter = \"sub/*\"\nmemory = \"12Q\"\n",
            ),
        ],
        args: &[],
        stderr: "isotest: suite/sub/isotest.toml:3:10: key `memory`: invalid size unit `Q` in \
                 `12Q` (expected K, M, G or T)",
    },
    Malformed {
        name: "bad_expect",
        files: &[(
            "isotest.toml",
            "[[test]]\nname = \"a\"\ncommand = \"true\"\nexpect = \"crash\"\n",
        )],
        args: &[],
        stderr: "isotest: suite/isotest.toml:4:10: key `expect`: `crash` is not an expectation \
                 (expected \"oom\", \"timeout\" or \"pass\"; or use expect_exit / expect_signal)",
    },
    Malformed {
        name: "bad_signal",
        files: &[("isotest.toml", "expect_signal = \"SIGFOO\"\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:1:17: key `expect_signal`: unknown signal (expected \
                 a name like \"SIGKILL\", \"SIGSEGV\" or \"TERM\")",
    },
    Malformed {
        name: "bad_network",
        files: &[("isotest.toml", "network = \"bridge\"\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:1:11: key `network`: `bridge` is not a network \
                 (expected \"none\": loopback only, \"outbound\": a private network with NAT \
                 to the host's, or \"host\")",
    },
    Malformed {
        name: "unknown_service",
        files: &[(
            "isotest.toml",
            "[[test]]\nname = \"a\"\ncommand = \"true\"\nservices = [\"db\"]\n",
        )],
        args: &[],
        stderr: "isotest: suite/isotest.toml:4 [[test]] a: key `services` of test `a`: no \
                 [[service]] named `db` in this test's isotest.toml files (its directory's or a \
                 parent's)",
    },
    Malformed {
        name: "service_without_command",
        files: &[("isotest.toml", "[[service]]\nname = \"db\"\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:1:1: key `command`: missing: [[service]] `db` \
                 needs a `command`",
    },
    Malformed {
        name: "test_without_command",
        files: &[(
            "isotest.toml",
            "timeout = \"5s\"\n\n[[test]]\nname = \"a\"\n",
        )],
        args: &[],
        stderr: "isotest: suite/isotest.toml:3:1: key `command`: missing: every [[test]] needs \
                 `name` and `command`",
    },
    Malformed {
        name: "bad_override_filter",
        files: &[(
            "isotest.toml",
            "[[override]]\nfilter = \"a & (\"\ntimeout = \"1s\"\n",
        )],
        args: &[],
        stderr: "isotest: suite/isotest.toml:2:10: key `filter`: filter ends where a glob or \
                 `tag:NAME` was expected",
    },
    Malformed {
        name: "toml_syntax_error",
        files: &[("isotest.toml", "timeout = \"5s\"\n\n[x\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:3:3: not valid TOML: unclosed table, expected `]`",
    },
    Malformed {
        name: "toml_duplicate_key",
        files: &[("isotest.toml", "timeout = \"1s\"\ntimeout = \"2s\"\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:2:1: not valid TOML: duplicate key",
    },
    Malformed {
        name: "unknown_profile",
        files: &[("isotest.toml", "[profile.ci]\nretries = 1\n")],
        args: &["--profile", "nope"],
        stderr: "isotest: profile `nope` is not defined in any isotest.toml under the test paths",
    },
    Malformed {
        name: "unknown_protocol",
        files: &[("isotest.toml", "protocol = \"junit\"\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:1:12: key `protocol`: `junit` is not a protocol (expected \"exitcode\" or \"tap\")",
    },
    Malformed {
        name: "skip_exit_zero",
        files: &[("isotest.toml", "skip_exit = 0\n")],
        args: &[],
        stderr: "isotest: suite/isotest.toml:1:13: key `skip_exit`: expected an integer from 1 to 255",
    },
];

pub fn trials() -> Vec<Trial> {
    CASES
        .iter()
        .map(|case| Trial::test(format!("config_error::{}", case.name), move || check(case)))
        .collect()
}

fn check(case: &Malformed) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let suite = dir.path().join("suite");
    std::fs::create_dir_all(suite.join("sub"))?;
    for test in ["t.sh", "sub/u.sh"] {
        write_executable(&suite.join(test), "#!/bin/sh\nexit 0\n")?;
    }
    for (path, content) in case.files {
        std::fs::write(suite.join(path), content)?;
    }
    let want = line_pattern(case.stderr);

    let junit = dir.path().join("junit.xml");
    let json = dir.path().join("report.json");
    let mut problems = Vec::new();
    for subcommand in ["run", "list"] {
        let mut command = support::isotest();
        command.current_dir(dir.path()).arg(subcommand);
        if subcommand == "run" {
            command.arg("--junit").arg(&junit).arg("--json").arg(&json);
        }
        command.args(case.args).arg("suite");
        let finished = support::run(command)?;
        check_finished(subcommand, &finished, &want, &mut problems);
    }
    for report in [&junit, &json] {
        if report.exists() {
            problems.push(format!(
                "`isotest run` wrote {} though it must not run anything",
                report.display()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn check_finished(
    subcommand: &str,
    finished: &Finished,
    want: &regex::Regex,
    problems: &mut Vec<String>,
) {
    let mut wrong = Vec::new();
    if finished.code != 2 {
        wrong.push(format!("exited with {}, expected 2", finished.code));
    }
    if !finished.stdout.is_empty() {
        wrong.push("printed on stdout (expected nothing: nothing runs or is listed)".to_owned());
    }
    if !want.is_match(&finished.stderr) {
        wrong.push(format!(
            "stderr is not exactly one line matching\n      {want}"
        ));
    }
    if !wrong.is_empty() {
        problems.push(format!(
            "`isotest {subcommand}`: {}\nisotest {}",
            wrong.join("; "),
            finished.describe()
        ));
    }
}

fn write_executable(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}
