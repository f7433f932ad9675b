//! `restore` and `check_restore`: exported histories stored as they are, every one checked
//! (hashes, structure, the validator, conflicts in every shard) before anything is written.

use super::*;

/// What `restore` knows about each history once it has been checked and looked up.
struct RestorePlan {
    slots: Vec<Slot<Restored>>,
    /// The histories that would be created, in batch order.
    create: Vec<usize>,
    /// The shard of each history's id, indexed like the batch.
    shard_of: Vec<u32>,
    /// The provenance found for each history recorded without one, indexed like the batch.
    recovered: Vec<Option<Provenance>>,
}

impl Pipeline {
    /// Stores entries exported from a registry, as they are: ids, revisions, hashes and times
    /// included. Each history is every revision of one entry, oldest first (revisions 1 to n);
    /// returns one result per history, in order: `Created`, `Unchanged` (the same entry is
    /// already stored: same id, latest revision, hash and fingerprint), or an error.
    ///
    /// Before anything is written, every revision's content hash is verified (a mismatch is an
    /// [`Error::Invalid`] with a `hash-mismatch` problem naming the id, the revision, the
    /// exported hash and the computed one), every revision is held to the structural rules of
    /// [`Request::new`] (one-line titles, header values that cannot forge a header), and the
    /// latest revision goes through [`Validator::check_entries`] (earlier revisions do not: they
    /// were valid under the schema of their time). Then ids are looked up in their shards and
    /// fingerprints in every shard, so a request registered under another id in any shard is
    /// found; a history naming an id or fingerprint an earlier one of the batch names is a
    /// conflict too. Conflicts are [`Error::Stage`] errors of the storage stage with code
    /// [`ErrorCode::Conflict`], whether the lookups or storage itself found them.
    ///
    /// Each history goes to the shard that holds its id: in a dense registry the one shard 0
    /// recorded, or for an id it has no record of the shard its fingerprint routes to (recorded
    /// in shard 0 first, [`Storage::place`]); in an interleaved one the shard its number names,
    /// `(number - 1) % K`. Each shard stores its part in one transaction; a shard whose transaction fails gives that error for each of
    /// its histories, while the other shards' parts stay stored. Restoring again is harmless:
    /// what is stored comes back `Unchanged`, so a failed restore is completed by running it
    /// again.
    ///
    /// Registration stays idempotent: an entry's fingerprint normally routes to the shard that
    /// holds it. When a restored entry's does not (an interleaved registry whose exporting
    /// registry had another shard count or router, or an id a dense registry had already
    /// placed elsewhere), the restore first records in that shard's
    /// metadata that it holds foreign fingerprints ([`crate::layout::FOREIGN_FINGERPRINTS`],
    /// durably, before the entry is stored), and `add` looks there too from then on, in this
    /// process and every later one.
    ///
    /// An entry recorded without provenance (exported by an earlier version) is stored with the
    /// provenance its fingerprint was found to have ([`Provenance::recover`]).
    ///
    /// # Errors
    /// The whole batch fails, with nothing written, when the validator cannot work or a lookup
    /// cannot read storage.
    pub fn restore(
        &self,
        mut histories: Vec<Vec<Entry>>,
    ) -> Result<Vec<Result<Restored, Error>>, Error> {
        let RestorePlan {
            mut slots,
            mut create,
            mut shard_of,
            recovered,
        } = self.plan_restore(&histories)?;
        for (history, provenance) in histories.iter_mut().zip(recovered) {
            if let Some(p) = provenance {
                for e in history.iter_mut() {
                    e.provenance.get_or_insert(p);
                }
            }
        }
        // Where the router would look for each fingerprint: if that is not the shard the id
        // names, `add` must from now on look in that shard too.
        let routed = match self.route_histories(&histories, &create) {
            Ok(routed) => routed,
            Err(e) => {
                fail_all(&create, &e, &mut slots);
                return Ok(finish(slots));
            }
        };
        if self.dense && self.shards() > 1 {
            create = self.place_restored(&histories, create, &routed, &mut shard_of, &mut slots);
        }
        let mut stored_keys = Vec::new();
        let mut imported: Vec<Entry> = Vec::new();
        for (shard, items) in group_by_shard(&create, &shard_of) {
            let misplaces = items.iter().any(|&i| routed[i] != shard_of[i]);
            if misplaces && !self.is_foreign(shard) {
                let mark: crate::Meta = [(
                    crate::layout::FOREIGN_FINGERPRINTS.to_owned(),
                    "true".to_owned(),
                )]
                .into();
                if let Err(e) = self.stages.storage[shard].set_meta(&mark) {
                    fail_all(&items, &Error::stage(StageKind::Storage, e), &mut slots);
                    continue;
                }
                self.foreign[shard].store(true, Ordering::Relaxed);
            }
            let batch: Vec<Vec<Entry>> = items
                .iter()
                .map(|&i| std::mem::take(&mut histories[i]))
                .collect();
            let mut outcomes = Vec::with_capacity(batch.len());
            match self.stages.storage[shard].restore(&batch, &mut outcomes) {
                Err(e) => fail_all(&items, &Error::stage(StageKind::Storage, e), &mut slots),
                Ok(()) if outcomes.len() != batch.len() => {
                    fail_all(&items, &miscount(StageKind::Storage), &mut slots);
                }
                Ok(()) => {
                    imported.extend(
                        batch
                            .iter()
                            .zip(&outcomes)
                            .filter(|(_, outcome)| **outcome == Ok(Restored::Created))
                            .filter_map(|(history, _)| history.last().cloned()),
                    );
                    for ((i, history), outcome) in items.into_iter().zip(&batch).zip(outcomes) {
                        if outcome == Ok(Restored::Created)
                            && let Some(latest) = history.last()
                        {
                            stored_keys.extend(CacheKey::of_entry(latest));
                        }
                        slots[i] = Some(outcome.map_err(|e| Error::stage(StageKind::Storage, e)));
                    }
                }
            }
        }
        // Nothing was cached under these keys by this registry, but a cache shared with another
        // one (or a stale negative) must not hide the restored entries.
        if !stored_keys.is_empty() && self.stages.cache.remove(&stored_keys).is_err() {
            self.cache_errors.fetch_add(1, Ordering::Relaxed);
        }
        // Only now: an observer that reads an entry back must not meet a stale negative.
        self.report(ChangeKind::Imported, &imported.iter().collect::<Vec<_>>());
        Ok(finish(slots))
    }

