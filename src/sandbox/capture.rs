//! Bounded capture of a stream: the first and last `limit / 2` bytes are kept
//! and the middle is counted, so a test printing gigabytes cannot grow the
//! runner's memory.

/// Collects a stream, keeping at most `limit` bytes of it.
#[derive(Debug)]
pub struct BoundedBuffer {
    head: Vec<u8>,
    /// Ring buffer of the most recent bytes once the head is full.
    tail: Vec<u8>,
    tail_start: usize,
    head_limit: usize,
    tail_limit: usize,
    total: u64,
}

impl BoundedBuffer {
    pub fn new(limit: usize) -> Self {
        let head_limit = limit / 2;
        BoundedBuffer {
            head: Vec::new(),
            tail: Vec::new(),
            tail_start: 0,
            head_limit,
            tail_limit: limit - head_limit,
            total: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let head_room = self.head_limit - self.head.len();
        if head_room > 0 {
            let take = head_room.min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if self.tail_limit == 0 || data.is_empty() {
            return;
        }
        if data.len() >= self.tail_limit {
            self.tail.clear();
            self.tail
                .extend_from_slice(&data[data.len() - self.tail_limit..]);
            self.tail_start = 0;
            return;
        }
        if self.tail.len() < self.tail_limit {
            let room = self.tail_limit - self.tail.len();
            let take = room.min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        for &byte in data {
            self.tail[self.tail_start] = byte;
            self.tail_start = (self.tail_start + 1) % self.tail_limit;
        }
    }

    pub fn finish(self) -> CapturedOutput {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let mut tail = self.tail;
        tail.rotate_left(self.tail_start);
        CapturedOutput {
            head: self.head,
            tail,
            dropped_bytes: self.total - kept,
        }
    }
}

/// A captured stream: everything when it fit, else its head and tail with
/// the number of bytes dropped between them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub dropped_bytes: u64,
}

impl CapturedOutput {
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty()
    }

    /// Total bytes the stream carried.
    pub fn total_bytes(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.dropped_bytes
    }

    /// The kept bytes, with a marker line where the middle was dropped.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        if self.dropped_bytes > 0 {
            if !out.ends_with(b"\n") && !out.is_empty() {
                out.push(b'\n');
            }
            out.extend_from_slice(
                format!(
                    "[isotest: {} bytes of output dropped here]\n",
                    self.dropped_bytes
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(&self.tail);
        out
    }

    /// `to_bytes` as text, invalid UTF-8 replaced.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(limit: usize, chunks: &[&[u8]]) -> CapturedOutput {
        let mut buffer = BoundedBuffer::new(limit);
        for chunk in chunks {
            buffer.push(chunk);
        }
        buffer.finish()
    }

    #[test]
    fn keeps_everything_under_the_limit() {
        let out = capture(16, &[b"hello ", b"world"]);
        assert_eq!(out.to_bytes(), b"hello world");
        assert_eq!(out.dropped_bytes, 0);
        assert_eq!(out.total_bytes(), 11);
    }

    #[test]
    fn keeps_head_and_tail_and_counts_the_middle() {
        let out = capture(8, &[b"0123", b"456789", b"abcdef"]);
        assert_eq!(out.head, b"0123");
        assert_eq!(out.tail, b"cdef");
        assert_eq!(out.dropped_bytes, 8);
        assert_eq!(out.total_bytes(), 16);
        let text = out.to_string_lossy();
        assert!(text.starts_with("0123\n[isotest: 8 bytes of output dropped here]\n"));
        assert!(text.ends_with("cdef"));
    }

    #[test]
    fn tail_ring_wraps_byte_by_byte() {
        let chunks: Vec<Vec<u8>> = (0..100u8).map(|b| vec![b]).collect();
        let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        let out = capture(10, &refs);
        assert_eq!(out.head, vec![0, 1, 2, 3, 4]);
        assert_eq!(out.tail, vec![95, 96, 97, 98, 99]);
        assert_eq!(out.dropped_bytes, 90);
    }

    #[test]
    fn zero_limit_counts_only() {
        let out = capture(0, &[b"abc"]);
        assert!(out.is_empty());
        assert_eq!(out.dropped_bytes, 3);
    }
}
