//! Every bound the server enforces, in one place. The engine's own bounds (lines per op, ops per
//! batch, live holds, ...) live in `engine::limits`; these are the transport's. Each `*_DEFAULT`
//! can be changed in the `[limits]` table of the config file (see `inventoryd.example.toml`).
//!
//! A request above a *shape* limit (too many ops or lines) is `INVALID_ARGUMENT`; a *capacity*
//! limit (message size, connections) is `RESOURCE_EXHAUSTED`, whatever code the transport would
//! pick by itself.

/// Largest request message the server decodes, in bytes (4 MiB, gRPC's customary default).
///
/// Why 4 MiB: the largest legitimate request is an `ExecuteBatch` of 8,192 ops; a typical op
/// (a reserve of a few lines, ids and SKUs of tens of bytes) encodes to well under 200 bytes,
/// so a full batch is 1–2 MiB, and 4 MiB leaves room for 512-byte ops. Every client library
/// defaults its receive limit to 4 MiB too, so replies of the same size pass. A bigger limit
/// would only let one stream pin more memory: the worst case buffered is this times
/// `MAX_CONCURRENT_STREAMS_DEFAULT` times `MAX_CONNECTIONS_DEFAULT` in-flight requests.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 4 << 20;

/// Concurrent HTTP/2 streams (in-flight RPCs) per connection.
pub const MAX_CONCURRENT_STREAMS_DEFAULT: u32 = 256;

/// Open client connections. A connection beyond it is accepted only to answer each of its
/// calls with `RESOURCE_EXHAUSTED` (naming this limit) and is closed after
/// [`OVERFLOW_LINGER_MILLIS`]; beyond [`OVERFLOW_CONNECTIONS_MAX`] such connections, further
/// ones are closed at once without a reply.
pub const MAX_CONNECTIONS_DEFAULT: usize = 1024;

/// Connections beyond `max_connections` held open briefly to tell the client why.
pub const OVERFLOW_CONNECTIONS_MAX: usize = 64;

/// How long an over-limit connection is kept open to deliver its `RESOURCE_EXHAUSTED` replies.
pub const OVERFLOW_LINGER_MILLIS: u64 = 2000;

/// Longest a unary RPC may take on the server before it answers `DEADLINE_EXCEEDED` (a
/// client's own `grpc-timeout` is honoured too). Streaming replies are not cut by it.
pub const REQUEST_TIMEOUT_SECONDS_DEFAULT: u64 = 30;

/// Lines across all ops of one `ExecuteBatch` (an average of 8 per op at the maximum op count).
pub const BATCH_LINES_MAX: usize = 65_536;

/// On SIGTERM/SIGINT: how long in-flight RPCs get to finish before the server stops anyway
/// (the WAL is flushed either way).
pub const SHUTDOWN_DRAIN_SECONDS: u64 = 10;

/// On SIGTERM/SIGINT, after the drain: how long the final snapshot may take (stopping the
/// periodic snapshot thread included) before the server stops without it. Abandoning it loses
/// nothing: the WAL holds every acknowledged op, the next start removes the half-written temp
/// file and replays the WAL after the previous snapshot.
pub const SHUTDOWN_SNAPSHOT_SECONDS: u64 = 60;

/// TLS handshake timeout.
pub const TLS_HANDSHAKE_SECONDS: u64 = 10;

/// The metrics endpoint: largest HTTP request head read, and its read timeout.
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 << 10;
pub const METRICS_READ_TIMEOUT_MILLIS: u64 = 5000;
/// Concurrent connections to the metrics endpoint (more are closed at once).
pub const METRICS_CONNECTIONS_MAX: usize = 16;

/// Longest `authorization` header accepted, in bytes.
pub const TOKEN_BYTES_MAX: usize = 4096;

/// Events buffered per `WatchEvents` stream. A consumer that lets the buffer fill is ended with
/// RESOURCE_EXHAUSTED naming the last (lsn, index) it was given, and resumes from there: a slow
/// consumer never holds the server's memory or the ledger.
pub const WATCH_EVENTS_BUFFER: usize = 4096;
/// WAL records read per batch by a `WatchEvents` stream.
pub const WATCH_EVENTS_RECORDS_PER_READ: usize = 1024;

/// Order states buffered per `WatchOrder` stream. An order changes a handful of times in its
/// life (paid, shipped, delivered, each return), so a client that lets this many pile up is not
/// reading: it is ended with RESOURCE_EXHAUSTED and simply calls again (the first message of a
/// new call is the current state, so nothing is missed but intermediate states).
pub const WATCH_ORDER_BUFFER: usize = 64;
