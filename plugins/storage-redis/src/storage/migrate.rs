//! [`RedisStorage`]'s `migrate`: a namespace of storage format 1 copied, shard by shard, to
//! the keys of format 2.
//!
//! Format 2 keeps a shard under another hash tag (`{ns/s/n}`, spread evenly over the slots)
//! than format 1 (`{ns/s}`), and Redis cannot move keys between slots atomically, so the
//! migration copies: each shard's entries are read from the old keys, rewritten in entry
//! format 4 (configs compressed with a dictionary trained on the shard's own), and stored under
//! the new tag by the `restore` script, with the field indexes and fingerprints. Which keys a
//! host uses is decided by shard 0 alone (`RedisStorage::open`): the new keys once shard 0's
//! new `meta` hash exists, else the old ones. So the other shards are copied first, shard 0
//! last, and its new `meta` (the shard count, format 2 and the registry metadata, one script)
//! is the switch: a crash before it leaves the old keys in use, untouched, and a rerun wipes
//! the partial copy and starts again; a crash after it leaves the new keys in use. Once the
//! registry is read back from the new keys, `registry migrate` calls `migrate` again, which on
//! a shard of format 2 deletes what is left of its old keys.
//!
//! Other hosts must not write to the namespace meanwhile: what they write to the old keys after
//! their shard was copied is not in the copy. The copy takes as much memory again as the
//! shard's old keys until those are deleted.

use std::sync::Arc;

use redis::Value;
use registry_codec::Dictionary;
use registry_codec::entry::{self as codec, Writing};
use registry_core::rules;
use registry_core::{Entry, EntryId, ErrorCode, StageError, StageResult};

use super::{RedisStorage, Restoring, STORAGE_FORMAT, TRAIN_SAMPLES};
use crate::keys::{self, Keys};

/// How many entries one copying call reads and writes, and one cleaning call deletes.
const PAGE: usize = 500;

/// One entry on its way to the new keys: its member, latest revision, the count its prefix's
/// sequence is raised to, and every revision coded anew.
type Copied = (Vec<u8>, Entry, String, Vec<Vec<u8>>);

