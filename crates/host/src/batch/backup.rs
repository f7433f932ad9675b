//! `backup` and `restore`: a consistent copy of the registry's data directory, checked, and
//! the copy brought back without ever handing out again an id issued after it was taken.
//!
//! **Backup.** redb lets one process at a time open a shard file, so the copy is taken by the
//! process that holds the registry: this one, which opens it as every command does (waiting
//! for a running batch as long as the storage's `lock_timeout_ms`), and so holds every shard
//! while it copies. Nothing can write in between: the shards are copied as of one moment. The
//! copy is made in a hidden directory beside the target, checked entry by entry
//! ([`registry_core::Pipeline::check`]), given a manifest (`backup.json`: when, what, and
//! the registry's high-water marks) and only then renamed to the name asked for. An
//! interrupted or failed backup leaves no directory of that name.
//!
//! **Restore.** The ids of entries registered after a backup may already be stamped into
//! files. Restoring that backup as it is would hand them out again, to other entries. So the
//! registry being replaced gives its high-water marks (the highest number of every prefix it
//! ever handed out, [`registry_core::Pipeline::high_water`]): they are read while holding it,
//! and the restored copy's sequences are raised to them before it replaces it. When there is no
//! registry to read them from (the disk was lost), restore refuses unless told
//! `--without-high-water`, and then says that ids issued after the backup may come again. The
//! backup itself is never written to: its files are copied into a hidden directory beside the
//! data directory, opened there (redb checks and, if need be, repairs a copied file when it
//! opens it), raised and checked; then the data directory is renamed aside (kept, never
//! deleted) and the copy renamed into its place.

use std::fs;
use std::path::{Path, PathBuf};

use registry_core::{CheckReport, Sequence};
use serde::{Deserialize, Serialize};

use super::check::paced;
use crate::error::{Error, io_reason};
use crate::events::Events;
use crate::registry::{Needs, Registry, ignore_data_dir};
use crate::settings::Settings;

/// The manifest a backup directory holds.
pub const MANIFEST: &str = "backup.json";
/// The version of the manifest's format.
const MANIFEST_FORMAT: u32 = 1;
/// The largest manifest read: it holds one mark per id prefix.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// What a backup holds, as its manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// When the copy was taken (RFC 3339, UTC).
    pub taken_at: String,
    pub shards: u32,
    pub entries: u64,
    pub revisions: u64,
    /// Bytes of shard files copied.
    pub bytes: u64,
    /// The highest number of each id prefix when the copy was taken.
    pub high_water: Vec<Mark>,
}

/// One id prefix's highest number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub prefix: String,
    pub last: u64,
}

/// What [`backup`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub dir: PathBuf,
    #[serde(flatten)]
    pub manifest: Manifest,
}

/// What [`restore`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Restoration {
    pub from: PathBuf,
    pub shards: u32,
    pub entries: u64,
    pub revisions: u64,
    /// Where the registry that was replaced was moved to (kept, never deleted); `None` when
    /// there was none.
    pub replaced_kept_in: Option<PathBuf>,
    /// Whether the restored sequences were raised to the replaced registry's marks (false only
    /// with `--without-high-water`).
    pub high_water_kept: bool,
    /// Each prefix whose sequence was raised above what the backup held: ids up to `last`
    /// were issued after the backup and are not handed out again.
    pub raised: Vec<Raised>,
}

/// A prefix whose restored sequence was raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Raised {
    pub prefix: String,
    /// The highest number in the backup.
    pub backup: u64,
    /// The highest number the replaced registry had handed out, now the restored one's.
    pub last: u64,
}

