//! The inventory engine: a sharded in-memory stock ledger whose every change is a WAL record,
//! written with group commit and replayed exactly on restart. See `docs/ARCHITECTURE.md`.

pub mod alerts;
pub mod clock;
pub mod engine;
pub mod error;
pub mod event;
pub mod ledger;
pub mod limits;
pub mod memory;
pub mod model;
pub mod orders;
pub mod sched;
pub mod snapshot;
pub mod wal;

pub use alerts::{Alert, AlertKind, AlertPolicy, PurchaseOrder, PurchaseOrderStatus};
pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Engine, EngineConfig, EngineStats, StateDump, Submitted};
pub use error::{EngineError, Result};
pub use event::{Event, Record};
pub use model::{
    Line, Op, OpOutput, Product, Reservation, ReservationState, StockLevel, StockStatus,
};
pub use orders::{
    Customer, Order, OrderLine, OrderPolicy, OrderStatus, Pricing, Return, ReturnStatus, Totals,
};
pub use snapshot::{CutStats, SnapshotData};
pub use wal::{RecoveryMode, RecoveryReport, SyncMode, WalConfig, WalError};
