//! Node URLs and `redis` error texts as messages may show them: without credentials.
//!
//! A node URL may carry a password (`redis://user:secret@host:port`). Every message, `Debug`
//! output and config error of this crate shows a URL only through [`shown`], which replaces the
//! user info's password with `***` (`redis://user:***@host:port`, `redis://***@host:port`), and
//! puts the text of a `redis` error in a message only through [`NodeUrls::scrub`], which replaces
//! each node URL by its shown form and each password, as written and percent-decoded, by `***`.
//! The `redis` crate does not print URLs or passwords in its errors today; scrubbing makes that
//! a fact of this crate rather than an assumption about another.
//!
//! The user info is taken as everything between `://` and the *last* `@` of the URL, so a
//! password holding an unencoded `@`, `/` or `#` (which makes the URL invalid) is hidden too;
//! a URL whose query or fragment holds an `@` is hidden a little more than needed. Likewise a
//! password that is also ordinary text (`redis`, `127`) is hidden wherever that text appears in
//! a `redis` error: a message may hide too much, never too little.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Unexpected, Visitor};

/// What replaces a password.
const HIDDEN: &str = "***";

/// The parts of a URL around its user info: everything before it, the user info, and
/// everything from the `@` that ends it. `None` when the URL has no `@`.
fn split(url: &str) -> Option<(&str, &str, &str)> {
    let start = url.find("://").map_or(0, |at| at + 3);
    let at = start + url[start..].rfind('@')?;
    Some((&url[..start], &url[start..at], &url[at..]))
}

/// The user name a user info gives along with a password (`user` of `user:secret`), if any.
/// User info without a `:` is all hidden: it may be a password written in the wrong place.
fn user_of(info: &str) -> Option<&str> {
    info.split_once(':')
        .map(|(user, _)| user)
        .filter(|user| !user.is_empty())
}

/// The secret part of a user info: after the first `:`, or all of it without one.
fn password_of(info: &str) -> &str {
    info.split_once(':').map_or(info, |(_, password)| password)
}

/// A node URL as messages show it: `redis://user:***@host:port`, `redis://***@host:port`, or
/// the URL as written when it carries no credentials.
pub(crate) fn shown(url: &str) -> String {
    match split(url) {
        None => url.to_owned(),
        Some((head, info, tail)) => match user_of(info) {
            Some(user) => format!("{head}{user}:{HIDDEN}{tail}"),
            None => format!("{head}{HIDDEN}{tail}"),
        },
    }
}

/// `%XX` escapes decoded, as the `redis` crate decodes a URL's password; an escape that is not
/// one, or bytes that are not UTF-8, are kept as they are (lossily), which only adds a form to
/// hide.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[at], bytes.get(at + 1), bytes.get(at + 2)) {
            (b'%', Some(&hi), Some(&lo)) if hex(hi).is_some() && hex(lo).is_some() => {
                let value = hex(hi).unwrap_or(0) * 16 + hex(lo).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                at += 3;
            }
            (b, ..) => {
                out.push(b);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces every occurrence of `word` in `text`, ignoring ASCII case (a message may have been
/// lowercased), by `with`.
fn replace_ignoring_case(text: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return text.to_owned();
    }
    // ASCII lowercasing keeps every byte where it was, so offsets in `hay` are offsets in
    // `text`, and a match of a whole UTF-8 needle starts and ends on character boundaries.
    let hay = text.to_ascii_lowercase();
    let needle = word.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in hay.match_indices(&needle) {
        out.push_str(&text[last..at]);
        out.push_str(with);
        last = at + needle.len();
    }
    out.push_str(&text[last..]);
    out
}

/// The configured node URLs, and what must never be shown of them.
pub(crate) struct NodeUrls {
    /// Each URL as written and as shown, longest first.
    urls: Vec<(String, String)>,
    /// The shown forms, in the configured order.
    shown: Vec<String>,
    /// Each node's `host:port`, as the `redis` crate names nodes in its errors, with the shown
    /// URL it belongs to.
    addresses: Vec<(String, String)>,
    /// The user name of the first node: the `redis` crate authenticates to every node as the
    /// first one says (it refuses nodes that differ).
    user: Option<String>,
    /// Passwords (or whole user infos without a `:`) as written and percent-decoded, longest
    /// first, so that a secret holding a shorter one is hidden whole.
    secrets: Vec<String>,
}

impl fmt::Debug for NodeUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.shown).finish()
    }
}

