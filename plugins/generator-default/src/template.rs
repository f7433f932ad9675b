//! Config templates: loading them from `registry.toml`, a templates directory or the built-in
//! copy, checking them, and choosing the compiled tree that renders a draft.
//!
//! A template set has a `default` template and optional templates named after scopes. A template
//! is one or more YAML documents. The first document of `default` is the base: the whole config.
//! Every other document is an overlay with an optional `when:` mapping of context conditions;
//! the documents of a scope's template apply only to entries of that scope. For an entry, the
//! base is deep-merged with the overlays that apply, in order: those of `default`, then those of
//! the entry's scope.
//!
//! Everything that can be wrong with a template is found here, when the generator is built, and
//! reported at once as one `Config` error naming each template, its origin and the place in it.
//! Rendering then only walks a compiled tree (see `crate::render`): no YAML is parsed per draft.
//! Before a template is parsed, `registry_core::nesting::check` bounds its nesting (64 levels)
//! and what its aliases expand to (65,536 nodes): templates come from a directory a repository's
//! `registry.toml` names, and past those bounds the parser's time or memory has no useful limit.
//! A template past them is reported as YAML that does not parse, with the line and column.
//! The merged tree of each combination of overlays is built on first use and kept, so a draft
//! costs one merge per combination over the generator's life, not one per render.

mod placeholder;
mod tree;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use registry_core::{ErrorCode, Field, Schema, Setup, StageError, StageResult, nesting};
use serde::Deserialize;
use yaml_serde::Value;

pub(crate) use placeholder::Part;
pub(crate) use tree::Node;

use crate::render::{Parts, Program};
use tree::{Condition, Problems};

/// The built-in templates: the files of the repository's `templates/` directory, used when the
/// configuration names no templates. Scope templates for scopes the schema does not declare are
/// left out silently, as the built-in keyword rules drop values the schema lacks.
const BUILT_IN: [(&str, &str); 5] = [
    (
        "default.yaml",
        include_str!("../../../templates/default.yaml"),
    ),
    ("SEC.yaml", include_str!("../../../templates/SEC.yaml")),
    ("OPS.yaml", include_str!("../../../templates/OPS.yaml")),
    ("ETL.yaml", include_str!("../../../templates/ETL.yaml")),
    (
        "DASHBOARD.yaml",
        include_str!("../../../templates/DASHBOARD.yaml"),
    ),
];

/// The name of the template every config starts from.
const DEFAULT: &str = "default";

/// With up to this many conditional overlays for a scope, the merged tree of every combination
/// that occurs is kept (at most 2^8 trees); with more, drafts whose conditions hold are merged on
/// each render.
const MAX_CACHED_CONDITIONS: usize = 8;

/// A checked, compiled template set. Cloning shares it.
#[derive(Clone)]
pub(crate) struct Templates {
    inner: Arc<Compiled>,
    /// What a person should know about the templates that is not an error: files of
    /// `templates_dir` left out because the schema does not declare their scope.
    notes: Vec<String>,
}

struct Compiled {
    /// The templates as loaded, by name: what equality compares.
    sources: Vec<Source>,
    /// The schema's scopes with the variants of each; scopes without a template of their own
    /// share `fallback`.
    scopes: Vec<(Box<str>, Arc<Variants>)>,
    /// The variants of `default` alone, for scopes without a template of their own.
    fallback: Arc<Variants>,
}

/// One template's text and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    /// `default`, or a scope in the schema's spelling.
    name: String,
    /// Where the text comes from, for messages: `templates/SEC.yaml`.
    origin: String,
    text: Cow<'static, str>,
}

/// The base and overlays that make the configs of one scope.
struct Variants {
    base: Node,
    /// Every overlay for the scope, in the order they apply.
    overlays: Vec<(Condition, Node)>,
    /// How many overlays have conditions. Bit `i` of a selection stands for the `i`-th of them.
    conditional: usize,
    /// The base with the unconditional overlays: the tree when no condition holds.
    plain: Tree,
    /// The merged tree of each selection, built on first use; empty when there are more than
    /// [`MAX_CACHED_CONDITIONS`] conditional overlays.
    merged: Box<[OnceLock<Tree>]>,
}

/// A merged tree, with the program that renders it when the tree is kept.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub(crate) node: Node,
    /// `None` for a tree merged for one render, or one only the serializer path can write.
    pub(crate) program: Option<Program>,
}

impl Tree {
    /// A tree that is kept: compiling its program once pays off over many renders.
    fn kept(node: Node) -> Tree {
        let program = Program::compile(&node);
        Tree { node, program }
    }
}

impl Variants {
    fn new(base: Node, overlays: Vec<(Condition, Node)>) -> Variants {
        let conditional = overlays.iter().filter(|(c, _)| !c.is_empty()).count();
        let mut variants = Variants {
            plain: Tree {
                node: Node::Null,
                program: None,
            },
            merged: if conditional <= MAX_CACHED_CONDITIONS {
                (0..1usize << conditional)
                    .map(|_| OnceLock::new())
                    .collect()
            } else {
                Box::default()
            },
            base,
            overlays,
            conditional,
        };
        variants.plain = Tree::kept(variants.merge_selected(|_| false));
        variants
    }

