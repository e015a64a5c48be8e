//! The command line: parsed by clap, then checked against [`crate::limits`]; every refusal
//! names its flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::config::{self, Config, Scenario, Target, Unit};
use crate::limits;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ScenarioArg {
    FlashSale,
    Catalog,
    Checkout,
    Users,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TargetArg {
    Engine,
    Postgres,
    Redis,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum UnitArg {
    Hold,
    Order,
}

#[derive(Parser, Debug)]
#[command(
    name = "loadtest",
    version,
    about = "Open-loop load test of inventoryd (or its PostgreSQL / Redis peers), with an end-of-run stock check.",
    after_help = "Exit codes: 0 run done and check passed; 1 check failed; 2 bad command line; 3 run failed (connect, setup)."
)]
pub struct Args {
    #[arg(long, value_enum, default_value = "catalog")]
    pub scenario: ScenarioArg,
    #[arg(long, value_enum, default_value = "engine")]
    pub target: TargetArg,
    /// inventoryd's URL (http://127.0.0.1:PORT).
    #[arg(long, env = "INVENTORY_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Bearer token for inventoryd.
    #[arg(long, env = "INVENTORY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Redis address (127.0.0.1:PORT).
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub redis: String,
    /// PostgreSQL connection string (host must be 127.0.0.1).
    #[arg(
        long,
        default_value = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    )]
    pub postgres: String,
    /// Unit of work of flash-sale and catalog: a durable hold or a durable order placement.
    #[arg(long, value_enum, default_value = "hold")]
    pub unit: UnitArg,
    /// Units per arrival; above 1 the engine gets ExecuteBatch calls.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Arrivals per second (users: users starting per second).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Arrival window in seconds [default: 10] (not for users: --users / --rate + --think-ms).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Connections to the target (HTTP/2 for the engine), shared by all virtual users.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Requests in flight at most [default: 256 per connection].
    #[arg(long)]
    pub in_flight: Option<usize>,
    /// SKUs the run creates [default: flash-sale 1, catalog 100000, checkout 1000, users 10000].
    #[arg(long)]
    pub skus: Option<usize>,
    /// Units of stock per SKU [default: flash-sale half the arrivals, else 1000000].
    #[arg(long)]
    pub stock: Option<u32>,
    /// Zipf exponent of SKU popularity (0 = uniform).
    #[arg(long, default_value_t = limits::ZIPF_EXPONENT_DEFAULT)]
    pub zipf: f64,
    /// Virtual users (users scenario).
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// Think time between a user's hold and its commit or release, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub think_ms: u64,
    /// Percent of users (checkout: orders) that commit (pay); the rest release (fail or time out).
    #[arg(long, default_value_t = 50)]
    pub commit_percent: u32,
    /// Seed of every random choice: the same seed, the same ops.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix of every id the run creates [default: from the seed, the clock and the pid].
    #[arg(long)]
    pub run_id: Option<String>,
    /// Deadline of each request, in milliseconds.
    #[arg(long, default_value_t = limits::REQUEST_TIMEOUT_MILLIS_DEFAULT)]
    pub timeout_ms: u64,
    /// inventoryd's pid, to report its peak RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the summary (and the check) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

pub fn is_loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]")
}

fn within<T: PartialOrd + std::fmt::Display>(flag: &str, v: T, lo: T, hi: T) -> Result<T, String> {
    if v < lo || v > hi {
        return Err(format!("{flag} must be between {lo} and {hi} (got {v})"));
    }
    Ok(v)
}

