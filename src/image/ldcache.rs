//! Reading glibc's /etc/ld.so.cache (format `glibc-ld.so.cache1.1`), the
//! index of library names to paths that ld.so consults after RUNPATH.
//!
//! Layout: an optional old-format part (`ld.so-1.7.0`, 12-byte entries),
//! then the header `glibc-ld.so.cache1.1`, `nlibs: u32`, `len_strings: u32`,
//! flags and padding to 48 bytes, then `nlibs` entries of 24 bytes
//! (`flags: i32, key: u32, value: u32, osversion: u32, hwcap: u64`). Key
//! and value are offsets of NUL-terminated strings from the header start.

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER_LEN: usize = 48;
const NEW_ENTRY_LEN: usize = 24;
const OLD_ENTRY_LEN: usize = 12;
/// `FLAG_ELF_LIBC6`: the entry is a glibc ELF library (the low byte).
const FLAG_ELF_LIBC6: i32 = 3;

/// One library of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Library {
    pub(crate) name: String,
    pub(crate) path: String,
    /// Set for glibc-hwcaps subdirectory entries, which ld.so picks only
    /// on CPUs that have the features.
    pub(crate) hwcap: u64,
}

/// The glibc libraries listed in a cache file, in cache order; `Err` says
/// what is wrong with it.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Library>, String> {
    let start = if bytes.starts_with(NEW_MAGIC) {
        0
    } else if bytes.starts_with(OLD_MAGIC) {
        let old_count = u32_at(bytes, 12).ok_or("truncated old-format header")? as usize;
        let end = 16 + old_count * OLD_ENTRY_LEN;
        let start = end.next_multiple_of(8);
        if !bytes
            .get(start..)
            .is_some_and(|rest| rest.starts_with(NEW_MAGIC))
        {
            return Err("old-format cache without a glibc-ld.so.cache1.1 part".into());
        }
        start
    } else {
        return Err("not a glibc-ld.so.cache1.1 file".into());
    };
    let cache = &bytes[start..];
    let count = u32_at(cache, 20).ok_or("truncated header")? as usize;
    let mut libraries = Vec::with_capacity(count);
    for i in 0..count {
        let at = NEW_HEADER_LEN + i * NEW_ENTRY_LEN;
        let entry = cache
            .get(at..at + NEW_ENTRY_LEN)
            .ok_or("truncated entry table")?;
        let flags = i32::from_le_bytes(entry[0..4].try_into().expect("4 bytes"));
        let key = u32_at(entry, 4).expect("in entry") as usize;
        let value = u32_at(entry, 8).expect("in entry") as usize;
        let hwcap = u64::from_le_bytes(entry[16..24].try_into().expect("8 bytes"));
        if flags & 0xff != FLAG_ELF_LIBC6 {
            continue;
        }
        libraries.push(Library {
            name: string_at(cache, key).ok_or("library name out of bounds")?,
            path: string_at(cache, value).ok_or("library path out of bounds")?,
            hwcap,
        });
    }
    Ok(libraries)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn string_at(bytes: &[u8], at: usize) -> Option<String> {
    let rest = bytes.get(at..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache with the given (name, path) entries, as ldconfig writes it.
    fn build(entries: &[(&str, &str)]) -> Vec<u8> {
        let table_end = NEW_HEADER_LEN + entries.len() * NEW_ENTRY_LEN;
        let mut strings = Vec::new();
        let mut offsets = Vec::new();
        for (name, path) in entries {
            let key = table_end + strings.len();
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let value = table_end + strings.len();
            strings.extend_from_slice(path.as_bytes());
            strings.push(0);
            offsets.push((key as u32, value as u32));
        }
        let mut bytes = NEW_MAGIC.to_vec();
        bytes.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        bytes.resize(NEW_HEADER_LEN, 0);
        for (key, value) in offsets {
            bytes.extend_from_slice(&0x0303i32.to_le_bytes());
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&value.to_le_bytes());
            bytes.extend_from_slice(&0u32.to_le_bytes());
            bytes.extend_from_slice(&0u64.to_le_bytes());
        }
        bytes.extend_from_slice(&strings);
        bytes
    }

    #[test]
    fn parses_entries() {
        let bytes = build(&[("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")]);
        let libraries = parse(&bytes).unwrap();
        assert_eq!(libraries.len(), 1);
        assert_eq!(libraries[0].name, "libc.so.6");
        assert_eq!(libraries[0].path, "/lib/x86_64-linux-gnu/libc.so.6");
        assert!(parse(&bytes[..60]).is_err());
        assert!(parse(b"nonsense").is_err());
    }

    #[test]
    fn reads_the_hosts_cache() {
        let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
            return;
        };
        let libraries = parse(&bytes).unwrap();
        assert!(libraries.iter().any(|l| l.name == "libc.so.6"));
    }
}
