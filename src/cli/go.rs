//! `isotest go [PACKAGE]... [-- FILTER...]`: the tests of Go packages, each
//! in its own container. The test binaries are built into a temporary
//! directory under /var/tmp (visible in the containers, unlike /tmp),
//! removed after the run.

use std::path::PathBuf;

use clap::Args;

use super::args::{DriverListArgs, RunArgs};
use super::run::run_driver_cases;
use super::{exit, fail};
use crate::driver::go::{discover, GoOptions};

#[derive(Args, Debug)]
pub struct GoCommand {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub listing: DriverListArgs,
    /// A flag for `go test -c` (repeatable), e.g. `--build-flag=-race`,
    /// `--build-flag=-tags=integration`.
    #[arg(long, value_name = "FLAG", allow_hyphen_values = true)]
    pub build_flag: Vec<String>,
    /// Packages, as for `go test` [default: ./...].
    #[arg(value_name = "PACKAGE")]
    pub packages: Vec<String>,
    /// Run only tests whose name contains FILTER.
    #[arg(last = true, value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// Where test binaries are built: the containers see the host's /var/tmp.
const BIN_PARENT: &str = "/var/tmp";

pub fn run(command: GoCommand) -> i32 {
    let bin_dir = match tempfile::Builder::new()
        .prefix("isotest-go-")
        .tempdir_in(BIN_PARENT)
    {
        Ok(dir) => dir,
        Err(error) => {
            return fail(
                format!("create a directory for Go test binaries in {BIN_PARENT}: {error}"),
                exit::BAD_USAGE,
            )
        }
    };
    let options = GoOptions {
        go: std::env::var_os("GO").map_or_else(|| PathBuf::from("go"), PathBuf::from),
        packages: command.packages,
        build_flags: command.build_flag,
        bin_dir: bin_dir.path().to_path_buf(),
    };
    let discovered = match discover(&options) {
        Ok(discovered) => discovered,
        Err(error) => return fail(error, exit::BAD_USAGE),
    };
    run_driver_cases(&command.run, &command.listing, discovered, command.filters)
}
