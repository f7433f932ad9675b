//! Opening a registry: the stages a command needs, built by [`crate::assemble`] from the
//! settings, the registry's shards opened (or, for a registering command, created) through
//! `registry_core::layout`, and what a registry made by an earlier version kept beside its
//! shards moved into them.

use std::fs;
use std::path::Path;

use registry_abi::load::{LoadError, LoadErrorKind, StageInfo};
use registry_core::layout::{Access, OpenError};
use registry_core::{Pipeline, Setup, StageKind};

use crate::assemble::{self, Source};
use crate::error::{Error, io_reason};
use crate::settings::{MAX_SHARDS, Settings};

/// What a command needs of the registry: the stages it uses (the others are not loaded, so a
/// library named for them never runs) and what it does to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub stages: &'static [StageKind],
    pub access: Access,
}

impl Needs {
    /// Registering (`add`, `batch`, `import`, `stamp`, `scale-test`): every stage, creating the
    /// registry if it does not exist.
    pub const REGISTER: Needs = Needs {
        stages: &StageKind::ALL,
        access: Access::Create,
    };
    /// `update`: what renders and checks a new revision, in a registry that exists.
    pub const UPDATE: Needs = Needs {
        stages: &[
            StageKind::Cache,
            StageKind::Generator,
            StageKind::Validator,
            StageKind::Storage,
        ],
        access: Access::Write,
    };
    /// `retire`, `merge`, `revive`: a revision with the same content, nothing rendered or
    /// validated again.
    pub const LIFECYCLE: Needs = Needs {
        stages: &[StageKind::Cache, StageKind::Storage],
        access: Access::Write,
    };
    /// `compact`: storage alone, in a registry that exists.
    pub const COMPACT: Needs = Needs {
        stages: &[StageKind::Storage],
        access: Access::Write,
    };
    /// `backup`, and reading the high-water marks of a registry `restore` replaces: storage
    /// alone, in a registry that exists.
    pub const BACKUP: Needs = Needs {
        stages: &[StageKind::Storage],
        access: Access::Read,
    };
    /// `check`: storage, and the router that says where registration looks for a fingerprint.
    pub const CHECK: Needs = Needs {
        stages: &[StageKind::Cache, StageKind::Router, StageKind::Storage],
        access: Access::Read,
    };
    /// `check --repair`: as `check`, in a registry it may write to.
    pub const REPAIR: Needs = Needs {
        stages: &[StageKind::Cache, StageKind::Router, StageKind::Storage],
        access: Access::Write,
    };
    /// `migrate`: storage alone, in a registry that exists, whose shards may be of several
    /// storage formats.
    pub const MIGRATE: Needs = Needs {
        stages: &[StageKind::Storage],
        access: Access::Migrate,
    };
    /// Reading entries (`get`, `list`, `history`, `export`, `stats`, `lint --registered`).
    pub const READ: Needs = Needs {
        stages: &[StageKind::Cache, StageKind::Storage],
        access: Access::Read,
    };
    /// `train` on the registered entries.
    pub const TRAIN: Needs = Needs {
        stages: &[StageKind::Generator, StageKind::Storage],
        access: Access::Read,
    };
    /// `predict`, and `train --from`: the generator alone, no registry.
    pub const GENERATOR: Needs = Needs {
        stages: &[StageKind::Generator],
        access: Access::Read,
    };
}

/// An opened registry: its pipeline, and what opening it found.
#[derive(Debug)]
pub struct Registry {
    pipeline: Pipeline,
    /// The plugin behind each stage built.
    pub plugins: Vec<StageInfo>,
    /// Whether this open created the registry.
    pub created: bool,
    /// What a person should know: shards set aside as unavailable, one line each.
    pub warnings: Vec<String>,
    /// What the stages had to say that is not a problem (a template file not used), one line
    /// each.
    pub notes: Vec<String>,
}

impl Registry {
    /// Opens the registry the settings describe, with the plugins they name (built in, or
    /// libraries).
    ///
    /// # Errors
    /// A stage that cannot be built, or a registry that cannot be opened (exit code 2), named
    /// with the data directory and where it came from.
    pub fn open(settings: &Settings, needs: Needs) -> Result<Registry, Error> {
        Registry::open_in(
            settings,
            &settings.data_dir,
            &settings.data_dir_source,
            needs,
        )
    }

