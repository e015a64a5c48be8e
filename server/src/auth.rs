//! Bearer tokens with roles, and the role × RPC matrix (API.md's table by default, configurable
//! under `[roles.NAME]`). Checked for every RPC by one tower layer ([`crate::gate`]); the per-op
//! check of `ExecuteBatch` uses [`Caller::may_batch`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::limits;

/// What a role may call. `rpcs` entries are `Service/Method` (`Inventory/Reserve`),
/// `Service/*`, or `*`; `batch_ops` are the op kinds of `ExecuteBatch` (`upsert_product`,
/// `receive`, `adjust`, `reserve`, `commit`, `release`, `create_order`, `confirm_payment`) or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    pub rpcs: Vec<String>,
    #[serde(default)]
    pub batch_ops: Vec<String>,
}

impl RoleRule {
    fn new(rpcs: &[&str], batch_ops: &[&str]) -> Self {
        Self {
            rpcs: rpcs.iter().map(|s| s.to_string()).collect(),
            batch_ops: batch_ops.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn allows(&self, service: &str, method: &str) -> bool {
        self.rpcs.iter().any(|p| {
            p == "*"
                || match p.split_once('/') {
                    Some((s, "*")) => s == service,
                    Some((s, m)) => s == service && m == method,
                    None => false,
                }
        })
    }

    pub fn allows_batch_op(&self, kind: &str) -> bool {
        self.batch_ops.iter().any(|k| k == "*" || k == kind)
    }
}

/// API.md's default matrix. RPCs added beyond its table: `Alerts/UpdatePurchaseOrder` →
/// inventory_manager, `Alerts/RetryNotification` → support, `Orders/GetCustomer` → support
/// (Orders: all).
pub fn default_roles() -> BTreeMap<String, RoleRule> {
    let mut m = BTreeMap::new();
    m.insert(
        "storefront".to_string(),
        RoleRule::new(
            &[
                "Inventory/GetStock",
                "Inventory/ListStock",
                "Inventory/Reserve",
                "Inventory/Commit",
                "Inventory/Release",
                "Inventory/GetReservation",
                "Inventory/ExecuteBatch",
                "Orders/UpsertCustomer",
                "Orders/CreateOrder",
                "Orders/ConfirmPayment",
                "Orders/FailPayment",
                "Orders/CancelOrder",
                "Orders/GetOrder",
                "Orders/ListOrders",
                "Orders/WatchOrder",
                "Orders/RequestReturn",
            ],
            &[
                "reserve",
                "commit",
                "release",
                "create_order",
                "confirm_payment",
            ],
        ),
    );
    m.insert(
        "inventory_manager".to_string(),
        RoleRule::new(
            &[
                "Inventory/*",
                "Alerts/ListAlerts",
                "Alerts/ListPurchaseOrders",
                "Alerts/WatchEvents",
                "Alerts/UpdatePurchaseOrder",
                "Reports/RunReport",
                "Reports/ListReports",
            ],
            &["*"],
        ),
    );
    m.insert(
        "support".to_string(),
        RoleRule::new(
            &[
                "Orders/*",
                "Inventory/GetStock",
                "Inventory/ListStock",
                "Inventory/GetReservation",
                "Alerts/ListNotifications",
                "Alerts/RetryNotification",
            ],
            &[],
        ),
    );
    m.insert("reporter".to_string(), RoleRule::new(&["Reports/*"], &[]));
    m.insert("admin".to_string(), RoleRule::new(&["*"], &["*"]));
    m
}

/// Who is calling: set by the gate in the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// None in development mode (no tokens configured): everything is allowed.
    pub role: Option<String>,
    rule: Option<RoleRule>,
}

impl Caller {
    pub fn dev() -> Self {
        Self {
            role: None,
            rule: None,
        }
    }

    /// Whether this caller may run an `ExecuteBatch` op of this kind; the error names the role.
    pub fn may_batch(&self, index: usize, kind: &str) -> Result<(), Status> {
        match (&self.role, &self.rule) {
            (Some(role), Some(rule)) if !rule.allows_batch_op(kind) => {
                Err(Status::permission_denied(format!(
                    "role {role} may not run {kind} ops in Inventory/ExecuteBatch (op {index})"
                )))
            }
            _ => Ok(()),
        }
    }
}

pub fn parse_hash(hex_text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_text.trim()).map_err(|e| format!("not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("a SHA-256 is 32 bytes, got {}", b.len()))
}

/// Hex SHA-256 of a token, as the config stores it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token table and the matrix.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens: HashMap<[u8; 32], String>,
    roles: BTreeMap<String, RoleRule>,
}

impl Auth {
    pub fn new(config: &crate::config::Config) -> Result<Self, String> {
        let mut tokens = HashMap::new();
        for t in &config.tokens {
            tokens.insert(parse_hash(&t.sha256)?, t.role.clone());
        }
        Ok(Self {
            tokens,
            roles: config.role_matrix(),
        })
    }

