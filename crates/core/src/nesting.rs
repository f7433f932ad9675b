//! A cheap pre-check for YAML from files the registry does not write itself: how deep its
//! collections nest and how much its aliases repeat, found in one pass over the text before a
//! full parser sees it.
//!
//! Configs checked by the validator, config templates (their directory is named by a
//! repository's `registry.toml`) and imported records are YAML from outside, parsed with
//! `yaml_serde` (libyaml's scanner and parser, translated to Rust). Measured on its 0.10.7 (release
//! build, one core):
//!
//! | input                                               | size      | `yaml_serde::from_str`      |
//! |-----------------------------------------------------|-----------|-----------------------------|
//! | `{a: ` × 100,000, closed                            | 500 KB    | 76.6 s, then "recursion limit exceeded" |
//! | `{a: ` × 30,000 / × 16,384 / × 1,000                | 150/82/5 KB | 7.3 s / 1.2 s / 5 ms     |
//! | `[` × 100,000, closed                               | 200 KB    | 0.40 s                      |
//! | block mappings, one more indentation per line, 30,000 levels | 450 MB | 2.6 s (linear in bytes) |
//! | `- ` × 30,000 on one line                           | 60 KB     | 11 ms                       |
//! | a 64 KiB list of mappings nested 64 (or 100) deep   | 64 KiB    | 18 ms, as at 16 levels     |
//! | "billion laughs": an anchored list of 100 scalars, 20 levels of 10 aliases each | 1.3 KB | 0.77 s, 400 MB |
//! | the same with 1,000 scalars                         | 3 KB      | over 4 GB (stopped by a 4 GB address-space limit) |
//!
//! Nesting costs time, not stack: libyaml's scanner walks its stack of possible keys, one per
//! open flow collection, for every token, so the time grows with size × depth (quadratic for a
//! document that is all nesting), while the loader collects events in a loop and the
//! deserializer refuses more than 128 levels ("recursion limit exceeded"), so no shape
//! overflowed the stack. Aliases cost memory: the deserializer expands each alias into a copy of
//! its anchored node, bounded only by 100 alias expansions per event of the document, and one
//! expansion may copy the whole document, so a few kilobytes become gigabytes.
//!
//! Decision: [`check`] follows libyaml's scanner closely enough to know, for every token, the
//! flow level (`[`, `{` outside quoted, block and plain scalars and comments) and the block
//! indentation levels (its stack of indentation columns), and refuses a text whose nesting goes
//! past [`DEFAULT_MAX_DEPTH`] (64) levels, flow and block together, naming the line and column of
//! the collection that went past. Real configs and templates nest fewer than 20 levels (the
//! built-in templates 4) and the validator's fast scanner follows 32; the parser refuses more
//! than 128 anyway, so what it read before and is refused now nests 65 to 128 levels; and with at
//! most 64 open flow collections the scanner's per-token walk is bounded, so parsing is linear in
//! the size (a 64 KiB config nested 64 deep parses as fast as a flat one). 128, the parser's own
//! limit, was the alternative: it would refuse nothing new, but doubles the per-token bound and
//! leaves no margin under the limit. libyaml opens no indentation level for a sequence at its
//! key's column (`key:` then `- item`) or for a single-pair mapping in a flow sequence
//! (`[a: b]`), so the parser may build up to twice the levels counted here, never fewer.
//!
//! The same pass bounds aliases. It counts tokens (at least one per node) and the tokens each
//! anchored node spans, with the aliases inside it counted as what they expand to; an alias adds
//! the count of its anchor's node, and an alias inside its own anchor's node (which the parser
//! follows until its 128-level limit) adds 128 times what the node spans so far. When the
//! aliases of a text add more than [`DEFAULT_MAX_ALIASED_NODES`] (65,536), it is refused at the
//! alias that went past: that many nodes is what the largest config the validator accepts
//! (64 KiB) could hold written out, a few megabytes as parsed values, so aliases never make a
//! text more costly than a large one without them, while an anchor of a few hundred nodes can
//! still be used a hundred times. Refusing every alias was rejected: configs may use anchors,
//! and the parser accepts them.
//!
//! The pass allocates nothing per token: a stack of indentation columns (one entry per block
//! level, at most the limit), and, for texts with anchors, a table of anchor names (spans of the
//! text) and a stack of the anchored nodes still open. Where the scanner would stop with an
//! error the check goes on: the parser never gets further, so what the check finds there can
//! only refuse a text the parser refuses too. It reads 160 to 250 MB/s, about a twelfth of
//! the parse it precedes (a 60 KiB config: 0.37 ms against 4.7 ms; `templates/default.yaml`:
//! 11 µs against 140 µs), and refuses the 100,000 nested flow mappings above in 3 µs and the
//! 3 KB billion laughs in 45 µs. The validator plugin's tests hold it to `yaml_serde` on
//! generated and mutated texts: the depth it measures against the depth of the parsed values,
//! and what aliases expand to against the nodes parsed.

use std::collections::HashMap;
use std::fmt;

