//! Stored configs compressed with zstd and dictionaries trained on them (docs/STORAGE.md has
//! the measurements this was chosen by).
//!
//! A rendered config is mostly template text that every entry repeats, so one config alone
//! compresses poorly (zstd keeps 57 % of it) while a dictionary trained on a store's own configs
//! brings it to about 6 %. A store keeps its dictionaries with an id each ([`Dictionaries`]) and
//! each compressed config names the one it was compressed with (0 for none), so configs written
//! under an older dictionary keep reading after a newer one is trained.
//!
//! Compression and decompression reuse one zstd context per thread, so a config costs no
//! allocation of a context; the dictionaries are prepared once, when added.
//!
//! Decompression trusts nothing it reads: the length a store recorded is checked against
//! [`MAX_CONFIG_BYTES`] before it sizes a buffer, the frame must fill exactly that many bytes,
//! and the result must be UTF-8, so damaged or hostile bytes give an [`Error`], never a panic or
//! an unbounded allocation.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::{self, CCtx, DCtx};

/// The compression level: level 3 compresses a config in about 1.3 µs with a dictionary, and
/// level 19 saves a fifth of the bytes for 60 times the time (docs/STORAGE.md).
pub const LEVEL: i32 = 3;

/// The size a dictionary is trained to: 16 KiB did as well as 64 KiB on the measured configs.
pub const DICTIONARY_BYTES: usize = 16 * 1024;

/// How many configs a dictionary is trained on, at most: 500 train one in about 17 ms and
/// compress the measured configs to 65 bytes, 2,000 take 97 ms for 60 (docs/STORAGE.md).
pub const TRAIN_SAMPLES: usize = 500;

/// How many entries a store holds when it trains its first dictionary at the latest.
pub const TRAIN_AT: u64 = 1000;

/// Whether a store without a dictionary trains one in an insert: as soon as the batch alone
/// holds [`TRAIN_SAMPLES`] configs, or when the batch brings the store to [`TRAIN_AT`]
/// entries (on the batch and the latest stored configs). `stored` is asked for only when the
/// batch is smaller, so a store may count lazily.
///
/// # Errors
/// What counting the stored entries failed with.
pub fn training_due<E>(batch: usize, stored: impl FnOnce() -> Result<u64, E>) -> Result<bool, E> {
    Ok(batch >= TRAIN_SAMPLES || stored()?.saturating_add(batch as u64) >= TRAIN_AT)
}

/// The largest config a stored length may claim: larger claims are damage.
pub const MAX_CONFIG_BYTES: usize = 64 << 20;

/// Why a config could not be compressed, decompressed or a dictionary trained. One line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// A trained dictionary, prepared for both directions.
pub struct Dictionary {
    id: u32,
    bytes: Vec<u8>,
    encoder: EncoderDictionary<'static>,
    decoder: DecoderDictionary<'static>,
}

