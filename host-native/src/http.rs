//! The one place where axum and the core meet: request → core request,
//! core outcome → axum response (long-poll parking and SSE bodies included).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::extract::{Request as AxumRequest, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response as AxumResponse;
use bytes::Bytes;
use ds_core::{Body, Method, Outcome, ProtocolError, Request, Response, SseSession};
use tokio::time::{Instant, Sleep};

use crate::driver::{Driver, Handled, Writer};
use crate::live_socket::LiveSocket;
use crate::waiters::{Follower, Watch};

/// Handles every request under the stream root (the router's handler: its
/// requests come from an unknown [`Writer`]).
pub async fn stream_handler(State(driver): State<Arc<Driver>>, req: AxumRequest) -> AxumResponse {
    respond(driver, req, Writer(0)).await
}

/// Handles a request under the stream root sent by `writer`.
pub async fn respond(driver: Arc<Driver>, req: AxumRequest, writer: Writer) -> AxumResponse {
    let (parts, body) = req.into_parts();
    // Present on HTTP/1.1 SSE reads over plain TCP (the connection's service
    // decides: `server::Connection`).
    let socket = parts.extensions.get::<Arc<LiveSocket>>().cloned();
    let mut core = Request::new(Method::from_name(parts.method.as_str()), parts.uri.path());
    core.query = parts.uri.query().unwrap_or("").to_string();
    core.headers = parts
        .headers
        .iter()
        .filter(|(n, _)| !ds_core::request::UNREAD_HEADERS.contains(&n.as_str()))
        .map(|(n, v)| {
            // Visible ASCII (nearly every value) needs no lossy decoding.
            let value = match v.to_str() {
                Ok(text) => text.to_string(),
                Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            };
            (n.as_str().to_string(), value)
        })
        .collect();
    let limit = driver.max_body_bytes();
    match read_body(body, limit).await {
        Ok(bytes) => core.body = bytes,
        Err(()) => {
            let res = driver
                .with_engine(|e, _| e.reject(&core, ProtocolError::PayloadTooLarge { limit }));
            return to_axum(res, &driver);
        }
    }
    match driver.handle_from(core, writer) {
        Handled::Respond(res) => to_axum_on(res, &driver, socket),
        Handled::Durable(rx) => match rx.await {
            Ok(res) => to_axum(res, &driver),
            // The committer is gone (shutdown): nothing was acknowledged.
            Err(_) => AxumResponse::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(AxumBody::empty())
                .expect("static response"),
        },
        // Boxed: its state would otherwise make every request's future
        // larger (futures are moved, and copied, as they are built up).
        Handled::Wait(lp) => Box::pin(park(driver, lp)).await,
    }
}

/// The request body, or `Err` once it exceeds `limit` bytes or fails to
/// arrive. Frames are copied straight into one buffer sized by the body's
/// declared length (a small append is one frame: one allocation); only
/// [`PRESIZE_MAX`] is reserved before the bytes arrive, so a client that
/// declares a large body and sends nothing holds no large buffer.
async fn read_body(mut body: AxumBody, limit: usize) -> Result<Vec<u8>, ()> {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    let hint = body.size_hint().exact();
    if hint.is_some_and(|n| n > limit as u64) {
        return Err(());
    }
    let presize = hint.map_or(0, |n| n.min(PRESIZE_MAX as u64) as usize);
    let mut out = Vec::with_capacity(presize);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| ())?.into_data() else {
            continue;
        };
        if out.len() + data.len() > limit {
            return Err(());
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// Most bytes [`read_body`] reserves ahead of a body's arrival.
const PRESIZE_MAX: usize = 64 << 10;

/// Answers a long-poll once data arrives, its deadline passes, or the
/// server shuts down.
async fn park(driver: Arc<Driver>, mut lp: ds_core::LongPoll) -> AxumResponse {
    // Only a request that parks subscribes, so writes leave nothing behind in
    // the registry. No append can be missed: each turn of the loop enables
    // its wake-up before the engine looks again.
    let notify = driver.waiters.subscribe(&lp.path);
    let mut shutdown = driver.shutdown_signal();
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Re-check after enabling: an event may have fired in between.
        lp = match driver.with_engine(move |e, now| e.resume(lp, now)) {
            Outcome::Wait(lp) => lp,
            Outcome::Respond(res) => return to_axum(res, &driver),
            Outcome::Pending(_) => unreachable!("reads never stage writes"),
        };
        let wait = lp.deadline.millis_since(driver.clock.now());
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = shutdown.changed() => {
                // Shutting down: answer as if the poll timed out.
                let deadline = lp.deadline;
                return match driver.with_engine(move |e, _| e.resume(lp, deadline)) {
                    Outcome::Respond(res) => to_axum(res, &driver),
                    _ => AxumResponse::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(AxumBody::empty()).expect("static response"),
                };
            }
        }
    }
}

