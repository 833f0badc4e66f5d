//! Long-poll reads (PROTOCOL §5.7), in virtual time.

use crate::dsl::*;
use crate::target::{Target, LONG_POLL_TIMEOUT_MS};

/// §5.7: with data after the offset, a long-poll answers at once with the
/// data, `Stream-Up-To-Date` and a decimal `Stream-Cursor`.
pub async fn data_available_answers_at_once<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "existing data").await;
    let before = t.now();
    let r = t.request(get("s").offset("-1").long_poll()).await;
    r.status_is(200)
        .body_is("existing data")
        .header_is("stream-next-offset", &tail)
        .header_is("stream-up-to-date", "true");
    r.cursor();
    assert!(t.now().millis_since(before) < 100, "it waited");
}

/// §5.7: at the tail a long-poll waits; an append wakes it with only the
/// new data.
pub async fn append_wakes_waiting_poll<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "old").await;
    let read = t.start(get("s").offset(&tail).long_poll()).await;
    t.advance(1_000).await;
    let new_tail = append(t, "s", "text/plain", "new data").await;
    let r = t.finish(read).await;
    r.status_is(200)
        .body_is("new data")
        .header_is("stream-next-offset", &new_tail)
        .header_is("stream-up-to-date", "true");
    r.cursor();
}

/// §5.7 timeout: 204 with the unchanged tail, `Stream-Up-To-Date` and a
/// cursor, once the timeout has passed and not before.
pub async fn timeout_answers_204<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "abc").await;
    let started = t.now();
    let r = t.request(get("s").offset(&tail).long_poll()).await;
    r.status_is(204)
        .body_is("")
        .header_is("stream-next-offset", &tail)
        .header_is("stream-up-to-date", "true")
        .lacks_header("stream-closed");
    r.cursor();
    let waited = t.now().millis_since(started);
    assert!(
        (LONG_POLL_TIMEOUT_MS..LONG_POLL_TIMEOUT_MS + 100).contains(&waited),
        "long-poll answered after {waited} ms"
    );
}

/// §5.7: a poll still waiting just before its timeout has not answered;
/// data arriving then is delivered.
pub async fn poll_waits_until_timeout<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    let read = t.start(get("s").offset(&tail).long_poll()).await;
    t.advance(LONG_POLL_TIMEOUT_MS - 200).await;
    append(t, "s", "text/plain", "late").await;
    t.finish(read).await.status_is(200).body_is("late");
}

/// §8 `now` + long-poll: waits from the tail and never returns history.
pub async fn offset_now_waits_for_new_data<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "historical").await;
    let read = t.start(get("s").offset("now").long_poll()).await;
    append(t, "s", "text/plain", "new data").await;
    t.finish(read).await.status_is(200).body_is("new data");

    let r = t.request(get("s").offset("now").long_poll()).await;
    r.status_is(204).header_is("stream-up-to-date", "true");
    assert_ne!(r.next_offset(), tail);
}

/// §8 `now` + long-poll on an empty stream: the 204's offset is where the
/// first append will be read from.
pub async fn offset_now_timeout_offset_reads_next_append<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    let r = t.request(get("s").offset("now").long_poll()).await;
    r.status_is(204).header_is("stream-up-to-date", "true");
    let o = r.next_offset();
    append(t, "s", "text/plain", "first data").await;
    t.request(get("s").offset(&o))
        .await
        .status_is(200)
        .body_is("first data");
}

/// §5.7 closure: at the tail of a closed stream a long-poll answers 204
/// with `Stream-Closed` at once, without waiting.
pub async fn closed_stream_answers_immediately<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "done").await;
    let fin = close(t, "s").await;
    let before = t.now();
    for offset in [fin.as_str(), "now"] {
        t.request(get("s").offset(offset).long_poll())
            .await
            .status_is(204)
            .header_is("stream-closed", "true")
            .header_is("stream-up-to-date", "true")
            .header_is("stream-next-offset", &fin);
    }
    assert!(t.now().millis_since(before) < 100, "it waited");
}

/// §5.7 closure: closing a stream wakes a waiting poll with the EOF 204.
pub async fn close_wakes_waiting_poll<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "x").await;
    let read = t.start(get("s").offset(&tail).long_poll()).await;
    t.advance(500).await;
    let before = t.now();
    close(t, "s").await;
    t.finish(read)
        .await
        .status_is(204)
        .header_is("stream-closed", "true")
        .header_is("stream-next-offset", &tail);
    assert!(
        t.now().millis_since(before) < 100,
        "the close did not wake it"
    );
}

/// §5.7: data appended together with the close is delivered with
/// `Stream-Closed` and no cursor.
pub async fn append_and_close_wakes_with_final_data<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    let read = t.start(get("s").offset(&tail).long_poll()).await;
    t.request(post("s").ct("text/plain").with_body("final").closed())
        .await
        .status_is(204);
    t.finish(read)
        .await
        .status_is(200)
        .body_is("final")
        .header_is("stream-closed", "true")
        .header_is("stream-up-to-date", "true");
}

/// §5.4: deleting a stream ends a waiting poll with 404.
pub async fn delete_ends_waiting_poll<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    let read = t.start(get("s").offset(&tail).long_poll()).await;
    t.request(delete("s")).await.status_is(204);
    let before = t.now();
    t.finish(read).await.status_is(404);
    assert!(
        t.now().millis_since(before) < 100,
        "the delete did not wake it"
    );
}

/// §5.7: several polls on one stream are all woken by one append; a poll
/// on another stream is not.
pub async fn append_wakes_only_its_stream<T: Target>(t: &mut T) {
    let a = create(t, "a", "text/plain").await;
    let b = create(t, "b", "text/plain").await;
    let r1 = t.start(get("a").offset(&a).long_poll()).await;
    let r2 = t.start(get("a").offset(&a).long_poll()).await;
    let r3 = t.start(get("b").offset(&b).long_poll()).await;
    append(t, "a", "text/plain", "for a").await;
    t.finish(r1).await.status_is(200).body_is("for a");
    t.finish(r2).await.status_is(200).body_is("for a");
    t.finish(r3).await.status_is(204);
}

/// §5.7, §12.7: long-poll answers carry the security headers, timeouts
/// included.
pub async fn long_poll_answers_carry_security_headers<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    let read = t.start(get("s").offset(&tail).long_poll()).await;
    append(t, "s", "text/plain", "x").await;
    for r in [
        t.finish(read).await,
        t.request(get("s").offset("now").long_poll()).await,
    ] {
        r.header_is("x-content-type-options", "nosniff")
            .header_is("cross-origin-resource-policy", "cross-origin");
    }
}
