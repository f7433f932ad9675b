//! Fault injection: the storage on a disk that fails (redb's `StorageBackend`), driven by random
//! sequences of operations against a model of what it acknowledged.
//!
//! The disk ([`Disk`]) keeps what a crash would certainly keep (the bytes as of the last
//! successful sync) apart from what was written since, which a crash keeps all of, some of,
//! or parts of (a torn write). One fault is armed per run, at a random point:
//! - a failed write (nothing of it written),
//! - a torn write (a prefix of it written, then the error),
//! - a failed sync, after which the writes since the last sync may be lost for good while the
//!   process still sees them (the page cache's behaviour after a write-back error),
//! - a full disk (growing the file or writing fails with `StorageFull`),
//!
//! and it fires once or keeps firing. The run stops at the first operation that reports an
//! error, then the process "crashes": the storage is reopened on what the disk kept, with every
//! unsynced change kept, dropped or torn at random. The promise checked: every insert and
//! update that returned success is there exactly (history, fingerprint lookup, listing), the one
//! that failed is there whole or not at all, nothing else is, and no stored number is handed
//! out again.
//!
//! `cargo test` runs [`RUNS`] seeded runs; `REGISTRY_FAULT_RUNS=N` runs more, by hand.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use registry_core::{Entry, EntryId, ListQuery, Setup, Storage};

use super::RedbStorage;
use super::tests::{entry, existing_setup, new_setup, revised};
use crate::Config;

/// Runs in `cargo test`.
const RUNS: u64 = 300;
/// Operations per run, at most.
const STEPS: usize = 24;

/// splitmix64: a seeded sequence, so that a failing run is replayed by its seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    FailedWrite,
    TornWrite,
    FailedSync,
    DiskFull,
}

#[derive(Debug, Clone)]
enum Change {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

impl Change {
    fn apply(&self, bytes: &mut Vec<u8>, torn_at: Option<usize>) {
        match self {
            Change::Write(offset, data) => {
                let data = &data[..torn_at.unwrap_or(data.len()).min(data.len())];
                let at = usize::try_from(*offset).expect("fits");
                if bytes.len() < at + data.len() {
                    bytes.resize(at + data.len(), 0);
                }
                bytes[at..at + data.len()].copy_from_slice(data);
            }
            Change::SetLen(len) => bytes.resize(usize::try_from(*len).expect("fits"), 0),
        }
    }
}

/// The disk under one run.
#[derive(Debug)]
struct Disk {
    /// What a crash keeps for certain: the bytes as of the last successful sync.
    durable: Vec<u8>,
    /// The bytes as the process sees them.
    current: Vec<u8>,
    /// The changes since the last sync, in order.
    unsynced: Vec<Change>,
    fault: Option<Fault>,
    /// Calls the fault applies to, left before it fires.
    countdown: u64,
    sticky: bool,
    fired: u32,
    rng: Rng,
}

impl Disk {
    fn new(bytes: Vec<u8>, rng: Rng) -> Disk {
        Disk {
            durable: bytes.clone(),
            current: bytes,
            unsynced: Vec::new(),
            fault: None,
            countdown: 0,
            sticky: false,
            fired: 0,
            rng,
        }
    }

    /// Whether a call that `fault` applies to fails now.
    fn fires(&mut self, applies: &[Fault]) -> Option<Fault> {
        let fault = self.fault.filter(|f| applies.contains(f))?;
        if self.fired > 0 {
            return self.sticky.then(|| {
                self.fired += 1;
                fault
            });
        }
        if self.countdown > 0 {
            self.countdown -= 1;
            return None;
        }
        self.fired = 1;
        Some(fault)
    }

    fn change(&mut self, change: Change) {
        change.apply(&mut self.current, None);
        self.unsynced.push(change);
    }