fn to_axum(res: Response, driver: &Arc<Driver>) -> AxumResponse {
    to_axum_on(res, driver, None)
}

/// [`to_axum`], for a request whose connection's `socket` may take an SSE
/// body's events directly.
fn to_axum_on(
    res: Response,
    driver: &Arc<Driver>,
    socket: Option<Arc<LiveSocket>>,
) -> AxumResponse {
    let Response {
        status,
        headers,
        body,
    } = res;
    let body = match body {
        Body::Empty => AxumBody::empty(),
        Body::Full(bytes) => AxumBody::from(bytes),
        Body::Pieces(pieces) => pieces_body(pieces),
        Body::Sse(session) => sse_body(Arc::clone(driver), session, socket),
    };
    let mut out = AxumResponse::new(body);
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = out.headers_mut();
    // Room for the gate's request id too: one allocation, no regrowth.
    map.reserve(headers.len() + 1);
    for (name, value) in headers {
        // Constants (the engine's own literals, all valid header text) are
        // used in place; a String's buffer is taken (no copy).
        let value = match value {
            std::borrow::Cow::Borrowed(s) => Ok(crate::response_head::static_value(s)),
            std::borrow::Cow::Owned(s) => HeaderValue::try_from(s),
        };
        if let Ok(v) = value {
            map.append(crate::response_head::name(name), v);
        }
    }
    out
}

/// A body sent piece by piece, without copying what the store lent: each
/// piece becomes a `Bytes` that keeps its memory alive, and hyper writes
/// them with vectored writes. Deferred parts are read one window at a time,
/// when hyper asks for more (it asks when its write buffer has room): a
/// response holds about one window in memory however long it is. (Reading
/// ahead on another thread was slower: the window read into one core's
/// cache was then copied to the socket from the other.) The exact length
/// is known, so the response carries `Content-Length`.
fn pieces_body(pieces: ds_core::Pieces) -> AxumBody {
    let len = pieces.len() as u64;
    let (ready, later) = pieces.into_parts();
    if ready.len() <= 1 && later.is_empty() {
        let bytes = ready
            .into_iter()
            .next()
            .map_or_else(Bytes::new, |p| Bytes::from_owner(PieceBytes(p)));
        return AxumBody::from(bytes);
    }
    AxumBody::new(PiecesBody {
        left: len,
        ready: ready.into_iter(),
        later: later.into_iter(),
    })
}

/// A lent piece as the owner of a `Bytes`.
struct PieceBytes(ds_core::Piece);

impl AsRef<[u8]> for PieceBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// See [`pieces_body`].
struct PiecesBody {
    left: u64,
    ready: std::vec::IntoIter<ds_core::Piece>,
    later: std::vec::IntoIter<Arc<dyn ds_core::Deferred>>,
}

impl http_body::Body for PiecesBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        loop {
            if let Some(p) = self.ready.next() {
                self.left -= p.bytes().len() as u64;
                let frame = http_body::Frame::data(Bytes::from_owner(PieceBytes(p)));
                return std::task::Poll::Ready(Some(Ok(frame)));
            }
            let Some(part) = self.later.next() else {
                return std::task::Poll::Ready(None);
            };
            // A page-cache read, as the engine's own reads: done in place.
            let mut window = ds_core::Pieces::new();
            if let Err(e) = ds_core::load_exactly(part.as_ref(), &mut window) {
                // The headers are sent: all that is left is to cut the
                // response short, which the client sees as an error.
                tracing::warn!(error = %e, "a read failed mid-response; closing the connection");
                self.later = Vec::new().into_iter();
                return std::task::Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))));
            }
            self.ready = window.into_parts().0.into_iter();
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// A streaming body that drives `session` until the engine ends it, the
/// client goes away (hyper drops the body), or the server shuts down.
///
/// Following the tail, its events mostly do not pass through it: on a plain
/// HTTP/1.1 connection (`socket`), while the body waits at the tail, the
/// fan-out writes each append's event straight into the socket
/// ([`crate::live_socket`]). Otherwise, or when that cannot be done, the
/// body is polled by the connection's own task: an append wakes that task
/// once and its event is written in the same turn (one write per event; no
/// task or channel in between). An append that leaves the session at the
/// tail is sent from the frame the appender made for every follower
/// ([`SseSession::follow`]): the task then touches only its own follower,
/// not the engine or anything its fellow readers share.
fn sse_body(driver: Arc<Driver>, session: SseSession, socket: Option<Arc<LiveSocket>>) -> AxumBody {
    // Registered before the first look, so no append after it is missed.
    let path = session.path.clone();
    let (watch, follower) = driver.waiters.follow(&path, session, socket);
    AxumBody::new(SseBody {
        driver,
        _watch: watch,
        follower,
        look: Look::Now,
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        armed_for: None,
    })
}

