//! [`RedisStorage`]'s `reindex`: a shard's id set, fingerprint hash and field indexes rebuilt
//! from its entries (`registry check --repair`).
//!
//! The entries are found from the keys themselves (`CLUSTER GETKEYSINSLOT` on the master of
//! the shard's slot: every entry's list), not from the id set, which may be what is damaged.
//! The indexes are rebuilt into staging keys of the same slot, [`PAGE`] entries per script,
//! and one last script deletes the old ones and renames the staging keys in their place, and
//! raises each prefix's sequence to its entries' (it never lowers one). Until that script the
//! old indexes serve; a crash leaves staging keys that the next run deletes first. Other hosts
//! may keep reading meanwhile; one writing would see its writes of the meantime dropped from
//! the indexes, so run it while no other host writes.

use redis::Value;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use registry_core::{ErrorCode, StageError, StageResult};

use super::RedisStorage;
use crate::keys;

/// Entries indexed per script.
const PAGE: usize = 500;

impl RedisStorage {
    pub(super) fn reindex_shard(&self) -> StageResult<u64> {
        let prefix = self.keys.prefix().to_owned();
        let tag = prefix
            .trim_start_matches('{')
            .split('}')
            .next()
            .unwrap_or_default()
            .to_owned();
        let slot = keys::slot(tag.as_bytes());
        let names: Vec<Vec<u8>> =
            self.cluster
                .run(&format!("list the keys of {}", self.name), |c| {
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::new(u16::try_from(slot).unwrap_or(0), SlotAddr::Master),
                    ));
                    let count: u64 = redis::from_redis_value(c.route_command(
                        redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot),
                        routing.clone(),
                    )?)?;
                    let keys: Vec<Vec<u8>> = redis::from_redis_value(
                        c.route_command(
                            redis::cmd("CLUSTER")
                                .arg("GETKEYSINSLOT")
                                .arg(slot)
                                .arg(count.max(1)),
                            routing,
                        )?,
                    )?;
                    Ok(keys)
                })?;
        let with = |what: &str| {
            let mut p = prefix.as_bytes().to_vec();
            p.extend_from_slice(what.as_bytes());
            p
        };
        let (entry, ix, staged) = (with("e:"), with("ix:"), with("rb:"));
        let members: Vec<Vec<u8>> = names
            .iter()
            .filter_map(|n| n.strip_prefix(entry.as_slice()).map(<[u8]>::to_vec))
            .collect();
        let old_ix: Vec<Vec<u8>> = names
            .iter()
            .filter(|n| n.starts_with(&ix))
            .cloned()
            .collect();
        // What a run cut short left.
        for key in names.iter().filter(|n| n.starts_with(&staged)) {
            self.write(&format!("clear the staged indexes of {}", self.name), |c| {
                redis::cmd("DEL")
                    .arg(key.as_slice())
                    .query::<i64>(c)
                    .map(|_| ())
            })?;
        }
        let mut highest: Vec<(String, u64)> = Vec::new();
        let mut staged_keys: Vec<Vec<u8>> = Vec::new();
        for page in members.chunks(PAGE) {
            let latest: Vec<Option<Vec<u8>>> =
                self.cluster
                    .run(&format!("read the entries of {}", self.name), |c| {
                        let mut call = self.scripts.get.key(&self.meta);
                        call.arg(self.keys.prefix());
                        for member in page {
                            call.arg(member.as_slice());
                        }
                        call.invoke(c)
                    })?;
            let mut pairs = Vec::with_capacity(page.len());
            for (member, bytes) in page.iter().zip(latest) {
                let Some(bytes) = bytes else { continue };
                let entry = self.decode_any(&keys::member_text(member), &bytes)?;
                let id = &entry.header.id;
                let count = self.numbering.count_through(id.number());
                match highest.iter_mut().find(|(p, _)| p == id.prefix()) {
                    Some((_, n)) => *n = (*n).max(count),
                    None => highest.push((id.prefix().to_owned(), count)),
                }
                pairs.push((member.clone(), entry.fingerprint.0));
            }
            let written: Vec<Vec<u8>> =
                self.write(&format!("rebuild the indexes of {}", self.name), |c| {
                    let mut call = self.scripts.reindex_add.key(&self.meta);
                    call.arg(self.keys.prefix());
                    for (member, fp) in &pairs {
                        call.arg(member.as_slice()).arg(&fp[..]);
                    }
                    call.invoke(c)
                })?;
            for key in written {
                if !staged_keys.contains(&key) {
                    staged_keys.push(key);
                }
            }
        }
        let done: Value = self.write(&format!("switch the indexes of {}", self.name), |c| {
            let mut call = self.scripts.reindex_swap.key(&self.meta);
            call.arg(self.keys.prefix()).arg(old_ix.len());
            for key in &old_ix {
                call.arg(key.as_slice());
            }
            for key in &staged_keys {
                call.arg(key.as_slice());
            }
            call.arg("--");
            for (prefix, count) in &highest {
                call.arg(prefix.as_str()).arg(count.to_string());
            }
            call.invoke(c)
        })?;
        if done != Value::Int(1) {
            return Err(StageError::new(
                ErrorCode::Internal,
                format!("the index switch of {} answered {done:?}", self.name),
            ));
        }
        Ok(members.len() as u64)
    }
}
