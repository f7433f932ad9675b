//! `add`'s creation of new entries: prediction, validation, allocation (in turn, in a dense
//! registry), rendering, validation of the entries, placement in shard 0 and the inserts. A
//! batch alone in `add` renders, hashes and validates its entries in two halves at once
//! (`split`).

use super::split::{halves, halves_of_problems};
use super::*;

impl Pipeline {
    /// Predicts, validates, allocates, renders, validates again and inserts the new requests.
    pub(super) fn create(
        &self,
        requests: Vec<Request>,
        fps: &[Fingerprint],
        shard_of: &[u32],
        todo: &[usize],
        slots: &mut [Slot],
        turn: Option<&mut Turn>,
    ) {
        if todo.is_empty() {
            return;
        }
        // Fill the missing fields. The requests are moved, not copied: each index is in `todo`
        // at most once, so `take` finds every one.
        let mut requests: Vec<Option<Request>> = requests.into_iter().map(Some).collect();
        let batch: Vec<Request> = todo.iter().filter_map(|&i| requests[i].take()).collect();
        if batch.len() != todo.len() {
            return fail_all(todo, &internal("a request was listed twice"), slots);
        }
        // Prediction is not split: the default generator's keyword rules take about 0.3 ms per
        // 1,000 requests, which a second thread made slower (measured in docs/PERFORMANCE.md).
        let split = self.splits(batch.len());
        let mut predictions = Vec::with_capacity(batch.len());
        if let Err(e) = self.timed(StageCall::GeneratorPredict, || {
            self.stages.generator.predict(&batch, &mut predictions)
        }) {
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
                Ok((request, fields, version)) => {
                    completed.push(request);
                    provenance.push((fields, version));
                    live.push(i);
                }
                Err(e) => slots[i] = Some(Err(e)),
            }
        }

