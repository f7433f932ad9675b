//! `cargo xtask prowler [--folds K]`: measures the generator's model on real data.
//!
//! Converts `data/prowler/checks.jsonl` (1,631 security checks) into registry
//! requests (provider → scope, resource group → type, severity → status; the schema is
//! `examples/prowler/registry.toml`), then runs `registry train --from … --folds K` on them in
//! release: the accuracy of predicting each field from the title alone, next to the
//! majority-class baseline.

use std::fs;
use std::io::Write;

use serde_json::{Value, json};

use crate::root;

pub fn run(args: &[String]) -> Result<(), String> {
    let folds = match args {
        [] => "5".to_owned(),
        [flag, k] if flag == "--folds" => k.clone(),
        _ => return Err("usage: cargo xtask prowler [--folds K]".into()),
    };
    let source = root().join("data/prowler/checks.jsonl");
    let text = fs::read_to_string(&source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let out_dir = crate::target_dir().join("prowler");
    fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let requests = out_dir.join("requests.jsonl");
    let mut out = fs::File::create(&requests)
        .map_err(|e| format!("cannot write {}: {e}", requests.display()))?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let check: Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: {e}", source.display(), i + 1))?;
        let field = |key: &str| check[key].as_str().unwrap_or("").to_uppercase();
        let group = match field("resource_group") {
            g if g.is_empty() => "UNGROUPED".to_owned(),
            g => g,
        };
        let request = json!({
            "title": check["title"],
            "scope": field("provider"),
            "type": group,
            "status": field("severity"),
        });
        writeln!(out, "{request}")
            .map_err(|e| format!("cannot write {}: {e}", requests.display()))?;
        n += 1;
    }
    println!("converted {n} checks into {}", requests.display());

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    crate::run(&cargo, &["build", "--release", "--workspace"])?;
    let registry = crate::target_dir()
        .join("release/registry")
        .to_string_lossy()
        .into_owned();
    let config = root()
        .join("examples/prowler/registry.toml")
        .to_string_lossy()
        .into_owned();
    let requests = requests.to_string_lossy().into_owned();
    crate::run(
        &registry,
        &[
            "--config", &config, "train", "--from", &requests, "--folds", &folds,
        ],
    )
}
