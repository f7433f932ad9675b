//! FFI-safe mirrors of the core values that cross the plugin boundary, and their conversions.
//!
//! Two kinds of mirror, by direction:
//! - What the host sends (entries, requests, drafts) crosses as borrowed views, the `…Ref` types:
//!   `RStr`s and `RSlice`s pointing into the host's own values, built without copying a string.
//!   The plugin copies each string once, into the owned core value its trait takes. A batch's
//!   context pairs are gathered in one vector and each view's context is a slice of it, so
//!   building a batch's views allocates a fixed number of vectors, whatever its size.
//! - What the plugin returns (entries found, rendered configs, problems) outlives the call, so it
//!   is owned (`RString`, `RVec`). `RString::into_string` copies when the string was allocated in
//!   another binary, which it always is here: a returned string is copied once by the plugin and
//!   once by the host.
//!
//! Views are only ever built by the host, from valid core values; the plugin still checks what
//! it receives (a context's keys and values, a request's structural rules) exactly as the core
//! constructors do, since a view is only as good as the binary that made it.

use abi_stable::StableAbi;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};
use registry_core::{
    Author, AuthorRef, CacheKey, CacheStats, ContentHash, Context, ContextRef, Draft, DraftRef,
    Entry, EntryId, EntryRef, ErrorCode, Fields, Fingerprint, Guess, Header, HeaderForm, Inserted,
    Lifecycle, LifecycleRef, ListQuery, Prediction, PredictionRef, Problem, Provenance, Purge,
    PurgeRef, RawHeader, Request, RequestRef, Restored, Severity, Source, StageError, Timestamp,
    copy_into, refill_author, refill_purge,
};

use crate::module::EntrySink;

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

/// An invalid value a plugin handed back to the host.
fn bad_value(what: &str, detail: impl std::fmt::Display) -> StageError {
    StageError::new(
        ErrorCode::Internal,
        format!("plugin returned an invalid {what}: {detail}"),
    )
}

/// An invalid value the host handed to a plugin, through a view.
fn bad_input(what: &str, detail: impl std::fmt::Display) -> StageError {
    StageError::new(
        ErrorCode::Internal,
        format!("host sent an invalid {what}: {detail}"),
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

/// A cache's counters.
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

impl From<&FfiId> for EntryId {
    fn from(id: &FfiId) -> Self {
        EntryId::new(id.prefix.as_str(), id.number)
    }
}

/// An entry id, borrowed from the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiIdRef<'a> {
    pub prefix: RStr<'a>,
    pub number: u64,
}

impl<'a> From<&'a EntryId> for FfiIdRef<'a> {
    fn from(id: &'a EntryId) -> Self {
        FfiIdRef {
            prefix: id.prefix().into(),
            number: id.number(),
        }
    }
}

impl From<&FfiIdRef<'_>> for EntryId {
    fn from(id: &FfiIdRef<'_>) -> Self {
        EntryId::new(id.prefix.as_str(), id.number)
    }
}

/// The four enumerated fields, in header order.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
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

    fn to_fields<U>(&self, mut f: impl FnMut(&T) -> U) -> Fields<U> {
        Fields {
            scope: f(&self.scope),
            kind: f(&self.kind),
            variant: f(&self.variant),
            status: f(&self.status),
        }
    }

    fn of<'a, V>(fields: &'a Fields<V>, mut f: impl FnMut(&'a V) -> T) -> Self {
        FfiFields {
            scope: f(&fields.scope),
            kind: f(&fields.kind),
            variant: f(&fields.variant),
            status: f(&fields.status),
        }
    }
}

fn opt_string(o: &Option<String>) -> ROption<RString> {
    o.as_deref().map(RString::from).into()
}

fn from_opt(o: &ROption<RString>) -> Option<String> {
    o.as_ref().into_option().map(|s| s.as_str().to_owned())
}

fn opt_str(o: &Option<String>) -> ROption<RStr<'_>> {
    o.as_deref().map(RStr::from).into()
}

fn from_opt_str(o: &ROption<RStr<'_>>) -> Option<String> {
    o.into_option().map(|s| s.as_str().to_owned())
}

/// Context pairs, sorted by key.
pub type FfiContext = RVec<Tuple2<RString, RString>>;

/// One context pair, borrowed from the host.
pub type FfiPairRef<'a> = Tuple2<RStr<'a>, RStr<'a>>;

/// Context pairs, sorted by key, borrowed from the host.
pub type FfiContextRef<'a> = RSlice<'a, FfiPairRef<'a>>;

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

/// Copies a borrowed context, with every check [`Context::new`] makes.
fn context_from_view(c: FfiContextRef<'_>) -> Result<Context, StageError> {
    Context::new(
        c.iter()
            .map(|Tuple2(k, v)| (k.as_str().to_owned(), v.as_str().to_owned())),
    )
    .map_err(|e| bad_input("context", e))
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
            fields: FfiFields::of(&h.fields, |v| RString::from(v.as_str())),
            id: (&h.id).into(),
            version: h.version.as_str().into(),
        }
    }
}

