//! Training: checking the examples, sampling them, then for each field measuring the learner as
//! the options ask and fitting the kept model on every example.
//!
//! Each field is learnt from the examples that give it a value. Its classes are the values those
//! examples give, in the schema's order; a field with fewer than two is not modelled, since there
//! is nothing to choose between. Accuracy and the majority baseline are measured on the same test
//! examples, the baseline's majority taken from the same training part the model learnt from.

use std::time::Instant;

use registry_core::{
    ErrorCode, Evaluation, Field, FieldReport, Fields, Request, Schema, StageError, StageResult,
    TrainOptions, TrainReport,
};

use super::features::{Featurizer, Rows};
use super::lbfgs::Stop;
use super::linear::Linear;
use super::{FieldModel, Learner, Model, bayes, evaluation, logistic};

/// How many schema violations an error message lists before summing up the rest.
const MAX_LISTED: usize = 5;

/// The training settings taken from the generator's config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    pub(crate) learner: Learner,
    pub(crate) dims: u32,
    pub(crate) l2: f64,
    pub(crate) max_iterations: usize,
    pub(crate) max_examples: usize,
}

/// One field's training data: the rows that give it a value and their classes.
struct FieldData {
    field: Field,
    rows: Vec<usize>,
    labels: Vec<u32>,
    /// The values present, in schema order; `labels` index into it.
    classes: Vec<String>,
}

