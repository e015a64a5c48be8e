//! The values the exporter writes (store-independent), and the one place timestamps are
//! formatted: ISO-8601 UTC, as every report and `Query` result shows them.

/// A cell written to the store. Timestamps are milliseconds since the epoch; 0 means "not yet"
/// and is written as NULL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
    Ts(u64),
}

impl Value {
    pub fn text(s: &str) -> Value {
        // PostgreSQL's TEXT cannot hold NUL; the engine's order-hold ids start with one.
        Value::Text(s.replace('\0', ""))
    }
    pub fn int(v: impl TryInto<i64>) -> Value {
        Value::Int(v.try_into().unwrap_or(i64::MAX))
    }
    /// A timestamp, NULL when 0 ("not yet").
    pub fn ts(ms: u64) -> Value {
        if ms == 0 { Value::Null } else { Value::Ts(ms) }
    }
    pub fn opt_ts(ms: Option<u64>) -> Value {
        ms.map_or(Value::Null, Value::ts)
    }
    /// The value as PostgreSQL's COPY text format spells it (`\N` for NULL).
    pub fn copy_text(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("\\N"),
            Value::Int(v) => out.push_str(&v.to_string()),
            Value::Bool(b) => out.push_str(if *b { "t" } else { "f" }),
            Value::Ts(ms) => out.push_str(&sql_timestamp(*ms as i64)),
            Value::Text(s) => {
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
}

pub use engine::clock::{civil_from_days, days_from_civil};

const DAY_MS: i64 = 86_400_000;

/// The start of `ms`'s UTC month, in milliseconds since the epoch.
pub fn month_start_ms(ms: u64) -> u64 {
    let (year, month, _) = civil_from_days((ms as i64).div_euclid(DAY_MS));
    (days_from_civil(year, month, 1) * DAY_MS) as u64
}

fn split_ms(ms: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let days = ms.div_euclid(DAY_MS);
    let rest = ms.rem_euclid(DAY_MS);
    let (y, mo, d) = civil_from_days(days);
    (
        y,
        mo,
        d,
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` before the `Z` when the milliseconds are not zero.
pub fn iso_utc(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = split_ms(ms);
    if milli == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm`: a timestamp literal both stores parse.
pub fn sql_timestamp(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = split_ms(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{milli:03}")
}

/// Parses `YYYY-MM-DD` (an API date param) into milliseconds since the epoch (UTC midnight).
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let (m, d) = (m as u32, d as u32);
    let days = days_from_civil(y, m, d);
    // Reject 2026-02-31 and the like: the day must survive the round trip.
    (civil_from_days(days) == (y, m, d)).then_some(days * 86_400_000)
}

/// Parses the timestamp text PostgreSQL prints (`YYYY-MM-DD HH:MM:SS[.ffffff]`, also with a
/// `T`) into milliseconds since the epoch, or `None` if `s` is not one.
pub fn parse_sql_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let day = parse_date(&s[..10])?;
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let mut ms = 0;
    if b.len() > 19 {
        if b[19] != b'.' || b.len() == 20 {
            return None;
        }
        let frac = &s[20..];
        if !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut padded: String = frac.chars().take(3).collect();
        while padded.len() < 3 {
            padded.push('0');
        }
        ms = padded.parse().ok()?;
    }
    Some(day + ((h * 60 + mi) * 60 + sec) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for days in [-1000, 0, 1, 59, 365, 10_957, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(
            parse_date("2026-03-01"),
            Some(days_from_civil(2026, 3, 1) * 86_400_000)
        );
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(parse_date("2026-2-01"), None);
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(parse_sql_timestamp("1970-01-01 00:00:01.5"), Some(1_500));
        assert_eq!(parse_sql_timestamp("1970-01-02 00:00:00"), Some(86_400_000));
        assert_eq!(parse_sql_timestamp("hello"), None);
    }

    #[test]
    fn month_start_is_the_first_of_the_utc_month() {
        let day = |y, m, d| (days_from_civil(y, m, d) * DAY_MS) as u64;
        assert_eq!(month_start_ms(day(2026, 3, 1)), day(2026, 3, 1));
        assert_eq!(month_start_ms(day(2026, 3, 1) - 1), day(2026, 2, 1));
        assert_eq!(
            month_start_ms(day(2024, 2, 29) + 3_600_000),
            day(2024, 2, 1)
        );
        assert_eq!(month_start_ms(day(2026, 12, 31) + 1), day(2026, 12, 1));
    }
}