    /// In a dense registry of several shards: sends each history of `create` whose id shard 0
    /// has no record of (it is not in shard 0 either: the lookups found nothing) to the shard
    /// its fingerprint routes to, as `add` would have, and records that in shard 0
    /// ([`Storage::place`]) before anything is stored. Returns the histories left to create:
    /// all of them, unless recording failed for some.
    fn place_restored(
        &self,
        histories: &[Vec<Entry>],
        create: Vec<usize>,
        routed: &[u32],
        shard_of: &mut [u32],
        slots: &mut [Slot<Restored>],
    ) -> Vec<usize> {
        let moved: Vec<usize> = create
            .iter()
            .copied()
            .filter(|&i| shard_of[i] == 0 && routed[i] != 0)
            .collect();
        if moved.is_empty() {
            return create;
        }
        let ids: Vec<EntryId> = moved
            .iter()
            .filter_map(|&i| histories[i].last().map(|e| e.header.id.clone()))
            .collect();
        let shards: Vec<u32> = moved.iter().map(|&i| routed[i]).collect();
        match self.stages.storage[0].place(&ids, &shards) {
            Ok(()) => {
                for &i in &moved {
                    shard_of[i] = routed[i];
                }
                create
            }
            Err(e) => {
                fail_all(&moved, &Error::stage(StageKind::Storage, e), slots);
                create.into_iter().filter(|i| !moved.contains(i)).collect()
            }
        }
    }

    /// The shard the router picks for the fingerprint of each history in `items`, indexed like
    /// `histories`.
    fn route_histories(
        &self,
        histories: &[Vec<Entry>],
        items: &[usize],
    ) -> Result<Vec<u32>, Error> {
        let fps: Vec<Fingerprint> = histories
            .iter()
            .map(|h| h.last().map_or(Fingerprint([0; 16]), |e| e.fingerprint))
            .collect();
        self.route(items, &fps)
    }

