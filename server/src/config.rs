//! `inventoryd`'s configuration: defaults, a TOML file, `INVENTORY_*` environment variables and
//! command-line flags, in rising precedence (flags > env > file > defaults). Every setting is
//! documented, with its default, in `server/inventoryd.example.toml` and `docs/SERVER.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::{self, RoleRule};
use crate::limits;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address.
    pub listen: String,
    /// Prometheus `/metrics` listen address.
    pub metrics_listen: String,
    /// Where the data lives: the WAL in `wal/`, snapshots in `snapshots/`, consumer cursors.
    pub data_dir: PathBuf,
    /// Allow tokens over plain TCP on a non-loopback address.
    pub insecure: bool,
    /// `tracing` filter (`RUST_LOG` syntax) used when `RUST_LOG` is not set.
    pub log: String,
    /// Let the kernel back this process's memory with transparent huge pages. Off by default:
    /// a fault on a huge page zeroes (or compacts memory for) 2 MiB under the request that
    /// touched it (BENCHMARKS.md, Load test, session 11).
    pub transparent_huge_pages: bool,
    /// The CPU slice, in microseconds, that the threads a reply waits on ask the kernel for —
    /// the runtime's threads and the WAL writer (`engine::sched`). 0, the default, leaves the
    /// kernel's: a short slice lowers tail latency and costs CPU at saturation.
    pub thread_slice_micros: u64,
    pub engine: EngineSettings,
    pub limits: LimitSettings,
    pub orders: OrderSettings,
    pub alerts: AlertSettings,
    pub notifier: NotifierSettings,
    pub tls: TlsSettings,
    pub exporter: ExporterSettings,
    /// Bearer tokens, stored as SHA-256 hashes, each with a role.
    pub tokens: Vec<TokenEntry>,
    /// Role × RPC matrix. A role given here replaces that role's default; others keep theirs.
    pub roles: BTreeMap<String, RoleRule>,
}

/// The exporter (change feed → analytical store) and the Reports service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExporterSettings {
    /// Run the exporter inside the server (Reports answer FAILED_PRECONDITION without it).
    pub enabled: bool,
    /// `duckdb` (an embedded file, the default) or `postgres` (a server at `postgres_url`).
    pub store: String,
    /// The DuckDB file; relative paths are inside `data_dir`.
    pub path: PathBuf,
    /// `postgresql://user@host:port/db` (libpq key=value strings work too), for `store = "postgres"`.
    pub postgres_url: String,
    /// WAL records per store transaction.
    pub batch_records: usize,
    /// The exporter thread's nice value (0 = the server's priority).
    pub nice: i32,
    /// When the exporter is caught up, the least time between two store transactions.
    pub batch_interval_millis: u64,
}

impl Default for ExporterSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            store: "duckdb".into(),
            path: PathBuf::from("analytics.duckdb"),
            postgres_url: String::new(),
            batch_records: exporter::limits::BATCH_RECORDS_DEFAULT,
            nice: exporter::limits::NICE_DEFAULT,
            batch_interval_millis: exporter::limits::BATCH_INTERVAL_MILLIS_DEFAULT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Ledger shards (lock domains); 0 = the engine's default, 8 per CPU (at most 256).
    pub shards: usize,
    /// `fsync` (default; replies wait for fdatasync) or `none` (UNSAFE: no fsync at all).
    pub sync: String,
    /// Group commit: longest a record waits for company before the batch is written (µs).
    pub group_commit_delay_micros: u64,
    /// WAL segment size before rolling over to a new file.
    pub segment_bytes: u64,
    /// Zero-fill each WAL segment ahead of need (with `sync = "fsync"`), so commits overwrite
    /// instead of appending; turn off on copy-on-write file systems (btrfs, ZFS).
    pub preallocate_segments: bool,
    /// Hold time when a Reserve says `ttl_seconds = 0`.
    pub ttl_default_seconds: u32,
    /// How long ended objects' ids are remembered for idempotent retries.
    pub id_retention_seconds: u64,
    /// How many ended objects' ids are remembered.
    pub id_retention_count: u64,
    /// Live (active) holds; a Reserve beyond it is RESOURCE_EXHAUSTED.
    pub live_holds_max: u64,
    /// `strict` (refuse to start on corruption before the WAL's tail) or `truncate-corruption`.
    pub recovery: String,
    /// Snapshots kept (at least 2, so a damaged newest one has a fallback).
    pub snapshot_keep: usize,
    /// A snapshot is taken once this many WAL records were written since the last one ...
    pub snapshot_every_records: u64,
    /// ... or once this many seconds passed with at least one new record, whichever first.
    pub snapshot_every_seconds: u64,
    /// WAL bytes a lagging change-feed consumer may hold back beyond what the kept snapshots
    /// need; past it the consumer is dropped (it rebuilds from a snapshot).
    pub consumer_wal_retained_bytes_max: u64,
}

/// Order pricing, payment timeout, customer tiers and how long closed orders are kept. Each
/// order's WAL record carries the pricing it was created with, so changing these affects new
/// orders only (replay and reports never see today's values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderSettings {
    /// Discount on a line of at least `bulk_discount_units_min` units, in basis points.
    pub bulk_discount_bps: u32,
    pub bulk_discount_units_min: u32,
    /// Tax on (subtotal − discount), in basis points.
    pub tax_bps: u32,
    pub shipping_cents: i64,
    /// Shipping is free once subtotal − discount reaches this.
    pub free_shipping_min_cents: i64,
    /// Payment deadline of a CreateOrder with `payment_timeout_seconds = 0`.
    pub payment_timeout_default_seconds: u32,
    /// Lifetime spend from which a customer is Silver ...
    pub silver_tier_cents: i64,
    /// ... and Gold.
    pub gold_tier_cents: i64,
    /// Closed orders (CANCELLED, DELIVERED, RETURNED) are kept this long after closing ...
    pub retention_seconds: u64,
    /// ... and at most this many of them, whichever bound is reached first.
    pub retention_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// An alert resolves once available ≥ reorder_level + this share of it (at least 1 unit).
    pub hysteresis_bps: u32,
}

