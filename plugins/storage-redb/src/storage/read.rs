//! The reading operations of [`RedbStorage`]: `find`, `get`, `history`, `list` and `meta`.

use std::ops::Bound;

use redb::ReadableTable;
use registry_codec::entry::Lender;
use registry_core::layout;
use registry_core::{Entry, EntryId, EntryRef, Field, Fingerprint, ListQuery, Meta, StageResult};

use super::entries::{Latest, LatestMut};
use super::{FIELD_BITS, FIELD_INDEX, FINGERPRINTS, META, Pending, REVISIONS, RedbStorage, tag};
use crate::codec;

impl RedbStorage {
    /// The metadata table and the layout's shard count.
    pub(super) fn read_meta(&self, out: &mut Meta) -> StageResult<()> {
        let txn = self.begin_read()?;
        let table = self.read_table(&txn, META)?;
        for row in table.iter().map_err(|e| self.fail("read", e))? {
            let (key, value) = row.map_err(|e| self.fail("read", e))?;
            out.insert(key.value().to_owned(), value.value().to_owned());
        }
        out.insert(layout::SHARDS.to_owned(), self.shards.to_string());
        if self.numbering().dense {
            out.insert(layout::IDS.to_owned(), layout::DENSE.to_owned());
        }
        out.insert(layout::FORMAT.to_owned(), self.format().to_string());
        Ok(())
    }

    /// Decodes a stored entry and checks it is the one its key names.
    pub(super) fn decode(
        &self,
        id: &EntryId,
        revision: Option<u32>,
        bytes: &[u8],
    ) -> StageResult<Entry> {
        self.decode_reusing(id, revision, bytes, None)
    }

    /// [`RedbStorage::decode`] into `spare`'s strings when there is one.
    pub(super) fn decode_reusing(
        &self,
        id: &EntryId,
        revision: Option<u32>,
        bytes: &[u8],
        spare: Option<Entry>,
    ) -> StageResult<Entry> {
        let mut entry = spare.unwrap_or_else(registry_codec::entry::blank);
        codec::decode_into(bytes, &self.dictionaries(), &mut entry)
            .map_err(|e| self.damaged(id, e))?;
        if entry.header.id != *id {
            return Err(self.damaged(id, format!("its row holds entry {}", entry.header.id)));
        }
        if let Some(want) = revision
            && entry.revision != want
        {
            return Err(self.damaged(
                id,
                format!("row of revision {want} holds revision {}", entry.revision),
            ));
        }
        Ok(entry)
    }

    /// The latest revision of `id` in a read transaction.
    pub(super) fn latest(&self, rows: &Latest<'_>, id: &EntryId) -> StageResult<Option<Entry>> {
        rows.with(self, id, |bytes| self.decode(id, None, bytes))
    }

    /// The latest revision of an entry a field index lists, which must exist.
    fn indexed(&self, rows: &Latest<'_>, id: &EntryId, field: Field) -> StageResult<Entry> {
        self.latest(rows, id)?.ok_or_else(|| {
            self.damaged(
                id,
                format!("the {field} index lists it but the entry is missing"),
            )
        })
    }

    /// The latest revision of `id` in a write transaction.
    pub(super) fn latest_mut(
        &self,
        rows: &mut LatestMut<'_>,
        id: &EntryId,
    ) -> StageResult<Option<Entry>> {
        rows.with(self, id, |bytes| self.decode(id, None, bytes))
    }

