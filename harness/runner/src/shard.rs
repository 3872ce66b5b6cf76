//! `--shard i/n`: which cases one of n parallel CI jobs runs.
//!
//! The rule: a case belongs to shard `(fnv1a64(case id) mod n) + 1`. It
//! depends on the case id alone, not on the case's position or on which
//! other cases exist, so adding or removing a case never moves another one
//! between shards (a flaky case stays on the bench it was seen on), and a
//! case runs in the same shard on every rig. `i` counts from 1, as GitLab's
//! `CI_NODE_INDEX` and `CI_NODE_TOTAL` do. The union of shards 1..=n is every
//! case, and no case is in two shards.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The environment variable read when `--shard` is not given.
pub const SHARD_ENV: &str = "METERBENCH_SHARD";

/// Why `--shard` or `$METERBENCH_SHARD` names no shard.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShardError {
    #[error("the shard count n of `i/n` must be at least 1")]
    NoShards,
    #[error("shard {index}/{total} is out of range: i counts from 1 to {total}")]
    OutOfRange { index: u64, total: u64 },
    #[error("expected a shard as i/n (e.g. 2/4), found `{0}`")]
    NotIOverN(String),
    #[error("{SHARD_ENV}={value}: {error}")]
    InEnv {
        value: String,
        error: Box<ShardError>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    total: u64,
}

impl Shard {
    pub fn new(index: u64, total: u64) -> Result<Shard, ShardError> {
        if total == 0 {
            return Err(ShardError::NoShards);
        }
        if index == 0 || index > total {
            return Err(ShardError::OutOfRange { index, total });
        }
        Ok(Shard { index, total })
    }

    /// `--shard` if given, else `$METERBENCH_SHARD` if set and not empty.
    pub fn from_flag_or_env(flag: Option<Shard>) -> Result<Option<Shard>, ShardError> {
        if flag.is_some() {
            return Ok(flag);
        }
        match std::env::var(SHARD_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse().map(Some).map_err(|e| ShardError::InEnv {
                value: v.clone(),
                error: Box::new(e),
            }),
            _ => Ok(None),
        }
    }

    /// Whether the case with this id runs in this shard.
    pub fn contains(&self, case_id: &str) -> bool {
        fnv1a64(case_id.as_bytes()) % self.total + 1 == self.index
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::NotIOverN(text.to_owned());
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// FNV-1a, 64 bits: tiny, fixed forever (unlike std's hasher, which may
/// change between Rust releases and would reshuffle every shard).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite (Fowler/Noll/Vo, fnv 5.0 test vectors).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn shards_parse_from_one_based_i_over_n() {
        assert_eq!("2/4".parse(), Shard::new(2, 4));
        assert_eq!(" 1 / 1 ".parse::<Shard>().unwrap().to_string(), "1/1");
        for (bad, says) in [
            ("0/3", "out of range: i counts from 1 to 3"),
            ("4/3", "out of range"),
            ("1/0", "at least 1"),
            ("2", "expected a shard as i/n"),
            ("a/b", "found `a/b`"),
            ("-1/2", "expected a shard"),
        ] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("case-{i}")).collect()
    }

    #[test]
    fn shards_are_disjoint_and_cover_every_case() {
        let cases = ids(200);
        for total in 1..=6 {
            let shards: Vec<Shard> = (1..=total).map(|i| Shard::new(i, total).unwrap()).collect();
            for id in &cases {
                let owners = shards.iter().filter(|s| s.contains(id)).count();
                assert_eq!(owners, 1, "{id} in {owners} of {total} shards");
            }
            // Every shard gets a fair part of 200 cases.
            for s in &shards {
                let n = cases.iter().filter(|id| s.contains(id)).count();
                assert!(n >= 200 / total as usize / 2, "shard {s} has {n}");
            }
        }
    }

    #[test]
    fn the_split_is_by_id_so_a_new_case_moves_no_other() {
        let s = Shard::new(1, 3).unwrap();
        let before: Vec<bool> = ids(50).iter().map(|id| s.contains(id)).collect();
        let mut more = vec!["a-new-case".to_string()];
        more.extend(ids(50));
        let after: Vec<bool> = more[1..].iter().map(|id| s.contains(id)).collect();
        assert_eq!(before, after);
        // Fixed forever: "a" hashes to an even value (shard 1 of 2), the
        // empty id to an odd one (shard 2 of 2); see the vectors above.
        let (first, second) = (Shard::new(1, 2).unwrap(), Shard::new(2, 2).unwrap());
        assert!(first.contains("a") && !second.contains("a"));
        assert!(second.contains("") && !first.contains(""));
    }
}
