//! `invctl`: the command-line client of `inventoryd`. See `invctl --help` and `docs/SERVER.md`.

mod orders;
mod reports;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use proto::inventory::v1 as pb;
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

const EXIT_HELP: &str = "Exit codes:
  0  success
  1  any other failure (INTERNAL, UNIMPLEMENTED, ...)
  2  usage error (bad command line)
  3  NOT_FOUND
  4  FAILED_PRECONDITION (insufficient stock, wrong state, ...)
  5  INVALID_ARGUMENT
  6  UNAUTHENTICATED or PERMISSION_DENIED
  7  UNAVAILABLE (server unreachable, storage failed)
  8  ALREADY_EXISTS
  9  RESOURCE_EXHAUSTED
  10 DEADLINE_EXCEEDED
For `batch`, the code of the first failed op (0 if all succeeded).

Environment: INVENTORY_ADDR (--addr), INVENTORY_TOKEN (--token).";

#[derive(Parser, Debug)]
#[command(
    name = "invctl",
    version,
    about = "Command-line client of inventoryd (inventory.v1 over gRPC).",
    after_help = EXIT_HELP
)]
struct Cli {
    /// Server URL: http://HOST:PORT, or https://HOST:PORT for TLS.
    #[arg(
        long,
        env = "INVENTORY_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    addr: String,
    /// Bearer token (sent as `authorization: Bearer T`).
    #[arg(long, env = "INVENTORY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON (one document per command) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// CA certificate (PEM) to verify the server with; implies TLS.
    #[arg(long, value_name = "FILE", global = true)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "key", global = true)]
    cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "cert", global = true)]
    key: Option<PathBuf>,
    /// Server name to verify in the server's certificate (default: the host of --addr).
    #[arg(long, value_name = "NAME", global = true)]
    tls_server_name: Option<String>,
    /// Deadline for the call, in seconds.
    #[arg(long, default_value_t = 30, value_name = "S", global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Catalogue entries.
    #[command(subcommand)]
    Product(ProductCmd),
    /// Add received units to a SKU's on-hand count (Inventory/ReceiveStock).
    Receive {
        /// Client-chosen id: a retry with the same id is applied once.
        receipt_id: String,
        sku: String,
        quantity: u32,
    },
    /// Set a SKU's on-hand count (Inventory/AdjustStock); never below what is reserved.
    Adjust {
        adjustment_id: String,
        sku: String,
        /// The new absolute on-hand count.
        on_hand: u32,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Stock of one SKU (`stock SKU`), or a list (`stock list`).
    #[command(args_conflicts_with_subcommands = true)]
    Stock(StockArgs),
    /// Hold stock (Inventory/Reserve): all lines or none.
    Reserve {
        reservation_id: String,
        /// Lines as SKU:QTY.
        #[arg(required = true, value_parser = parse_line)]
        lines: Vec<pb::Line>,
        /// Hold time in seconds (0 = the server's default, 1800).
        #[arg(long, default_value_t = 0)]
        ttl: u32,
    },
    /// Deduct a hold (Inventory/Commit): everything held, or the given SKU:QTY lines (the rest
    /// is released).
    Commit {
        reservation_id: String,
        #[arg(value_parser = parse_line)]
        lines: Vec<pb::Line>,
    },
    /// Release a hold (Inventory/Release).
    Release { reservation_id: String },
    /// Show a hold (Inventory/GetReservation).
    Reservation { reservation_id: String },
    /// Run several ops in one call (Inventory/ExecuteBatch), one per line of FILE (or stdin):
    /// `upsert SKU NAME PRICE_CENTS REORDER_LEVEL REORDER_QTY`, `receive ID SKU QTY`,
    /// `adjust ID SKU ON_HAND [REASON...]`, `reserve ID [--ttl S] SKU:QTY...`,
    /// `commit ID [SKU:QTY...]`, `release ID`, `order ID CUSTOMER [--timeout S] SKU:QTY...`,
    /// `pay ORDER_ID PAYMENT_ID AMOUNT_CENTS`. Blank lines and `#` comments are skipped.
    Batch {
        /// File of ops; `-` or none: stdin.
        file: Option<PathBuf>,
    },
    /// Customers (Orders/UpsertCustomer, GetCustomer).
    #[command(subcommand)]
    Customer(orders::CustomerCmd),
    /// Orders: create, get, list, pay, fail, ship, deliver, cancel.
    #[command(subcommand)]
    Order(orders::OrderCmd),
    /// Returns of delivered orders: request, approve, reject.
    #[command(subcommand)]
    Return(orders::ReturnCmd),
    /// Low-stock alerts, open ones unless --all (Alerts/ListAlerts).
    Alerts {
        /// Resolved alerts too.
        #[arg(long)]
        all: bool,
    },
    /// Purchase orders suggested by low-stock alerts: list, update.
    #[command(subcommand)]
    Po(orders::PoCmd),
    /// Follow an order (`watch order ID`) or the change feed (`watch events`) until the stream
    /// ends or Ctrl-C.
    #[command(subcommand)]
    Watch(orders::WatchCmd),
    /// Server status (Admin/Status).
    Status,
    /// Take a snapshot now (Admin/Snapshot).
    Snapshot,
    /// List the named reports with their params (Reports/ListReports).
    Reports,
    /// Run a named report (Reports/RunReport), e.g. `report monthly_sales --param from=2026-01-01`.
    /// With `--db FILE` it runs straight on a DuckDB file (while the server is stopped).
    Report {
        name: String,
        /// A param as KEY=VALUE (repeatable): from, to (YYYY-MM-DD), limit, period, max_units.
        #[arg(long = "param", value_name = "KEY=VALUE", value_parser = reports::parse_param)]
        params: Vec<(String, String)>,
        #[command(flatten)]
        out: reports::ResultArgs,
    },
    /// Run read-only SQL on the analytical store (Reports/Query); `--db FILE` as for `report`.
    Query {
        sql: String,
        #[command(flatten)]
        out: reports::ResultArgs,
    },
    /// The notifier's outbox (Alerts/ListNotifications), or `notifications retry ID`.
    #[command(args_conflicts_with_subcommands = true)]
    Notifications(NotificationsArgs),
}

