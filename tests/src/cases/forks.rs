//! Forks, soft deletion and cascading cleanup (PROTOCOL §4.2, §5.4, §8).

use crate::dsl::*;
use crate::target::Target;

const TEXT: &str = "text/plain";

/// §4.2: a fork at the source's tail reads the source's data, then its
/// own; later source appends stay invisible to it.
pub async fn fork_reads_source_then_own<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "source").await;
    let r = t.request(put("f").fork_of("src")).await;
    r.status_is(201)
        .header_is("content-type", TEXT)
        .lacks_header("stream-forked-from")
        .lacks_header("stream-fork-offset");
    append(t, "f", TEXT, " fork").await;
    append(t, "src", TEXT, " after").await;
    assert_eq!(read_all(t, "f", None).await.text(), "source fork");
    assert_eq!(read_all(t, "src", None).await.text(), "source after");
    head_of(t, "f")
        .await
        .lacks_header("stream-forked-from")
        .lacks_header("stream-fork-offset");
}

/// §4.2: `Stream-Fork-Offset` picks the divergence point; the start offset
/// of a stream forks nothing.
pub async fn fork_at_offsets<T: Target>(t: &mut T) {
    let zero = create(t, "src", TEXT).await;
    let o1 = append(t, "src", TEXT, "A").await;
    let o2 = append(t, "src", TEXT, "B").await;
    let o3 = append(t, "src", TEXT, "C").await;
    for (name, offset, want) in [
        ("f0", zero.as_str(), ""),
        ("f1", o1.as_str(), "A"),
        ("f2", o2.as_str(), "AB"),
        ("f3", o3.as_str(), "ABC"),
    ] {
        t.request(put(name).fork_of("src").fork_offset(offset))
            .await
            .status_is(201)
            .header_is("stream-next-offset", offset);
        let all = read_all(t, name, None).await;
        assert_eq!(all.text(), want, "fork {name}");
        assert_eq!(all.last().next_offset(), offset);
    }
}

/// §8 offsets and forks: a fork shares its source's offset space.
pub async fn fork_shares_offset_space<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "one").await;
    let src_head = head_of(t, "src").await.next_offset();
    t.request(put("f").fork_of("src")).await.status_is(201);
    append(t, "f", TEXT, "fork only").await;
    assert_eq!(read_all(t, "f", Some(&src_head)).await.text(), "fork only");
}

/// §4.2 fork errors: missing source 404, offset beyond the tail or
/// malformed 400, content-type mismatch 409, occupied target 409.
pub async fn fork_errors<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "0123456789").await;
    t.request(put("f").fork_of("nonexistent"))
        .await
        .status_is(404);
    t.request(
        put("f")
            .fork_of("src")
            .fork_offset("9999999999999999_9999999999999999"),
    )
    .await
    .status_is(400);
    t.request(put("f").fork_of("src").fork_offset("bogus"))
        .await
        .status_is(400);
    t.request(put("f").fork_of("src").ct("application/json"))
        .await
        .status_is(409);
    create(t, "taken", "application/json").await;
    t.request(put("taken").fork_of("src").ct(TEXT))
        .await
        .status_is(409);
    t.request(put("taken").fork_of("src")).await.status_is(409);
    assert_eq!(head_status(t, "f").await, 404);
}

/// §4.2: a fork `PUT` repeated with the same configuration is 200; a
/// sub-offset of 0 is the same as none.
pub async fn fork_is_idempotent<T: Target>(t: &mut T) {
    let zero = create(t, "src", TEXT).await;
    append(t, "src", TEXT, "data").await;
    t.request(put("f").fork_of("src").fork_offset(&zero))
        .await
        .status_is(201);
    t.request(put("f").fork_of("src").fork_offset(&zero))
        .await
        .status_is(200);
    t.request(put("f").fork_of("src").fork_offset(&zero).sub_offset("0"))
        .await
        .status_is(200);
    t.request(put("g").fork_of("src")).await.status_is(201);
    t.request(put("g").fork_of("src")).await.status_is(200);
}

