//! Sample requests, drafts and entries, built the way the pipeline builds them.
//!
//! An entry is only consistent when its hash covers its content and its fingerprint is that of
//! the request it came from; these builders keep it so, and the suites and plugin tests use them
//! rather than each writing the construction out again. The public builders panic on input a
//! test should not give (a title `Request::new` refuses), since they are test helpers; the
//! suites build through their fallible forms (`try_*`, private to this crate), so that a sample
//! the suite cannot make is a [`Violation`](crate::Violation) and never a panic.

use registry_core::{
    Context, Draft, Entry, EntryId, Field, Fields, Header, Request, Schema, Timestamp,
};

use crate::reference::render_config;

/// The version of sample headers.
pub const VERSION: &str = "v2.9";

/// When sample entries were created: a fixed instant, so entries compare equal across runs.
pub const CREATED: Timestamp = Timestamp(1_795_801_784_123);

/// Header field values, in header order.
pub fn fields(scope: &str, kind: &str, variant: &str, status: &str) -> Fields<String> {
    Fields {
        scope: scope.to_owned(),
        kind: kind.to_owned(),
        variant: variant.to_owned(),
        status: status.to_owned(),
    }
}

/// Given fields from a spec like `"SEC RULES - REQUIRED"` (scope, type, variant, status; `-`
/// for a field left empty), for one-line data-driven tests.
///
/// # Panics
/// When the spec does not have four words.
pub fn given(spec: &str) -> Fields<Option<String>> {
    let parts: Vec<&str> = spec.split_whitespace().collect();
    assert_eq!(
        parts.len(),
        4,
        "bad field spec {spec:?}: expected four words"
    );
    Fields::from_fn(|f| {
        Some(parts[f as usize])
            .filter(|p| *p != "-")
            .map(str::to_owned)
    })
}

/// The `index`-th declared value of every field of the schema, wrapping around short lists.
pub fn schema_fields(schema: &Schema, index: usize) -> Fields<String> {
    Fields::from_fn(|field| {
        let allowed = schema.allowed(field);
        allowed
            .get(index % allowed.len().max(1))
            .cloned()
            .unwrap_or_default()
    })
}

/// A value for `field` that the schema does not declare, and that `Request::new` accepts.
pub fn undeclared(schema: &Schema, field: Field) -> String {
    (0u32..)
        .map(|n| format!("UNDECLARED{n}"))
        .find(|v| schema.canonical(field, v).is_none())
        .unwrap_or_default()
}

/// A context of the given pairs.
///
/// # Panics
/// When `Context::new` refuses the pairs.
pub fn context(pairs: &[(&str, &str)]) -> Context {
    try_context(pairs).unwrap_or_else(|e| panic!("{e}"))
}

/// [`context`], or why the pairs are refused.
pub(crate) fn try_context(pairs: &[(&str, &str)]) -> Result<Context, String> {
    Context::new(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())))
        .map_err(|e| format!("sample context {pairs:?} is invalid: {e}"))
}

/// A request with the given title that names the given fields and nothing else.
///
/// # Panics
/// When `Request::new` refuses the title or a value.
pub fn request(title: &str, given: Fields<Option<String>>) -> Request {
    try_request(title, given).unwrap_or_else(|e| panic!("{e}"))
}

/// [`request`], or why the title or a value is refused.
pub(crate) fn try_request(title: &str, given: Fields<Option<String>>) -> Result<Request, String> {
    Request::new(title, given, None, Context::default())
        .map_err(|e| format!("sample request {title:?} is invalid: {e}"))
}

/// A request that names every field, as the validator sees one once the fields are filled in.
///
/// # Panics
/// As [`request`].
pub fn complete_request(title: &str, fields: &Fields<String>) -> Request {
    try_complete_request(title, fields).unwrap_or_else(|e| panic!("{e}"))
}

/// [`complete_request`], or why the title or a value is refused.
pub(crate) fn try_complete_request(
    title: &str,
    fields: &Fields<String>,
) -> Result<Request, String> {
    let mut r = try_request(title, fields.clone().map(|_, v| Some(v)))?;
    r.version = Some(VERSION.to_owned());
    Ok(r)
}

/// The draft of entry `number` with these fields: the id prefix follows the scope and type.
pub fn draft(fields: Fields<String>, number: u64, title: &str, context: Context) -> Draft {
    let prefix = EntryId::prefix_for(&fields.scope, &fields.kind);
    Draft {
        header: Header {
            fields,
            id: EntryId::new(prefix, number),
            version: VERSION.to_owned(),
        },
        title: title.to_owned(),
        context,
    }
}