impl From<FfiHeader> for Header {
    fn from(h: FfiHeader) -> Self {
        Header {
            fields: h.fields.into_fields(RString::into_string),
            id: EntryId::new(h.id.prefix.into_string(), h.id.number),
            version: h.version.into_string(),
        }
    }
}

/// A complete header, borrowed from the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiHeaderRef<'a> {
    pub fields: FfiFields<RStr<'a>>,
    pub id: FfiIdRef<'a>,
    pub version: RStr<'a>,
}

impl<'a> From<&'a Header> for FfiHeaderRef<'a> {
    fn from(h: &'a Header) -> Self {
        FfiHeaderRef {
            fields: FfiFields::of(&h.fields, |v| RStr::from(v.as_str())),
            id: (&h.id).into(),
            version: h.version.as_str().into(),
        }
    }
}

impl From<&FfiHeaderRef<'_>> for Header {
    fn from(h: &FfiHeaderRef<'_>) -> Self {
        Header {
            fields: h.fields.to_fields(|v| v.as_str().to_owned()),
            id: (&h.id).into(),
            version: h.version.as_str().to_owned(),
        }
    }
}

/// `Entry::purge`, as a plugin returns it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiPurge {
    pub original: [u8; 32],
    pub fields: RString,
    pub reason: RString,
    pub at: i64,
}

/// `Entry::purge`, borrowed from the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiPurgeRef<'a> {
    pub original: [u8; 32],
    pub fields: RStr<'a>,
    pub reason: RStr<'a>,
    pub at: i64,
}

impl From<&Purge> for FfiPurge {
    fn from(p: &Purge) -> Self {
        FfiPurge {
            original: p.original.0,
            fields: p.fields.as_str().into(),
            reason: p.reason.as_str().into(),
            at: p.at.0,
        }
    }
}

impl<'a> From<&'a Purge> for FfiPurgeRef<'a> {
    fn from(p: &'a Purge) -> Self {
        FfiPurgeRef {
            original: p.original.0,
            fields: p.fields.as_str().into(),
            reason: p.reason.as_str().into(),
            at: p.at.0,
        }
    }
}

impl From<FfiPurge> for Purge {
    fn from(p: FfiPurge) -> Self {
        Purge {
            original: ContentHash(p.original),
            fields: p.fields.into_string(),
            reason: p.reason.into_string(),
            at: Timestamp(p.at),
        }
    }
}

impl From<&FfiPurgeRef<'_>> for Purge {
    fn from(p: &FfiPurgeRef<'_>) -> Self {
        Purge {
            original: ContentHash(p.original),
            fields: p.fields.as_str().to_owned(),
            reason: p.reason.as_str().to_owned(),
            at: Timestamp(p.at),
        }
    }
}

/// `Entry::author`, as a plugin returns it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiAuthor {
    pub name: RString,
    pub origin: RString,
    pub request: RString,
}

/// `Entry::author`, borrowed from the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiAuthorRef<'a> {
    pub name: RStr<'a>,
    pub origin: RStr<'a>,
    pub request: RStr<'a>,
}

impl From<&Author> for FfiAuthor {
    fn from(a: &Author) -> Self {
        FfiAuthor {
            name: a.name.as_str().into(),
            origin: a.origin.as_str().into(),
            request: a.request.as_str().into(),
        }
    }
}

impl<'a> From<&'a Author> for FfiAuthorRef<'a> {
    fn from(a: &'a Author) -> Self {
        FfiAuthorRef {
            name: a.name.as_str().into(),
            origin: a.origin.as_str().into(),
            request: a.request.as_str().into(),
        }
    }
}

impl From<FfiAuthor> for Author {
    fn from(a: FfiAuthor) -> Self {
        Author {
            name: a.name.into_string(),
            origin: a.origin.into_string(),
            request: a.request.into_string(),
        }
    }
}

impl From<&FfiAuthorRef<'_>> for Author {
    fn from(a: &FfiAuthorRef<'_>) -> Self {
        Author {
            name: a.name.as_str().to_owned(),
            origin: a.origin.as_str().to_owned(),
            request: a.request.as_str().to_owned(),
        }
    }
}

/// One revision of an entry, as a plugin returns it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiEntry {
    pub header: FfiHeader,
    pub title: RString,
    pub context: FfiContext,
    pub config: RString,
    pub hash: [u8; 32],
    /// `Entry::previous`.
    pub previous: ROption<[u8; 32]>,
    pub purge: ROption<FfiPurge>,
    pub fingerprint: [u8; 16],
    pub revision: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// `Provenance::pack`; 0 when not recorded.
    pub provenance: u32,
    /// 0 active, 1 retired, 2 merged into `merged_into`.
    pub lifecycle: u8,
    pub merged_into: ROption<FfiId>,
    /// `Entry::author`.
    pub author: ROption<FfiAuthor>,
}

