//! Stream expiry: sliding `Stream-TTL` and absolute `Stream-Expires-At`
//! (PROTOCOL §5.1, §4.2 fork table), in virtual time.
//!
//! Margins of 100 ms or more around each deadline keep these exact on
//! hosts whose scheduling moves virtual time by a millisecond here and there.

use ds_core::time::format_rfc3339;

use crate::dsl::*;
use crate::target::{Target, LONG_POLL_TIMEOUT_MS};

const TEXT: &str = "text/plain";

/// §5.1: an idle stream expires once its TTL has passed; it is then 404
/// to every operation.
pub async fn ttl_expires_idle_stream<T: Target>(t: &mut T) {
    t.request(put("s").ct(TEXT).ttl(2).with_body("test data"))
        .await
        .status_is(201);
    t.advance(1_900).await;
    assert_eq!(head_status(t, "s").await, 200);
    t.advance(200).await;
    assert_eq!(head_status(t, "s").await, 404);
    t.request(get("s")).await.status_is(404);
    t.request(post("s").ct(TEXT).with_body("more data"))
        .await
        .status_is(404);
    t.request(delete("s")).await.status_is(404);
}

/// §5.1: `HEAD` does not renew a sliding TTL.
pub async fn head_does_not_renew<T: Target>(t: &mut T) {
    t.request(put("s").ct(TEXT).ttl(2)).await.status_is(201);
    t.advance(1_500).await;
    assert_eq!(head_status(t, "s").await, 200);
    t.advance(600).await;
    assert_eq!(head_status(t, "s").await, 404);
}

/// §5.1: a read renews the TTL window: catch-up, and `offset=now`.
pub async fn reads_renew_ttl<T: Target>(t: &mut T) {
    for (name, req) in [
        ("catch-up", get("catch-up")),
        ("now", get("now").offset("now")),
    ] {
        t.request(put(name).ct(TEXT).ttl(2).with_body("x"))
            .await
            .status_is(201);
        t.advance(1_500).await;
        t.request(req).await.status_is(200);
        t.advance(1_500).await;
        assert_eq!(head_status(t, name).await, 200, "{name} read did not renew");
        t.advance(600).await;
        assert_eq!(head_status(t, name).await, 404, "{name} never expired");
    }
}

/// §5.1: writes renew the TTL window: appends, close-only, and a
/// producer's close-only.
pub async fn writes_renew_ttl<T: Target>(t: &mut T) {
    let cases = [
        ("append", post("append").ct(TEXT).with_body("keep alive")),
        ("close", post("close").closed()),
        ("producer", post("producer").closed().producer("p", 0, 0)),
    ];
    for (name, write) in cases {
        t.request(put(name).ct(TEXT).ttl(2)).await.status_is(201);
        t.advance(1_500).await;
        t.request(write).await.status_is(204);
        t.advance(1_500).await;
        assert_eq!(head_status(t, name).await, 200, "{name} did not renew");
        t.advance(600).await;
        assert_eq!(head_status(t, name).await, 404, "{name} never expired");
    }
    // A closed stream that expired is gone, closure and all.
    t.request(put("close").ct(TEXT)).await.status_is(201);
}

/// §5.1: a live read renews the TTL when it starts, not when it ends.
pub async fn long_poll_renews_at_start<T: Target>(t: &mut T) {
    let ttl_ms = LONG_POLL_TIMEOUT_MS + 2_000;
    let tail = t
        .request(put("s").ct(TEXT).ttl(ttl_ms / 1000))
        .await
        .status_is(201)
        .next_offset();
    t.advance(5_000).await;
    t.request(get("s").offset(&tail).long_poll())
        .await
        .status_is(204);
    // Without the renewal at the start the stream would be gone by now.
    assert_eq!(head_status(t, "s").await, 200);
    t.advance(ttl_ms - LONG_POLL_TIMEOUT_MS + 100).await;
    assert_eq!(head_status(t, "s").await, 404);
}

/// §5.1, §5.4: a stream that expires while a long-poll or an SSE session
/// waits on it ends them (404 for the poll), without any other request.
pub async fn expiry_ends_live_reads<T: Target>(t: &mut T) {
    let tail = t
        .request(put("s").ct(TEXT).ttl(3))
        .await
        .status_is(201)
        .next_offset();
    let poll = t.start(get("s").offset(&tail).long_poll()).await;
    let sse = t.start(get("s").offset(&tail).sse()).await;
    let started = t.now();
    t.finish(poll).await.status_is(404);
    let waited = t.now().millis_since(started);
    assert!(
        (2_900..3_200).contains(&waited),
        "the poll ended after {waited} ms, not at expiry"
    );
    let body = t.finish(sse).await;
    body.sse().assert_well_formed();
    assert!(t.now().millis_since(started) < 3_200);
}

