//! Which events become which messages, to whom, through which channels.
//!
//! Customers hear about their orders and returns only through the channels they opted into
//! (email when `notify_email`, SMS when `notify_sms` and a phone is on file); inventory
//! managers (configured addresses) get one email per alert *opening* (`InventoryLevelLow`,
//! with the purchase order suggested in the same record) and per resolution — the engine emits
//! those once per alert, never per sale. Contacts are looked up when the record is read, so a
//! customer's current preferences apply (also when a restart re-reads records).

use engine::{Event, Record};

use crate::message::{Channel, Message, Status, message_id};
use crate::template::{Templates, Vars};

/// How to reach a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub notify_email: bool,
    pub notify_sms: bool,
}

/// What the notifier needs to know beyond the events themselves.
pub trait Directory: Send + Sync {
    fn contact(&self, customer_id: &str) -> Option<Contact>;
    /// The customer of an order (events after creation name only the order).
    fn customer_of(&self, order_id: &str) -> Option<String>;
}

impl Directory for engine::Engine {
    fn contact(&self, customer_id: &str) -> Option<Contact> {
        self.get_customer(customer_id).ok().map(|c| Contact {
            name: c.name,
            email: c.email,
            phone: c.phone,
            notify_email: c.notify_email,
            notify_sms: c.notify_sms,
        })
    }
    fn customer_of(&self, order_id: &str) -> Option<String> {
        self.get_order(order_id).ok().map(|o| o.customer_id)
    }
}

/// The rules' inputs that come from configuration.
pub struct Rules<'a> {
    pub templates: &'a Templates,
    /// Enabled channels, indexed by [`Channel::index`].
    pub enabled: [bool; 3],
    pub managers: &'a [String],
}

enum Audience {
    Customer(String),
    Managers,
}