/// §4.2: a fork inherits the source's content type, or must match it.
pub async fn fork_inherits_content_type<T: Target>(t: &mut T) {
    create_with(t, "src", "application/json", r#"[{"event":"one"}]"#).await;
    t.request(put("f").fork_of("src"))
        .await
        .status_is(201)
        .header_is("content-type", "application/json");
    head_of(t, "f")
        .await
        .header_is("content-type", "application/json");
    append(t, "f", "application/json", r#"[{"key":"appended"}]"#).await;
    t.request(put("g").fork_of("src").ct("application/json"))
        .await
        .status_is(201);
    t.request(get("f"))
        .await
        .json_is(r#"[{"event":"one"},{"key":"appended"}]"#);
}

/// §4.2 closed stream forking: a fork of a closed stream starts open.
pub async fn fork_of_closed_source_is_open<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "closed").await;
    close(t, "src").await;
    t.request(put("f").fork_of("src"))
        .await
        .status_is(201)
        .lacks_header("stream-closed");
    append(t, "f", TEXT, " fork data").await;
    assert_eq!(read_all(t, "f", None).await.text(), "closed fork data");
    close(t, "f").await;
    head_of(t, "src").await.header_is("stream-closed", "true");
}

/// §4.2: closing a fork or its source does not close the other.
pub async fn closure_is_per_stream<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "x").await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    close(t, "src").await;
    append(t, "f", TEXT, "y").await;
    head_of(t, "f").await.lacks_header("stream-closed");
    close(t, "f").await;
    create_with(t, "s2", TEXT, "x").await;
    t.request(put("f2").fork_of("s2")).await.status_is(201);
    close(t, "f2").await;
    head_of(t, "s2").await.lacks_header("stream-closed");
}

/// §4.2 writer state: forks inherit neither producer state nor
/// `Stream-Seq`.
pub async fn fork_has_fresh_writer_state<T: Target>(t: &mut T) {
    create(t, "src", TEXT).await;
    t.request(
        post("src")
            .ct(TEXT)
            .producer("p", 0, 0)
            .with_body("hello")
            .seq("m"),
    )
    .await
    .status_is(200);
    t.request(put("f").fork_of("src")).await.status_is(201);
    t.request(
        post("f")
            .ct(TEXT)
            .producer("p", 0, 0)
            .with_body("LO")
            .seq("a"),
    )
    .await
    .status_is(200);
    assert_eq!(read_all(t, "f", None).await.text(), "helloLO");
}

