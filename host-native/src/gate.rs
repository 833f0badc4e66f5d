//! The operational layer in front of the stream routes: request ids,
//! per-request debug logs, metrics, the per-client rate limit,
//! authentication, live-reader limits and write shedding. Refusals are
//! answered through the core's error table ([`ds_core::Engine::reject`]), so
//! they are problem+json with the same CORS and security headers as every
//! other answer.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use ds_core::{Method, ProtocolError, Refusal};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tracing::Instrument;

use crate::auth::{self, Auth, Permission};
use crate::config::{ConfigError, Settings};
use crate::driver::Driver;
use crate::limits::{LiveReaders, LiveRefusal, RateLimiter, WriteGate};
use crate::metrics::Metrics;

/// Shared state of the operational layer.
pub struct Ops {
    /// The engine driver.
    pub driver: Arc<Driver>,
    /// Every metric series.
    pub metrics: Arc<Metrics>,
    auth: Option<Auth>,
    rate: Option<RateLimiter>,
    live: Arc<LiveReaders>,
    writes: Arc<WriteGate>,
    retry_after: u64,
    max_header_bytes: u64,
    root: String,
    request_prefix: u32,
    next_request: AtomicU64,
    /// False after a group commit failed, until one succeeds (`/readyz`).
    commits_ok: Arc<AtomicBool>,
}

impl Ops {
    /// Builds the layer for `settings` over `driver`, and hooks the group
    /// committer into the metrics.
    pub fn new(driver: Arc<Driver>, settings: &Settings) -> Result<Arc<Ops>, ConfigError> {
        let metrics = Arc::new(Metrics::new());
        let commits_ok = Arc::new(AtomicBool::new(true));
        {
            let (metrics, ok) = (Arc::clone(&metrics), Arc::clone(&commits_ok));
            driver.observe_commits(Box::new(move |writes, took, success| {
                metrics.observe_commit(writes, took, success);
                ok.store(success, Ordering::Release);
            }));
        }
        let l = &settings.limits;
        let root = driver.with_engine(|e, _| e.config().stream_root.clone());
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().rotate_left(16);
        Ok(Arc::new(Ops {
            auth: Auth::from_settings(&settings.auth)?,
            rate: (l.rate_limit_per_second > 0)
                .then(|| RateLimiter::new(l.rate_limit_per_second, l.rate_limit_burst)),
            live: LiveReaders::new(l, Arc::clone(&metrics)),
            writes: WriteGate::new(l.max_pending_writes),
            retry_after: l.retry_after_secs.max(1),
            max_header_bytes: l.max_header_bytes,
            root,
            request_prefix: seed,
            next_request: AtomicU64::new(1),
            commits_ok,
            driver,
            metrics,
        }))
    }

    /// True when `path` is under the stream root (the gate's business).
    pub fn owns(&self, path: &str) -> bool {
        path.starts_with(self.root.as_str())
    }

    /// True when requests are rate-limited per client address, so a
    /// request needs its `ConnectInfo` (an extension costs three
    /// allocations per request, which the stream path skips otherwise).
    pub fn limits_rate(&self) -> bool {
        self.rate.is_some()
    }

    /// Writes received and not yet answered.
    pub fn writes_in_flight(&self) -> u64 {
        self.writes.in_flight()
    }

    /// True when auth is configured.
    pub fn auth_enabled(&self) -> bool {
        self.auth.is_some()
    }

    /// True while the last group commit succeeded.
    pub fn commits_ok(&self) -> bool {
        self.commits_ok.load(Ordering::Acquire)
    }

    /// Answers `req` with `refusal` through the core's error table.
    pub fn refuse(&self, req: &Request, refusal: Refusal) -> Response {
        let mut head =
            ds_core::Request::new(Method::from_name(req.method().as_str()), req.uri().path());
        head.headers = req
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let res = self
            .driver
            .with_engine(|e, _| e.reject(&head, ProtocolError::Refused(refusal)));
        let mut out = Response::new(Body::from(res.body_bytes().into_owned()));
        *out.status_mut() =
            StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in &res.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.headers_mut().append(*name, v);
            }
        }
        out
    }

    /// Checks the bearer token of `req` for `needed` on the root-relative
    /// `rel` path (and, for a fork, `read` on its source).
    pub fn authorize(&self, req: &Request, rel: &str, needed: Permission) -> Result<(), Refusal> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let grants = auth
            .authenticate(header)
            .map_err(|f| Refusal::Unauthenticated {
                reason: f.reason,
                token_sent: f.token_sent,
            })?;
        let forbidden = |p: Permission| Refusal::Forbidden { needed: p.name() };
        if auth::has_dot_segment(rel) || !grants.allow(needed, rel) {
            return Err(forbidden(needed));
        }
        if req.method() == axum::http::Method::PUT {
            if let Some(source) = req
                .headers()
                .get("stream-forked-from")
                .and_then(|v| v.to_str().ok())
            {
                match auth::fork_source(&self.root, source) {
                    Some(s) if !auth::has_dot_segment(&s) && grants.allow(Permission::Read, &s) => {
                    }
                    _ => return Err(forbidden(Permission::Read)),
                }
            }
        }
        Ok(())
    }

    /// The client's `x-request-id` when it is sane, else a new one
    /// (`{prefix:08x}-{counter}`), formatted without a heap string.
    fn request_id(&self, req: &Request) -> HeaderValue {
        let given = req.headers().get(&X_REQUEST_ID).filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
        });
        if let Some(id) = given {
            return id.clone();
        }
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        let id = format_request_id(self.request_prefix, n);
        HeaderValue::from_maybe_shared(bytes::Bytes::from(id))
            .expect("hex digits, a dash and digits")
    }
}

