//! A report's or query's result, normalised the same way for both stores: every value a
//! string, money integer cents (the SQL casts), timestamps ISO-8601 UTC, NULL as "", and the
//! period columns by name: `month` → `YYYY-MM`, `quarter` → `YYYY-Qn`, `week`/`day` →
//! `YYYY-MM-DD` (the period's first day).

use crate::value::{iso_utc, parse_sql_timestamp};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A cell as the store returned it, before normalisation.
pub enum Cell {
    Null,
    /// Milliseconds since the epoch (a typed timestamp).
    Ts(i64),
    /// Days since the epoch (a typed date).
    Date(i64),
    /// Anything else, already as text (a PostgreSQL timestamp's text is recognised here too).
    Text(String),
}

/// The normalised text of `cell` in column `column`.
pub fn normalise(column: &str, cell: Cell) -> String {
    let ms = match cell {
        Cell::Null => return String::new(),
        Cell::Ts(ms) => Some(ms),
        Cell::Date(days) => Some(days * 86_400_000),
        // A bare date stays as it is, except in a period column.
        Cell::Text(text) => match parse_sql_timestamp(&text).or_else(|| {
            matches!(column, "month" | "week" | "day" | "quarter")
                .then(|| crate::value::parse_date(&text))
                .flatten()
        }) {
            Some(ms) => Some(ms),
            None => return text,
        },
    };
    let iso = iso_utc(ms.unwrap_or(0));
    match column {
        "month" => iso[..7].to_string(),
        "week" | "day" => iso[..10].to_string(),
        "quarter" => {
            let month: u32 = iso[5..7].parse().unwrap_or(1);
            format!("{}-Q{}", &iso[..4], (month - 1) / 3 + 1)
        }
        _ => iso,
    }
}

impl ResultTable {
    /// CSV (RFC 4180: fields with commas, quotes or newlines are quoted).
    pub fn to_csv(&self) -> String {
        let field = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let parts: Vec<String> = cells.iter().map(|c| field(c)).collect();
            out.push_str(&parts.join(","));
            out.push('\n');
        };
        line(&self.columns, &mut out);
        for row in &self.rows {
            line(row, &mut out);
        }
        out
    }

    /// A JSON array of objects, one per row, keyed by column.
    pub fn to_json(&self) -> String {
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = self
            .rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(row.iter().map(|v| serde_json::Value::String(v.clone())))
                    .collect()
            })
            .collect();
        serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
    }

    /// An aligned text table for a terminal.
    pub fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &self.rows {
            for (w, v) in widths.iter_mut().zip(row) {
                *w = (*w).max(v.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.columns);
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("  "));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out.push_str(&format!("({} rows)\n", self.rows.len()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_by_column_name() {
        let ms = 1_772_323_200_000; // 2026-03-01T00:00:00Z
        assert_eq!(normalise("month", Cell::Ts(ms)), "2026-03");
        assert_eq!(normalise("quarter", Cell::Ts(ms)), "2026-Q1");
        assert_eq!(
            normalise("week", Cell::Text("2026-03-01 00:00:00".into())),
            "2026-03-01"
        );
        assert_eq!(normalise("at", Cell::Ts(ms)), "2026-03-01T00:00:00Z");
        assert_eq!(normalise("sku", Cell::Text("A-1".into())), "A-1");
        assert_eq!(normalise("x", Cell::Null), "");
    }
}