/// Customer and manager notifications (the notifier reads the WAL, so it needs `sync = fsync`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifierSettings {
    pub enabled: bool,
    /// `log` (the file below), `email` (SMTP, needs `smtp.host`), `sms` (webhook, needs
    /// `webhook_url`).
    pub channels: Vec<String>,
    /// The log channel's file; unset = `DATA_DIR/notifications.log`.
    pub log_path: Option<PathBuf>,
    /// Templates here replace the shipped ones of the same file name.
    pub templates_dir: Option<PathBuf>,
    /// Inventory managers' email addresses (alert mails).
    pub managers: Vec<String>,
    /// Attempts before a message is FAILED (the dead letter).
    pub attempts_max: u32,
    /// Wait before the second attempt, doubled per failure up to `backoff_max_millis` (jittered).
    pub backoff_initial_millis: u64,
    pub backoff_max_millis: u64,
    /// The SMS gateway: JSON POSTed to this `http(s)://` URL.
    pub webhook_url: String,
    /// CA bundle trusted for STARTTLS and `https` webhooks.
    pub ca_file: PathBuf,
    pub smtp: SmtpSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub starttls: bool,
    /// AUTH (PLAIN or LOGIN) when non-empty.
    pub username: String,
    pub password: String,
    pub from: String,
    /// The name given in EHLO.
    pub helo: String,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            channels: vec!["log".into()],
            log_path: None,
            templates_dir: None,
            managers: Vec::new(),
            attempts_max: notifier::limits::ATTEMPTS_MAX_DEFAULT,
            backoff_initial_millis: notifier::limits::BACKOFF_INITIAL_MILLIS_DEFAULT,
            backoff_max_millis: notifier::limits::BACKOFF_MAX_MILLIS_DEFAULT,
            webhook_url: String::new(),
            ca_file: PathBuf::from(notifier::channel::tls::SYSTEM_CA_FILE),
            smtp: SmtpSettings::default(),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 25,
            starttls: false,
            username: String::new(),
            password: String::new(),
            from: "inventory@localhost".into(),
            helo: "localhost".into(),
        }
    }
}

/// Basis points in 100 %: the largest discount, tax rate or hysteresis margin accepted.
pub const BPS_MAX: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    pub max_message_bytes: usize,
    pub max_concurrent_streams: u32,
    pub max_connections: usize,
    pub request_timeout_seconds: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain; with `key`, turns TLS on.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub role: String,
    /// Hex SHA-256 of the token (`inventoryd hash-token TOKEN` prints it).
    pub sha256: String,
    /// A label for logs (never the token).
    #[serde(default)]
    pub name: String,
}

/// Snapshots kept by default (the minimum: the newest and one fallback).
pub const SNAPSHOT_KEEP_DEFAULT: usize = 2;
/// A snapshot every 1,000,000 WAL records ...
pub const SNAPSHOT_EVERY_RECORDS_DEFAULT: u64 = 1_000_000;
/// ... or every 5 minutes (when anything was written).
pub const SNAPSHOT_EVERY_SECONDS_DEFAULT: u64 = 300;
/// WAL a lagging consumer may hold back: 8 GiB.
pub const CONSUMER_WAL_RETAINED_BYTES_MAX_DEFAULT: u64 = 8 << 30;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            metrics_listen: "127.0.0.1:9464".into(),
            data_dir: PathBuf::from("./data"),
            insecure: false,
            log: "info".into(),
            transparent_huge_pages: false,
            thread_slice_micros: engine::limits::THREAD_SLICE_MICROS_DEFAULT,
            engine: EngineSettings::default(),
            limits: LimitSettings::default(),
            orders: OrderSettings::default(),
            alerts: AlertSettings::default(),
            notifier: NotifierSettings::default(),
            tls: TlsSettings::default(),
            exporter: ExporterSettings::default(),
            tokens: Vec::new(),
            roles: BTreeMap::new(),
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            shards: 0,
            sync: "fsync".into(),
            group_commit_delay_micros: engine::limits::GROUP_COMMIT_DELAY_MICROS_DEFAULT,
            segment_bytes: engine::limits::SEGMENT_BYTES_DEFAULT,
            preallocate_segments: true,
            ttl_default_seconds: engine::limits::TTL_SECONDS_DEFAULT,
            id_retention_seconds: engine::limits::ID_RETENTION_SECONDS_DEFAULT,
            id_retention_count: engine::limits::ID_RETENTION_COUNT_DEFAULT,
            live_holds_max: engine::limits::LIVE_HOLDS_MAX_DEFAULT,
            recovery: "strict".into(),
            snapshot_keep: SNAPSHOT_KEEP_DEFAULT,
            snapshot_every_records: SNAPSHOT_EVERY_RECORDS_DEFAULT,
            snapshot_every_seconds: SNAPSHOT_EVERY_SECONDS_DEFAULT,
            consumer_wal_retained_bytes_max: CONSUMER_WAL_RETAINED_BYTES_MAX_DEFAULT,
        }
    }
}

impl Default for OrderSettings {
    /// The engine's defaults (DESIGN.md's pricing).
    fn default() -> Self {
        let policy = engine::OrderPolicy::default();
        let p = policy.pricing;
        Self {
            bulk_discount_bps: p.bulk_discount_bps,
            bulk_discount_units_min: p.bulk_discount_units_min,
            tax_bps: p.tax_bps,
            shipping_cents: p.shipping_cents,
            free_shipping_min_cents: p.free_shipping_min_cents,
            payment_timeout_default_seconds: policy.payment_timeout_default_seconds,
            silver_tier_cents: policy.tiers.silver_cents,
            gold_tier_cents: policy.tiers.gold_cents,
            retention_seconds: policy.retention_seconds,
            retention_count: policy.retention_count,
        }
    }
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            hysteresis_bps: engine::AlertPolicy::default().hysteresis_bps,
        }
    }
}

