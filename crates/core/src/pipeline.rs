//! The pipeline: drives the five stages for each operation, batch by batch.
//!
//! `add` runs cache → storage lookup by fingerprint (idempotency) → generator prediction →
//! validation of the completed request → id allocation → config rendering → validation of the
//! entry → durable insert → cache fill. Each stage is called once per batch (once per shard for
//! storage), and a failing item never sinks the others: results come back one per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::entry::{Entry, Fingerprint};
use crate::error::{Error, ErrorCode, Problem, Severity, StageError, StageKind};
use crate::header::{EntryId, Field, Fields, Header};
use crate::request::{Request, check_title};
use crate::schema::Schema;
use crate::stage::{
    Cache, CacheKey, CacheStats, Draft, Generator, Guess, Inserted, ListQuery, Prediction, Router,
    Source, Storage, TrainOptions, TrainReport, Validator,
};
use crate::time::Timestamp;

/// The stage implementations a pipeline drives: one storage per shard.
pub struct Stages {
    pub cache: Box<dyn Cache>,
    pub generator: Box<dyn Generator>,
    pub validator: Box<dyn Validator>,
    pub router: Box<dyn Router>,
    pub storage: Vec<Box<dyn Storage>>,
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stages")
            .field("shards", &self.storage.len())
            .finish_non_exhaustive()
    }
}

/// The outcome of registering one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Added {
    #[serde(flatten)]
    pub entry: Entry,
    /// False when the request was already registered and `entry` is the existing one.
    pub created: bool,
    /// Where each header field came from, for a created entry; empty for an existing one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Fields<Guess>>,
}

/// What `update` may change. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub title: Option<String>,
    pub variant: Option<String>,
    pub status: Option<String>,
    pub version: Option<String>,
    /// Context pairs to set (replacing a value with the same key).
    pub context: Vec<(String, String)>,
}

/// The outcome of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Updated {
    #[serde(flatten)]
    pub entry: Entry,
    /// False when the changes left the content as it was; no revision was written.
    pub changed: bool,
}

