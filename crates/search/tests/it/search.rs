//! What a search finds, and in what order.

use registry_core::Lifecycle;
use registry_search::SearchQuery;

use crate::{entry, entry_in, find, fresh, holding, id, numbers, with_lifecycle};

#[test]
fn a_title_match_ranks_above_a_config_match() {
    let (_dir, index) = holding(&[
        entry(
            1,
            "Rotate database credentials",
            &[],
            "note: firewall is elsewhere\n",
        ),
        entry(
            2,
            "Block inbound firewall traffic",
            &[],
            "note: nothing here\n",
        ),
        entry(3, "Unrelated entry", &[], "note: nothing here\n"),
    ]);
    assert_eq!(find(&index, "firewall"), vec![2, 1]);
    let found = index
        .search(&SearchQuery {
            text: "firewall".into(),
            limit: 10,
            ..SearchQuery::default()
        })
        .expect("search");
    assert!(found.hits[0].score > found.hits[1].score);
    assert_eq!(found.hits[0].revision, 1);
}

#[test]
fn words_are_combined_with_and() {
    let (_dir, index) = holding(&[
        entry(1, "Detect ssh brute force", &[], "x: 1\n"),
        entry(2, "Detect ssh logins", &[], "x: 1\n"),
        entry(3, "Brute force on web forms", &[("proto", "ssh")], "x: 1\n"),
    ]);
    let mut both = find(&index, "ssh brute force");
    both.sort_unstable();
    assert_eq!(both, vec![1, 3], "every word, in any field");
    assert_eq!(find(&index, "ssh logins"), vec![2]);
    let mut either = find(&index, "logins OR web");
    either.sort_unstable();
    assert_eq!(either, vec![2, 3], "OR still works");
    assert_eq!(find(&index, "ssh -brute"), vec![2], "a -term excludes");
}

#[test]
fn a_quoted_phrase_needs_its_words_in_order() {
    let (_dir, index) = holding(&[
        entry(1, "Force brute the gate", &[], "x: 1\n"),
        entry(2, "Brute force the gate", &[], "x: 1\n"),
    ]);
    assert_eq!(find(&index, "\"brute force\""), vec![2]);
    let mut words = find(&index, "brute force");
    words.sort_unstable();
    assert_eq!(words, vec![1, 2]);
}

#[test]
fn context_keys_and_values_and_config_are_searched() {
    let (_dir, index) = holding(&[
        entry(1, "One", &[("owner", "alice")], "x: 1\n"),
        entry(
            2,
            "Two",
            &[("team", "payments")],
            "threshold: 42\nmode: strict\n",
        ),
    ]);
    assert_eq!(find(&index, "alice"), vec![1]);
    assert_eq!(find(&index, "owner"), vec![1]);
    assert_eq!(find(&index, "\"owner alice\""), vec![1]);
    assert_eq!(find(&index, "payments"), vec![2]);
    assert_eq!(find(&index, "strict"), vec![2]);
    assert_eq!(find(&index, "STRICT"), vec![2], "lowercased both ways");
}