    /// The base merged with the unconditional overlays and the conditional ones `selected` picks
    /// (by their number among the conditional ones).
    fn merge_selected(&self, selected: impl Fn(usize) -> bool) -> Node {
        let mut node = self.base.clone();
        let mut n = 0;
        for (condition, overlay) in &self.overlays {
            let applies = if condition.is_empty() {
                true
            } else {
                n += 1;
                selected(n - 1)
            };
            if applies {
                tree::merge(&mut node, overlay);
            }
        }
        node
    }

    /// The tree for a context: the base with every overlay whose conditions hold.
    fn select(&self, draft: &impl Parts) -> Cow<'_, Tree> {
        if self.conditional == 0 {
            return Cow::Borrowed(&self.plain);
        }
        let holding = self
            .overlays
            .iter()
            .filter(|(c, _)| !c.is_empty())
            .map(|(c, _)| c.holds(draft));
        if self.merged.is_empty() {
            let holding: Vec<bool> = holding.collect();
            return Cow::Owned(Tree {
                node: self.merge_selected(|i| holding[i]),
                program: None,
            });
        }
        let selection = holding
            .enumerate()
            .fold(0usize, |mask, (i, holds)| mask | (usize::from(holds) << i));
        if selection == 0 {
            return Cow::Borrowed(&self.plain);
        }
        Cow::Borrowed(
            self.merged[selection]
                .get_or_init(|| Tree::kept(self.merge_selected(|i| selection & (1 << i) != 0))),
        )
    }
}

impl Templates {
    /// Loads, checks and compiles the templates a configuration names: the files of `dir`
    /// (relative to `setup.config_dir`) if given, else the built-in ones, with the `inline`
    /// templates replacing those of the same name.
    ///
    /// # Errors
    /// A `Config` error listing every problem found: a directory or file that cannot be read, a
    /// template name that is neither `default` nor a scope of the schema, two templates for one
    /// name, no `default` template, a template that is not YAML, documents that are not
    /// mappings, a misplaced or malformed `when:`, and unknown or misplaced placeholders.
    pub(crate) fn load(
        dir: Option<&Path>,
        inline: &BTreeMap<String, String>,
        setup: &Setup,
    ) -> StageResult<Templates> {
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        // `None` when the directory cannot be read, which is reported already.
        let sources = match dir {
            Some(dir) => read_dir(dir, setup, &mut problems, &mut notes),
            None => Some(built_in(&setup.schema)),
        };
        let mut given = Vec::new();
        for (name, text) in inline {
            let origin = format!("generator.config.templates.{name}");
            let Some(canonical) = template_name(name, &origin, &setup.schema, &mut problems) else {
                continue;
            };
            given.push(Source {
                name: canonical,
                origin,
                text: Cow::Owned(text.clone()),
            });
        }
        check_unique(&given, &mut problems);
        let unreadable = sources.is_none();
        let mut sources = sources.unwrap_or_default();
        for source in given {
            // An inline template replaces a file of the same name.
            sources.retain(|s| s.name != source.name);
            sources.push(source);
        }
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        if !unreadable && !sources.iter().any(|s| s.name == DEFAULT) {
            problems.push(match dir {
                Some(dir) => format!(
                    "templates_dir `{}` has no {DEFAULT}.yaml and no inline `templates.{DEFAULT}` \
                     is given: the {DEFAULT} template is required",
                    dir.display()
                ),
                None => format!("no `{DEFAULT}` template: the {DEFAULT} template is required"),
            });
        }
        let compiled = compile(sources, &setup.schema, &mut problems);
        if !problems.is_empty() {
            return Err(StageError::new(ErrorCode::Config, problems.join("; ")));
        }
        Ok(Templates {
            inner: Arc::new(compiled),
            notes,
        })
    }

    /// What a person should know about the templates that is not an error.
    pub(crate) fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The compiled tree that renders a draft: its scope's variants, with the overlays its
    /// context selects.
    pub(crate) fn tree(&self, draft: &impl Parts) -> Cow<'_, Tree> {
        let scope = draft.scope();
        let scopes = &self.inner.scopes;
        // Drafts carry the schema's spelling; comparing without case as well keeps drafts built
        // by hand working.
        let variants = scopes
            .iter()
            .find(|(name, _)| &**name == scope)
            .or_else(|| {
                scopes
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(scope))
            })
            .map_or(&self.inner.fallback, |(_, v)| v);
        variants.select(draft)
    }
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.inner
                    .sources
                    .iter()
                    .map(|s| (s.name.as_str(), s.origin.as_str())),
            )
            .finish()
    }
}

/// Two template sets are equal when they were loaded from the same texts: they render alike.
impl PartialEq for Templates {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner.sources == other.inner.sources
    }
}

impl Eq for Templates {}

