//! The model's life cycle through the public API: training, using the model at once, saving,
//! loading, damaged files, schema changes and the training report.

use std::fs;
use std::path::Path;

use registry_core::{
    Context, ErrorCode, Evaluation, Field, Fields, FromConfig, Generator, Prediction, Request,
    Schema, Source, TrainOptions,
};
use registry_generator_default::{Config, DefaultGenerator};

use crate::{generator_in, setup};

/// `n` examples labelled with every field: example `i` takes the `i`-th value of each field (wrapping),
/// and its title names each value with a word of its own (`wscope3`-like tokens), plus noise.
pub fn examples(schema: &Schema, n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let fields = Fields::from_fn(|f| {
                let allowed = schema.allowed(f);
                Some(allowed[i % allowed.len()].clone())
            });
            let title = Field::ALL
                .iter()
                .map(|&f| format!("w{}{}", f.name(), i % schema.allowed(f).len()))
                .chain([format!("noise{}", i % 7), "entry".to_owned()])
                .collect::<Vec<_>>()
                .join(" ");
            Request::new(&title, fields, None, Context::default()).expect("valid example")
        })
        .collect()
}

fn request(title: &str) -> Request {
    Request::new(title, Fields::default(), None, Context::default()).expect("valid request")
}

fn predict(g: &DefaultGenerator, requests: &[Request]) -> Vec<Prediction> {
    let mut out = Vec::new();
    g.predict(requests, &mut out).expect("predicts");
    assert_eq!(out.len(), requests.len());
    out
}

fn value(p: &Prediction, field: Field) -> Option<(&str, Source)> {
    p[field].as_ref().map(|g| (g.value.as_str(), g.source))
}

#[test]
fn a_trained_model_is_used_at_once_and_saved() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let g = generator_in(&schema, dir.path(), Config::default());
    let probe = request("wscope1 wtype2 security entry");
    let before = predict(&g, std::slice::from_ref(&probe));
    assert_eq!(
        value(&before[0], Field::Scope),
        Some(("SEC", Source::Keyword))
    );

    let report = g
        .train(&examples(&schema, 70), &TrainOptions::default())
        .expect("trains");
    let path = dir.path().join("model").join("generator.bin");
    assert_eq!(report.saved_to, path.display().to_string());
    assert!(path.is_file());
    assert_eq!(report.model, "logistic-regression");
    assert_eq!(report.examples, 70);
    assert_eq!(report.evaluation, "20% holdout");
    assert!(report.elapsed_ms > 0.0);

    let after = predict(&g, std::slice::from_ref(&probe));
    assert_eq!(value(&after[0], Field::Scope), Some(("SEC", Source::Model)));
    assert_eq!(
        value(&after[0], Field::Type),
        Some(("CONFIG", Source::Model))
    );
    for field in Field::ALL {
        let guess = after[0][field].as_ref().expect("every field is modelled");
        let c = guess.confidence.expect("a model's guess has a confidence");
        assert!((0.0..=1.0).contains(&c), "{field}: {c}");
    }
    // A field the request names is not proposed.
    let mut given = probe.clone();
    given.fields.kind = Some("RULES".into());
    assert!(predict(&g, &[given])[0].kind.is_none());
}

#[test]
fn a_saved_model_predicts_the_same_after_loading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    for learner in ["logistic", "naive-bayes"] {
        let config: Config = serde_json::from_value(serde_json::json!({ "learner": learner }))
            .expect("valid config");
        let trained = generator_in(&schema, dir.path(), config.clone());
        trained
            .train(&examples(&schema, 50), &TrainOptions::default())
            .expect("trains");
        let loaded = generator_in(&schema, dir.path(), config);
        let probes: Vec<Request> = [
            "wscope1 wtype2 entry",
            "wvariant5 noise3",
            "nothing the model has seen",
            "wscope6 wscope2 wstatus4 wtype1",
        ]
        .iter()
        .map(|t| request(t))
        .collect();
        let a = predict(&trained, &probes);
        let b = predict(&loaded, &probes);
        assert_eq!(a, b, "{learner}");
        assert!(
            a.iter()
                .all(|p| p.scope.as_ref().is_some_and(|g| g.source == Source::Model))
        );
    }
}