/// The response header carrying the request id (a name from text would be
/// copied into a new buffer for every response).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `{prefix:08x}-{n}`, written digit by digit (every response carries one).
fn format_request_id(prefix: u32, n: u64) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(29);
    out.extend((0..8).map(|i| HEX[((prefix >> (28 - 4 * i)) & 0xf) as usize]));
    out.push(b'-');
    ds_core::offset::push_decimal(&mut out, n);
    out
}

/// The full application: the stream routes behind the operational layer,
/// plus `/healthz`, `/readyz` and `/metrics` (outside the stream root).
pub fn operated_app(ops: Arc<Ops>) -> Router {
    let streams = crate::app(Arc::clone(&ops.driver));
    Router::new()
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
        .route("/metrics", get(crate::health::metrics))
        .with_state(Arc::clone(&ops))
        .merge(streams)
        .layer(axum::middleware::from_fn_with_state(ops, gate))
}

/// What a request does, for metrics and limits.
fn operation(req: &Request, rel: &str) -> &'static str {
    if rel.starts_with("__ds/") {
        return "subscription";
    }
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    match req.method().as_str() {
        "PUT" if header("stream-forked-from").is_some() => "fork",
        "PUT" => "create",
        "POST"
            if header("content-length") == Some("0")
                && header("stream-closed").is_some_and(|v| v.eq_ignore_ascii_case("true")) =>
        {
            "close"
        }
        "POST" => "append",
        "DELETE" => "delete",
        "HEAD" => "head",
        "OPTIONS" => "options",
        "GET" => {
            let query = req.uri().query().unwrap_or("");
            if query.split('&').any(|p| p == "live=long-poll") {
                "long_poll"
            } else if query.split('&').any(|p| p == "live=sse") {
                "sse"
            } else {
                "read"
            }
        }
        _ => "other",
    }
}

/// The middleware (requests that reach the router): see [`gated`].
async fn gate(State(ops): State<Arc<Ops>>, req: Request, next: Next) -> Response {
    if !ops.owns(req.uri().path()) {
        return next.run(req).await;
    }
    gated(ops, req, |req| next.run(req)).await
}

/// A request under the stream root, straight to the checks and the stream
/// handler: what the server's connections call, without the router's
/// matching and middleware boxing on every append (see `server.rs`).
pub async fn serve_stream(ops: Arc<Ops>, req: Request, writer: crate::driver::Writer) -> Response {
    let driver = Arc::clone(&ops.driver);
    gated(ops, req, |req| crate::http::respond(driver, req, writer)).await
}

/// Request id, debug log, metrics, then [`admit`]'s checks and `run`.
/// `req` is under the stream root ([`Ops::owns`]).
async fn gated<F: std::future::Future<Output = Response>>(
    ops: Arc<Ops>,
    req: Request,
    run: impl FnOnce(Request) -> F,
) -> Response {
    let rel = &req.uri().path()[ops.root.len()..];
    let operation = operation(&req, rel);
    let id = ops.request_id(&req);
    // The span and the log line cost allocations: only when they are wanted.
    let debug = tracing::enabled!(tracing::Level::DEBUG);
    let logged = debug.then(|| (req.method().clone(), req.uri().path().to_string()));
    let span = debug.then(|| tracing::debug_span!("request", id = id.to_str().unwrap_or("")));
    let handled = async move {
        let started = Instant::now();
        let mut res = admit(&ops, req, operation, run).await;
        let status = res.status().as_u16();
        ops.metrics
            .answered(operation, status, started.elapsed().as_secs_f64());
        res.headers_mut().insert(X_REQUEST_ID, id);
        if let Some((method, path)) = logged {
            tracing::debug!(
                %method,
                path,
                status,
                ms = started.elapsed().as_millis() as u64,
                "request"
            );
        }
        res
    };
    match span {
        Some(span) => handled.instrument(span).await,
        None => handled.await,
    }
}

