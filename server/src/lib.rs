//! The `inventory.v1` gRPC server: [`run`] serves the engine on a listener until a shutdown
//! signal, with auth, limits, metrics, health and reflection. The binaries are `inventoryd`
//! (the server) and `invctl` (its client). See `docs/SERVER.md`.

pub mod auth;
pub mod config;
pub mod convert;
pub mod gate;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod runtime;
pub mod service;
pub mod watch;
pub mod watch_order;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::Engine;
use proto::inventory::v1 as pb;
use snapshotter::{OpenReport, Snapshotter};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use config::Config;

/// What [`open_engine`] returns: the engine, its snapshotter (periodic snapshots start in
/// [`run`]) and what recovery found.
pub struct Opened {
    pub engine: Arc<Engine>,
    pub snapshotter: Arc<Snapshotter>,
    pub report: OpenReport,
}

/// Opens the engine on the configured data dir: loads the newest valid snapshot (skipping
/// damaged ones and half-written temp files), replays the WAL after it, and logs what recovery
/// found. A damaged WAL yields an error naming the file and offset. Blocking.
pub fn open_engine(config: &Config) -> Result<Opened, String> {
    let engine_config = config.engine_config()?;
    let started = Instant::now();
    let (engine, snapshotter, report) = snapshotter::open_engine(
        engine_config,
        config.snapshotter_config(),
        Arc::new(engine::wal::fs::StdFs),
        Arc::new(engine::SystemClock),
    )
    .map_err(|e| format!("recovery failed: {e}"))?;
    log_open_report(config, &report, started.elapsed());
    Ok(Opened {
        engine,
        snapshotter,
        report,
    })
}

fn log_open_report(config: &Config, report: &OpenReport, took: Duration) {
    for (file, reason) in &report.snapshot.skipped {
        tracing::warn!("snapshot skipped: {}: {reason}", file.display());
    }
    let wal = &report.wal;
    let snapshot_lsn = match &report.snapshot.used {
        Some(file) => {
            let lsn = snapshotter::file::parse_name(file).unwrap_or(0);
            tracing::info!(lsn, "loaded snapshot {}", file.display());
            lsn
        }
        None => {
            tracing::info!(
                "no snapshot in {}: recovering from the WAL alone",
                config.snapshotter_config().dir.display()
            );
            0
        }
    };
    tracing::info!(
        snapshot_lsn,
        segments = wal.segments,
        records_replayed = wal.records_replayed,
        last_lsn = wal.last_lsn,
        millis = took.as_millis() as u64,
        "recovered the WAL from {}: snapshot at LSN {snapshot_lsn} + {} WAL records replayed",
        config.data_dir.display(),
        wal.records_replayed
    );
    if let Some((file, offset, bytes)) = &wal.torn_tail {
        tracing::warn!(
            "WAL torn tail truncated: {} at offset {offset}, {bytes} bytes dropped",
            file.display()
        );
    }
    if let Some((file, offset, reason)) = &wal.corruption_dropped {
        tracing::warn!(
            "WAL corruption dropped (recovery = truncate-corruption): {} at offset {offset}: {reason}",
            file.display()
        );
    }
}

fn tls_config(config: &Config) -> Result<Option<ServerTlsConfig>, String> {
    let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else {
        return Ok(None);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let mut tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .timeout(Duration::from_secs(limits::TLS_HANDSHAKE_SECONDS));
    if let Some(ca) = &config.tls.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(tls))
}

