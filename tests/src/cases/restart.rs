//! Persistence across a host restart: acknowledged means durable (PROTOCOL
//! §4 durability, §4.1 closure is durable, §5.2.1 atomicity, §4.2 forks).
//! A target that cannot persist returns `false` from `restart` and these
//! scenarios stop there.

use ds_core::time::format_rfc3339;

use crate::dsl::*;
use crate::target::Target;

const TEXT: &str = "text/plain";

/// §4: data, content type and offsets survive; offsets minted before the
/// restart still read, and appends continue after the old tail.
pub async fn data_survives_restart<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "before ").await;
    let mid = append(t, "s", TEXT, "restart").await;
    create_with(t, "j", "application/json", r#"[{"n":1},{"n":2}]"#).await;
    let bin: Vec<u8> = (0..=255u8).collect();
    create_with(t, "b", "application/octet-stream", &bin).await;
    if !t.restart().await {
        return;
    }
    let all = read_all(t, "s", None).await;
    assert_eq!(all.text(), "before restart");
    all.last().header_is("content-type", TEXT);
    assert_eq!(all.last().next_offset(), mid);
    let after = append(t, "s", TEXT, "!").await;
    assert!(after > mid);
    assert_eq!(read_all(t, "s", Some(&mid)).await.text(), "!");
    t.request(get("j")).await.json_is(r#"[{"n":1},{"n":2}]"#);
    assert_eq!(read_all(t, "b", None).await.bytes, bin);
    t.request(put("s").ct(TEXT)).await.status_is(200);
    t.request(put("s").ct("application/json"))
        .await
        .status_is(409);
}

/// §4.1: closure is durable: a closed stream stays closed after a restart.
pub async fn closure_survives_restart<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "final").await;
    let fin = close(t, "s").await;
    if !t.restart().await {
        return;
    }
    head_of(t, "s")
        .await
        .header_is("stream-closed", "true")
        .header_is("stream-next-offset", &fin);
    t.request(post("s").ct(TEXT).with_body("x"))
        .await
        .status_is(409)
        .header_is("stream-closed", "true");
    t.request(get("s").offset(&fin).long_poll())
        .await
        .status_is(204)
        .header_is("stream-closed", "true");
    t.request(put("s").ct(TEXT).closed()).await.status_is(200);
}

/// §5.2.1: producer state is committed with the data: after a restart a
/// retry is still a duplicate, the next seq continues, old epochs stay
/// fenced, and the closing tuple still deduplicates.
pub async fn producer_state_survives_restart<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    let send =
        |epoch, seq, body: &str| post("s").ct(TEXT).producer("p", epoch, seq).with_body(body);
    t.request(send(0, 0, "a")).await.status_is(200);
    t.request(send(1, 0, "b")).await.status_is(200);
    t.request(send(1, 1, "c")).await.status_is(200);
    create(t, "c", TEXT).await;
    t.request(
        post("c")
            .ct(TEXT)
            .producer("q", 0, 0)
            .with_body("end")
            .closed(),
    )
    .await
    .status_is(200);
    if !t.restart().await {
        return;
    }
    t.request(send(1, 1, "c"))
        .await
        .status_is(204)
        .header_is("producer-seq", "1");
    t.request(send(0, 5, "zombie"))
        .await
        .status_is(403)
        .header_is("producer-epoch", "1");
    t.request(send(1, 3, "gap"))
        .await
        .status_is(409)
        .header_is("producer-expected-seq", "2");
    t.request(send(1, 2, "d")).await.status_is(200);
    assert_eq!(read_all(t, "s", None).await.text(), "abcd");
    t.request(
        post("c")
            .ct(TEXT)
            .producer("q", 0, 0)
            .with_body("end")
            .closed(),
    )
    .await
    .status_is(204)
    .header_is("stream-closed", "true");
}

/// §5.2: the last `Stream-Seq` survives a restart.
pub async fn stream_seq_survives_restart<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    t.request(post("s").ct(TEXT).with_body("x").seq("005"))
        .await
        .status_is(204);
    if !t.restart().await {
        return;
    }
    t.request(post("s").ct(TEXT).with_body("y").seq("005"))
        .await
        .status_is(409);
    t.request(post("s").ct(TEXT).with_body("y").seq("006"))
        .await
        .status_is(204);
}

/// §4.2: forks, and soft-deleted sources kept for them, survive a
/// restart; cleanup still cascades afterwards.
pub async fn forks_survive_restart<T: Target>(t: &mut T) {
    create_with(t, "l0", TEXT, "A").await;
    t.request(put("l1").fork_of("l0")).await.status_is(201);
    append(t, "l1", TEXT, "B").await;
    t.request(put("l2").fork_of("l1")).await.status_is(201);
    append(t, "l2", TEXT, "C").await;
    let zero = create(t, "sub-src", TEXT).await;
    append(t, "sub-src", TEXT, "hello").await;
    t.request(
        put("sub")
            .fork_of("sub-src")
            .fork_offset(&zero)
            .sub_offset("3"),
    )
    .await
    .status_is(201);
    t.request(delete("l0")).await.status_is(204);
    t.request(delete("l1")).await.status_is(204);
    if !t.restart().await {
        return;
    }
    assert_eq!(read_all(t, "sub", None).await.text(), "hel");
    t.request(
        put("sub")
            .fork_of("sub-src")
            .fork_offset(&zero)
            .sub_offset("3"),
    )
    .await
    .status_is(200);
    assert_eq!(head_status(t, "l0").await, 410);
    assert_eq!(head_status(t, "l1").await, 410);
    t.request(put("l1").ct(TEXT)).await.status_is(409);
    assert_eq!(read_all(t, "l2", None).await.text(), "ABC");
    append(t, "l2", TEXT, "D").await;
    assert_eq!(read_all(t, "l2", None).await.text(), "ABCD");
    t.request(delete("l2")).await.status_is(204);
    for name in ["l2", "l1", "l0"] {
        assert_eq!(head_status(t, name).await, 404, "{name}");
    }
    if !t.restart().await {
        return;
    }
    for name in ["l2", "l1", "l0"] {
        assert_eq!(head_status(t, name).await, 404, "{name} after restart");
    }
    create(t, "l0", TEXT).await;
}