/// §4.2 sub-offsets: bytes past the anchor for byte streams, whole
/// messages for JSON; the slice is where the fork's own data starts.
pub async fn fork_sub_offsets<T: Target>(t: &mut T) {
    let zero = create(t, "src", TEXT).await;
    append(t, "src", TEXT, "hello").await;
    let r = t
        .request(put("f").fork_of("src").fork_offset(&zero).sub_offset("3"))
        .await;
    r.status_is(201);
    let fork_tail = r.next_offset();
    assert_eq!(read_all(t, "f", None).await.text(), "hel");
    t.request(get("f").offset(&fork_tail))
        .await
        .status_is(200)
        .body_is("")
        .header_is("stream-up-to-date", "true");
    append(t, "f", TEXT, "LO").await;
    assert_eq!(read_all(t, "f", None).await.text(), "helLO");
    t.request(put("f").fork_of("src").fork_offset(&zero).sub_offset("3"))
        .await
        .status_is(200);
    t.request(put("f").fork_of("src").fork_offset(&zero).sub_offset("2"))
        .await
        .status_is(409);
    t.request(
        put("whole")
            .fork_of("src")
            .fork_offset(&zero)
            .sub_offset("5"),
    )
    .await
    .status_is(201);
    assert_eq!(read_all(t, "whole", None).await.text(), "hello");

    let jzero = create(t, "js", "application/json").await;
    append(
        t,
        "js",
        "application/json",
        r#"[{"a":1},{"b":2},{"c":3},{"d":4}]"#,
    )
    .await;
    t.request(put("jf").fork_of("js").fork_offset(&jzero).sub_offset("2"))
        .await
        .status_is(201)
        .header_is("content-type", "application/json");
    t.request(get("jf")).await.json_is(r#"[{"a":1},{"b":2}]"#);
}

/// §4.2 sub-offset errors: past the data boundary, malformed, at the
/// tail, or without `Stream-Forked-From` are 400.
pub async fn fork_sub_offset_errors<T: Target>(t: &mut T) {
    let zero = create(t, "src", TEXT).await;
    append(t, "src", TEXT, "hi").await;
    t.request(put("f").fork_of("src").fork_offset(&zero).sub_offset("3"))
        .await
        .status_is(400);
    for bad in ["-1", "abc", "1.5", "05", "+1"] {
        t.request(put("f").fork_of("src").fork_offset(&zero).sub_offset(bad))
            .await
            .status_is(400);
    }
    t.request(put("f").fork_of("src").sub_offset("1"))
        .await
        .status_is(400);
    t.request(put("plain").ct(TEXT).sub_offset("0"))
        .await
        .status_is(400);
    let jzero = create(t, "js", "application/json").await;
    append(t, "js", "application/json", "[1,2,3]").await;
    t.request(put("jf").fork_of("js").fork_offset(&jzero).sub_offset("4"))
        .await
        .status_is(400);
    assert_eq!(head_status(t, "f").await, 404);
    assert_eq!(head_status(t, "plain").await, 404);
}

/// §4.2: a sub-offset may not name a position past the next data
/// boundary, the end of the append that starts at the anchor, in byte mode
/// and in JSON mode alike.
pub async fn sub_offset_stops_at_append_boundary<T: Target>(t: &mut T) {
    let zero = create(t, "b", TEXT).await;
    append(t, "b", TEXT, "ab").await;
    append(t, "b", TEXT, "cd").await;
    t.request(put("bf").fork_of("b").fork_offset(&zero).sub_offset("3"))
        .await
        .status_is(400);
    t.request(put("bf").fork_of("b").fork_offset(&zero).sub_offset("2"))
        .await
        .status_is(201);
    let zero = create(t, "j", "application/json").await;
    append(t, "j", "application/json", "[1,2]").await;
    append(t, "j", "application/json", "[3]").await;
    t.request(put("jf").fork_of("j").fork_offset(&zero).sub_offset("3"))
        .await
        .status_is(400);
    t.request(put("jf").fork_of("j").fork_offset(&zero).sub_offset("2"))
        .await
        .status_is(201);
    t.request(get("jf")).await.json_is("[1,2]");
}

/// §4.2 sub-offsets compose along a chain: a sub-offset fork of a
/// sub-offset fork cuts the inherited slice again.
pub async fn fork_sub_offset_chain<T: Target>(t: &mut T) {
    let zero = create(t, "l0", TEXT).await;
    append(t, "l0", TEXT, "abcdef").await;
    t.request(put("l1").fork_of("l0").fork_offset(&zero).sub_offset("4"))
        .await
        .status_is(201);
    assert_eq!(read_all(t, "l1", None).await.text(), "abcd");
    t.request(put("l2").fork_of("l1").fork_offset(&zero).sub_offset("2"))
        .await
        .status_is(201);
    append(t, "l2", TEXT, "Z").await;
    assert_eq!(read_all(t, "l2", None).await.text(), "abZ");
    assert_eq!(read_all(t, "l1", None).await.text(), "abcd");
}

/// §4.2 fork chains: each level reads everything it inherits plus its own,
/// and nothing appended upstream after it forked.
pub async fn fork_chains_stitch<T: Target>(t: &mut T) {
    create_with(t, "l0", TEXT, "X").await;
    t.request(put("l1").fork_of("l0")).await.status_is(201);
    append(t, "l1", TEXT, "Y").await;
    t.request(put("l2").fork_of("l1")).await.status_is(201);
    append(t, "l2", TEXT, "Z").await;
    append(t, "l0", TEXT, "0").await;
    append(t, "l1", TEXT, "1").await;
    assert_eq!(read_all(t, "l0", None).await.text(), "X0");
    assert_eq!(read_all(t, "l1", None).await.text(), "XY1");
    assert_eq!(read_all(t, "l2", None).await.text(), "XYZ");
}

/// §4.2 JSON forks: reads across the fork boundary are one array.
pub async fn json_fork_reads_one_array<T: Target>(t: &mut T) {
    create_with(t, "src", "application/json", r#"{"from":"source"}"#).await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    append(t, "f", "application/json", r#"{"from":"fork"}"#).await;
    t.request(get("f"))
        .await
        .status_is(200)
        .json_is(r#"[{"from":"source"},{"from":"fork"}]"#);
}

/// §5.7 on forks: inherited data answers a long-poll at once; at the
/// fork's tail only the fork's own appends wake it.
pub async fn fork_long_poll_ignores_source_appends<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "inherited data").await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    let r = t.request(get("f").offset("-1").long_poll()).await;
    r.status_is(200).body_is("inherited data");
    let tail = r.next_offset();
    let read = t.start(get("f").offset(&tail).long_poll()).await;
    append(t, "src", TEXT, " source extra").await;
    t.advance(500).await;
    append(t, "f", TEXT, " fork new").await;
    t.finish(read).await.status_is(200).body_is(" fork new");
}

/// §5.8 on forks: SSE delivers inherited then own data, never later
/// source appends.
pub async fn fork_sse_stitches<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "inherited").await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    append(t, "f", TEXT, " forked").await;
    let read = t.start(get("f").offset("-1").sse()).await;
    append(t, "src", TEXT, " source-only").await;
    append(t, "f", TEXT, " more").await;
    close(t, "f").await;
    let body = t.finish(read).await.sse();
    body.assert_well_formed();
    assert_eq!(body.data().concat(), "inherited forked more");
}

