//! The commands and their output contract.

use std::path::PathBuf;

use serde_json::Value;

use crate::{Scratch, lib_path};

#[test]
fn add_returns_the_whole_entry() {
    let s = Scratch::new();
    let e = s.add(
        "Block SSH from the internet",
        &[
            "--scope",
            "sec",
            "--status",
            "REQUIRED",
            "--context",
            "env=prod",
        ],
    );
    assert_eq!(e["id"], "SEC-RUL-001");
    assert_eq!(e["title"], "Block SSH from the internet");
    assert_eq!(
        e["header"],
        "[SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]"
    );
    assert_eq!(e["grepable"], "[sec-rules-live-sec-rul-001-v2.9-required]");
    assert_eq!(e["revision"], 1);
    assert_eq!(e["created"], true);
    assert_eq!(e["context"]["env"], "prod");
    assert!(e["hash"].as_str().expect("hash").starts_with("blake3:"));
    let config = e["config"].as_str().expect("config");
    assert!(
        config.contains("[SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]"),
        "{config}"
    );
    assert_eq!(e["fields"]["scope"]["source"], "given");
    assert_eq!(e["fields"]["variant"]["source"], "default");
}

#[test]
fn ids_grow_per_prefix_and_never_collide() {
    let s = Scratch::new();
    let ids: Vec<Value> = (0..3)
        .map(|i| s.add(&format!("rule {i}"), &["--scope", "SEC", "--type", "RULES"])["id"].clone())
        .collect();
    assert_eq!(ids, ["SEC-RUL-001", "SEC-RUL-002", "SEC-RUL-003"]);
    assert_eq!(
        s.add("a script", &["--scope", "OPS", "--type", "SCRIPT"])["id"],
        "OPS-SCR-001"
    );
    assert_eq!(
        s.add("an etl job", &["--scope", "ETL", "--type", "MULTI-ETL"])["id"],
        "ETL-MUL-001"
    );
}

#[test]
fn same_request_twice_returns_the_existing_entry() {
    let s = Scratch::new();
    let first = s.add("Rotate access keys", &["--context", "team=iam"]);
    let again = s.add("  rotate   ACCESS keys ", &["--context", "team=iam"]);
    assert_eq!(again["created"], false);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["hash"], first["hash"]);
    assert_eq!(s.ids().len(), 1);
    let other = s.add("Rotate access keys", &["--context", "team=ops"]);
    assert_eq!(other["created"], true);
}

#[test]
fn same_request_gives_the_same_config_and_hash() {
    let a = Scratch::new().add("Security audit of buckets", &["--context", "env=prod"]);
    let b = Scratch::new().add("Security audit of buckets", &["--context", "env=prod"]);
    assert_eq!(a["config"], b["config"]);
    assert_eq!(a["hash"], b["hash"]);
}

#[test]
fn keyword_fallback_fills_missing_fields() {
    let s = Scratch::new();
    let e = s.add("Nightly security scan", &[]);
    assert_eq!(e["scope"], "SEC");
    assert_eq!(e["fields"]["scope"]["source"], "keyword");
    let e = s.add("Something unrelated", &[]);
    assert_eq!(e["scope"], "GOV");
    assert_eq!(e["fields"]["scope"]["source"], "default");
}