/// The deepest nesting of collections, flow and block together, [`Limits::default`] allows.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// How many nodes, counted as tokens, the aliases of a text may add by [`Limits::default`].
pub const DEFAULT_MAX_ALIASED_NODES: u64 = 65_536;

/// How deep `yaml_serde` follows nested values, aliases included, before it gives up: an alias
/// inside its own anchor's node is expanded this many times at most.
const PARSER_DEPTH: u64 = 128;

/// How many bytes libyaml looks back for the start of a key without `?`.
const MAX_SIMPLE_KEY_BYTES: usize = 1024;

/// What [`check`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The deepest nesting of collections, flow and block together.
    pub max_depth: usize,
    /// The most nodes, counted as tokens, aliases may add to a text.
    pub max_aliased_nodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_aliased_nodes: DEFAULT_MAX_ALIASED_NODES,
        }
    }
}

/// What [`check`] measured in a text it allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    /// The deepest nesting of collections, flow and block together.
    pub depth: usize,
    /// The tokens of the text, each alias counted as what it expands to.
    pub nodes: u64,
    /// The tokens aliases add.
    pub aliased_nodes: u64,
}

/// Which kind of collection went past the depth limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// `[...]` or `{...}`.
    Flow,
    /// A mapping or sequence laid out by indentation.
    Block,
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Collection::Flow => "flow",
            Collection::Block => "block",
        })
    }
}

/// Why [`check`] refuses a text. Lines and columns count from 1, columns in characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NestingError {
    /// A collection starts deeper than the limit allows.
    #[error(
        "a {collection} collection at line {line} column {column} nests {depth} levels deep: \
         at most {max} are allowed"
    )]
    TooDeep {
        collection: Collection,
        depth: usize,
        max: usize,
        line: usize,
        column: usize,
    },
    /// An alias brings the nodes aliases add past the limit.
    #[error(
        "the alias at line {line} column {column} makes aliases repeat more than {max} nodes: \
         at most {max} are allowed"
    )]
    TooManyAliasedNodes {
        max: u64,
        line: usize,
        column: usize,
    },
}

impl NestingError {
    /// The line where the limit was passed, from 1: a caller that parses a part of a file adds
    /// the line the part starts on.
    pub fn line(&self) -> usize {
        match self {
            NestingError::TooDeep { line, .. } | NestingError::TooManyAliasedNodes { line, .. } => {
                *line
            }
        }
    }

    /// The column where the limit was passed, in characters from 1.
    pub fn column(&self) -> usize {
        match self {
            NestingError::TooDeep { column, .. }
            | NestingError::TooManyAliasedNodes { column, .. } => *column,
        }
    }
}

/// Scans `text` as libyaml would and refuses it when its collections nest deeper than
/// `limits.max_depth` or its aliases add more than `limits.max_aliased_nodes` nodes; see the
/// module documentation.
///
/// # Errors
/// The first place where a limit is passed, with its line and column.
///
/// # Examples
/// ```
/// use registry_core::nesting::{Limits, check};
///
/// let limits = Limits::default();
/// assert_eq!(check("a: {b: [1, 2]}\n", &limits).map(|m| m.depth), Ok(3));
/// let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
/// let err = check(&deep, &limits).expect_err("too deep");
/// assert_eq!(
///     err.to_string(),
///     "a flow collection at line 1 column 65 nests 65 levels deep: at most 64 are allowed"
/// );
/// ```
pub fn check(text: &str, limits: &Limits) -> Result<Measured, NestingError> {
    let mut scanner = Scanner {
        text: text.as_bytes(),
        limits: *limits,
        pos: 0,
        line: 0,
        col: 0,
        flow: 0,
        indent: -1,
        indents: Vec::new(),
        key: None,
        key_allowed: true,
        after_key_or_value: false,
        measured: Measured::default(),
        anchors: HashMap::new(),
        started: 0,
        open: Vec::new(),
    };
    scanner.run()?;
    Ok(scanner.measured)
}

/// Where a key without `?` may start: libyaml's possible simple key of the block context.
#[derive(Debug, Clone, Copy)]
struct Key {
    pos: usize,
    line: usize,
    col: usize,
    /// The deepest nesting since the key started: when the key is a flow collection, its
    /// mapping, found only at the `:` after it, holds all of it.
    deepest: usize,
}

/// The kinds of token libyaml's scanner tells apart, by their first characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Directive,
    DocumentMarker,
    FlowStart,
    FlowEnd,
    FlowEntry,
    BlockEntry,
    KeyIndicator,
    ValueIndicator,
    Alias,
    Anchor,
    Tag,
    BlockScalar,
    SingleQuoted,
    DoubleQuoted,
    Plain,
    /// A character no token starts with: the scanner stops with an error.
    Invalid,
}

impl Token {
    fn is_scalar(self) -> bool {
        matches!(
            self,
            Token::BlockScalar | Token::SingleQuoted | Token::DoubleQuoted | Token::Plain
        )
    }
}

