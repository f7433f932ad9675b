//! How small can a stored config get? Measures the ways of storing the rendered YAML configs
//! that issue "storage format 2" considered, on configs the default generator renders:
//!
//! - none: the config as it is (storage format 1);
//! - lz4 (lz4_flex's block format), without and with a dictionary;
//! - zstd without a dictionary, and with dictionaries of several sizes trained (zstd's
//!   `ZDICT_trainFromBuffer`) on the first configs of a registry, at two levels;
//! - the same dictionary on configs of another kind (Prowler's security checks, rendered by the
//!   same templates with their own titles and fields), as a registry whose entries drift away
//!   from what its dictionary was trained on.
//!
//! For each: mean stored bytes per config and the median time to compress and decompress one.
//! Run: `cargo run --release -p registry-benches --example compression [-- N]` (N configs of
//! the benchmark workload, 20,000 by default). The table it prints is kept in `docs/STORAGE.md`.

use std::time::Instant;

use registry_benches::{Linkage, NO_FSYNC, pipeline, prowler, request};
use registry_core::Schema;

/// Encodes one config.
type Encode = Box<dyn FnMut(&[u8]) -> Vec<u8>>;
/// Decodes one config, given its length.
type Decode = Box<dyn FnMut(&[u8], usize) -> Vec<u8>>;

/// One way of storing configs: how to encode one and decode it back.
struct Method {
    name: String,
    encode: Encode,
    decode: Decode,
}

/// Mean bytes, and median nanoseconds to encode and to decode, over `configs`; every decode is
/// checked against its config.
fn measure(method: &mut Method, configs: &[String]) -> (f64, u128, u128) {
    let mut bytes = 0usize;
    let mut enc = Vec::with_capacity(configs.len());
    let mut dec = Vec::with_capacity(configs.len());
    for config in configs {
        let start = Instant::now();
        let stored = (method.encode)(config.as_bytes());
        enc.push(start.elapsed().as_nanos());
        let start = Instant::now();
        let back = (method.decode)(&stored, config.len());
        dec.push(start.elapsed().as_nanos());
        assert_eq!(back, config.as_bytes(), "{} changed a config", method.name);
        bytes += stored.len();
    }
    enc.sort_unstable();
    dec.sort_unstable();
    (
        bytes as f64 / configs.len() as f64,
        enc[enc.len() / 2],
        dec[dec.len() / 2],
    )
}

fn none() -> Method {
    Method {
        name: "none".into(),
        encode: Box::new(<[u8]>::to_vec),
        decode: Box::new(|b, _| b.to_vec()),
    }
}

fn lz4(dict: Option<Vec<u8>>) -> Method {
    let name = match &dict {
        None => "lz4 (lz4_flex block)".to_owned(),
        Some(d) => format!("lz4 (lz4_flex block), {} KiB dictionary", d.len() / 1024),
    };
    let d = dict.clone().unwrap_or_default();
    Method {
        name,
        encode: Box::new(move |b| lz4_flex::block::compress_with_dict(b, &d)),
        decode: Box::new(move |b, n| {
            lz4_flex::block::decompress_with_dict(b, n, dict.as_deref().unwrap_or_default())
                .expect("lz4 decodes what it encoded")
        }),
    }
}

fn zstd_method(level: i32, dict: Option<&[u8]>, label: &str) -> Method {
    let d = dict.unwrap_or_default();
    let mut compressor =
        zstd::bulk::Compressor::with_dictionary(level, d).expect("zstd takes the dictionary");
    let mut decompressor =
        zstd::bulk::Decompressor::with_dictionary(d).expect("zstd takes the dictionary");
    let name = match dict {
        None => format!("zstd level {level}"),
        Some(d) => format!(
            "zstd level {level}, {} KiB dictionary{label}",
            d.len() / 1024
        ),
    };
    Method {
        name,
        encode: Box::new(move |b| compressor.compress(b).expect("zstd compresses")),
        decode: Box::new(move |b, n| {
            decompressor
                .decompress(b, n)
                .expect("zstd decodes what it encoded")
        }),
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(20_000, |a| a.parse().expect("N is a number"));
    let (registry, _dir) = pipeline(Linkage::Static, Schema::default(), &[NO_FSYNC], 1);
    let configs: Vec<String> = registry
        .add((0..n).map(request).collect())
        .into_iter()
        .map(|a| {
            a.expect("the benchmark requests register")
                .entry
                .config
                .clone()
        })
        .collect();
    let (schema, requests) = prowler();
    let (other, _dir2) = pipeline(Linkage::Static, schema, &[NO_FSYNC], 1);
    let prowler_configs: Vec<String> = other
        .add(requests)
        .into_iter()
        .map(|a| a.expect("the Prowler checks register").entry.config.clone())
        .collect();

    // Trained on the first tenth (at most 2,000), measured on the rest.
    let split = (configs.len() / 10).min(2000);
    let (training, measured) = configs.split_at(split);
    let dict =
        |size: usize| zstd::dict::from_samples(training, size).expect("zstd trains a dictionary");
    for samples in [250, 500, 1000, 2000] {
        let set = &configs[..samples.min(configs.len())];
        let start = Instant::now();
        let d = zstd::dict::from_samples(set, 16 * 1024).expect("zstd trains a dictionary");
        let took = start.elapsed();
        let mut m = zstd_method(3, Some(&d), "");
        let (bytes, _, _) = measure(&mut m, measured);
        println!(
            "training a 16 KiB dictionary on {samples} configs: {:.0} ms, then {bytes:.0} bytes per config",
            took.as_secs_f64() * 1000.0
        );
    }
    let (d16, d64) = (dict(16 * 1024), dict(64 * 1024));
    let mut rows = vec![
        (none(), measured),
        (lz4(None), measured),
        (lz4(Some(d64.clone())), measured),
        (zstd_method(3, None, ""), measured),
        (zstd_method(3, Some(&d16), ""), measured),
        (zstd_method(3, Some(&d64), ""), measured),
        (zstd_method(19, Some(&d64), ""), measured),
        (none(), &prowler_configs[..]),
        (
            zstd_method(3, Some(&d64), " (trained on the workload above)"),
            &prowler_configs[..],
        ),
    ];
    println!(
        "{} configs of the benchmark workload ({} trained on, {} measured), {} Prowler configs",
        configs.len(),
        training.len(),
        measured.len(),
        prowler_configs.len()
    );
    println!("| configs | method | bytes per config | compress (median) | decompress (median) |");
    println!("|---|---|---:|---:|---:|");
    for (method, set) in &mut rows {
        let (bytes, enc, dec) = measure(method, set);
        let which = if set.len() == prowler_configs.len() {
            "Prowler"
        } else {
            "workload"
        };
        println!(
            "| {which} | {} | {bytes:.0} | {:.1} µs | {:.1} µs |",
            method.name,
            enc as f64 / 1000.0,
            dec as f64 / 1000.0
        );
    }
}