impl OrderSettings {
    /// Checks every value; the message names the offending setting.
    fn validate(&self) -> Result<(), String> {
        let at_most = |name: &str, value: i128, max: i128| {
            if value > max {
                Err(format!(
                    "orders.{name} = {value} exceeds the maximum of {max}"
                ))
            } else if value < 0 {
                Err(format!("orders.{name} = {value} must not be negative"))
            } else {
                Ok(())
            }
        };
        at_most(
            "bulk_discount_bps",
            self.bulk_discount_bps.into(),
            BPS_MAX.into(),
        )?;
        at_most("tax_bps", self.tax_bps.into(), BPS_MAX.into())?;
        let price_max = engine::limits::UNIT_PRICE_CENTS_MAX.into();
        at_most("shipping_cents", self.shipping_cents.into(), price_max)?;
        let total_max = engine::limits::ORDER_TOTAL_CENTS_MAX.into();
        at_most(
            "free_shipping_min_cents",
            self.free_shipping_min_cents.into(),
            total_max,
        )?;
        at_most(
            "silver_tier_cents",
            self.silver_tier_cents.into(),
            i64::MAX.into(),
        )?;
        at_most(
            "gold_tier_cents",
            self.gold_tier_cents.into(),
            i64::MAX.into(),
        )?;
        if self.bulk_discount_units_min == 0 {
            return Err("orders.bulk_discount_units_min must be at least 1 \
                        (set orders.bulk_discount_bps = 0 to turn the discount off)"
                .into());
        }
        if self.payment_timeout_default_seconds == 0
            || self.payment_timeout_default_seconds > engine::limits::TTL_SECONDS_MAX
        {
            return Err(format!(
                "orders.payment_timeout_default_seconds = {} must be 1..={}",
                self.payment_timeout_default_seconds,
                engine::limits::TTL_SECONDS_MAX
            ));
        }
        if self.gold_tier_cents < self.silver_tier_cents {
            return Err(format!(
                "orders.gold_tier_cents = {} is below orders.silver_tier_cents = {}",
                self.gold_tier_cents, self.silver_tier_cents
            ));
        }
        // A closed order must outlive the retry of the op that closed it.
        if self.retention_seconds == 0 || self.retention_count == 0 {
            return Err(
                "orders.retention_seconds and orders.retention_count must be at least 1".into(),
            );
        }
        Ok(())
    }

    fn policy(&self) -> engine::OrderPolicy {
        engine::OrderPolicy {
            pricing: engine::Pricing {
                bulk_discount_bps: self.bulk_discount_bps,
                bulk_discount_units_min: self.bulk_discount_units_min,
                tax_bps: self.tax_bps,
                shipping_cents: self.shipping_cents,
                free_shipping_min_cents: self.free_shipping_min_cents,
            },
            payment_timeout_default_seconds: self.payment_timeout_default_seconds,
            tiers: engine::orders::Tiers {
                silver_cents: self.silver_tier_cents,
                gold_cents: self.gold_tier_cents,
            },
            retention_seconds: self.retention_seconds,
            retention_count: self.retention_count,
        }
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: limits::MESSAGE_BYTES_MAX_DEFAULT,
            max_concurrent_streams: limits::MAX_CONCURRENT_STREAMS_DEFAULT,
            max_connections: limits::MAX_CONNECTIONS_DEFAULT,
            request_timeout_seconds: limits::REQUEST_TIMEOUT_SECONDS_DEFAULT,
        }
    }
}

/// The flags of `inventoryd` that override a setting (None = not given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub metrics_listen: Option<String>,
    pub insecure: bool,
}

/// The environment variables read, with the setting each overrides.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "INVENTORY_CONFIG",
        "path of the TOML config file (like --config)",
    ),
    ("INVENTORY_LISTEN", "listen"),
    ("INVENTORY_METRICS_LISTEN", "metrics_listen"),
    ("INVENTORY_DATA_DIR", "data_dir"),
    ("INVENTORY_INSECURE", "insecure (true/false)"),
    ("INVENTORY_LOG", "log"),
    (
        "INVENTORY_TRANSPARENT_HUGE_PAGES",
        "transparent_huge_pages (true/false)",
    ),
    ("INVENTORY_THREAD_SLICE_MICROS", "thread_slice_micros"),
    ("INVENTORY_SHARDS", "engine.shards"),
    ("INVENTORY_SYNC", "engine.sync"),
    (
        "INVENTORY_GROUP_COMMIT_DELAY_MICROS",
        "engine.group_commit_delay_micros",
    ),
    ("INVENTORY_SEGMENT_BYTES", "engine.segment_bytes"),
    (
        "INVENTORY_PREALLOCATE_SEGMENTS",
        "engine.preallocate_segments (true/false)",
    ),
    (
        "INVENTORY_TTL_DEFAULT_SECONDS",
        "engine.ttl_default_seconds",
    ),
    (
        "INVENTORY_ID_RETENTION_SECONDS",
        "engine.id_retention_seconds",
    ),
    ("INVENTORY_ID_RETENTION_COUNT", "engine.id_retention_count"),
    ("INVENTORY_LIVE_HOLDS_MAX", "engine.live_holds_max"),
    ("INVENTORY_RECOVERY", "engine.recovery"),
    ("INVENTORY_SNAPSHOT_KEEP", "engine.snapshot_keep"),
    (
        "INVENTORY_SNAPSHOT_EVERY_RECORDS",
        "engine.snapshot_every_records",
    ),
    (
        "INVENTORY_SNAPSHOT_EVERY_SECONDS",
        "engine.snapshot_every_seconds",
    ),
    (
        "INVENTORY_CONSUMER_WAL_RETAINED_BYTES_MAX",
        "engine.consumer_wal_retained_bytes_max",
    ),
    (
        "INVENTORY_ORDERS_BULK_DISCOUNT_BPS",
        "orders.bulk_discount_bps",
    ),
    (
        "INVENTORY_ORDERS_BULK_DISCOUNT_UNITS_MIN",
        "orders.bulk_discount_units_min",
    ),
    ("INVENTORY_ORDERS_TAX_BPS", "orders.tax_bps"),
    ("INVENTORY_ORDERS_SHIPPING_CENTS", "orders.shipping_cents"),
    (
        "INVENTORY_ORDERS_FREE_SHIPPING_MIN_CENTS",
        "orders.free_shipping_min_cents",
    ),
    (
        "INVENTORY_ORDERS_PAYMENT_TIMEOUT_DEFAULT_SECONDS",
        "orders.payment_timeout_default_seconds",
    ),
    (
        "INVENTORY_ORDERS_SILVER_TIER_CENTS",
        "orders.silver_tier_cents",
    ),
    ("INVENTORY_ORDERS_GOLD_TIER_CENTS", "orders.gold_tier_cents"),
    (
        "INVENTORY_ORDERS_RETENTION_SECONDS",
        "orders.retention_seconds",
    ),
    ("INVENTORY_ORDERS_RETENTION_COUNT", "orders.retention_count"),
    ("INVENTORY_ALERTS_HYSTERESIS_BPS", "alerts.hysteresis_bps"),
    (
        "INVENTORY_NOTIFIER_ENABLED",
        "notifier.enabled (true/false)",
    ),
    (
        "INVENTORY_NOTIFIER_CHANNELS",
        "notifier.channels (comma-separated: log, email, sms)",
    ),
    (
        "INVENTORY_NOTIFIER_MANAGERS",
        "notifier.managers (comma-separated addresses)",
    ),
    ("INVENTORY_NOTIFIER_WEBHOOK_URL", "notifier.webhook_url"),
    ("INVENTORY_NOTIFIER_SMTP_HOST", "notifier.smtp.host"),
    ("INVENTORY_NOTIFIER_SMTP_PORT", "notifier.smtp.port"),
    (
        "INVENTORY_NOTIFIER_SMTP_STARTTLS",
        "notifier.smtp.starttls (true/false)",
    ),
    ("INVENTORY_NOTIFIER_SMTP_USERNAME", "notifier.smtp.username"),
    ("INVENTORY_NOTIFIER_SMTP_PASSWORD", "notifier.smtp.password"),
    ("INVENTORY_MAX_MESSAGE_BYTES", "limits.max_message_bytes"),
    (
        "INVENTORY_MAX_CONCURRENT_STREAMS",
        "limits.max_concurrent_streams",
    ),
    ("INVENTORY_MAX_CONNECTIONS", "limits.max_connections"),
    (
        "INVENTORY_REQUEST_TIMEOUT_SECONDS",
        "limits.request_timeout_seconds",
    ),
    (
        "INVENTORY_EXPORTER_ENABLED",
        "exporter.enabled (true/false)",
    ),
    ("INVENTORY_EXPORTER_STORE", "exporter.store"),
    ("INVENTORY_EXPORTER_PATH", "exporter.path"),
    ("INVENTORY_EXPORTER_POSTGRES_URL", "exporter.postgres_url"),
    ("INVENTORY_EXPORTER_BATCH_RECORDS", "exporter.batch_records"),
    ("INVENTORY_EXPORTER_NICE", "exporter.nice"),
    (
        "INVENTORY_EXPORTER_BATCH_INTERVAL_MILLIS",
        "exporter.batch_interval_millis",
    ),
    ("INVENTORY_TLS_CERT", "tls.cert"),
    ("INVENTORY_TLS_KEY", "tls.key"),
    ("INVENTORY_TLS_CLIENT_CA", "tls.client_ca"),
    (
        "INVENTORY_TOKENS",
        "tokens, replacing the file's: comma-separated ROLE:SHA256HEX pairs",
    ),
];

