//! The accept loop's stream of connections, with the connection limit: each connection holds
//! a slot until it closes; beyond `max_connections` a few are kept just long enough to answer
//! `RESOURCE_EXHAUSTED` (see [`crate::limits::MAX_CONNECTIONS_DEFAULT`]), the rest are closed.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::Connected;

use crate::limits;
use crate::metrics::Metrics;

/// What the gate learns about a call's connection (a request extension).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// Set on a connection beyond the limit: the limit, for the error message.
    pub over_limit: Option<usize>,
}

struct Slot {
    counter: Arc<AtomicUsize>,
    metrics: Option<Arc<Metrics>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
        if let Some(m) = &self.metrics {
            m.connections_open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One accepted connection.
pub struct Conn {
    stream: TcpStream,
    info: ConnInfo,
    _slot: Slot,
    /// Over-limit connections read EOF once this fires, which closes them.
    linger: Option<Pin<Box<Sleep>>>,
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(linger) = self.linger.as_mut()
            && linger.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The listener as a stream of connections, counting them against `max_connections`.
pub fn incoming(
    listener: TcpListener,
    max_connections: usize,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = Result<Conn, std::io::Error>> {
    let open = Arc::new(AtomicUsize::new(0));
    let overflow = Arc::new(AtomicUsize::new(0));
    TcpListenerStream::new(listener).filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        let remote = stream.peer_addr().ok();
        if open.fetch_add(1, Ordering::AcqRel) < max_connections {
            metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            return Some(Ok(Conn {
                stream,
                info: ConnInfo {
                    remote,
                    over_limit: None,
                },
                _slot: Slot {
                    counter: open.clone(),
                    metrics: Some(metrics.clone()),
                },
                linger: None,
            }));
        }
        open.fetch_sub(1, Ordering::AcqRel);
        metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
        if overflow.fetch_add(1, Ordering::AcqRel) >= limits::OVERFLOW_CONNECTIONS_MAX {
            overflow.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("connection from {remote:?} closed: limits.max_connections = {max_connections} reached");
            return None;
        }
        tracing::warn!(
            "connection from {remote:?} over limits.max_connections = {max_connections}: answering RESOURCE_EXHAUSTED"
        );
        Some(Ok(Conn {
            stream,
            info: ConnInfo {
                remote,
                over_limit: Some(max_connections),
            },
            _slot: Slot {
                counter: overflow.clone(),
                metrics: None,
            },
            linger: Some(Box::pin(tokio::time::sleep(Duration::from_millis(limits::OVERFLOW_LINGER_MILLIS)))),
        }))
    })
}