/// Serves gRPC on `listener` and `/metrics` on `metrics_listener` until `shutdown` resolves,
/// with periodic snapshots in the background; then stops accepting, lets in-flight calls finish
/// (up to [`limits::SHUTDOWN_DRAIN_SECONDS`]), stops the periodic snapshots, takes a final
/// snapshot (at most [`limits::SHUTDOWN_SNAPSHOT_SECONDS`]) and shuts the engine down
/// (flushing the WAL).
pub async fn run(
    config: &Config,
    engine: Arc<Engine>,
    snapshotter: Arc<Snapshotter>,
    listener: TcpListener,
    metrics_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    use pb::admin_server::AdminServer;
    use pb::alerts_server::AlertsServer;
    use pb::inventory_server::InventoryServer;
    use pb::orders_server::OrdersServer;
    use pb::reports_server::ReportsServer;

    // The exporter follows the feed on its own thread from here (recovery is done). A store that
    // cannot be opened is retried there, logged, and Reports answer UNAVAILABLE meanwhile.
    let exporter = match config.exporter_config()? {
        Some(c) => {
            let (e, s, c) = (engine.clone(), snapshotter.clone(), c);
            let started = tokio::task::spawn_blocking(move || exporter::Exporter::start(c, e, s))
                .await
                .map_err(|e| format!("exporter: {e}"))?
                .map_err(|e| format!("exporter: {e}"))?;
            Some(Arc::new(started))
        }
        None => None,
    };
    let metrics = Arc::new(metrics::Metrics::new());
    if let Some(e) = &exporter {
        metrics.watch_exporter(e.clone());
    }
    let auth = auth::Auth::new(config)?;
    let gate = gate::GateLayer::new(gate::GateConfig {
        auth,
        metrics: metrics.clone(),
        max_message_bytes: config.limits.max_message_bytes,
        request_timeout: config.request_timeout(),
    });
    let max = config.limits.max_message_bytes;
    let inventory = InventoryServer::new(service::InventoryService::new(engine.clone()))
        .max_decoding_message_size(max);
    let notifier = open_notifier(config, &engine, &snapshotter)?;
    if let Some(n) = &notifier {
        metrics.set_notifier(n.clone());
    }
    let admin = AdminServer::new(service::AdminService::new(
        engine.clone(),
        snapshotter.clone(),
        notifier.clone(),
        exporter.clone(),
    ))
    .max_decoding_message_size(max);
    let orders = OrdersServer::new(service::OrdersService::new(engine.clone()))
        .max_decoding_message_size(max);
    let alerts = AlertsServer::new(service::AlertsService::new(
        engine.clone(),
        notifier.clone(),
    ))
    .max_decoding_message_size(max);
    let reports = ReportsServer::new(service::ReportsService::new(exporter.clone()))
        .max_decoding_message_size(max);

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<InventoryServer<service::InventoryService>>()
        .await;
    health_reporter
        .set_serving::<AdminServer<service::AdminService>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| format!("reflection: {e}"))?;

    let mut builder = Server::builder();
    if let Some(tls) = tls_config(config)? {
        builder = builder
            .tls_config(tls)
            .map_err(|e| format!("TLS configuration: {e}"))?;
    }
    let router = builder
        .max_concurrent_streams(config.limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(gate)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(inventory)
        .add_service(admin)
        .add_service(orders)
        .add_service(alerts)
        .add_service(reports);

    // Recovery is done and the server is set up: periodic snapshots from here on (stopped by
    // the final snapshot below).
    snapshotter.spawn_periodic(engine.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics_task = tokio::spawn(metrics::serve(
        metrics_listener,
        metrics.clone(),
        engine.clone(),
        snapshotter.clone(),
        stopped(stop_rx.clone()),
    ));
    // Off the hot path: the notifier reads durable records and writes its own files only.
    let notifier_task = notifier.map(|n| {
        let (engine, snapshotter, stop) = (engine.clone(), snapshotter.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let advance: Arc<dyn Fn(u64) + Send + Sync> =
                Arc::new(move |lsn| snapshotter.advance_consumer(NOTIFIER_CONSUMER, lsn));
            n.run(engine, advance, stopped(stop)).await;
        })
    });
    let incoming = net::incoming(listener, config.limits.max_connections, metrics.clone());
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight calls");
        health_reporter
            .set_not_serving::<InventoryServer<service::InventoryService>>()
            .await;
        let _ = stop_tx.send(true);
    };
    let drain_deadline = async {
        stopped(stop_rx.clone()).await;
        tokio::time::sleep(Duration::from_secs(limits::SHUTDOWN_DRAIN_SECONDS)).await;
    };
    let result = tokio::select! {
        r = router.serve_with_incoming_shutdown(incoming, signal) => r.map_err(|e| format!("gRPC server: {e}")),
        _ = drain_deadline => {
            tracing::warn!("in-flight calls still running after {} s; stopping anyway", limits::SHUTDOWN_DRAIN_SECONDS);
            Ok(())
        }
    };
    metrics_task.abort();
    let _ = metrics_task.await;
    if let Some(exporter) = exporter {
        // The batch in progress commits (or not) before the engine stops; either way the
        // store's cursor says where the next start resumes.
        let _ = tokio::task::spawn_blocking(move || exporter.stop()).await;
    }
    if let Some(task) = notifier_task {
        // Stopped by the same signal; everything it did is already in its outbox, so a send
        // still hanging (at most limits::SEND_TIMEOUT_MILLIS) is simply abandoned after the drain.
        let drain = Duration::from_secs(limits::SHUTDOWN_DRAIN_SECONDS);
        if tokio::time::timeout(drain, task).await.is_err() {
            tracing::warn!("notifier still sending after the drain; stopping without it");
        }
    }
    final_snapshot(&engine, &snapshotter).await;
    let flushing = engine.clone();
    let _ = tokio::task::spawn_blocking(move || flushing.shutdown()).await;
    let stats = engine.stats();
    tracing::info!(
        durable_lsn = stats.durable_lsn,
        snapshot_lsn = snapshotter.snapshot_lsn(),
        "engine stopped, WAL flushed"
    );
    result
}

