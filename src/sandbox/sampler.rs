//! Series of running tests' memory and CPU use: one runner-side thread
//! reads each watched cgroup's current figures at a fixed interval, off
//! the tests' path (they never wait for it). Peaks stay the kernel's
//! exact figures (`Usage`); these series only show the shape over time.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cgroup::UsageProbe;

/// One reading of a test's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Since the container was requested (the attempt's start).
    pub at: Duration,
    /// Memory charged to the cgroup then, in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU time the cgroup had used by then, in microseconds.
    pub cpu_usec: Option<u64>,
}

/// The sampling thread; stopped and joined when dropped.
pub struct Sampler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A watched cgroup, handed back to `Sampler::finish`.
#[derive(Debug)]
pub struct Watch(u64);

struct Shared {
    interval: Duration,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    stopping: bool,
    next_id: u64,
    watched: Vec<Watched>,
}

struct Watched {
    id: u64,
    probe: UsageProbe,
    since: Instant,
    series: Vec<Sample>,
}

impl Watched {
    fn take_sample(&mut self) {
        let (memory_bytes, cpu_usec) = self.probe.read();
        self.series.push(Sample {
            at: self.since.elapsed(),
            memory_bytes,
            cpu_usec,
        });
    }
}

impl Sampler {
    /// Starts the thread, reading every `interval` (at least 1 ms).
    pub fn start(interval: Duration) -> std::io::Result<Sampler> {
        let shared = Arc::new(Shared {
            interval: interval.max(Duration::from_millis(1)),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("isotest-sampler".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || sample_until_stopped(&shared)
            })?;
        Ok(Sampler {
            shared,
            thread: Some(thread),
        })
    }

    /// Starts reading `probe`, timing samples from `since`; the first
    /// reading is taken now.
    pub fn watch(&self, probe: UsageProbe, since: Instant) -> Watch {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let mut watched = Watched {
            id,
            probe,
            since,
            series: Vec::new(),
        };
        watched.take_sample();
        state.watched.push(watched);
        Watch(id)
    }

    /// Stops watching, after a last reading, and returns the series.
    pub fn finish(&self, watch: Watch) -> Vec<Sample> {
        let mut state = self.lock();
        let Some(index) = state.watched.iter().position(|w| w.id == watch.0) else {
            return Vec::new();
        };
        let mut watched = state.watched.swap_remove(index);
        watched.take_sample();
        watched.series
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.lock().stopping = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn sample_until_stopped(shared: &Shared) {
    let mut next = Instant::now() + shared.interval;
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        if state.stopping {
            return;
        }
        if now < next {
            state = shared
                .wake
                .wait_timeout(state, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        for watched in state.watched.iter_mut() {
            watched.take_sample();
        }
        // Ticks stay on the grid; a late tick is not repeated.
        while next <= now {
            next += shared.interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn samples_at_the_interval_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.current"), "4096\n").unwrap();
        std::fs::write(dir.path().join("cpu.stat"), "usage_usec 70\nuser_usec 50\n").unwrap();
        let sampler = Sampler::start(Duration::from_millis(10)).unwrap();
        let watch = sampler.watch(UsageProbe::v2_files_in(dir.path()), Instant::now());
        std::thread::sleep(Duration::from_millis(105));
        let series = sampler.finish(watch);
        // A first and a last reading, and one per 10 ms between them
        // (fewer on a loaded machine, never more).
        assert!((3..=13).contains(&series.len()), "{series:?}");
        assert!(series.windows(2).all(|w| w[0].at <= w[1].at), "{series:?}");
        assert!(series
            .iter()
            .all(|s| (s.memory_bytes, s.cpu_usec) == (Some(4096), Some(70))));
        assert!(sampler.lock().watched.is_empty());
    }

    #[test]
    fn a_finished_watch_is_gone() {
        let missing = Path::new("/nonexistent");
        let sampler = Sampler::start(Duration::from_secs(60)).unwrap();
        let first = sampler.watch(UsageProbe::v2_files_in(missing), Instant::now());
        let second = sampler.watch(UsageProbe::v2_files_in(missing), Instant::now());
        let series = sampler.finish(first);
        assert_eq!(series.len(), 2, "a first and a last reading: {series:?}");
        assert_eq!((series[0].memory_bytes, series[0].cpu_usec), (None, None));
        assert_eq!(sampler.lock().watched.len(), 1);
        assert_eq!(sampler.finish(second).len(), 2);
    }
}
