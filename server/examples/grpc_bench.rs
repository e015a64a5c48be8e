//! Unary and batched throughput of the real server over loopback, next to a tonic echo
//! service measured in the same run (the ceiling for any unary RPC on this machine).
//!
//! ```sh
//! cargo run --release -p server --example grpc_bench -- --seconds 5 --connections 8 --in-flight 16
//! ```
//!
//! The server runs in this process on its own 2-thread runtime with the default (fsync,
//! durable) configuration and a temp data dir; the clients run on another runtime. Prints a
//! table, and JSON with `--json FILE`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use proto::inventory::v1 as pb;
use tonic::transport::{Channel, Endpoint, Server};

/// The allocator `inventoryd` ships with, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Client connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Calls in flight per connection.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Ops per ExecuteBatch call (half reserves, half releases of those reserves).
    #[arg(long, default_value_t = 2048)]
    batch_ops: usize,
    /// ExecuteBatch calls in flight per connection.
    #[arg(long, default_value_t = 2)]
    batch_in_flight: usize,
    /// SKUs in the catalogue.
    #[arg(long, default_value_t = 1000)]
    skus: usize,
    /// Server worker threads.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// WAL sync mode of the server: fsync (durable, the default) or none.
    #[arg(long, default_value = "fsync")]
    sync: String,
    /// Run the server's exporter (the DuckDB change feed) as shipped; `--exporter false` shows
    /// what it costs the request paths.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    exporter: bool,
    /// Run the server's notifier (alert and order messages from the change feed) as shipped;
    /// `--notifier false` shows what it costs the request paths.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    notifier: bool,
    /// The exporter's least time between transactions when caught up.
    #[arg(long, default_value_t = exporter::limits::BATCH_INTERVAL_MILLIS_DEFAULT)]
    exporter_batch_interval_millis: u64,
    /// The WAL writer's pause before each group commit, letting more records join it
    /// (`engine.group_commit_delay_micros`).
    #[arg(long, default_value_t = engine::limits::GROUP_COMMIT_DELAY_MICROS_DEFAULT)]
    group_commit_delay_micros: u64,
    /// Zero-fill WAL segments ahead of need (`engine.preallocate_segments`); `false` appends.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    preallocate_segments: bool,
    /// Let the kernel back the process's memory with transparent huge pages
    /// (`transparent_huge_pages`); `false`, as `inventoryd` ships, turns them off at start.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    transparent_huge_pages: bool,
    /// The CPU slice the server's threads ask for (`thread_slice_micros`; 0: the kernel's
    /// default, as shipped).
    #[arg(long, default_value_t = engine::limits::THREAD_SLICE_MICROS_DEFAULT)]
    thread_slice_micros: u64,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// The phases to run, comma-separated (echo, reads, unary, batch): one phase alone is
    /// easier to profile (`perf record` over the whole run). Phases left out report zero.
    #[arg(long, value_delimiter = ',', default_value = "echo,reads,unary,batch")]
    phases: Vec<String>,
}

#[derive(Debug, Default)]
struct Run {
    calls: u64,
    units: u64,
    errors: u64,
    latencies_micros: Vec<u32>,
    seconds: f64,
    /// CPU the whole process (clients, server, exporter) took during the run: per unit of
    /// work, a figure the machine's load disturbs less than the rate.
    cpu_ticks: u64,
    /// The server's group commits and export CPU during the run (zero for runs that write nothing).
    figures: PhaseFigures,
}

/// Group-commit figures of a run, from the engine's counters before and after it, and the CPU
/// the export took meanwhile.
#[derive(Debug, Default, Clone, Copy)]
struct PhaseFigures {
    fsyncs: u64,
    records: u64,
    fsync_nanos: u64,
    exporter_cpu_ticks: u64,
}

/// A phase's start: the engine's counters and the export's CPU so far.
struct PhaseStart {
    stats: engine::EngineStats,
    exporter_cpu_ticks: u64,
}

impl PhaseStart {
    fn now(engine: &engine::Engine) -> PhaseStart {
        PhaseStart {
            stats: engine.stats(),
            exporter_cpu_ticks: exporter_cpu_ticks(),
        }
    }
}

/// User + system CPU clock ticks of this process's threads named `exporter`: the exporter's
/// own, and DuckDB's workers, which it starts (a thread inherits its creator's name).
fn exporter_cpu_ticks() -> u64 {
    cpu_ticks(|comm| comm == "exporter")
}

/// User + system CPU clock ticks of this process's threads whose name `comm` is accepted.
fn cpu_ticks(accept: impl Fn(&str) -> bool) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            // `pid (comm) state ppid …`: utime and stime are fields 14 and 15.
            let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let fields: Vec<&str> = rest.split(' ').collect();
            let ticks = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
            accept(comm).then(|| ticks(14).unwrap_or(0) + ticks(15).unwrap_or(0))
        })
        .sum()
}