#[derive(Args, Debug)]
struct NotificationsArgs {
    #[command(subcommand)]
    retry: Option<NotificationsCmd>,
    /// Only PENDING, SENT or FAILED ones.
    #[arg(long, value_parser = parse_notification_status)]
    status: Option<pb::NotificationStatus>,
}

#[derive(Subcommand, Debug)]
enum NotificationsCmd {
    /// Schedule another delivery attempt now, e.g. of a FAILED one (Alerts/RetryNotification).
    Retry { notification_id: String },
}

fn parse_notification_status(s: &str) -> Result<pb::NotificationStatus, String> {
    pb::NotificationStatus::from_str_name(&format!(
        "NOTIFICATION_STATUS_{}",
        s.to_ascii_uppercase()
    ))
    .filter(|st| *st != pb::NotificationStatus::Unspecified)
    .ok_or_else(|| format!("{s:?}: expected PENDING, SENT or FAILED"))
}

fn notification_json(n: &pb::Notification) -> Value {
    let time = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .map(|t| Value::from(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000))
            .unwrap_or(Value::Null)
    };
    let status = pb::NotificationStatus::try_from(n.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("NOTIFICATION_STATUS_")
                .to_string()
        })
        .unwrap_or_default();
    json!({
        "notification_id": n.notification_id, "channel": n.channel, "recipient": n.recipient,
        "event_kind": n.event_kind, "event_lsn": n.event_lsn, "status": status,
        "attempts": n.attempts, "last_error": n.last_error, "created_at_ms": time(&n.created_at),
        "sent_at_ms": time(&n.sent_at), "next_attempt_at_ms": time(&n.next_attempt_at),
    })
}

