//! Admission: which waiting test starts next. Tests wait in start order
//! (`--order`); one starts when its job slots (`threads`) are free and its
//! memory demand, with that of the tests running, fits the memory budget.
//! A test that does not fit is passed over for later ones that do, and is
//! told how long it waited. A test that needs more than the whole budget
//! starts once nothing else runs, and runs alone.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::history::History;
use crate::plan::PlannedTest;

/// What a test without a memory limit or history is assumed to need.
const DEFAULT_DEMAND: u64 = 256 << 20;

/// What one test holds while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demand {
    pub memory_bytes: u64,
    /// Job slots (`threads` in isotest.toml).
    pub slots: usize,
}

impl Demand {
    /// The test's memory limit, else its largest recorded peak, else
    /// `DEFAULT_DEMAND`; and its `threads`.
    pub fn of(test: &PlannedTest, history: &History) -> Demand {
        let memory_bytes = test
            .settings
            .memory()
            .or_else(|| history.memory_peak(&test.case.name))
            .unwrap_or(DEFAULT_DEMAND);
        Demand {
            memory_bytes,
            slots: test.settings.threads(),
        }
    }
}

/// A test allowed to start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Admitted {
    /// The test's position in the plan.
    pub index: usize,
    /// How long it was held back because the memory budget was taken.
    pub waited_for_memory: Option<Duration>,
}

/// The waiting tests and what the running ones hold; shared by the job
/// threads.
pub struct Admission {
    slots: usize,
    budget: u64,
    demands: Vec<Demand>,
    state: Mutex<Queue>,
    changed: Condvar,
}

#[derive(Debug)]
struct Queue {
    /// Plan positions, in start order.
    waiting: Vec<usize>,
    slots_in_use: usize,
    memory_in_use: u64,
    running: usize,
    /// When each test was first held back for memory.
    held_since: Vec<Option<Instant>>,
}

/// How often a waiting job thread looks at the stop request.
const POLL: Duration = Duration::from_millis(100);

impl Admission {
    /// `order`: plan positions in start order; `demands` by plan position.
    pub fn new(order: Vec<usize>, demands: Vec<Demand>, slots: usize, budget: u64) -> Admission {
        let held_since = vec![None; demands.len()];
        Admission {
            slots: slots.max(1),
            budget,
            demands,
            state: Mutex::new(Queue {
                waiting: order,
                slots_in_use: 0,
                memory_in_use: 0,
                running: 0,
                held_since,
            }),
            changed: Condvar::new(),
        }
    }

    /// Waits until a test may start and takes it; None once no test is
    /// left or `stopping()` is true.
    pub fn next(&self, stopping: &dyn Fn() -> bool) -> Option<Admitted> {
        let mut queue = self.state.lock().expect("admission lock");
        loop {
            if stopping() || queue.waiting.is_empty() {
                return None;
            }
            if let Some(admitted) = self.take(&mut queue, Instant::now()) {
                return Some(admitted);
            }
            queue = self
                .changed
                .wait_timeout(queue, POLL)
                .expect("admission lock")
                .0;
        }
    }

    /// Gives back what the test at `index` held.
    pub fn finished(&self, index: usize) {
        let demand = self.fitted(index);
        let mut queue = self.state.lock().expect("admission lock");
        queue.slots_in_use -= demand.slots;
        queue.memory_in_use -= demand.memory_bytes;
        queue.running -= 1;
        drop(queue);
        self.changed.notify_all();
    }

