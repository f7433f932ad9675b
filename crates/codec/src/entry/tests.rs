//! Tests of the entry encoding: round trips, lending, damage, and the golden bytes.
use registry_core::{Author, Context, EntryId, Header, Purge, Source};

use std::sync::Arc;

use super::*;

/// Formats 1 to 3, as a store of storage format 1 writes them.
fn encoded(e: &Entry) -> Vec<u8> {
    super::encoded(e, Writing::Uncompressed)
}

/// Decoding with no dictionary.
fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    super::decode(bytes, &Dictionaries::default())
}

fn config_like(i: usize) -> String {
    format!(
        "dashboard:\n  title: Rule {i}\n  version: v2.9\n  security:\n    csrf: {}\n    \
         cookies:\n      secure: true\n  filters:\n  - threat_level\n  - source_ip\n\
         governance:\n  id: ETL-MUL-{i:04}\n",
        i.is_multiple_of(3)
    )
}

/// Dictionary `id`, trained on configs like [`config_like`]'s.
fn dictionaries(id: u32) -> Dictionaries {
    let samples: Vec<String> = (0..400).map(config_like).collect();
    let bytes = crate::compress::train(&samples).expect("trains");
    let mut all = Dictionaries::default();
    all.add(Arc::new(Dictionary::new(id, bytes).expect("a dictionary")));
    all
}

/// What a lender keeps between batches is bounded: the strings of small configs, not of
/// a batch of large ones.
#[test]
fn a_lender_keeps_the_strings_of_small_configs_only() {
    let lend = |lender: &mut Lender, config: &str| {
        let records: Vec<Vec<u8>> = (1..=5)
            .map(|n| super::encoded(&entry("t", &[], config, n), Writing::Compressed(None)))
            .collect();
        let parts: Vec<_> = records
            .iter()
            .map(|b| Some(parse(b).expect("parses")))
            .collect();
        let sizes = lender
            .lend(&parts, &Dictionaries::default(), |views| {
                views
                    .iter()
                    .flatten()
                    .map(|v| v.config.len())
                    .collect::<Vec<_>>()
            })
            .expect("lends");
        assert_eq!(sizes, [config.len(); 5]);
    };
    let mut lender = Lender::default();
    lend(&mut lender, &"key: value\n".repeat(40));
    assert_eq!(lender.configs.len(), 5, "small configs' strings are kept");
    lend(&mut lender, &"key: value\n".repeat(100_000));
    assert!(
        lender.configs.is_empty(),
        "5 configs of 1.1 MB are not kept"
    );
}

#[test]
fn lent_records_are_the_entries_decode_makes() {
    let dicts = dictionaries(7);
    let plain = entry(
        "Block SSH",
        &[("env", "prod"), ("owner", "ops")],
        &config_like(3),
        300,
    );
    let shapes = [
        plain.clone(),
        Entry {
            lifecycle: Lifecycle::Merged(EntryId::new("ETL-MUL", 2)),
            context: Context::default(),
            ..entry("Merged", &[], &config_like(4), 301)
        },
        Entry {
            lifecycle: Lifecycle::Retired,
            previous: Some(ContentHash([9; 32])),
            purge: Some(Purge {
                original: ContentHash([8; 32]),
                fields: "title".into(),
                reason: "a token".into(),
                at: Timestamp(77),
            }),
            author: Some(Author::new("ci-bot", "10.1.2.3", "6b15dc41-7")),
            ..entry("(purged)", &[("k", "v")], &config_like(5), 302)
        },
        // Too short to compress: kept as it is, and lent from the record.
        entry("Short", &[("a", "b")], "x: 1\n", 303),
    ];
    let mut records = Vec::new();
    for e in &shapes {
        for writing in [
            Writing::Compressed(dicts.get(7)),
            Writing::Compressed(None),
            Writing::Uncompressed,
        ] {
            records.push(super::encoded(e, writing));
        }
    }
    let mut lender = Lender::default();
    for round in 0..2 {
        let mut parts: Vec<Option<Parts<'_>>> = records
            .iter()
            .map(|b| Some(parse(b).expect("parses")))
            .collect();
        parts.insert(round, None);
        let lent = lender
            .lend(&parts, &dicts, |views| {
                views
                    .iter()
                    .map(|v| v.map(|v| v.to_entry().expect("a valid context")))
                    .collect::<Vec<_>>()
            })
            .expect("lends");
        let mut want: Vec<Option<Entry>> = records
            .iter()
            .map(|b| Some(super::decode(b, &dicts).expect("decodes")))
            .collect();
        want.insert(round, None);
        assert_eq!(lent, want, "round {round}");
    }
    // A config whose dictionary the store lacks is the error of its record, by index.
    let parts: Vec<_> = records
        .iter()
        .map(|b| Some(parse(b).expect("parses")))
        .collect();
    let err = lender
        .lend(&parts, &Dictionaries::default(), |_| {
            panic!("nothing is lent")
        })
        .expect_err("dictionary 7 is missing");
    assert_eq!(err.0, 0);
    assert!(err.1.to_string().contains("dictionary 7"), "{}", err.1);
}

