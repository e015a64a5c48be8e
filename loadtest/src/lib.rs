//! `loadtest`: an open-loop load generator for `inventoryd` and its peers (the seeds'
//! PostgreSQL design, a Redis script), with an end-of-run correctness check.
//!
//! [`load`] creates the run's SKUs, drives the schedule at a constant arrival rate and returns
//! a [`Load`]; [`Load::check`] reads every SKU back and compares it with what the run was
//! told. [`run`] is both, as the binary does. See `docs/ARCHITECTURE.md` ("Load test").

pub mod cli;
pub mod config;
mod driver;
pub mod engine;
pub mod expect;
pub mod limits;
pub mod names;
mod plan;
mod postgres;
mod progress;
mod redis;
mod rng;
pub mod stats;
mod steps;

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use config::{Config, Scenario, Target, Unit};
pub use expect::{Check, Level};
pub use stats::Measured;

use crate::expect::Expected;
use crate::names::Names;
use crate::stats::{Outcome, Stats, code_name, outcome_unknown};

#[derive(Debug, Clone)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// What a run reports (and `--json` writes).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub target: &'static str,
    /// How the target makes an acknowledged write durable, as far as the run can tell.
    pub durability: String,
    pub config: Config,
    pub measured: Measured,
    /// Arrivals the schedule held; those not sent (`measured.arrivals_sent` fewer) were still
    /// waiting for an in-flight slot when the window closed: the target was slower than the rate.
    pub arrivals_planned: u64,
    /// Arrivals still unanswered when the drain deadline passed (their units are uncertain).
    pub abandoned_arrivals: usize,
    /// The server's peak resident set (VmHWM), when `--server-pid` names a local process.
    pub server_peak_rss_bytes: Option<u64>,
    pub check: Option<Check>,
}

enum Peer {
    Redis(redis::Redis),
    Postgres(postgres::Postgres),
}

struct PeerCtx {
    peer: Peer,
    names: Names,
    expect: Expected,
}

enum Shared {
    Engine(Arc<steps::Ctx>),
    Peer(Arc<PeerCtx>),
}

/// A finished load phase, ready to be checked.
pub struct Load {
    shared: Shared,
    skus: usize,
    pub summary: Summary,
}

impl Load {
    /// The name of the run's SKU `index` (tests tamper with it).
    pub fn sku_name(&self, index: usize) -> String {
        self.names().sku(index)
    }

    fn names(&self) -> &Names {
        match &self.shared {
            Shared::Engine(c) => &c.names,
            Shared::Peer(p) => &p.names,
        }
    }

    /// Reads back every SKU of the run and compares it with what the run was told.
    pub async fn check(&self) -> Result<Check, Error> {
        let (read, expect) = match &self.shared {
            Shared::Engine(c) => (c.engine.read_back(&c.names, self.skus).await?, &c.expect),
            Shared::Peer(p) => {
                let read = match &p.peer {
                    Peer::Redis(r) => r.read_back(&p.names, self.skus).await?,
                    Peer::Postgres(pg) => pg.read_back(&p.names, self.skus).await?,
                };
                (read, &p.expect)
            }
        };
        Ok(expect.check(&read))
    }
}

/// Load, then check; the summary carries the check.
pub async fn run(config: &Config) -> Result<Summary, Error> {
    let load = load(config).await?;
    let check = load.check().await?;
    let mut summary = load.summary;
    summary.check = Some(check);
    Ok(summary)
}

/// Refuses combinations that do not make a comparable run.
fn check_combination(config: &Config) -> Result<(), Error> {
    let peer = !matches!(config.target, Target::Engine { .. });
    if peer && !matches!(config.scenario, Scenario::FlashSale | Scenario::Catalog) {
        return Err(Error::new(
            "--target postgres|redis runs --scenario flash-sale or catalog only (the peers have no order flow or holds with a think time)",
        ));
    }
    if peer && config.batch != 1 {
        return Err(Error::new("--batch applies to --target engine only"));
    }
    match (&config.target, config.unit) {
        (Target::Redis { .. }, Unit::Order) => Err(Error::new(
            "--unit order with --target redis: the Redis script is a hold (use --unit hold)",
        )),
        (Target::Postgres { .. }, Unit::Hold) => Err(Error::new(
            "--unit hold with --target postgres: the seeds' procedure places an order (use --unit order)",
        )),
        _ => Ok(()),
    }
}