/// Where an anchored node ends, as far as the pass can tell without parsing.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Its node has not started yet: the next token after tags decides.
    Pending {
        line: usize,
        indent: i64,
        seq_ok: bool,
    },
    /// A block node starting on a later line: it ends at the first token of the block context
    /// on a later line than the anchor at column `indent` or less (the anchor's indentation),
    /// except `-` at column `indent` when the node is a mapping value or key (whose sequence
    /// may stand at the key's own column).
    Block {
        line: usize,
        indent: i64,
        seq_ok: bool,
    },
    /// A flow collection: it ends when the flow level comes back to `level`.
    Flow { level: usize },
    /// A scalar: it ends with the current token.
    Scalar,
}

/// An anchor whose node has not ended.
#[derive(Debug)]
struct Open<'a> {
    name: &'a [u8],
    /// How many anchors started before this one: of two anchors of one name, the one that
    /// started later is the one aliases name, as the parser registers anchors where they start.
    order: u64,
    /// [`Measured::nodes`] when the node started.
    start: u64,
    end: End,
}

struct Scanner<'a> {
    text: &'a [u8],
    limits: Limits,
    pos: usize,
    /// The line, from 0.
    line: usize,
    /// The column in characters, from 0.
    col: usize,
    /// Open flow collections.
    flow: usize,
    /// The column of the innermost block collection, -1 outside any.
    indent: i64,
    /// The enclosing columns of `indent`: one entry per block level.
    indents: Vec<i64>,
    key: Option<Key>,
    key_allowed: bool,
    /// Whether the last token other than anchors and tags was `?` or `:` in the block context.
    after_key_or_value: bool,
    measured: Measured,
    /// The order and the size in tokens of each anchored node that ended, by name.
    anchors: HashMap<&'a [u8], (u64, u64)>,
    /// How many anchors have started.
    started: u64,
    open: Vec<Open<'a>>,
}

impl<'a> Scanner<'a> {
    /// The byte at `i`; 0 past the end, as libyaml reads the end (and a NUL, which its reader
    /// refuses).
    fn at(&self, i: usize) -> u8 {
        self.text.get(i).copied().unwrap_or(0)
    }

    /// The bytes of the line break at `i` (`\r\n` is one), 0 if there is none.
    fn break_len(&self, i: usize) -> usize {
        match (self.at(i), self.at(i + 1), self.at(i + 2)) {
            (b'\r', b'\n', _) => 2,
            (b'\r' | b'\n', _, _) => 1,
            (0xC2, 0x85, _) => 2,
            (0xE2, 0x80, 0xA8 | 0xA9) => 3,
            _ => 0,
        }
    }

    fn is_blank(&self, i: usize) -> bool {
        matches!(self.at(i), b' ' | b'\t')
    }

    fn is_break(&self, i: usize) -> bool {
        self.break_len(i) > 0
    }

    fn is_blankz(&self, i: usize) -> bool {
        self.is_blank(i) || self.is_break(i) || self.at(i) == 0
    }

    fn is_breakz(&self, i: usize) -> bool {
        self.is_break(i) || self.at(i) == 0
    }

    fn at_end(&self) -> bool {
        self.at(self.pos) == 0
    }

    /// Moves past one character.
    fn skip(&mut self) {
        let width = match self.at(self.pos) {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xFF => 4,
            // Not the first byte of a character: never the case in a `str`.
            _ => 1,
        };
        self.pos += width;
        self.col += 1;
    }

    /// Moves past the line break at the current position.
    fn skip_line(&mut self) {
        let len = self.break_len(self.pos);
        if len > 0 {
            self.pos += len;
            self.line += 1;
            self.col = 0;
        }
    }

    /// `---` or `...` at the start of a line, followed by a blank or the end of a line.
    fn at_document_marker(&self) -> bool {
        let rest = self.text.get(self.pos..).unwrap_or_default();
        self.col == 0
            && (rest.starts_with(b"---") || rest.starts_with(b"..."))
            && self.is_blankz(self.pos + 3)
    }

    fn run(&mut self) -> Result<(), NestingError> {
        loop {
            self.scan_to_next_token();
            if let Some(key) = self.key
                && (key.line < self.line || key.pos + MAX_SIMPLE_KEY_BYTES < self.pos)
            {
                self.key = None;
            }
            self.unroll(self.col as i64);
            if self.at_end() {
                return Ok(());
            }
            let token = self.token();
            let (line, col) = (self.line, self.col);
            self.before(token, line, col);
            self.measured.nodes = self.measured.nodes.saturating_add(1);
            self.fetch(token)?;
            self.after(token);
        }
    }

    /// libyaml's `scan_to_next_token`: blanks, comments and line breaks.
    fn scan_to_next_token(&mut self) {
        loop {
            if self.col == 0
                && self
                    .text
                    .get(self.pos..)
                    .is_some_and(|rest| rest.starts_with("\u{FEFF}".as_bytes()))
            {
                self.skip();
            }
            while self.at(self.pos) == b' '
                || ((self.flow > 0 || !self.key_allowed) && self.at(self.pos) == b'\t')
            {
                self.skip();
            }
            if self.at(self.pos) == b'#' {
                while !self.is_breakz(self.pos) {
                    self.skip();
                }
            }
            if !self.is_break(self.pos) {
                return;
            }
            self.skip_line();
            if self.flow == 0 {
                self.key_allowed = true;
            }
        }
    }