impl From<&Entry> for FfiEntry {
    fn from(e: &Entry) -> Self {
        FfiEntry {
            header: (&e.header).into(),
            title: e.title.as_str().into(),
            context: context_to_ffi(&e.context),
            config: e.config.as_str().into(),
            hash: e.hash.0,
            previous: e.previous.map(|p| p.0).into(),
            purge: e.purge.as_ref().map(FfiPurge::from).into(),
            fingerprint: e.fingerprint.0,
            revision: e.revision,
            created_at: e.created_at.0,
            updated_at: e.updated_at.0,
            provenance: Provenance::pack_option(e.provenance.as_ref()),
            lifecycle: lifecycle_number(&e.lifecycle),
            merged_into: e.lifecycle.merged_into().map(FfiId::from).into(),
            author: e.author.as_ref().map(FfiAuthor::from).into(),
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
            previous: e.previous.into_option().map(ContentHash),
            purge: e.purge.into_option().map(Purge::from),
            fingerprint: Fingerprint(e.fingerprint),
            revision: e.revision,
            created_at: Timestamp(e.created_at),
            updated_at: Timestamp(e.updated_at),
            provenance: provenance_from_ffi(e.provenance)?,
            lifecycle: lifecycle_from_ffi(
                e.lifecycle,
                e.merged_into.as_ref().map(EntryId::from).into_option(),
            )?,
            author: e.author.into_option().map(Author::from),
        })
    }
}

/// One revision of an entry, borrowed from the host: what `put`, `check_entries`, `insert`,
/// `update` and `restore` receive.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiEntryRef<'a> {
    pub header: FfiHeaderRef<'a>,
    pub title: RStr<'a>,
    pub context: FfiContextRef<'a>,
    pub config: RStr<'a>,
    pub hash: [u8; 32],
    /// `Entry::previous`.
    pub previous: ROption<[u8; 32]>,
    pub purge: ROption<FfiPurgeRef<'a>>,
    pub fingerprint: [u8; 16],
    pub revision: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// `Provenance::pack`; 0 when not recorded.
    pub provenance: u32,
    /// 0 active, 1 retired, 2 merged into `merged_into`.
    pub lifecycle: u8,
    pub merged_into: ROption<FfiIdRef<'a>>,
    /// `Entry::author`.
    pub author: ROption<FfiAuthorRef<'a>>,
}

impl<'a> FfiEntryRef<'a> {
    /// A view of `e` whose context is `context`, the batch's slice of pairs for `e`.
    fn new(e: &'a Entry, context: FfiContextRef<'a>) -> Self {
        FfiEntryRef {
            header: (&e.header).into(),
            title: e.title.as_str().into(),
            context,
            config: e.config.as_str().into(),
            hash: e.hash.0,
            previous: e.previous.map(|p| p.0).into(),
            purge: e.purge.as_ref().map(FfiPurgeRef::from).into(),
            fingerprint: e.fingerprint.0,
            revision: e.revision,
            created_at: e.created_at.0,
            updated_at: e.updated_at.0,
            provenance: Provenance::pack_option(e.provenance.as_ref()),
            lifecycle: lifecycle_number(&e.lifecycle),
            merged_into: e.lifecycle.merged_into().map(FfiIdRef::from).into(),
            author: e.author.as_ref().map(FfiAuthorRef::from).into(),
        }
    }
}

impl<'a> FfiEntryRef<'a> {
    /// A view of the lent entry `e` whose context is `context`, the batch's slice of pairs for
    /// `e`.
    fn of_view(e: &EntryRef<'a>, context: FfiContextRef<'a>) -> Self {
        let (lifecycle, merged_into) = match e.lifecycle {
            LifecycleRef::Active => (0, None),
            LifecycleRef::Retired => (1, None),
            LifecycleRef::Merged { prefix, number } => (
                2,
                Some(FfiIdRef {
                    prefix: prefix.into(),
                    number,
                }),
            ),
        };
        FfiEntryRef {
            header: FfiHeaderRef {
                fields: e.fields.into(),
                id: FfiIdRef {
                    prefix: e.id_prefix.into(),
                    number: e.id_number,
                },
                version: e.version.into(),
            },
            title: e.title.into(),
            context,
            config: e.config.into(),
            hash: e.hash.0,
            previous: e.previous.map(|p| p.0).into(),
            purge: e
                .purge
                .map(|p| FfiPurgeRef {
                    original: p.original.0,
                    fields: p.fields.into(),
                    reason: p.reason.into(),
                    at: p.at.0,
                })
                .into(),
            fingerprint: e.fingerprint.0,
            revision: e.revision,
            created_at: e.created_at.0,
            updated_at: e.updated_at.0,
            provenance: Provenance::pack_option(e.provenance.as_ref()),
            lifecycle,
            merged_into: merged_into.into(),
            author: e
                .author
                .map(|a| FfiAuthorRef {
                    name: a.name.into(),
                    origin: a.origin.into(),
                    request: a.request.into(),
                })
                .into(),
        }
    }
}

