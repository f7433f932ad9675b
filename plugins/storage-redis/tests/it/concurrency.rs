//! Two hosts on one shard: each a storage object of its own (its own connections), on its own
//! thread, as two `registry` processes on two machines would be.

use std::sync::Barrier;

use registry_core::{Entry, EntryId, ErrorCode, Inserted, Storage};
use registry_testkit::sample::{entry, fields, revise};

use crate::{config, fresh_namespace, open, raw};

fn allocate(s: &dyn Storage, prefixes: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    s.allocate(prefixes, &mut out).expect("allocates");
    out
}

#[test]
fn two_hosts_inserting_at_once_get_distinct_dense_ids() {
    let config = config(&fresh_namespace("hosts"));
    let (shard, shards) = (1, 3);
    // Each host numbers in shard 0 and stores in shard 1, as the pipeline does for entries whose
    // fingerprints route there: allocate, place, insert.
    let hosts = [
        (open(&config, 0, shards), open(&config, shard, shards)),
        (open(&config, 0, shards), open(&config, shard, shards)),
    ];
    let (batches, size) = (10, 20);
    let start = Barrier::new(hosts.len());
    let stored: Vec<Vec<Entry>> = std::thread::scope(|scope| {
        let handles: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(host, (zero, storage))| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let mut mine: Vec<Entry> = Vec::new();
                    for b in 0..batches {
                        let prefixes = vec!["SEC-RUL".to_owned(); size];
                        let numbers = allocate(zero, &prefixes);
                        assert!(
                            numbers.windows(2).all(|w| w[1] == w[0] + 1),
                            "one call numbers consecutively: {numbers:?}"
                        );
                        assert!(
                            mine.last()
                                .is_none_or(|e| e.header.id.number() < numbers[0]),
                            "a host's later allocation numbers higher"
                        );
                        let batch: Vec<Entry> = numbers
                            .iter()
                            .enumerate()
                            .map(|(i, &n)| {
                                let f = fields("SEC", "RULES", "LIVE", "REQUIRED");
                                entry(f, n, &format!("host {host} batch {b} rule {i}"))
                            })
                            .collect();
                        let ids: Vec<EntryId> = batch.iter().map(|e| e.header.id.clone()).collect();
                        zero.place(&ids, &vec![shard; ids.len()]).expect("places");
                        let mut out = Vec::new();
                        storage.insert(&batch, &mut out).expect("inserts");
                        assert!(out.iter().all(|o| *o == Inserted::Created), "{out:?}");
                        mine.extend(batch);
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("host thread"))
            .collect()
    });
    let all: Vec<&Entry> = stored.iter().flatten().collect();
    let mut numbers: Vec<u64> = all.iter().map(|e| e.header.id.number()).collect();
    numbers.sort_unstable();
    let total = (2 * batches * size) as u64;
    assert_eq!(
        numbers,
        (1..=total).collect::<Vec<_>>(),
        "two hosts were given the same id, or left a gap without a failure"
    );
    // Each host finds every entry where shard 0 says it is, its own and the other's.
    let wanted: Vec<EntryId> = all.iter().map(|e| e.header.id.clone()).collect();
    for (zero, storage) in &hosts {
        let mut located = Vec::new();
        zero.locate(&wanted, &mut located).expect("locates");
        assert!(located.iter().all(|&s| s == shard), "{located:?}");
        let mut got = Vec::new();
        storage.get(&wanted, &mut got).expect("reads");
        let want: Vec<Option<Entry>> = all.iter().map(|&e| Some(e.clone())).collect();
        assert_eq!(got, want);
    }
}

/// One host's try in one round: the revision, the outcome, and the entry it tried to store.
type Try = (u32, Result<(), ErrorCode>, Entry);

