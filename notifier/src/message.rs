//! One outgoing message as the outbox keeps it, and the id that makes re-derivation idempotent.

use serde::{Deserialize, Serialize};

/// How a message travels. Customers opt into email and SMS; the log file gets a copy of
/// every rendered message when enabled (the embedded default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Channel {
    /// SMTP.
    Email,
    /// A JSON POST to the configured webhook (an SMS gateway).
    Sms,
    /// A line block in the notifications log file.
    Log,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Log];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Log => "log",
        }
    }

    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Pending,
    Sent,
    /// Out of attempts: the dead letter, kept and listed until retried.
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Sent => "SENT",
            Status::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// [`message_id`]: the same after any re-derivation of the same event.
    pub id: String,
    pub channel: Channel,
    /// An email address (email, and log copies of emails) or a phone number (SMS).
    pub recipient: String,
    pub subject: String,
    /// The full text (email, log) or the short text (SMS).
    pub body: String,
    pub event_kind: String,
    pub event_lsn: u64,
    pub event_index: u32,
    /// The server time of the causing record: where event-to-send latency starts.
    pub event_at_ms: u64,
    /// The order the message is about, if any (carried in webhook payloads).
    pub order_id: String,
    pub created_at_ms: u64,
    pub status: Status,
    pub attempts: u32,
    /// `attempts` when the message was last retried by hand: the dead-letter count restarts.
    pub attempts_base: u32,
    pub last_error: String,
    /// Next attempt due (0 once SENT or FAILED).
    pub next_attempt_ms: u64,
    pub sent_at_ms: u64,
}

/// `{lsn}-{index}-{channel}-{hash of the recipient}`: deterministic, so a message derived again
/// after a crash (the cursor had not moved past its record) gets the id it had, the outbox
/// keeps one copy, and receivers drop a resend by its `Message-ID` / `Idempotency-Key`.
pub fn message_id(lsn: u64, index: u32, channel: Channel, recipient: &str) -> String {
    format!(
        "{lsn}-{index}-{}-{:016x}",
        channel.name(),
        fnv1a(recipient.as_bytes())
    )
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_tell_recipients_apart() {
        let a = message_id(7, 1, Channel::Email, "a@example.com");
        assert_eq!(a, message_id(7, 1, Channel::Email, "a@example.com"));
        assert_ne!(a, message_id(7, 1, Channel::Email, "b@example.com"));
        assert_ne!(a, message_id(7, 1, Channel::Log, "a@example.com"));
        assert!(a.starts_with("7-1-email-"));
    }
}