/// Drives the stages. Cheap to share: every method takes `&self` and may run on many threads.
pub struct Pipeline {
    schema: Schema,
    stages: Stages,
    cache_errors: AtomicU64,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

type Slot = Option<Result<Added, Error>>;

/// A new request on its way to storage: its index in the batch, the request with every field
/// filled, and where each field came from.
struct Pending {
    item: usize,
    request: Request,
    provenance: Fields<Guess>,
}

impl Pipeline {
    /// # Panics
    /// If `stages.storage` is empty: a registry has at least one shard.
    pub fn new(schema: Schema, stages: Stages) -> Pipeline {
        assert!(
            !stages.storage.is_empty(),
            "a pipeline needs at least one storage shard"
        );
        Pipeline {
            schema,
            stages,
            cache_errors: AtomicU64::new(0),
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn shards(&self) -> usize {
        self.stages.storage.len()
    }

    /// Cache counters, plus how many cache calls failed (a failing cache is bypassed: it only
    /// ever makes the registry slower, never wrong).
    pub fn cache_stats(&self) -> (CacheStats, u64) {
        (
            self.stages.cache.stats(),
            self.cache_errors.load(Ordering::Relaxed),
        )
    }

    /// Registers a batch of requests; returns one result per request, in order.
    pub fn add(&self, mut requests: Vec<Request>) -> Vec<Result<Added, Error>> {
        let n = requests.len();
        let mut slots: Vec<Slot> = (0..n).map(|_| None).collect();
        for r in &mut requests {
            self.canonicalize(&mut r.fields);
        }
        let fps: Vec<Fingerprint> = requests.iter().map(Request::fingerprint).collect();

        // Repeats inside the batch resolve to the first occurrence.
        let mut first: HashMap<Fingerprint, usize> = HashMap::with_capacity(n);
        let mut repeat_of = vec![None; n];
        for (i, fp) in fps.iter().enumerate() {
            if let Some(&j) = first.get(fp) {
                repeat_of[i] = Some(j);
            } else {
                first.insert(*fp, i);
            }
        }
        let mut todo: Vec<usize> = (0..n).filter(|&i| repeat_of[i].is_none()).collect();

        self.lookup_cached(&fps, &mut todo, &mut slots);
        let shard_of = match self.route(&todo, &fps) {
            Ok(s) => s,
            Err(e) => {
                fail_all(&todo, &e, &mut slots);
                todo.clear();
                Vec::new()
            }
        };
        self.lookup_stored(&fps, &shard_of, &mut todo, &mut slots);
        self.create(&requests, &fps, &shard_of, &todo, &mut slots);

        let mut out: Vec<Result<Added, Error>> = Vec::with_capacity(n);
        for i in 0..n {
            // A repeat's first occurrence comes earlier, so its result is already in `out`.
            let result = match repeat_of[i] {
                Some(j) => match &out[j] {
                    Ok(a) => Ok(existing(a.entry.clone())),
                    Err(e) => Err(e.clone()),
                },
                None => slots[i]
                    .take()
                    .unwrap_or_else(|| Err(internal("request was not processed"))),
            };
            out.push(result);
        }
        out
    }

    /// Registers one request.
    ///
    /// # Errors
    /// As the item results of [`Pipeline::add`].
    pub fn add_one(&self, request: Request) -> Result<Added, Error> {
        self.add(vec![request])
            .pop()
            .unwrap_or_else(|| Err(internal("empty batch result")))
    }

    fn canonicalize(&self, fields: &mut Fields<Option<String>>) {
        for f in Field::ALL {
            if let Some(v) = &fields[f]
                && let Some(c) = self.schema.canonical(f, v)
                && c != v
            {
                fields[f] = Some(c.to_owned());
            }
        }
    }

    fn lookup_cached(&self, fps: &[Fingerprint], todo: &mut Vec<usize>, slots: &mut [Slot]) {
        let keys: Vec<CacheKey> = todo
            .iter()
            .map(|&i| CacheKey::of_fingerprint(&fps[i]))
            .collect();
        let mut hits = Vec::with_capacity(keys.len());
        if self.stages.cache.get(&keys, &mut hits).is_err() || hits.len() != keys.len() {
            self.cache_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut rest = Vec::with_capacity(todo.len());
        for (&i, hit) in todo.iter().zip(hits) {
            match hit {
                Some(entry) if entry.fingerprint == fps[i] => slots[i] = Some(Ok(existing(entry))),
                _ => rest.push(i),
            }
        }
        *todo = rest;
    }

    /// The shard of each request in `todo`, indexed like `fps`.
    fn route(&self, todo: &[usize], fps: &[Fingerprint]) -> Result<Vec<u32>, Error> {
        let mut shard_of = vec![0u32; fps.len()];
        let shards = self.shards_u32();
        if shards == 1 || todo.is_empty() {
            return Ok(shard_of);
        }
        let keys: Vec<u64> = todo.iter().map(|&i| fps[i].low64()).collect();
        let mut out = Vec::with_capacity(keys.len());
        self.stages
            .router
            .route(&keys, shards, &mut out)
            .map_err(|e| Error::stage(StageKind::Router, e))?;
        if out.len() != keys.len() || out.iter().any(|&s| s >= shards) {
            return Err(Error::stage(
                StageKind::Router,
                StageError::new(ErrorCode::Internal, "router returned shards out of range"),
            ));
        }
        for (&i, s) in todo.iter().zip(out) {
            shard_of[i] = s;
        }
        Ok(shard_of)
    }

    fn lookup_stored(
        &self,
        fps: &[Fingerprint],
        shard_of: &[u32],
        todo: &mut Vec<usize>,
        slots: &mut [Slot],
    ) {
        let mut rest = Vec::with_capacity(todo.len());
        for (shard, items) in group_by_shard(todo, shard_of) {
            let wanted: Vec<Fingerprint> = items.iter().map(|&i| fps[i]).collect();
            let mut found = Vec::with_capacity(wanted.len());
            match self.stages.storage[shard].find(&wanted, &mut found) {
                Err(e) => fail_all(&items, &Error::stage(StageKind::Storage, e), slots),
                Ok(()) if found.len() != wanted.len() => {
                    fail_all(&items, &miscount(StageKind::Storage), slots);
                }
                Ok(()) => {
                    let mut hits = Vec::new();
                    for (i, f) in items.into_iter().zip(found) {
                        match f {
                            Some(entry) => {
                                hits.push(entry.clone());
                                slots[i] = Some(Ok(existing(entry)));
                            }
                            None => rest.push(i),
                        }
                    }
                    self.fill_cache(&hits);
                }
            }
        }
        rest.sort_unstable();
        *todo = rest;
    }

    /// Predicts, validates, allocates, renders, validates again and inserts the new requests.
    fn create(
        &self,
        requests: &[Request],
        fps: &[Fingerprint],
        shard_of: &[u32],
        todo: &[usize],
        slots: &mut [Slot],
    ) {
        if todo.is_empty() {
            return;
        }
        // Fill the missing fields.
        let batch: Vec<Request> = todo.iter().map(|&i| requests[i].clone()).collect();
        let mut predictions = Vec::with_capacity(batch.len());
        if let Err(e) = self.stages.generator.predict(&batch, &mut predictions) {
            return fail_all(todo, &Error::stage(StageKind::Generator, e), slots);
        }
        if predictions.len() != batch.len() {
            return fail_all(todo, &miscount(StageKind::Generator), slots);
        }
        let mut completed = Vec::with_capacity(batch.len());
        let mut provenance = Vec::with_capacity(batch.len());
        let mut live = Vec::with_capacity(batch.len());
        for ((&i, request), prediction) in todo.iter().zip(batch).zip(predictions) {
            match self.complete(request, prediction) {
                Ok((request, fields)) => {
                    completed.push(request);
                    provenance.push(fields);
                    live.push(i);
                }
                Err(e) => slots[i] = Some(Err(e)),
            }
        }

        // Check the completed requests before any id is spent on them.
        let mut problems = Vec::new();
        if let Err(e) = self
            .stages
            .validator
            .check_requests(&completed, &mut problems)
        {
            return fail_all(&live, &Error::stage(StageKind::Validator, e), slots);
        }
        let rejected = reject(&live, problems, slots);
        let mut pending: Vec<Pending> = live
            .into_iter()
            .zip(completed)
            .zip(provenance)
            .filter(|((i, _), _)| !rejected.contains(i))
            .map(|((item, request), provenance)| Pending {
                item,
                request,
                provenance,
            })
            .collect();
        pending.sort_by_key(|p| shard_of[p.item]);

        let now = Timestamp::now();
        for (shard, group) in chunk_by_shard(pending, shard_of) {
            self.create_in_shard(shard, group, fps, now, slots);
        }
    }

    fn create_in_shard(
        &self,
        shard: usize,
        group: Vec<Pending>,
        fps: &[Fingerprint],
        now: Timestamp,
        slots: &mut [Slot],
    ) {
        let storage = &self.stages.storage[shard];
        let items: Vec<usize> = group.iter().map(|p| p.item).collect();
        let prefixes: Vec<String> = group
            .iter()
            .map(|p| {
                EntryId::prefix_for(
                    field(&p.request.fields, Field::Scope),
                    field(&p.request.fields, Field::Type),
                )
            })
            .collect();
        let mut numbers = Vec::with_capacity(prefixes.len());
        if let Err(e) = storage.allocate(&prefixes, &mut numbers) {
            return fail_all(&items, &Error::stage(StageKind::Storage, e), slots);
        }
        if numbers.len() != prefixes.len() {
            return fail_all(&items, &miscount(StageKind::Storage), slots);
        }
        let drafts: Vec<Draft> = group
            .iter()
            .zip(prefixes)
            .zip(numbers)
            .map(|((p, prefix), number)| Draft {
                header: Header {
                    fields: p.request.fields.clone().map(|_, v| v.unwrap_or_default()),
                    id: EntryId::new(prefix, number),
                    version: p.request.version.clone().unwrap_or_default(),
                },
                title: p.request.title().to_owned(),
                context: p.request.context.clone(),
            })
            .collect();
        let mut configs = Vec::with_capacity(drafts.len());
        if let Err(e) = self.stages.generator.render(&drafts, &mut configs) {
            return fail_all(&items, &Error::stage(StageKind::Generator, e), slots);
        }
        if configs.len() != drafts.len() {
            return fail_all(&items, &miscount(StageKind::Generator), slots);
        }
        let entries: Vec<Entry> = drafts
            .into_iter()
            .zip(configs)
            .zip(&items)
            .map(|((d, config), &i)| Entry {
                hash: Entry::compute_hash(&d.header, &d.title, &d.context, &config),
                header: d.header,
                title: d.title,
                context: d.context,
                config,
                fingerprint: fps[i],
                revision: 1,
                created_at: now,
                updated_at: now,
            })
            .collect();

        let mut problems = Vec::new();
        if let Err(e) = self.stages.validator.check_entries(&entries, &mut problems) {
            return fail_all(&items, &Error::stage(StageKind::Validator, e), slots);
        }
        let rejected = reject(&items, problems, slots);
        let (keep, entries): (Vec<Pending>, Vec<Entry>) = group
            .into_iter()
            .zip(entries)
            .filter(|(p, _)| !rejected.contains(&p.item))
            .unzip();
        if entries.is_empty() {
            return;
        }
        let keep_items: Vec<usize> = keep.iter().map(|p| p.item).collect();
        let mut inserted = Vec::with_capacity(entries.len());
        if let Err(e) = storage.insert(&entries, &mut inserted) {
            return fail_all(&keep_items, &Error::stage(StageKind::Storage, e), slots);
        }
        if inserted.len() != entries.len() {
            return fail_all(&keep_items, &miscount(StageKind::Storage), slots);
        }
        let mut stored = Vec::with_capacity(entries.len());
        for ((p, entry), outcome) in keep.into_iter().zip(entries).zip(inserted) {
            let added = match outcome {
                Inserted::Created => Added {
                    entry,
                    created: true,
                    fields: Some(p.provenance),
                },
                Inserted::Existing(entry) => existing(entry),
            };
            stored.push(added.entry.clone());
            slots[p.item] = Some(Ok(added));
        }
        self.fill_cache(&stored);
    }

    /// Fills every field of a request: the given value, else the generator's guess, else the
    /// schema's default (each in the schema's spelling), and the version likewise.
    fn complete(
        &self,
        mut request: Request,
        prediction: Prediction,
    ) -> Result<(Request, Fields<Guess>), Error> {
        let mut sources: Fields<Option<Guess>> = Fields::default();
        for f in Field::ALL {
            let guess = match &request.fields[f] {
                Some(v) => Guess {
                    value: v.clone(),
                    confidence: None,
                    source: Source::Given,
                },
                None => match prediction[f].clone().or_else(|| {
                    self.schema.default_value(f).map(|v| Guess {
                        value: v.to_owned(),
                        confidence: None,
                        source: Source::Default,
                    })
                }) {
                    Some(g) => g,
                    None => {
                        return Err(Error::Invalid(vec![Problem {
                            item: 0,
                            severity: Severity::Error,
                            code: format!("missing-{f}"),
                            field: f.name().to_owned(),
                            message: format!(
                                "{f}: not given, not predicted, and the schema has no default"
                            ),
                        }]));
                    }
                },
            };
            let value = self
                .schema
                .canonical(f, &guess.value)
                .map_or_else(|| guess.value.clone(), str::to_owned);
            request.fields[f] = Some(value.clone());
            sources[f] = Some(Guess { value, ..guess });
        }
        if request.version.is_none() {
            request.version = Some(self.schema.version().to_owned());
        }
        match sources {
            Fields {
                scope: Some(scope),
                kind: Some(kind),
                variant: Some(variant),
                status: Some(status),
            } => Ok((
                request,
                Fields {
                    scope,
                    kind,
                    variant,
                    status,
                },
            )),
            _ => Err(internal("field lost while completing request")),
        }
    }

    /// What `add` would fill in for each request, and where each value comes from; nothing is
    /// stored and no id is allocated.
    ///
    /// # Errors
    /// The whole batch fails when the generator does; an item fails when a field has no value.
    pub fn predict(
        &self,
        mut requests: Vec<Request>,
    ) -> Result<Vec<Result<Fields<Guess>, Error>>, Error> {
        for r in &mut requests {
            self.canonicalize(&mut r.fields);
        }
        let mut predictions = Vec::with_capacity(requests.len());
        self.stages
            .generator
            .predict(&requests, &mut predictions)
            .map_err(|e| Error::stage(StageKind::Generator, e))?;
        if predictions.len() != requests.len() {
            return Err(miscount(StageKind::Generator));
        }
        Ok(requests
            .into_iter()
            .zip(predictions)
            .map(|(r, p)| self.complete(r, p).map(|(_, fields)| fields))
            .collect())
    }

    /// Trains the generator on examples (requests with their known fields given).
    ///
    /// # Errors
    /// What the generator reports, e.g. a value outside the schema or a generator that cannot
    /// be trained.
    pub fn train(
        &self,
        mut examples: Vec<Request>,
        options: &TrainOptions,
    ) -> Result<TrainReport, Error> {
        for r in &mut examples {
            self.canonicalize(&mut r.fields);
        }
        self.stages
            .generator
            .train(&examples, options)
            .map_err(|e| Error::stage(StageKind::Generator, e))
    }

    fn fill_cache(&self, entries: &[Entry]) {
        if !entries.is_empty() && self.stages.cache.put(entries).is_err() {
            self.cache_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn shards_u32(&self) -> u32 {
        u32::try_from(self.stages.storage.len()).unwrap_or(u32::MAX)
    }

    /// The shard that allocated an id: numbers `n` with `(n - 1) % K == shard`.
    fn shard_of_id(&self, id: &EntryId) -> Option<&dyn Storage> {
        let n = id.number().checked_sub(1)?;
        let k = self.stages.storage.len() as u64;
        self.stages
            .storage
            .get(usize::try_from(n % k).ok()?)
            .map(|s| &**s)
    }

    /// The latest revision of an entry, from the cache when it holds it.
    ///
    /// # Errors
    /// [`Error::NotFound`], or a storage failure.
    pub fn get(&self, id: &EntryId) -> Result<Entry, Error> {
        let key = [CacheKey::of_id(id)];
        let mut hit = Vec::with_capacity(1);
        match self.stages.cache.get(&key, &mut hit) {
            Ok(()) => {
                if let Some(Some(entry)) = hit.pop()
                    && entry.header.id == *id
                {
                    return Ok(entry);
                }
            }
            Err(_) => {
                self.cache_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let entry = self.get_stored(id)?;
        self.fill_cache(std::slice::from_ref(&entry));
        Ok(entry)
    }

    fn get_stored(&self, id: &EntryId) -> Result<Entry, Error> {
        let storage = self
            .shard_of_id(id)
            .ok_or_else(|| Error::NotFound(id.clone()))?;
        let mut out = Vec::with_capacity(1);
        storage
            .get(std::slice::from_ref(id), &mut out)
            .map_err(|e| Error::stage(StageKind::Storage, e))?;
        out.pop()
            .flatten()
            .ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// Up to `query.limit` entries matching the query, in id order, across all shards.
    ///
    /// # Errors
    /// A storage failure.
    pub fn list(&self, query: &ListQuery) -> Result<Vec<Entry>, Error> {
        let mut query = query.clone();
        self.canonicalize(&mut query.filter);
        let mut all = Vec::new();
        for storage in &self.stages.storage {
            let before = all.len();
            storage
                .list(&query, &mut all)
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
            all.truncate(before.saturating_add(query.limit));
        }
        if self.stages.storage.len() > 1 {
            all.sort_by(|a, b| a.header.id.cmp(&b.header.id));
            all.truncate(query.limit);
        }
        Ok(all)
    }

    /// Every revision of an entry, oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`], or a storage failure.
    pub fn history(&self, id: &EntryId) -> Result<Vec<Entry>, Error> {
        let storage = self
            .shard_of_id(id)
            .ok_or_else(|| Error::NotFound(id.clone()))?;
        let mut out = Vec::new();
        storage
            .history(id, &mut out)
            .map_err(|e| Error::stage(StageKind::Storage, e))?;
        if out.is_empty() {
            return Err(Error::NotFound(id.clone()));
        }
        Ok(out)
    }

    /// Writes a new revision of an entry with the given changes, keeping every earlier one.
    /// Changes that leave the content as it was write nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`], an invalid change, [`Error::Conflict`] when another writer stored a
    /// revision meanwhile, or a stage failure.
    pub fn update(&self, id: &EntryId, changes: Changes) -> Result<Updated, Error> {
        let current = self.get_stored(id)?;
        let title = match &changes.title {
            Some(t) => check_title(t)?,
            None => current.title.clone(),
        };
        let mut fields: Fields<Option<String>> = current.header.fields.clone().map(|_, v| Some(v));
        if let Some(v) = changes.variant {
            fields.variant = Some(v);
        }
        if let Some(s) = changes.status {
            fields.status = Some(s);
        }
        self.canonicalize(&mut fields);
        let mut context = current.context.clone();
        for (k, v) in changes.context {
            context.set(k, v)?;
        }
        let version = changes
            .version
            .unwrap_or_else(|| current.header.version.clone());
        let request = Request::new(&title, fields, Some(version), context)?;
        let mut problems = Vec::new();
        self.stages
            .validator
            .check_requests(std::slice::from_ref(&request), &mut problems)
            .map_err(|e| Error::stage(StageKind::Validator, e))?;
        if problems.iter().any(|p| p.severity == Severity::Error) {
            return Err(Error::Invalid(problems));
        }

        let draft = Draft {
            header: Header {
                fields: request.fields.clone().map(|_, v| v.unwrap_or_default()),
                id: id.clone(),
                version: request.version.clone().unwrap_or_default(),
            },
            title: request.title().to_owned(),
            context: request.context.clone(),
        };
        let mut configs = Vec::with_capacity(1);
        self.stages
            .generator
            .render(std::slice::from_ref(&draft), &mut configs)
            .map_err(|e| Error::stage(StageKind::Generator, e))?;
        let config = configs
            .pop()
            .ok_or_else(|| miscount(StageKind::Generator))?;
        let hash = Entry::compute_hash(&draft.header, &draft.title, &draft.context, &config);
        if hash == current.hash {
            return Ok(Updated {
                entry: current,
                changed: false,
            });
        }
        let entry = Entry {
            header: draft.header,
            title: draft.title,
            context: draft.context,
            config,
            hash,
            fingerprint: current.fingerprint,
            revision: current.revision + 1,
            created_at: current.created_at,
            updated_at: Timestamp::now().max(current.updated_at),
        };
        let mut problems = Vec::new();
        self.stages
            .validator
            .check_entries(std::slice::from_ref(&entry), &mut problems)
            .map_err(|e| Error::stage(StageKind::Validator, e))?;
        if problems.iter().any(|p| p.severity == Severity::Error) {
            return Err(Error::Invalid(problems));
        }
        let storage = self
            .shard_of_id(id)
            .ok_or_else(|| Error::NotFound(id.clone()))?;
        let mut outcome = Vec::with_capacity(1);
        storage
            .update(std::slice::from_ref(&entry), &mut outcome)
            .map_err(|e| Error::stage(StageKind::Storage, e))?;
        match outcome.pop() {
            Some(Ok(())) => {}
            Some(Err(e)) if e.code == ErrorCode::Conflict => {
                return Err(Error::Conflict(id.clone()));
            }
            Some(Err(e)) if e.code == ErrorCode::NotFound => {
                return Err(Error::NotFound(id.clone()));
            }
            Some(Err(e)) => return Err(Error::stage(StageKind::Storage, e)),
            None => return Err(miscount(StageKind::Storage)),
        }
        self.fill_cache(std::slice::from_ref(&entry));
        Ok(Updated {
            entry,
            changed: true,
        })
    }
}

fn field(fields: &Fields<Option<String>>, f: Field) -> &str {
    fields[f].as_deref().unwrap_or("")
}

fn existing(entry: Entry) -> Added {
    Added {
        entry,
        created: false,
        fields: None,
    }
}

fn internal(message: &str) -> Error {
    Error::stage(
        StageKind::Storage,
        StageError::new(ErrorCode::Internal, message),
    )
}

fn miscount(stage: StageKind) -> Error {
    Error::stage(
        stage,
        StageError::new(
            ErrorCode::Internal,
            "plugin returned a different number of results than items",
        ),
    )
}

fn fail_all(items: &[usize], error: &Error, slots: &mut [Slot]) {
    for &i in items {
        slots[i] = Some(Err(error.clone()));
    }
}

/// Records the problems of each item (indexes into `items`) and returns the items with errors.
fn reject(items: &[usize], problems: Vec<Problem>, slots: &mut [Slot]) -> Vec<usize> {
    let mut per_item: HashMap<usize, Vec<Problem>> = HashMap::new();
    for p in problems {
        if let Some(&i) = items.get(p.item) {
            per_item
                .entry(i)
                .or_default()
                .push(Problem { item: 0, ..p });
        }
    }
    let mut rejected = Vec::new();
    for (i, problems) in per_item {
        if problems.iter().any(|p| p.severity == Severity::Error) {
            slots[i] = Some(Err(Error::Invalid(problems)));
            rejected.push(i);
        }
    }
    rejected
}

fn group_by_shard(items: &[usize], shard_of: &[u32]) -> Vec<(usize, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in items {
        let s = shard_of.get(i).copied().unwrap_or(0) as usize;
        match groups.iter_mut().find(|(g, _)| *g == s) {
            Some((_, v)) => v.push(i),
            None => groups.push((s, vec![i])),
        }
    }
    groups
}

fn chunk_by_shard(sorted: Vec<Pending>, shard_of: &[u32]) -> Vec<(usize, Vec<Pending>)> {
    let mut groups: Vec<(usize, Vec<Pending>)> = Vec::new();
    for p in sorted {
        let s = shard_of.get(p.item).copied().unwrap_or(0) as usize;
        match groups.last_mut() {
            Some((g, v)) if *g == s => v.push(p),
            _ => groups.push((s, vec![p])),
        }
    }
    groups
}
