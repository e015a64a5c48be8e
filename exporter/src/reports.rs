//! The named reports: one SQL file each in `exporter/reports/` (compiled in, so the binary and
//! the files users read are the same text). A file starts with `-- description:` and
//! `-- params:` lines; `{{name}}` in its body is replaced by the validated param:
//!
//! | param | accepted | replaced by | default |
//! |---|---|---|---|
//! | `from`, `to` | `YYYY-MM-DD` (UTC; from inclusive, to exclusive) | `TIMESTAMP '…'` | all time |
//! | `limit` | 1 ..= `limits::REPORT_LIMIT_MAX` | the number | `limits::REPORT_LIMIT_DEFAULT` |
//! | `period` | `month` \| `quarter` | the word | `month` |
//! | `max_units` | 0 ..= 2^31 | the number | 0 |
//!
//! Both stores run the same text: the SQL sticks to what DuckDB and PostgreSQL share
//! (`date_trunc`, window functions, `CAST(... AS BIGINT)` around sums, integer division written
//! as `(a - a % b) / b`).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::limits;
use crate::store::Reader;
use crate::table::ResultTable;
use crate::value::{parse_date, sql_timestamp};

macro_rules! reports {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../reports/", $name, ".sql")))),*]
    };
}

/// Every report's name and SQL text, in the order `ListReports` shows them.
const SOURCES: &[(&str, &str)] = reports![
    "monthly_sales",
    "weekly_sales",
    "refunds_monthly",
    "stock_levels",
    "low_stock",
    "pending_orders",
    "top_products",
    "customer_tiers",
    "inventory_turnover",
    "sales_ranking",
    "customer_ltv",
    "revenue_trend",
    "slow_movers",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub name: &'static str,
    pub description: String,
    pub params: Vec<String>,
    pub sql: &'static str,
}

fn header<'a>(sql: &'a str, key: &str) -> &'a str {
    sql.lines()
        .find_map(|l| l.strip_prefix("-- ")?.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or("")
        .trim()
}

/// The catalogue, parsed from the files' headers.
pub fn catalogue() -> Vec<Report> {
    SOURCES
        .iter()
        .map(|(name, sql)| Report {
            name,
            description: header(sql, "description").to_string(),
            params: header(sql, "params")
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
            sql,
        })
        .collect()
}

pub fn find(name: &str) -> Result<Report> {
    catalogue()
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| Error::UnknownReport(name.to_string()))
}

fn bad(param: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("params.{param}: {why}"))
}

/// The SQL literal of param `name` (given `value` or its default).
fn literal(name: &str, value: Option<&str>) -> Result<String> {
    let number = |max: u64, default: u64| -> Result<String> {
        let Some(v) = value else {
            return Ok(default.to_string());
        };
        match v.parse::<u64>() {
            Ok(n) if n <= max => Ok(n.to_string()),
            _ => Err(bad(
                name,
                &format!("{v:?} is not a whole number up to {max}"),
            )),
        }
    };
    match name {
        "from" | "to" => {
            let ms = match value {
                None if name == "from" => 0,
                None => parse_date("9999-12-31").unwrap_or(i64::MAX),
                Some(v) => parse_date(v)
                    .ok_or_else(|| bad(name, &format!("{v:?} is not an ISO date (YYYY-MM-DD)")))?,
            };
            Ok(format!("TIMESTAMP '{}'", sql_timestamp(ms)))
        }
        "limit" => {
            if value == Some("0") {
                return Err(bad(name, "must be at least 1"));
            }
            number(
                u64::from(limits::REPORT_LIMIT_MAX),
                u64::from(limits::REPORT_LIMIT_DEFAULT),
            )
        }
        "max_units" => number(i32::MAX as u64, 0),
        "period" => match value.unwrap_or("month") {
            p @ ("month" | "quarter") => Ok(p.to_string()),
            other => Err(bad(name, &format!("{other:?} is not month or quarter"))),
        },
        _ => Err(bad(name, "unknown param")),
    }
}

/// The report's SQL with its params filled in; an unknown or malformed param is
/// INVALID_ARGUMENT naming it.
pub fn render(report: &Report, params: &BTreeMap<String, String>) -> Result<String> {
    if let Some(unknown) = params.keys().find(|k| !report.params.contains(k)) {
        return Err(bad(
            unknown,
            &format!(
                "{} takes no such param (it takes: {})",
                report.name,
                report.params.join(", ")
            ),
        ));
    }
    let mut sql = report.sql.to_string();
    for p in &report.params {
        let value = literal(p, params.get(p).map(String::as_str))?;
        sql = sql.replace(&format!("{{{{{p}}}}}"), &value);
    }
    Ok(sql)
}

/// Runs a named report on `reader`.
pub fn run(
    reader: &dyn Reader,
    name: &str,
    params: &BTreeMap<String, String>,
) -> Result<ResultTable> {
    let report = find(name)?;
    let sql = render(&report, params)?;
    reader.select(&sql).map_err(|e| match e {
        // Our own SQL failing is not the caller's fault.
        Error::InvalidArgument(m) => Error::Store(format!("report {name}: {m}")),
        other => other,
    })
}

/// Runs ad-hoc read-only SQL on `reader`.
pub fn query(reader: &dyn Reader, sql: &str) -> Result<ResultTable> {
    let statement = crate::guard::check_read_only(sql)?;
    reader.select(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_has_a_description_and_renders() {
        let all = catalogue();
        assert_eq!(all.len(), SOURCES.len());
        for r in &all {
            assert!(!r.description.is_empty(), "{}", r.name);
            let sql = render(r, &BTreeMap::new()).unwrap();
            assert!(!sql.contains("{{"), "{}: {sql}", r.name);
        }
    }

    #[test]
    fn bad_params_are_named() {
        let r = find("monthly_sales").unwrap();
        let p = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        let err = render(&r, &p("from", "2026-13-01"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("params.from"), "{err}");
        let err = render(&r, &p("colour", "red")).unwrap_err().to_string();
        assert!(err.contains("params.colour"), "{err}");
        let top = find("top_products").unwrap();
        assert!(render(&top, &p("limit", "0")).is_err());
        assert!(render(&top, &p("limit", "5")).unwrap().contains("LIMIT 5"));
        assert!(matches!(find("nope"), Err(Error::UnknownReport(_))));
        let trend = find("revenue_trend").unwrap();
        assert!(
            render(&trend, &p("period", "quarter"))
                .unwrap()
                .contains("AS quarter")
        );
        assert!(render(&trend, &p("period", "year")).is_err());
    }
}
