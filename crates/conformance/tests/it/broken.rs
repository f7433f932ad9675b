//! Small stages that each break one rule, and the violation their suite returns. Each double is
//! checked to pass its suite when it is not broken, so the violation is the broken rule's and not
//! the double's own shortcoming.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use registry_conformance::reference::KeywordlessGenerator;
use registry_conformance::{cache, generator, router, storage, validator};
use registry_core::{
    Cache, CacheKey, Draft, DraftRef, Entry, EntryId, ErrorCode, Fingerprint, Generator, Guess,
    GuessRef, Inserted, ListQuery, Prediction, PredictionRef, Problem, RawHeader, Request,
    RequestRef, Router, Schema, Source, StageError, StageKind, StageResult, Storage, Validator,
};

use crate::violation;

/// Routes key `k` to `k % shards`, or breaks the rule `broken` names.
struct ModuloRouter {
    broken: Option<&'static str>,
    calls: AtomicU64,
}

impl ModuloRouter {
    fn new(broken: Option<&'static str>) -> ModuloRouter {
        ModuloRouter {
            broken,
            calls: AtomicU64::new(0),
        }
    }
}

impl Router for ModuloRouter {
    fn route(&self, keys: &[u64], shards: u32, out: &mut Vec<u32>) -> StageResult<()> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        if shards == 0 && self.broken != Some("zero") {
            return Err(StageError::new(ErrorCode::Invalid, "no shards"));
        }
        let shards = shards.max(1);
        out.extend(keys.iter().map(|&k| {
            let shard = u32::try_from(k % u64::from(shards)).unwrap_or(0);
            match self.broken {
                Some("range") if shards > 3 => shards,
                Some("one shard") => 0,
                Some("flip") if call % 2 == 1 => (shard + 1) % shards,
                _ => shard,
            }
        }));
        Ok(())
    }
}

#[test]
fn router_rules() {
    router::check(&ModuloRouter::new(None)).expect("the modulo router conforms");
    router::smoke(&ModuloRouter::new(None)).expect("the modulo router conforms");
    for (broken, rule) in [
        ("zero", "route with 0 shards must fail"),
        ("range", "shards are in 0.."),
        ("one shard", "must spread well-spread keys"),
        ("flip", "same shards when asked again"),
    ] {
        violation(StageKind::Router, rule, || {
            router::check(&ModuloRouter::new(Some(broken)))
        });
    }
    violation(StageKind::Router, "shards are in 0..4", || {
        router::smoke(&ModuloRouter::new(Some("range")))
    });
}

/// A cache in a `HashMap` that, when `id_only`, forgets fingerprint keys, and when `clears`,
/// clears the caller's output.
#[derive(Default)]
struct MapCache {
    map: Mutex<HashMap<CacheKey, Entry>>,
    id_only: bool,
    clears: bool,
}

impl Cache for MapCache {
    fn get(&self, keys: &[CacheKey], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let map = self
            .map
            .lock()
            .map_err(|_| StageError::new(ErrorCode::Internal, "poisoned"))?;
        if self.clears {
            out.clear();
        }
        out.extend(keys.iter().map(|k| map.get(k).cloned()));
        Ok(())
    }

    fn put(&self, entries: &[Entry]) -> StageResult<()> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| StageError::new(ErrorCode::Internal, "poisoned"))?;
        for e in entries {
            let [id, fp] = CacheKey::of_entry(e);
            map.insert(id, e.clone());
            if !self.id_only {
                map.insert(fp, e.clone());
            }
        }
        Ok(())
    }

    fn remove(&self, keys: &[CacheKey]) -> StageResult<()> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| StageError::new(ErrorCode::Internal, "poisoned"))?;
        for k in keys {
            map.remove(k);
        }
        Ok(())
    }
}

#[test]
fn cache_rules() {
    cache::check(&|| Ok(Box::new(MapCache::default()))).expect("the map cache conforms");
    violation(StageKind::Cache, "by its fingerprint key", || {
        cache::check(&|| {
            Ok(Box::new(MapCache {
                id_only: true,
                ..MapCache::default()
            }))
        })
    });
    violation(
        StageKind::Cache,
        "get must push exactly one value per input",
        || {
            cache::smoke(&|| {
                Ok(Box::new(MapCache {
                    clears: true,
                    ..MapCache::default()
                }))
            })
        },
    );
    let v = violation(StageKind::Cache, "building a cache failed", || {
        cache::check(&|| Err(StageError::new(ErrorCode::Config, "no room configured")))
    });
    assert_eq!(
        v.to_string(),
        "cache contract broken: building a cache failed: no room configured"
    );
}

/// A storage that forgets everything and hands out number 1 for every prefix; `get` fails when
/// `get_fails`.
#[derive(Default)]
struct Forgetful {
    get_fails: bool,
}

