//! Tests of the pipeline's restore, routing and timings, against a minimal storage double.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::error::StageResult;
use crate::request::Context;

/// One shard of entries behind a lock: only what `restore` and its lookups use.
struct Shelf {
    shard: u64,
    shards: u64,
    entries: Mutex<BTreeMap<EntryId, Vec<Entry>>>,
    meta: Mutex<crate::Meta>,
}

fn refused<T>() -> StageResult<T> {
    Err(StageError::new(ErrorCode::Internal, "not used by restore"))
}

impl Storage for Shelf {
    fn find(&self, fps: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let map = self
            .entries
            .lock()
            .expect("no test panics holding the lock");
        out.extend(fps.iter().map(|fp| {
            map.values()
                .filter_map(|h| h.last())
                .find(|e| e.fingerprint == *fp)
                .cloned()
        }));
        Ok(())
    }
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let map = self
            .entries
            .lock()
            .expect("no test panics holding the lock");
        out.extend(
            ids.iter()
                .map(|id| map.get(id).and_then(|h| h.last()).cloned()),
        );
        Ok(())
    }
    fn allocate(&self, _: &[String], _: &mut Vec<u64>) -> StageResult<()> {
        refused()
    }
    fn insert(&self, _: &[Entry], _: &mut Vec<Inserted>) -> StageResult<()> {
        refused()
    }
    fn update(&self, _: &[Entry], _: &mut Vec<StageResult<()>>) -> StageResult<()> {
        refused()
    }
    fn history(&self, _: &EntryId, _: &mut Vec<Entry>) -> StageResult<()> {
        refused()
    }
    fn list(&self, _: &ListQuery, _: &mut Vec<Entry>) -> StageResult<()> {
        refused()
    }
    fn meta(&self, out: &mut crate::Meta) -> StageResult<()> {
        out.extend(
            self.meta
                .lock()
                .expect("no test panics holding the lock")
                .clone(),
        );
        Ok(())
    }
    fn set_meta(&self, changes: &crate::Meta) -> StageResult<()> {
        let mut meta = self.meta.lock().expect("no test panics holding the lock");
        meta.extend(changes.clone());
        Ok(())
    }
    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        let mut map = self
            .entries
            .lock()
            .expect("no test panics holding the lock");
        for h in histories {
            let id = &h[h.len() - 1].header.id;
            assert_eq!(
                (id.number() - 1) % self.shards,
                self.shard,
                "misrouted {id}"
            );
            out.push(match map.get(id) {
                Some(_) => Ok(Restored::Unchanged),
                None => {
                    map.insert(id.clone(), h.clone());
                    Ok(Restored::Created)
                }
            });
        }
        Ok(())
    }
}

struct NoGenerator;
impl Generator for NoGenerator {
    fn predict(&self, _: &[Request], _: &mut Vec<Prediction>) -> StageResult<()> {
        refused()
    }
    fn render(&self, _: &[Draft], _: &mut Vec<String>) -> StageResult<()> {
        refused()
    }
}

/// Refuses the scope `BAD`, as a schema that does not declare it would.
struct ScopeValidator;
impl Validator for ScopeValidator {
    fn check_requests(&self, _: &[Request], _: &mut Vec<Problem>) -> StageResult<()> {
        Ok(())
    }
    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, e) in entries.iter().enumerate() {
            if e.header.fields.scope == "BAD" {
                out.push(Problem {
                    item,
                    severity: Severity::Error,
                    code: "unknown-scope".into(),
                    field: "scope".into(),
                    message: "unknown scope `BAD`".into(),
                });
            }
        }
        Ok(())
    }
    fn check_headers(
        &self,
        _: &[crate::header::RawHeader],
        _: &mut Vec<Problem>,
    ) -> StageResult<()> {
        Ok(())
    }
}

/// Routes every key to shard 0: a restore asks where each fingerprint would go.
struct FirstShard;
impl Router for FirstShard {
    fn route(&self, keys: &[u64], _: u32, out: &mut Vec<u32>) -> StageResult<()> {
        out.extend(keys.iter().map(|_| 0));
        Ok(())
    }
}

