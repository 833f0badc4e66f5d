//! Catch-up reads, offsets and metadata (PROTOCOL §5.5, §5.6, §8).

use crate::dsl::*;
use crate::target::Target;

/// §5.6: a catch-up read returns the stream's bytes, content type,
/// `Stream-Up-To-Date` and a next offset equal to the tail.
pub async fn catch_up_returns_everything<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "first").await;
    let tail = append(t, "s", "text/plain", "second").await;
    let r = t.request(get("s")).await;
    r.status_is(200)
        .header_is("content-type", "text/plain")
        .body_is("firstsecond")
        .header_is("stream-next-offset", &tail)
        .header_is("stream-up-to-date", "true")
        .lacks_header("stream-closed");
}

/// §8: `offset=-1` and no offset both mean the beginning.
pub async fn minus_one_means_beginning<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "abc").await;
    let a = t.request(get("s")).await;
    let b = t.request(get("s").offset("-1")).await;
    a.status_is(200).body_is("abc");
    b.status_is(200).body_is("abc");
    assert_eq!(a.next_offset(), b.next_offset());
}

/// §5.6: reading at the tail is 200 with an empty body, up to date, and
/// the requested offset as the next one.
pub async fn read_at_tail_is_empty<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "abc").await;
    let r = t.request(get("s").offset(&tail)).await;
    r.status_is(200)
        .body_is("")
        .header_is("stream-next-offset", &tail);
    assert!(r.up_to_date());
    let empty = create(t, "e", "application/octet-stream").await;
    t.request(get("e"))
        .await
        .status_is(200)
        .body_is("")
        .header_is("stream-next-offset", &empty)
        .header_is("stream-up-to-date", "true");
}

/// §8: malformed offsets are 400: separators, spaces, control characters,
/// path tricks, empty and repeated values.
pub async fn malformed_offsets_are_rejected<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "test").await;
    for bad in [
        "0,1", "0 1", "", "../", "a/b", "x\u{0}", "-1\n", "now\r\n", "abc", " ", "-2", "nowx",
    ] {
        t.request(get("s").offset(bad)).await.status_is(400);
    }
    t.request(get("s").raw_query("offset=-1&offset=now"))
        .await
        .status_is(400);
}

/// §5.6: unknown query parameters are ignored.
pub async fn unknown_query_parameters_are_ignored<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "data").await;
    t.request(get("s").raw_query("offset=-1&foo=bar&baz=qux"))
        .await
        .status_is(200)
        .body_is("data");
}

/// §5.7, §5.8: `live` without `offset` is 400.
pub async fn live_requires_offset<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    t.request(get("s").long_poll()).await.status_is(400);
    t.request(get("s").sse()).await.status_is(400);
}

/// §8 `now`, catch-up: empty body, the tail, up to date, not cacheable.
pub async fn offset_now_catch_up<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "historical").await;
    let tail = t.request(get("s")).await.next_offset();
    let r = t.request(get("s").offset("now")).await;
    r.status_is(200)
        .body_is("")
        .header_is("stream-next-offset", &tail)
        .header_is("stream-up-to-date", "true")
        .header_contains("cache-control", "no-store");
    append(t, "s", "text/plain", "new data").await;
    t.request(get("s").offset(&tail))
        .await
        .status_is(200)
        .body_is("new data");
}

/// §5.5, §5.6, §5.7, §5.8: every read mode and `HEAD` of a missing stream
/// is 404, `offset=now` included.
pub async fn missing_stream_is_404_in_every_mode<T: Target>(t: &mut T) {
    t.request(get("nope")).await.status_is(404);
    t.request(head("nope")).await.status_is(404);
    t.request(get("nope").offset("now")).await.status_is(404);
    t.request(get("nope").offset("now").long_poll())
        .await
        .status_is(404);
    t.request(get("nope").offset("now").sse())
        .await
        .status_is(404);
    t.request(get("nope").offset("-1").long_poll())
        .await
        .status_is(404);
}

/// §5.5: `HEAD` reports content type, tail, no body, `no-store`, and
/// `Stream-Closed` only when closed; the tail moves with appends.
pub async fn head_reports_metadata<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    let h1 = head_of(t, "s").await;
    h1.status_is(200)
        .header_is("content-type", "text/plain")
        .body_is("")
        .header_contains("cache-control", "no-store")
        .lacks_header("stream-closed")
        .lacks_header("stream-ttl")
        .lacks_header("stream-expires-at");
    let tail = append(t, "s", "text/plain", "test").await;
    let h2 = head_of(t, "s").await;
    assert_ne!(h1.next_offset(), h2.next_offset());
    h2.header_is("stream-next-offset", &tail);
}

/// §5.5: `HEAD` reports the configured TTL window or deadline.
pub async fn head_reports_expiry<T: Target>(t: &mut T) {
    t.request(put("ttl").ct("text/plain").ttl(3600))
        .await
        .status_is(201);
    head_of(t, "ttl").await.header_is("stream-ttl", "3600");
    let at = "2026-01-01T01:00:00.123Z";
    t.request(put("at").ct("text/plain").expires_at(at))
        .await
        .status_is(201);
    let h = head_of(t, "at").await;
    let got = h
        .header("stream-expires-at")
        .unwrap_or_else(|| panic!("missing Stream-Expires-At: {h:?}"));
    assert_eq!(
        ds_core::time::parse_rfc3339(got),
        ds_core::time::parse_rfc3339(at),
        "Stream-Expires-At names another instant"
    );
}

/// §5.2, §5.6: methods the protocol does not define are refused with 405
/// and `Allow`; a path that names no stream is 404.
pub async fn unknown_method_and_bare_root<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    t.request(method("PATCH", "s"))
        .await
        .status_is(405)
        .has_header("allow");
    t.request(get("")).await.status_is(404);
}

/// §4: read-your-writes: every acknowledged append is visible to the next
/// read, including from a concurrent reader's saved offset.
pub async fn reads_see_acknowledged_writes<T: Target>(t: &mut T) {
    create(t, "s", "application/octet-stream").await;
    let mut want = Vec::new();
    let mut saved = Vec::new();
    for i in 0..20u8 {
        let chunk = vec![i; usize::from(i) + 1];
        want.extend_from_slice(&chunk);
        saved.push((
            want.len(),
            append(t, "s", "application/octet-stream", &chunk).await,
        ));
        assert_eq!(read_all(t, "s", None).await.bytes, want);
    }
    for (len, offset) in saved {
        let rest = read_all(t, "s", Some(&offset)).await;
        assert_eq!(rest.bytes, want[len..]);
    }
}