/// The built-in templates whose names the schema knows.
fn built_in(schema: &Schema) -> Vec<Source> {
    BUILT_IN
        .iter()
        .filter_map(|(file, text)| {
            let stem = file.strip_suffix(".yaml").unwrap_or(file);
            let name = if stem == DEFAULT {
                DEFAULT.to_owned()
            } else {
                schema.canonical(Field::Scope, stem)?.to_owned()
            };
            Some(Source {
                name,
                origin: format!("built-in templates/{file}"),
                text: Cow::Borrowed(text),
            })
        })
        .collect()
}

/// Reads the `*.yaml` files of a templates directory; `None` if the directory cannot be read.
/// Other files (a README, say) are left alone; `*.yml` files are reported, since they would
/// otherwise be ignored without a word.
/// The templates of a directory. A file named after a scope the schema does not declare is left
/// out with a note rather than refused, so that narrowing `schema.scope` never requires
/// deleting template files (as the built-in templates of undeclared scopes are left out).
fn read_dir(
    dir: &Path,
    setup: &Setup,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Option<Vec<Source>> {
    let full = setup.config_dir.join(dir);
    let entries = match std::fs::read_dir(&full) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(format!(
                "templates_dir `{}` ({}): cannot read the directory: {e}",
                dir.display(),
                full.display()
            ));
            return None;
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => files.push(entry.path()),
            Err(e) => problems.push(format!(
                "templates_dir `{}` ({}): cannot list the directory: {e}",
                dir.display(),
                full.display()
            )),
        }
    }
    // Directory order differs between systems; sorting keeps messages stable.
    files.sort();
    let mut sources = Vec::new();
    for path in files {
        let (Some(stem), Some(extension)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let file_name = format!("{stem}.{extension}");
        let origin = dir.join(&file_name).display().to_string();
        if extension == "yml" {
            problems.push(format!(
                "template file `{origin}`: templates are read from `*.yaml` files: rename it to \
                 {stem}.yaml"
            ));
            continue;
        }
        if extension != "yaml" || !path.is_file() {
            continue;
        }
        let name = if stem == DEFAULT {
            DEFAULT.to_owned()
        } else if let Some(scope) = setup.schema.canonical(Field::Scope, stem) {
            scope.to_owned()
        } else {
            notes.push(format!(
                "template file `{origin}` is not used: `{stem}` is not a scope of the schema \
                 ({}); declare it in schema.scope to use it",
                setup.schema.allowed(Field::Scope).join(", ")
            ));
            continue;
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push(Source {
                name,
                origin,
                text: Cow::Owned(text),
            }),
            Err(e) => problems.push(format!("template `{name}` ({origin}): cannot read: {e}")),
        }
    }
    check_unique(&sources, problems);
    Some(sources)
}

/// The template name a file stem or an inline key stands for: `default` or a scope of the schema
/// in its spelling.
fn template_name(
    name: &str,
    origin: &str,
    schema: &Schema,
    problems: &mut Vec<String>,
) -> Option<String> {
    if name == DEFAULT {
        return Some(DEFAULT.to_owned());
    }
    if let Some(scope) = schema.canonical(Field::Scope, name) {
        return Some(scope.to_owned());
    }
    problems.push(format!(
        "template `{name}` ({origin}): `{name}` is neither `{DEFAULT}` nor a scope: use \
         {DEFAULT} or one of schema.scope: {}",
        schema.allowed(Field::Scope).join(", ")
    ));
    None
}

/// Reports templates that stand for the same name, e.g. `sec.yaml` beside `SEC.yaml`.
fn check_unique(sources: &[Source], problems: &mut Vec<String>) {
    for (i, source) in sources.iter().enumerate() {
        if let Some(first) = sources[..i].iter().find(|s| s.name == source.name) {
            problems.push(format!(
                "templates `{}` and `{}` are both for `{}`: keep one",
                first.origin, source.origin, source.name
            ));
        }
    }
}

/// One compiled document of a template.
struct Document {
    condition: Condition,
    node: Node,
}

/// Parses and compiles every template and builds the variants of every scope.
fn compile(sources: Vec<Source>, schema: &Schema, problems: &mut Vec<String>) -> Compiled {
    let mut documents: Vec<(String, Vec<Document>)> = Vec::new();
    for source in &sources {
        let docs = compile_source(source, problems);
        documents.push((source.name.clone(), docs));
    }
    let mut default_docs = documents
        .iter()
        .position(|(name, _)| name == DEFAULT)
        .map(|i| documents.swap_remove(i).1)
        .unwrap_or_default()
        .into_iter();
    let base = default_docs.next().map_or(Node::Null, |d| d.node);
    let default_overlays: Vec<(Condition, Node)> =
        default_docs.map(|d| (d.condition, d.node)).collect();
    let fallback = Arc::new(Variants::new(base.clone(), default_overlays.clone()));
    let scopes = schema
        .allowed(Field::Scope)
        .iter()
        .map(|scope| {
            let own = documents
                .iter()
                .position(|(name, _)| name == scope)
                .map(|i| documents.swap_remove(i).1);
            let variants = match own {
                Some(docs) => {
                    let mut overlays = default_overlays.clone();
                    overlays.extend(docs.into_iter().map(|d| (d.condition, d.node)));
                    Arc::new(Variants::new(base.clone(), overlays))
                }
                None => Arc::clone(&fallback),
            };
            (scope.as_str().into(), variants)
        })
        .collect();
    Compiled {
        sources,
        scopes,
        fallback,
    }
}

