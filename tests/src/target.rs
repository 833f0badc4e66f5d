//! The seam between scenarios and hosts: a [`Target`] takes requests as
//! plain data and answers with a [`Reply`], in virtual time.
//!
//! A target owns its clock. Every scenario starts at [`START`] and moves time
//! only through [`Target::advance`] (or by waiting for a live read to end in
//! [`Target::finish`]), so nothing ever sleeps and every run is the same.

use std::future::Future;

use ds_core::{Config, Request, UnixMillis};

/// Wall-clock time at which every target starts: 2026-01-01T00:00:05Z.
///
/// Five seconds into a 20-second cursor interval (PROTOCOL §10.1), so a few
/// milliseconds of scheduling drift in a host never crosses an interval.
pub const START: UnixMillis = UnixMillis(1_767_225_605_000);

/// URL path under which every target serves streams.
pub const STREAM_ROOT: &str = "/v1/stream/";

/// How long a long-poll waits before answering 204 in every target.
pub const LONG_POLL_TIMEOUT_MS: u64 = 10_000;

/// Largest catch-up chunk every target returns.
pub const MAX_CHUNK_BYTES: usize = 16 * 1024;

/// Largest request body every target accepts (larger ones get 413).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// After this long an SSE response ends so the client reconnects (§10.2).
pub const SSE_RECONNECT_MS: u64 = 60_000;

/// Interval of SSE keep-alive comments while a session is idle.
pub const SSE_KEEP_ALIVE_MS: u64 = 15_000;

/// The engine configuration every target must run the suite with.
pub fn suite_config() -> Config {
    Config {
        stream_root: STREAM_ROOT.to_string(),
        long_poll_timeout_ms: LONG_POLL_TIMEOUT_MS,
        max_chunk_bytes: MAX_CHUNK_BYTES,
        // Byte reads from a store that defers (the native durable host) are
        // cut at the same limit, and all but their first 4 KiB read as they
        // are sent: every longer read of the suite takes that path.
        max_streamed_read_bytes: MAX_CHUNK_BYTES,
        streamed_window_bytes: 4096,
        max_body_bytes: MAX_BODY_BYTES,
        sse_reconnect_ms: SSE_RECONNECT_MS,
        sse_keep_alive_ms: SSE_KEEP_ALIVE_MS,
        ..Config::default()
    }
}

/// A complete response as a scenario sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    /// `METHOD path?query` of the request, for failure messages.
    pub request: String,
    /// HTTP status code.
    pub status: u16,
    /// Header fields in order, names lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body (for SSE: every byte until the server ended it).
    pub body: Vec<u8>,
}

/// A live read started with [`Target::start`], to be collected with
/// [`Target::finish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveRead(pub usize);

/// A host under test, driven in virtual time.
///
/// Implementations exist for the core engine ([`crate::CoreTarget`]) and the
/// native host (`tests/native.rs`); a wasm host adds its own. The futures
/// need not be `Send`, so a JS-backed target can implement them.
pub trait Target {
    /// Sends `req` and waits for the complete response. A long-poll or SSE
    /// request waits in virtual time until the server ends it.
    fn request(&mut self, req: Request) -> impl Future<Output = Reply>;

    /// Sends `req` and returns once the server has taken it up (a long-poll
    /// is parked, an SSE session has sent what it had), without waiting for
    /// the response to end.
    fn start(&mut self, req: Request) -> impl Future<Output = LiveRead>;

    /// Waits (in virtual time) until the live read `read` ends and returns
    /// its complete response.
    fn finish(&mut self, read: LiveRead) -> impl Future<Output = Reply>;

    /// Moves virtual time forward by `ms`, letting every timer that falls
    /// due on the way fire in order (long-poll deadlines, SSE keep-alives
    /// and reconnects, background expiry).
    fn advance(&mut self, ms: u64) -> impl Future<Output = ()>;

    /// The target's current wall-clock time.
    fn now(&self) -> UnixMillis;

    /// Stops the host and opens it again over the same storage. Returns
    /// `false` when the target cannot persist (scenarios then skip the
    /// rest). Live reads must have finished before.
    fn restart(&mut self) -> impl Future<Output = bool>;
}