impl TryFrom<&FfiEntryRef<'_>> for Entry {
    type Error = StageError;
    fn try_from(e: &FfiEntryRef<'_>) -> Result<Self, StageError> {
        Ok(Entry {
            header: (&e.header).into(),
            title: e.title.as_str().to_owned(),
            context: context_from_view(e.context)?,
            config: e.config.as_str().to_owned(),
            hash: ContentHash(e.hash),
            previous: e.previous.into_option().map(ContentHash),
            purge: e.purge.as_ref().map(Purge::from).into_option(),
            fingerprint: Fingerprint(e.fingerprint),
            revision: e.revision,
            created_at: Timestamp(e.created_at),
            updated_at: Timestamp(e.updated_at),
            provenance: provenance_from_ffi(e.provenance)?,
            lifecycle: lifecycle_from_ffi(
                e.lifecycle,
                e.merged_into.as_ref().map(EntryId::from).into_option(),
            )?,
            author: e.author.as_ref().map(Author::from).into_option(),
        })
    }
}

/// The stable number of a lifecycle state across the boundary; never renumber.
fn lifecycle_number(l: &Lifecycle) -> u8 {
    match l {
        Lifecycle::Active => 0,
        Lifecycle::Retired => 1,
        Lifecycle::Merged(_) => 2,
    }
}

fn lifecycle_from_ffi(n: u8, merged_into: Option<EntryId>) -> Result<Lifecycle, StageError> {
    let name = match n {
        0 => "active",
        1 => "retired",
        2 => "merged",
        _ => "unknown",
    };
    Lifecycle::from_parts(name, merged_into).map_err(|why| {
        StageError::new(
            registry_core::ErrorCode::Internal,
            format!("an entry crossed the plugin boundary with an unreadable lifecycle {n}: {why}"),
        )
    })
}

fn provenance_from_ffi(n: u32) -> Result<Option<Provenance>, StageError> {
    Provenance::unpack(n).map_err(|why| {
        StageError::new(
            registry_core::ErrorCode::Internal,
            format!("an entry crossed the plugin boundary with an unreadable provenance: {why}"),
        )
    })
}

/// A registration request, borrowed from the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiRequestRef<'a> {
    pub title: RStr<'a>,
    pub fields: FfiFields<ROption<RStr<'a>>>,
    pub version: ROption<RStr<'a>>,
    pub context: FfiContextRef<'a>,
}

impl<'a> FfiRequestRef<'a> {
    /// A view of `r` whose context is `context`, the batch's slice of pairs for `r`.
    #[inline]
    fn new(r: &'a Request, context: FfiContextRef<'a>) -> Self {
        FfiRequestRef {
            title: r.title().into(),
            fields: FfiFields::of(&r.fields, opt_str),
            version: opt_str(&r.version),
            context,
        }
    }
}

/// A view of the host's that a plugin reads as a core view ([`RequestRef`], [`DraftRef`]), read
/// where the host keeps its strings: only its context pairs are gathered, as string slices.
pub(crate) trait HostView {
    /// The core view.
    type Core<'p>
    where
        Self: 'p;

    fn context(&self) -> FfiContextRef<'_>;

    /// The core view, with `context` its context's pairs ([`pairs_of`]). The host made the
    /// value from checked parts, so nothing is checked.
    fn core_view<'p>(&'p self, context: &'p [(&'p str, &'p str)]) -> Self::Core<'p>;
}

impl HostView for FfiRequestRef<'_> {
    type Core<'p>
        = RequestRef<'p>
    where
        Self: 'p;

    fn context(&self) -> FfiContextRef<'_> {
        self.context
    }

    fn core_view<'p>(&'p self, context: &'p [(&'p str, &'p str)]) -> RequestRef<'p> {
        RequestRef {
            title: self.title.as_str(),
            fields: self
                .fields
                .to_fields(|v| v.into_option().map(|v| v.as_str())),
            version: self.version.into_option().map(|v| v.as_str()),
            context: ContextRef::Pairs(context),
        }
    }
}

impl TryFrom<&FfiRequestRef<'_>> for Request {
    type Error = StageError;
    fn try_from(r: &FfiRequestRef<'_>) -> Result<Self, StageError> {
        Request::new(
            r.title.as_str(),
            r.fields.to_fields(from_opt_str),
            from_opt_str(&r.version),
            context_from_view(r.context)?,
        )
        .map_err(|e| bad_input("request", e))
    }
}

