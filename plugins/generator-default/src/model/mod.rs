//! The trained model: one linear classifier per enumerated field over hashed text features.
//!
//! - `features`: tokens of the title and context hashed into a sparse vector;
//! - `logistic`: softmax logistic regression, the default learner, on a sparse objective;
//! - `lbfgs`: the limited-memory BFGS optimiser the logistic learner uses;
//! - `bayes`: multinomial naive Bayes from smartcore, the alternative;
//! - `linear`: the classifier both produce, which predicts;
//! - `evaluation`: seeded sampling, holdout and stratified folds;
//! - `train`: validating examples, measuring and fitting each field;
//! - `persist`: the model file.

mod bayes;
mod evaluation;
mod features;
mod lbfgs;
mod linear;
mod logistic;
mod persist;
mod train;

use std::fmt;
use std::path::Path;

use registry_core::{
    ErrorCode, Field, Fields, GuessRef, PredictionRef, RequestRef, Schema, Source, StageError,
};
use serde::Deserialize;

pub(crate) use features::{Featurizer, MAX_DIMS, MIN_DIMS, Scratch, Weighting};
pub(crate) use linear::Linear;
pub(crate) use persist::save;
pub(crate) use train::{Settings, train};

/// The learning algorithm, the `learner` config key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Learner {
    /// Multinomial logistic regression with L2 regularisation (`"logistic"`): the more accurate.
    #[default]
    Logistic,
    /// Multinomial naive Bayes (`"naive-bayes"`): faster to train, less accurate, and its
    /// confidences are overconfident.
    NaiveBayes,
}

impl Learner {
    /// The name given in training reports.
    pub fn name(self) -> &'static str {
        match self {
            Learner::Logistic => "logistic-regression",
            Learner::NaiveBayes => "naive-bayes",
        }
    }

    /// How the learner wants token counts weighted: naive Bayes models counts.
    pub(crate) fn weighting(self) -> Weighting {
        match self {
            Learner::Logistic => Weighting::Sublinear,
            Learner::NaiveBayes => Weighting::Counts,
        }
    }

    fn code(self) -> u8 {
        match self {
            Learner::Logistic => 0,
            Learner::NaiveBayes => 1,
        }
    }

    fn from_code(code: u8) -> Option<Learner> {
        match code {
            0 => Some(Learner::Logistic),
            1 => Some(Learner::NaiveBayes),
            _ => None,
        }
    }
}

/// The classifier of one field: its values, in score order, and the weights.
#[derive(Clone, PartialEq)]
pub(crate) struct FieldModel {
    pub(crate) classes: Vec<String>,
    pub(crate) linear: Linear,
}

/// A trained model: the feature space and a classifier per modelled field.
#[derive(Clone, PartialEq)]
pub(crate) struct Model {
    pub(crate) learner: Learner,
    pub(crate) featurizer: Featurizer,
    pub(crate) fields: Fields<Option<FieldModel>>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<String> = self
            .fields
            .iter()
            .filter_map(|(field, m)| {
                m.as_ref().map(|m| {
                    format!(
                        "{field}: {} classes, {} rows",
                        m.classes.len(),
                        m.linear.buckets().len()
                    )
                })
            })
            .collect();
        f.debug_struct("Model")
            .field("learner", &self.learner)
            .field("featurizer", &self.featurizer)
            .field("fields", &fields)
            .finish()
    }
}

impl Model {
    /// Whether the model predicts any of the fields `open`.
    pub(crate) fn covers_any(&self, open: &Fields<bool>) -> bool {
        self.fields.iter().any(|(f, m)| open[f] && m.is_some())
    }

    /// Fills `out[f]` for each field `f` that is `open` and modelled, from the request's features
    /// (extracted into `scratch`); `scores` is scratch space.
    pub(crate) fn predict<'m>(
        &'m self,
        request: &RequestRef<'_>,
        open: &Fields<bool>,
        out: &mut PredictionRef<'m>,
        scratch: &mut Scratch,
        scores: &mut Vec<f32>,
    ) {
        if !self.covers_any(open) {
            return;
        }
        self.featurizer.extract(request, scratch);
        for field in Field::ALL {
            let Some(m) = self.fields[field].as_ref().filter(|_| open[field]) else {
                continue;
            };
            let (class, p) = m.linear.predict(&scratch.vector, scores);
            if let Some(value) = m.classes.get(class) {
                out[field] = Some(GuessRef {
                    value,
                    confidence: Some(p),
                    source: Source::Model,
                });
            }
        }
    }

    /// Reads the model file at `path`, if there is one, keeping the field models whose classes
    /// the schema still declares (in the schema's spelling). A field whose classes are no longer
    /// all declared is dropped, and the keyword rules predict it again. The file's type is
    /// checked before it is opened, so a FIFO or a device in its place is never read (opening a
    /// FIFO would wait for a writer).
    ///
    /// # Errors
    /// A `Storage` error naming the path, why the file cannot be used (not a regular file,
    /// unreadable, damaged, from another format version) and that `registry train` rebuilds it.
    pub(crate) fn load(path: &Path, schema: &Schema) -> Result<Option<Model>, StageError> {
        let unusable = |reason: String| {
            StageError::new(
                ErrorCode::Storage,
                format!(
                    "the model file {} cannot be used: {reason}; `registry train` rebuilds it",
                    path.display()
                ),
            )
        };
        let cannot_read = |e: std::io::Error| unusable(format!("it cannot be read: {e}"));
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(meta) => {
                return Err(unusable(format!(
                    "it is {}, not a file",
                    file_kind(&meta.file_type())
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cannot_read(e)),
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            // Removed since it was looked at: as if it had not been there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cannot_read(e)),
        };
        let stored = persist::decode(&bytes).map_err(unusable)?;
        let mut fields: Fields<Option<FieldModel>> = Fields::default();
        for (field, classes, linear) in stored.fields {
            let canonical: Option<Vec<String>> = classes
                .iter()
                .map(|c| schema.canonical(field, c).map(str::to_owned))
                .collect();
            if let Some(classes) = canonical {
                fields[field] = Some(FieldModel { classes, linear });
            }
        }
        Ok(Some(Model {
            learner: stored.learner,
            featurizer: stored.featurizer,
            fields,
        }))
    }
}

/// What a file that is not a regular file is, in words for messages.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "something other than a file"
    }
}
