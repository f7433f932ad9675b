//! [`RedisStorage`]: one registry shard kept in Redis Cluster, and the `Storage` operations on it.
//!
//! Every operation is one call: a Lua script (or, for `history`, one `LRANGE`) on the master of
//! the shard's hash slot, through [`Cluster::run`], which retries while the cluster is
//! unavailable. The checks that need no stored data (revision numbers, the shape of a restored
//! history, ids named twice in a batch) are done here before the call, by the rules every
//! storage keeps ([`registry_core::rules`]), which also make every message the scripts' answers
//! become.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard};

use redis::Value;
use redis::cluster::ClusterConnection;
use registry_codec::entry::{self as codec, Lender, Writing};
use registry_codec::{Dictionaries, Dictionary};
use registry_core::layout;
use registry_core::rules::{self, Numbering};
use registry_core::{
    Entry, EntryId, EntryRef, ErrorCode, Field, Fingerprint, FromConfig, Inserted, ListQuery, Meta,
    Restored, Sequence, Setup, StageError, StageResult, Storage,
};

use crate::Config;
use crate::client::{Cluster, WaitShort, config_error};
use crate::keys::{self, Keys};
use crate::scripts::Scripts;

mod migrate;
mod reindex;

/// One history for the `restore` script: its member, latest revision, the count its prefix's
/// sequence is raised to, and every revision coded.
type Restoring<'a> = (&'a [u8], &'a Entry, &'a str, &'a [Vec<u8>]);

/// The storage format this build creates and reads (and every one before it).
const STORAGE_FORMAT: u32 = 2;

use registry_codec::compress::TRAIN_SAMPLES;

/// How many entries one `list` script returns at most; a larger `limit` takes several calls.
const LIST_PAGE: usize = 1000;

/// How many index members one `list` script looks at before it returns, so a filter matching
/// little of a large shard never blocks the node for long.
const LIST_BUDGET: usize = 20_000;

