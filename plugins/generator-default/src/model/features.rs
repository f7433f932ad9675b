//! Text features: a request's title and context hashed into a sparse vector of `dims` buckets.
//!
//! Words are the lowercase runs of letters and digits, as for the keyword rules. A request gives
//! the words of its title, the pairs of adjacent title words (bigrams: "public bucket" says more
//! than "public" and "bucket" apart), the words of each context value, and one `key=value` token
//! per context pair. Each token is hashed with FNV-1a (64 bits, then a final mix so that the low
//! bits used for the bucket depend on every input bit) into `hash % dims`.
//!
//! Design decision: the hash is written here, not `std`'s `RandomState`, because a model saved on
//! one machine must see the same buckets on another and in every later process. Hashing replaces
//! a vocabulary: nothing grows with the data, and a word never seen in training simply lands in a
//! bucket whose weight says little.
//!
//! Extraction writes into a caller-owned [`Scratch`], so predicting allocates nothing once the
//! scratch buffers have grown to the size of a request.

use registry_core::{Request, RequestRef};

/// Fewest buckets accepted.
pub(crate) const MIN_DIMS: u32 = 16;
/// Most buckets accepted: 2^20.
pub(crate) const MAX_DIMS: u32 = 1 << 20;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Continues an FNV-1a hash over `bytes`.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The 64-bit finaliser of MurmurHash3: FNV-1a alone leaves its low bits weakly mixed, and the
/// bucket is taken from the low bits.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// How token counts become feature values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weighting {
    /// Raw counts, as multinomial naive Bayes expects.
    Counts,
    /// `1 + ln(count)`: a repeated word counts less than a new one.
    ///
    /// Measured on the Prowler titles (5-fold accuracy of the resource group, L2 penalty from
    /// 3e-6 to 1e-3): raw counts and this did equally well (0.820 at best), since titles rarely
    /// repeat a word; scaling each vector to unit length as well did no better and took about
    /// twice as many L-BFGS iterations, so vectors are not normalised.
    Sublinear,
}

impl Weighting {
    /// The code stored in a model file.
    pub(crate) fn code(self) -> u8 {
        match self {
            Weighting::Counts => 0,
            Weighting::Sublinear => 1,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Weighting> {
        match code {
            0 => Some(Weighting::Counts),
            1 => Some(Weighting::Sublinear),
            _ => None,
        }
    }
}

/// The feature space of a model: how many buckets, and how counts are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Featurizer {
    pub(crate) dims: u32,
    pub(crate) weighting: Weighting,
}

/// Reusable buffers for [`Featurizer::extract`]; `vector` holds the result.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    word: String,
    buckets: Vec<u32>,
    /// The features of the last request extracted: `(bucket, value)`, buckets strictly increasing.
    pub(crate) vector: Vec<(u32, f32)>,
}