fn print_notification(doc: &Value) {
    let text = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
    let mut line = format!(
        "{:<40} {:<7} {:<7} {:<28} {:<16} attempts={}",
        text("notification_id"),
        text("status"),
        text("channel"),
        text("recipient"),
        text("event_kind"),
        doc["attempts"]
    );
    if !text("last_error").is_empty() {
        line.push_str(&format!(" error={:?}", text("last_error")));
    }
    println!("{line}");
}

#[derive(Subcommand, Debug)]
enum ProductCmd {
    /// Create or update a catalogue entry (Inventory/UpsertProduct).
    Upsert {
        sku: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "CENTS")]
        price_cents: i64,
        #[arg(long, default_value_t = 0)]
        reorder_level: u32,
        #[arg(long, default_value_t = 0)]
        reorder_quantity: u32,
    },
}

#[derive(Args, Debug)]
struct StockArgs {
    #[command(subcommand)]
    list: Option<StockCmd>,
    /// The SKU to show (Inventory/GetStock).
    sku: Option<String>,
}

#[derive(Subcommand, Debug)]
enum StockCmd {
    /// List stock levels in SKU order (Inventory/ListStock), following pages.
    List {
        /// Only LOW_STOCK and OUT_OF_STOCK SKUs.
        #[arg(long)]
        low_only: bool,
        /// SKUs per page (0 = server default).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// Start after this SKU (a page token).
        #[arg(long, default_value = "")]
        page_token: String,
        /// Stop after this many pages (0 = all).
        #[arg(long, default_value_t = 0)]
        pages: u32,
    },
}

