//! Parsing of /proc/self/mountinfo (proc(5)): which filesystems are mounted
//! where. The rootfs code uses it to re-expose host submounts; cgroup layout
//! detection uses it too.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub parent_id: u32,
    /// Path of the mount's root within its filesystem.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options: `rw`, `nosuid`, `relatime`, ...
    pub mount_options: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options.
    pub super_options: Vec<String>,
}

impl Mount {
    pub fn has_option(&self, option: &str) -> bool {
        self.mount_options.iter().any(|o| o == option)
    }
}

/// Parses the whole text of a mountinfo file; malformed lines are errors.
pub fn parse(text: &str) -> Result<Vec<Mount>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_line(line).ok_or_else(|| format!("malformed mountinfo line: {line}")))
        .collect()
}

/// Reads and parses /proc/self/mountinfo.
pub fn read_own() -> Result<Vec<Mount>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    parse(&text)
}

fn parse_line(line: &str) -> Option<Mount> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let _major_minor = fields.next()?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let mount_options = split_options(fields.next()?);
    // Optional fields (shared:N, master:N, ...) end with a lone "-".
    fields.by_ref().find(|f| *f == "-")?;
    let fs_type = fields.next()?.to_string();
    let source = fields.next()?.to_string();
    let super_options = split_options(fields.next().unwrap_or(""));
    Some(Mount {
        id,
        parent_id,
        root,
        mount_point,
        mount_options,
        fs_type,
        source,
        super_options,
    })
}

fn split_options(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect()
}

/// The kernel escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        if let Some(digits) = octal {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
28 27 0:25 / /mnt/sandboxing/python ro,nosuid,nodev,relatime - tmpfs model_tools ro,size=4k,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 master:3 - cgroup2 cgroup2 rw
50 27 8:1 /home /srv/my\\040data rw - xfs /dev/sda1 rw
";

    #[test]
    fn parses_real_lines() {
        let mounts = parse(SAMPLE).unwrap();
        assert_eq!(mounts.len(), 5);
        let root = &mounts[1];
        assert_eq!(root.id, 27);
        assert_eq!(root.parent_id, 1);
        assert_eq!(root.mount_point, PathBuf::from("/"));
        assert_eq!(root.fs_type, "ext4");
        assert_eq!(root.source, "/dev/vda");
        assert_eq!(root.super_options, ["rw", "discard"]);
        let tools = &mounts[2];
        assert!(tools.has_option("ro") && tools.has_option("nosuid"));
        assert_eq!(mounts[3].fs_type, "cgroup2");
    }

    #[test]
    fn unescapes_octal() {
        let mounts = parse(SAMPLE).unwrap();
        assert_eq!(mounts[4].mount_point, PathBuf::from("/srv/my data"));
        assert_eq!(mounts[4].root, PathBuf::from("/home"));
        assert_eq!(unescape("a\\134b\\011"), PathBuf::from("a\\b\t"));
    }

    #[test]
    fn rejects_truncated_lines() {
        assert!(parse("22 27 0:21 / /proc rw,relatime proc proc rw").is_err());
        assert!(parse("x").is_err());
    }
}
