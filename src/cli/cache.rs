//! `isotest cache list|clean`: what the rootfs cache holds, and emptying it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::{exit, fail, write_stdout};
use crate::image::{Cache, CacheEntry, ImageError};
use crate::size::format_size;

/// A failure reading or cleaning the cache (not a usage error).
const CACHE_FAILED: i32 = 1;
/// Characters of an entry's key shown by `cache list`.
const SHORT_KEY: usize = 12;

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// The cache directory [default: $XDG_CACHE_HOME/isotest, else
    /// $HOME/.cache/isotest].
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CacheAction {
    /// Show the unpacked tarballs, images, layers and tools roots.
    List,
    /// Remove every entry (do not run it while tests are running).
    Clean,
}

pub fn run(args: CacheArgs) -> i32 {
    let cache = match Cache::open(args.cache_dir.as_deref()) {
        Ok(cache) => cache,
        Err(error @ ImageError::NoCacheDir) => return fail(error, exit::BAD_USAGE),
        Err(error) => return fail(error, CACHE_FAILED),
    };
    match args.action {
        CacheAction::List => match cache.list() {
            Ok(entries) => {
                let mut text = format!("cache: {}\n", cache.root().display());
                text.push_str(&render_table(&entries, SystemTime::now()));
                write_stdout(&text);
                exit::ALL_PASSED
            }
            Err(error) => fail(error, CACHE_FAILED),
        },
        CacheAction::Clean => match cache.clean() {
            Ok(summary) => {
                write_stdout(&format!(
                    "removed {} entries and {} stale temp dirs from {}, freed {}\n",
                    summary.entries,
                    summary.stale_temp_dirs,
                    cache.root().display(),
                    format_size(summary.bytes_freed)
                ));
                exit::ALL_PASSED
            }
            Err(error) => fail(error, CACHE_FAILED),
        },
    }
}

/// An aligned table of the entries with a total line.
fn render_table(entries: &[CacheEntry], now: SystemTime) -> String {
    if entries.is_empty() {
        return "(empty)\n".to_string();
    }
    let header = ["KIND", "KEY", "SIZE", "LAST USED", "SOURCE"].map(String::from);
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|entry| {
            [
                entry.kind.to_string(),
                entry.key.chars().take(SHORT_KEY).collect(),
                format_size(entry.size),
                entry
                    .last_used
                    .map(|when| ago(now.duration_since(when).unwrap_or_default()))
                    .unwrap_or_else(|| "never".into()),
                entry.source.clone(),
            ]
        })
        .collect();
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let [kind, key, size, used, source] = row;
        text.push_str(&format!(
            "{kind:<w0$}  {key:<w1$}  {size:>w2$}  {used:<w3$}  {source}\n",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        ));
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    text.push_str(&format!(
        "{} entries, {}\n",
        entries.len(),
        format_size(total)
    ));
    text
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago`.
fn ago(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::EntryKind;

    #[test]
    fn table_is_aligned() {
        let now = SystemTime::now();
        let entry = |kind, key: &str, size, used: Option<u64>, source: &str| CacheEntry {
            kind,
            key: key.to_string(),
            size,
            last_used: used.map(|s| now - Duration::from_secs(s)),
            source: source.to_string(),
            path: PathBuf::from("/c"),
        };
        let table = render_table(
            &[
                entry(
                    EntryKind::Tarball,
                    &"a".repeat(64),
                    3 << 20,
                    Some(90),
                    "/x.tar",
                ),
                entry(EntryKind::Tools, &"b".repeat(64), 512, None, "tools sh"),
            ],
            now,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "KIND     KEY              SIZE  LAST USED  SOURCE"
        );
        assert_eq!(
            lines[1],
            "tarball  aaaaaaaaaaaa  3.0 MiB  1m ago     /x.tar"
        );
        assert_eq!(
            lines[2],
            "tools    bbbbbbbbbbbb    512 B  never      tools sh"
        );
        assert_eq!(lines[3], "2 entries, 3.0 MiB");
        assert_eq!(render_table(&[], now), "(empty)\n");
    }

    #[test]
    fn ages() {
        assert_eq!(ago(Duration::from_secs(5)), "5s ago");
        assert_eq!(ago(Duration::from_secs(7200)), "2h ago");
        assert_eq!(ago(Duration::from_secs(3 * 86400)), "3d ago");
    }
}
