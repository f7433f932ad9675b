//! Render programs: a compiled template tree flattened, once, into the bytes every config of the
//! tree shares and the few steps that depend on the draft.
//!
//! Most of a config is the same for every draft: keys, indentation, numbers, fixed strings. A
//! program holds that text already written, in the layout `registry_yaml::write` gives it, so
//! rendering a draft copies runs of text and writes only the placeholders' values, the optional
//! entries and the context. Walking the tree through `serde` did the same work again for every
//! draft: a call per key and value, a style check per fixed string, an indentation loop per line.
//!
//! The serializer path (`crate::render::Bound` written by `registry_yaml::write::to_string`)
//! remains the reference: the tests check that a program writes the same bytes, and a tree a
//! program cannot express (a mapping key too long for an implicit key, which the writer rejects)
//! is rendered through it.

use std::ops::Range;

use super::Parts;
use registry_yaml::write::{self, Collection, MAX_KEY_BYTES, Slot};

use crate::template::{Node, Part};

/// A compiled tree as text and steps; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// Every literal run of the output, one after another.
    text: Box<str>,
    ops: Box<[Op]>,
}

/// A run of [`Program::text`], as byte offsets.
type Span = Range<usize>;

/// One step of a program.
#[derive(Debug, Clone)]
enum Op {
    /// Copies literal text.
    Text(Span),
    /// Writes one value of the draft as a scalar (never [`Part::Text`], which is literal).
    Value(Part),
    /// Writes the concatenated parts as one scalar.
    Join(Box<[Part]>),
    /// Writes a context value, or an empty string without it, as a scalar.
    Optional(Box<str>),
    /// Writes the whole context as a mapping: `first` or `later` before each entry, `empty` for
    /// an empty context.
    Context {
        first: Span,
        later: Span,
        empty: Span,
    },
    /// Skips the next `len` steps (one mapping entry) when the entry is left out.
    SkipIf { omit: Omit, len: usize },
    /// Opens a mapping whose every entry may be left out: whether one was written is tracked.
    Open,
    /// Starts an entry of the innermost open mapping: `first` if none was written yet, else
    /// `later`.
    Entry { first: Span, later: Span },
    /// Closes the innermost open mapping, writing `empty` if none of its entries was written.
    Close { empty: Span },
}

/// When a mapping entry is left out.
#[derive(Debug, Clone)]
enum Omit {
    /// `{{context.KEY?}}`: when the context lacks the key.
    Absent(Box<str>),
    /// `{{context}}`: when the context is empty.
    EmptyContext,
}

impl Omit {
    fn of(node: &Node) -> Option<Omit> {
        match node {
            Node::Optional(key) => Some(Omit::Absent(key.clone())),
            Node::WholeContext => Some(Omit::EmptyContext),
            _ => None,
        }
    }

    fn holds(&self, draft: &impl Parts) -> bool {
        match self {
            Omit::Absent(key) => draft.get(key).is_none(),
            Omit::EmptyContext => draft.context_is_empty(),
        }
    }
}

/// Buffers a batch of renders reuses, so that a draft costs no allocation besides its config.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// The config being written; copied out at its exact size when done.
    pub(crate) out: String,
    /// A string joined from several parts, before it is written as a scalar.
    join: String,
    formatted: Formatted,
    /// For each open mapping whose entries may all be left out, whether one was written.
    open: Vec<bool>,
}

/// Buffers longer than this are not kept for later batches: one huge draft should not pin its
/// memory for the generator's life.
const MAX_KEPT_BYTES: usize = 64 * 1024;

impl Scratch {
    /// Drops buffers an unusually large draft grew, before the scratch is kept for later.
    pub(crate) fn trim(&mut self) {
        for buffer in [&mut self.out, &mut self.join] {
            if buffer.capacity() > MAX_KEPT_BYTES {
                *buffer = String::new();
            }
        }
        self.formatted
            .spare
            .retain(|b| b.capacity() <= MAX_KEPT_BYTES);
    }
}

/// The header values a draft formats, each made on first use and kept until the next draft.
#[derive(Debug, Default)]
struct Formatted {
    id: Option<String>,
    header: Option<String>,
    grepable: Option<String>,
    /// Buffers of the values of earlier drafts, reused.
    spare: Vec<String>,
}

