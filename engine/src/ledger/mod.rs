//! The ledger: sharded in-memory state ([`shard`]), request checks ([`validate`]), decisions
//! ([`decide`]) and the one mutation path shared by live ops and replay ([`apply`]).

pub mod alerting;
pub mod apply;
pub mod apply_orders;
pub mod decide;
pub mod decide_orders;
pub mod shard;
pub mod shard_lock;
pub mod shard_set;
pub mod table;
pub mod validate;