impl Args {
    pub fn into_config(self) -> Result<Config, String> {
        let scenario = match self.scenario {
            ScenarioArg::FlashSale => Scenario::FlashSale,
            ScenarioArg::Catalog => Scenario::Catalog,
            ScenarioArg::Checkout => Scenario::Checkout,
            ScenarioArg::Users => Scenario::Users,
        };
        let target = match self.target {
            TargetArg::Engine => {
                let uri: tonic::transport::Uri = self
                    .addr
                    .parse()
                    .map_err(|e| format!("--addr {}: {e}", self.addr))?;
                if uri.scheme_str() != Some("http") || !uri.host().is_some_and(is_loopback_host) {
                    return Err(format!(
                        "--addr {}: must be http://127.0.0.1:PORT (the load test targets this machine only)",
                        self.addr
                    ));
                }
                Target::Engine { url: self.addr }
            }
            TargetArg::Redis => {
                let addr: SocketAddr = self
                    .redis
                    .parse()
                    .map_err(|e| format!("--redis {}: {e} (want 127.0.0.1:PORT)", self.redis))?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--redis {}: must be a loopback address",
                        self.redis
                    ));
                }
                Target::Redis { addr: self.redis }
            }
            TargetArg::Postgres => {
                crate::postgres::check_loopback(&self.postgres)
                    .map_err(|e| format!("--postgres: {e}"))?;
                Target::Postgres {
                    conninfo: self.postgres,
                }
            }
        };
        let rate = within("--rate", self.rate, 1, limits::RATE_PER_SECOND_MAX)?;
        let duration = match (scenario, self.duration) {
            (Scenario::Users, Some(_)) => {
                return Err(
                    "--duration does not apply to --scenario users (its length is --users / --rate + --think-ms)"
                        .into(),
                );
            }
            (_, d) => within(
                "--duration",
                d.unwrap_or(10),
                1,
                limits::DURATION_SECONDS_MAX,
            )?,
        };
        let connections = within(
            "--connections",
            self.connections,
            1,
            limits::CONNECTIONS_MAX,
        )?;
        let in_flight = within(
            "--in-flight",
            self.in_flight
                .unwrap_or(connections * limits::IN_FLIGHT_PER_CONNECTION_DEFAULT),
            1,
            limits::IN_FLIGHT_MAX,
        )?;
        let skus = within(
            "--skus",
            self.skus.unwrap_or(config::default_skus(scenario)),
            1,
            limits::SKUS_MAX,
        )?;
        let batch = within("--batch", self.batch, 1, limits::BATCH_OPS_MAX)?;
        if batch > 1 && !matches!(scenario, Scenario::FlashSale | Scenario::Catalog) {
            return Err("--batch applies to --scenario flash-sale and catalog only".into());
        }
        let users = within("--users", self.users, 1, limits::USERS_MAX)?;
        let think_ms = within(
            "--think-ms",
            self.think_ms,
            0,
            limits::THINK_SECONDS_MAX * 1000,
        )?;
        let zipf = within("--zipf", self.zipf, 0.0, limits::ZIPF_EXPONENT_MAX)?;
        let commit_percent = within("--commit-percent", self.commit_percent, 0, 100)?;
        let timeout_ms = within(
            "--timeout-ms",
            self.timeout_ms,
            1,
            limits::REQUEST_TIMEOUT_MILLIS_MAX,
        )?;
        let arrivals = match scenario {
            Scenario::Users => 2 * users,
            _ => rate * duration,
        };
        if arrivals > limits::ARRIVALS_MAX {
            return Err(format!(
                "--rate × --duration (or 2 × --users) is {arrivals} arrivals, above the maximum of {}",
                limits::ARRIVALS_MAX
            ));
        }
        let units = arrivals * batch as u64;
        let default_stock = match scenario {
            Scenario::FlashSale => u32::try_from((units / 2).max(1)).unwrap_or(limits::STOCK_MAX),
            _ => 1_000_000,
        };
        let stock = within(
            "--stock",
            self.stock.unwrap_or(default_stock),
            0,
            limits::STOCK_MAX,
        )?;
        if let Some(id) = &self.run_id
            && (id.is_empty()
                || id.len() > 64
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(format!("--run-id {id:?}: 1 to 64 letters, digits or '-'"));
        }
        let unit = match self.unit {
            UnitArg::Hold => Unit::Hold,
            UnitArg::Order => Unit::Order,
        };
        Ok(Config {
            scenario,
            target,
            unit,
            batch,
            rate_per_second: rate,
            duration_seconds: duration,
            connections,
            in_flight_max: in_flight,
            skus,
            stock_per_sku: stock,
            zipf_exponent: zipf,
            users,
            think_millis: think_ms,
            commit_percent,
            seed: self.seed,
            run_id: self
                .run_id
                .unwrap_or_else(|| config::default_run_id(self.seed)),
            request_timeout_millis: timeout_ms,
            progress: !self.quiet,
            server_pid: self.server_pid,
            token: self.token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let args = Args::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        args.into_config()
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (args, flag) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--connections", "5000"], "--connections"),
            (&["--addr", "http://10.0.0.1:50051"], "--addr"),
            (
                &["--redis", "192.168.1.1:6379", "--target", "redis"],
                "--redis",
            ),
            (&["--scenario", "users", "--duration", "5"], "--duration"),
            (&["--scenario", "checkout", "--batch", "4"], "--batch"),
            (&["--run-id", "a b"], "--run-id"),
            (
                &["--target", "postgres", "--postgres", "host=db.example.com"],
                "--postgres",
            ),
        ] {
            let err = parse(args).expect_err("should be refused");
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn defaults_follow_the_scenario() {
        let c = parse(&[
            "--scenario",
            "flash-sale",
            "--rate",
            "100",
            "--duration",
            "4",
        ])
        .unwrap();
        assert_eq!(c.skus, 1);
        assert_eq!(c.stock_per_sku, 200);
        let c = parse(&["--scenario", "catalog"]).unwrap();
        assert_eq!(c.skus, 100_000);
        assert_eq!(c.in_flight_max, 8 * 256);
    }
}