/// One storage shard in Redis Cluster: every key under the hash tag `{namespace/shard}`.
///
/// Several registry processes (on several hosts) may open the same shard at once: allocation
/// is an atomic `HINCRBY` on the server, insertion checks fingerprints and ids inside one
/// script, and an update is a compare-and-set on the stored revision, so they never hand out an
/// id twice or lose an update. See the crate documentation for the key layout.
pub struct RedisStorage {
    cluster: Cluster,
    namespace: String,
    keys: Keys,
    meta: String,
    numbering: Numbering,
    /// The storage format the shard records (see the crate documentation).
    format: u32,
    /// The shard's dictionaries, as last loaded.
    dictionaries: RwLock<Dictionaries>,
    scripts: Scripts,
    /// "shard 3 (`{registry/3}`)", for messages.
    name: String,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("shard", &self.name)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl FromConfig for RedisStorage {
    type Config = Config;

    /// Connects to the cluster; see [`RedisStorage::open`].
    fn from_config(config: Config, setup: &Setup) -> StageResult<Self> {
        RedisStorage::open(&config, setup)
    }
}

impl RedisStorage {
    /// Opens shard `setup.shard` of `setup.shards` in the cluster `config.nodes` names: checks
    /// the config, connects, and records the shard count in the shard's `meta` hash (or checks
    /// it against the recorded one).
    ///
    /// # Errors
    /// - `Config` when the config or the shard numbers are impossible, or the shard was first
    ///   opened with another shard count (the numbers already handed out would collide);
    /// - `Unavailable` when the cluster cannot be reached within the bounded retries.
    pub fn open(config: &Config, setup: &Setup) -> StageResult<RedisStorage> {
        setup.check_shard()?;
        let ns = &config.namespace;
        if ns.is_empty() || ns.contains(['{', '}']) || ns.chars().any(char::is_whitespace) {
            return Err(config_error(format!(
                "namespace `{ns}` cannot name keys: it must be non-empty, without braces or \
                 spaces, e.g. \"registry\""
            )));
        }
        let cluster = Cluster::new(config)?;
        let scripts = Scripts::new();
        let name = |keys: &Keys| {
            format!(
                "shard {} (`{}`)",
                setup.shard,
                keys.prefix().trim_end_matches(':')
            )
        };
        // The layout recorded under `keys` (recorded now when `create` says so and there is
        // none): the shard count and the storage format.
        let layout = |keys: &Keys, create: bool| -> StageResult<Option<(String, String)>> {
            cluster.run(&format!("open {}", name(keys)), |c| {
                let mut call = scripts.layout.key(keys.meta());
                call.arg(keys.prefix())
                    .arg(setup.shards)
                    .arg(if create { "1" } else { "0" })
                    .arg(STORAGE_FORMAT);
                for (name, value) in setup.create.iter().flatten() {
                    call.arg(name).arg(value);
                }
                call.invoke(c)
            })
        };
        // Where the shard's keys are. Shard 0 says: under its balanced tag (which the shard
        // count does not change) it is of this build's format, and the other shards' tags
        // follow from the count it records; under the tag of format 1 (an earlier release
        // made it), so are the others. A shard opened with another count than shard 0 records
        // is refused here, before a tag of that count is looked at. Without a shard 0 (a shard
        // opened alone), the configured count places it.
        let first = Keys::balanced(ns, 0, 0);
        let legacy_first = Keys::new(ns, 0);
        let keys = match layout(&first, false)? {
            Some(_) if setup.shard == 0 => first,
            Some((count, _)) => {
                if setup.shards != 0 && count != setup.shards.to_string() {
                    return Err(rules::layout_changed(
                        &name(&Keys::balanced(ns, setup.shard, setup.shards)),
                        "shards",
                        &count,
                        setup.shards,
                    ));
                }
                let count = count.parse().unwrap_or(setup.shards);
                Keys::balanced(ns, setup.shard, count)
            }
            None => match layout(&legacy_first, false)? {
                Some(_) => Keys::new(ns, setup.shard),
                None => Keys::balanced(ns, setup.shard, setup.shards),
            },
        };
        let recorded = layout(&keys, setup.create.is_some())?;
        let mut storage = RedisStorage {
            cluster,
            namespace: ns.clone(),
            meta: keys.meta(),
            name: name(&keys),
            keys,
            numbering: Numbering {
                shard: setup.shard,
                shards: setup.shards,
                dense: false,
            },
            format: STORAGE_FORMAT,
            dictionaries: RwLock::new(Dictionaries::default()),
            scripts,
        };
        let Some((recorded, format)) = recorded else {
            return Err(StageError::new(
                ErrorCode::NotFound,
                if setup.shards == 0 {
                    format!("no registry in namespace `{ns}`")
                } else {
                    format!("{} does not exist", storage.name)
                },
            ));
        };
        let Ok(count) = recorded.parse::<u32>() else {
            return Err(StageError::new(
                ErrorCode::Storage,
                format!(
                    "{} records the shard count `{recorded}`: it is damaged",
                    storage.name
                ),
            ));
        };
        if setup.shards == 0 {
            storage.numbering.shards = count;
        } else if count != setup.shards {
            return Err(rules::layout_changed(
                &storage.name,
                "shards",
                &recorded,
                setup.shards,
            ));
        }
        storage.format = format.parse().map_err(|_| {
            StageError::new(
                ErrorCode::Storage,
                format!(
                    "{} records the format `{format}`: it is damaged",
                    storage.name
                ),
            )
        })?;
        if storage.format > STORAGE_FORMAT {
            return Err(StageError::new(
                ErrorCode::Config,
                format!(
                    "{} is of storage format {}, newer than this build's {STORAGE_FORMAT}: use \
                     it with the build of the registry that wrote it, or a newer one",
                    storage.name, storage.format
                ),
            ));
        }
        if storage.format >= 2 {
            storage.numbering.dense = true;
            storage.load_dictionaries()?;
        }
        Ok(storage)
    }

    /// Reads every dictionary of the shard, replacing those loaded.
    fn load_dictionaries(&self) -> StageResult<()> {
        let key = self.keys.dictionaries();
        let rows: Vec<(u32, Vec<u8>)> = self
            .cluster
            .run(&format!("read the dictionaries of {}", self.name), |c| {
                redis::cmd("HGETALL").arg(&key).query(c)
            })?;
        let mut all = Dictionaries::default();
        for (id, bytes) in rows {
            let dictionary =
                Dictionary::new(id, bytes).map_err(|e| self.damaged(&"a dictionary", e))?;
            all.add(Arc::new(dictionary));
        }
        *self
            .dictionaries
            .write()
            .unwrap_or_else(PoisonError::into_inner) = all;
        Ok(())
    }

    /// The dictionaries as last loaded.
    fn dictionaries(&self) -> RwLockReadGuard<'_, Dictionaries> {
        self.dictionaries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Encodes an entry as this shard writes them.
    fn encoded(&self, entry: &Entry) -> Vec<u8> {
        if self.format >= 2 {
            codec::encoded(entry, Writing::Compressed(self.dictionaries().newest()))
        } else {
            codec::encoded(entry, Writing::Uncompressed)
        }
    }

    /// Decodes stored bytes; when they name a dictionary not loaded yet (another host trained
    /// it), loads the dictionaries again and tries once more.
    fn decode_bytes(&self, bytes: &[u8]) -> Result<Entry, String> {
        self.decode_bytes_into(bytes, None)
    }

