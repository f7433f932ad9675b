//! The pipeline driven by the memory doubles: registration, idempotency, validation, failure
//! isolation, updates, history and sharding.

use registry_core::{
    Changes, Draft, Entry, EntryId, Error, ErrorCode, FromConfig, Generator, Guess, Lifecycle,
    ListQuery, Pipeline, Prediction, Request, Schema, Setup, Source, StageKind, StageResult,
    Storage,
};
use registry_testkit::faults::{BrokenCache, FailingStorage, FaultSwitch};
use registry_testkit::memory::{self, KeywordlessGenerator, MemoryStorage, NoConfig};
use registry_testkit::sample;
use std::sync::{Arc, Mutex};

fn pipeline(shards: u32) -> Pipeline {
    let schema = Schema::default();
    Pipeline::new(schema.clone(), memory::stages(&schema, shards))
}

/// A request naming the given (field, value) pairs.
fn request(title: &str, given: &[(&str, &str)]) -> Request {
    let mut fields = registry_core::Fields::default();
    for &(name, value) in given {
        let field = registry_core::Field::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .expect("test names real fields");
        fields[field] = Some(value.to_owned());
    }
    sample::request(title, fields)
}

/// A query for every entry the tests store.
fn everything() -> ListQuery {
    ListQuery {
        limit: 10_000,
        ..ListQuery::default()
    }
}

/// Predicts the variant `compact`, as a model would, and renders like the reference generator.
struct CompactModel;

impl Generator for CompactModel {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        out.extend(requests.iter().map(|_| Prediction {
            variant: Some(Guess {
                value: "compact".into(),
                confidence: Some(0.8),
                source: Source::Model,
            }),
            ..Prediction::default()
        }));
        Ok(())
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        KeywordlessGenerator.render(drafts, out)
    }
}

#[test]
fn add_creates_revision_1_with_provenance() {
    let schema = Schema::default();
    let mut stages = memory::stages(&schema, 1);
    stages.generator = Box::new(CompactModel);
    let pipeline = Pipeline::new(schema, stages);
    let req = request("Block SSH from the internet", &[("scope", "SEC")]);
    let added = pipeline.add_one(req.clone()).expect("valid request");

    assert!(added.created);
    let e: &Entry = &added.entry;
    assert_eq!(e.revision, 1);
    assert_eq!(
        e.header.readable(),
        "[SEC][RULES][COMPACT][SEC-RUL-001][v2.9][DEV]"
    );
    assert!(e.verify(), "hash covers the content");
    assert_eq!(e.fingerprint, req.fingerprint());
    assert_eq!(e.created_at, e.updated_at);
    assert!(
        e.config
            .contains("[SEC][RULES][COMPACT][SEC-RUL-001][v2.9][DEV]")
    );

    let fields = added
        .fields
        .expect("a created entry says where its fields came from");
    let given = |value: &str| Guess {
        value: value.into(),
        confidence: None,
        source: Source::Given,
    };
    let default = |value: &str| Guess {
        value: value.into(),
        confidence: None,
        source: Source::Default,
    };
    assert_eq!(fields.scope, given("SEC"));
    assert_eq!(fields.kind, default("RULES"));
    assert_eq!(
        fields.variant,
        Guess {
            value: "COMPACT".into(),
            confidence: Some(0.8),
            source: Source::Model
        }
    );
    assert_eq!(fields.status, default("DEV"));

    assert_eq!(pipeline.get(&e.header.id), Ok(e.clone()));
    assert_eq!(pipeline.history(&e.header.id), Ok(vec![e.clone()]));
}

#[test]
fn same_request_twice_is_one_entry() {
    // Through the cache, and with a broken cache through storage's fingerprint index.
    let schema = Schema::default();
    let mut uncached = memory::stages(&schema, 1);
    uncached.cache = Box::new(BrokenCache);
    for pipeline in [pipeline(1), Pipeline::new(schema, uncached)] {
        let first = pipeline
            .add_one(request("rotate keys", &[("type", "SCRIPT")]))
            .expect("valid");
        let second = pipeline
            .add_one(request("  Rotate   KEYS ", &[("type", "script")]))
            .expect("valid");
        assert!(first.created);
        assert!(!second.created);
        assert_eq!(second.fields, None);
        assert_eq!(second.entry, first.entry);
        assert_eq!(
            pipeline
                .list(&everything())
                .map(|p| p.entries)
                .map(|l| l.len()),
            Ok(1)
        );
    }
}

#[test]
fn broken_cache_is_counted_and_bypassed() {
    let schema = Schema::default();
    let mut stages = memory::stages(&schema, 1);
    stages.cache = Box::new(BrokenCache);
    let pipeline = Pipeline::new(schema, stages);
    let added = pipeline
        .add_one(request("rotate keys", &[]))
        .expect("valid");
    assert_eq!(
        pipeline.get(&added.entry.header.id),
        Ok(Entry::clone(&added.entry))
    );
    assert!(pipeline.cache_stats().1 >= 3, "get, put and get failed");
}

/// A cache that answers every key with the same entry, registered under another id and
/// fingerprint than any the tests ask for.
struct WrongCache(registry_core::Entry);