/// Copies the registry of `settings` into the new directory `dir`, checks the copy and records
/// its manifest; see the module documentation.
///
/// # Errors
/// `dir` exists and is not empty, or cannot be made; the registry cannot be opened (another
/// process holds it past the storage's lock timeout, or it does not exist); a storage that
/// cannot copy itself (Redis: see ARCHITECTURE.md, "Backups"); the copy fails or fails its
/// check. No directory named `dir` is left by a failure.
pub fn backup(settings: &Settings, dir: &Path, events: &mut dyn Events) -> Result<Backup, Error> {
    let target = Target::new(dir)?;
    let registry = Registry::open(settings, Needs::BACKUP)?;
    for w in &registry.warnings {
        events.warning(w);
    }
    let pipeline = registry.into_pipeline();
    let high_water = pipeline.high_water()?;
    let staging = target.staging()?;
    let copied = utf8(&staging.path).and_then(|s| Ok(pipeline.backup(s)?));
    // The registry is free for others from here: the copy is taken.
    drop(pipeline);
    let bytes = copied?;
    let report = check_copy(settings, &staging.path, Needs::CHECK, &[], events)?.1;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        taken_at: registry_core::Timestamp::now().to_string(),
        shards: report.shards,
        entries: report.entries,
        revisions: report.revisions,
        bytes,
        high_water: high_water.into_iter().map(Mark::from).collect(),
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::config(format!("cannot write the backup's manifest: {e}")))?;
    write_synced(&staging.path.join(MANIFEST), &json)?;
    staging.finish(&target.dir)?;
    Ok(Backup {
        dir: target.dir,
        manifest,
    })
}

/// Replaces the registry of `settings` with the backup in `from`, raised to the replaced
/// registry's high-water marks and checked; see the module documentation.
///
/// # Errors
/// `from` is not a backup; the registry to replace cannot be read for its marks (unless
/// `without_high_water`); the copy cannot be made, opened or raised, or fails its check. A
/// failure leaves the data directory as it was.
pub fn restore(
    settings: &Settings,
    from: &Path,
    without_high_water: bool,
    events: &mut dyn Events,
) -> Result<Restoration, Error> {
    let manifest = read_manifest(from)?;
    let data_dir = &settings.data_dir;
    // Held until the copy is in place, so nothing is registered into it meanwhile.
    let live = live_marks(settings, without_high_water)?;
    let target = Target::replacing(data_dir)?;
    let staging = target.staging()?;
    copy_files(from, &staging.path)?;
    let marks = live.as_ref().map_or(&[][..], |(_, marks)| marks.as_slice());
    let (after, report) = check_copy(settings, &staging.path, Needs::REPAIR, marks, events)?;
    let raised = raised(&manifest, &after);
    // A backup holds shard files only; the data directory keeps version control out, as
    // `registry` does for every data directory it makes.
    ignore_data_dir(&staging.path).map_err(Error::config)?;
    let kept = if data_dir.exists() {
        let aside = aside(data_dir);
        fs::rename(data_dir, &aside).map_err(|e| {
            Error::config(format!(
                "cannot move {} aside to {}: {}",
                data_dir.display(),
                aside.display(),
                io_reason(&e)
            ))
        })?;
        Some(aside)
    } else {
        None
    };
    staging.finish(data_dir)?;
    drop(live);
    Ok(Restoration {
        from: from.to_path_buf(),
        shards: report.shards,
        entries: report.entries,
        revisions: report.revisions,
        replaced_kept_in: kept,
        high_water_kept: !without_high_water,
        raised,
    })
}

/// The registry being replaced, held open, and its high-water marks; `None` with
/// `without_high_water`.
fn live_marks(
    settings: &Settings,
    without_high_water: bool,
) -> Result<Option<(registry_core::Pipeline, Vec<Sequence>)>, Error> {
    if without_high_water {
        return Ok(None);
    }
    let refuse = |why: String| {
        Error::input(format!(
            "{why}, so restoring could hand out again ids issued after the backup (they may be \
             stamped into files already); repair or find that registry, or pass \
             --without-high-water if no id issued after the backup was ever used"
        ))
        .with_kind("no-high-water")
    };
    let dir = &settings.data_dir;
    if !dir.exists() {
        return Err(refuse(format!(
            "there is no registry in {} (data directory from {}) to take the high-water marks from",
            dir.display(),
            settings.data_dir_source
        )));
    }
    let pipeline = Registry::open(settings, Needs::BACKUP)
        .map_err(|e| {
            refuse(format!(
                "the high-water marks of the registry in {} cannot be read ({e})",
                dir.display()
            ))
        })?
        .into_pipeline();
    let marks = pipeline.high_water().map_err(|e| {
        refuse(format!(
            "the high-water marks of the registry in {} cannot be read ({e})",
            dir.display()
        ))
    })?;
    Ok(Some((pipeline, marks)))
}

