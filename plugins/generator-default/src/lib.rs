//! The default generator: a trained model, or else keyword rules, fills the header fields a
//! request leaves empty, and YAML templates render the config.
//!
//! # Predicting fields
//!
//! For each field a request leaves empty, the generator asks the trained model if it has one
//! for the field, else the keyword rules, else proposes nothing and the pipeline applies the
//! schema's default.
//!
//! # Learning
//!
//! [`Generator::train`] learns one classifier per enumerated field from example requests: the
//! title's words and word pairs and the context's words and `key=value` pairs are hashed into
//! `features` buckets, and multinomial logistic regression with an L2 penalty (or, with
//! `learner = "naive-bayes"`, multinomial naive Bayes) learns the field's value from them. The
//! model's guesses carry the softmax probability of the value chosen as their confidence
//! ([`Source::Model`]). Training measures the learner first, on a holdout part or by stratified
//! cross-validation, against always guessing the most frequent value, then fits the kept model
//! on every example, saves it to `model/generator.bin` in the data directory and uses it at
//! once. A generator built later finds the file and uses it too; without the file, the keyword
//! rules predict. A file that cannot be used (damaged, unreadable, a directory or a FIFO in its
//! place) does not stop the generator from being built, so the commands that only read entries
//! keep working: `predict`, and so registering, fails with a `Storage` error naming the file,
//! the reason and the fix (`registry train`), until `train` replaces the file. The file's type
//! is checked before it is opened, so a FIFO cannot make building the generator wait. A field with fewer than two
//! values among the examples is not modelled; a field whose learnt values the schema no longer
//! declares is left to the keyword rules.
//!
//! Measured on 1,631 security-check titles (`examples/measure.rs`; 5-fold stratified
//! cross-validation, 4,096 buckets, the title alone), logistic regression predicted the resource
//! group (17 values) with 0.82 accuracy and the cloud provider (20 values) with 0.84, where
//! always guessing the most frequent value scores 0.16 and 0.41; naive Bayes scored 0.74 and
//! 0.77. One logistic-regression fit on all the titles took about 70 to 110 ms, one naive
//! Bayes fit 30 ms; predicting four fields took about 2 µs a request.
//!
//! Design decision: the learners are linear models over hashed sparse features. A request's
//! features are a few dozen buckets, so prediction is a few sparse dot products; hashing needs
//! no vocabulary that grows with the data. smartcore supplies naive Bayes (the alternative
//! learner). Its logistic regression, which works on dense matrices, took minutes on a few
//! thousand titles; its L-BFGS, driving our sparse objective, took 0.44 s per fit, three
//! quarters of it in the optimiser's per-element bookkeeping, so the optimiser is our own
//! (`model/lbfgs.rs`, 68 ms for the same fit and the same accuracy).
//!
//! # Keyword rules
//!
//! Each rule lists words and the values they suggest. A rule matches a request when one of its
//! words starts a word of the title or of a context value, ignoring case: `alert` matches
//! "Alerts" and "alerting", while `ops` does not match "stops" and `etl` does not match "kettle".
//! Words are the runs of letters and digits. For each field the request leaves empty, the first
//! matching rule (in rule order) that sets the field decides; a field no rule sets is left empty,
//! and the pipeline then applies the schema's default.
//!
//! The built-in rules reproduce the original system's keyword if/else, tried in this order:
//!
//! | words               | scope     | type      | status   |
//! |---------------------|-----------|-----------|----------|
//! | `security`          | SEC       | RULES     | REQUIRED |
//! | `ops`, `devops`     | OPS       | SCRIPT    |          |
//! | `dashboard`         | DASHBOARD | CONFIG    |          |
//! | `etl`               | ETL       | MULTI-ETL |          |
//! | `alert`             | ALERT     |           |          |
//! | `bash`, `shell`     | BASH      | SCRIPT    |          |
//!
//! The last two are additions; `devops` is listed because the original's substring test caught it.
//! With a custom schema, built-in values the schema does not declare are dropped silently. The
//! `keywords` config key replaces the built-in rules altogether, and there a value the schema does
//! not declare is an error.
//!
//! Keyword rules are not calibrated estimates, so their guesses carry no confidence
//! ([`Guess::confidence`] is `None`, [`Source::Keyword`]).
//!
//! # Rendering configs
//!
//! Configs are rendered from YAML templates: a `default` template and optional templates named
//! after scopes, read from the `templates_dir` directory (`default.yaml`, `SEC.yaml`, ...), given
//! inline under `templates`, or, with neither, built in. A template's first document (in
//! `default`) is the base; later documents are overlays, deep-merged onto it when their `when:`
//! conditions on the context hold, and a scope's documents apply to that scope only. Placeholders
//! in string values (`"{{title}}"`, `"{{header}}"`, `"{{context.env | development}}"`, ...) are
//! filled with the entry's header fields and context; `templates/README.md` in the repository is
//! the reference. A template that does not parse or names an unknown placeholder is a `Config`
//! error when the generator is built, naming the template, its file and the place in it.
//!
//! The built-in templates (the repository's `templates/` directory, compiled in) keep the
//! original system's shape: a `dashboard` section (title, version, the entry's header in both
//! forms, security settings that are stricter when the context says `env=prod` or
//! `env=production`, the filter fields of the scope, deployment and performance settings), a
//! `governance` section (id, the four fields, the context's `owner`), and the request context as
//! a sorted mapping when there is one. Rendering is deterministic: no times, no randomness, keys
//! in the templates' order.
//!
//! Design decision: templates are parsed, checked and merged once, into trees whose strings are
//! already split into text and placeholders; rendering walks the tree of the draft's scope and
//! overlays as a `Serialize` view bound to the draft, written by the block-YAML writer of
//! `registry-yaml`, the crate that defines the YAML subset this generator writes and the
//! validator reads (it was this crate's `emit` module; the bytes it writes did not change when it
//! moved, and must not: configs' bytes feed their hashes). Text substitution into YAML source
//! was rejected: it gets the
//! quoting of titles with `:`, `#`, quotes or a leading `[` wrong, and would parse YAML per
//! draft. `yaml_serde` parses the templates and remains the reference for output: the tests write
//! the same view with both and check that they read back as the same YAML values. It was set
//! aside for writing because its emitter, a translation of libyaml, renders this config about
//! 20,000–30,000 times a second on one core; the writer does several times that (about 300,000
//! with the built-in templates).
//!
//! Each merged tree is then compiled once, on first use, into a program: the text all its configs
//! share (keys, indentation, fixed values), already written in the writer's layout, and the steps
//! that write the draft's values between. Rendering a draft runs the program with buffers kept
//! from batch to batch, so a config costs one allocation, its own string; the `Serialize` view
//! remains the reference the tests hold programs to, and renders the trees a program cannot
//! express. Through the plugin interface this took a render from about 4–7 µs to 1.3–2.2 µs.