/// An owned core value made from a view of the host's, either anew or by refilling one made
/// before: a plugin keeps its copies of a batch's ids between calls, so a batch
/// copies the host's strings into buffers the one before left, with the same checks as the
/// conversions above.
pub(crate) trait Refill<V>: Sized {
    /// A new value, as the conversion from the view makes it.
    fn make(view: &V) -> Result<Self, StageError>;

    /// The same value as [`Refill::make`] would make, in the buffers this one holds.
    fn refill(&mut self, view: &V) -> Result<(), StageError>;

    /// The bytes of text in `view`, and a little for each of its strings: what bounds the
    /// memory a copy of it keeps.
    fn text_bytes(view: &V) -> usize;
}

/// What a string costs besides its text, for [`Refill::text_bytes`]: a buffer
/// [`copy_into`](registry_core::copy_into)
/// keeps may be 64 bytes for a shorter string.
const PER_STRING: usize = 64;

impl Refill<FfiIdRef<'_>> for EntryId {
    fn make(view: &FfiIdRef<'_>) -> Result<Self, StageError> {
        Ok(EntryId::from(view))
    }

    fn refill(&mut self, id: &FfiIdRef<'_>) -> Result<(), StageError> {
        EntryId::refill(self, id.prefix.as_str(), id.number);
        Ok(())
    }

    fn text_bytes(id: &FfiIdRef<'_>) -> usize {
        id.prefix.len() + PER_STRING
    }
}

impl Refill<FfiEntryRef<'_>> for Entry {
    fn make(view: &FfiEntryRef<'_>) -> Result<Self, StageError> {
        Entry::try_from(view)
    }

    /// The same entry as [`Entry::try_from`] makes, in this one's strings: the context is
    /// checked as [`Context::new`] checks it.
    fn refill(&mut self, e: &FfiEntryRef<'_>) -> Result<(), StageError> {
        let h = &e.header;
        self.header.refill(
            h.fields.to_fields(|v| v.as_str()),
            h.id.prefix.as_str(),
            h.id.number,
            h.version.as_str(),
        );
        copy_into(&mut self.title, e.title.as_str());
        copy_into(&mut self.config, e.config.as_str());
        self.context
            .refill(
                e.context
                    .iter()
                    .map(|Tuple2(k, v)| (k.as_str(), v.as_str())),
            )
            .map_err(|err| bad_input("context", err))?;
        self.hash = ContentHash(e.hash);
        self.previous = e.previous.into_option().map(ContentHash);
        refill_purge(
            &mut self.purge,
            e.purge.as_ref().into_option().map(|p| PurgeRef {
                original: ContentHash(p.original),
                fields: p.fields.as_str(),
                reason: p.reason.as_str(),
                at: Timestamp(p.at),
            }),
        );
        self.fingerprint = Fingerprint(e.fingerprint);
        self.revision = e.revision;
        self.created_at = Timestamp(e.created_at);
        self.updated_at = Timestamp(e.updated_at);
        self.provenance = provenance_from_ffi(e.provenance)?;
        self.lifecycle = lifecycle_from_ffi(
            e.lifecycle,
            e.merged_into.as_ref().map(EntryId::from).into_option(),
        )?;
        refill_author(
            &mut self.author,
            e.author.as_ref().into_option().map(|a| AuthorRef {
                name: a.name.as_str(),
                origin: a.origin.as_str(),
                request: a.request.as_str(),
            }),
        );
        Ok(())
    }

    fn text_bytes(e: &FfiEntryRef<'_>) -> usize {
        let h = &e.header;
        let strings = [
            h.fields.scope,
            h.fields.kind,
            h.fields.variant,
            h.fields.status,
            h.version,
            h.id.prefix,
            e.title,
            e.config,
        ];
        let context: usize = e.context.iter().map(|Tuple2(k, v)| k.len() + v.len()).sum();
        let author = e
            .author
            .as_ref()
            .map_or(0, |a| a.name.len() + a.origin.len() + a.request.len());
        strings.iter().map(RStr::len).sum::<usize>()
            + context
            + author
            + PER_STRING * (strings.len() + 2 * e.context.len() + 3)
    }
}

/// A value proposed for a field. `source`: 0 given, 1 model, 2 keyword, 3 default, 4 unrecorded.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiGuess {
    pub value: RString,
    pub confidence: ROption<f32>,
    pub source: u8,
}

fn source_to_ffi(source: Source) -> u8 {
    match source {
        Source::Given => 0,
        Source::Model => 1,
        Source::Keyword => 2,
        Source::Default => 3,
        Source::Unrecorded => 4,
    }
}