    /// libyaml's `fetch_next_token` dispatch, without consuming anything.
    fn token(&self) -> Token {
        let p = self.pos;
        let c = self.at(p);
        if self.col == 0 && c == b'%' {
            return Token::Directive;
        }
        if self.at_document_marker() {
            return Token::DocumentMarker;
        }
        let blankz_next = self.is_blankz(p + 1);
        match c {
            b'[' | b'{' => Token::FlowStart,
            b']' | b'}' => Token::FlowEnd,
            b',' => Token::FlowEntry,
            b'-' if blankz_next => Token::BlockEntry,
            b'?' if self.flow > 0 || blankz_next => Token::KeyIndicator,
            b':' if self.flow > 0 || blankz_next => Token::ValueIndicator,
            b'*' => Token::Alias,
            b'&' => Token::Anchor,
            b'!' => Token::Tag,
            b'|' | b'>' if self.flow == 0 => Token::BlockScalar,
            b'\'' => Token::SingleQuoted,
            b'"' => Token::DoubleQuoted,
            // `-` before anything but a blank, `?` and `:` before anything but a blank in the
            // block context: the start of a plain scalar.
            b'-' | b'?' | b':' => Token::Plain,
            b'#' | b'|' | b'>' | b'%' | b'@' | b'`' => Token::Invalid,
            _ if self.is_blankz(p) => Token::Invalid,
            _ => Token::Plain,
        }
    }

    /// Consumes one token, updating the levels as libyaml does.
    fn fetch(&mut self, token: Token) -> Result<(), NestingError> {
        match token {
            Token::Directive => {
                self.unroll(-1);
                self.remove_key();
                self.key_allowed = false;
                while !self.is_breakz(self.pos) {
                    self.skip();
                }
                self.skip_line();
            }
            Token::DocumentMarker => {
                self.unroll(-1);
                self.remove_key();
                self.key_allowed = false;
                for _ in 0..3 {
                    self.skip();
                }
            }
            Token::FlowStart => {
                self.save_key();
                self.flow += 1;
                self.deeper(Collection::Flow, self.line, self.col)?;
                self.key_allowed = true;
                self.skip();
            }
            Token::FlowEnd => {
                self.remove_key();
                self.flow = self.flow.saturating_sub(1);
                self.key_allowed = false;
                self.skip();
            }
            Token::FlowEntry => {
                self.remove_key();
                self.key_allowed = true;
                self.skip();
            }
            Token::BlockEntry => {
                if self.flow == 0 {
                    self.roll(self.col, self.line)?;
                }
                self.remove_key();
                self.key_allowed = true;
                self.skip();
            }
            Token::KeyIndicator => {
                if self.flow == 0 {
                    self.roll(self.col, self.line)?;
                }
                self.remove_key();
                self.key_allowed = self.flow == 0;
                self.skip();
            }
            Token::ValueIndicator => {
                // In a flow collection the key is the collection's own, not this one.
                match self.key.take_if(|_| self.flow == 0) {
                    Some(key) => {
                        if self.roll(key.col, key.line)? {
                            // The mapping starts before the key, around what the key holds.
                            self.check_depth(
                                Collection::Block,
                                key.deepest + 1,
                                key.line,
                                key.col,
                            )?;
                        }
                        self.key_allowed = false;
                    }
                    None => {
                        if self.flow == 0 {
                            self.roll(self.col, self.line)?;
                        }
                        self.key_allowed = self.flow == 0;
                    }
                }
                self.skip();
            }
            Token::Alias => {
                let (line, col) = (self.line, self.col);
                self.save_key();
                self.key_allowed = false;
                let name = self.name();
                self.alias(name, line, col)?;
            }
            Token::Anchor => {
                self.save_key();
                self.key_allowed = false;
                let name = self.name();
                self.started += 1;
                self.open.push(Open {
                    name,
                    order: self.started,
                    start: self.measured.nodes,
                    end: End::Pending {
                        line: self.line,
                        indent: self.indent,
                        seq_ok: self.after_key_or_value,
                    },
                });
            }
            Token::Tag => {
                self.save_key();
                self.key_allowed = false;
                self.tag();
            }
            Token::BlockScalar => {
                self.remove_key();
                self.key_allowed = true;
                self.block_scalar();
            }
            Token::SingleQuoted | Token::DoubleQuoted => {
                self.save_key();
                self.key_allowed = false;
                self.quoted(token == Token::SingleQuoted);
            }
            Token::Plain => {
                self.save_key();
                self.key_allowed = false;
                self.plain();
            }
            Token::Invalid => self.skip(),
        }
        Ok(())
    }

    fn save_key(&mut self) {
        if self.flow == 0 && self.key_allowed {
            self.key = Some(Key {
                pos: self.pos,
                line: self.line,
                col: self.col,
                deepest: 0,
            });
        }
    }

    fn remove_key(&mut self) {
        if self.flow == 0 {
            self.key = None;
        }
    }

