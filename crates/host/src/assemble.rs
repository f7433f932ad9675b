//! Building a registry's stages: from plugins linked into the program or from the plugin
//! libraries the settings name (checked against the trust policy first), through one path with
//! one failure policy.
//!
//! - A command builds only the stages it uses ([`Options::stages`]); the others stand as
//!   [`NotLoaded`], so a library named for a stage the command does not use never runs.
//! - Storage comes last, and only once every other stage was built: a command that fails
//!   leaves nothing behind (no registry created). Its shards are opened, or created, by
//!   [`layout::open`]: a missing or emptied shard refuses the registry, a damaged or locked one
//!   is set aside as an [`registry_core::UnavailableShard`] while the others keep working.
//! - Every stage that fails is reported, not only the first.
//!
//! A stage's `library` names a plugin linked into the program (a [`Builtin`]) or a library
//! file; both go through the same code, and differ only in how one stage is built. The
//! benchmarks' static and dynamic builds are the same settings naming built-ins or files.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

pub use registry_abi::linked::Builtin;
use registry_abi::load::{
    self, BuildError, BuiltStage, Library, LibraryInfo, LoadError, LoadErrorKind, SearchPaths,
    StageInfo, StageSpec,
};
use registry_abi::module::PluginModRef;
use registry_core::layout::{self, Access};
use registry_core::{
    ErrorCode, Meta, NotLoaded, Setup, StageError, StageKind, Stages, Storage, UnavailableShard,
    Validator,
};

/// Where stages come from: each stage's `library` names a plugin linked into the program (one
/// of `builtins`) or a library file, which loads if `paths.trust` lets it
/// (see [`load::library`]).
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub specs: &'a [StageSpec],
    pub paths: &'a SearchPaths,
    /// The plugins linked into the program (`registry_builtin::BUILTINS` for the binary).
    pub builtins: &'a [Builtin],
}

/// What a command needs built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// The stages the command uses. Without storage, no registry is opened: a one-shard
    /// `NotLoaded` storage stands in.
    pub stages: &'a [StageKind],
    /// Whether the command writes, and may create a registry that does not exist.
    pub access: Access,
    /// The shard count the configuration asks for.
    pub shards: Option<u32>,
    /// The shard count of a registry created without one configured.
    pub new_shards: u32,
}

/// Stages built, ready for `registry_core::Pipeline::new`.
#[derive(Debug)]
pub struct Assembled {
    pub stages: Stages,
    /// The plugin behind each stage built, in stage order.
    pub plugins: Vec<StageInfo>,
    /// The storage shards that could not be opened, with why: each is an
    /// [`UnavailableShard`] in `stages`, so the other shards keep working.
    pub unavailable: Vec<UnavailableShard>,
    /// Which shards hold foreign fingerprints (see `Pipeline::set_foreign_shards`).
    pub foreign: Vec<bool>,
    /// Whether the registry was created by this assembly.
    pub created: bool,
    /// What the stages built had to say that is not an error (built-in stages only).
    pub notes: Vec<String>,
}

/// Builds one stage for a setup.
type Build<'a> = Box<dyn Fn(&Setup) -> Result<BuiltStage, BuildError> + 'a>;

/// One stage's maker: builds it for a setup.
struct Maker<'a> {
    path: PathBuf,
    info: StageInfo,
    build: Build<'a>,
}

/// How stages are made from a source; libraries are opened once each, whatever stages they
/// serve.
struct Makers<'a> {
    source: &'a Source<'a>,
    /// What the built-in stages built so far had to say.
    notes: Rc<RefCell<Vec<String>>>,
    opened: HashMap<PathBuf, Result<(PluginModRef, LibraryInfo), LoadError>>,
}

