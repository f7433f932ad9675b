//! `migrate`: a registry of an older storage format brought to the newest, and checked.
//!
//! Before anything is written the registry is read whole, as `export` writes it, into a
//! digest; after the migration it is opened again (so its shards are read as the files now
//! say) and read whole once more. The two digests must be equal: every entry, every revision,
//! every hash and time reads back the same, ids included. Reading twice costs about what the
//! migration does; it is a one-time operation, and the check is the point. Only then is each
//! shard migrated once more, which for a storage that copied rather than converted in place
//! (Redis) deletes the old form.

use std::io::Write;

use registry_core::ShardMigration;
use serde::Serialize;

use super::bytes_on_disk;
use crate::error::Error;
use crate::events::{Events, Progress};
use crate::registry::{Needs, Registry};
use crate::settings::Settings;
use crate::transfer::{FileFormat, export};

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    /// Per shard: the format before and after, and how many revisions were rewritten.
    pub shards: Vec<ShardMigration>,
    /// Whether any shard was of an older format (false: nothing was written).
    pub migrated: bool,
    /// The entries read back, before and after (the same number when the check passed).
    pub entries: usize,
    /// The BLAKE3 digest of the registry's export before and after: equal.
    pub digest: String,
    /// The data directory's size before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Migrates the registry of `settings` ([`registry_core::Pipeline::migrate`]) and checks that it
/// reads back exactly as before.
///
/// # Errors
/// The registry cannot be opened or read (nothing is written then), a shard cannot be
/// migrated (the shards before it are, and the registry reads either way: run it again), or
/// the migrated registry does not read back as before (which the migration's own tests rule
/// out; the message names both digests).
pub fn migrate(settings: &Settings, events: &mut dyn Events) -> Result<Migration, Error> {
    let bytes_before = bytes_on_disk(&settings.data_dir);
    let registry = Registry::open(settings, Needs::MIGRATE)?;
    for w in &registry.warnings {
        events.warning(w);
    }
    let pipeline = registry.into_pipeline();
    let (entries, digest) = read_whole(&pipeline, events)?;
    let mut started = 0;
    let shards = pipeline.migrate(&mut |_shard| {
        started += 1;
        events.progress(Progress {
            processed: started,
            done: Some(started as f64 / pipeline.shards() as f64),
            unit: "shards",
        });
    })?;
    events.finished();
    drop(pipeline);
    let again = Registry::open(settings, Needs::MIGRATE)?.into_pipeline();
    // What each shard is now, as the registry opened again reads it (a storage that copied its
    // entries elsewhere reports the new format only from there).
    let mut shards = shards;
    for (s, format) in shards.iter_mut().zip(again.formats()?) {
        s.to = format;
    }
    let migrated = shards.iter().any(|s| s.from != s.to);
    if migrated {
        let (after, digest_after) = read_whole(&again, events)?;
        if (after, &digest_after) != (entries, &digest) {
            return Err(Error::config(format!(
                "the migrated registry does not read back as before: {after} entries with \
                 digest {digest_after}, {entries} with {digest} before; keep the data \
                 directory and report this"
            ))
            .with_kind("damaged"));
        }
    }
    // Now that the new form reads back the same, a storage that copied (Redis) deletes what
    // is left of the old one; a rerun after a crash gets here too.
    again.migrate(&mut |_| {})?;
    drop(again);
    Ok(Migration {
        shards,
        migrated,
        entries,
        digest,
        bytes_before,
        bytes_after: bytes_on_disk(&settings.data_dir),
    })
}

/// Every entry with its history, as `export` writes them: their count and digest. A registry
/// that holds damaged entries is not migrated: each is reported to `events`, and the error
/// says how many.
fn read_whole(
    pipeline: &registry_core::Pipeline,
    events: &mut dyn Events,
) -> Result<(usize, String), Error> {
    let mut out = Digest {
        hasher: blake3::Hasher::new(),
        lines: 0,
    };
    let fail = |e: std::io::Error| Error::config(format!("cannot digest the registry: {e}"));
    let damaged = export(
        pipeline,
        &[],
        FileFormat::Jsonl,
        true,
        &mut out,
        &fail,
        events,
    )?;
    if damaged > 0 {
        return Err(Error::config(format!(
            "the registry holds {damaged} damaged {}: repair or remove {} before migrating",
            if damaged == 1 { "entry" } else { "entries" },
            if damaged == 1 { "it" } else { "them" }
        ))
        .with_kind("damaged"));
    }
    Ok((out.lines, out.hasher.finalize().to_hex().to_string()))
}

/// Hashes what is written and counts its lines (one per entry of a JSON lines export).
struct Digest {
    hasher: blake3::Hasher,
    lines: usize,
}

impl Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines += buf.iter().filter(|&&b| b == b'\n').count();
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renames a field value in every entry holding it ([`registry_core::Pipeline::rename`]):
/// `field` is a field's name (`scope`, `type`, `variant`, `status`) and `rename` is
/// `OLD=NEW`.
///
/// # Errors
/// A field or a rename that does not parse (exit 1), `NEW` not declared by the schema (exit
/// 1), the registry cannot be opened, or an entry cannot be rewritten (the entries before it
/// are; running it again goes on).
pub fn rename(
    settings: &Settings,
    field: &str,
    rename: &str,
    events: &mut dyn Events,
) -> Result<registry_core::Renamed, Error> {
    let Some(field) = registry_core::Field::ALL
        .into_iter()
        .find(|f| f.name() == field)
    else {
        return Err(Error::input(format!(
            "--rename {field}: not a field; expected scope, type, variant or status"
        ))
        .on_field("--rename"));
    };
    let Some((from, to)) = rename
        .split_once('=')
        .filter(|(from, to)| !from.is_empty() && !to.is_empty())
    else {
        return Err(Error::input(format!(
            "--rename {field} {rename}: expected OLD=NEW, e.g. SEC=SECURITY"
        ))
        .on_field("--rename"));
    };
    let registry = Registry::open(settings, Needs::UPDATE)?;
    for w in &registry.warnings {
        events.warning(w);
    }
    let pipeline = registry.into_pipeline();
    let renamed = pipeline.rename(field, from, to, &mut |entries| {
        events.progress(Progress {
            processed: entries,
            done: None,
            unit: "entries",
        });
    })?;
    events.finished();
    Ok(renamed)
}