#[test]
fn an_author_is_kept_in_format_5_and_is_no_part_of_the_hash() {
    let dicts = dictionaries(7);
    let plain = entry("Block SSH", &[("env", "prod")], &config_like(3), 300);
    for previous in [None, Some(ContentHash([9; 32]))] {
        let mut e = Entry {
            previous,
            author: Some(Author::new("ci-bot", "10.1.2.3", "6b15dc41-7")),
            ..plain.clone()
        };
        e.hash = e.content_hash();
        let bytes = super::encoded(&e, Writing::Compressed(dicts.get(7)));
        assert_eq!(bytes[0], 5);
        let back = super::decode(&bytes, &dicts).expect("decodes");
        assert_eq!(back, e);
        assert!(back.verify());
        let anonymous = Entry {
            author: None,
            ..e.clone()
        };
        assert_eq!(
            anonymous.content_hash(),
            e.hash,
            "the author is not content"
        );
    }
    // An uncompressed store keeps no author (format 1 registries have no audit).
    let authored = Entry {
        author: Some(Author::new("ci-bot", "10.1.2.3", "")),
        ..plain.clone()
    };
    let bytes = super::encoded(&authored, Writing::Uncompressed);
    assert_eq!(bytes[0], 2);
    assert_eq!(super::decode(&bytes, &dicts).expect("decodes").author, None);
    // Flags beyond the three known are refused.
    let mut bytes = super::encoded(
        &Entry {
            author: Some(Author::new("a", "b", "c")),
            ..plain
        },
        Writing::Compressed(None),
    );
    let flags = bytes.len() - 7;
    assert_eq!(bytes[flags], 4);
    bytes[flags] = 8;
    assert!(super::decode(&bytes, &Dictionaries::default()).is_err());
}

#[test]
fn a_revision_that_records_the_one_before_is_written_in_format_5() {
    let dicts = dictionaries(7);
    for lifecycle in [
        Lifecycle::Active,
        Lifecycle::Merged(EntryId::new("ETL-MUL", 1)),
    ] {
        let mut e = Entry {
            lifecycle,
            previous: Some(ContentHash([9; 32])),
            ..entry("Block SSH", &[("env", "prod")], &config_like(3), 300)
        };
        e.hash = e.content_hash();
        let bytes = super::encoded(&e, Writing::Compressed(dicts.get(7)));
        assert_eq!(bytes[0], 5);
        assert_eq!(bytes[bytes.len() - 33], 1, "flags: a previous hash follows");
        assert_eq!(&bytes[bytes.len() - 32..], &[9; 32]);
        let back = super::decode(&bytes, &dicts).expect("decodes");
        assert_eq!(back, e);
        assert!(back.verify(), "the hash covers the previous one");
        // Without it, the same revision is format 4 and its hash no longer matches.
        let unchained = Entry {
            previous: None,
            ..e.clone()
        };
        let bytes = super::encoded(&unchained, Writing::Compressed(dicts.get(7)));
        assert_eq!(bytes[0], 4);
        assert!(!super::decode(&bytes, &dicts).expect("decodes").verify());
        // A purge record, with or without a previous hash, reads back as written.
        for previous in [None, Some(ContentHash([9; 32]))] {
            let mut purged = Entry {
                previous,
                purge: Some(Purge {
                    original: ContentHash([4; 32]),
                    fields: "title, context.env".into(),
                    reason: "a token pasted by mistake".into(),
                    at: Timestamp(-3),
                }),
                ..e.clone()
            };
            purged.hash = purged.content_hash();
            let bytes = super::encoded(&purged, Writing::Compressed(dicts.get(7)));
            assert_eq!(bytes[0], 5);
            let back = super::decode(&bytes, &dicts).expect("decodes");
            assert_eq!(back, purged);
            assert!(back.verify());
            assert_eq!(back.link(), ContentHash([4; 32]));
        }
    }
}

