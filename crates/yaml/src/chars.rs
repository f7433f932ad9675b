//! The character rules of the subset, each written once and used by both directions: what a
//! plain scalar may hold and start with, which words must be quoted, what a quoted scalar may
//! hold as it is, and the escapes of double-quoted scalars.
//!
//! The writer and the reader each had their own copy of these rules before this crate; two copies
//! of a quoting rule drift, and a drift either makes the reader decline what the writer writes
//! (the validator falls back to the slow parser) or, worse, lets one side accept what YAML reads
//! differently. Here each rule is one function on characters. The hot loops of both directions
//! look bytes up in [`CLASS`] instead; its bits are computed at compile time from the same
//! ASCII rules the functions use, and the functions answer for ASCII from the table, so the
//! table and the rule cannot disagree. Bytes above 0x7F have no class bits: they are parts of
//! characters and are checked as characters.
//!
//! The rules are `#[inline]`: the reader and the writer call them per character or per key from
//! their own modules, which the compiler puts in other codegen units than this one. Without it,
//! and with the reader's runs testing a bit passed at run time, the reader took 5 % longer than
//! when it had its own copies of the rules (5,603 rendered configs, thread CPU time); with both
//! fixed it takes 1 % less, and the writer's scalars 15 % less.

/// [`CLASS`] bit: the byte is ASCII.
pub(crate) const ASCII: u8 = 1;
/// [`CLASS`] bit: the byte may stand in a plain scalar (see [`plain_char`]).
pub(crate) const PLAIN: u8 = 1 << 1;
/// [`CLASS`] bit: the byte may stand in a quoted scalar as it is (see [`is_quotable`]).
pub(crate) const QUOTABLE: u8 = 1 << 2;
/// [`CLASS`] bit: a plain key, and any plain string the writer writes, may start with the byte
/// (see [`plain_start`]).
pub(crate) const KEY_START: u8 = 1 << 3;
/// [`CLASS`] bit: a plain value the reader accepts may start with the byte (see
/// [`plain_value_start`]); `-` is not marked, as it needs the next character.
pub(crate) const VALUE_START: u8 = 1 << 4;
/// [`CLASS`] bit: a single-quoted scalar holds the byte as it is, in a run the reader skips.
pub(crate) const SINGLE_RUN: u8 = 1 << 5;
/// [`CLASS`] bit: a double-quoted scalar holds the byte as it is, in a run the reader skips.
pub(crate) const DOUBLE_RUN: u8 = 1 << 6;

/// The ASCII punctuation a plain scalar may hold: space and `_ - . / ( ) + , ; =`. None of them
/// is an indicator YAML gives a meaning inside a plain scalar on one line.
const fn plain_punctuation(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'_' | b'-' | b'.' | b'/' | b'(' | b')' | b'+' | b',' | b';' | b'='
    )
}

/// The classes of every byte, computed once from the ASCII rules below.
pub(crate) const CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 0x80 {
        let c = b as u8;
        let mut bits = ASCII;
        if c.is_ascii_alphanumeric() || plain_punctuation(c) {
            bits |= PLAIN;
        }
        if is_quotable(c as char) {
            bits |= QUOTABLE;
            if c != b'\'' {
                bits |= SINGLE_RUN;
            }
            if c != b'"' && c != b'\\' {
                bits |= DOUBLE_RUN;
            }
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'/' {
            bits |= KEY_START | VALUE_START;
        }
        if c.is_ascii_digit() || matches!(c, b'.' | b'(' | b')' | b'+' | b';' | b'=') {
            bits |= VALUE_START;
        }
        class[b] = bits;
        b += 1;
    }
    class
};

/// Whether `b` has the bit `bit` in [`CLASS`].
#[inline(always)]
pub(crate) fn has(b: u8, bit: u8) -> bool {
    CLASS[usize::from(b)] & bit != 0
}

