//! Operational endpoints, outside the stream root: `/healthz` (the process
//! answers), `/readyz` (storage is open and committing, and the server is
//! not shutting down) and `/metrics` (Prometheus / OpenMetrics text; needs an
//! `admin` token for the prefix `""` when auth is on).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ds_core::Refusal;

use crate::auth::Permission;
use crate::gate::Ops;
use crate::metrics::gauge_value;

/// `GET /healthz`: 200 while the process serves requests.
pub async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n")
}

/// `GET /readyz`: 200 when the storage is open and the last group commit
/// succeeded and the server is not shutting down; 503 otherwise.
pub async fn readyz(State(ops): State<Arc<Ops>>) -> Response {
    if *ops.driver.shutdown_signal().borrow() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    if !ops.commits_ok() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage is failing: the last commit did not succeed\n",
        );
    }
    text(StatusCode::OK, "ready\n")
}

/// `GET /metrics`: every `ds_*` series.
pub async fn metrics(State(ops): State<Arc<Ops>>, req: Request) -> Response {
    if ops.auth_enabled() {
        if let Err(refusal) = ops.authorize(&req, "", Permission::Admin) {
            let reason = match refusal {
                Refusal::Forbidden { .. } => "forbidden",
                _ => "unauthenticated",
            };
            ops.metrics.reject(reason);
            return ops.refuse(&req, refusal);
        }
    }
    let (streams, bytes, wakes) = ops.driver.with_engine(|e, _| {
        (
            e.stream_count() as u64,
            e.stored_bytes(),
            e.subscription_wakes(),
        )
    });
    // The engine counts wakes (webhook and pull-wake); the counter follows it.
    let seen = ops.metrics.subscription_wakes.get();
    ops.metrics
        .subscription_wakes
        .inc_by(wakes.saturating_sub(seen));
    let direct = ops.driver.waiters.direct_events();
    let seen = ops.metrics.sse_direct_events.get();
    ops.metrics
        .sse_direct_events
        .inc_by(direct.saturating_sub(seen));
    ops.metrics.streams.set(gauge_value(streams));
    ops.metrics.stored_bytes.set(gauge_value(bytes));
    ops.metrics
        .writes_in_flight
        .set(gauge_value(ops.writes_in_flight()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.metrics.encode(),
    )
        .into_response()
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
