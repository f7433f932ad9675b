//! Catching up with a registry's storage, and rebuilding from it.

use registry_core::{Changes, Lifecycle, Pipeline, Schema};
use registry_search::{CaughtUp, SearchQuery, catch_up, rebuild};
use registry_testkit::{memory, sample};

use crate::{entry, find, fresh};

fn registry(shards: u32) -> Pipeline {
    let schema = Schema::default();
    Pipeline::new(schema.clone(), memory::stages(&schema, shards))
}

fn add(pipeline: &Pipeline, title: &str) -> registry_core::EntryId {
    pipeline
        .add_one(sample::request(title, sample::given("SEC RULES - -")))
        .expect("registered")
        .entry
        .header
        .id
        .clone()
}

#[test]
fn catch_up_adds_updates_and_removes() {
    let pipeline = registry(2);
    let ids: Vec<_> = (0..2500)
        .map(|n| add(&pipeline, &format!("Entry number {n} walrus")))
        .collect();
    let (_dir, index) = fresh();
    // A document storage does not hold, which catch-up removes.
    index
        .upsert(&[entry(90_000, "orphan walrus", &[], "x: 1\n")])
        .expect("upsert");
    index.commit().expect("commit");

    let mut seen = Vec::new();
    let done = catch_up(&index, &pipeline, &mut |n| seen.push(n)).expect("catch up");
    assert_eq!(
        done,
        CaughtUp {
            scanned: 2500,
            upserted: 2500,
            removed: 1
        }
    );
    assert_eq!(seen.last(), Some(&2500));
    assert!(seen.len() >= 3, "progress is reported per page: {seen:?}");
    assert_eq!(index.docs(), 2500);
    assert!(find(&index, "orphan").is_empty());

    let again = catch_up(&index, &pipeline, &mut |_| {}).expect("catch up");
    assert_eq!(
        again,
        CaughtUp {
            scanned: 2500,
            upserted: 0,
            removed: 0
        },
        "a second catch-up finds nothing to do"
    );

    // An update, a retirement: both caught up, by revision.
    pipeline
        .update(
            &ids[7],
            Changes {
                title: Some("Renamed narwhal".into()),
                ..Changes::default()
            },
        )
        .expect("update");
    pipeline
        .set_lifecycle(&ids[8], Lifecycle::Retired, None)
        .expect("retire");
    let done = catch_up(&index, &pipeline, &mut |_| {}).expect("catch up");
    assert_eq!((done.upserted, done.removed), (2, 0));
    let narwhal = index
        .search(&SearchQuery {
            text: "narwhal".into(),
            limit: 10,
            ..SearchQuery::default()
        })
        .expect("search");
    assert_eq!(narwhal.hits.len(), 1);
    assert_eq!(
        (&narwhal.hits[0].id, narwhal.hits[0].revision),
        (&ids[7], 2)
    );
    assert!(
        find(&index, "\"number 7 walrus\"").is_empty(),
        "the old title is gone"
    );
    let retired = index
        .search(&SearchQuery {
            text: "\"number 8 walrus\"".into(),
            include_retired: true,
            limit: 10,
            ..SearchQuery::default()
        })
        .expect("search");
    assert_eq!(retired.hits.len(), 1, "retired entries are indexed");
    assert!(find(&index, "\"number 8 walrus\"").is_empty());
}

#[test]
fn rebuild_refills_from_nothing() {
    let pipeline = registry(1);
    for n in 0..30 {
        add(&pipeline, &format!("Stored {n} heron"));
    }
    let (_dir, index) = fresh();
    index
        .upsert(&[entry(90_000, "orphan heron", &[], "x: 1\n")])
        .expect("upsert");
    index.commit().expect("commit");
    let done = rebuild(&index, &pipeline, &mut |_| {}).expect("rebuild");
    assert_eq!((done.scanned, done.upserted), (30, 30));
    assert_eq!(index.docs(), 30);
    assert!(find(&index, "orphan").is_empty());
    assert_eq!(find(&index, "heron").len(), 30);
    let again = catch_up(&index, &pipeline, &mut |_| {}).expect("catch up");
    assert_eq!(again.upserted + again.removed, 0);
}