    /// What a crash now leaves: the durable bytes, then each unsynced change kept, dropped or
    /// torn at random.
    fn crash(&mut self) -> Vec<u8> {
        let mut bytes = self.durable.clone();
        let changes = std::mem::take(&mut self.unsynced);
        for change in &changes {
            match self.rng.below(4) {
                0 => {}
                1 => {
                    let torn = match change {
                        Change::Write(_, data) if !data.is_empty() => {
                            Some(usize::try_from(self.rng.below(data.len() as u64)).expect("fits"))
                        }
                        _ => None,
                    };
                    change.apply(&mut bytes, torn);
                }
                _ => change.apply(&mut bytes, None),
            }
        }
        bytes
    }
}

#[derive(Debug, Clone)]
struct Backend(Arc<Mutex<Disk>>);

impl Backend {
    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn injected(fault: Fault) -> io::Error {
    match fault {
        Fault::DiskFull => io::Error::new(io::ErrorKind::StorageFull, "injected: disk full"),
        f => io::Error::other(format!("injected: {f:?}")),
    }
}

impl redb::StorageBackend for Backend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.disk().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let disk = self.disk();
        let at = usize::try_from(offset).map_err(io::Error::other)?;
        let bytes = disk
            .current
            .get(at..at + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut disk = self.disk();
        if len > disk.current.len() as u64
            && let Some(f) = disk.fires(&[Fault::DiskFull])
        {
            return Err(injected(f));
        }
        disk.change(Change::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut disk = self.disk();
        if let Some(f) = disk.fires(&[Fault::FailedSync]) {
            // After a failed write-back the kernel may drop the pages it could not write: the
            // process still reads them, a crash loses them, and a later sync does not retry.
            if disk.rng.chance(2) {
                let lost = std::mem::take(&mut disk.unsynced);
                let _ = lost;
            }
            return Err(injected(f));
        }
        let changes = std::mem::take(&mut disk.unsynced);
        for change in &changes {
            change.apply(&mut disk.durable, None);
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut disk = self.disk();
        match disk.fires(&[Fault::FailedWrite, Fault::TornWrite, Fault::DiskFull]) {
            None => {
                disk.change(Change::Write(offset, data.to_vec()));
                Ok(())
            }
            Some(Fault::TornWrite) => {
                let torn = disk.rng.below(data.len().max(1) as u64);
                let torn = usize::try_from(torn).expect("fits");
                disk.change(Change::Write(offset, data[..torn].to_vec()));
                Err(injected(Fault::TornWrite))
            }
            Some(f) => Err(injected(f)),
        }
    }
}

/// The operation in flight when an error was reported: its effect may or may not be there.
#[derive(Debug)]
enum Uncertain {
    Insert(Vec<Entry>),
    Update(Box<Entry>),
}

/// What the storage acknowledged: each entry's history, by number.
type Model = BTreeMap<u64, Vec<Entry>>;

fn open(disk: &Backend, create: bool) -> registry_core::StageResult<RedbStorage> {
    let setup: Setup = if create {
        new_setup()
    } else {
        existing_setup()
    };
    RedbStorage::on_backend(&Config::default(), &setup, "faulty-disk", disk.clone())
}

/// What one run saw: whether its fault fired, and whether an operation reported it.
struct Outcome {
    fired: bool,
    reported: bool,
}

fn run(seed: u64) -> Outcome {
    let mut rng = Rng(seed);
    let disk = Backend(Arc::new(Mutex::new(Disk::new(Vec::new(), rng.clone()))));
    let mut storage = Some(open(&disk, true).expect("a healthy disk opens"));
    {
        let mut d = disk.disk();
        d.fault = Some(
            [
                Fault::FailedWrite,
                Fault::TornWrite,
                Fault::FailedSync,
                Fault::DiskFull,
            ][rng.below(4) as usize],
        );
        d.countdown = rng.below(60);
        d.sticky = rng.chance(2);
    }
    let mut model = Model::new();
    let mut uncertain = None;
    let mut reported = false;
    for _ in 0..STEPS {
        let Some(s) = storage.as_ref() else { break };
        match rng.below(10) {
            0..=5 => {
                let n = 1 + rng.below(4) as usize;
                let mut numbers = Vec::new();
                if s.allocate(&vec!["SEC-RUL".to_owned(); n], &mut numbers)
                    .is_err()
                {
                    reported = true;
                    break;
                }
                let entries: Vec<Entry> = numbers.iter().map(|&n| entry(n, "DEV")).collect();
                let mut out = Vec::new();
                match s.insert(&entries, &mut out) {
                    Ok(()) => {
                        for e in entries {
                            model.insert(e.header.id.number(), vec![e]);
                        }
                    }
                    Err(_) => {
                        uncertain = Some(Uncertain::Insert(entries));
                        reported = true;
                        break;
                    }
                }
            }
            6..=8 if !model.is_empty() => {
                let pick = rng.below(model.len() as u64) as usize;
                let (&number, history) = model.iter().nth(pick).expect("picked");
                let latest = history.last().expect("one revision at least");
                let status = if latest.header.fields.status == "DEV" {
                    "REQUIRED"
                } else {
                    "DEV"
                };
                let next = revised(latest, status);
                let mut out = Vec::new();
                match s.update(std::slice::from_ref(&next), &mut out) {
                    Ok(()) if out.iter().all(Result::is_ok) => {
                        model.get_mut(&number).expect("there").push(next);
                    }
                    _ => {
                        uncertain = Some(Uncertain::Update(Box::new(next)));
                        reported = true;
                        break;
                    }
                }
            }
            _ => {
                // A clean close and reopen on the same disk.
                storage = None;
                match open(&disk, false) {
                    Ok(s) => storage = Some(s),
                    Err(_) => {
                        reported = true;
                        break;
                    }
                }
            }
        }
    }
    drop(storage);
    let fired = disk.disk().fired > 0;
    let image = disk.disk().crash();
    let after = Backend(Arc::new(Mutex::new(Disk::new(image, rng))));
    let s = open(&after, false)
        .unwrap_or_else(|e| panic!("seed {seed}: the disk left by the crash does not open: {e}"));
    verify(seed, &s, &model, uncertain.as_ref());
    Outcome { fired, reported }
}

fn history(s: &RedbStorage, number: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    s.history(&EntryId::new("SEC-RUL", number), &mut out)
        .expect("reads a history");
    out
}

fn verify(seed: u64, s: &RedbStorage, model: &Model, uncertain: Option<&Uncertain>) {
    let mut expected: Model = model.clone();
    match uncertain {
        Some(Uncertain::Insert(entries)) => {
            let there: Vec<bool> = entries
                .iter()
                .map(|e| !history(s, e.header.id.number()).is_empty())
                .collect();
            assert!(
                there.iter().all(|&t| t) || there.iter().all(|&t| !t),
                "seed {seed}: an insert that failed is there in part: {there:?}"
            );
            if there.first() == Some(&true) {
                for e in entries {
                    expected.insert(e.header.id.number(), vec![e.clone()]);
                }
            }
        }
        Some(Uncertain::Update(next)) => {
            let number = next.header.id.number();
            if history(s, number).len() == next.revision as usize {
                expected
                    .get_mut(&number)
                    .expect("updated")
                    .push((**next).clone());
            }
        }
        None => {}
    }
    for (&number, want) in &expected {
        assert_eq!(
            &history(s, number),
            want,
            "seed {seed}: SEC-RUL-{number} is not as acknowledged"
        );
    }
    let mut listed = Vec::new();
    s.list(
        &ListQuery {
            limit: usize::MAX,
            ..ListQuery::default()
        },
        &mut listed,
    )
    .expect("lists");
    let numbers: Vec<u64> = listed.iter().map(|e| e.header.id.number()).collect();
    let want: Vec<u64> = expected.keys().copied().collect();
    assert_eq!(
        numbers, want,
        "seed {seed}: the listing holds other entries"
    );
    let fingerprints: Vec<_> = expected
        .values()
        .map(|h| h.last().expect("a revision").fingerprint)
        .collect();
    let mut found = Vec::new();
    s.find(&fingerprints, &mut found).expect("finds");
    for (f, (number, h)) in found.iter().zip(&expected) {
        assert_eq!(
            f.as_ref(),
            h.last(),
            "seed {seed}: SEC-RUL-{number} is not found by its fingerprint"
        );
    }
    let mut next = Vec::new();
    s.allocate(&["SEC-RUL".to_owned()], &mut next)
        .expect("allocates");
    let highest = expected.keys().max().copied().unwrap_or(0);
    assert!(
        next[0] > highest,
        "seed {seed}: {} handed out again (SEC-RUL-{highest} is stored)",
        next[0]
    );
}

#[test]
fn after_any_injected_disk_fault_the_shard_holds_exactly_what_it_acknowledged() {
    let runs = std::env::var("REGISTRY_FAULT_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(RUNS);
    let (mut fired, mut reported) = (0, 0);
    for seed in 0..runs {
        let outcome = run(seed);
        fired += u64::from(outcome.fired);
        reported += u64::from(outcome.reported);
    }
    eprintln!("{runs} runs: {fired} fired their fault, {reported} saw an error reported");
    // The drill means something only if faults do fire and get reported in most runs.
    assert!(fired * 2 > runs, "{fired} of {runs} runs fired their fault");
    assert!(
        reported * 2 > runs,
        "{reported} of {runs} runs saw an error reported"
    );
}
