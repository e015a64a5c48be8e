//! The PostgreSQL peer: the seeds' design (`sql/seeds_postgres.sql`), one `place_order` call
//! per unit of work. tokio-postgres pipelines the calls of concurrent tasks on each connection.

use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};
use tonic::Code;

use crate::Error;
use crate::expect::Level;
use crate::names::Names;
use crate::{engine, limits};

const SCHEMA: &str = include_str!("../sql/seeds_postgres.sql");

pub struct Postgres {
    clients: Vec<(Client, Statement)>,
    /// `synchronous_commit` and `fsync` as the server reports them.
    pub durability: String,
}

/// The connection string may only name loopback TCP hosts.
pub fn check_loopback(conninfo: &str) -> Result<tokio_postgres::Config, String> {
    let config = tokio_postgres::Config::from_str(conninfo).map_err(|e| e.to_string())?;
    if config.get_hosts().is_empty() {
        return Err("no host= given (the load test targets 127.0.0.1 only)".into());
    }
    for host in config.get_hosts() {
        match host {
            Host::Tcp(h) if crate::cli::is_loopback_host(h) => {}
            other => return Err(format!("host {other:?} is not 127.0.0.1")),
        }
    }
    Ok(config)
}

fn code_of(e: &tokio_postgres::Error) -> Code {
    match e.code() {
        Some(c) if *c == SqlState::RAISE_EXCEPTION || *c == SqlState::CHECK_VIOLATION => {
            Code::FailedPrecondition
        }
        Some(c) if *c == SqlState::NO_DATA_FOUND => Code::NotFound,
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => Code::AlreadyExists,
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Code::Aborted
        }
        Some(_) => Code::Internal,
        None if e.is_closed() => Code::Unavailable,
        None => Code::Unknown,
    }
}

fn err(what: &str, e: tokio_postgres::Error) -> Error {
    Error::new(format!("postgres: {what}: {e}"))
}

impl Postgres {
    pub async fn connect(conninfo: &str, connections: usize) -> Result<Postgres, Error> {
        let config =
            check_loopback(conninfo).map_err(|e| Error::new(format!("--postgres: {e}")))?;
        let mut clients = Vec::with_capacity(connections);
        for n in 0..connections.max(1) {
            let (client, conn) = config.connect(NoTls).await.map_err(|e| err("connect", e))?;
            tokio::spawn(conn);
            if n == 0 {
                client
                    .batch_execute(SCHEMA)
                    .await
                    .map_err(|e| err("schema", e))?;
            }
            let call = client
                .prepare("CALL place_order($1, $2, $3, $4)")
                .await
                .map_err(|e| err("prepare", e))?;
            clients.push((client, call));
        }
        let show = |name: &'static str| {
            let c = &clients[0].0;
            async move {
                c.query_one(&format!("SHOW {name}"), &[])
                    .await
                    .map(|r| format!("{name}={}", r.get::<_, String>(0)))
                    .unwrap_or_else(|_| format!("{name}=unknown"))
            }
        };
        let durability = format!(
            "{} {}",
            show("synchronous_commit").await,
            show("fsync").await
        );
        Ok(Postgres {
            clients,
            durability,
        })
    }

    pub async fn setup(&self, names: &Names, skus: usize, stock: u32) -> Result<(), Error> {
        let client = &self.clients[0].0;
        let prefix = names.sku_prefix();
        let stock =
            i32::try_from(stock).map_err(|_| Error::new("--stock too large for PostgreSQL"))?;
        for first in (0..skus).step_by(limits::POSTGRES_SETUP_ROWS) {
            let last = (first + limits::POSTGRES_SETUP_ROWS).min(skus) as i32 - 1;
            client
                .execute(
                    "INSERT INTO products (sku, name, unit_price_cents, stock) \
                     SELECT $1 || g, 'load test product ' || g, $2, $3 FROM generate_series($4::int, $5::int) g",
                    &[&prefix, &engine::UNIT_PRICE_CENTS, &stock, &(first as i32), &last],
                )
                .await
                .map_err(|e| err("insert products", e))?;
        }
        Ok(())
    }

    /// One durable order placement of one unit of `sku`.
    pub async fn place_order(&self, names: &Names, id: u64, sku: usize) -> Result<(), Code> {
        let (client, call) = &self.clients[(id % self.clients.len() as u64) as usize];
        let customer = names.customer((id % limits::CUSTOMERS as u64) as usize);
        client
            .execute(call, &[&names.order(id), &customer, &names.sku(sku), &1i32])
            .await
            .map(|_| ())
            .map_err(|e| code_of(&e))
    }

    pub async fn read_back(&self, names: &Names, skus: usize) -> Result<Vec<Option<Level>>, Error> {
        let rows = self.clients[0]
            .0
            .query(
                "SELECT sku, stock FROM products WHERE starts_with(sku, $1)",
                &[&names.sku_prefix()],
            )
            .await
            .map_err(|e| err("read back", e))?;
        let mut out = vec![None; skus];
        for row in rows {
            let sku: String = row.get(0);
            let stock: i32 = row.get(1);
            if let Some(i) = names.sku_index(&sku).filter(|i| *i < skus) {
                // A negative figure (which the CHECK forbids) shows as units reserved beyond an
                // on-hand of 0: the check counts it as oversold.
                out[i] = Some(Level {
                    on_hand: u32::try_from(stock).unwrap_or(0),
                    reserved: u32::try_from(-i64::from(stock)).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }
}
