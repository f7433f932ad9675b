//! A [`registry_core::Router`] that spreads keys over shards with jump consistent hashing.
//!
//! Jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm",
//! 2014) maps a 64-bit key to one of K buckets with no table and no memory, spreads keys evenly,
//! and when K grows to K + 1 moves only the keys that the new bucket takes: about 1/(K + 1) of
//! them. That is what a registry wants when it adds a shard: most entries stay where they are.
//!
//! Rejected: `key % K`, which is as fast but moves about K/(K + 1) of the keys when K changes, and
//! a hash ring, which needs many virtual nodes (memory, setup) to reach the same balance.

use registry_core::{ErrorCode, FromConfig, Router, Setup, StageError, StageResult};
use serde::Deserialize;

/// The `[router.config]` table of `registry.toml`. It has no keys yet: any key is an error, so
/// a setting meant for another router is not silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

/// Routes each key with jump consistent hashing. Stateless: one value serves every thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashRouter;

impl HashRouter {
    /// A router; it has nothing to configure.
    pub fn new() -> HashRouter {
        HashRouter
    }
}

impl FromConfig for HashRouter {
    type Config = Config;

    fn from_config(_config: Config, _setup: &Setup) -> StageResult<HashRouter> {
        Ok(HashRouter)
    }
}

impl Router for HashRouter {
    fn route(&self, keys: &[u64], shards: u32, out: &mut Vec<u32>) -> StageResult<()> {
        if shards == 0 {
            return Err(StageError::new(
                ErrorCode::Invalid,
                "shard count is 0: a registry has at least one shard",
            ));
        }
        out.reserve(keys.len());
        out.extend(keys.iter().map(|&key| jump(key, shards)));
        Ok(())
    }
}

/// The bucket of `key` among `buckets` (at least 1), as in the paper's reference code.
///
/// Each step draws the next bucket the key would jump to as the bucket count grows, from a linear
/// congruential generator seeded by the key; the last jump below `buckets` is the answer. It takes
/// about `ln(buckets)` steps.
fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // The paper's arithmetic in f64: (bucket + 1) * 2^31 / ((key >> 33) + 1). The top 31
        // bits of the key plus one is at most 2^31, so the quotient is at least bucket + 1 and
        // the loop always moves forward.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        {
            next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
        }
    }
    // `bucket` is the last value of `next` below `buckets`, so it is in 0..buckets.
    u32::try_from(bucket).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-spread test keys (splitmix64), standing in for request fingerprints.
    fn keys(n: usize) -> Vec<u64> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..n)
            .map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            })
            .collect()
    }

    fn route(keys: &[u64], shards: u32) -> Vec<u32> {
        let mut out = Vec::new();
        HashRouter
            .route(keys, shards, &mut out)
            .expect("a positive shard count routes");
        out
    }

    #[test]
    fn conformance() {
        registry_testkit::router::check(&HashRouter);
    }

    #[test]
    fn zero_shards_is_invalid() {
        let mut out = Vec::new();
        let err = HashRouter
            .route(&[1, 2], 0, &mut out)
            .expect_err("0 shards must fail");
        assert_eq!(err.code, ErrorCode::Invalid);
        assert!(out.is_empty());
    }

    #[test]
    fn shards_are_in_range() {
        let keys = keys(10_000);
        for shards in [1, 2, 3, 7, 16, 1000, u32::MAX] {
            let out = route(&keys, shards);
            assert_eq!(out.len(), keys.len());
            assert!(out.iter().all(|&s| s < shards), "shards={shards}");
        }
        assert!(route(&[0, u64::MAX, 1], 1).iter().all(|&s| s == 0));
    }

    #[test]
    fn same_key_same_shard() {
        let keys = keys(1000);
        let batched = route(&keys, 5);
        let single: Vec<u32> = keys.iter().map(|&k| route(&[k], 5)[0]).collect();
        assert_eq!(batched, single);
        assert_eq!(batched, route(&keys, 5));
    }

    #[test]
    fn known_values() {
        // Values of the paper's reference implementation, so a change of algorithm (which would
        // send stored entries to the wrong shard) cannot pass unnoticed.
        let cases: [(u64, u32, u32); 7] = [
            (0, 1, 0),
            (0, 10, 0),
            (1, 10, 6),
            (0xdead_beef, 10, 5),
            (u64::MAX, 100, 92),
            (42, 1000, 571),
            (0x0123_4567_89ab_cdef, 4096, 1504),
        ];
        for (key, shards, want) in cases {
            assert_eq!(route(&[key], shards), [want], "key={key} shards={shards}");
        }
    }

    #[test]
    fn balanced() {
        let keys = keys(100_000);
        let mut counts = [0usize; 4];
        for s in route(&keys, 4) {
            counts[s as usize] += 1;
        }
        for (shard, &n) in counts.iter().enumerate() {
            // Expected 25,000 each; a few percent either way is chance.
            assert!(
                (24_000..=26_000).contains(&n),
                "shard {shard} got {n} of 100000 keys: {counts:?}"
            );
        }
    }

    #[test]
    fn growing_moves_few_keys() {
        let keys = keys(100_000);
        for k in [1u32, 2, 4, 9] {
            let before = route(&keys, k);
            let after = route(&keys, k + 1);
            let moved: Vec<u32> = before
                .iter()
                .zip(&after)
                .filter(|(a, b)| a != b)
                .map(|(_, &b)| b)
                .collect();
            // Only the new shard takes keys, and about 1/(K + 1) of them.
            assert!(
                moved.iter().all(|&s| s == k),
                "K={k}: a key moved between old shards"
            );
            let share = moved.len() as f64 / keys.len() as f64;
            let expected = 1.0 / f64::from(k + 1);
            assert!(
                (share - expected).abs() < 0.01,
                "K={k}: moved {share:.4} of the keys, expected about {expected:.4}"
            );
        }
    }
}