#[test]
fn get_list_update_history() {
    let s = Scratch::new();
    let id = s.add("Block SSH", &["--scope", "SEC"])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.add(
        "Dashboard of prices",
        &["--scope", "DASHBOARD", "--status", "LIVE"],
    );
    assert_eq!(s.json(&["get", &id.to_lowercase()])["id"], id.as_str());

    let text = s.ok(&["list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("[DASHBOARD]"), "{text}");
    assert_eq!(
        s.json(&["list", "--scope", "sec"]).as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        s.json(&["list", "--status", "LIVE"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        s.json(&["list", "--limit", "1"]).as_array().map(Vec::len),
        Some(1)
    );

    let u = s.json(&[
        "update",
        &id,
        "--status",
        "DEPRECATED",
        "--context",
        "reason=replaced",
    ]);
    assert_eq!(u["revision"], 2);
    assert_eq!(u["changed"], true);
    assert_eq!(u["status"], "DEPRECATED");
    assert!(u["config"].as_str().expect("config").contains("DEPRECATED"));
    let same = s.json(&["update", &id, "--status", "DEPRECATED"]);
    assert_eq!(same["changed"], false);
    assert_eq!(same["revision"], 2);

    let h = s.json(&["history", &id]);
    let revs: Vec<&Value> = h
        .as_array()
        .expect("array")
        .iter()
        .map(|r| &r["revision"])
        .collect();
    assert_eq!(revs, [1, 2]);
    assert_eq!(h[0]["status"], "DEV");
    assert_eq!(h[1]["status"], "DEPRECATED");
    assert_eq!(
        s.json(&["list", "--status", "DEPRECATED"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn entries_survive_across_processes() {
    let s = Scratch::new();
    let e = s.add("Durable rule", &[]);
    let got = s.json(&["get", e["id"].as_str().expect("id")]);
    assert_eq!(got["hash"], e["hash"]);
    assert_eq!(got["config"], e["config"]);
}

#[test]
fn plugins_lists_every_stage() {
    let s = Scratch::new();
    let p = s.json(&["plugins"]);
    let stages: Vec<&str> = p
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["stage"].as_str().expect("stage"))
        .collect();
    assert_eq!(
        stages,
        ["cache", "generator", "validator", "storage", "router"]
    );
    assert_eq!(p[3]["name"], "storage-redb");
    for row in p.as_array().expect("array") {
        assert_eq!(row["builtin"], true, "the defaults are built in: {row}");
        assert_eq!(row["path"], Value::Null, "{row}");
        assert!(!row["version"].as_str().expect("version").is_empty());
    }
    let text = s.ok(&["plugins"]);
    assert!(
        text.lines().any(|l| l.starts_with("storage")
            && l.contains("storage-redb")
            && l.ends_with("built in")),
        "{text}"
    );

    // The same plugins from their library files, named by file name (in the plugin directory,
    // the executable's).
    let files: String = [
        ("cache", "cache-quick"),
        ("generator", "generator-default"),
        ("validator", "validator-schema"),
        ("storage", "storage-redb"),
        ("router", "router-hash"),
    ]
    .iter()
    .map(|(stage, name)| {
        let file = lib_path(name);
        let file = file.file_name().expect("file name").to_string_lossy();
        format!("[{stage}]\nlibrary = \"{file}\"\n")
    })
    .collect();
    s.write("registry.toml", &files);
    let p = s.json(&["plugins"]);
    for (row, name) in p.as_array().expect("array").iter().zip([
        "cache-quick",
        "generator-default",
        "validator-schema",
        "storage-redb",
        "router-hash",
    ]) {
        assert_eq!(row["builtin"], false, "{row}");
        assert_eq!(row["name"], name, "{row}");
        assert_eq!(
            row["path"].as_str().map(PathBuf::from),
            Some(lib_path(name)),
            "{row}"
        );
    }
    // And they work as plugins: a registry made through them reads back.
    let e = s.add("Loaded through the plugin libraries", &[]);
    let got = s.json(&["get", e["id"].as_str().expect("id")]);
    assert_eq!(got["hash"], e["hash"]);
}

#[test]
fn config_file_and_environment() {
    let s = Scratch::new();
    s.write("custom.toml", "data_dir = \"elsewhere\"\n[schema]\nscope = [\"NET\", \"APP\"]\n[schema.defaults]\nscope = \"APP\"\n");
    let e = s.add("Open port audit", &["--config", "custom.toml"]);
    assert_eq!(e["scope"], "APP");
    assert!(s.path().join("elsewhere").is_dir());
    let (code, msg) = s.fail(&[
        "add",
        "--title",
        "x",
        "--scope",
        "SEC",
        "--config",
        "custom.toml",
    ]);
    assert_eq!(code, 1);
    assert!(msg.contains("allowed values are NET, APP"), "{msg}");

    let out = s
        .command(&["add", "--title", "env rule", "--format", "json"])
        .env("REGISTRY_DATA_DIR", s.path().join("from-env"))
        .env("REGISTRY_URL", "ignored: not a registry.toml key")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.path().join("from-env").is_dir());
}

#[test]
fn registry_toml_in_the_working_directory_is_used() {
    let s = Scratch::new();
    s.write("registry.toml", "data_dir = \"here\"\n");
    s.add("Found by default", &[]);
    assert!(s.path().join("here").is_dir());
}

#[test]
fn shipped_registry_toml_is_valid() {
    let s = Scratch::new();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry.toml");
    let text = std::fs::read_to_string(shipped).expect("shipped registry.toml");
    s.write("registry.toml", &text);
    // Copied alone, it renders with the built-in templates.
    let e = s.add("Security rule from the shipped config", &[]);
    assert_eq!(e["scope"], "SEC");
    assert!(s.data_dir().is_dir());
    let config = e["config"].as_str().expect("config");
    assert!(
        config.contains("threat_level"),
        "SEC filters from templates/SEC.yaml: {config}"
    );

    // With templates_dir set, it renders from the directory beside it: a placeholder that does
    // not exist there is a configuration error naming it.
    assert!(text.contains("\n# templates_dir = \"templates\"\n"));
    s.write(
        "registry.toml",
        &text.replace(
            "\n# templates_dir = \"templates\"\n",
            "\ntemplates_dir = \"templates\"\n",
        ),
    );
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates");
    std::fs::create_dir(s.path().join("templates")).expect("templates dir");
    for file in std::fs::read_dir(templates).expect("shipped templates") {
        let file = file.expect("dir entry").path();
        if file.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(
                &file,
                s.path()
                    .join("templates")
                    .join(file.file_name().expect("name")),
            )
            .expect("copy");
        }
    }
    let from_dir = s.add("Another security rule", &[]);
    assert!(
        from_dir["config"]
            .as_str()
            .is_some_and(|c| c.contains("threat_level")),
        "{from_dir}"
    );
    let default = std::fs::read_to_string(s.path().join("templates/default.yaml")).expect("read");
    s.write(
        "templates/default.yaml",
        &default.replacen("title: \"{{title}}\"", "title: \"{{titel}}\"", 1),
    );
    let (code, msg) = s.fail(&["add", "--title", "another"]);
    assert_eq!(code, 2);
    assert!(msg.contains("unknown placeholder `{{titel}}`"), "{msg}");
}

#[test]
fn concurrent_processes_get_distinct_ids() {
    let s = Scratch::new();
    let children: Vec<_> = (0..8)
        .map(|i| {
            s.command(&[
                "add",
                "--title",
                &format!("parallel rule {i}"),
                "--scope",
                "SEC",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn registry")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let mut ids = s.ids();
    assert_eq!(ids.len(), 8);
    ids.dedup();
    assert_eq!(ids.len(), 8, "duplicate ids: {ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("SEC-RUL-")));
}

/// `update --if-revision N`: two updates from revision 1, one after the other, as two users who
/// both read revision 1 would send them. The first writes revision 2; the second is refused by
/// storage's compare-and-set (exit 1, naming the revision found) and writes nothing.
#[test]
fn update_if_revision_refuses_a_stale_revision() {
    let s = Scratch::new();
    let id = s.add("Rotate access keys", &["--scope", "SEC"])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let first = s.json(&[
        "update",
        &id,
        "--status",
        "DEPRECATED",
        "--if-revision",
        "1",
    ]);
    assert_eq!(first["revision"], 2);
    assert_eq!(first["changed"], true);

    let (code, message) = s.fail(&[
        "update",
        &id,
        "--context",
        "reason=mine",
        "--if-revision",
        "1",
    ]);
    assert_eq!(code, 1, "{message}");
    assert_eq!(
        message,
        format!(
            "entry {id} is at revision 2, not 1 as --if-revision says: nothing was written \
             (read it again, then retry)"
        )
    );
    // The same change that is already stored, from the stale revision: still refused.
    let (code, _) = s.fail(&[
        "update",
        &id,
        "--status",
        "DEPRECATED",
        "--if-revision",
        "1",
    ]);
    assert_eq!(code, 1);

    let history = s.json(&["history", &id]);
    let history = history.as_array().expect("history is an array");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1]["status"], "DEPRECATED");
    assert!(history[1]["context"].get("reason").is_none(), "{history:?}");

    // From the revision now stored, the update applies on top of it.
    let second = s.json(&[
        "update",
        &id,
        "--context",
        "reason=mine",
        "--if-revision",
        "2",
    ]);
    assert_eq!(second["revision"], 3);
    assert_eq!(second["status"], "DEPRECATED");
    assert_eq!(second["context"]["reason"], "mine");
    // Revisions start at 1: a usage error.
    let out = s.run(&["update", &id, "--status", "LIVE", "--if-revision", "0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--if-revision"),
        "{out:?}"
    );
    assert_eq!(s.json(&["history", &id]).as_array().map(Vec::len), Some(3));
}

#[test]
fn a_template_for_an_undeclared_scope_is_left_out_with_a_note() {
    let s = Scratch::new();
    std::fs::create_dir(s.path().join("t")).expect("dir");
    s.write("t/default.yaml", "rule:\n  title: \"{{title}}\"\n");
    s.write(
        "t/SEC.yaml",
        "rule:\n  title: \"{{title}}\"\n  security: true\n",
    );
    s.write("t/RETIRED.yaml", "rule:\n  old: true\n");
    s.write(
        "registry.toml",
        "[schema]\nscope = [\"SEC\", \"OPS\"]\n[generator.config]\ntemplates_dir = \"t\"\n",
    );
    let out = s.run(&[
        "add",
        "--title",
        "Block SSH",
        "--scope",
        "SEC",
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // With --format json, stderr is JSON lines: the note is one.
    let note: Value = serde_json::from_str(stderr.trim_end()).expect("one JSON line");
    assert_eq!(
        note["note"]["message"],
        "template file `t/RETIRED.yaml` is not used: `RETIRED` is not a scope of the schema \
         (SEC, OPS); declare it in schema.scope to use it"
    );
    let added: Value = serde_json::from_slice(&out.stdout).expect("json");
    let config = added["config"].as_str().expect("config");
    assert!(config.contains("security: true"), "{config}");
    assert!(!config.contains("old:"), "{config}");
    // In text, the note is a line of its own.
    let text = s.run(&["add", "--title", "Restart the workers", "--scope", "OPS"]);
    assert!(text.status.success());
    assert!(
        String::from_utf8_lossy(&text.stderr)
            .starts_with("note: template file `t/RETIRED.yaml` is not used: "),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
}

#[test]
fn update_unsets_context_keys_and_says_when_nothing_changed() {
    let s = Scratch::new();
    let id = s.add(
        "Rotate the keys",
        &["--scope", "SEC", "--context", "env=prod"],
    )["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let set = s.ok(&[
        "update",
        &id,
        "--context",
        "team=net",
        "--context",
        "ticket=T-1",
    ]);
    assert!(
        set.starts_with(&format!("updated   {id} to revision 2\n")),
        "{set}"
    );

    let unset = s.json(&[
        "update",
        &id,
        "--unset-context",
        "ticket",
        "--unset-context",
        "env",
    ]);
    assert_eq!(unset["changed"], true);
    assert_eq!(unset["revision"], 3);
    assert_eq!(unset["context"], serde_json::json!({ "team": "net" }));
    let history = s.json(&["history", &id]);
    assert_eq!(
        history[1]["context"]["ticket"], "T-1",
        "the earlier revisions keep it"
    );

    // Nothing to change: no revision, and the text says so.
    let same = s.ok(&["update", &id, "--context", "team=net"]);
    assert!(
        same.starts_with(&format!("unchanged {id}: no revision written\n")),
        "{same}"
    );
    assert!(!same.contains("to revision"), "{same}");
    let same = s.json(&["update", &id, "--context", "team=net"]);
    assert_eq!(
        (&same["changed"], &same["revision"]),
        (&false.into(), &3.into())
    );
    assert_eq!(s.json(&["history", &id]).as_array().map(Vec::len), Some(3));

    // A key that is not set, or set and unset at once: one line, nothing written.
    let (code, message) = s.fail(&["update", &id, "--unset-context", "ticket"]);
    assert_eq!(code, 1);
    assert_eq!(
        message,
        "context key `ticket` is not set: the keys set are team"
    );
    let (code, message) = s.fail(&[
        "update",
        &id,
        "--context",
        "team=ops",
        "--unset-context",
        "team",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        message,
        "context key `team` is both set and removed: give one or the other"
    );
    let (_, error) = s.json_fail(&["update", &id, "--unset-context", "nope"]);
    assert_eq!(
        (&error["code"], &error["field"]),
        (&"not-found".into(), &"context".into())
    );
    assert_eq!(s.json(&["history", &id]).as_array().map(Vec::len), Some(3));
}