fn parse_line(s: &str) -> Result<pb::Line, String> {
    let (sku, qty) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected SKU:QTY"))?;
    let quantity = qty.parse().map_err(|e| format!("{s:?}: quantity: {e}"))?;
    Ok(pb::Line {
        sku: sku.to_string(),
        quantity,
    })
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<Status> for Failure {
    fn from(s: Status) -> Self {
        let code = match s.code() {
            Code::NotFound => 3,
            Code::FailedPrecondition => 4,
            Code::InvalidArgument => 5,
            Code::Unauthenticated | Code::PermissionDenied => 6,
            Code::Unavailable => 7,
            Code::AlreadyExists => 8,
            Code::ResourceExhausted => 9,
            Code::DeadlineExceeded => 10,
            _ => 1,
        };
        Failure {
            code,
            message: format!("{:?}: {}", s.code(), s.message()),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: message.into(),
    }
}

/// A reader that stops early (`invctl stock list | head`) closes the pipe: end quietly, as
/// other command-line tools do, instead of panicking on the next print (Rust's runtime ignores
/// SIGPIPE, so every `println!` after that fails).
#[allow(unsafe_code)]
fn end_quietly_when_the_reader_goes() {
    // SAFETY: sets a signal's disposition back to the default before any other thread runs;
    // no handler is installed, so nothing runs in signal context.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    end_quietly_when_the_reader_goes();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("invctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("invctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

struct Client {
    channel: Channel,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
    timeout: Duration,
}

impl Client {
    fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.set_timeout(self.timeout);
        if let Some(t) = &self.token {
            req.metadata_mut().insert("authorization", t.clone());
        }
        req
    }
    fn inventory(&self) -> pb::inventory_client::InventoryClient<Channel> {
        pb::inventory_client::InventoryClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
    }
    /// A request without the call deadline: a stream lasts as long as the user follows it.
    fn stream_request<T>(&self, msg: T) -> Request<T> {
        let mut req = self.request(msg);
        req.metadata_mut().remove("grpc-timeout");
        req
    }
    fn reports(&self) -> pb::reports_client::ReportsClient<Channel> {
        pb::reports_client::ReportsClient::new(self.channel.clone())
            .max_decoding_message_size(256 << 20)
    }
    fn admin(&self) -> pb::admin_client::AdminClient<Channel> {
        pb::admin_client::AdminClient::new(self.channel.clone())
    }
    fn orders(&self) -> pb::orders_client::OrdersClient<Channel> {
        pb::orders_client::OrdersClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
    }
    fn alerts(&self) -> pb::alerts_client::AlertsClient<Channel> {
        pb::alerts_client::AlertsClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
    }
}

async fn connect(cli: &Cli) -> Result<Client, Failure> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| usage(format!("cannot read {}: {e}", p.display())))
    };
    let mut addr = cli.addr.clone();
    if !addr.contains("://") {
        let scheme = if cli.ca.is_some() { "https" } else { "http" };
        addr = format!("{scheme}://{addr}");
    }
    let mut endpoint = Endpoint::from_shared(addr.clone())
        .map_err(|e| usage(format!("--addr {addr:?}: {e}")))?
        .connect_timeout(Duration::from_secs(cli.timeout.max(1)))
        .tcp_nodelay(true);
    if addr.starts_with("https://") || cli.ca.is_some() {
        let mut tls = ClientTlsConfig::new();
        match &cli.ca {
            Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => {
                return Err(usage(
                    "https needs --ca FILE (the CA that signed the server's certificate)",
                ));
            }
        }
        if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(name) = &cli.tls_server_name {
            tls = tls.domain_name(name.clone());
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| usage(format!("TLS configuration: {e}")))?;
    }
    let channel = endpoint.connect().await.map_err(|e| Failure {
        code: 7,
        message: format!("cannot connect to {addr}: {e}{}", source_chain(&e)),
    })?;
    let token = match &cli.token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .map_err(|_| usage("--token: not a valid header value"))?,
        ),
        None => None,
    };
    Ok(Client {
        channel,
        token,
        timeout: Duration::from_secs(cli.timeout.max(1)),
    })
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let json_out = cli.json;
    // Parse a batch file before connecting, so that a bad file is a usage error.
    let batch = match &cli.command {
        Cmd::Batch { file } => Some(read_batch(file.as_ref())?),
        _ => None,
    };
    if let Cmd::Stock(StockArgs {
        list: None,
        sku: None,
    }) = &cli.command
    {
        return Err(usage("stock: give a SKU, or `stock list`"));
    }
    let report = match &cli.command {
        Cmd::Report { name, params, out } => Some((
            reports::Run::Report {
                name: name.clone(),
                params: params.clone(),
            },
            out,
        )),
        Cmd::Query { sql, out } => Some((reports::Run::Query { sql: sql.clone() }, out)),
        _ => None,
    };
    if let Some((run, out)) = &report
        && let Some(done) = reports::run_on_file(run, out, json_out)
    {
        return done;
    }
    let client = connect(&cli).await?;
    if let Some((run, out)) = report {
        return reports::run_on_server(&client, run, out, json_out).await;
    }
    let mut inv = client.inventory();
    let out: Value = match cli.command {
        Cmd::Product(ProductCmd::Upsert {
            sku,
            name,
            price_cents,
            reorder_level,
            reorder_quantity,
        }) => {
            let p = inv
                .upsert_product(client.request(pb::UpsertProductRequest {
                    sku,
                    name,
                    unit_price_cents: price_cents,
                    reorder_level,
                    reorder_quantity,
                }))
                .await?
                .into_inner();
            if !json_out {
                println!(
                    "product {}  name {:?}  price {} cents  reorder level {}  reorder quantity {}",
                    p.sku, p.name, p.unit_price_cents, p.reorder_level, p.reorder_quantity
                );
                print_stock_table(p.stock.iter());
            }
            product_json(&p)
        }
        Cmd::Receive {
            receipt_id,
            sku,
            quantity,
        } => {
            let s = inv
                .receive_stock(client.request(pb::ReceiveStockRequest {
                    receipt_id,
                    sku,
                    quantity,
                }))
                .await?
                .into_inner();
            stock_out(json_out, s)
        }
        Cmd::Adjust {
            adjustment_id,
            sku,
            on_hand,
            reason,
        } => {
            let s = inv
                .adjust_stock(client.request(pb::AdjustStockRequest {
                    adjustment_id,
                    sku,
                    on_hand,
                    reason,
                }))
                .await?
                .into_inner();
            stock_out(json_out, s)
        }
        Cmd::Stock(StockArgs {
            list: None,
            sku: Some(sku),
        }) => {
            let s = inv
                .get_stock(client.request(pb::GetStockRequest { sku }))
                .await?
                .into_inner();
            stock_out(json_out, s)
        }
        Cmd::Stock(StockArgs {
            list:
                Some(StockCmd::List {
                    low_only,
                    page_size,
                    mut page_token,
                    pages,
                }),
            ..
        }) => {
            let mut levels = Vec::new();
            let mut fetched = 0;
            loop {
                let page = inv
                    .list_stock(client.request(pb::ListStockRequest {
                        page_size,
                        page_token: page_token.clone(),
                        low_only,
                    }))
                    .await?
                    .into_inner();
                levels.extend(page.levels);
                page_token = page.next_page_token;
                fetched += 1;
                if page_token.is_empty() || (pages > 0 && fetched >= pages) {
                    break;
                }
            }
            if !json_out {
                print_stock_table(levels.iter());
                if !page_token.is_empty() {
                    println!("(more: --page-token {page_token})");
                }
            }
            json!({
                "levels": levels.iter().map(stock_json).collect::<Vec<_>>(),
                "next_page_token": page_token,
            })
        }
        Cmd::Stock(_) => return Err(usage("stock: give a SKU, or `stock list`")),
        Cmd::Reserve {
            reservation_id,
            lines,
            ttl,
        } => {
            let r = inv
                .reserve(client.request(pb::ReserveRequest {
                    reservation_id,
                    lines,
                    ttl_seconds: ttl,
                }))
                .await?
                .into_inner();
            reservation_out(json_out, r)
        }
        Cmd::Commit {
            reservation_id,
            lines,
        } => {
            let r = inv
                .commit(client.request(pb::CommitRequest {
                    reservation_id,
                    lines,
                }))
                .await?
                .into_inner();
            reservation_out(json_out, r)
        }
        Cmd::Release { reservation_id } => {
            let r = inv
                .release(client.request(pb::ReleaseRequest { reservation_id }))
                .await?
                .into_inner();
            reservation_out(json_out, r)
        }
        Cmd::Reservation { reservation_id } => {
            let r = inv
                .get_reservation(client.request(pb::GetReservationRequest { reservation_id }))
                .await?
                .into_inner();
            reservation_out(json_out, r)
        }
        Cmd::Batch { .. } => {
            let ops = batch.unwrap_or_default();
            let results = inv
                .execute_batch(client.request(pb::ExecuteBatchRequest { ops }))
                .await?
                .into_inner()
                .results;
            let mut exit = 0;
            let mut docs = Vec::new();
            for (i, r) in results.iter().enumerate() {
                use pb::batch_result::Result as R;
                let (text, doc) = match &r.result {
                    Some(R::Product(p)) => (format!("product {}", p.sku), product_json(p)),
                    Some(R::Stock(s)) => (
                        format!(
                            "stock {} on_hand {} reserved {} available {}",
                            s.sku, s.on_hand, s.reserved, s.available
                        ),
                        stock_json(s),
                    ),
                    Some(R::Reservation(r)) => (
                        format!("reservation {} {}", r.reservation_id, state_name(r.state)),
                        reservation_json(r),
                    ),
                    Some(R::Order(o)) => {
                        let doc = orders::order_json(o);
                        (
                            format!(
                                "order {} {} total {}",
                                o.order_id, doc["status"], o.total_cents
                            ),
                            doc,
                        )
                    }
                    Some(R::Error(e)) => {
                        let status = Status::new(Code::from_i32(e.code), e.message.clone());
                        if exit == 0 {
                            exit = Failure::from(status).code;
                        }
                        (
                            format!("error {:?}: {}", Code::from_i32(e.code), e.message),
                            json!({"error": {"code": e.code, "message": e.message}}),
                        )
                    }
                    None => ("(empty)".to_string(), Value::Null),
                };
                if !json_out {
                    println!("{i:>5}  {text}");
                }
                docs.push(doc);
            }
            if json_out {
                println!("{}", json!({ "results": docs }));
            }
            return Ok(exit);
        }
        Cmd::Customer(cmd) => orders::customer(&client, cmd, json_out).await?,
        Cmd::Order(cmd) => orders::order(&client, cmd, json_out).await?,
        Cmd::Return(cmd) => orders::returns(&client, cmd, json_out).await?,
        Cmd::Alerts { all } => orders::alerts(&client, all, json_out).await?,
        Cmd::Po(cmd) => orders::purchase_orders(&client, cmd, json_out).await?,
        Cmd::Watch(cmd) => return orders::watch(&client, cmd, json_out).await,
        Cmd::Status => {
            let s = client
                .admin()
                .status(client.request(pb::StatusRequest {}))
                .await?
                .into_inner();
            let doc = json!({
                "last_lsn": s.last_lsn, "durable_lsn": s.durable_lsn, "snapshot_lsn": s.snapshot_lsn,
                "export_lsn": s.export_lsn, "notify_lsn": s.notify_lsn, "wal_bytes": s.wal_bytes,
                "skus": s.skus, "active_reservations": s.active_reservations, "open_orders": s.open_orders,
                "uptime_seconds": s.uptime_seconds, "failed": s.failed, "failure": s.failure,
            });
            if !json_out && let Some(map) = doc.as_object() {
                for (k, v) in map {
                    println!("{k:<20} {v}");
                }
            }
            doc
        }
        Cmd::Reports => reports::list(&client, json_out).await?,
        Cmd::Report { .. } | Cmd::Query { .. } => unreachable!("split off above"),
        Cmd::Snapshot => {
            let s = client
                .admin()
                .snapshot(client.request(pb::SnapshotRequest {}))
                .await?
                .into_inner();
            if !json_out {
                println!("snapshot at LSN {} ({} bytes)", s.lsn, s.bytes);
            }
            json!({"lsn": s.lsn, "bytes": s.bytes})
        }
        Cmd::Notifications(NotificationsArgs {
            retry: Some(NotificationsCmd::Retry { notification_id }),
            ..
        }) => {
            let n = client
                .alerts()
                .retry_notification(
                    client.request(pb::RetryNotificationRequest { notification_id }),
                )
                .await?
                .into_inner();
            let doc = notification_json(&n);
            if !json_out {
                print_notification(&doc);
            }
            doc
        }
        Cmd::Notifications(NotificationsArgs { status, .. }) => {
            let list = client
                .alerts()
                .list_notifications(client.request(pb::ListNotificationsRequest {
                    status: status.unwrap_or(pb::NotificationStatus::Unspecified) as i32,
                }))
                .await?
                .into_inner()
                .notifications;
            let docs: Vec<Value> = list.iter().map(notification_json).collect();
            if !json_out {
                docs.iter().for_each(print_notification);
            }
            json!({ "notifications": docs })
        }
    };
    if json_out {
        println!("{out}");
    }
    Ok(0)
}

