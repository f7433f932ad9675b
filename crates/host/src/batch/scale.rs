//! `scale-test`: generated requests registered in a fresh registry, then a sample read back
//! from a reopened one and checked against the requests that produced it.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use registry_core::{Entry, EntryId, Request};

use super::generate::Requests;
use super::{Options, Summary, Tally, bytes_on_disk, register};
use crate::error::{Error, io_reason};
use crate::events::Events;
use crate::registry::{Needs, Registry};
use crate::settings::Settings;

/// What to generate, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleTest {
    /// Distinct requests to generate and register.
    pub count: u64,
    /// Seed of the requests and of the sample read back: the same seed gives the same requests.
    pub seed: u64,
    /// Requests per call to the pipeline.
    pub batch_size: usize,
    /// Keep the temporary data directory (when none was given) and report its path.
    pub keep: bool,
    /// Whether the settings' data directory was given for this run; otherwise a temporary one
    /// is used.
    pub data_dir_given: bool,
}

/// What a scale test did.
#[derive(Debug)]
pub struct Scaled {
    pub tally: Tally,
    pub summary: Summary,
    /// Why each sampled entry that failed its check failed: its id, and what differs.
    pub sample_errors: Vec<String>,
}

impl Scaled {
    /// Ok when every request was registered and every sampled entry read back intact.
    ///
    /// # Errors
    /// A request failed (exit 1, or 2 for a storage or plugin error), or a sampled entry could
    /// not be read back as its request asked (exit 2; the reasons are the detail).
    pub fn result(&self) -> Result<(), Error> {
        self.summary.result(&self.tally, "the generated requests")?;
        if self.sample_errors.is_empty() {
            return Ok(());
        }
        let mut error = Error::config(format!(
            "{} of {} sampled entries could not be read back intact",
            self.sample_errors.len(),
            self.tally.sample.len()
        ));
        error.detail = Some(self.sample_errors.join("\n"));
        Err(error)
    }
}

