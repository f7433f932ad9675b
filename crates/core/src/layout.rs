//! How a host opens a registry's storage shards, creates a registry, and what registry
//! metadata the shards keep.
//!
//! A registry is its shards. Nothing beside them says anything about it: what the registry knows
//! about itself is metadata its storage keeps ([`Storage::meta`]), in the same stores and with
//! the same durability as the entries, so a storage shared by several hosts (Redis Cluster)
//! shares it too, and no side file can be lost on its own.
//!
//! | key                          | kept by  | holds                                              |
//! |------------------------------|----------|----------------------------------------------------|
//! | [`SHARDS`]                   | every shard, written by storage | the shard count the store was created with |
//! | [`STATE`]                    | shard 0  | `creating` until every shard exists, then `ready`  |
//! | [`SCHEMA`]                   | shard 0  | the values the schema declared when the registry last wrote ([`SchemaRecord`]) |
//! | [`FOREIGN_FINGERPRINTS`]     | any shard | `true`: it holds entries whose fingerprints the router sends to another shard |
//! | [`IDS`]                      | every shard, written by storage | [`DENSE`]: shard 0 numbers every id ([`Storage`]); none: interleaved |
//! | [`FORMAT`]                   | every shard, written by storage | the storage format of the shard, for a storage that has several |
//!
//! # Opening
//!
//! [`open`] never creates a store of a registry that exists, and creates a registry only when
//! asked to ([`Access::Create`]) and no shard of it exists:
//!
//! 1. The shard count is the configured one, or else the one shard 0 recorded: shard 0 is built
//!    alone with `shards = 0` and asked for [`SHARDS`]. If it does not exist, neither does the
//!    registry (a storage answers `NotFound` for shard 0 only when it holds no shard at all).
//! 2. Every shard is built with `create: None`, shard 0 first, its [`STATE`] read before any
//!    other shard is looked for (so a shard another host creates meanwhile is never taken for
//!    lost). A shard that does not exist (`NotFound`) or is empty (`Missing`) while others
//!    exist means the registry lost it: the registry is
//!    refused, naming each one, until the operator restores it. Recreating it empty would hide
//!    its entries and hand out their ids again. The one exception is a registry whose creation
//!    was interrupted ([`STATE`] is still `creating` in shard 0): a command that may create a
//!    registry completes it.
//!    A shard that fails otherwise (damaged, locked, a cluster node down) is set aside as an
//!    [`UnavailableShard`] and the others keep working, unless every shard fails.
//! 3. A registry of which no shard exists is created only by a command that may create one
//!    ([`Access::Create`]): shard 0 first,
//!    created with `state = creating` and the schema record in its first transaction, then the
//!    other shards, then `state = ready`. Each store is created atomically by its storage (a
//!    temporary file renamed into place, one script), so an interruption leaves whole stores or
//!    none, and step 2 finishes the job the next time.
//!
//! A storage that keeps no metadata (the trait's default) still works, with less: its registry
//! needs `shards` configured, records no schema, reports an interrupted creation as lost
//! shards, and refuses restores that would place a fingerprint outside the shard it routes to.
//!
//! Then [`SCHEMA`] is compared with the configured schema: a value the registry recorded, that
//! the configuration no longer declares and that a stored entry still uses, refuses the
//! registry, naming it (every such value, with one entry using it). Values added are fine; a
//! writing command records the configured schema.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, StageError};
use crate::header::{EntryId, Field, Fields};
use crate::schema::Schema;
use crate::stage::{ListQuery, Meta, Storage, UnavailableShard};

/// The shard count a store was created with; recorded by the storage itself.
pub const SHARDS: &str = "shards";
/// Shard 0: `creating` while a registry is being created, `ready` once every shard exists.
pub const STATE: &str = "state";
/// Shard 0: the values the schema declared, as JSON ([`SchemaRecord`]).
pub const SCHEMA: &str = "schema";
/// A shard holding entries whose fingerprints route to another shard: `true`.
pub const FOREIGN_FINGERPRINTS: &str = "foreign_fingerprints";

/// How the registry numbers ids: [`DENSE`], or no record for the interleaved numbering of the
/// first storage format (see [`Storage`]); recorded by the storage itself, and the same in
/// every shard.
pub const IDS: &str = "ids";
/// The value of [`IDS`] for a registry whose shard 0 numbers every id.
pub const DENSE: &str = "dense";
/// The storage format a shard is in (a number), reported by a storage that has more than one;
/// `registry migrate` brings every shard to the newest ([`Storage::migrate`]).
pub const FORMAT: &str = "format";