impl registry_core::Cache for WrongCache {
    fn get(
        &self,
        keys: &[registry_core::CacheKey],
        out: &mut Vec<Option<registry_core::Entry>>,
    ) -> StageResult<()> {
        out.extend(keys.iter().map(|_| Some(self.0.clone())));
        Ok(())
    }
    fn put(&self, _: &[registry_core::Entry]) -> StageResult<()> {
        Ok(())
    }
    fn remove(&self, _: &[registry_core::CacheKey]) -> StageResult<()> {
        Ok(())
    }
}

#[test]
fn cache_hits_for_another_key_are_ignored() {
    let schema = Schema::default();
    let decoy = sample::entry(
        sample::fields("SEC", "RULES", "LIVE", "DEV"),
        999,
        "a decoy",
    );
    let mut stages = memory::stages(&schema, 1);
    stages.cache = Box::new(WrongCache(decoy.clone()));
    let pipeline = Pipeline::new(schema, stages);
    let first = pipeline
        .add_one(request("rotate keys", &[("scope", "SEC")]))
        .expect("valid");
    assert!(first.created, "the decoy is not the request's entry");
    assert_ne!(first.entry.header.id, decoy.header.id);
    let again = pipeline
        .add_one(request("rotate keys", &[("scope", "SEC")]))
        .expect("valid");
    assert_eq!((again.created, &again.entry), (false, &first.entry));
    assert_eq!(
        pipeline.get(&first.entry.header.id),
        Ok(Entry::clone(&first.entry))
    );
    assert_eq!(
        pipeline.list(&everything()).map(|p| p.entries),
        Ok(vec![Entry::clone(&first.entry)])
    );
}

#[test]
fn duplicates_inside_one_batch() {
    let pipeline = pipeline(1);
    let results = pipeline.add(vec![
        request("block ssh", &[]),
        request("rotate keys", &[]),
        request("Block  SSH", &[]),
    ]);
    let [a, b, again] = &results[..] else {
        panic!("one result per request: {results:?}");
    };
    let (a, b, again) = (
        a.as_ref().expect("valid"),
        b.as_ref().expect("valid"),
        again.as_ref().expect("valid"),
    );
    assert!(a.created && b.created && !again.created);
    assert_eq!(again.entry.header.id, a.entry.header.id);
    assert_ne!(a.entry.header.id, b.entry.header.id);
    assert_eq!(
        pipeline
            .list(&everything())
            .map(|p| p.entries)
            .map(|l| l.len()),
        Ok(2)
    );
}

#[test]
fn field_values_take_the_schema_spelling() {
    let pipeline = pipeline(1);
    let added = pipeline
        .add_one(request(
            "block ssh",
            &[("scope", "sec"), ("type", "Multi-Etl"), ("status", "live")],
        ))
        .expect("valid");
    let h = &added.entry.header;
    assert_eq!(
        (
            h.fields.scope.as_str(),
            h.fields.kind.as_str(),
            h.fields.status.as_str()
        ),
        ("SEC", "MULTI-ETL", "LIVE")
    );
    assert_eq!(h.id.to_string(), "SEC-MUL-001");
    let fields = added.fields.expect("created");
    assert_eq!(fields.scope.value, "SEC");
    assert_eq!(fields.scope.source, Source::Given);
}