    /// The id registered under a fingerprint, if any.
    pub(super) fn registered(
        &self,
        fingerprints: &impl ReadableTable<[u8; 16], (&'static str, u64)>,
        fingerprint: &Fingerprint,
    ) -> StageResult<Option<EntryId>> {
        let row = fingerprints
            .get(fingerprint.0)
            .map_err(|e| self.fail("read", e))?;
        Ok(row.map(|g| {
            let (prefix, number) = g.value();
            EntryId::new(prefix, number)
        }))
    }

    /// The id registered under a fingerprint, pending or merged.
    pub(super) fn registered_any(
        &self,
        pending: &Pending,
        fingerprints: &impl ReadableTable<[u8; 16], (&'static str, u64)>,
        fingerprint: &Fingerprint,
    ) -> StageResult<Option<EntryId>> {
        match pending.get(fingerprint) {
            Some(id) => Ok(Some(id)),
            None => self.registered(fingerprints, fingerprint),
        }
    }

    /// The entry a fingerprint row names, which must exist.
    pub(super) fn registered_entry(
        &self,
        found: Option<Entry>,
        id: &EntryId,
        fingerprint: &Fingerprint,
    ) -> StageResult<Entry> {
        found.ok_or_else(|| {
            self.damaged(
                id,
                format!("fingerprint {fingerprint} names it but the entry is missing"),
            )
        })
    }

    pub(super) fn find_latest(
        &self,
        fingerprints: &[Fingerprint],
        out: &mut Vec<Option<Entry>>,
    ) -> StageResult<()> {
        if fingerprints.is_empty() {
            return Ok(());
        }
        // The snapshot is taken before the pending map is read, so an id the map names that
        // the snapshot lacks was committed since: this lookup happened before it, and finds
        // nothing (the map never names an entry that is not committed).
        let txn = self.begin_read()?;
        let fps = self.read_table(&txn, FINGERPRINTS)?;
        let entries = self.latest_rows(&txn)?;
        let pending = self.pending()?;
        let mut found = Vec::with_capacity(fingerprints.len());
        for fp in fingerprints {
            found.push(match pending.get(fp) {
                Some(id) => self.latest(&entries, &id)?,
                None => match self.registered(&fps, fp)? {
                    Some(id) => {
                        let stored = self.latest(&entries, &id)?;
                        Some(self.registered_entry(stored, &id, fp)?)
                    }
                    None => None,
                },
            });
        }
        drop(pending);
        out.extend(found);
        Ok(())
    }

    /// The latest revision of each id, decoded into the `spare` entries while there are any.
    pub(super) fn get_latest(
        &self,
        ids: &[EntryId],
        out: &mut Vec<Option<Entry>>,
        spare: &mut Vec<Entry>,
    ) -> StageResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let txn = self.begin_read()?;
        let entries = self.latest_rows(&txn)?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.push(entries.with(self, id, |bytes| {
                self.decode_reusing(id, None, bytes, spare.pop())
            })?);
        }
        out.extend(found);
        Ok(())
    }

    /// The latest revision of each id, lent to `each` where it lies in the stored bytes (see
    /// [`registry_core::Storage::get_lent`]): the strings in place, the compressed configs
    /// decompressed into strings this thread keeps. A shard that holds a record of this
    /// plugin's own formats (storage format 1) decodes them into entries instead, taken from
    /// `spare` and handed back to it.
    pub(super) fn get_latest_lent(
        &self,
        ids: &[EntryId],
        spare: &mut Vec<Entry>,
        each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
    ) -> StageResult<()> {
        if ids.is_empty() {
            return each(&[]);
        }
        let txn = self.begin_read()?;
        let entries = self.latest_rows(&txn)?;
        let mut stored = Vec::with_capacity(ids.len());
        for id in ids {
            stored.push(entries.guard(self, id)?);
        }
        let mut parts = Vec::with_capacity(ids.len());
        for (id, bytes) in ids.iter().zip(&stored) {
            let Some(bytes) = bytes else {
                parts.push(None);
                continue;
            };
            let bytes = bytes.value();
            if !codec::is_shared(bytes) {
                drop(parts);
                return self.get_decoded_lent(&entries, ids, spare, each);
            }
            let record = registry_codec::entry::parse(bytes).map_err(|e| self.damaged(id, e))?;
            if record.id() != (id.prefix(), id.number()) {
                let (prefix, number) = record.id();
                let held = EntryId::new(prefix, number);
                return Err(self.damaged(id, format!("its row holds entry {held}")));
            }
            parts.push(Some(record));
        }
        // A copy (a few `Arc`s), so that no lock is held while `each` runs.
        let dictionaries = self.dictionaries().clone();
        Lender::with_thread(|lender| lender.lend(&parts, &dictionaries, |views| each(views)))
            .map_err(|(i, e)| self.damaged(&ids[i], e))?
    }

