//! Errors, typed by layer: protocol failures the spec defines, and storage
//! failures. The one table that turns them into HTTP is [`crate::problem`].

use crate::offset::Offset;
use crate::store::StoreError;

/// A request header or parameter that failed validation (400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// A header's value is malformed; `reason` says how.
    Header {
        /// The header name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A query parameter is malformed or repeated.
    Query {
        /// The parameter name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Both `Stream-TTL` and `Stream-Expires-At` were given (PROTOCOL §5.1).
    TtlAndExpiresAt,
    /// Some but not all producer headers (PROTOCOL §5.2.1).
    PartialProducerHeaders,
    /// A new producer epoch must start at `Producer-Seq: 0`.
    NewEpochNotAtZero,
    /// An append without a body and without `Stream-Closed: true`.
    EmptyBody,
    /// An append without `Content-Type`.
    MissingContentType,
    /// A JSON-mode body that is not valid JSON (PROTOCOL §9.1.4).
    InvalidJson,
    /// A JSON-mode append of `[]` (PROTOCOL §9.1.3).
    EmptyJsonArray,
    /// `Stream-Fork-Offset` beyond the source's tail (PROTOCOL §4.2).
    ForkOffsetBeyondTail,
    /// `Stream-Fork-Sub-Offset` past the next data boundary (PROTOCOL §4.2).
    ForkSubOffsetOvershoot,
    /// `live` given without `offset` (PROTOCOL §5.7).
    LiveWithoutOffset,
}

/// Why a request conflicts with the stream's state (409).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// A `PUT` whose configuration differs from the existing stream.
    ConfigMismatch,
    /// The body's content type differs from the stream's (PROTOCOL §5.2).
    ContentTypeMismatch,
    /// `Stream-Seq` not greater than the last one (PROTOCOL §5.2).
    StreamSeqRegression,
    /// The path belongs to a soft-deleted stream (PROTOCOL §4.2).
    PathSoftDeleted,
    /// The fork source is soft-deleted (PROTOCOL §4.2).
    SourceSoftDeleted,
}

/// A configured storage limit ([`crate::config::Quotas`]) that a write
/// would pass. Nothing of the write is staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quota {
    /// 413: the stream would grow past `limit` bytes.
    StreamSize {
        /// The limit in bytes.
        limit: u64,
    },
    /// 507: creating a stream would pass the limit on the number of streams.
    StreamCount {
        /// The most streams allowed.
        limit: u64,
    },
    /// 507: the write would pass the limit on total stored bytes.
    TotalBytes {
        /// The limit in bytes.
        limit: u64,
    },
}

/// Why a host refuses a request before the engine handles it (auth, rate
/// limits, load shedding). The host decides when; the error table decides
/// the bytes, so CORS and security headers are the same as everywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no bearer token, or one that fails verification (`reason`).
    Unauthenticated {
        /// What is wrong with the credentials.
        reason: &'static str,
        /// True when a token was sent (adds `error="invalid_token"`).
        token_sent: bool,
    },
    /// 403: the token does not grant `needed` on this path.
    Forbidden {
        /// The permission that is missing (`read`, `write` or `admin`).
        needed: &'static str,
    },
    /// 429: this client sends requests faster than its rate limit.
    RateLimited {
        /// Seconds until a retry may succeed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// 429: this stream already has the most live readers allowed.
    StreamReadersBusy {
        /// Seconds until a retry may succeed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// 503: the server has the most live readers it allows.
    LiveReadersBusy {
        /// Seconds until a retry may succeed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// 431: the request's header fields are larger than `limit` bytes.
    HeadersTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// 503: too many writes are waiting to be committed; shed this one.
    WriteQueueFull {
        /// Seconds until a retry may succeed (`Retry-After`).
        retry_after_secs: u64,
    },
}

/// A failure the protocol defines, with its structured fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// 400.
    BadRequest(BadRequest),
    /// 404: no such stream (or it expired).
    NotFound,
    /// 404: the fork source does not exist.
    ForkSourceNotFound,
    /// 410: the stream is soft-deleted.
    Gone,
    /// 409 with a reason.
    Conflict(Conflict),
    /// 409 with `Stream-Closed: true` and the final offset (PROTOCOL §5.2).
    StreamClosed {
        /// The closed stream's final offset.
        tail: Offset,
    },
    /// 409 producer sequence gap (PROTOCOL §5.2.1).
    ProducerSeqGap {
        /// Expected sequence number.
        expected: u64,
        /// Received sequence number.
        received: u64,
    },
    /// 403 stale producer epoch (PROTOCOL §5.2.1).
    StaleProducerEpoch {
        /// The server's current epoch.
        current: u64,
    },
    /// 413: the body exceeds the configured limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 405: the method is not defined for stream URLs.
    MethodNotAllowed,
    /// 404: the path is not a stream URL.
    NotAStreamPath,
    /// 413 or 507: a configured storage limit.
    Quota(Quota),
    /// 401, 403, 429 or 503: refused by the host before handling.
    Refused(Refusal),
}

/// Anything the engine can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// A protocol-level refusal.
    Protocol(ProtocolError),
    /// A storage failure; nothing was committed.
    Store(StoreError),
}

impl From<ProtocolError> for EngineError {
    fn from(e: ProtocolError) -> Self {
        EngineError::Protocol(e)
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e)
    }
}

impl From<BadRequest> for EngineError {
    fn from(e: BadRequest) -> Self {
        EngineError::Protocol(ProtocolError::BadRequest(e))
    }
}

impl From<Quota> for EngineError {
    fn from(e: Quota) -> Self {
        EngineError::Protocol(ProtocolError::Quota(e))
    }
}

impl From<Conflict> for EngineError {
    fn from(e: Conflict) -> Self {
        EngineError::Protocol(ProtocolError::Conflict(e))
    }
}
