//! FFI-safe mirrors of the core values that cross the plugin boundary, and their conversions.
//!
//! Values are moved, not borrowed, across the boundary where the receiver keeps them (entries,
//! rendered configs); batches of inputs are passed as slices. Converting an `RString` back into a
//! `String` reuses the allocation when both sides share an allocator, which they do on every
//! platform we build for (the system allocator).

use abi_stable::StableAbi;
use abi_stable::std_types::{ROption, RString, RVec, Tuple2};
use registry_core::{
    CacheKey, CacheStats, ContentHash, Context, Draft, Entry, EntryId, ErrorCode, Fields,
    Fingerprint, Guess, Header, HeaderForm, Inserted, ListQuery, Prediction, Problem, RawHeader,
    Request, Restored, Severity, Source, StageError, Timestamp,
};

/// An error crossing the boundary: a code (see [`ErrorCode`]) and a one-line message.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiError {
    pub code: u32,
    pub message: RString,
}

impl From<StageError> for FfiError {
    fn from(e: StageError) -> Self {
        FfiError {
            code: e.code as u32,
            message: e.message.into(),
        }
    }
}

impl From<FfiError> for StageError {
    fn from(e: FfiError) -> Self {
        StageError::new(ErrorCode::from_u32(e.code), e.message.into_string())
    }
}

fn bad_value(what: &str, detail: impl std::fmt::Display) -> StageError {
    StageError::new(
        ErrorCode::Internal,
        format!("plugin returned an invalid {what}: {detail}"),
    )
}

/// A cache key, as two 64-bit halves.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FfiKey {
    pub low: u64,
    pub high: u64,
}

impl From<CacheKey> for FfiKey {
    fn from(k: CacheKey) -> Self {
        FfiKey {
            low: k.0 as u64,
            high: (k.0 >> 64) as u64,
        }
    }
}

impl From<FfiKey> for CacheKey {
    fn from(k: FfiKey) -> Self {
        CacheKey(u128::from(k.low) | (u128::from(k.high) << 64))
    }
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, Default)]
pub struct FfiCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
}

impl From<CacheStats> for FfiCacheStats {
    fn from(s: CacheStats) -> Self {
        FfiCacheStats {
            hits: s.hits,
            misses: s.misses,
            entries: s.entries,
        }
    }
}

impl From<FfiCacheStats> for CacheStats {
    fn from(s: FfiCacheStats) -> Self {
        CacheStats {
            hits: s.hits,
            misses: s.misses,
            entries: s.entries,
        }
    }
}

/// An entry id.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiId {
    pub prefix: RString,
    pub number: u64,
}

impl From<&EntryId> for FfiId {
    fn from(id: &EntryId) -> Self {
        FfiId {
            prefix: id.prefix().into(),
            number: id.number(),
        }
    }
}

impl From<FfiId> for EntryId {
    fn from(id: FfiId) -> Self {
        EntryId::new(id.prefix.into_string(), id.number)
    }
}

/// The four enumerated fields, in header order.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiFields<T> {
    pub scope: T,
    pub kind: T,
    pub variant: T,
    pub status: T,
}

impl<T, U: From<T>> From<Fields<T>> for FfiFields<U> {
    fn from(f: Fields<T>) -> Self {
        FfiFields {
            scope: f.scope.into(),
            kind: f.kind.into(),
            variant: f.variant.into(),
            status: f.status.into(),
        }
    }
}

impl<T> FfiFields<T> {
    fn into_fields<U>(self, mut f: impl FnMut(T) -> U) -> Fields<U> {
        Fields {
            scope: f(self.scope),
            kind: f(self.kind),
            variant: f(self.variant),
            status: f(self.status),
        }
    }
}

fn opt_string(o: &Option<String>) -> ROption<RString> {
    o.as_deref().map(RString::from).into()
}

fn from_opt(o: ROption<RString>) -> Option<String> {
    o.into_option().map(RString::into_string)
}

/// Context pairs, sorted by key.
pub type FfiContext = RVec<Tuple2<RString, RString>>;

fn context_to_ffi(c: &Context) -> FfiContext {
    c.iter().map(|(k, v)| Tuple2(k.into(), v.into())).collect()
}

fn context_from_ffi(c: FfiContext) -> Result<Context, StageError> {
    Context::new(
        c.into_iter()
            .map(|Tuple2(k, v)| (k.into_string(), v.into_string())),
    )
    .map_err(|e| bad_value("context", e))
}

/// A complete header.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiHeader {
    pub fields: FfiFields<RString>,
    pub id: FfiId,
    pub version: RString,
}

impl From<&Header> for FfiHeader {
    fn from(h: &Header) -> Self {
        FfiHeader {
            fields: h.fields.clone().map(|_, v| RString::from(v)).into(),
            id: (&h.id).into(),
            version: h.version.as_str().into(),
        }
    }
}

