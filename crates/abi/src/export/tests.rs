//! Tests of the plugin side: what crosses comes back as the stage made it, failures leave
//! nothing behind.
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RSlice, RStr, RString, RVec};
use registry_core::{
    Context, Draft, Entry, EntryId, EntryRef, ErrorCode, Fields, Generator, Guess, Header,
    Inserted, ListQuery, Prediction, PredictionRef, Problem, RawHeader, Request, Severity, Source,
    StageError, StageResult, Storage, Validator,
};

use super::{Exported, hide_strings};
use abi_stable::std_types::ROption;
use registry_core::{ContentHash, Fingerprint, Lifecycle, Timestamp};

use crate::ffi::{
    FfiDraftRef, FfiEntry, FfiEntryRef, FfiError, FfiId, FfiInserted, FfiListQuery, FfiPrediction,
    FfiRequestRef,
};
use crate::load::{HostGenerator, HostStorage, HostValidator};
use crate::module::{FfiGenerator, FfiGenerator_TO, FfiStorage, FfiStorage_TO, FfiValidator_TO};

/// A generator whose every answer shows all of its input, so that a request or draft that
/// crossed wrong (a stale string, a context pair of the batch before) shows in the result.
struct Echo;

impl Generator for Echo {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        for r in requests {
            out.push(Prediction {
                scope: Some(Guess {
                    value: format!("{}|{:?}|{:?}", r.title(), r.version, r.fields),
                    confidence: Some(0.25),
                    source: Source::Model,
                }),
                status: (!r.context.is_empty()).then(|| Guess {
                    value: format!("{:?}", r.context.iter().collect::<Vec<_>>()),
                    confidence: None,
                    source: Source::Keyword,
                }),
                ..Prediction::default()
            });
        }
        Ok(())
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        out.extend(drafts.iter().map(|d| {
            format!(
                "{} {}|{}|{:?}",
                d.header.readable(),
                d.header.version,
                d.title,
                d.context.iter().collect::<Vec<_>>()
            )
        }));
        Ok(())
    }
}

/// A generator that lends one answer, then fails.
struct Halfway;

impl Generator for Halfway {
    fn predict(&self, _: &[Request], _: &mut Vec<Prediction>) -> StageResult<()> {
        Err(StageError::new(ErrorCode::Internal, "unused"))
    }

    fn render(&self, _: &[Draft], _: &mut Vec<String>) -> StageResult<()> {
        Err(StageError::new(ErrorCode::Internal, "unused"))
    }

    fn predict_each(
        &self,
        _: &[Request],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        each(&PredictionRef::default());
        Err(StageError::new(ErrorCode::Unavailable, "model gone"))
    }

    fn render_each(&self, _: &[Draft], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        each("half");
        Err(StageError::new(ErrorCode::Unavailable, "templates gone"))
    }
}

/// A stage object with only the methods of 0.7.2, so the host's calls of `predict_lent`
/// and `render_lent` run their default bodies.
struct Before<T>(Exported<T>);

impl<T: Generator> FfiGenerator for Before<T> {
    fn predict(
        &self,
        requests: RSlice<'_, FfiRequestRef<'_>>,
        out: &mut RVec<FfiPrediction>,
    ) -> RResult<(), FfiError> {
        self.0.predict(requests, out)
    }

    fn render(
        &self,
        drafts: RSlice<'_, FfiDraftRef<'_>>,
        out: &mut RVec<RString>,
    ) -> RResult<(), FfiError> {
        self.0.render(drafts, out)
    }

    fn train(
        &self,
        examples: RSlice<'_, FfiRequestRef<'_>>,
        options: RStr<'_>,
    ) -> RResult<RString, FfiError> {
        self.0.train(examples, options)
    }
}

fn loaded<T: FfiGenerator + Send + Sync + 'static>(plugin: T) -> HostGenerator {
    HostGenerator(FfiGenerator_TO::from_value(plugin, TD_Opaque))
}

