//! The Redis peer: stock as one integer key per SKU, a hold as a Lua check-and-DECRBY
//! (atomic on Redis's single thread). Durability is the server's `appendfsync` setting
//! (`always` or `everysec`), which the summary reports.
//!
//! A minimal RESP2 client (no crate needed for four commands): each connection pipelines its
//! commands — a writer task sends whatever is queued in one write, a reader task matches
//! replies to requests in order — as the `redis` crate's multiplexed connection does.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tonic::Code;

use crate::Error;
use crate::expect::Level;
use crate::limits;
use crate::names::Names;

/// KEYS[1] = the SKU's stock, ARGV[1] = units. -1: short of stock; -2: no such SKU.
const HOLD_SCRIPT: &str = "local s = redis.call('GET', KEYS[1]) \
if not s then return -2 end \
local q = tonumber(ARGV[1]) \
if tonumber(s) < q then return -1 end \
return redis.call('DECRBY', KEYS[1], q)";

#[derive(Debug)]
pub enum Reply {
    Status,
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

/// Where a reply goes: the task that sent the command.
type ReplyTo = oneshot::Sender<Result<Reply, String>>;
type Pending = Arc<Mutex<VecDeque<ReplyTo>>>;

struct Conn {
    tx: mpsc::Sender<(Vec<u8>, ReplyTo)>,
}

pub struct Redis {
    conns: Vec<Conn>,
    script_sha: String,
    /// The server's `appendfsync` (always / everysec / no) as it answered `CONFIG GET`.
    pub appendfsync: String,
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_line(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Result<String, String> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(limits::REDIS_LINE_BYTES_MAX as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return Err("connection closed or reply line too long".into());
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|e| e.to_string())
}

async fn read_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Result<Reply, String> {
    // Arrays nest (MGET's is one level); an explicit stack keeps the recursion out of async.
    let mut stack: Vec<(usize, Vec<Reply>)> = Vec::new();
    loop {
        let line = read_line(r).await?;
        let (kind, rest) = line.split_at(1.min(line.len()));
        let int = || {
            rest.parse::<i64>()
                .map_err(|e| format!("bad reply {line:?}: {e}"))
        };
        let reply = match kind {
            "+" => Reply::Status,
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(int()?),
            "$" => match int()? {
                n if n < 0 => Reply::Bulk(None),
                n if n as usize > limits::REDIS_BULK_BYTES_MAX => {
                    return Err(format!("bulk reply of {n} bytes"));
                }
                n => {
                    let mut buf = vec![0; n as usize + 2];
                    r.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(buf))
                }
            },
            "*" => {
                let n = int()?.max(0) as usize;
                if n > limits::REDIS_READ_BACK_KEYS {
                    return Err(format!("array reply of {n} items"));
                }
                if n > 0 {
                    stack.push((n, Vec::with_capacity(n)));
                    continue;
                }
                Reply::Array(Vec::new())
            }
            _ => return Err(format!("bad reply {line:?}")),
        };
        let mut reply = reply;
        loop {
            match stack.last_mut() {
                None => return Ok(reply),
                Some((n, items)) => {
                    items.push(reply);
                    if items.len() < *n {
                        break;
                    }
                    let (_, items) = stack.pop().unwrap_or_default();
                    reply = Reply::Array(items);
                }
            }
        }
    }
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, Error> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::new(format!("--redis {addr}: {e}")))?;
        stream.set_nodelay(true).ok();
        let (read, mut write) = stream.into_split();
        let pending: Pending = Arc::default();
        let (tx, mut rx) = mpsc::channel::<(Vec<u8>, ReplyTo)>(limits::REDIS_QUEUE_DEPTH);
        let pending_w = pending.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some((cmd, reply)) = rx.recv().await {
                buf.clear();
                buf.extend_from_slice(&cmd);
                let mut waiting = vec![reply];
                while let Ok((cmd, reply)) = rx.try_recv() {
                    buf.extend_from_slice(&cmd);
                    waiting.push(reply);
                }
                pending_w
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(waiting);
                if write.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut r = BufReader::new(read);
            loop {
                let reply = read_reply(&mut r).await;
                let failed = reply.is_err();
                let next = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                if let Some(tx) = next {
                    let _ = tx.send(reply);
                }
                if failed {
                    // Fail everyone still waiting: the connection is gone.
                    let rest: Vec<_> = pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .drain(..)
                        .collect();
                    for tx in rest {
                        let _ = tx.send(Err("connection lost".into()));
                    }
                    break;
                }
            }
        });
        Ok(Conn { tx })
    }

    async fn call(&self, args: &[&[u8]]) -> Result<Reply, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((encode(args), tx))
            .await
            .map_err(|_| "connection closed".to_string())?;
        rx.await.map_err(|_| "connection closed".to_string())?
    }
}

