//! Telling that a service is ready: a TCP port listening in its network
//! namespace (read from /proc/PID/net/tcp{,6}, so nothing connects to the
//! service), a line in its output, or a command that succeeds beside it.

use std::time::Duration;

use crate::config::Readiness;

/// How often the port and the output are looked at.
pub const POLL: Duration = Duration::from_millis(2);
/// How often a readiness command is run.
pub const COMMAND_INTERVAL: Duration = Duration::from_millis(100);

/// Whether a process in the namespace of `pid` has a TCP socket listening
/// on `port` (IPv4 or IPv6).
pub fn tcp_listening(pid: u32, port: u16) -> bool {
    ["tcp", "tcp6"].iter().any(|table| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
            .is_ok_and(|text| listens_on(&text, port))
    })
}

/// Whether a /proc/net/tcp table has a LISTEN (`0A`) socket on `port`.
fn listens_on(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let local = fields.next().unwrap_or_default();
        let state = fields.nth(1).unwrap_or_default();
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        state == "0A" && local_port == Some(port)
    })
}

/// Finds a text in output that arrives in chunks, across chunk borders,
/// keeping only as much as a match could still need.
#[derive(Debug)]
pub struct LogWatch {
    needle: Vec<u8>,
    tail: Vec<u8>,
}

impl LogWatch {
    pub fn new(text: &str) -> LogWatch {
        LogWatch {
            needle: text.as_bytes().to_vec(),
            tail: Vec::new(),
        }
    }

    /// Adds a chunk; true once the text has been seen.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        self.tail.extend_from_slice(chunk);
        let found = self
            .tail
            .windows(self.needle.len())
            .any(|window| window == self.needle);
        let keep = self.needle.len().saturating_sub(1);
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        found
    }
}

/// `tcp 5432`, `log "ready to accept"`, `command pg_isready`.
pub fn describe(readiness: &Readiness) -> String {
    match readiness {
        Readiness::Tcp(port) => format!("tcp {port}"),
        Readiness::Log(text) => format!("log {text:?}"),
        Readiness::Command(argv) => format!("command {}", argv.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:18EB 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";

    #[test]
    fn only_listening_sockets_count() {
        assert!(listens_on(TABLE, 5432));
        // 0x18EB = 6379 is an established connection, not a listener.
        assert!(!listens_on(TABLE, 6379));
        assert!(!listens_on("header only\n", 5432));
        let v6 = "sl local rem st\n 0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 0\n";
        assert!(listens_on(v6, 6379));
    }

    #[test]
    fn log_text_is_found_across_chunks() {
        let mut watch = LogWatch::new("ready to accept");
        assert!(!watch.push(b"starting... rea"));
        assert!(!watch.push(b"dy to"));
        assert!(watch.push(b" accept connections\n"));
        let mut other = LogWatch::new("ok");
        assert!(!other.push(b"o"));
        assert!(other.push(b"k"));
    }
}
