//! `registry_core::layout::open` on memory storages: a registry is created only when asked, whole;
//! a lost shard refuses it; an interrupted creation is completed by the next registering open;
//! the schema record refuses values stored entries use.

use registry_core::layout::{self, Access, OpenError, OpenOptions, Shards};
use registry_core::{Fields, FromConfig, Meta, Schema, Setup, StageError, Storage};
use registry_testkit::memory::{MemoryStorage, NoConfig};
use registry_testkit::sample;

fn open(
    dir: &std::path::Path,
    access: Access,
    shards: Option<u32>,
    schema: &Schema,
) -> Result<Shards, OpenError> {
    let options = OpenOptions {
        shards,
        new_shards: 3,
        access,
        schema,
    };
    layout::open(&options, &mut |shard, count, create: Option<&Meta>| {
        let setup = Setup {
            schema: schema.clone(),
            data_dir: dir.to_owned(),
            config_dir: dir.to_owned(),
            shard,
            shards: count,
            create: create.cloned(),
        };
        MemoryStorage::from_config(NoConfig {}, &setup)
            .map(|s| Box::new(s) as Box<dyn Storage>)
            .map_err(|e: StageError| e)
    })
}

fn meta(s: &dyn Storage) -> Meta {
    let mut m = Meta::new();
    s.meta(&mut m).expect("reads");
    m
}

#[test]
fn a_registry_is_created_only_when_asked_and_found_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    for access in [Access::Read, Access::Write] {
        assert_eq!(
            open(dir.path(), access, None, &schema).map(|_| ()),
            Err(OpenError::Absent),
            "{access:?}"
        );
    }
    let created = open(dir.path(), Access::Create, None, &schema).expect("creates");
    assert!(created.created);
    assert_eq!(created.storage.len(), 3, "the new count");
    let zero = meta(&*created.storage[0]);
    assert_eq!(zero.get(layout::STATE).map(String::as_str), Some("ready"));
    assert!(zero.contains_key(layout::SCHEMA));
    drop(created);
    // Found again without the count being configured: shard 0 tells it.
    let again = open(dir.path(), Access::Read, None, &schema).expect("opens");
    assert!(!again.created);
    assert_eq!(again.storage.len(), 3);
}

