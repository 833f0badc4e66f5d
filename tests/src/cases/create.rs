//! Creating streams with `PUT` (PROTOCOL §5.1).

use crate::dsl::*;
use crate::target::Target;

/// §5.1: a new stream answers 201 with its content type verbatim, a real
/// tail offset, `Location`, and no `Stream-Closed`.
pub async fn put_creates_stream<T: Target>(t: &mut T) {
    let r = t.request(put("s").ct("text/plain")).await;
    r.status_is(201)
        .header_is("content-type", "text/plain")
        .has_header("location")
        .lacks_header("stream-closed");
    let tail = r.next_offset();
    let h = head_of(t, "s").await;
    h.status_is(200).header_is("stream-next-offset", &tail);
}

/// §5.1: `Location` is the stream URL, absolute when the request names
/// its host.
pub async fn put_location_names_the_stream<T: Target>(t: &mut T) {
    t.request(
        put("loc")
            .ct("text/plain")
            .with_header("Host", "streams.example"),
    )
    .await
    .status_is(201)
    .header_is("location", "http://streams.example/v1/stream/loc");
}

/// §5.1: the same configuration again is an idempotent 200 that reports
/// the current tail; media types compare case-insensitively.
pub async fn put_is_idempotent<T: Target>(t: &mut T) {
    create(t, "s", "application/json").await;
    let tail = append(t, "s", "application/json", "{\"a\":1}").await;
    let r = t.request(put("s").ct("APPLICATION/JSON")).await;
    r.status_is(200)
        .lacks_header("location")
        .header_is("stream-next-offset", &tail);
    read_json(t, "s", None).await;
}

/// §5.1: a different content type on an existing stream is 409 and changes
/// nothing.
pub async fn put_conflicting_content_type<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "keep").await;
    t.request(put("s").ct("application/json"))
        .await
        .status_is(409);
    let all = read_all(t, "s", None).await;
    assert_eq!(all.text(), "keep");
    all.last().header_is("content-type", "text/plain");
}

/// §5.1: TTL is part of the configuration: the same TTL is 200, another
/// TTL or none is 409.
pub async fn put_conflicting_ttl<T: Target>(t: &mut T) {
    t.request(put("s").ct("text/plain").ttl(3600))
        .await
        .status_is(201);
    t.request(put("s").ct("text/plain").ttl(3600))
        .await
        .status_is(200);
    t.request(put("s").ct("text/plain").ttl(7200))
        .await
        .status_is(409);
    t.request(put("s").ct("text/plain")).await.status_is(409);
}

/// §5.1: without `Content-Type` the stream is `application/octet-stream`.
pub async fn put_default_content_type<T: Target>(t: &mut T) {
    t.request(put("s"))
        .await
        .status_is(201)
        .header_is("content-type", "application/octet-stream");
    head_of(t, "s")
        .await
        .header_is("content-type", "application/octet-stream");
    t.request(put("s").ct("application/octet-stream"))
        .await
        .status_is(200);
}

/// §5.1: a body becomes the first content; the returned offset is its tail.
pub async fn put_with_initial_body<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "initial stream content").await;
    let all = read_all(t, "s", None).await;
    assert_eq!(all.text(), "initial stream content");
    assert_eq!(all.last().next_offset(), tail);
    assert!(all.last().up_to_date());
}

/// §5.1: an empty stream's tail is a real offset (never `-1`), and every
/// reading of it agrees.
pub async fn empty_stream_offset_is_real<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    let g = t.request(get("s")).await;
    g.status_is(200)
        .body_is("")
        .header_is("stream-next-offset", &tail);
    assert!(g.up_to_date());
    head_of(t, "s").await.header_is("stream-next-offset", &tail);
}

/// §5.1 closure matching: a `PUT` matches only when its `Stream-Closed`
/// equals the stream's closure status.
pub async fn put_closure_status_must_match<T: Target>(t: &mut T) {
    create(t, "open", "text/plain").await;
    t.request(put("open").ct("text/plain").closed())
        .await
        .status_is(409);
    t.request(put("open").ct("text/plain")).await.status_is(200);

    t.request(put("shut").ct("text/plain").closed())
        .await
        .status_is(201)
        .header_is("stream-closed", "true");
    t.request(put("shut").ct("text/plain").closed())
        .await
        .status_is(200)
        .header_is("stream-closed", "true");
    t.request(put("shut").ct("text/plain")).await.status_is(409);

    // A stream closed later by POST no longer matches a plain PUT.
    close(t, "open").await;
    t.request(put("open").ct("text/plain")).await.status_is(409);
}

/// §5.1: `Stream-TTL` must be a canonical non-negative decimal integer.
pub async fn put_rejects_malformed_ttl<T: Target>(t: &mut T) {
    for bad in ["abc", "-1", "00060", "+60", "60.5", "1e3", ""] {
        t.request(put("s").ct("text/plain").with_header("Stream-TTL", bad))
            .await
            .status_is(400);
    }
    assert_eq!(head_status(t, "s").await, 404, "a refused PUT created it");
    t.request(put("s").ct("text/plain").with_header("Stream-TTL", "0"))
        .await
        .status_is(201);
}

/// §5.1: `Stream-Expires-At` must be RFC 3339 (fractions and offsets
/// allowed), and cannot be combined with `Stream-TTL`. (The deadlines used
/// are an hour after [`crate::START`].)
pub async fn put_validates_expires_at<T: Target>(t: &mut T) {
    t.request(put("bad").ct("text/plain").expires_at("not-a-timestamp"))
        .await
        .status_is(400);
    t.request(
        put("both")
            .ct("text/plain")
            .ttl(60)
            .expires_at("2026-01-01T01:00:00Z"),
    )
    .await
    .status_is(400);
    t.request(
        put("ms")
            .ct("text/plain")
            .expires_at("2026-01-01T01:00:00.123Z"),
    )
    .await
    .status_is(201);
    t.request(
        put("offset")
            .ct("text/plain")
            .expires_at("2026-01-01T03:00:00+02:00"),
    )
    .await
    .status_is(201);
    // The same instant written differently is the same configuration.
    t.request(
        put("offset")
            .ct("text/plain")
            .expires_at("2026-01-01T01:00:00Z"),
    )
    .await
    .status_is(200);
}

/// §5.1: a create response is not cacheable and carries the security
/// headers (§12.7).
pub async fn put_response_is_not_cacheable<T: Target>(t: &mut T) {
    t.request(put("s").ct("text/plain"))
        .await
        .status_is(201)
        .header_contains("cache-control", "no-store")
        .header_is("x-content-type-options", "nosniff");
}