#[test]
fn unknown_scope_is_invalid_and_stores_nothing() {
    let pipeline = pipeline(1);
    let results = pipeline.add(vec![
        request("block ssh", &[("scope", "SECURITY")]),
        request("rotate keys", &[]),
    ]);
    match &results[0] {
        Err(e @ Error::Invalid(problems)) => {
            assert!(e.is_user_error());
            assert!(
                problems.iter().any(|p| p.field == "scope"),
                "problems name the field: {problems:?}"
            );
            assert!(e.to_string().contains("SECURITY"), "{e}");
        }
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
    let good = results[1]
        .as_ref()
        .expect("the other request is unaffected");
    // No id was spent on the invalid request: validation runs before allocation.
    assert_eq!(good.entry.header.id.to_string(), "GOV-RUL-001");
    assert_eq!(
        pipeline
            .list(&everything())
            .map(|p| p.entries)
            .map(|l| l.len()),
        Ok(1),
        "only the valid request is stored"
    );
}

#[test]
fn failing_storage_sinks_only_its_items() {
    let schema = Schema::default();
    let switch = FaultSwitch::healthy();
    let mut stages = memory::stages(&schema, 2);
    stages.storage[1] = Box::new(FailingStorage::with_switch(
        MemoryStorage::new(1, 2).expect("valid shard"),
        switch.clone(),
    ));
    let pipeline = Pipeline::new(schema, stages);

    let titles = |from: usize| -> Vec<Request> {
        (from..from + 20)
            .map(|i| request(&format!("rule number {i}"), &[]))
            .collect()
    };
    let earlier: Vec<_> = pipeline
        .add(titles(0))
        .into_iter()
        .map(|r| Entry::clone(&r.expect("healthy storage").entry))
        .collect();

    switch.fail_after(0);
    let results = pipeline.add(titles(100));
    let mut stored = 0;
    let mut failed = 0;
    for result in &results {
        match result {
            Ok(added) => {
                assert!(added.created);
                assert_eq!(
                    pipeline.get(&added.entry.header.id).as_ref(),
                    Ok(&*added.entry)
                );
                stored += 1;
            }
            Err(Error::Stage {
                stage: StageKind::Storage,
                error,
            }) => {
                assert_eq!(error.code, ErrorCode::Storage);
                failed += 1;
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(
        stored > 0 && failed > 0,
        "both shards had work: {stored} stored, {failed} failed"
    );
    assert!(switch.failures() > 0);

    switch.heal();
    let mut listed = pipeline
        .list(&everything())
        .map(|p| p.entries)
        .expect("healed");
    assert_eq!(
        listed.len(),
        earlier.len() + stored,
        "failed items left nothing behind"
    );
    listed.retain(|e| earlier.contains(e));
    assert_eq!(listed.len(), earlier.len(), "earlier entries are intact");
    for e in &earlier {
        assert_eq!(pipeline.history(&e.header.id), Ok(vec![e.clone()]));
    }
}

#[test]
fn update_writes_a_revision_and_keeps_history() {
    let pipeline = pipeline(1);
    let first = pipeline
        .add_one(request("block ssh", &[("scope", "SEC")]))
        .expect("valid")
        .entry
        .as_ref()
        .clone();
    let updated = pipeline
        .update(
            &first.header.id,
            Changes {
                status: Some("deprecated".into()),
                ..Changes::default()
            },
        )
        .expect("valid update");
    assert!(updated.changed);
    let second = Entry::clone(&updated.entry);
    assert_eq!(second.revision, 2);
    assert_eq!(second.header.fields.status, "DEPRECATED");
    assert_eq!(second.header.id, first.header.id);
    assert_eq!(second.fingerprint, first.fingerprint);
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert!(second.verify());
    assert_ne!(second.config, first.config, "the config is rendered again");

    assert_eq!(
        pipeline.history(&first.header.id),
        Ok(vec![first.clone(), second.clone()])
    );
    assert_eq!(pipeline.get(&first.header.id), Ok(second.clone()));
    assert_eq!(
        pipeline.list(&everything()).map(|p| p.entries),
        Ok(vec![second])
    );
}

#[test]
fn retiring_merging_and_reviving_are_revisions_kept_in_history() {
    let pipeline = pipeline(3);
    let add = |title: &str| {
        pipeline
            .add_one(request(title, &[("scope", "SEC")]))
            .expect("valid")
            .entry
    };
    let keep = add("block ssh");
    let duplicate = add("block ssh from anywhere");
    let old = add("rotate keys");
    let (keep_id, dup_id, old_id) = (&keep.header.id, &duplicate.header.id, &old.header.id);

    let retired = pipeline
        .set_lifecycle(old_id, Lifecycle::Retired, None)
        .expect("retired");
    assert!(retired.changed);
    assert_eq!(
        (retired.entry.revision, &retired.entry.lifecycle),
        (2, &Lifecycle::Retired)
    );
    assert!(retired.entry.verify(), "the hash covers the lifecycle");
    assert_ne!(retired.entry.hash, old.hash);
    let again = pipeline
        .set_lifecycle(old_id, Lifecycle::Retired, None)
        .expect("already retired");
    assert!(!again.changed, "retiring twice writes nothing");

    // A retired entry's content is frozen until it is revived; the same request finds it.
    let refused = pipeline.update(
        old_id,
        Changes {
            title: Some("rotate all keys".into()),
            ..Changes::default()
        },
    );
    assert_eq!(
        refused.map_err(|e| e.to_string()),
        Err(format!(
            "entry {old_id} is retired: revive it before changing it"
        ))
    );
    let found = pipeline
        .add_one(request("rotate keys", &[("scope", "SEC")]))
        .expect("valid");
    assert!(!found.created);
    assert_eq!(*found.entry, retired.entry);

    // Merges go only into another, active entry.
    for (target, want) in [
        (
            dup_id.clone(),
            format!("cannot merge entry {dup_id} into itself"),
        ),
        (
            old_id.clone(),
            format!("cannot merge into entry {old_id}: it is retired"),
        ),
    ] {
        let e = pipeline
            .set_lifecycle(dup_id, Lifecycle::Merged(target), None)
            .expect_err("refused");
        assert!(matches!(e, Error::Lifecycle(_)), "{e:?}");
        assert_eq!(e.to_string(), want);
    }
    assert!(matches!(
        pipeline.set_lifecycle(dup_id, Lifecycle::Merged(EntryId::new("SEC-RUL", 99)), None),
        Err(Error::NotFound(_))
    ));
    let merged = pipeline
        .set_lifecycle(dup_id, Lifecycle::Merged(keep_id.clone()), Some(1))
        .expect("merged");
    assert_eq!(merged.entry.lifecycle.merged_into(), Some(keep_id));
    assert!(matches!(
        pipeline.set_lifecycle(dup_id, Lifecycle::Retired, Some(1)),
        Err(Error::Conflict(_))
    ));

    // Reviving writes a third revision whose content is the first one's again.
    let revived = pipeline
        .set_lifecycle(old_id, Lifecycle::Active, None)
        .expect("revived");
    assert_eq!(revived.entry.revision, 3);
    assert_eq!(
        revived.entry.content_hash_without_chain(),
        old.hash,
        "the first revision's content again"
    );
    let history = pipeline.history(old_id).expect("history");
    assert_eq!(revived.entry.previous, Some(history[1].hash), "chained");
    assert_eq!(
        history
            .iter()
            .map(|e| e.lifecycle.name())
            .collect::<Vec<_>>(),
        ["active", "retired", "active"]
    );
    assert_eq!(pipeline.get(dup_id), Ok(merged.entry));
}

#[test]
fn update_without_change_writes_nothing() {
    let pipeline = pipeline(1);
    let first = pipeline
        .add_one(request("block ssh", &[]))
        .expect("valid")
        .entry
        .as_ref()
        .clone();
    let same_status = Changes {
        status: Some(first.header.fields.status.to_lowercase()),
        ..Changes::default()
    };
    for changes in [Changes::default(), same_status] {
        let updated = pipeline
            .update(&first.header.id, changes)
            .expect("valid update");
        assert!(!updated.changed);
        assert_eq!(updated.entry, first);
    }
    assert_eq!(pipeline.history(&first.header.id), Ok(vec![first]));
}

#[test]
fn an_update_removes_context_keys_as_a_new_revision() {
    let pipeline = pipeline(1);
    let set = |pairs: &[(&str, &str)]| Changes {
        context: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Changes::default()
    };
    let unset = |keys: &[&str]| Changes {
        unset_context: keys.iter().map(|k| (*k).to_owned()).collect(),
        ..Changes::default()
    };
    let first = pipeline
        .add_one(request("block ssh", &[]))
        .expect("valid")
        .entry;
    let id = first.header.id.clone();
    let second = pipeline
        .update(&id, set(&[("team", "net"), ("ticket", "T-1")]))
        .expect("set")
        .entry;
    assert_eq!(second.context.len(), 2);

    let third = pipeline.update(&id, unset(&["ticket"])).expect("unset");
    assert!(third.changed);
    assert_eq!(third.entry.revision, 3);
    assert_eq!(third.entry.context.get("ticket"), None);
    assert_eq!(third.entry.context.get("team"), Some("net"));
    assert_eq!(
        third.entry.fingerprint, first.fingerprint,
        "an update keeps the fingerprint"
    );
    assert!(third.entry.verify());
    let history = pipeline.history(&id).expect("history");
    assert_eq!(history.len(), 3, "every revision is kept");
    assert_eq!(history[1].context.get("ticket"), Some("T-1"));

    // A key that is not set, or set and removed at once, is refused and writes nothing.
    assert_eq!(
        pipeline.update(&id, unset(&["ticket"])),
        Err(registry_core::Error::Request(
            registry_core::RequestError::UnsetContextKey {
                key: "ticket".into(),
                keys: vec!["team".into()],
            }
        ))
    );
    let both = Changes {
        unset_context: vec!["team".into()],
        ..set(&[("team", "ops")])
    };
    assert!(matches!(
        pipeline.update(&id, both),
        Err(registry_core::Error::Request(
            registry_core::RequestError::SetAndUnsetContextKey(_)
        ))
    ));
    assert_eq!(pipeline.history(&id).map(|h| h.len()), Ok(3));
}

#[test]
fn unknown_ids_are_not_found() {
    let pipeline = pipeline(3);
    pipeline.add_one(request("block ssh", &[])).expect("valid");
    for id in [
        EntryId::new("GOV-RUL", 2),
        EntryId::new("SEC-RUL", 1),
        EntryId::new("GOV-RUL", 0),
    ] {
        assert_eq!(pipeline.get(&id), Err(Error::NotFound(id.clone())));
        assert_eq!(pipeline.history(&id), Err(Error::NotFound(id.clone())));
        assert_eq!(
            pipeline.update(&id, Changes::default()),
            Err(Error::NotFound(id.clone()))
        );
    }
}

/// The pipeline of three shards on one data directory, numbering ids densely or interleaved,
/// and a way to open each shard again.
fn three_shards(
    dir: &std::path::Path,
    dense: bool,
) -> (Pipeline, impl Fn(u32) -> MemoryStorage + use<>) {
    let schema = Schema::default();
    let dir = dir.to_path_buf();
    let open = move |shard| {
        let setup = Setup {
            schema: Schema::default(),
            data_dir: dir.clone(),
            config_dir: dir.clone(),
            shard,
            shards: 3,
            create: Some(registry_core::Meta::new()),
        };
        let s = MemoryStorage::from_config(NoConfig {}, &setup).expect("valid shard");
        if dense { s } else { s.into_interleaved() }
    };
    let mut stages = memory::stages(&schema, 3);
    stages.storage = (0..3)
        .map(|s| Box::new(open(s)) as Box<dyn Storage>)
        .collect();
    (Pipeline::new(schema, stages), open)
}

#[test]
fn dense_ids_count_from_1_in_input_order_and_list_merges_in_id_order() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (pipeline, open) = three_shards(dir.path(), true);
    assert!(pipeline.dense_ids());
    let scopes = ["SEC", "GOV", "OPS"];
    let requests: Vec<Request> = (0..30)
        .map(|i| request(&format!("rule number {i}"), &[("scope", scopes[i % 3])]))
        .collect();
    let mut added: Vec<_> = pipeline
        .add(requests)
        .into_iter()
        .map(|r| Entry::clone(&r.expect("valid").entry))
        .collect();
    // Per prefix 1 to 10, in the order the requests came, wherever each entry is stored.
    for (i, e) in added.iter().enumerate() {
        assert_eq!(e.header.id.number(), i as u64 / 3 + 1, "{}", e.header.id);
    }
    // Each shard, opened again on the same data directory, holds what its fingerprints route
    // to, and the pipeline finds each entry there by id.
    let mut held = 0;
    for shard in 0..3u32 {
        let mut out = Vec::new();
        open(shard).list(&everything(), &mut out).expect("readable");
        assert!(!out.is_empty(), "shard {shard} got entries");
        for e in &out {
            assert_eq!(pipeline.get(&e.header.id).as_ref(), Ok(e));
        }
        held += out.len();
    }
    assert_eq!(held, added.len());
    // A later batch goes on from there.
    let next = pipeline
        .add_one(request("rule number 30", &[("scope", "SEC")]))
        .expect("valid");
    assert_eq!(next.entry.header.id.to_string(), "SEC-RUL-011");
    added.push(Entry::clone(&next.entry));

    added.sort_by(|a, b| a.header.id.cmp(&b.header.id));
    assert_eq!(
        pipeline.list(&everything()).map(|p| p.entries),
        Ok(added.clone())
    );
    let first_seven = ListQuery {
        limit: 7,
        ..ListQuery::default()
    };
    assert_eq!(
        pipeline.list(&first_seven).map(|p| p.entries),
        Ok(added[..7].to_vec())
    );
    let mut sec = everything();
    sec.filter.scope = Some("sec".into());
    let want: Vec<_> = added
        .iter()
        .filter(|e| e.header.fields.scope == "SEC")
        .cloned()
        .collect();
    assert_eq!(pipeline.list(&sec).map(|p| p.entries), Ok(want));
}

#[test]
fn interleaved_ids_name_their_shard() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (pipeline, open) = three_shards(dir.path(), false);
    assert!(!pipeline.dense_ids());
    let added: Vec<_> = pipeline
        .add(
            (0..30)
                .map(|i| request(&format!("rule number {i}"), &[]))
                .collect(),
        )
        .into_iter()
        .map(|r| r.expect("valid").entry)
        .collect();
    // Each shard holds exactly the ids of its residue.
    let mut held = 0;
    for shard in 0..3u32 {
        let mut out = Vec::new();
        open(shard).list(&everything(), &mut out).expect("readable");
        assert!(!out.is_empty(), "shard {shard} got entries");
        for e in &out {
            assert_eq!(
                (e.header.id.number() - 1) % 3,
                u64::from(shard),
                "{} is in shard {shard}",
                e.header.id
            );
            assert_eq!(pipeline.get(&e.header.id).as_ref(), Ok(e));
        }
        held += out.len();
    }
    assert_eq!(held, added.len());
}

#[test]
fn list_without_a_limit_across_shards() {
    let pipeline = pipeline(2);
    let added: Vec<_> = pipeline
        .add(
            (0..10)
                .map(|i| request(&format!("rule number {i}"), &[]))
                .collect(),
        )
        .into_iter()
        .map(|r| r.expect("valid").entry)
        .collect();
    let unlimited = ListQuery {
        limit: usize::MAX,
        ..ListQuery::default()
    };
    assert_eq!(
        pipeline
            .list(&unlimited)
            .map(|p| p.entries)
            .map(|l| l.len()),
        Ok(added.len())
    );
}

#[test]
fn new_entries_stay_out_of_the_cache_when_asked() {
    for (cache_new, cached) in [(true, 2), (false, 0)] {
        let pipeline = pipeline(1);
        pipeline.set_cache_new_entries(cache_new);
        let added = pipeline
            .add_one(request("rotate keys", &[]))
            .expect("valid");
        assert!(added.created);
        // The entry under its id and its fingerprint, or not at all.
        assert_eq!(pipeline.cache_stats().0.entries, cached, "{cache_new}");
        // Registering it again is still idempotent: storage finds it.
        let again = pipeline
            .add_one(request("rotate keys", &[]))
            .expect("valid");
        assert_eq!((again.created, again.entry), (false, added.entry));
    }
}

/// Storage seen by one of two pipelines that share it, as two processes share a registry's
/// files: it records each revision handed to `update` with storage's verdict, and can let the
/// other writer in just before the next update reaches storage, which makes the interleaving of
/// two writers that read the same revision deterministic.
struct Watched {
    inner: Arc<dyn Storage>,
    watch: Watch,
}

/// A revision handed to storage's `update`, with the code of storage's refusal if it refused.
type Verdict = (u32, Option<ErrorCode>);

/// The other writer's turn.
type Turn = Box<dyn FnOnce() + Send>;

/// What a [`Watched`] storage saw, and the other writer's turn.
#[derive(Clone, Default)]
struct Watch {
    verdicts: Arc<Mutex<Vec<Verdict>>>,
    /// Runs once, right before the next update reaches storage.
    before_update: Arc<Mutex<Option<Turn>>>,
}

impl Watch {
    fn before_next_update(&self, f: impl FnOnce() + Send + 'static) {
        *self
            .before_update
            .lock()
            .expect("no test panics holding it") = Some(Box::new(f));
    }

    fn verdicts(&self) -> Vec<Verdict> {
        self.verdicts
            .lock()
            .expect("no test panics holding it")
            .clone()
    }
}

impl Storage for Watched {
    fn find(
        &self,
        fingerprints: &[registry_core::Fingerprint],
        out: &mut Vec<Option<registry_core::Entry>>,
    ) -> StageResult<()> {
        self.inner.find(fingerprints, out)
    }
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<registry_core::Entry>>) -> StageResult<()> {
        self.inner.get(ids, out)
    }
    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        self.inner.allocate(prefixes, out)
    }
    fn insert(
        &self,
        entries: &[registry_core::Entry],
        out: &mut Vec<registry_core::Inserted>,
    ) -> StageResult<()> {
        self.inner.insert(entries, out)
    }
    fn update(
        &self,
        entries: &[registry_core::Entry],
        out: &mut Vec<StageResult<()>>,
    ) -> StageResult<()> {
        let turn = self
            .watch
            .before_update
            .lock()
            .expect("no test panics holding it")
            .take();
        if let Some(other_writer) = turn {
            other_writer();
        }
        let before = out.len();
        self.inner.update(entries, out)?;
        let mut verdicts = self
            .watch
            .verdicts
            .lock()
            .expect("no test panics holding it");
        for (entry, verdict) in entries.iter().zip(&out[before..]) {
            verdicts.push((entry.revision, verdict.as_ref().err().map(|e| e.code)));
        }
        Ok(())
    }
    fn history(&self, id: &EntryId, out: &mut Vec<registry_core::Entry>) -> StageResult<()> {
        self.inner.history(id, out)
    }
    fn list(&self, query: &ListQuery, out: &mut Vec<registry_core::Entry>) -> StageResult<()> {
        self.inner.list(query, out)
    }
}

