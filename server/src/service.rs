//! The gRPC services: Inventory, Orders and Alerts on the engine (Alerts' notification RPCs on
//! the notifier's outbox), Admin on the engine, the snapshotter, the exporter and the notifier;
//! Reports on the exporter's analytical store.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use engine::{Engine, Op};
use proto::inventory::v1 as pb;
use snapshotter::Snapshotter;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

use crate::auth::Caller;
use crate::convert::{self, status};
use crate::limits;

#[derive(Clone)]
pub struct InventoryService {
    engine: Arc<Engine>,
}

impl InventoryService {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    async fn run(&self, op: Op) -> Result<engine::OpOutput, Status> {
        self.engine.execute_async(op).await.map_err(status)
    }

    async fn run_stock(&self, op: Op) -> Result<Response<pb::StockLevel>, Status> {
        run_as(
            &self.engine,
            op,
            "stock level",
            engine::OpOutput::into_stock,
            convert::stock,
        )
        .await
    }

    async fn run_reservation(&self, op: Op) -> Result<Response<pb::Reservation>, Status> {
        run_as(
            &self.engine,
            op,
            "reservation",
            engine::OpOutput::into_reservation,
            convert::reservation,
        )
        .await
    }
}

/// Runs `op` (waiting for durability) and converts the output it must have (`take`) to its
/// wire message; an output of another kind would be an engine bug (INTERNAL naming `what`).
async fn run_as<E, M>(
    engine: &Engine,
    op: Op,
    what: &str,
    take: fn(engine::OpOutput) -> Option<E>,
    to_wire: fn(E) -> M,
) -> Result<Response<M>, Status> {
    let out = engine.execute_async(op).await.map_err(status)?;
    let value = take(out).ok_or_else(|| Status::internal(format!("engine returned no {what}")))?;
    Ok(Response::new(to_wire(value)))
}

fn caller<T>(req: &Request<T>) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(Caller::dev)
}

#[tonic::async_trait]
impl pb::inventory_server::Inventory for InventoryService {
    async fn upsert_product(
        &self,
        req: Request<pb::UpsertProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        match self.run(convert::upsert_op(req.into_inner())).await? {
            engine::OpOutput::Product(p) => Ok(Response::new(convert::product(p))),
            _ => Err(Status::internal("engine returned no product")),
        }
    }

    async fn receive_stock(
        &self,
        req: Request<pb::ReceiveStockRequest>,
    ) -> Result<Response<pb::StockLevel>, Status> {
        self.run_stock(convert::receive_op(req.into_inner())).await
    }

