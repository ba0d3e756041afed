//! `--order history|name|random:SEED`: the order in which the selected
//! tests start. With history, last run's failures start first (they tell
//! the most, soonest), then the rest longest first, so that the slowest
//! tests do not start last and leave one job running alone at the end;
//! a test history has not seen counts as the median duration.

use std::cmp::Reverse;
use std::str::FromStr;

use crate::history::History;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Failures first, then longest first (plan order without history).
    History,
    /// Plan order: by name, as discovered.
    Name,
    /// Shuffled with this seed: the same seed gives the same order.
    Random(u64),
}

impl FromStr for Order {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "history" => Ok(Order::History),
            "name" => Ok(Order::Name),
            _ => text
                .strip_prefix("random:")
                .and_then(|seed| seed.parse().ok())
                .map(Order::Random)
                .ok_or_else(|| {
                    format!("`{text}`: expected history, name or random:SEED (SEED a number)")
                }),
        }
    }
}

impl Order {
    /// Positions of `names` (the plan, in plan order) in the order the
    /// tests start.
    pub fn start_order(self, names: &[&str], history: &History) -> Vec<usize> {
        let mut order: Vec<usize> = (0..names.len()).collect();
        match self {
            Order::Name => {}
            Order::History => {
                let assumed = history.median_duration().unwrap_or_default();
                // Stable: equal keys keep plan order.
                order.sort_by_cached_key(|&i| {
                    let name = names[i];
                    (
                        !history.failed_last_time(name),
                        Reverse(history.duration(name).unwrap_or(assumed)),
                    )
                });
            }
            Order::Random(seed) => shuffle(&mut order, seed),
        }
        order
    }
}

/// Fisher–Yates with splitmix64, written out so that a seed gives the same
/// order on every machine and isotest version.
fn shuffle(items: &mut [usize], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::history;

    const NAMES: [&str; 5] = ["a.sh", "b.sh", "c.sh", "d.sh", "new.sh"];

    #[test]
    fn parses() {
        assert_eq!("history".parse(), Ok(Order::History));
        assert_eq!("name".parse(), Ok(Order::Name));
        assert_eq!("random:42".parse(), Ok(Order::Random(42)));
        for bad in ["random", "random:", "random:x", "longest"] {
            let error = bad.parse::<Order>().unwrap_err();
            assert!(
                error.contains("expected history, name or random:SEED"),
                "{error}"
            );
        }
    }

    #[test]
    fn failures_first_then_longest_first() {
        let history = history(&[
            ("a.sh", "PASS", 1.0),
            ("b.sh", "PASS", 9.0),
            ("c.sh", "FAIL", 0.5),
            ("d.sh", "PASS", 3.0),
        ]);
        // new.sh counts as the median, 2s: between d.sh and a.sh.
        let order = Order::History.start_order(&NAMES, &history);
        let names: Vec<&str> = order.iter().map(|&i| NAMES[i]).collect();
        assert_eq!(names, ["c.sh", "b.sh", "d.sh", "new.sh", "a.sh"]);
    }

    #[test]
    fn without_history_plan_order() {
        let order = Order::History.start_order(&NAMES, &History::default());
        assert_eq!(order, [0, 1, 2, 3, 4]);
        assert_eq!(
            Order::Name.start_order(&NAMES, &history(&[("e", "FAIL", 1.0)])),
            order
        );
    }

    #[test]
    fn random_is_a_seeded_permutation() {
        let empty = History::default();
        let one = Order::Random(7).start_order(&NAMES, &empty);
        assert_eq!(one, Order::Random(7).start_order(&NAMES, &empty));
        let mut sorted = one.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3, 4]);
        let differs = (0..20).any(|seed| Order::Random(seed).start_order(&NAMES, &empty) != one);
        assert!(differs, "seeds give different orders");
    }
}
