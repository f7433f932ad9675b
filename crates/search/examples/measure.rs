//! Measures the search index on synthetic entries: documents indexed per second, and the
//! latency of two-word queries (the figures in the crate doc).
//!
//! `cargo run --release -p registry-search --example measure -- [ENTRIES] [QUERIES]`
//! (100,000 and 2,000 by default). Entries have ~60-character titles, three context pairs
//! and ~400-byte YAML configs, their words drawn from a vocabulary of 3,000 with a Zipf-like
//! skew, as words in real text are; query words are drawn the same way.

use std::time::{Duration, Instant};

use registry_core::Entry;
use registry_search::{SearchIndex, SearchQuery};
use registry_testkit::sample;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An index below `n`, skewed to small ones (roughly Zipf with exponent 1).
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let x = ((n as f64 + 1.0).ln() * u).exp() - 1.0;
        (x as usize).min(n - 1)
    }
}

fn vocabulary(rng: &mut Rng, size: usize) -> Vec<String> {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de", "po", "gra", "sil", "ton", "mar",
        "bel", "cor", "fin", "lux", "per", "quo", "sen", "tri", "ver", "zan",
    ];
    let mut words = std::collections::BTreeSet::new();
    while words.len() < size {
        let n = 2 + (rng.next() % 3) as usize;
        let word: String = (0..n)
            .map(|_| SYLLABLES[(rng.next() % 24) as usize])
            .collect();
        words.insert(word);
    }
    let mut words: Vec<String> = words.into_iter().collect();
    // Shuffled, so the frequent words are not the alphabetically first.
    for i in (1..words.len()).rev() {
        words.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    words
}

fn words(rng: &mut Rng, vocab: &[String], bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&vocab[rng.skewed(vocab.len())]);
    }
    out
}

fn synthetic(rng: &mut Rng, vocab: &[String], number: u64) -> Entry {
    let title = words(rng, vocab, 56);
    let pairs = [
        ("owner", words(rng, vocab, 8)),
        ("source", words(rng, vocab, 20)),
        ("team", words(rng, vocab, 10)),
    ];
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut config = String::new();
    for key in ["description", "match", "action", "notes", "tags"] {
        config.push_str(key);
        config.push_str(": ");
        config.push_str(&words(rng, vocab, 70));
        config.push('\n');
    }
    let draft = sample::draft(
        sample::fields("SEC", "RULES", "LIVE", "REQUIRED"),
        number,
        &title,
        sample::context(&pairs),
    );
    sample::entry_of(draft, config)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let queries: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let vocab = vocabulary(&mut rng, 3_000);
    let entries: Vec<Entry> = (1..=n).map(|i| synthetic(&mut rng, &vocab, i)).collect();
    let text_bytes: usize = entries
        .iter()
        .map(|e| {
            e.title.len()
                + e.config.len()
                + e.context
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();

    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = SearchIndex::open(dir.path()).expect("open").index;
    let start = Instant::now();
    for chunk in entries.chunks(1000) {
        index.upsert(chunk).expect("upsert");
    }
    index.commit().expect("commit");
    let took = start.elapsed();
    drop(entries);
    let disk: u64 = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .filter_map(|i| i.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "indexed {n} entries ({:.0} bytes of text each) in {:.2} s: {:.0} docs/s; index {:.1} MB on disk",
        text_bytes as f64 / n as f64,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        disk as f64 / 1e6,
    );

    let mut times = Vec::with_capacity(queries);
    let mut matched = 0u64;
    let mut empty = 0usize;
    for _ in 0..queries {
        let text = format!(
            "{} {}",
            vocab[rng.skewed(vocab.len())],
            vocab[rng.skewed(vocab.len())]
        );
        let query = SearchQuery {
            text,
            limit: 20,
            ..SearchQuery::default()
        };
        let start = Instant::now();
        let found = index.search(&query).expect("search");
        times.push(start.elapsed());
        matched += found.total;
        empty += usize::from(found.hits.is_empty());
    }
    times.sort();
    println!(
        "{queries} two-word queries (limit 20, exact total): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {:.0} matches per query on average, {empty} with none",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        percentile(&times, 1.0).as_secs_f64() * 1e3,
        matched as f64 / queries as f64,
    );
}