fn read_batch(file: Option<&PathBuf>) -> Result<Vec<pb::BatchOp>, Failure> {
    let text = match file {
        Some(p) if p.as_os_str() != "-" => std::fs::read_to_string(p)
            .map_err(|e| usage(format!("cannot read {}: {e}", p.display())))?,
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| usage(format!("stdin: {e}")))?;
            s
        }
    };
    let mut ops = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let op = parse_batch_op(line)
            .map_err(|e| usage(format!("batch line {}: {e}: {line:?}", n + 1)))?;
        ops.push(pb::BatchOp { op: Some(op) });
    }
    Ok(ops)
}

fn parse_batch_op(line: &str) -> Result<pb::batch_op::Op, String> {
    use pb::batch_op::Op as O;
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize, what: &str| -> Result<u32, String> {
        words
            .get(i)
            .ok_or_else(|| format!("missing {what}"))?
            .parse()
            .map_err(|e| format!("{what}: {e}"))
    };
    let word = |i: usize, what: &str| -> Result<String, String> {
        words
            .get(i)
            .map(|s| s.to_string())
            .ok_or_else(|| format!("missing {what}"))
    };
    match words.first().copied() {
        Some("upsert") => Ok(O::UpsertProduct(pb::UpsertProductRequest {
            sku: word(1, "SKU")?,
            name: word(2, "NAME")?,
            unit_price_cents: word(3, "PRICE_CENTS")?
                .parse()
                .map_err(|e| format!("PRICE_CENTS: {e}"))?,
            reorder_level: num(4, "REORDER_LEVEL")?,
            reorder_quantity: num(5, "REORDER_QTY")?,
        })),
        Some("receive") => Ok(O::Receive(pb::ReceiveStockRequest {
            receipt_id: word(1, "ID")?,
            sku: word(2, "SKU")?,
            quantity: num(3, "QTY")?,
        })),
        Some("adjust") => Ok(O::Adjust(pb::AdjustStockRequest {
            adjustment_id: word(1, "ID")?,
            sku: word(2, "SKU")?,
            on_hand: num(3, "ON_HAND")?,
            reason: words.get(4..).map(|w| w.join(" ")).unwrap_or_default(),
        })),
        Some("reserve") => {
            let id = word(1, "ID")?;
            let mut ttl_seconds = 0;
            let mut lines = Vec::new();
            let mut i = 2;
            while i < words.len() {
                if words[i] == "--ttl" {
                    ttl_seconds = num(i + 1, "TTL")?;
                    i += 2;
                    continue;
                }
                lines.push(parse_line(words[i])?);
                i += 1;
            }
            Ok(O::Reserve(pb::ReserveRequest {
                reservation_id: id,
                lines,
                ttl_seconds,
            }))
        }
        Some("commit") => Ok(O::Commit(pb::CommitRequest {
            reservation_id: word(1, "ID")?,
            lines: words[2..]
                .iter()
                .map(|w| parse_line(w))
                .collect::<Result<_, _>>()?,
        })),
        Some("release") => Ok(O::Release(pb::ReleaseRequest {
            reservation_id: word(1, "ID")?,
        })),
        Some("order") => {
            let (order_id, customer_id) = (word(1, "ID")?, word(2, "CUSTOMER")?);
            let mut payment_timeout_seconds = 0;
            let mut lines = Vec::new();
            let mut i = 3;
            while i < words.len() {
                if words[i] == "--timeout" {
                    payment_timeout_seconds = num(i + 1, "TIMEOUT")?;
                    i += 2;
                    continue;
                }
                lines.push(parse_line(words[i])?);
                i += 1;
            }
            Ok(O::CreateOrder(pb::CreateOrderRequest {
                order_id,
                customer_id,
                lines,
                shipping_address: String::new(),
                payment_timeout_seconds,
            }))
        }
        Some("pay") => Ok(O::ConfirmPayment(pb::ConfirmPaymentRequest {
            order_id: word(1, "ORDER_ID")?,
            payment_id: word(2, "PAYMENT_ID")?,
            amount_cents: word(3, "AMOUNT_CENTS")?
                .parse()
                .map_err(|e| format!("AMOUNT_CENTS: {e}"))?,
        })),
        Some(other) => Err(format!("unknown op {other:?}")),
        None => Err("empty".into()),
    }
}