#[test]
fn an_interrupted_creation_is_completed_and_a_lost_shard_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    // Shard 0 made, as a creation that stopped right after it leaves it.
    let first: Meta = [(layout::STATE.to_owned(), "creating".to_owned())].into();
    let setup = |shard, create| Setup {
        schema: schema.clone(),
        data_dir: dir.path().to_owned(),
        config_dir: dir.path().to_owned(),
        shard,
        shards: 2,
        create,
    };
    drop(MemoryStorage::from_config(NoConfig {}, &setup(0, Some(first))).expect("shard 0"));
    match open(dir.path(), Access::Read, None, &schema) {
        Err(OpenError::Incomplete(shards)) => assert_eq!(shards, [1]),
        other => panic!(
            "expected an incomplete registry, got {:?}",
            other.map(|_| ())
        ),
    }
    let done = open(dir.path(), Access::Create, None, &schema).expect("completes");
    assert_eq!(done.storage.len(), 2);
    assert_eq!(
        meta(&*done.storage[0])
            .get(layout::STATE)
            .map(String::as_str),
        Some("ready")
    );
    drop(done);
    // Shard 1 of another registry, whose shard 0 is gone: lost, never made again.
    let other = tempfile::tempdir().expect("temp dir");
    let lone = Setup {
        data_dir: other.path().to_owned(),
        config_dir: other.path().to_owned(),
        ..setup(1, Some(Meta::new()))
    };
    drop(MemoryStorage::from_config(NoConfig {}, &lone).expect("shard 1"));
    for access in [Access::Read, Access::Create] {
        match open(other.path(), access, Some(2), &schema) {
            Err(OpenError::Missing(lost)) => assert_eq!(lost.len(), 1, "{lost:?}"),
            other => panic!(
                "{access:?}: expected a lost shard, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

/// Opens the 3-shard registry of `dir` while another host creates it: the first time shard
/// `during` is looked for and found absent, the other host creates every shard (shard 0
/// first, as `layout::open` does) and marks the registry ready, before the look returns.
fn open_while_another_creates(
    dir: &std::path::Path,
    access: Access,
    during: u32,
) -> Result<Shards, OpenError> {
    let schema = Schema::default();
    let options = OpenOptions {
        shards: Some(3),
        new_shards: 3,
        access,
        schema: &schema,
    };
    let setup = |shard, create| Setup {
        schema: schema.clone(),
        data_dir: dir.to_owned(),
        config_dir: dir.to_owned(),
        shard,
        shards: 3,
        create,
    };
    let mut raced = false;
    layout::open(&options, &mut |shard, _, create: Option<&Meta>| {
        let result = MemoryStorage::from_config(NoConfig {}, &setup(shard, create.cloned()));
        if result.is_err() && shard == during && !raced {
            raced = true;
            let first: Meta = [(layout::STATE.to_owned(), "creating".to_owned())].into();
            let zero =
                MemoryStorage::from_config(NoConfig {}, &setup(0, Some(first))).expect("shard 0");
            for other in 1..3 {
                MemoryStorage::from_config(NoConfig {}, &setup(other, Some(Meta::new())))
                    .expect("shard");
            }
            let ready = [(layout::STATE.to_owned(), "ready".to_owned())].into();
            zero.set_meta(&ready).expect("ready");
        }
        result.map(|s| Box::new(s) as Box<dyn Storage>)
    })
}

#[test]
fn a_registry_another_host_creates_during_the_look_is_opened_not_refused() {
    // Another host creates the registry while its shards are looked at: the shards it creates
    // after they were looked for are on their way, not lost (reading shard 0's state after
    // the look took them for lost).
    for during in 0..3 {
        for access in [Access::Read, Access::Create] {
            let dir = tempfile::tempdir().expect("temp dir");
            match open_while_another_creates(dir.path(), access, during) {
                Ok(shards) => {
                    assert_eq!(shards.storage.len(), 3, "{during} {access:?}");
                    assert!(shards.unavailable.is_empty(), "{during} {access:?}");
                }
                // Every shard was looked for before the other host made any: no registry yet.
                Err(OpenError::Absent) if during == 2 && access == Access::Read => {}
                Err(e) => panic!("shard {during}, {access:?}: {e}"),
            }
        }
    }
}

#[test]
fn a_schema_dropping_a_value_in_use_is_refused_and_adding_one_is_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let shards = open(dir.path(), Access::Create, Some(1), &schema).expect("creates");
    let mut out = Vec::new();
    let entry = sample::entry(
        sample::fields("DASHBOARD", "CONFIG", "LIVE", "DEV"),
        1,
        "sales",
    );
    shards.storage[0]
        .insert(&[entry], &mut out)
        .expect("stores");
    drop(shards);
    let values = |field: registry_core::Field, drop_value: Option<&str>, add: Option<&str>| {
        let mut v: Vec<String> = schema
            .allowed(field)
            .iter()
            .filter(|x| Some(x.as_str()) != drop_value)
            .cloned()
            .collect();
        v.extend(add.map(str::to_owned));
        v
    };
    let narrower = Schema::new(
        Fields::from_fn(|f| values(f, Some("DASHBOARD"), None)),
        schema.version().to_owned(),
        Fields::from_fn(|f| schema.default_value(f).map(str::to_owned)),
    )
    .expect("valid schema");
    match open(dir.path(), Access::Read, None, &narrower) {
        Err(OpenError::SchemaDrift(drift)) => {
            assert_eq!(drift.len(), 1);
            assert_eq!(drift[0].value, "DASHBOARD");
            assert_eq!(drift[0].used_by.to_string(), "DASHBOARD-CON-001");
        }
        other => panic!("expected schema drift, got {:?}", other.map(|_| ())),
    }
    let wider = Schema::new(
        Fields::from_fn(|f| values(f, None, (f == registry_core::Field::Scope).then_some("NET"))),
        schema.version().to_owned(),
        Fields::from_fn(|f| schema.default_value(f).map(str::to_owned)),
    )
    .expect("valid schema");
    open(dir.path(), Access::Write, None, &wider).expect("adding values is fine");
}

/// A storage that keeps no metadata (the trait's default): what the memory storage does,
/// without `meta` and `set_meta`.
struct Forgetful(MemoryStorage);

impl Storage for Forgetful {
    fn find(
        &self,
        f: &[registry_core::Fingerprint],
        out: &mut Vec<Option<registry_core::Entry>>,
    ) -> registry_core::StageResult<()> {
        self.0.find(f, out)
    }
    fn get(
        &self,
        ids: &[registry_core::EntryId],
        out: &mut Vec<Option<registry_core::Entry>>,
    ) -> registry_core::StageResult<()> {
        self.0.get(ids, out)
    }
    fn allocate(&self, p: &[String], out: &mut Vec<u64>) -> registry_core::StageResult<()> {
        self.0.allocate(p, out)
    }
    fn insert(
        &self,
        e: &[registry_core::Entry],
        out: &mut Vec<registry_core::Inserted>,
    ) -> registry_core::StageResult<()> {
        self.0.insert(e, out)
    }
    fn update(
        &self,
        e: &[registry_core::Entry],
        out: &mut Vec<registry_core::StageResult<()>>,
    ) -> registry_core::StageResult<()> {
        self.0.update(e, out)
    }
    fn history(
        &self,
        id: &registry_core::EntryId,
        out: &mut Vec<registry_core::Entry>,
    ) -> registry_core::StageResult<()> {
        self.0.history(id, out)
    }
    fn list(
        &self,
        q: &registry_core::ListQuery,
        out: &mut Vec<registry_core::Entry>,
    ) -> registry_core::StageResult<()> {
        self.0.list(q, out)
    }
}

#[test]
fn a_storage_without_metadata_still_opens_with_a_configured_count() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let options = |shards| OpenOptions {
        shards,
        new_shards: 2,
        access: Access::Create,
        schema: &schema,
    };
    let mut build = |shard, count, create: Option<&Meta>| {
        let setup = Setup {
            schema: schema.clone(),
            data_dir: dir.path().to_owned(),
            config_dir: dir.path().to_owned(),
            shard,
            shards: count,
            create: create.cloned(),
        };
        MemoryStorage::from_config(NoConfig {}, &setup)
            .map(|s| Box::new(Forgetful(s)) as Box<dyn Storage>)
    };
    let created = layout::open(&options(Some(2)), &mut build).expect("creates");
    assert_eq!(created.storage.len(), 2);
    drop(created);
    layout::open(&options(Some(2)), &mut build).expect("opens again");
    match layout::open(&options(None), &mut build) {
        Err(e) => assert!(e.to_string().contains("set `shards`"), "{e}"),
        Ok(_) => panic!("the count cannot be learnt from a storage that records none"),
    }
}