fn request(i: usize, pairs: usize) -> Request {
    let context =
        Context::new((0..pairs).map(|p| (format!("k{p}"), format!("v{i}-{p}-{}", "é".repeat(p)))))
            .expect("valid context");
    let mut given = Fields::<Option<String>>::default();
    if i.is_multiple_of(2) {
        given.kind = Some(format!("T{i}"));
    }
    let version = i.is_multiple_of(3).then(|| format!("V{i}.1"));
    Request::new(&format!(" title {i} ✓ "), given, version, context).expect("valid request")
}

fn draft(i: usize, pairs: usize) -> Draft {
    let r = request(i, pairs);
    Draft {
        header: Header {
            fields: Fields {
                scope: format!("S{i}"),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "REQUIRED".into(),
            },
            id: EntryId::new(format!("S{i}-RUL"), i as u64),
            version: format!("v{i}.0"),
        },
        title: r.title().to_owned(),
        context: r.context,
    }
}

/// Batches one after the other on one thread: larger, smaller, with more and fewer context
/// pairs, so the plugin refills the copies the batch before left, and one of several times
/// [`super::VIEWS_AT_ONCE`] requests, whose views are made in parts; each batch must give exactly
/// what the generator gives linked in, through a plugin of this version and one of before
/// lending.
#[test]
fn predictions_and_configs_cross_as_the_generator_made_them() {
    let large: Vec<(usize, usize)> = (14..14 + 3 * super::VIEWS_AT_ONCE + 5)
        .map(|i| (i, i % 4))
        .collect();
    let batches: [&[(usize, usize)]; 5] = [
        &[(0, 3), (1, 0), (2, 1), (3, 2), (4, 0)],
        &[(5, 5), (6, 0)],
        &[(7, 1), (8, 0), (9, 4), (10, 2), (11, 1), (12, 3), (13, 0)],
        &large,
        &[],
    ];
    for host in [loaded(Exported(Echo)), loaded(Before(Exported(Echo)))] {
        for batch in batches {
            let requests: Vec<Request> = batch.iter().map(|&(i, p)| request(i, p)).collect();
            let (mut want, mut got) = (Vec::new(), Vec::new());
            Echo.predict(&requests, &mut want).expect("predicts");
            host.predict(&requests, &mut got).expect("predicts");
            assert_eq!(got, want);

            let drafts: Vec<Draft> = batch.iter().map(|&(i, p)| draft(i, p)).collect();
            let (mut want, mut got) = (Vec::new(), Vec::new());
            Echo.render(&drafts, &mut want).expect("renders");
            host.render(&drafts, &mut got).expect("renders");
            assert_eq!(got, want);
        }
    }
}

/// A generator that fails after lending part of a batch leaves nothing of it in the host's
/// output, and what the output held before stays.
#[test]
fn a_failed_generator_leaves_nothing_lent_behind() {
    let host = loaded(Exported(Halfway));
    let requests = [request(1, 1), request(2, 0)];
    let mut out = vec![Prediction::default()];
    let e = host.predict(&requests, &mut out).expect_err("fails");
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Unavailable, "model gone")
    );
    assert_eq!(out, [Prediction::default()]);

    let drafts = [draft(1, 1)];
    let mut out = vec!["kept".to_owned()];
    let e = host.render(&drafts, &mut out).expect_err("fails");
    assert_eq!(e.message, "templates gone");
    assert_eq!(out, ["kept"]);
}

/// A storage that knows no entry and lends its answer twice.
struct Stammering;