/// Two pipelines on one storage shard: the first, shared so that a test can hand it to the
/// other writer's turn, and the second with the [`Watch`] on its storage.
fn writers(storage: Arc<dyn Storage>) -> (Arc<Pipeline>, Pipeline, Watch) {
    let schema = Schema::default();
    let on = |watch: Watch| {
        let mut stages = memory::stages(&schema, 1);
        stages.storage = vec![Box::new(Watched {
            inner: Arc::clone(&storage),
            watch,
        })];
        Pipeline::new(schema.clone(), stages)
    };
    let watch = Watch::default();
    (Arc::new(on(Watch::default())), on(watch.clone()), watch)
}

fn set_status(status: &str, expected_revision: Option<u32>) -> Changes {
    Changes {
        status: Some(status.into()),
        expected_revision,
        ..Changes::default()
    }
}

fn set_reason(reason: &str, expected_revision: Option<u32>) -> Changes {
    Changes {
        context: vec![("reason".into(), reason.into())],
        expected_revision,
        ..Changes::default()
    }
}

/// Two updates built on the same revision: the one that reaches storage second is refused by
/// storage's compare-and-set (a conflict, nothing written), and once retried it applies on top
/// of the other.
pub(crate) fn check_updates_from_one_base(storage: Arc<dyn Storage>) {
    let (a, b, watch) = writers(storage);
    let first = a
        .add_one(request("block ssh", &[("scope", "SEC")]))
        .expect("valid")
        .entry;
    let id = first.header.id.clone();
    let (other, at) = (Arc::clone(&a), id.clone());
    // `b` reads revision 1; the other writer stores revision 2 before `b`'s write arrives.
    watch.before_next_update(move || {
        let theirs = other
            .update(&at, set_status("deprecated", None))
            .expect("the other writer's update is stored");
        assert_eq!(theirs.entry.revision, 2);
    });
    assert_eq!(
        b.update(&id, set_reason("mine", None)),
        Err(Error::Conflict(id.clone()))
    );
    assert_eq!(
        watch.verdicts(),
        [(2, Some(ErrorCode::Conflict))],
        "revision 2 reached storage twice, and storage refused the second"
    );
    let history = b.history(&id).expect("readable");
    assert_eq!(history.len(), 2, "nothing of the lost update was written");
    assert_eq!(history[1].header.fields.status, "DEPRECATED");
    assert_eq!(history[1].context.get("reason"), None);

    // Retried, it is built on the revision stored now and keeps the other writer's change.
    let retried = b
        .update(&id, set_reason("mine", None))
        .expect("the retry is stored")
        .entry;
    assert_eq!(retried.revision, 3);
    assert_eq!(retried.header.fields.status, "DEPRECATED");
    assert_eq!(retried.context.get("reason"), Some("mine"));
    assert_eq!(watch.verdicts().last(), Some(&(3, None)));
}