/// Every message the record at `lsn` yields, in event order.
pub fn derive(
    lsn: u64,
    record: &Record,
    directory: &dyn Directory,
    rules: &Rules,
    now_ms: u64,
) -> Vec<Message> {
    let mut out = Vec::new();
    for (index, event) in record.events.iter().enumerate() {
        let Some((template, audience, vars)) = describe(event, record, directory) else {
            continue;
        };
        let mut vars = vars;
        let targets: Vec<(Channel, String)> = match audience {
            Audience::Customer(customer_id) => {
                let Some(contact) = directory.contact(&customer_id) else {
                    tracing::warn!(lsn, customer_id, "no such customer: nothing to notify");
                    continue;
                };
                vars.insert("customer_name", contact.name.clone());
                let mut t = Vec::new();
                if contact.notify_email && !contact.email.is_empty() {
                    t.push((Channel::Email, contact.email.clone()));
                }
                if contact.notify_sms && !contact.phone.is_empty() {
                    t.push((Channel::Sms, contact.phone.clone()));
                }
                t
            }
            Audience::Managers => rules
                .managers
                .iter()
                .map(|m| (Channel::Email, m.clone()))
                .collect(),
        };
        let rendered = rules.templates.render(template, &vars);
        let mut push = |channel: Channel, recipient: &str, subject: &str, body: &str| {
            out.push(Message {
                id: message_id(lsn, index as u32, channel, recipient),
                channel,
                recipient: recipient.to_string(),
                subject: subject.to_string(),
                body: body.to_string(),
                event_kind: event.kind().to_string(),
                event_lsn: lsn,
                event_index: index as u32,
                event_at_ms: record.at_ms,
                order_id: event.order_id().unwrap_or_default().to_string(),
                created_at_ms: now_ms,
                status: Status::Pending,
                attempts: 0,
                attempts_base: 0,
                last_error: String::new(),
                next_attempt_ms: now_ms,
                sent_at_ms: 0,
            });
        };
        for (channel, recipient) in &targets {
            let body = match channel {
                Channel::Sms => &rendered.sms,
                _ => &rendered.body,
            };
            if rules.enabled[channel.index()] {
                push(*channel, recipient, &rendered.subject, body);
            }
            // The log keeps a copy of everything rendered (the default without SMTP/webhook).
            if rules.enabled[Channel::Log.index()] {
                let copy = format!("{} ({}): {}", channel.name(), recipient, body);
                push(Channel::Log, recipient, &rendered.subject, &copy);
            }
        }
    }
    out
}

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// The template, audience and values of an event that notifies anyone.
fn describe(
    event: &Event,
    record: &Record,
    directory: &dyn Directory,
) -> Option<(&'static str, Audience, Vars)> {
    let mut v = Vars::new();
    let customer_of = |order_id: &str| {
        directory
            .customer_of(order_id)
            .map(Audience::Customer)
            .or_else(|| {
                tracing::warn!(
                    order_id,
                    "order no longer known: its customer is not notified"
                );
                None
            })
    };
    let found = match event {
        Event::OrderCreated {
            order_id,
            customer_id,
            lines,
            shipping_address,
            totals,
            payment_deadline_ms,
            ..
        } => {
            v.insert("order_id", order_id.clone());
            let lines: String = lines
                .iter()
                .map(|l| {
                    format!(
                        "  {} x {} at {}\n",
                        l.quantity,
                        l.sku,
                        money(l.unit_price_cents)
                    )
                })
                .collect();
            v.insert("lines", lines);
            v.insert("subtotal", money(totals.subtotal_cents));
            v.insert("discount", money(totals.discount_cents));
            v.insert("tax", money(totals.tax_cents));
            v.insert("shipping", money(totals.shipping_cents));
            v.insert("total", money(totals.total_cents));
            v.insert("shipping_address", shipping_address.clone());
            v.insert(
                "payment_deadline",
                crate::time::rfc3339(*payment_deadline_ms),
            );
            ("order_created", Audience::Customer(customer_id.clone()))
        }
        Event::OrderPaid {
            order_id,
            customer_id,
            payment_id,
            amount_cents,
        } => {
            v.insert("order_id", order_id.clone());
            v.insert("payment_id", payment_id.clone());
            v.insert("amount", money(*amount_cents));
            ("order_paid", Audience::Customer(customer_id.clone()))
        }
        Event::OrderShipped {
            order_id,
            carrier,
            tracking_number,
        } => {
            v.insert("order_id", order_id.clone());
            v.insert("carrier", carrier.clone());
            v.insert("tracking_number", tracking_number.clone());
            ("order_shipped", customer_of(order_id)?)
        }
        Event::OrderDelivered { order_id } => {
            v.insert("order_id", order_id.clone());
            ("order_delivered", customer_of(order_id)?)
        }
        Event::OrderCancelled {
            order_id,
            customer_id,
            reason,
            refund_due_cents,
            ..
        } => {
            v.insert("order_id", order_id.clone());
            v.insert("reason", reason.clone());
            v.insert("refund_due", money(*refund_due_cents));
            ("order_cancelled", Audience::Customer(customer_id.clone()))
        }
        Event::ReturnApproved {
            return_id,
            order_id,
            customer_id,
            refund_cents,
            ..
        } => {
            v.insert("return_id", return_id.clone());
            v.insert("order_id", order_id.clone());
            v.insert("refund", money(*refund_cents));
            ("return_approved", Audience::Customer(customer_id.clone()))
        }
        Event::ReturnRejected {
            return_id,
            order_id,
            reason,
            ..
        } => {
            v.insert("return_id", return_id.clone());
            v.insert("order_id", order_id.clone());
            v.insert("reason", reason.clone());
            ("return_rejected", customer_of(order_id)?)
        }
        Event::InventoryLevelLow {
            alert_id,
            sku,
            kind,
            available,
            reorder_level,
            suggested_quantity,
        } => {
            v.insert("alert_id", alert_id.clone());
            v.insert("sku", sku.clone());
            v.insert("kind", kind.name().to_string());
            v.insert("available", available.to_string());
            v.insert("reorder_level", reorder_level.to_string());
            v.insert("suggested_quantity", suggested_quantity.to_string());
            let po = record.events.iter().find_map(|e| match e {
                Event::PurchaseOrderSuggested {
                    purchase_order_id,
                    quantity,
                    alert_id: of,
                    ..
                } if of == alert_id => Some(format!(
                    "{purchase_order_id} suggested for {quantity} units"
                )),
                _ => None,
            });
            v.insert(
                "purchase_order",
                po.unwrap_or_else(|| "none suggested (one is already open)".into()),
            );
            ("inventory_low", Audience::Managers)
        }
        Event::InventoryRestored {
            alert_id,
            sku,
            kind,
            available,
            ..
        } => {
            v.insert("alert_id", alert_id.clone());
            v.insert("sku", sku.clone());
            v.insert("kind", kind.name().to_string());
            v.insert("available", available.to_string());
            ("inventory_restored", Audience::Managers)
        }
        _ => return None,
    };
    assert!(
        NOTIFYING_KINDS.contains(&event.kind()),
        "{} notifies: add it to NOTIFYING_KINDS",
        event.kind()
    );
    Some((found.0, found.1, v))
}