/// /proc counts CPU in USER_HZ, which Linux fixes at 100 for every architecture it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

impl PhaseFigures {
    fn since(start: &PhaseStart, engine: &engine::Engine) -> PhaseFigures {
        let after = engine.stats();
        let before = &start.stats;
        PhaseFigures {
            fsyncs: after.fsyncs - before.fsyncs,
            records: after.records_written - before.records_written,
            fsync_nanos: after.fsync_nanos_total - before.fsync_nanos_total,
            exporter_cpu_ticks: exporter_cpu_ticks() - start.exporter_cpu_ticks,
        }
    }

    /// The share of one core the export took over `seconds`.
    fn exporter_core_share(&self, seconds: f64) -> f64 {
        self.exporter_cpu_ticks as f64 / TICKS_PER_SECOND / seconds
    }

    /// "N fsyncs/s, R records each, F ms per fsync; exporter P % of a core".
    fn describe(&self, seconds: f64) -> String {
        if seconds == 0.0 {
            return "not run".into();
        }
        let per = |n: u64| n as f64 / self.fsyncs.max(1) as f64;
        format!(
            "{:.0} fsyncs/s, {:.1} records each, {:.2} ms per fsync; exporter {:.0} % of a core",
            self.fsyncs as f64 / seconds,
            per(self.records),
            per(self.fsync_nanos) / 1e6,
            100.0 * self.exporter_core_share(seconds)
        )
    }
}

