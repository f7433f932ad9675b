//! Storage formats: a shard made by an earlier release keeps its keys and is written as that
//! release wrote it; a new one is of this build's format, its shards spread over the masters.

use redis::Commands;
use registry_core::{Inserted, Storage};
use registry_testkit::sample::{entry, fields};

use crate::{config, fresh_namespace, open, raw};

#[test]
fn a_shard_of_an_earlier_release_keeps_its_tag_and_its_entry_format() {
    let namespace = fresh_namespace("legacy");
    // What an earlier release's creation left: the shard count under the old tag, no format.
    let meta = format!("{{{namespace}/0}}:meta");
    let () = raw().hset(&meta, "shards", 1).expect("writes the layout");
    let storage = open(&config(&namespace), 0, 1);
    let e = entry(
        fields("SEC", "RULES", "LIVE", "REQUIRED"),
        1,
        "an old registry's rule",
    );
    let mut out = Vec::new();
    storage
        .insert(std::slice::from_ref(&e), &mut out)
        .expect("inserts");
    assert_eq!(out, [Inserted::Created]);
    let stored: Vec<u8> = raw()
        .lindex(format!("{{{namespace}/0}}:e:SEC-RUL a1"), -1)
        .expect("reads the entry under the old tag");
    assert_eq!(
        stored.first(),
        Some(&2),
        "entry format 2, as the earlier release writes"
    );
    let format: Option<String> = raw().hget(&meta, "format").expect("reads");
    assert_eq!(format, None, "opening it changed no format");
}

#[test]
fn a_new_registrys_shards_divide_evenly_over_the_masters() {
    let namespace = fresh_namespace("spread");
    let shards = 12;
    let mut masters = Vec::new();
    for shard in 0..shards {
        drop(open(&config(&namespace), shard, shards));
        let meta = format!(
            "{}meta",
            registry_storage_redis::shard_prefix(&namespace, shard, shards)
        );
        let format: String = raw().hget(&meta, "format").expect("reads the layout");
        assert_eq!(format, "2");
        // The master serving the slot, as the cluster says.
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&meta)
            .query(&mut raw())
            .expect("CLUSTER KEYSLOT");
        masters.push(master_of(slot));
    }
    let mut counts = std::collections::BTreeMap::new();
    for m in &masters {
        *counts.entry(m.clone()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 4), "{counts:?}");
}

/// The master (host:port) serving `slot`, from `CLUSTER SLOTS`.
fn master_of(slot: u16) -> String {
    let ranges: Vec<(u16, u16, (String, u16))> = {
        let value: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut raw())
            .expect("CLUSTER SLOTS");
        let redis::Value::Array(rows) = value else {
            panic!("CLUSTER SLOTS is an array: {value:?}")
        };
        rows.into_iter()
            .map(|row| {
                let redis::Value::Array(parts) = row else {
                    panic!("a slot range is an array: {row:?}")
                };
                let from: u16 = redis::from_redis_value(parts[0].clone()).expect("from");
                let to: u16 = redis::from_redis_value(parts[1].clone()).expect("to");
                let redis::Value::Array(master) = parts[2].clone() else {
                    panic!("a master is an array")
                };
                let host: String = redis::from_redis_value(master[0].clone()).expect("host");
                let port: u16 = redis::from_redis_value(master[1].clone()).expect("port");
                (from, to, (host, port))
            })
            .collect()
    };
    ranges
        .into_iter()
        .find(|(from, to, _)| (*from..=*to).contains(&slot))
        .map(|(_, _, (host, port))| format!("{host}:{port}"))
        .expect("every slot is served")
}
