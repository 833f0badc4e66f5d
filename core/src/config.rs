//! Engine configuration: the limits and policies a host may tune.

/// Which origins may read responses cross-origin (CORS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorsPolicy {
    /// `Access-Control-Allow-Origin: *` (the default).
    AnyOrigin,
    /// Only these exact origins are echoed back.
    AllowList(Vec<String>),
}

/// Limits on what clients may store. `None` means unlimited (the default).
/// Each is checked before a write is staged, so a refused write changes
/// nothing; see [`crate::Quota`] for the answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Largest tail offset (in bytes of the stream's logical byte space, a
    /// fork's inherited prefix included) any stream may reach.
    pub max_stream_bytes: Option<u64>,
    /// Most streams held at once (soft-deleted ones included).
    pub max_streams: Option<u64>,
    /// Most data bytes stored across all streams (each stream's own records).
    pub max_total_bytes: Option<u64>,
}

/// Tunables of an [`crate::Engine`].
#[derive(Clone, Debug)]
pub struct Config {
    /// URL path prefix under which streams live, with both slashes.
    pub stream_root: String,
    /// How long a long-poll waits for data before answering 204.
    pub long_poll_timeout_ms: u64,
    /// Most bytes one read holds in memory: a catch-up or long-poll
    /// response of a JSON stream, an SSE event, or a byte-stream response
    /// from a store that reads everything before sending
    /// ([`crate::Store::defers`] false: the memory store).
    pub max_chunk_bytes: usize,
    /// Most bytes one catch-up or long-poll response of a byte stream
    /// returns when the store reads them as they are sent
    /// ([`crate::Store::defers`]: the native durable store); such a
    /// response holds about one `streamed_window_bytes` window in memory
    /// however long it is. Large so that a distant client catches up in few
    /// round trips. Never less than `max_chunk_bytes` in effect.
    pub max_streamed_read_bytes: usize,
    /// Such a response's first window is read before it starts, the rest
    /// window by window as it is sent (see [`crate::pieces`]).
    pub streamed_window_bytes: usize,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// An SSE response ends after this long so clients reconnect (§10.2).
    pub sse_reconnect_ms: u64,
    /// Interval of SSE keep-alive comments while idle.
    pub sse_keep_alive_ms: u64,
    /// CORS policy.
    pub cors: CorsPolicy,
    /// `Cache-Control` of cacheable reads (PROTOCOL §10.1).
    pub cacheable_read: String,
    /// Storage limits.
    pub quotas: Quotas,
    /// Development exception of PROTOCOL §12.8: allow webhooks to
    /// `http://localhost` and `http://127.0.0.x`.
    pub allow_local_webhooks: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stream_root: "/v1/stream/".to_string(),
            long_poll_timeout_ms: 30_000,
            max_chunk_bytes: 1 << 20,
            max_streamed_read_bytes: 16 << 20,
            streamed_window_bytes: 256 << 10,
            max_body_bytes: 64 << 20,
            sse_reconnect_ms: 60_000,
            sse_keep_alive_ms: 15_000,
            cors: CorsPolicy::AnyOrigin,
            cacheable_read: "public, max-age=60, stale-while-revalidate=300".to_string(),
            quotas: Quotas::default(),
            allow_local_webhooks: false,
        }
    }
}
