//! The one reader of /proc/PID/stat: a process's name, state and start
//! time. The start time (clock ticks since boot) is how a live process is
//! told from a later one that reuses its pid.

/// The fields of /proc/PID/stat isotest uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub comm: String,
    /// `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Field 22: when it started, in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// A zombie or dead process: exited, not yet (or just) reaped.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// /proc/PID/stat of `pid`; None when there is no such process.
pub fn read(pid: u32) -> Option<ProcStat> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// When process `pid` started (see `ProcStat::start_time`).
pub fn process_start(pid: u32) -> Option<u64> {
    read(pid).map(|stat| stat.start_time)
}

/// `PID (COMM) STATE PPID ...`; COMM may itself hold spaces and parentheses,
/// so it ends at the last `)`.
fn parse(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    // Field 3 is the state; the start time is field 22.
    let start_time = rest.nth(18)?.parse().ok()?;
    Some(ProcStat {
        comm: text.get(open + 1..close)?.to_string(),
        state,
        start_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_state_and_start_time() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let stat = parse(line).unwrap();
        assert_eq!(stat.comm, "my (odd) name");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 987654);
        assert!(!stat.has_exited());
        assert!(parse("4242 (zombie) Z 1").is_none());
    }

    #[test]
    fn this_process_has_a_start_time() {
        let me = std::process::id();
        let stat = read(me).unwrap();
        assert!(!stat.has_exited());
        assert_eq!(process_start(me), Some(stat.start_time));
    }
}