fn pipeline(shards: u32) -> Pipeline {
    let storage = (0..shards)
        .map(|s| {
            Box::new(Shelf {
                shard: u64::from(s),
                shards: u64::from(shards),
                entries: Mutex::default(),
                meta: Mutex::default(),
            }) as Box<dyn Storage>
        })
        .collect();
    Pipeline::new(
        Schema::default(),
        Stages {
            cache: Box::new(crate::NotLoaded(StageKind::Cache)),
            generator: Box::new(NoGenerator),
            validator: Box::new(ScopeValidator),
            router: Box::new(FirstShard),
            storage,
        },
    )
}

/// Revision 1 of `SEC-RUL-{number}`, registered with no field given: its fingerprint is its
/// title's, so two entries with the same title are the same request.
fn entry(number: u64, title: &str) -> Entry {
    let header = Header {
        fields: Fields {
            scope: "SEC".into(),
            kind: "RULES".into(),
            variant: "LIVE".into(),
            status: "DEV".into(),
        },
        id: EntryId::new("SEC-RUL", number),
        version: "v2.9".into(),
    };
    let context = Context::default();
    let config = format!("rule: {number}\n");
    let provenance = Provenance {
        derivation: FINGERPRINT_DERIVATION,
        fields: Fields::from_fn(|_| Source::Default),
        version: Source::Default,
    };
    let mut e = Entry {
        hash: Entry::compute_hash(&header, title, &context, &config),
        previous: None,
        purge: None,
        author: None,
        header,
        title: title.into(),
        context,
        config,
        fingerprint: Fingerprint([0; 16]),
        revision: 1,
        created_at: Timestamp(1_000),
        updated_at: Timestamp(1_000),
        provenance: Some(provenance),
        lifecycle: crate::Lifecycle::Active,
    };
    e.fingerprint = provenance.fingerprint_of(&e).expect("a known derivation");
    e
}

/// `e` changed by `f`, with its hash computed again.
fn rehashed(e: &Entry, f: impl FnOnce(&mut Entry)) -> Entry {
    let mut e = e.clone();
    f(&mut e);
    e.hash = Entry::compute_hash(&e.header, &e.title, &e.context, &e.config);
    e
}

fn next(e: &Entry, status: &str) -> Entry {
    rehashed(e, |e| {
        e.header.fields.status = status.into();
        e.revision += 1;
    })
}

/// Each outcome as `created`, `unchanged`, or the error's text.
fn outcomes(results: Vec<Result<Restored, Error>>) -> Vec<String> {
    results
        .into_iter()
        .map(|r| match r {
            Ok(Restored::Created) => "created".to_owned(),
            Ok(Restored::Unchanged) => "unchanged".to_owned(),
            Err(e) => e.to_string(),
        })
        .collect()
}

#[test]
fn timings_are_kept_only_when_enabled_one_sample_per_stage_call() {
    let p = pipeline(2);
    let request = |t: &str| {
        Request::new(t, Fields::default(), None, Context::default()).expect("valid request")
    };
    // The test generator refuses to predict, so `add` stops after the lookups.
    let results = p.add(vec![request("one"), request("two")]);
    assert!(results.iter().all(Result::is_err));
    assert!(p.timings().is_empty(), "timing is off by default");

    p.enable_timings();
    p.add(vec![request("one"), request("two")]);
    p.add(vec![request("three")]);
    let got: Vec<(&str, u64)> = p
        .timings()
        .iter()
        .map(|t| (t.call.name(), t.calls))
        .collect();
    // The router sends everything to shard 0, so each batch makes one call per stage.
    assert_eq!(
        got,
        [
            ("cache.get", 2),
            ("storage.find", 2),
            ("generator.predict", 2)
        ]
    );
    for t in p.timings() {
        assert!(t.p50_us <= t.p99_us && t.p99_us <= t.total_us, "{t:?}");
    }
}