/// `Changes::expected_revision`: an update applies only on top of the revision it names, and
/// the refusal is storage's compare-and-set (the revision numbered after the expected one
/// reaches storage and is refused), not a check of the pipeline's.
pub(crate) fn check_expected_revision(storage: Arc<dyn Storage>) {
    let (a, b, watch) = writers(storage);
    let first = a
        .add_one(request("block ssh", &[("scope", "SEC")]))
        .expect("valid")
        .entry;
    let id = first.header.id.clone();
    let theirs = a
        .update(&id, set_status("deprecated", Some(1)))
        .expect("revision 1 is the stored one");
    assert_eq!((theirs.changed, theirs.entry.revision), (true, 2));

    // From revision 1 too: refused, since revision 2 is taken.
    assert_eq!(
        b.update(&id, set_reason("mine", Some(1))),
        Err(Error::Conflict(id.clone()))
    );
    assert_eq!(watch.verdicts(), [(2, Some(ErrorCode::Conflict))]);
    // A revision the entry has not reached: revision 4 does not follow revision 2.
    assert_eq!(
        b.update(&id, set_reason("mine", Some(3))),
        Err(Error::Conflict(id.clone()))
    );
    assert_eq!(watch.verdicts()[1], (4, Some(ErrorCode::Conflict)));
    // Changes that leave the content as it is write nothing, yet still name a stale revision.
    assert_eq!(
        b.update(&id, set_status("deprecated", Some(1))),
        Err(Error::Conflict(id.clone()))
    );
    let unchanged = b
        .update(&id, set_status("deprecated", Some(2)))
        .expect("revision 2 is the stored one");
    assert!(!unchanged.changed);
    assert_eq!(unchanged.entry, theirs.entry);
    assert_eq!(
        watch.verdicts().len(),
        2,
        "no-change updates reach no storage"
    );
    assert_eq!(
        b.history(&id).map(|h| h.len()),
        Ok(2),
        "nothing was written"
    );

    // From the stored revision: applied, on top of everything stored.
    let mine = b
        .update(&id, set_reason("mine", Some(2)))
        .expect("revision 2 is the stored one")
        .entry;
    assert_eq!(mine.revision, 3);
    assert_eq!(
        mine.header.fields.status, "DEPRECATED",
        "built on revision 2"
    );
    assert_eq!(mine.context.get("reason"), Some("mine"));
    assert_eq!(watch.verdicts()[2], (3, None));
    assert_eq!(
        b.history(&id)
            .map(|h| h.iter().map(|e| e.revision).collect::<Vec<_>>()),
        Ok(vec![1, 2, 3])
    );
}