    /// What [`Pipeline::restore`] would do with each history, writing nothing: every check and
    /// lookup it makes, with `Ok(Restored::Created)` for a history it would store. Another
    /// writer may change the answer before a later `restore`, which checks everything again.
    ///
    /// # Errors
    /// As [`Pipeline::restore`].
    pub fn check_restore(
        &self,
        histories: &[Vec<Entry>],
    ) -> Result<Vec<Result<Restored, Error>>, Error> {
        let RestorePlan {
            mut slots, create, ..
        } = self.plan_restore(histories)?;
        for i in create {
            slots[i] = Some(Ok(Restored::Created));
        }
        Ok(finish(slots))
    }

    /// Checks every history and looks it up; what is left to create is in `create`.
    fn plan_restore(&self, histories: &[Vec<Entry>]) -> Result<RestorePlan, Error> {
        let n = histories.len();
        let mut slots: Vec<Slot<Restored>> = (0..n).map(|_| None).collect();
        let mut shard_of = vec![0u32; n];
        let mut live = Vec::with_capacity(n);
        let mut ids: HashSet<&EntryId> = HashSet::with_capacity(n);
        let mut fingerprints: HashSet<Fingerprint> = HashSet::with_capacity(n);
        let mut recovered = vec![None; n];
        for (i, history) in histories.iter().enumerate() {
            let checked = self.check_history(history).and_then(|(latest, found)| {
                recovered[i] = found;
                let id = &latest.header.id;
                if !ids.insert(id) {
                    return Err(conflict(format!(
                        "entry {id} is given twice: only the first is restored"
                    )));
                }
                if !fingerprints.insert(latest.fingerprint) {
                    return Err(conflict(format!(
                        "entry {id} has the fingerprint {} of an entry given before it: a \
                         request is registered once",
                        latest.fingerprint
                    )));
                }
                Ok(latest)
            });
            match checked {
                Ok(_) => live.push(i),
                Err(e) => slots[i] = Some(Err(e)),
            }
        }
        // Where each id is, or would go by its number: in a dense registry, shard 0 for an id
        // it has no record of (`restore` sends a new one where its fingerprint routes).
        let ids: Vec<EntryId> = live
            .iter()
            .filter_map(|&i| histories[i].last().map(|e| e.header.id.clone()))
            .collect();
        let mut located = Vec::with_capacity(ids.len());
        self.locate(&ids, &mut located)?;
        for (&i, shard) in live.iter().zip(located) {
            shard_of[i] = shard.and_then(|s| u32::try_from(s).ok()).unwrap_or(0);
        }

        let latest: Vec<Entry> = live
            .iter()
            .filter_map(|&i| histories[i].last().cloned())
            .collect();
        let mut problems = Vec::new();
        self.stages
            .validator
            .check_entries(&latest, &mut problems)
            .map_err(|e| Error::stage(StageKind::Validator, e))?;
        let rejected: HashSet<usize> = reject(&live, problems, &mut slots).into_iter().collect();
        live.retain(|i| !rejected.contains(i));

        let create = self.look_up_restore(histories, live, &shard_of, &mut slots)?;
        Ok(RestorePlan {
            slots,
            create,
            shard_of,
            recovered,
        })
    }

