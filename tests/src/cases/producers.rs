//! Idempotent producers (PROTOCOL §5.2.1).

use crate::dsl::*;
use crate::target::Target;

const TEXT: &str = "text/plain";

fn produce(name: &str, id: &str, epoch: u64, seq: u64, body: &str) -> ds_core::Request {
    post(name).ct(TEXT).producer(id, epoch, seq).with_body(body)
}

/// §5.2.1: new data from a producer is 200 with `Producer-Epoch` and
/// `Producer-Seq` echoed and the new tail.
pub async fn first_append_is_200<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    for seq in 0..3 {
        let r = t
            .request(produce("s", "p", 0, seq, &format!("msg-{seq}")))
            .await;
        r.status_is(200)
            .header_is("producer-epoch", "0")
            .header_is("producer-seq", &seq.to_string());
        r.next_offset();
    }
    assert_eq!(read_all(t, "s", None).await.text(), "msg-0msg-1msg-2");
}

/// §5.2.1: a retried request is a 204 duplicate reporting the highest
/// accepted seq, and its data is not stored twice.
pub async fn duplicates_are_204<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    for seq in 0..3 {
        t.request(produce("s", "p", 0, seq, &seq.to_string()))
            .await
            .status_is(200);
    }
    let tail = head_of(t, "s").await.next_offset();
    t.request(produce("s", "p", 0, 1, "again"))
        .await
        .status_is(204)
        .header_is("producer-epoch", "0")
        .header_is("producer-seq", "2")
        .header_is("stream-next-offset", &tail);
    t.request(produce("s", "p", 0, 3, "3")).await.status_is(200);
    assert_eq!(read_all(t, "s", None).await.text(), "0123");
}

/// §5.2.1: a higher epoch starting at seq 0 is accepted; an older epoch is
/// fenced with 403 and the current epoch.
pub async fn epochs_fence_zombies<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(produce("s", "p", 0, 0, "a")).await.status_is(200);
    t.request(produce("s", "p", 0, 1, "b")).await.status_is(200);
    t.request(produce("s", "p", 1, 0, "c"))
        .await
        .status_is(200)
        .header_is("producer-epoch", "1");
    t.request(produce("s", "p", 0, 2, "zombie"))
        .await
        .status_is(403)
        .header_is("producer-epoch", "1");
    assert_eq!(read_all(t, "s", None).await.text(), "abc");
}

/// §5.2.1: a new epoch must start at seq 0 (400).
pub async fn new_epoch_must_start_at_zero<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(produce("s", "p", 0, 0, "a")).await.status_is(200);
    t.request(produce("s", "p", 1, 5, "b")).await.status_is(400);
    t.request(produce("s", "p", 0, 1, "c")).await.status_is(200);
}

/// §5.2.1: a gap is 409 with the expected and received seq; nothing is
/// stored; the expected seq still works afterwards.
pub async fn gaps_are_409<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(produce("s", "p", 0, 0, "a")).await.status_is(200);
    t.request(produce("s", "p", 0, 2, "gap"))
        .await
        .status_is(409)
        .header_is("producer-expected-seq", "1")
        .header_is("producer-received-seq", "2");
    t.request(produce("s", "p", 0, 1, "b")).await.status_is(200);
    assert_eq!(read_all(t, "s", None).await.text(), "ab");
}

/// §5.2.1: a producer the stream has never seen must start at seq 0.
pub async fn unknown_producer_must_start_at_zero<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(produce("s", "p", 0, 1, "x"))
        .await
        .status_is(409)
        .header_is("producer-expected-seq", "0")
        .header_is("producer-received-seq", "1");
    t.request(produce("s", "p", 3, 0, "y"))
        .await
        .status_is(200)
        .header_is("producer-epoch", "3");
}

/// §5.2.1: all three headers or none (400), non-empty id, integers without
/// signs or junk up to 2^53-1.
pub async fn malformed_producer_headers<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    let base = || post("s").ct(TEXT).with_body("x");
    let bad = [
        base().with_header("Producer-Id", "p"),
        base().with_header("Producer-Epoch", "0"),
        base()
            .with_header("Producer-Id", "p")
            .with_header("Producer-Epoch", "0"),
        base()
            .with_header("Producer-Epoch", "0")
            .with_header("Producer-Seq", "0"),
        base()
            .with_header("Producer-Id", "")
            .with_header("Producer-Epoch", "0")
            .with_header("Producer-Seq", "0"),
    ];
    for req in bad {
        t.request(req).await.status_is(400);
    }
    for (epoch, seq) in [
        ("0", "1abc"),
        ("0xyz", "0"),
        ("1e3", "0"),
        ("-1", "0"),
        ("+1", "0"),
        ("1.0", "0"),
        ("9007199254740992", "0"),
        ("0", "9007199254740992"),
    ] {
        t.request(
            base()
                .with_header("Producer-Id", "p")
                .with_header("Producer-Epoch", epoch)
                .with_header("Producer-Seq", seq),
        )
        .await
        .status_is(400);
    }
    assert_eq!(read_all(t, "s", None).await.text(), "");
    t.request(produce("s", "p", 9_007_199_254_740_991, 0, "max"))
        .await
        .status_is(200)
        .header_is("producer-epoch", "9007199254740991");
}