#[test]
fn two_updates_from_one_base_revision_one_conflicts() {
    check_updates_from_one_base(Arc::new(MemoryStorage::default()));
}

#[test]
fn an_expected_revision_is_checked_by_storage() {
    check_expected_revision(Arc::new(MemoryStorage::default()));
}

/// The same, with the redb storage plugin loaded from its library as the registry loads it.
#[cfg(feature = "library")]
#[test]
fn through_the_redb_library_an_update_from_a_stale_revision_conflicts() {
    use registry_abi::load::{self, BuiltStage};
    let library = crate::library::lib("storage-redb");
    let (module, _) = load::open(&library, StageKind::Storage).expect("the library opens");
    for check in [check_updates_from_one_base, check_expected_revision] {
        let dir = tempfile::tempdir().expect("temp dir");
        let setup = Setup {
            schema: Schema::default(),
            data_dir: dir.path().to_owned(),
            config_dir: dir.path().to_owned(),
            shard: 0,
            shards: 1,
            create: Some(registry_core::Meta::new()),
        };
        let BuiltStage::Storage(storage) =
            load::build(module, StageKind::Storage, r#"{"durable": false}"#, &setup)
                .expect("the storage starts")
        else {
            panic!("the storage library built another stage");
        };
        check(Arc::from(storage));
    }
}

/// Records what an observer hears, as `kind id rN`.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl registry_core::Observer for Heard {
    fn changed(&self, kind: registry_core::ChangeKind, entries: &[&registry_core::Entry]) {
        let mut heard = self.0.lock().expect("not poisoned");
        for e in entries {
            heard.push(format!("{} {} r{}", kind.name(), e.header.id, e.revision));
        }
    }
}

