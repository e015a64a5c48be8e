//! The exporter: every change of the change feed (the WAL) streamed exactly once into an
//! analytical SQL store — a DuckDB file by default, or PostgreSQL — and the named reports and
//! read-only ad-hoc SQL that run on it. See `docs/ARCHITECTURE.md`, "Exporter and reports".
//!
//! | module | holds |
//! |---|---|
//! | [`schema`] | the tables and the SQL generated from them |
//! | [`translate`], [`rebuild`] | events and snapshots → row [`change`]s |
//! | [`book`] | the per-SKU figures that give stock movements their before/after |
//! | [`store`] | DuckDB and PostgreSQL: writing a batch, reading read-only |
//! | [`follower`] | the exporter's thread: cursor, batches, rebuilds |
//! | [`reports`], [`guard`], [`table`] | named reports, `Query`'s check, normalised results |
//! | [`chart`] | an SVG chart of a time-series result |

pub mod book;
pub mod change;
pub mod chart;
pub mod error;
pub mod follower;
pub mod guard;
pub mod limits;
pub mod rebuild;
pub mod reports;
pub mod schema;
pub mod store;
pub mod table;
pub mod translate;
pub mod value;

pub use error::{Error, Result};
pub use follower::{ExportStats, Exporter, ExporterConfig};
pub use store::{Reader, StoreConfig};
pub use table::ResultTable;

/// Opens a DuckDB file for reading only — `invctl report --db FILE` while the server is
/// stopped.
pub fn open_duckdb_reader(path: &std::path::Path) -> Result<std::sync::Arc<dyn Reader>> {
    if !path.exists() {
        return Err(Error::InvalidArgument(format!(
            "db: {} does not exist",
            path.display()
        )));
    }
    let (_, reader) = store::duck::open(path)?;
    Ok(std::sync::Arc::new(reader))
}