/// §4.2 soft delete: a source with forks answers 410 to `GET`, `HEAD`,
/// `POST` and `DELETE`, 409 to `PUT` and to new forks; forks keep reading.
pub async fn soft_deleted_source<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "preserved data").await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    t.request(delete("src")).await.status_is(204);
    t.request(get("src").offset("-1")).await.status_is(410);
    t.request(head("src")).await.status_is(410);
    t.request(post("src").ct(TEXT).with_body("x"))
        .await
        .status_is(410);
    t.request(delete("src")).await.status_is(410);
    t.request(put("src").ct(TEXT)).await.status_is(409);
    t.request(put("g").fork_of("src")).await.status_is(409);
    assert_eq!(read_all(t, "f", None).await.text(), "preserved data");
}

/// §4.2 cleanup: deleting the last fork of a soft-deleted source removes
/// the source too (404, path reusable).
pub async fn last_fork_delete_cleans_source<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "data").await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    t.request(put("g").fork_of("src")).await.status_is(201);
    t.request(delete("src")).await.status_is(204);
    t.request(delete("f")).await.status_is(204);
    assert_eq!(head_status(t, "src").await, 410);
    t.request(delete("g")).await.status_is(204);
    assert_eq!(head_status(t, "src").await, 404);
    create(t, "src", TEXT).await;
}

/// §4.2 cascade: cleanup walks up a chain of soft-deleted streams.
pub async fn cascade_cleans_chain<T: Target>(t: &mut T) {
    create_with(t, "l0", TEXT, "A").await;
    t.request(put("l1").fork_of("l0")).await.status_is(201);
    append(t, "l1", TEXT, "B").await;
    t.request(put("l2").fork_of("l1")).await.status_is(201);
    append(t, "l2", TEXT, "C").await;
    t.request(delete("l1")).await.status_is(204);
    assert_eq!(head_status(t, "l1").await, 410);
    assert_eq!(read_all(t, "l2", None).await.text(), "ABC");
    assert_eq!(read_all(t, "l0", None).await.text(), "A");
    t.request(delete("l0")).await.status_is(204);
    assert_eq!(head_status(t, "l0").await, 410);
    assert_eq!(read_all(t, "l2", None).await.text(), "ABC");
    t.request(delete("l2")).await.status_is(204);
    for name in ["l2", "l1", "l0"] {
        assert_eq!(head_status(t, name).await, 404, "{name}");
    }
}

/// §4.2: deleting forks never deletes a live source; a refused fork takes
/// no reference (the source then deletes for good).
pub async fn fork_references_are_exact<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "alive").await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    t.request(delete("f")).await.status_is(204);
    assert_eq!(read_all(t, "src", None).await.text(), "alive");
    t.request(put("bad").fork_of("src").ct("application/json"))
        .await
        .status_is(409);
    t.request(delete("src")).await.status_is(204);
    assert_eq!(head_status(t, "src").await, 404);
}

/// §4.2: a fork read does not depend on its source existing as a client
/// sees it: deleting the source right after forking keeps the fork whole.
pub async fn fork_outlives_source<T: Target>(t: &mut T) {
    create_with(t, "src", TEXT, "ephemeral").await;
    t.request(put("f").fork_of("src")).await.status_is(201);
    t.request(delete("src")).await.status_is(204);
    append(t, "f", TEXT, "!").await;
    assert_eq!(read_all(t, "f", None).await.text(), "ephemeral!");
}