impl Storage for Stammering {
    fn find(
        &self,
        fps: &[registry_core::Fingerprint],
        out: &mut Vec<Option<Entry>>,
    ) -> StageResult<()> {
        out.extend(fps.iter().map(|_| None));
        Ok(())
    }
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        out.extend(ids.iter().map(|_| None));
        Ok(())
    }
    fn get_lent(
        &self,
        ids: &[EntryId],
        _: &mut Vec<Entry>,
        each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
    ) -> StageResult<()> {
        let views = vec![None; ids.len()];
        each(&views)?;
        each(&views)
    }
    fn allocate(&self, _: &[String], _: &mut Vec<u64>) -> StageResult<()> {
        Err(StageError::new(ErrorCode::Invalid, "reads only"))
    }
    fn insert(&self, _: &[Entry], _: &mut Vec<Inserted>) -> StageResult<()> {
        Err(StageError::new(ErrorCode::Invalid, "reads only"))
    }
    fn update(&self, _: &[Entry], _: &mut Vec<StageResult<()>>) -> StageResult<()> {
        Err(StageError::new(ErrorCode::Invalid, "reads only"))
    }
    fn history(&self, _: &EntryId, _: &mut Vec<Entry>) -> StageResult<()> {
        Ok(())
    }
    fn list(&self, _: &ListQuery, _: &mut Vec<Entry>) -> StageResult<()> {
        Ok(())
    }
}

/// A storage that lends twice in one call gets an error, and the host's output keeps what
/// it held.
#[test]
fn a_storage_that_lends_twice_fails_the_call() {
    let host = HostStorage(FfiStorage_TO::from_value(Exported(Stammering), TD_Opaque));
    let mut out = vec![None];
    let e = host
        .get(&[EntryId::new("SEC-RUL", 1)], &mut out)
        .expect_err("lent twice");
    assert_eq!(e.code, ErrorCode::Internal);
    assert!(
        e.message.contains("lent its entries twice"),
        "{}",
        e.message
    );
    assert_eq!(out, [None]);
}

/// A validator that refuses the requests whose title says so.
struct Picky;

impl Validator for Picky {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, r) in requests.iter().enumerate() {
            if r.title().contains("refuse") {
                out.push(Problem {
                    item,
                    severity: Severity::Error,
                    code: "refused".into(),
                    field: "title".into(),
                    message: r.title().to_owned(),
                });
            }
        }
        Ok(())
    }
    fn check_entries(&self, _: &[Entry], _: &mut Vec<Problem>) -> StageResult<()> {
        Ok(())
    }
    fn check_headers(&self, _: &[RawHeader], _: &mut Vec<Problem>) -> StageResult<()> {
        Ok(())
    }
}

/// Problems name the request they are about by its index in the whole batch, also in a
/// batch lent in several parts of views.
#[test]
fn problems_keep_their_items_across_a_batch_of_several_parts() {
    let host = HostValidator(FfiValidator_TO::from_value(Exported(Picky), TD_Opaque));
    let n = 3 * super::VIEWS_AT_ONCE + 7;
    let refused = [1, super::VIEWS_AT_ONCE + 2, n - 1];
    let requests: Vec<Request> = (0..n)
        .map(|i| {
            let title = if refused.contains(&i) {
                format!("refuse {i}")
            } else {
                format!("keep {i}")
            };
            Request::new(&title, Fields::default(), None, Context::default()).expect("valid")
        })
        .collect();
    let (mut want, mut got) = (Vec::new(), Vec::new());
    Picky.check_requests(&requests, &mut want).expect("checks");
    host.check_requests(&requests, &mut got).expect("checks");
    assert_eq!(want.iter().map(|p| p.item).collect::<Vec<_>>(), refused);
    assert_eq!(got, want);
}

fn good(n: u64) -> Entry {
    let mut e = Entry {
        header: Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "REQUIRED".into(),
            },
            id: EntryId::new("SEC-RUL", n),
            version: "v1.0".into(),
        },
        title: format!("t{n}"),
        context: Context::default(),
        config: "a: 1\n".into(),
        hash: ContentHash([0; 32]),
        previous: None,
        purge: None,
        fingerprint: Fingerprint([n as u8; 16]),
        revision: 1,
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
        provenance: None,
        lifecycle: Lifecycle::Active,
        author: None,
    };
    e.hash = e.content_hash();
    e
}

/// What a plugin may answer that the host refuses: an unknown lifecycle number.
fn refused(n: u64) -> FfiEntry {
    let mut e = FfiEntry::from(&good(n));
    e.lifecycle = 9;
    e
}

