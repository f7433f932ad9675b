//! The conformance suite of [`Generator`]: one prediction per request, proposals the schema
//! allows, honest provenance, one config per draft and the same bytes for the same draft, and
//! `predict_each`, `predict_lent`, `render_each` and `render_lent` answering as `predict` and
//! `render` do.

use registry_core::{
    Draft, DraftRef, Field, Fields, Generator, GuessRef, Prediction, Request, RequestRef, Schema,
    Source, StageKind,
};

use crate::sample::{self, try_context, try_request};
use crate::{Violation, one_each, sampled};

const STAGE: StageKind = StageKind::Generator;

fn predict(generator: &dyn Generator, requests: &[Request]) -> Result<Vec<Prediction>, Violation> {
    one_each(
        STAGE,
        "predict",
        requests.len(),
        Prediction::default(),
        |out| generator.predict(requests, out),
    )
}

fn render(generator: &dyn Generator, drafts: &[Draft]) -> Result<Vec<String>, Violation> {
    one_each(STAGE, "render", drafts.len(), String::new(), |out| {
        generator.render(drafts, out)
    })
}

/// `predict_each`'s predictions, copied: one call of `each` per request is checked as `predict`'s
/// one value per request is.
fn predict_each(
    generator: &dyn Generator,
    requests: &[Request],
) -> Result<Vec<Prediction>, Violation> {
    one_each(
        STAGE,
        "predict_each",
        requests.len(),
        Prediction::default(),
        |out| {
            generator.predict_each(requests, &mut |p| {
                out.push(p.map(|_, g| g.as_ref().map(GuessRef::to_guess)));
            })
        },
    )
}

/// `predict_lent`'s predictions of views of `requests`, copied.
fn predict_lent(
    generator: &dyn Generator,
    requests: &[Request],
) -> Result<Vec<Prediction>, Violation> {
    let views: Vec<RequestRef<'_>> = requests.iter().map(Request::view).collect();
    one_each(
        STAGE,
        "predict_lent",
        requests.len(),
        Prediction::default(),
        |out| {
            generator.predict_lent(&views, &mut |p| {
                out.push(p.map(|_, g| g.as_ref().map(GuessRef::to_guess)));
            })
        },
    )
}

/// `render_each`'s configs, copied.
fn render_each(generator: &dyn Generator, drafts: &[Draft]) -> Result<Vec<String>, Violation> {
    one_each(STAGE, "render_each", drafts.len(), String::new(), |out| {
        generator.render_each(drafts, &mut |c| out.push(c.to_owned()))
    })
}

/// `render_lent`'s configs of views of `drafts`, copied.
fn render_lent(generator: &dyn Generator, drafts: &[Draft]) -> Result<Vec<String>, Violation> {
    let views: Vec<DraftRef<'_>> = drafts.iter().map(Draft::view).collect();
    one_each(STAGE, "render_lent", drafts.len(), String::new(), |out| {
        generator.render_lent(&views, &mut |c| out.push(c.to_owned()))
    })
}