impl Formatted {
    /// Forgets the values of the previous draft, keeping their buffers.
    fn reset(&mut self) {
        for slot in [&mut self.id, &mut self.header, &mut self.grepable] {
            if let Some(buffer) = slot.take() {
                self.spare.push(buffer);
            }
        }
    }

    fn make(spare: &mut Vec<String>, write: impl FnOnce(&mut String)) -> String {
        let mut buffer = spare.pop().unwrap_or_default();
        buffer.clear();
        write(&mut buffer);
        buffer
    }

    /// The text of a part for `draft`.
    fn get<'a, P: Parts>(&'a mut self, draft: &'a P, part: &'a Part) -> &'a str {
        let spare = &mut self.spare;
        match part {
            Part::Text(text) => text,
            Part::Title => draft.title(),
            Part::Id => self.id.get_or_insert_with(|| {
                Self::make(spare, |b| push_id(b, draft.id_prefix(), draft.id_number()))
            }),
            Part::Header => self
                .header
                .get_or_insert_with(|| Self::make(spare, |b| push_readable(b, draft))),
            Part::Grepable => self
                .grepable
                .get_or_insert_with(|| Self::make(spare, |b| push_grepable(b, draft))),
            Part::Scope => draft.scope(),
            Part::Type => draft.kind(),
            Part::Variant => draft.variant(),
            Part::Status => draft.status(),
            Part::Version => draft.version(),
            Part::Context { key, default } => draft.get(key).unwrap_or(default),
        }
    }
}

