//! Tests of the FFI value types: round trips, views and lending.

use super::*;

fn context(pairs: &[(&str, &str)]) -> Context {
    Context::new(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned()))).expect("valid context")
}

fn header(scope: &str, kind: &str, number: u64) -> Header {
    Header {
        fields: Fields {
            scope: scope.into(),
            kind: kind.into(),
            variant: "LIVE".into(),
            status: "REQUIRED".into(),
        },
        id: EntryId::new(EntryId::prefix_for(scope, kind), number),
        version: "v2.9".into(),
    }
}

/// Entries lent across the boundary arrive as they were, misses in place, and so do those
/// of a stage object without `get_lent` (its owned entries lent by the default body); a plugin
/// that lends twice, or fails after lending, leaves nothing behind.
#[test]
fn lent_entries_arrive_as_they_were() {
    use crate::load::receive_lent;
    let entries: Vec<Entry> = (1..=6)
        .map(|n| {
            entry(
                n,
                &format!("t{n}"),
                &[("env", "prod"), ("k", "v")],
                "a: 1\n",
            )
        })
        .collect();
    let asked: Vec<Option<&Entry>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (i % 3 != 1).then_some(e))
        .collect();
    let want: Vec<Option<Entry>> = asked.iter().map(|e| e.cloned()).collect();

    let mut out = Vec::new();
    receive_lent(&mut out, |sink| lend(&asked, sink)).expect("lent");
    assert_eq!(out, want);

    let owned: RVec<ROption<FfiEntry>> =
        asked.iter().map(|e| e.map(FfiEntry::from).into()).collect();
    let mut out = Vec::new();
    receive_lent(&mut out, |sink| lend_owned(RResult::ROk(()), owned, sink)).expect("lent");
    assert_eq!(out, want);

    let none = [ROption::RNone];
    let mut out = vec![None];
    let twice = receive_lent(&mut out, |mut sink| {
        let _ = sink.receive(RSlice::from_slice(&none));
        sink.receive(RSlice::from_slice(&none))
    })
    .expect_err("lending twice is refused");
    assert_eq!(twice.message, "plugin lent its entries twice in one call");
    assert_eq!(out, [None]);

    // A plugin that ignores the refusal and answers Ok is refused all the same.
    let mut out = Vec::new();
    let ignored = receive_lent(&mut out, |mut sink| {
        let _ = sink.receive(RSlice::from_slice(&none));
        let _ = sink.receive(RSlice::from_slice(&none));
        RResult::ROk(())
    })
    .expect_err("the refusal stands");
    assert_eq!(ignored.message, "plugin lent its entries twice in one call");
    assert!(out.is_empty());

    let mut out = Vec::new();
    let failed = receive_lent(&mut out, |sink| {
        let _ = lend(&asked, sink);
        RResult::RErr(StageError::new(ErrorCode::Unavailable, "gone").into())
    })
    .expect_err("the plugin's error");
    assert_eq!(failed.message, "gone");
    assert!(out.is_empty(), "nothing of a failed call is kept");
}

fn entry(number: u64, title: &str, pairs: &[(&str, &str)], config: &str) -> Entry {
    let header = header("SEC", "RULES", number);
    let context = context(pairs);
    let mut e = Entry {
        hash: ContentHash([0; 32]),
        // Some revisions record the one before.
        previous: number
            .is_multiple_of(2)
            .then_some(ContentHash([number as u8; 32])),
        // And some were purged.
        // And some carry their author.
        author: number
            .is_multiple_of(5)
            .then(|| Author::new("ci ✓", "10.0.0.1", "r-1")),
        purge: number.is_multiple_of(3).then(|| Purge {
            original: ContentHash([7; 32]),
            fields: "title, context.é".into(),
            reason: "pasted ✓".into(),
            at: Timestamp(-(number as i64)),
        }),
        header,
        title: title.into(),
        context,
        config: config.into(),
        fingerprint: Fingerprint([number as u8; 16]),
        revision: number as u32,
        created_at: Timestamp(i64::MIN + i64::from(number as u8)),
        updated_at: Timestamp(i64::MAX - i64::from(number as u8)),
        // Every source and both derivations cross, and none.
        provenance: (!number.is_multiple_of(3)).then(|| Provenance {
            derivation: 1 + (number % 2) as u8,
            fields: Fields {
                scope: Source::Given,
                kind: Source::Model,
                variant: Source::Keyword,
                status: Source::Default,
            },
            version: Source::Unrecorded,
        }),
        // Every lifecycle state crosses.
        lifecycle: match number % 3 {
            0 => Lifecycle::Active,
            1 => Lifecycle::Retired,
            _ => Lifecycle::Merged(EntryId::new("SEC-RUL", number + 1)),
        },
    };
    e.hash = e.content_hash();
    e
}