/// Opens the copy in `dir`, raises its sequences to `marks` and checks it. Returns its marks
/// after and the check's report.
///
/// # Errors
/// The copy cannot be opened or raised, or the check finds a problem (named, with how many).
fn check_copy(
    settings: &Settings,
    dir: &Path,
    needs: Needs,
    marks: &[Sequence],
    events: &mut dyn Events,
) -> Result<(Vec<Sequence>, CheckReport), Error> {
    let name = format!("the copy in {}", dir.display());
    let pipeline = Registry::open_in(settings, dir, &name, needs)?.into_pipeline();
    let after = if marks.is_empty() {
        pipeline.high_water()?
    } else {
        pipeline.raise_high_water(marks)?
    };
    let report = paced(&pipeline, 0, events)?;
    if let Some(first) = report.findings.first() {
        return Err(Error::config(format!(
            "the copy failed its check: {} {}, the first in shard {}: {}: {}; run `registry \
             check` on the registry",
            report.findings.len(),
            if report.findings.len() == 1 {
                "problem"
            } else {
                "problems"
            },
            first.shard,
            first.code,
            first.message
        ))
        .with_kind("damaged"));
    }
    Ok((after, report))
}

/// The prefixes whose marks after are above the backup's.
fn raised(manifest: &Manifest, after: &[Sequence]) -> Vec<Raised> {
    after
        .iter()
        .filter_map(|s| {
            let backup = manifest
                .high_water
                .iter()
                .find(|m| m.prefix == s.prefix)
                .map_or(0, |m| m.last);
            (s.last > backup).then(|| Raised {
                prefix: s.prefix.clone(),
                backup,
                last: s.last,
            })
        })
        .collect()
}

impl From<Sequence> for Mark {
    fn from(s: Sequence) -> Mark {
        Mark {
            prefix: s.prefix,
            last: s.last,
        }
    }
}

/// Reads and checks the manifest of the backup in `dir`.
fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let path = dir.join(MANIFEST);
    let not_backup = |why: String| {
        Error::input(format!(
            "{} is not a backup made by `registry backup`: {why}",
            dir.display()
        ))
    };
    let size = fs::metadata(&path)
        .map_err(|e| not_backup(format!("cannot read {MANIFEST}: {}", io_reason(&e))))?
        .len();
    if size > MAX_MANIFEST_BYTES {
        return Err(not_backup(format!(
            "{MANIFEST} holds {size} bytes, more than the {MAX_MANIFEST_BYTES} a manifest can"
        )));
    }
    let bytes = fs::read(&path)
        .map_err(|e| not_backup(format!("cannot read {MANIFEST}: {}", io_reason(&e))))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| not_backup(format!("{MANIFEST} is not readable: {e}")))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(not_backup(format!(
            "{MANIFEST} is of format {}, this build reads format {MANIFEST_FORMAT}",
            manifest.format
        )));
    }
    Ok(manifest)
}

