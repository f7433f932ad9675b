//! Where one batch's time goes: the pipeline's own timings of each stage call, per entry, for
//! batches of 1,000 new requests run one at a time into a one-shard registry at the `ceiling`
//! benchmark's durability, through the plugin libraries (`dynamic`) or linked (`static`).
//!
//! ```sh
//! cargo build --release --workspace
//! cargo run --release -p registry-benches --example stage_times -- dynamic 60
//! ```
//!
//! Prints the wall time per entry of `Pipeline::add`, each stage's share, and what is left: the
//! pipeline's own work between the calls (fingerprints, filling the fields, building and hashing
//! the entries, the results). `ceiling/pipeline_add_1000` measures the same batches with
//! criterion; this says what they are made of.

use std::time::{Duration, Instant};

use registry_benches::{DURABLE, Linkage, request};
use registry_core::{Request, Schema};

/// Requests per batch, as in the `ceiling` benchmark.
const BATCH: u64 = 1000;

/// Batches run before the timings start: the first trains the shard's dictionary.
const WARM_UP: u64 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let linkage = match args.first().map(String::as_str) {
        None | Some("dynamic") => Linkage::Dynamic,
        Some("static") => Linkage::Static,
        Some(other) => return Err(format!("linkage `{other}`: expected dynamic or static").into()),
    };
    let batches: u64 = match args.get(1) {
        Some(n) => n.parse().map_err(|e| format!("batch count `{n}`: {e}"))?,
        None => 60,
    };
    if batches == 0 {
        return Err("the batch count must be at least 1".into());
    }
    let (pipeline, _dir) = registry_benches::pipeline(linkage, Schema::default(), &[DURABLE], 1);
    let mut next = 0u64;
    let mut batch = || {
        let requests: Vec<Request> = (next..next + BATCH).map(request).collect();
        next += BATCH;
        requests
    };
    for _ in 0..WARM_UP {
        pipeline.add(batch());
    }
    pipeline.enable_timings();
    let mut wall = Duration::ZERO;
    for _ in 0..batches {
        let requests = batch();
        let start = Instant::now();
        let results = pipeline.add(requests);
        wall += start.elapsed();
        // Dropped outside the timing, as criterion drops a routine's output.
        drop(results);
    }
    let entries = (batches * BATCH) as f64;
    let per_entry = |us: f64| us / entries;
    let wall_us = per_entry(wall.as_secs_f64() * 1e6);
    println!("{} batches of {BATCH}, {}", batches, linkage.name());
    println!("{:<26} {:>10} {:>7}", "stage call", "us/entry", "share");
    let mut calls = 0.0;
    for t in pipeline.timings() {
        let us = per_entry(t.total_us as f64);
        calls += us;
        println!(
            "{:<26} {:>10.2} {:>6.1}%",
            t.call.name(),
            us,
            100.0 * us / wall_us
        );
    }
    let rest = wall_us - calls;
    println!(
        "{:<26} {:>10.2} {:>6.1}%",
        "(between the calls)",
        rest,
        100.0 * rest / wall_us
    );
    println!("{:<26} {:>10.2}", "add, wall", wall_us);
    Ok(())
}