/// A data directory made for one run, removed when dropped unless kept.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Registers `test.count` generated requests in a fresh registry, then reopens it (an empty
/// cache: the sample is read from storage) and checks a uniform sample of the entries created
/// against the requests that created them. Without a data directory given, the registry goes
/// to a new directory under the system's temporary directory, removed at the end unless
/// `keep`; with one, the directory must be new or empty, so that every request is a new entry
/// and the figures measure registration, not lookups.
///
/// # Errors
/// The data directory is not empty (exit 1), or the registry cannot be created or read (exit
/// 2). A failed request or sampled entry is in the result (see [`Scaled::result`]).
pub fn scale_test(
    mut settings: Settings,
    test: &ScaleTest,
    events: &mut dyn Events,
) -> Result<Scaled, Error> {
    let _scratch = if test.data_dir_given {
        let dir = &settings.data_dir;
        if fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::input(format!(
                "data directory {} is not empty: scale-test needs a new or empty one, or no \
                 --data-dir for a temporary one",
                dir.display()
            )));
        }
        None
    } else {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "registry-scale-test-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir(&path).map_err(|e| {
            Error::config(format!(
                "cannot create data directory {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
        settings.data_dir = path.clone();
        Some(Scratch {
            path,
            keep: test.keep,
        })
    };

    let pipeline = Arc::new(open(&settings, Needs::REGISTER, events)?);
    pipeline.enable_timings();
    pipeline.set_cache_new_entries(false);
    let generator = Requests::new(test.seed, test.count, pipeline.schema());
    let count = test.count;
    let done = move |processed: u64| (count > 0).then(|| processed as f64 / count as f64);
    let options = Options {
        batch_size: test.batch_size,
        seed: test.seed,
    };
    let start = Instant::now();
    let registered = register(&pipeline, generator.map(Ok), options, None, &done, events);
    events.finished();
    let tally = registered?;
    let mut summary = Summary::new(&tally, &pipeline, start.elapsed());
    summary.shards = Some(pipeline.shards());
    drop(pipeline);

    // A new pipeline has an empty cache: the sample is read from the storage files.
    let pipeline = open(&settings, Needs::READ, events)?;
    let requests = Requests::new(test.seed, test.count, pipeline.schema());
    let mut sample_errors = Vec::new();
    for (line, id) in &tally.sample {
        let checked = match (requests.request(line - 1), pipeline.get(id)) {
            (Ok(request), Ok(entry)) => check_entry(&entry, id, request),
            (Err(e), _) => Err(format!("its request cannot be generated again: {e}")),
            (_, Err(e)) => Err(e.to_string()),
        };
        if let Err(why) = checked {
            sample_errors.push(format!("entry {id} (request {line}): {why}"));
        }
    }
    drop(pipeline);
    let bytes = bytes_on_disk(&settings.data_dir);
    summary.bytes_on_disk = Some(bytes);
    summary.bytes_per_entry =
        (tally.created > 0).then(|| (bytes as f64 / tally.created as f64).round());
    summary.sample_checked = Some(tally.sample.len());
    summary.sample_failed = Some(sample_errors.len());
    if test.data_dir_given || test.keep {
        summary.data_dir = Some(settings.data_dir.display().to_string());
    }
    Ok(Scaled {
        tally,
        summary,
        sample_errors,
    })
}

/// Opens the registry, telling `events` what a person should know about it.
fn open(
    settings: &Settings,
    needs: Needs,
    events: &mut dyn Events,
) -> Result<registry_core::Pipeline, Error> {
    let registry = Registry::open(settings, needs)?;
    for w in &registry.warnings {
        events.warning(w);
    }
    Ok(registry.into_pipeline())
}

/// Whether `entry`, read back by `id`, is what `request` registered: the id asked for, intact
/// (its hash), revision 1, the request's fingerprint, title and context, and every field and
/// version the request gave. `Err` says what differs.
fn check_entry(entry: &Entry, id: &EntryId, request: Request) -> Result<(), String> {
    if entry.header.id != *id {
        return Err(format!("reading it gave entry {}", entry.header.id));
    }
    if !entry.verify() {
        return Err("its hash does not match its content".into());
    }
    if entry.revision != 1 {
        return Err(format!("it is at revision {}, not 1", entry.revision));
    }
    if entry.fingerprint != request.fingerprint() {
        return Err("its fingerprint is not its request's".into());
    }
    let (title, fields, version, context) = request.into_parts();
    if entry.title != title {
        return Err(format!("its title is {:?}, not {title:?}", entry.title));
    }
    if entry.context != context {
        return Err("its context is not its request's".into());
    }
    for (field, given) in fields.iter() {
        if let Some(given) = given
            && entry.header.fields[field] != *given
        {
            return Err(format!(
                "its {field} is {}, not {given} as its request gave",
                entry.header.fields[field]
            ));
        }
    }
    if let Some(version) = version
        && entry.header.version != version
    {
        return Err(format!(
            "its version is {}, not {version} as its request gave",
            entry.header.version
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use registry_core::{Fields, Header, Schema, Timestamp};

    use super::*;

    /// The entry `request` would give, as id SEC-RUL-001.
    fn entry_of(request: &Request) -> Entry {
        let (title, given, _, context) = request.clone().into_parts();
        let header = Header {
            fields: Fields {
                scope: given.scope.unwrap_or_else(|| "SEC".into()),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "REQUIRED".into(),
            },
            id: EntryId::new("SEC-RUL", 1),
            version: "v1.0".into(),
        };
        Entry {
            hash: Entry::compute_hash(&header, &title, &context, "a: 1\n"),
            previous: None,
            purge: None,
            author: None,
            header,
            title,
            context,
            config: "a: 1\n".into(),
            fingerprint: request.fingerprint(),
            revision: 1,
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
            provenance: None,
            lifecycle: registry_core::Lifecycle::Active,
        }
    }

    #[test]
    fn a_sampled_entry_must_be_what_its_request_asked_for() {
        let requests = Requests::new(42, 10, &Schema::default());
        let request = requests.request(3).expect("generated");
        let id = EntryId::new("SEC-RUL", 1);
        let good = entry_of(&request);
        assert_eq!(check_entry(&good, &id, request.clone()), Ok(()));

        // The entry of another request, intact by its own hash, is caught.
        let other = entry_of(&requests.request(4).expect("generated"));
        assert_eq!(
            check_entry(&other, &id, request.clone()),
            Err("its fingerprint is not its request's".into())
        );
        let mut retitled = good.clone();
        retitled.title = "Something else".into();
        retitled.hash = Entry::compute_hash(
            &retitled.header,
            &retitled.title,
            &retitled.context,
            "a: 1\n",
        );
        assert!(
            check_entry(&retitled, &id, request.clone())
                .is_err_and(|e| e.starts_with("its title is \"Something else\""))
        );
        let mut altered = good.clone();
        altered.config = "a: 2\n".into();
        assert_eq!(
            check_entry(&altered, &id, request.clone()),
            Err("its hash does not match its content".into())
        );
        assert_eq!(
            check_entry(&good, &EntryId::new("SEC-RUL", 2), request.clone()),
            Err("reading it gave entry SEC-RUL-001".into())
        );

        // A field the request gave must be the entry's.
        let (title, mut fields, version, context) = request.into_parts();
        let other = if good.header.fields.scope == "OPS" {
            "SEC"
        } else {
            "OPS"
        };
        fields.scope = Some(other.into());
        let scoped = Request::new(&title, fields, version, context).expect("valid");
        let mut entry = good.clone();
        entry.fingerprint = scoped.fingerprint();
        assert_eq!(
            check_entry(&entry, &id, scoped),
            Err(format!(
                "its scope is {}, not {other} as its request gave",
                good.header.fields.scope
            ))
        );
    }
}