#[test]
fn routes_each_history_to_the_shard_its_id_names() {
    let p = pipeline(3);
    let histories: Vec<Vec<Entry>> = (1..=6)
        .map(|n| {
            let first = entry(n, &format!("rule {n}"));
            let second = next(&first, "LIVE");
            vec![first, second]
        })
        .collect();
    // Ids 1 and 4 name shard 0, where the router sends every fingerprint; the others do not.
    let in_shard_0 = vec![histories[0].clone(), histories[3].clone()];
    assert_eq!(
        outcomes(p.restore(in_shard_0).expect("restores")),
        vec!["created"; 2]
    );
    assert!(!p.fingerprints_anywhere());
    let results = p.restore(histories.clone()).expect("restores");
    assert_eq!(
        outcomes(results),
        [
            "unchanged",
            "created",
            "created",
            "unchanged",
            "created",
            "created"
        ]
    );
    assert!(
        p.fingerprints_anywhere(),
        "add must now look in the shards that hold foreign fingerprints"
    );
    let marked: Vec<bool> = p
        .stages
        .storage
        .iter()
        .map(|s| {
            let mut meta = crate::Meta::new();
            s.meta(&mut meta).expect("readable");
            meta.get(crate::layout::FOREIGN_FINGERPRINTS)
                .map(String::as_str)
                == Some("true")
        })
        .collect();
    assert_eq!(
        marked,
        [false, true, true],
        "recorded in the shards' own metadata"
    );
    for (s, storage) in p.stages.storage.iter().enumerate() {
        let mut found = Vec::new();
        let ids = [
            EntryId::new("SEC-RUL", s as u64 + 1),
            EntryId::new("SEC-RUL", s as u64 + 4),
        ];
        storage.get(&ids, &mut found).expect("reads");
        assert!(found.iter().all(Option::is_some), "shard {s}");
    }
    let again = p.restore(histories).expect("restores");
    assert_eq!(outcomes(again), vec!["unchanged"; 6]);
}

#[test]
fn every_bad_history_fails_alone_and_names_what_is_wrong() {
    let p = pipeline(2);
    let good = entry(1, "good rule");
    let tampered = entry(2, "tampered rule");
    let mut tampered_2 = next(&tampered, "LIVE");
    tampered_2.title = "edited after export".into();
    let computed = Entry::compute_hash(
        &tampered_2.header,
        &tampered_2.title,
        &tampered_2.context,
        &tampered_2.config,
    );
    let forged = rehashed(&entry(3, "x"), |e| e.title = "two\nlines".into());
    let padded = rehashed(&entry(4, "x4"), |e| e.title = " padded ".into());
    let bad_scope = rehashed(&entry(5, "x5"), |e| e.header.fields.scope = "BAD".into());
    let gap = vec![entry(6, "gap"), next(&next(&entry(6, "gap"), "A"), "B")];
    let twin_id = entry(1, "another rule under id 1");
    let zero_fp = Entry {
        fingerprint: Fingerprint([0; 16]),
        ..entry(7, "all-zero fingerprint")
    };
    let first_fp = entry(8, "one request");
    let second_fp = entry(9, "one request");
    let mut other_fp = entry(10, "a request of its own");
    other_fp.fingerprint = good.fingerprint;
    let unstamped = Entry {
        provenance: None,
        ..entry(11, "exported before provenance")
    };
    let late = rehashed(&entry(12, "created after updated"), |e| {
        e.updated_at = Timestamp(999)
    });
    let got = outcomes(
        p.restore(vec![
            vec![good],
            vec![tampered.clone(), tampered_2.clone()],
            vec![forged],
            vec![padded],
            vec![bad_scope],
            gap,
            vec![],
            vec![entry(0, "zero")],
            vec![twin_id],
            vec![first_fp],
            vec![second_fp],
            vec![zero_fp],
            vec![other_fp],
            vec![unstamped],
            vec![late],
        ])
        .expect("restores"),
    );
    let want: [&[&str]; 15] = [
        &["created"],
        &[
            "entry SEC-RUL-002: revision 2 does not match its hash",
            &format!("recorded {}, computed {computed}", tampered_2.hash),
        ],
        &["SEC-RUL-003 revision 1: title contains a line break"],
        &["SEC-RUL-004 revision 1: title ` padded ` has leading or trailing whitespace"],
        &["unknown scope `BAD`"],
        &["entry SEC-RUL-006: revision 2 of its history is numbered 3"],
        &["has no revisions"],
        &["id SEC-RUL-000 has number 0"],
        &["storage: entry SEC-RUL-001 is given twice"],
        &["created"],
        &["SEC-RUL-009 has the fingerprint"],
        &[
            "entry SEC-RUL-007: its fingerprint 00000000000000000000000000000000 is not its request's",
        ],
        &["entry SEC-RUL-010: its fingerprint", "is not its request's"],
        &["created"],
        &[
            "entry SEC-RUL-012: revision 1 was updated at",
            "before it was created",
        ],
    ];
    assert_eq!(got.len(), want.len());
    for (i, (got, want)) in got.iter().zip(want).enumerate() {
        for part in want {
            assert!(got.contains(part), "item {i}: {got:?} lacks {part:?}");
        }
    }
    assert_eq!(
        stored(&p, 12),
        [1, 8, 11],
        "only the good histories reached storage"
    );
    let recovered = p.get_stored(&EntryId::new("SEC-RUL", 11)).expect("stored");
    assert_eq!(
        recovered.provenance,
        Some(Provenance {
            derivation: 1,
            fields: Fields::from_fn(|_| Source::Unrecorded),
            version: Source::Unrecorded,
        }),
        "an entry exported without provenance is stored with the one its fingerprint has"
    );
}

