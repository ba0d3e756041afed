//! `--partition hash:K/N`, `slice:K/N` and `time:K/N`: one of N disjoint
//! parts of the selected tests, so a CI matrix of N jobs covers every test
//! exactly once. `time` packs the durations of the run history so that
//! the parts take about as long (longest-processing-time first).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Part K (1-based) of N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    kind: Kind,
    part: u64,
    parts: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// By a hash of the name: adding or removing tests never moves others.
    Hash,
    /// Round-robin by position: parts differ in size by at most one.
    Slice,
    /// By recorded duration, so that parts take about as long.
    Time,
}

impl Partition {
    /// Which of the selected tests, `names` in selection order, fall in
    /// this part; `durations` are their recorded durations, where known
    /// (used by `time:`).
    pub(super) fn members(&self, names: &[&str], durations: &[Option<Duration>]) -> Vec<bool> {
        let parts = self.parts as usize;
        let owners: Vec<usize> = match self.kind {
            Kind::Hash => names
                .iter()
                .map(|name| (fnv1a_64(name.as_bytes()) % self.parts) as usize)
                .collect(),
            Kind::Slice => (0..names.len()).map(|position| position % parts).collect(),
            Kind::Time => pack_by_time(names, durations, parts),
        };
        owners
            .into_iter()
            .map(|owner| owner as u64 == self.part - 1)
            .collect()
    }

    /// Whether this is a `time:` partition, which needs run history.
    pub fn by_time(&self) -> bool {
        self.kind == Kind::Time
    }

    /// K, 1-based.
    pub fn part(&self) -> u64 {
        self.part
    }

    /// N.
    pub fn parts(&self) -> u64 {
        self.parts
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = match self.kind {
            Kind::Hash => "hash",
            Kind::Slice => "slice",
            Kind::Time => "time",
        };
        write!(f, "{kind}:{}/{}", self.part, self.parts)
    }
}

/// The part (0-based) of each test: tests without a duration are spread by
/// the hash of their name, counting as the median duration; the others
/// go, longest first, to the part with the least time so far (ties: the
/// lower part; equal durations: by name). The same inputs give the same
/// parts on every machine.
fn pack_by_time(names: &[&str], durations: &[Option<Duration>], parts: usize) -> Vec<usize> {
    let mut known: Vec<Duration> = durations.iter().flatten().copied().collect();
    known.sort();
    let assumed = known.get(known.len() / 2).copied().unwrap_or_default();
    let mut load = vec![Duration::ZERO; parts];
    let mut owners = vec![0; names.len()];
    for (index, name) in names.iter().enumerate() {
        if durations[index].is_none() {
            let owner = (fnv1a_64(name.as_bytes()) % parts as u64) as usize;
            owners[index] = owner;
            load[owner] += assumed;
        }
    }
    let mut longest_first: Vec<usize> = (0..names.len())
        .filter(|&i| durations[i].is_some())
        .collect();
    longest_first.sort_by(|&a, &b| {
        durations[b]
            .cmp(&durations[a])
            .then_with(|| names[a].cmp(names[b]))
    });
    for index in longest_first {
        let (owner, _) = load
            .iter()
            .enumerate()
            .min_by_key(|&(part, load)| (*load, part))
            .expect("at least one part");
        owners[index] = owner;
        load[owner] += durations[index].unwrap_or_default();
    }
    owners
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let error = || format!("`{text}`: expected hash:K/N, slice:K/N or time:K/N with 1 ≤ K ≤ N");
        let (kind, fraction) = text.split_once(':').ok_or_else(error)?;
        let kind = match kind {
            "hash" => Kind::Hash,
            "slice" => Kind::Slice,
            "time" => Kind::Time,
            _ => return Err(error()),
        };
        let (part, parts) = fraction.split_once('/').ok_or_else(error)?;
        let part: u64 = part.parse().map_err(|_| error())?;
        let parts: u64 = parts.parse().map_err(|_| error())?;
        if part == 0 || part > parts {
            return Err(error());
        }
        Ok(Partition { kind, part, parts })
    }
}