fn unused<T>() -> RResult<T, FfiError> {
    RResult::RErr(StageError::new(ErrorCode::Internal, "unused").into())
}

/// A storage library whose answers hold one good entry, then one the host refuses.
struct HalfBad;

impl FfiStorage for HalfBad {
    fn find(
        &self,
        _: RSlice<'_, [u8; 16]>,
        out: &mut RVec<ROption<FfiEntry>>,
    ) -> RResult<(), FfiError> {
        out.push(ROption::RSome(FfiEntry::from(&good(1))));
        out.push(ROption::RSome(refused(2)));
        RResult::ROk(())
    }
    fn get(&self, _: RSlice<'_, FfiId>, _: &mut RVec<ROption<FfiEntry>>) -> RResult<(), FfiError> {
        unused()
    }
    fn allocate(&self, _: RSlice<'_, RString>, _: &mut RVec<u64>) -> RResult<(), FfiError> {
        unused()
    }
    fn insert(
        &self,
        _: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<FfiInserted>,
    ) -> RResult<(), FfiError> {
        out.push(FfiInserted {
            existing: ROption::RNone,
        });
        out.push(FfiInserted {
            existing: ROption::RSome(refused(2)),
        });
        RResult::ROk(())
    }
    fn update(
        &self,
        _: RSlice<'_, FfiEntryRef<'_>>,
        _: &mut RVec<RResult<(), FfiError>>,
    ) -> RResult<(), FfiError> {
        unused()
    }
    fn history(&self, _: &FfiId, out: &mut RVec<FfiEntry>) -> RResult<(), FfiError> {
        out.push(FfiEntry::from(&good(1)));
        out.push(refused(1));
        RResult::ROk(())
    }
    fn list(&self, _: &FfiListQuery, out: &mut RVec<FfiEntry>) -> RResult<(), FfiError> {
        out.push(FfiEntry::from(&good(1)));
        out.push(refused(2));
        RResult::ROk(())
    }
    fn restore(
        &self,
        _: RSlice<'_, RSlice<'_, FfiEntryRef<'_>>>,
        _: &mut RVec<RResult<bool, FfiError>>,
    ) -> RResult<(), FfiError> {
        unused()
    }
    fn meta(&self) -> RResult<RString, FfiError> {
        unused()
    }
    fn set_meta(&self, _: RStr<'_>) -> RResult<(), FfiError> {
        unused()
    }
    fn compact(&self) -> RResult<u64, FfiError> {
        unused()
    }
    fn place(&self, _: RSlice<'_, FfiId>, _: RSlice<'_, u32>) -> RResult<(), FfiError> {
        unused()
    }
    fn locate(&self, _: RSlice<'_, FfiId>, _: &mut RVec<u32>) -> RResult<(), FfiError> {
        unused()
    }
    fn migrate(&self, _: RSlice<'_, FfiId>, _: RSlice<'_, u32>) -> RResult<u64, FfiError> {
        unused()
    }
    fn reindex(&self) -> RResult<u64, FfiError> {
        unused()
    }
    fn sequences(&self, _: RSlice<'_, FfiId>, _: &mut RVec<FfiId>) -> RResult<(), FfiError> {
        unused()
    }
    fn backup(&self, _: RStr<'_>) -> RResult<u64, FfiError> {
        unused()
    }
    fn purge(&self, _: RSlice<'_, FfiEntryRef<'_>>) -> RResult<(), FfiError> {
        unused()
    }
    fn insert_placed(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        _: RSlice<'_, FfiId>,
        _: RSlice<'_, u32>,
        out: &mut RVec<FfiInserted>,
    ) -> RResult<(), FfiError> {
        self.insert(entries, out)
    }
}