#[test]
fn training_is_deterministic() {
    let schema = Schema::default();
    let bytes = |seed: u64| {
        let dir = tempfile::tempdir().expect("temp dir");
        let g = generator_in(&schema, dir.path(), Config::default());
        let options = TrainOptions {
            evaluation: Evaluation::Folds(3),
            seed,
        };
        let report = g.train(&examples(&schema, 45), &options).expect("trains");
        let accuracy: Vec<Option<f64>> = report.fields.iter().map(|f| f.accuracy).collect();
        let file = fs::read(dir.path().join("model/generator.bin")).expect("saved");
        (file, accuracy)
    };
    assert_eq!(bytes(7), bytes(7));
}

/// The error `predict` gives for a model file that cannot be used, for the reason `reason`.
fn unusable_message(path: &Path, reason: &str) -> String {
    format!(
        "the model file {} cannot be used: {reason}; `registry train` rebuilds it",
        path.display()
    )
}

/// With `damage` done to a trained registry's model file: the generator is still built and
/// renders, `predict` fails with a `Storage` error whose message `check` accepts, `train`
/// replaces the file, and the model is used again, also by a generator built afterwards.
fn recovers_from(damage: impl FnOnce(&Path), check: impl FnOnce(&str, &Path)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let path = dir.path().join("model/generator.bin");
    generator_in(&schema, dir.path(), Config::default())
        .train(&examples(&schema, 30), &TrainOptions::default())
        .expect("trains");
    damage(&path);

    let g = DefaultGenerator::from_config(Config::default(), &setup(&schema, dir.path()))
        .expect("a damaged model file does not stop the generator from being built");
    let draft = registry_testkit::sample::draft(
        registry_testkit::sample::schema_fields(&schema, 0),
        1,
        "rendering needs no model",
        Context::default(),
    );
    let mut configs = Vec::new();
    g.render(&[draft], &mut configs).expect("renders");
    let mut out = Vec::new();
    let err = g
        .predict(&[request("security wscope3")], &mut out)
        .expect_err("the model file cannot be used");
    assert_eq!(err.code, ErrorCode::Storage);
    assert!(!err.message.contains('\n'), "{}", err.message);
    check(&err.message, &path);

    g.train(&examples(&schema, 30), &TrainOptions::default())
        .expect("train replaces the damaged file");
    let p = &predict(&g, &[request("security wscope3")])[0];
    assert_eq!(p.scope.as_ref().map(|g| g.source), Some(Source::Model));
    let again = generator_in(&schema, dir.path(), Config::default());
    let p = &predict(&again, &[request("security wscope3")])[0];
    assert_eq!(p.scope.as_ref().map(|g| g.source), Some(Source::Model));
}

/// A file damaged in its content: the reason is what the reader found.
#[test]
fn a_damaged_model_file_fails_predict_until_train_replaces_it() {
    let rewrite = |change: fn(&mut Vec<u8>)| {
        move |path: &Path| {
            let mut bytes = fs::read(path).expect("saved");
            change(&mut bytes);
            fs::write(path, bytes).expect("writable");
        }
    };
    let checksum = "its checksum does not match: the file is truncated or corrupt";
    type Change = fn(&mut Vec<u8>);
    let cases: [(Change, &str); 4] = [
        (|b| b.truncate(b.len() / 2), checksum),
        (|b| b.truncate(b.len() - 1), checksum),
        (
            |b| {
                let middle = b.len() / 2;
                b[middle] ^= 0x01;
            },
            checksum,
        ),
        (|b| b.clear(), "it is not a model file (wrong magic bytes)"),
    ];
    for (change, reason) in cases {
        recovers_from(rewrite(change), |message, path| {
            assert_eq!(message, unusable_message(path, reason));
        });
    }
}

