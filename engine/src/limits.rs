//! Every bound the engine enforces, in one place (TIGER_STYLE: put a limit on everything).
//!
//! Shape limits (a request that exceeds them is malformed → `InvalidArgument`) are separate from
//! capacity limits (the system is full → `ResourceExhausted`). Units are last in every name.

/// Longest SKU, in bytes of UTF-8.
pub const SKU_BYTES_MAX: usize = 64;
/// Longest client-chosen id (reservation, receipt, adjustment, order, ...), in bytes.
pub const ID_BYTES_MAX: usize = 128;
/// Longest product name, in bytes.
pub const NAME_BYTES_MAX: usize = 256;
/// Longest free-text reason (adjustments, cancellations), in bytes.
pub const REASON_BYTES_MAX: usize = 512;
/// Lines in one reservation or commit.
pub const LINES_PER_OP_MAX: usize = 64;
/// Largest quantity in one line, receipt or adjustment. Keeps `on_hand` and `reserved` inside
/// `u32` so that both fit one atomic word for lock-free readers.
pub const QUANTITY_MAX: u32 = 1_000_000_000;
/// Largest `on_hand` a SKU may reach (receipts beyond it are refused).
pub const ON_HAND_MAX: u64 = u32::MAX as u64;
/// Largest unit price, in cents (10 million currency units).
pub const UNIT_PRICE_CENTS_MAX: i64 = 1_000_000_000;
/// Default hold time when a request says 0.
pub const TTL_SECONDS_DEFAULT: u32 = 1800;
/// Longest hold (7 days).
pub const TTL_SECONDS_MAX: u32 = 7 * 24 * 3600;
/// Longest email address (RFC 5321's path limit), in bytes.
pub const EMAIL_BYTES_MAX: usize = 254;
/// Longest postal address, carrier name or tracking number, in bytes.
pub const ADDRESS_BYTES_MAX: usize = 1024;
pub const CARRIER_BYTES_MAX: usize = 128;
pub const TRACKING_NUMBER_BYTES_MAX: usize = 128;
/// Largest order total, in cents (10 billion currency units): keeps every sum of totals and
/// refunds far inside `i64`.
pub const ORDER_TOTAL_CENTS_MAX: i64 = 1_000_000_000_000;
/// Closed orders (CANCELLED, DELIVERED, RETURNED) are remembered this long (30 days)...
pub const ORDER_RETENTION_SECONDS_DEFAULT: u64 = 30 * 24 * 3600;
/// ...and at most this many of them (across all shards), whichever bound comes first.
pub const ORDER_RETENTION_COUNT_DEFAULT: u64 = 1_000_000;
/// Resolved alerts and closed purchase orders kept per SKU (older ones are forgotten; the
/// analytical store keeps the history).
pub const ALERT_HISTORY_PER_SKU_MAX: usize = 8;
/// Events in one WAL record (an op's own events plus the alert events it caused): the
/// per-entity stamps of `ledger::apply` keep the event index in 16 bits.
pub const EVENTS_PER_RECORD_MAX: usize = 1024;

/// Ops in one `ExecuteBatch`.
pub const BATCH_OPS_MAX: usize = 8192;

/// Live (active) holds across the engine; a reserve beyond it is `ResourceExhausted`.
pub const LIVE_HOLDS_MAX_DEFAULT: u64 = 2_000_000;
/// How long ended objects' ids are remembered for idempotent retries.
pub const ID_RETENTION_SECONDS_DEFAULT: u64 = 3600;
/// How many ended objects' ids are remembered (across all shards).
pub const ID_RETENTION_COUNT_DEFAULT: u64 = 1_000_000;