impl From<FfiHeader> for Header {
    fn from(h: FfiHeader) -> Self {
        Header {
            fields: h.fields.into_fields(RString::into_string),
            id: h.id.into(),
            version: h.version.into_string(),
        }
    }
}

/// One revision of an entry.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiEntry {
    pub header: FfiHeader,
    pub title: RString,
    pub context: FfiContext,
    pub config: RString,
    pub hash: [u8; 32],
    pub fingerprint: [u8; 16],
    pub revision: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Entry> for FfiEntry {
    fn from(e: &Entry) -> Self {
        FfiEntry {
            header: (&e.header).into(),
            title: e.title.as_str().into(),
            context: context_to_ffi(&e.context),
            config: e.config.as_str().into(),
            hash: e.hash.0,
            fingerprint: e.fingerprint.0,
            revision: e.revision,
            created_at: e.created_at.0,
            updated_at: e.updated_at.0,
        }
    }
}

impl TryFrom<FfiEntry> for Entry {
    type Error = StageError;
    fn try_from(e: FfiEntry) -> Result<Self, StageError> {
        Ok(Entry {
            header: e.header.into(),
            title: e.title.into_string(),
            context: context_from_ffi(e.context)?,
            config: e.config.into_string(),
            hash: ContentHash(e.hash),
            fingerprint: Fingerprint(e.fingerprint),
            revision: e.revision,
            created_at: Timestamp(e.created_at),
            updated_at: Timestamp(e.updated_at),
        })
    }
}

/// A registration request.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiRequest {
    pub title: RString,
    pub fields: FfiFields<ROption<RString>>,
    pub version: ROption<RString>,
    pub context: FfiContext,
}

impl From<&Request> for FfiRequest {
    fn from(r: &Request) -> Self {
        FfiRequest {
            title: r.title().into(),
            fields: FfiFields {
                scope: opt_string(&r.fields.scope),
                kind: opt_string(&r.fields.kind),
                variant: opt_string(&r.fields.variant),
                status: opt_string(&r.fields.status),
            },
            version: opt_string(&r.version),
            context: context_to_ffi(&r.context),
        }
    }
}

impl TryFrom<FfiRequest> for Request {
    type Error = StageError;
    fn try_from(r: FfiRequest) -> Result<Self, StageError> {
        Request::new(
            r.title.as_str(),
            r.fields.into_fields(from_opt),
            from_opt(r.version),
            context_from_ffi(r.context)?,
        )
        .map_err(|e| bad_value("request", e))
    }
}

/// A value proposed for a field. `source`: 0 given, 1 model, 2 keyword, 3 default.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiGuess {
    pub value: RString,
    pub confidence: ROption<f32>,
    pub source: u8,
}

impl From<Guess> for FfiGuess {
    fn from(g: Guess) -> Self {
        FfiGuess {
            value: g.value.into(),
            confidence: g.confidence.into(),
            source: match g.source {
                Source::Given => 0,
                Source::Model => 1,
                Source::Keyword => 2,
                Source::Default => 3,
            },
        }
    }
}

impl From<FfiGuess> for Guess {
    fn from(g: FfiGuess) -> Self {
        Guess {
            value: g.value.into_string(),
            confidence: g.confidence.into_option().map(|c| c.clamp(0.0, 1.0)),
            source: match g.source {
                0 => Source::Given,
                1 => Source::Model,
                2 => Source::Keyword,
                _ => Source::Default,
            },
        }
    }
}

pub type FfiPrediction = FfiFields<ROption<FfiGuess>>;

pub(crate) fn prediction_to_ffi(p: Prediction) -> FfiPrediction {
    p.map(|_, g| ROption::from(g.map(FfiGuess::from))).into()
}

pub(crate) fn prediction_from_ffi(p: FfiPrediction) -> Prediction {
    p.into_fields(|g| g.into_option().map(Guess::from))
}

/// What a config is rendered from.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiDraft {
    pub header: FfiHeader,
    pub title: RString,
    pub context: FfiContext,
}

impl From<&Draft> for FfiDraft {
    fn from(d: &Draft) -> Self {
        FfiDraft {
            header: (&d.header).into(),
            title: d.title.as_str().into(),
            context: context_to_ffi(&d.context),
        }
    }
}

impl TryFrom<FfiDraft> for Draft {
    type Error = StageError;
    fn try_from(d: FfiDraft) -> Result<Self, StageError> {
        Ok(Draft {
            header: d.header.into(),
            title: d.title.into_string(),
            context: context_from_ffi(d.context)?,
        })
    }
}

/// A validation problem. `severity`: 0 warning, 1 error.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiProblem {
    pub item: u64,
    pub severity: u8,
    pub code: RString,
    pub field: RString,
    pub message: RString,
}

impl From<Problem> for FfiProblem {
    fn from(p: Problem) -> Self {
        FfiProblem {
            item: p.item as u64,
            severity: match p.severity {
                Severity::Warning => 0,
                Severity::Error => 1,
            },
            code: p.code.into(),
            field: p.field.into(),
            message: p.message.into(),
        }
    }
}

