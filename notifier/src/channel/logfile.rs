//! The log channel: rendered messages appended to a text file (the embedded default, so a
//! server on defaults shows its notifications in `data/notifications.log` with no setup).
//!
//! # Layout
//!
//! One block per message, blocks separated by a blank line:
//!
//! ```text
//! --- 2026-12-01T08:05:29Z Message-ID: <12-1-log-…@inventory-notifier> to alice@example.com (OrderShipped, LSN 12)
//! Subject: Order o-1 has shipped
//! email (alice@example.com): Hello Alice, …
//! ```
//!
//! Appended and `fdatasync`ed per batch; a message resent after a crash appears again with the
//! same `Message-ID`.

use std::io::Write;
use std::path::PathBuf;

use super::message_id_header;
use crate::message::Message;

pub struct LogFile {
    path: PathBuf,
}

impl LogFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub async fn send_batch(&self, messages: &[Message]) -> Vec<Result<(), String>> {
        let mut text = String::new();
        let now = crate::time::now_ms();
        for m in messages {
            text.push_str(&format!(
                "--- {} Message-ID: {} to {} ({}, LSN {})\nSubject: {}\n{}\n\n",
                crate::time::rfc3339(now),
                message_id_header(&m.id),
                m.recipient,
                m.event_kind,
                m.event_lsn,
                m.subject,
                m.body.trim_end()
            ));
        }
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(text.as_bytes())?;
            f.sync_data()
        })
        .await;
        let result = match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{}: {e}", self.path.display())),
            Err(e) => Err(format!("log writer: {e}")),
        };
        vec![result; messages.len()]
    }
}
