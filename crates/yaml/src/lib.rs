//! The block-YAML subset the registry writes configs in and reads them back with, defined once:
//! the writer the default generator renders through ([`write`](mod@write)), the reader the schema
//! validator checks configs with before it parses anything in full ([`read`]), and the character
//! rules both follow (`chars`, private: one function or table bit per rule).
//!
//! # The subset
//!
//! A document is lines, each ending with `\n`. Its nodes are:
//!
//! - **block mappings** whose keys are strings, one `key: value` or `key:` per entry;
//! - **block sequences**, one `- item` per entry;
//! - **one-line scalars**: plain, single-quoted or double-quoted;
//! - `{}` and `[]`, only for an empty mapping or sequence; no other flow collection.
//!
//! **Indentation** is [`INDENT`] (two) spaces a level: the entries of a mapping that is a
//! value sit two columns right of its key, on the lines after it; a sequence that is a value
//! sits level with its key (as libyaml and `yaml_serde` write it); a collection that is a
//! sequence item starts on the `-`'s line and its other entries sit two columns right of the
//! `-` (`- key: 1` then `  other: 2`; `- - x`).
//!
//! **Scalars.** A string is written in the first of three styles that reads back as the same
//! string in YAML 1.1 and 1.2 alike:
//!
//! - *plain* when it starts with a letter, `_` or `/`, holds only letters, digits (of any
//!   script), spaces and `_ - . / ( ) + , ; =`, does not end with a space and is not one of
//!   `y n yes no on off true false null` in any case;
//! - *single-quoted* (a quote doubled) when every character is printable and none breaks a
//!   line: not a control character, DEL, NEL, U+2028, U+2029, the byte-order mark or a
//!   noncharacter U+FFFE/U+FFFF;
//! - *double-quoted* otherwise, with the escapes `\" \\ \n \t \r \0 \N \L \P`, then `\xHH` up to
//!   U+00FF and `\uHHHH` above, for exactly the characters single quotes may not hold.
//!
//! Booleans are `true` and `false`, integers decimal, floats Rust's shortest round-trip form
//! (always with a `.` or an exponent) or `.nan`, `.inf`, `-.inf`, and a null `null`. A mapping
//! key is a string that takes at most [`write::MAX_KEY_BYTES`] bytes as written (quotes and escapes
//! included), YAML's limit on implicit keys.
//!
//! # What the reader accepts and declines
//!
//! [`read::scan`] accepts a text when it is the subset above with a mapping at the top (or
//! exactly `{}\n`) and no key repeated within a mapping, and answers which dotted key paths hold
//! a value that is not null. It is a little wider than the writer where that costs nothing: a
//! plain *value* may also start with a digit, one of `. ( ) + ; =`, or `-` followed by another
//! plain character than a space (numbers, `-.inf`), and a null may be empty, `~`, `null`,
//! `Null` or `NULL`, as `yaml_serde` reads them. It declines, answering `None`, everything
//! else: tabs, comments, blank lines, trailing spaces, `\r`, anchors, aliases, tags, directives,
//! document markers, block and multi-line scalars, flow collections with content, a top level
//! that is not a mapping, a key repeated in one mapping, other spellings of null, unknown
//! escapes, nesting deeper than [`read::MAX_DEPTH`] levels and keys longer than
//! [`read::MAX_KEY_BYTES`] bytes.
//!
//! **The contract.** Every rule of the reader is stricter than YAML, never looser: what it
//! accepts, `yaml_serde` parses as a mapping with the same key paths and null values, and a
//! declined text is simply left to `yaml_serde` by the caller, so the caller's answers never
//! depend on which path ran. What the writer writes reads back through `yaml_serde` as the
//! value written. The tests hold both to `yaml_serde` on hand-written hazards, generated values
//! and random mutations (`tests/it/`), and pin the writer's bytes with golden documents:
//! configs' bytes feed their content hashes.
//!
//! # Design
//!
//! Both directions and their character rules live in this one crate because they are one
//! definition: the generator's emitter and the validator's scanner each carried a copy of the
//! quoting rules, and a drift between copies would make the validator fall back to the slow
//! parser for every config, or accept a text YAML reads differently. The code moved here from
//! the two plugins unchanged, and so did its speed: the writer renders several times faster than
//! `yaml_serde`'s emitter (which takes about 46 µs a config), the reader checks configs 8 to 12
//! times faster than a full parse (`cargo bench --bench validator`).
//!
//! Rejected: `yaml_serde` in both directions (the cost above, per config, in bulk
//! registration); a general YAML library of our own (the point is a subset small enough that
//! every rule can be stricter than YAML and checked against it); a module of `registry-core`
//! (the subset is a format two plugins share, not part of the domain, and the core stays free
//! of serializers).

pub mod read;
pub mod write;

mod chars;

/// Spaces per level of indentation, in what the writer writes and what the reader accepts.
pub const INDENT: usize = 2;