const CREATING: &str = "creating";
const READY: &str = "ready";

/// What a command does to a registry: whether it writes, and whether it may create one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading only: a registry that does not exist is an error, and nothing is created or
    /// recorded.
    Read,
    /// Writing to a registry that must exist (an update): the configured schema is recorded.
    Write,
    /// Writing, creating the registry if it does not exist (registering).
    Create,
    /// Converting the registry's shards to the newest storage format (`registry migrate`): a
    /// registry that must exist, whose shards may be of different formats (an interrupted
    /// migration), which every other writing access refuses.
    Migrate,
}

impl Access {
    fn writes(self) -> bool {
        self != Access::Read
    }
}

/// What [`open`] needs to know besides how to build a shard.
#[derive(Debug, Clone)]
pub struct OpenOptions<'a> {
    /// The shard count the configuration asks for, if it does.
    pub shards: Option<u32>,
    /// The shard count of a registry created without one configured.
    pub new_shards: u32,
    pub access: Access,
    /// The configured schema, compared with the recorded one.
    pub schema: &'a Schema,
}

/// The shards of an opened registry.
pub struct Shards {
    /// One per shard, in order; an unavailable shard is an [`UnavailableShard`].
    pub storage: Vec<Box<dyn Storage>>,
    /// The shards that could not be opened, with why.
    pub unavailable: Vec<UnavailableShard>,
    /// Which shards hold entries whose fingerprints route elsewhere ([`FOREIGN_FINGERPRINTS`]).
    pub foreign: Vec<bool>,
    /// Whether this call created the registry.
    pub created: bool,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("shards", &self.storage.len())
            .field("unavailable", &self.unavailable)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Why a registry cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// No shard of the registry exists, and the access is not [`Access::Create`].
    Absent,
    /// The registry exists but these shards do not, or are empty: `(shard, why)`.
    Missing(Vec<(u32, String)>),
    /// The registry is being created, or its creation was interrupted: these shards do not
    /// exist yet, and the access may not create them.
    Incomplete(Vec<u32>),
    /// Shard 0 cannot be opened, and it is the one that records the shard count.
    ShardZero(StageError),
    /// Building a shard failed with an error that is not about that shard alone (its
    /// configuration, say).
    Build { shard: u32, error: StageError },
    /// Every shard failed to open.
    NoneAvailable(Vec<UnavailableShard>),
    /// The configured schema no longer declares values stored entries use.
    SchemaDrift(Vec<Drift>),
    /// The recorded metadata cannot be read or written.
    Meta { shard: u32, error: StageError },
    /// The shards are of different storage formats: a migration was interrupted. Reading works
    /// (entries never move between shards); writing waits for `registry migrate` to finish.
    /// `(shard, format)` for every shard.
    MixedFormats(Vec<(u32, u32)>),
}