fn status_name(s: i32) -> &'static str {
    match pb::StockStatus::try_from(s) {
        Ok(pb::StockStatus::InStock) => "IN_STOCK",
        Ok(pb::StockStatus::LowStock) => "LOW_STOCK",
        Ok(pb::StockStatus::OutOfStock) => "OUT_OF_STOCK",
        _ => "UNSPECIFIED",
    }
}

fn state_name(s: i32) -> &'static str {
    match pb::ReservationState::try_from(s) {
        Ok(pb::ReservationState::Active) => "ACTIVE",
        Ok(pb::ReservationState::Committed) => "COMMITTED",
        Ok(pb::ReservationState::Released) => "RELEASED",
        Ok(pb::ReservationState::Expired) => "EXPIRED",
        _ => "UNSPECIFIED",
    }
}

fn stock_json(s: &pb::StockLevel) -> Value {
    json!({
        "sku": s.sku, "on_hand": s.on_hand, "reserved": s.reserved, "available": s.available,
        "reorder_level": s.reorder_level, "status": status_name(s.status),
    })
}

fn product_json(p: &pb::Product) -> Value {
    json!({
        "sku": p.sku, "name": p.name, "unit_price_cents": p.unit_price_cents,
        "reorder_level": p.reorder_level, "reorder_quantity": p.reorder_quantity,
        "stock": p.stock.as_ref().map(stock_json),
    })
}