    pub fn dev_mode(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks a call to `service/method` (short service name, e.g. `Inventory`) carrying this
    /// `authorization` header value.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        service: &str,
        method: &str,
    ) -> Result<Caller, Status> {
        if self.dev_mode() {
            return Ok(Caller::dev());
        }
        let header = authorization.ok_or_else(|| {
            Status::unauthenticated(format!(
                "{service}/{method} needs a token: send `authorization: Bearer <token>`"
            ))
        })?;
        if header.len() > limits::TOKEN_BYTES_MAX {
            return Err(Status::unauthenticated("authorization header too long"));
        }
        let token = std::str::from_utf8(header)
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                Status::unauthenticated("authorization header must be `Bearer <token>`")
            })?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let role = self
            .tokens
            .get(&digest)
            .ok_or_else(|| Status::unauthenticated("unknown token"))?;
        let rule = self.roles.get(role).cloned();
        if !rule.as_ref().is_some_and(|r| r.allows(service, method)) {
            return Err(Status::permission_denied(format!(
                "role {role} may not call {service}/{method}"
            )));
        }
        Ok(Caller {
            role: Some(role.clone()),
            rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, TokenEntry};

    fn auth() -> Auth {
        let mut c = Config::default();
        for role in [
            "storefront",
            "support",
            "admin",
            "reporter",
            "inventory_manager",
        ] {
            c.tokens.push(TokenEntry {
                role: role.into(),
                sha256: hash_token(&format!("t-{role}")),
                name: String::new(),
            });
        }
        Auth::new(&c).unwrap()
    }

    fn call(a: &Auth, token: &str, svc: &str, m: &str) -> tonic::Code {
        let h = format!("Bearer {token}");
        match a.check(Some(h.as_bytes()), svc, m) {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        }
    }

    #[test]
    fn matrix_matches_api_md() {
        let a = auth();
        use tonic::Code::*;
        assert_eq!(call(&a, "t-storefront", "Inventory", "Reserve"), Ok);
        assert_eq!(
            call(&a, "t-storefront", "Inventory", "ReceiveStock"),
            PermissionDenied
        );
        assert_eq!(
            call(&a, "t-storefront", "Admin", "Status"),
            PermissionDenied
        );
        assert_eq!(
            call(&a, "t-storefront", "Orders", "ShipOrder"),
            PermissionDenied
        );
        assert_eq!(
            call(&a, "t-inventory_manager", "Inventory", "AdjustStock"),
            Ok
        );
        assert_eq!(
            call(&a, "t-inventory_manager", "Reports", "Query"),
            PermissionDenied
        );
        assert_eq!(call(&a, "t-support", "Orders", "ShipOrder"), Ok);
        assert_eq!(
            call(&a, "t-support", "Inventory", "Reserve"),
            PermissionDenied
        );
        assert_eq!(call(&a, "t-reporter", "Reports", "Query"), Ok);
        assert_eq!(
            call(&a, "t-reporter", "Inventory", "GetStock"),
            PermissionDenied
        );
        assert_eq!(call(&a, "t-admin", "Admin", "Snapshot"), Ok);
        assert_eq!(call(&a, "nope", "Inventory", "GetStock"), Unauthenticated);
        assert_eq!(
            a.check(None, "Inventory", "GetStock").unwrap_err().code(),
            Unauthenticated
        );
        let denied = a
            .check(Some(b"Bearer t-storefront"), "Inventory", "AdjustStock")
            .unwrap_err();
        assert!(
            denied.message().contains("storefront") && denied.message().contains("AdjustStock")
        );
    }

    #[test]
    fn batch_ops_per_role() {
        let a = auth();
        let s = a
            .check(Some(b"Bearer t-storefront"), "Inventory", "ExecuteBatch")
            .unwrap();
        assert!(s.may_batch(0, "reserve").is_ok());
        assert!(s.may_batch(0, "confirm_payment").is_ok());
        assert_eq!(
            s.may_batch(3, "receive").unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let m = a
            .check(
                Some(b"Bearer t-inventory_manager"),
                "Inventory",
                "ExecuteBatch",
            )
            .unwrap();
        assert!(m.may_batch(0, "adjust").is_ok());
    }
}
