//! Prometheus metrics: per-RPC request counters and latency histograms kept in atomics (no
//! lock on the request path), engine and WAL figures read at scrape time, and a minimal
//! HTTP/1.1 responder for `GET /metrics` (hand-rolled text exposition format 0.0.4).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use engine::Engine;
use prost::Message;
use snapshotter::Snapshotter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::limits;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

struct RpcMetrics {
    name: String,
    codes: [AtomicU64; 17],
    /// Cumulative counts are computed at scrape time; each slot counts its own bucket, the
    /// last one is +Inf.
    buckets: [AtomicU64; BUCKETS_SECONDS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl RpcMetrics {
    fn new(name: String) -> Self {
        Self {
            name,
            codes: Default::default(),
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// Index of an RPC in the metrics table (the last one stands for unknown paths).
#[derive(Debug, Clone, Copy)]
pub struct RpcId(usize);

pub struct Metrics {
    rpcs: Vec<RpcMetrics>,
    index: HashMap<String, usize>,
    pub connections_open: AtomicUsize,
    pub connections_refused: AtomicU64,
    started: Instant,
    /// Set once the notifier runs: its delivery metrics are appended.
    notifier: std::sync::OnceLock<Arc<notifier::Notifier>>,
    exporter: std::sync::OnceLock<std::sync::Arc<exporter::Exporter>>,
}

impl Metrics {
    /// One entry per RPC of every `inventory.v1` service (read from the descriptor set), plus
    /// health and reflection, plus `unknown`.
    pub fn new() -> Self {
        let mut names = Vec::new();
        if let Ok(fds) = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET) {
            for file in fds.file {
                let package = file.package().to_string();
                for svc in &file.service {
                    for m in &svc.method {
                        names.push(format!("{package}.{}/{}", svc.name(), m.name()));
                    }
                }
            }
        }
        names.extend(
            [
                "grpc.health.v1.Health/Check",
                "grpc.health.v1.Health/Watch",
                "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                "unknown",
            ]
            .map(String::from),
        );
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Self {
            rpcs: names.into_iter().map(RpcMetrics::new).collect(),
            index,
            connections_open: AtomicUsize::new(0),
            connections_refused: AtomicU64::new(0),
            started: Instant::now(),
            notifier: std::sync::OnceLock::new(),
            exporter: std::sync::OnceLock::new(),
        }
    }

    pub fn set_notifier(&self, notifier: Arc<notifier::Notifier>) {
        let _ = self.notifier.set(notifier);
    }

    /// The RPC of a request path (`/inventory.v1.Inventory/Reserve`).
    pub fn rpc(&self, path: &str) -> RpcId {
        let name = path.strip_prefix('/').unwrap_or(path);
        RpcId(self.index.get(name).copied().unwrap_or(self.rpcs.len() - 1))
    }

    pub fn record(&self, rpc: RpcId, code: i32, elapsed: Duration) {
        let m = &self.rpcs[rpc.0];
        let code = usize::try_from(code).ok().filter(|c| *c < 17).unwrap_or(2);
        m.codes[code].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS_SECONDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS_SECONDS.len());
        m.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        m.count.fetch_add(1, Ordering::Relaxed);
        m.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The text exposition of every metric.
    /// Adds the exporter's figures to the output (once, at start).
    pub fn watch_exporter(&self, exporter: std::sync::Arc<exporter::Exporter>) {
        let _ = self.exporter.set(exporter);
    }

    pub fn render(&self, engine: &Engine, snapshotter: &Snapshotter) -> String {
        let mut out = String::with_capacity(16 << 10);
        out.push_str(
            "# HELP inventory_grpc_requests_total gRPC requests handled, by RPC and status code.\n",
        );
        out.push_str("# TYPE inventory_grpc_requests_total counter\n");
        for m in &self.rpcs {
            for (code, n) in m.codes.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "inventory_grpc_requests_total{{rpc=\"{}\",code=\"{}\"}} {n}",
                        m.name, CODE_NAMES[code]
                    );
                }
            }
        }
        out.push_str("# HELP inventory_grpc_request_duration_seconds Time from request to the end of the reply, by RPC.\n");
        out.push_str("# TYPE inventory_grpc_request_duration_seconds histogram\n");
        for m in &self.rpcs {
            let count = m.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (i, le) in BUCKETS_SECONDS.iter().enumerate() {
                cumulative += m.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "inventory_grpc_request_duration_seconds_bucket{{rpc=\"{}\",le=\"{le}\"}} {cumulative}",
                    m.name
                );
            }
            cumulative += m.buckets[BUCKETS_SECONDS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "inventory_grpc_request_duration_seconds_bucket{{rpc=\"{}\",le=\"+Inf\"}} {cumulative}",
                m.name
            );
            let sum = m.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "inventory_grpc_request_duration_seconds_sum{{rpc=\"{}\"}} {sum}",
                m.name
            );
            let _ = writeln!(
                out,
                "inventory_grpc_request_duration_seconds_count{{rpc=\"{}\"}} {count}",
                m.name
            );
        }
        let s = engine.stats();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "inventory_wal_fsyncs_total",
            "counter",
            "WAL write+fdatasync batches (group commits).",
            s.fsyncs.to_string(),
        );
        metric(
            "inventory_wal_fsync_seconds_total",
            "counter",
            "Time spent in WAL fdatasync; divide by inventory_wal_fsyncs_total for the mean fsync latency.",
            (s.fsync_nanos_total as f64 / 1e9).to_string(),
        );
        metric(
            "inventory_wal_records_written_total",
            "counter",
            "WAL records written; divide by inventory_wal_fsyncs_total for the mean group-commit batch size.",
            s.records_written.to_string(),
        );
        metric(
            "inventory_wal_bytes",
            "gauge",
            "WAL bytes on disk now.",
            s.wal_bytes.to_string(),
        );
        metric(
            "inventory_last_lsn",
            "gauge",
            "Highest LSN applied in memory.",
            s.last_lsn.to_string(),
        );
        metric(
            "inventory_durable_lsn",
            "gauge",
            "Highest LSN fsynced (prefix watermark).",
            s.durable_lsn.to_string(),
        );
        metric(
            "inventory_live_holds",
            "gauge",
            "Active reservations.",
            s.active_reservations.to_string(),
        );
        metric(
            "inventory_skus",
            "gauge",
            "SKUs in the catalogue.",
            s.skus.to_string(),
        );
        metric(
            "inventory_failed",
            "gauge",
            "1 once a storage failure stopped writes (fail-stop), else 0.",
            u8::from(s.failed).to_string(),
        );
        metric(
            "inventory_snapshot_lsn",
            "gauge",
            "LSN of the newest snapshot (0 = none); restart replays the WAL after it.",
            snapshotter.snapshot_lsn().to_string(),
        );
        metric(
            "inventory_snapshots_total",
            "counter",
            "Snapshots taken (periodic, Admin Snapshot, clean shutdown).",
            snapshotter.stats().taken_total.to_string(),
        );
        metric(
            "inventory_snapshot_failures_total",
            "counter",
            "Snapshots that failed.",
            snapshotter.stats().failures_total.to_string(),
        );
        metric(
            "inventory_snapshot_pause_max_microseconds",
            "gauge",
            "The last snapshot's longest writer pause (one shard's lock during the cut), in microseconds.",
            snapshotter.stats().last_pause_max_micros.to_string(),
        );
        metric(
            "inventory_snapshot_bytes",
            "gauge",
            "Size of the last snapshot file.",
            snapshotter.stats().last_bytes.to_string(),
        );
        if let Some(exporter) = self.exporter.get() {
            let e = exporter.stats();
            let durable = engine.stats().durable_lsn;
            metric(
                "inventory_export_lsn",
                "gauge",
                "Highest LSN fully written to the analytical store.",
                e.export_lsn.to_string(),
            );
            metric(
                "inventory_export_lag_records",
                "gauge",
                "Durable WAL records not yet in the analytical store (durable_lsn - export_lsn).",
                durable.saturating_sub(e.export_lsn).to_string(),
            );
            metric(
                "inventory_export_records_total",
                "counter",
                "WAL records written to the analytical store.",
                e.records_total.to_string(),
            );
            metric(
                "inventory_export_rows_total",
                "counter",
                "Row changes (inserts, upserts, updates) written to the analytical store.",
                e.rows_total.to_string(),
            );
            metric(
                "inventory_export_rebuilds_total",
                "counter",
                "Times the analytical store was rebuilt from a snapshot.",
                e.rebuilds_total.to_string(),
            );
            metric(
                "inventory_export_failures_total",
                "counter",
                "Exporter failures (each retried from the store's cursor).",
                e.failures_total.to_string(),
            );
        }
        metric(
            "inventory_connections_open",
            "gauge",
            "Open gRPC client connections (within the limit).",
            self.connections_open.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "inventory_connections_refused_total",
            "counter",
            "Connections beyond limits.max_connections.",
            self.connections_refused.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "inventory_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            self.started.elapsed().as_secs().to_string(),
        );
        if let Some(n) = self.notifier.get() {
            n.render_metrics(&mut out);
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `GET /metrics` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    engine: Arc<Engine>,
    snapshotter: Arc<Snapshotter>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if open.fetch_add(1, Ordering::AcqRel) >= limits::METRICS_CONNECTIONS_MAX {
            open.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let (metrics, engine, snapshotter, open) = (
            metrics.clone(),
            engine.clone(),
            snapshotter.clone(),
            open.clone(),
        );
        tokio::spawn(async move {
            let _ = handle(stream, &metrics, &engine, &snapshotter).await;
            open.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    metrics: &Metrics,
    engine: &Engine,
    snapshotter: &Snapshotter,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let deadline = Duration::from_millis(limits::METRICS_READ_TIMEOUT_MILLIS);
    let head = tokio::time::timeout(deadline, async {
        let mut chunk = [0u8; 1024];
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if buf.len() >= limits::METRICS_REQUEST_BYTES_MAX {
                return Ok(false);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(!buf.is_empty());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let complete = match head {
        Ok(Ok(complete)) => complete,
        Ok(Err(e)) => return Err(e),
        Err(_) => false,
    };
    let line = String::from_utf8_lossy(&buf);
    let mut words = line.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = if !complete {
        ("400 Bad Request", "text/plain", "bad request\n".to_string())
    } else if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        )
    } else if path == "/metrics" {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(engine, snapshotter),
        )
    } else if path == "/" {
        (
            "200 OK",
            "text/plain",
            "inventoryd: metrics at /metrics\n".to_string(),
        )
    } else {
        (
            "404 Not Found",
            "text/plain",
            "not found; try /metrics\n".to_string(),
        )
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}