mod keywords;
mod model;
mod pool;
mod render;
mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use registry_core::{
    Draft, DraftRef, ErrorCode, Field, Fields, FromConfig, Generator, GuessRef, Prediction,
    PredictionRef, Request, RequestRef, Setup, StageError, StageResult, TrainOptions, TrainReport,
};
use serde::Deserialize;

pub use keywords::KeywordRule;
use keywords::Rules;
pub use model::Learner;
use model::{MAX_DIMS, MIN_DIMS, Model, Scratch};
use pool::Pool;
use template::Templates;

#[cfg(doc)]
use registry_core::{Guess, Source};

/// Where the model is kept, under the data directory.
const MODEL_FILE: &str = "model/generator.bin";

/// The generator's `[generator.config]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `keywords`: the keyword rules, tried in order. When given, they replace the built-in rules
    /// (see the crate documentation); an empty list turns keyword prediction off. Default: the
    /// built-in rules.
    pub keywords: Option<Vec<KeywordRule>>,
    /// `learner`: `"logistic"` (multinomial logistic regression) or `"naive-bayes"`. Default:
    /// `"logistic"`.
    pub learner: Learner,
    /// `features`: how many hash buckets the text features are spread over, 16 to 1048576. More
    /// buckets mean fewer unrelated words sharing a weight, and a larger model. A saved model
    /// keeps the number it was trained with. Default: 4096.
    pub features: u32,
    /// `l2`: the L2 penalty of logistic regression, added to the mean cross-entropy as
    /// `l2 / 2 · ‖W‖²`; at least 0, larger is smoother. Default: 1e-5, the best of 3e-6 to 1e-3
    /// on the Prowler titles.
    pub l2: f64,
    /// `max_iterations`: the most L-BFGS iterations of one logistic-regression fit, 1 to 10000.
    /// Default: 100.
    pub max_iterations: u32,
    /// `max_examples`: the most examples trained on, at least 2; above it a sample of this many,
    /// chosen with the training seed, is used, and the report says so. Bounds training memory.
    /// Default: 200000.
    pub max_examples: usize,
    /// `templates_dir`: a directory of config templates, `default.yaml` and optional
    /// `<SCOPE>.yaml` files, relative to the configuration file's directory (see "Rendering
    /// configs" in the crate documentation). Default: none, which means the built-in templates.
    pub templates_dir: Option<PathBuf>,
    /// `templates`: templates given as YAML text, by name (`default` or a scope); each replaces
    /// the file or built-in template of the same name. Default: none.
    pub templates: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keywords: None,
            learner: Learner::Logistic,
            features: 4096,
            l2: 1e-5,
            max_iterations: 100,
            max_examples: 200_000,
            templates_dir: None,
            templates: BTreeMap::new(),
        }
    }
}

