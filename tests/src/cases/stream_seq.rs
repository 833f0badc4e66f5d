//! `Stream-Seq` writer coordination (PROTOCOL §5.2, §12.6).

use crate::dsl::*;
use crate::target::Target;

async fn seq_status<T: Target>(t: &mut T, name: &str, seq: &str) -> u16 {
    t.request(post(name).ct("text/plain").with_body(seq).seq(seq))
        .await
        .status
}

/// §5.2: `Stream-Seq` compares byte-wise: `"2"` then `"10"` regresses,
/// `"09"` then `"10"` advances.
pub async fn seq_is_lexicographic<T: Target>(t: &mut T) {
    create(t, "a", "text/plain").await;
    assert_eq!(seq_status(t, "a", "2").await, 204);
    assert_eq!(seq_status(t, "a", "10").await, 409);
    create(t, "b", "text/plain").await;
    assert_eq!(seq_status(t, "b", "09").await, 204);
    assert_eq!(seq_status(t, "b", "10").await, 204);
}

/// §5.2: an equal value is a regression; comparison is case-sensitive
/// (`"B"` sorts before `"a"`).
pub async fn seq_must_strictly_increase<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    assert_eq!(seq_status(t, "s", "001").await, 204);
    assert_eq!(seq_status(t, "s", "001").await, 409);
    assert_eq!(seq_status(t, "s", "002").await, 204);
    assert_eq!(seq_status(t, "s", "001").await, 409);
    assert_eq!(seq_status(t, "s", "a").await, 204);
    assert_eq!(seq_status(t, "s", "B").await, 409);
    assert_eq!(read_all(t, "s", None).await.text(), "001002a");
}

/// §5.2: appends without `Stream-Seq` neither check nor reset it.
pub async fn appends_without_seq_keep_it<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    assert_eq!(seq_status(t, "s", "m").await, 204);
    append(t, "s", "text/plain", "-").await;
    assert_eq!(seq_status(t, "s", "k").await, 409);
    assert_eq!(seq_status(t, "s", "n").await, 204);
}

/// §5.2: the scope is the stream: other streams keep their own sequence.
pub async fn seq_is_per_stream<T: Target>(t: &mut T) {
    create(t, "a", "text/plain").await;
    create(t, "b", "text/plain").await;
    assert_eq!(seq_status(t, "a", "5").await, 204);
    assert_eq!(seq_status(t, "b", "1").await, 204);
    assert_eq!(seq_status(t, "a", "4").await, 409);
}

/// §5.2: a close with `Stream-Seq` is checked like an append.
pub async fn close_checks_seq<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    assert_eq!(seq_status(t, "s", "5").await, 204);
    t.request(post("s").ct("text/plain").with_body("x").seq("3").closed())
        .await
        .status_is(409)
        .lacks_header("stream-closed");
    head_of(t, "s").await.lacks_header("stream-closed");
}