/// Runs the checks, then the handler (unless a check refuses).
async fn admit<F: std::future::Future<Output = Response>>(
    ops: &Arc<Ops>,
    req: Request,
    operation: &'static str,
    run: impl FnOnce(Request) -> F,
) -> Response {
    // The path below the stream root (the gate checked the prefix).
    let rel = &req.uri().path()[ops.root.len()..];
    let refuse = |req: &Request, reason: &'static str, r: Refusal| {
        ops.metrics.reject(reason);
        ops.refuse(req, r)
    };
    let retry_after_secs = ops.retry_after;
    let head_bytes: u64 = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().len() + v.len() + 4) as u64)
        .sum();
    if head_bytes > ops.max_header_bytes {
        let limit = ops.max_header_bytes;
        return refuse(
            &req,
            "headers_too_large",
            Refusal::HeadersTooLarge { limit },
        );
    }
    if let Some(rate) = &ops.rate {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(Err(wait)) = peer.map(|ip| rate.check(ip, Instant::now())) {
            let retry_after_secs = wait.max(retry_after_secs);
            return refuse(
                &req,
                "rate_limited",
                Refusal::RateLimited { retry_after_secs },
            );
        }
    }
    if let Some(needed) = auth::needed(req.method().as_str()) {
        if !auth::carries_own_token(rel) {
            if let Err(r) = ops.authorize(&req, rel, needed) {
                let reason = match r {
                    Refusal::Forbidden { .. } => "forbidden",
                    _ => "unauthenticated",
                };
                return refuse(&req, reason, r);
            }
        }
    }
    let live = match operation {
        "long_poll" | "sse" => match ops.live.admit(req.uri().path(), operation) {
            Ok(guard) => Some(guard),
            Err(LiveRefusal::Total) => {
                return refuse(
                    &req,
                    "live_readers",
                    Refusal::LiveReadersBusy { retry_after_secs },
                )
            }
            Err(LiveRefusal::Stream) => {
                return refuse(
                    &req,
                    "stream_readers",
                    Refusal::StreamReadersBusy { retry_after_secs },
                )
            }
        },
        _ => None,
    };
    let is_write = matches!(req.method().as_str(), "PUT" | "POST" | "DELETE");
    let write = match is_write.then(|| ops.writes.admit()) {
        Some(None) => {
            return refuse(
                &req,
                "write_queue_full",
                Refusal::WriteQueueFull { retry_after_secs },
            )
        }
        Some(Some(guard)) => Some(guard),
        None => None,
    };
    // Append bytes: the declared length, or (chunked uploads) counted.
    let declared = (operation == "append")
        .then(|| {
            req.headers()
                .get("content-length")?
                .to_str()
                .ok()?
                .parse::<u64>()
                .ok()
        })
        .flatten();
    // Only a body of undeclared length is counted (an allocation saved on
    // every other request).
    let counted =
        (operation == "append" && declared.is_none()).then(|| Arc::new(AtomicU64::new(0)));
    let req = match &counted {
        Some(counted) => {
            let (parts, body) = req.into_parts();
            let body = Body::new(Counted {
                inner: body,
                seen: Arc::clone(counted),
            });
            Request::from_parts(parts, body)
        }
        None => req,
    };
    let res = run(req).await;
    drop(write);
    if operation == "append" && res.status().is_success() {
        ops.metrics.appends.inc();
        ops.metrics
            .append_bytes
            .inc_by(declared.unwrap_or_else(|| counted.map_or(0, |c| c.load(Ordering::Relaxed))));
    }
    match live {
        Some(guard) => {
            let (parts, body) = res.into_parts();
            Response::from_parts(
                parts,
                Body::new(Guarded {
                    inner: body,
                    _guard: guard,
                }),
            )
        }
        None => res,
    }
}

/// A request body that counts the bytes read from it.
struct Counted {
    inner: Body,
    seen: Arc<AtomicU64>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(data) = frame.data_ref() {
                self.seen.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds a live-reader slot until it is dropped (the
/// SSE stream ends or the client goes away).
struct Guarded<G> {
    inner: Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> HttpBody for Guarded<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::format_request_id;

    #[test]
    fn request_ids_are_hex_prefix_dash_decimal_counter() {
        for (prefix, n) in [
            (0u32, 0u64),
            (0xdead_beef, 7),
            (0x1f, 1234567890),
            (u32::MAX, u64::MAX),
        ] {
            let id = format_request_id(prefix, n);
            assert_eq!(id, format!("{prefix:08x}-{n}").as_bytes());
        }
    }
}
