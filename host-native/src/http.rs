//! The one place where axum and the core meet: request → core request,
//! core outcome → axum response (long-poll parking and SSE bodies included).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::extract::{Request as AxumRequest, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response as AxumResponse;
use bytes::Bytes;
use ds_core::{Body, Method, Outcome, ProtocolError, Request, Response, SseSession};

use crate::driver::{Driver, Handled};

/// Handles every request under the stream root.
pub async fn stream_handler(State(driver): State<Arc<Driver>>, req: AxumRequest) -> AxumResponse {
    let (parts, body) = req.into_parts();
    let mut core = Request::new(Method::from_name(parts.method.as_str()), parts.uri.path());
    core.query = parts.uri.query().unwrap_or("").to_string();
    core.headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let limit = driver.max_body_bytes();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => core.body = bytes.to_vec(),
        Err(_) => {
            let res = driver
                .with_engine(|e, _| e.reject(&core, ProtocolError::PayloadTooLarge { limit }));
            return to_axum(res, &driver);
        }
    }
    let mut lp = match driver.handle(core) {
        Handled::Respond(res) => return to_axum(res, &driver),
        Handled::Durable(rx) => {
            return match rx.await {
                Ok(res) => to_axum(res, &driver),
                // The committer is gone (shutdown): nothing was acknowledged.
                Err(_) => AxumResponse::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .body(AxumBody::empty())
                    .expect("static response"),
            };
        }
        Handled::Wait(lp) => lp,
    };
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
    let Response {
        status,
        headers,
        body,
    } = res;
    let body = match body {
        Body::Empty => AxumBody::empty(),
        Body::Full(bytes) => AxumBody::from(bytes),
        Body::Sse(session) => sse_body(Arc::clone(driver), session),
    };
    let mut out = AxumResponse::new(body);
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = out.headers_mut();
    for (name, value) in headers {
        // Takes the String's buffer: no copy.
        if let Ok(v) = HeaderValue::try_from(value) {
            map.append(HeaderName::from_static(name), v);
        }
    }
    out
}

/// A streaming body that drives `session` until the engine ends it, the
/// client goes away, or the server shuts down.
fn sse_body(driver: Arc<Driver>, session: SseSession) -> AxumBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        let mut session = session;
        let notify = driver.waiters.subscribe(&session.path);
        let mut shutdown = driver.shutdown_signal();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let step = driver.with_engine(|e, now| e.sse_poll(&mut session, now));
            if !step.bytes.is_empty() && tx.send(Ok(Bytes::from(step.bytes))).await.is_err() {
                return;
            }
            let Some(wake_at) = step.wake_at else { return };
            let wait = wake_at.millis_since(driver.clock.now());
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
            }
        }
    });
    AxumBody::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