#[test]
fn each_filter_is_exact_on_its_header_field() {
    let (_dir, index) = holding(&[
        entry_in(
            ("SEC", "RULES", "LIVE", "REQUIRED"),
            1,
            "alpha",
            &[],
            "x: 1\n",
        ),
        entry_in(
            ("SEC", "RULES", "COMPACT", "REQUIRED"),
            2,
            "alpha",
            &[],
            "x: 1\n",
        ),
        entry_in(("SEC", "RULES", "LIVE", "DEV"), 3, "alpha", &[], "x: 1\n"),
        entry_in(
            ("OPS", "RULES", "LIVE", "REQUIRED"),
            4,
            "alpha",
            &[],
            "x: 1\n",
        ),
        entry_in(
            ("SEC", "POLICY", "LIVE", "REQUIRED"),
            5,
            "alpha",
            &[],
            "x: 1\n",
        ),
    ]);
    let q = |f: &dyn Fn(&mut SearchQuery)| {
        let mut query = SearchQuery {
            text: "alpha".into(),
            limit: 10,
            ..SearchQuery::default()
        };
        f(&mut query);
        let mut ids: Vec<String> = index
            .search(&query)
            .expect("search")
            .hits
            .iter()
            .map(|h| h.id.to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(q(&|q| q.variant = Some("COMPACT".into())), ["SEC-RUL-002"]);
    assert_eq!(q(&|q| q.status = Some("DEV".into())), ["SEC-RUL-003"]);
    assert_eq!(q(&|q| q.scope = Some("OPS".into())), ["OPS-RUL-004"]);
    assert_eq!(q(&|q| q.kind = Some("POLICY".into())), ["SEC-POL-005"]);
    assert_eq!(
        q(&|q| q.scope = Some("sec".into())).len(),
        4,
        "case-insensitive, as the schema compares"
    );
    assert_eq!(
        q(&|q| {
            q.scope = Some("SEC".into());
            q.status = Some("REQUIRED".into());
            q.variant = Some("LIVE".into());
        }),
        ["SEC-POL-005", "SEC-RUL-001"]
    );
    assert!(
        q(&|q| q.scope = Some("SE".into())).is_empty(),
        "not a prefix match"
    );
    // A token's scopes: any of them.
    assert_eq!(q(&|q| q.scopes = vec!["OPS".into()]), ["OPS-RUL-004"]);
    assert_eq!(
        q(&|q| q.scopes = vec!["ops".into(), "GOV".into()]),
        ["OPS-RUL-004"]
    );
    assert_eq!(q(&|q| q.scopes = vec!["OPS".into(), "SEC".into()]).len(), 5);
    assert!(
        q(&|q| {
            q.scopes = vec!["OPS".into()];
            q.scope = Some("SEC".into());
        })
        .is_empty(),
        "the scope asked for and the token's scopes both hold"
    );
}

#[test]
fn retired_and_merged_entries_are_left_out_unless_asked() {
    let (_dir, index) = holding(&[
        entry(1, "gateway", &[], "x: 1\n"),
        with_lifecycle(entry(2, "gateway", &[], "x: 1\n"), Lifecycle::Retired),
        with_lifecycle(entry(3, "gateway", &[], "x: 1\n"), Lifecycle::Merged(id(1))),
    ]);
    assert_eq!(find(&index, "gateway"), vec![1]);
    let query = SearchQuery {
        text: "gateway".into(),
        include_retired: true,
        limit: 10,
        ..SearchQuery::default()
    };
    let found = index.search(&query).expect("search");
    assert_eq!(found.total, 3);
    let mut all: Vec<u64> = found.hits.iter().map(|h| h.id.number()).collect();
    all.sort_unstable();
    assert_eq!(all, vec![1, 2, 3]);
    assert_eq!(
        index
            .search(&SearchQuery {
                limit: 10,
                ..SearchQuery::default()
            })
            .expect("search")
            .total,
        1,
        "a listing leaves them out too"
    );
}

#[test]
fn an_upsert_replaces_the_old_revision() {
    let first = entry(1, "Old wording zebra", &[], "x: 1\n");
    let (_dir, index) = holding(std::slice::from_ref(&first));
    let mut second = entry(1, "New wording giraffe", &[], "x: 1\n");
    second.revision = 2;
    index.upsert(&[second]).expect("upsert");
    assert_eq!(
        find(&index, "zebra"),
        vec![1],
        "not visible before the commit"
    );
    index.commit().expect("commit");
    assert!(find(&index, "zebra").is_empty(), "the old words are gone");
    let found = index
        .search(&SearchQuery {
            text: "giraffe".into(),
            limit: 10,
            ..SearchQuery::default()
        })
        .expect("search");
    assert_eq!(found.total, 1);
    assert_eq!((found.hits[0].id.number(), found.hits[0].revision), (1, 2));
    assert_eq!(index.docs(), 1);
    assert_eq!(
        index.revisions().expect("revisions").get("SEC-RUL-001"),
        Some(&2)
    );
}

#[test]
fn the_last_of_one_batch_wins() {
    let (_dir, index) = fresh();
    let mut later = entry(1, "later text", &[], "x: 1\n");
    later.revision = 2;
    index
        .upsert(&[entry(1, "earlier text", &[], "x: 1\n"), later])
        .expect("upsert");
    index.commit().expect("commit");
    assert_eq!(index.docs(), 1);
    assert!(find(&index, "earlier").is_empty());
    assert_eq!(find(&index, "later"), vec![1]);
}

#[test]
fn remove_and_clear_delete_documents() {
    let (_dir, index) = holding(&[
        entry(1, "kept apple", &[], "x: 1\n"),
        entry(2, "removed apple", &[], "x: 1\n"),
        entry(3, "another apple", &[], "x: 1\n"),
    ]);
    index.remove(&[id(2), id(99)]).expect("remove");
    assert_eq!(index.docs(), 3, "not visible before the commit");
    index.commit().expect("commit");
    assert_eq!(index.docs(), 2);
    assert!(find(&index, "removed").is_empty());

    // A document added after the last commit is cleared as well.
    index
        .upsert(&[entry(4, "fresh apple", &[], "x: 1\n")])
        .expect("upsert");
    index.clear().expect("clear");
    assert_eq!(
        find(&index, "apple").len(),
        2,
        "searches see the old documents until the commit"
    );
    index.commit().expect("commit");
    assert_eq!(index.docs(), 0);
    assert!(find(&index, "apple").is_empty());
    index
        .upsert(&[entry(5, "after apple", &[], "x: 1\n")])
        .expect("upsert");
    index.commit().expect("commit");
    assert_eq!(
        find(&index, "apple"),
        vec![5],
        "documents added after a clear stay"
    );
}

#[test]
fn an_empty_text_lists_by_id_order_with_paging() {
    let numbers_in = [1000u64, 5, 999, 42, 7];
    let entries: Vec<_> = numbers_in
        .iter()
        .map(|&n| entry(n, "listed", &[], "x: 1\n"))
        .collect();
    let (_dir, index) = fresh();
    // In two commits, so that the list spans segments.
    index.upsert(&entries[..2]).expect("upsert");
    index.commit().expect("commit");
    index.upsert(&entries[2..]).expect("upsert");
    index.commit().expect("commit");
    let page = |offset, limit| {
        numbers(
            &index,
            &SearchQuery {
                limit,
                offset,
                ..SearchQuery::default()
            },
        )
    };
    assert_eq!(page(0, 100), vec![5, 7, 42, 999, 1000]);
    assert_eq!(page(1, 2), vec![7, 42]);
    assert_eq!(page(4, 2), vec![1000]);
    assert!(page(5, 2).is_empty());
    let counted = index
        .search(&SearchQuery {
            limit: 0,
            ..SearchQuery::default()
        })
        .expect("search");
    assert_eq!(
        (counted.hits.len(), counted.total),
        (0, 5),
        "limit 0 counts only"
    );
    let filtered = index
        .search(&SearchQuery {
            status: Some("REQUIRED".into()),
            limit: 2,
            offset: usize::MAX,
            ..SearchQuery::default()
        })
        .expect("search");
    assert_eq!((filtered.hits.len(), filtered.total), (0, 5));
}

#[test]
fn ranked_pages_are_consistent_and_the_total_is_exact() {
    let entries: Vec<_> = (1..=30)
        .map(|n| {
            let title = format!(
                "pump {}",
                "pump ".repeat(usize::try_from(n % 7).unwrap_or(0))
            );
            entry(n, &title, &[], "x: 1\n")
        })
        .collect();
    let (_dir, index) = holding(&entries);
    let all = numbers(
        &index,
        &SearchQuery {
            text: "pump".into(),
            limit: usize::MAX,
            ..SearchQuery::default()
        },
    );
    assert_eq!(all.len(), 30);
    let mut paged = Vec::new();
    for offset in (0..30).step_by(7) {
        let found = index
            .search(&SearchQuery {
                text: "pump".into(),
                limit: 7,
                offset,
                ..SearchQuery::default()
            })
            .expect("search");
        assert_eq!(found.total, 30);
        paged.extend(found.hits.iter().map(|h| h.id.number()));
    }
    assert_eq!(paged, all);
}

#[test]
fn hostile_query_text_never_panics() {
    let (_dir, index) = holding(&[
        entry(
            1,
            "title: with colon (and parens)",
            &[("k", "v")],
            "a: \"b\"\n",
        ),
        entry(2, "plain", &[], "x: 1\n"),
    ]);
    let long_word = "x".repeat(100_000);
    let many_words = "word ".repeat(50_000);
    let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    let open_deep = "(".repeat(100_000);
    let repeated: Vec<String> = [
        "-",
        "+",
        "NOT ",
        "NOT -",
        "-NOT ",
        "+ -",
        "a AND ",
        "a OR ",
        "a AND NOT ",
        "title:",
        "-title:",
        "\"",
        "[",
        "{",
        "^",
        "~",
        "(a ",
        "a) ",
        "-(",
        "+(",
        "NOT (",
        "title:(",
        "(-",
        "IN [",
        "* ",
        "title:a* ",
    ]
    .iter()
    .map(|unit| format!("{}a", unit.repeat(20_000)))
    .collect();
    let hostile = [
        "\"((",
        "title:",
        ":",
        "\"",
        "\"\"",
        "(",
        ")",
        "((((",
        "))))",
        "-",
        "+",
        "*",
        "AND",
        "OR OR OR",
        "NOT",
        "title:[a TO",
        "title:{* TO *}",
        "revision:>",
        "revision:[1 TO 2]",
        "revision:abc",
        "nosuchfield:x",
        "id:SEC-RUL-001",
        "lifecycle:retired",
        "title:/.*/",
        "~2",
        "plain~",
        "plain^",
        "plain^99999999999999999999",
        "\"plain\"~99999999999",
        "\\",
        "\u{0}",
        "\u{202e}plain",
        "ｐｌａｉｎ",
        "IN [",
        "title: IN [a b",
        long_word.as_str(),
        many_words.as_str(),
        deep.as_str(),
        open_deep.as_str(),
    ];
    // On a thread with a quarter of the 2 MiB stack threads get by default (the server's
    // blocking pool), where unbounded recursion in the parser would overflow.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn_scoped(scope, || {
                for text in hostile
                    .iter()
                    .copied()
                    .chain(repeated.iter().map(String::as_str))
                {
                    let found = index.search(&SearchQuery {
                        text: text.to_owned(),
                        limit: 10,
                        ..SearchQuery::default()
                    });
                    assert!(
                        found.is_ok(),
                        "{:?}: {found:?}",
                        &text[..text.len().min(40)]
                    );
                }
            })
            .expect("a thread")
            .join()
            .expect("no panic");
    });
    assert_eq!(find(&index, "plain"), vec![2], "the index still answers");
    assert!(
        find(&index, "lifecycle:retired").is_empty(),
        "a field query cannot bring back retired entries"
    );
}