#[test]
fn format_4_compresses_configs_and_reads_them_back() {
    let dicts = dictionaries(7);
    let dictionary = dicts.get(7);
    for (config, lifecycle) in [
        (config_like(12_345), Lifecycle::Active),
        (config_like(7), Lifecycle::Retired),
        (String::new(), Lifecycle::Merged(EntryId::new("ETL-MUL", 1))),
        ("x".repeat(100_000), Lifecycle::Active),
    ] {
        let mut e = Entry {
            lifecycle,
            ..entry("Block SSH", &[("env", "prod")], &config, 300)
        };
        e.hash = e.content_hash();
        let plain = encoded(&e);
        for writing in [Writing::Compressed(None), Writing::Compressed(dictionary)] {
            let bytes = super::encoded(&e, writing);
            assert_eq!(bytes[0], 4);
            assert_eq!(super::decode(&bytes, &dicts).as_ref(), Ok(&e));
            assert!(
                bytes.len() <= plain.len() + 2,
                "never longer but for the encoding and lifecycle bytes"
            );
        }
    }
    // The dictionary pays: a config like those it was trained on takes a fraction.
    let e = entry("t", &[], &config_like(99_999), 1);
    let with = super::encoded(&e, Writing::Compressed(dictionary));
    let without = super::encoded(&e, Writing::Compressed(None)).len();
    assert!(
        with.len() < without && without < encoded(&e).len(),
        "{} {without} {}",
        with.len(),
        encoded(&e).len()
    );
    // A config needs the dictionary it was written with.
    let err = decode(&with).expect_err("without its dictionary");
    assert!(
        err.to_string()
            .contains("compressed with dictionary 7, which the store does not hold"),
        "{err}"
    );
    for len in 0..with.len() {
        assert!(
            super::decode(&with[..len], &dicts).is_err(),
            "decoded {len} bytes"
        );
    }
    for i in 0..with.len() {
        let mut damaged = with.clone();
        damaged[i] ^= 0xff;
        let _ = super::decode(&damaged, &dicts);
    }
    let mut unknown = with.clone();
    unknown.push(0);
    assert!(super::decode(&unknown, &dicts).is_err(), "a byte too many");
}

/// Format 4 with a config too short to compress (pinned bytes), and with a compressed
/// config as zstd wrote it at this format's first release, which must keep decoding
/// whatever zstd writes later.
#[test]
fn golden_bytes_of_format_4() {
    let before = [
        "04",                    // format 4
        "03 534543",             // scope "SEC"
        "05 52554c4553",         // type "RULES"
        "04 4c495645",           // variant "LIVE"
        "04 4c495645",           // status "LIVE"
        "07 5345432d52554c",     // id prefix "SEC-RUL"
        "01",                    // id number 1
        "02 7631",               // version "v1"
        "09 426c6f636b20535348", // title "Block SSH"
        "00",                    // context: 0 pairs
    ];
    let after = [
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", // hash
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",                                 // fingerprint
        "01",                                                               // revision 1
        "80a0abfef962", // created at 1700000000000, zigzag
        "80a0abfef962", // updated at 1700000000000, zigzag
        "00",           // provenance: not recorded
        "00",           // lifecycle: active
    ];
    let e = minimal();
    let want = unhex(&[&before[..], &["00 00"], &after].concat()); // config "", a string
    assert_eq!(
        hex(&super::encoded(&e, Writing::Compressed(None))),
        hex(&want)
    );
    assert_eq!(decode(&want).as_ref(), Ok(&e));

    // 67 bytes of config in a 20-byte frame, without a dictionary.
    let config = format!("a: {}\n", "a".repeat(63));
    let frame = "28b52ffd20435d000028613a20610a0100930011";
    let compressed = unhex(
        &[
            &before[..],
            &["01 00 43 14", frame], // zstd, no dictionary, 67 bytes, a 20-byte frame
            &after,
        ]
        .concat(),
    );
    let with_config = Entry {
        config: config.clone(),
        ..minimal()
    };
    assert_eq!(decode(&compressed).as_ref(), Ok(&with_config));
    assert_eq!(
        hex(&super::encoded(&with_config, Writing::Compressed(None))),
        hex(&compressed),
        "zstd writes the same frame today"
    );
}