/// The numbers up to `upto` of the `SEC-RUL` entries the pipeline finds.
fn stored(p: &Pipeline, upto: u64) -> Vec<u64> {
    (1..=upto)
        .filter(|&n| p.get_stored(&EntryId::new("SEC-RUL", n)).is_ok())
        .collect()
}

#[test]
fn conflicts_are_found_in_every_shard_before_anything_is_written() {
    let p = pipeline(2);
    let a = entry(1, "stored in shard 0");
    assert_eq!(
        outcomes(p.restore(vec![vec![a.clone()]]).expect("restores")),
        ["created"]
    );
    // Id 2 belongs to shard 1, but its fingerprint is registered in shard 0.
    let same_request = entry(2, "stored in shard 0");
    let other_content = entry(1, "other content under a stored id");
    let newer = next(&a, "LIVE");
    for (history, want) in [
        (
            vec![same_request],
            &*format!(
                "storage: the request of entry SEC-RUL-002 is already registered as entry \
                 SEC-RUL-001 (fingerprint {})",
                a.fingerprint
            ),
        ),
        (
            vec![other_content.clone()],
            &format!(
                "storage: entry SEC-RUL-001 is already stored with other content: stored \
                 revision 1 ({}), exported revision 1 ({})",
                a.hash, other_content.hash
            ),
        ),
        (vec![a.clone(), newer.clone()], "exported revision 2"),
        (vec![a.clone()], "unchanged"),
        (vec![entry(4, "new")], "created"),
    ] {
        let checked = outcomes(
            p.check_restore(std::slice::from_ref(&history))
                .expect("checks"),
        );
        assert!(checked[0].contains(want), "{checked:?} lacks {want:?}");
        let restored = outcomes(p.restore(vec![history]).expect("restores"));
        assert_eq!(restored, checked, "check_restore foretells restore");
    }
    assert_eq!(stored(&p, 4), [1, 4]);
    let plan = p.check_restore(&[vec![entry(3, "new 3")]]).expect("checks");
    assert_eq!(outcomes(plan), ["created"]);
    assert_eq!(stored(&p, 4), [1, 4], "check_restore wrote nothing");
}