impl Redis {
    pub async fn connect(addr: &str, connections: usize) -> Result<Redis, Error> {
        let mut conns = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            conns.push(Conn::open(addr).await?);
        }
        let sha = match conns[0]
            .call(&[b"SCRIPT", b"LOAD", HOLD_SCRIPT.as_bytes()])
            .await
        {
            Ok(Reply::Bulk(Some(sha))) => String::from_utf8_lossy(&sha).into_owned(),
            other => return Err(Error::new(format!("redis SCRIPT LOAD: {other:?}"))),
        };
        let appendfsync = match conns[0].call(&[b"CONFIG", b"GET", b"appendfsync"]).await {
            Ok(Reply::Array(items)) => match items.get(1) {
                Some(Reply::Bulk(Some(v))) => String::from_utf8_lossy(v).into_owned(),
                _ => "unknown".into(),
            },
            _ => "unknown".into(),
        };
        let appendonly = match conns[0].call(&[b"CONFIG", b"GET", b"appendonly"]).await {
            Ok(Reply::Array(items)) => {
                matches!(items.get(1), Some(Reply::Bulk(Some(v))) if v == b"yes")
            }
            _ => false,
        };
        Ok(Redis {
            conns,
            script_sha: sha,
            appendfsync: if appendonly {
                appendfsync
            } else {
                "off (appendonly no)".into()
            },
        })
    }

    fn conn(&self, i: u64) -> &Conn {
        &self.conns[(i % self.conns.len() as u64) as usize]
    }

    pub async fn setup(&self, names: &Names, skus: usize, stock: u32) -> Result<(), Error> {
        let stock = stock.to_string();
        for (n, chunk) in (0..skus)
            .collect::<Vec<_>>()
            .chunks(limits::REDIS_READ_BACK_KEYS)
            .enumerate()
        {
            let keys: Vec<String> = chunk.iter().map(|&i| names.sku(i)).collect();
            let mut args: Vec<&[u8]> = vec![b"MSET"];
            for k in &keys {
                args.push(k.as_bytes());
                args.push(stock.as_bytes());
            }
            match self.conn(n as u64).call(&args).await {
                Ok(Reply::Status) => {}
                Ok(Reply::Error(e)) => return Err(Error::new(format!("redis MSET: {e}"))),
                other => return Err(Error::new(format!("redis MSET: {other:?}"))),
            }
        }
        Ok(())
    }

    /// One hold of one unit of `sku` through the script.
    pub async fn hold(&self, names: &Names, id: u64, sku: usize) -> Result<(), Code> {
        let key = names.sku(sku);
        let args: [&[u8]; 5] = [
            b"EVALSHA",
            self.script_sha.as_bytes(),
            b"1",
            key.as_bytes(),
            b"1",
        ];
        match self.conn(id).call(&args).await {
            Ok(Reply::Int(n)) if n >= 0 => Ok(()),
            Ok(Reply::Int(-1)) => Err(Code::FailedPrecondition),
            Ok(Reply::Int(_)) => Err(Code::NotFound),
            // An error reply (e.g. MISCONF: the AOF cannot be written) may follow a write.
            Ok(_) => Err(Code::Internal),
            Err(_) => Err(Code::Unavailable),
        }
    }

    pub async fn read_back(&self, names: &Names, skus: usize) -> Result<Vec<Option<Level>>, Error> {
        let mut out = Vec::with_capacity(skus);
        for chunk in (0..skus)
            .collect::<Vec<_>>()
            .chunks(limits::REDIS_READ_BACK_KEYS)
        {
            let keys: Vec<String> = chunk.iter().map(|&i| names.sku(i)).collect();
            let mut args: Vec<&[u8]> = vec![b"MGET"];
            args.extend(keys.iter().map(|k| k.as_bytes()));
            let Ok(Reply::Array(values)) = self.conn(0).call(&args).await else {
                return Err(Error::new("redis MGET failed"));
            };
            out.extend(values.into_iter().map(|v| {
                match v {
                    Reply::Bulk(Some(b)) => std::str::from_utf8(&b)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .map(|on_hand| Level {
                            on_hand,
                            reserved: 0,
                        }),
                    _ => None,
                }
            }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&[b"GET", b"k1"]),
            b"*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n".to_vec()
        );
    }
}