fn lines_json(lines: &[pb::Line]) -> Value {
    lines
        .iter()
        .map(|l| json!({"sku": l.sku, "quantity": l.quantity}))
        .collect()
}

fn reservation_json(r: &pb::Reservation) -> Value {
    json!({
        "reservation_id": r.reservation_id, "state": state_name(r.state),
        "lines": lines_json(&r.lines), "committed_lines": lines_json(&r.committed_lines),
        "created_at": r.created_at.as_ref().map(iso8601),
        "expires_at": r.expires_at.as_ref().map(iso8601),
    })
}

fn print_stock_table<'a>(levels: impl Iterator<Item = &'a pb::StockLevel>) {
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>8}  STATUS",
        "SKU", "ON_HAND", "RESERVED", "AVAILABLE", "REORDER"
    );
    for s in levels {
        println!(
            "{:<24} {:>10} {:>10} {:>10} {:>8}  {}",
            s.sku,
            s.on_hand,
            s.reserved,
            s.available,
            s.reorder_level,
            status_name(s.status)
        );
    }
}

fn stock_out(json_out: bool, s: pb::StockLevel) -> Value {
    if !json_out {
        print_stock_table(std::iter::once(&s));
    }
    stock_json(&s)
}

fn reservation_out(json_out: bool, r: pb::Reservation) -> Value {
    if !json_out {
        let ts = |t: &Option<prost_types::Timestamp>| {
            t.as_ref().map(iso8601).unwrap_or_else(|| "-".into())
        };
        println!("reservation {}  {}", r.reservation_id, state_name(r.state));
        println!(
            "created {}  expires {}",
            ts(&r.created_at),
            ts(&r.expires_at)
        );
        println!("{:<24} {:>10} {:>10}", "SKU", "HELD", "COMMITTED");
        for l in &r.lines {
            let committed = r
                .committed_lines
                .iter()
                .find(|c| c.sku == l.sku)
                .map(|c| c.quantity.to_string())
                .unwrap_or_else(|| "-".into());
            println!("{:<24} {:>10} {:>10}", l.sku, l.quantity, committed);
        }
    }
    reservation_json(&r)
}

