//! Wall-clock helpers: milliseconds since the epoch, and their RFC 3339 / RFC 5322 forms for
//! messages (no date crate for two formats).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second, weekday 0 = Sunday) in UTC.
fn civil(ms: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = engine::clock::civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7) as u32;
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        weekday,
    )
}

pub fn rfc3339(ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The `Date:` header form.
pub fn rfc5322(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = civil(ms);
    format!(
        "{}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} +0000",
        DAYS[wd as usize],
        MONTHS[mo as usize - 1]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        // 2026-12-01T08:05:29Z was a Tuesday.
        let ms = 1_796_112_329_000;
        assert_eq!(super::rfc3339(ms), "2026-12-01T08:05:29Z");
        assert_eq!(super::rfc5322(ms), "Tue, 01 Dec 2026 08:05:29 +0000");
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