#[test]
fn hostile_entries_are_indexed() {
    let long_title = "word ".repeat(40);
    let huge_config = format!("k: {}\n", "needle ".repeat(200_000));
    let huge_token = format!("t: {}\n", "y".repeat(200_000));
    // Built as storage might hold them, past the checks a request passes.
    let mut bidi = entry(2, "bidi", &[], &huge_token);
    bidi.title = "\u{202e} bidi ünïcödé 日本語\n\u{0}".to_owned();
    let mut huge_title = entry(3, "nul", &[], "a: \"\u{0}\u{ffff}\"\n");
    huge_title.title = "elephant ".repeat(100_000);
    let (_dir, index) = holding(&[entry(1, &long_title, &[], &huge_config), bidi, huge_title]);
    assert_eq!(index.docs(), 3);
    assert_eq!(find(&index, "needle"), vec![1]);
    assert_eq!(find(&index, "ünïcödé"), vec![2]);
    assert_eq!(find(&index, "elephant"), vec![3]);
}

#[test]
fn searches_run_while_one_thread_writes() {
    let (_dir, index) = fresh();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let searchers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut seen = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let found = index
                            .search(&SearchQuery {
                                text: "beacon".into(),
                                limit: 5,
                                ..SearchQuery::default()
                            })
                            .expect("search");
                        assert!(found.total >= seen, "a commit never goes back");
                        assert_eq!(found.total % 10, 0, "a commit is seen whole");
                        seen = found.total;
                    }
                    seen
                })
            })
            .collect();
        for batch in 0..20u64 {
            let entries: Vec<_> = (0..10)
                .map(|n| entry(batch * 10 + n + 1, "beacon", &[], "x: 1\n"))
                .collect();
            index.upsert(&entries).expect("upsert");
            index.commit().expect("commit");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for searcher in searchers {
            assert!(searcher.join().expect("no panic") <= 200);
        }
    });
    assert_eq!(index.docs(), 200);
}
