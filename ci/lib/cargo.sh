# Where cargo puts things, asked of cargo rather than assumed: right with
# CARGO_TARGET_DIR, a --target flag or the target in .cargo/config.toml.
# Sourced by the scripts in ci/ and bench/:
#
#   isotest=$(cargo_executable bin:isotest build --release --quiet)
#   harness=$(cargo_executable test:harness test --test harness --no-run --quiet)
#   target_dir=$(cargo_target_dir)

# Runs `cargo ARGS... --message-format=json-render-diagnostics` (so the
# build happens, with diagnostics on stderr as usual) and prints the path
# of the executable target KIND:NAME it built or found fresh.
cargo_executable() {
    local want=$1 kind name path
    shift
    kind=${want%%:*}
    name=${want#*:}
    path=$(cargo "$@" --message-format=json-render-diagnostics |
        grep -F "\"target\":{\"kind\":[\"$kind\"]" |
        grep -F "\"name\":\"$name\"" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1) || true
    if [[ ! -x $path ]]; then
        echo "cargo $*: built no $kind executable named $name" >&2
        return 1
    fi
    printf '%s\n' "$path"
}

# The target directory, as `cargo metadata` gives it.
cargo_target_dir() {
    local dir
    dir=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    if [[ -z $dir ]]; then
        echo "cargo metadata: no target_directory" >&2
        return 1
    fi
    printf '%s\n' "$dir"
}