fn entry(title: &str, context: &[(&str, &str)], config: &str, number: u64) -> Entry {
    let header = Header {
        fields: Fields {
            scope: "ETL".into(),
            kind: "MULTI-ETL".into(),
            variant: "DEV".into(),
            status: "LIVE".into(),
        },
        id: EntryId::new("ETL-MUL", number),
        version: "v2.9".into(),
    };
    let context = Context::new(context.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())))
        .expect("test context is valid");
    Entry {
        hash: Entry::compute_hash(&header, title, &context, config),
        previous: None,
        purge: None,
        author: None,
        header,
        title: title.into(),
        context,
        config: config.into(),
        fingerprint: Fingerprint([7; 16]),
        revision: 3,
        created_at: Timestamp(-5),
        updated_at: Timestamp(1_795_801_784_123),
        provenance: None,
        lifecycle: Lifecycle::Active,
    }
}

#[test]
fn round_trips_exactly() {
    let mut extreme = entry("x", &[], "", u64::MAX);
    extreme.revision = u32::MAX;
    extreme.created_at = Timestamp(i64::MIN);
    extreme.updated_at = Timestamp(i64::MAX);
    for e in [
        entry("Block SSH", &[], "", 1),
        entry(
            "é ünïcode ✓",
            &[("env", "prod"), ("a.b-c_d", "")],
            "x: 1\n",
            1234,
        ),
        entry(
            &"t".repeat(1024),
            &[("k", &"v".repeat(1024))],
            &"y".repeat(100_000),
            0,
        ),
        extreme,
    ] {
        let bytes = encoded(&e);
        assert_eq!(bytes[0], 2, "an active entry is written in format 2");
        assert_eq!(decode(&bytes), Ok(e.clone()));
        assert!(decode(&bytes).is_ok_and(|d| d.verify() == e.verify()));
        for lifecycle in [
            Lifecycle::Retired,
            Lifecycle::Merged(EntryId::new("ETL-MUL", u64::MAX)),
        ] {
            let mut e = Entry {
                lifecycle,
                ..e.clone()
            };
            e.hash = e.content_hash();
            let bytes = encoded(&e);
            assert_eq!(bytes[0], 3);
            assert_eq!(decode(&bytes), Ok(e.clone()));
            assert!(decode(&bytes).is_ok_and(|d| d.verify()));
        }
    }
}

/// Decoding one entry after another into the same value gives what decoding each afresh
/// gives, whatever the one before held: more or fewer context pairs, a purge, an author,
/// a longer or shorter config, compressed or not, formats old and new. A decode that fails
/// midway leaves a value the next decode fills completely.
#[test]
fn decoding_into_a_used_entry_gives_a_fresh_one() {
    let dicts = dictionaries(7);
    let mut entries = Vec::new();
    for (i, pairs) in [
        &[("env", "prod"), ("a.b-c_d", ""), ("z", "é ✓")][..],
        &[],
        &[("k", "v")],
    ]
    .into_iter()
    .enumerate()
    {
        let plain = entry(&format!("title {i} ✓"), pairs, &config_like(i), i as u64);
        let mut chained = Entry {
            previous: Some(ContentHash([i as u8; 32])),
            author: (i != 1).then(|| Author::new("ci-bot", "10.1.2.3", "r-1")),
            purge: (i != 2).then(|| Purge {
                original: ContentHash([3; 32]),
                fields: format!("title{}", ", context.env".repeat(i)),
                reason: "pasted a secret".into(),
                at: Timestamp(-7),
            }),
            lifecycle: [
                Lifecycle::Active,
                Lifecycle::Retired,
                Lifecycle::Merged(EntryId::new("ETL-MUL", 9)),
            ][i]
                .clone(),
            ..plain.clone()
        };
        chained.hash = chained.content_hash();
        entries.push((encoded(&plain), plain));
        for writing in [Writing::Compressed(None), Writing::Compressed(dicts.get(7))] {
            entries.push((super::encoded(&chained, writing), chained.clone()));
        }
    }
    let mut kept = super::blank();
    for (bytes, want) in entries.iter().chain(entries.iter().rev()) {
        decode_into(bytes, &dicts, &mut kept).expect("decodes");
        assert_eq!(&kept, want);
        assert_eq!(super::decode(bytes, &dicts).as_ref(), Ok(want));
        // Cut short, it fails; the next decode is whole all the same.
        decode_into(&bytes[..bytes.len() / 2], &dicts, &mut kept).expect_err("truncated");
    }
    let (bytes, want) = &entries[0];
    decode_into(bytes, &dicts, &mut kept).expect("decodes");
    assert_eq!(&kept, want);
}