/// Parses a template's documents and compiles each, reporting problems with the template's name
/// and origin. In `default`, the first document is the base and must be a mapping without
/// `when`; every other document is an overlay (an empty one is skipped).
fn compile_source(source: &Source, problems: &mut Vec<String>) -> Vec<Document> {
    let label = format!("template `{}` ({})", source.name, source.origin);
    // Templates come from a directory a repository names: the parser's time grows with nesting
    // times size and its aliases can copy a node without bound, so a template past those
    // limits is refused before it is parsed.
    if let Err(e) = nesting::check(&source.text, &nesting::Limits::default()) {
        problems.push(format!("{label}: not valid YAML: {e}"));
        return Vec::new();
    }
    let is_default = source.name == DEFAULT;
    let mut documents = Vec::new();
    for (i, document) in yaml_serde::Deserializer::from_str(&source.text).enumerate() {
        let number = i + 1;
        let value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(e) => {
                problems.push(format!("{label}: not valid YAML: {}", parse_error(&e)));
                // After an error the parser repeats it for every further document.
                break;
            }
        };
        let is_base = is_default && number == 1;
        let mut mapping = match value {
            Value::Mapping(mapping) => mapping,
            Value::Null if !is_base => continue,
            other => {
                let which = if is_base {
                    "the first document (the base: the config's top level)".to_owned()
                } else {
                    format!("document {number} (an overlay)")
                };
                problems.push(format!(
                    "{label}: {which} is {}: it must be a mapping",
                    tree::kind(&other)
                ));
                continue;
            }
        };
        let mut doc_problems = Problems::new(number);
        let condition = match mapping.shift_remove("when") {
            Some(_) if is_base => {
                doc_problems.push(
                    "`when` in the base: the base always applies; put conditional settings in a \
                     later document (after `---`)",
                );
                Condition::default()
            }
            Some(when) => tree::condition(&when, &mut doc_problems),
            None => Condition::default(),
        };
        let node = tree::compile(&Value::Mapping(mapping), &mut doc_problems);
        problems.extend(
            doc_problems
                .messages
                .into_iter()
                .map(|m| format!("{label}: {m}")),
        );
        documents.push(Document { condition, node });
    }
    documents
}