impl NodeUrls {
    pub(crate) fn new(nodes: &[String]) -> NodeUrls {
        let mut urls = Vec::new();
        let mut secrets = Vec::new();
        let mut addresses = Vec::new();
        for node in nodes {
            let shown = shown(node);
            if let Some((_, info, _)) = split(node) {
                let password = password_of(info);
                secrets.extend([password.to_owned(), percent_decoded(password)]);
            }
            if let Some(address) = address(node) {
                addresses.push((address, shown.clone()));
            }
            urls.push((node.clone(), shown));
        }
        let shown = urls.iter().map(|(_, shown)| shown.clone()).collect();
        let user = nodes
            .first()
            .and_then(|node| split(node))
            .and_then(|(_, info, _)| user_of(info))
            .map(str::to_owned);
        urls.sort_by_key(|(url, _)| std::cmp::Reverse(url.len()));
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        NodeUrls {
            urls,
            shown,
            addresses,
            user,
            secrets,
        }
    }

    /// The shown URLs, comma-separated.
    pub(crate) fn joined(&self) -> String {
        self.shown.join(", ")
    }

    /// The shown URL of the node whose `host:port` `text` names last before byte `at` (the
    /// node an error joined from several nodes' errors blames at `at`), else of the first node.
    pub(crate) fn named_before(&self, text: &str, at: usize) -> &str {
        let before = text.get(..at).unwrap_or(text);
        self.addresses
            .iter()
            .filter_map(|(address, shown)| {
                // On a tie the longer address wins: `h:700` is found inside `h:7000`.
                let found = before.rfind(address.as_str())?;
                Some(((found, address.len()), shown))
            })
            .max_by_key(|(key, _)| *key)
            .map(|(_, shown)| shown.as_str())
            .or_else(|| self.shown.first().map(String::as_str))
            .unwrap_or("the configured nodes")
    }

    /// The user name the first node URL gives with its password, as written.
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// `text` (an error of the `redis` crate) with every node URL shown and every password
    /// hidden.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (url, shown) in &self.urls {
            if url != shown {
                text = replace_ignoring_case(&text, url, shown);
            }
        }
        for secret in &self.secrets {
            text = replace_ignoring_case(&text, secret, HIDDEN);
        }
        text
    }
}

/// A node URL's `host:port` (port 6379 when it names none), as the `redis` crate's cluster
/// errors name the node.
fn address(url: &str) -> Option<String> {
    let rest = match split(url) {
        Some((_, _, tail)) => &tail[1..],
        None => url.split_once("://")?.1,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rsplit_once(':') {
        Some((_, port)) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    };
    // An IPv6 literal keeps its colons inside brackets: `[::1]` has no port, `[::1]:7000` has.
    let has_port = has_port && !authority.ends_with(']');
    Some(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:6379")
    })
}