    /// [`RedisStorage::decode_bytes`] into `spare`'s strings when there is one
    /// ([`codec::decode_into`]).
    /// The stored latest revision of each id, in one script call.
    fn fetch_latest(&self, ids: &[EntryId]) -> StageResult<Vec<Option<Vec<u8>>>> {
        self.cluster.run(&format!("get from {}", self.name), |c| {
            let mut call = self.scripts.get.key(&self.meta);
            call.arg(self.keys.prefix());
            for id in ids {
                call.arg(keys::member(id));
            }
            call.invoke(c)
        })
    }

    fn decode_bytes_into(&self, bytes: &[u8], spare: Option<Entry>) -> Result<Entry, String> {
        let mut entry = spare.unwrap_or_else(codec::blank);
        match codec::decode_into(bytes, &self.dictionaries(), &mut entry) {
            Ok(()) => return Ok(entry),
            Err(e) if self.format < 2 => return Err(e.to_string()),
            Err(_) => {}
        }
        self.load_dictionaries().map_err(|e| e.message)?;
        codec::decode_into(bytes, &self.dictionaries(), &mut entry).map_err(|e| e.to_string())?;
        Ok(entry)
    }

    /// Trains the shard's first dictionary when this insert's batch holds [`TRAIN_SAMPLES`]
    /// configs or brings a format 2 shard to [`TRAIN_AT`](registry_codec::compress::TRAIN_AT) entries
    /// ([`registry_codec::compress::training_due`]): on the batch's configs and, to make up
    /// [`TRAIN_SAMPLES`], the latest stored ones. Stored with `HSETNX`, so of two hosts training at once one wins, and
    /// the dictionaries are loaded again either way. A shard zstd cannot train on yet goes on
    /// without, and tries again at its next insert.
    fn train_if_due(&self, batch: &[Entry]) -> StageResult<()> {
        if self.format < 2 || !self.dictionaries().is_empty() {
            return Ok(());
        }
        let ids = self.keys.ids();
        let due = registry_codec::compress::training_due(batch.len(), || {
            self.cluster
                .run(&format!("count the entries of {}", self.name), |c| {
                    redis::cmd("ZCARD").arg(&ids).query::<u64>(c)
                })
        })?;
        if !due {
            return Ok(());
        }
        let mut samples: Vec<Vec<u8>> = batch
            .iter()
            .rev()
            .take(TRAIN_SAMPLES)
            .map(|e| e.config.as_bytes().to_vec())
            .collect();
        let wanted = TRAIN_SAMPLES.saturating_sub(samples.len());
        if wanted > 0 {
            let members: Vec<Vec<u8>> =
                self.cluster
                    .run(&format!("read the latest ids of {}", self.name), |c| {
                        redis::cmd("ZRANGE")
                            .arg(&ids)
                            .arg(0)
                            .arg(wanted - 1)
                            .arg("REV")
                            .query(c)
                    })?;
            let latest: Vec<Option<Vec<u8>>> =
                self.cluster
                    .run(&format!("read the latest entries of {}", self.name), |c| {
                        let mut call = self.scripts.get.key(&self.meta);
                        call.arg(self.keys.prefix());
                        for member in &members {
                            call.arg(member.as_slice());
                        }
                        call.invoke(c)
                    })?;
            for bytes in latest.into_iter().flatten() {
                if let Ok(entry) = self.decode_bytes(&bytes) {
                    samples.push(entry.config.into_bytes());
                }
            }
        }
        let Ok(bytes) = registry_codec::compress::train(&samples) else {
            return Ok(());
        };
        let key = self.keys.dictionaries();
        self.write(&format!("store a dictionary of {}", self.name), |c| {
            redis::cmd("HSETNX")
                .arg(&key)
                .arg(1)
                .arg(bytes.as_slice())
                .query::<i64>(c)
        })?;
        self.load_dictionaries()
    }

    /// Runs a script-calling closure, then WAITs for replicas on the same connection, and turns
    /// a short WAIT into the error that says the write is on the master.
    fn write<T>(
        &self,
        doing: &str,
        mut call: impl FnMut(&mut ClusterConnection) -> redis::RedisResult<T>,
    ) -> StageResult<T> {
        let (value, short) = self.cluster.run(doing, |c| {
            let value = call(c)?;
            let short: Option<WaitShort> = self.cluster.wait_replicas(c, &self.meta)?;
            Ok((value, short))
        })?;
        match short {
            Some(short) => Err(short.error(doing)),
            None => Ok(value),
        }
    }

