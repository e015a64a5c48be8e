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
pub mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use engine::{Engine, RecoveryReport};
use proto::inventory::v1 as pb;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use config::Config;

/// Opens the engine on the configured data dir: replays the WAL and logs what recovery found.
/// A damaged WAL yields an error naming the file and offset. Blocking.
pub fn open_engine(config: &Config) -> Result<(Arc<Engine>, RecoveryReport), String> {
    let engine_config = config.engine_config()?;
    let (engine, report) = Engine::open(
        engine_config,
        Arc::new(engine::wal::fs::StdFs),
        Arc::new(engine::SystemClock),
    )
    .map_err(|e| format!("recovery failed: {e}"))?;
    tracing::info!(
        segments = report.segments,
        records_replayed = report.records_replayed,
        last_lsn = report.last_lsn,
        "recovered the WAL from {}",
        config.data_dir.display()
    );
    if let Some((file, offset, bytes)) = &report.torn_tail {
        tracing::warn!(
            "WAL torn tail truncated: {} at offset {offset}, {bytes} bytes dropped",
            file.display()
        );
    }
    if let Some((file, offset, reason)) = &report.corruption_dropped {
        tracing::warn!(
            "WAL corruption dropped (recovery = truncate-corruption): {} at offset {offset}: {reason}",
            file.display()
        );
    }
    Ok((engine, report))
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

/// Serves gRPC on `listener` and `/metrics` on `metrics_listener` until `shutdown` resolves;
/// then stops accepting, lets in-flight calls finish (up to
/// [`limits::SHUTDOWN_DRAIN_SECONDS`]) and shuts the engine down (flushing the WAL).
pub async fn run(
    config: &Config,
    engine: Arc<Engine>,
    listener: TcpListener,
    metrics_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    use pb::admin_server::AdminServer;
    use pb::alerts_server::AlertsServer;
    use pb::inventory_server::InventoryServer;
    use pb::orders_server::OrdersServer;
    use pb::reports_server::ReportsServer;

    let metrics = Arc::new(metrics::Metrics::new());
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
    let admin =
        AdminServer::new(service::AdminService::new(engine.clone())).max_decoding_message_size(max);
    let orders = OrdersServer::new(service::Pending).max_decoding_message_size(max);
    let alerts = AlertsServer::new(service::Pending).max_decoding_message_size(max);
    let reports = ReportsServer::new(service::Pending).max_decoding_message_size(max);

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

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics_task = tokio::spawn(metrics::serve(
        metrics_listener,
        metrics.clone(),
        engine.clone(),
        stopped(stop_rx.clone()),
    ));
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
    let flushing = engine.clone();
    let _ = tokio::task::spawn_blocking(move || flushing.shutdown()).await;
    let stats = engine.stats();
    tracing::info!(
        durable_lsn = stats.durable_lsn,
        "engine stopped, WAL flushed"
    );
    result
}