/// §4.2: a fork keeps its source alive across a restart, and deleting the
/// fork after the restart frees the source.
pub async fn fork_reference_counts_reload<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "shared").await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    t.request(put("g").fork_of("src")).await.status_is(201);
    if !t.restart().await {
        return;
    }
    t.request(delete("src")).await.status_is(204);
    assert_eq!(head_status(t, "src").await, 410);
    t.request(delete("f")).await.status_is(204);
    assert_eq!(head_status(t, "src").await, 410);
    t.request(delete("g")).await.status_is(204);
    assert_eq!(head_status(t, "src").await, 404);
}

/// §5.1: TTL and `Expires-At` survive a restart: `HEAD` still reports
/// them and the streams still expire.
pub async fn expiry_survives_restart<T: Target>(t: &mut T) {
    t.request(put("ttl").ct(TEXT).ttl(10)).await.status_is(201);
    let at = format_rfc3339(t.now().plus_millis(10_000));
    t.request(put("at").ct(TEXT).expires_at(&at))
        .await
        .status_is(201);
    let gone = format_rfc3339(t.now().plus_millis(2_000));
    t.request(put("gone").ct(TEXT).expires_at(&gone))
        .await
        .status_is(201);
    t.advance(3_000).await;
    if !t.restart().await {
        return;
    }
    assert_eq!(head_status(t, "gone").await, 404);
    head_of(t, "ttl").await.header_is("stream-ttl", "10");
    head_of(t, "at").await.has_header("stream-expires-at");
    t.advance(6_500).await;
    assert_eq!(head_status(t, "at").await, 200);
    assert_eq!(head_status(t, "ttl").await, 200, "expired before its TTL");
    t.advance(700).await;
    assert_eq!(head_status(t, "at").await, 404);
    // The sliding window may restart with the host (renewals by reads are
    // not necessarily durable), but it must run out.
    t.advance(3_000).await;
    assert_eq!(head_status(t, "ttl").await, 404);
}

/// §5.1: a stream that expired before a restart stays gone after it,
/// whether the expiry was noticed by a request or in the background.
pub async fn expired_streams_stay_gone<T: Target>(t: &mut T) {
    t.request(put("seen").ct(TEXT).ttl(2).with_body("x"))
        .await
        .status_is(201);
    t.request(put("unseen").ct(TEXT).ttl(2).with_body("y"))
        .await
        .status_is(201);
    t.advance(3_000).await;
    assert_eq!(head_status(t, "seen").await, 404);
    if !t.restart().await {
        return;
    }
    assert_eq!(
        head_status(t, "seen").await,
        404,
        "resurrected by a restart"
    );
    assert_eq!(
        head_status(t, "unseen").await,
        404,
        "resurrected by a restart"
    );
    t.request(put("seen").ct(TEXT)).await.status_is(201);
}

/// §5.4: a delete is durable; a stream re-created after a restart starts
/// empty.
pub async fn delete_survives_restart<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "old").await;
    t.request(delete("s")).await.status_is(204);
    if !t.restart().await {
        return;
    }
    assert_eq!(head_status(t, "s").await, 404);
    create_with(t, "s", TEXT, "new").await;
    assert_eq!(read_all(t, "s", None).await.text(), "new");
}

/// §10.1 with §5.4: a stream deleted and re-created across a restart, at
/// the same instant and with the same bytes, never answers 304 to the old
/// stream's `ETag` (stream identities are unique for the storage's life).
pub async fn etag_unique_across_restart<T: Target>(t: &mut T) {
    create_with(t, "s", TEXT, "same").await;
    let old = t.request(get("s")).await.etag();
    t.request(delete("s")).await.status_is(204);
    if !t.restart().await {
        return;
    }
    create_with(t, "s", TEXT, "same").await;
    let r = t.request(get("s").if_none_match(&old)).await;
    r.status_is(200).body_is("same");
    assert_ne!(r.etag(), old, "a new stream reuses a deleted stream's ETag");
}

/// §4 durability across several restarts with writes in between.
pub async fn repeated_restarts<T: Target>(t: &mut T) {
    create(t, "s", TEXT).await;
    let mut want = String::new();
    for round in 0..4 {
        let part = format!("<{round}>");
        append(t, "s", TEXT, &part).await;
        want.push_str(&part);
        if !t.restart().await {
            return;
        }
        assert_eq!(read_all(t, "s", None).await.text(), want);
    }
}
