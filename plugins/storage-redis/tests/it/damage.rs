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