/// Model and keyword-rule prediction and template rendering; see the crate documentation.
#[derive(Debug)]
pub struct DefaultGenerator {
    rules: Rules,
    templates: Templates,
    settings: model::Settings,
    schema: registry_core::Schema,
    model_path: PathBuf,
    /// The model in use, or why the model file cannot be used; `train` replaces it, and each
    /// `predict` batch takes the one current when it starts.
    model: RwLock<Loaded>,
    /// Held by `train` from fitting to replacing the model, so that two trainings at once
    /// cannot leave one model on disk and the other in use.
    training: Mutex<()>,
    /// Buffers of `predict` batches, kept for later batches.
    predict_buffers: Pool<PredictBuffers>,
    /// Buffers of `render` batches, kept for later batches.
    render_buffers: Pool<render::Scratch>,
}

/// The model as the generator has it.
#[derive(Debug, Clone)]
enum Loaded {
    /// No model file: the keyword rules predict.
    Absent,
    Ready(Arc<Model>),
    /// A model file that cannot be used: the error every `predict` fails with, naming the
    /// file, the reason and the fix, until `train` replaces the file.
    Unusable(StageError),
}

/// What predicting a batch writes through: the features of a request and the class scores.
#[derive(Debug, Default)]
struct PredictBuffers {
    features: Scratch,
    scores: Vec<f32>,
}

impl Config {
    /// Checks the learning keys, reporting every problem found.
    fn settings(&self) -> StageResult<model::Settings> {
        let mut problems = Vec::new();
        if !(MIN_DIMS..=MAX_DIMS).contains(&self.features) {
            problems.push(format!(
                "features: {} is out of range: use {MIN_DIMS} to {MAX_DIMS}",
                self.features
            ));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            problems.push(format!(
                "l2: {} is not a penalty: use a finite number of at least 0",
                self.l2
            ));
        }
        if !(1..=10_000).contains(&self.max_iterations) {
            problems.push(format!(
                "max_iterations: {} is out of range: use 1 to 10000",
                self.max_iterations
            ));
        }
        if self.max_examples < 2 {
            problems.push(format!(
                "max_examples: {} is too few: use at least 2",
                self.max_examples
            ));
        }
        if !problems.is_empty() {
            return Err(StageError::new(ErrorCode::Config, problems.join("; ")));
        }
        Ok(model::Settings {
            learner: self.learner,
            dims: self.features,
            l2: self.l2,
            max_iterations: self.max_iterations as usize,
            max_examples: self.max_examples,
        })
    }
}

impl FromConfig for DefaultGenerator {
    type Config = Config;

    /// # Errors
    /// A `Config` error naming every configured rule with no words, a word that is not letters and
    /// digits, or a value the schema does not declare (with the values it allows); every learning
    /// key out of range; every problem of the templates (a file that cannot be read, a name that
    /// is neither `default` nor a scope, YAML that does not parse, an unknown or misplaced
    /// placeholder, a malformed `when`, naming the template, its file and the place in it). A
    /// model file that cannot be used is not an error here: `predict` reports it.
    fn from_config(config: Config, setup: &Setup) -> StageResult<Self> {
        let rules = match &config.keywords {
            Some(rules) => Rules::from_config(rules, &setup.schema),
            None => Ok(Rules::built_in(&setup.schema)),
        };
        let settings = config.settings();
        let templates = Templates::load(config.templates_dir.as_deref(), &config.templates, setup);
        let (rules, settings, templates) = match (rules, settings, templates) {
            (Ok(r), Ok(s), Ok(t)) => (r, s, t),
            (r, s, t) => {
                let messages: Vec<String> = [r.err(), s.err(), t.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.message)
                    .collect();
                return Err(StageError::new(ErrorCode::Config, messages.join("; ")));
            }
        };
        let model_path = setup.data_dir.join(MODEL_FILE);
        // A model file that cannot be used does not stop the generator from being built: every
        // command that builds it (reads among them) keeps working, and `predict` says what is
        // wrong.
        let model = match Model::load(&model_path, &setup.schema) {
            Ok(Some(model)) => Loaded::Ready(Arc::new(model)),
            Ok(None) => Loaded::Absent,
            Err(e) => Loaded::Unusable(e),
        };
        Ok(DefaultGenerator {
            rules,
            templates,
            settings,
            schema: setup.schema.clone(),
            model_path,
            model: RwLock::new(model),
            training: Mutex::new(()),
            predict_buffers: Pool::default(),
            render_buffers: Pool::default(),
        })
    }
}

impl DefaultGenerator {
    /// What a person should know about this generator's configuration that is not an error (a
    /// template file left out because the schema does not declare its scope). A plugin library
    /// has no way to say it; the `registry` binary shows it for its built-in generator.
    pub fn notes(&self) -> &[String] {
        self.templates.notes()
    }

