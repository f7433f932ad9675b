//! `registry train` and `registry predict`: the generator's model, trained on the registered
//! entries or on a JSONL file of requests, and asked what it would fill in.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use registry_core::{
    Evaluation, Field, Fields, Guess, Pipeline, Request, TrainOptions, TrainReport,
};
use serde::Serialize;

use clap::Args;

use crate::config::Settings;
use crate::entries::context;
use crate::progress::Progress;
use crate::registry::{Needs, open};
use crate::{CliError, Format, FormatArg};
use registry_host::events::Events as _;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Train on this JSONL file of requests with their fields filled in, instead of the
    /// registered entries ("-" for standard input)
    #[arg(long, value_name = "FILE.jsonl")]
    pub from: Option<PathBuf>,
    /// Measure accuracy on this fraction of the examples, held out [default: 0.2]
    #[arg(long, value_name = "FRACTION", conflicts_with = "folds")]
    pub holdout: Option<f64>,
    /// Measure accuracy by K-fold cross-validation instead
    #[arg(long, value_name = "K")]
    pub folds: Option<u32>,
    /// Seed for the splits and any sampling
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Title of the request
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    pub title: Option<String>,
    /// Free-form context, repeatable
    #[arg(long, value_name = "KEY=VALUE", conflicts_with = "from")]
    pub context: Vec<String>,
    /// Predict for every request of this JSONL file, one JSON line out per line in ("-" for
    /// standard input)
    #[arg(long, value_name = "FILE.jsonl")]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `registry train`.
///
/// # Errors
/// A bad `--holdout` or `--folds` (exit 1), unusable examples, or a stage failing.
pub fn train(args: TrainArgs, settings: &Settings) -> Result<(), CliError> {
    let evaluation = match (args.holdout, args.folds) {
        (_, Some(k)) => Evaluation::Folds(k),
        (Some(f), None) => Evaluation::Holdout(f),
        (None, None) => Evaluation::Holdout(0.2),
    };
    if let Evaluation::Holdout(f) = evaluation
        && !(f > 0.0 && f < 1.0)
    {
        return Err(CliError::input(format!(
            "--holdout {f}: expected a fraction between 0 and 1"
        )));
    }
    if let Evaluation::Folds(k) = evaluation
        && k < 2
    {
        return Err(CliError::input(format!(
            "--folds {k}: expected at least 2 folds"
        )));
    }
    let needs = if args.from.is_some() {
        Needs::GENERATOR
    } else {
        Needs::TRAIN
    };
    let pipeline = open(settings, needs)?;
    train_on(
        &pipeline,
        args.from.as_deref(),
        settings.max_record_bytes,
        evaluation,
        args.seed,
        args.format.format,
    )
}

/// `registry predict`, for one title or every line of a file.
///
/// # Errors
/// A bad request (exit 1), or a stage failing (exit 2).
pub fn predict(args: PredictArgs, settings: &Settings) -> Result<(), CliError> {
    match (&args.title, &args.from) {
        (_, Some(path)) => predict_file(
            &open(settings, Needs::GENERATOR)?,
            path,
            settings.max_record_bytes,
        ),
        (Some(title), None) => {
            let request = Request::new(title, Fields::default(), None, context(&args.context)?)?;
            predict_one(
                &open(settings, Needs::GENERATOR)?,
                request,
                args.format.format,
            )
        }
        (None, None) => Err(CliError::input("give --title or --from")),
    }
}

fn train_on(
    pipeline: &Pipeline,
    from: Option<&Path>,
    max: u64,
    evaluation: Evaluation,
    seed: u64,
    format: Format,
) -> Result<(), CliError> {
    let mut warnings = Vec::new();
    let examples = registry_host::requests::examples(pipeline, from, max, &mut warnings);
    crate::output::warnings(&warnings);
    let examples = examples?;
    let mut progress = Progress::new(format);
    progress.phase(&format!("training on {} examples", examples.len()));
    let report = pipeline.train(examples, &TrainOptions { evaluation, seed });
    progress.finished();
    let report = report?;
    match format {
        Format::Json => crate::output::json(&report),
        Format::Text => print_report(&report).map_err(crate::output::write_err),
    }
}

