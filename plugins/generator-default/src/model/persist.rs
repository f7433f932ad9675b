//! The model file: a small versioned binary format, written atomically.
//!
//! All numbers are little-endian. A string is a `u16` byte length and UTF-8 bytes.
//!
//! ```text
//! magic      8 bytes  "REGMODEL"
//! version    u32      1
//! learner    u8       0 logistic regression, 1 naive Bayes
//! weighting  u8       0 raw counts, 1 sublinear counts (1 + ln count)
//! reserved   u16      0
//! dims       u32      number of hash buckets
//! fields     u32      number of field models, then for each:
//!   name     string   `scope`, `type`, `variant` or `status`
//!   classes  u32      K, then K strings: the values, in the order of the scores
//!   rows     u32      U, then U × u32: the buckets that have weights, increasing
//!   bias     K × f32
//!   weights  U × K × f32, row after row
//! checksum   u64      FNV-1a 64 of every byte before it
//! ```
//!
//! Design decision: a format of our own rather than smartcore's serde support: the model is a
//! linear classifier of our own, the file needs no serde format crate, and a reader can check
//! every length against the file before trusting it. The checksum turns a torn or flipped file
//! into a clear error instead of quietly wrong predictions. The file is written to a temporary
//! name in the same directory and renamed over the old one, so a reader sees the old model or
//! the new one, never half of one.

use std::fs;
use std::io::Write;
use std::path::Path;

use registry_core::{Field, Fields};

use super::features::{Featurizer, MAX_DIMS, MIN_DIMS, Weighting};
use super::linear::Linear;
use super::{FieldModel, Learner, Model};

const MAGIC: &[u8; 8] = b"REGMODEL";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// A model as stored, before its classes are checked against a schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub(crate) learner: Learner,
    pub(crate) featurizer: Featurizer,
    pub(crate) fields: Vec<(Field, Vec<String>, Linear)>,
}

/// The bytes of a model file.
pub(crate) fn encode(model: &Model) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(model.learner.code());
    out.push(model.featurizer.weighting.code());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&model.featurizer.dims.to_le_bytes());
    let fields: Vec<(Field, &FieldModel)> = model
        .fields
        .iter()
        .filter_map(|(f, m)| m.as_ref().map(|m| (f, m)))
        .collect();
    put_len(&mut out, fields.len());
    for (field, m) in fields {
        put_str(&mut out, field.name());
        put_len(&mut out, m.classes.len());
        for class in &m.classes {
            put_str(&mut out, class);
        }
        put_len(&mut out, m.linear.buckets().len());
        for b in m.linear.buckets() {
            out.extend_from_slice(&b.to_le_bytes());
        }
        for x in m.linear.bias().iter().chain(m.linear.weights()) {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Counts are bounded by the feature space (2^20 buckets) and the schema.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Field names and schema values are at most 64 bytes.
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Writes the model to `path` through a temporary file in the same directory, creating the
/// directory if needed. The rename replaces whatever file was at `path`, damaged, unreadable
/// or not a regular file (a FIFO, say), and an empty directory there is removed first.
///
/// # Errors
/// The I/O error's message, naming the file it concerns.
pub(crate) fn save(model: &Model, path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // A directory where the file belongs cannot be renamed over; an empty one is removed, one
    // with something in it is left to whoever put it there.
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir(path).map_err(|e| {
            format!(
                "{} is a directory and cannot be removed ({e}): move it away",
                path.display()
            )
        })?;
    }
    let temp = path.with_extension(format!("bin.tmp{}", std::process::id()));
    let bytes = encode(model);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&temp);
        return Err(format!("cannot write {}: {e}", temp.display()));
    }
    fs::rename(&temp, path).map_err(|e| {
        let _ = fs::remove_file(&temp);
        format!(
            "cannot rename {} to {}: {e}",
            temp.display(),
            path.display()
        )
    })?;
    // The rename is durable only once the directory itself is synced; where a directory
    // cannot be opened for that (some platforms), the model is still in place.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A cursor over the bytes of a file, failing with a reason instead of reading past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("it ends inside the {what}"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A count of items of `size` bytes each, checked against the bytes left.
    fn count(&mut self, size: usize, what: &str) -> Result<usize, String> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(size) > self.bytes.len() - self.at {
            return Err(format!("its {what} ({n}) exceed the file"));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = usize::from(u16::from_le_bytes(self.array(what)?));
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("its {what} is not UTF-8"))
    }

    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, String> {
        let bytes = self.take(n.saturating_mul(4), what)?;
        let out: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if out.iter().all(|x| x.is_finite() || *x == f32::NEG_INFINITY) {
            Ok(out)
        } else {
            Err(format!("its {what} hold a value that is not a number"))
        }
    }
}

