//! Timestamps: milliseconds since the Unix epoch, shown as RFC 3339 in UTC.
//!
//! A calendar crate was rejected: the registry only stamps and prints instants, which takes the
//! one civil-date conversion below.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp(ms)
    }
}

impl Timestamp {
    /// An instant as a person gives one (`--since`): RFC 3339 in UTC
    /// (`2026-12-06T22:00:00Z`, milliseconds optional), a date (`2026-12-06`, its midnight
    /// UTC), or a time before `now`: a number and `s`, `m`, `h` or `d` (`90m`, `7d`).
    ///
    /// # Errors
    /// One line naming the forms accepted.
    pub fn parse_instant(text: &str, now: Timestamp) -> Result<Timestamp, String> {
        let text = text.trim();
        let relative = text
            .char_indices()
            .last()
            .and_then(|(at, unit)| Some((text[..at].parse::<i64>().ok()?, unit)));
        if let Some((n, unit)) = relative
            && n >= 0
        {
            let seconds = match unit {
                's' => Some(1),
                'm' => Some(60),
                'h' => Some(3600),
                'd' => Some(86_400),
                _ => None,
            };
            if let Some(ms) = seconds.and_then(|s| n.checked_mul(s * 1000)) {
                return Ok(Timestamp(now.0.saturating_sub(ms)));
            }
        }
        let full = if text.len() == 10 {
            format!("{text}T00:00:00Z")
        } else {
            text.to_owned()
        };
        parse_rfc3339(&full).ok_or_else(|| {
            format!(
                "`{text}` is not an instant: give UTC in RFC 3339 (2026-12-06T22:00:00Z), a date \
                 (2026-12-06), or a time ago (90m, 24h, 7d)"
            )
        })
    }
}

impl Timestamp {
    /// The RFC 3339 text, written into `out` without allocating: what `Display` and
    /// `Serialize` write, one buffer instead of seven formatted integers (a timestamp is
    /// written twice in every entry's JSON).
    fn text<'b>(&self, out: &'b mut [u8; 48]) -> &'b str {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            // Outside four-digit years, which no registry stamps: the formatter's general way.
            let mut cursor = std::io::Cursor::new(&mut out[..]);
            let _ = std::io::Write::write_fmt(
                &mut cursor,
                format_args!(
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
                    rem / 3600,
                    rem % 3600 / 60,
                    rem % 60
                ),
            );
            let n = usize::try_from(cursor.position()).unwrap_or(0);
            return std::str::from_utf8(&out[..n]).unwrap_or_default();
        }
        let mut at = 0;
        let mut put = |value: i64, width: u32, then: u8| {
            for k in (0..width).rev() {
                // A digit: 0..=9 after the modulo.
                out[at] = b'0' + u8::try_from(value / 10_i64.pow(k) % 10).unwrap_or(0);
                at += 1;
            }
            if then != 0 {
                out[at] = then;
                at += 1;
            }
        };
        put(y, 4, b'-');
        put(m, 2, b'-');
        put(d, 2, b'T');
        put(rem / 3600, 2, b':');
        put(rem % 3600 / 60, 2, b':');
        put(rem % 60, 2, b'.');
        put(ms, 3, b'Z');
        std::str::from_utf8(&out[..24]).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    /// `2026-11-27T16:49:44.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.text(&mut [0; 48]))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text(&mut [0; 48]))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad timestamp `{s}`: expected UTC in RFC 3339, e.g. 2026-11-27T17:49:44.123Z"
            ))
        })
    }
}

/// Parses what `Display` writes (UTC, `Z`, optional milliseconds).
fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let ms = match &s[19..] {
        "Z" => 0,
        rest => {
            let frac = rest.strip_prefix('.')?.strip_suffix('Z')?;
            if frac.len() != 3 {
                return None;
            }
            frac.parse().ok()?
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(Timestamp(
        ((days * 86_400) + h * 3600 + mi * 60 + sec) * 1000 + ms,
    ))
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_as_people_give_them() {
        let now = Timestamp(1_795_801_784_123);
        assert_eq!(
            Timestamp::parse_instant("90m", now),
            Ok(Timestamp(now.0 - 5_400_000))
        );
        assert_eq!(
            Timestamp::parse_instant("7d", now),
            Ok(Timestamp(now.0 - 604_800_000))
        );
        assert_eq!(
            Timestamp::parse_instant("2026-11-27", now),
            Ok(Timestamp(1_795_737_600_000))
        );
        assert_eq!(
            Timestamp::parse_instant("2026-11-27T17:49:44.123Z", now),
            Ok(now)
        );
        for bad in ["", "yesterday", "-3d", "7w", "2026-11-31X"] {
            assert!(Timestamp::parse_instant(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_and_parses() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_795_801_784_123, "2026-11-27T17:49:44.123Z"),
        ] {
            assert_eq!(Timestamp(ms).to_string(), text);
            assert_eq!(parse_rfc3339(text), Some(Timestamp(ms)));
        }
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    }

    /// The digit writer gives what the formatter gives, in and outside four-digit years, and
    /// JSON carries the same text.
    #[test]
    fn the_written_text_is_the_formatted_one() {
        let formatted = |ms: i64| {
            let secs = ms.div_euclid(1000);
            let rem = secs.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60,
                ms.rem_euclid(1000)
            )
        };
        let year_10000 = 253_402_300_800_000_i64;
        for ms in (0..2_000)
            .map(|i| -62_167_219_200_000 + i * 126_704_760_012_345)
            .chain([-62_167_219_200_001, year_10000, i64::MIN / 4, 7])
        {
            let t = Timestamp(ms);
            assert_eq!(t.to_string(), formatted(ms), "{ms}");
            assert_eq!(
                serde_json::to_string(&t).expect("a string"),
                format!("\"{}\"", formatted(ms))
            );
        }
        assert_eq!(
            format!("{:>26}", Timestamp(0)),
            "  1970-01-01T00:00:00.000Z"
        );
    }

    /// Exports write timestamps as text and imports read them back: every instant from year 0
    /// to 9999, before the epoch included, must come back to the millisecond.
    #[test]
    fn every_four_digit_year_round_trips() {
        let first = -62_167_219_200_000_i64; // 0000-01-01T00:00:00.000Z
        let last = 253_402_300_799_999_i64; // 9999-12-31T23:59:59.999Z
        let step = (last - first) / 100_003;
        let samples = (0..=100_003)
            .map(|i| first + i * step)
            .chain([first, -1, 0, last]);
        for ms in samples {
            let text = Timestamp(ms).to_string();
            assert_eq!(parse_rfc3339(&text), Some(Timestamp(ms)), "{text}");
        }
    }
}