    /// The latest revision of a history that passes every integrity check
    /// ([`integrity::check_history`]: shape, hashes, times, fingerprint) and the structural rules
    /// of requests, with the provenance recovered for a history recorded without one.
    fn check_history<'h>(
        &self,
        history: &'h [Entry],
    ) -> Result<(&'h Entry, Option<Provenance>), Error> {
        let problem = |code: &str, field: &str, message: String| Problem {
            item: 0,
            severity: Severity::Error,
            code: code.to_owned(),
            field: field.to_owned(),
            message,
        };
        let Some(latest) = history.last() else {
            return Err(Error::Invalid(vec![problem(
                "empty-history",
                "history",
                "an exported entry has no revisions: its history must hold revisions 1 to n"
                    .to_owned(),
            )]));
        };
        let id = &latest.header.id;
        if id.number() == 0 {
            return Err(Error::Invalid(vec![problem(
                "bad-id",
                "id",
                format!("id {id} has number 0: numbers start at 1"),
            )]));
        }
        let (flaws, provenance) = integrity::check_history(history);
        let mut problems: Vec<Problem> = flaws
            .into_iter()
            .map(|f| {
                let field = match f.code {
                    "hash-mismatch" => "hash",
                    "bad-times" => "times",
                    "fingerprint-mismatch" => "fingerprint",
                    _ => "history",
                };
                problem(f.code, field, format!("entry {id}: {}", f.message))
            })
            .collect();
        if problems.iter().any(|p| p.code == "bad-history") {
            return Err(Error::Invalid(problems));
        }
        for (at, e) in history.iter().enumerate() {
            // The rules no plugin may relax hold for imported entries too: an imported title
            // with a line break would forge a header line wherever the entry is stamped.
            let fields = e.header.fields.clone().map(|_, v| Some(v));
            let rules = Request::new(
                &e.title,
                fields,
                Some(e.header.version.clone()),
                e.context.clone(),
            )
            .map_err(|err| err.to_string())
            .and_then(|r| {
                if r.title() == e.title {
                    Ok(())
                } else {
                    Err(format!(
                        "title `{}` has leading or trailing whitespace",
                        e.title
                    ))
                }
            });
            if let Err(reason) = rules {
                problems.push(problem(
                    "invalid-entry",
                    "entry",
                    format!("entry {id} revision {}: {reason}", at + 1),
                ));
            }
        }
        if problems.is_empty() {
            let recovered = provenance.filter(|_| latest.provenance.is_none());
            Ok((latest, recovered))
        } else {
            Err(Error::Invalid(problems))
        }
    }

    /// Looks up the ids of `live` in their shards and their fingerprints in every shard; records
    /// `Unchanged` and conflicts and returns the histories left to create.
    fn look_up_restore(
        &self,
        histories: &[Vec<Entry>],
        live: Vec<usize>,
        shard_of: &[u32],
        slots: &mut [Slot<Restored>],
    ) -> Result<Vec<usize>, Error> {
        let latest = |i: usize| histories[i].last();
        let mut by_id: HashMap<usize, Entry> = HashMap::new();
        for (shard, items) in group_by_shard(&live, shard_of) {
            let ids: Vec<EntryId> = items
                .iter()
                .filter_map(|&i| latest(i).map(|e| e.header.id.clone()))
                .collect();
            let mut found = Vec::with_capacity(ids.len());
            self.stages.storage[shard]
                .get(&ids, &mut found)
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
            if found.len() != ids.len() {
                return Err(miscount(StageKind::Storage));
            }
            by_id.extend(
                items
                    .into_iter()
                    .zip(found)
                    .filter_map(|(i, f)| Some((i, f?))),
            );
        }
        let fps: Vec<Fingerprint> = live
            .iter()
            .filter_map(|&i| latest(i).map(|e| e.fingerprint))
            .collect();
        let mut by_fingerprint: HashMap<usize, Entry> = HashMap::new();
        if !fps.is_empty() {
            for storage in &self.stages.storage {
                let mut found = Vec::with_capacity(fps.len());
                storage
                    .find(&fps, &mut found)
                    .map_err(|e| Error::stage(StageKind::Storage, e))?;
                if found.len() != fps.len() {
                    return Err(miscount(StageKind::Storage));
                }
                for (&i, f) in live.iter().zip(found) {
                    if let Some(entry) = f {
                        by_fingerprint.entry(i).or_insert(entry);
                    }
                }
            }
        }
        let mut create = Vec::with_capacity(live.len());
        for i in live {
            let Some(given) = latest(i) else { continue };
            let id = &given.header.id;
            if let Some(stored) = by_id.remove(&i) {
                slots[i] = Some(
                    if (stored.revision, stored.hash, stored.fingerprint)
                        == (given.revision, given.hash, given.fingerprint)
                    {
                        Ok(Restored::Unchanged)
                    } else {
                        Err(conflict(format!(
                            "entry {id} is already stored with other content: stored revision \
                             {} ({}), exported revision {} ({})",
                            stored.revision, stored.hash, given.revision, given.hash
                        )))
                    },
                );
            } else if let Some(other) = by_fingerprint.remove(&i) {
                slots[i] = Some(Err(conflict(format!(
                    "the request of entry {id} is already registered as entry {} (fingerprint \
                     {})",
                    other.header.id, given.fingerprint
                ))));
            } else {
                create.push(i);
            }
        }
        Ok(create)
    }
}