/// §5.2.1: producers are independent of each other; data interleaves in
/// arrival order.
pub async fn producers_are_independent<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    for seq in 0..2 {
        t.request(produce("s", "A", 0, seq, &format!("A{seq}")))
            .await
            .status_is(200);
        t.request(produce("s", "B", 0, seq, &format!("B{seq}")))
            .await
            .status_is(200);
    }
    t.request(produce("s", "B", 1, 0, "B-new"))
        .await
        .status_is(200);
    // A's epoch is untouched by B's bump.
    t.request(produce("s", "A", 0, 2, "A2"))
        .await
        .status_is(200);
    assert_eq!(read_all(t, "s", None).await.text(), "A0B0A1B1B-newA2");
}

/// §5.2.1: producer state is per stream.
pub async fn producer_state_is_per_stream<T: Target>(t: &mut T) {
    create(t, "a", TEXT).await;
    create(t, "b", TEXT).await;
    t.request(produce("a", "p", 2, 0, "x")).await.status_is(200);
    t.request(produce("b", "p", 0, 0, "y")).await.status_is(200);
}

/// §5.2.1 with §5.2: deduplication happens before the `Stream-Seq` check,
/// so a retried request carrying both is a 204, not a 409.
pub async fn dedupe_runs_before_stream_seq<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    let req = || produce("s", "p", 0, 0, "once").seq("app-seq-001");
    t.request(req()).await.status_is(200);
    t.request(req()).await.status_is(204);
    assert_eq!(read_all(t, "s", None).await.text(), "once");
}

/// §5.2.1 with §5.2: a producer append refused for a `Stream-Seq`
/// regression does not advance the producer's seq.
pub async fn refused_append_keeps_producer_state<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(produce("s", "p", 0, 0, "a").seq("5"))
        .await
        .status_is(200);
    t.request(produce("s", "p", 0, 1, "b").seq("4"))
        .await
        .status_is(409);
    t.request(produce("s", "p", 0, 1, "b").seq("6"))
        .await
        .status_is(200);
    assert_eq!(read_all(t, "s", None).await.text(), "ab");
}

/// §5.2.1: producer appends keep every other append rule: 404, content
/// type, empty body, JSON validation.
pub async fn producer_appends_follow_append_rules<T: Target>(t: &mut T) {
    t.request(produce("nope", "p", 0, 0, "x"))
        .await
        .status_is(404);
    create(t, "s", TEXT).await;
    t.request(
        post("s")
            .ct("application/json")
            .producer("p", 0, 0)
            .with_body("{}"),
    )
    .await
    .status_is(409);
    t.request(post("s").ct(TEXT).producer("p", 0, 0))
        .await
        .status_is(400);
    create(t, "j", "application/json").await;
    for body in ["{bad", "[]"] {
        t.request(
            post("j")
                .ct("application/json")
                .producer("p", 0, 0)
                .with_body(body),
        )
        .await
        .status_is(400);
    }
    t.request(
        post("j")
            .ct("application/json")
            .producer("p", 0, 0)
            .with_body(r#"{"event":"test","value":42}"#),
    )
    .await
    .status_is(200);
    t.request(get("j"))
        .await
        .json_is(r#"[{"event":"test","value":42}]"#);
}

/// §5.2.1 closure: append-and-close by a producer is 200; retrying the
/// same tuple is a 204 with `Stream-Closed`, even with another body.
pub async fn producer_close_is_idempotent<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(produce("s", "p", 0, 0, "body-A").closed())
        .await
        .status_is(200)
        .header_is("stream-closed", "true")
        .header_is("producer-epoch", "0")
        .header_is("producer-seq", "0");
    t.request(produce("s", "p", 0, 0, "body-B").closed())
        .await
        .status_is(204)
        .header_is("stream-closed", "true");
    assert_eq!(read_all(t, "s", None).await.text(), "body-A");
}

/// §5.2.1 closure: a close-only request from a producer is 204 and is
/// deduplicated like any other.
pub async fn producer_close_only_is_204<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(produce("s", "p", 0, 0, "data"))
        .await
        .status_is(200);
    let close_req = || post("s").producer("p", 0, 1).closed();
    t.request(close_req())
        .await
        .status_is(204)
        .header_is("stream-closed", "true")
        .header_is("producer-epoch", "0")
        .header_is("producer-seq", "1");
    t.request(close_req())
        .await
        .status_is(204)
        .header_is("stream-closed", "true");
}

/// §5.2.1 closure: after the close, any other tuple is 409 with
/// `Stream-Closed` — even the closing producer's next seq.
pub async fn closed_stream_refuses_other_producers<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    let fin = t
        .request(produce("s", "A", 0, 0, "last").closed())
        .await
        .status_is(200)
        .next_offset();
    for req in [
        produce("s", "B", 0, 0, "other").closed(),
        produce("s", "A", 0, 1, "next"),
        produce("s", "A", 0, 1, "next").closed(),
    ] {
        t.request(req)
            .await
            .status_is(409)
            .header_is("stream-closed", "true")
            .header_is("stream-next-offset", &fin);
    }
    assert_eq!(read_all(t, "s", None).await.text(), "last");
}

/// §5.2.1: one producer closing at a new epoch fences the old epoch.
pub async fn stale_epoch_after_close<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(produce("s", "A", 0, 0, "a")).await.status_is(200);
    t.request(produce("s", "A", 1, 0, "b").closed())
        .await
        .status_is(200);
    let r = t.request(produce("s", "A", 0, 1, "c").closed()).await;
    assert!(
        r.status == 403 || r.status == 409,
        "stale epoch on a closed stream: {r:?}"
    );
}
