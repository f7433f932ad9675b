//! Durability with `WAIT`, and a cluster that cannot be reached.

use std::time::{Duration, Instant};

use registry_core::{ErrorCode, FromConfig, Inserted, Storage};
use registry_storage_redis::{Config, RedisStorage};
use registry_testkit::sample::{entry, fields};

use crate::{config, fresh_namespace, open, setup};

fn one_entry(storage: &RedisStorage, title: &str) -> registry_core::Entry {
    let mut numbers = Vec::new();
    storage
        .allocate(&["GOV-RUL".to_owned()], &mut numbers)
        .expect("allocates");
    entry(fields("GOV", "RULES", "DEV", "LIVE"), numbers[0], title)
}

#[test]
fn one_replica_acknowledges_on_a_three_by_three_cluster() {
    let config = Config {
        wait_replicas: 1,
        ..config(&fresh_namespace("wait1"))
    };
    let storage = open(&config, 0, 4);
    let e = one_entry(&storage, "review access every quarter");
    let mut out = Vec::new();
    storage
        .insert(std::slice::from_ref(&e), &mut out)
        .expect("one replica has it");
    assert_eq!(out, [Inserted::Created]);
}

#[test]
fn more_replicas_than_exist_fail_clearly_and_a_retry_finds_the_entry() {
    let config = Config {
        wait_replicas: 5,
        wait_timeout_ms: 100,
        ..config(&fresh_namespace("wait5"))
    };
    let storage = open(&config, 0, 4);
    let plain = open(
        &Config {
            wait_replicas: 0,
            ..config.clone()
        },
        0,
        4,
    );
    let e = one_entry(&plain, "rotate the signing keys");
    let mut out = Vec::new();
    let err = storage
        .insert(std::slice::from_ref(&e), &mut out)
        .expect_err("a shard has one replica");
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(out.is_empty());
    assert!(
        err.message
            .contains("of 5 replicas acknowledged within 100 ms"),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("retrying it reports its entries as already stored"),
        "{}",
        err.message
    );
    assert!(!err.message.contains('\n'));
    // The write is on the master: inserting the entry again finds it.
    let mut again = Vec::new();
    plain
        .insert(std::slice::from_ref(&e), &mut again)
        .expect("inserts");
    assert_eq!(again, [Inserted::Existing(e.clone())]);
    let mut got = Vec::new();
    plain
        .get(std::slice::from_ref(&e.header.id), &mut got)
        .expect("reads");
    assert_eq!(got, [Some(e)]);
}

#[test]
fn an_unreachable_cluster_fails_in_one_line_within_the_retries() {
    // Port 1 on loopback refuses connections at once.
    let config = Config {
        nodes: vec!["redis://127.0.0.1:1".to_owned()],
        namespace: fresh_namespace("down"),
        retries: 3,
        retry_wait_min_ms: 10,
        retry_wait_max_ms: 40,
        connect_timeout_ms: 200,
        response_timeout_ms: 200,
        ..Config::default()
    };
    let started = Instant::now();
    let err = RedisStorage::from_config(config, &setup(0, 1)).expect_err("nothing listens");
    let took = started.elapsed();
    assert_eq!(err.code, ErrorCode::Unavailable, "{}", err.message);
    assert!(
        err.message
            .starts_with("redis cluster unavailable: cannot open shard 0"),
        "{}",
        err.message
    );
    assert!(err.message.contains("after 4 attempts"), "{}", err.message);
    assert!(
        err.message.contains("redis://127.0.0.1:1"),
        "{}",
        err.message
    );
    assert!(!err.message.contains('\n'), "{}", err.message);
    // Three waits of 10, 20 and 40 ms, plus the refused connections.
    assert!(took >= Duration::from_millis(70), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn bad_configs_fail_as_config_errors() {
    let mut wrong_url = config(&fresh_namespace("bad"));
    wrong_url.nodes = vec!["127.0.0.1:7100".to_owned()];
    let mut braces = config("a{b}");
    braces.nodes = vec!["redis://127.0.0.1:7100".to_owned()];
    for (config, want) in [
        (Config::default(), "nodes is empty"),
        (wrong_url, "is not a redis:// url"),
        (braces, "namespace `a{b}` cannot name keys"),
    ] {
        let err = RedisStorage::from_config(config, &setup(0, 1)).expect_err(want);
        assert_eq!(err.code, ErrorCode::Config);
        assert!(err.message.contains(want), "{}", err.message);
    }
}

#[test]
fn a_shard_refuses_another_shard_count() {
    let config = config(&fresh_namespace("layout"));
    // A registry's shard 0 records the count, and is created first.
    drop(open(&config, 0, 3));
    drop(open(&config, 1, 3));
    let err = RedisStorage::from_config(config, &setup(1, 4)).expect_err("other layout");
    assert_eq!(err.code, ErrorCode::Config);
    assert!(err.message.contains("shards = 3"), "{}", err.message);
}