    /// Runs the `restore` script under `keys` (this shard's, or where `migrate` copies it to)
    /// for the histories `items`; returns its reply per history.
    fn run_restore(
        &self,
        keys: &Keys,
        doing: &str,
        items: &[Restoring<'_>],
    ) -> StageResult<Vec<Value>> {
        let token = token();
        self.write(doing, |c| {
            let mut call = self.scripts.restore.key(keys.meta());
            call.arg(keys.prefix()).arg(token.as_str());
            for &(member, latest, count, coded) in items {
                call.arg(member)
                    .arg(&latest.fingerprint.0[..])
                    .arg(latest.header.id.prefix())
                    .arg(count)
                    .arg(coded.len());
                for bytes in coded {
                    call.arg(bytes.as_slice());
                }
            }
            call.invoke(c)
        })
    }

    /// Records under `keys` (this shard's, or where `migrate` copies it to) where each of
    /// `ids` is, raising the sequences, in one script. The caller checked the arguments.
    fn place_in(&self, keys: &Keys, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        let mut args = Vec::with_capacity(ids.len());
        for (id, &shard) in ids.iter().zip(shards) {
            let (block, offset) = rules::location_slot(id.number());
            let mut two = Vec::with_capacity(2);
            rules::write_location(&mut two, 0, shard)?;
            args.push((
                id.number().to_string(),
                block.to_string(),
                offset.to_string(),
                two,
            ));
        }
        let token = token();
        self.write(&format!("record entry locations in {}", self.name), |c| {
            let mut call = self.scripts.place.key(keys.meta());
            call.arg(keys.prefix()).arg(token.as_str());
            for (id, (number, block, offset, two)) in ids.iter().zip(&args) {
                call.arg(id.prefix())
                    .arg(number.as_str())
                    .arg(block.as_str())
                    .arg(offset.as_str())
                    .arg(two.as_slice());
            }
            call.invoke::<i64>(c).map(|_| ())
        })
    }

    /// Shard 0 of a dense registry, or the error any other shard gives for `place`/`locate`.
    fn check_locator(&self) -> StageResult<()> {
        if self.numbering.dense && self.numbering.shard == 0 {
            Ok(())
        } else {
            Err(rules::not_shard_zero(&self.name))
        }
    }

    fn damaged(&self, id: &dyn std::fmt::Display, why: impl std::fmt::Display) -> StageError {
        rules::damaged(id, &why, &self.name)
    }

    /// Decodes a stored revision and checks it is of the entry its key names.
    fn decode(&self, id: &EntryId, revision: Option<u32>, bytes: &[u8]) -> StageResult<Entry> {
        self.decode_reusing(id, revision, bytes, None)
    }

    /// [`RedisStorage::decode`] into `spare`'s strings when there is one.
    fn decode_reusing(
        &self,
        id: &EntryId,
        revision: Option<u32>,
        bytes: &[u8],
        spare: Option<Entry>,
    ) -> StageResult<Entry> {
        let entry = self
            .decode_bytes_into(bytes, spare)
            .map_err(|e| self.damaged(id, e))?;
        if entry.header.id != *id {
            return Err(self.damaged(id, format!("its key holds entry {}", entry.header.id)));
        }
        if let Some(want) = revision
            && entry.revision != want
        {
            return Err(self.damaged(
                id,
                format!(
                    "revision {want} of its list holds revision {}",
                    entry.revision
                ),
            ));
        }
        Ok(entry)
    }

    /// Decodes bytes found through an index or a fingerprint, whose id is only known after.
    fn decode_any(&self, what: &dyn std::fmt::Display, bytes: &[u8]) -> StageResult<Entry> {
        self.decode_bytes(bytes).map_err(|e| self.damaged(what, e))
    }

    /// Checks a history given to `restore` as every storage does ([`rules::check_history`],
    /// [`rules::check_owner`]), and that its id can be kept in the member form, and returns its
    /// latest revision.
    fn check_history<'h>(&self, history: &'h [Entry]) -> Result<&'h Entry, StageError> {
        let latest = rules::check_history(history)?;
        let id = &latest.header.id;
        storable(id)?;
        rules::check_owner(id, self.numbering, &self.name)?;
        Ok(latest)
    }
}

/// A token naming one writing call, the same for all its tries (see `scripts.rs`): 64 random
/// bits per process and a counter, so two hosts never share one.
fn token() -> String {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the operating system's randomness once per process.
    let process = *PROCESS.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{process:016x}-{n:x}")
}

/// Refuses an id whose prefix cannot be kept in the sortable member form.
fn storable(id: &EntryId) -> StageResult<()> {
    if keys::storable_prefix(id.prefix()) {
        Ok(())
    } else {
        Err(StageError::new(
            ErrorCode::Invalid,
            format!(
                "entry {id} cannot be stored: its id prefix `{}` is empty or holds spaces or \
                 control characters",
                id.prefix()
            ),
        ))
    }
}

