//! Overload protection that is the host's business: a per-client request
//! rate, concurrent live readers (in all and per stream), and the number of
//! writes in flight. Each check either admits the request, returning a guard
//! that releases its slot when dropped, or says why not.
//!
//! Memory stays bounded: the rate limiter forgets idle clients (and never
//! tracks more than [`MAX_TRACKED_CLIENTS`]), and the per-stream reader
//! table only holds streams with live readers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::metrics::{Metrics, ModeLabels};

/// Most client addresses the rate limiter tracks; past it, idle ones are
/// dropped, and if none is idle new clients share one overflow bucket.
pub const MAX_TRACKED_CLIENTS: usize = 65_536;

/// A token bucket per client IP.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` requests per second with bursts of `burst`.
    pub fn new(rate: u64, burst: u64) -> RateLimiter {
        let rate = rate.max(1) as f64;
        RateLimiter {
            rate,
            burst: if burst == 0 { rate * 2.0 } else { burst as f64 }.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip`; when none is left, the seconds until one is.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&ip) {
            let full = Duration::from_secs_f64(self.burst / self.rate);
            buckets.retain(|_, b| now.duration_since(b.at) < full);
        }
        let key = if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&ip) {
            IpAddr::from([0u8; 16])
        } else {
            ip
        };
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Why a live read is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveRefusal {
    /// The server-wide limit (503).
    Total,
    /// The per-stream limit (429).
    Stream,
}

/// Counts live readers in all and per stream.
pub struct LiveReaders {
    max_total: u64,
    max_per_stream: u64,
    total: AtomicU64,
    per_stream: Mutex<HashMap<String, u64>>,
    metrics: Arc<Metrics>,
}

/// Holds one live-reader slot until dropped.
pub struct LiveGuard {
    readers: Arc<LiveReaders>,
    path: String,
    mode: &'static str,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let r = &self.readers;
        r.total.fetch_sub(1, Ordering::AcqRel);
        let mut map = r.per_stream.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.path);
            }
        }
        r.metrics
            .live_readers
            .get_or_create(&ModeLabels { mode: self.mode })
            .dec();
    }
}

impl LiveReaders {
    /// Limits of 0 mean unlimited.
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Arc<LiveReaders> {
        Arc::new(LiveReaders {
            max_total: limits.max_live_readers,
            max_per_stream: limits.max_live_readers_per_stream,
            total: AtomicU64::new(0),
            per_stream: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Admits a live read (`mode` is `long_poll` or `sse`) of `path`.
    pub fn admit(
        self: &Arc<Self>,
        path: &str,
        mode: &'static str,
    ) -> Result<LiveGuard, LiveRefusal> {
        let mut map = self.per_stream.lock().unwrap_or_else(|p| p.into_inner());
        let total = self.total.load(Ordering::Acquire);
        if self.max_total > 0 && total >= self.max_total {
            return Err(LiveRefusal::Total);
        }
        let here = map.get(path).copied().unwrap_or(0);
        if self.max_per_stream > 0 && here >= self.max_per_stream {
            return Err(LiveRefusal::Stream);
        }
        map.insert(path.to_string(), here + 1);
        self.total.fetch_add(1, Ordering::AcqRel);
        drop(map);
        self.metrics
            .live_readers
            .get_or_create(&ModeLabels { mode })
            .inc();
        Ok(LiveGuard {
            readers: Arc::clone(self),
            path: path.to_string(),
            mode,
        })
    }
}

/// Counts writes from arrival until their answer (body read, staged,
/// committed): when `max` are in flight, more are shed.
pub struct WriteGate {
    max: u64,
    in_flight: AtomicU64,
}

/// Holds one write slot until dropped.
pub struct WriteGuard(Arc<WriteGate>);

impl Drop for WriteGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WriteGate {
    /// `max` of 0 means unlimited.
    pub fn new(max: u64) -> Arc<WriteGate> {
        Arc::new(WriteGate {
            max,
            in_flight: AtomicU64::new(0),
        })
    }

    /// Admits a write unless `max` are in flight.
    pub fn admit(self: &Arc<Self>) -> Option<WriteGuard> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = WriteGuard(Arc::clone(self));
        if self.max > 0 && before >= self.max {
            return None;
        }
        Some(guard)
    }

    /// Writes in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket() {
        let r = RateLimiter::new(2, 3);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.check(ip, t), Ok(()));
        }
        assert_eq!(r.check(ip, t), Err(1));
        assert_eq!(r.check(ip, t + Duration::from_millis(500)), Ok(()));
        assert_eq!(r.check([10, 0, 0, 1].into(), t), Ok(()));
    }

    #[test]
    fn gates() {
        let g = WriteGate::new(1);
        let a = g.admit().unwrap();
        assert!(g.admit().is_none());
        drop(a);
        assert!(g.admit().is_some());
        let limits = Limits {
            max_live_readers: 2,
            max_live_readers_per_stream: 1,
            ..crate::config::Limits::defaults()
        };
        let l = LiveReaders::new(&limits, Arc::new(Metrics::new()));
        let x = l.admit("/a", "sse").unwrap();
        assert_eq!(l.admit("/a", "sse").err(), Some(LiveRefusal::Stream));
        let _y = l.admit("/b", "long_poll").unwrap();
        assert_eq!(l.admit("/c", "sse").err(), Some(LiveRefusal::Total));
        drop(x);
        assert!(l.admit("/a", "sse").is_ok());
    }
}
