//! `registry train` and `registry predict`.

use serde_json::Value;

use crate::Scratch;

/// A small training set where the title's words decide the type and the scope.
fn training_lines() -> String {
    let mut lines = String::new();
    let topics = [
        ("firewall port ssh ingress", "SEC", "RULES"),
        ("cron job restart worker", "OPS", "SCRIPT"),
        ("panel chart widget prices", "DASHBOARD", "CONFIG"),
    ];
    for i in 0..30 {
        for (words, scope, kind) in topics {
            let word = words.split(' ').nth(i % 4).unwrap_or(words);
            lines.push_str(&format!(
                "{{\"title\": \"{word} item {i}\", \"scope\": \"{scope}\", \"type\": \"{kind}\", \"status\": \"LIVE\"}}\n"
            ));
        }
    }
    lines
}

#[test]
fn predict_without_a_model_uses_keyword_rules_and_says_so() {
    let s = Scratch::new();
    let text = s.ok(&["predict", "--title", "Nightly security scan"]);
    assert!(text.contains("scope    SEC"), "{text}");
    assert!(text.contains("keyword"), "{text}");
    assert!(
        text.contains("no field came from a trained model"),
        "{text}"
    );
    assert!(s.ids().is_empty(), "predict stored something");
}

#[test]
fn train_from_a_file_then_predict_and_add_use_the_model() {
    let s = Scratch::new();
    let file = s.write("train.jsonl", &training_lines());
    let report = s.json(&[
        "train",
        "--from",
        file.to_str().expect("utf-8 path"),
        "--folds",
        "3",
    ]);
    assert_eq!(report["examples"], 90);
    let fields = report["fields"].as_array().expect("fields");
    let kind = fields
        .iter()
        .find(|f| f["field"] == "type")
        .expect("type field");
    assert_eq!(kind["classes"], 3);
    assert_eq!(kind["modelled"], true);
    let accuracy = kind["accuracy"].as_f64().expect("accuracy");
    let baseline = kind["baseline"].as_f64().expect("baseline");
    assert!(
        accuracy > baseline + 0.3,
        "accuracy {accuracy} vs baseline {baseline}"
    );
    let status = fields
        .iter()
        .find(|f| f["field"] == "status")
        .expect("status field");
    assert_eq!(status["modelled"], false, "one class: not modelled");
    assert!(std::path::Path::new(report["saved_to"].as_str().expect("path")).is_file());

    let p = s.json(&["predict", "--title", "ssh firewall item 99"]);
    assert_eq!(p["type"]["value"], "RULES");
    assert_eq!(p["type"]["source"], "model");
    let confidence = p["type"]["confidence"].as_f64().expect("confidence");
    assert!((0.0..=1.0).contains(&confidence));

    let added = s.add("chart widget item 123", &[]);
    assert_eq!(added["type"], "CONFIG");
    assert_eq!(added["fields"]["type"]["source"], "model");
}

#[test]
fn train_on_the_registered_entries() {
    let s = Scratch::new();
    for i in 0..6 {
        s.add(&format!("firewall rule {i}"), &["--scope", "SEC"]);
        s.add(
            &format!("restart script {i}"),
            &["--scope", "OPS", "--type", "SCRIPT"],
        );
    }
    let report = s.json(&["train", "--holdout", "0.25"]);
    assert_eq!(report["examples"], 12);
}

#[test]
fn training_data_outside_the_schema_names_the_line_and_field() {
    let s = Scratch::new();
    let file = s.write(
        "bad.jsonl",
        "{\"title\": \"ok\", \"scope\": \"SEC\"}\n{\"title\": \"x\", \"type\": \"RULEZ\"}\n",
    );
    let (code, msg) = s.fail(&["train", "--from", "bad.jsonl"]);
    assert_eq!(code, 1);
    assert!(
        msg.starts_with("bad.jsonl:2: type `RULEZ` is not in the schema"),
        "{msg}"
    );
    let file2 = s.write("garbage.jsonl", "{\"title\": \"ok\"}\nnot json\n");
    let (code, msg) = s.fail(&["train", "--from", file2.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(msg.contains("garbage.jsonl:2: "), "{msg}");
    let _ = file;
}

#[test]
fn nothing_to_train_on() {
    let s = Scratch::new();
    let (code, msg) = s.fail(&["train"]);
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("no registry in"), "{msg}");
    assert!(!s.data_dir().exists(), "a read creates nothing");
    let (code, msg) = s.fail(&["train", "--folds", "1"]);
    assert_eq!(code, 1);
    assert!(msg.contains("at least 2 folds"), "{msg}");
}

#[test]
fn predict_from_a_file_writes_one_line_per_request() {
    let s = Scratch::new();
    s.write(
        "in.jsonl",
        "{\"title\": \"security scan\"}\n\n{\"title\": \"a\\nb\"}\n{\"title\": \"ops cleanup\", \"context\": {\"env\": \"prod\"}}\n",
    );
    let out = s.run(&["predict", "--from", "in.jsonl"]);
    assert_eq!(out.status.code(), Some(1), "one bad line");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["scope"]["value"], "SEC");
    assert_eq!(lines[1]["line"], 3);
    assert!(
        lines[1]["error"]
            .as_str()
            .expect("error")
            .contains("line break")
    );
    assert_eq!(lines[2]["scope"]["value"], "OPS");
}

#[test]
fn training_on_the_registry_learns_only_values_a_person_chose() {
    let s = Scratch::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        // Scope given; type, variant and status filled in by the generator.
        let e = s.add(&format!("firewall rule {i}"), &["--scope", "SEC"]);
        ids.push(e["id"].as_str().expect("id").to_owned());
    }
    // Nothing given at all: no example.
    s.add("a rule nobody labelled", &[]);
    // A status a person set by an update is a label, although the generator chose the first.
    s.ok(&["update", &ids[0], "--status", "REQUIRED"]);
    s.ok(&["update", &ids[1], "--status", "REQUIRED"]);
    let out = s.run(&["train", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["examples"], 6, "{report}");
    let examples = |field: &str| {
        report["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["field"] == field)
            .map(|f| f["examples"].clone())
            .expect(field)
    };
    assert_eq!(examples("scope"), 6);
    assert_eq!(examples("type"), 0, "defaults are not labels");
    assert_eq!(examples("variant"), 0);
    assert_eq!(examples("status"), 2, "updated values are");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not trained on 1 entry: every field of it was filled in by the generator"),
        "{stderr}"
    );
}