fn source_from_ffi(source: u8) -> Source {
    match source {
        0 => Source::Given,
        1 => Source::Model,
        2 => Source::Keyword,
        4 => Source::Unrecorded,
        _ => Source::Default,
    }
}

/// A confidence as the host keeps it: within `[0, 1]`.
fn confidence_from_ffi(c: ROption<f32>) -> Option<f32> {
    c.into_option().map(|c| c.clamp(0.0, 1.0))
}

impl From<Guess> for FfiGuess {
    fn from(g: Guess) -> Self {
        FfiGuess {
            value: g.value.into(),
            confidence: g.confidence.into(),
            source: source_to_ffi(g.source),
        }
    }
}

/// A generator's proposals for one request.
pub type FfiPrediction = FfiFields<ROption<FfiGuess>>;

pub(crate) fn prediction_to_ffi(p: Prediction) -> FfiPrediction {
    p.map(|_, g| ROption::from(g.map(FfiGuess::from))).into()
}

/// A value proposed for a field, borrowed from the plugin for one call of a
/// [`FfiPredictionSink`](crate::module::FfiPredictionSink). `source` as in [`FfiGuess`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiGuessRef<'a> {
    pub value: RStr<'a>,
    pub confidence: ROption<f32>,
    pub source: u8,
}

/// A generator's proposals for one request, borrowed from the plugin.
pub type FfiPredictionRef<'a> = FfiFields<ROption<FfiGuessRef<'a>>>;

/// The view of a borrowed prediction the plugin lends.
pub(crate) fn prediction_to_view<'a>(p: &PredictionRef<'a>) -> FfiPredictionRef<'a> {
    FfiFields::of(p, |g| {
        ROption::from(g.map(|g| FfiGuessRef {
            value: g.value.into(),
            confidence: g.confidence.into(),
            source: source_to_ffi(g.source),
        }))
    })
}

/// A view of a prediction `predict` returned owned, for `predict_lent`'s default body to lend.
pub(crate) fn owned_prediction_view(p: &FfiPrediction) -> FfiPredictionRef<'_> {
    FfiFields {
        scope: guess_view(&p.scope),
        kind: guess_view(&p.kind),
        variant: guess_view(&p.variant),
        status: guess_view(&p.status),
    }
}

fn guess_view(g: &ROption<FfiGuess>) -> ROption<FfiGuessRef<'_>> {
    g.as_ref().map(|g| FfiGuessRef {
        value: g.value.as_rstr(),
        confidence: g.confidence,
        source: g.source,
    })
}

/// The host's copy of a prediction a plugin lent.
pub(crate) fn prediction_from_view(p: &FfiPredictionRef<'_>) -> Prediction {
    p.to_fields(|g| {
        g.into_option().map(|g| Guess {
            value: g.value.as_str().to_owned(),
            confidence: confidence_from_ffi(g.confidence),
            source: source_from_ffi(g.source),
        })
    })
}

/// What a config is rendered from, borrowed from the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FfiDraftRef<'a> {
    pub header: FfiHeaderRef<'a>,
    pub title: RStr<'a>,
    pub context: FfiContextRef<'a>,
}

impl<'a> FfiDraftRef<'a> {
    /// A view of `d` whose context is `context`, the batch's slice of pairs for `d`.
    fn new(d: &'a Draft, context: FfiContextRef<'a>) -> Self {
        FfiDraftRef {
            header: (&d.header).into(),
            title: d.title.as_str().into(),
            context,
        }
    }
}

impl HostView for FfiDraftRef<'_> {
    type Core<'p>
        = DraftRef<'p>
    where
        Self: 'p;

    fn context(&self) -> FfiContextRef<'_> {
        self.context
    }

    fn core_view<'p>(&'p self, context: &'p [(&'p str, &'p str)]) -> DraftRef<'p> {
        let h = &self.header;
        DraftRef {
            fields: h.fields.to_fields(|v| v.as_str()),
            id_prefix: h.id.prefix.as_str(),
            id_number: h.id.number,
            version: h.version.as_str(),
            title: self.title.as_str(),
            context: ContextRef::Pairs(context),
        }
    }
}

