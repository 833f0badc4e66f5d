//! The only table from errors to HTTP: status, headers and an
//! `application/problem+json` body (RFC 9457). Both hosts send these bytes.

use crate::error::{BadRequest, Conflict, EngineError, ProtocolError, Quota, Refusal};
use crate::response::{names, Body, Response};
use crate::store::StoreError;

/// Builds the response for `error`.
pub fn error_response(error: &EngineError) -> Response {
    let (status, code, detail) = describe(error);
    let mut res = Response::new(status);
    match error {
        EngineError::Protocol(ProtocolError::StreamClosed { tail }) => {
            res.set(names::STREAM_CLOSED, "true");
            res.set(names::STREAM_NEXT_OFFSET, tail.to_string());
        }
        EngineError::Protocol(ProtocolError::ProducerSeqGap { expected, received }) => {
            res.set(names::PRODUCER_EXPECTED_SEQ, expected.to_string());
            res.set(names::PRODUCER_RECEIVED_SEQ, received.to_string());
        }
        EngineError::Protocol(ProtocolError::StaleProducerEpoch { current }) => {
            res.set(names::PRODUCER_EPOCH, current.to_string());
        }
        EngineError::Protocol(ProtocolError::MethodNotAllowed) => {
            res.set(names::ALLOW, "GET, HEAD, PUT, POST, DELETE, OPTIONS");
        }
        EngineError::Protocol(ProtocolError::Refused(r)) => match r {
            // RFC 6750 §3: the challenge, with the error code for bad tokens.
            Refusal::Unauthenticated { token_sent, .. } => res.set(
                names::WWW_AUTHENTICATE,
                if *token_sent {
                    "Bearer realm=\"durable-streams\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"durable-streams\""
                },
            ),
            Refusal::Forbidden { .. } => res.set(
                names::WWW_AUTHENTICATE,
                "Bearer realm=\"durable-streams\", error=\"insufficient_scope\"",
            ),
            Refusal::RateLimited { retry_after_secs }
            | Refusal::StreamReadersBusy { retry_after_secs }
            | Refusal::LiveReadersBusy { retry_after_secs }
            | Refusal::WriteQueueFull { retry_after_secs } => {
                res.set(names::RETRY_AFTER, (*retry_after_secs).max(1).to_string());
            }
            Refusal::HeadersTooLarge { .. } => {}
        },
        _ => {}
    }
    let body = serde_json::json!({
        "type": format!("https://durable-streams.dev/problems/{code}"),
        "title": title(status),
        "status": status,
        "code": code,
        "detail": detail,
    });
    res.set(names::CONTENT_TYPE, "application/problem+json");
    res.set(names::CACHE_CONTROL, "no-store");
    res.body = Body::Full(body.to_string().into_bytes());
    res
}

fn title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Internal Server Error",
    }
}

/// `(status, stable machine code, human detail)` for an error.
pub fn describe(error: &EngineError) -> (u16, &'static str, String) {
    use ProtocolError as P;
    match error {
        EngineError::Store(StoreError::Full) => (
            507,
            "storage-full",
            "the server's storage is full; nothing was written".into(),
        ),
        EngineError::Store(e) => (500, "storage-error", format!("{e}; nothing was written")),
        EngineError::Protocol(p) => match p {
            P::BadRequest(b) => (400, bad_request_code(b), bad_request_detail(b)),
            P::NotFound => (
                404,
                "stream-not-found",
                "no stream exists at this URL".into(),
            ),
            P::ForkSourceNotFound => (
                404,
                "fork-source-not-found",
                "the Stream-Forked-From stream does not exist".into(),
            ),
            P::NotAStreamPath => (404, "not-found", "this path is not a stream URL".into()),
            P::Gone => (
                410,
                "stream-gone",
                "the stream was deleted; forks still read its data".into(),
            ),
            P::Conflict(c) => (409, conflict_code(c), conflict_detail(c).into()),
            P::StreamClosed { tail } => (
                409,
                "stream-closed",
                format!("the stream is closed at offset {tail}; no further appends"),
            ),
            P::ProducerSeqGap { expected, received } => (
                409,
                "producer-seq-gap",
                format!("expected Producer-Seq {expected}, received {received}"),
            ),
            P::StaleProducerEpoch { current } => (
                403,
                "producer-epoch-stale",
                format!("Producer-Epoch is older than the current epoch {current}"),
            ),
            P::PayloadTooLarge { limit } => (
                413,
                "payload-too-large",
                format!("the request body exceeds {limit} bytes"),
            ),
            P::MethodNotAllowed => (
                405,
                "method-not-allowed",
                "stream URLs accept GET, HEAD, PUT, POST, DELETE and OPTIONS".into(),
            ),
            P::Quota(q) => describe_quota(q),
            P::Refused(r) => describe_refusal(r),
        },
    }
}