impl Heard {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

#[test]
fn the_observer_hears_every_write_once_and_nothing_else() {
    let p = pipeline(2);
    let heard = Arc::new(Heard::default());
    assert!(p.set_observer(Arc::clone(&heard) as Arc<dyn registry_core::Observer>));
    assert!(
        !p.set_observer(Arc::new(Heard::default())),
        "a second observer is refused"
    );

    let added = p.add(vec![
        request("ssh brute force", &[("scope", "SEC")]),
        request("disk full alert", &[("scope", "SEC")]),
    ]);
    let ids: Vec<EntryId> = added
        .iter()
        .map(|r| r.as_ref().expect("created").entry.header.id.clone())
        .collect();
    let mut created = heard.take();
    created.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| format!("created {id} r1")).collect();
    expected.sort();
    assert_eq!(created, expected);

    // Registered again: found, not changed.
    p.add(vec![request("ssh brute force", &[("scope", "SEC")])])
        .pop()
        .expect("one result")
        .expect("found");
    assert_eq!(heard.take(), Vec::<String>::new());

    let a = &ids[0];
    let b = &ids[1];
    p.update(
        a,
        Changes {
            title: Some("ssh brute force, rate limited".into()),
            ..Changes::default()
        },
    )
    .expect("updated");
    p.set_lifecycle(a, Lifecycle::Retired, None)
        .expect("retired");
    p.set_lifecycle(a, Lifecycle::Retired, None)
        .expect("retired already: no revision");
    p.set_lifecycle(a, Lifecycle::Active, None)
        .expect("revived");
    p.set_lifecycle(b, Lifecycle::Merged(a.clone()), None)
        .expect("merged");
    // A refused write reports nothing.
    assert!(
        p.update(
            a,
            Changes {
                expected_revision: Some(1),
                title: Some("stale".into()),
                ..Changes::default()
            }
        )
        .is_err()
    );
    p.purge(a, 1, "title", "held a secret").expect("purged");
    assert_eq!(
        heard.take(),
        [
            format!("updated {a} r2"),
            format!("retired {a} r3"),
            format!("revived {a} r4"),
            format!("merged {b} r2"),
            format!("purged {a} r1"),
        ]
    );

    // An import reports each history it stored, by its latest revision; one stored already,
    // nothing.
    let other = pipeline(2);
    let heard_there = Arc::new(Heard::default());
    other.set_observer(Arc::clone(&heard_there) as Arc<dyn registry_core::Observer>);
    let histories = vec![
        p.history(a).expect("history"),
        p.history(b).expect("history"),
    ];
    other.restore(histories.clone()).expect("restored");
    let mut imported = heard_there.take();
    imported.sort();
    let mut expected = vec![format!("imported {a} r4"), format!("imported {b} r2")];
    expected.sort();
    assert_eq!(imported, expected);
    other.restore(histories).expect("restored again");
    assert_eq!(heard_there.take(), Vec::<String>::new());
}