/// The first revision of the entry made from a draft and its rendered config. Its fingerprint is
/// that of the request naming every field, so two entries from the same title, fields and
/// context share it whatever their ids.
///
/// # Panics
/// When `Request::new` refuses the draft's title.
pub fn entry_of(draft: Draft, config: String) -> Entry {
    try_entry_of(draft, config).unwrap_or_else(|e| panic!("{e}"))
}

/// [`entry_of`], or why the draft's title or a value is refused.
pub(crate) fn try_entry_of(draft: Draft, config: String) -> Result<Entry, String> {
    let request = Request::new(
        &draft.title,
        draft.header.fields.clone().map(|_, v| Some(v)),
        Some(draft.header.version.clone()),
        draft.context.clone(),
    )
    .map_err(|e| format!("sample entry {:?} is invalid: {e}", draft.title))?;
    Ok(Entry {
        hash: Entry::compute_hash(&draft.header, &draft.title, &draft.context, &config),
        previous: None,
        purge: None,
        fingerprint: request.fingerprint(),
        header: draft.header,
        title: draft.title,
        context: draft.context,
        config,
        revision: 1,
        created_at: CREATED,
        updated_at: CREATED,
        provenance: None,
        lifecycle: registry_core::Lifecycle::Active,
        author: None,
    })
}

/// The first revision of entry `number`, with a one-pair context and the config of
/// [`KeywordlessGenerator`](crate::reference::KeywordlessGenerator).
///
/// # Panics
/// As [`entry_of`].
pub fn entry(fields: Fields<String>, number: u64, title: &str) -> Entry {
    try_entry(fields, number, title).unwrap_or_else(|e| panic!("{e}"))
}

/// [`entry`], or why the title or a value is refused.
pub(crate) fn try_entry(fields: Fields<String>, number: u64, title: &str) -> Result<Entry, String> {
    let draft = draft(fields, number, title, try_context(&[("env", "test")])?);
    let config = render_config(&draft);
    try_entry_of(draft, config)
}

/// The next revision of an entry, with its status changed and its config rendered again,
/// chained to it ([`Entry::previous`]), as a registry of storage format 2 writes it: a storage
/// must give the link back as it was given.
pub fn revise(entry: &Entry, status: &str) -> Entry {
    let mut header = entry.header.clone();
    header.fields.status = status.to_owned();
    let draft = Draft {
        header,
        title: entry.title.clone(),
        context: entry.context.clone(),
    };
    let config = render_config(&draft);
    Entry {
        hash: Entry::compute_hash_after(
            &draft.header,
            &draft.title,
            &draft.context,
            &config,
            &registry_core::Lifecycle::Active,
            Some(&entry.hash),
        ),
        previous: Some(entry.hash),
        purge: None,
        author: Some(registry_core::Author::new(
            "conformance",
            "cli@sample",
            "request-1",
        )),
        header: draft.header,
        title: draft.title,
        context: draft.context,
        config,
        fingerprint: entry.fingerprint,
        revision: entry.revision + 1,
        created_at: entry.created_at,
        updated_at: Timestamp(entry.updated_at.0 + 1000),
        provenance: None,
        lifecycle: registry_core::Lifecycle::Active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_consistent() {
        let a = entry(fields("SEC", "RULES", "LIVE", "REQUIRED"), 7, "block ssh");
        assert!(a.verify());
        assert_eq!(a.header.id.to_string(), "SEC-RUL-007");
        let again = entry(fields("SEC", "RULES", "LIVE", "REQUIRED"), 8, "block ssh");
        assert_eq!(a.fingerprint, again.fingerprint);
        let other = entry(fields("SEC", "RULES", "LIVE", "REQUIRED"), 7, "block ftp");
        assert_ne!(a.fingerprint, other.fingerprint);
        let b = revise(&a, "DEPRECATED");
        assert!(b.verify());
        assert_eq!((b.revision, b.fingerprint), (2, a.fingerprint));
        assert_ne!(b.hash, a.hash);
    }

    #[test]
    fn undeclared_values_are_undeclared_and_well_formed() {
        let schema = Schema::default();
        for field in Field::ALL {
            let v = undeclared(&schema, field);
            assert_eq!(schema.canonical(field, &v), None);
            let mut given = Fields::default();
            given[field] = Some(v);
            assert!(Request::new("t", given, None, Context::default()).is_ok());
        }
    }

    #[test]
    fn refused_input_is_an_error_for_the_suites() {
        let bad = fields("SEC", "RULES", "LIVE", "REQUIRED");
        let e = try_entry(bad, 1, "two\nlines").expect_err("a title of two lines");
        assert!(
            e.starts_with("sample entry \"two\\nlines\" is invalid: "),
            "{e}"
        );
        let e = try_context(&[("bad key", "v")]).expect_err("a key with a space");
        assert!(e.starts_with("sample context"), "{e}");
    }
}
