//! Where a data directory's bytes go: redb's own statistics of every table of every shard file,
//! summed over the shards, per entry.
//!
//! ```sh
//! cargo run --release -p registry-benches --example table_stats -- DATA_DIR ENTRIES
//! ```
//!
//! Each table's rows, the bytes its keys and values take, the bytes of the pages holding them
//! (leaf and branch pages of 4 KiB) and how much of those pages is unused; then the files'
//! size against the pages of every table, which is the free space inside the files (redb grows
//! a file in steps; `registry compact` gives it back). Read only: the files are not changed,
//! and the registry must not be running.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableHandle};

const PAGE: u64 = 4096;

#[derive(Default)]
struct Sum {
    rows: u64,
    stored: u64,
    pages: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, entries] = &args[..] else {
        return Err("usage: table_stats DATA_DIR ENTRIES".into());
    };
    let entries: f64 = entries.parse()?;
    let mut tables: BTreeMap<String, Sum> = BTreeMap::new();
    let mut file_bytes = 0u64;
    let mut shard_files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "redb"))
        .collect();
    shard_files.sort();
    for path in &shard_files {
        file_bytes += std::fs::metadata(path)?.len();
        stats_of(path, &mut tables)?;
    }
    println!(
        "{:<28} {:>12} {:>14} {:>14} {:>8}",
        "table (per prefix: name/*)", "rows/entry", "stored B/entry", "pages B/entry", "unused"
    );
    let mut pages_total = 0;
    for (name, sum) in &tables {
        let pages = sum.pages * PAGE;
        pages_total += pages;
        println!(
            "{name:<28} {:>12.2} {:>14.1} {:>14.1} {:>7.0}%",
            sum.rows as f64 / entries,
            sum.stored as f64 / entries,
            pages as f64 / entries,
            100.0 * (1.0 - sum.stored as f64 / pages.max(1) as f64)
        );
    }
    println!(
        "{:<28} {:>12} {:>14} {:>14.1}",
        "all tables",
        "",
        "",
        pages_total as f64 / entries
    );
    println!(
        "{:<28} {:>12} {:>14} {:>14.1}",
        "files",
        "",
        "",
        file_bytes as f64 / entries
    );
    Ok(())
}

/// Adds the statistics of one file's tables, grouping tables named `name/…` under `name/*`.
fn stats_of(
    path: &Path,
    tables: &mut BTreeMap<String, Sum>,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = Database::open(path)?;
    let txn = db.begin_read()?;
    for handle in txn.list_tables()? {
        let name = handle.name().to_owned();
        let table = txn.open_untyped_table(handle)?;
        let stats = table.stats()?;
        let group = match name.split_once('/') {
            Some((head, _)) => format!("{head}/*"),
            None => name,
        };
        let sum = tables.entry(group).or_default();
        sum.rows += table.len()?;
        sum.stored += stats.stored_bytes();
        sum.pages += stats.leaf_pages() + stats.branch_pages();
    }
    Ok(())
}