    /// The first waiting test that fits, taken off the queue; those passed
    /// over for memory are marked as held back.
    fn take(&self, queue: &mut Queue, now: Instant) -> Option<Admitted> {
        let mut chosen = None;
        for (position, &index) in queue.waiting.iter().enumerate() {
            let demand = self.fitted(index);
            if queue.slots_in_use + demand.slots > self.slots {
                continue;
            }
            let memory_fits = if demand.memory_bytes > self.budget {
                queue.running == 0
            } else {
                queue.memory_in_use + demand.memory_bytes <= self.budget
            };
            if memory_fits {
                chosen = Some(position);
                break;
            }
            queue.held_since[index].get_or_insert(now);
        }
        let index = queue.waiting.remove(chosen?);
        let demand = self.fitted(index);
        queue.slots_in_use += demand.slots;
        queue.memory_in_use += demand.memory_bytes;
        queue.running += 1;
        Some(Admitted {
            index,
            waited_for_memory: queue.held_since[index].map(|since| now - since),
        })
    }

    /// The demand with its slots between 1 and the job count.
    fn fitted(&self, index: usize) -> Demand {
        let demand = self.demands[index];
        Demand {
            slots: demand.slots.clamp(1, self.slots),
            ..demand
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn demand(memory_mib: u64, slots: usize) -> Demand {
        Demand {
            memory_bytes: memory_mib * MIB,
            slots,
        }
    }

    fn admission(demands: &[Demand], slots: usize, budget_mib: u64) -> Admission {
        let order = (0..demands.len()).collect();
        Admission::new(order, demands.to_vec(), slots, budget_mib * MIB)
    }

    fn take(admission: &Admission) -> Option<usize> {
        let mut queue = admission.state.lock().unwrap();
        admission.take(&mut queue, Instant::now()).map(|a| a.index)
    }

    #[test]
    fn big_tests_do_not_overlap_and_small_ones_fill_in() {
        let a = admission(
            &[demand(300, 1), demand(300, 1), demand(10, 1), demand(10, 1)],
            4,
            500,
        );
        assert_eq!(take(&a), Some(0));
        assert_eq!(
            take(&a),
            Some(2),
            "the second big test waits, a small one starts"
        );
        assert_eq!(take(&a), Some(3));
        assert_eq!(
            take(&a),
            None,
            "only the big one is left, and it does not fit"
        );
        a.finished(0);
        let mut queue = a.state.lock().unwrap();
        let admitted = a.take(&mut queue, Instant::now()).unwrap();
        assert_eq!(admitted.index, 1);
        assert!(admitted.waited_for_memory.is_some(), "it says it waited");
    }

    #[test]
    fn jobs_still_cap_the_count() {
        let a = admission(&[demand(1, 1); 3], 2, 1000);
        assert_eq!((take(&a), take(&a), take(&a)), (Some(0), Some(1), None));
        a.finished(1);
        assert_eq!(take(&a), Some(2));
    }

    #[test]
    fn threads_take_several_slots() {
        let a = admission(&[demand(1, 2), demand(1, 1), demand(1, 1)], 2, 1000);
        assert_eq!(take(&a), Some(0));
        assert_eq!(take(&a), None, "the heavy test holds both slots");
        a.finished(0);
        assert_eq!((take(&a), take(&a)), (Some(1), Some(2)));
        let heavy = admission(&[demand(1, 8)], 2, 1000);
        assert_eq!(
            take(&heavy),
            Some(0),
            "more threads than jobs: all the jobs"
        );
    }

    #[test]
    fn a_test_over_the_budget_runs_alone() {
        let a = admission(&[demand(10, 1), demand(900, 1), demand(10, 1)], 4, 500);
        assert_eq!(take(&a), Some(0));
        assert_eq!(
            take(&a),
            Some(2),
            "the huge test waits for an empty machine"
        );
        a.finished(0);
        a.finished(2);
        let b = admission(&[demand(900, 1), demand(1, 1)], 4, 500);
        assert_eq!(take(&b), Some(0));
        assert_eq!(take(&b), None, "nothing starts beside it");
    }

    #[test]
    fn next_returns_none_when_done_or_stopping() {
        let a = admission(&[demand(1, 1)], 1, 10);
        assert_eq!(a.next(&|| true), None);
        let first = a.next(&|| false).unwrap();
        assert_eq!((first.index, first.waited_for_memory), (0, None));
        assert_eq!(a.next(&|| false), None);
    }
}