/// A comma-separated list, blanks dropped.
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| format!("environment variable {name}={value:?}: {e}"))
}

impl Config {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Loads the full configuration: defaults < file (`config_path`, else `INVENTORY_CONFIG`)
    /// < environment (`env` looks a variable up) < flags.
    pub fn load(
        config_path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Result<Self, String> {
        let file = config_path
            .map(Path::to_path_buf)
            .or_else(|| env("INVENTORY_CONFIG").map(PathBuf::from));
        let mut config = match file {
            Some(path) => Self::from_file(&path)?,
            None => Self::default(),
        };
        config.apply_env(&env)?;
        if let Some(listen) = &flags.listen {
            config.listen = listen.clone();
        }
        if let Some(dir) = &flags.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = &flags.metrics_listen {
            config.metrics_listen = listen.clone();
        }
        if flags.insecure {
            config.insecure = true;
        }
        config.validate()?;
        Ok(config)
    }

    /// Applies the `INVENTORY_*` variables (see [`ENV_VARS`]).
    pub fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        macro_rules! set {
            ($name:literal, $field:expr) => {
                if let Some(v) = get($name) {
                    $field = parse($name, &v)?;
                }
            };
        }
        if let Some(v) = get("INVENTORY_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("INVENTORY_METRICS_LISTEN") {
            self.metrics_listen = v;
        }
        if let Some(v) = get("INVENTORY_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        set!("INVENTORY_INSECURE", self.insecure);
        if let Some(v) = get("INVENTORY_LOG") {
            self.log = v;
        }
        set!(
            "INVENTORY_TRANSPARENT_HUGE_PAGES",
            self.transparent_huge_pages
        );
        set!("INVENTORY_THREAD_SLICE_MICROS", self.thread_slice_micros);
        set!("INVENTORY_SHARDS", self.engine.shards);
        if let Some(v) = get("INVENTORY_SYNC") {
            self.engine.sync = v;
        }
        set!(
            "INVENTORY_GROUP_COMMIT_DELAY_MICROS",
            self.engine.group_commit_delay_micros
        );
        set!("INVENTORY_SEGMENT_BYTES", self.engine.segment_bytes);
        set!(
            "INVENTORY_PREALLOCATE_SEGMENTS",
            self.engine.preallocate_segments
        );
        set!(
            "INVENTORY_TTL_DEFAULT_SECONDS",
            self.engine.ttl_default_seconds
        );
        set!(
            "INVENTORY_ID_RETENTION_SECONDS",
            self.engine.id_retention_seconds
        );
        set!(
            "INVENTORY_ID_RETENTION_COUNT",
            self.engine.id_retention_count
        );
        set!("INVENTORY_LIVE_HOLDS_MAX", self.engine.live_holds_max);
        if let Some(v) = get("INVENTORY_RECOVERY") {
            self.engine.recovery = v;
        }
        set!("INVENTORY_SNAPSHOT_KEEP", self.engine.snapshot_keep);
        set!(
            "INVENTORY_SNAPSHOT_EVERY_RECORDS",
            self.engine.snapshot_every_records
        );
        set!(
            "INVENTORY_SNAPSHOT_EVERY_SECONDS",
            self.engine.snapshot_every_seconds
        );
        set!(
            "INVENTORY_CONSUMER_WAL_RETAINED_BYTES_MAX",
            self.engine.consumer_wal_retained_bytes_max
        );
        set!(
            "INVENTORY_ORDERS_BULK_DISCOUNT_BPS",
            self.orders.bulk_discount_bps
        );
        set!(
            "INVENTORY_ORDERS_BULK_DISCOUNT_UNITS_MIN",
            self.orders.bulk_discount_units_min
        );
        set!("INVENTORY_ORDERS_TAX_BPS", self.orders.tax_bps);
        set!(
            "INVENTORY_ORDERS_SHIPPING_CENTS",
            self.orders.shipping_cents
        );
        set!(
            "INVENTORY_ORDERS_FREE_SHIPPING_MIN_CENTS",
            self.orders.free_shipping_min_cents
        );
        set!(
            "INVENTORY_ORDERS_PAYMENT_TIMEOUT_DEFAULT_SECONDS",
            self.orders.payment_timeout_default_seconds
        );
        set!(
            "INVENTORY_ORDERS_SILVER_TIER_CENTS",
            self.orders.silver_tier_cents
        );
        set!(
            "INVENTORY_ORDERS_GOLD_TIER_CENTS",
            self.orders.gold_tier_cents
        );
        set!(
            "INVENTORY_ORDERS_RETENTION_SECONDS",
            self.orders.retention_seconds
        );
        set!(
            "INVENTORY_ORDERS_RETENTION_COUNT",
            self.orders.retention_count
        );
        set!(
            "INVENTORY_ALERTS_HYSTERESIS_BPS",
            self.alerts.hysteresis_bps
        );
        set!("INVENTORY_MAX_MESSAGE_BYTES", self.limits.max_message_bytes);
        set!(
            "INVENTORY_MAX_CONCURRENT_STREAMS",
            self.limits.max_concurrent_streams
        );
        set!("INVENTORY_MAX_CONNECTIONS", self.limits.max_connections);
        set!(
            "INVENTORY_REQUEST_TIMEOUT_SECONDS",
            self.limits.request_timeout_seconds
        );
        set!("INVENTORY_EXPORTER_ENABLED", self.exporter.enabled);
        if let Some(v) = get("INVENTORY_EXPORTER_STORE") {
            self.exporter.store = v;
        }
        if let Some(v) = get("INVENTORY_EXPORTER_PATH") {
            self.exporter.path = PathBuf::from(v);
        }
        if let Some(v) = get("INVENTORY_EXPORTER_POSTGRES_URL") {
            self.exporter.postgres_url = v;
        }
        set!(
            "INVENTORY_EXPORTER_BATCH_RECORDS",
            self.exporter.batch_records
        );
        set!("INVENTORY_EXPORTER_NICE", self.exporter.nice);
        set!(
            "INVENTORY_EXPORTER_BATCH_INTERVAL_MILLIS",
            self.exporter.batch_interval_millis
        );
        if let Some(v) = get("INVENTORY_TLS_CERT") {
            self.tls.cert = Some(PathBuf::from(v));
        }
        if let Some(v) = get("INVENTORY_TLS_KEY") {
            self.tls.key = Some(PathBuf::from(v));
        }
        if let Some(v) = get("INVENTORY_TLS_CLIENT_CA") {
            self.tls.client_ca = Some(PathBuf::from(v));
        }
        if let Some(v) = get("INVENTORY_NOTIFIER_CHANNELS") {
            self.notifier.channels = list(&v);
        }
        if let Some(v) = get("INVENTORY_NOTIFIER_MANAGERS") {
            self.notifier.managers = list(&v);
        }
        if let Some(v) = get("INVENTORY_NOTIFIER_WEBHOOK_URL") {
            self.notifier.webhook_url = v;
        }
        if let Some(v) = get("INVENTORY_NOTIFIER_SMTP_HOST") {
            self.notifier.smtp.host = v;
        }
        set!("INVENTORY_NOTIFIER_ENABLED", self.notifier.enabled);
        set!("INVENTORY_NOTIFIER_SMTP_PORT", self.notifier.smtp.port);
        set!(
            "INVENTORY_NOTIFIER_SMTP_STARTTLS",
            self.notifier.smtp.starttls
        );
        if let Some(v) = get("INVENTORY_NOTIFIER_SMTP_USERNAME") {
            self.notifier.smtp.username = v;
        }
        if let Some(v) = get("INVENTORY_NOTIFIER_SMTP_PASSWORD") {
            self.notifier.smtp.password = v;
        }
        if let Some(v) = get("INVENTORY_TOKENS") {
            self.tokens = v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|pair| {
                    let (role, hash) = pair.trim().split_once(':').ok_or_else(|| {
                        format!("INVENTORY_TOKENS: {pair:?} is not ROLE:SHA256HEX")
                    })?;
                    Ok(TokenEntry {
                        role: role.to_string(),
                        sha256: hash.to_string(),
                        name: format!("env:{role}"),
                    })
                })
                .collect::<Result<_, String>>()?;
        }
        Ok(())
    }