impl Storage for Forgetful {
    fn find(&self, fps: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        out.extend(fps.iter().map(|_| None));
        Ok(())
    }
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        if self.get_fails {
            return Err(StageError::new(
                ErrorCode::Unavailable,
                "the disk is gone\nreally",
            ));
        }
        out.extend(ids.iter().map(|_| None));
        Ok(())
    }
    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        out.extend(prefixes.iter().map(|_| 1));
        Ok(())
    }
    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        out.extend(entries.iter().map(|_| Inserted::Created));
        Ok(())
    }
    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        out.extend(entries.iter().map(|_| Ok(())));
        Ok(())
    }
    fn history(&self, _id: &EntryId, _out: &mut Vec<Entry>) -> StageResult<()> {
        Ok(())
    }
    fn list(&self, _query: &ListQuery, _out: &mut Vec<Entry>) -> StageResult<()> {
        Ok(())
    }
}

#[test]
fn storage_rules() {
    violation(StageKind::Storage, "never handed out twice", || {
        storage::check(&|_setup| Ok(Box::new(Forgetful::default())))
    });
    violation(StageKind::Storage, "never handed out twice", || {
        storage::smoke(&|_setup| Ok(Box::new(Forgetful::default())))
    });
    let v = violation(StageKind::Storage, "get failed (Unavailable)", || {
        storage::check(&|_setup| Ok(Box::new(Forgetful { get_fails: true })))
    });
    assert_eq!(
        v.rule(),
        "get failed (Unavailable): the disk is gone really"
    );
    let v = violation(StageKind::Storage, "building shard 0 of 1", || {
        storage::check(&|_setup| Err(StageError::new(ErrorCode::Storage, "read-only file system")))
    });
    assert_eq!(
        v.rule(),
        "building shard 0 of 1 (creating it if needed) failed: read-only file system"
    );
}

/// Proposes a scope the schema does not declare, or renders a counter into every config.
struct BadGenerator {
    junk: bool,
    renders: AtomicU64,
}

impl Generator for BadGenerator {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        for _ in requests {
            let mut p = Prediction::default();
            if self.junk {
                p.scope = Some(Guess {
                    value: "NOWHERE".into(),
                    confidence: Some(0.9),
                    source: Source::Model,
                });
            }
            out.push(p);
        }
        Ok(())
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        for draft in drafts {
            let n = self.renders.fetch_add(1, Ordering::Relaxed);
            out.push(format!("title: {}\nrendered: {n}\n", draft.title));
        }
        Ok(())
    }
}

#[test]
fn generator_rules() {
    let schema = Schema::default();
    generator::check(&KeywordlessGenerator, &schema).expect("the reference generator conforms");
    violation(StageKind::Generator, "values the schema declares", || {
        generator::check(
            &BadGenerator {
                junk: true,
                renders: AtomicU64::new(0),
            },
            &schema,
        )
    });
    violation(
        StageKind::Generator,
        "the same bytes for the same drafts",
        || {
            generator::check(
                &BadGenerator {
                    junk: false,
                    renders: AtomicU64::new(0),
                },
                &schema,
            )
        },
    );
}

/// The reference generator, but for `predict_each`, `predict_lent` or `render_each`, which lend
/// something else than `predict` and `render` return.
struct TwoFaced {
    other: Lent,
}

/// What [`TwoFaced`] lends falsely.
#[derive(PartialEq)]
enum Lent {
    Predictions,
    PredictionsOfViews,
    Configs,
    ConfigsOfViews,
}

/// A prediction no reference generator makes.
fn other_prediction(each: &mut dyn FnMut(&PredictionRef<'_>)) {
    each(&PredictionRef {
        scope: Some(GuessRef {
            value: "OTHER",
            confidence: None,
            source: Source::Default,
        }),
        ..PredictionRef::default()
    });
}

impl Generator for TwoFaced {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        KeywordlessGenerator.predict(requests, out)
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        KeywordlessGenerator.render(drafts, out)
    }

    fn predict_each(
        &self,
        requests: &[Request],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        if self.other != Lent::Predictions {
            return KeywordlessGenerator.predict_each(requests, each);
        }
        requests.iter().for_each(|_| other_prediction(each));
        Ok(())
    }

    fn predict_lent(
        &self,
        requests: &[RequestRef<'_>],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        if self.other != Lent::PredictionsOfViews {
            return KeywordlessGenerator.predict_lent(requests, each);
        }
        requests.iter().for_each(|_| other_prediction(each));
        Ok(())
    }

    fn render_each(&self, drafts: &[Draft], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        if self.other != Lent::Configs {
            return KeywordlessGenerator.render_each(drafts, each);
        }
        for _ in drafts {
            each("lent: other\n");
        }
        Ok(())
    }

    fn render_lent(&self, drafts: &[DraftRef<'_>], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        if self.other != Lent::ConfigsOfViews {
            return KeywordlessGenerator.render_lent(drafts, each);
        }
        for _ in drafts {
            each("lent: other\n");
        }
        Ok(())
    }
}