impl Featurizer {
    /// Fills `scratch.vector` with the features of a request.
    pub(crate) fn extract(&self, request: &RequestRef<'_>, scratch: &mut Scratch) {
        let Scratch {
            word,
            buckets,
            vector,
        } = scratch;
        buckets.clear();
        vector.clear();
        let dims = u64::from(self.dims);
        // With a power of two, the usual case, the remainder is a mask: the same bucket, without
        // a division per token.
        let mask = dims.is_power_of_two().then(|| dims - 1);
        let mut push = |hash: u64| {
            let mixed = mix(hash);
            let bucket = match mask {
                Some(mask) => mixed & mask,
                None => mixed % dims,
            };
            // The bucket is below `dims`, itself a u32.
            buckets.push(bucket as u32);
        };
        let title = request.title;
        let mut previous: Option<u64> = None;
        if title.is_ascii() {
            // ASCII words are hashed from the text itself, lowercased byte by byte: the bytes the
            // general path would build the word from.
            for_each_ascii_word(title, |w| {
                let hash = fnv_lower(FNV_OFFSET, w);
                push(hash);
                if let Some(previous) = previous {
                    push(fnv_lower(fnv(previous, b" "), w));
                }
                previous = Some(hash);
            });
        } else {
            for_each_word(title, word, |w| {
                let hash = fnv(FNV_OFFSET, w.as_bytes());
                push(hash);
                if let Some(previous) = previous {
                    // The bigram "a b" continues the hash of "a": the words need not be kept.
                    push(fnv(fnv(previous, b" "), w.as_bytes()));
                }
                previous = Some(hash);
            });
        }
        for (key, value) in request.context.iter() {
            let pair = fnv(fnv(FNV_OFFSET, key.as_bytes()), b"=");
            if value.is_ascii() {
                for_each_ascii_word(value, |w| push(fnv_lower(FNV_OFFSET, w)));
                push(fnv_lower(pair, value.as_bytes()));
                continue;
            }
            for_each_word(value, word, |w| push(fnv(FNV_OFFSET, w.as_bytes())));
            let mut hash = pair;
            for c in value.chars().flat_map(char::to_lowercase) {
                let mut utf8 = [0u8; 4];
                hash = fnv(hash, c.encode_utf8(&mut utf8).as_bytes());
            }
            push(hash);
        }
        buckets.sort_unstable();
        for &b in buckets.iter() {
            match vector.last_mut() {
                Some((last, count)) if *last == b => *count += 1.0,
                _ => vector.push((b, 1.0)),
            }
        }
        if self.weighting == Weighting::Sublinear {
            for (_, v) in vector.iter_mut() {
                *v = 1.0 + v.ln();
            }
        }
    }
}

/// Continues an FNV-1a hash over the ASCII lowercase of `bytes`.
fn fnv_lower(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b.to_ascii_lowercase());
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Calls `each` with every word (run of letters and digits) of an ASCII `text`, as it is written.
fn for_each_ascii_word(text: &str, mut each: impl FnMut(&[u8])) {
    text.as_bytes()
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .for_each(&mut each);
}

/// Calls `each` with every lowercase word of `text` (a run of letters and digits), built in `word`.
fn for_each_word(text: &str, word: &mut String, mut each: impl FnMut(&str)) {
    word.clear();
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_ascii() {
                word.push(c.to_ascii_lowercase());
            } else {
                word.extend(c.to_lowercase());
            }
        } else if !word.is_empty() {
            each(word);
            word.clear();
        }
    }
    if !word.is_empty() {
        each(word);
        word.clear();
    }
}

/// Sparse rows in one buffer (compressed sparse rows): row `i` is
/// `entries[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rows {
    offsets: Vec<usize>,
    entries: Vec<(u32, f32)>,
}

impl Rows {
    /// The features of every request.
    pub(crate) fn of(featurizer: &Featurizer, requests: &[&Request]) -> Rows {
        let mut scratch = Scratch::default();
        let mut rows = Rows {
            offsets: Vec::with_capacity(requests.len() + 1),
            entries: Vec::new(),
        };
        rows.offsets.push(0);
        for request in requests {
            featurizer.extract(&request.view(), &mut scratch);
            rows.entries.extend_from_slice(&scratch.vector);
            rows.offsets.push(rows.entries.len());
        }
        rows
    }

    /// Rows given as vectors, for tests of the learners.
    #[cfg(test)]
    pub(crate) fn from_vecs(rows: &[Vec<(u32, f32)>]) -> Rows {
        let mut out = Rows {
            offsets: vec![0],
            entries: Vec::new(),
        };
        for row in rows {
            out.entries.extend_from_slice(row);
            out.offsets.push(out.entries.len());
        }
        out
    }