impl HostView for FfiEntryRef<'_> {
    type Core<'p>
        = EntryRef<'p>
    where
        Self: 'p;

    fn context(&self) -> FfiContextRef<'_> {
        self.context
    }

    /// The host lends views of its own entries, so the lifecycle number and provenance are
    /// ones it wrote: an unknown one reads as active and unrecorded.
    fn core_view<'p>(&'p self, context: &'p [(&'p str, &'p str)]) -> EntryRef<'p> {
        let h = &self.header;
        EntryRef {
            fields: h.fields.to_fields(|v| v.as_str()),
            id_prefix: h.id.prefix.as_str(),
            id_number: h.id.number,
            version: h.version.as_str(),
            title: self.title.as_str(),
            context: ContextRef::Pairs(context),
            config: self.config.as_str(),
            hash: ContentHash(self.hash),
            previous: self.previous.into_option().map(ContentHash),
            purge: self
                .purge
                .as_ref()
                .map(|p| PurgeRef {
                    original: ContentHash(p.original),
                    fields: p.fields.as_str(),
                    reason: p.reason.as_str(),
                    at: Timestamp(p.at),
                })
                .into_option(),
            fingerprint: Fingerprint(self.fingerprint),
            revision: self.revision,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            provenance: Provenance::unpack(self.provenance).ok().flatten(),
            lifecycle: match (self.lifecycle, self.merged_into.as_ref().into_option()) {
                (1, _) => LifecycleRef::Retired,
                (2, Some(target)) => LifecycleRef::Merged {
                    prefix: target.prefix.as_str(),
                    number: target.number,
                },
                _ => LifecycleRef::Active,
            },
            author: self
                .author
                .as_ref()
                .map(|a| AuthorRef {
                    name: a.name.as_str(),
                    origin: a.origin.as_str(),
                    request: a.request.as_str(),
                })
                .into_option(),
        }
    }
}

/// The pairs of a context view, as string slices.
pub(crate) fn pairs_of(context: FfiContextRef<'_>) -> impl Iterator<Item = (&str, &str)> {
    context
        .as_slice()
        .iter()
        .map(|Tuple2(k, v)| (k.as_str(), v.as_str()))
}

/// The context pairs of a whole batch, borrowed, in one vector: each view's context is a slice
/// of it. Collected completely before any view slices it.
fn batch_pairs<'a>(contexts: impl Iterator<Item = &'a Context>) -> Vec<FfiPairRef<'a>> {
    contexts
        .flat_map(|c| c.iter().map(|(k, v)| Tuple2(k.into(), v.into())))
        .collect()
}

/// Lends `entries` to `sink` in one call: views of each, their context pairs in one vector for
/// the batch, so nothing is copied but the pairs' pointers.
pub(crate) fn lend(entries: &[Option<&Entry>], mut sink: EntrySink<'_>) -> RResult<(), FfiError> {
    let pairs = batch_pairs(entries.iter().flatten().map(|e| &e.context));
    let mut contexts = Slices(&pairs);
    let views: Vec<ROption<FfiEntryRef<'_>>> = entries
        .iter()
        .map(|e| match e {
            Some(e) => ROption::RSome(FfiEntryRef::new(e, contexts.take(e.context.len()).into())),
            None => ROption::RNone,
        })
        .collect();
    sink.receive(RSlice::from_slice(&views))
}

/// [`lend`] of entries a storage lent as views ([`registry_core::Storage::get_lent`]): the
/// same views, built from the storage's slices instead of an entry's strings.
pub(crate) fn lend_views(
    entries: &[Option<EntryRef<'_>>],
    mut sink: EntrySink<'_>,
) -> RResult<(), FfiError> {
    let pairs: Vec<FfiPairRef<'_>> = entries
        .iter()
        .flatten()
        .flat_map(|e| e.context.iter().map(|(k, v)| Tuple2(k.into(), v.into())))
        .collect();
    let mut contexts = Slices(&pairs);
    let views: Vec<ROption<FfiEntryRef<'_>>> = entries
        .iter()
        .map(|e| match e {
            Some(e) => ROption::RSome(FfiEntryRef::of_view(
                e,
                contexts.take(e.context.len()).into(),
            )),
            None => ROption::RNone,
        })
        .collect();
    sink.receive(RSlice::from_slice(&views))
}

/// [`lend`] of entries returned as owned values (`get_lent`'s default body) from a `get`
/// that answered `got`: each is read back into an `Entry` first (refused as `get` would refuse
/// it), then lent. A failed `get` lends nothing and answers its error.
pub(crate) fn lend_owned(
    got: RResult<(), FfiError>,
    found: RVec<ROption<FfiEntry>>,
    sink: EntrySink<'_>,
) -> RResult<(), FfiError> {
    if let RResult::RErr(e) = got {
        return RResult::RErr(e);
    }
    let entries: Result<Vec<Option<Entry>>, StageError> = found
        .into_iter()
        .map(|e| e.into_option().map(Entry::try_from).transpose())
        .collect();
    match entries {
        Ok(entries) => {
            let refs: Vec<Option<&Entry>> = entries.iter().map(Option::as_ref).collect();
            lend(&refs, sink)
        }
        Err(e) => RResult::RErr(e.into()),
    }
}

/// Hands out consecutive slices of a vector, in the order it was filled.
struct Slices<'p, T>(&'p [T]);

impl<'p, T> Slices<'p, T> {
    fn take(&mut self, len: usize) -> &'p [T] {
        let (head, rest) = self
            .0
            .split_at_checked(len)
            .expect("the vector was filled from the same items, in the same order");
        self.0 = rest;
        head
    }
}