#[test]
fn varints_and_zigzag_round_trip() {
    for n in [
        0,
        1,
        127,
        128,
        300,
        16_383,
        16_384,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut out = Vec::new();
        put_varint(&mut out, n);
        let mut r = Reader { bytes: &out, at: 0 };
        assert_eq!(r.varint("n"), Ok(n), "{n}");
        assert_eq!(r.left(), 0);
    }
    for t in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
        assert_eq!(unzigzag(zigzag(t)), t, "{t}");
    }
    let mut short = Vec::new();
    put_varint(&mut short, 300);
    assert_eq!(short, [0xac, 0x02]);
    // Eleven continuation bytes, and a tenth byte with more than the top bit.
    for bad in [vec![0xff; 11], [vec![0xff; 9], vec![0x02]].concat()] {
        let mut r = Reader { bytes: &bad, at: 0 };
        assert!(r.varint("n").is_err(), "{bad:?}");
    }
}

#[test]
fn the_fields_come_first_as_the_scripts_read_them() {
    let bytes = encoded(&entry("t", &[], "c", 1));
    let mut want = vec![2];
    for s in ["ETL", "MULTI-ETL", "DEV", "LIVE"] {
        want.push(s.len() as u8);
        want.extend_from_slice(s.as_bytes());
    }
    assert_eq!(&bytes[..want.len()], &want[..]);
}

#[test]
fn every_truncation_is_an_error() {
    let merged = Entry {
        lifecycle: Lifecycle::Merged(EntryId::new("ETL-MUL", 7)),
        ..entry("Block SSH", &[("env", "prod")], "a: b", 42)
    };
    for len in 0..encoded(&merged).len() {
        assert!(
            decode(&encoded(&merged)[..len]).is_err(),
            "decoded {len} bytes"
        );
    }
    let bytes = encoded(&entry("Block SSH", &[("env", "prod")], "a: b", 42));
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "decoded {len} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode(&longer).is_err());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let bytes = encoded(&entry("Block SSH", &[("env", "prod")], "a: b", 42));
    for i in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0xff;
        if let Ok(e) = decode(&damaged) {
            assert_ne!(e, decode(&bytes).expect("original decodes"), "byte {i}");
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..2000 {
        let len = round % 97;
        let mut input: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        if let Some(first) = input.first_mut() {
            *first = FORMAT_VERSION;
        }
        let _ = decode(&input);
    }
}

#[test]
fn rejects_bad_versions_and_lengths() {
    let check = |bytes: &[u8], want: &str| {
        let err = decode(bytes).expect_err("must not decode");
        assert!(err.to_string().contains(want), "{err} lacks {want:?}");
    };
    let mut v2 = encoded(&entry("t", &[("env", "prod")], "c", 1));
    v2[0] = 6;
    check(&v2, "unknown format version 6");
    v2[0] = 3;
    v2.push(9);
    check(&v2, "unknown lifecycle 9");
    check(&[], "truncated: format version");
    check(&[1, 0x7f], "truncated: scope needs 127 bytes");
    check(&[1, 1, 0xff], "scope at byte 2 is not valid utf-8");
    // A context string is checked where it is read, decoded or lent, at its own byte.
    let mut bytes = encoded(&entry("t", &[("env", "prod")], "c", 1));
    let at = bytes
        .windows(3)
        .position(|w| w == b"env")
        .expect("the key is stored");
    bytes[at] = 0xff;
    check(
        &bytes,
        &format!("context key at byte {} is not valid utf-8", at),
    );
    let record = parse(&bytes).expect("the lengths are whole");
    let err = Lender::default()
        .lend(&[None, Some(record)], &Dictionaries::default(), |_| ())
        .expect_err("refused");
    assert_eq!(err.0, 1);
    assert!(err.1.to_string().contains("context key"), "{}", err.1);
}

// The entries whose stored bytes the golden tests pin. Hashes and fingerprints are patterned
// bytes: the codec stores them as they are, whatever they hold.

fn header(fields: [&str; 4], id: EntryId, version: &str) -> Header {
    let [scope, kind, variant, status] = fields.map(str::to_owned);
    Header {
        fields: Fields {
            scope,
            kind,
            variant,
            status,
        },
        id,
        version: version.into(),
    }
}

fn pattern<const N: usize>(first: u8) -> [u8; N] {
    std::array::from_fn(|i| first.wrapping_add(i as u8))
}

fn context(pairs: &[(&str, &str)]) -> Context {
    Context::new(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())))
        .expect("test context is valid")
}