fn describe_quota(q: &Quota) -> (u16, &'static str, String) {
    match q {
        Quota::StreamSize { limit } => (
            413,
            "stream-size-limit",
            format!("the stream would grow past its limit of {limit} bytes; nothing was written"),
        ),
        Quota::StreamCount { limit } => (
            507,
            "stream-count-limit",
            format!("the server holds its limit of {limit} streams; nothing was created"),
        ),
        Quota::TotalBytes { limit } => (
            507,
            "storage-quota",
            format!("the server's storage quota of {limit} bytes is used up; nothing was written"),
        ),
    }
}

fn describe_refusal(r: &Refusal) -> (u16, &'static str, String) {
    match r {
        Refusal::Unauthenticated { reason, .. } => (401, "unauthenticated", (*reason).into()),
        Refusal::Forbidden { needed } => (
            403,
            "forbidden",
            format!("the token does not grant {needed} permission on this path"),
        ),
        Refusal::RateLimited { .. } => (
            429,
            "rate-limited",
            "too many requests from this client; retry after Retry-After seconds".into(),
        ),
        Refusal::StreamReadersBusy { .. } => (
            429,
            "stream-readers-limit",
            "this stream has the most live readers allowed; retry later".into(),
        ),
        Refusal::LiveReadersBusy { .. } => (
            503,
            "live-readers-limit",
            "the server has the most live readers it allows; retry later".into(),
        ),
        Refusal::HeadersTooLarge { limit } => (
            431,
            "headers-too-large",
            format!("the request's header fields exceed {limit} bytes"),
        ),
        Refusal::WriteQueueFull { .. } => (
            503,
            "write-queue-full",
            "too many writes are waiting to be committed; nothing was written, retry later".into(),
        ),
    }
}

fn bad_request_code(b: &BadRequest) -> &'static str {
    match b {
        BadRequest::Header { .. } => "invalid-header",
        BadRequest::Query { .. } => "invalid-query",
        BadRequest::TtlAndExpiresAt => "ttl-and-expires-at",
        BadRequest::PartialProducerHeaders => "partial-producer-headers",
        BadRequest::NewEpochNotAtZero => "producer-epoch-seq",
        BadRequest::EmptyBody => "empty-body",
        BadRequest::MissingContentType => "missing-content-type",
        BadRequest::InvalidJson => "invalid-json",
        BadRequest::EmptyJsonArray => "empty-json-array",
        BadRequest::ForkOffsetBeyondTail => "fork-offset-beyond-tail",
        BadRequest::ForkSubOffsetOvershoot => "fork-sub-offset-overshoot",
        BadRequest::LiveWithoutOffset => "live-without-offset",
    }
}

fn bad_request_detail(b: &BadRequest) -> String {
    match b {
        BadRequest::Header { name, reason } => format!("header {name}: {reason}"),
        BadRequest::Query { name, reason } => format!("query parameter {name}: {reason}"),
        BadRequest::TtlAndExpiresAt => "Stream-TTL and Stream-Expires-At cannot both be set".into(),
        BadRequest::PartialProducerHeaders => {
            "Producer-Id, Producer-Epoch and Producer-Seq must be sent together".into()
        }
        BadRequest::NewEpochNotAtZero => "a new Producer-Epoch must start at Producer-Seq 0".into(),
        BadRequest::EmptyBody => {
            "an append needs a body unless it carries Stream-Closed: true".into()
        }
        BadRequest::MissingContentType => "an append with a body needs a Content-Type".into(),
        BadRequest::InvalidJson => "the body is not valid JSON".into(),
        BadRequest::EmptyJsonArray => {
            "appending an empty JSON array does nothing and is refused".into()
        }
        BadRequest::ForkOffsetBeyondTail => {
            "Stream-Fork-Offset is beyond the source stream's tail".into()
        }
        BadRequest::ForkSubOffsetOvershoot => {
            "Stream-Fork-Sub-Offset names a position past the next data boundary".into()
        }
        BadRequest::LiveWithoutOffset => "live reads need an offset parameter".into(),
    }
}

fn conflict_code(c: &Conflict) -> &'static str {
    match c {
        Conflict::ConfigMismatch => "stream-exists",
        Conflict::ContentTypeMismatch => "content-type-mismatch",
        Conflict::StreamSeqRegression => "stream-seq-regression",
        Conflict::PathSoftDeleted => "path-soft-deleted",
        Conflict::SourceSoftDeleted => "fork-source-deleted",
    }
}

fn conflict_detail(c: &Conflict) -> &'static str {
    match c {
        Conflict::ConfigMismatch => "a stream with a different configuration exists at this URL",
        Conflict::ContentTypeMismatch => "the Content-Type differs from the stream's content type",
        Conflict::StreamSeqRegression => "Stream-Seq must be greater than the last accepted one",
        Conflict::PathSoftDeleted => "the stream at this URL was deleted and is kept for its forks",
        Conflict::SourceSoftDeleted => "the fork source was deleted and is kept only for its forks",
    }
}