/// 64-bit FNV-1a, written out rather than taken from std (whose hashers may
/// change between Rust versions): a test's part must be the same on every
/// machine, platform and isotest version of a CI matrix.
pub(crate) fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count)
            .map(|i| format!("suite{}/test_{i}.sh", i % 7))
            .collect()
    }

    fn partition(text: &str) -> Partition {
        text.parse().unwrap()
    }

    /// Whether the test `name` at `position` of a selection is in `p`.
    fn owns(p: &Partition, position: usize, name: &str) -> bool {
        let mut names = vec!["filler"; position];
        names.push(name);
        p.members(&names, &vec![None; position + 1])[position]
    }

    /// Tests `t0`, `t1`... with `durations` (seconds; negative: unknown).
    fn inputs(durations: &[i64]) -> (Vec<String>, Vec<Option<Duration>>) {
        let names = (0..durations.len()).map(|i| format!("t{i}")).collect();
        let durations = durations
            .iter()
            .map(|&d| u64::try_from(d).ok().map(Duration::from_secs))
            .collect();
        (names, durations)
    }

    /// The parts (0-based) `time:?/parts` gives `durations` (seconds;
    /// negative: unknown), and each part's total.
    fn pack(durations: &[i64], parts: usize) -> (Vec<usize>, Vec<u64>) {
        let (names, durations) = inputs(durations);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let owners = pack_by_time(&names, &durations, parts);
        let mut load = vec![0; parts];
        for (owner, duration) in owners.iter().zip(&durations) {
            load[*owner] += duration.map_or(0, |d| d.as_secs());
        }
        (owners, load)
    }

    /// The best makespan of `durations` over `parts`, by trying every
    /// assignment (small inputs only).
    fn optimum(durations: &[u64], parts: usize) -> u64 {
        let count = parts.pow(durations.len() as u32);
        (0..count)
            .map(|mut code| {
                let mut load = vec![0; parts];
                for d in durations {
                    load[code % parts] += d;
                    code /= parts;
                }
                *load.iter().max().unwrap()
            })
            .min()
            .unwrap()
    }

    #[test]
    fn time_parts_are_within_the_lpt_bound() {
        // A small deterministic generator: the same cases on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        for _ in 0..300 {
            let parts = 2 + next(2) as usize;
            let count = 3 + next(5) as usize;
            let durations: Vec<u64> = (0..count).map(|_| 1 + next(40)).collect();
            let signed: Vec<i64> = durations.iter().map(|&d| d as i64).collect();
            let (_, load) = pack(&signed, parts);
            let makespan = *load.iter().max().unwrap() as f64;
            let best = optimum(&durations, parts) as f64;
            // Graham: LPT is within 4/3 - 1/(3m) of the optimum.
            let bound = (4.0 / 3.0 - 1.0 / (3.0 * parts as f64)) * best;
            assert!(
                makespan <= bound + 1e-9,
                "{durations:?} over {parts}: {makespan} > {bound}"
            );
        }
    }

    #[test]
    fn time_parts_are_deterministic_and_complete() {
        let durations = [30, 1, 1, 12, -1, 7, 7, 7, -1, 2, 25, 3];
        let (owners, load) = pack(&durations, 4);
        assert_eq!(pack(&durations, 4).0, owners, "same inputs, same parts");
        assert_eq!(load.iter().sum::<u64>(), 95);
        let (names, durations) = inputs(&durations);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let members: Vec<Vec<bool>> = (1..=4)
            .map(|k| partition(&format!("time:{k}/4")).members(&names, &durations))
            .collect();
        for i in 0..names.len() {
            let owners = members.iter().filter(|m| m[i]).count();
            assert_eq!(owners, 1, "{} is in {owners} parts", names[i]);
        }
    }

    #[test]
    fn time_parts_balance_a_skewed_suite() {
        // One test a quarter of the total, the rest small: 4 parts of 8.
        let durations = [8, 4, 4, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1];
        let (_, load) = pack(&durations, 4);
        assert_eq!(load, [8, 8, 8, 8]);
    }

    #[test]
    fn tests_without_durations_go_by_hash() {
        let names = ["a.sh", "b.sh", "c.sh", "d.sh", "e.sh"];
        for k in 1..=3 {
            let time = partition(&format!("time:{k}/3")).members(&names, &[None; 5]);
            let hash = partition(&format!("hash:{k}/3")).members(&names, &[None; 5]);
            assert_eq!(time, hash);
        }
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(partition("time:3/4").to_string(), "time:3/4");
        assert!(partition("time:1/2").by_time());
        assert_eq!(
            partition("hash:2/3"),
            Partition {
                kind: Kind::Hash,
                part: 2,
                parts: 3
            }
        );
        assert_eq!(
            partition("slice:1/1"),
            Partition {
                kind: Kind::Slice,
                part: 1,
                parts: 1
            }
        );
    }

    #[test]
    fn malformed_partitions_are_refused() {
        for text in [
            "",
            "hash",
            "hash:",
            "hash:1",
            "hash:/3",
            "hash:1/",
            "hash:0/3",
            "hash:4/3",
            "slice:1/0",
            "slice:a/3",
            "slice:1/3/5",
            "count:1/3",
            "1/3",
            "hash:-1/3",
        ] {
            let error = text.parse::<Partition>().unwrap_err();
            assert_eq!(
                error,
                format!("`{text}`: expected hash:K/N, slice:K/N or time:K/N with 1 ≤ K ≤ N")
            );
        }
    }

    /// Reference values of FNV-1a 64 (from its specification's test
    /// vectors): a changed hash would reshuffle every CI matrix.
    #[test]
    fn fnv1a_64_is_pinned() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a_64(b"db/migrate.sh"), 0xb002_5daa_e795_8c2e);
        assert!(owns(&partition("hash:6/7"), 0, "db/migrate.sh"));
    }

    #[test]
    fn every_test_in_exactly_one_part() {
        let names = names(300);
        for kind in ["hash", "slice"] {
            for parts in 1..=12 {
                let partitions: Vec<Partition> = (1..=parts)
                    .map(|part| partition(&format!("{kind}:{part}/{parts}")))
                    .collect();
                for (position, name) in names.iter().enumerate() {
                    let owners = partitions
                        .iter()
                        .filter(|p| owns(p, position, name))
                        .count();
                    assert_eq!(owners, 1, "{kind}:?/{parts}: {name} in {owners} parts");
                }
            }
        }
    }

    #[test]
    fn slices_are_round_robin() {
        let second: Vec<usize> = (0..10)
            .filter(|&i| owns(&partition("slice:2/3"), i, "ignored"))
            .collect();
        assert_eq!(second, [1, 4, 7]);
    }

    #[test]
    fn hash_parts_do_not_move_when_tests_are_added() {
        let before = names(200);
        // The same names among 100 more, all at other positions.
        let mut after = names(300);
        after.reverse();
        for parts in [2, 3, 5, 8] {
            for part in 1..=parts {
                let p = partition(&format!("hash:{part}/{parts}"));
                for (old, name) in before.iter().enumerate() {
                    let new = after.iter().position(|n| n == name).unwrap();
                    assert_eq!(owns(&p, old, name), owns(&p, new, name), "{name}");
                }
            }
        }
    }

    #[test]
    fn hash_parts_are_roughly_even() {
        let names = names(400);
        for part in 1..=4 {
            let p = partition(&format!("hash:{part}/4"));
            let size = names.iter().filter(|n| owns(&p, 0, n)).count();
            assert!((60..=140).contains(&size), "part {part} has {size} of 400");
        }
    }
}