/// Trains a model on `examples`; the report's `saved_to` is left empty for the caller.
///
/// # Errors
/// `Invalid` for no examples, evaluation options out of range, or a field value the schema does
/// not declare (naming the 1-based example and the field); `Internal` if a learner fails.
pub(crate) fn train(
    examples: &[Request],
    options: &TrainOptions,
    schema: &Schema,
    settings: &Settings,
) -> StageResult<(Model, TrainReport)> {
    let started = Instant::now();
    if examples.is_empty() {
        return Err(invalid("there are no examples to train on".to_owned()));
    }
    let labels = labels(examples, schema)?;
    let sampled = evaluation::sample(examples.len(), settings.max_examples, options.seed);
    let kept: Vec<usize> = sampled
        .clone()
        .unwrap_or_else(|| (0..examples.len()).collect());
    let evaluation = describe(options.evaluation, kept.len())?;
    let evaluation = match &sampled {
        Some(s) => format!(
            "{evaluation}; sampled {} of {} examples (max_examples)",
            s.len(),
            examples.len()
        ),
        None => evaluation,
    };
    let featurizer = Featurizer {
        dims: settings.dims,
        weighting: settings.learner.weighting(),
    };
    let requests: Vec<&Request> = kept.iter().map(|&i| &examples[i]).collect();
    let rows = Rows::of(&featurizer, &requests);
    let mut fields: Fields<Option<FieldModel>> = Fields::default();
    let mut reports = Vec::with_capacity(Field::ALL.len());
    for field in Field::ALL {
        let field_started = Instant::now();
        let data = field_data(field, &kept, &labels, schema);
        let (report, model) = train_field(&data, &rows, options, settings)?;
        fields[field] = model;
        reports.push(FieldReport {
            train_ms: field_started.elapsed().as_secs_f64() * 1e3,
            ..report
        });
    }
    let model = Model {
        learner: settings.learner,
        featurizer,
        fields,
    };
    let report = TrainReport {
        model: settings.learner.name().to_owned(),
        examples: kept.len(),
        evaluation,
        fields: reports,
        saved_to: String::new(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    Ok((model, report))
}

fn invalid(message: String) -> StageError {
    StageError::new(ErrorCode::Invalid, message)
}

/// Each example's class per field, as an index into the schema's values.
///
/// # Errors
/// `Invalid`, listing the first few values the schema does not declare.
fn labels(examples: &[Request], schema: &Schema) -> StageResult<Vec<Fields<Option<u32>>>> {
    let mut problems = Vec::new();
    let mut more = 0usize;
    let mut out = Vec::with_capacity(examples.len());
    for (i, example) in examples.iter().enumerate() {
        let mut labels: Fields<Option<u32>> = Fields::default();
        for (field, value) in example.fields.iter() {
            let Some(value) = value else { continue };
            let allowed = schema.allowed(field);
            match allowed.iter().position(|v| v.eq_ignore_ascii_case(value)) {
                // A schema lists a handful of values.
                Some(p) => labels[field] = Some(p as u32),
                None if problems.len() < MAX_LISTED => problems.push(format!(
                    "example {}: {field} `{value}` is not one of schema.{field}: {}",
                    i + 1,
                    allowed.join(", ")
                )),
                None => more += 1,
            }
        }
        out.push(labels);
    }
    if problems.is_empty() {
        return Ok(out);
    }
    let mut message = problems.join("; ");
    if more > 0 {
        message.push_str(&format!(" (and {more} more)"));
    }
    Err(invalid(message))
}

/// How the options measure the model, checked against the number of examples.
///
/// # Errors
/// `Invalid` for a holdout fraction outside (0, 1), fewer than 2 folds, or more folds than
/// examples.
fn describe(evaluation: Evaluation, examples: usize) -> StageResult<String> {
    match evaluation {
        Evaluation::Holdout(f) if f > 0.0 && f < 1.0 => {
            Ok(format!("{}% holdout", round_percent(f * 100.0)))
        }
        Evaluation::Holdout(f) => Err(invalid(format!(
            "holdout fraction {f} is out of range: use a number between 0 and 1, exclusive"
        ))),
        Evaluation::Folds(k) if k < 2 => Err(invalid(format!(
            "{k} folds cannot measure a model: use at least 2"
        ))),
        Evaluation::Folds(k) if k as usize > examples => Err(invalid(format!(
            "{k} folds need at least {k} examples: there are {examples}"
        ))),
        Evaluation::Folds(k) => Ok(format!("{k}-fold stratified cross-validation")),
    }
}

/// `20` for 20.0, `12.5` for 12.5: percentages without trailing zeros.
fn round_percent(p: f64) -> String {
    let text = format!("{p:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn field_data(
    field: Field,
    kept: &[usize],
    labels: &[Fields<Option<u32>>],
    schema: &Schema,
) -> FieldData {
    let allowed = schema.allowed(field);
    let mut present = vec![false; allowed.len()];
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for (row, &i) in kept.iter().enumerate() {
        if let Some(l) = labels[i][field] {
            present[l as usize] = true;
            rows.push(row);
            raw.push(l);
        }
    }
    // Renumbers the schema's indexes to the classes present, keeping the schema's order.
    let mut class_of = vec![u32::MAX; allowed.len()];
    let mut classes = Vec::new();
    for (i, _) in present.iter().enumerate().filter(|(_, p)| **p) {
        class_of[i] = classes.len() as u32;
        classes.push(allowed[i].clone());
    }
    let labels = raw.iter().map(|&l| class_of[l as usize]).collect();
    FieldData {
        field,
        rows,
        labels,
        classes,
    }
}

/// Measures and fits one field.
fn train_field(
    data: &FieldData,
    rows: &Rows,
    options: &TrainOptions,
    settings: &Settings,
) -> StageResult<(FieldReport, Option<FieldModel>)> {
    let n = data.rows.len();
    let k = data.classes.len();
    let mut report = FieldReport {
        field: data.field.name().to_owned(),
        examples: n,
        classes: k,
        modelled: false,
        accuracy: None,
        baseline: if n > 0 { 1.0 } else { 0.0 },
        train_ms: 0.0,
        note: None,
    };
    if k < 2 {
        report.note = Some(match data.classes.first() {
            None => "no example gives a value: the keyword rules and the default apply".to_owned(),
            Some(only) => format!(
                "every example gives `{only}`: one value leaves nothing to learn, \
                 the keyword rules and the default apply"
            ),
        });
        return Ok((report, None));
    }
    let fit = |sample: &[usize], labels: &[u32]| -> StageResult<(Linear, Option<String>)> {
        let rows_of: Vec<usize> = sample.iter().map(|&p| data.rows[p]).collect();
        fit(rows, &rows_of, labels, k, settings, options.seed).map_err(|e| {
            StageError::new(
                ErrorCode::Internal,
                format!("training {}: {e}", data.field.name()),
            )
        })
    };
    // Every evaluation fit sees at most as many rows as the final one and is fitted alike, so
    // only the final fit's note is reported.
    let mut tally = Tally::default();
    let mut scratch = Vec::new();
    match options.evaluation {
        Evaluation::Holdout(fraction) => {
            let (train, test) = evaluation::holdout(n, fraction, options.seed);
            tally.measure(data, rows, &train, &test, &fit, &mut scratch)?;
        }
        Evaluation::Folds(folds) => {
            let fold = evaluation::stratified_folds(&data.labels, k, folds as usize, options.seed);
            for f in 0..folds as usize {
                let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&p| fold[p] == f);
                if !test.is_empty() && !train.is_empty() {
                    tally.measure(data, rows, &train, &test, &fit, &mut scratch)?;
                }
            }
        }
    }
    let all: Vec<usize> = (0..n).collect();
    let (linear, note) = fit(&all, &data.labels)?;
    report.note = note;
    report.modelled = true;
    if tally.tested > 0 {
        report.accuracy = Some(tally.correct as f64 / tally.tested as f64);
        report.baseline = tally.baseline as f64 / tally.tested as f64;
    }
    Ok((
        report,
        Some(FieldModel {
            classes: data.classes.clone(),
            linear,
        }),
    ))
}

/// Fits the configured learner; returns the classifier and, when the fit fell short of what was
/// asked, a note for the report saying how.
fn fit(
    rows: &Rows,
    sample: &[usize],
    labels: &[u32],
    classes: usize,
    settings: &Settings,
    seed: u64,
) -> Result<(Linear, Option<String>), String> {
    match settings.learner {
        Learner::Logistic => {
            let s = logistic::Settings {
                l2: settings.l2,
                max_iterations: settings.max_iterations,
            };
            let (linear, outcome) =
                logistic::fit(rows, sample, labels, classes, settings.dims, &s)?;
            let note = (outcome.stop == Stop::Iterations).then(|| {
                format!(
                    "logistic regression stopped at max_iterations ({}) before converging: \
                     a larger max_iterations fits closer",
                    outcome.iterations
                )
            });
            Ok((linear, note))
        }
        Learner::NaiveBayes => {
            let fitted = bayes::fit(
                rows,
                sample,
                labels,
                classes,
                settings.dims,
                seed,
                bayes::MAX_CELLS,
            )?;
            let (used, n) = (fitted.rows_used, sample.len());
            let note = (used < n).then(|| {
                format!(
                    "naive Bayes learnt from {used} of {n} examples: its dense count matrix is \
                     bounded to {} MiB",
                    (bayes::MAX_CELLS * 4) >> 20
                )
            });
            Ok((fitted.linear, note))
        }
    }
}

/// Fits a field's learner on positions of its data with their labels: the classifier and the
/// fit's note, if any.
type FitField<'a> = dyn Fn(&[usize], &[u32]) -> StageResult<(Linear, Option<String>)> + 'a;

/// Correct answers of the model and of the majority baseline, over every test part.
#[derive(Default)]
struct Tally {
    tested: usize,
    correct: usize,
    baseline: usize,
}

impl Tally {
    /// Fits on the positions `train` of the field's data and counts right answers on `test`.
    fn measure(
        &mut self,
        data: &FieldData,
        rows: &Rows,
        train: &[usize],
        test: &[usize],
        fit: &FitField<'_>,
        scores: &mut Vec<f32>,
    ) -> StageResult<()> {
        let labels: Vec<u32> = train.iter().map(|&p| data.labels[p]).collect();
        let majority = evaluation::majority(labels.iter().copied(), data.classes.len());
        let (linear, _) = fit(train, &labels)?;
        for &p in test {
            let truth = data.labels[p];
            let (predicted, _) = linear.predict(rows.row(data.rows[p]), scores);
            self.tested += 1;
            self.correct += usize::from(predicted as u32 == truth);
            self.baseline += usize::from(majority == truth);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logistic_fit_cut_short_says_so() {
        let vectors: Vec<Vec<(u32, f32)>> = (0..20u32)
            .map(|i| vec![(i % 2, 1.0), (2 + i % 5, 1.0)])
            .collect();
        let rows = Rows::from_vecs(&vectors);
        let sample: Vec<usize> = (0..vectors.len()).collect();
        let labels: Vec<u32> = (0..20).map(|i| i % 2).collect();
        // (max_iterations, whether the fit is noted as cut short)
        for (max_iterations, noted) in [(1, true), (1000, false)] {
            let settings = Settings {
                learner: Learner::Logistic,
                dims: 16,
                l2: 1e-3,
                max_iterations,
                max_examples: 100,
            };
            let (_, note) = fit(&rows, &sample, &labels, 2, &settings, 0).expect("fits");
            assert_eq!(note.is_some(), noted, "{max_iterations}: {note:?}");
            if let Some(note) = note {
                assert!(
                    note.starts_with("logistic regression stopped at max_iterations (1)"),
                    "{note}"
                );
            }
        }
    }

    #[test]
    fn evaluations_are_described_and_checked() {
        // (evaluation, examples) → description or the start of the error
        for (evaluation, n, expected) in [
            (Evaluation::Holdout(0.2), 10, "20% holdout"),
            (Evaluation::Holdout(0.125), 10, "12.5% holdout"),
            (
                Evaluation::Folds(5),
                5,
                "5-fold stratified cross-validation",
            ),
            (
                Evaluation::Holdout(0.0),
                10,
                "holdout fraction 0 is out of range",
            ),
            (
                Evaluation::Holdout(1.0),
                10,
                "holdout fraction 1 is out of range",
            ),
            (
                Evaluation::Holdout(f64::NAN),
                10,
                "holdout fraction NaN is out of range",
            ),
            (Evaluation::Folds(1), 10, "1 folds cannot measure a model"),
            (
                Evaluation::Folds(6),
                5,
                "6 folds need at least 6 examples: there are 5",
            ),
        ] {
            let got = describe(evaluation, n).unwrap_or_else(|e| {
                assert_eq!(e.code, ErrorCode::Invalid);
                e.message
            });
            assert!(got.starts_with(expected), "{evaluation:?}: {got}");
        }
    }
}