    async fn adjust_stock(
        &self,
        req: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::StockLevel>, Status> {
        self.run_stock(convert::adjust_op(req.into_inner())).await
    }

    async fn get_stock(
        &self,
        req: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::StockLevel>, Status> {
        let level = self
            .engine
            .get_stock(&req.into_inner().sku)
            .map_err(status)?;
        Ok(Response::new(convert::stock(level)))
    }

    async fn list_stock(
        &self,
        req: Request<pb::ListStockRequest>,
    ) -> Result<Response<pb::ListStockResponse>, Status> {
        let r = req.into_inner();
        let page_size = match r.page_size {
            0 => engine::limits::PAGE_SIZE_DEFAULT,
            n => n as usize,
        };
        let after = (!r.page_token.is_empty()).then_some(r.page_token.as_str());
        let (levels, next) = self.engine.list_stock(after, page_size, r.low_only);
        Ok(Response::new(pb::ListStockResponse {
            levels: levels.into_iter().map(convert::stock).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn reserve(
        &self,
        req: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        self.run_reservation(convert::reserve_op(req.into_inner()))
            .await
    }

    async fn commit(
        &self,
        req: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        self.run_reservation(convert::commit_op(req.into_inner()))
            .await
    }

    async fn release(
        &self,
        req: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        self.run_reservation(convert::release_op(req.into_inner()))
            .await
    }

    async fn get_reservation(
        &self,
        req: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let r = self
            .engine
            .get_reservation(&req.into_inner().reservation_id)
            .map_err(status)?;
        Ok(Response::new(convert::reservation(r)))
    }

    async fn execute_batch(
        &self,
        req: Request<pb::ExecuteBatchRequest>,
    ) -> Result<Response<pb::ExecuteBatchResponse>, Status> {
        let caller = caller(&req);
        let ops = req.into_inner().ops;
        if ops.len() > engine::limits::BATCH_OPS_MAX {
            return Err(Status::invalid_argument(format!(
                "ops: {} ops exceed the maximum of {} per batch",
                ops.len(),
                engine::limits::BATCH_OPS_MAX
            )));
        }
        let lines: usize = ops
            .iter()
            .filter_map(|o| o.op.as_ref())
            .map(convert::batch_op_lines)
            .sum();
        if lines > limits::BATCH_LINES_MAX {
            return Err(Status::invalid_argument(format!(
                "ops: {lines} lines in one batch exceed the maximum of {}",
                limits::BATCH_LINES_MAX
            )));
        }
        // The whole batch is refused (nothing applied) if the role lacks any of its op kinds.
        for (i, op) in ops.iter().enumerate() {
            if let Some(op) = &op.op {
                caller.may_batch(i, convert::batch_op_kind(op))?;
            }
        }
        // Ops the engine runs go in one batch (one durability wait); the others get their
        // error in place. Order is kept: the engine applies its ops in order, and the others
        // change nothing.
        use pb::batch_op::Op as O;
        let mut results: Vec<Option<pb::BatchResult>> = Vec::with_capacity(ops.len());
        let mut engine_ops = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            let engine_op = match op.op {
                None => {
                    results.push(Some(convert::batch_error_of(
                        Code::InvalidArgument,
                        format!("ops[{i}]: empty op (set one of its fields)"),
                    )));
                    continue;
                }
                Some(O::UpsertProduct(r)) => convert::upsert_op(r),
                Some(O::Receive(r)) => convert::receive_op(r),
                Some(O::Adjust(r)) => convert::adjust_op(r),
                Some(O::Reserve(r)) => convert::reserve_op(r),
                Some(O::Commit(r)) => convert::commit_op(r),
                Some(O::Release(r)) => convert::release_op(r),
                Some(O::CreateOrder(r)) => convert::create_order_op(r),
                Some(O::ConfirmPayment(r)) => convert::confirm_payment_op(r),
            };
            results.push(None);
            engine_ops.push(engine_op);
        }
        let mut outputs = self
            .engine
            .execute_batch_async(engine_ops)
            .await
            .into_iter();
        let results = results
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| match outputs.next() {
                    Some(Ok(out)) => convert::batch_ok(out),
                    Some(Err(e)) => pb::BatchResult {
                        result: Some(pb::batch_result::Result::Error(convert::batch_error(
                            &status(e),
                        ))),
                    },
                    None => {
                        convert::batch_error_of(Code::Internal, "engine returned too few results")
                    }
                })
            })
            .collect();
        Ok(Response::new(pb::ExecuteBatchResponse { results }))
    }
}

#[derive(Clone)]
pub struct AdminService {
    engine: Arc<Engine>,
    snapshotter: Arc<Snapshotter>,
    notifier: Option<Arc<notifier::Notifier>>,
    exporter: Option<Arc<exporter::Exporter>>,
    /// One on-demand snapshot at a time holds a blocking thread; later calls wait here
    /// (asynchronously) and then take their own.
    taking: Arc<tokio::sync::Mutex<()>>,
    started: Instant,
}

impl AdminService {
    pub fn new(
        engine: Arc<Engine>,
        snapshotter: Arc<Snapshotter>,
        notifier: Option<Arc<notifier::Notifier>>,
        exporter: Option<Arc<exporter::Exporter>>,
    ) -> Self {
        Self {
            engine,
            snapshotter,
            notifier,
            exporter,
            taking: Arc::new(tokio::sync::Mutex::new(())),
            started: Instant::now(),
        }
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.engine.stats();
        Ok(Response::new(pb::StatusResponse {
            last_lsn: s.last_lsn,
            durable_lsn: s.durable_lsn,
            snapshot_lsn: self.snapshotter.snapshot_lsn(),
            export_lsn: self.exporter.as_ref().map_or(0, |e| e.export_lsn()),
            notify_lsn: self.notifier.as_ref().map_or(0, |n| n.handled_lsn()),
            wal_bytes: s.wal_bytes,
            skus: s.skus,
            active_reservations: s.active_reservations,
            open_orders: s.open_orders,
            uptime_seconds: self.started.elapsed().as_secs(),
            failed: s.failed,
            failure: self.engine.failure().unwrap_or_default(),
        }))
    }

    /// Takes a snapshot now, on a blocking thread (the cut waits for durability and the file is
    /// written and fsynced). UNAVAILABLE once storage failed, INTERNAL for any other failure.
    async fn snapshot(
        &self,
        _req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let _one_at_a_time = self.taking.lock().await;
        let (engine, snapshotter) = (self.engine.clone(), self.snapshotter.clone());
        let taken = tokio::task::spawn_blocking(move || snapshotter.take(&engine))
            .await
            .map_err(|e| Status::internal(format!("snapshot task failed: {e}")))?;
        match taken {
            Ok(info) => Ok(Response::new(pb::SnapshotResponse {
                lsn: info.lsn,
                bytes: info.bytes,
            })),
            Err(e) if self.engine.stats().failed => {
                Err(Status::unavailable(format!("snapshot failed: {e}")))
            }
            Err(e) => Err(Status::internal(format!("snapshot failed: {e}"))),
        }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// `Reports`: the named reports and read-only `Query` on the exporter's store. Each runs on a
/// blocking thread (the stores' clients block). Without an exporter (`[exporter] enabled =
/// false`) every call is FAILED_PRECONDITION.
#[derive(Clone)]
pub struct ReportsService {
    exporter: Option<Arc<exporter::Exporter>>,
}

impl ReportsService {
    pub fn new(exporter: Option<Arc<exporter::Exporter>>) -> Self {
        Self { exporter }
    }

    async fn on_store<F>(&self, f: F) -> Result<Response<pb::ReportResult>, Status>
    where
        F: FnOnce(&dyn exporter::Reader) -> exporter::Result<exporter::ResultTable>
            + Send
            + 'static,
    {
        let Some(exporter) = self.exporter.clone() else {
            return Err(Status::failed_precondition(
                "the exporter is disabled ([exporter] enabled = false): no analytical store",
            ));
        };
        // Read the LSN first: the result holds at least everything up to it.
        let export_lsn = exporter.export_lsn();
        let reader = exporter.reader().map_err(convert::export_status)?;
        let table = tokio::task::spawn_blocking(move || f(reader.as_ref()))
            .await
            .map_err(|e| Status::internal(format!("report task failed: {e}")))?
            .map_err(convert::export_status)?;
        Ok(Response::new(convert::report_result(table, export_lsn)))
    }
}

#[tonic::async_trait]
impl pb::reports_server::Reports for ReportsService {
    async fn list_reports(
        &self,
        _: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        let reports = exporter::reports::catalogue()
            .into_iter()
            .map(|r| pb::ReportInfo {
                name: r.name.to_string(),
                description: r.description,
                params: r.params,
            })
            .collect();
        Ok(Response::new(pb::ListReportsResponse { reports }))
    }

    async fn run_report(
        &self,
        req: Request<pb::RunReportRequest>,
    ) -> Result<Response<pb::ReportResult>, Status> {
        let req = req.into_inner();
        // Unknown names and bad params are answered without touching the store.
        let report = exporter::reports::find(&req.name).map_err(convert::export_status)?;
        let params: std::collections::BTreeMap<String, String> = req.params.into_iter().collect();
        exporter::reports::render(&report, &params).map_err(convert::export_status)?;
        self.on_store(move |reader| exporter::reports::run(reader, &req.name, &params))
            .await
    }

    async fn query(
        &self,
        req: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::ReportResult>, Status> {
        let sql = req.into_inner().sql;
        exporter::guard::check_read_only(&sql).map_err(convert::export_status)?;
        self.on_store(move |reader| exporter::reports::query(reader, &sql))
            .await
    }
}

/// `Alerts`: low-stock alerts and purchase orders from the engine, `WatchEvents` on the change
/// feed, notifications from the notifier's outbox (UNAVAILABLE when the notifier is off).
pub struct AlertsService {
    engine: Arc<Engine>,
    notifier: Option<Arc<notifier::Notifier>>,
}

impl AlertsService {
    pub fn new(engine: Arc<Engine>, notifier: Option<Arc<notifier::Notifier>>) -> Self {
        Self { engine, notifier }
    }

    fn notifier(&self) -> Result<&Arc<notifier::Notifier>, Status> {
        self.notifier.as_ref().ok_or_else(|| {
            Status::unavailable("notifications are off (notifier.enabled = false or sync = none)")
        })
    }
}

#[tonic::async_trait]
impl pb::alerts_server::Alerts for AlertsService {
    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let alerts = self.engine.list_alerts(req.into_inner().include_resolved);
        Ok(Response::new(pb::ListAlertsResponse {
            alerts: alerts.into_iter().map(convert::alert).collect(),
        }))
    }
    async fn list_purchase_orders(
        &self,
        req: Request<pb::ListPurchaseOrdersRequest>,
    ) -> Result<Response<pb::ListPurchaseOrdersResponse>, Status> {
        let pos = self.engine.list_purchase_orders(req.into_inner().open_only);
        Ok(Response::new(pb::ListPurchaseOrdersResponse {
            purchase_orders: pos.into_iter().map(convert::purchase_order).collect(),
        }))
    }
    type WatchEventsStream = BoxStream<pb::Event>;
    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let req = req.into_inner();
        let from = crate::watch::start(&self.engine, &req)?;
        let (tx, rx) = tokio::sync::mpsc::channel(limits::WATCH_EVENTS_BUFFER);
        tokio::spawn(crate::watch::feed(self.engine.clone(), from, req.kinds, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
    async fn list_notifications(
        &self,
        req: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let status = convert::notification_status_filter(req.into_inner().status)?;
        let list = self.notifier()?.list(status);
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: list.iter().map(convert::notification).collect(),
        }))
    }
    async fn update_purchase_order(
        &self,
        req: Request<pb::UpdatePurchaseOrderRequest>,
    ) -> Result<Response<pb::PurchaseOrder>, Status> {
        let op = convert::update_purchase_order_op(req.into_inner())?;
        run_as(
            &self.engine,
            op,
            "purchase order",
            engine::OpOutput::into_purchase_order,
            convert::purchase_order,
        )
        .await
    }
    async fn retry_notification(
        &self,
        req: Request<pb::RetryNotificationRequest>,
    ) -> Result<Response<pb::Notification>, Status> {
        let id = req.into_inner().notification_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("notification_id is empty"));
        }
        let n = self.notifier()?.clone();
        // An outbox fsync: off the async threads.
        let retried = tokio::task::spawn_blocking(move || n.retry(&id))
            .await
            .map_err(|e| Status::internal(format!("retry task failed: {e}")))?;
        match retried {
            Ok(m) => Ok(Response::new(convert::notification(&m))),
            Err(e @ notifier::NotifyError::NotFound(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ notifier::NotifyError::AlreadySent(_)) => {
                Err(Status::failed_precondition(e.to_string()))
            }
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}

/// `Orders`: customers, orders and returns, every write an engine op (validated, idempotent,
/// durable before the reply); `WatchOrder` follows the change feed (`watch_order.rs`).
#[derive(Clone)]
pub struct OrdersService {
    engine: Arc<Engine>,
}

impl OrdersService {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    async fn run_order(&self, op: Op) -> Result<Response<pb::Order>, Status> {
        run_as(
            &self.engine,
            op,
            "order",
            engine::OpOutput::into_order,
            convert::order,
        )
        .await
    }

    async fn run_return(&self, op: Op) -> Result<Response<pb::Return>, Status> {
        run_as(
            &self.engine,
            op,
            "return",
            engine::OpOutput::into_return,
            convert::return_,
        )
        .await
    }
}

#[tonic::async_trait]
impl pb::orders_server::Orders for OrdersService {
    async fn upsert_customer(
        &self,
        req: Request<pb::UpsertCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let op = convert::upsert_customer_op(req.into_inner());
        run_as(
            &self.engine,
            op,
            "customer",
            engine::OpOutput::into_customer,
            convert::customer,
        )
        .await
    }
    async fn get_customer(
        &self,
        req: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::Customer>, Status> {
        let c = self
            .engine
            .get_customer(&req.into_inner().customer_id)
            .map_err(status)?;
        Ok(Response::new(convert::customer(c)))
    }
    async fn create_order(
        &self,
        req: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.run_order(convert::create_order_op(req.into_inner()))
            .await
    }
    async fn confirm_payment(
        &self,
        req: Request<pb::ConfirmPaymentRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.run_order(convert::confirm_payment_op(req.into_inner()))
            .await
    }
    async fn fail_payment(
        &self,
        req: Request<pb::FailPaymentRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.run_order(convert::fail_payment_op(req.into_inner()))
            .await
    }
    async fn ship_order(
        &self,
        req: Request<pb::ShipOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.run_order(convert::ship_order_op(req.into_inner()))
            .await
    }
    async fn deliver_order(
        &self,
        req: Request<pb::DeliverOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.run_order(convert::deliver_order_op(req.into_inner()))
            .await
    }
    async fn cancel_order(
        &self,
        req: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.run_order(convert::cancel_order_op(req.into_inner()))
            .await
    }
    async fn get_order(
        &self,
        req: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let o = self
            .engine
            .get_order(&req.into_inner().order_id)
            .map_err(status)?;
        Ok(Response::new(convert::order(o)))
    }
    async fn list_orders(
        &self,
        req: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let r = req.into_inner();
        let status_filter = convert::order_status_filter(r.status)?;
        let page_size = match r.page_size {
            0 => engine::limits::PAGE_SIZE_DEFAULT,
            n => n as usize,
        };
        let customer = (!r.customer_id.is_empty()).then_some(r.customer_id.as_str());
        let after = (!r.page_token.is_empty()).then_some(r.page_token.as_str());
        let (orders, next) = self
            .engine
            .list_orders(customer, status_filter, after, page_size);
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.into_iter().map(convert::order).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
    type WatchOrderStream = BoxStream<pb::Order>;
    async fn watch_order(
        &self,
        req: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        let order_id = req.into_inner().order_id;
        let rx = crate::watch_order::start(self.engine.clone(), &order_id).await?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
    async fn request_return(
        &self,
        req: Request<pb::RequestReturnRequest>,
    ) -> Result<Response<pb::Return>, Status> {
        self.run_return(convert::request_return_op(req.into_inner()))
            .await
    }
    async fn approve_return(
        &self,
        req: Request<pb::ApproveReturnRequest>,
    ) -> Result<Response<pb::Return>, Status> {
        self.run_return(convert::approve_return_op(req.into_inner()))
            .await
    }
    async fn reject_return(
        &self,
        req: Request<pb::RejectReturnRequest>,
    ) -> Result<Response<pb::Return>, Status> {
        self.run_return(convert::reject_return_op(req.into_inner()))
            .await
    }
}