/// The kinds of event [`describe`] turns into messages (it asserts so). The feed skips a
/// record whose only event is of another kind without decoding it
/// (`engine::Record::sole_event_kind`): most records are stock ops that notify nobody.
pub const NOTIFYING_KINDS: &[&str] = &[
    "OrderCreated",
    "OrderPaid",
    "OrderShipped",
    "OrderDelivered",
    "OrderCancelled",
    "ReturnApproved",
    "ReturnRejected",
    "InventoryLevelLow",
    "InventoryRestored",
];

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{AlertKind, Line};

    struct Book;
    impl Directory for Book {
        fn contact(&self, customer_id: &str) -> Option<Contact> {
            Some(Contact {
                name: format!("Name of {customer_id}"),
                email: format!("{customer_id}@example.com"),
                phone: "+15550100".into(),
                notify_email: true,
                notify_sms: customer_id != "no-sms",
            })
        }
        fn customer_of(&self, _order_id: &str) -> Option<String> {
            Some("alice".into())
        }
    }

    fn rules<'a>(templates: &'a Templates, managers: &'a [String], log: bool) -> Rules<'a> {
        Rules {
            templates,
            enabled: [true, true, log],
            managers,
        }
    }

    #[test]
    fn customers_get_only_the_channels_they_opted_into() {
        let t = Templates::load(None).unwrap();
        let r = rules(&t, &[], false);
        let record = |customer: &str| Record {
            at_ms: 1,
            events: vec![Event::OrderPaid {
                order_id: "o1".into(),
                customer_id: customer.into(),
                payment_id: "p1".into(),
                amount_cents: 1234,
            }],
        };
        let both = derive(5, &record("alice"), &Book, &r, 10);
        let channels: Vec<_> = both.iter().map(|m| m.channel).collect();
        assert_eq!(channels, [Channel::Email, Channel::Sms]);
        assert!(both[0].body.contains("12.34"), "{}", both[0].body);
        assert_eq!(both[1].body, "Payment of 12.34 received for order o1.");
        let email_only = derive(5, &record("no-sms"), &Book, &r, 10);
        assert_eq!(email_only.len(), 1);
        assert_eq!(email_only[0].channel, Channel::Email);
    }

    #[test]
    fn an_alert_opening_names_its_purchase_order_and_the_log_copies_everything() {
        let t = Templates::load(None).unwrap();
        let managers = ["m1@example.com".to_string(), "m2@example.com".to_string()];
        let r = rules(&t, &managers, true);
        let record = Record {
            at_ms: 1,
            events: vec![
                Event::StockAdjusted {
                    adjustment_id: "a".into(),
                    sku: "S".into(),
                    on_hand_before: 10,
                    on_hand_after: 2,
                    reserved: 0,
                    reason: "count".into(),
                },
                Event::InventoryLevelLow {
                    alert_id: "S#1".into(),
                    sku: "S".into(),
                    kind: AlertKind::LowStock,
                    available: 2,
                    reorder_level: 5,
                    suggested_quantity: 20,
                },
                Event::PurchaseOrderSuggested {
                    purchase_order_id: "PO-1".into(),
                    sku: "S".into(),
                    quantity: 20,
                    alert_id: "S#1".into(),
                },
            ],
        };
        let out = derive(9, &record, &Book, &r, 10);
        assert_eq!(out.len(), 4, "{out:#?}");
        assert!(out.iter().all(|m| m.event_index == 1));
        let mail = &out[0];
        assert_eq!(
            (mail.channel, mail.recipient.as_str()),
            (Channel::Email, "m1@example.com")
        );
        assert!(
            mail.body.contains("PO-1 suggested for 20 units"),
            "{}",
            mail.body
        );
        assert_eq!(out[1].channel, Channel::Log);
        assert_ne!(out[0].id, out[1].id);
    }

    /// One event of each kind in [`NOTIFYING_KINDS`]: each derives a message, and `describe`
    /// (which asserts that what it describes is listed) accepts it — so the list the feed
    /// skips by is neither short nor stale.
    #[test]
    fn every_notifying_kind_derives_a_message() {
        use engine::{OrderLine, OrderStatus, Pricing, Totals};
        let t = Templates::load(None).unwrap();
        let managers = ["m1@example.com".to_string()];
        let r = rules(&t, &managers, false);
        let line = || vec![Line::new("S", 1)];
        let events = [
            Event::OrderCreated {
                order_id: "o1".into(),
                customer_id: "alice".into(),
                lines: vec![OrderLine {
                    sku: "S".into(),
                    quantity: 1,
                    unit_price_cents: 100,
                }],
                shipping_address: "1 Main St".into(),
                totals: Totals::default(),
                pricing: Pricing::default(),
                payment_timeout_seconds: 60,
                payment_deadline_ms: 60_000,
            },
            Event::OrderPaid {
                order_id: "o1".into(),
                customer_id: "alice".into(),
                payment_id: "p1".into(),
                amount_cents: 100,
            },
            Event::OrderShipped {
                order_id: "o1".into(),
                carrier: "UPS".into(),
                tracking_number: "1Z".into(),
            },
            Event::OrderDelivered {
                order_id: "o1".into(),
            },
            Event::OrderCancelled {
                order_id: "o2".into(),
                customer_id: "alice".into(),
                from: OrderStatus::Paid,
                reason: "changed my mind".into(),
                refund_due_cents: 100,
                restocked: line(),
            },
            Event::ReturnApproved {
                return_id: "x1".into(),
                order_id: "o1".into(),
                customer_id: "alice".into(),
                lines: line(),
                refund_cents: 100,
                restocked: line(),
            },
            Event::ReturnRejected {
                return_id: "x2".into(),
                order_id: "o1".into(),
                lines: line(),
                reason: "worn".into(),
            },
            Event::InventoryLevelLow {
                alert_id: "S/A1".into(),
                sku: "S".into(),
                kind: AlertKind::LowStock,
                available: 1,
                reorder_level: 5,
                suggested_quantity: 10,
            },
            Event::InventoryRestored {
                alert_id: "S/A1".into(),
                sku: "S".into(),
                kind: AlertKind::LowStock,
                available: 9,
                forgotten: vec![],
            },
        ];
        let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds, NOTIFYING_KINDS);
        for event in events {
            let kind = event.kind();
            let record = Record {
                at_ms: 1,
                events: vec![event],
            };
            assert!(
                !derive(3, &record, &Book, &r, 10).is_empty(),
                "{kind} derived no message"
            );
        }
    }
}