/// The field number the `list` script uses (1 to 4, in `Field::ALL` order).
fn field_number(field: Field) -> usize {
    Field::ALL.iter().position(|&f| f == field).unwrap_or(0) + 1
}

impl Storage for RedisStorage {
    fn find(&self, fingerprints: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        if fingerprints.is_empty() {
            return Ok(());
        }
        let found: Vec<Option<Vec<u8>>> =
            self.cluster.run(&format!("find in {}", self.name), |c| {
                let mut call = self.scripts.find.key(&self.meta);
                call.arg(self.keys.prefix());
                for fp in fingerprints {
                    call.arg(&fp.0[..]);
                }
                call.invoke(c)
            })?;
        let mut entries = Vec::with_capacity(found.len());
        for (fp, bytes) in fingerprints.iter().zip(found) {
            entries.push(match bytes {
                Some(bytes) => {
                    let entry = self.decode_any(&format!("with fingerprint {fp}"), &bytes)?;
                    if entry.fingerprint != *fp {
                        return Err(self.damaged(
                            &entry.header.id,
                            format!("fingerprint {fp} names it but it has {}", entry.fingerprint),
                        ));
                    }
                    Some(entry)
                }
                None => None,
            });
        }
        out.extend(entries);
        Ok(())
    }

    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        self.get_reusing(ids, out, &mut Vec::new())
    }

    /// Decodes into the spare entries' strings, as the redb storage does.
    fn get_reusing(
        &self,
        ids: &[EntryId],
        out: &mut Vec<Option<Entry>>,
        spare: &mut Vec<Entry>,
    ) -> StageResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let found = self.fetch_latest(ids)?;
        let mut entries = Vec::with_capacity(found.len());
        for (id, bytes) in ids.iter().zip(found) {
            entries.push(match bytes {
                Some(bytes) => Some(self.decode_reusing(id, None, &bytes, spare.pop())?),
                None => None,
            });
        }
        out.extend(entries);
        Ok(())
    }

    /// Lends the fetched records in place (`registry_codec::entry::Lender`), as the redb
    /// storage does.
    fn get_lent(
        &self,
        ids: &[EntryId],
        _spare: &mut Vec<Entry>,
        each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
    ) -> StageResult<()> {
        if ids.is_empty() {
            return each(&[]);
        }
        let found = self.fetch_latest(ids)?;
        let mut parts = Vec::with_capacity(found.len());
        for (id, bytes) in ids.iter().zip(&found) {
            let Some(bytes) = bytes else {
                parts.push(None);
                continue;
            };
            let record = codec::parse(bytes).map_err(|e| self.damaged(id, e))?;
            if record.id() != (id.prefix(), id.number()) {
                let (prefix, number) = record.id();
                let held = EntryId::new(prefix, number);
                return Err(self.damaged(id, format!("its key holds entry {held}")));
            }
            parts.push(Some(record));
        }
        // A config made with a dictionary another host trained since this one loaded them:
        // load them again, once, as a decode does. Nothing was lent before such a failure.
        let mut lend = || {
            let dictionaries = self.dictionaries().clone();
            Lender::with_thread(|lender| lender.lend(&parts, &dictionaries, |views| each(views)))
        };
        let lent = match lend() {
            Err(_) if self.format >= 2 => {
                self.load_dictionaries()?;
                lend()
            }
            lent => lent,
        };
        lent.map_err(|(i, e)| self.damaged(&ids[i], e))?
    }

    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        if prefixes.is_empty() {
            return Ok(());
        }
        if !self.numbering.allocates() {
            return Err(rules::not_shard_zero(&self.name));
        }
        // One HINCRBY per distinct prefix, by how many of it the batch asks.
        let mut groups: Vec<(&str, u64)> = Vec::new();
        for prefix in prefixes {
            match groups.iter_mut().find(|(p, _)| p == prefix) {
                Some((_, n)) => *n += 1,
                None => groups.push((prefix, 1)),
            }
        }
        let token = token();
        let counts: Vec<u64> = self.write(&format!("allocate in {}", self.name), |c| {
            let mut call = self.scripts.allocate.key(&self.meta);
            call.arg(self.keys.prefix()).arg(token.as_str());
            for (prefix, n) in &groups {
                call.arg(*prefix).arg(*n);
            }
            call.invoke(c)
        })?;
        if counts.len() != groups.len() {
            return Err(StageError::new(
                ErrorCode::Internal,
                format!(
                    "the allocate script of {} gave {} counts for {} prefixes",
                    self.name,
                    counts.len(),
                    groups.len()
                ),
            ));
        }
        // The next count to hand out per group: the batch's numbers are the last `n` counts.
        let mut next: HashMap<&str, u64> = groups
            .iter()
            .zip(&counts)
            .map(|(&(prefix, n), &count)| (prefix, count + 1 - n))
            .collect();
        let mut numbers = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let count = next.get_mut(prefix.as_str()).ok_or_else(|| {
                StageError::new(
                    ErrorCode::Internal,
                    format!("prefix {prefix} lost its allocation group"),
                )
            })?;
            let number = self
                .numbering
                .nth(*count)
                .ok_or_else(|| rules::exhausted(prefix, &self.name))?;
            *count += 1;
            numbers.push(number);
        }
        out.extend(numbers);
        Ok(())
    }

    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in entries {
            rules::check_new(entry)?;
            storable(&entry.header.id)?;
        }
        self.train_if_due(entries)?;
        let mut coded = Vec::with_capacity(entries.len());
        for entry in entries {
            let id = &entry.header.id;
            coded.push((
                keys::member(id),
                self.numbering.count_through(id.number()).to_string(),
                self.encoded(entry),
            ));
        }
        let token = token();
        let replies: Vec<Value> = self.write(&format!("insert into {}", self.name), |c| {
            let mut call = self.scripts.insert.key(&self.meta);
            call.arg(self.keys.prefix()).arg(token.as_str());
            for (entry, (member, count, bytes)) in entries.iter().zip(&coded) {
                call.arg(member.as_slice())
                    .arg(&entry.fingerprint.0[..])
                    .arg(entry.header.id.prefix())
                    .arg(count.as_str())
                    .arg(bytes.as_slice());
            }
            call.invoke(c)
        })?;
        let mut outcomes = Vec::with_capacity(entries.len());
        for (entry, reply) in entries.iter().zip(replies) {
            outcomes.push(match reply {
                Value::Int(1) => Inserted::Created,
                Value::BulkString(bytes) => Inserted::Existing(
                    self.decode_any(&format!("with fingerprint {}", entry.fingerprint), &bytes)?,
                ),
                other => {
                    return Err(StageError::new(
                        ErrorCode::Internal,
                        format!(
                            "the insert script of {} answered {other:?} for entry {}",
                            self.name, entry.header.id
                        ),
                    ));
                }
            });
        }
        out.extend(outcomes);
        Ok(())
    }

    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let coded: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|e| (keys::member(&e.header.id), self.encoded(e)))
            .collect();
        let token = token();
        let replies: Vec<i64> = self.write(&format!("update in {}", self.name), |c| {
            let mut call = self.scripts.update.key(&self.meta);
            call.arg(self.keys.prefix()).arg(token.as_str());
            for (entry, (member, bytes)) in entries.iter().zip(&coded) {
                call.arg(member.as_slice())
                    .arg(entry.revision)
                    .arg(bytes.as_slice());
            }
            call.invoke(c)
        })?;
        let outcomes = entries.iter().zip(replies).map(|(entry, reply)| {
            let id = &entry.header.id;
            match reply {
                0 => Ok(()),
                -1 => Err(rules::no_entry(id)),
                stored => Err(rules::stale_revision(id, stored, entry.revision)),
            }
        });
        out.extend(outcomes);
        Ok(())
    }

    fn meta(&self, out: &mut Meta) -> StageResult<()> {
        let all: Vec<(String, String)> = self
            .cluster
            .run(&format!("read the metadata of {}", self.name), |c| {
                redis::cmd("HGETALL").arg(&self.meta).query(c)
            })?;
        for (field, value) in all {
            if let Some(name) = field.strip_prefix("m:") {
                out.insert(name.to_owned(), value);
            }
        }
        out.insert(layout::SHARDS.to_owned(), self.numbering.shards.to_string());
        if self.numbering.dense {
            out.insert(layout::IDS.to_owned(), layout::DENSE.to_owned());
        }
        out.insert(layout::FORMAT.to_owned(), self.format.to_string());
        Ok(())
    }

    fn place(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        self.check_locator()?;
        rules::check_places(ids, shards, self.numbering.shards)?;
        if ids.is_empty() {
            return Ok(());
        }
        for id in ids {
            storable(id)?;
        }
        self.place_in(&self.keys, ids, shards)
    }

    fn migrate(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<u64> {
        self.migrate_shard(ids, shards)
    }

    fn reindex(&self) -> StageResult<u64> {
        self.reindex_shard()
    }

    /// The shard's counts, as the numbers they stand for; a raise is kept as the count that
    /// covers its number, so the next number allocated is above it.
    fn sequences(&self, raise: &[Sequence], out: &mut Vec<Sequence>) -> StageResult<()> {
        let run = |c: &mut redis::cluster::ClusterConnection| {
            let mut call = self.scripts.sequences.key(&self.meta);
            call.arg(self.keys.prefix());
            for s in raise {
                call.arg(&s.prefix)
                    .arg(self.numbering.count_through(s.last).to_string());
            }
            call.invoke::<Vec<(String, u64)>>(c)
        };
        let counts = if raise.is_empty() {
            self.cluster
                .run(&format!("read the sequences of {}", self.name), run)?
        } else {
            self.write(&format!("raise the sequences of {}", self.name), run)?
        };
        let mut all = Vec::with_capacity(counts.len());
        for (prefix, count) in counts {
            // A shard that allocates nothing (not shard 0 of a dense registry) has no number.
            let last = match count {
                0 => 0,
                c if self.numbering.allocates() => self.numbering.nth(c).unwrap_or(u64::MAX),
                _ => 0,
            };
            all.push(Sequence { prefix, last });
        }
        all.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        out.extend(all);
        Ok(())
    }

    fn purge(&self, revision: &Entry) -> StageResult<()> {
        let id = &revision.header.id;
        if self.format < 2 {
            return Err(StageError::new(
                ErrorCode::Invalid,
                format!(
                    "entry {id}: a namespace of storage format 1 cannot keep a purge record; run \
                     `registry migrate`"
                ),
            ));
        }
        let member = keys::member(id);
        let key = self.keys.entry(&member);
        let at = revision
            .revision
            .checked_sub(1)
            .ok_or_else(|| rules::no_entry(id))?;
        let stored: Option<Vec<u8>> = self.cluster.run(
            &format!(
                "read revision {} of {id} in {}",
                revision.revision, self.name
            ),
            |c| redis::cmd("LINDEX").arg(&key).arg(at).query(c),
        )?;
        let stored = stored.ok_or_else(|| {
            StageError::new(
                ErrorCode::NotFound,
                format!("entry {id} has no revision {}", revision.revision),
            )
        })?;
        rules::check_purge(
            &self.decode(id, Some(revision.revision), &stored)?,
            revision,
        )?;
        let bytes = self.encoded(revision);
        let replaced: i64 = self.write(&format!("purge {id} in {}", self.name), |c| {
            let mut call = self.scripts.purge.key(&self.meta);
            call.arg(self.keys.prefix())
                .arg(member.as_slice())
                .arg(at)
                .arg(stored.as_slice())
                .arg(bytes.as_slice());
            call.invoke(c)
        })?;
        match replaced {
            1 => Ok(()),
            -1 => Err(rules::no_entry(id)),
            _ => Err(StageError::new(
                ErrorCode::Conflict,
                format!(
                    "revision {} of entry {id} changed while it was purged: purge it again",
                    revision.revision
                ),
            )),
        }
    }

    /// A Redis registry is copied by Redis itself (RDB snapshots or the append-only file of each
    /// master) or by `registry export`: see ARCHITECTURE.md, "Backups".
    fn backup(&self, _dir: &str) -> StageResult<u64> {
        Err(StageError::new(
            ErrorCode::Invalid,
            "a Redis registry is not copied into a directory: back it up with `registry \
             export` or with Redis's own persistence on each master (see ARCHITECTURE.md, \
             \"Backups\")",
        ))
    }

    fn locate(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        self.check_locator()?;
        if ids.is_empty() {
            return Ok(());
        }
        let slots: Vec<(String, String)> = ids
            .iter()
            .map(|id| {
                let (block, offset) = rules::location_slot(id.number());
                (block.to_string(), offset.to_string())
            })
            .collect();
        let found: Vec<Vec<u8>> =
            self.cluster
                .run(&format!("read entry locations in {}", self.name), |c| {
                    let mut call = self.scripts.locate.key(&self.meta);
                    call.arg(self.keys.prefix());
                    for (id, (block, offset)) in ids.iter().zip(&slots) {
                        call.arg(id.prefix())
                            .arg(block.as_str())
                            .arg(offset.as_str());
                    }
                    call.invoke(c)
                })?;
        if found.len() != ids.len() {
            return Err(StageError::new(
                ErrorCode::Internal,
                format!(
                    "the locate script of {} gave {} answers for {} ids",
                    self.name,
                    found.len(),
                    ids.len()
                ),
            ));
        }
        out.extend(found.iter().map(|two| rules::read_location(two, 0)));
        Ok(())
    }

    fn set_meta(&self, changes: &Meta) -> StageResult<()> {
        rules::check_meta_changes(changes)?;
        self.write(&format!("write the metadata of {}", self.name), |c| {
            let mut call = self.scripts.set_meta.key(&self.meta);
            call.arg(self.keys.prefix());
            for (name, value) in changes {
                call.arg(name).arg(value);
            }
            call.invoke::<i64>(c).map(|_| ())
        })
    }

    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        let key = self.keys.entry(&keys::member(id));
        let all: Vec<Vec<u8>> = self
            .cluster
            .run(&format!("read the history of {id} in {}", self.name), |c| {
                redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(c)
            })?;
        let mut found = Vec::with_capacity(all.len());
        for (at, bytes) in all.iter().enumerate() {
            let revision = u32::try_from(at + 1).unwrap_or(u32::MAX);
            found.push(self.decode(id, Some(revision), bytes)?);
        }
        out.extend(found);
        Ok(())
    }

    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        let filters: Vec<(usize, &str)> = Field::ALL
            .iter()
            .filter_map(|&f| query.filter[f].as_deref().map(|v| (field_number(f), v)))
            .collect();
        let mut after = query.after.as_ref().map(keys::member).unwrap_or_default();
        let mut found = Vec::new();
        let doing = format!("list {}", self.name);
        while found.len() < query.limit {
            let page = (query.limit - found.len()).min(LIST_PAGE);
            let reply: Vec<Vec<u8>> = self.cluster.run(&doing, |c| {
                let mut call = self.scripts.list.key(&self.meta);
                call.arg(self.keys.prefix())
                    .arg(after.as_slice())
                    .arg(page)
                    .arg(LIST_BUDGET);
                for (field, value) in &filters {
                    call.arg(*field).arg(*value);
                }
                call.invoke(c)
            })?;
            let mut reply = reply.into_iter();
            let cursor = reply.next().unwrap_or_default();
            for bytes in reply {
                let entry = self.decode_any(&"listed by an index", &bytes)?;
                // The script filtered by the indexes; this keeps a damaged index from showing
                // an entry the query does not match.
                if query.matches(&entry) {
                    found.push(entry);
                }
            }
            if cursor.is_empty() {
                break;
            }
            after = cursor;
        }
        found.truncate(query.limit);
        out.extend(found);
        Ok(())
    }

    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        if histories.is_empty() {
            return Ok(());
        }
        let mut outcomes: Vec<Option<StageResult<Restored>>> = Vec::with_capacity(histories.len());
        let mut claimed = rules::Claimed::default();
        // The histories that go to the script: (index, latest, member, count, encoded revisions).
        let mut sent = Vec::new();
        for (at, history) in histories.iter().enumerate() {
            let checked = self
                .check_history(history)
                .and_then(|latest| claimed.claim(latest).map(|()| latest));
            let latest = match checked {
                Ok(latest) => latest,
                Err(e) => {
                    outcomes.push(Some(Err(e)));
                    continue;
                }
            };
            let id = &latest.header.id;
            outcomes.push(None);
            sent.push((
                at,
                latest,
                keys::member(id),
                self.numbering.count_through(id.number()).to_string(),
                history.iter().map(|e| self.encoded(e)).collect::<Vec<_>>(),
            ));
        }
        if !sent.is_empty() {
            let items: Vec<Restoring<'_>> = sent
                .iter()
                .map(|(_, latest, member, count, coded)| {
                    (member.as_slice(), *latest, count.as_str(), coded.as_slice())
                })
                .collect();
            let replies =
                self.run_restore(&self.keys, &format!("restore into {}", self.name), &items)?;
            for ((at, latest, ..), reply) in sent.iter().zip(replies) {
                let id = &latest.header.id;
                outcomes[*at] = Some(match reply {
                    Value::Int(1) => Ok(Restored::Created),
                    Value::BulkString(bytes) => {
                        rules::restore_over(&self.decode(id, None, &bytes)?, latest)
                    }
                    Value::Array(other) => {
                        let other = match other.first() {
                            Some(Value::BulkString(m)) => keys::member_text(m),
                            _ => "another entry".to_owned(),
                        };
                        Err(rules::registered_as(id, &other, &latest.fingerprint))
                    }
                    other => {
                        return Err(StageError::new(
                            ErrorCode::Internal,
                            format!(
                                "the restore script of {} answered {other:?} for entry {id}",
                                self.name
                            ),
                        ));
                    }
                });
            }
        }
        let mut done = Vec::with_capacity(outcomes.len());
        for (at, outcome) in outcomes.into_iter().enumerate() {
            done.push(outcome.ok_or_else(|| {
                StageError::new(
                    ErrorCode::Internal,
                    format!("the restore script of {} skipped history {at}", self.name),
                )
            })?);
        }
        out.extend(done);
        Ok(())
    }
}