/// Something other than a file where the model file belongs.
#[test]
fn a_directory_in_place_of_the_model_file_fails_predict_until_train_replaces_it() {
    let reason = "it is a directory, not a file";
    recovers_from(
        |path| {
            fs::remove_file(path).expect("removable");
            fs::create_dir(path).expect("a directory");
        },
        |message, path| assert_eq!(message, unusable_message(path, reason)),
    );

    // A directory with something in it is not removed: train says so, and succeeds once it
    // is moved away.
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let path = dir.path().join("model/generator.bin");
    fs::create_dir_all(path.join("kept")).expect("a directory");
    let g = generator_in(&schema, dir.path(), Config::default());
    let mut out = Vec::new();
    let err = g
        .predict(&[request("security")], &mut out)
        .expect_err("a directory is not a model");
    assert_eq!(err.message, unusable_message(&path, reason));
    let err = g
        .train(&examples(&schema, 30), &TrainOptions::default())
        .expect_err("cannot remove a directory with something in it");
    assert_eq!(err.code, ErrorCode::Storage);
    let expected = format!(
        "cannot save the model: {} is a directory and cannot be removed (",
        path.display()
    );
    assert!(
        err.message.starts_with(&expected) && err.message.ends_with("): move it away"),
        "{}",
        err.message
    );
    assert!(path.join("kept").is_dir());
    fs::remove_dir_all(&path).expect("removable");
    g.train(&examples(&schema, 30), &TrainOptions::default())
        .expect("trains");
}

/// A FIFO where the model file belongs is not opened: opening it would wait for a writer. A
/// writer waiting on it here is only let go at the end, so building the generator cannot
/// wait for it.
#[cfg(unix)]
#[test]
fn a_fifo_in_place_of_the_model_file_does_not_block_the_generator() {
    recovers_from(
        |path| {
            fs::remove_file(path).expect("removable");
            let made = std::process::Command::new("mkfifo")
                .arg(path)
                .status()
                .expect("mkfifo runs");
            assert!(made.success(), "mkfifo {}", path.display());
            let fifo = path.to_owned();
            // A writer, so that a build that did open the FIFO would read it to its end and
            // fail instead of waiting forever.
            std::thread::spawn(move || {
                let _ = fs::OpenOptions::new().write(true).open(fifo);
            });
        },
        |message, path| {
            assert_eq!(message, unusable_message(path, "it is a FIFO, not a file"));
            // Lets the writer go before `train` renames over the FIFO.
            let _ = fs::File::open(path);
        },
    );
}

/// A model file that cannot be read: a symbolic link to itself always, and a file without read
/// permission when the tests do not run with the power to read it anyway.
#[cfg(unix)]
#[test]
fn an_unreadable_model_file_fails_predict_until_train_replaces_it() {
    use std::os::unix::fs::PermissionsExt;

    recovers_from(
        |path| {
            fs::remove_file(path).expect("removable");
            std::os::unix::fs::symlink(path, path).expect("a symbolic link");
        },
        |message, path| {
            let prefix = unusable_message(path, "it cannot be read: ");
            let prefix = &prefix[..prefix.find("; `registry").expect("the fix")];
            assert!(message.starts_with(prefix), "{message}");
        },
    );
    let readable_anyway = std::cell::Cell::new(false);
    recovers_from(
        |path| {
            fs::set_permissions(path, fs::Permissions::from_mode(0o000)).expect("chmod");
            readable_anyway.set(fs::read(path).is_ok());
            if readable_anyway.get() {
                // Privileged tests read it whatever its mode: damage it another way.
                fs::write(path, b"").expect("writable");
            }
        },
        |message, path| {
            let reason = if readable_anyway.get() {
                "it is not a model file (wrong magic bytes)".to_owned()
            } else {
                "it cannot be read: Permission denied (os error 13)".to_owned()
            };
            assert_eq!(message, unusable_message(path, &reason));
        },
    );
}

/// Without a model file, the keyword rules predict, as before any training.
#[test]
fn without_a_model_file_the_keyword_rules_predict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let g = generator_in(&schema, dir.path(), Config::default());
    let p = &predict(&g, &[request("security wscope3")])[0];
    assert_eq!(value(p, Field::Scope), Some(("SEC", Source::Keyword)));
    assert!(!dir.path().join("model").exists());
}

