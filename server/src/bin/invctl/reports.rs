//! `invctl reports | report NAME | query SQL`: the Reports service, or — with `--db FILE` — a
//! DuckDB file read directly while the server is stopped.

use std::path::PathBuf;

use clap::Args;
use proto::inventory::v1 as pb;
use serde_json::{Value, json};
use tonic::Status;

use super::{Client, Failure, usage};

#[derive(Args, Debug)]
pub struct ResultArgs {
    /// Read this DuckDB file directly instead of asking the server.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Print CSV instead of a table.
    #[arg(long)]
    csv: bool,
    /// Also write an SVG bar chart of the result (first column = period) to FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
}

/// What to run: a named report with its params, or read-only SQL.
pub enum Run {
    Report {
        name: String,
        params: Vec<(String, String)>,
    },
    Query {
        sql: String,
    },
}

impl Run {
    fn title(&self) -> &str {
        match self {
            Run::Report { name, .. } => name,
            Run::Query { .. } => "query",
        }
    }
}

pub fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// `reports`: the named reports with their params.
pub async fn list(client: &Client, json_out: bool) -> Result<Value, Failure> {
    let list = client
        .reports()
        .list_reports(client.request(pb::ListReportsRequest {}))
        .await?
        .into_inner();
    if !json_out {
        for r in &list.reports {
            println!("{:<20} [{}] {}", r.name, r.params.join(", "), r.description);
        }
    }
    Ok(json!({"reports": list.reports.iter().map(|r| json!({
        "name": r.name, "description": r.description, "params": r.params,
    })).collect::<Vec<_>>()}))
}

/// `report`/`query` with `--db`: no server involved. `None` without `--db`.
pub fn run_on_file(run: &Run, out: &ResultArgs, json_out: bool) -> Option<Result<u8, Failure>> {
    let db = out.db.as_ref()?;
    let fail = |e: exporter::Error| {
        let hint = if e.to_string().contains("lock") {
            " (is inventoryd running? it owns the file: ask it with `invctl report NAME`)"
        } else {
            ""
        };
        let message = format!("{}: {e}{hint}", db.display());
        Failure::from(Status::new(
            server::convert::export_status(e).code(),
            message,
        ))
    };
    let result = (|| {
        let reader = exporter::open_duckdb_reader(db).map_err(fail)?;
        let table = match run {
            Run::Report { name, params } => {
                let params = params.iter().cloned().collect();
                exporter::reports::run(reader.as_ref(), name, &params)
            }
            Run::Query { sql } => exporter::reports::query(reader.as_ref(), sql),
        }
        .map_err(|e| Failure::from(server::convert::export_status(e)))?;
        print_result(run.title(), &table, None, json_out, out)?;
        Ok(0)
    })();
    Some(result)
}

/// `report`/`query` through the server.
pub async fn run_on_server(
    client: &Client,
    run: Run,
    out: &ResultArgs,
    json_out: bool,
) -> Result<u8, Failure> {
    let mut reports = client.reports();
    let title = run.title().to_string();
    let r = match run {
        Run::Report { name, params } => reports
            .run_report(client.request(pb::RunReportRequest {
                name,
                params: params.into_iter().collect(),
            }))
            .await?
            .into_inner(),
        Run::Query { sql } => reports
            .query(client.request(pb::QueryRequest { sql }))
            .await?
            .into_inner(),
    };
    let table = exporter::ResultTable {
        columns: r.columns,
        rows: r.rows.into_iter().map(|row| row.values).collect(),
    };
    print_result(&title, &table, Some(r.export_lsn), json_out, out)?;
    Ok(0)
}

/// A report or query result: printed as a table, CSV or JSON, and optionally charted.
fn print_result(
    title: &str,
    table: &exporter::ResultTable,
    export_lsn: Option<u64>,
    json_out: bool,
    out: &ResultArgs,
) -> Result<(), Failure> {
    if json_out {
        let rows: Value = serde_json::from_str(&table.to_json()).unwrap_or(Value::Null);
        println!(
            "{}",
            json!({"columns": table.columns, "rows": rows, "export_lsn": export_lsn})
        );
    } else if out.csv {
        print!("{}", table.to_csv());
    } else {
        print!("{}", table.to_text());
        if let Some(lsn) = export_lsn {
            println!("(store holds every change up to LSN {lsn})");
        }
    }
    if let Some(path) = &out.chart {
        let svg = exporter::chart::svg(title, table).map_err(|e| usage(format!("--chart: {e}")))?;
        std::fs::write(path, svg).map_err(|e| Failure {
            code: 1,
            message: format!("cannot write {}: {e}", path.display()),
        })?;
    }
    Ok(())
}
