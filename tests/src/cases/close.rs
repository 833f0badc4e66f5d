//! Closing streams (PROTOCOL §4.1, §5.2, §5.3).

use crate::dsl::*;
use crate::target::Target;

/// §5.3: a close-only `POST` needs no content type; it is 204 with
/// `Stream-Closed` and the unchanged tail; `HEAD` then reports it.
pub async fn close_only_closes<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "data").await;
    t.request(post("s").closed())
        .await
        .status_is(204)
        .header_is("stream-closed", "true")
        .header_is("stream-next-offset", &tail);
    head_of(t, "s")
        .await
        .status_is(200)
        .header_is("stream-closed", "true")
        .header_is("stream-next-offset", &tail);
}

/// §4.1, §5.2: closing is idempotent: a second close-only is 204 again.
pub async fn close_is_idempotent<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    let first = close(t, "s").await;
    let second = close(t, "s").await;
    assert_eq!(first, second);
}

/// §5.2: with an empty body the content type is ignored, even when it
/// differs from the stream's.
pub async fn close_ignores_content_type<T: Target>(t: &mut T) {
    create(t, "j", "application/json").await;
    t.request(post("j").ct("text/plain").closed())
        .await
        .status_is(204)
        .header_is("stream-closed", "true");
}

/// §5.2: append-and-close stores the body and closes atomically.
pub async fn append_and_close<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    append(t, "s", "text/plain", "first message").await;
    let fin = t
        .request(
            post("s")
                .ct("text/plain")
                .with_body("final message")
                .closed(),
        )
        .await
        .status_is(204)
        .header_is("stream-closed", "true")
        .next_offset();
    let all = read_all(t, "s", None).await;
    assert_eq!(all.text(), "first messagefinal message");
    all.last()
        .header_is("stream-closed", "true")
        .header_is("stream-next-offset", &fin);
}

/// §5.2: appends to a closed stream are 409 with `Stream-Closed` and the
/// final offset; append-and-close is refused the same way.
pub async fn append_after_close_is_409<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "x").await;
    let fin = close(t, "s").await;
    for req in [
        post("s").ct("text/plain").with_body("should fail"),
        post("s").ct("text/plain").with_body("again").closed(),
    ] {
        t.request(req)
            .await
            .status_is(409)
            .header_is("stream-closed", "true")
            .header_is("stream-next-offset", &fin);
    }
    assert_eq!(read_all(t, "s", None).await.text(), "x");
}

/// §5.1: a stream created closed is 201 with `Stream-Closed`, readable,
/// and refuses appends.
pub async fn create_closed<T: Target>(t: &mut T) {
    let r = t
        .request(
            put("s")
                .ct("text/plain")
                .closed()
                .with_body("initial content"),
        )
        .await;
    r.status_is(201).header_is("stream-closed", "true");
    let fin = r.next_offset();
    let all = read_all(t, "s", None).await;
    assert_eq!(all.text(), "initial content");
    all.last().header_is("stream-closed", "true");
    t.request(post("s").ct("text/plain").with_body("more"))
        .await
        .status_is(409)
        .header_is("stream-next-offset", &fin);
    t.request(put("e").ct("text/plain").closed())
        .await
        .status_is(201)
        .header_is("stream-closed", "true");
    t.request(get("e"))
        .await
        .status_is(200)
        .body_is("")
        .header_is("stream-closed", "true");
}

/// §5.3: closing a stream that does not exist is 404.
pub async fn close_missing_stream<T: Target>(t: &mut T) {
    t.request(post("nope").closed()).await.status_is(404);
}

/// §5.6: reads of a closed stream: the tail read is the EOF signal (empty,
/// `Stream-Closed`, up to date); `offset=now` says closed too.
pub async fn closed_reads_signal_eof<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "content").await;
    let fin = close(t, "s").await;
    let r = t.request(get("s")).await;
    r.status_is(200)
        .body_is("content")
        .header_is("stream-closed", "true")
        .header_is("stream-up-to-date", "true");
    t.request(get("s").offset(&fin))
        .await
        .status_is(200)
        .body_is("")
        .header_is("stream-closed", "true")
        .header_is("stream-up-to-date", "true");
    t.request(get("s").offset("now"))
        .await
        .status_is(200)
        .header_is("stream-closed", "true")
        .header_is("stream-next-offset", &fin);
}

/// §5.6 timing note: a chunk served before the close does not say closed;
/// reading from its next offset after the close does.
pub async fn closure_found_at_next_offset<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "first").await;
    let before = t.request(get("s")).await;
    before.lacks_header("stream-closed");
    let o = before.next_offset();
    close(t, "s").await;
    t.request(get("s").offset(&o))
        .await
        .body_is("")
        .header_is("stream-closed", "true");
}

/// §5.4: a closed stream can be deleted; it is then gone (404).
pub async fn delete_closed_stream<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    close(t, "s").await;
    t.request(delete("s")).await.status_is(204);
    assert_eq!(head_status(t, "s").await, 404);
}

/// §4.1: `Stream-Closed` counts only when it is `true` (any case); other
/// values are ignored, not errors.
pub async fn only_true_closes<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    for v in ["false", "yes", "1", ""] {
        t.request(
            post("s")
                .ct("text/plain")
                .with_body("x")
                .with_header("Stream-Closed", v),
        )
        .await
        .status_is(204)
        .lacks_header("stream-closed");
    }
    t.request(post("s").with_header("Stream-Closed", "TRUE"))
        .await
        .status_is(204)
        .header_is("stream-closed", "true");
}
