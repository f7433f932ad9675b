//! The conformance suite of [`Validator`]: valid requests and entries pass, a value the schema
//! does not declare is an error on the right item and field, problems are reported rather than
//! raised, and requests lent as views (`check_requests_lent`) get the same report. The same holds for headers as written in files, in both forms.

use registry_core::{
    Draft, Entry, EntryRef, Field, Fields, Generator, HeaderForm, Problem, RawHeader, Request,
    RequestRef, Schema, Severity, StageKind, Validator,
};

use crate::reference::KeywordlessGenerator;
use crate::sample::{self, try_complete_request, try_context, try_entry_of};
use crate::{Violation, appended, ok, sampled};

const STAGE: StageKind = StageKind::Validator;

fn filler() -> Problem {
    Problem {
        item: usize::MAX,
        severity: Severity::Warning,
        code: "filler".into(),
        field: "filler".into(),
        message: "a problem the suite put there".into(),
    }
}

fn check_requests(
    validator: &dyn Validator,
    requests: &[Request],
) -> Result<Vec<Problem>, Violation> {
    appended(STAGE, "check_requests", filler(), |out| {
        validator.check_requests(requests, out)
    })
}

/// `check_requests_lent`'s problems with views of `requests`.
fn check_requests_lent(
    validator: &dyn Validator,
    requests: &[Request],
) -> Result<Vec<Problem>, Violation> {
    let views: Vec<RequestRef<'_>> = requests.iter().map(Request::view).collect();
    appended(STAGE, "check_requests_lent", filler(), |out| {
        validator.check_requests_lent(&views, out)
    })
}

/// `problems` in one order, to compare reports that may list an item's problems in another.
fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by(|a, b| {
        (a.item, &a.field, &a.code, &a.message).cmp(&(b.item, &b.field, &b.code, &b.message))
    });
    problems
}

fn check_built(validator: &dyn Validator, entries: &[Entry]) -> Result<Vec<Problem>, Violation> {
    appended(STAGE, "check_built", filler(), |out| {
        validator.check_built(entries, out)
    })
}

/// `check_built_lent`'s problems with views of `entries`.
fn check_built_lent(
    validator: &dyn Validator,
    entries: &[Entry],
) -> Result<Vec<Problem>, Violation> {
    let views: Vec<EntryRef<'_>> = entries.iter().map(EntryRef::from).collect();
    appended(STAGE, "check_built_lent", filler(), |out| {
        validator.check_built_lent(&views, out)
    })
}

fn check_entries(validator: &dyn Validator, entries: &[Entry]) -> Result<Vec<Problem>, Violation> {
    appended(STAGE, "check_entries", filler(), |out| {
        validator.check_entries(entries, out)
    })
}

fn check_headers(
    validator: &dyn Validator,
    headers: &[RawHeader],
) -> Result<Vec<Problem>, Violation> {
    appended(STAGE, "check_headers", filler(), |out| {
        validator.check_headers(headers, out)
    })
}

/// The errors about item `item`.
fn errors(problems: &[Problem], item: usize) -> Vec<&Problem> {
    problems
        .iter()
        .filter(|p| p.item == item && p.severity == Severity::Error)
        .collect()
}

/// Runs every check against `validator`, with entries whose configs
/// [`KeywordlessGenerator`] renders. Use [`check_with`] when the validator expects the configs of
/// a particular generator.
///
/// # Errors
/// A [`Violation`] naming the rule, at the first contract the validator breaks.
pub fn check(validator: &dyn Validator, schema: &Schema) -> Result<(), Violation> {
    check_with(validator, schema, &KeywordlessGenerator)
}

