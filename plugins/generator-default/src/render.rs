//! Rendering a config: a compiled template tree bound to a draft, written as block YAML.
//!
//! `crate::template` has already parsed, checked and merged the templates, so rendering a draft
//! only picks its tree and runs the tree's program (module `program`): the text every config of
//! the tree shares was written when the tree was first used, and the draft's values go between.
//! A batch reuses one [`Scratch`], and each config is lent from its buffer: `render` makes one
//! string per config, at its exact size, and a plugin's `render_each` makes none.
//!
//! The tree itself, as a `Serialize` view that binds each placeholder to the draft's value, is
//! written by `registry_yaml::write` for trees without a program: a scope with more than eight
//! conditional overlays, whose drafts may need a tree merged for them alone, and a template with
//! a key too long for YAML's implicit form, which that path reports. It is also the reference
//! the tests hold programs to.
//!
//! The shipped templates reproduce the document the original system rendered, made
//! deterministic: `tests/snapshots/built_in.yaml` holds the configs of the hand-built document
//! these templates replaced, and the tests check the templates still render those bytes.

mod program;

use std::cell::OnceCell;

use registry_core::{Draft, DraftRef, ErrorCode, StageError, StageResult};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use registry_yaml::write;

use crate::template::{Node, Part, Templates};
use program::{push_grepable, push_id, push_readable};

pub(crate) use program::{Program, Scratch};

/// Room for a typical config, so the output buffer seldom grows while rendering.
const TYPICAL_CONFIG_BYTES: usize = 1536;

/// What rendering reads of a draft, wherever it is held: a [`Draft`] of the linked generator's
/// caller, or a [`DraftRef`] lent across the plugin boundary ([`Generator::render_lent`]).
///
/// Rendering is generic over it rather than taking one view type. Measured (`cargo bench -p
/// registry-benches --bench stages -- generator/render`, alternated builds): rendering every
/// draft through a `DraftRef`, the linked side's included, made the linked render about 5 %
/// slower, from the branch of each context look-up through `ContextRef` and the view built per
/// draft. Generic, each holder is read as directly as a `Draft` always was.
///
/// [`Generator::render_lent`]: registry_core::Generator::render_lent
pub(crate) trait Parts {
    fn scope(&self) -> &str;
    fn kind(&self) -> &str;
    fn variant(&self) -> &str;
    fn status(&self) -> &str;
    fn id_prefix(&self) -> &str;
    fn id_number(&self) -> u64;
    fn version(&self) -> &str;
    fn title(&self) -> &str;
    /// The context's value of `key`.
    fn get(&self, key: &str) -> Option<&str>;
    fn context_is_empty(&self) -> bool;
    /// The context's pairs, in key order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl Parts for Draft {
    fn scope(&self) -> &str {
        &self.header.fields.scope
    }
    fn kind(&self) -> &str {
        &self.header.fields.kind
    }
    fn variant(&self) -> &str {
        &self.header.fields.variant
    }
    fn status(&self) -> &str {
        &self.header.fields.status
    }
    fn id_prefix(&self) -> &str {
        self.header.id.prefix()
    }
    fn id_number(&self) -> u64 {
        self.header.id.number()
    }
    fn version(&self) -> &str {
        &self.header.version
    }
    fn title(&self) -> &str {
        &self.title
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.context.get(key)
    }
    fn context_is_empty(&self) -> bool {
        self.context.is_empty()
    }
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.context.iter()
    }
}

impl Parts for DraftRef<'_> {
    fn scope(&self) -> &str {
        self.fields.scope
    }
    fn kind(&self) -> &str {
        self.fields.kind
    }
    fn variant(&self) -> &str {
        self.fields.variant
    }
    fn status(&self) -> &str {
        self.fields.status
    }
    fn id_prefix(&self) -> &str {
        self.id_prefix
    }
    fn id_number(&self) -> u64 {
        self.id_number
    }
    fn version(&self) -> &str {
        self.version
    }
    fn title(&self) -> &str {
        self.title
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.context.get(key)
    }
    fn context_is_empty(&self) -> bool {
        self.context.is_empty()
    }
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.context.iter()
    }
}