/// A value the configured schema no longer declares, with an entry that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub field: Field,
    pub value: String,
    pub used_by: EntryId,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Absent => f.write_str("no registry exists there"),
            OpenError::Missing(missing) => {
                let which: Vec<String> = missing
                    .iter()
                    .map(|(shard, why)| format!("shard {shard}: {why}"))
                    .collect();
                write!(
                    f,
                    "the registry has lost {} of its shards ({}): restore {} from a backup; \
                     it is never recreated empty, which would hide its entries and reuse their ids",
                    missing.len(),
                    which.join("; "),
                    if missing.len() == 1 { "it" } else { "them" }
                )
            }
            OpenError::Incomplete(shards) => write!(
                f,
                "the registry is being created, or its creation was interrupted: {} of its \
                 shards do not exist yet; a registering command (`add`, `batch`, `import`, \
                 `stamp`) completes it",
                shards.len()
            ),
            OpenError::ShardZero(e) => write!(
                f,
                "shard 0 cannot be opened ({}), and it records the shard count: set `shards` in \
                 the configuration to open the other shards without it",
                e.message
            ),
            OpenError::Build { shard, error } => write!(f, "shard {shard}: {}", error.message),
            OpenError::NoneAvailable(all) => match &all[..] {
                [one] => write!(f, "cannot start: {}", one.reason),
                all => write!(
                    f,
                    "cannot start any of the {} shards: {}",
                    all.len(),
                    summarize(all)
                ),
            },
            OpenError::SchemaDrift(drift) => {
                let which: Vec<String> = drift
                    .iter()
                    .map(|d| format!("{} `{}` (used by {})", d.field, d.value, d.used_by))
                    .collect();
                write!(
                    f,
                    "the schema no longer declares {} that stored entries use: {}; declare {} \
                     again in [schema]",
                    if drift.len() == 1 {
                        "a value"
                    } else {
                        "values"
                    },
                    which.join(", "),
                    if drift.len() == 1 { "it" } else { "them" }
                )
            }
            OpenError::Meta { shard, error } => {
                write!(
                    f,
                    "shard {shard}: cannot read or write its metadata: {}",
                    error.message
                )
            }
            OpenError::MixedFormats(formats) => {
                let each: Vec<String> = formats
                    .iter()
                    .map(|(shard, format)| format!("shard {shard} is of format {format}"))
                    .collect();
                write!(
                    f,
                    "a migration of the storage format was interrupted ({}): run `registry \
                     migrate` to finish it before writing",
                    each.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for OpenError {}

impl OpenError {
    /// The error code a caller reports it with: `Missing` for a registry that is absent or has
    /// lost shards, the build's own code for a failed build, `Config` for schema drift.
    pub fn code(&self) -> ErrorCode {
        match self {
            OpenError::Absent => ErrorCode::NotFound,
            OpenError::Missing(_) => ErrorCode::Missing,
            OpenError::Incomplete(_) => ErrorCode::NotFound,
            OpenError::ShardZero(e) | OpenError::Build { error: e, .. } => e.code,
            OpenError::NoneAvailable(_) => ErrorCode::Unavailable,
            OpenError::SchemaDrift(_) => ErrorCode::Config,
            OpenError::Meta { error, .. } => error.code,
            OpenError::MixedFormats(_) => ErrorCode::Config,
        }
    }
}

/// Reasons that several shards share are said once: "shards 0 to 11: <reason>".
fn summarize(all: &[UnavailableShard]) -> String {
    let mut by_reason: Vec<(&str, Vec<u32>)> = Vec::new();
    for u in all {
        match by_reason.iter_mut().find(|(r, _)| *r == u.reason) {
            Some((_, shards)) => shards.push(u.shard),
            None => by_reason.push((&u.reason, vec![u.shard])),
        }
    }
    by_reason
        .into_iter()
        .map(|(reason, shards)| match &shards[..] {
            [one] => format!("shard {one}: {reason}"),
            many => format!("shards {}: {reason}", list_numbers(many)),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `0, 2, 5` or `0 to 11` when consecutive.
fn list_numbers(n: &[u32]) -> String {
    match n {
        [first, .., last] if n.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("{first} to {last}")
        }
        _ => n.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// The values a schema declares per field, as recorded in [`SCHEMA`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    pub values: BTreeMap<String, Vec<String>>,
}

impl SchemaRecord {
    pub fn of(schema: &Schema) -> SchemaRecord {
        SchemaRecord {
            values: Field::ALL
                .iter()
                .map(|&f| (f.name().to_owned(), schema.allowed(f).to_vec()))
                .collect(),
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn parse_schema_record(text: &str) -> Option<SchemaRecord> {
    serde_json::from_str(text).ok()
}

/// Builds one shard: `(shard, shards, create)` as in [`crate::Setup`].
pub type Build<'a> =
    dyn FnMut(u32, u32, Option<&Meta>) -> Result<Box<dyn Storage>, StageError> + 'a;

/// Opens (or, for [`Access::Create`], creates) the shards of a registry; see the module
/// documentation for the protocol.
///
/// # Errors
/// An [`OpenError`] saying why the registry cannot be opened; nothing was created unless the
/// access is [`Access::Create`] and no shard existed.
pub fn open(options: &OpenOptions<'_>, build: &mut Build<'_>) -> Result<Shards, OpenError> {
    let (count, exists) = match options.shards {
        Some(k) => (k, None),
        None => match build(0, 0, None) {
            Ok(zero) => {
                let meta = read_meta(&*zero, 0)?;
                let k = meta
                    .get(SHARDS)
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|&k| k > 0)
                    .ok_or_else(|| OpenError::Meta {
                        shard: 0,
                        error: StageError::new(
                            ErrorCode::Config,
                            "its storage records no shard count: set `shards` in the \
                             configuration",
                        ),
                    })?;
                (k, Some(true))
            }
            Err(e) if e.code == ErrorCode::NotFound => (options.new_shards, Some(false)),
            Err(e) if e.code == ErrorCode::Missing => {
                return Err(OpenError::Missing(vec![(0, e.message)]));
            }
            Err(e) if e.code == ErrorCode::Config => {
                return Err(OpenError::Build { shard: 0, error: e });
            }
            Err(e) => return Err(OpenError::ShardZero(e)),
        },
    };
    let created = if exists == Some(false) {
        None
    } else {
        open_existing(options, count, build)?
    };
    let mut shards = match created {
        Some(shards) => shards,
        None if options.access != Access::Create => return Err(OpenError::Absent),
        None => create(options, count, build)?,
    };
    check_schema(options, &mut shards)?;
    Ok(shards)
}

/// Step 2: every shard, creating none unless the registry's creation was interrupted. `None`
/// when no shard exists.
///
/// Shard 0's metadata is read before any other shard is looked for. Another host may be
/// creating the registry meanwhile (shard 0 first, `ready` once every shard exists), so a shard
/// looked for after `ready` was read exists unless it was lost, and one looked for after
/// `creating` was read may be on its way; reading the state last would take shards that were
/// created between the two looks for lost ones.
fn open_existing(
    options: &OpenOptions<'_>,
    count: u32,
    build: &mut Build<'_>,
) -> Result<Option<Shards>, OpenError> {
    let mut looked_again = false;
    loop {
        match scan(count, build)? {
            Scan::NoShard => return Ok(None),
            // Shard 0 is created first, so other shards without it is either a lost shard 0
            // or another process creating the registry right now, whose shard 0 appeared
            // after it was looked for: one more look tells them apart, and if it is there now,
            // everything is looked at again, in order.
            Scan::Found(found)
                if !looked_again && found.absent.first().is_some_and(|a| a.0 == 0) =>
            {
                match build(0, count, None) {
                    Ok(_) => looked_again = true,
                    Err(e) if e.code == ErrorCode::NotFound => {
                        return finish(options, count, build, found);
                    }
                    Err(e) => return Err(OpenError::Build { shard: 0, error: e }),
                }
            }
            Scan::Found(found) => return finish(options, count, build, found),
        }
    }
}

/// What one look at every shard found.
enum Scan {
    /// No shard exists.
    NoShard,
    Found(Found),
}

struct Found {
    slots: Vec<Option<Box<dyn Storage>>>,
    /// Shards that do not exist: `(shard, why)`.
    absent: Vec<(u32, String)>,
    /// Shards that exist but are empty.
    emptied: Vec<(u32, String)>,
    unavailable: Vec<UnavailableShard>,
    /// Shard 0's metadata, read before any other shard was looked for; `None` when it could
    /// not be opened.
    zero_meta: Option<Meta>,
}

/// Looks at every shard in order, reading shard 0's metadata before going on.
fn scan(count: u32, build: &mut Build<'_>) -> Result<Scan, OpenError> {
    let mut found = Found {
        slots: Vec::with_capacity(count as usize),
        absent: Vec::new(),
        emptied: Vec::new(),
        unavailable: Vec::new(),
        zero_meta: None,
    };
    for shard in 0..count {
        match build(shard, count, None) {
            Ok(s) => {
                if shard == 0 {
                    found.zero_meta = Some(read_meta(&*s, 0)?);
                }
                found.slots.push(Some(s));
            }
            Err(e) if e.code == ErrorCode::NotFound => {
                found.absent.push((shard, e.message));
                found.slots.push(None);
            }
            Err(e) if e.code == ErrorCode::Missing => {
                found.emptied.push((shard, e.message));
                found.slots.push(None);
            }
            Err(e) if matches!(e.code, ErrorCode::Storage | ErrorCode::Unavailable) => {
                let u = UnavailableShard {
                    shard,
                    reason: e.message,
                };
                found.slots.push(Some(Box::new(u.clone())));
                found.unavailable.push(u);
            }
            Err(e) => return Err(OpenError::Build { shard, error: e }),
        }
    }
    Ok(if found.absent.len() == count as usize {
        Scan::NoShard
    } else {
        Scan::Found(found)
    })
}

/// Step 2 once the shards were looked at: refuses lost shards, completes an interrupted
/// creation when allowed to, and reads which shards hold foreign fingerprints.
fn finish(
    options: &OpenOptions<'_>,
    count: u32,
    build: &mut Build<'_>,
    found: Found,
) -> Result<Option<Shards>, OpenError> {
    let Found {
        mut slots,
        absent,
        emptied,
        unavailable,
        zero_meta,
    } = found;
    let creating = zero_meta
        .as_ref()
        .is_some_and(|m| m.get(STATE).map(String::as_str) == Some(CREATING));
    if !emptied.is_empty() || !(absent.is_empty() || creating) {
        let mut missing = emptied;
        missing.extend(absent);
        missing.sort();
        return Err(OpenError::Missing(missing));
    }
    if creating && options.access == Access::Create {
        // An interrupted creation: make the shards it did not get to, then declare it ready.
        let none = Meta::new();
        for (shard, _) in absent {
            let s = build(shard, count, Some(&none))
                .map_err(|error| OpenError::Build { shard, error })?;
            slots[shard as usize] = Some(s);
        }
    } else if !absent.is_empty() {
        return Err(OpenError::Incomplete(
            absent.into_iter().map(|(shard, _)| shard).collect(),
        ));
    }
    let storage: Vec<Box<dyn Storage>> = slots.into_iter().flatten().collect();
    if unavailable.len() == storage.len() {
        return Err(OpenError::NoneAvailable(unavailable));
    }
    if creating && options.access == Access::Create {
        set_meta(&*storage[0], 0, [(STATE, READY.to_owned())])?;
    }
    let foreign = foreign_flags(&storage, &unavailable)?;
    if options.access.writes() && options.access != Access::Migrate {
        check_formats(&storage, &unavailable)?;
    }
    Ok(Some(Shards {
        storage,
        unavailable,
        foreign,
        created: false,
    }))
}

/// Step 3: a new registry, shard 0 first and marked ready last.
fn create(
    options: &OpenOptions<'_>,
    count: u32,
    build: &mut Build<'_>,
) -> Result<Shards, OpenError> {
    let mut first = Meta::new();
    first.insert(STATE.to_owned(), CREATING.to_owned());
    first.insert(
        SCHEMA.to_owned(),
        SchemaRecord::of(options.schema).to_json(),
    );
    let zero =
        build(0, count, Some(&first)).map_err(|error| OpenError::Build { shard: 0, error })?;
    let mut storage = vec![zero];
    let none = Meta::new();
    for shard in 1..count {
        storage.push(
            build(shard, count, Some(&none)).map_err(|error| OpenError::Build { shard, error })?,
        );
    }
    set_meta(&*storage[0], 0, [(STATE, READY.to_owned())])?;
    let foreign = foreign_flags(&storage, &[])?;
    Ok(Shards {
        storage,
        unavailable: Vec::new(),
        foreign,
        created: true,
    })
}

/// A shard's metadata. A storage that keeps none (the trait's default, code `Invalid`) reads as
/// empty: its registry works, but needs `shards` configured, records no schema and refuses
/// restores that would place a fingerprint outside its routed shard.
fn read_meta(storage: &dyn Storage, shard: u32) -> Result<Meta, OpenError> {
    let mut meta = Meta::new();
    match storage.meta(&mut meta) {
        Ok(()) => Ok(meta),
        Err(e) if e.code == ErrorCode::Invalid => Ok(Meta::new()),
        Err(error) => Err(OpenError::Meta { shard, error }),
    }
}

fn set_meta<const N: usize>(
    storage: &dyn Storage,
    shard: u32,
    pairs: [(&str, String); N],
) -> Result<(), OpenError> {
    let changes: Meta = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    match storage.set_meta(&changes) {
        Err(e) if e.code == ErrorCode::Invalid => Ok(()),
        other => other.map_err(|error| OpenError::Meta { shard, error }),
    }
}

/// Refuses shards of different storage formats ([`OpenError::MixedFormats`]); a shard that
/// reports no format counts as format 1.
fn check_formats(
    storage: &[Box<dyn Storage>],
    unavailable: &[UnavailableShard],
) -> Result<(), OpenError> {
    let mut formats = Vec::with_capacity(storage.len());
    for (i, s) in storage.iter().enumerate() {
        let shard = u32::try_from(i).unwrap_or(u32::MAX);
        if unavailable.iter().any(|u| u.shard == shard) {
            continue;
        }
        let meta = read_meta(&**s, shard)?;
        let format = meta.get(FORMAT).and_then(|f| f.parse().ok()).unwrap_or(1);
        formats.push((shard, format));
    }
    if formats.windows(2).any(|w| w[0].1 != w[1].1) {
        return Err(OpenError::MixedFormats(formats));
    }
    Ok(())
}

fn foreign_flags(
    storage: &[Box<dyn Storage>],
    unavailable: &[UnavailableShard],
) -> Result<Vec<bool>, OpenError> {
    storage
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let shard = u32::try_from(i).unwrap_or(u32::MAX);
            if unavailable.iter().any(|u| u.shard == shard) {
                // Its entries cannot be read anyway; lookups there fail naming it.
                return Ok(false);
            }
            let meta = read_meta(&**s, shard)?;
            Ok(meta.get(FOREIGN_FINGERPRINTS).map(String::as_str) == Some("true"))
        })
        .collect()
}

/// Compares the recorded schema with the configured one: values no longer declared that stored
/// entries still use refuse the registry; a writing access records the configured schema.
fn check_schema(options: &OpenOptions<'_>, shards: &mut Shards) -> Result<(), OpenError> {
    if shards.unavailable.iter().any(|u| u.shard == 0) {
        return Ok(());
    }
    let zero = &*shards.storage[0];
    let meta = read_meta(zero, 0)?;
    let current = SchemaRecord::of(options.schema);
    let recorded = meta.get(SCHEMA).and_then(|t| parse_schema_record(t));
    if let Some(recorded) = &recorded {
        let mut drift = Vec::new();
        for field in Field::ALL {
            let now = &current.values[field.name()];
            let Some(then) = recorded.values.get(field.name()) else {
                continue;
            };
            for value in then.iter().filter(|v| !now.contains(v)) {
                if let Some(used_by) = first_user(&shards.storage, field, value)? {
                    drift.push(Drift {
                        field,
                        value: value.clone(),
                        used_by,
                    });
                }
            }
        }
        if !drift.is_empty() {
            return Err(OpenError::SchemaDrift(drift));
        }
    }
    if options.access.writes() && recorded.as_ref() != Some(&current) {
        set_meta(zero, 0, [(SCHEMA, current.to_json())])?;
    }
    Ok(())
}

/// An entry whose latest revision has `value` in `field`, in any available shard.
fn first_user(
    storage: &[Box<dyn Storage>],
    field: Field,
    value: &str,
) -> Result<Option<EntryId>, OpenError> {
    let mut filter: Fields<Option<String>> = Fields::default();
    filter[field] = Some(value.to_owned());
    let query = ListQuery {
        filter,
        after: None,
        limit: 1,
    };
    for (i, s) in storage.iter().enumerate() {
        let mut out = Vec::new();
        match s.list(&query, &mut out) {
            Ok(()) => {
                if let Some(e) = out.first() {
                    return Ok(Some(e.header.id.clone()));
                }
            }
            Err(e) if e.code == ErrorCode::Unavailable => {}
            Err(error) => {
                return Err(OpenError::Meta {
                    shard: u32::try_from(i).unwrap_or(u32::MAX),
                    error,
                });
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_records_round_trip() {
        let record = SchemaRecord::of(&Schema::default());
        assert_eq!(parse_schema_record(&record.to_json()), Some(record));
        assert_eq!(parse_schema_record("{\"values\":"), None);
    }

    #[test]
    fn shared_reasons_are_said_once() {
        let all: Vec<UnavailableShard> = (0..12)
            .map(|shard| UnavailableShard {
                shard,
                reason: "wrong password".into(),
            })
            .collect();
        assert_eq!(summarize(&all), "shards 0 to 11: wrong password");
        let mixed = vec![
            UnavailableShard {
                shard: 0,
                reason: "a".into(),
            },
            UnavailableShard {
                shard: 2,
                reason: "b".into(),
            },
            UnavailableShard {
                shard: 3,
                reason: "a".into(),
            },
        ];
        assert_eq!(summarize(&mixed), "shards 0, 3: a; shard 2: b");
    }
}