/// Runs every check against `validator`, with requests and entries built from `schema`'s values
/// and configs rendered by `generator`: "a valid entry" is one that generator rendered.
///
/// # Errors
/// A [`Violation`] naming the rule, at the first contract the validator breaks, or a violation
/// of the generator's contract when `generator` fails to render one config per draft.
pub fn check_with(
    validator: &dyn Validator,
    schema: &Schema,
    generator: &dyn Generator,
) -> Result<(), Violation> {
    ensure!(
        STAGE,
        check_requests(validator, &[])?.is_empty() && check_entries(validator, &[])?.is_empty(),
        "an empty batch has no problems"
    );

    // One valid item between each pair of broken ones, so a problem on the wrong item shows.
    let mut requests = Vec::new();
    let mut entries_fields = Vec::new();
    for (i, field) in Field::ALL.into_iter().enumerate() {
        let good = sample::schema_fields(schema, i);
        let mut bad = good.clone();
        bad[field] = sample::undeclared(schema, field);
        requests.push(sampled(
            STAGE,
            try_complete_request(&format!("valid request {i}"), &good),
        )?);
        requests.push(sampled(
            STAGE,
            try_complete_request(&format!("broken {field}"), &bad),
        )?);
        entries_fields.push(good);
        entries_fields.push(bad);
    }
    let problems = check_requests(validator, &requests)?;
    // Twice: the second batch may reuse what the first one kept.
    for _ in 0..2 {
        let lent = check_requests_lent(validator, &requests)?;
        ensure!(
            STAGE,
            sorted(lent.clone()) == sorted(problems.clone()),
            "check_requests_lent must report what check_requests reports for the same \
             requests; it reported {lent:?} where check_requests reported {problems:?}"
        );
    }
    let entries = render_entries(generator, entries_fields)?;
    let entry_problems = check_entries(validator, &entries)?;
    // Entries the pipeline built, as they are and lent as views, alone and after 300 valid
    // ones: the same problems, each on its entry.
    let built = check_built(validator, &entries)?;
    let mut large = vec![entries[0].clone(); 300];
    large.extend(entries.iter().cloned());
    for (what, got, offset) in [
        (
            "check_built_lent",
            check_built_lent(validator, &entries)?,
            0,
        ),
        (
            "check_built_lent",
            check_built_lent(validator, &entries)?,
            0,
        ),
        ("check_built", check_built(validator, &large)?, 300),
        (
            "check_built_lent",
            check_built_lent(validator, &large)?,
            300,
        ),
    ] {
        let want: Vec<Problem> = built
            .iter()
            .cloned()
            .map(|mut p| {
                p.item += offset;
                p
            })
            .collect();
        ensure!(
            STAGE,
            sorted(got.clone()) == sorted(want.clone()),
            "{what} of a batch of {} entries must report the problems check_built reports \
             for its last {} alone, each with `item` its index in the whole batch; it reported \
             {got:?} where {want:?} was expected",
            entries.len() + offset,
            entries.len()
        );
    }
    let headers =
        |form| -> Vec<RawHeader> { entries.iter().map(|e| raw_header(e, form)).collect() };
    let readable_headers = headers(HeaderForm::Readable);
    let readable = check_headers(validator, &readable_headers)?;
    let grepable_headers = headers(HeaderForm::Grepable);
    let grepable = check_headers(validator, &grepable_headers)?;

    for (what, problems, count) in [
        ("check_requests", &problems, requests.len()),
        ("check_entries", &entry_problems, entries.len()),
        (
            "check_headers (readable form)",
            &readable,
            readable_headers.len(),
        ),
        (
            "check_headers (grepable form)",
            &grepable,
            grepable_headers.len(),
        ),
    ] {
        if let Some(p) = problems.iter().find(|p| p.item >= count) {
            fail!(
                STAGE,
                "{what} reported a problem about item {} of a batch of {count}: `item` is the \
                 index in the batch ({p:?})",
                p.item
            );
        }
        for (i, field) in Field::ALL.into_iter().enumerate() {
            let valid = 2 * i;
            let broken = 2 * i + 1;
            let wrong = errors(problems, valid);
            ensure!(
                STAGE,
                wrong.is_empty(),
                "{what} must accept item {valid}, whose fields are all declared in the schema; \
                 it reported {wrong:?}"
            );
            let found = errors(problems, broken);
            ensure!(
                STAGE,
                found.iter().any(|p| p.field == field.name()),
                "{what} must report an error on field `{field}` of item {broken}, whose {field} \
                 `{}` the schema does not declare; it reported {found:?}",
                sample::undeclared(schema, field)
            );
        }
    }
    // The same requests after 300 valid ones: the same problems, each still on its request
    // (a plugin library may be lent a large batch in parts).
    let padding = 300;
    let valid = sampled(
        STAGE,
        try_complete_request("valid padding", &sample::schema_fields(schema, 0)),
    )?;
    let mut large = vec![valid; padding];
    large.extend(requests.iter().cloned());
    let shifted: Vec<Problem> = problems
        .iter()
        .cloned()
        .map(|mut p| {
            p.item += padding;
            p
        })
        .collect();
    for (what, got) in [
        ("check_requests", check_requests(validator, &large)?),
        (
            "check_requests_lent",
            check_requests_lent(validator, &large)?,
        ),
    ] {
        ensure!(
            STAGE,
            sorted(got.clone()) == sorted(shifted.clone()),
            "{what} must report the same problems of the same requests in a batch of {}, each \
             with `item` its index in the whole batch; it reported {got:?} where {shifted:?} \
             was expected",
            large.len()
        );
    }
    Ok(())
}

/// An entry's header as it would be written in a file, split but unchecked.
fn raw_header(entry: &Entry, form: HeaderForm) -> RawHeader {
    let h = &entry.header;
    let lower = |s: &str| match form {
        HeaderForm::Readable => s.to_owned(),
        HeaderForm::Grepable => s.to_lowercase(),
    };
    RawHeader {
        form,
        fields: h.fields.clone().map(|_, v| lower(&v)),
        id: lower(&h.id.to_string()),
        version: h.version.clone(),
    }
}

/// Pairs of entries numbered 1, 2, …: each valid one rendered by `generator`, each broken one
/// the same but for its fields, with the valid one's config (a generator need not be able to
/// render a value the schema does not declare).
fn render_entries(
    generator: &dyn Generator,
    fields: Vec<Fields<String>>,
) -> Result<Vec<Entry>, Violation> {
    let context = sampled(STAGE, try_context(&[("env", "test")]))?;
    let draft =
        |f: Fields<String>, n: u64| sample::draft(f, n, &format!("entry {n}"), context.clone());
    let pairs: Vec<(Draft, Draft)> = fields
        .chunks(2)
        .zip((1u64..).step_by(2))
        .filter_map(|(pair, n)| match pair {
            [good, bad] => Some((draft(good.clone(), n), draft(bad.clone(), n + 1))),
            _ => None,
        })
        .collect();
    let good: Vec<Draft> = pairs.iter().map(|(g, _)| g.clone()).collect();
    let mut configs = Vec::with_capacity(good.len());
    ok(
        StageKind::Generator,
        "render",
        generator.render(&good, &mut configs),
    )?;
    ensure!(
        StageKind::Generator,
        configs.len() == good.len(),
        "render must push one config per draft"
    );
    let mut entries = Vec::with_capacity(2 * pairs.len());
    for ((g, b), config) in pairs.into_iter().zip(configs) {
        entries.push(sampled(STAGE, try_entry_of(g, config.clone()))?);
        entries.push(sampled(STAGE, try_entry_of(b, config))?);
    }
    Ok(entries)
}