/// No provenance, no context, an empty config.
fn minimal() -> Entry {
    Entry {
        header: header(
            ["SEC", "RULES", "LIVE", "LIVE"],
            EntryId::new("SEC-RUL", 1),
            "v1",
        ),
        title: "Block SSH".into(),
        context: Context::default(),
        config: String::new(),
        hash: ContentHash(pattern(0x00)),
        previous: None,
        purge: None,
        author: None,
        fingerprint: Fingerprint(pattern(0xf0)),
        revision: 1,
        created_at: Timestamp(1_700_000_000_000),
        updated_at: Timestamp(1_700_000_000_000),
        provenance: None,
        lifecycle: Lifecycle::Active,
    }
}

/// A recorded provenance (every kind of source), two context pairs, a multi-line config.
fn recorded() -> Entry {
    Entry {
        header: header(
            ["ETL", "MULTI-ETL", "DEV", "LIVE"],
            EntryId::new("ETL-MUL", 300),
            "v2.9",
        ),
        title: "Nightly load".into(),
        context: context(&[("team", "data"), ("env", "prod")]),
        config: "job:\n  name: load\n".into(),
        hash: ContentHash(pattern(0x20)),
        previous: None,
        purge: None,
        author: None,
        fingerprint: Fingerprint(pattern(0x40)),
        revision: 3,
        created_at: Timestamp(1_700_000_000_000),
        updated_at: Timestamp(1_700_000_123_456),
        provenance: Some(Provenance {
            derivation: 2,
            fields: Fields {
                scope: Source::Given,
                kind: Source::Model,
                variant: Source::Keyword,
                status: Source::Default,
            },
            version: Source::Given,
        }),
        lifecycle: Lifecycle::Active,
    }
}

/// Multi-byte UTF-8 in the title, a context value and the config.
fn unicode() -> Entry {
    Entry {
        header: header(
            ["SEC", "RULES", "LIVE", "DEPRECATED"],
            EntryId::new("SEC-RUL", 7),
            "v1",
        ),
        title: "Zugriff prüfen ✓ 🦀".into(),
        context: context(&[("owner", "Zoë")]),
        config: "title: \"ünï\"\n".into(),
        hash: ContentHash([0xa5; 32]),
        previous: None,
        purge: None,
        author: None,
        fingerprint: Fingerprint([0x5a; 16]),
        revision: 2,
        created_at: Timestamp(1_600_000_000_000),
        updated_at: Timestamp(1_700_000_000_000),
        provenance: Some(Provenance {
            derivation: 1,
            fields: Fields::from_fn(|_| Source::Unrecorded),
            version: Source::Unrecorded,
        }),
        lifecycle: Lifecycle::Active,
    }
}

/// The largest number and revision, the earliest and latest times.
fn extremes() -> Entry {
    Entry {
        header: header(
            ["SEC", "RULES", "LIVE", "LIVE"],
            EntryId::new("SEC-RUL", u64::MAX),
            "v1",
        ),
        title: "x".into(),
        context: Context::default(),
        config: String::new(),
        hash: ContentHash([0xff; 32]),
        previous: None,
        purge: None,
        author: None,
        fingerprint: Fingerprint([0; 16]),
        revision: u32::MAX,
        created_at: Timestamp(i64::MIN),
        updated_at: Timestamp(i64::MAX),
        provenance: None,
        lifecycle: Lifecycle::Active,
    }
}