    /// Opens the registry in the data directory `dir` (named in messages as coming from
    /// `source`) rather than the configured one, with the configured plugins and schema: a
    /// backup, or a restore being prepared.
    ///
    /// # Errors
    /// As [`Registry::open`].
    pub fn open_in(
        settings: &Settings,
        dir: &Path,
        source: &str,
        needs: Needs,
    ) -> Result<Registry, Error> {
        let data_dir = (dir, source);
        let source = Source {
            specs: &settings.stages,
            paths: &settings.paths,
            builtins: settings.builtins,
        };
        let setup = Setup {
            schema: settings.schema.clone(),
            data_dir: dir.to_path_buf(),
            config_dir: settings.paths.base_dir.clone(),
            shard: 0,
            shards: 0,
            create: None,
        };
        // A new registry gets one shard per core unless told otherwise: shards are written in
        // parallel, and the count cannot change later.
        let new_shards = std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
            .min(MAX_SHARDS);
        let options = assemble::Options {
            stages: needs.stages,
            access: needs.access,
            shards: settings.shards,
            new_shards,
        };
        let existed = dir.exists();
        let built = assemble::assemble(&source, &setup, &options)
            .map_err(|errors| open_error(errors, data_dir))?;
        let shards = built.stages.storage.len();
        // A shard that cannot be opened is set aside: the others keep working, and every
        // request for it fails naming it. Said once, so that a run is never silently partial.
        let mut warnings: Vec<String> = built
            .unavailable
            .iter()
            .map(|u| {
                format!(
                    "shard {} of {shards} is unavailable, its entries can be neither read nor \
                     written until it is repaired: {}",
                    u.shard, u.reason
                )
            })
            .collect();
        if built.created
            && !existed
            && let Err(e) = ignore_data_dir(dir)
        {
            warnings.push(e);
        }
        let pipeline = Pipeline::new(settings.schema.clone(), built.stages);
        pipeline.set_foreign_shards(&built.foreign);
        // Every write this process makes is by its user, unless a call says otherwise (the
        // server names each request's caller).
        pipeline.set_author(Some(local_author()));
        if needs.stages.contains(&StageKind::Storage) {
            migrate_side_files(&pipeline, dir, needs.access)?;
        }
        Ok(Registry {
            pipeline,
            plugins: built.plugins,
            created: built.created,
            warnings,
            notes: built.notes,
        })
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn into_pipeline(self) -> Pipeline {
        self.pipeline
    }
}

/// Writes a `.gitignore` holding `*` into a data directory this run created, so that a
/// registry made inside a repository is never committed by accident (a directory that existed
/// before is the user's, and left alone).
///
/// # Errors
/// A warning's text, when the file cannot be written: the registry itself is fine.
pub fn ignore_data_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        // A storage that keeps nothing here (Redis) made no directory.
        return Ok(());
    }
    let file = dir.join(".gitignore");
    std::fs::write(
        &file,
        "# The registry's data: never committed (written by `registry` when it made this \
         directory).\n*\n",
    )
    .map_err(|e| {
        format!(
            "cannot write {}, so version control may pick up the registry's files: {e}",
            file.display()
        )
    })
}

/// The file in which an earlier version recorded that fingerprints may sit in any shard.
const LEGACY_FINGERPRINTS_ANYWHERE: &str = "fingerprints-anywhere";
/// The file in which an earlier version recorded the shard count.
const LEGACY_SHARDS: &str = "shards";

/// A registry made by an earlier version kept two facts in files beside its shards: `shards`
/// (the count, which every shard records too) and `fingerprints-anywhere` (some shard holds an
/// entry whose fingerprint routes elsewhere, without saying which). Both now live in the
/// shards' own metadata. A read honours the second; a write moves it into every shard (it is
/// not known which one needs it) and then removes both files.
fn migrate_side_files(pipeline: &Pipeline, dir: &Path, access: Access) -> Result<(), Error> {
    let anywhere = dir.join(LEGACY_FINGERPRINTS_ANYWHERE);
    let count = dir.join(LEGACY_SHARDS);
    let flagged = anywhere.exists();
    if flagged {
        pipeline.set_fingerprints_anywhere(true);
    }
    if access == Access::Read || !(flagged || count.exists()) {
        return Ok(());
    }
    if flagged {
        pipeline.mark_every_shard_foreign().map_err(Error::from)?;
    }
    for file in [&anywhere, &count] {
        match fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::config(format!(
                    "cannot remove {}: {}",
                    file.display(),
                    io_reason(&e)
                )));
            }
        }
    }
    Ok(())
}

/// The error of a failed open: a registry that is not there, or has lost shards, is named with
/// the data directory and where that came from.
fn open_error(errors: Vec<LoadError>, (dir, source): (&Path, &str)) -> Error {
    if let [one] = &errors[..]
        && let LoadErrorKind::Registry(layout) = &one.kind
    {
        let dir = dir.display();
        let message = match layout {
            OpenError::Absent => format!(
                "no registry in {dir} (data directory from {source}): check the path; \
                 `registry add`, `batch`, `import` or `stamp` create one"
            ),
            OpenError::Missing(_)
            | OpenError::Incomplete(_)
            | OpenError::ShardZero(_)
            | OpenError::SchemaDrift(_)
            | OpenError::NoneAvailable(_) => {
                format!("registry in {dir} (data directory from {source}): {layout}")
            }
            // A shard that cannot be built is the plugin's to explain, as for any stage.
            _ => return load_error(errors),
        };
        return Error::config(message);
    }
    load_error(errors)
}

/// Stages that failed to load as one error: each named with its library, and the loaders' full
/// reports as detail.
pub fn load_error(errors: Vec<LoadError>) -> Error {
    let message = match errors.len() {
        1 => errors[0].to_string(),
        n => format!(
            "{n} stages failed to load: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let details: Vec<String> = errors
        .iter()
        .filter_map(|e| {
            e.detail
                .as_ref()
                .map(|d| format!("{} plugin {}:\n{d}", e.stage, e.path.display()))
        })
        .collect();
    Error {
        detail: (!details.is_empty()).then(|| details.join("\n\n")),
        ..Error::config(message).with_kind("plugin")
    }
}

/// The author of the writes a command makes: the operating system's user (`USER`, else
/// `LOGNAME`, else the numeric user id) from `cli@HOST`.
pub fn local_author() -> registry_core::Author {
    let name = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            fs::read_to_string("/proc/self/status").ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next())
                    .map(|uid| format!("uid {uid}"))
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    registry_core::Author::new(&name, &format!("cli@{host}"), "")
}
