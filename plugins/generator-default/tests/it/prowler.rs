//! The model on real data: 1,631 Prowler security-check titles labelled with their resource group
//! (17 classes, an empty group being `UNGROUPED`), predicted from the title alone.

use registry_core::{Context, Evaluation, Fields, Generator, Request, Schema, TrainOptions};
use registry_generator_default::Config;

use crate::generator_in;

const DATASET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/prowler/checks.jsonl"
);

const GROUPS: [&str; 17] = [
    "IAM",
    "NETWORK",
    "DATABASE",
    "SECURITY",
    "CONTAINER",
    "COMPUTE",
    "STORAGE",
    "UNGROUPED",
    "MONITORING",
    "COLLABORATION",
    "GOVERNANCE",
    "AI_ML",
    "DEVOPS",
    "MESSAGING",
    "SERVERLESS",
    "ANALYTICS",
    "API_GATEWAY",
];

/// The resource groups as the type field, and one value for each other field.
fn schema() -> Schema {
    let one = |v: &str| vec![v.to_owned()];
    Schema::new(
        Fields {
            scope: one("CHECK"),
            kind: GROUPS.iter().map(|g| (*g).to_owned()).collect(),
            variant: one("CHECK"),
            status: one("CHECK"),
        },
        "v5.46".into(),
        Fields::default(),
    )
    .expect("valid schema")
}

fn examples() -> Vec<Request> {
    let text = std::fs::read_to_string(DATASET).expect("the Prowler dataset is in data/prowler/");
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let check: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            let group = check["resource_group"]
                .as_str()
                .unwrap_or("")
                .to_uppercase();
            let group = if group.is_empty() {
                "UNGROUPED".to_owned()
            } else {
                group
            };
            let fields = Fields {
                kind: Some(group),
                ..Fields::default()
            };
            let title = check["title"].as_str().expect("a title");
            Request::new(title, fields, None, Context::default()).expect("a valid request")
        })
        .collect()
}

#[test]
fn beats_the_majority_baseline_by_far() {
    let examples = examples();
    assert_eq!(examples.len(), 1631);
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = schema();
    let options = TrainOptions {
        evaluation: Evaluation::Holdout(0.2),
        seed: 42,
    };
    for (learner, floor) in [("logistic", 0.75), ("naive-bayes", 0.68)] {
        let config: Config = serde_json::from_value(serde_json::json!({ "learner": learner }))
            .expect("valid config");
        let g = generator_in(&schema, dir.path(), config);
        let report = g.train(&examples, &options).expect("trains");
        let kind = &report.fields[1];
        assert_eq!(kind.field, "type");
        assert_eq!((kind.examples, kind.classes), (1631, 17));
        let accuracy = kind.accuracy.expect("measured");
        assert!(
            accuracy > floor && accuracy > kind.baseline + 0.5,
            "{learner}: accuracy {accuracy}, baseline {}",
            kind.baseline
        );
        assert!(kind.baseline < 0.25, "{}", kind.baseline);
        assert!(report.fields.iter().filter(|f| f.modelled).count() == 1);
    }
}