#[test]
fn lent_results_must_be_the_returned_ones() {
    let schema = Schema::default();
    violation(
        StageKind::Generator,
        "predict_each must propose what predict proposes",
        || {
            generator::check(
                &TwoFaced {
                    other: Lent::Predictions,
                },
                &schema,
            )
        },
    );
    violation(
        StageKind::Generator,
        "predict_lent must propose what predict proposes",
        || {
            generator::check(
                &TwoFaced {
                    other: Lent::PredictionsOfViews,
                },
                &schema,
            )
        },
    );
    violation(
        StageKind::Generator,
        "render_each must give the bytes render gives",
        || {
            generator::check(
                &TwoFaced {
                    other: Lent::Configs,
                },
                &schema,
            )
        },
    );
    violation(
        StageKind::Generator,
        "render_lent must give the bytes render gives",
        || {
            generator::check(
                &TwoFaced {
                    other: Lent::ConfigsOfViews,
                },
                &schema,
            )
        },
    );
}

/// Reports an error on every field the schema does not declare, or accepts everything, or
/// everything lent as views.
struct FieldValidator {
    schema: Schema,
    accepts_everything: bool,
    accepts_views: bool,
}

impl FieldValidator {
    fn check<'a>(
        &self,
        items: impl Iterator<Item = Vec<(&'static str, &'a str)>>,
        out: &mut Vec<Problem>,
    ) {
        if self.accepts_everything {
            return;
        }
        for (item, fields) in items.enumerate() {
            for (field, value) in fields {
                let declared = registry_core::Field::ALL
                    .into_iter()
                    .find(|f| f.name() == field)
                    .is_some_and(|f| self.schema.canonical(f, value).is_some());
                if !declared {
                    out.push(Problem {
                        item,
                        severity: registry_core::Severity::Error,
                        code: "undeclared".into(),
                        field: field.into(),
                        message: format!("{field} `{value}` is not declared"),
                    });
                }
            }
        }
    }
}

impl Validator for FieldValidator {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        let items = requests.iter().map(|r| {
            r.fields
                .iter()
                .map(|(f, v)| (f.name(), v.as_deref().unwrap_or("")))
                .collect()
        });
        self.check(items, out);
        Ok(())
    }

    fn check_requests_lent(
        &self,
        requests: &[RequestRef<'_>],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        if self.accepts_views {
            return Ok(());
        }
        let items = requests.iter().map(|r| {
            r.fields
                .iter()
                .map(|(f, v)| (f.name(), v.unwrap_or("")))
                .collect()
        });
        self.check(items, out);
        Ok(())
    }

    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        let items = entries.iter().map(|e| {
            e.header
                .fields
                .iter()
                .map(|(f, v)| (f.name(), v.as_str()))
                .collect()
        });
        self.check(items, out);
        Ok(())
    }

    fn check_headers(&self, headers: &[RawHeader], out: &mut Vec<Problem>) -> StageResult<()> {
        let items = headers.iter().map(|h| {
            h.fields
                .iter()
                .map(|(f, v)| (f.name(), v.as_str()))
                .collect()
        });
        self.check(items, out);
        Ok(())
    }
}

#[test]
fn validator_rules() {
    let schema = Schema::default();
    let good = FieldValidator {
        schema: schema.clone(),
        accepts_everything: false,
        accepts_views: false,
    };
    validator::check(&good, &schema).expect("the field validator conforms");
    let lax = FieldValidator {
        schema: schema.clone(),
        accepts_everything: true,
        accepts_views: false,
    };
    violation(
        StageKind::Validator,
        "check_requests must report an error on field `scope`",
        || validator::check(&lax, &schema),
    );
    let two_faced = FieldValidator {
        schema: schema.clone(),
        accepts_everything: false,
        accepts_views: true,
    };
    violation(
        StageKind::Validator,
        "check_requests_lent must report what check_requests reports",
        || validator::check(&two_faced, &schema),
    );
    // A generator that renders fewer configs than drafts breaks the generator's contract, not
    // the validator's.
    struct Stingy;
    impl Generator for Stingy {
        fn predict(&self, _: &[Request], _: &mut Vec<Prediction>) -> StageResult<()> {
            Ok(())
        }
        fn render(&self, _: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
            out.push(String::new());
            Ok(())
        }
    }
    violation(
        StageKind::Generator,
        "render must push one config per draft",
        || validator::check_with(&good, &schema, &Stingy),
    );
}
