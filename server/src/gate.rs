//! The one tower layer every RPC passes through, in this order:
//! 1. connection limit: a call on an over-limit connection → `RESOURCE_EXHAUSTED`;
//! 2. auth: token → role, role × RPC matrix (health and reflection need no token);
//! 3. the request timeout → `DEADLINE_EXCEEDED`;
//! 4. remapping the transport's own code for an oversized message (tonic says `OUT_OF_RANGE`)
//!    to `RESOURCE_EXHAUSTED`, naming the limit;
//! 5. metrics: the final status code (from the headers, or the trailers at the end of the
//!    body) and the latency, by RPC.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::TlsConnectInfo;

use crate::auth::Auth;
use crate::metrics::{Metrics, RpcId};
use crate::net::ConnInfo;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

pub struct GateConfig {
    pub auth: Auth,
    pub metrics: Arc<Metrics>,
    pub max_message_bytes: usize,
    pub request_timeout: Duration,
}

#[derive(Clone)]
pub struct GateLayer {
    config: Arc<GateConfig>,
}

impl GateLayer {
    pub fn new(config: GateConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            config: self.config.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    config: Arc<GateConfig>,
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
fn split_path(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')?.split_once('/')
}

fn conn_info<B>(req: &Request<B>) -> Option<&ConnInfo> {
    req.extensions().get::<ConnInfo>().or_else(|| {
        req.extensions()
            .get::<TlsConnectInfo<ConnInfo>>()
            .map(|t| t.get_ref())
    })
}

/// The gRPC status code of a response whose status is in its headers (trailers-only replies).
fn header_code(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

impl<S> tower::Service<Request<Body>> for Gate<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let start = Instant::now();
        let rpc = config.metrics.rpc(req.uri().path());
        let reject = |status: Status| -> Self::Future {
            let response = status.into_http::<Body>();
            let code = header_code(response.headers()).unwrap_or(2);
            config.metrics.record(rpc, code, start.elapsed());
            Box::pin(async move { Ok(response) })
        };

        let path = req.uri().path().to_string();
        let (service, method) = split_path(&path).unwrap_or(("", ""));
        let open = service.starts_with("grpc.health.") || service.starts_with("grpc.reflection.");
        if !open && let Some(limit) = conn_info(&req).and_then(|c| c.over_limit) {
            return reject(Status::resource_exhausted(format!(
                "connection limit reached: limits.max_connections = {limit}; retry later"
            )));
        }
        if !open {
            let short = service.rsplit('.').next().unwrap_or(service);
            let authorization = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            match config.auth.check(authorization, short, method) {
                Ok(caller) => {
                    req.extensions_mut().insert(caller);
                }
                Err(status) => return reject(status),
            }
        }

        Box::pin(async move {
            let timeout = config.request_timeout;
            let response = match tokio::time::timeout(timeout, inner.call(req)).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    let e: BoxError = e.into();
                    let response =
                        Status::internal(format!("internal error: {e}")).into_http::<Body>();
                    config.metrics.record(rpc, 13, start.elapsed());
                    return Ok(response);
                }
                Err(_) => {
                    let response = Status::deadline_exceeded(format!(
                        "request exceeded the server's limits.request_timeout_seconds = {}",
                        timeout.as_secs()
                    ))
                    .into_http::<Body>();
                    config.metrics.record(rpc, 4, start.elapsed());
                    return Ok(response);
                }
            };
            let (mut parts, body) = response.into_parts();
            let code = header_code(&parts.headers);
            let code = match code {
                Some(11) if is_oversize(&parts.headers) => {
                    let status = Status::resource_exhausted(format!(
                        "message larger than the maximum of {} bytes (limits.max_message_bytes): {}",
                        config.max_message_bytes,
                        grpc_message(&parts.headers)
                    ));
                    let replacement = status.into_http::<Body>();
                    parts.headers = replacement.headers().clone();
                    Some(8)
                }
                other => other,
            };
            let body = Metered {
                inner: body,
                metrics: config.metrics.clone(),
                rpc,
                start,
                code,
                recorded: false,
            };
            Ok(Response::from_parts(parts, Body::new(body)))
        })
    }
}

fn grpc_message(headers: &HeaderMap) -> String {
    headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default()
}

fn is_oversize(headers: &HeaderMap) -> bool {
    grpc_message(headers).contains("message length too large")
}

/// grpc-message is percent-encoded (the gRPC spec); enough decoding for a message text.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reply body, recording the call's status code and latency when the reply ends.
struct Metered {
    inner: Body,
    metrics: Arc<Metrics>,
    rpc: RpcId,
    start: Instant,
    code: Option<i32>,
    recorded: bool,
}

impl Metered {
    fn record(&mut self, code: i32) {
        if !self.recorded {
            self.recorded = true;
            self.metrics.record(self.rpc, code, self.start.elapsed());
        }
    }
}

impl http_body::Body for Metered {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(header_code) {
                    this.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.record(2),
            Poll::Ready(None) => {
                let code = this.code.unwrap_or(2);
                this.record(code);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // A trailers-only reply may never be polled; otherwise the client went away (CANCELLED).
        let code = self.code.unwrap_or(1);
        self.record(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%3A"), "a b:");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn paths() {
        assert_eq!(
            split_path("/inventory.v1.Inventory/Reserve"),
            Some(("inventory.v1.Inventory", "Reserve"))
        );
        assert_eq!(split_path("nope"), None);
    }
}
