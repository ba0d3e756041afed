//! Telling tar, gzip and zstd apart by their first bytes, and reading through
//! the matching decompressor (flate2 for gzip, the pure-Rust ruzstd for zstd,
//! so the static build needs no C library).

use std::io::{self, BufRead, BufReader, Read};

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Tar,
    Gzip,
    Zstd,
}

/// What the first bytes of a file (at least 512 for a plain tar) say it is.
pub(crate) fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(&GZIP_MAGIC) {
        Some(Format::Gzip)
    } else if head.starts_with(&ZSTD_MAGIC) {
        Some(Format::Zstd)
    } else if is_tar_header(head) {
        Some(Format::Tar)
    } else {
        None
    }
}

/// A POSIX/GNU `ustar` magic, or (for old v7 archives) a valid header checksum.
fn is_tar_header(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    if &head[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&head[148..156])
        .ok()
        .map(|field| field.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|octal| u32::from_str_radix(octal, 8).ok());
    let computed: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    head[0] != 0 && stored == Some(computed)
}

/// A reader of the decompressed stream, whatever compression `reader` uses;
/// data that is none of tar, gzip or zstd is passed through for the tar
/// reader to reject.
pub(crate) fn decompressed<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered.fill_buf()?;
    Ok(if head.starts_with(&GZIP_MAGIC) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Box::new(ZstdFrames::new(buffered))
    } else {
        Box::new(buffered)
    })
}

/// Decodes every zstd frame of a stream in turn (multi-threaded `zstd -T`
/// and `pzstd` write several), where ruzstd's decoder stops after one.
struct ZstdFrames<R: BufRead> {
    state: ZstdState<R>,
}

enum ZstdState<R: BufRead> {
    Between(R),
    InFrame(Box<StreamingDecoder<R, FrameDecoder>>),
    Failed,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        ZstdFrames {
            state: ZstdState::Between(source),
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match std::mem::replace(&mut self.state, ZstdState::Failed) {
                ZstdState::Between(mut source) => {
                    if source.fill_buf()?.is_empty() {
                        self.state = ZstdState::Between(source);
                        return Ok(0);
                    }
                    let decoder = StreamingDecoder::new(source).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
                    })?;
                    self.state = ZstdState::InFrame(Box::new(decoder));
                }
                ZstdState::InFrame(mut decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 || buf.is_empty() {
                        self.state = ZstdState::InFrame(decoder);
                        return Ok(n);
                    }
                    self.state = ZstdState::Between(decoder.into_inner());
                }
                ZstdState::Failed => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zstd: reading after an earlier error",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Some(Format::Gzip));
        assert_eq!(sniff(&ZSTD_MAGIC), Some(Format::Zstd));
        let mut header = tar::Header::new_gnu();
        header.set_path("a").unwrap();
        header.set_size(0);
        header.set_cksum();
        assert_eq!(sniff(header.as_bytes()), Some(Format::Tar));
        let mut old = tar::Header::new_old();
        old.set_path("a").unwrap();
        old.set_cksum();
        assert_eq!(sniff(old.as_bytes()), Some(Format::Tar));
        assert_eq!(sniff(&[b'x'; 600]), None);
    }

    #[test]
    fn gzip_passes_through_and_plain_data_is_unchanged() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"hello").unwrap();
        let gz = encoder.finish().unwrap();
        let mut out = String::new();
        decompressed(&gz[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello");
        out.clear();
        decompressed(&b"plain"[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "plain");
    }
}