impl Run {
    fn merge(&mut self, other: Run) {
        self.calls += other.calls;
        self.units += other.units;
        self.errors += other.errors;
        self.latencies_micros.extend(other.latencies_micros);
    }
    fn percentile(&mut self, p: f64) -> f64 {
        if self.latencies_micros.is_empty() {
            return 0.0;
        }
        self.latencies_micros.sort_unstable();
        let i = ((self.latencies_micros.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_micros[i]) / 1000.0
    }
    /// Microseconds of CPU (the whole process) per unit of work.
    fn cpu_micros_per_unit(&self) -> f64 {
        if self.units == 0 {
            return 0.0;
        }
        self.cpu_ticks as f64 / TICKS_PER_SECOND * 1e6 / self.units as f64
    }
    fn rate(&self) -> f64 {
        if self.seconds == 0.0 {
            return 0.0;
        }
        self.units as f64 / self.seconds
    }
}

/// Runs `connections × in_flight` loops of `call` for `seconds`, if `phase` is one of the
/// phases asked for; `call` returns the units done.
async fn drive<F, Fut>(phase: &str, channels: &[Channel], args: &Args, call: F) -> Run
where
    F: Fn(Channel, usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, tonic::Status>> + Send,
{
    if !args.phases.iter().any(|p| p == phase) {
        return Run::default();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let cpu_start = cpu_ticks(|_| true);
    let mut tasks = Vec::new();
    for (c, channel) in channels.iter().enumerate() {
        for f in 0..args.in_flight {
            let (channel, stop, call) = (channel.clone(), stop.clone(), call.clone());
            let worker = c * args.in_flight + f;
            tasks.push(tokio::spawn(async move {
                let mut run = Run::default();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match call(channel.clone(), worker, i).await {
                        Ok(units) => {
                            run.calls += 1;
                            run.units += units;
                            run.latencies_micros
                                .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        }
                        Err(_) => run.errors += 1,
                    }
                    i += 1;
                }
                run
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Run::default();
    for t in tasks {
        total.merge(t.await.unwrap());
    }
    total.seconds = start.elapsed().as_secs_f64();
    total.cpu_ticks = cpu_ticks(|_| true) - cpu_start;
    total
}

/// Process CPU per call of the unary phases, and the unary writes' as a multiple of echo's.
fn cpu_line(echo: &Run, reads: &Run, unary: &Run) -> String {
    format!(
        "process CPU per call: echo {:.1} µs, GetStock {:.1} µs, Reserve/Release {:.1} µs ({:.2}× echo)",
        echo.cpu_micros_per_unit(),
        reads.cpu_micros_per_unit(),
        unary.cpu_micros_per_unit(),
        ratio(unary.cpu_micros_per_unit(), echo.cpu_micros_per_unit())
    )
}

/// `part / whole`, zero when the whole phase did not run.
fn ratio(part: f64, whole: f64) -> f64 {
    if whole == 0.0 { 0.0 } else { part / whole }
}

/// `part` as a percentage of `whole` (zero when the whole phase did not run).
fn percent(part: f64, whole: f64) -> f64 {
    100.0 * ratio(part, whole)
}

async fn channels(addr: SocketAddr, n: usize) -> Vec<Channel> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .tcp_nodelay(true)
                .connect()
                .await
                .unwrap(),
        );
    }
    out
}

/// A server's runtime as `inventoryd` builds it (the echo gets the same, to stay the ceiling).
fn server_runtime(args: &Args) -> tokio::runtime::Runtime {
    server::runtime::build(Some(args.server_threads), args.thread_slice_micros).unwrap()
}

fn main() {
    let args = Args::parse();
    engine::memory::apply_transparent_huge_pages(args.transparent_huge_pages)
        .expect("prctl(PR_SET_THP_DISABLE)");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. The ceiling: a tonic echo (health Check) with no auth, no engine.
    let echo_rt = server_runtime(&args);
    let echo_listener = echo_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let echo_addr = echo_listener.local_addr().unwrap();
    echo_rt.spawn(async move {
        let (_reporter, health) = tonic_health::server::health_reporter();
        Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                echo_listener,
            ))
            .await
            .unwrap();
    });
    let mut echo = client_rt.block_on(async {
        let chans = channels(echo_addr, args.connections).await;
        drive("echo", &chans, &args, |ch, _, _| async move {
            tonic_health::pb::health_client::HealthClient::new(ch)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|_| 1)
        })
        .await
    });
    drop(echo_rt);

    // 2. The server, durable (fsync), in-process on its own runtime.
    let dir = tempfile::tempdir().unwrap();
    let mut config = server::Config {
        data_dir: dir.path().join("data"),
        ..server::Config::default()
    };
    config.engine.sync = args.sync.clone();
    config.engine.group_commit_delay_micros = args.group_commit_delay_micros;
    config.engine.preallocate_segments = args.preallocate_segments;
    config.thread_slice_micros = args.thread_slice_micros;
    config.exporter.enabled = args.exporter;
    config.notifier.enabled = args.notifier;
    config.exporter.batch_interval_millis = args.exporter_batch_interval_millis;
    let server_rt = server_runtime(&args);
    let opened = server::open_engine(&config).unwrap();
    let engine = opened.engine.clone();
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let metrics_listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = server_rt.spawn({
        let config = config.clone();
        async move {
            server::run(
                &config,
                opened.engine,
                opened.snapshotter,
                listener,
                metrics_listener,
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
        }
    });
    let skus = args.skus;
    let (mut reads, mut unary, mut batch) = client_rt.block_on(async {
        let chans = channels(addr, args.connections).await;
        let mut inv = pb::inventory_client::InventoryClient::new(chans[0].clone());
        let mut ops = Vec::new();
        for s in 0..skus {
            use pb::batch_op::Op as O;
            ops.push(pb::BatchOp {
                op: Some(O::UpsertProduct(pb::UpsertProductRequest {
                    sku: format!("SKU-{s}"),
                    name: "bench".into(),
                    unit_price_cents: 100,
                    reorder_level: 0,
                    reorder_quantity: 0,
                })),
            });
            ops.push(pb::BatchOp {
                op: Some(O::Receive(pb::ReceiveStockRequest {
                    receipt_id: format!("init-{s}"),
                    sku: format!("SKU-{s}"),
                    quantity: 1_000_000,
                })),
            });
        }
        for chunk in ops.chunks(4096) {
            inv.execute_batch(pb::ExecuteBatchRequest {
                ops: chunk.to_vec(),
            })
            .await
            .unwrap();
        }
        // Unary reads through the whole stack (auth, metrics, engine) without the WAL.
        let reads = drive("reads", &chans, &args, move |ch, worker, i| async move {
            let sku = format!("SKU-{}", (worker * 7919 + i as usize) % skus);
            pb::inventory_client::InventoryClient::new(ch)
                .get_stock(pb::GetStockRequest { sku })
                .await
                .map(|_| 1)
        })
        .await;
        // Unary: Reserve then Release of the same hold (2 RPCs per unit).
        let start = PhaseStart::now(&engine);
        let mut unary = drive("unary", &chans, &args, move |ch, worker, i| async move {
            let mut inv = pb::inventory_client::InventoryClient::new(ch);
            let id = format!("u-{worker}-{i}");
            let sku = format!("SKU-{}", (worker * 7919 + i as usize) % skus);
            inv.reserve(pb::ReserveRequest {
                reservation_id: id.clone(),
                lines: vec![pb::Line { sku, quantity: 1 }],
                ttl_seconds: 0,
            })
            .await?;
            inv.release(pb::ReleaseRequest { reservation_id: id })
                .await?;
            Ok(2)
        })
        .await;
        unary.figures = PhaseFigures::since(&start, &engine);
        // Batched: half reserves, then the releases of those holds, in one call.
        let per = args.batch_ops / 2;
        let batch_args = Args {
            in_flight: args.batch_in_flight,
            ..args.clone()
        };
        let start = PhaseStart::now(&engine);
        let mut batch = drive(
            "batch",
            &chans,
            &batch_args,
            move |ch, worker, i| async move {
                use pb::batch_op::Op as O;
                let mut inv = pb::inventory_client::InventoryClient::new(ch)
                    .max_decoding_message_size(64 << 20);
                let mut ops = Vec::with_capacity(per * 2);
                for k in 0..per {
                    ops.push(pb::BatchOp {
                        op: Some(O::Reserve(pb::ReserveRequest {
                            reservation_id: format!("b-{worker}-{i}-{k}"),
                            lines: vec![pb::Line {
                                sku: format!("SKU-{}", (worker * 7919 + k) % skus),
                                quantity: 1,
                            }],
                            ttl_seconds: 0,
                        })),
                    });
                }
                for k in 0..per {
                    ops.push(pb::BatchOp {
                        op: Some(O::Release(pb::ReleaseRequest {
                            reservation_id: format!("b-{worker}-{i}-{k}"),
                        })),
                    });
                }
                let results = inv
                    .execute_batch(pb::ExecuteBatchRequest { ops })
                    .await?
                    .into_inner()
                    .results;
                let failed = results
                    .iter()
                    .filter(|r| matches!(r.result, Some(pb::batch_result::Result::Error(_))))
                    .count();
                if failed > 0 {
                    return Err(tonic::Status::internal(format!("{failed} ops failed")));
                }
                Ok(results.len() as u64)
            },
        )
        .await;
        batch.figures = PhaseFigures::since(&start, &engine);
        (reads, unary, batch)
    });
    let _ = stop_tx.send(());
    server_rt.block_on(served).unwrap().unwrap();

    let echo_p99 = echo.percentile(0.99);
    let unary_p50 = unary.percentile(0.5);
    let unary_p99 = unary.percentile(0.99);
    let batch_p99 = batch.percentile(0.99);
    let unary_rps = unary.rate();
    println!(
        "connections {} × in flight {}, {} s each, server threads {}",
        args.connections, args.in_flight, args.seconds, args.server_threads
    );
    println!(
        "echo (tonic health Check)       {:>10.0} req/s   p99 {:>7.2} ms   errors {}",
        echo.rate(),
        echo_p99,
        echo.errors
    );
    let reads_p99 = reads.percentile(0.99);
    println!(
        "unary GetStock                  {:>10.0} req/s   p99 {:>7.2} ms   errors {}   = {:.0} % of echo",
        reads.rate(),
        reads_p99,
        reads.errors,
        percent(reads.rate(), echo.rate())
    );
    println!(
        "unary Reserve+Release ({})  {:>10.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms (per pair)   errors {}   = {:.0} % of echo",
        args.sync,
        unary_rps,
        unary_p50,
        unary_p99,
        unary.errors,
        percent(unary_rps, echo.rate())
    );
    println!("    server: {}", unary.figures.describe(unary.seconds));
    println!("    {}", cpu_line(&echo, &reads, &unary));
    println!(
        "ExecuteBatch ({} ops, {})  {:>10.0} ops/s   p99 {:>7.2} ms per call   errors {}",
        args.batch_ops,
        args.sync,
        batch.rate(),
        batch_p99,
        batch.errors
    );
    println!("    server: {}", batch.figures.describe(batch.seconds));
    println!(
        "    process CPU {:.2} µs per op",
        batch.cpu_micros_per_unit()
    );
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "connections": args.connections, "in_flight": args.in_flight, "seconds": args.seconds,
            "echo_rps": echo.rate(), "echo_p99_ms": echo_p99, "sync": args.sync,
            "get_stock_rps": reads.rate(), "get_stock_p99_ms": reads_p99,
            "unary_rps": unary_rps, "unary_pair_p50_ms": unary_p50, "unary_pair_p99_ms": unary_p99,
            "unary_percent_of_echo": percent(unary_rps, echo.rate()),
            "batch_ops": args.batch_ops, "batch_ops_per_s": batch.rate(), "batch_p99_ms": batch_p99,
            "unary_exporter_core_share": unary.figures.exporter_core_share(unary.seconds),
            "batch_exporter_core_share": batch.figures.exporter_core_share(batch.seconds),
            "echo_cpu_micros_per_call": echo.cpu_micros_per_unit(),
            "get_stock_cpu_micros_per_call": reads.cpu_micros_per_unit(),
            "unary_cpu_micros_per_call": unary.cpu_micros_per_unit(),
            "batch_cpu_micros_per_op": batch.cpu_micros_per_unit(),
            "phases": args.phases,
            "errors": echo.errors + reads.errors + unary.errors + batch.errors,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
}