/// Renders the config of one draft from the templates, with fresh buffers.
///
/// # Errors
/// As [`render_with`].
#[cfg(test)]
pub(crate) fn render(templates: &Templates, draft: &Draft) -> StageResult<String> {
    let mut config = String::new();
    render_with(templates, draft, &mut Scratch::default(), |c| {
        config = c.to_owned();
    })?;
    Ok(config)
}

/// Renders the config of one draft from the templates, reusing the buffers of `scratch`, and
/// hands it to `each`, borrowed.
///
/// # Errors
/// An `Internal` error if the writer fails on a tree without a program: a mapping key too long
/// for YAML's implicit form.
pub(crate) fn render_with<P: Parts>(
    templates: &Templates,
    draft: &P,
    scratch: &mut Scratch,
    mut each: impl FnMut(&str),
) -> StageResult<()> {
    let tree = templates.tree(draft);
    if let Some(program) = &tree.program {
        program.run(draft, scratch);
        each(scratch.out.as_str());
        return Ok(());
    }
    each(&serialize(&tree.node, draft)?);
    Ok(())
}

/// Renders a tree bound to a draft through the serializer: the path for trees without a program.
///
/// # Errors
/// As [`render_with`].
fn serialize<P: Parts>(tree: &Node, draft: &P) -> StageResult<String> {
    let values = Values::new(draft);
    let capacity = TYPICAL_CONFIG_BYTES + draft.title().len();
    write::to_string(
        &Bound {
            node: tree,
            values: &values,
        },
        capacity,
    )
    .map_err(|e| {
        StageError::new(
            ErrorCode::Internal,
            format!("cannot render the config of {}: {e}", {
                let mut id = String::new();
                push_id(&mut id, draft.id_prefix(), draft.id_number());
                id
            }),
        )
    })
}

/// The values placeholders stand for. The formatted ones are made on first use, once per draft.
struct Values<'a, P> {
    draft: &'a P,
    id: OnceCell<String>,
    header: OnceCell<String>,
    grepable: OnceCell<String>,
}

impl<'a, P: Parts> Values<'a, P> {
    fn new(draft: &'a P) -> Self {
        Values {
            draft,
            id: OnceCell::new(),
            header: OnceCell::new(),
            grepable: OnceCell::new(),
        }
    }

    fn get<'s>(&'s self, part: &'s Part) -> &'s str {
        let d = self.draft;
        let made = |write: fn(&mut String, &P)| {
            let mut text = String::new();
            write(&mut text, d);
            text
        };
        match part {
            Part::Text(text) => text,
            Part::Title => d.title(),
            Part::Id => self
                .id
                .get_or_init(|| made(|b, d| push_id(b, d.id_prefix(), d.id_number()))),
            Part::Header => self.header.get_or_init(|| made(push_readable)),
            Part::Grepable => self.grepable.get_or_init(|| made(push_grepable)),
            Part::Scope => d.scope(),
            Part::Type => d.kind(),
            Part::Variant => d.variant(),
            Part::Status => d.status(),
            Part::Version => d.version(),
            Part::Context { key, default } => d.get(key).unwrap_or(default),
        }
    }

    /// Whether a mapping entry with this value is left out.
    fn omits(&self, node: &Node) -> bool {
        match node {
            Node::Optional(key) => self.draft.get(key).is_none(),
            Node::WholeContext => self.draft.context_is_empty(),
            _ => false,
        }
    }
}

/// A compiled tree bound to a draft's values: what the writer writes.
struct Bound<'a, P> {
    node: &'a Node,
    values: &'a Values<'a, P>,
}

impl<P: Parts> Bound<'_, P> {
    fn child<'c>(&'c self, node: &'c Node) -> Bound<'c, P> {
        Bound {
            node,
            values: self.values,
        }
    }
}

