//! The webhook: one JSON POST per message (HTTP/1.1, `http` or `https`), the way to reach an
//! SMS gateway or a chat. Every request carries `Idempotency-Key: <message id>`; any 2xx is
//! delivered, anything else is retried.
//!
//! Payload: `{"id", "channel", "to", "text", "subject", "event_kind", "event_lsn", "order_id"}`.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::error::NotifyError;
use crate::limits;
use crate::message::Message;

pub struct Webhook {
    host: String,
    port: u16,
    path: String,
    tls: Option<TlsConnector>,
}

impl Webhook {
    /// `url` is `http://host[:port]/path` or `https://...` (trusting `ca_file`).
    pub fn new(url: &str, ca_file: &Path) -> Result<Self, NotifyError> {
        let bad = || {
            NotifyError::Config(format!(
                "webhook url {url:?}: expected http(s)://host[:port]/path"
            ))
        };
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, if https { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
            path: path.to_string(),
            tls: if https {
                Some(super::tls::connector(ca_file)?)
            } else {
                None
            },
        })
    }

    pub async fn send_batch(&self, messages: &[Message]) -> Vec<Result<(), String>> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let timeout = Duration::from_millis(limits::SEND_TIMEOUT_MILLIS);
            out.push(match tokio::time::timeout(timeout, self.post(m)).await {
                Ok(r) => r,
                Err(_) => Err("webhook timed out".into()),
            });
        }
        out
    }

    async fn post(&self, m: &Message) -> Result<(), String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to the webhook {}:{}: {e}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("bad server name {}: {e}", self.host))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("webhook TLS handshake: {e}"))?;
                self.exchange(stream, m).await
            }
            None => self.exchange(tcp, m).await,
        }
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut io: S,
        m: &Message,
    ) -> Result<(), String> {
        let body = serde_json::json!({
            "id": m.id,
            "channel": m.channel.name(),
            "to": m.recipient,
            "text": m.body,
            "subject": m.subject,
            "event_kind": m.event_kind,
            "event_lsn": m.event_lsn,
            "order_id": m.order_id,
        })
        .to_string();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nIdempotency-Key: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            self.port,
            body.len(),
            m.id
        );
        let io_error = |e: std::io::Error| format!("webhook: {e}");
        io.write_all(head.as_bytes()).await.map_err(io_error)?;
        io.write_all(body.as_bytes()).await.map_err(io_error)?;
        io.flush().await.map_err(io_error)?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 1024];
        while !response.windows(2).any(|w| w == b"\r\n") {
            let n = io.read(&mut chunk).await.map_err(io_error)?;
            if n == 0 || response.len() > limits::REPLY_BYTES_MAX {
                return Err("webhook closed without a status line".into());
            }
            response.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&response);
        let status_line = text.lines().next().unwrap_or("");
        let code: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("webhook: malformed status line {status_line:?}"))?;
        if (200..300).contains(&code) {
            Ok(())
        } else {
            Err(format!("webhook answered {status_line}"))
        }
    }
}
