//! Caching and collapsing: `ETag`, `If-None-Match`, `Cache-Control`,
//! `Stream-Cursor` (PROTOCOL §10.1).

use ds_core::cursor::{CURSOR_EPOCH, INTERVAL_MS};

use crate::dsl::*;
use crate::target::Target;

const TEXT: &str = "text/plain";

/// §10.1: catch-up reads carry an `ETag`; sending it back is a 304 with no
/// body; any other tag is a normal 200.
pub async fn etag_and_304<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "test data").await;
    let first = t.request(get("s")).await;
    first.status_is(200);
    let etag = first.etag();
    let again = t.request(get("s").if_none_match(&etag)).await;
    again.status_is(304).body_is("");
    t.request(get("s").if_none_match("\"wrong-etag\""))
        .await
        .status_is(200)
        .body_is("test data");
    let tail = first.next_offset();
    let at_tail = t.request(get("s").offset(&tail)).await;
    assert_ne!(at_tail.etag(), etag, "a different range has another ETag");
}

/// §10.1: the `ETag` changes when data is appended.
pub async fn etag_changes_on_append<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "test data").await;
    let e1 = t.request(get("s")).await.etag();
    append(t, "s", TEXT, " more").await;
    let r = t.request(get("s").if_none_match(&e1)).await;
    r.status_is(200).body_is("test data more");
    assert_ne!(r.etag(), e1);
}

/// §10.1 ETag and closure: closing without new data changes the `ETag`,
/// so a revalidation can never hide the EOF signal.
pub async fn etag_changes_on_close<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", TEXT, "data").await;
    let full = t.request(get("s")).await.etag();
    let empty = t.request(get("s").offset(&tail)).await.etag();
    close(t, "s").await;
    let r = t.request(get("s").if_none_match(&full)).await;
    r.status_is(200).header_is("stream-closed", "true");
    assert_ne!(r.etag(), full);
    let r = t
        .request(get("s").offset(&tail).if_none_match(&empty))
        .await;
    r.status_is(200)
        .body_is("")
        .header_is("stream-closed", "true");
}

/// §10.1: a stream deleted and created again at the same path, with the
/// same bytes, has a different `ETag`: the old one must not revalidate.
pub async fn etag_differs_after_recreate<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "same").await;
    let old = t.request(get("s")).await.etag();
    t.request(delete("s")).await.status_is(204);
    create_with(t, "s", TEXT, "same").await;
    let r = t.request(get("s").if_none_match(&old)).await;
    r.status_is(200).body_is("same");
    assert_ne!(r.etag(), old);
}

/// §10.1: catch-up reads are cacheable for a minute; `HEAD`, `offset=now`
/// and long-poll 204s are not.
pub async fn cache_control_per_response<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", TEXT, "x").await;
    t.request(get("s"))
        .await
        .header_contains("cache-control", "max-age=60");
    head_of(t, "s")
        .await
        .header_contains("cache-control", "no-store");
    t.request(get("s").offset("now"))
        .await
        .header_contains("cache-control", "no-store");
    t.request(get("s").offset(&tail).long_poll())
        .await
        .status_is(204)
        .header_contains("cache-control", "no-store");
}

/// §10.1 cursors: without an echoed cursor the value is the current
/// 20-second interval since 2024-10-09T00:00:00Z.
pub async fn cursor_is_the_interval<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "x").await;
    let c = t
        .request(get("s").offset("-1").long_poll())
        .await
        .status_is(200)
        .cursor();
    let interval = t.now().millis_since(CURSOR_EPOCH) / INTERVAL_MS;
    assert_eq!(c, interval);
    t.advance(INTERVAL_MS).await;
    let later = t.request(get("s").offset("-1").long_poll()).await.cursor();
    assert_eq!(later, c + 1);
}

/// §10.1 collision: echoing a cursor at or past the current interval gets
/// a strictly greater one, within the 3600-second jitter bound.
pub async fn echoed_cursor_moves_forward<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "x").await;
    let c1 = t.request(get("s").offset("-1").long_poll()).await.cursor();
    let c2 = t
        .request(get("s").offset("-1").long_poll().cursor(&c1.to_string()))
        .await
        .status_is(200)
        .cursor();
    assert!(c2 > c1, "cursor {c2} is not past {c1}");
    assert!(
        c2 <= c1 + 3600 * 1000 / INTERVAL_MS,
        "jitter too large: {c2}"
    );
    let c3 = t
        .request(get("s").offset("-1").long_poll().cursor(&c2.to_string()))
        .await
        .cursor();
    assert!(c3 > c2);
}

/// §10.1: a chain of long-polls that echo each cursor never sees one go
/// backwards, also across timeouts, and a stale or junk cursor falls back
/// to the current interval.
pub async fn cursors_never_go_backwards<T: Target>(t: &mut T) {
    let mut tail = create_with(t, "s", TEXT, "x").await;
    let mut cursor = t.request(get("s").offset("-1").long_poll()).await.cursor();
    for round in 0..6 {
        let req = get("s")
            .offset(&tail)
            .long_poll()
            .cursor(&cursor.to_string());
        let read = t.start(req).await;
        let delivers = round % 2 == 0;
        if delivers {
            tail = append(t, "s", TEXT, "y").await;
        }
        let r = t.finish(read).await;
        r.status_is(if delivers { 200 } else { 204 });
        let next = r.cursor();
        assert!(next > cursor, "cursor went from {cursor} to {next}: {r:?}");
        cursor = next;
    }
    let now = t.now().millis_since(CURSOR_EPOCH) / INTERVAL_MS;
    for stale in ["1", "junk", ""] {
        let c = t
            .request(get("s").offset("-1").long_poll().cursor(stale))
            .await
            .cursor();
        assert_eq!(c, now, "cursor={stale:?}");
    }
}