        // Check the completed requests before any id is spent on them.
        let mut problems = Vec::new();
        if let Err(e) = self.timed(StageCall::ValidatorCheckRequests, || {
            self.stages
                .validator
                .check_requests(&completed, &mut problems)
        }) {
            return fail_all(&live, &Error::stage(StageKind::Validator, e), slots);
        }
        let rejected = reject(&live, problems, slots);
        // In batch order: `todo` is. Sized first, as `created` below.
        let mut pending: Vec<Pending> =
            Vec::with_capacity(live.len().saturating_sub(rejected.len()));
        pending.extend(
            live.into_iter()
                .zip(completed)
                .zip(provenance)
                .filter(|((i, _), _)| !rejected.contains(i))
                .map(|((item, request), (provenance, version))| Pending {
                    item,
                    request,
                    provenance,
                    version,
                }),
        );
        let prefixes: Vec<String> = pending
            .iter()
            .map(|p| {
                self.schema.id_prefix(
                    field(&p.request.fields, Field::Scope),
                    field(&p.request.fields, Field::Type),
                )
            })
            .collect();
        let numbers = self.allocate(&pending, &prefixes, shard_of, turn, slots);
        let Some(created) = self.build_entries(pending, prefixes, numbers, fps, split, slots)
        else {
            return;
        };
        // Grouped by shard in shard order, each group in batch order. Each entry moves once:
        // sorting the batch by shard moved every entry (some 700 bytes with its provenance)
        // about ten times.
        let mut counts = vec![0usize; self.shards()];
        for c in &created {
            counts[shard_of[c.item] as usize] += 1;
        }
        let mut by_shard: Vec<Vec<Created>> = counts.into_iter().map(Vec::with_capacity).collect();
        for c in created {
            // `route` checked every shard against the shard count.
            by_shard[shard_of[c.item] as usize].push(c);
        }
        // In a dense registry, where the entries bound for other shards go is recorded in
        // shard 0 before they are stored: in the same transaction as shard 0's own entries when
        // it has some (one commit there, not two), else on its own.
        let (ids, shards): (Vec<EntryId>, Vec<u32>) = if self.dense {
            by_shard
                .iter()
                .flatten()
                .filter(|c| shard_of[c.item] != 0)
                .map(|c| (c.entry.header.id.clone(), shard_of[c.item]))
                .unzip()
        } else {
            (Vec::new(), Vec::new())
        };
        let home_first = !by_shard[0].is_empty();
        if !ids.is_empty() && !home_first {
            self.place(&mut by_shard, &ids, &shards, slots);
        }
        let mut groups = by_shard
            .into_iter()
            .enumerate()
            .filter(|(_, group)| !group.is_empty());
        if !ids.is_empty()
            && home_first
            && let Some((_, home)) = groups.next()
            && let Err(e) = self.insert_in_shard(0, home, Some((&ids, &shards)), slots)
        {
            // Nothing was placed: the entries bound elsewhere are not stored either.
            for (_, group) in groups {
                let items: Vec<usize> = group.iter().map(|c| c.item).collect();
                fail_all(&items, &e, slots);
            }
            return;
        }
        for (shard, group) in groups {
            let _ = self.insert_in_shard(shard, group, None, slots);
        }
    }

    /// Allocates an id number for each pending request: in a dense registry from shard 0, in
    /// the batch's order (after every earlier turn's batch, when given one); otherwise from the
    /// shard each goes to. `None` for an item whose allocation failed (its slot says why).
    fn allocate(
        &self,
        pending: &[Pending],
        prefixes: &[String],
        shard_of: &[u32],
        turn: Option<&mut Turn>,
        slots: &mut [Slot],
    ) -> Vec<Option<u64>> {
        let mut numbers = vec![None; pending.len()];
        if pending.is_empty() {
            return numbers;
        }
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        if self.dense {
            groups.push((0, (0..pending.len()).collect()));
        } else {
            for (at, p) in pending.iter().enumerate() {
                let s = shard_of[p.item] as usize;
                match groups.iter_mut().find(|(g, _)| *g == s) {
                    Some((_, v)) => v.push(at),
                    None => groups.push((s, vec![at])),
                }
            }
        }
        if let Some(turn) = &turn
            && self.dense
        {
            turn.wait();
        }
        for (shard, positions) in groups {
            // A group of the whole batch (every dense registry's) asks with the batch's own
            // prefixes, in order, without a copy of each.
            let subset: Vec<String>;
            let asked: &[String] = if positions.len() == prefixes.len() {
                prefixes
            } else {
                subset = positions.iter().map(|&k| prefixes[k].clone()).collect();
                &subset
            };
            let mut got = Vec::with_capacity(asked.len());
            let result = self.timed(StageCall::StorageAllocate, || {
                self.stages.storage[shard].allocate(asked, &mut got)
            });
            let error = match result {
                Err(e) => Some(Error::stage(StageKind::Storage, e)),
                Ok(()) if got.len() != asked.len() => Some(miscount(StageKind::Storage)),
                Ok(()) => None,
            };
            match error {
                Some(e) => {
                    let items: Vec<usize> = positions.iter().map(|&k| pending[k].item).collect();
                    fail_all(&items, &e, slots);
                }
                None => {
                    for (k, n) in positions.into_iter().zip(got) {
                        numbers[k] = Some(n);
                    }
                }
            }
        }
        if let Some(turn) = turn {
            turn.pass();
        }
        numbers
    }

    /// Renders the configs of the requests that got a number and checks the entries; returns
    /// those that pass, or `None` when none is left.
    fn build_entries(
        &self,
        pending: Vec<Pending>,
        prefixes: Vec<String>,
        numbers: Vec<Option<u64>>,
        fps: &[Fingerprint],
        split: bool,
        slots: &mut [Slot],
    ) -> Option<Vec<Created>> {
        // The drafts take the requests' parts; only the items and provenance stay behind.
        let mut group: Vec<(usize, Fields<Guess>)> = Vec::with_capacity(pending.len());
        let mut drafts: Vec<Draft> = Vec::with_capacity(pending.len());
        let mut registered: Vec<(Provenance, Option<Author>)> = Vec::with_capacity(pending.len());
        let default_author = self.default_author();
        for ((mut p, prefix), number) in pending.into_iter().zip(prefixes).zip(numbers) {
            let Some(number) = number else { continue };
            registered.push((
                Provenance {
                    derivation: FINGERPRINT_DERIVATION,
                    fields: Fields::from_fn(|f| p.provenance[f].source),
                    version: p.version,
                },
                p.request.author.take().or_else(|| default_author.clone()),
            ));
            let (title, fields, version, context) = p.request.into_parts();
            drafts.push(Draft {
                header: Header {
                    fields: fields.map(|_, v| v.unwrap_or_default()),
                    id: EntryId::new(prefix, number),
                    version: version.unwrap_or_default(),
                },
                title,
                context,
            });
            group.push((p.item, p.provenance));
        }
        if drafts.is_empty() {
            return None;
        }
        let items: Vec<usize> = group.iter().map(|(item, _)| *item).collect();
        let mut configs = Vec::with_capacity(drafts.len());
        if let Err(e) = self.timed(StageCall::GeneratorRender, || {
            halves(split, &drafts, &mut configs, |part, out| {
                self.stages.generator.render(part, out)
            })
        }) {
            fail_all(&items, &Error::stage(StageKind::Generator, e), slots);
            return None;
        }
        if configs.len() != drafts.len() {
            fail_all(&items, &miscount(StageKind::Generator), slots);
            return None;
        }
        // Hashed in halves too when split; else each as its entry is built.
        let mut hashes: Vec<ContentHash> = Vec::new();
        if split {
            let parts: Vec<(&Draft, &String)> = drafts.iter().zip(&configs).collect();
            let hashed = halves(split, &parts, &mut hashes, |part, out| {
                out.extend(
                    part.iter()
                        .map(|(d, c)| Entry::compute_hash(&d.header, &d.title, &d.context, c)),
                );
                Ok(())
            });
            debug_assert!(hashed.is_ok() && hashes.len() == parts.len());
        }
        let now = Timestamp::now();
        let entries: Vec<Entry> = drafts
            .into_iter()
            .zip(configs)
            .zip(items.iter().zip(registered))
            .enumerate()
            .map(|(k, ((d, config), (&i, (provenance, author))))| Entry {
                hash: match hashes.get(k) {
                    Some(&hash) => hash,
                    None => Entry::compute_hash(&d.header, &d.title, &d.context, &config),
                },
                previous: None,
                purge: None,
                header: d.header,
                title: d.title,
                context: d.context,
                config,
                fingerprint: fps[i],
                revision: 1,
                created_at: now,
                updated_at: now,
                provenance: Some(provenance),
                lifecycle: Lifecycle::Active,
                author,
            })
            .collect();

        let mut problems = Vec::new();
        if let Err(e) = self.timed(StageCall::ValidatorCheckEntries, || {
            halves_of_problems(split, &entries, &mut problems, |part, out| {
                self.stages.validator.check_built(part, out)
            })
        }) {
            fail_all(&items, &Error::stage(StageKind::Validator, e), slots);
            return None;
        }
        let rejected = reject(&items, problems, slots);
        // Sized first: grown from a filter, the vector would move every entry several times.
        let mut created: Vec<Created> =
            Vec::with_capacity(entries.len().saturating_sub(rejected.len()));
        created.extend(
            group
                .into_iter()
                .zip(entries)
                .filter(|((item, _), _)| !rejected.contains(item))
                .map(|((item, provenance), entry)| Created {
                    item,
                    provenance,
                    entry,
                }),
        );
        (!created.is_empty()).then_some(created)
    }

    /// In a dense registry of several shards whose shard 0 has no new entry of its own,
    /// records there where the new entries that go to other shards (`ids`, `shards`) will be,
    /// before they are stored ([`Storage::place`]). When recording fails, every entry bound
    /// elsewhere fails with it and is taken out of `by_shard`.
    fn place(
        &self,
        by_shard: &mut [Vec<Created>],
        ids: &[EntryId],
        shards: &[u32],
        slots: &mut [Slot],
    ) {
        if let Err(e) = self.timed(StageCall::StoragePlace, || {
            self.stages.storage[0].place(ids, shards)
        }) {
            let e = Error::stage(StageKind::Storage, e);
            for group in by_shard.iter_mut().skip(1) {
                let items: Vec<usize> = group.drain(..).map(|c| c.item).collect();
                fail_all(&items, &e, slots);
            }
        }
    }

    /// Stores new entries in one shard and caches them; with `places`, shard 0 records those
    /// locations in the same transaction ([`Storage::insert_placed`]). The error, when the
    /// transaction failed (every one of its entries has it).
    fn insert_in_shard(
        &self,
        shard: usize,
        created: Vec<Created>,
        places: Option<(&[EntryId], &[u32])>,
        slots: &mut [Slot],
    ) -> Result<(), Error> {
        let storage = &self.stages.storage[shard];
        let (keep, entries): (Vec<(usize, Fields<Guess>)>, Vec<Entry>) = created
            .into_iter()
            .map(|c| ((c.item, c.provenance), c.entry))
            .unzip();
        let keep_items: Vec<usize> = keep.iter().map(|(item, _)| *item).collect();
        let mut inserted = Vec::with_capacity(entries.len());
        if let Err(e) = self.timed(StageCall::StorageInsert, || match places {
            Some((ids, shards)) => storage.insert_placed(&entries, ids, shards, &mut inserted),
            None => storage.insert(&entries, &mut inserted),
        }) {
            let e = Error::stage(StageKind::Storage, e);
            fail_all(&keep_items, &e, slots);
            return Err(e);
        }
        if inserted.len() != entries.len() {
            let e = miscount(StageKind::Storage);
            fail_all(&keep_items, &e, slots);
            return Err(e);
        }
        let cache_new = self.cache_new_entries.load(Ordering::Relaxed);
        let mut stored = Vec::with_capacity(entries.len());
        for (((item, provenance), entry), outcome) in keep.into_iter().zip(entries).zip(inserted) {
            let added = match outcome {
                Inserted::Created => Added {
                    entry: Arc::new(entry),
                    created: true,
                    fields: Some(provenance),
                },
                Inserted::Existing(entry) => existing(Arc::new(entry)),
            };
            if cache_new || !added.created {
                stored.push(Arc::clone(&added.entry));
            }
            slots[item] = Some(Ok(added));
        }
        self.fill_cache_shared(&stored);
        // After the cache is filled: an observer reading an entry back finds it stored.
        let created: Vec<&Entry> = keep_items
            .iter()
            .filter_map(|&item| match &slots[item] {
                Some(Ok(added)) if added.created => Some(&*added.entry),
                _ => None,
            })
            .collect();
        self.report(ChangeKind::Created, &created);
        Ok(())
    }
}