/// Copies every regular file of `from` but the manifest into `to`, synced. Anything else
/// there (a directory, a link) is refused: a backup holds shard files only.
fn copy_files(from: &Path, to: &Path) -> Result<(), Error> {
    let fail = |doing: &str, path: &Path, e: &std::io::Error| {
        Error::config(format!(
            "cannot {doing} {}: {}",
            path.display(),
            io_reason(e)
        ))
    };
    let entries = fs::read_dir(from).map_err(|e| fail("read", from, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail("read", from, &e))?;
        let path = entry.path();
        if entry.file_name() == MANIFEST {
            continue;
        }
        let kind = entry.file_type().map_err(|e| fail("read", &path, &e))?;
        if !kind.is_file() {
            return Err(Error::input(format!(
                "{} is not a backup made by `registry backup`: {} is not a regular file",
                from.display(),
                path.display()
            )));
        }
        let dest = to.join(entry.file_name());
        fs::copy(&path, &dest).map_err(|e| fail("copy", &path, &e))?;
        fs::File::open(&dest)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail("sync", &dest, &e))?;
    }
    sync_dir(to)
}

/// Where a directory about to be replaced is moved: `NAME.before-restore-SECONDS` (a number
/// added when that is taken).
fn aside(dir: &Path) -> PathBuf {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = dir
        .file_name()
        .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
    let mut candidate = dir.with_file_name(format!("{name}.before-restore-{seconds}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = dir.with_file_name(format!("{name}.before-restore-{seconds}-{n}"));
        n += 1;
    }
    candidate
}

/// A directory to be made whole under its name, or not at all.
struct Target {
    dir: PathBuf,
}

impl Target {
    /// A backup's directory: new, or empty.
    fn new(dir: &Path) -> Result<Target, Error> {
        match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::input(format!(
                        "{} is not empty: give a new directory for the backup",
                        dir.display()
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::input(format!(
                    "cannot use {} for the backup: {}",
                    dir.display(),
                    io_reason(&e)
                )));
            }
        }
        Target::replacing(dir)
    }

    /// A directory whose parent exists or can be made.
    fn replacing(dir: &Path) -> Result<Target, Error> {
        let parent = parent(dir);
        fs::create_dir_all(&parent).map_err(|e| {
            Error::config(format!(
                "cannot make the directory {}: {}",
                parent.display(),
                io_reason(&e)
            ))
        })?;
        Ok(Target {
            dir: dir.to_path_buf(),
        })
    }

    /// A new hidden directory beside the target, emptied of what a crashed run left.
    fn staging(&self) -> Result<Staging, Error> {
        let name = self
            .dir
            .file_name()
            .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
        let path = parent(&self.dir).join(format!(".{name}.partial"));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| {
                Error::config(format!(
                    "cannot remove {}, left by an interrupted run: {}",
                    path.display(),
                    io_reason(&e)
                ))
            })?;
        }
        fs::create_dir(&path).map_err(|e| {
            Error::config(format!("cannot make {}: {}", path.display(), io_reason(&e)))
        })?;
        Ok(Staging {
            path,
            finished: false,
        })
    }
}

/// The directory a copy is made in; removed when dropped unfinished.
struct Staging {
    path: PathBuf,
    finished: bool,
}

impl Staging {
    /// Renames the copy to `dir` (absent, or an empty directory) and syncs their parent.
    fn finish(mut self, dir: &Path) -> Result<(), Error> {
        if dir.exists() {
            // An empty directory given for a backup: `rename` replaces it.
            let _ = fs::remove_dir(dir);
        }
        fs::rename(&self.path, dir).map_err(|e| {
            Error::config(format!(
                "cannot rename {} to {}: {}",
                self.path.display(),
                dir.display(),
                io_reason(&e)
            ))
        })?;
        self.finished = true;
        sync_dir(&parent(dir))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The directory holding `dir` (`.` for a bare name).
fn parent(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn utf8(path: &Path) -> Result<&str, Error> {
    path.to_str().ok_or_else(|| {
        Error::input(format!(
            "{} is not UTF-8: give a directory whose path is",
            path.display()
        ))
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    fs::File::create(path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| {
            Error::config(format!(
                "cannot write {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::config(format!("cannot sync {}: {}", dir.display(), io_reason(&e))))
}