    /// [`Generator::predict_each`] of requests however they are held.
    fn predict_views<'r>(
        &self,
        requests: impl Iterator<Item = RequestRef<'r>>,
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        let model = self.current_model()?;
        let mut buffers = self.predict_buffers.take();
        let PredictBuffers { features, scores } = &mut buffers;
        for request in requests {
            let open = Fields::from_fn(|f| request.fields[f].is_none());
            let mut prediction = PredictionRef::default();
            if let Some(model) = &model {
                model.predict(&request, &open, &mut prediction, features, scores);
            }
            // The keyword rules answer only what the model left open.
            let unanswered = Fields::from_fn(|f| open[f] && prediction[f].is_none());
            if Field::ALL.iter().any(|&f| unanswered[f]) {
                self.rules
                    .predict_into(&request, &unanswered, &mut prediction);
            }
            each(&prediction);
        }
        self.predict_buffers.put(buffers);
        Ok(())
    }

    /// [`Generator::render_each`] of drafts however they are held ([`render::Parts`]).
    fn render_all<P: render::Parts>(
        &self,
        drafts: &[P],
        each: &mut dyn FnMut(&str),
    ) -> StageResult<()> {
        let mut scratch = self.render_buffers.take();
        let rendered = drafts.iter().try_for_each(|draft| {
            render::render_with(&self.templates, draft, &mut scratch, &mut *each)
        });
        scratch.trim();
        self.render_buffers.put(scratch);
        rendered
    }

    /// The model to predict with, `None` for the keyword rules alone.
    ///
    /// # Errors
    /// The `Storage` error of a model file that cannot be used.
    fn current_model(&self) -> StageResult<Option<Arc<Model>>> {
        // A panic while the lock was held cannot leave a half-written `Loaded`.
        match &*self.model.read().unwrap_or_else(PoisonError::into_inner) {
            Loaded::Absent => Ok(None),
            Loaded::Ready(model) => Ok(Some(Arc::clone(model))),
            Loaded::Unusable(e) => Err(e.clone()),
        }
    }
}