/// Requests naming none, some and all of the fields, with plain and awkward titles.
fn requests(schema: &Schema) -> Result<Vec<Request>, String> {
    let all = sample::schema_fields(schema, 1);
    let some = Fields {
        scope: Some(all.scope.clone()),
        ..Fields::default()
    };
    let mut with_context = try_request("deploy the dashboard to prod", Fields::default())?;
    with_context.context = try_context(&[("env", "prod"), ("team", "platform")])?;
    Ok(vec![
        try_request("block ssh from the internet", Fields::default())?,
        try_request("rotate the signing keys", some)?,
        try_request("nightly etl of billing records", all.map(|_, v| Some(v)))?,
        with_context,
        try_request(r#"quote " backslash \ colon: naïve ✓"#, Fields::default())?,
    ])
}

/// Drafts over the schema's values, with titles and contexts a config must carry safely.
fn drafts(schema: &Schema) -> Result<Vec<Draft>, String> {
    let titles = [
        "block ssh from the internet",
        "nightly etl of billing records",
        r#"quote " backslash \ colon: hash # naïve ✓"#,
        "- leading dash, trailing colon:",
    ];
    titles
        .iter()
        .enumerate()
        .map(|(i, title)| {
            let ctx = match i % 2 {
                0 => try_context(&[])?,
                _ => try_context(&[("env", "prod"), ("owner", "a: b # c")])?,
            };
            Ok(sample::draft(
                sample::schema_fields(schema, i),
                u64::try_from(i).unwrap_or(0) * 997 + 1,
                title,
                ctx,
            ))
        })
        .collect()
}

/// Runs every check against `generator`, with requests and drafts built from `schema`'s values.
///
/// # Errors
/// A [`Violation`] naming the rule, at the first contract the generator breaks.
pub fn check(generator: &dyn Generator, schema: &Schema) -> Result<(), Violation> {
    let requests = sampled(STAGE, requests(schema))?;
    predict(generator, &[])?;
    let predictions = predict(generator, &requests)?;
    ensure!(
        STAGE,
        predict_each(generator, &requests)? == predictions,
        "predict_each must propose what predict proposes, request by request"
    );
    // Twice: the second call may reuse what the first kept.
    for _ in 0..2 {
        ensure!(
            STAGE,
            predict_lent(generator, &requests)? == predictions,
            "predict_lent must propose what predict proposes, request by request"
        );
    }

    for (i, (request, prediction)) in requests.iter().zip(&predictions).enumerate() {
        for field in Field::ALL {
            let Some(guess) = &prediction[field] else {
                continue;
            };
            // What a generator proposes for a field the request names is ignored.
            if request.fields[field].is_some() {
                continue;
            }
            ensure!(
                STAGE,
                schema.canonical(field, &guess.value).is_some(),
                "predict proposed {field} `{}` for request {i} ({:?}): proposals must be values \
                 the schema declares ({})",
                guess.value,
                request.title(),
                schema.allowed(field).join(", ")
            );
            ensure!(
                STAGE,
                guess.source != Source::Given,
                "predict marked its {field} proposal for request {i} as given: only values the \
                 request names are given"
            );
            match guess.confidence {
                Some(c) => ensure!(
                    STAGE,
                    guess.source == Source::Model && (0.0..=1.0).contains(&c),
                    "predict gave {field} of request {i} confidence {c} with source {:?}: only a \
                     model's estimate has a confidence, in [0, 1]",
                    guess.source
                ),
                None => ensure!(
                    STAGE,
                    guess.source != Source::Model,
                    "predict gave a model's estimate of {field} for request {i} without a \
                     confidence"
                ),
            }
        }
    }

    let drafts = sampled(STAGE, drafts(schema))?;
    render(generator, &[])?;
    let configs = render(generator, &drafts)?;
    ensure!(
        STAGE,
        render(generator, &drafts)? == configs,
        "render must give the same bytes for the same drafts"
    );
    for (i, (draft, config)) in drafts.iter().zip(&configs).enumerate() {
        ensure!(
            STAGE,
            render(generator, std::slice::from_ref(draft))? == [config.clone()],
            "render must give draft {i} ({}) the same bytes alone as in a batch",
            draft.header.readable()
        );
    }
    let reversed: Vec<Draft> = drafts.iter().rev().cloned().collect();
    let mut back = render(generator, &reversed)?;
    back.reverse();
    ensure!(
        STAGE,
        back == configs,
        "render must give each draft the same bytes whatever else is in the batch"
    );
    ensure!(
        STAGE,
        render_each(generator, &drafts)? == configs,
        "render_each must give the bytes render gives, draft by draft"
    );
    // Twice: the second call may reuse what the first kept.
    for _ in 0..2 {
        ensure!(
            STAGE,
            render_lent(generator, &drafts)? == configs,
            "render_lent must give the bytes render gives, draft by draft"
        );
    }
    Ok(())
}
