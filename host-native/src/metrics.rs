//! Prometheus metrics (`GET /metrics`, OpenMetrics text). Every series is
//! prefixed `ds_`; see the README's "Operating" section for the list.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// What the request does (`append`, `read`, `sse`, …).
    pub operation: &'static str,
    /// HTTP status code.
    pub status: u16,
}

/// Labels naming an operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// What the request does.
    pub operation: &'static str,
}

/// Labels naming a live-read mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// `long_poll` or `sse`.
    pub mode: &'static str,
}

/// Labels naming why a request was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `rate_limited`, `write_queue_full`, `live_readers`, …
    pub reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every series the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by operation and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to the response head, by operation.
    pub latency: HistogramFamily<OperationLabels>,
    /// Appends acknowledged.
    pub appends: Counter,
    /// Body bytes of appends acknowledged.
    pub append_bytes: Counter,
    /// Writes per group commit.
    pub commit_writes: Histogram,
    /// Duration of each group commit (transactions and fsyncs).
    pub commit_seconds: Histogram,
    /// Group commits that failed.
    pub commit_failures: Counter,
    /// Live reads in progress, by mode.
    pub live_readers: Family<ModeLabels, Gauge>,
    /// Streams held (soft-deleted ones included), read at scrape time.
    pub streams: Gauge,
    /// Data bytes stored, read at scrape time.
    pub stored_bytes: Gauge,
    /// Subscription wake-ups delivered.
    pub subscription_wakes: Counter,
    /// SSE events the fan-out wrote straight into sockets, read at scrape
    /// time (the rest went through their bodies' tasks).
    pub sse_direct_events: Counter,
    /// Requests refused by a limit or by auth, by reason.
    pub rejected: Family<ReasonLabels, Counter>,
    /// Writes received and not yet answered, read at scrape time.
    pub writes_in_flight: Gauge,
    /// Open client connections.
    pub connections: Gauge,
    /// Connections closed at once because `max_connections` were open.
    pub connections_rejected: Counter,
    /// The series of the [`HOT`] label sets, found once: answering then
    /// neither hashes labels nor takes a family's lock (~5% of a small
    /// append's instructions went there).
    hot: [OnceLock<(Counter, Histogram)>; HOT.len()],
}

/// The label sets of most answers (operation, status).
const HOT: [(&str, u16); 8] = [
    ("append", 204),
    ("append", 200),
    ("read", 200),
    ("long_poll", 200),
    ("long_poll", 204),
    ("sse", 200),
    ("head", 200),
    ("create", 201),
];

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~65 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Counts an answered request and the time it took to its head.
    pub fn answered(&self, operation: &'static str, status: u16, seconds: f64) {
        let hot = HOT
            .iter()
            .position(|&(op, st)| st == status && op == operation);
        let series = || {
            (
                self.requests
                    .get_or_create(&RequestLabels { operation, status })
                    .clone(),
                self.latency
                    .get_or_create(&OperationLabels { operation })
                    .clone(),
            )
        };
        match hot {
            Some(i) => {
                let (count, latency) = self.hot[i].get_or_init(series);
                count.inc();
                latency.observe(seconds);
            }
            None => {
                let (count, latency) = series();
                count.inc();
                latency.observe(seconds);
            }
        }
    }

    /// Registers every series.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            appends: Counter::default(),
            append_bytes: Counter::default(),
            commit_writes: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 18)),
            commit_failures: Counter::default(),
            live_readers: Family::default(),
            streams: Gauge::default(),
            stored_bytes: Gauge::default(),
            subscription_wakes: Counter::default(),
            sse_direct_events: Counter::default(),
            rejected: Family::default(),
            writes_in_flight: Gauge::default(),
            connections: Gauge::default(),
            connections_rejected: Counter::default(),
            hot: Default::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "ds_http_requests",
            "Requests answered, by operation and status",
            m.requests.clone(),
        );
        r.register(
            "ds_http_request_duration_seconds",
            "Time from request to response head, by operation",
            m.latency.clone(),
        );
        r.register("ds_appends", "Appends acknowledged", m.appends.clone());
        r.register(
            "ds_append_bytes",
            "Request body bytes of acknowledged appends",
            m.append_bytes.clone(),
        );
        r.register(
            "ds_commit_batch_writes",
            "Writes committed per group commit",
            m.commit_writes.clone(),
        );
        r.register(
            "ds_commit_duration_seconds",
            "Duration of each group commit (one transaction and fsync per shard touched)",
            m.commit_seconds.clone(),
        );
        r.register(
            "ds_commit_failures",
            "Group commits that failed",
            m.commit_failures.clone(),
        );
        r.register(
            "ds_live_readers",
            "Live reads in progress, by mode",
            m.live_readers.clone(),
        );
        for mode in ["long_poll", "sse"] {
            let _ = m.live_readers.get_or_create(&ModeLabels { mode });
        }
        r.register("ds_streams", "Streams held", m.streams.clone());
        r.register(
            "ds_stored_bytes",
            "Data bytes stored",
            m.stored_bytes.clone(),
        );
        r.register(
            "ds_subscription_wakes",
            "Subscription wake-ups delivered",
            m.subscription_wakes.clone(),
        );
        r.register(
            "ds_sse_direct_events",
            "SSE events the fan-out wrote straight into a reader's socket",
            m.sse_direct_events.clone(),
        );
        r.register(
            "ds_rejected_requests",
            "Requests refused by a limit or by auth, by reason",
            m.rejected.clone(),
        );
        r.register(
            "ds_writes_in_flight",
            "Writes received and not yet answered (shed beyond max_pending_writes)",
            m.writes_in_flight.clone(),
        );
        r.register(
            "ds_open_connections",
            "Open client connections",
            m.connections.clone(),
        );
        r.register(
            "ds_rejected_connections",
            "Connections closed at once because the connection limit was reached",
            m.connections_rejected.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records one group commit.
    pub fn observe_commit(&self, writes: usize, took: Duration, ok: bool) {
        self.commit_writes.observe(writes as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        if !ok {
            self.commit_failures.inc();
        }
    }

    /// Counts a refused request.
    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// The OpenMetrics text of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// A gauge value from a count.
pub fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_and_other_label_sets_count_into_the_same_series() {
        let m = Metrics::new();
        m.answered("append", 204, 0.001);
        m.answered("append", 204, 0.001);
        m.answered("append", 409, 0.001);
        m.answered("read", 200, 0.001);
        let text = m.encode();
        for line in [
            "ds_http_requests_total{operation=\"append\",status=\"204\"} 2",
            "ds_http_requests_total{operation=\"append\",status=\"409\"} 1",
            "ds_http_requests_total{operation=\"read\",status=\"200\"} 1",
            "ds_http_request_duration_seconds_count{operation=\"append\"} 3",
            "ds_http_request_duration_seconds_count{operation=\"read\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
