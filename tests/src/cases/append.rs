//! Appending with `POST` (PROTOCOL §5.2).

use crate::dsl::*;
use crate::target::Target;

/// §5.2: a plain append is 204 with the new tail; tails strictly increase
/// (§8 property 5) and reads return everything in order.
pub async fn append_returns_increasing_offsets<T: Target>(t: &mut T) {
    let mut last = create(t, "s", "text/plain").await;
    for part in ["a", "bb", "ccc", "dddd", "e"] {
        let next = append(t, "s", "text/plain", part).await;
        assert!(next > last, "offsets must increase: {last} then {next}");
        last = next;
    }
    let all = read_all(t, "s", None).await;
    assert_eq!(all.text(), "abbcccdddde");
    assert_eq!(all.last().next_offset(), last);
}

/// §5.2: appending to a stream that does not exist is 404.
pub async fn append_to_missing_stream<T: Target>(t: &mut T) {
    t.request(post("nope").ct("text/plain").with_body("x"))
        .await
        .status_is(404)
        .header_is("x-content-type-options", "nosniff");
}

/// §5.2, §12.4: a body whose media type differs from the stream's is 409;
/// case and parameters do not count as a difference.
pub async fn append_content_type_must_match<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    t.request(post("s").ct("application/json").with_body("{}"))
        .await
        .status_is(409);
    t.request(post("s").ct("TEXT/PLAIN").with_body("a"))
        .await
        .status_is(204);
    t.request(post("s").ct("text/plain; charset=utf-8").with_body("b"))
        .await
        .status_is(204);
    assert_eq!(read_all(t, "s", None).await.text(), "ab");
}

/// §5.2: an empty body without `Stream-Closed: true` is 400.
pub async fn append_empty_body_is_rejected<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    t.request(post("s").ct("text/plain")).await.status_is(400);
    head_of(t, "s").await.header_is("stream-next-offset", &tail);
}

/// §5.2: a body without `Content-Type` is 400.
pub async fn append_without_content_type<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    t.request(post("s").with_body("data")).await.status_is(400);
    assert_eq!(read_all(t, "s", None).await.text(), "");
}

/// §4: bytes are stored exactly, all 256 values included.
pub async fn append_preserves_binary<T: Target>(t: &mut T) {
    let all: Vec<u8> = (0..=255u8).collect();
    create_with(t, "bin", "application/octet-stream", &all[..7]).await;
    append(t, "bin", "application/octet-stream", &all[7..]).await;
    append(t, "bin", "application/octet-stream", [0u8, 0, 0]).await;
    let mut want = all.clone();
    want.extend_from_slice(&[0, 0, 0]);
    assert_eq!(read_all(t, "bin", None).await.bytes, want);
}

/// §4 immutability by position: a saved offset reads the same bytes after
/// more appends, plus the new ones.
pub async fn offsets_are_stable<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "chunk1").await;
    let first = t.request(get("s")).await;
    first.status_is(200).body_is("chunk1");
    let o1 = first.next_offset();
    append(t, "s", "text/plain", "chunk2").await;
    let o2 = head_of(t, "s").await.next_offset();
    append(t, "s", "text/plain", "chunk3").await;
    assert_eq!(read_all(t, "s", Some(&o1)).await.text(), "chunk2chunk3");
    assert_eq!(read_all(t, "s", Some(&o2)).await.text(), "chunk3");
    assert_eq!(read_all(t, "s", None).await.text(), "chunk1chunk2chunk3");
}

/// §5.2 error precedence: a closed stream answers with `Stream-Closed`
/// before any content-type or `Stream-Seq` conflict.
pub async fn closed_wins_over_other_conflicts<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    t.request(post("s").ct("text/plain").with_body("a").seq("5"))
        .await
        .status_is(204);
    let fin = close(t, "s").await;
    t.request(post("s").ct("application/json").with_body("{}").seq("1"))
        .await
        .status_is(409)
        .header_is("stream-closed", "true")
        .header_is("stream-next-offset", &fin);
}

/// §5.2: the second of two conflicting conditions, a content-type mismatch
/// before a `Stream-Seq` regression, leaves the stream unchanged.
pub async fn rejected_append_changes_nothing<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    let tail = t
        .request(post("s").ct("text/plain").with_body("a").seq("5"))
        .await
        .status_is(204)
        .next_offset();
    t.request(post("s").ct("application/json").with_body("1").seq("9"))
        .await
        .status_is(409);
    // The refused request did not advance Stream-Seq.
    t.request(post("s").ct("text/plain").with_body("b").seq("6"))
        .await
        .status_is(204);
    let all = read_all(t, "s", Some(&tail)).await;
    assert_eq!(all.text(), "b");
}