    /// [`RedbStorage::get_latest_lent`] through entries decoded into `spare`'s.
    fn get_decoded_lent(
        &self,
        entries: &Latest<'_>,
        ids: &[EntryId],
        spare: &mut Vec<Entry>,
        each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
    ) -> StageResult<()> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.push(entries.with(self, id, |bytes| {
                self.decode_reusing(id, None, bytes, spare.pop())
            })?);
        }
        registry_core::lend_found(found, spare, each)
    }

    pub(super) fn read_history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        let txn = self.begin_read()?;
        let entries = self.latest_rows(&txn)?;
        let Some(latest) = self.latest(&entries, id)? else {
            return Ok(());
        };
        let revisions = self.read_table(&txn, REVISIONS)?;
        let (prefix, number) = (id.prefix(), id.number());
        let rows = revisions
            .range((prefix, number, 0)..(prefix, number, latest.revision))
            .map_err(|e| self.fail("read", e))?;
        let mut found = Vec::new();
        for row in rows {
            let (key, bytes) = row.map_err(|e| self.fail("read", e))?;
            found.push(self.decode(id, Some(key.value().2), bytes.value())?);
        }
        found.push(latest);
        out.extend(found);
        Ok(())
    }

    pub(super) fn list_entries(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        if query.limit == 0 {
            return Ok(());
        }
        let txn = self.begin_read()?;
        let entries = self.latest_rows(&txn)?;
        let mut found = Vec::new();
        let mut take = |entry: Entry| {
            if query.matches(&entry) {
                found.push(entry);
            }
            found.len() < query.limit
        };
        // Any filter narrows the scan to its index, which is in id order within one value; the
        // other filters are checked on each entry. Without estimates of how many entries each
        // value has, the first given filter is as good a choice as any.
        let filter = Field::ALL
            .into_iter()
            .find_map(|f| query.filter[f].as_deref().map(|v| (f, v)));
        match filter {
            None => {
                entries.walk(self, query.after.as_ref(), &mut |id, bytes| {
                    let entry = self.decode(&id, None, bytes)?;
                    Ok(take(entry))
                })?;
            }
            Some((field, value)) if self.format() >= 2 => {
                let bits = self.read_table(&txn, FIELD_BITS)?;
                let after = query.after.as_ref().map(|a| (a.prefix(), a.number()));
                self.walk_bits(&bits, tag(field), value, after, &mut |prefix, number| {
                    let entry = self.indexed(&entries, &EntryId::new(prefix, number), field)?;
                    Ok(take(entry))
                })?;
            }
            Some((field, value)) => {
                let index = self.read_table(&txn, FIELD_INDEX)?;
                let t = tag(field);
                let start = match &query.after {
                    Some(after) => Bound::Excluded((t, value, after.prefix(), after.number())),
                    None => Bound::Included((t, value, "", 0)),
                };
                let rows = index
                    .range((start, Bound::Unbounded))
                    .map_err(|e| self.fail("read", e))?;
                for row in rows {
                    let (key, _) = row.map_err(|e| self.fail("read", e))?;
                    let (row_tag, row_value, prefix, number) = key.value();
                    if row_tag != t || row_value != value {
                        break;
                    }
                    let entry = self.indexed(&entries, &EntryId::new(prefix, number), field)?;
                    if !take(entry) {
                        break;
                    }
                }
            }
        }
        out.extend(found);
        Ok(())
    }
}