/// A batch mixing empty and non-empty contexts (so a wrong slice offset shows), unicode in
/// every text, and extreme fixed-size fields.
fn batch() -> Vec<Entry> {
    vec![
        entry(1, "t", &[], "a: 1\n"),
        entry(2, "Block SSH", &[("env", "prod")], ""),
        entry(
            3,
            "Zugriff prüfen — 日本語 🚀",
            &[("env", "prod"), ("owner", "équipe-ü"), ("region", "東京-1")],
            "title: \"Ünïcödé ✓\"\n",
        ),
        entry(4, "no context between two", &[], "b: 2\n"),
        entry(u64::MAX, "last", &[("z", "1"), ("a", "")], "c: 3\n"),
    ]
}

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
fn owned_entries_round_trip() {
    for entry in batch() {
        let back = Entry::try_from(FfiEntry::from(&entry)).expect("round trip");
        assert_eq!(back, entry);
    }
}

#[test]
fn entry_views_round_trip_exactly_and_borrow_every_text() {
    let entries = batch();
    let round_tripped = with_entry_views(&entries, |views| {
        assert_eq!(views.len(), entries.len());
        for (view, entry) in views.iter().zip(&entries) {
            // The view points into the entry: no string was copied to build it.
            assert_eq!(view.title.as_str().as_ptr(), entry.title.as_ptr());
            assert_eq!(view.config.as_str().as_ptr(), entry.config.as_ptr());
            assert_eq!(
                view.header.id.prefix.as_str().as_ptr(),
                entry.header.id.prefix().as_ptr()
            );
            let pairs: Vec<(&str, &str)> = view
                .context
                .iter()
                .map(|Tuple2(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(pairs, entry.context.iter().collect::<Vec<_>>());
        }
        let mut back: Vec<Entry> = Vec::new();
        convert_all(views.iter(), &mut back).expect("valid views");
        back
    });
    assert_eq!(round_tripped, entries);
    assert!(round_tripped.iter().all(Entry::verify));
    assert!(with_entry_views(&[], |views| views.is_empty()));
}

/// Views a storage lends (`Storage::get_lent`) arrive as the entries they show, misses in
/// place, whether their contexts are an entry's or pairs lent from elsewhere.
#[test]
fn views_a_storage_lends_arrive_as_the_entries_they_show() {
    use crate::load::receive_lent;
    let entries = batch();
    let asked = |i: usize| i % 3 != 1;
    let views: Vec<Option<EntryRef<'_>>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| asked(i).then(|| EntryRef::from(e)))
        .collect();
    let pairs: Vec<Vec<(&str, &str)>> =
        entries.iter().map(|e| e.context.iter().collect()).collect();
    let in_pairs: Vec<Option<EntryRef<'_>>> = views
        .iter()
        .zip(&pairs)
        .map(|(v, p)| {
            v.map(|mut v| {
                v.context = ContextRef::Pairs(p);
                v
            })
        })
        .collect();
    let want: Vec<Option<Entry>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| asked(i).then(|| e.clone()))
        .collect();
    for lent in [&views, &in_pairs] {
        let mut out = Vec::new();
        receive_lent(&mut out, |sink| lend_views(lent, sink)).expect("lent");
        assert_eq!(out, want);
    }
}

#[test]
fn kept_entries_refilled_from_views_are_the_entries_lent() {
    let entries = batch();
    // Kept copies of the batch in reverse, so that each is refilled from an entry of another
    // shape (author, purge, lifecycle, context length), and one more than the batch holds.
    let mut kept: Vec<Entry> = entries.iter().rev().cloned().collect();
    kept.push(entry(9, "spare", &[("k", "v")], "d: 4\n"));
    with_entry_views(&entries, |views| {
        for (copy, view) in kept.iter_mut().zip(views) {
            copy.refill(view).expect("valid views");
            assert_eq!(*copy, Entry::make(view).expect("valid views"));
        }
        let text: usize = views.iter().map(Entry::text_bytes).sum();
        let least: usize = entries.iter().map(|e| e.title.len() + e.config.len()).sum();
        assert!(
            text > least,
            "{text} bytes counted, under the titles and configs' {least}"
        );
    });
    assert_eq!(&kept[..entries.len()], &entries[..]);
    assert!(kept[..entries.len()].iter().all(Entry::verify));
    // Again, from entries that all carry another author: kept authors are written over.
    let others: Vec<Entry> = entries
        .iter()
        .map(|e| Entry {
            author: Some(Author::new("another", "cli@host", "")),
            ..e.clone()
        })
        .collect();
    with_entry_views(&others, |views| {
        for (copy, view) in kept.iter_mut().zip(views) {
            copy.refill(view).expect("valid views");
        }
    });
    assert_eq!(&kept[..others.len()], &others[..]);

    // A bad context is refused as a fresh copy refuses it.
    let mut copy = entries[2].clone();
    let raw = [Tuple2("a b".into(), "x".into())];
    with_entry_views(std::slice::from_ref(&entries[2]), |views| {
        let mut view = views[0];
        view.context = RSlice::from_slice(&raw);
        let refused = copy.refill(&view).expect_err("a bad context");
        assert_eq!(refused, Entry::try_from(&view).expect_err("a bad context"));
    });
}

#[test]
fn history_views_round_trip_exactly() {
    let mut entries = batch().into_iter();
    let mut take = |n: usize| entries.by_ref().take(n).collect::<Vec<_>>();
    let histories = vec![take(2), Vec::new(), take(1), take(2)];
    let round_tripped = with_history_views(&histories, |views| {
        views
            .iter()
            .map(|history| {
                let mut back: Vec<Entry> = Vec::new();
                convert_all(history.iter(), &mut back).expect("valid views");
                back
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(round_tripped, histories);
}

#[test]
fn request_views_round_trip_exactly() {
    let requests = vec![
        Request::new("Block SSH", Fields::default(), None, Context::default()),
        Request::new(
            "Überwachung 監視 🚨",
            Fields {
                scope: Some("SEC".into()),
                kind: None,
                variant: Some("LIVE".into()),
                status: None,
            },
            Some("v3.1".into()),
            context(&[("env", "prod"), ("owner", "équipe")]),
        ),
        Request::new("t", Fields::default(), None, context(&[("k", "ü")])),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .expect("valid requests");
    let round_tripped = with_request_views(&requests, |views| {
        let mut back: Vec<Request> = Vec::new();
        convert_all(views.iter(), &mut back).expect("valid views");
        back
    });
    assert_eq!(round_tripped, requests);
}

#[test]
fn draft_views_round_trip_exactly() {
    let drafts: Vec<Draft> = batch()
        .into_iter()
        .map(|e| Draft {
            header: e.header,
            title: e.title,
            context: e.context,
        })
        .collect();
    // What a plugin reads of each draft: the core view it makes of the host's view.
    let parts = |d: &DraftRef<'_>| {
        (
            d.fields.map(|_, v| v.to_owned()),
            d.id_prefix.to_owned(),
            d.id_number,
            d.version.to_owned(),
            d.title.to_owned(),
            d.context
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>(),
        )
    };
    let read = with_draft_views(&drafts, |views| {
        views
            .iter()
            .map(|v| {
                let pairs: Vec<(&str, &str)> = pairs_of(v.context).collect();
                parts(&v.core_view(&pairs))
            })
            .collect::<Vec<_>>()
    });
    let own: Vec<_> = drafts.iter().map(|d| parts(&d.view())).collect();
    assert_eq!(read, own);
}

/// Sends `pairs` as the context of an entry and a request, through views and through the owned
/// mirror, and returns the error each gives. (Drafts and requests to predict from are read in
/// place, as the host made them: `HostView`.)
fn refusals(pairs: &[(&str, &str)]) -> [StageError; 3] {
    let raw: Vec<FfiPairRef<'_>> = pairs
        .iter()
        .map(|&(k, v)| Tuple2(k.into(), v.into()))
        .collect();
    let bad = RSlice::from_slice(&raw);
    let refused = "a bad context is refused";
    let entry = entry(7, "t", &[("env", "prod")], "a: 1\n");
    let through_entry = with_entry_views(std::slice::from_ref(&entry), |views| {
        let mut view = views[0];
        view.context = bad;
        Entry::try_from(&view).expect_err(refused)
    });
    let request =
        Request::new("t", Fields::default(), None, Context::default()).expect("valid request");
    let through_request = with_request_views(std::slice::from_ref(&request), |views| {
        let mut view = views[0];
        view.context = bad;
        Request::try_from(&view).expect_err(refused)
    });
    let mut owned = FfiEntry::from(&entry);
    owned.context = pairs
        .iter()
        .map(|&(k, v)| Tuple2(k.into(), v.into()))
        .collect();
    let through_owned = Entry::try_from(owned).expect_err(refused);
    [through_entry, through_request, through_owned]
}

#[test]
fn a_bad_context_is_refused_through_every_view() {
    let many: Vec<(String, String)> = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (&**k, &**v)).collect();
    let check = |pairs: &[(&str, &str)], expected: &str| {
        let [entry, request, owned] = refusals(pairs);
        for (e, prefix) in [
            (entry, "host sent an invalid context: "),
            (request, "host sent an invalid context: "),
            (owned, "plugin returned an invalid context: "),
        ] {
            assert_eq!(e.code, ErrorCode::Internal, "{pairs:?}");
            assert_eq!(e.message, format!("{prefix}{expected}"), "{pairs:?}");
        }
    };
    check(
        &[("a b", "x")],
        "context key `a b` is not valid: use 1 to 64 letters, digits, `_`, `-` or `.`",
    );
    check(
        &[("", "x")],
        "context key `` is not valid: use 1 to 64 letters, digits, `_`, `-` or `.`",
    );
    check(
        &[("env", "prod\n[SEC][RULES]")],
        "context value of `env` is over 1024 bytes or contains a line break or control character",
    );
    check(
        &[("env", "a\u{2028}b")],
        "context value of `env` is over 1024 bytes or contains a line break or control character",
    );
    check(&[("a", "1"), ("a", "2")], "context key `a` is given twice");
    check(&many, "65 context pairs: the limit is 64");
}

#[test]
fn unsorted_pairs_through_a_view_are_sorted() {
    let raw = [
        Tuple2("z".into(), "1".into()),
        Tuple2("a".into(), "2".into()),
    ];
    let entry = entry(1, "t", &[], "");
    let back = with_entry_views(std::slice::from_ref(&entry), |views| {
        let mut view = views[0];
        view.context = RSlice::from_slice(&raw);
        Entry::try_from(&view).expect("valid pairs")
    });
    assert_eq!(
        back.context.iter().collect::<Vec<_>>(),
        [("a", "2"), ("z", "1")]
    );
}

#[test]
fn a_request_view_keeps_the_structural_rules() {
    let request =
        Request::new("t", Fields::default(), None, Context::default()).expect("valid request");
    let check = |edit: &dyn Fn(&mut FfiRequestRef<'_>), expected: &str| {
        let e = with_request_views(std::slice::from_ref(&request), |views| {
            let mut view = views[0];
            edit(&mut view);
            Request::try_from(&view).expect_err("an invalid request is refused")
        });
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(
            e.message,
            format!("host sent an invalid request: {expected}")
        );
    };
    check(&|v| v.title = "  ".into(), "title is empty");
    check(
        &|v| v.title = "a\nb".into(),
        "title contains a line break or control character at byte 1: a title must be one line of text",
    );
    check(
        &|v| v.fields.scope = ROption::RSome("SEC][X".into()),
        "scope `SEC][X` is not a valid value: use letters, digits, `_` and inner `-`",
    );
    check(
        &|v| v.version = ROption::RSome("2.9".into()),
        "version `2.9` is not a version: expected v followed by numbers, e.g. v2.9",
    );
}

#[test]
fn raw_headers_and_list_queries_round_trip() {
    let raw = RawHeader {
        form: HeaderForm::Grepable,
        fields: Fields {
            scope: "sec".into(),
            kind: "rules".into(),
            variant: "live".into(),
            status: "required".into(),
        },
        id: "sec-rul-7".into(),
        version: "v2.9".into(),
    };
    assert_eq!(RawHeader::from(&FfiRawHeader::from(&raw)), raw);
    for query in [
        ListQuery::default(),
        ListQuery {
            filter: Fields {
                scope: Some("SEC".into()),
                ..Fields::default()
            },
            after: Some(EntryId::new("SEC-RUL", 41)),
            limit: 100,
        },
    ] {
        assert_eq!(ListQuery::from(&FfiListQuery::from(&query)), query);
    }
}
