//! What a run does: the scenario, the target and the sizes. Built from the command line by
//! [`crate::cli`] (which checks every bound of [`crate::limits`]), or directly by tests.

use std::time::Duration;

use serde::Serialize;

use crate::limits;

/// The workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Every arrival wants one unit of the same SKU (which sells out if its stock is short).
    FlashSale,
    /// Every arrival wants one unit of a SKU drawn from a Zipf distribution over the catalog.
    Catalog,
    /// The order flow: create → pay, fail the payment, or let it time out → ship → deliver,
    /// some returned and restocked.
    Checkout,
    /// Virtual users: each takes a hold, thinks, then commits or releases it.
    Users,
}

/// What one unit of work of the flash-sale and catalog scenarios is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// A durable hold: `Reserve` (Redis: the check-and-DECRBY script).
    Hold,
    /// A durable order placement: `CreateOrder` + `ConfirmPayment` (PostgreSQL: the
    /// `place_order` procedure).
    Order,
}

/// Who is measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// `inventoryd` at this URL (`http://127.0.0.1:PORT`).
    Engine { url: String },
    /// The seeds' design on PostgreSQL (a libpq-style connection string).
    Postgres { conninfo: String },
    /// A Redis server (`127.0.0.1:PORT`).
    Redis { addr: String },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Engine { .. } => "engine",
            Target::Postgres { .. } => "postgres",
            Target::Redis { .. } => "redis",
        }
    }
}

/// One run.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub scenario: Scenario,
    pub target: Target,
    pub unit: Unit,
    /// Units per arrival: above 1 the engine gets one `ExecuteBatch` per arrival (two for
    /// orders: the creates, then the payments with the totals they returned).
    pub batch: usize,
    /// Arrivals per second (virtual users starting per second for `users`).
    pub rate_per_second: u64,
    /// Arrival window (ignored by `users`, whose length is `users / rate + think`).
    pub duration_seconds: u64,
    pub connections: usize,
    pub in_flight_max: usize,
    pub skus: usize,
    pub stock_per_sku: u32,
    /// Skew of SKU choice (0 = uniform) for catalog, checkout and users.
    pub zipf_exponent: f64,
    pub users: u64,
    pub think_millis: u64,
    /// Share of users (and checkout orders, of those paid) that commit rather than release.
    pub commit_percent: u32,
    pub seed: u64,
    /// Prefix of every id the run creates (SKUs, holds, orders), so runs on one server never
    /// collide and the check reads back only this run's SKUs.
    pub run_id: String,
    pub request_timeout_millis: u64,
    pub progress: bool,
    /// The server's pid, to report its peak RSS (engine on this machine only).
    pub server_pid: Option<u32>,
    #[serde(skip)]
    pub token: Option<String>,
}

impl Config {
    /// A small configuration for `scenario` against the engine at `url` (tests start here).
    pub fn new(scenario: Scenario, url: &str) -> Config {
        Config {
            scenario,
            target: Target::Engine {
                url: url.to_string(),
            },
            unit: Unit::Hold,
            batch: 1,
            rate_per_second: 100,
            duration_seconds: 3,
            connections: 2,
            in_flight_max: 2 * limits::IN_FLIGHT_PER_CONNECTION_DEFAULT,
            skus: default_skus(scenario),
            stock_per_sku: 1_000_000,
            zipf_exponent: limits::ZIPF_EXPONENT_DEFAULT,
            users: 200,
            think_millis: 1_000,
            commit_percent: 50,
            seed: 1,
            run_id: default_run_id(1),
            request_timeout_millis: limits::REQUEST_TIMEOUT_MILLIS_DEFAULT,
            progress: false,
            server_pid: None,
            token: None,
        }
    }

    /// Arrivals the schedule holds: users start and end a session each.
    pub fn arrivals(&self) -> u64 {
        match self.scenario {
            Scenario::Users => 2 * self.users,
            _ => self.rate_per_second * self.duration_seconds,
        }
    }

    pub fn think(&self) -> Duration {
        Duration::from_millis(self.think_millis)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_millis)
    }

    /// Units of work one arrival carries.
    pub fn units_per_arrival(&self) -> usize {
        match self.scenario {
            Scenario::FlashSale | Scenario::Catalog => self.batch,
            Scenario::Checkout | Scenario::Users => 1,
        }
    }
}

/// SKUs per scenario unless told: one hot SKU; the 100k catalog; a store's worth for the
/// order flow and the users.
pub fn default_skus(scenario: Scenario) -> usize {
    match scenario {
        Scenario::FlashSale => 1,
        Scenario::Catalog => 100_000,
        Scenario::Checkout => 1_000,
        Scenario::Users => 10_000,
    }
}

/// A run id unique enough across runs on one server: the seed and the wall clock.
pub fn default_run_id(seed: u64) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("lt{seed}-{millis:x}-{}", std::process::id())
}