    pub(crate) fn row(&self, i: usize) -> &[(u32, f32)] {
        &self.entries[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Numbers the buckets that occur in the rows `sample` from 0, in bucket order: returns the
    /// column of each bucket (`u32::MAX` for a bucket that does not occur) and the buckets in
    /// column order. Learners keep weights for these columns only.
    pub(crate) fn columns(
        &self,
        sample: impl IntoIterator<Item = usize>,
        dims: u32,
    ) -> (Vec<u32>, Vec<u32>) {
        let mut column_of = vec![u32::MAX; dims as usize];
        for i in sample {
            for &(bucket, _) in self.row(i) {
                column_of[bucket as usize] = 0;
            }
        }
        let mut buckets = Vec::new();
        for (bucket, column) in column_of.iter_mut().enumerate() {
            if *column == 0 {
                // Fewer than 2^20 buckets: both fit a u32.
                *column = buckets.len() as u32;
                buckets.push(bucket as u32);
            }
        }
        (column_of, buckets)
    }
}

#[cfg(test)]
mod tests {
    use registry_core::{Context, Fields};

    use super::*;

    fn request(title: &str, context: &[(&str, &str)]) -> Request {
        let context = Context::new(
            context
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .expect("valid context");
        Request::new(title, Fields::default(), None, context).expect("valid request")
    }

    fn features(f: &Featurizer, title: &str, context: &[(&str, &str)]) -> Vec<(u32, f32)> {
        let mut scratch = Scratch::default();
        f.extract(&request(title, context).view(), &mut scratch);
        scratch.vector
    }

    const COUNTS: Featurizer = Featurizer {
        dims: 1 << 20,
        weighting: Weighting::Counts,
    };

    #[test]
    fn hashes_are_fixed() {
        // FNV-1a 64 reference values: a changed hash would silently break every saved model.
        assert_eq!(fnv(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        let buckets: Vec<u32> = features(&COUNTS, "Block SSH", &[])
            .iter()
            .map(|&(b, _)| b)
            .collect();
        let expected = {
            let mut v: Vec<u32> = [
                fnv(FNV_OFFSET, b"block"),
                fnv(FNV_OFFSET, b"ssh"),
                fnv(FNV_OFFSET, b"block ssh"),
            ]
            .iter()
            .map(|&h| (mix(h) % (1 << 20)) as u32)
            .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(buckets, expected);
    }

    /// Features as the character-by-character path computes them for any text, with a division
    /// for the bucket: the reference the ASCII and power-of-two shortcuts must match.
    fn reference(f: &Featurizer, request: &Request) -> Vec<(u32, f32)> {
        let mut word = String::new();
        let mut buckets = Vec::new();
        let mut push = |hash: u64| buckets.push((mix(hash) % u64::from(f.dims)) as u32);
        let mut previous: Option<u64> = None;
        for_each_word(request.title(), &mut word, |w| {
            let hash = fnv(FNV_OFFSET, w.as_bytes());
            push(hash);
            if let Some(previous) = previous {
                push(fnv(fnv(previous, b" "), w.as_bytes()));
            }
            previous = Some(hash);
        });
        for (key, value) in request.context.iter() {
            for_each_word(value, &mut word, |w| push(fnv(FNV_OFFSET, w.as_bytes())));
            let mut hash = fnv(fnv(FNV_OFFSET, key.as_bytes()), b"=");
            for c in value.chars().flat_map(char::to_lowercase) {
                let mut utf8 = [0u8; 4];
                hash = fnv(hash, c.encode_utf8(&mut utf8).as_bytes());
            }
            push(hash);
        }
        buckets.sort_unstable();
        let mut vector: Vec<(u32, f32)> = Vec::new();
        for &b in &buckets {
            match vector.last_mut() {
                Some((last, count)) if *last == b => *count += 1.0,
                _ => vector.push((b, 1.0)),
            }
        }
        if f.weighting == Weighting::Sublinear {
            for (_, v) in &mut vector {
                *v = 1.0 + v.ln();
            }
        }
        vector
    }

    #[test]
    fn shortcuts_give_the_reference_features() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("Block SSH: from the INTERNET", &[]),
            (
                "Ensure S3 buckets block public access",
                &[("env", "Prod"), ("team", "Sec-Ops 2")],
            ),
            ("a a a b", &[("k", "")]),
            ("--", &[("note", "x_y z9")]),
            ("Sécurité ÜBER ops", &[("owner", "Éric")]),
            ("plain title", &[("owner", "ΣΑΣ σ"), ("env", "DEV")]),
        ];
        let mut scratch = Scratch::default();
        for dims in [16, 4096, 1 << 20, 1000, 17] {
            for weighting in [Weighting::Counts, Weighting::Sublinear] {
                let f = Featurizer { dims, weighting };
                for (title, context) in cases {
                    let r = request(title, context);
                    f.extract(&r.view(), &mut scratch);
                    assert_eq!(scratch.vector, reference(&f, &r), "{title:?} {dims}");
                }
            }
        }
    }

    #[test]
    fn tokens_ignore_case_and_punctuation() {
        let a = features(&COUNTS, "Block SSH: from the INTERNET", &[]);
        let b = features(&COUNTS, "block ssh -- from the internet!", &[]);
        assert_eq!(a, b);
        // 5 words and 4 bigrams, all distinct.
        assert_eq!(a.len(), 9);
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0));
        assert_ne!(a, features(&COUNTS, "ssh block from the internet", &[]));
    }

    #[test]
    fn repeated_tokens_are_counted() {
        let v = features(&COUNTS, "bucket bucket bucket", &[]);
        let mut values: Vec<f32> = v.iter().map(|&(_, x)| x).collect();
        values.sort_by(f32::total_cmp);
        assert_eq!(values, [2.0, 3.0], "`bucket` thrice, `bucket bucket` twice");
    }

    #[test]
    fn context_gives_words_and_pairs() {
        let plain = features(&COUNTS, "t", &[]);
        let with = features(&COUNTS, "t", &[("env", "Prod West")]);
        // `t`, plus `prod`, `west` and `env=prod west`.
        assert_eq!(plain.len(), 1);
        assert_eq!(with.len(), 4);
        let other_key = features(&COUNTS, "t", &[("region", "Prod West")]);
        assert_eq!(other_key.len(), 4);
        assert_ne!(with, other_key);
        // A context word is the same token as a title word.
        let words = features(&COUNTS, "prod", &[]);
        assert!(with.iter().any(|e| e.0 == words[0].0));
    }

    #[test]
    fn deterministic_and_bounded() {
        for dims in [16, 17, 4096, 1000, 1 << 20] {
            let f = Featurizer {
                dims,
                weighting: Weighting::Sublinear,
            };
            let title = "Ensure S3 buckets block public access — naïve Ünïcode ✓ 42";
            let a = features(&f, title, &[("team", "sec")]);
            let b = features(&f, title, &[("team", "sec")]);
            assert_eq!(a, b);
            assert!(a.iter().all(|&(bucket, _)| bucket < dims));
            assert!(a.iter().all(|&(_, v)| v >= 1.0), "{dims}: {a:?}");
        }
        assert!(features(&COUNTS, "✓ — !", &[]).is_empty());
    }

    #[test]
    fn rows_hold_each_request() {
        let requests = [request("a b", &[]), request("c", &[]), request("!", &[])];
        let refs: Vec<&Request> = requests.iter().collect();
        let rows = Rows::of(&COUNTS, &refs);
        assert_eq!(rows.offsets.len(), 4);
        assert_eq!(rows.row(0).len(), 3);
        assert_eq!(rows.row(1).len(), 1);
        assert!(rows.row(2).is_empty());
        let (column_of, buckets) = rows.columns([1, 2], COUNTS.dims);
        assert_eq!(buckets, [rows.row(1)[0].0]);
        assert_eq!(column_of[buckets[0] as usize], 0);
        assert_eq!(column_of.iter().filter(|&&c| c != u32::MAX).count(), 1);
    }
}