/// Creates the run's SKUs, then drives the schedule to its end.
pub async fn load(config: &Config) -> Result<Load, Error> {
    check_combination(config)?;
    let names = Names::new(&config.run_id);
    let expect = Expected::new(config.skus, config.stock_per_sku);
    let orders = config.scenario == Scenario::Checkout || config.unit == Unit::Order;
    let (shared, durability) = match &config.target {
        Target::Engine { url } => {
            let engine = engine::Engine::connect(
                url,
                config.connections,
                config.token.as_deref(),
                config.request_timeout(),
            )
            .await?;
            engine
                .setup(&names, config.skus, config.stock_per_sku, orders)
                .await?;
            let users = if config.scenario == Scenario::Users {
                (0..config.users).map(|_| AtomicU8::new(0)).collect()
            } else {
                Vec::new()
            };
            let think_seconds = u32::try_from(config.think().as_secs()).unwrap_or(u32::MAX);
            let ctx = steps::Ctx {
                engine,
                names,
                expect,
                unit: config.unit,
                users,
                user_ttl_seconds: think_seconds
                    .saturating_add(1)
                    .saturating_add(limits::HOLD_GRACE_SECONDS),
                hold_wait: config.request_timeout(),
                last_deadline: Mutex::new(None),
            };
            (
                Shared::Engine(Arc::new(ctx)),
                "WAL group commit, fdatasync before every reply".to_string(),
            )
        }
        Target::Redis { addr } => {
            let r = redis::Redis::connect(addr, config.connections).await?;
            r.setup(&names, config.skus, config.stock_per_sku).await?;
            let durability = format!("appendfsync {}", r.appendfsync);
            let p = PeerCtx {
                peer: Peer::Redis(r),
                names,
                expect,
            };
            (Shared::Peer(Arc::new(p)), durability)
        }
        Target::Postgres { conninfo } => {
            let pg = postgres::Postgres::connect(conninfo, config.connections).await?;
            pg.setup(&names, config.skus, config.stock_per_sku).await?;
            let durability = pg.durability.clone();
            let p = PeerCtx {
                peer: Peer::Postgres(pg),
                names,
                expect,
            };
            (Shared::Peer(Arc::new(p)), durability)
        }
    };

    let stats = Arc::new(Stats::new());
    let planned = planned_length(config);
    let progress = config
        .progress
        .then(|| progress::start(stats.clone(), planned, config.arrivals()));
    let schedule = plan::Schedule::new(config);
    let window = planned + Duration::from_millis(limits::WINDOW_GRACE_MILLIS);
    let (start, abandoned) = match &shared {
        Shared::Engine(ctx) => {
            let ctx = ctx.clone();
            driver::drive(
                schedule,
                config.in_flight_max,
                window,
                stats.clone(),
                move |step| {
                    let ctx = ctx.clone();
                    async move { steps::execute(&ctx, step).await }
                },
            )
            .await
        }
        Shared::Peer(p) => {
            let p = p.clone();
            driver::drive(
                schedule,
                config.in_flight_max,
                window,
                stats.clone(),
                move |step| {
                    let p = p.clone();
                    async move { peer_step(&p, step).await }
                },
            )
            .await
        }
    };
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        p.stop().await;
    }
    if let Shared::Engine(ctx) = &shared {
        wait_for_payment_deadlines(ctx).await;
    }
    let summary = Summary {
        target: config.target.name(),
        durability,
        config: config.clone(),
        measured: stats.summary(elapsed),
        arrivals_planned: config.arrivals(),
        abandoned_arrivals: abandoned,
        server_peak_rss_bytes: config.server_pid.and_then(engine::Engine::peak_rss_bytes),
        check: None,
    };
    Ok(Load {
        shared,
        skus: config.skus,
        summary,
    })
}

/// How long the schedule runs (for the progress line).
fn planned_length(config: &Config) -> Duration {
    let arrivals = match config.scenario {
        Scenario::Users => config.users,
        _ => config.arrivals(),
    };
    let base = driver::offset(arrivals, config.rate_per_second);
    match config.scenario {
        Scenario::Users => base + config.think(),
        _ => base,
    }
}

/// The orders left unpaid on purpose end at their deadline; the check must come after.
async fn wait_for_payment_deadlines(ctx: &steps::Ctx) {
    let last = *ctx.last_deadline.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(deadline) = last {
        let until = deadline + Duration::from_secs(limits::PAYMENT_TIMEOUT_SLACK_SECONDS);
        if until > Instant::now() {
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

/// A peer's unit of work: the Redis hold script or the PostgreSQL `place_order` call, one
/// unit of one SKU, a sale as far as the stock figure goes.
async fn peer_step(p: &PeerCtx, step: plan::Step) -> Outcome {
    let plan::Step::Units { first, skus } = step else {
        return Outcome::default();
    };
    let sku = skus[0];
    let result = match &p.peer {
        Peer::Redis(r) => r.hold(&p.names, first, sku).await,
        Peer::Postgres(pg) => pg.place_order(&p.names, first, sku).await,
    };
    match result {
        Ok(()) => {
            p.expect.deducted(sku, 1);
            Outcome::ok(1)
        }
        Err(code) => {
            if outcome_unknown(code) {
                p.expect.uncertain(sku, 1);
            }
            Outcome::failed(code_name(code))
        }
    }
}