impl<'a> Makers<'a> {
    fn new(source: &'a Source<'a>) -> Makers<'a> {
        Makers {
            source,
            notes: Rc::default(),
            opened: HashMap::new(),
        }
    }

    fn maker(&mut self, stage: StageKind) -> Result<Maker<'a>, LoadError> {
        let fail = |kind| LoadError::new(stage, &PathBuf::new(), kind);
        let spec = self
            .source
            .specs
            .iter()
            .find(|s| s.stage == stage)
            .ok_or_else(|| fail(LoadErrorKind::NotConfigured))?;
        let config = spec.config_json.clone();
        match load::library(&spec.library, self.source.paths) {
            Library::Builtin(name) => {
                let builtins = self.source.builtins;
                let builtin = builtins.iter().find(|b| b.name == name).ok_or_else(|| {
                    fail(LoadErrorKind::NoSuchBuiltin {
                        name: name.clone(),
                        builtin: builtins.iter().map(|b| b.name.to_owned()).collect(),
                    })
                })?;
                if !builtin.stages.contains(&stage) {
                    return Err(fail(LoadErrorKind::NotProvided {
                        provided: builtin.stages.to_vec(),
                    }));
                }
                Ok(Maker {
                    info: StageInfo {
                        stage,
                        name: builtin.name.to_owned(),
                        version: builtin.version.to_owned(),
                        path: PathBuf::new(),
                    },
                    path: PathBuf::new(),
                    build: {
                        let notes = Rc::clone(&self.notes);
                        Box::new(move |setup: &Setup| {
                            let mut said = Vec::new();
                            let built = builtin.build(stage, &config, setup, &mut said);
                            let mut notes = notes.borrow_mut();
                            for note in said {
                                // Each storage shard is built alike: say a note once.
                                if !notes.contains(&note) {
                                    notes.push(note);
                                }
                            }
                            built
                        })
                    },
                })
            }
            Library::File(path) => {
                let trust = &self.source.paths.trust;
                let opened = self
                    .opened
                    .entry(path.clone())
                    .or_insert_with(|| load::open_trusted(&path, stage, trust))
                    .clone();
                let (module, info) = opened.map_err(|e| LoadError { stage, ..e })?;
                Ok(Maker {
                    info: StageInfo {
                        stage,
                        name: info.name,
                        version: info.version,
                        path: path.clone(),
                    },
                    path,
                    build: Box::new(move |setup: &Setup| {
                        load::build(module, stage, &config, setup)
                    }),
                })
            }
        }
    }
}

fn build_error(stage: StageKind, path: &std::path::Path, e: BuildError) -> LoadError {
    let kind = match e {
        BuildError::NotProvided { provided, .. } => LoadErrorKind::NotProvided { provided },
        BuildError::Start(e) => LoadErrorKind::Start(e),
        other => LoadErrorKind::Start(StageError::new(ErrorCode::Internal, other.to_string())),
    };
    LoadError::new(stage, path, kind)
}