impl<P: Parts> Serialize for Bound<'_, P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let values = self.values;
        match self.node {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Int(n) => s.serialize_i64(*n),
            Node::UInt(n) => s.serialize_u64(*n),
            Node::Float(x) => s.serialize_f64(*x),
            Node::Text(text) => s.serialize_str(text),
            // A string that is one placeholder is written without copying it.
            Node::Fill(parts) => match &parts[..] {
                [one] => s.serialize_str(values.get(one)),
                parts => {
                    let mut text = String::new();
                    for part in parts {
                        text.push_str(values.get(part));
                    }
                    s.serialize_str(&text)
                }
            },
            // A mapping leaves the entry out when the key is absent, so this is the value.
            Node::Optional(key) => s.serialize_str(values.draft.get(key).unwrap_or_default()),
            Node::WholeContext => s.collect_map(values.draft.pairs()),
            Node::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.child(item))?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = s.serialize_map(None)?;
                for (key, value) in entries {
                    if !values.omits(value) {
                        map.serialize_entry(&**key, &self.child(value))?;
                    }
                }
                map.end()
            }
        }
    }
}

/// Titles and values YAML would misread if written plain; shared by the rendering tests.
#[cfg(test)]
pub(crate) const TRICKY_TITLES: &[&str] = &[
    r#"Block "SSH": port 22 # now"#,
    "[SEC] looks like a header",
    "{a: b}, [c]",
    "- starts like a list",
    "key: value",
    "it's 'quoted'",
    "yes",
    "null",
    "~",
    "123",
    "0x1F",
    "1e3",
    "v2.9",
    "trailing colon:",
    "&anchor *alias !tag %directive @at `tick`",
    "é ünïcödé ✓ 日本語",
    "a\\b \\n not a newline",
];

#[cfg(test)]
mod tests {
    use registry_core::{Context, Draft, EntryId, Fields, Header};

    use super::*;