#[test]
fn fields_whose_classes_left_the_schema_fall_back_to_keywords() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    generator_in(&schema, dir.path(), Config::default())
        .train(&examples(&schema, 40), &TrainOptions::default())
        .expect("trains");
    // The same schema without `MULTI-ETL`: the type model could propose it, so it is not used.
    let list = |f: Field| schema.allowed(f).to_vec();
    let narrower = Schema::new(
        Fields {
            scope: list(Field::Scope),
            kind: vec!["RULES".into(), "SCRIPT".into(), "CONFIG".into()],
            variant: list(Field::Variant),
            status: list(Field::Status),
        },
        "v2.9".into(),
        Fields::default(),
    )
    .expect("valid schema");
    let g = generator_in(&narrower, dir.path(), Config::default());
    let p = &predict(&g, &[request("security wtype3 entry")])[0];
    assert_eq!(value(p, Field::Type), Some(("RULES", Source::Keyword)));
    assert_eq!(p.scope.as_ref().map(|g| g.source), Some(Source::Model));
}

#[test]
fn context_is_learnt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let g = generator_in(&schema, dir.path(), Config::default());
    let teams = [("alpha", "SEC"), ("beta", "OPS"), ("gamma", "ETL")];
    let examples: Vec<Request> = (0..60)
        .map(|i| {
            let (team, scope) = teams[i % 3];
            let context =
                Context::new([("team".to_owned(), team.to_owned())]).expect("valid context");
            let fields = Fields {
                scope: Some(scope.to_owned()),
                ..Fields::default()
            };
            Request::new(&format!("weekly task {i}"), fields, None, context).expect("valid")
        })
        .collect();
    let report = g
        .train(&examples, &TrainOptions::default())
        .expect("trains");
    assert_eq!(report.fields[0].accuracy, Some(1.0));
    for (team, scope) in teams {
        let mut r = request("weekly task");
        r.context = Context::new([("team".to_owned(), team.to_owned())]).expect("valid");
        assert_eq!(
            value(&predict(&g, &[r])[0], Field::Scope),
            Some((scope, Source::Model))
        );
    }
}

#[test]
fn evaluation_options_are_reported_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let config: Config =
        serde_json::from_value(serde_json::json!({ "max_examples": 24 })).expect("valid config");
    let g = generator_in(&schema, dir.path(), config);
    let examples = examples(&schema, 30);
    let folds = |k: u32| TrainOptions {
        evaluation: Evaluation::Folds(k),
        seed: 3,
    };
    let report = g.train(&examples, &folds(4)).expect("trains");
    assert_eq!(report.examples, 24);
    assert_eq!(
        report.evaluation,
        "4-fold stratified cross-validation; sampled 24 of 30 examples (max_examples)"
    );
    for f in &report.fields {
        assert!(f.modelled, "{}", f.field);
        assert_eq!(f.examples, 24);
        let accuracy = f.accuracy.expect("measured");
        assert!((0.0..=1.0).contains(&accuracy));
        assert!((0.0..=1.0).contains(&f.baseline));
        assert!(f.train_ms >= 0.0);
    }
    // Every field's title word gives its value away.
    assert!(
        report.fields.iter().all(|f| f.accuracy == Some(1.0)),
        "{report:?}"
    );
    let err = g.train(&examples, &folds(25)).expect_err("too many folds");
    assert_eq!(err.code, ErrorCode::Invalid);
    assert_eq!(
        err.message,
        "25 folds need at least 25 examples: there are 24"
    );
    let err = g
        .train(
            &examples,
            &TrainOptions {
                evaluation: Evaluation::Holdout(1.5),
                seed: 1,
            },
        )
        .expect_err("bad fraction");
    assert!(
        err.message
            .starts_with("holdout fraction 1.5 is out of range")
    );
}

#[test]
fn a_model_that_cannot_be_saved_is_not_used() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let schema = Schema::default();
    let g = generator_in(&schema, &data, Config::default());
    // The data directory turns out to be a file: `model/` cannot be created under it.
    fs::write(&data, b"").expect("writable");
    let err = g
        .train(&examples(&schema, 30), &TrainOptions::default())
        .expect_err("cannot save");
    assert_eq!(err.code, ErrorCode::Storage);
    assert!(
        err.message.starts_with("cannot save the model: "),
        "{}",
        err.message
    );
    let p = &predict(&g, &[request("security wscope3")])[0];
    assert_eq!(value(p, Field::Scope), Some(("SEC", Source::Keyword)));
}
