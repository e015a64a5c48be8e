//! Test and benchmark helpers: an SMTP sink and a webhook receiver on 127.0.0.1:0, each on its
//! own threads (plain blocking sockets, so they keep answering whatever the caller's runtime
//! does). Both can be switched "down": the sink then greets with `421` and hangs up, the
//! receiver answers `503`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// One mail as received: envelope and DATA (dot-stuffing undone, CRLF kept).
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// The AUTH line the session used, if any.
    pub auth: Option<String>,
    /// When the sink accepted it (the end of DATA): where send latency ends.
    pub received: std::time::Instant,
}

impl Mail {
    /// A header's value (the first of that name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        head.split("\r\n").find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.replace("\r\n", "\n"))
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<Mail>>,
    down: AtomicBool,
}

pub struct SmtpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl SmtpSink {
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = session(stream, &s);
                });
            }
        });
        Ok(Self { addr, shared })
    }

    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.shared.mails.lock().clone()
    }
}

fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    if shared.down.load(Ordering::SeqCst) {
        out.write_all(b"421 sink down for maintenance\r\n")?;
        return Ok(());
    }
    out.write_all(b"220 sink ESMTP\r\n")?;
    let mut input = BufReader::new(stream);
    let mut mail = Mail {
        from: String::new(),
        to: Vec::new(),
        data: String::new(),
        auth: None,
        received: std::time::Instant::now(),
    };
    let mut auth = None;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            out.write_all(b"250-sink\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n")?;
        } else if upper.starts_with("AUTH") {
            auth = Some(cmd.clone());
            out.write_all(b"235 ok\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = cmd[10..]
                .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                .into();
            out.write_all(b"250 ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(
                cmd[8..]
                    .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                    .into(),
            );
            out.write_all(b"250 ok\r\n")?;
        } else if upper == "DATA" {
            out.write_all(b"354 go ahead\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if input.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mail.data = data;
            mail.auth = auth.clone();
            mail.received = std::time::Instant::now();
            shared.mails.lock().push(mail.clone());
            mail.to.clear();
            out.write_all(b"250 queued\r\n")?;
        } else if upper == "RSET" || upper == "NOOP" {
            mail.to.clear();
            out.write_all(b"250 ok\r\n")?;
        } else if upper == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"502 not implemented\r\n")?;
        }
    }
}

/// One request the webhook receiver accepted (or refused while down).
#[derive(Debug, Clone)]
pub struct Hook {
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether it was answered 200.
    pub accepted: bool,
}

impl Hook {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

pub struct WebhookReceiver {
    pub addr: SocketAddr,
    hooks: Arc<Mutex<Vec<Hook>>>,
    down: Arc<AtomicBool>,
}

impl WebhookReceiver {
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let hooks: Arc<Mutex<Vec<Hook>>> = Arc::default();
        let down: Arc<AtomicBool> = Arc::default();
        let (h, d) = (hooks.clone(), down.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (h, d) = (h.clone(), d.clone());
                std::thread::spawn(move || {
                    let _ = request(stream, &h, &d);
                });
            }
        });
        Ok(Self { addr, hooks, down })
    }

    pub fn url(&self) -> String {
        format!("http://{}/sms", self.addr)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The accepted requests.
    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks
            .lock()
            .iter()
            .filter(|h| h.accepted)
            .cloned()
            .collect()
    }
}

fn request(stream: TcpStream, hooks: &Mutex<Vec<Hook>>, down: &AtomicBool) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let mut line = String::new();
    input.read_line(&mut line)?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    input.read_exact(&mut body)?;
    let accepted = !down.load(Ordering::SeqCst);
    hooks.lock().push(Hook {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        accepted,
    });
    let status = if accepted {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    out.write_all(
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}