#[test]
fn concurrent_updates_of_one_entry_lose_nothing() {
    let config = config(&fresh_namespace("cas"));
    let hosts = [open(&config, 0, 1), open(&config, 0, 1)];
    let number = allocate(&hosts[0], &["OPS-SCR".to_owned()])[0];
    let first = entry(
        fields("OPS", "SCRIPT", "COMPACT", "STANDARD"),
        number,
        "restart the queue workers",
    );
    let mut out = Vec::new();
    hosts[0]
        .insert(std::slice::from_ref(&first), &mut out)
        .expect("inserts");
    let rounds = 25;
    let barrier = Barrier::new(2);
    // Each round, both hosts read the latest revision and try to store the next, each with its
    // own content: exactly one may win the revision.
    let outcomes: Vec<Vec<Try>> = std::thread::scope(|scope| {
        let handles: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(host, storage)| {
                let barrier = &barrier;
                let id = first.header.id.clone();
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..rounds {
                        let mut latest = Vec::new();
                        storage
                            .get(std::slice::from_ref(&id), &mut latest)
                            .expect("reads");
                        let latest = latest.pop().flatten().expect("stored");
                        let status = if host == 0 { "LIVE" } else { "DEPRECATED" };
                        let mut next = revise(&latest, status);
                        next.title = format!("{} (host {host})", latest.title);
                        next.hash = Entry::compute_hash(
                            &next.header,
                            &next.title,
                            &next.context,
                            &next.config,
                        );
                        // Both read before either writes.
                        barrier.wait();
                        let mut out = Vec::new();
                        storage
                            .update(std::slice::from_ref(&next), &mut out)
                            .expect("the batch runs");
                        let outcome = out.pop().expect("one outcome").map_err(|e| e.code);
                        mine.push((next.revision, outcome, next));
                        barrier.wait();
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("host thread"))
            .collect()
    });
    assert!(outcomes.iter().all(|o| o.len() == rounds));
    let mut winners = Vec::new();
    for (round, (a, b)) in outcomes[0].iter().zip(&outcomes[1]).enumerate() {
        assert_eq!(
            a.0, b.0,
            "both hosts tried the same revision in round {round}"
        );
        match (&a.1, &b.1) {
            (Ok(()), Err(ErrorCode::Conflict)) => winners.push(a.2.clone()),
            (Err(ErrorCode::Conflict), Ok(())) => winners.push(b.2.clone()),
            other => panic!("round {round}: expected one win and one conflict, got {other:?}"),
        }
    }
    let mut history = Vec::new();
    hosts[1]
        .history(&first.header.id, &mut history)
        .expect("reads");
    let mut want = vec![first];
    want.extend(winners);
    assert_eq!(history, want, "every winning revision is stored, in order");
}

#[test]
fn a_dictionary_one_host_trains_is_used_by_the_other() {
    let namespace = fresh_namespace("dicts");
    let config = config(&namespace);
    let (shard, shards) = (0, 1);
    let a = open(&config, shard, shards);
    let b = open(&config, shard, shards);
    let c = open(&config, shard, shards);
    let batch = |from: u64, n: u64| -> Vec<Entry> {
        let prefixes = vec!["SEC-RUL".to_owned(); n as usize];
        allocate(&a, &prefixes)
            .into_iter()
            .zip(from..)
            .map(|(number, i)| {
                let f = fields("SEC", "RULES", "LIVE", "REQUIRED");
                entry(f, number, &format!("rule {i} of the dictionary test"))
            })
            .collect()
    };
    let insert = |s: &dyn Storage, entries: &[Entry]| {
        let mut out = Vec::new();
        s.insert(entries, &mut out).expect("inserts");
        assert!(out.iter().all(|o| *o == Inserted::Created), "{out:?}");
    };
    let reads_back = |s: &dyn Storage, e: &Entry| {
        let mut out = Vec::new();
        s.history(&e.header.id, &mut out).expect("reads");
        assert_eq!(out, std::slice::from_ref(e));
    };
    // 999 entries from host A: no dictionary yet.
    let first = batch(0, 999);
    for chunk in first.chunks(333) {
        insert(&a, chunk);
    }
    let dictionaries = || -> Vec<Vec<u8>> {
        let key = format!(
            "{}dicts",
            registry_storage_redis::shard_prefix(&namespace, 0, 1)
        );
        redis::Commands::hvals(&mut raw(), &key).expect("reads the dictionaries")
    };
    assert!(dictionaries().is_empty());
    // Host B's insert reaches 1,000 and trains the dictionary; A has not loaded it.
    let second = batch(999, 200);
    insert(&b, &second);
    let trained = dictionaries();
    assert_eq!(trained.len(), 1);
    assert!(trained[0].len() > 1000, "{} bytes", trained[0].len());
    // C, which has not loaded it either, lends what B wrote with it.
    let ids = [second[150].header.id.clone(), first[10].header.id.clone()];
    let lent = registry_testkit::storage::lent(&c, &ids).expect("lends");
    assert_eq!(lent, [Some(second[150].clone()), Some(first[10].clone())]);
    // A reads what B wrote with it, and writes with it too once it has met it.
    reads_back(&a, &second[150]);
    reads_back(&a, &first[10]);
    let third = batch(1199, 10);
    insert(&a, &third);
    reads_back(&b, &third[5]);
    let mut listed = Vec::new();
    let query = registry_core::ListQuery {
        limit: 2000,
        ..registry_core::ListQuery::default()
    };
    a.list(&query, &mut listed).expect("lists");
    assert_eq!(listed.len(), 1209);
}
