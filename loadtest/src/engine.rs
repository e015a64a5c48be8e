//! The engine target: `inventoryd` over gRPC, the run's users multiplexed over a fixed set of
//! HTTP/2 connections (arrival `i` uses connection `i mod n`, as a storefront fleet would).

use std::time::Duration;

use proto::inventory::v1 as pb;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::Error;
use crate::expect::Level;
use crate::limits;
use crate::names::Names;

type Inventory = pb::inventory_client::InventoryClient<Channel>;
type Orders = pb::orders_client::OrdersClient<Channel>;

/// Price of every product the run creates: an order of one unit pays shipping (below the
/// free-shipping threshold), which makes the totals the server returns non-trivial.
pub const UNIT_PRICE_CENTS: i64 = 1999;

pub struct Engine {
    inventory: Vec<Inventory>,
    orders: Vec<Orders>,
    token: Option<MetadataValue<Ascii>>,
}

impl Engine {
    /// Opens `connections` HTTP/2 connections to `url` (each `connect` is its own connection).
    pub async fn connect(
        url: &str,
        connections: usize,
        token: Option<&str>,
        request_timeout: Duration,
    ) -> Result<Engine, Error> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::new(format!("--addr {url}: {e}")))?
            .timeout(request_timeout)
            .connect_timeout(request_timeout)
            .tcp_nodelay(true);
        let mut inventory = Vec::with_capacity(connections);
        let mut orders = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| Error::new(format!("connect to {url}: {e}")))?;
            inventory.push(
                Inventory::new(channel.clone())
                    .max_decoding_message_size(limits::MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(limits::MESSAGE_BYTES_MAX),
            );
            orders.push(Orders::new(channel));
        }
        let token = token
            .map(|t| format!("Bearer {t}").parse())
            .transpose()
            .map_err(|_| Error::new("--token: not a valid header value"))?;
        Ok(Engine {
            inventory,
            orders,
            token,
        })
    }

    /// A request with the run's token, if any.
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("authorization", t.clone());
        }
        r
    }

    pub fn inventory(&self, i: u64) -> Inventory {
        self.inventory[(i % self.inventory.len() as u64) as usize].clone()
    }

    pub fn orders(&self, i: u64) -> Orders {
        self.orders[(i % self.orders.len() as u64) as usize].clone()
    }

    /// Creates the run's products with `stock` units each, and its customers if `customers`.
    pub async fn setup(
        &self,
        names: &Names,
        skus: usize,
        stock: u32,
        customers: bool,
    ) -> Result<(), Error> {
        use pb::batch_op::Op;
        let ops: Vec<pb::BatchOp> = (0..skus)
            .flat_map(|i| {
                let sku = names.sku(i);
                [
                    Op::UpsertProduct(pb::UpsertProductRequest {
                        sku: sku.clone(),
                        name: format!("load test product {i}"),
                        unit_price_cents: UNIT_PRICE_CENTS,
                        reorder_level: 0,
                        reorder_quantity: 0,
                    }),
                    Op::Receive(pb::ReceiveStockRequest {
                        receipt_id: names.receipt(i),
                        sku,
                        quantity: stock,
                    }),
                ]
            })
            .map(|op| pb::BatchOp { op: Some(op) })
            .collect();
        for (n, chunk) in ops.chunks(limits::SETUP_BATCH_OPS).enumerate() {
            let reply = self
                .inventory(n as u64)
                .execute_batch(self.req(pb::ExecuteBatchRequest {
                    ops: chunk.to_vec(),
                }))
                .await
                .map_err(|s| Error::new(format!("setup: ExecuteBatch: {}", s.message())))?;
            for r in reply.into_inner().results {
                if let Some(pb::batch_result::Result::Error(e)) = r.result {
                    return Err(Error::new(format!("setup: {}", e.message)));
                }
            }
        }
        if customers {
            for k in 0..limits::CUSTOMERS {
                self.orders(k as u64)
                    .upsert_customer(self.req(pb::UpsertCustomerRequest {
                        customer_id: names.customer(k),
                        name: format!("Load Test {k}"),
                        email: format!("load{k}@example.com"),
                        phone: format!("+1555{k:07}"),
                        address: format!("{k} Test Street"),
                        notify_email: false,
                        notify_sms: false,
                    }))
                    .await
                    .map_err(|s| {
                        Error::new(format!("setup: UpsertCustomer: {}", status_text(&s)))
                    })?;
            }
        }
        Ok(())
    }

    /// Every one of the run's SKUs as the server has it now (ListStock, page by page).
    pub async fn read_back(&self, names: &Names, skus: usize) -> Result<Vec<Option<Level>>, Error> {
        let mut out = vec![None; skus];
        let mut token = String::new();
        let mut client = self.inventory(0);
        for _ in 0..limits::READ_BACK_PAGES_MAX {
            let page = client
                .list_stock(self.req(pb::ListStockRequest {
                    page_size: limits::READ_BACK_PAGE_SIZE,
                    page_token: token,
                    low_only: false,
                }))
                .await
                .map_err(|s| Error::new(format!("read back: ListStock: {}", status_text(&s))))?
                .into_inner();
            for level in page.levels {
                if let Some(i) = names.sku_index(&level.sku).filter(|i| *i < skus) {
                    out[i] = Some(Level {
                        on_hand: level.on_hand,
                        reserved: level.reserved,
                    });
                }
            }
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
        Err(Error::new(format!(
            "read back: ListStock still paging after {} pages",
            limits::READ_BACK_PAGES_MAX
        )))
    }

    /// The server's peak resident set (VmHWM), if it runs on this machine.
    pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    }
}

pub fn status_text(s: &Status) -> String {
    format!("{}: {}", crate::stats::code_name(s.code()), s.message())
}

pub fn lines(names: &Names, lines: &[(usize, u32)]) -> Vec<pb::Line> {
    lines
        .iter()
        .map(|&(sku, quantity)| pb::Line {
            sku: names.sku(sku),
            quantity,
        })
        .collect()
}
