//! Runs the real `inventoryd` binary on 127.0.0.1:0 with a temp data dir, and talks to it with
//! the generated tonic clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use proto::inventory::v1 as pb;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

pub const BIN: &str = env!("CARGO_BIN_EXE_inventoryd");
pub const INVCTL: &str = env!("CARGO_BIN_EXE_invctl");

/// How long the server may take to print its addresses (a deadline against hangs, not a
/// timing assertion).
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);

pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// How to start a server.
#[derive(Default, Clone)]
pub struct Opts {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub config: Option<String>,
}

impl Opts {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }
}

fn command(data_dir: &Path, opts: &Opts, log: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    if !opts.args.iter().any(|a| a == "--listen") {
        cmd.arg("--listen").arg("127.0.0.1:0");
    }
    cmd.arg("--metrics-listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir);
    if let Some(text) = &opts.config {
        let path = data_dir.with_extension("toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    cmd.args(&opts.args);
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    // Keep the tests independent of the caller's environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("INVENTORY_") && !opts.env.iter().any(|(e, _)| *e == k) {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    cmd
}

impl Server {
    /// Starts a server on `data_dir` (created if needed); panics with its log if it fails.
    pub fn start(data_dir: &Path, opts: Opts) -> Server {
        match Self::try_start(data_dir, opts) {
            Ok(s) => s,
            Err((status, log)) => panic!("inventoryd did not start ({status:?}):\n{log}"),
        }
    }

    /// Starts a server; on failure returns its exit status and its log.
    pub fn try_start(data_dir: &Path, opts: Opts) -> Result<Server, (Option<ExitStatus>, String)> {
        std::fs::create_dir_all(data_dir).unwrap();
        let log = data_dir.with_extension("log");
        let mut child = command(data_dir, &opts, &log)
            .spawn()
            .expect("spawn inventoryd");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut addr = None;
        let mut metrics = None;
        while addr.is_none() || metrics.is_none() {
            match rx.recv_timeout(STARTUP_DEADLINE) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("inventoryd listening on ") {
                        addr = Some(a.trim().parse().unwrap());
                    } else if let Some(a) = line.strip_prefix("inventoryd metrics on ") {
                        metrics = Some(a.trim().parse().unwrap());
                    }
                }
                Err(e) => {
                    if e == mpsc::RecvTimeoutError::Timeout {
                        let _ = child.kill();
                    }
                    let status = child.wait().ok();
                    return Err((status, std::fs::read_to_string(&log).unwrap_or_default()));
                }
            }
        }
        Ok(Server {
            child: Some(child),
            addr: addr.unwrap(),
            metrics: metrics.unwrap(),
            data_dir: data_dir.to_path_buf(),
            log,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connect to inventoryd")
    }

    pub async fn inventory(&self) -> Inv {
        Inv::new(self.channel().await)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Length of the log now (the log file is shared by every run on the same data dir).
    pub fn log_len(&self) -> usize {
        self.log_text().len()
    }

    /// What the log gained after `offset` (see [`Server::log_len`]).
    pub fn log_since(&self, offset: usize) -> String {
        self.log_text()
            .get(offset..)
            .unwrap_or_default()
            .to_string()
    }

    pub async fn admin(&self) -> pb::admin_client::AdminClient<Channel> {
        pb::admin_client::AdminClient::new(self.channel().await)
    }

    pub async fn status(&self) -> pb::StatusResponse {
        self.admin()
            .await
            .status(pb::StatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// Polls Admin.Status until export_lsn = durable_lsn (a caught-up exporter); a 120 s
    /// deadline against hangs, not a timing assertion.
    pub async fn export_caught_up(&self) -> u64 {
        self.caught_up(false).await
    }

    /// Polls Admin.Status until both change-feed consumers (exporter and notifier) have
    /// handled every durable record, so their cursors no longer hold WAL deletion back.
    pub async fn consumers_caught_up(&self) -> u64 {
        self.caught_up(true).await
    }

    /// Polls until export_lsn (and notify_lsn, if asked) equal durable_lsn; a 120 s deadline
    /// against hangs, not a timing assertion. Returns durable_lsn.
    async fn caught_up(&self, notifier_too: bool) -> u64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let s = self.status().await;
            let notified = !notifier_too || s.notify_lsn == s.durable_lsn;
            if s.export_lsn == s.durable_lsn && notified {
                return s.durable_lsn;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "export_lsn {} / notify_lsn {} never reached durable_lsn {}",
                s.export_lsn,
                s.notify_lsn,
                s.durable_lsn
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn snapshot(&self) -> Result<pb::SnapshotResponse, Status> {
        self.admin()
            .await
            .snapshot(pb::SnapshotRequest {})
            .await
            .map(|r| r.into_inner())
    }

    /// The value of an unlabelled metric on `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics");
        body.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|v| v.trim().parse().ok())
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        child.wait().unwrap()
    }

    /// GET a path on the metrics listener; returns (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        let mut s = std::net::TcpStream::connect(self.metrics).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), body.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An Inventory client that adds a bearer token when given one.
#[derive(Clone)]
pub struct Inv {
    pub client: pb::inventory_client::InventoryClient<Channel>,
    pub token: Option<String>,
}

pub fn req<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

impl Inv {
    pub fn new(channel: Channel) -> Self {
        Self {
            client: pb::inventory_client::InventoryClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            token: None,
        }
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    fn r<T>(&self, msg: T) -> Request<T> {
        req(msg, self.token.as_deref())
    }

    pub async fn upsert(&mut self, sku: &str, reorder_level: u32) -> Result<pb::Product, Status> {
        let r = self.r(pb::UpsertProductRequest {
            sku: sku.into(),
            name: format!("product {sku}"),
            unit_price_cents: 1999,
            reorder_level,
            reorder_quantity: 10,
        });
        self.client.upsert_product(r).await.map(|r| r.into_inner())
    }

    pub async fn receive(
        &mut self,
        id: &str,
        sku: &str,
        qty: u32,
    ) -> Result<pb::StockLevel, Status> {
        let r = self.r(pb::ReceiveStockRequest {
            receipt_id: id.into(),
            sku: sku.into(),
            quantity: qty,
        });
        self.client.receive_stock(r).await.map(|r| r.into_inner())
    }

    pub async fn adjust(
        &mut self,
        id: &str,
        sku: &str,
        on_hand: u32,
    ) -> Result<pb::StockLevel, Status> {
        let r = self.r(pb::AdjustStockRequest {
            adjustment_id: id.into(),
            sku: sku.into(),
            on_hand,
            reason: "count".into(),
        });
        self.client.adjust_stock(r).await.map(|r| r.into_inner())
    }

    pub async fn stock(&mut self, sku: &str) -> Result<pb::StockLevel, Status> {
        let r = self.r(pb::GetStockRequest { sku: sku.into() });
        self.client.get_stock(r).await.map(|r| r.into_inner())
    }

    pub async fn reserve(
        &mut self,
        id: &str,
        lines: &[(&str, u32)],
        ttl: u32,
    ) -> Result<pb::Reservation, Status> {
        let r = self.r(pb::ReserveRequest {
            reservation_id: id.into(),
            lines: lines_of(lines),
            ttl_seconds: ttl,
        });
        self.client.reserve(r).await.map(|r| r.into_inner())
    }

    pub async fn commit(
        &mut self,
        id: &str,
        lines: &[(&str, u32)],
    ) -> Result<pb::Reservation, Status> {
        let r = self.r(pb::CommitRequest {
            reservation_id: id.into(),
            lines: lines_of(lines),
        });
        self.client.commit(r).await.map(|r| r.into_inner())
    }

    pub async fn release(&mut self, id: &str) -> Result<pb::Reservation, Status> {
        let r = self.r(pb::ReleaseRequest {
            reservation_id: id.into(),
        });
        self.client.release(r).await.map(|r| r.into_inner())
    }

    pub async fn reservation(&mut self, id: &str) -> Result<pb::Reservation, Status> {
        let r = self.r(pb::GetReservationRequest {
            reservation_id: id.into(),
        });
        self.client.get_reservation(r).await.map(|r| r.into_inner())
    }

    /// Every stock level, following pages.
    pub async fn all_stock(&mut self) -> Vec<pb::StockLevel> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let r = self.r(pb::ListStockRequest {
                page_size: 0,
                page_token: token.clone(),
                low_only: false,
            });
            let page = self.client.list_stock(r).await.unwrap().into_inner();
            out.extend(page.levels);
            token = page.next_page_token;
            if token.is_empty() {
                return out;
            }
        }
    }
}

pub fn lines_of(lines: &[(&str, u32)]) -> Vec<pb::Line> {
    lines
        .iter()
        .map(|(sku, q)| pb::Line {
            sku: sku.to_string(),
            quantity: *q,
        })
        .collect()
}

#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "unexpected status: {s:?}");
            s
        }
    }
}

pub fn state(r: &pb::Reservation) -> pb::ReservationState {
    pb::ReservationState::try_from(r.state).unwrap()
}

/// Runs invctl with args; returns (exit code, stdout, stderr).
pub fn invctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(INVCTL)
        .args(args)
        .env_remove("INVENTORY_ADDR")
        .env_remove("INVENTORY_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
