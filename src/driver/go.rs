//! `isotest go`: expands the package patterns with `go list`, builds each
//! package's test binary with `go test -c -o DIR/N.test`, lists its tests
//! with `-test.list '.*'` and makes each test (and example, and fuzz
//! target's seed corpus) the command `BINARY -test.run '^NAME$' -test.v`,
//! run in the package's directory. Names: `import/path TestName`. A binary
//! that does not answer `-test.list` is one test, run whole.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{in_parallel, listing, output, Discovered, DriverError};
use crate::config::Settings;
use crate::discover::{Program, TestCase};
use crate::plan::DriverCase;
use crate::protocol::Harness;

/// How to call go.
pub struct GoOptions {
    pub go: PathBuf,
    /// Package patterns (`./...` when empty).
    pub packages: Vec<String>,
    /// Extra flags for `go test -c` (`-race`, `-tags=integration`).
    pub build_flags: Vec<String>,
    /// Where the test binaries go; it must outlive the run.
    pub bin_dir: PathBuf,
}

/// A package with tests, from `go list`.
#[derive(Debug, PartialEq, Eq)]
struct Package {
    import_path: String,
    dir: PathBuf,
    has_tests: bool,
    /// The module's root directory (empty outside module mode).
    module_dir: Option<PathBuf>,
}

const LIST_FORMAT: &str =
    "{{.ImportPath}}\t{{.Dir}}\t{{len .TestGoFiles}}\t{{len .XTestGoFiles}}\t{{with .Module}}{{.Dir}}{{end}}";

/// Builds and lists; cases in `go list` order, then listing order.
pub fn discover(options: &GoOptions) -> Result<Discovered, DriverError> {
    let mut command = Command::new(&options.go);
    command.args(["list", "-f", LIST_FORMAT]);
    if options.packages.is_empty() {
        command.arg("./...");
    } else {
        command.args(&options.packages);
    }
    let shown = super::shown(&command);
    let listed = output(command, false)?;
    let packages = parse_list(&String::from_utf8_lossy(&listed.stdout)).map_err(|message| {
        DriverError::Output {
            command: shown,
            message,
        }
    })?;
    let root = match packages.iter().find_map(|p| p.module_dir.clone()) {
        Some(dir) => dir,
        None => std::env::current_dir().map_err(|source| DriverError::Io {
            what: "current directory",
            path: PathBuf::from("."),
            source,
        })?,
    };
    let with_tests: Vec<(usize, &Package)> = packages
        .iter()
        .filter(|p| p.has_tests)
        .enumerate()
        .collect();
    let built = in_parallel(&with_tests, |(index, package)| {
        let binary = options.bin_dir.join(format!("{index}.test"));
        build(options, package, &binary)?;
        // A package whose test files hold no test gives no binary.
        if !binary.exists() {
            return Ok(None);
        }
        let names = list(&binary, &package.dir)?;
        Ok(Some(package_cases(package, &binary, names)))
    });
    let mut config_dirs = vec![root.clone()];
    let mut cases = Vec::new();
    for ((_, package), found) in with_tests.iter().zip(built) {
        if let Some(found) = found? {
            config_dirs.push(package.dir.clone());
            cases.extend(found);
        }
    }
    Ok(Discovered {
        root,
        config_dirs,
        cases,
    })
}

/// The lines of `go list -f LIST_FORMAT`.
fn parse_list(text: &str) -> Result<Vec<Package>, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [import_path, dir, tests, xtests, module] = fields[..] else {
                return Err(format!("`{line}` is not 5 tab-separated fields"));
            };
            let count = |n: &str| {
                n.parse::<usize>()
                    .map_err(|e| format!("`{n}` in `{line}`: {e}"))
            };
            Ok(Package {
                import_path: import_path.to_string(),
                dir: PathBuf::from(dir),
                has_tests: count(tests)? + count(xtests)? > 0,
                module_dir: (!module.is_empty()).then(|| PathBuf::from(module)),
            })
        })
        .collect()
}

/// `go test -c -o BINARY [FLAGS] PACKAGE`; go's errors go to the user.
fn build(options: &GoOptions, package: &Package, binary: &Path) -> Result<(), DriverError> {
    let mut command = Command::new(&options.go);
    command.args(["test", "-c", "-o"]).arg(binary);
    command.args(&options.build_flags).arg(&package.import_path);
    output(command, false).map(drop)
}

/// `BINARY -test.list '.*'`: its tests, examples and fuzz targets (not its
/// benchmarks); None when it does not answer.
fn list(binary: &Path, dir: &Path) -> Result<Option<Vec<String>>, DriverError> {
    let mut command = Command::new(binary);
    command.args(["-test.list", ".*"]).current_dir(dir);
    Ok(listing(command)?.map(|text| {
        text.lines()
            .filter(|name| {
                ["Test", "Example", "Fuzz"]
                    .iter()
                    .any(|p| name.starts_with(p))
            })
            .map(str::to_string)
            .collect()
    }))
}

/// The package's tests as cases, or its binary as one.
fn package_cases(package: &Package, binary: &Path, names: Option<Vec<String>>) -> Vec<DriverCase> {
    let exe = binary.to_string_lossy().into_owned();
    let case = |name: String, argv: Vec<String>, harness| DriverCase {
        case: TestCase {
            name,
            suite: package.import_path.clone(),
            program: Program::Command(argv),
            dir: package.dir.clone(),
            tags: Vec::new(),
            default_dir: false,
            harness,
            host_dirs: vec![binary.parent().unwrap_or(binary).to_path_buf()],
        },
        config_dir: package.dir.clone(),
        settings: Settings::default(),
    };
    let Some(names) = names else {
        let argv = vec![exe, "-test.v".into()];
        return vec![case(package.import_path.clone(), argv, None)];
    };
    names
        .into_iter()
        .map(|name| {
            let argv = vec![
                exe.clone(),
                "-test.run".into(),
                format!("^{name}$"),
                "-test.v".into(),
            ];
            let full = format!("{} {name}", package.import_path);
            case(full, argv, Some(Harness::GoTest(name)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_list_lines() {
        let text =
            "example.com/m\t/src/m\t1\t0\t/src/m\nexample.com/m/cmd\t/src/m/cmd\t0\t0\t/src/m\n";
        let packages = parse_list(text).unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].import_path, "example.com/m");
        assert!(packages[0].has_tests);
        assert!(!packages[1].has_tests);
        assert_eq!(packages[1].module_dir, Some(PathBuf::from("/src/m")));
        let gopath = parse_list("fmt\t/usr/lib/go/src/fmt\t3\t2\t\n").unwrap();
        assert_eq!(gopath[0].module_dir, None);
        assert!(parse_list("broken line\n").is_err());
    }

    #[test]
    fn each_test_is_anchored() {
        let package = Package {
            import_path: "example.com/m/calc".into(),
            dir: PathBuf::from("/src/m/calc"),
            has_tests: true,
            module_dir: None,
        };
        let cases = package_cases(
            &package,
            Path::new("/b/0.test"),
            Some(vec!["TestAdd".into()]),
        );
        assert_eq!(cases[0].case.name, "example.com/m/calc TestAdd");
        assert_eq!(cases[0].case.suite, "example.com/m/calc");
        assert_eq!(
            cases[0].case.program,
            Program::Command(vec![
                "/b/0.test".into(),
                "-test.run".into(),
                "^TestAdd$".into(),
                "-test.v".into()
            ])
        );
        let whole = package_cases(&package, Path::new("/b/0.test"), None);
        assert_eq!(whole[0].case.name, "example.com/m/calc");
    }
}