/// Whether a plain scalar may hold `c` after its first character: letters and digits of any
/// script, and the punctuation of [`plain_punctuation`].
#[inline]
pub(crate) fn plain_char(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() => has(b, PLAIN),
        _ => c.is_alphanumeric(),
    }
}

/// Whether a plain key, or any string the writer writes plain, may start with `c`: a letter,
/// `_` or `/`. Digits, `-`, `.` and the rest are left to quoting: they start numbers, dates,
/// sequence items and YAML 1.1 oddities.
#[inline]
pub(crate) fn plain_start(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() => has(b, KEY_START),
        _ => c.is_alphabetic(),
    }
}

/// Whether a plain value the reader accepts may start with `c`, followed by `next`: what
/// [`plain_start`] allows, digits of any script, one of `. ( ) + ; =`, or `-` followed by a
/// plain character other than a space (not an item). Values may be numbers, booleans or
/// strings: only whether they are null matters to the reader.
#[inline]
pub(crate) fn plain_value_start(c: char, next: Option<char>) -> bool {
    match u8::try_from(c) {
        Ok(b'-') => next.is_some_and(|n| n != ' ' && plain_char(n)),
        Ok(b) if b.is_ascii() => has(b, VALUE_START),
        _ => c.is_alphanumeric(),
    }
}

/// Words some YAML version reads as a boolean or a null, in any case: written plain, `yes` or
/// `Off` would not read back as strings. Checked on bytes, so that the reader need not decode.
#[inline]
pub(crate) fn is_reserved_word(s: &[u8]) -> bool {
    s.len() <= 5
        && ["y", "n", "yes", "no", "on", "off", "true", "false", "null"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w.as_bytes()))
}

/// Whether `s` can be written plain and still read back as this string, under YAML 1.1 and
/// 1.2: it starts as [`plain_start`] says, holds only [`plain_char`]s, does not end with a
/// space and is not a reserved word. Deliberately stricter than YAML: anything starting with a
/// digit (numbers, dates, times, `0x`) and every indicator character are left to quoting. The
/// reader's plain keys are exactly these strings, checked as it finds where the key ends.
pub(crate) fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    // ASCII strings, the usual case, are checked byte by byte without decoding.
    let all_allowed = if s.is_ascii() {
        s.bytes().all(|b| has(b, PLAIN))
    } else {
        s.chars().all(plain_char)
    };
    plain_start(first) && !s.ends_with(' ') && all_allowed && !is_reserved_word(s.as_bytes())
}

/// Characters a quoted scalar may hold as they are: YAML's printable characters, minus those
/// that break a line in YAML 1.1 (NEL, U+2028, U+2029) and the byte-order mark. The writer
/// escapes every other character, inside double quotes; the reader declines them unescaped.
#[inline]
pub(crate) const fn is_quotable(c: char) -> bool {
    match c {
        ' '..='~' => true,
        '\u{A0}'..='\u{D7FF}' => !matches!(c, '\u{2028}' | '\u{2029}'),
        '\u{E000}'..='\u{FFFD}' => c != '\u{FEFF}',
        '\u{10000}'.. => true,
        _ => false,
    }
}

/// The one-letter escapes of double-quoted scalars, in the order the writer prefers them: the
/// character and the letter after the backslash. The writer escapes these characters so; the
/// reader accepts exactly these letters, and [`HEX_ESCAPES`].
pub(crate) const SHORT_ESCAPES: [(char, u8); 9] = [
    ('"', b'"'),
    ('\\', b'\\'),
    ('\n', b'n'),
    ('\t', b't'),
    ('\r', b'r'),
    ('\0', b'0'),
    ('\u{85}', b'N'),
    ('\u{2028}', b'L'),
    ('\u{2029}', b'P'),
];

/// The escapes by code point, with their number of hexadecimal digits: `\xHH` for a character
/// up to U+00FF, `\uHHHH` for the others. Every character the writer escapes this way is in the
/// Basic Multilingual Plane (the rest are [`is_quotable`]), and none is a surrogate.
pub(crate) const HEX_ESCAPES: [(u8, usize); 2] = [(b'x', 2), (b'u', 4)];