/// A find, insert, insert_placed, history or list whose answer the host refuses leaves
/// nothing of the call in the caller's output, as a refused `get` does.
#[test]
fn refused_storage_answers_leave_nothing_behind() {
    let host = HostStorage(FfiStorage_TO::from_value(HalfBad, TD_Opaque));
    let mut found = vec![None];
    let a = host.find(&[Fingerprint([1; 16]), Fingerprint([2; 16])], &mut found);
    let mut inserted = vec![Inserted::Created];
    let b = host.insert(&[good(1), good(2)], &mut inserted);
    let mut placed = vec![Inserted::Created];
    let c = host.insert_placed(&[good(1), good(2)], &[], &[], &mut placed);
    let mut history = vec![good(7)];
    let d = host.history(&EntryId::new("SEC-RUL", 1), &mut history);
    let mut listed = vec![good(7)];
    let query = ListQuery {
        limit: 10,
        ..ListQuery::default()
    };
    let e = host.list(&query, &mut listed);
    for result in [a.err(), b.err(), c.err(), d.err(), e.err()] {
        let refusal = result.expect("the answer is refused");
        assert!(refusal.message.contains("lifecycle"), "{}", refusal.message);
    }
    assert_eq!(
        (
            found.len(),
            inserted.len(),
            placed.len(),
            history.len(),
            listed.len()
        ),
        (1, 1, 1, 1, 1),
        "each output keeps only what it held"
    );
}

/// The owned `predict` and `render` of the library's object (what a host of registry-abi
/// 0.7.2 calls) leave nothing of a failed call in the host's output.
#[test]
fn a_failed_owned_predict_or_render_leaves_nothing_behind() {
    let requests = [request(1, 1), request(2, 0)];
    let mut out = RVec::from(vec![crate::ffi::prediction_to_ffi(Prediction::default())]);
    let made = crate::ffi::with_request_views(&requests, |views| {
        Exported(Halfway).predict(views, &mut out)
    });
    assert!(made.is_err());
    assert_eq!(out.len(), 1);
    let drafts = [draft(1, 1)];
    let mut out = RVec::from(vec![RString::from("kept")]);
    let made =
        crate::ffi::with_draft_views(&drafts, |views| Exported(Halfway).render(views, &mut out));
    assert!(made.is_err());
    assert_eq!(out.as_slice(), [RString::from("kept")]);
}

/// Catches its own panic on its first call; unwinds without the panic hook on its second.
struct SelfCaught(std::sync::atomic::AtomicU32);

impl Generator for SelfCaught {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        if self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            let caught = std::panic::catch_unwind(|| panic!("caught inside the stage"));
            assert!(caught.is_err());
            out.extend(requests.iter().map(|_| Prediction::default()));
            return Ok(());
        }
        std::panic::resume_unwind(Box::new("resumed"))
    }
    fn render(&self, _: &[Draft], _: &mut Vec<String>) -> StageResult<()> {
        Ok(())
    }
}

/// A panic a stage caught itself is not reported for a later call that fails another way.
#[test]
fn a_panic_a_stage_caught_is_no_later_calls_error() {
    super::install_panic_hook();
    let host = loaded(Exported(SelfCaught(std::sync::atomic::AtomicU32::new(0))));
    let requests = [request(1, 0)];
    host.predict(&requests, &mut Vec::new())
        .expect("the first call succeeds");
    let e = host
        .predict(&requests, &mut Vec::new())
        .expect_err("the second unwinds");
    assert_eq!(e.code, ErrorCode::Panic);
    assert_eq!(e.message, "panicked: resumed");
}

#[test]
fn rejected_string_values_are_not_repeated() {
    for (message, want) in [
        (
            r#"invalid type: string "redis://u:hunter2@h", expected a sequence"#,
            "invalid type: a string, expected a sequence",
        ),
        (
            r#"invalid type: string "a \"quoted\" one", expected u64"#,
            "invalid type: a string, expected u64",
        ),
        (
            "unknown field `cache_size`, expected one of `cache_size_mb`",
            "unknown field `cache_size`, expected one of `cache_size_mb`",
        ),
    ] {
        assert_eq!(hide_strings(message), want);
    }
}