/// Builds the stages a command needs and opens (or creates) the registry's storage by the
/// protocol of [`layout`]; see the module documentation.
///
/// # Errors
/// One [`LoadError`] per stage that fails; a registry that cannot be opened is one storage
/// error of kind [`LoadErrorKind::Registry`].
pub fn assemble(
    source: &Source<'_>,
    setup: &Setup,
    options: &Options<'_>,
) -> Result<Assembled, Vec<LoadError>> {
    let mut makers = Makers::new(source);
    let mut errors = Vec::new();
    let mut plugins = Vec::new();
    let (mut cache, mut generator, mut validator, mut router) = (None, None, None, None);
    let mut shards = None;
    let order = [
        StageKind::Cache,
        StageKind::Generator,
        StageKind::Validator,
        StageKind::Router,
        StageKind::Storage,
    ];
    for stage in order {
        if !options.stages.contains(&stage) {
            continue;
        }
        let maker = match makers.maker(stage) {
            Ok(m) => m,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if stage == StageKind::Storage {
            // The library loaded; the registry is not opened for a command that cannot run.
            if errors.is_empty() {
                match open_storage(&maker, setup, options) {
                    Ok(opened) => shards = Some(opened),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
            plugins.push(maker.info);
            continue;
        }
        let one = Setup {
            shard: 0,
            ..setup.clone()
        };
        match (maker.build)(&one) {
            Ok(BuiltStage::Cache(c)) => cache = Some(c),
            Ok(BuiltStage::Generator(g)) => generator = Some(g),
            Ok(BuiltStage::Validator(v)) => validator = Some(v),
            Ok(BuiltStage::Router(r)) => router = Some(r),
            Ok(BuiltStage::Storage(_)) => {
                errors.push(build_error(
                    stage,
                    &maker.path,
                    BuildError::NotProvided {
                        stage,
                        provided: vec![StageKind::Storage],
                    },
                ));
                continue;
            }
            Err(e) => {
                errors.push(build_error(stage, &maker.path, e));
                continue;
            }
        }
        plugins.push(maker.info);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    plugins.sort_by_key(|p| StageKind::ALL.iter().position(|&s| s == p.stage));
    let shards = shards.unwrap_or_else(|| layout::Shards {
        storage: vec![Box::new(NotLoaded(StageKind::Storage))],
        unavailable: Vec::new(),
        foreign: vec![false],
        created: false,
    });
    let not_loaded = |stage| NotLoaded(stage);
    Ok(Assembled {
        stages: Stages {
            cache: cache.unwrap_or_else(|| Box::new(not_loaded(StageKind::Cache))),
            generator: generator.unwrap_or_else(|| Box::new(not_loaded(StageKind::Generator))),
            validator: validator.unwrap_or_else(|| Box::new(not_loaded(StageKind::Validator))),
            router: router.unwrap_or_else(|| Box::new(not_loaded(StageKind::Router))),
            storage: shards.storage,
        },
        plugins,
        unavailable: shards.unavailable,
        foreign: shards.foreign,
        created: shards.created,
        notes: makers.notes.borrow().clone(),
    })
}

/// The registry's shards, through [`layout::open`].
fn open_storage(
    maker: &Maker<'_>,
    setup: &Setup,
    options: &Options<'_>,
) -> Result<layout::Shards, LoadError> {
    let open_options = layout::OpenOptions {
        shards: options.shards,
        new_shards: options.new_shards,
        access: options.access,
        schema: &setup.schema,
    };
    let mut build_shard =
        |shard: u32, count: u32, create: Option<&Meta>| -> Result<Box<dyn Storage>, StageError> {
            let one = Setup {
                shard,
                shards: count,
                create: create.cloned(),
                ..setup.clone()
            };
            match (maker.build)(&one) {
                Ok(BuiltStage::Storage(s)) => Ok(s),
                Ok(other) => Err(StageError::new(
                    ErrorCode::Internal,
                    format!("built a {} stage for storage", other.kind()),
                )),
                Err(BuildError::Start(e)) => Err(e),
                Err(e) => Err(StageError::new(ErrorCode::Config, e.to_string())),
            }
        };
    layout::open(&open_options, &mut build_shard)
        .map_err(|e| LoadError::new(StageKind::Storage, &maker.path, LoadErrorKind::Registry(e)))
}

/// Builds the validator alone, without the other stages and without opening any registry: for
/// commands that only check text (`registry lint`).
///
/// # Errors
/// A [`LoadError`] saying why.
pub fn validator(source: &Source<'_>, setup: &Setup) -> Result<Box<dyn Validator>, LoadError> {
    let stage = StageKind::Validator;
    let maker = Makers::new(source).maker(stage)?;
    match (maker.build)(setup) {
        Ok(BuiltStage::Validator(v)) => Ok(v),
        Ok(other) => Err(build_error(
            stage,
            &maker.path,
            BuildError::NotProvided {
                stage,
                provided: vec![other.kind()],
            },
        )),
        Err(e) => Err(build_error(stage, &maker.path, e)),
    }
}