/// The letter of the short escape of `c`, if it has one.
#[inline]
pub(crate) fn escape_letter(c: char) -> Option<u8> {
    SHORT_ESCAPES
        .iter()
        .find(|(escaped, _)| *escaped == c)
        .map(|&(_, letter)| letter)
}

/// The character a short escape's letter stands for.
#[inline]
pub(crate) fn unescape(letter: u8) -> Option<char> {
    SHORT_ESCAPES
        .iter()
        .find(|(_, l)| *l == letter)
        .map(|&(c, _)| c)
}

/// The number of hexadecimal digits after a hexadecimal escape's letter.
#[inline]
pub(crate) fn hex_digits(letter: u8) -> Option<usize> {
    HEX_ESCAPES
        .iter()
        .find(|(l, _)| *l == letter)
        .map(|&(_, digits)| digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table and the character functions give the same answer for every ASCII character,
    /// and the rules themselves are what the module documentation says.
    #[test]
    fn the_table_is_the_rules() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            assert!(has(b, ASCII));
            assert_eq!(
                plain_char(c),
                c.is_ascii_alphanumeric() || " _-./()+,;=".contains(c),
                "{c:?}"
            );
            assert_eq!(
                plain_start(c),
                c.is_ascii_alphabetic() || "_/".contains(c),
                "{c:?}"
            );
            assert_eq!(has(b, QUOTABLE), is_quotable(c), "{c:?}");
            assert_eq!(has(b, QUOTABLE), (' '..='~').contains(&c), "{c:?}");
            assert_eq!(has(b, SINGLE_RUN), is_quotable(c) && c != '\'', "{c:?}");
            assert_eq!(
                has(b, DOUBLE_RUN),
                is_quotable(c) && c != '"' && c != '\\',
                "{c:?}"
            );
            if c != '-' {
                assert_eq!(has(b, VALUE_START), plain_value_start(c, None), "{c:?}");
            }
        }
        for b in 0x80u8..=0xFF {
            assert_eq!(CLASS[usize::from(b)], 0, "{b:#x}");
        }
    }

    #[test]
    fn value_starts() {
        for (c, next, expected) in [
            ('a', None, true),
            ('1', None, true),
            ('.', None, true),
            ('=', None, true),
            ('-', Some('1'), true),
            ('-', Some('-'), true),
            ('-', Some(' '), false),
            ('-', Some(':'), false),
            ('-', None, false),
            ('é', None, true),
            ('٣', None, true),
            ('✓', None, false),
            (':', None, false),
            ('#', None, false),
            ('\'', None, false),
        ] {
            assert_eq!(plain_value_start(c, next), expected, "{c:?} {next:?}");
        }
    }

    #[test]
    fn escapes_go_both_ways() {
        for (c, letter) in SHORT_ESCAPES {
            assert_eq!(escape_letter(c), Some(letter));
            assert_eq!(unescape(letter), Some(c));
            assert_eq!(hex_digits(letter), None);
        }
        assert_eq!(escape_letter('a'), None);
        assert_eq!(unescape(b'e'), None);
        assert_eq!(hex_digits(b'x'), Some(2));
        assert_eq!(hex_digits(b'u'), Some(4));
        assert_eq!(hex_digits(b'U'), None);
    }

    #[test]
    fn plain_strings() {
        for (s, expected) in [
            ("Block SSH", true),
            ("/health", true),
            ("_x", true),
            ("é ünïcödé", true),
            ("a-b_c.d/e (f) +g, h; i=j", true),
            ("", false),
            ("yes", false),
            ("nO", false),
            ("nulls", true),
            ("1.3", false),
            ("trailing ", false),
            ("a: b", false),
            ("a#b", false),
            ("✓", false),
            ("a✓", false),
        ] {
            assert_eq!(is_plain_safe(s), expected, "{s:?}");
        }
    }
}