/// One WAL record's payload, in bytes (a full batch of 64-line reservations fits easily).
pub const RECORD_BYTES_MAX: usize = 1 << 20;
/// WAL segment size before rolling over to a new file.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Group commit: most bytes written by one write + fdatasync.
pub const GROUP_COMMIT_BYTES_MAX: usize = 4 << 20;
/// Group commit: most records written by one write + fdatasync.
pub const GROUP_COMMIT_RECORDS_MAX: usize = 65_536;
/// Group commit: longest a record waits for company before the batch is written (microseconds),
/// while the log is busy (see [`GROUP_COMMIT_DELAY_RECORDS_MIN`]). 0 means "write as soon as
/// the previous fsync is done", which batches naturally under load. A delay is a trade
/// (BENCHMARKS.md, 2026-12-07): where the CPU is the bottleneck and arrivals keep coming (the
/// gRPC server with 128 calls in flight) 500 µs took unary writes to ~0.9× the CPU per call and
/// batches to ~1.3× the rate, but where submitters wait for each commit before sending more
/// (a closed loop of 16–64 callers) it idles the pipeline that overlaps one commit's fsync with
/// the next batch's work: 0.9× over gRPC at 16 in flight, 0.6× in process at 64 tasks. So 0 by
/// default, and a setting for servers with heavy fan-in.
pub const GROUP_COMMIT_DELAY_MICROS_DEFAULT: u64 = 0;
/// Group commit: the delay applies only after a commit that carried at least this many records
/// (as PostgreSQL's `commit_siblings`): a few sequential clients are never made to wait, since
/// their commits carry one or two records each.
pub const GROUP_COMMIT_DELAY_RECORDS_MIN: usize = 4;
/// Group commit: after a delay that brought fewer than `GROUP_COMMIT_DELAY_RECORDS_MIN` more
/// records (every submitter was waiting for that commit, so nobody else was coming), this many
/// commits are written without it before it is tried again.
pub const GROUP_COMMIT_DELAY_BACKOFF_COMMITS: u32 = 256;
/// The CPU slice, in microseconds, that the threads a reply waits on ask the kernel for when
/// `thread_slice_micros` is set ([`crate::sched`]): the kernel clamps a fair thread's slice to
/// 0.1–100 ms. 0, the default, leaves the kernel's (1.4 ms here). A trade, measured on 2 cores
/// (BENCHMARKS.md, Load test, session 14): at 100 µs the p99 of flash-sale holds at half
/// capacity fell ~0.7× (lower in 12 of 16 pairs), while a saturated server spent ~1.15× the CPU
/// per unary call (the extra preemptions).
pub const THREAD_SLICE_MICROS_DEFAULT: u64 = 0;
pub const THREAD_SLICE_MICROS_MIN: u64 = 100;
pub const THREAD_SLICE_MICROS_MAX: u64 = 100_000;
/// The largest nice value (lowest priority) Linux has: the most a background thread asks for
/// ([`crate::sched::become_background`]).
pub const NICE_MAX: i32 = 19;
/// Records queued for the WAL writer but not yet written; submitters wait (back-pressure) beyond.
pub const WAL_QUEUE_RECORDS_MAX: usize = 1 << 20;

/// How often the expiry sweeper looks for due holds (milliseconds). Ops never count a due hold
/// regardless (they expire it first), so this only bounds how late the expiry record is written.
pub const EXPIRY_SWEEP_INTERVAL_MILLIS: u64 = 50;
/// Holds expired per sweeper pass before it yields to other work.
pub const EXPIRY_SWEEP_BATCH_MAX: usize = 4096;

/// Shards, at most.
pub const SHARDS_MAX: usize = 256;
/// Page size for list calls, at most (and the default when a request says 0: 100).
pub const PAGE_SIZE_MAX: usize = 1000;
pub const PAGE_SIZE_DEFAULT: usize = 100;
/// Registered change-feed consumers.
pub const CONSUMERS_MAX: usize = 16;

/// How long a thread that finds a shard locked spins before it sleeps in the kernel
/// (nanoseconds). An op holds a shard for about a microsecond; parking_lot alone gives up
/// after well under one and parks, and the futex sleep and wake-up then cost more than the op
/// — on one hot SKU, two threads ran at ~0.6× one thread's rate. Short, because a holder that
/// was preempted will not let go soon: at 20 µs, 128 blocking submitters on 2 cores ran 1.3×
/// slower per op than with no spin; at 4 µs, within the noise (BENCHMARKS.md, session 13).
pub const SHARD_LOCK_SPIN_NANOS_MAX: u64 = 4_000;