/// §5.1: `Stream-Expires-At` is a hard deadline that reads do not move.
pub async fn expires_at_is_absolute<T: Target>(t: &mut T) {
    let at = format_rfc3339(t.now().plus_millis(4_000));
    t.request(put("s").ct(TEXT).expires_at(&at).with_body("x"))
        .await
        .status_is(201);
    t.advance(2_000).await;
    t.request(get("s")).await.status_is(200);
    t.request(post("s").ct(TEXT).with_body("appended data"))
        .await
        .status_is(204);
    t.advance(1_900).await;
    assert_eq!(head_status(t, "s").await, 200);
    t.advance(200).await;
    assert_eq!(head_status(t, "s").await, 404);
    t.request(get("s")).await.status_is(404);
    t.request(post("s").ct(TEXT).with_body("late"))
        .await
        .status_is(404);
}

/// §5.1: a deadline already in the past gives a stream that is gone at
/// once.
pub async fn past_expires_at<T: Target>(t: &mut T) {
    let at = format_rfc3339(t.now().plus_millis(1_000));
    t.request(put("s").ct(TEXT).expires_at(&at))
        .await
        .status_is(201);
    t.advance(1_100).await;
    t.request(get("s")).await.status_is(404);
}

/// §5.1: an expired path is free: `PUT` creates a new stream there with
/// any configuration.
pub async fn expired_path_can_be_recreated<T: Target>(t: &mut T) {
    t.request(put("s").ct(TEXT).ttl(1).with_body("original data"))
        .await
        .status_is(201);
    t.advance(1_100).await;
    t.request(
        put("s")
            .ct("application/json")
            .ttl(3600)
            .with_body(r#"["new data"]"#),
    )
    .await
    .status_is(201);
    t.request(get("s"))
        .await
        .status_is(200)
        .json_is(r#"["new data"]"#);
}

/// §4.2 fork table: a fork that asks for nothing inherits the source's
/// TTL value or deadline; one that asks keeps its own, uncapped.
pub async fn fork_expiry_inheritance<T: Target>(t: &mut T) {
    t.request(put("ttl-src").ct(TEXT).ttl(60))
        .await
        .status_is(201);
    t.request(put("f1").fork_of("ttl-src")).await.status_is(201);
    head_of(t, "f1").await.header_is("stream-ttl", "60");
    t.request(put("f2").fork_of("ttl-src").ttl(99_999))
        .await
        .status_is(201);
    head_of(t, "f2").await.header_is("stream-ttl", "99999");

    let at = format_rfc3339(t.now().plus_millis(3_600_000));
    t.request(put("at-src").ct(TEXT).expires_at(&at))
        .await
        .status_is(201);
    t.request(put("f3").fork_of("at-src")).await.status_is(201);
    let h = head_of(t, "f3").await;
    h.lacks_header("stream-ttl");
    let got = h
        .header("stream-expires-at")
        .unwrap_or_else(|| panic!("fork lost the inherited deadline: {h:?}"));
    assert_eq!(
        ds_core::time::parse_rfc3339(got),
        ds_core::time::parse_rfc3339(&at)
    );
    t.request(put("f4").fork_of("at-src").ttl(5))
        .await
        .status_is(201);
    head_of(t, "f4")
        .await
        .header_is("stream-ttl", "5")
        .lacks_header("stream-expires-at");
}

/// §4.2: a fork's inherited TTL is refreshed independently; a fork with a
/// short TTL expires alone.
pub async fn fork_ttl_is_independent<T: Target>(t: &mut T) {
    t.request(put("src").ct(TEXT).ttl(60).with_body("x"))
        .await
        .status_is(201);
    t.request(put("short").fork_of("src").ttl(1))
        .await
        .status_is(201);
    t.request(put("inherit").fork_of("src"))
        .await
        .status_is(201);
    t.advance(1_100).await;
    assert_eq!(head_status(t, "short").await, 404);
    assert_eq!(head_status(t, "src").await, 200);
    t.advance(58_000).await;
    // Reads of the fork renew the fork only.
    t.request(get("inherit")).await.status_is(200);
    t.advance(1_000).await;
    assert_ne!(
        head_status(t, "src").await,
        200,
        "the source outlived its TTL"
    );
    assert_eq!(head_status(t, "inherit").await, 200);
    assert_eq!(read_all(t, "inherit", None).await.text(), "x");
}

/// §4.2, §5.1: a source that expires while a fork reads it keeps its
/// data for the fork; its own URL then answers 404 or 410.
pub async fn expired_source_keeps_data_for_forks<T: Target>(t: &mut T) {
    t.request(put("src").ct(TEXT).ttl(2).with_body("source data"))
        .await
        .status_is(201);
    t.request(put("f").fork_of("src").ttl(2))
        .await
        .status_is(201);
    append(t, "f", TEXT, " + fork").await;
    t.advance(1_500).await;
    t.request(get("f")).await.status_is(200);
    t.advance(600).await;
    let s = head_status(t, "src").await;
    assert!(s == 404 || s == 410, "expired source answered {s}");
    assert_eq!(head_status(t, "f").await, 200);
    assert_eq!(read_all(t, "f", None).await.text(), "source data + fork");
    t.advance(2_100).await;
    assert_eq!(head_status(t, "f").await, 404);
    assert_eq!(head_status(t, "src").await, 404, "cleanup after the fork");
}
