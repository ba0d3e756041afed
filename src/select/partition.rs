//! `--partition hash:K/N` and `slice:K/N`: one of N disjoint parts of the
//! selected tests, so a CI matrix of N jobs covers every test exactly once.

use std::str::FromStr;

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
}

impl Partition {
    /// Whether the test at `position` of the selected list, named `name`,
    /// falls in this part.
    pub(super) fn contains(&self, position: usize, name: &str) -> bool {
        let key = match self.kind {
            Kind::Hash => fnv1a_64(name.as_bytes()),
            Kind::Slice => position as u64,
        };
        key % self.parts == self.part - 1
    }
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let error = || format!("`{text}`: expected hash:K/N or slice:K/N with 1 ≤ K ≤ N");
        let (kind, fraction) = text.split_once(':').ok_or_else(error)?;
        let kind = match kind {
            "hash" => Kind::Hash,
            "slice" => Kind::Slice,
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
fn fnv1a_64(bytes: &[u8]) -> u64 {
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

    #[test]
    fn parses_both_kinds() {
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
                format!("`{text}`: expected hash:K/N or slice:K/N with 1 ≤ K ≤ N")
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
        assert!(partition("hash:6/7").contains(0, "db/migrate.sh"));
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
                        .filter(|p| p.contains(position, name))
                        .count();
                    assert_eq!(owners, 1, "{kind}:?/{parts}: {name} in {owners} parts");
                }
            }
        }
    }

    #[test]
    fn slices_are_round_robin() {
        let second: Vec<usize> = (0..10)
            .filter(|&i| partition("slice:2/3").contains(i, "ignored"))
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
                    assert_eq!(p.contains(old, name), p.contains(new, name), "{name}");
                }
            }
        }
    }

    #[test]
    fn hash_parts_are_roughly_even() {
        let names = names(400);
        for part in 1..=4 {
            let p = partition(&format!("hash:{part}/4"));
            let size = names.iter().filter(|n| p.contains(0, n)).count();
            assert!((60..=140).contains(&size), "part {part} has {size} of 400");
        }
    }
}