impl Generator for DefaultGenerator {
    /// # Errors
    /// `Storage` when the model file cannot be used (damaged, unreadable, not a file), naming
    /// it, the reason and the fix, whichever fields the requests leave open: until `train`
    /// replaces the file, the model the registry was trained to use is not there.
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        out.reserve(requests.len());
        self.predict_each(requests, &mut |p| {
            out.push(p.map(|_, g| g.as_ref().map(GuessRef::to_guess)));
        })
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        out.reserve(drafts.len());
        self.render_each(drafts, &mut |config| out.push(config.to_owned()))
    }

    /// The values lent are the model's classes and the keyword rules' values, so predicting
    /// makes no string: `predict` copies each value once.
    fn predict_each(
        &self,
        requests: &[Request],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        self.predict_views(requests.iter().map(Request::view), each)
    }

    /// Requests are read where they are lent: nothing of them is copied.
    fn predict_lent(
        &self,
        requests: &[RequestRef<'_>],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        self.predict_views(requests.iter().copied(), each)
    }

    /// Each config is rendered into the same buffer and lent from it: `render` copies each
    /// once, at its exact size.
    fn render_each(&self, drafts: &[Draft], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        self.render_all(drafts, each)
    }

    /// Drafts are read where they are lent: nothing of them is copied.
    fn render_lent(&self, drafts: &[DraftRef<'_>], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        self.render_all(drafts, each)
    }

    /// # Errors
    /// `Invalid` for no examples, a holdout fraction outside (0, 1), fewer than 2 folds or more
    /// folds than examples, or an example value the schema does not declare ("example N", 1-based);
    /// `Storage` when the model cannot be saved (the model in use is then unchanged). A model
    /// file that could not be used is no obstacle: it is replaced.
    fn train(&self, examples: &[Request], options: &TrainOptions) -> StageResult<TrainReport> {
        let started = Instant::now();
        let _training = self.training.lock().unwrap_or_else(PoisonError::into_inner);
        let (model, mut report) = model::train(examples, options, &self.schema, &self.settings)?;
        model::save(&model, &self.model_path).map_err(|e| {
            StageError::new(ErrorCode::Storage, format!("cannot save the model: {e}"))
        })?;
        *self.model.write().unwrap_or_else(PoisonError::into_inner) =
            Loaded::Ready(Arc::new(model));
        report.saved_to = self.model_path.display().to_string();
        report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use registry_core::{Context, EntryId, ErrorCode, Fields, Header, Schema, Source};
    use registry_testkit::sample::given as fields;
    use serde_json::json;

    use super::*;

    fn setup(schema: Schema) -> Setup {
        Setup {
            schema,
            data_dir: PathBuf::from("/nonexistent"),
            config_dir: PathBuf::from("/nonexistent"),
            shard: 0,
            shards: 1,
            create: None,
        }
    }

    fn generator(config: serde_json::Value, schema: Schema) -> StageResult<DefaultGenerator> {
        let config: Config = serde_json::from_value(config).expect("config deserializes");
        DefaultGenerator::from_config(config, &setup(schema))
    }

    fn context(pairs: &[(&str, &str)]) -> Context {
        Context::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .expect("valid context")
    }

    fn predict_with(
        generator: &DefaultGenerator,
        title: &str,
        given: &str,
        ctx: &[(&str, &str)],
    ) -> Fields<Option<String>> {
        let request =
            Request::new(title, fields(given), None, context(ctx)).expect("valid request");
        let mut out = Vec::new();
        generator
            .predict(std::slice::from_ref(&request), &mut out)
            .expect("predicts");
        assert_eq!(out.len(), 1);
        let prediction = out.pop().expect("one prediction");
        prediction.map(|_, g| {
            g.map(|g| {
                assert_eq!(g.confidence, None, "keyword guesses carry no confidence");
                assert_eq!(g.source, Source::Keyword);
                g.value
            })
        })
    }

    #[test]
    fn built_in_keywords() {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        let check = |title: &str, expected: &str| {
            assert_eq!(
                predict_with(&g, title, "- - - -", &[]),
                fields(expected),
                "{title:?}"
            );
        };
        check("Block SSH security group", "SEC RULES - REQUIRED");
        check("SECURITY: patch the kernel", "SEC RULES - REQUIRED");
        check("Ops runbook for restarts", "OPS SCRIPT - -");
        check("DevOps pipeline cleanup", "OPS SCRIPT - -");
        check("Sales dashboards", "DASHBOARD CONFIG - -");
        check("Nightly ETL of orders", "ETL MULTI-ETL - -");
        check("Alerting on disk usage", "ALERT - - -");
        check("Rotate logs with a shell script", "BASH SCRIPT - -");
        check("cleanup.bash helper", "BASH SCRIPT - -");
        // Earlier rules win field by field, as the original's if/else did.
        check("Security dashboard", "SEC RULES - REQUIRED");
        check("Dashboard for ops", "OPS SCRIPT - -");
        check("Alert when the ETL stalls", "ETL MULTI-ETL - -");
        check("Alert from a bash cron job", "ALERT SCRIPT - -");
        // Words inside other words do not count.
        check("Stops the workshops", "- - - -");
        check("Kettle descaling", "- - - -");
        check("Insecurity", "- - - -");
        check("Quarterly report", "- - - -");
        check("Sécurité réseau", "- - - -");
    }

    #[test]
    fn only_missing_fields_are_proposed() {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        assert_eq!(
            predict_with(&g, "Block SSH security group", "GOV - - LIVE", &[]),
            fields("- RULES - -")
        );
        assert_eq!(
            predict_with(&g, "Security dashboard", "SEC - - -", &[]),
            fields("- RULES - REQUIRED")
        );
    }

    #[test]
    fn context_values_are_searched() {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        assert_eq!(
            predict_with(&g, "Weekly report", "- - - -", &[("team", "security")]),
            fields("SEC RULES - REQUIRED")
        );
        // Keys are not values: `ops=1` says nothing.
        assert_eq!(
            predict_with(&g, "Weekly report", "- - - -", &[("ops", "1")]),
            fields("- - - -")
        );
    }

    #[test]
    fn one_prediction_per_request() {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        let requests: Vec<Request> = ["security", "nothing", "etl"]
            .iter()
            .map(|t| Request::new(t, Fields::default(), None, Context::default()).expect("valid"))
            .collect();
        let mut out = vec![Prediction::default()];
        g.predict(&requests, &mut out).expect("predicts");
        let scopes: Vec<Option<&str>> = out
            .iter()
            .map(|p| p.scope.as_ref().map(|g| g.value.as_str()))
            .collect();
        assert_eq!(scopes, [None, Some("SEC"), None, Some("ETL")]);
    }

    #[test]
    fn configured_keywords_replace_the_built_in_ones() {
        let g = generator(
            json!({ "keywords": [
                { "words": ["firewall", "Vulnerability"], "scope": "sec", "variant": "compact" },
                { "words": ["firewall"], "scope": "OPS", "status": "LIVE" },
            ]}),
            Schema::default(),
        )
        .expect("valid rules");
        let check = |title: &str, expected: &str| {
            assert_eq!(
                predict_with(&g, title, "- - - -", &[]),
                fields(expected),
                "{title:?}"
            );
        };
        check("Open firewall port", "SEC - COMPACT LIVE");
        check("Weekly VULNERABILITY scan", "SEC - COMPACT -");
        check("Block SSH security group", "- - - -");
        let off = generator(json!({ "keywords": [] }), Schema::default()).expect("valid");
        assert_eq!(
            predict_with(&off, "security", "- - - -", &[]),
            fields("- - - -")
        );
    }

    fn custom_schema() -> Schema {
        let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
        Schema::new(
            Fields {
                scope: list(&["GOV", "OPS", "Bash"]),
                kind: list(&["RULES", "CONFIG"]),
                variant: list(&["LIVE"]),
                status: list(&["DRAFT", "REQUIRED"]),
            },
            "v1".into(),
            Fields::default(),
        )
        .expect("valid schema")
    }

    #[test]
    fn built_in_values_outside_a_custom_schema_are_dropped() {
        let g = generator(json!({}), custom_schema()).expect("built-in rules adapt");
        let check = |title: &str, expected: &str| {
            assert_eq!(
                predict_with(&g, title, "- - - -", &[]),
                fields(expected),
                "{title:?}"
            );
        };
        // SEC is not declared: the rest of the security rule still applies.
        check("Security review", "- RULES - REQUIRED");
        // SCRIPT is not declared: OPS still applies; values come in the schema's spelling.
        check("Ops runbook", "OPS - - -");
        check("Shell helper", "Bash - - -");
        // Neither ALERT nor anything else of the alert rule is declared.
        check("Alert on disk", "- - - -");
        // The dropped ETL scope lets a later rule decide the scope.
        check("ETL dashboard", "- CONFIG - -");
    }

    #[test]
    fn config_errors_name_rule_field_value_and_allowed_values() {
        let err = generator(
            json!({ "keywords": [
                { "words": ["ok"], "scope": "SEC" },
                { "words": ["x"], "type": "RULEZ", "status": "LIVE" },
                { "words": [], "variant": "NOPE" },
                { "words": ["two words", ""] },
            ]}),
            Schema::default(),
        )
        .expect_err("invalid rules");
        assert_eq!(err.code, ErrorCode::Config);
        assert_eq!(
            err.message,
            "keywords[1].type: `RULEZ` is not one of schema.type: RULES, SCRIPT, CONFIG, MULTI-ETL; \
             keywords[2].words: the list is empty: give at least one word; \
             keywords[2].variant: `NOPE` is not one of schema.variant: EXPANDED, COMPACT, LIVE, DEV, TEST, DEPRECATED, SCRIPT, YAML; \
             keywords[3].words: `two words` is not a word: use letters and digits only; \
             keywords[3].words: `` is not a word: use letters and digits only"
        );
        let err = generator(
            json!({ "keywords": [{ "words": ["security"], "scope": "SEC" }] }),
            custom_schema(),
        )
        .expect_err("SEC is not in the custom schema");
        assert_eq!(
            err.message,
            "keywords[0].scope: `SEC` is not one of schema.scope: GOV, OPS, Bash"
        );
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        for bad in [
            json!({ "keyword": [] }),
            json!({ "keywords": [{ "words": ["a"], "scopes": "SEC" }] }),
            json!({ "keywords": [{ "scope": "SEC" }] }),
        ] {
            let err = serde_json::from_value::<Config>(bad.clone()).expect_err("rejected");
            let text = err.to_string();
            assert!(
                text.contains("unknown field") || text.contains("missing field"),
                "{bad}: {text}"
            );
        }
        assert_eq!(
            serde_json::from_value::<Config>(json!({})).expect("empty config"),
            Config::default()
        );
    }

    #[test]
    fn learning_keys_are_checked() {
        let config: Config = serde_json::from_value(json!({
            "learner": "naive-bayes", "features": 1000, "l2": 0.5,
            "max_iterations": 7, "max_examples": 10
        }))
        .expect("valid keys");
        assert_eq!(config.learner, Learner::NaiveBayes);
        assert!(
            generator(
                json!({ "features": 16, "max_examples": 2 }),
                Schema::default()
            )
            .is_ok()
        );
        let err = generator(
            json!({ "features": 8, "l2": -1.0, "max_iterations": 0, "max_examples": 1 }),
            Schema::default(),
        )
        .expect_err("out of range");
        assert_eq!(err.code, ErrorCode::Config);
        assert_eq!(
            err.message,
            "features: 8 is out of range: use 16 to 1048576; \
             l2: -1 is not a penalty: use a finite number of at least 0; \
             max_iterations: 0 is out of range: use 1 to 10000; \
             max_examples: 1 is too few: use at least 2"
        );
        let err = generator(json!({ "features": 2_000_000 }), Schema::default())
            .expect_err("too many buckets");
        assert!(
            err.message.starts_with("features: 2000000"),
            "{}",
            err.message
        );
        let err = serde_json::from_value::<Config>(json!({ "learner": "forest" }))
            .expect_err("unknown learner");
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    /// A generator whose data directory is a fresh temporary directory.
    fn trainable(schema: Schema) -> (tempfile::TempDir, DefaultGenerator) {
        let dir = tempfile::tempdir().expect("temp dir");
        let setup = Setup {
            schema,
            data_dir: dir.path().to_owned(),
            config_dir: dir.path().to_owned(),
            shard: 0,
            shards: 1,
            create: None,
        };
        let g = DefaultGenerator::from_config(Config::default(), &setup).expect("default config");
        (dir, g)
    }

    fn example(title: &str, given: &str) -> Request {
        Request::new(title, fields(given), None, Context::default()).expect("valid request")
    }

    #[test]
    fn schema_violations_name_the_example_and_field() {
        let (_dir, g) = trainable(Schema::default());
        let examples = [
            example("a", "SEC RULES - -"),
            example("b", "SEC RULEZ - -"),
            example("c", "- - - LIVE"),
            example("d", "NOPE - - SOMETIMES"),
        ];
        let err = g
            .train(&examples, &TrainOptions::default())
            .expect_err("values outside the schema");
        assert_eq!(err.code, ErrorCode::Invalid);
        assert_eq!(
            err.message,
            "example 2: type `RULEZ` is not one of schema.type: RULES, SCRIPT, CONFIG, MULTI-ETL; \
             example 4: scope `NOPE` is not one of schema.scope: GOV, SEC, OPS, ALERT, BASH, DASHBOARD, ETL; \
             example 4: status `SOMETIMES` is not one of schema.status: LIVE, DEV, TEST, DEPRECATED, REQUIRED, STANDARD, OPTIONAL"
        );
        let many: Vec<Request> = (0..9)
            .map(|i| example(&format!("t{i}"), "X - - -"))
            .collect();
        let err = g
            .train(&many, &TrainOptions::default())
            .expect_err("values outside the schema");
        assert!(err.message.ends_with("(and 4 more)"), "{}", err.message);
        let err = g
            .train(&[], &TrainOptions::default())
            .expect_err("nothing to learn from");
        assert_eq!(err.message, "there are no examples to train on");
    }

    #[test]
    fn fields_with_fewer_than_two_values_are_not_modelled() {
        let (_dir, g) = trainable(Schema::default());
        let examples: Vec<Request> = (0..20)
            .map(|i| {
                let (scope, kind) = if i % 2 == 0 {
                    ("SEC", "RULES")
                } else {
                    ("ops", "SCRIPT")
                };
                example(
                    &format!("{kind} number {i}"),
                    &format!("{scope} {kind} - LIVE"),
                )
            })
            .collect();
        let report = g
            .train(&examples, &TrainOptions::default())
            .expect("trains");
        let by_name = |name: &str| {
            report
                .fields
                .iter()
                .find(|f| f.field == name)
                .expect("every field is reported")
        };
        assert!(by_name("scope").modelled);
        assert_eq!(by_name("scope").classes, 2);
        assert!(by_name("type").modelled);
        let variant = by_name("variant");
        assert!(!variant.modelled);
        assert_eq!((variant.examples, variant.classes), (0, 0));
        assert_eq!(
            variant.note.as_deref(),
            Some("no example gives a value: the keyword rules and the default apply")
        );
        let status = by_name("status");
        assert!(!status.modelled);
        assert_eq!(
            (status.examples, status.classes, status.accuracy),
            (20, 1, None)
        );
        assert!(
            status
                .note
                .as_deref()
                .is_some_and(|n| n.starts_with("every example gives `LIVE`"))
        );
        // Modelled fields come from the model, the others from keywords (or nothing).
        let mut out = Vec::new();
        g.predict(&[example("security SCRIPT review", "- - - -")], &mut out)
            .expect("predicts");
        let p = &out[0];
        let scope = p.scope.as_ref().expect("modelled");
        assert_eq!(scope.source, Source::Model);
        assert!(
            scope.value == "SEC" || scope.value == "OPS",
            "schema spelling"
        );
        assert_eq!(p.kind.as_ref().map(|g| g.value.as_str()), Some("SCRIPT"));
        let status = p.status.as_ref().expect("keyword rule");
        assert_eq!(
            (status.value.as_str(), status.source),
            ("REQUIRED", Source::Keyword)
        );
        assert!(p.variant.is_none());
    }

    fn draft(title: &str, ctx: &[(&str, &str)]) -> Draft {
        Draft {
            header: Header {
                fields: Fields {
                    scope: "SEC".into(),
                    kind: "RULES".into(),
                    variant: "LIVE".into(),
                    status: "REQUIRED".into(),
                },
                id: EntryId::new(EntryId::prefix_for("SEC", "RULES"), 42),
                version: "v2.9".into(),
            },
            title: title.into(),
            context: context(ctx),
        }
    }

    fn render(drafts: &[Draft]) -> Vec<String> {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        let mut out = Vec::new();
        g.render(drafts, &mut out).expect("renders");
        assert_eq!(out.len(), drafts.len());
        out
    }

    fn parse(yaml: &str) -> yaml_serde::Value {
        yaml_serde::from_str(yaml).expect("rendered config parses")
    }

    #[test]
    fn render_is_deterministic() {
        let d = draft("Block SSH", &[("env", "prod"), ("owner", "alice")]);
        let other = draft("Something else", &[]);
        let out = render(&[d.clone(), other, d.clone()]);
        assert_eq!(out[0], out[2]);
        assert_eq!(out[0], render(&[d])[0]);
        assert_ne!(out[0], out[1]);
    }

    #[test]
    fn production_is_stricter() {
        let [prod, dev, default] = [&[("env", "prod")][..], &[("env", "dev")][..], &[][..]]
            .map(|ctx| parse(&render(&[draft("t", ctx)])[0]));
        let security = |v: &yaml_serde::Value| v["dashboard"]["security"].clone();
        assert_ne!(security(&prod), security(&dev));
        assert_eq!(security(&dev), security(&default));
        assert_eq!(prod["dashboard"]["security"]["csrf"], true);
        assert_eq!(
            prod["dashboard"]["security"]["cookies"]["same_site"],
            "strict"
        );
        assert_eq!(prod["dashboard"]["security"]["authentication"]["mfa"], true);
        assert_eq!(dev["dashboard"]["security"]["authentication"]["mfa"], false);
        assert_eq!(prod["dashboard"]["deployment"]["environment"], "prod");
        assert_eq!(
            default["dashboard"]["deployment"]["environment"],
            "development"
        );
        let limit = |v: &yaml_serde::Value| {
            v["dashboard"]["security"]["rate_limit"]["requests_per_minute"]
                .as_u64()
                .expect("a number")
        };
        assert!(limit(&prod) < limit(&dev));
    }

    #[test]
    fn filters_follow_the_scope() {
        for (scope, kind, first) in [
            ("SEC", "RULES", "threat_level"),
            ("OPS", "SCRIPT", "cpu"),
            ("ETL", "MULTI-ETL", "records_processed"),
            ("DASHBOARD", "CONFIG", "price"),
            ("GOV", "RULES", "id"),
            ("ALERT", "RULES", "id"),
        ] {
            let mut d = draft("t", &[]);
            d.header.fields.scope = scope.into();
            d.header.fields.kind = kind.into();
            d.header.id = EntryId::new(EntryId::prefix_for(scope, kind), 1);
            let v = parse(&render(&[d])[0]);
            assert_eq!(v["dashboard"]["filters"][0], first, "{scope}");
            assert_eq!(v["governance"]["scope"], scope);
            assert_eq!(v["governance"]["type"], kind);
        }
    }

    #[test]
    fn tricky_titles_round_trip() {
        for &title in crate::render::TRICKY_TITLES {
            let d = draft(title, &[("note", "# also: [tricky]"), ("owner", "'o'")]);
            let v = parse(&render(std::slice::from_ref(&d))[0]);
            assert_eq!(v["dashboard"]["title"], title, "{title:?}");
            assert_eq!(v["dashboard"]["header"], d.header.readable().as_str());
            assert_eq!(v["dashboard"]["grepable"], d.header.grepable().as_str());
            assert_eq!(v["context"]["note"], "# also: [tricky]");
            assert_eq!(v["governance"]["owner"], "'o'");
        }
    }

    #[test]
    fn full_config_snapshot() {
        let d = draft(
            "Block SSH: from 0.0.0.0/0",
            &[
                ("owner", "secops"),
                ("region", "eu-west-1"),
                ("env", "prod"),
            ],
        );
        let expected = "\
dashboard:
  title: 'Block SSH: from 0.0.0.0/0'
  version: v2.9
  header: '[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]'
  grepable: '[sec-rules-live-sec-rul-042-v2.9-required]'
  security:
    csrf: true
    cookies:
      secure: true
      http_only: true
      same_site: strict
    authentication:
      required: true
      mfa: true
      session_timeout_minutes: 15
    encryption:
      at_rest: true
      in_transit: true
      min_tls_version: '1.3'
    rate_limit:
      requests_per_minute: 100
      burst: 20
  filters:
  - threat_level
  - source_ip
  - destination_port
  - action
  deployment:
    environment: prod
    region: eu-west-1
    replicas: 3
    health_check: /health
  performance:
    cache:
      enabled: true
      ttl_seconds: 300
      max_entries: 10000
    batch_size: 50
    timeout_ms: 5000
governance:
  id: SEC-RUL-042
  scope: SEC
  type: RULES
  variant: LIVE
  status: REQUIRED
  owner: secops
context:
  env: prod
  owner: secops
  region: eu-west-1
";
        assert_eq!(render(&[d])[0], expected);
    }

    #[test]
    fn optional_parts_are_left_out() {
        let yaml = &render(&[draft("t", &[])])[0];
        let v = parse(yaml);
        assert!(v.get("context").is_none(), "{yaml}");
        assert!(v["governance"].get("owner").is_none(), "{yaml}");
        assert!(
            v["dashboard"]["deployment"].get("region").is_none(),
            "{yaml}"
        );
    }
}