impl From<FfiProblem> for Problem {
    fn from(p: FfiProblem) -> Self {
        Problem {
            item: usize::try_from(p.item).unwrap_or(usize::MAX),
            severity: if p.severity == 0 {
                Severity::Warning
            } else {
                Severity::Error
            },
            code: p.code.into_string(),
            field: p.field.into_string(),
            message: p.message.into_string(),
        }
    }
}

/// A header as written in a file, split but unchecked. `form`: 0 readable, 1 grepable.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiRawHeader {
    pub form: u8,
    pub fields: FfiFields<RString>,
    pub id: RString,
    pub version: RString,
}

impl From<&RawHeader> for FfiRawHeader {
    fn from(h: &RawHeader) -> Self {
        FfiRawHeader {
            form: match h.form {
                HeaderForm::Readable => 0,
                HeaderForm::Grepable => 1,
            },
            fields: FfiFields {
                scope: h.fields.scope.as_str().into(),
                kind: h.fields.kind.as_str().into(),
                variant: h.fields.variant.as_str().into(),
                status: h.fields.status.as_str().into(),
            },
            id: h.id.as_str().into(),
            version: h.version.as_str().into(),
        }
    }
}

impl From<FfiRawHeader> for RawHeader {
    fn from(h: FfiRawHeader) -> Self {
        RawHeader {
            form: if h.form == 0 {
                HeaderForm::Readable
            } else {
                HeaderForm::Grepable
            },
            fields: h.fields.into_fields(RString::into_string),
            id: h.id.into_string(),
            version: h.version.into_string(),
        }
    }
}

/// The outcome of one restore: `true` when created, `false` when already stored unchanged.
pub(crate) fn restored_to_ffi(r: Restored) -> bool {
    r == Restored::Created
}

pub(crate) fn restored_from_ffi(created: bool) -> Restored {
    if created {
        Restored::Created
    } else {
        Restored::Unchanged
    }
}

/// The outcome of one insert: `existing` is set when the fingerprint was already registered.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiInserted {
    pub existing: ROption<FfiEntry>,
}

impl From<Inserted> for FfiInserted {
    fn from(i: Inserted) -> Self {
        FfiInserted {
            existing: match i {
                Inserted::Created => ROption::RNone,
                Inserted::Existing(e) => ROption::RSome((&e).into()),
            },
        }
    }
}

impl TryFrom<FfiInserted> for Inserted {
    type Error = StageError;
    fn try_from(i: FfiInserted) -> Result<Self, StageError> {
        Ok(match i.existing.into_option() {
            None => Inserted::Created,
            Some(e) => Inserted::Existing(e.try_into()?),
        })
    }
}

/// A list query.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiListQuery {
    pub filter: FfiFields<ROption<RString>>,
    pub after: ROption<FfiId>,
    pub limit: u64,
}

impl From<&ListQuery> for FfiListQuery {
    fn from(q: &ListQuery) -> Self {
        FfiListQuery {
            filter: FfiFields {
                scope: opt_string(&q.filter.scope),
                kind: opt_string(&q.filter.kind),
                variant: opt_string(&q.filter.variant),
                status: opt_string(&q.filter.status),
            },
            after: q.after.as_ref().map(FfiId::from).into(),
            limit: q.limit as u64,
        }
    }
}

impl From<FfiListQuery> for ListQuery {
    fn from(q: FfiListQuery) -> Self {
        ListQuery {
            filter: q.filter.into_fields(from_opt),
            after: q.after.into_option().map(EntryId::from),
            limit: usize::try_from(q.limit).unwrap_or(usize::MAX),
        }
    }
}

/// Converts a batch of FFI values, failing on the first invalid one.
pub(crate) fn convert_all<F, T>(
    items: impl IntoIterator<Item = F>,
    out: &mut Vec<T>,
) -> Result<(), StageError>
where
    T: TryFrom<F, Error = StageError>,
{
    for item in items {
        out.push(T::try_from(item)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for k in [
            0u128,
            1,
            u128::MAX,
            1 << 127,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(CacheKey::from(FfiKey::from(CacheKey(k))), CacheKey(k));
        }
    }

    #[test]
    fn entries_round_trip() {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "REQUIRED".into(),
            },
            id: EntryId::new("SEC-RUL", 42),
            version: "v2.9".into(),
        };
        let context = Context::new([("env".to_owned(), "prod".to_owned())]).expect("valid context");
        let entry = Entry {
            hash: Entry::compute_hash(&header, "t", &context, "a: 1\n"),
            header,
            title: "t".into(),
            context,
            config: "a: 1\n".into(),
            fingerprint: Fingerprint([7; 16]),
            revision: 3,
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
        };
        let back = Entry::try_from(FfiEntry::from(&entry)).expect("round trip");
        assert_eq!(back, entry);
    }
}
