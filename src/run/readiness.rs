//! Telling that a service is ready: a TCP port listening in its network
//! namespace (`listening`, so nothing connects to the service), a line in
//! its output, or a command that succeeds beside it.

use std::time::Duration;

use crate::config::Readiness;

/// How often the port and the output are looked at.
pub const POLL: Duration = Duration::from_millis(2);
/// How often a readiness command is run.
pub const COMMAND_INTERVAL: Duration = Duration::from_millis(100);

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
