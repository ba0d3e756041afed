//! The `isotest` binary: parse the command line, call the library, map the
//! result to an exit code.

fn main() {
    std::process::exit(isotest::cli::main());
}
