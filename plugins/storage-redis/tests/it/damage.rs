//! Stored data that is not what the storage wrote: reads and writes fail with code `Storage`,
//! naming the entry, and a write leaves the shard as it was.

use redis::Commands;
use registry_core::{EntryId, ErrorCode, Storage};
use registry_testkit::sample::{entry, fields, revise};

use crate::{config, fresh_namespace, open, raw};

#[test]
fn damaged_entries_are_reported_with_their_id() {
    let namespace = fresh_namespace("damage");
    let storage = open(&config(&namespace), 0, 1);
    let good = entry(fields("SEC", "RULES", "LIVE", "REQUIRED"), 4, "block ssh");
    let mut out = Vec::new();
    storage
        .insert(std::slice::from_ref(&good), &mut out)
        .expect("inserts");
    let key = format!(
        "{}e:SEC-RUL a4",
        registry_storage_redis::shard_prefix(&namespace, 0, 1)
    );
    let mut conn = raw();
    let () = conn
        .rpush(&key, &[1u8, 0xff, 0, 0][..])
        .expect("damages the entry");

    let mut got = Vec::new();
    let err = storage
        .get(&[EntryId::new("SEC-RUL", 4)], &mut got)
        .expect_err("damaged");
    assert_eq!(err.code, ErrorCode::Storage);
    assert!(
        err.message.starts_with("entry SEC-RUL-004 is damaged: "),
        "{}",
        err.message
    );
    assert!(got.is_empty());

    // The update script reads the damaged revision's fields before writing anything.
    let mut outcomes = Vec::new();
    let mut next = revise(&good, "DEPRECATED");
    next.revision = 3;
    let err = storage
        .update(std::slice::from_ref(&next), &mut outcomes)
        .expect_err("damaged");
    assert_eq!(err.code, ErrorCode::Storage, "{}", err.message);
    assert!(
        err.message
            .contains("entry SEC-RUL a4 holds bytes that do not parse"),
        "{}",
        err.message
    );
    let len: usize = conn.llen(&key).expect("reads");
    assert_eq!(len, 2, "a failed update wrote nothing");
}

/// `reindex` rebuilds a shard's id set, fingerprint hash and field indexes from its entries,
/// whatever was lost of them, and leaves no staging key behind.
#[test]
fn lost_indexes_are_rebuilt_from_the_entries() {
    let namespace = fresh_namespace("reindex");
    let storage = open(&config(&namespace), 0, 1);
    let all: Vec<_> = (1..=30u64)
        .map(|n| {
            let status = if n % 3 == 0 { "DEPRECATED" } else { "REQUIRED" };
            entry(
                fields("SEC", "RULES", "LIVE", status),
                n,
                &format!("rule {n}"),
            )
        })
        .collect();
    let mut out = Vec::new();
    storage.insert(&all, &mut out).expect("inserts");
    let prefix = registry_storage_redis::shard_prefix(&namespace, 0, 1);
    let mut conn = raw();
    // Lost: the whole status index for DEPRECATED, one fingerprint, one member of the id set.
    let () = conn
        .del(format!("{prefix}ix:status:DEPRECATED"))
        .expect("deletes");
    let () = conn
        .hdel(format!("{prefix}fp"), &all[4].fingerprint.0[..])
        .expect("deletes");
    let () = conn
        .zrem(format!("{prefix}ids"), "SEC-RUL a7")
        .expect("deletes");
    let deprecated = |s: &dyn Storage| {
        let mut q = registry_core::ListQuery {
            limit: 100,
            ..registry_core::ListQuery::default()
        };
        q.filter.status = Some("DEPRECATED".into());
        let mut got = Vec::new();
        s.list(&q, &mut got).expect("lists");
        got.len()
    };
    assert_eq!(deprecated(&storage), 0);

    assert_eq!(storage.reindex(), Ok(30));
    assert_eq!(deprecated(&storage), 10);
    let mut found = Vec::new();
    storage
        .find(&[all[4].fingerprint], &mut found)
        .expect("finds");
    assert_eq!(found, [Some(all[4].clone())]);
    let mut listed = Vec::new();
    storage
        .list(
            &registry_core::ListQuery {
                limit: 100,
                ..registry_core::ListQuery::default()
            },
            &mut listed,
        )
        .expect("lists");
    assert_eq!(listed, all, "every entry listed again, in id order");
    let staged: bool = conn.exists(format!("{prefix}rb:ids")).expect("reads");
    assert!(!staged);
}