/// Predicts a variant from each request's own title, renders as the reference generator, and
/// records the size of every batch it is given.
#[derive(Default)]
struct Recording {
    predicted: Mutex<Vec<usize>>,
    rendered: Mutex<Vec<usize>>,
}

impl Generator for Recording {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        self.predicted.lock().expect("lock").push(requests.len());
        out.extend(requests.iter().map(|r| Prediction {
            variant: r.title().ends_with('7').then(|| Guess {
                value: "compact".into(),
                confidence: Some(0.5),
                source: Source::Model,
            }),
            ..Prediction::default()
        }));
        Ok(())
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        self.rendered.lock().expect("lock").push(drafts.len());
        KeywordlessGenerator.render(drafts, out)
    }
}

/// Refuses requests whose title says `bad request`, and entries whose title says `bad entry`.
struct TitleValidator;

impl registry_core::Validator for TitleValidator {
    fn check_requests(
        &self,
        requests: &[Request],
        out: &mut Vec<registry_core::Problem>,
    ) -> StageResult<()> {
        refuse(requests.iter().map(Request::title), "bad request", out);
        Ok(())
    }

    fn check_entries(
        &self,
        entries: &[Entry],
        out: &mut Vec<registry_core::Problem>,
    ) -> StageResult<()> {
        refuse(entries.iter().map(|e| e.title.as_str()), "bad entry", out);
        Ok(())
    }

    fn check_headers(
        &self,
        _: &[registry_core::RawHeader],
        _: &mut Vec<registry_core::Problem>,
    ) -> StageResult<()> {
        Ok(())
    }
}

/// A problem for each title containing `bad`, naming the title, on the item's index.
fn refuse<'a>(
    titles: impl Iterator<Item = &'a str>,
    bad: &str,
    out: &mut Vec<registry_core::Problem>,
) {
    for (item, title) in titles.enumerate() {
        if title.contains(bad) {
            out.push(registry_core::Problem {
                item,
                severity: registry_core::Severity::Error,
                code: "refused".into(),
                field: "title".into(),
                message: format!("refused `{title}`"),
            });
        }
    }
}

/// A pipeline of one memory shard with the [`Recording`] generator and [`TitleValidator`].
fn recording_pipeline() -> (Pipeline, Arc<Recording>) {
    struct Shared(Arc<Recording>);
    impl Generator for Shared {
        fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
            self.0.predict(requests, out)
        }
        fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
            self.0.render(drafts, out)
        }
    }
    let schema = Schema::default();
    let recording = Arc::new(Recording::default());
    let mut stages = memory::stages(&schema, 1);
    stages.generator = Box::new(Shared(Arc::clone(&recording)));
    stages.validator = Box::new(TitleValidator);
    (Pipeline::new(schema, stages), recording)
}

/// A batch alone in `add` renders, hashes and validates in two halves at once on a machine of
/// several cores; what it returns and stores is what the same requests give in
/// batches too small to split, refusals included, wherever they fall.
#[test]
fn a_batch_alone_splits_its_steps_and_answers_as_small_batches_do() {
    let titles: Vec<String> = (0..600)
        .map(|i| match i {
            5 | 400 => format!("bad request {i}"),
            7 | 299 | 300 | 599 => format!("bad entry {i}"),
            _ => format!("entry {i}"),
        })
        .collect();
    let requests = || titles.iter().map(|t| request(t, &[])).collect::<Vec<_>>();

    let (split, recorded) = recording_pipeline();
    let whole = split.add(requests());
    let (small, _) = recording_pipeline();
    let mut parts = Vec::new();
    for chunk in requests().chunks(100) {
        parts.extend(small.add(chunk.to_vec()));
    }

    // Prediction is not split; rendering is, on a machine of several cores.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let rendered = if cores > 1 { vec![299, 299] } else { vec![598] };
    assert_eq!(*recorded.predicted.lock().expect("lock"), vec![600]);
    assert_eq!(*recorded.rendered.lock().expect("lock"), rendered);

    assert_eq!(whole.len(), 600);
    for (i, (got, expected)) in whole.iter().zip(&parts).enumerate() {
        match (got, expected) {
            (Ok(a), Ok(b)) => {
                assert!(a.created && a.entry.verify(), "item {i}");
                assert_eq!(a.entry.title, titles[i]);
                assert_eq!(
                    (&a.entry.header, &a.entry.config, a.entry.hash),
                    (&b.entry.header, &b.entry.config, b.entry.hash),
                    "item {i}"
                );
            }
            (Err(Error::Invalid(a)), Err(Error::Invalid(b))) => {
                assert_eq!(a.len(), 1, "item {i}: {a:?}");
                assert_eq!(a[0].message, format!("refused `{}`", titles[i]));
                assert_eq!(
                    (&a[0].code, &a[0].message),
                    (&b[0].code, &b[0].message),
                    "item {i}"
                );
            }
            other => panic!("item {i}: split and small batches differ: {other:?}"),
        }
    }
    let refused: Vec<usize> = (0..600).filter(|&i| whole[i].is_err()).collect();
    assert_eq!(refused, vec![5, 7, 299, 300, 400, 599]);
}