fn print_report(r: &TrainReport) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "trained {} on {} examples in {:.0} ms ({}); saved to {}",
        r.model, r.examples, r.elapsed_ms, r.evaluation, r.saved_to
    )?;
    writeln!(
        out,
        "{:<8} {:>8} {:>7} {:>8} {:>8} {:>9}",
        "field", "examples", "classes", "accuracy", "baseline", "time"
    )?;
    for f in &r.fields {
        let accuracy = f
            .accuracy
            .map_or_else(|| "-".to_owned(), |a| format!("{a:.3}"));
        write!(
            out,
            "{:<8} {:>8} {:>7} {:>8} {:>8.3} {:>6.0} ms",
            f.field, f.examples, f.classes, accuracy, f.baseline, f.train_ms
        )?;
        match &f.note {
            Some(note) => writeln!(out, "  {note}")?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}

/// A prediction as printed: the title and, per field, the value and where it came from.
#[derive(Debug, Serialize)]
struct Predicted<'a> {
    title: &'a str,
    #[serde(flatten)]
    fields: &'a Fields<Guess>,
}

fn predict_one(pipeline: &Pipeline, request: Request, format: Format) -> Result<(), CliError> {
    let title = request.title().to_owned();
    let fields = pipeline
        .predict(vec![request])?
        .pop()
        .ok_or_else(|| CliError::config("the generator returned no prediction"))??;
    match format {
        Format::Json => crate::output::json(&Predicted {
            title: &title,
            fields: &fields,
        }),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                for f in Field::ALL {
                    let g = &fields[f];
                    writeln!(
                        out,
                        "{:<8} {:<12} {}",
                        f.name(),
                        g.value,
                        crate::output::source(g)
                    )?;
                }
                if Field::ALL
                    .iter()
                    .all(|&f| fields[f].source != registry_core::Source::Model)
                {
                    writeln!(
                        out,
                        "(no field came from a trained model: run `registry train` to train one)"
                    )?;
                }
                Ok(())
            })()
            .map_err(crate::output::write_err)
        }
    }
}

/// Predicts for every line of a JSONL file, writing one JSON line per request in input order; a
/// bad line is reported on its own output line and makes the exit code 1.
fn predict_file(pipeline: &Pipeline, path: &Path, max: u64) -> Result<(), CliError> {
    const CHUNK: usize = 1000;
    let name = registry_host::input::name(path);
    let mut failed = 0usize;
    let mut chunk: Vec<(usize, Result<Request, String>)> = Vec::with_capacity(CHUNK);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let flush = |chunk: &mut Vec<(usize, Result<Request, String>)>,
                 out: &mut dyn Write,
                 failed: &mut usize|
     -> Result<(), CliError> {
        let titles: Vec<Option<String>> = chunk
            .iter()
            .map(|(_, r)| r.as_ref().ok().map(|r| r.title().to_owned()))
            .collect();
        let requests: Vec<Request> = chunk
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().cloned())
            .collect();
        let mut predictions = pipeline.predict(requests)?.into_iter();
        for ((line, parsed), title) in chunk.drain(..).zip(titles) {
            let text = match (parsed, title) {
                (Err(e), _) => {
                    *failed += 1;
                    serde_json::to_string(&serde_json::json!({ "line": line, "error": format!("{name}:{line}: {e}") }))
                }
                (Ok(_), title) => match (title, predictions.next()) {
                    (Some(title), Some(Ok(fields))) => {
                        serde_json::to_string(&Predicted { title: &title, fields: &fields })
                    }
                    (_, Some(Err(e))) => {
                        *failed += 1;
                        serde_json::to_string(&serde_json::json!({ "line": line, "error": e.to_string() }))
                    }
                    _ => return Err(CliError::config("the generator returned fewer predictions than requests")),
                },
            }
            .map_err(|e| CliError::config(format!("cannot write output: {e}")))?;
            writeln!(out, "{text}").map_err(crate::output::write_err)?;
        }
        Ok(())
    };
    registry_host::requests::read_lines(path, max, |line, parsed| {
        chunk.push((
            line,
            parsed.and_then(|l| l.into_request(pipeline.schema(), false)),
        ));
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut out, &mut failed)?;
        }
        Ok(())
    })?;
    flush(&mut chunk, &mut out, &mut failed)?;
    out.flush().map_err(crate::output::write_err)?;
    if failed > 0 {
        return Err(CliError::input(format!(
            "{failed} {} in {name} could not be predicted",
            if failed == 1 { "record" } else { "records" }
        ))
        .in_file(name));
    }
    Ok(())
}
