//! `inventoryd`: the inventory gRPC server. See `docs/SERVER.md`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use server::config::{Config, ENV_VARS, Overrides};

/// mimalloc, not the system allocator: a request allocates dozens of small buffers (decode,
/// engine op, reply, HTTP/2 frames) and glibc's malloc/free took a quarter of the server's
/// CPU under load (BENCHMARKS.md). Only Rust's allocations: DuckDB's C++ keeps its own.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "inventoryd",
    version,
    about = "The inventory gRPC server (inventory.v1).",
    long_about = "The inventory gRPC server (inventory.v1): recovers the data dir (newest valid \
                  snapshot + WAL tail), then listens for gRPC and serves Prometheus metrics. Prints `inventoryd listening on ADDR` \
                  and `inventoryd metrics on ADDR` once ready. Snapshots are taken periodically and on \
                  demand (Admin/Snapshot). SIGTERM/SIGINT: stop accepting, finish in-flight calls, \
                  take a final snapshot, flush the WAL, exit 0.\n\nSettings come from flags > INVENTORY_* \
                  environment variables > the TOML config file > defaults; see \
                  server/inventoryd.example.toml for every setting and its default.",
    after_help = env_help()
)]
struct Cli {
    /// TOML config file (also INVENTORY_CONFIG).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Data directory (WAL, snapshots) [default: ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Metrics listen address [default: 127.0.0.1:9464]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Allow tokens over plain TCP on a non-loopback address.
    #[arg(long)]
    insecure: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints the SHA-256 of a token, for `[[tokens]] sha256 = "..."` in the config.
    HashToken {
        /// The token (keep it out of shell history: use `-` to read it from stdin).
        token: String,
    },
    /// Prints the effective configuration (after file, environment and flags) as TOML.
    PrintConfig,
}

fn env_help() -> String {
    let mut s = String::from("Environment variables:\n");
    for (name, what) in ENV_VARS {
        s.push_str(&format!("  {name:<38} {what}\n"));
    }
    s
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashToken { token }) = &cli.command {
        let token = if token == "-" {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            line.trim_end_matches(['\r', '\n']).to_string()
        } else {
            token.clone()
        };
        println!("{}", server::auth::hash_token(&token));
        return ExitCode::SUCCESS;
    }
    let flags = Overrides {
        listen: cli.listen.clone(),
        data_dir: cli.data_dir.clone(),
        metrics_listen: cli.metrics_listen.clone(),
        insecure: cli.insecure,
    };
    let config = match Config::load(cli.config.as_deref(), |k| std::env::var(k).ok(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("inventoryd: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::PrintConfig) = &cli.command {
        let mut shown = config.clone();
        shown.roles = config.role_matrix();
        match toml::to_string_pretty(&shown) {
            Ok(text) => print!("{text}"),
            Err(e) => eprintln!("inventoryd: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = engine::memory::apply_transparent_huge_pages(config.transparent_huge_pages) {
        tracing::warn!(error = %e, "could not turn transparent huge pages off");
    }
    let runtime = match server::runtime::build(None, config.thread_slice_micros) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("inventoryd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(config));
    // A final snapshot abandoned after its time limit may still hold a blocking thread: do not
    // wait for it (dropping the runtime would).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("inventoryd: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let listen = tokio::net::lookup_host(&config.listen)
        .await
        .map_err(|e| format!("listen = {:?}: {e}", config.listen))?
        .next()
        .ok_or_else(|| format!("listen = {:?}: no address", config.listen))?;
    if let Some(warning) = config.check_security(listen)? {
        tracing::warn!("{warning}");
    }
    // Recovery first: the server listens only once it is done.
    let opening = config.clone();
    let opened = tokio::task::spawn_blocking(move || server::open_engine(&opening))
        .await
        .map_err(|e| format!("recovery: {e}"))??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let metrics_listener = tokio::net::TcpListener::bind(&config.metrics_listen)
        .await
        .map_err(|e| format!("cannot listen on {} (metrics): {e}", config.metrics_listen))?;
    let grpc_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let metrics_addr = metrics_listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        tls = config.tls_enabled(),
        "ready on {grpc_addr}, metrics on {metrics_addr}"
    );
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "inventoryd listening on {grpc_addr}");
        let _ = writeln!(out, "inventoryd metrics on {metrics_addr}");
        let _ = out.flush();
    }
    server::run(
        &config,
        opened.engine,
        opened.snapshotter,
        listener,
        metrics_listener,
        shutdown_signal(),
    )
    .await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install the SIGTERM handler: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