    /// Checks every value; the message names the offending setting.
    pub fn validate(&self) -> Result<(), String> {
        self.sync_mode()?;
        self.notifier_config()?;
        self.exporter_config()?;
        self.recovery_mode()?;
        let slice = self.thread_slice_micros;
        let slices =
            engine::limits::THREAD_SLICE_MICROS_MIN..=engine::limits::THREAD_SLICE_MICROS_MAX;
        if slice != 0 && !slices.contains(&slice) {
            // The kernel would clamp it: a value outside its bounds is a mistake worth naming.
            return Err(format!(
                "thread_slice_micros = {slice} must be 0 (the kernel's default) or {}..={}",
                slices.start(),
                slices.end()
            ));
        }
        if self.engine.shards > engine::limits::SHARDS_MAX {
            return Err(format!(
                "engine.shards = {} exceeds the maximum of {}",
                self.engine.shards,
                engine::limits::SHARDS_MAX
            ));
        }
        if self.engine.ttl_default_seconds == 0
            || self.engine.ttl_default_seconds > engine::limits::TTL_SECONDS_MAX
        {
            return Err(format!(
                "engine.ttl_default_seconds = {} must be 1..={}",
                self.engine.ttl_default_seconds,
                engine::limits::TTL_SECONDS_MAX
            ));
        }
        if self.engine.snapshot_keep < 2 {
            return Err(format!(
                "engine.snapshot_keep = {} must be at least 2 (a damaged newest snapshot needs a fallback)",
                self.engine.snapshot_keep
            ));
        }
        if self.engine.snapshot_every_records == 0 {
            return Err("engine.snapshot_every_records must be at least 1".into());
        }
        if self.engine.snapshot_every_seconds == 0 {
            return Err("engine.snapshot_every_seconds must be at least 1".into());
        }
        if self.engine.segment_bytes < 4096 {
            return Err("engine.segment_bytes must be at least 4096".into());
        }
        self.orders.validate()?;
        if self.alerts.hysteresis_bps > BPS_MAX {
            return Err(format!(
                "alerts.hysteresis_bps = {} exceeds the maximum of {BPS_MAX} (100 % of the reorder level)",
                self.alerts.hysteresis_bps
            ));
        }
        if self.limits.max_message_bytes < 1024 {
            return Err("limits.max_message_bytes must be at least 1024".into());
        }
        if self.limits.max_connections == 0 || self.limits.max_concurrent_streams == 0 {
            return Err(
                "limits.max_connections and limits.max_concurrent_streams must be at least 1"
                    .into(),
            );
        }
        if self.limits.request_timeout_seconds == 0 {
            return Err("limits.request_timeout_seconds must be at least 1".into());
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err("tls.cert and tls.key must be given together".into());
        }
        if self.tls.client_ca.is_some() && self.tls.cert.is_none() {
            return Err("tls.client_ca needs tls.cert and tls.key".into());
        }
        let roles = self.role_matrix();
        for (i, token) in self.tokens.iter().enumerate() {
            if !roles.contains_key(&token.role) {
                return Err(format!(
                    "tokens[{i}]: unknown role {:?} (known: {})",
                    token.role,
                    roles.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            auth::parse_hash(&token.sha256).map_err(|e| format!("tokens[{i}].sha256: {e}"))?;
        }
        Ok(())
    }

    pub fn sync_mode(&self) -> Result<engine::SyncMode, String> {
        match self.engine.sync.as_str() {
            "fsync" => Ok(engine::SyncMode::Fsync),
            "none" => Ok(engine::SyncMode::None),
            other => Err(format!(
                "engine.sync = {other:?}: expected \"fsync\" or \"none\""
            )),
        }
    }

    pub fn recovery_mode(&self) -> Result<engine::RecoveryMode, String> {
        match self.engine.recovery.as_str() {
            "strict" => Ok(engine::RecoveryMode::Strict),
            "truncate-corruption" => Ok(engine::RecoveryMode::TruncateCorruption),
            other => Err(format!(
                "engine.recovery = {other:?}: expected \"strict\" or \"truncate-corruption\""
            )),
        }
    }

    /// The role matrix in force: the defaults of API.md, with the roles of the file replacing
    /// theirs.
    pub fn role_matrix(&self) -> BTreeMap<String, RoleRule> {
        let mut roles = auth::default_roles();
        for (name, rule) in &self.roles {
            roles.insert(name.clone(), rule.clone());
        }
        roles
    }

    /// The engine configuration these settings describe.
    pub fn engine_config(&self) -> Result<engine::EngineConfig, String> {
        let mut c = engine::EngineConfig::new(&self.data_dir);
        if self.engine.shards > 0 {
            c.shards = self.engine.shards;
        }
        c.wal.sync = self.sync_mode()?;
        c.wal.recovery = self.recovery_mode()?;
        c.wal.group_commit_delay_micros = self.engine.group_commit_delay_micros;
        c.wal.segment_bytes = self.engine.segment_bytes;
        c.wal.preallocate = self.engine.preallocate_segments;
        c.wal.writer_slice_micros = self.thread_slice_micros;
        c.ttl_default_seconds = self.engine.ttl_default_seconds;
        c.id_retention_seconds = self.engine.id_retention_seconds;
        c.id_retention_count = self.engine.id_retention_count;
        c.live_holds_max = self.engine.live_holds_max;
        c.orders = self.orders.policy();
        c.alerts = engine::AlertPolicy {
            hysteresis_bps: self.alerts.hysteresis_bps,
        };
        Ok(c)
    }

    /// The snapshotter configuration these settings describe (snapshots in `DATA_DIR/snapshots`).
    pub fn snapshotter_config(&self) -> snapshotter::SnapshotterConfig {
        let mut c = snapshotter::SnapshotterConfig::new(&self.data_dir);
        c.keep = self.engine.snapshot_keep;
        c.every_records = self.engine.snapshot_every_records;
        c.every_seconds = self.engine.snapshot_every_seconds;
        c.consumer_retained_bytes_max = self.engine.consumer_wal_retained_bytes_max;
        c
    }

    /// The notifier's configuration (channels checked against what they need).
    pub fn notifier_config(&self) -> Result<notifier::NotifierConfig, String> {
        let n = &self.notifier;
        let mut c = notifier::NotifierConfig::new(&self.data_dir);
        c.channels = n
            .channels
            .iter()
            .map(|name| {
                notifier::Channel::parse(name).ok_or_else(|| {
                    format!("notifier.channels: unknown channel {name:?} (known: log, email, sms)")
                })
            })
            .collect::<Result<_, String>>()?;
        if c.channels.contains(&notifier::Channel::Email) && n.smtp.host.is_empty() {
            return Err("notifier.channels has email but notifier.smtp.host is not set".into());
        }
        if c.channels.contains(&notifier::Channel::Sms) && n.webhook_url.is_empty() {
            return Err("notifier.channels has sms but notifier.webhook_url is not set".into());
        }
        if n.attempts_max == 0 {
            return Err("notifier.attempts_max must be at least 1".into());
        }
        if n.backoff_initial_millis == 0 || n.backoff_max_millis < n.backoff_initial_millis {
            return Err(
                "notifier.backoff_initial_millis must be at least 1 and at most notifier.backoff_max_millis"
                    .into(),
            );
        }
        if let Some(path) = &n.log_path {
            c.log_path = path.clone();
        }
        c.templates_dir = n.templates_dir.clone();
        c.managers = n.managers.clone();
        c.attempts_max = n.attempts_max;
        c.backoff_initial_millis = n.backoff_initial_millis;
        c.backoff_max_millis = n.backoff_max_millis;
        c.webhook_url = n.webhook_url.clone();
        c.ca_file = n.ca_file.clone();
        if !n.smtp.host.is_empty() {
            c.smtp = Some(notifier::SmtpConfig {
                host: n.smtp.host.clone(),
                port: n.smtp.port,
                starttls: n.smtp.starttls,
                ca_file: n.ca_file.clone(),
                username: n.smtp.username.clone(),
                password: n.smtp.password.clone(),
                from: n.smtp.from.clone(),
                helo: n.smtp.helo.clone(),
            });
        }
        Ok(c)
    }

    /// The exporter configuration these settings describe (`None` when disabled).
    pub fn exporter_config(&self) -> Result<Option<exporter::ExporterConfig>, String> {
        let e = &self.exporter;
        if e.batch_records == 0 || e.batch_records > exporter::limits::BATCH_RECORDS_MAX {
            return Err(format!(
                "exporter.batch_records = {} must be 1..={}",
                e.batch_records,
                exporter::limits::BATCH_RECORDS_MAX
            ));
        }
        if !(0..=exporter::limits::NICE_MAX).contains(&e.nice) {
            return Err(format!(
                "exporter.nice = {} must be 0..={}",
                e.nice,
                exporter::limits::NICE_MAX
            ));
        }
        if e.batch_interval_millis > exporter::limits::BATCH_INTERVAL_MILLIS_MAX {
            return Err(format!(
                "exporter.batch_interval_millis = {} must be 0..={}",
                e.batch_interval_millis,
                exporter::limits::BATCH_INTERVAL_MILLIS_MAX
            ));
        }
        let store = match e.store.as_str() {
            "duckdb" => exporter::StoreConfig::DuckDb {
                path: self.data_dir.join(&e.path),
            },
            "postgres" if e.postgres_url.is_empty() => {
                return Err(
                    "exporter.postgres_url must be set when exporter.store = \"postgres\"".into(),
                );
            }
            "postgres" => exporter::StoreConfig::Postgres {
                url: e.postgres_url.clone(),
            },
            other => {
                return Err(format!(
                    "exporter.store = {other:?}: expected \"duckdb\" or \"postgres\""
                ));
            }
        };
        Ok(e.enabled.then_some(exporter::ExporterConfig {
            store,
            batch_records: e.batch_records,
            nice: e.nice,
            batch_interval_millis: e.batch_interval_millis,
        }))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.request_timeout_seconds)
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls.cert.is_some()
    }

    /// The security rules of the issue, checked against the address actually bound:
    /// no tokens → development mode, loopback only; tokens without TLS on a non-loopback
    /// address → refused unless `insecure`. Returns a warning to log, if any.
    pub fn check_security(&self, listen: SocketAddr) -> Result<Option<String>, String> {
        let loopback = listen.ip().is_loopback();
        if self.tokens.is_empty() {
            if !loopback {
                return Err(format!(
                    "refusing to listen on {listen} without tokens: development mode (no [[tokens]]) \
                     is allowed on a loopback address only"
                ));
            }
            return Ok(Some(format!(
                "development mode: no tokens configured, every call on {listen} is accepted without \
                 authentication (loopback only)"
            )));
        }
        if !loopback && !self.tls_enabled() {
            if !self.insecure {
                return Err(format!(
                    "refusing to send tokens in clear text on {listen}: configure [tls] cert and key, \
                     or pass --insecure"
                ));
            }
            return Ok(Some(format!(
                "--insecure: tokens travel in clear text on {listen}"
            )));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_flags_env_file_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/file\"\n[engine]\nshards = 3\nsync = \"none\"\n",
        )
        .unwrap();
        let env = |name: &str| match name {
            "INVENTORY_DATA_DIR" => Some("/env".to_string()),
            "INVENTORY_SHARDS" => Some("5".to_string()),
            _ => None,
        };
        let flags = Overrides {
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&path), env, &flags).unwrap();
        assert_eq!(c.listen, "127.0.0.1:2");
        assert_eq!(c.data_dir, PathBuf::from("/env"));
        assert_eq!(c.engine.shards, 5);
        assert_eq!(c.engine.sync, "none");
        assert_eq!(c.metrics_listen, "127.0.0.1:9464");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Config::load(
            None,
            |n| (n == "INVENTORY_SYNC").then(|| "sometimes".into()),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("engine.sync"), "{err}");
        let err = Config::from_toml("nonsense = 1").unwrap_err();
        assert!(err.contains("nonsense"), "{err}");
        let err = Config::load(
            None,
            |n| (n == "INVENTORY_TOKENS").then(|| "wizard:00".into()),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("unknown role"), "{err}");
        let err = Config::load(
            None,
            |n| (n == "INVENTORY_SNAPSHOT_KEEP").then(|| "1".into()),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("engine.snapshot_keep"), "{err}");
        let err = Config::from_toml("[engine]\nsnapshot_every_records = 0\n")
            .and_then(|c| c.validate())
            .unwrap_err();
        assert!(err.contains("engine.snapshot_every_records"), "{err}");
    }

    #[test]
    fn exporter_priority_reaches_the_exporter_and_a_bad_one_is_named() {
        let shipped = Config::from_toml("").unwrap().exporter_config().unwrap();
        assert_eq!(
            shipped.map(|e| e.nice),
            Some(exporter::limits::NICE_DEFAULT)
        );
        let env = |n: &str| (n == "INVENTORY_EXPORTER_NICE").then(|| "0".to_string());
        let c = Config::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(c.exporter_config().unwrap().map(|e| e.nice), Some(0));
        for bad in ["-1", "20"] {
            let err = Config::from_toml(&format!("[exporter]\nnice = {bad}\n"))
                .and_then(|c| c.exporter_config().map(|_| c))
                .err()
                .unwrap_or_else(|| panic!("nice = {bad} accepted"));
            assert!(err.contains("exporter.nice"), "{err}");
        }
    }

    #[test]
    fn the_thread_slice_reaches_the_wal_writer_and_a_bad_one_is_named() {
        let shipped = Config::from_toml("").unwrap();
        assert_eq!(shipped.thread_slice_micros, 0);
        assert_eq!(shipped.engine_config().unwrap().wal.writer_slice_micros, 0);
        let env = |n: &str| (n == "INVENTORY_THREAD_SLICE_MICROS").then(|| "100".to_string());
        let c = Config::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(c.engine_config().unwrap().wal.writer_slice_micros, 100);
        for bad in [50, engine::limits::THREAD_SLICE_MICROS_MAX + 1] {
            let err = Config::from_toml(&format!("thread_slice_micros = {bad}\n"))
                .and_then(|c| c.validate())
                .expect_err("a slice the kernel would clamp accepted");
            assert!(err.contains("thread_slice_micros"), "{err}");
        }
    }

    #[test]
    fn the_exporter_batch_interval_reaches_the_exporter_and_a_bad_one_is_named() {
        let shipped = Config::from_toml("").unwrap().exporter_config().unwrap();
        assert_eq!(
            shipped.map(|e| e.batch_interval_millis),
            Some(exporter::limits::BATCH_INTERVAL_MILLIS_DEFAULT)
        );
        let env =
            |n: &str| (n == "INVENTORY_EXPORTER_BATCH_INTERVAL_MILLIS").then(|| "0".to_string());
        let c = Config::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(
            c.exporter_config()
                .unwrap()
                .map(|e| e.batch_interval_millis),
            Some(0)
        );
        let c = Config::from_toml("[exporter]\nbatch_interval_millis = 250\n").unwrap();
        assert_eq!(
            c.exporter_config()
                .unwrap()
                .map(|e| e.batch_interval_millis),
            Some(250)
        );
        let too_long = exporter::limits::BATCH_INTERVAL_MILLIS_MAX + 1;
        let err = Config::from_toml(&format!("[exporter]\nbatch_interval_millis = {too_long}\n"))
            .and_then(|c| c.exporter_config().map(|_| c))
            .expect_err("too long an interval accepted");
        assert!(err.contains("exporter.batch_interval_millis"), "{err}");
    }

    #[test]
    fn snapshot_settings_reach_the_snapshotter() {
        let env = |name: &str| match name {
            "INVENTORY_SNAPSHOT_KEEP" => Some("3".to_string()),
            "INVENTORY_SNAPSHOT_EVERY_RECORDS" => Some("500".to_string()),
            "INVENTORY_SNAPSHOT_EVERY_SECONDS" => Some("7".to_string()),
            "INVENTORY_CONSUMER_WAL_RETAINED_BYTES_MAX" => Some("1048576".to_string()),
            _ => None,
        };
        let c = Config::load(None, env, &Overrides::default()).unwrap();
        let s = c.snapshotter_config();
        assert_eq!(
            (
                s.keep,
                s.every_records,
                s.every_seconds,
                s.consumer_retained_bytes_max
            ),
            (3, 500, 7, 1 << 20)
        );
        assert_eq!(s.dir, PathBuf::from("./data").join("snapshots"));
        let d = Config::default().snapshotter_config();
        let lib = snapshotter::SnapshotterConfig::new(Path::new("./data"));
        assert_eq!(
            (
                d.keep,
                d.every_records,
                d.every_seconds,
                d.consumer_retained_bytes_max
            ),
            (
                lib.keep,
                lib.every_records,
                lib.every_seconds,
                lib.consumer_retained_bytes_max
            ),
            "the server's defaults are the snapshotter's"
        );
    }

    #[test]
    fn order_and_alert_settings_reach_the_engine_and_bad_ones_are_named() {
        let env = |name: &str| match name {
            "INVENTORY_ORDERS_TAX_BPS" => Some("825".to_string()),
            "INVENTORY_ALERTS_HYSTERESIS_BPS" => Some("2000".to_string()),
            _ => None,
        };
        let c = Config::load(None, env, &Overrides::default()).unwrap();
        let e = c.engine_config().unwrap();
        assert_eq!(e.orders.pricing.tax_bps, 825);
        assert_eq!(e.alerts.hysteresis_bps, 2000);
        let d = Config::default().engine_config().unwrap();
        assert_eq!(
            d.orders,
            engine::OrderPolicy::default(),
            "the server's defaults are the engine's"
        );
        assert_eq!(d.alerts, engine::AlertPolicy::default());
        for (toml, setting) in [
            (
                "[orders]\nbulk_discount_bps = 10001\n",
                "orders.bulk_discount_bps",
            ),
            ("[orders]\ntax_bps = 20000\n", "orders.tax_bps"),
            ("[orders]\nshipping_cents = -1\n", "orders.shipping_cents"),
            (
                "[orders]\nbulk_discount_units_min = 0\n",
                "orders.bulk_discount_units_min",
            ),
            (
                "[orders]\npayment_timeout_default_seconds = 0\n",
                "orders.payment_timeout_default_seconds",
            ),
            ("[orders]\ngold_tier_cents = 10\n", "orders.gold_tier_cents"),
            ("[orders]\nretention_count = 0\n", "orders.retention_count"),
            (
                "[alerts]\nhysteresis_bps = 10001\n",
                "alerts.hysteresis_bps",
            ),
        ] {
            let err = Config::from_toml(toml)
                .and_then(|c| c.validate())
                .unwrap_err();
            assert!(err.contains(setting), "{toml}: {err}");
        }
        let err = Config::from_toml("[orders]\ntax = 1\n").unwrap_err();
        assert!(err.contains("tax"), "{err}");
    }

    #[test]
    fn example_config_parses_and_equals_the_defaults() {
        let text = include_str!("../inventoryd.example.toml");
        let parsed = Config::from_toml(text).unwrap();
        let expected = Config {
            roles: auth::default_roles(),
            ..Config::default()
        };
        assert_eq!(parsed, expected);
    }

    #[test]
    fn security_rules() {
        let mut c = Config::default();
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert!(c.check_security(lo).unwrap().is_some());
        assert!(c.check_security(any).is_err());
        c.tokens.push(TokenEntry {
            role: "admin".into(),
            sha256: "00".repeat(32),
            name: String::new(),
        });
        assert!(c.check_security(lo).unwrap().is_none());
        assert!(c.check_security(any).is_err());
        c.insecure = true;
        assert!(c.check_security(any).unwrap().is_some());
    }
}
