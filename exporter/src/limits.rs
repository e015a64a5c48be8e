//! Every bound the exporter and the reports enforce, in one place. Units are last in names.

/// WAL records read and written to the store in one transaction (the default of
/// `[exporter] batch_records`): a DuckDB batch has a fixed cost of some tens of milliseconds
/// (planning, the staged upserts, commit), so at 100k ops/s a 4,096-record batch kept the
/// exporter at 70k records/s while 16,384 keeps up (BENCHMARKS.md); when the exporter is caught
/// up it takes what is there, so batches are small at low load. A batch's rows are in memory
/// until it commits: some 200 bytes per row, a row or two per record line.
pub const BATCH_RECORDS_DEFAULT: usize = 16_384;
/// The largest `[exporter] batch_records` accepted.
pub const BATCH_RECORDS_MAX: usize = 65_536;
/// The exporter thread's nice value (the default of `[exporter] nice`; Linux, per thread; the
/// DuckDB workers it starts inherit it). The export is the one consumer whose delay nobody
/// waits on (reports lag, DESIGN.md rule 7: storefronts never wait for the report store), and
/// on two cores it took ~28 % of the CPU under full load at the same priority as the request
/// handlers. At 10 it yields to them when the CPU is saturated and runs as before when it is
/// not; at saturation its lag grows, and the WAL it holds back is capped like any consumer's
/// (past the cap it is dropped and rebuilds from a snapshot). 0 = the server's own priority.
pub const NICE_DEFAULT: i32 = 10;
/// The largest nice value Linux has.
pub const NICE_MAX: i32 = engine::limits::NICE_MAX;
/// When the exporter is caught up (its last batch was not full), the least time between the
/// starts of two store transactions: a DuckDB transaction costs ~15–25 ms whatever it holds
/// (each statement is planned afresh, and the commit syncs), so a follower that applied every
/// few records as they came took 65–70 % of a core under any steady load; at 100 ms it takes
/// half of that and the export lags by at most this much more (BENCHMARKS.md, Exporter). A full
/// batch (the exporter behind) is followed at once.
pub const BATCH_INTERVAL_MILLIS_DEFAULT: u64 = 100;
pub const BATCH_INTERVAL_MILLIS_MAX: u64 = 10_000;
/// How long the exporter sleeps when the feed had nothing new before looking again (at least; a
/// longer `BATCH_INTERVAL_MILLIS` applies too). The
/// exporter thread does not run on the async runtime, so it polls; this bounds the added lag.
pub const IDLE_POLL_MILLIS: u64 = 20;
/// How long the exporter waits before retrying after the store failed.
pub const RETRY_MILLIS: u64 = 1_000;
/// Consecutive upserts of one table from which PostgreSQL gets them as one set-based statement
/// (the rows bulk-loaded into a staging table by COPY, then one `INSERT … SELECT … ON
/// CONFLICT`) instead of one statement per row (a round trip each): a batch touches up to one
/// `stock_levels` row per SKU.
pub const STAGED_UPSERT_ROWS_MIN: usize = 16;
/// The same threshold for DuckDB, measured rather than guessed: DuckDB plans a prepared
/// statement afresh at every execution, so a row already there costs ~2.5 ms (as the `UPDATE`
/// the store tries first; a new row 2.9 + 7.8 ms, the `UPDATE` and then `INSERT … ON
/// CONFLICT`), while the staged path costs 14–18 ms whatever its size (1–200 rows on a
/// 1,000-row table): from five rows on it is the cheaper, or about as cheap
/// (`duck_statement_bench`, BENCHMARKS.md, Exporter).
pub const DUCK_STAGED_UPSERT_ROWS_MIN: usize = 5;
/// DuckDB's write-ahead log grows to this many megabytes before DuckDB checkpoints it into the
/// file (its default is 16): at 100k ops/s the default checkpointed every second or two, each
/// time rewriting `stock_levels` and the newest row groups, and the exporter fell behind (lag
/// p99 1.7–2.6 s → 0.32–0.54 s with 256, BENCHMARKS.md). The price: opening the store after a
/// crash replays up to this much of DuckDB's log (233 MB: 1.9 s, `reopen_bench`).
pub const DUCKDB_CHECKPOINT_WAL_MB: u32 = 256;
/// Time limit of one ad-hoc `Query` (and of one report), in milliseconds.
pub const QUERY_TIME_MILLIS: u64 = 30_000;
/// Rows returned by one `Query` or report; more is an error (add a LIMIT), not a truncation.
pub const RESULT_ROWS_MAX: usize = 100_000;
/// Longest SQL text accepted by `Query`, in bytes.
pub const QUERY_SQL_BYTES_MAX: usize = 64 * 1024;
/// The `limit` param of the reports: default and largest.
pub const REPORT_LIMIT_DEFAULT: u32 = 10;
pub const REPORT_LIMIT_MAX: u32 = 10_000;
/// Threads DuckDB may use for queries (the machine is shared with the engine).
pub const DUCKDB_THREADS: u32 = 2;