/// Appends an id as `EntryId`'s `Display` writes it: the prefix, `-`, the number with at least
/// three digits.
pub(crate) fn push_id(out: &mut String, prefix: &str, number: u64) {
    out.push_str(prefix);
    out.push('-');
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    let mut n = number;
    loop {
        start -= 1;
        // A remainder of 10 is one digit.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // The buffer is zeros already: widening to three digits pads them.
    start = start.min(digits.len() - 3);
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// Appends the readable header, as `Header::readable` writes it.
pub(crate) fn push_readable(out: &mut String, draft: &impl Parts) {
    for (i, text) in [draft.scope(), draft.kind(), draft.variant()]
        .into_iter()
        .enumerate()
    {
        out.push_str(if i == 0 { "[" } else { "][" });
        out.push_str(text);
    }
    out.push_str("][");
    push_id(out, draft.id_prefix(), draft.id_number());
    out.push_str("][");
    out.push_str(draft.version());
    out.push_str("][");
    out.push_str(draft.status());
    out.push(']');
}

/// Appends the grepable header, as `Header::grepable` writes it.
pub(crate) fn push_grepable(out: &mut String, draft: &impl Parts) {
    let start = out.len();
    out.push('[');
    for text in [draft.scope(), draft.kind(), draft.variant()] {
        out.push_str(text);
        out.push('-');
    }
    push_id(out, draft.id_prefix(), draft.id_number());
    out.push('-');
    out.push_str(draft.version());
    out.push('-');
    out.push_str(draft.status());
    out.push(']');
    let written = &mut out[start..];
    if written.is_ascii() {
        written.make_ascii_lowercase();
    } else {
        // Full Unicode lowercasing depends on the whole text (a final sigma), as `to_lowercase`
        // of the formatted header does.
        let lower = written.to_lowercase();
        out.truncate(start);
        out.push_str(&lower);
    }
}

impl Program {
    /// Compiles a tree; `None` when the tree holds a mapping key too long for YAML's implicit
    /// form, which only the serializer path reports.
    pub(crate) fn compile(node: &Node) -> Option<Program> {
        let mut builder = Builder::default();
        builder.node(node, Slot::Root)?;
        Some(Program {
            text: builder.text.into_boxed_str(),
            ops: builder.ops.into_boxed_slice(),
        })
    }

    /// Renders `draft` into `scratch.out`, replacing what it held.
    pub(crate) fn run<P: Parts>(&self, draft: &P, scratch: &mut Scratch) {
        let Scratch {
            out,
            join,
            formatted,
            open,
        } = scratch;
        out.clear();
        open.clear();
        formatted.reset();
        let text = |span: &Span| &self.text[span.clone()];
        let mut i = 0;
        while let Some(op) = self.ops.get(i) {
            match op {
                Op::Text(span) => out.push_str(text(span)),
                Op::Value(part) => write::write_scalar(out, formatted.get(draft, part)),
                Op::Join(parts) => {
                    join.clear();
                    for part in parts {
                        join.push_str(formatted.get(draft, part));
                    }
                    write::write_scalar(out, join);
                }
                Op::Optional(key) => write::write_scalar(out, draft.get(key).unwrap_or_default()),
                Op::Context {
                    first,
                    later,
                    empty,
                } => {
                    if draft.context_is_empty() {
                        out.push_str(text(empty));
                    }
                    for (n, (key, value)) in draft.pairs().enumerate() {
                        out.push_str(text(if n == 0 { first } else { later }));
                        // Context keys are at most 64 characters: always an implicit key.
                        write::write_scalar(out, key);
                        out.push_str(": ");
                        write::write_scalar(out, value);
                        out.push('\n');
                    }
                }
                Op::SkipIf { omit, len } => {
                    if omit.holds(draft) {
                        i += *len;
                    }
                }
                Op::Open => open.push(false),
                Op::Entry { first, later } => {
                    // `Open` comes before every `Entry` of its mapping, so there is a last.
                    let written = open.last().copied().unwrap_or(true);
                    out.push_str(text(if written { later } else { first }));
                    if let Some(w) = open.last_mut() {
                        *w = true;
                    }
                }
                Op::Close { empty } => {
                    if !open.pop().unwrap_or(true) {
                        out.push_str(text(empty));
                    }
                }
            }
            i += 1;
        }
    }
}

/// Builds a program, merging adjacent literal text into one step.
#[derive(Default)]
struct Builder {
    text: String,
    ops: Vec<Op>,
    /// Steps before this index are closed to merging: a skip counts them.
    sealed: usize,
    /// Scratch for literal text being formed.
    buf: String,
}

impl Builder {
    /// Appends literal text, extending the last step when it is literal text too.
    fn lit(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let start = self.text.len();
        self.text.push_str(s);
        let end = self.text.len();
        if self.ops.len() > self.sealed
            && let Some(Op::Text(span)) = self.ops.last_mut()
            && span.end == start
        {
            span.end = end;
            return;
        }
        self.ops.push(Op::Text(start..end));
    }

    /// Records text written by `write` as a span of the program text, not as a step.
    fn span(&mut self, write: impl FnOnce(&mut String)) -> Span {
        let start = self.text.len();
        write(&mut self.text);
        start..self.text.len()
    }

    /// Writes literal text formed by `write` into the scratch buffer.
    fn lit_with(&mut self, write: impl FnOnce(&mut String)) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        write(&mut buf);
        self.lit(&buf);
        self.buf = buf;
    }

    fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// A value written by the writer, known when compiling.
    fn fixed<T: serde::Serialize + ?Sized>(&mut self, slot: Slot, value: &T) -> Option<()> {
        let mut result = Some(());
        self.lit_with(|b| result = write::write_in(b, slot, value).ok());
        result
    }

    fn node(&mut self, node: &Node, slot: Slot) -> Option<()> {
        match node {
            Node::Null => self.fixed(slot, &()),
            Node::Bool(b) => self.fixed(slot, b),
            Node::Int(n) => self.fixed(slot, n),
            Node::UInt(n) => self.fixed(slot, n),
            Node::Float(x) => self.fixed(slot, x),
            Node::Text(text) => self.fixed(slot, &**text),
            Node::Fill(parts) => {
                if parts.iter().all(|p| matches!(p, Part::Text(_))) {
                    let mut joined = String::new();
                    for part in parts {
                        if let Part::Text(text) = part {
                            joined.push_str(text);
                        }
                    }
                    return self.fixed(slot, joined.as_str());
                }
                self.lit(slot.scalar_prefix());
                self.push(match &parts[..] {
                    [one] => Op::Value(one.clone()),
                    parts => Op::Join(parts.into()),
                });
                self.lit("\n");
                Some(())
            }
            Node::Optional(key) => {
                self.lit(slot.scalar_prefix());
                self.push(Op::Optional(key.clone()));
                self.lit("\n");
                Some(())
            }
            Node::WholeContext => {
                let indent = slot.mapping_indent();
                let first = self.span(|b| write::begin_entry(b, slot, indent, true));
                let later = self.span(|b| write::begin_entry(b, slot, indent, false));
                let empty = self.span(|b| write::write_empty(b, slot, Collection::Mapping));
                self.push(Op::Context {
                    first,
                    later,
                    empty,
                });
                Some(())
            }
            Node::Seq(items) => {
                let indent = slot.sequence_indent();
                if items.is_empty() {
                    self.lit_with(|b| write::write_empty(b, slot, Collection::Sequence));
                }
                for (i, item) in items.iter().enumerate() {
                    self.lit_with(|b| {
                        write::begin_entry(b, slot, indent, i == 0);
                        b.push('-');
                    });
                    self.node(item, Slot::Item { indent })?;
                }
                Some(())
            }
            Node::Map(entries) => self.map(entries, slot),
        }
    }

    /// A mapping: entries that may be left out are guarded by a skip, and while no entry is sure
    /// to have been written, each entry's start is decided when rendering.
    fn map(&mut self, entries: &[(Box<str>, Node)], slot: Slot) -> Option<()> {
        let indent = slot.mapping_indent();
        if entries.is_empty() {
            self.lit_with(|b| write::write_empty(b, slot, Collection::Mapping));
            return Some(());
        }
        // Until an entry that is always written, whether an entry comes first is not known.
        let tracked = Omit::of(&entries[0].1).is_some();
        if tracked {
            self.push(Op::Open);
        }
        let mut written = false;
        for (i, (key, value)) in entries.iter().enumerate() {
            if write::key_bytes(key) > MAX_KEY_BYTES {
                return None;
            }
            let omit = Omit::of(value);
            let guard = omit.map(|omit| {
                self.push(Op::SkipIf { omit, len: 0 });
                self.sealed = self.ops.len();
                self.ops.len() - 1
            });
            if written || !tracked {
                self.lit_with(|b| write::begin_entry(b, slot, indent, i == 0));
            } else {
                let first = self.span(|b| write::begin_entry(b, slot, indent, true));
                let later = self.span(|b| write::begin_entry(b, slot, indent, false));
                self.push(Op::Entry { first, later });
            }
            self.lit_with(|b| {
                write::write_scalar(b, key);
                b.push(':');
            });
            self.node(value, Slot::Value { indent })?;
            match guard {
                Some(at) => {
                    let len = self.ops.len() - at - 1;
                    if let Some(Op::SkipIf { len: l, .. }) = self.ops.get_mut(at) {
                        *l = len;
                    }
                    self.sealed = self.ops.len();
                }
                None => written = true,
            }
        }
        if tracked {
            let empty = self.span(|b| write::write_empty(b, slot, Collection::Mapping));
            self.push(Op::Close { empty });
            self.sealed = self.ops.len();
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use registry_core::{Context, Draft, EntryId, Fields, Header};

    use super::super::{Bound, Values};
    use super::*;

    fn draft(title: &str, scope: &str, number: u64, pairs: &[(&str, &str)]) -> Draft {
        Draft {
            header: Header {
                fields: Fields {
                    scope: scope.into(),
                    kind: "RULES".into(),
                    variant: "LIVE".into(),
                    status: "REQUIRED".into(),
                },
                id: EntryId::new(EntryId::prefix_for(scope, "RULES"), number),
                version: "v2.9".into(),
            },
            title: title.into(),
            context: Context::new(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
            .expect("valid context"),
        }
    }

    /// What the serializer path writes for a tree and a draft: the reference.
    fn reference(node: &Node, d: &Draft) -> String {
        let values = Values::new(d);
        write::to_string(
            &Bound {
                node,
                values: &values,
            },
            0,
        )
        .expect("the reference writes it")
    }

    fn text(s: &str) -> Node {
        Node::Text(s.into())
    }

    fn map(entries: Vec<(&str, Node)>) -> Node {
        Node::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn optional(key: &str) -> Node {
        Node::Optional(key.into())
    }

    fn fill(parts: Vec<Part>) -> Node {
        Node::Fill(parts.into())
    }

    /// Trees that exercise every step: optional entries first, last and alone, nested mappings
    /// whose entries may all be left out, the whole context in several places, empty and nested
    /// collections, joined and literal-only strings, and every scalar kind.
    fn trees() -> Vec<Node> {
        let context_part = |key: &str, default: &str| Part::Context {
            key: key.into(),
            default: default.into(),
        };
        vec![
            map(vec![("a", text("x"))]),
            map(vec![("only", optional("owner"))]),
            map(vec![("ctx", Node::WholeContext)]),
            map(vec![
                ("first", optional("owner")),
                ("second", optional("env")),
                ("always", Node::Int(1)),
                ("late", optional("region")),
                ("whole", Node::WholeContext),
            ]),
            map(vec![(
                "outer",
                map(vec![
                    ("inner", map(vec![("x", optional("owner"))])),
                    ("maybe", optional("env")),
                    ("list", Node::Seq(vec![map(vec![("o", optional("env"))])])),
                ]),
            )]),
            map(vec![
                (
                    "items",
                    Node::Seq(vec![
                        map(vec![("a", Node::Null), ("b", Node::Bool(true))]),
                        Node::Seq(vec![Node::Float(1.5), Node::UInt(u64::MAX)]),
                        Node::Seq(vec![]),
                        map(vec![]),
                        Node::Float(f64::NAN),
                        Node::Float(f64::NEG_INFINITY),
                        Node::Int(-3),
                        fill(vec![Part::Title]),
                    ]),
                ),
                ("empty_list", Node::Seq(vec![])),
                ("empty_map", map(vec![])),
                ("key: odd #", text("yes")),
            ]),
            map(vec![
                (
                    "joined",
                    fill(vec![
                        Part::Text("[".into()),
                        Part::Id,
                        Part::Text("]".into()),
                    ]),
                ),
                ("literal", fill(vec![Part::Text("1.2".into())])),
                ("nothing", fill(vec![])),
                (
                    "values",
                    fill(vec![
                        Part::Header,
                        Part::Text(" ".into()),
                        Part::Grepable,
                        Part::Scope,
                        Part::Type,
                        Part::Variant,
                        Part::Status,
                        Part::Version,
                    ]),
                ),
                ("env", fill(vec![context_part("env", "development")])),
                ("ctx", Node::WholeContext),
                ("id", fill(vec![Part::Id])),
            ]),
            Node::Seq(vec![Node::WholeContext, optional("owner"), text("t")]),
            Node::Seq(vec![]),
            map(vec![]),
            text("root"),
        ]
    }

    fn drafts() -> Vec<Draft> {
        let mut drafts = vec![
            draft("Block SSH", "SEC", 42, &[]),
            draft("t", "Σεκ", 7, &[("owner", "ΣΑΣ")]),
            draft("", "GOV", 123_456_789, &[("env", "prod"), ("region", "eu")]),
        ];
        for &title in super::super::TRICKY_TITLES {
            drafts.push(draft(
                title,
                "ETL",
                1,
                &[("owner", title), ("env", "# x: [y]"), ("true", "1")],
            ));
        }
        drafts
    }

    #[test]
    fn programs_write_what_the_serializer_writes() {
        let drafts = drafts();
        let mut scratch = Scratch::default();
        for tree in trees() {
            let program = Program::compile(&tree).expect("compiles");
            for d in &drafts {
                program.run(&d.view(), &mut scratch);
                assert_eq!(scratch.out, reference(&tree, d), "{tree:?}\n{d:?}");
            }
        }
    }

    #[test]
    fn keys_too_long_for_an_implicit_key_are_left_to_the_serializer() {
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let tree = map(vec![(long.as_str(), Node::Int(1))]);
        assert!(Program::compile(&tree).is_none());
        let quoted = "'".repeat(MAX_KEY_BYTES / 2);
        let tree = map(vec![(quoted.as_str(), Node::Int(1))]);
        assert!(Program::compile(&tree).is_none(), "its quotes take it over");
        let fits = "k".repeat(MAX_KEY_BYTES);
        assert!(Program::compile(&map(vec![(fits.as_str(), Node::Int(1))])).is_some());
    }

    #[test]
    fn header_values_are_formatted_as_core_formats_them() {
        for d in drafts() {
            for number in [0, 7, 42, 999, 1000, 123_456, u64::MAX] {
                let mut d = d.clone();
                d.header.id = EntryId::new(d.header.id.prefix().to_owned(), number);
                let h = &d.header;
                let mut out = String::from("kept ");
                push_id(&mut out, h.id.prefix(), h.id.number());
                assert_eq!(out, format!("kept {}", h.id));
                out.truncate(5);
                push_readable(&mut out, &d.view());
                assert_eq!(out, format!("kept {}", h.readable()));
                out.truncate(5);
                push_grepable(&mut out, &d.view());
                assert_eq!(out, format!("kept {}", h.grepable()));
            }
        }
    }
}