/// Hex as the golden tests write it, one part per field, spaces ignored.
fn unhex(parts: &[&str]) -> Vec<u8> {
    let digits: Vec<u8> = parts
        .concat()
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(pair, 16).expect("two hex digits")
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Pins stored bytes: `entry` encodes to exactly `parts` and they decode to `entry`.
///
/// A failure means the bytes this build stores changed. Stored entries outlive builds, so
/// that is never a fix of the hex: a new format gets a new [`FORMAT_VERSION`], these cases
/// become decode-only pins of the old one (as format 1's below), and the new bytes are
/// pinned beside them.
fn check(entry: &Entry, parts: &[&str]) {
    let want = unhex(parts);
    assert_eq!(
        hex(&encoded(entry)),
        hex(&want),
        "{}: encoding changed",
        entry.title
    );
    assert_eq!(decode(&want).as_ref(), Ok(entry), "{}", entry.title);
}

#[test]
fn golden_bytes_without_provenance() {
    check(
        &minimal(),
        &[
            "02",                                                               // format 2
            "03 534543",                                                        // scope "SEC"
            "05 52554c4553",                                                    // type "RULES"
            "04 4c495645",                                                      // variant "LIVE"
            "04 4c495645",                                                      // status "LIVE"
            "07 5345432d52554c",     // id prefix "SEC-RUL"
            "01",                    // id number 1
            "02 7631",               // version "v1"
            "09 426c6f636b20535348", // title "Block SSH"
            "00",                    // context: 0 pairs
            "00",                    // config (empty)
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", // hash
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", // fingerprint
            "01",                    // revision 1
            "80a0abfef962",          // created at 1700000000000, zigzag
            "80a0abfef962",          // updated at 1700000000000, zigzag
            "00",                    // provenance: not recorded
        ],
    );
}

#[test]
fn golden_bytes_of_retired_and_merged_entries() {
    let common = [
        "03 534543",                                                        // scope "SEC"
        "05 52554c4553",                                                    // type "RULES"
        "04 4c495645",                                                      // variant "LIVE"
        "04 4c495645",                                                      // status "LIVE"
        "07 5345432d52554c",                                                // id prefix "SEC-RUL"
        "01",                                                               // id number 1
        "02 7631",                                                          // version "v1"
        "09 426c6f636b20535348",                                            // title "Block SSH"
        "00",                                                               // context: 0 pairs
        "00",                                                               // config (empty)
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", // hash
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",                                 // fingerprint
        "01",                                                               // revision 1
        "80a0abfef962", // created at 1700000000000, zigzag
        "80a0abfef962", // updated at 1700000000000, zigzag
        "00",           // provenance: not recorded
    ];
    let retired = Entry {
        lifecycle: Lifecycle::Retired,
        ..minimal()
    };
    check(
        &retired,
        &[&["03"][..], &common, &["01"]].concat(), // format 3 … lifecycle: retired
    );
    let merged = Entry {
        lifecycle: Lifecycle::Merged(EntryId::new("SEC-RUL", 300)),
        ..minimal()
    };
    check(
        &merged,
        // format 3 … lifecycle: merged, into "SEC-RUL" number 300
        &[&["03"][..], &common, &["02", "07 5345432d52554c", "ac02"]].concat(),
    );
}

#[test]
fn golden_bytes_with_provenance_and_context() {
    check(
        &recorded(),
        &[
            "02",                                                               // format 2
            "03 45544c",                                                        // scope "ETL"
            "09 4d554c54492d45544c",                                            // type "MULTI-ETL"
            "03 444556",                                                        // variant "DEV"
            "04 4c495645",                                                      // status "LIVE"
            "07 45544c2d4d554c",                       // id prefix "ETL-MUL"
            "ac02",                                    // id number 300
            "04 76322e39",                             // version "v2.9"
            "0c 4e696768746c79206c6f6164",             // title "Nightly load"
            "02",                                      // context: 2 pairs
            "03 656e76",                               // key "env"
            "04 70726f64",                             // value "prod"
            "04 7465616d",                             // key "team"
            "04 64617461",                             // value "data"
            "12 6a6f623a0a20206e616d653a206c6f61640a", // config "job:\n  name: load\n"
            "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f", // hash
            "404142434445464748494a4b4c4d4e4f",        // fingerprint
            "03",                                      // revision 3
            "80a0abfef962",                            // created at 1700000000000, zigzag
            "80a9bafef962",                            // updated at 1700000123456, zigzag
            "82d101",                                  // provenance 0x6882
        ],
    );
}

#[test]
fn golden_bytes_of_unicode() {
    check(
        &unicode(),
        &[
            "02",                                                               // format 2
            "03 534543",                                                        // scope "SEC"
            "05 52554c4553",                                                    // type "RULES"
            "04 4c495645",                                                      // variant "LIVE"
            "0a 44455052454341544544", // status "DEPRECATED"
            "07 5345432d52554c",       // id prefix "SEC-RUL"
            "07",                      // id number 7
            "02 7631",                 // version "v1"
            "18 5a756772696666207072c3bc66656e20e29c9320f09fa680", // title "Zugriff prüfen ✓ 🦀"
            "01",                      // context: 1 pairs
            "05 6f776e6572",           // key "owner"
            "04 5a6fc3ab",             // value "Zoë"
            "0f 7469746c653a2022c3bc6ec3af220a", // config "title: \"ünï\"\n"
            "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5", // hash
            "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", // fingerprint
            "02",                      // revision 2
            "8080f4f6905d",            // created at 1600000000000, zigzag
            "80a0abfef962",            // updated at 1700000000000, zigzag
            "c1a412",                  // provenance 0x49241
        ],
    );
}

#[test]
fn golden_bytes_of_extremes() {
    check(
        &extremes(),
        &[
            "02",                                                               // format 2
            "03 534543",                                                        // scope "SEC"
            "05 52554c4553",                                                    // type "RULES"
            "04 4c495645",                                                      // variant "LIVE"
            "04 4c495645",                                                      // status "LIVE"
            "07 5345432d52554c",    // id prefix "SEC-RUL"
            "ffffffffffffffffff01", // id number 18446744073709551615
            "02 7631",              // version "v1"
            "01 78",                // title "x"
            "00",                   // context: 0 pairs
            "00",                   // config (empty)
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // hash
            "00000000000000000000000000000000", // fingerprint
            "ffffffff0f",           // revision 4294967295
            "ffffffffffffffffff01", // created at -9223372036854775808, zigzag
            "feffffffffffffffff01", // updated at 9223372036854775807, zigzag
            "00",                   // provenance: not recorded
        ],
    );
}

/// Format 1 (before provenance was recorded) is read, never written: pinned bytes decode to
/// the entry without provenance.
#[test]
fn golden_bytes_of_format_1_still_decode() {
    let bytes = unhex(&[
        "01",                                                               // format 1
        "03 45544c",                                                        // scope "ETL"
        "09 4d554c54492d45544c",                                            // type "MULTI-ETL"
        "03 444556",                                                        // variant "DEV"
        "04 4c495645",                                                      // status "LIVE"
        "07 45544c2d4d554c",                                                // id prefix "ETL-MUL"
        "ac02",                                                             // id number 300
        "04 76322e39",                                                      // version "v2.9"
        "0c 4e696768746c79206c6f6164",                                      // title "Nightly load"
        "02",                                                               // context: 2 pairs
        "03 656e76",                                                        // key "env"
        "04 70726f64",                                                      // value "prod"
        "04 7465616d",                                                      // key "team"
        "04 64617461",                                                      // value "data"
        "12 6a6f623a0a20206e616d653a206c6f61640a", // config "job:\n  name: load\n"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f", // hash
        "404142434445464748494a4b4c4d4e4f",        // fingerprint
        "03",                                      // revision 3
        "80a0abfef962",                            // created at 1700000000000, zigzag
        "80a9bafef962",                            // updated at 1700000123456, zigzag
    ]);
    let want = Entry {
        provenance: None,
        ..recorded()
    };
    assert_eq!(decode(&bytes), Ok(want));
}