    fn draft(scope: &str, kind: &str, title: &str, pairs: &[(&str, &str)]) -> Draft {
        Draft {
            header: Header {
                fields: Fields {
                    scope: scope.into(),
                    kind: kind.into(),
                    variant: "LIVE".into(),
                    status: "DEV".into(),
                },
                id: EntryId::new(EntryId::prefix_for(scope, kind), 7),
                version: "v1.0.3".into(),
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

    fn built_in() -> Templates {
        let setup = registry_core::Setup {
            schema: registry_core::Schema::default(),
            data_dir: "/nonexistent".into(),
            config_dir: "/nonexistent".into(),
            shard: 0,
            shards: 1,
            create: None,
        };
        Templates::load(None, &Default::default(), &setup).expect("the built-in templates load")
    }

    /// The drafts of the snapshot file: every scope of the default schema, with no context, in
    /// production with region and owner, production spelt otherwise, and a development context
    /// with keys that need quoting.
    fn snapshot_drafts() -> Vec<(String, Draft)> {
        let scopes = [
            ("GOV", "RULES", "Quarterly access review"),
            ("SEC", "RULES", "Block SSH: from 0.0.0.0/0 # now"),
            ("OPS", "SCRIPT", "Restart (nightly), then check"),
            ("ALERT", "RULES", "[P1] disk full"),
            ("BASH", "SCRIPT", "it's \"quoted\""),
            ("DASHBOARD", "CONFIG", "yes"),
            ("ETL", "MULTI-ETL", "Load: orders"),
        ];
        let contexts: [&[(&str, &str)]; 4] = [
            &[],
            &[
                ("env", "prod"),
                ("owner", "secops"),
                ("region", "eu-west-1"),
            ],
            &[("env", "PRODUCTION")],
            &[
                ("env", "dev"),
                ("owner", "it's me"),
                ("true", "1"),
                ("note", "# x: [y]"),
            ],
        ];
        let mut drafts = Vec::new();
        for (scope, kind, title) in scopes {
            for ctx in contexts {
                let pairs: Vec<String> = ctx.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let name = format!("{scope} {kind} {title:?} [{}]", pairs.join(", "));
                drafts.push((name, draft(scope, kind, title, ctx)));
            }
        }
        drafts
    }

    const SNAPSHOT_HEADER: &str = "# Configs the built-in templates render for the drafts of \
        `snapshot_drafts` in src/render.rs,\n# one document each, preceded by the draft's scope, \
        type, title and context.\n# The test `built_in_snapshots` checks them; UPDATE_SNAPSHOTS=1 \
        rewrites this file.\n";

    /// The built-in templates render the drafts of `snapshot_drafts` exactly as the snapshot file
    /// says (see `registry_testkit::snapshot`: `UPDATE_SNAPSHOTS=1` rewrites it instead).
    #[test]
    fn built_in_snapshots() {
        let templates = built_in();
        let mut text = String::from(SNAPSHOT_HEADER);
        for (name, d) in snapshot_drafts() {
            text.push_str(&format!("# {name}\n"));
            text.push_str(&render(&templates, &d).expect("renders"));
            text.push_str("---\n");
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/built_in.yaml");
        registry_testkit::snapshot::compare(
            std::path::Path::new(path),
            &text,
            "cargo test -p registry-generator-default --lib built_in_snapshots",
        );
    }

    /// The view the writer writes, written by `yaml_serde` instead, reads back as the same YAML
    /// value, and for ordinary drafts is the same bytes.
    #[test]
    fn matches_yaml_serde() {
        let parse = |s: &str| -> yaml_serde::Value {
            yaml_serde::from_str(s).unwrap_or_else(|e| panic!("{s}\ndoes not parse: {e}"))
        };
        let templates = built_in();
        let cases = [
            draft(
                "SEC",
                "RULES",
                "Block SSH from the internet",
                &[("env", "prod")],
            ),
            draft("OPS", "SCRIPT", "Restart (nightly), then check", &[]),
            draft(
                "ETL",
                "MULTI-ETL",
                "Load: orders # 2",
                &[("owner", "it's me"), ("region", "eu-west-1"), ("true", "1")],
            ),
            draft(
                "DASHBOARD",
                "CONFIG",
                "[draft] prices",
                &[("env", "staging")],
            ),
            draft("GOV", "RULES", "yes", &[("a", "\"quoted\""), ("b", "~")]),
        ];
        for (i, d) in cases.iter().enumerate() {
            let ours = render(&templates, d).expect("renders");
            let tree = templates.tree(&d.view());
            let values = Values::new(d);
            let view = Bound {
                node: &tree.node,
                values: &values,
            };
            let theirs = yaml_serde::to_string(&view).expect("yaml_serde writes it");
            assert_eq!(
                parse(&ours),
                parse(&theirs),
                "ours:\n{ours}\ntheirs:\n{theirs}"
            );
            if i < 2 {
                assert_eq!(ours, theirs);
            }
        }
    }

    /// Titles and context values that YAML would misread unquoted come back unchanged, and so
    /// does the header: it parses back into the draft's header.
    #[test]
    fn configs_read_back_as_the_drafts_values() {
        let templates = built_in();
        let schema = registry_core::Schema::default();
        for &title in TRICKY_TITLES {
            for (scope, kind) in [("SEC", "RULES"), ("ETL", "MULTI-ETL"), ("GOV", "CONFIG")] {
                let d = draft(
                    scope,
                    kind,
                    title,
                    &[("env", "prod"), ("owner", title), ("note", "# x: [y]")],
                );
                let yaml = render(&templates, &d).expect("renders");
                let v: yaml_serde::Value =
                    yaml_serde::from_str(&yaml).expect("the rendered config parses");
                assert!(v.is_mapping(), "{yaml}");
                assert_eq!(v["dashboard"]["title"], title, "{yaml}");
                assert_eq!(v["governance"]["owner"], title, "{yaml}");
                assert_eq!(v["context"]["note"], "# x: [y]", "{yaml}");
                let header = v["dashboard"]["header"].as_str().expect("a string");
                assert_eq!(header, d.header.readable());
                assert_eq!(
                    registry_core::Header::parse(header, &schema).expect("a header"),
                    d.header
                );
                let grepable = v["dashboard"]["grepable"].as_str().expect("a string");
                assert_eq!(grepable, d.header.grepable());
                assert_eq!(v["governance"]["id"], d.header.id.to_string().as_str());
                assert_eq!(v["governance"]["type"], kind);
            }
        }
    }
}