/// The notifier's name among the snapshotter's change-feed consumers.
pub const NOTIFIER_CONSUMER: &str = "notifier";

/// Opens the notifier (templates, outbox, channels) when enabled and registers it as a
/// change-feed consumer at its outbox cursor, so the WAL it has not handled is kept (under the
/// consumer cap). None when disabled or when there is no WAL (`sync = none`).
fn open_notifier(
    config: &Config,
    engine: &Engine,
    snapshotter: &Snapshotter,
) -> Result<Option<Arc<notifier::Notifier>>, String> {
    if !config.notifier.enabled {
        return Ok(None);
    }
    if engine.wal().is_none() {
        tracing::warn!("notifier off: sync = none keeps no WAL to follow");
        return Ok(None);
    }
    let n = notifier::Notifier::open(config.notifier_config()?)
        .map_err(|e| format!("notifier: {e}"))?;
    let cursor = snapshotter.register_consumer(NOTIFIER_CONSUMER, n.handled_lsn())?;
    if cursor.dropped {
        tracing::warn!(
            "notifier had fallen too far behind and was dropped: rejoining at its outbox cursor"
        );
        snapshotter.rejoin_consumer(NOTIFIER_CONSUMER, n.handled_lsn())?;
    } else if cursor.lsn < n.handled_lsn() {
        snapshotter.advance_consumer(NOTIFIER_CONSUMER, n.handled_lsn());
    }
    tracing::info!(
        notify_lsn = n.handled_lsn(),
        channels = ?config.notifier.channels,
        "notifier started"
    );
    Ok(Some(Arc::new(n)))
}

/// The clean-shutdown snapshot: stops the periodic thread, then takes one more snapshot so the
/// next start replays no WAL. Failures are logged, never fatal: the WAL holds everything. A
/// snapshot still running after [`limits::SHUTDOWN_SNAPSHOT_SECONDS`] is abandoned (the next
/// start removes its temp file and replays the WAL instead).
async fn final_snapshot(engine: &Arc<Engine>, snapshotter: &Arc<Snapshotter>) {
    let (engine, snapshotter) = (engine.clone(), snapshotter.clone());
    let taking = tokio::task::spawn_blocking(move || {
        snapshotter.stop();
        let stats = engine.stats();
        if stats.failed {
            return Err(format!(
                "storage failed, writes stopped: {}",
                engine.failure().unwrap_or_default()
            ));
        }
        if stats.last_lsn == 0 {
            return Ok(None);
        }
        let result = snapshotter.take(&engine);
        result.map(Some)
    });
    let limit = Duration::from_secs(limits::SHUTDOWN_SNAPSHOT_SECONDS);
    match tokio::time::timeout(limit, taking).await {
        Ok(Ok(Ok(Some(info)))) => tracing::info!(
            lsn = info.lsn,
            bytes = info.bytes,
            pause_max_us = info.pause_max.as_micros() as u64,
            "final snapshot taken"
        ),
        Ok(Ok(Ok(None))) => tracing::info!("no final snapshot: the log is empty"),
        Ok(Ok(Err(e))) => tracing::error!("final snapshot failed: {e}"),
        Ok(Err(e)) => tracing::error!("final snapshot failed: {e}"),
        Err(_) => tracing::error!(
            "final snapshot still running after {} s: stopping without it",
            limits::SHUTDOWN_SNAPSHOT_SECONDS
        ),
    }
}