/// A parser error with its line and column, which some of yaml_serde's messages leave out.
fn parse_error(e: &yaml_serde::Error) -> String {
    let message = e.to_string();
    match e.location() {
        Some(at) if !message.contains(" line ") => {
            format!("{message} at line {} column {}", at.line(), at.column())
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use registry_core::{Context, Draft, EntryId, Fields, Header};

    use super::*;

    fn setup_in(config_dir: &Path, schema: Schema) -> Setup {
        Setup {
            schema,
            data_dir: config_dir.join("data"),
            config_dir: config_dir.to_owned(),
            shard: 0,
            shards: 1,
            create: None,
        }
    }

    fn setup() -> Setup {
        setup_in(Path::new("/nonexistent"), Schema::default())
    }

    fn inline(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load_inline(pairs: &[(&str, &str)]) -> StageResult<Templates> {
        Templates::load(None, &inline(pairs), &setup())
    }

    fn draft(scope: &str, title: &str, ctx: &[(&str, &str)]) -> Draft {
        Draft {
            header: Header {
                fields: Fields {
                    scope: scope.into(),
                    kind: "RULES".into(),
                    variant: "LIVE".into(),
                    status: "DEV".into(),
                },
                id: EntryId::new(EntryId::prefix_for(scope, "RULES"), 42),
                version: "v2.9".into(),
            },
            title: title.into(),
            context: Context::new(ctx.iter().map(|(k, v)| ((*k).into(), (*v).into())))
                .expect("valid context"),
        }
    }

    fn render(templates: &Templates, d: &Draft) -> String {
        crate::render::render(templates, d).expect("renders")
    }

    fn config_error(result: StageResult<Templates>) -> String {
        let err = result.expect_err("the templates are rejected");
        assert_eq!(err.code, ErrorCode::Config);
        err.message
    }

    /// A directory under a fresh temporary directory, with the given files.
    fn dir_with(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().expect("a temporary directory");
        let dir = root.path().join("templates");
        std::fs::create_dir(&dir).expect("the templates directory is created");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("the template is written");
        }
        (root, PathBuf::from("templates"))
    }

    #[test]
    fn placeholders_fill_strings_and_other_values_keep_their_type() {
        let t = load_inline(&[(
            "default",
            "all: '{{title}}|{{id}}|{{header}}|{{grepable}}|{{scope}}|{{type}}|{{variant}}|\
             {{status}}|{{version}}'\n\
             spaced: '{{ title }}'\n\
             env: 'env={{ context.env | development }}.'\n\
             missing: 'x{{context.nope}}y'\n\
             region: '{{context.region?}}'\n\
             ctx: '{{context}}'\n\
             typed: [1, -2, 1.5, true, null, '1.3', plain]\n\
             empty_map: {}\n\
             empty_list: []\n",
        )])
        .expect("valid template");
        let d = draft("GOV", "123", &[("env", "prod"), ("region", "eu")]);
        assert_eq!(
            render(&t, &d),
            "all: '123|GOV-RUL-042|[GOV][RULES][LIVE][GOV-RUL-042][v2.9][DEV]|\
             [gov-rules-live-gov-rul-042-v2.9-dev]|GOV|RULES|LIVE|DEV|v2.9'\n\
             spaced: '123'\n\
             env: env=prod.\n\
             missing: xy\n\
             region: eu\n\
             ctx:\n  env: prod\n  region: eu\n\
             typed:\n- 1\n- -2\n- 1.5\n- true\n- null\n- '1.3'\n- plain\n\
             empty_map: {}\n\
             empty_list: []\n"
        );
        let bare = draft("GOV", "t", &[]);
        assert_eq!(
            render(&t, &bare),
            "all: 't|GOV-RUL-042|[GOV][RULES][LIVE][GOV-RUL-042][v2.9][DEV]|\
             [gov-rules-live-gov-rul-042-v2.9-dev]|GOV|RULES|LIVE|DEV|v2.9'\n\
             spaced: t\n\
             env: env=development.\n\
             missing: xy\n\
             typed:\n- 1\n- -2\n- 1.5\n- true\n- null\n- '1.3'\n- plain\n\
             empty_map: {}\n\
             empty_list: []\n"
        );
    }

    #[test]
    fn overlays_apply_in_order_when_their_conditions_hold() {
        let t = load_inline(&[
            (
                "default",
                "a: base\nb: {x: 1, w: 2}\nlist: [1, 2]\n\
                 ---\n\
                 when: {env: [prod, production]}\nb: {w: prod}\nc: prod\n\
                 ---\n\
                 # An empty overlay is skipped.\n\
                 ---\n\
                 when: {tier: gold}\nb: {x: gold}\nlist: [gold]\n",
            ),
            (
                "SEC",
                "a: sec\nb: {z: sec}\n---\nwhen: {env: PROD}\nb: {w: sec-prod}\n",
            ),
        ])
        .expect("valid templates");
        let check = |scope: &str, ctx: &[(&str, &str)], expected: &str| {
            let d = draft(scope, "t", ctx);
            assert_eq!(render(&t, &d), expected, "{scope} {ctx:?}");
            // The second render comes from the cached tree and must not differ.
            assert_eq!(render(&t, &d), expected, "{scope} {ctx:?}, again");
        };
        check("GOV", &[], "a: base\nb:\n  x: 1\n  w: 2\nlist:\n- 1\n- 2\n");
        check(
            "GOV",
            &[("env", "Production")],
            "a: base\nb:\n  x: 1\n  w: prod\nlist:\n- 1\n- 2\nc: prod\n",
        );
        check(
            "GOV",
            &[("env", "prod"), ("tier", "gold")],
            "a: base\nb:\n  x: gold\n  w: prod\nlist:\n- gold\nc: prod\n",
        );
        check(
            "SEC",
            &[("tier", "GOLD")],
            "a: sec\nb:\n  x: gold\n  w: 2\n  z: sec\nlist:\n- gold\n",
        );
        // The scope's overlays come after the default's: sec-prod wins over prod.
        check(
            "SEC",
            &[("env", "prod")],
            "a: sec\nb:\n  x: 1\n  w: sec-prod\n  z: sec\nlist:\n- 1\n- 2\nc: prod\n",
        );
        // Drafts spelt in another case, or of a scope the schema lacks, still render.
        check(
            "sec",
            &[],
            "a: sec\nb:\n  x: 1\n  w: 2\n  z: sec\nlist:\n- 1\n- 2\n",
        );
        check("NEW", &[], "a: base\nb:\n  x: 1\n  w: 2\nlist:\n- 1\n- 2\n");
    }

    #[test]
    fn many_conditional_overlays_render_without_the_cache() {
        let mut text = String::from("level: 0\n");
        for i in 1..=MAX_CACHED_CONDITIONS + 2 {
            text.push_str(&format!(
                "---\nwhen: {{k{i}: 'on'}}\nlevel: {i}\nk{i}: true\n"
            ));
        }
        let t = load_inline(&[("default", &text)]).expect("valid template");
        assert!(t.inner.fallback.merged.is_empty());
        assert_eq!(render(&t, &draft("GOV", "t", &[])), "level: 0\n");
        assert_eq!(
            render(&t, &draft("GOV", "t", &[("k2", "on"), ("k10", "ON")])),
            "level: 10\nk2: true\nk10: true\n"
        );
    }

    #[test]
    fn the_directory_and_the_built_in_copy_agree() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
        let from_dir = Templates::load(Some(&dir), &BTreeMap::new(), &setup())
            .expect("the shipped templates load, README.md included in the directory");
        let built_in = Templates::load(None, &BTreeMap::new(), &setup()).expect("built-in");
        let names = |t: &Templates| -> Vec<String> {
            t.inner.sources.iter().map(|s| s.name.clone()).collect()
        };
        assert_eq!(
            names(&from_dir),
            ["DASHBOARD", "ETL", "OPS", "SEC", "default"]
        );
        assert_eq!(names(&from_dir), names(&built_in));
        for scope in ["GOV", "SEC", "OPS", "ALERT", "BASH", "DASHBOARD", "ETL"] {
            for ctx in [&[][..], &[("env", "prod")][..]] {
                let d = draft(scope, "t", ctx);
                assert_eq!(render(&from_dir, &d), render(&built_in, &d), "{scope}");
            }
        }
    }

    #[test]
    fn inline_templates_win_over_files_of_the_same_name() {
        let (root, dir) = dir_with(&[
            ("default.yaml", "from: file\n"),
            ("SEC.yaml", "sec: file\n"),
            ("OPS.yaml", "ops: file\n"),
        ]);
        let t = Templates::load(
            Some(&dir),
            &inline(&[("default", "from: inline\n"), ("sec", "sec: inline\n")]),
            &setup_in(root.path(), Schema::default()),
        )
        .expect("valid templates");
        assert_eq!(render(&t, &draft("GOV", "t", &[])), "from: inline\n");
        assert_eq!(
            render(&t, &draft("SEC", "t", &[])),
            "from: inline\nsec: inline\n"
        );
        assert_eq!(
            render(&t, &draft("OPS", "t", &[])),
            "from: inline\nops: file\n"
        );
        // Inline templates also replace built-in ones, which otherwise stay.
        let t = load_inline(&[("OPS", "dashboard: {filters: [x]}\n")]).expect("valid");
        let ops = render(&t, &draft("OPS", "t", &[]));
        assert!(ops.contains("  filters:\n  - x\n  deployment:"), "{ops}");
        let sec = render(&t, &draft("SEC", "t", &[]));
        assert!(sec.contains("  - threat_level\n"), "{sec}");
    }

    #[test]
    fn built_in_templates_follow_a_custom_schema() {
        let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
        let schema = Schema::new(
            Fields {
                scope: list(&["Sec", "INFRA"]),
                kind: list(&["RULES"]),
                variant: list(&["LIVE"]),
                status: list(&["DEV"]),
            },
            "v1".into(),
            Fields::default(),
        )
        .expect("valid schema");
        let t = Templates::load(
            None,
            &BTreeMap::new(),
            &setup_in(Path::new("/x"), schema.clone()),
        )
        .expect("built-in templates of scopes the schema lacks are left out");
        let names: Vec<&str> = t.inner.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Sec", "default"]);
        assert!(render(&t, &draft("Sec", "t", &[])).contains("  - threat_level\n"));
        assert!(render(&t, &draft("INFRA", "t", &[])).contains("  - created_at\n"));
        // A configured template for a scope the schema lacks is an error.
        let err = config_error(Templates::load(
            None,
            &inline(&[("OPS", "a: 1\n")]),
            &setup_in(Path::new("/x"), schema),
        ));
        assert_eq!(
            err,
            "template `OPS` (generator.config.templates.OPS): `OPS` is neither `default` nor a \
             scope: use default or one of schema.scope: Sec, INFRA"
        );
    }

    #[test]
    fn unknown_placeholders_name_template_file_and_place() {
        let (root, dir) = dir_with(&[
            ("default.yaml", "dashboard:\n  title: '{{title}}'\n"),
            (
                "SEC.yaml",
                "dashboard:\n  title: '{{titel}}'\n---\nwhen: {env: prod}\nx: ['{{ nope }}']\n",
            ),
        ]);
        let err = config_error(Templates::load(
            Some(&dir),
            &BTreeMap::new(),
            &setup_in(root.path(), Schema::default()),
        ));
        assert_eq!(
            err,
            "template `SEC` (templates/SEC.yaml): unknown placeholder `{{titel}}` at \
             dashboard.title; placeholders are title, id, header, grepable, scope, type, variant, \
             status, version, context, context.KEY; \
             template `SEC` (templates/SEC.yaml): unknown placeholder `{{ nope }}` at x[0] in \
             document 2; placeholders are title, id, header, grepable, scope, type, variant, \
             status, version, context, context.KEY"
        );
    }

    #[test]
    fn config_errors() {
        let check = |pairs: &[(&str, &str)], expected: &str| {
            assert_eq!(config_error(load_inline(pairs)), expected, "{pairs:?}");
        };
        let origin = "(generator.config.templates.default)";
        check(
            &[("default", "a: {{title}} more\n")],
            &format!(
                "template `default` {origin}: not valid YAML: did not find expected key at line 1 \
                 column 14, while parsing a block mapping"
            ),
        );
        check(
            &[("default", "a: 1\na: 2\n")],
            &format!(
                "template `default` {origin}: not valid YAML: duplicate entry with key \"a\" at \
                 line 1 column 1"
            ),
        );
        check(
            &[("default", "a: 1\n---\nb: [\n")],
            &format!(
                "template `default` {origin}: not valid YAML: did not find expected node content \
                 at line 4 column 1, while parsing a flow node"
            ),
        );
        check(
            &[("default", "title: {{title}}\n")],
            &format!(
                "template `default` {origin}: a mapping is used as a key (an unquoted \
                 placeholder?): write placeholders in quotes, e.g. `title: \"{{{{title}}}}\"` at \
                 title"
            ),
        );
        check(
            &[("default", "summary: 'all of {{context}}'\n")],
            &format!(
                "template `default` {origin}: `{{{{context}}}}` must be the whole value of a \
                 mapping entry, e.g. `key: \"{{{{context}}}}\"` at summary"
            ),
        );
        check(
            &[("default", "list: ['{{context.region?}}']\n")],
            &format!(
                "template `default` {origin}: `{{{{context.region?}}}}` must be the whole value of \
                 a mapping entry, e.g. `key: \"{{{{context.region?}}}}\"` at list[0]"
            ),
        );
        check(
            &[("default", "# nothing yet\n")],
            &format!(
                "template `default` {origin}: the first document (the base: the config's top \
                 level) is empty: it must be a mapping"
            ),
        );
        check(
            &[("default", "- a\n- b\n")],
            &format!(
                "template `default` {origin}: the first document (the base: the config's top \
                 level) is a sequence: it must be a mapping"
            ),
        );
        check(
            &[("default", "when: {env: prod}\na: 1\n---\n- x\n")],
            &format!(
                "template `default` {origin}: `when` in the base: the base always applies; put \
                 conditional settings in a later document (after `---`) at the top level; \
                 template `default` {origin}: document 2 (an overlay) is a sequence: it must be \
                 a mapping"
            ),
        );
        check(
            &[("default", "a: 1\n---\nwhen: prod\na: 2\n")],
            &format!(
                "template `default` {origin}: expected a mapping of context keys to values, e.g. \
                 `when: {{ env: [prod, production] }}` at when in document 2"
            ),
        );
        check(
            &[("Default", "a: 1\n"), ("ETL", "a: 1\n"), ("etl", "a: 2\n")],
            "template `Default` (generator.config.templates.Default): `Default` is neither \
             `default` nor a scope: use default or one of schema.scope: GOV, SEC, OPS, ALERT, \
             BASH, DASHBOARD, ETL; \
             templates `generator.config.templates.ETL` and `generator.config.templates.etl` \
             are both for `ETL`: keep one",
        );
        // Every template is checked, and every problem reported.
        check(
            &[("default", "a: '{{x}}'\n"), ("SEC", "b: '{{y'\n")],
            &format!(
                "template `SEC` (generator.config.templates.SEC): unclosed placeholder `{{{{y`: \
                 close it with `}}}}` at b; \
                 template `default` {origin}: unknown placeholder `{{{{x}}}}` at a; placeholders \
                 are {}",
                placeholder::NAMES
            ),
        );
    }

    /// Templates past the nesting and alias limits are refused before they are parsed, each
    /// with its line and column, and the other templates are still checked.
    #[test]
    fn deep_and_alias_heavy_templates_are_refused() {
        let flow = |n: usize| format!("a: 1\nb: {}1{}\n", "[".repeat(n), "]".repeat(n));
        let mut laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
        for (name, previous) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d")] {
            let items = vec![format!("*{previous}"); 10].join(", ");
            laughs.push_str(&format!("{name}: &{name} [{items}]\n"));
        }
        let (root, dir) = dir_with(&[
            ("default.yaml", &flow(63)),
            ("SEC.yaml", &flow(64)),
            ("OPS.yaml", &laughs),
            ("ETL.yaml", "x: '{{nope}}'\n"),
        ]);
        let err = config_error(Templates::load(
            Some(&dir),
            &BTreeMap::new(),
            &setup_in(root.path(), Schema::default()),
        ));
        assert_eq!(
            err,
            "template `ETL` (templates/ETL.yaml): unknown placeholder `{{nope}}` at x; \
             placeholders are "
                .to_owned()
                + placeholder::NAMES
                + "; template `OPS` (templates/OPS.yaml): not valid YAML: the alias at line 5 \
                   column 12 makes aliases repeat more than 65536 nodes: at most 65536 are \
                   allowed; \
                   template `SEC` (templates/SEC.yaml): not valid YAML: a flow collection at line \
                   2 column 67 nests 65 levels deep: at most 64 are allowed"
        );
        // 100,000 nested flow mappings, on which the parser spent 76 s, are refused as soon.
        let n = 100_000;
        let huge = format!("{}{}", "{a: ".repeat(n), "}".repeat(n));
        assert_eq!(
            config_error(load_inline(&[("default", &huge)])),
            "template `default` (generator.config.templates.default): not valid YAML: a flow \
             collection at line 1 column 257 nests 65 levels deep: at most 64 are allowed"
        );
    }

    #[test]
    fn a_file_for_an_undeclared_scope_is_left_out_with_a_note() {
        let (root, dir) = dir_with(&[
            ("default.yaml", "a: 1\n"),
            ("SEC.yaml", "b: 1\n"),
            ("TYPO.yaml", "c: 1\n"),
        ]);
        let t = Templates::load(
            Some(&dir),
            &BTreeMap::new(),
            &setup_in(root.path(), Schema::default()),
        )
        .expect("loads");
        let names: Vec<&str> = t.inner.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["SEC", "default"]);
        assert_eq!(
            t.notes(),
            [
                "template file `templates/TYPO.yaml` is not used: `TYPO` is not a scope of the \
              schema (GOV, SEC, OPS, ALERT, BASH, DASHBOARD, ETL); declare it in schema.scope \
              to use it"
            ]
        );
    }

    #[test]
    fn directory_errors() {
        let (root, dir) = dir_with(&[
            ("SEC.yaml", "a: 1\n"),
            ("sec.yaml", "a: 2\n"),
            ("TYPO.yaml", "a: 1\n"),
            ("OPS.yml", "a: 1\n"),
            ("notes.txt", "ignored"),
        ]);
        std::fs::create_dir(root.path().join("templates/ETL.yaml")).expect("a directory");
        let err = config_error(Templates::load(
            Some(&dir),
            &BTreeMap::new(),
            &setup_in(root.path(), Schema::default()),
        ));
        assert_eq!(
            err,
            "template file `templates/OPS.yml`: templates are read from `*.yaml` files: rename \
             it to OPS.yaml; \
             templates `templates/SEC.yaml` and `templates/sec.yaml` are both for `SEC`: keep \
             one; \
             templates_dir `templates` has no default.yaml and no inline `templates.default` is \
             given: the default template is required"
        );
        let err = config_error(Templates::load(
            Some(Path::new("missing")),
            &BTreeMap::new(),
            &setup_in(root.path(), Schema::default()),
        ));
        let full = root.path().join("missing");
        let prefix = format!(
            "templates_dir `missing` ({}): cannot read the directory: ",
            full.display()
        );
        // One problem: the missing default.yaml follows from the missing directory.
        assert!(err.starts_with(&prefix) && !err.contains("; "), "{err}");
        // An inline default makes up for a directory without one.
        let (root, dir) = dir_with(&[("SEC.yaml", "b: 2\n")]);
        let t = Templates::load(
            Some(&dir),
            &inline(&[("default", "a: 1\n")]),
            &setup_in(root.path(), Schema::default()),
        )
        .expect("valid templates");
        assert_eq!(render(&t, &draft("SEC", "t", &[])), "a: 1\nb: 2\n");
    }

    /// The `templates_dir` and `templates` keys of `[generator.config]` reach the templates, and
    /// template problems are reported with the other config problems.
    #[test]
    fn config_keys_reach_the_generator() {
        use registry_core::{FromConfig, Generator};

        use crate::{Config, DefaultGenerator};

        let (root, _) = dir_with(&[("default.yaml", "from: '{{context.src | dir}}'\n")]);
        let config = |json: &str| -> Config { serde_json_config(json) };
        let generator = |json: &str| {
            DefaultGenerator::from_config(config(json), &setup_in(root.path(), Schema::default()))
        };
        let render_one = |g: &DefaultGenerator| {
            let mut out = Vec::new();
            g.render(&[draft("GOV", "t", &[])], &mut out)
                .expect("renders");
            out.pop().expect("one config")
        };
        let g = generator(r#"{"templates_dir": "templates"}"#).expect("valid config");
        assert_eq!(render_one(&g), "from: dir\n");
        let g = generator(
            r#"{"templates_dir": "templates", "templates": {"default": "from: inline\n"}}"#,
        )
        .expect("valid config");
        assert_eq!(render_one(&g), "from: inline\n");
        let err = generator(
            r#"{"keywords": [{"words": [], "scope": "SEC"}], "templates": {"default": "a: '{{nope}}'"}}"#,
        )
        .expect_err("invalid config");
        assert_eq!(err.code, ErrorCode::Config);
        assert_eq!(
            err.message,
            format!(
                "keywords[0].words: the list is empty: give at least one word; template `default` \
                 (generator.config.templates.default): unknown placeholder `{{{{nope}}}}` at a; \
                 placeholders are {}",
                placeholder::NAMES
            )
        );
    }

    fn serde_json_config(json: &str) -> crate::Config {
        serde_json::from_str(json).expect("the config deserializes")
    }

    #[test]
    fn equality_follows_the_texts() {
        let a = load_inline(&[("SEC", "x: 1\n")]).expect("valid");
        let b = load_inline(&[("SEC", "x: 1\n")]).expect("valid");
        let c = load_inline(&[("SEC", "x: 2\n")]).expect("valid");
        assert_eq!(a, b);
        assert_eq!(a, a.clone());
        assert_ne!(a, c);
        assert!(format!("{a:?}").contains("\"SEC\": \"generator.config.templates.SEC\""));
    }
}