    /// Checks the depth after a collection started at `line`, `col`.
    fn deeper(
        &mut self,
        collection: Collection,
        line: usize,
        col: usize,
    ) -> Result<(), NestingError> {
        let depth = self.indents.len() + self.flow;
        if let Some(key) = &mut self.key {
            key.deepest = key.deepest.max(depth);
        }
        self.check_depth(collection, depth, line, col)
    }

    fn check_depth(
        &mut self,
        collection: Collection,
        depth: usize,
        line: usize,
        col: usize,
    ) -> Result<(), NestingError> {
        self.measured.depth = self.measured.depth.max(depth);
        if depth > self.limits.max_depth {
            return Err(NestingError::TooDeep {
                collection,
                depth,
                max: self.limits.max_depth,
                line: line + 1,
                column: col + 1,
            });
        }
        Ok(())
    }

    /// libyaml's `roll_indent` in the block context: a block collection starts at `col` if
    /// it is right of the current one. Whether one started.
    fn roll(&mut self, col: usize, line: usize) -> Result<bool, NestingError> {
        if self.indent >= col as i64 {
            return Ok(false);
        }
        self.indents.push(self.indent);
        self.indent = col as i64;
        self.deeper(Collection::Block, line, col)?;
        Ok(true)
    }

    /// libyaml's `unroll_indent`: the block collections right of `col` end.
    fn unroll(&mut self, col: i64) {
        if self.flow > 0 {
            return;
        }
        while self.indent > col {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    /// An anchor's or alias's name: letters, digits, `_` and `-`.
    fn name(&mut self) -> &'a [u8] {
        let text = self.text;
        self.skip();
        let start = self.pos;
        while matches!(self.at(self.pos), b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'_' | b'-') {
            self.skip();
        }
        &text[start..self.pos]
    }

    /// A tag: `!<uri>`, or `!`, an optional handle and a suffix of URI characters.
    fn tag(&mut self) {
        let uri = |c: u8, verbatim: bool| {
            c.is_ascii_alphanumeric()
                || b"-_;/?:@&=+$.%!~*'()".contains(&c)
                || (verbatim && b",[]".contains(&c))
        };
        if self.at(self.pos + 1) == b'<' {
            self.skip();
            self.skip();
            while uri(self.at(self.pos), true) {
                self.skip();
            }
            if self.at(self.pos) == b'>' {
                self.skip();
            }
        } else {
            self.skip();
            while uri(self.at(self.pos), false) {
                self.skip();
            }
        }
    }

    /// libyaml's `scan_plain_scalar`, for its extent.
    fn plain(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.at_document_marker() || self.at(self.pos) == b'#' {
                break;
            }
            while !self.is_blankz(self.pos) {
                let c = self.at(self.pos);
                if self.flow > 0 && c == b':' && b",?[]{}".contains(&self.at(self.pos + 1)) {
                    // "found unexpected ':'": the scanner stops here.
                    self.skip();
                    return;
                }
                if (c == b':' && self.is_blankz(self.pos + 1))
                    || (self.flow > 0 && b",[]{}".contains(&c))
                {
                    break;
                }
                leading_blanks = false;
                self.skip();
            }
            if !(self.is_blank(self.pos) || self.is_break(self.pos)) {
                break;
            }
            while self.is_blank(self.pos) || self.is_break(self.pos) {
                if self.is_blank(self.pos) {
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && (self.col as i64) < indent {
                break;
            }
        }
        if leading_blanks {
            self.key_allowed = true;
        }
    }

    /// libyaml's `scan_flow_scalar`, for its extent.
    fn quoted(&mut self, single: bool) {
        let quote = if single { b'\'' } else { b'"' };
        self.skip();
        loop {
            if self.at_document_marker() || self.at_end() {
                // An error for the scanner: it stops here.
                return;
            }
            while !self.is_blankz(self.pos) {
                let c = self.at(self.pos);
                if single && c == b'\'' && self.at(self.pos + 1) == b'\'' {
                    self.skip();
                    self.skip();
                } else if c == quote {
                    break;
                } else if !single && c == b'\\' && self.is_break(self.pos + 1) {
                    self.skip();
                    self.skip_line();
                    break;
                } else if !single && c == b'\\' {
                    // An escape: the character after `\` never ends the scalar.
                    self.skip();
                    self.skip();
                } else {
                    self.skip();
                }
            }
            if self.at(self.pos) == quote {
                self.skip();
                return;
            }
            while self.is_blank(self.pos) || self.is_break(self.pos) {
                if self.is_blank(self.pos) {
                    self.skip();
                } else {
                    self.skip_line();
                }
            }
        }
    }

    /// libyaml's `scan_block_scalar`, for its extent.
    fn block_scalar(&mut self) {
        self.skip();
        let mut increment = 0;
        let digit = |c: u8| matches!(c, b'1'..=b'9').then(|| i64::from(c - b'0'));
        if matches!(self.at(self.pos), b'+' | b'-') {
            self.skip();
            if let Some(d) = digit(self.at(self.pos)) {
                increment = d;
                self.skip();
            }
        } else if let Some(d) = digit(self.at(self.pos)) {
            increment = d;
            self.skip();
            if matches!(self.at(self.pos), b'+' | b'-') {
                self.skip();
            }
        }
        while self.is_blank(self.pos) {
            self.skip();
        }
        if self.at(self.pos) == b'#' {
            while !self.is_breakz(self.pos) {
                self.skip();
            }
        }
        if !self.is_breakz(self.pos) {
            // "did not find expected comment or line break": the scanner stops here.
            return;
        }
        self.skip_line();
        let mut indent = match increment {
            0 => 0,
            n if self.indent >= 0 => self.indent + n,
            n => n,
        };
        if !self.block_scalar_breaks(&mut indent) {
            return;
        }
        while self.col as i64 == indent && !self.at_end() {
            while !self.is_breakz(self.pos) {
                self.skip();
            }
            self.skip_line();
            if !self.block_scalar_breaks(&mut indent) {
                return;
            }
        }
    }

    /// libyaml's `scan_block_scalar_breaks`: the indentation and empty lines before a line of a
    /// block scalar, and the scalar's indentation when not given. False where the scanner
    /// stops with an error (a tab in the indentation).
    fn block_scalar_breaks(&mut self, indent: &mut i64) -> bool {
        let mut max_indent = 0;
        loop {
            while (*indent == 0 || (self.col as i64) < *indent) && self.at(self.pos) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.col as i64);
            if (*indent == 0 || (self.col as i64) < *indent) && self.at(self.pos) == b'\t' {
                return false;
            }
            if !self.is_break(self.pos) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
        true
    }

    /// Before a token: anchored nodes that end where it starts, and what a pending anchor's
    /// node turns out to be.
    fn before(&mut self, token: Token, line: usize, col: usize) {
        if matches!(token, Token::Directive | Token::DocumentMarker) {
            // A new document: anchors do not reach across documents.
            self.open.clear();
            self.anchors.clear();
            return;
        }
        if self.open.is_empty() {
            return;
        }
        let col = col as i64;
        let leaves = |end: &End| match *end {
            End::Block {
                line: at,
                indent,
                seq_ok,
            } => {
                line > at
                    && col <= indent
                    && !(seq_ok && token == Token::BlockEntry && col == indent)
            }
            _ => false,
        };
        if self.flow == 0
            && let Some(i) = self.open.iter().position(|o| leaves(&o.end))
        {
            self.close_from(i);
        }
        let Some(&Open {
            end:
                End::Pending {
                    line: at,
                    indent,
                    seq_ok,
                },
            ..
        }) = self.open.last()
        else {
            return;
        };
        let end = if token == Token::Tag {
            return;
        } else if self.flow == 0 && line > at {
            End::Block {
                line: at,
                indent,
                seq_ok,
            }
        } else if token.is_scalar() {
            End::Scalar
        } else if token == Token::FlowStart {
            End::Flow { level: self.flow }
        } else {
            // No node follows the anchor: an empty one, or an error for the parser.
            return self.close_from(self.open.len() - 1);
        };
        if leaves(&end) {
            return self.close_from(self.open.len() - 1);
        }
        if let Some(top) = self.open.last_mut() {
            top.end = end;
        }
    }

    /// After a token: anchored scalars and flow collections that ended with it.
    fn after(&mut self, token: Token) {
        if !matches!(token, Token::Anchor | Token::Tag) {
            self.after_key_or_value =
                self.flow == 0 && matches!(token, Token::KeyIndicator | Token::ValueIndicator);
        }
        if self.open.is_empty() {
            return;
        }
        if let Some(i) = self.open.iter().position(|o| match o.end {
            End::Scalar => true,
            End::Flow { level } => token == Token::FlowEnd && self.flow <= level,
            _ => false,
        }) {
            self.close_from(i);
        }
    }

    /// Ends the anchored nodes from the `i`-th open one on.
    fn close_from(&mut self, i: usize) {
        let nodes = self.measured.nodes;
        for open in self.open.drain(i..) {
            let size = nodes.saturating_sub(open.start).max(1);
            let entry = self.anchors.entry(open.name).or_insert((0, 0));
            if entry.0 < open.order {
                *entry = (open.order, size);
            }
        }
    }

    /// Counts what the alias `name` at `line`, `col` expands to.
    fn alias(&mut self, name: &[u8], line: usize, col: usize) -> Result<(), NestingError> {
        let open = self.open.iter().rev().find(|o| o.name == name);
        let closed = self.anchors.get(name).copied();
        let size = match (open, closed) {
            (Some(open), closed) if closed.is_none_or(|(order, _)| order < open.order) => {
                // Inside its own anchor's node: followed until the parser's depth limit. The
                // node so far is what was counted before this alias.
                self.measured
                    .nodes
                    .saturating_sub(open.start + 1)
                    .max(1)
                    .saturating_mul(PARSER_DEPTH)
            }
            (_, Some((_, size))) => size,
            // An unknown anchor: an error for the parser.
            (_, None) => 1,
        };
        // The alias's own token is already counted.
        self.measured.nodes = self.measured.nodes.saturating_add(size - 1);
        self.measured.aliased_nodes = self.measured.aliased_nodes.saturating_add(size);
        if self.measured.aliased_nodes > self.limits.max_aliased_nodes {
            return Err(NestingError::TooManyAliasedNodes {
                max: self.limits.max_aliased_nodes,
                line: line + 1,
                column: col + 1,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(text: &str) -> usize {
        match check(text, &Limits::default()) {
            Ok(m) => m.depth,
            Err(e) => panic!("{text:?} refused: {e}"),
        }
    }

    /// Checks with a depth limit of `max`; `Ok` with the depth, or the error's message.
    fn with_max(text: &str, max: usize) -> Result<usize, String> {
        let limits = Limits {
            max_depth: max,
            ..Limits::default()
        };
        check(text, &limits)
            .map(|m| m.depth)
            .map_err(|e| e.to_string())
    }

    fn aliased(text: &str) -> u64 {
        match check(text, &Limits::default()) {
            Ok(m) => m.aliased_nodes,
            Err(e) => panic!("{text:?} refused: {e}"),
        }
    }

    #[test]
    fn depth_of_ordinary_yaml() {
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("plain text\n", 0),
            ("a: 1\n", 1),
            ("a: 1\nb: 2\n", 1),
            ("a:\n  b:\n    c: 1\n", 3),
            ("a:\n  b: 1\nc:\n  d: 2\n", 2),
            ("- a\n- b\n", 1),
            ("- - - x\n", 3),
            ("a:\n- 1\n- 2\n", 1),
            ("a:\n  - b:\n      c: [1, {d: 2}]\n", 6),
            ("[1, [2, [3]]]\n", 3),
            ("{a: {b: {c: 1}}}\n", 3),
            ("a: {b: [1, 2]}\n", 3),
            ("? a\n: b\n", 1),
            ("[a, b]: c\n", 2),
            ("a: [\n  1,\n 2\n]\n", 2),
            ("--- [1]\n--- {a: [2]}\n...\n", 2),
            ("%YAML 1.2\n---\na: 1\n", 1),
            ("\u{FEFF}a: [1]\n", 2),
            ("a: 1\r\nb:\r\n  c: [2]\r\n", 3),
        ];
        for (text, expected) in cases {
            assert_eq!(depth(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn brackets_in_scalars_and_comments_do_not_nest() {
        let cases: &[(&str, usize)] = &[
            ("a: '[[[['\n", 1),
            ("a: '[[''[['\n", 1),
            ("a: \"[[\\\"[[\"\n", 1),
            ("a: \"[[\\\n  [[\"\n", 1),
            ("a: x[[[\n", 1),
            ("a: x [[[ {{\n", 1),
            ("a: x\n  [[[\n", 1),
            ("a: 'multi\n  line [[[\n  quote'\n", 1),
            ("a: 1 # [[[[\n", 1),
            ("# [[[[\na: 1\n", 1),
            ("a: |\n  [[[[\n  {{{{\nb: 1\n", 1),
            ("a: >-\n  [[[[\n\n  \"\nb: 1\n", 1),
            ("a: |2\n    [[[[\nb: 1\n", 1),
            ("- |\n [[[[\n- x\n", 1),
            ("a: !tag [1]\n", 2),
            ("a: !<tag:x,[]> 1\n", 1),
            ("a: &anchor-1 [1]\nb: *anchor-1\n", 2),
            ("[a'b, c\"d]\n", 1),
            ("{a: b#c}\n", 1),
            ("[a#b, [c]]\n", 2),
            ("{a: 'x, ]', b: \"}\"}\n", 1),
            // After a quoted scalar, `[` starts a collection (which the parser then refuses).
            ("a: 'it''s' [\n", 2),
        ];
        for (text, expected) in cases {
            assert_eq!(depth(text), *expected, "{text:?}");
        }
    }

    /// Texts where a quote or `#` is not what it seems: the brackets after it still count.
    #[test]
    fn quotes_and_hashes_inside_plain_scalars_hide_nothing() {
        let deep = "[".repeat(10);
        for prefix in [
            "a: x \"\nb: ",
            "a: it's\nb: ",
            "a: x\n  \"y\nb: ",
            "a: b#c\nb: ",
            "a: \"q\" # \"\nb: ",
            "a: |\n  \"\nb: ",
            "a: '\n\n  x'\nb: ",
            "- x \"\n- ",
        ] {
            let text = format!("{prefix}{deep}");
            assert!(depth(&text) >= 10, "{text:?}: {}", depth(&text));
        }
    }

    #[test]
    fn the_limit_names_the_collection_and_the_place() {
        assert_eq!(with_max("[[[1]]]", 3), Ok(3));
        assert_eq!(
            with_max("[[[[1]]]]", 3),
            Err(
                "a flow collection at line 1 column 4 nests 4 levels deep: at most 3 are allowed"
                    .into()
            )
        );
        assert_eq!(
            with_max("a:\n  b:\n    c:\n      d: 1\n", 3),
            Err(
                "a block collection at line 4 column 7 nests 4 levels deep: at most 3 are allowed"
                    .into()
            )
        );
        assert_eq!(
            with_max("a:\n  b: [[1]]\n", 3),
            Err(
                "a flow collection at line 2 column 7 nests 4 levels deep: at most 3 are allowed"
                    .into()
            )
        );
        assert_eq!(
            with_max("- - - - x\n", 3),
            Err(
                "a block collection at line 1 column 7 nests 4 levels deep: at most 3 are allowed"
                    .into()
            )
        );
        // A mapping starts at its first key.
        assert_eq!(
            with_max("a:\n  b:\n    k: 2\n", 2),
            Err(
                "a block collection at line 3 column 5 nests 3 levels deep: at most 2 are allowed"
                    .into()
            )
        );
        // Columns count characters.
        assert_eq!(
            with_max("é: [[x]]\n", 2),
            Err(
                "a flow collection at line 1 column 5 nests 3 levels deep: at most 2 are allowed"
                    .into()
            )
        );
    }

    /// The shapes measured in the module documentation are refused at the first level past the
    /// limit, however long they go on.
    #[test]
    fn adversarial_nesting_is_refused_at_the_limit() {
        let n = 100_000;
        let flow_maps = format!("{}{}", "{a: ".repeat(n), "}".repeat(n));
        assert_eq!(
            check(&flow_maps, &Limits::default()),
            Err(NestingError::TooDeep {
                collection: Collection::Flow,
                depth: 65,
                max: 64,
                line: 1,
                column: 64 * 4 + 1,
            })
        );
        let flow_seqs = "[".repeat(n);
        assert!(matches!(
            check(&flow_seqs, &Limits::default()),
            Err(NestingError::TooDeep { column: 65, .. })
        ));
        let mut block_maps = String::new();
        for level in 0..1000 {
            block_maps.push_str(&" ".repeat(level));
            block_maps.push_str("k:\n");
        }
        assert!(matches!(
            check(&block_maps, &Limits::default()),
            Err(NestingError::TooDeep {
                collection: Collection::Block,
                line: 65,
                column: 65,
                ..
            })
        ));
        let block_seqs = format!("{}x\n", "- ".repeat(n));
        assert!(matches!(
            check(&block_seqs, &Limits::default()),
            Err(NestingError::TooDeep {
                collection: Collection::Block,
                line: 1,
                column: 129,
                ..
            })
        ));
    }

    #[test]
    fn aliases_count_what_they_expand_to() {
        let cases: &[(&str, u64)] = &[
            ("a: 1\n", 0),
            ("a: &x 1\nb: *x\n", 1),
            ("a: &x [1, 2]\nb: *x\nc: *x\n", 2 * 5),
            ("a: &x\n  k: v\n  l: w\nb: *x\n", 6),
            ("a: &x\n- 1\n- 2\nb: *x\n", 4),
            ("- &x\n  k: v\n- *x\n", 3),
            ("{&x a: *x}\n", 1),
            ("[&x [1], *x]\n", 3),
            ("&x !t 1\n", 0),
            ("a: *unknown\n", 1),
            // Anchors do not reach across documents.
            ("--- &x [1, 2, 3]\n--- *x\n", 1),
            // A name anchored again refers to the later node.
            ("a: &x [1, 2, 3]\nb: &x 1\nc: *x\n", 1),
            ("a: &x [&x [1, 2, 3]]\nc: *x\n", 7),
        ];
        for (text, expected) in cases {
            assert_eq!(aliased(text), *expected, "{text:?}");
        }
        // An alias inside its own node repeats it until the parser's depth limit.
        assert_eq!(aliased("&x [1, *x]\n"), 3 * 128);
    }

    fn laughs(scalars: usize, levels: usize) -> String {
        let mut text = format!("a: &a [{}]\n", vec!["x"; scalars].join(","));
        let mut previous = "a".to_owned();
        for level in 0..levels {
            let name = format!("l{level}");
            let items = vec![format!("*{previous}"); 10].join(",");
            text.push_str(&format!("{name}: &{name} [{items}]\n"));
            previous = name;
        }
        text
    }

    #[test]
    fn billion_laughs_are_refused_at_the_alias_that_goes_past() {
        // A list of 21 tokens, 10 aliases to it, and 10 aliases to the list of those.
        let small = laughs(10, 2);
        assert_eq!(aliased(&small), 10 * 21 + 10 * (1 + 10 * 21 + 9 + 1));
        let err = check(&laughs(1000, 20), &Limits::default()).expect_err("refused");
        assert_eq!(
            err,
            NestingError::TooManyAliasedNodes {
                max: DEFAULT_MAX_ALIASED_NODES,
                line: 3,
                column: 18
            }
        );
        assert_eq!((err.line(), err.column()), (3, 18));
        assert_eq!(
            err.to_string(),
            "the alias at line 3 column 18 makes aliases repeat more than 65536 nodes: at most \
             65536 are allowed"
        );
        let recursive = format!("&x [{}, *x]\n", vec!["1"; 1000].join(", "));
        assert!(matches!(
            check(&recursive, &Limits::default()),
            Err(NestingError::TooManyAliasedNodes { .. })
        ));
    }
}