/// Reads a model file's bytes.
///
/// # Errors
/// Why the bytes are not a model this build can use: a wrong magic or version, a bad checksum,
/// a length or value out of range.
pub(crate) fn decode(bytes: &[u8]) -> Result<Stored, String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("it is not a model file (wrong magic bytes)".to_owned());
    }
    let mut r = Reader {
        bytes,
        at: MAGIC.len(),
    };
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(format!(
            "it has format version {version}, and this build reads version {VERSION}"
        ));
    }
    let Some(body) = bytes.len().checked_sub(8) else {
        return Err("it is truncated".to_owned());
    };
    let mut stored_sum = [0u8; 8];
    stored_sum.copy_from_slice(&bytes[body..]);
    if body < r.at || checksum(&bytes[..body]) != u64::from_le_bytes(stored_sum) {
        return Err("its checksum does not match: the file is truncated or corrupt".to_owned());
    }
    r.bytes = &bytes[..body];
    let learner = r.u8("learner")?;
    let learner =
        Learner::from_code(learner).ok_or_else(|| format!("unknown learner code {learner}"))?;
    let weighting = r.u8("weighting")?;
    let weighting = Weighting::from_code(weighting)
        .ok_or_else(|| format!("unknown weighting code {weighting}"))?;
    r.take(2, "reserved bytes")?;
    let dims = r.u32("dims")?;
    if !(MIN_DIMS..=MAX_DIMS).contains(&dims) {
        return Err(format!("its dims ({dims}) are out of range"));
    }
    let count = r.count(1, "field models")?;
    let mut fields = Vec::with_capacity(count);
    let mut seen: Fields<bool> = Fields::default();
    for _ in 0..count {
        let name = r.string("field name")?;
        let field = Field::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("unknown field `{name}`"))?;
        if std::mem::replace(&mut seen[field], true) {
            return Err(format!("field `{name}` appears twice"));
        }
        let k = r.count(2, "classes")?;
        let classes = (0..k)
            .map(|_| r.string("class name"))
            .collect::<Result<Vec<_>, _>>()?;
        let u = r.count(4, "rows")?;
        let buckets: Vec<u32> = (0..u).map(|_| r.u32("buckets")).collect::<Result<_, _>>()?;
        let bias = r.f32s(k, "biases")?;
        let weights = r.f32s(u.saturating_mul(k), "weights")?;
        let linear = Linear::new(dims, buckets, weights, bias)
            .ok_or_else(|| format!("the weights of `{name}` are inconsistent"))?;
        fields.push((field, classes, linear));
    }
    if r.at != r.bytes.len() {
        return Err(format!(
            "{} bytes follow the last field model",
            r.bytes.len() - r.at
        ));
    }
    Ok(Stored {
        learner,
        featurizer: Featurizer { dims, weighting },
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let linear = Linear::new(
            16,
            vec![2, 9],
            vec![0.5, -0.5, 1.25, f32::MIN_POSITIVE],
            vec![0.1, -1e30],
        )
        .expect("consistent");
        Model {
            learner: Learner::Logistic,
            featurizer: Featurizer {
                dims: 16,
                weighting: Weighting::Sublinear,
            },
            fields: Fields {
                kind: Some(FieldModel {
                    classes: vec!["RULES".into(), "MULTI-ETL".into()],
                    linear,
                }),
                ..Fields::default()
            },
        }
    }

    #[test]
    fn round_trip() {
        let m = model();
        let stored = decode(&encode(&m)).expect("decodes");
        assert_eq!(stored.learner, m.learner);
        assert_eq!(stored.featurizer, m.featurizer);
        assert_eq!(stored.fields.len(), 1);
        let (field, classes, linear) = &stored.fields[0];
        assert_eq!(*field, Field::Type);
        let kept = m.fields.kind.as_ref().expect("type model");
        assert_eq!(classes, &kept.classes);
        assert_eq!(linear, &kept.linear);
    }

    #[test]
    fn damage_is_detected() {
        let bytes = encode(&model());
        let check = |bytes: &[u8], expected: &str| {
            let err = decode(bytes).expect_err("damaged");
            assert!(err.contains(expected), "{err}");
        };
        check(&bytes[..bytes.len() - 1], "checksum");
        check(&bytes[..20], "checksum");
        check(&bytes[..10], "ends inside the version");
        check(b"", "magic");
        check(b"GIF89a....", "magic");
        for at in [12, 30, bytes.len() / 2, bytes.len() - 3] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            check(&flipped, "checksum");
        }
        let mut newer = bytes.clone();
        newer[8] = 2;
        check(&newer, "format version 2");
    }

    #[test]
    fn consistent_checksum_but_bad_content_is_refused() {
        // Rewrites a field of a valid file and fixes the checksum: the reader must still check
        // the content, not trust the checksum alone.
        let resum = |mut bytes: Vec<u8>| {
            let body = bytes.len() - 8;
            let sum = checksum(&bytes[..body]);
            bytes[body..].copy_from_slice(&sum.to_le_bytes());
            bytes
        };
        let bytes = encode(&model());
        let mut dims = bytes.clone();
        dims[16..20].copy_from_slice(&8u32.to_le_bytes());
        assert!(decode(&resum(dims)).expect_err("bad").contains("dims"));
        let mut learner = bytes.clone();
        learner[12] = 9;
        assert!(
            decode(&resum(learner))
                .expect_err("bad")
                .contains("learner")
        );
        let mut count = bytes.clone();
        count[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&resum(count)).expect_err("bad").contains("exceed"));
    }

    #[test]
    fn save_replaces_atomically() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("model").join("generator.bin");
        save(&model(), &path).expect("saves");
        save(&model(), &path).expect("saves again");
        let bytes = fs::read(&path).expect("readable");
        assert_eq!(bytes, encode(&model()));
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("listable")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["generator.bin"], "no temporary file is left");
    }
}
