//! A small SMTP client (RFC 5321): EHLO, optional STARTTLS (then EHLO again), optional AUTH
//! (PLAIN when offered, else LOGIN), then per message MAIL FROM / RCPT TO / DATA with
//! dot-stuffing, RSET after a refused message, QUIT. One session carries a whole batch.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::{base64, message_id_header};
use crate::error::NotifyError;
use crate::limits;
use crate::message::Message;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// Upgrade with STARTTLS before anything else is said (and refuse servers that cannot).
    pub starttls: bool,
    /// CA bundle trusted for STARTTLS.
    pub ca_file: PathBuf,
    /// AUTH when non-empty.
    pub username: String,
    pub password: String,
    /// The envelope sender and `From:` header.
    pub from: String,
    /// The name given in EHLO.
    pub helo: String,
}

pub struct Smtp {
    config: SmtpConfig,
    tls: Option<TlsConnector>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection with its read buffer.
struct Conn<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// One reply (all lines of a multi-line one): its code and text.
    async fn reply(&mut self) -> Result<(u16, String), Fault> {
        let mut text = String::new();
        loop {
            let line = self.line().await?;
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| Fault::Broken(format!("malformed SMTP reply {line:?}")))?;
            text.push_str(line.get(4..).unwrap_or(""));
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text.trim_end().to_string()));
            }
        }
    }

    async fn line(&mut self) -> Result<String, Fault> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > limits::REPLY_BYTES_MAX {
                return Err(Fault::Broken("SMTP reply too long".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .io
                .read(&mut chunk)
                .await
                .map_err(|e| Fault::Broken(format!("reading from the mail server: {e}")))?;
            if n == 0 {
                return Err(Fault::Broken(
                    "the mail server closed the connection".into(),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Fault> {
        self.io
            .write_all(bytes)
            .await
            .map_err(|e| Fault::Broken(format!("writing to the mail server: {e}")))?;
        self.io
            .flush()
            .await
            .map_err(|e| Fault::Broken(format!("writing to the mail server: {e}")))
    }

    /// Sends a command and expects a reply code in `ok`.
    async fn command(&mut self, line: &str, ok: &[u16]) -> Result<String, Fault> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.expect(line, ok).await
    }

    async fn expect(&mut self, what: &str, ok: &[u16]) -> Result<String, Fault> {
        let (code, text) = self.reply().await?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            // Never echo AUTH secrets into errors.
            let what = if what.starts_with("AUTH") || !what.is_ascii() {
                "AUTH"
            } else {
                what.split(':').next().unwrap_or(what)
            };
            Err(Fault::Refused(format!("{what}: {code} {text}")))
        }
    }
}

impl Smtp {
    pub fn new(config: SmtpConfig) -> Result<Self, NotifyError> {
        let tls = if config.starttls {
            Some(super::tls::connector(&config.ca_file)?)
        } else {
            None
        };
        Ok(Self { config, tls })
    }

    pub async fn send_batch(&self, messages: &[Message]) -> Vec<Result<(), String>> {
        let timeout = Duration::from_millis(limits::SEND_TIMEOUT_MILLIS);
        let mut conn = match tokio::time::timeout(timeout, self.open()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return vec![Err(e); messages.len()],
            Err(_) => return vec![Err("mail server timed out".to_string()); messages.len()],
        };
        let mut results = Vec::with_capacity(messages.len());
        let mut broken: Option<String> = None;
        for m in messages {
            if let Some(e) = &broken {
                results.push(Err(e.clone()));
                continue;
            }
            let sent = match tokio::time::timeout(timeout, self.transaction(&mut conn, m)).await {
                Ok(r) => r,
                Err(_) => Err(Fault::Broken("mail server timed out".into())),
            };
            results.push(match sent {
                Ok(()) => Ok(()),
                Err(Fault::Refused(e)) => {
                    // The session is still good: reset it for the next message.
                    if let Err(e) = conn.command("RSET", &[250]).await {
                        broken = Some(e.into());
                    }
                    Err(e)
                }
                Err(Fault::Broken(e)) => {
                    broken = Some(e.clone());
                    Err(e)
                }
            });
        }
        if broken.is_none() {
            let _ = tokio::time::timeout(timeout, conn.command("QUIT", &[221])).await;
        }
        results
    }

    async fn open(&self) -> Result<Conn<Box<dyn Io>>, String> {
        let c = &self.config;
        let tcp = TcpStream::connect((c.host.as_str(), c.port))
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", c.host, c.port))?;
        let _ = tcp.set_nodelay(true);
        let mut plain = Conn {
            io: tcp,
            buf: Vec::new(),
        };
        plain.expect("greeting", &[220]).await?;
        let ehlo = format!("EHLO {}", c.helo);
        let mut features = plain.command(&ehlo, &[250]).await?;
        let mut conn: Conn<Box<dyn Io>> = match &self.tls {
            Some(tls) => {
                if !has_extension(&features, "STARTTLS") {
                    return Err("the mail server does not offer STARTTLS".into());
                }
                plain.command("STARTTLS", &[220]).await?;
                let name = ServerName::try_from(c.host.clone())
                    .map_err(|e| format!("bad server name {}: {e}", c.host))?;
                let stream = tls
                    .connect(name, plain.io)
                    .await
                    .map_err(|e| format!("STARTTLS handshake: {e}"))?;
                let mut conn = Conn {
                    io: Box::new(stream) as Box<dyn Io>,
                    buf: Vec::new(),
                };
                features = conn.command(&ehlo, &[250]).await?;
                conn
            }
            None => Conn {
                io: Box::new(plain.io) as Box<dyn Io>,
                buf: plain.buf,
            },
        };
        if !c.username.is_empty() {
            let auth_line = features
                .lines()
                .find(|l| l.to_ascii_uppercase().starts_with("AUTH"))
                .unwrap_or("")
                .to_ascii_uppercase();
            if auth_line.contains("PLAIN") {
                let token = base64(format!("\0{}\0{}", c.username, c.password).as_bytes());
                conn.command(&format!("AUTH PLAIN {token}"), &[235]).await?;
            } else {
                conn.command("AUTH LOGIN", &[334]).await?;
                conn.command(&base64(c.username.as_bytes()), &[334])
                    .await
                    .map_err(|_| "AUTH LOGIN: user refused".to_string())?;
                conn.command(&base64(c.password.as_bytes()), &[235])
                    .await
                    .map_err(|_| "AUTH LOGIN: password refused".to_string())?;
            }
        }
        Ok(conn)
    }

    async fn transaction(&self, conn: &mut Conn<Box<dyn Io>>, m: &Message) -> Result<(), Fault> {
        conn.command(&format!("MAIL FROM:<{}>", self.config.from), &[250])
            .await?;
        conn.command(&format!("RCPT TO:<{}>", m.recipient), &[250, 251])
            .await?;
        conn.command("DATA", &[354]).await?;
        conn.send(&render(&self.config.from, m)).await?;
        conn.expect("DATA", &[250]).await?;
        Ok(())
    }
}

/// Why an exchange failed: a reply refusing this message (the session goes on after RSET), or
/// a broken session (I/O error, closed, malformed reply, timeout: the rest of the batch fails).
enum Fault {
    Refused(String),
    Broken(String),
}

impl From<Fault> for String {
    fn from(f: Fault) -> String {
        match f {
            Fault::Refused(e) | Fault::Broken(e) => e,
        }
    }
}

fn has_extension(features: &str, name: &str) -> bool {
    features.lines().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(name))
    })
}

/// The message as DATA: headers, body with CRLF line ends and dot-stuffing, the final dot.
pub fn render(from: &str, m: &Message) -> Vec<u8> {
    let subject = if m.subject.is_ascii() {
        m.subject.clone()
    } else {
        format!("=?UTF-8?B?{}?=", base64(m.subject.as_bytes()))
    };
    let mut out = format!(
        "From: <{from}>\r\nTo: <{}>\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: {}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n",
        m.recipient,
        crate::time::rfc5322(m.created_at_ms),
        message_id_header(&m.id),
    );
    for line in m.body.replace("\r\n", "\n").split('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out.into_bytes()
}