/// State of one SSE body between frames (its session is its follower's).
struct SseBody {
    driver: Arc<Driver>,
    /// Keeps the path's entry in the registry.
    _watch: Arc<Watch>,
    follower: Arc<Follower>,
    look: Look,
    /// Fires at the session's next keep-alive or end, or earlier: the body
    /// asks the engine then, and an early look sends nothing. Re-armed only
    /// when that time comes closer or it has fired, so the events in between
    /// (each moves the keep-alive time on) leave the timer alone.
    timer: Pin<Box<Sleep>>,
    /// The time the timer is armed for (and was polled for, so it wakes
    /// this task); `None` once it has fired.
    armed_for: Option<ds_core::UnixMillis>,
}

/// When the body asks for its next bytes.
enum Look {
    /// Now (the first look, or more is ready).
    Now,
    /// When the path advances, or by the armed timer.
    Later,
    /// Never: the engine ended the body.
    Ended,
}

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        // The session advances here only after `disarm` (in `ask_engine` and
        // before `follow`): from then on no event is written straight to the
        // socket (one in progress finishes first), so none overtakes what
        // this poll hands hyper. A poll that only finds nothing new leaves
        // the body open.
        loop {
            let step = match this.look {
                Look::Ended => {
                    this.follower.disarm();
                    return Poll::Ready(None);
                }
                Look::Now => this.ask_engine(),
                Look::Later => {
                    // Shutdown wakes every follower after setting the flag,
                    // and the wake-up is registered before the flag is read.
                    let woken = this.follower.poll_woken(cx.waker());
                    if this.driver.stopping() || this.follower.failed() {
                        this.follower.disarm();
                        return Poll::Ready(None);
                    }
                    if woken {
                        this.follower.disarm();
                        let now = this.driver.clock.now();
                        let follower = &this.follower;
                        let followed = follower.with_frame(|frame| {
                            frame.and_then(|f| follower.session().follow(f, now))
                        });
                        match followed {
                            Some(step) => step,
                            None => this.ask_engine(),
                        }
                    } else {
                        match std::future::Future::poll(this.timer.as_mut(), cx) {
                            Poll::Ready(()) => {
                                this.armed_for = None;
                                this.ask_engine()
                            }
                            Poll::Pending => {
                                // Waiting at the tail: the fan-out may write
                                // here directly once hyper has flushed.
                                this.follower.arm();
                                return Poll::Pending;
                            }
                        }
                    }
                }
            };
            this.look = match step.wake_at {
                Some(at) => this.arm(at, cx),
                None => Look::Ended,
            };
            if !step.bytes.is_empty() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(step.bytes)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.look, Look::Ended)
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        // Hyper may write the connection's next response: no direct writes.
        self.follower.disarm();
    }
}

impl SseBody {
    /// The next step from the engine (under its lock), with direct writes
    /// stopped first (see `poll_frame`).
    fn ask_engine(&mut self) -> ds_core::SseStep {
        self.follower.disarm();
        let mut session = self.follower.session();
        self.driver
            .with_engine(|e, now| e.sse_poll(&mut session, now))
    }

    /// Makes sure the timer fires by `at`: what to do next.
    fn arm(&mut self, at: ds_core::UnixMillis, cx: &mut std::task::Context<'_>) -> Look {
        if self.armed_for.is_some_and(|armed| armed <= at) {
            return Look::Later;
        }
        let now = self.driver.clock.now();
        if at <= now {
            return Look::Now;
        }
        let deadline = Instant::now() + Duration::from_millis(at.millis_since(now));
        self.timer.as_mut().reset(deadline);
        // Polled once, so its firing wakes this task.
        if std::future::Future::poll(self.timer.as_mut(), cx).is_ready() {
            return Look::Now;
        }
        self.armed_for = Some(at);
        Look::Later
    }
}