impl fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Dictionary {
    /// Prepares the dictionary `bytes` (as [`train`] made them) under `id`, which must not be 0
    /// (0 names "no dictionary" in stored configs).
    ///
    /// # Errors
    /// When `id` is 0 or `bytes` is empty.
    pub fn new(id: u32, bytes: Vec<u8>) -> Result<Dictionary, Error> {
        if id == 0 {
            return Err(Error(
                "dictionary id 0 is reserved for no dictionary".into(),
            ));
        }
        if bytes.is_empty() {
            return Err(Error(format!("dictionary {id} is empty")));
        }
        Ok(Dictionary {
            id,
            encoder: EncoderDictionary::copy(&bytes, LEVEL),
            decoder: DecoderDictionary::copy(&bytes),
            bytes,
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The dictionary as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The dictionaries of one store, by id; the newest (highest id) compresses new configs.
#[derive(Debug, Default, Clone)]
pub struct Dictionaries {
    by_id: BTreeMap<u32, Arc<Dictionary>>,
}

impl Dictionaries {
    /// Adds a dictionary (replacing one with the same id).
    pub fn add(&mut self, dictionary: Arc<Dictionary>) {
        self.by_id.insert(dictionary.id, dictionary);
    }

    pub fn get(&self, id: u32) -> Option<&Dictionary> {
        self.by_id.get(&id).map(AsRef::as_ref)
    }

    /// The dictionary new configs are compressed with: the newest.
    pub fn newest(&self) -> Option<&Dictionary> {
        self.by_id.values().next_back().map(AsRef::as_ref)
    }

    /// The id the next dictionary trained gets.
    pub fn next_id(&self) -> u32 {
        self.by_id
            .keys()
            .next_back()
            .map_or(1, |id| id.saturating_add(1))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn zstd_error(what: &str, code: zstd_safe::ErrorCode) -> Error {
    Error(format!("{what}: {}", zstd_safe::get_error_name(code)))
}

/// Appends the zstd frame of `raw`, compressed with `dictionary` (or none), to `out`.
///
/// # Errors
/// When zstd fails, which it does only for lack of memory.
pub fn compress(
    raw: &[u8],
    dictionary: Option<&Dictionary>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    compress_with(raw, dictionary, |frame| out.extend_from_slice(frame))
}

/// Compresses `raw` as [`compress`] does and hands the frame to `f`, which gets it from this
/// thread's buffer: a caller that writes the frame's length before it copies it once.
///
/// # Errors
/// As [`compress`].
pub fn compress_with<R>(
    raw: &[u8],
    dictionary: Option<&Dictionary>,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, Error> {
    COMPRESSOR.with_borrow_mut(|cctx| {
        let cctx = cctx.get_or_insert_with(CCtx::create);
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            scratch.reserve(zstd_safe::compress_bound(raw.len()));
            let written = match dictionary {
                Some(d) => cctx.compress_using_cdict(scratch, raw, d.encoder.as_cdict()),
                None => cctx.compress(scratch, raw, LEVEL),
            };
            written.map_err(|code| zstd_error("cannot compress a config", code))?;
            Ok(f(scratch))
        })
    })
}

/// The config a zstd frame holds, which must be exactly `raw_len` bytes of UTF-8, decompressed
/// with `dictionary` (the one its store recorded with it; `None` for dictionary 0).
///
/// # Errors
/// A length above [`MAX_CONFIG_BYTES`], a frame that does not decompress (damaged, or written
/// with another dictionary), one of another length, or bytes that are not UTF-8.
pub fn decompress(
    frame: &[u8],
    raw_len: usize,
    dictionary: Option<&Dictionary>,
) -> Result<String, Error> {
    let mut config = String::new();
    decompress_into(frame, raw_len, dictionary, &mut config)?;
    Ok(config)
}

/// [`decompress`] into `out`, in its buffer when that is large enough and not over four times
/// the size (as [`registry_core::copy_into`] keeps buffers).
///
/// # Errors
/// As [`decompress`]; `out` is then empty.
pub fn decompress_into(
    frame: &[u8],
    raw_len: usize,
    dictionary: Option<&Dictionary>,
    out: &mut String,
) -> Result<(), Error> {
    if raw_len > MAX_CONFIG_BYTES {
        out.clear();
        return Err(Error(format!(
            "a config of {raw_len} bytes is claimed: the limit is {MAX_CONFIG_BYTES}"
        )));
    }
    let mut raw = std::mem::take(out).into_bytes();
    raw.clear();
    if raw.capacity() > raw_len.max(64) * 4 {
        raw = Vec::new();
    }
    raw.reserve_exact(raw_len);
    DECOMPRESSOR.with_borrow_mut(|dctx| {
        let dctx = dctx.get_or_insert_with(DCtx::create);
        let read = match dictionary {
            Some(d) => dctx.decompress_using_ddict(&mut raw, frame, d.decoder.as_ddict()),
            None => dctx.decompress(&mut raw, frame),
        };
        read.map_err(|code| zstd_error("the config does not decompress", code))
    })?;
    if raw.len() != raw_len {
        return Err(Error(format!(
            "the config decompresses to {} bytes, not the {raw_len} recorded",
            raw.len()
        )));
    }
    *out =
        String::from_utf8(raw).map_err(|_| Error("the decompressed config is not UTF-8".into()))?;
    Ok(())
}

/// Trains a dictionary of at most [`DICTIONARY_BYTES`] on sample configs.
///
/// # Errors
/// When zstd cannot train on the samples (too few, or too small: it needs some kilobytes).
pub fn train<S: AsRef<[u8]>>(samples: &[S]) -> Result<Vec<u8>, Error> {
    // Training takes memory of its own: one at a time per process, so a registry of many
    // shards that all reach their first dictionary at once does not hold them all together
    // (12 Redis shards training side by side peaked at 64 to 77 MiB, one at a time at 44).
    static TRAINING: Mutex<()> = Mutex::new(());
    let _one = TRAINING.lock().unwrap_or_else(PoisonError::into_inner);
    zstd::dict::from_samples(samples, DICTIONARY_BYTES)
        .map_err(|e| Error(format!("cannot train a dictionary: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(i: usize) -> String {
        format!(
            "dashboard:\n  title: Rule number {i}\n  version: v2.9\n  security:\n    csrf: {}\n    \
             rate_limit:\n      requests_per_minute: {}\n  filters:\n  - threat_level\n  - \
             source_ip\ngovernance:\n  id: SEC-RUL-{i:03}\n  scope: SEC\n",
            i.is_multiple_of(2),
            1000 + i % 7
        )
    }

    fn trained() -> Dictionary {
        let samples: Vec<String> = (0..500).map(config).collect();
        Dictionary::new(1, train(&samples).expect("trains")).expect("a dictionary")
    }

    #[test]
    fn round_trips_with_and_without_a_dictionary_and_the_dictionary_pays() {
        let d = trained();
        let raw = config(9001);
        let mut plain = Vec::new();
        compress(raw.as_bytes(), None, &mut plain).expect("compresses");
        let mut with = Vec::new();
        compress(raw.as_bytes(), Some(&d), &mut with).expect("compresses");
        assert!(
            with.len() * 2 < plain.len(),
            "{} vs {}",
            with.len(),
            plain.len()
        );
        assert_eq!(
            decompress(&plain, raw.len(), None).as_deref(),
            Ok(raw.as_str())
        );
        assert_eq!(
            decompress(&with, raw.len(), Some(&d)).as_deref(),
            Ok(raw.as_str())
        );
        // Appends: what `out` held stays.
        let mut out = b"head".to_vec();
        compress(b"", None, &mut out).expect("compresses");
        assert!(out.starts_with(b"head"));
        assert_eq!(decompress(&out[4..], 0, None).as_deref(), Ok(""));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let d = trained();
        let raw = config(3);
        let mut frame = Vec::new();
        compress(raw.as_bytes(), Some(&d), &mut frame).expect("compresses");
        assert!(
            decompress(&frame, raw.len(), None).is_err(),
            "without its dictionary"
        );
        assert!(
            decompress(&frame, raw.len() - 1, Some(&d)).is_err(),
            "a shorter length"
        );
        assert!(
            decompress(&frame, raw.len() + 1, Some(&d)).is_err(),
            "a longer length"
        );
        assert!(decompress(&frame, MAX_CONFIG_BYTES + 1, Some(&d)).is_err());
        for i in 0..frame.len() {
            for len in [i, frame.len()] {
                let mut bad = frame[..len].to_vec();
                if len == frame.len() {
                    bad[i] ^= 0x55;
                }
                // May decode to other text of the same length; must not panic.
                let _ = decompress(&bad, raw.len(), Some(&d));
            }
        }
        let mut not_utf8 = Vec::new();
        compress(&[0xff, 0xfe], None, &mut not_utf8).expect("compresses");
        assert_eq!(
            decompress(&not_utf8, 2, None),
            Err(Error("the decompressed config is not UTF-8".into()))
        );
    }

    #[test]
    fn the_newest_dictionary_compresses_and_ids_are_kept() {
        let mut all = Dictionaries::default();
        assert_eq!((all.next_id(), all.newest().is_none()), (1, true));
        all.add(Arc::new(trained()));
        let second = Dictionary::new(2, trained().bytes().to_vec()).expect("a dictionary");
        all.add(Arc::new(second));
        assert_eq!(all.newest().map(Dictionary::id), Some(2));
        assert_eq!(all.get(1).map(Dictionary::id), Some(1));
        assert_eq!(all.next_id(), 3);
        assert!(Dictionary::new(0, vec![1]).is_err());
        assert!(train(&["x"]).is_err(), "too little to train on");
    }
}
