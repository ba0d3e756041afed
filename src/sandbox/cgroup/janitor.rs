//! Removes finished tests' cgroups on a thread of its own: a job slot goes
//! on to its next test while the groups are removed (a few rmdirs per test,
//! tens of microseconds each, longer while a group's last processes exit).
//! Dropping the janitor waits until every group handed to it is gone.

use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use super::TestCgroup;

#[derive(Debug)]
pub(super) struct Janitor {
    queue: Option<Sender<TestCgroup>>,
    thread: Option<JoinHandle<()>>,
}

impl Janitor {
    pub fn start() -> Janitor {
        let (queue, groups) = mpsc::channel::<TestCgroup>();
        // Dropping a group removes it.
        let thread = std::thread::Builder::new()
            .name("cgroup-janitor".into())
            .spawn(move || groups.into_iter().for_each(drop));
        match thread {
            Ok(thread) => Janitor {
                queue: Some(queue),
                thread: Some(thread),
            },
            // Without a thread, groups are removed where they are handed in.
            Err(_) => Janitor {
                queue: None,
                thread: None,
            },
        }
    }

    pub fn remove(&self, group: TestCgroup) {
        if let Some(queue) = &self.queue {
            // A send fails only if the thread is gone; then `group` comes
            // back and is dropped here.
            let _ = queue.send(group);
        }
    }

    /// Waits until every group handed in is removed.
    pub fn finish(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        self.finish();
    }
}