/// Calls `f` with views of `entries`, built without copying a string.
pub(crate) fn with_entry_views<R>(
    entries: &[Entry],
    f: impl FnOnce(RSlice<'_, FfiEntryRef<'_>>) -> R,
) -> R {
    with_views_of(entries.iter(), f)
}

/// [`with_entry_views`] of entries wherever they are (behind `Arc`s, for instance).
pub(crate) fn with_views_of<'e, R>(
    entries: impl Iterator<Item = &'e Entry> + Clone,
    f: impl FnOnce(RSlice<'_, FfiEntryRef<'_>>) -> R,
) -> R {
    let pairs = batch_pairs(entries.clone().map(|e| &e.context));
    let mut contexts = Slices(&pairs);
    let views: Vec<FfiEntryRef<'_>> = entries
        .map(|e| FfiEntryRef::new(e, contexts.take(e.context.len()).into()))
        .collect();
    f(RSlice::from_slice(&views))
}

/// Calls `f` with one slice of views per history, built without copying a string: every
/// revision of every history shares one vector of pairs and one of views.
pub(crate) fn with_history_views<R>(
    histories: &[Vec<Entry>],
    f: impl FnOnce(RSlice<'_, RSlice<'_, FfiEntryRef<'_>>>) -> R,
) -> R {
    let pairs = batch_pairs(histories.iter().flatten().map(|e| &e.context));
    let mut contexts = Slices(&pairs);
    let views: Vec<FfiEntryRef<'_>> = histories
        .iter()
        .flatten()
        .map(|e| FfiEntryRef::new(e, contexts.take(e.context.len()).into()))
        .collect();
    let mut revisions = Slices(&views);
    let slices: Vec<RSlice<'_, FfiEntryRef<'_>>> = histories
        .iter()
        .map(|h| revisions.take(h.len()).into())
        .collect();
    f(RSlice::from_slice(&slices))
}

/// Calls `f` with views of `requests`, built without copying a string.
pub(crate) fn with_request_views<R>(
    requests: &[Request],
    f: impl FnOnce(RSlice<'_, FfiRequestRef<'_>>) -> R,
) -> R {
    let pairs = batch_pairs(requests.iter().map(|r| &r.context));
    let mut contexts = Slices(&pairs);
    let views: Vec<FfiRequestRef<'_>> = requests
        .iter()
        .map(|r| FfiRequestRef::new(r, contexts.take(r.context.len()).into()))
        .collect();
    f(RSlice::from_slice(&views))
}

/// Calls `f` with views of `drafts`, built without copying a string.
pub(crate) fn with_draft_views<R>(
    drafts: &[Draft],
    f: impl FnOnce(RSlice<'_, FfiDraftRef<'_>>) -> R,
) -> R {
    let pairs = batch_pairs(drafts.iter().map(|d| &d.context));
    let mut contexts = Slices(&pairs);
    let views: Vec<FfiDraftRef<'_>> = drafts
        .iter()
        .map(|d| FfiDraftRef::new(d, contexts.take(d.context.len()).into()))
        .collect();
    f(RSlice::from_slice(&views))
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
            fields: FfiFields::of(&h.fields, |v| RString::from(v.as_str())),
            id: h.id.as_str().into(),
            version: h.version.as_str().into(),
        }
    }
}

impl From<&FfiRawHeader> for RawHeader {
    fn from(h: &FfiRawHeader) -> Self {
        RawHeader {
            form: if h.form == 0 {
                HeaderForm::Readable
            } else {
                HeaderForm::Grepable
            },
            fields: h.fields.to_fields(|v| v.as_str().to_owned()),
            id: h.id.as_str().to_owned(),
            version: h.version.as_str().to_owned(),
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
            filter: FfiFields::of(&q.filter, opt_string),
            after: q.after.as_ref().map(FfiId::from).into(),
            limit: q.limit as u64,
        }
    }
}

impl From<&FfiListQuery> for ListQuery {
    fn from(q: &FfiListQuery) -> Self {
        ListQuery {
            filter: q.filter.to_fields(from_opt),
            after: q.after.as_ref().into_option().map(EntryId::from),
            limit: usize::try_from(q.limit).unwrap_or(usize::MAX),
        }
    }
}

/// Converts a batch of FFI values onto `out`, failing on the first invalid one; nothing of a
/// failed batch stays in `out`.
pub(crate) fn convert_all<F, T>(
    items: impl IntoIterator<Item = F>,
    out: &mut Vec<T>,
) -> Result<(), StageError>
where
    T: TryFrom<F, Error = StageError>,
{
    let start = out.len();
    for item in items {
        match T::try_from(item) {
            Ok(value) => out.push(value),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
