//! Rough figures of the storage on the test cluster: insert throughput and memory per entry.
//!
//! A measurement, not a test: it asserts only that the work was done, and is ignored by default.
//! Run it by hand, in release, with
//! `cargo test --release -p registry-storage-redis --test it figures -- --ignored --nocapture`.

use std::time::Instant;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use registry_core::{Entry, Inserted, Storage};
use registry_testkit::sample::{entry, fields};

use crate::{config, fresh_namespace, open, raw};

/// `used_memory` of the master holding `key`'s slot.
fn used_memory(key: &str) -> i64 {
    let mut conn = raw();
    let mut info = redis::cmd("INFO");
    info.arg("memory");
    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        key,
        SlotAddr::Master,
    )));
    let value = conn.route_command(&info, route).expect("INFO memory");
    let text: String = redis::from_redis_value(value).expect("INFO is text");
    text.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

#[test]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
fn figures() {
    let namespace = fresh_namespace("figures");
    let storage = open(&config(&namespace), 0, 1);
    let meta = format!(
        "{}meta",
        registry_storage_redis::shard_prefix(&namespace, 0, 1)
    );
    let (total, batch) = (100_000usize, 1_000usize);
    let prefixes = vec!["SEC-RUL".to_owned(); batch];
    let before = used_memory(&meta);
    let mut bytes = 0usize;
    let mut insert_secs = 0.0;
    for b in 0..total / batch {
        let mut numbers = Vec::new();
        storage
            .allocate(&prefixes, &mut numbers)
            .expect("allocates");
        let entries: Vec<Entry> = numbers
            .iter()
            .map(|&n| {
                let f = fields("SEC", "RULES", "LIVE", "REQUIRED");
                entry(f, n, &format!("rule {n} of batch {b}"))
            })
            .collect();
        bytes += entries
            .iter()
            .map(|e| e.config.len() + e.title.len())
            .sum::<usize>();
        let started = Instant::now();
        let mut out = Vec::new();
        storage.insert(&entries, &mut out).expect("inserts");
        insert_secs += started.elapsed().as_secs_f64();
        assert!(out.iter().all(|o| *o == Inserted::Created));
    }
    let after = used_memory(&meta);
    println!(
        "inserted {total} entries in batches of {batch}: {:.0} entries/s ({:.1} ms per batch); \
         used_memory grew {} bytes: {:.0} bytes per entry (config and title {:.0} bytes)",
        total as f64 / insert_secs,
        insert_secs * 1000.0 / (total / batch) as f64,
        after - before,
        (after - before) as f64 / total as f64,
        bytes as f64 / total as f64,
    );
}
