//! The first of `Query`'s read-only defences: one statement, of a reading kind, naming no
//! writing or session-changing keyword. It gives the caller a clear INVALID_ARGUMENT; what makes
//! `Query` read-only *by construction* is the store side (a transaction that is rolled back,
//! READ ONLY in PostgreSQL, external access off and configuration locked in DuckDB, a time
//! limit), which holds even for a statement this check lets through.

use crate::error::{Error, Result};
use crate::limits;

/// Statements may start with these.
const READING: &[&str] = &[
    "SELECT",
    "WITH",
    "VALUES",
    "TABLE",
    "FROM",
    "SHOW",
    "DESCRIBE",
    "SUMMARIZE",
    "EXPLAIN",
];

/// Words that write, attach, copy, change settings or control transactions, and functions with
/// such effects, anywhere outside literals and quoted identifiers.
const FORBIDDEN: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "UPSERT",
    "COPY",
    "ATTACH",
    "DETACH",
    "SET",
    "RESET",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "GRANT",
    "REVOKE",
    "VACUUM",
    "CHECKPOINT",
    "INSTALL",
    "LOAD",
    "CALL",
    "PRAGMA",
    "EXPORT",
    "IMPORT",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "ABORT",
    "USE",
    "LOCK",
    "NOTIFY",
    "LISTEN",
    "PREPARE",
    "EXECUTE",
    "SET_CONFIG",
    "NEXTVAL",
    "SETVAL",
    "LO_IMPORT",
    "LO_EXPORT",
    "PG_READ_FILE",
    "PG_READ_BINARY_FILE",
    "PG_LS_DIR",
    "PG_TERMINATE_BACKEND",
    "PG_CANCEL_BACKEND",
    "DBLINK",
];

/// Returns the statement (without a trailing `;`) if it passes, else INVALID_ARGUMENT naming
/// what was refused.
pub fn check_read_only(sql: &str) -> Result<&str> {
    if sql.len() > limits::QUERY_SQL_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "sql: longer than {} bytes",
            limits::QUERY_SQL_BYTES_MAX
        )));
    }
    let statement = sql.trim().trim_end_matches(';').trim_end();
    let words = words(statement)?;
    let Some(first) = words.first() else {
        return Err(Error::InvalidArgument("sql: empty statement".into()));
    };
    if !READING.contains(&first.as_str()) {
        return Err(Error::InvalidArgument(format!(
            "sql: Query is read-only: a statement starting with {first} is not allowed (use SELECT, WITH, ...)"
        )));
    }
    if let Some(word) = words.iter().find(|w| FORBIDDEN.contains(&w.as_str())) {
        return Err(Error::InvalidArgument(format!(
            "sql: Query is read-only: {word} is not allowed (quote an identifier of that name)"
        )));
    }
    Ok(statement)
}

/// The unquoted words of `sql`, upper-cased; `;` outside literals → error (one statement only).
fn words(sql: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word).to_ascii_uppercase());
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                flush(&mut word, &mut out);
                // A doubled quote inside is an escaped one: the loop just re-enters.
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                flush(&mut word, &mut out);
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                flush(&mut word, &mut out);
                chars.next();
                let mut last = ' ';
                for d in chars.by_ref() {
                    if last == '*' && d == '/' {
                        break;
                    }
                    last = d;
                }
            }
            '$' if chars.peek().is_some_and(|d| *d == '$' || d.is_alphabetic()) => {
                // PostgreSQL dollar quoting could hide a second statement from this scan.
                return Err(Error::InvalidArgument(
                    "sql: dollar-quoted strings are not allowed in Query".into(),
                ));
            }
            ';' => {
                return Err(Error::InvalidArgument(
                    "sql: one statement only (a ';' separates statements)".into(),
                ));
            }
            c if c.is_alphanumeric() || c == '_' => word.push(c),
            _ => flush(&mut word, &mut out),
        }
    }
    flush(&mut word, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_and_writes_are_refused() {
        for ok in [
            "SELECT 1",
            "select sku, 'insert; drop' AS x FROM products;",
            "WITH t AS (SELECT 1) SELECT * FROM t",
            "SELECT \"update\" FROM x -- delete\n",
        ] {
            assert!(check_read_only(ok).is_ok(), "{ok}");
        }
        for bad in [
            "INSERT INTO products VALUES (1)",
            "SELECT 1; DELETE FROM orders",
            "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
            "COPY orders TO '/tmp/x.csv'",
            "ATTACH 'x.db'",
            "SET threads = 1",
            "SELECT set_config('a', 'b', false)",
            "",
            "  ;",
        ] {
            assert!(
                matches!(check_read_only(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
