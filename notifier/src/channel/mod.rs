//! The transports: SMTP ([`smtp`]), an HTTP webhook ([`webhook`]) and the log file
//! ([`logfile`]). Each takes a batch of messages and answers one result per message, so a
//! worker records every outcome with one outbox write.

pub mod logfile;
pub mod smtp;
pub mod tls;
pub mod webhook;

use crate::message::Message;

/// One channel's transport.
pub enum Transport {
    Smtp(smtp::Smtp),
    Webhook(webhook::Webhook),
    Log(logfile::LogFile),
}

impl Transport {
    pub async fn send_batch(&self, messages: &[Message]) -> Vec<Result<(), String>> {
        match self {
            Transport::Smtp(t) => t.send_batch(messages).await,
            Transport::Webhook(t) => t.send_batch(messages).await,
            Transport::Log(t) => t.send_batch(messages).await,
        }
    }
}

/// The header value receivers deduplicate on: `<message id@inventory-notifier>` (RFC 5322
/// wants an `@`); the part before the `@` is the message id itself.
pub fn message_id_header(id: &str) -> String {
    format!("<{id}@inventory-notifier>")
}

/// Standard base64 with padding (SMTP AUTH, RFC 2047 subjects).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(plain.as_bytes()), coded);
        }
    }
}