impl RedisStorage {
    pub(super) fn migrate_shard(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<u64> {
        let shard = self.numbering.shard;
        if self.format >= STORAGE_FORMAT {
            // Already of format 2: what is left of the keys of format 1 goes.
            let legacy = Keys::new(&self.namespace, shard);
            if legacy != self.keys {
                self.clean(&legacy)?;
            }
            return Ok(0);
        }
        if !ids.is_empty() && shard != 0 {
            return Err(StageError::new(
                ErrorCode::Invalid,
                format!(
                    "{} keeps no locations: only shard 0 records where entries are",
                    self.name
                ),
            ));
        }
        rules::check_places(ids, shards, self.numbering.shards)?;
        let target = Keys::balanced(&self.namespace, shard, self.numbering.shards);
        self.clean(&target)?;
        let dictionary = self.train_for_migration(&target)?;
        let copied = self.copy_entries(&target, dictionary.as_deref())?;
        if !ids.is_empty() {
            self.place_in_chunks(&target, ids, shards)?;
        }
        // The switch, for shard 0: from now on every host uses the new keys.
        let mut meta = registry_core::Meta::new();
        registry_core::Storage::meta(self, &mut meta)?;
        let records: Vec<(String, String)> = meta
            .into_iter()
            .filter(|(k, _)| {
                ![
                    registry_core::layout::SHARDS,
                    registry_core::layout::IDS,
                    registry_core::layout::FORMAT,
                ]
                .contains(&k.as_str())
            })
            .collect();
        let shards_count = self.numbering.shards;
        let created: Option<(String, String)> =
            self.write(&format!("record format 2 for {}", self.name), |c| {
                let mut call = self.scripts.layout.key(target.meta());
                call.arg(target.prefix())
                    .arg(shards_count)
                    .arg("1")
                    .arg(STORAGE_FORMAT);
                for (name, value) in &records {
                    call.arg(name).arg(value);
                }
                call.invoke(c)
            })?;
        if created.is_none() {
            return Err(StageError::new(
                ErrorCode::Internal,
                format!("the new layout of {} was not recorded", self.name),
            ));
        }
        Ok(copied)
    }

    /// Deletes every key of a shard, [`PAGE`] entries per call.
    fn clean(&self, keys: &Keys) -> StageResult<()> {
        loop {
            let more: i64 = self.write(&format!("clear the old keys of {}", self.name), |c| {
                self.scripts
                    .clean
                    .key(keys.meta())
                    .arg(keys.prefix())
                    .arg(PAGE)
                    .invoke(c)
            })?;
            if more == 0 {
                return Ok(());
            }
        }
    }

    /// A dictionary trained on up to [`TRAIN_SAMPLES`] of the shard's latest configs, stored
    /// under `target`, when the shard has enough entries.
    fn train_for_migration(&self, target: &Keys) -> StageResult<Option<Arc<Dictionary>>> {
        let ids = self.keys.ids();
        let members: Vec<Vec<u8>> =
            self.cluster
                .run(&format!("read the latest ids of {}", self.name), |c| {
                    redis::cmd("ZRANGE")
                        .arg(&ids)
                        .arg(0)
                        .arg(TRAIN_SAMPLES - 1)
                        .arg("REV")
                        .query(c)
                })?;
        if (members.len() as u64) < registry_codec::compress::TRAIN_AT.min(TRAIN_SAMPLES as u64) {
            return Ok(None);
        }
        let mut samples = Vec::with_capacity(members.len());
        for history in self.histories(&members)? {
            if let Some(latest) = history.last() {
                samples.push(self.decode_any(&"an entry", latest)?.config.into_bytes());
            }
        }
        let Ok(bytes) = registry_codec::compress::train(&samples) else {
            return Ok(None);
        };
        let dictionary = Dictionary::new(1, bytes)
            .map_err(|e| StageError::new(ErrorCode::Internal, e.to_string()))?;
        let key = target.dictionaries();
        self.write(&format!("store a dictionary for {}", self.name), |c| {
            redis::cmd("HSET")
                .arg(&key)
                .arg(dictionary.id())
                .arg(dictionary.bytes())
                .query::<i64>(c)
                .map(|_| ())
        })?;
        Ok(Some(Arc::new(dictionary)))
    }

    /// Every revision of each member, oldest first, from the shard's current keys.
    fn histories(&self, members: &[Vec<u8>]) -> StageResult<Vec<Vec<Vec<u8>>>> {
        self.cluster
            .run(&format!("read histories of {}", self.name), |c| {
                let mut call = self.scripts.histories.key(&self.meta);
                call.arg(self.keys.prefix());
                for member in members {
                    call.arg(member.as_slice());
                }
                call.invoke(c)
            })
    }

    /// Copies every entry to `target`, in member order, [`PAGE`] per call; returns how many
    /// revisions were copied.
    fn copy_entries(&self, target: &Keys, dictionary: Option<&Dictionary>) -> StageResult<u64> {
        let ids = self.keys.ids();
        let writing = Writing::Compressed(dictionary);
        let mut after: Option<Vec<u8>> = None;
        let mut copied = 0;
        loop {
            let start = match &after {
                Some(member) => {
                    let mut s = b"(".to_vec();
                    s.extend_from_slice(member);
                    s
                }
                None => b"-".to_vec(),
            };
            let members: Vec<Vec<u8>> =
                self.cluster
                    .run(&format!("read the ids of {}", self.name), |c| {
                        redis::cmd("ZRANGEBYLEX")
                            .arg(&ids)
                            .arg(start.as_slice())
                            .arg("+")
                            .arg("LIMIT")
                            .arg(0)
                            .arg(PAGE)
                            .query(c)
                    })?;
            let Some(last) = members.last() else {
                return Ok(copied);
            };
            after = Some(last.clone());
            let histories = self.histories(&members)?;
            let mut items: Vec<Copied> = Vec::with_capacity(members.len());
            for (member, history) in members.iter().zip(histories) {
                let what = keys::member_text(member);
                let mut coded = Vec::with_capacity(history.len());
                let mut latest = None;
                for bytes in &history {
                    let entry = self.decode_any(&what, bytes)?;
                    coded.push(codec::encoded(&entry, writing));
                    latest = Some(entry);
                }
                let Some(latest) = latest else { continue };
                // Shard 0 numbers every id from now on: its sequences reach its entries'.
                let count = if self.numbering.shard == 0 {
                    latest.header.id.number().to_string()
                } else {
                    "0".to_owned()
                };
                copied += coded.len() as u64;
                items.push((member.clone(), latest, count, coded));
            }
            let refs: Vec<Restoring<'_>> = items
                .iter()
                .map(|(member, latest, count, coded)| {
                    (member.as_slice(), latest, count.as_str(), coded.as_slice())
                })
                .collect();
            let replies =
                self.run_restore(target, &format!("copy entries of {}", self.name), &refs)?;
            if let Some((i, reply)) = replies
                .iter()
                .enumerate()
                .find(|(_, r)| **r != Value::Int(1))
            {
                return Err(StageError::new(
                    ErrorCode::Storage,
                    format!(
                        "the copy of entry {} of {} was refused ({reply:?}): run `registry \
                         migrate` again once no other host writes to the namespace",
                        items
                            .get(i)
                            .map_or(String::new(), |(m, ..)| keys::member_text(m)),
                        self.name
                    ),
                ));
            }
        }
    }

    /// Records under `target` where the entries of other shards are, as `place` does, a
    /// script per [`PAGE`] × 4 of them.
    fn place_in_chunks(&self, target: &Keys, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        for (ids, shards) in ids.chunks(PAGE * 4).zip(shards.chunks(PAGE * 4)) {
            self.place_in(target, ids, shards)?;
        }
        Ok(())
    }
}