/// Deserializes `nodes` as a list of strings, like the derived code, but names a single string
/// given instead by its shown form: serde's own message would quote it whole, password and all.
pub(crate) fn deserialize_nodes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Nodes;

    impl<'de> Visitor<'de> for Nodes {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of node urls, e.g. [\"redis://127.0.0.1:7000\"]")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut nodes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(node) = seq.next_element::<String>()? {
                nodes.push(node);
            }
            Ok(nodes)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Err(E::invalid_type(Unexpected::Str(&shown(v)), &self))
        }
    }

    // `deserialize_any`: a format asked for a sequence reports a string itself, quoting it.
    d.deserialize_any(Nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_passwords() {
        for (url, want) in [
            ("redis://127.0.0.1:7000", "redis://127.0.0.1:7000"),
            (
                "redis://:secret@127.0.0.1:7000",
                "redis://***@127.0.0.1:7000",
            ),
            ("redis://user:secret@h:7000", "redis://user:***@h:7000"),
            (
                "rediss://user:secret@h:7000/0",
                "rediss://user:***@h:7000/0",
            ),
            ("redis://user:p%40ss%2F@h:1", "redis://user:***@h:1"),
            (
                "redis://user:p@ss/w#rd@h:1/?protocol=3",
                "redis://user:***@h:1/?protocol=3",
            ),
            ("redis://user:@h:1", "redis://user:***@h:1"),
            ("redis://secret@h:1", "redis://***@h:1"),
            ("redis://@h:1", "redis://***@h:1"),
            ("redis://:a:b:c@h", "redis://***@h"),
            ("user:secret@127.0.0.1:7000", "user:***@127.0.0.1:7000"),
            ("127.0.0.1:7000", "127.0.0.1:7000"),
            ("", ""),
            ("redis://Ünï:çødé@h:1", "redis://Ünï:***@h:1"),
        ] {
            assert_eq!(shown(url), want, "{url}");
        }
    }

    #[test]
    fn percent_escapes_are_decoded() {
        for (text, want) in [
            ("p%40ss%2Fw%23rd", "p@ss/w#rd"),
            ("%C3%A9t%C3%A9", "été"),
            ("100%", "100%"),
            ("%zz%4", "%zz%4"),
            ("%25", "%"),
            ("", ""),
        ] {
            assert_eq!(percent_decoded(text), want, "{text}");
        }
    }

    #[test]
    fn addresses_are_host_and_port() {
        for (url, want) in [
            ("redis://127.0.0.1:7000", Some("127.0.0.1:7000")),
            ("redis://u:p@127.0.0.1:7000/0", Some("127.0.0.1:7000")),
            ("redis://h", Some("h:6379")),
            ("redis://[::1]:7000", Some("[::1]:7000")),
            ("redis://[::1]", Some("[::1]:6379")),
            ("redis://", None),
            ("127.0.0.1:7000", None),
        ] {
            assert_eq!(address(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn scrubbing_hides_urls_and_passwords_in_any_form() {
        let nodes = NodeUrls::new(&[
            "redis://admin:S3cr%40t@127.0.0.1:7000".to_owned(),
            "redis://admin:S3cr%40t@127.0.0.1:7001".to_owned(),
            "redis://:only-password@127.0.0.1:7002".to_owned(),
        ]);
        for (text, want) in [
            (
                "cannot reach redis://admin:S3cr%40t@127.0.0.1:7001 now",
                "cannot reach redis://admin:***@127.0.0.1:7001 now",
            ),
            ("auth S3cr@t refused", "auth *** refused"),
            ("auth s3cr@T refused", "auth *** refused"),
            ("raw S3cr%40t", "raw ***"),
            ("pair admin:S3cr@t", "pair admin:***"),
            (
                "at redis://:only-password@127.0.0.1:7002",
                "at redis://***@127.0.0.1:7002",
            ),
            ("ONLY-PASSWORD", "***"),
            ("nothing secret", "nothing secret"),
        ] {
            assert_eq!(nodes.scrub(text), want, "{text}");
        }
        assert_eq!(
            format!("{nodes:?}"),
            "[\"redis://admin:***@127.0.0.1:7000\", \"redis://admin:***@127.0.0.1:7001\", \
             \"redis://***@127.0.0.1:7002\"]"
        );
        assert_eq!(
            nodes.joined(),
            "redis://admin:***@127.0.0.1:7000, redis://admin:***@127.0.0.1:7001, \
             redis://***@127.0.0.1:7002"
        );
    }

    #[test]
    fn the_node_an_error_names_is_found() {
        let nodes = NodeUrls::new(&[
            "redis://:pw@127.0.0.1:7000".to_owned(),
            "redis://:pw@127.0.0.1:7001".to_owned(),
        ]);
        let text = "failed (127.0.0.1:7001: refused; 127.0.0.1:7000: wrong; 127.0.0.1:7001: x)";
        let at = text.find("wrong").expect("in text");
        assert_eq!(nodes.named_before(text, at), "redis://***@127.0.0.1:7000");
        let at = text.find("refused").expect("in text");
        assert_eq!(nodes.named_before(text, at), "redis://***@127.0.0.1:7001");
        assert_eq!(nodes.named_before(text, 0), "redis://***@127.0.0.1:7000");
        assert_eq!(nodes.named_before(text, 999), "redis://***@127.0.0.1:7001");
        assert_eq!(
            nodes.named_before("no address", 3),
            "redis://***@127.0.0.1:7000"
        );
        assert_eq!(nodes.user(), None);
        let ports = NodeUrls::new(&[
            "redis://u:p@h:700".to_owned(),
            "redis://u:p@h:7000".to_owned(),
        ]);
        assert_eq!(
            ports.named_before("h:7000: wrong", 8),
            "redis://u:***@h:7000"
        );
        assert_eq!(ports.user(), Some("u"));
        assert_eq!(
            NodeUrls::new(&[]).named_before("x", 1),
            "the configured nodes"
        );
    }

    #[test]
    fn a_string_for_nodes_is_refused_without_quoting_it() {
        #[derive(Debug, serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "deserialize_nodes")]
            #[allow(dead_code)]
            nodes: Vec<String>,
        }
        let parse = |v: serde_json::Value| serde_json::from_value::<T>(v);
        let err = parse(serde_json::json!({"nodes": "redis://:hunter2@h:1"})).expect_err("string");
        let err = err.to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("redis://***@h:1"), "{err}");
        assert!(err.contains("expected a list of node urls"), "{err}");
        let err =
            parse(serde_json::json!({"nodes": ["redis://:hunter2@h:1", 5]})).expect_err("number");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let ok = parse(serde_json::json!({"nodes": ["redis://:hunter2@h:1"]})).expect("list");
        assert_eq!(ok.nodes, ["redis://:hunter2@h:1"]);
    }
}