/// `google.protobuf.Timestamp` → `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn iso8601(t: &prost_types::Timestamp) -> String {
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    let (y, m, d) = engine::clock::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        t.nanos / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_dates() {
        let t = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5_000_000,
        };
        assert_eq!(iso8601(&t), "2023-11-14T22:13:20.005Z");
        assert_eq!(
            iso8601(&prost_types::Timestamp::default()),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn batch_lines_parse() {
        assert!(matches!(
            parse_batch_op("reserve r1 --ttl 5 A:1 B:2"),
            Ok(pb::batch_op::Op::Reserve(r)) if r.lines.len() == 2 && r.ttl_seconds == 5
        ));
        assert!(matches!(
            parse_batch_op("order o1 c1 --timeout 60 A:1 B:2"),
            Ok(pb::batch_op::Op::CreateOrder(r))
                if r.lines.len() == 2 && r.payment_timeout_seconds == 60 && r.customer_id == "c1"
        ));
        assert!(matches!(
            parse_batch_op("pay o1 p1 1999"),
            Ok(pb::batch_op::Op::ConfirmPayment(r)) if r.amount_cents == 1999
        ));
        assert!(parse_batch_op("pay o1 p1 lots").is_err());
        assert!(parse_batch_op("receive r1 A x").is_err());
        assert!(parse_batch_op("fly away").is_err());
    }
}
