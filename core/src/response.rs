//! Responses as plain data: what the engine hands back to a host.

use std::borrow::Cow;

use crate::engine::sse_session::SseSession;

/// Response header names used by the protocol (lower case, as HTTP/2 wants).
pub mod names {
    #![allow(missing_docs)]
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CACHE_CONTROL: &str = "cache-control";
    pub const ETAG: &str = "etag";
    pub const LOCATION: &str = "location";
    pub const STREAM_NEXT_OFFSET: &str = "stream-next-offset";
    pub const STREAM_UP_TO_DATE: &str = "stream-up-to-date";
    pub const STREAM_CLOSED: &str = "stream-closed";
    pub const STREAM_CURSOR: &str = "stream-cursor";
    pub const STREAM_TTL: &str = "stream-ttl";
    pub const STREAM_EXPIRES_AT: &str = "stream-expires-at";
    pub const STREAM_SEQ: &str = "stream-seq";
    pub const STREAM_FORKED_FROM: &str = "stream-forked-from";
    pub const STREAM_FORK_OFFSET: &str = "stream-fork-offset";
    pub const STREAM_FORK_SUB_OFFSET: &str = "stream-fork-sub-offset";
    pub const STREAM_SSE_DATA_ENCODING: &str = "stream-sse-data-encoding";
    pub const PRODUCER_ID: &str = "producer-id";
    pub const PRODUCER_EPOCH: &str = "producer-epoch";
    pub const PRODUCER_SEQ: &str = "producer-seq";
    pub const PRODUCER_EXPECTED_SEQ: &str = "producer-expected-seq";
    pub const PRODUCER_RECEIVED_SEQ: &str = "producer-received-seq";
    pub const IF_NONE_MATCH: &str = "if-none-match";
    pub const ORIGIN: &str = "origin";
    pub const ALLOW: &str = "allow";
    pub const RETRY_AFTER: &str = "retry-after";
    pub const WWW_AUTHENTICATE: &str = "www-authenticate";
}

/// The body of a response.
#[derive(Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// A complete body.
    Full(Vec<u8>),
    /// A complete body in pieces (a byte-stream read; see [`crate::pieces`]).
    Pieces(crate::pieces::Pieces),
    /// A live SSE body: drive it with [`crate::Engine::sse_poll`].
    Sse(SseSession),
}

/// A complete response head plus body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header fields, names lower case. Values are borrowed when they are
    /// constants (most of them: CORS, security headers), so answering does
    /// not allocate them per response.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// The body.
    pub body: Body,
}

impl Response {
    /// A response with no headers and no body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            // Room for what most responses carry once decorated (security
            // and CORS headers included): one allocation, no regrowth.
            headers: Vec::with_capacity(8),
            body: Body::Empty,
        }
    }

    /// Adds a header.
    pub fn set(&mut self, name: &'static str, value: impl Into<Cow<'static, str>>) {
        self.headers.push((name, value.into()));
    }

    /// Adds a header (builder style).
    pub fn with(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Response {
        self.set(name, value);
        self
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// The body bytes when the body is complete (empty otherwise).
    pub fn body_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.body {
            Body::Full(b) => std::borrow::Cow::Borrowed(b),
            Body::Pieces(p) => p.contiguous(),
            _ => std::borrow::Cow::Borrowed(&[]),
        }
    }
}
