//! The conformance suite of [`Router`]: shards in range, the same shard for the same key, and an
//! error for a registry of no shards.

use registry_core::{ErrorCode, Router, StageKind};

use crate::{Violation, one_each};

const STAGE: StageKind = StageKind::Router;

/// Well-spread keys (splitmix64), standing in for request fingerprints, plus the extremes.
fn keys(n: usize) -> Vec<u64> {
    let mut state = 0u64;
    let mut keys: Vec<u64> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect();
    keys.extend([0, 1, u64::MAX, u64::MAX - 1, 1 << 63]);
    keys
}

fn route(router: &dyn Router, keys: &[u64], shards: u32) -> Result<Vec<u32>, Violation> {
    one_each(STAGE, "route", keys.len(), u32::MAX, |out| {
        router.route(keys, shards, out)
    })
}

/// Runs every check against `router`.
///
/// Beyond the written contract, it checks that keys spread over the shards at all (each of four
/// shards gets at least an eighth of 10,000 well-spread keys): a router that sends everything to
/// one shard meets the letter of the trait but defeats sharding.
///
/// # Errors
/// A [`Violation`] naming the rule, at the first contract the router breaks.
pub fn check(router: &dyn Router) -> Result<(), Violation> {
    zero_shards(router)?;
    let keys = keys(10_000);
    for shards in [1, 2, 3, 4, 7, 16, 1000, u32::MAX] {
        consistent(router, &keys, shards)?;
    }

    let mut counts = [0usize; 4];
    for shard in route(router, &keys, 4)? {
        if let Some(c) = counts.get_mut(shard as usize) {
            *c += 1;
        }
    }
    ensure!(
        STAGE,
        counts.iter().all(|&c| c >= keys.len() / 8),
        "route must spread well-spread keys over the shards: 4 shards got {counts:?}"
    );
    Ok(())
}

/// Runs a short subset of [`check`]: the error for 0 shards, and 1,000 keys routed in range and
/// consistently to 1, 4 and 7 shards.
///
/// # Errors
/// As [`check`], at the first contract the router breaks in the subset.
pub fn smoke(router: &dyn Router) -> Result<(), Violation> {
    zero_shards(router)?;
    let keys = keys(1000);
    for shards in [1, 4, 7] {
        consistent(router, &keys, shards)?;
    }
    Ok(())
}

fn zero_shards(router: &dyn Router) -> Result<(), Violation> {
    let mut out = vec![7];
    match router.route(&[1, 2, 3], 0, &mut out) {
        Ok(()) => fail!(STAGE, "route with 0 shards must fail"),
        Err(e) => ensure!(
            STAGE,
            e.code == ErrorCode::Invalid,
            "route with 0 shards must fail with code Invalid, not {:?}",
            e.code
        ),
    }
    Ok(())
}

/// Shards in range, the same again, whatever the rest of the batch, alone as in a batch.
fn consistent(router: &dyn Router, keys: &[u64], shards: u32) -> Result<(), Violation> {
    let batched = route(router, keys, shards)?;
    if let Some((key, shard)) = keys.iter().zip(&batched).find(|&(_, &s)| s >= shards) {
        fail!(
            STAGE,
            "route sent key {key} to shard {shard}: shards are in 0..{shards}"
        );
    }
    ensure!(
        STAGE,
        route(router, keys, shards)? == batched,
        "route must give the same shards when asked again (shards = {shards})"
    );
    // A key's shard must not depend on the other keys of its batch.
    let reversed: Vec<u64> = keys.iter().rev().copied().collect();
    let mut back = route(router, &reversed, shards)?;
    back.reverse();
    ensure!(
        STAGE,
        back == batched,
        "route must give each key the same shard whatever else is in the batch (shards = \
         {shards}, keys in reverse order)"
    );
    for (&key, &shard) in keys.iter().zip(&batched).step_by(997) {
        ensure!(
            STAGE,
            route(router, &[key], shards)? == [shard],
            "route must give key {key} the same shard alone as in a batch (shards = {shards})"
        );
    }
    Ok(())
}
