//! JSON mode (PROTOCOL §9.1).

use crate::dsl::*;
use crate::json::Json;
use crate::target::{Target, MAX_CHUNK_BYTES};

const JSON: &str = "application/json";

/// §9.1.2: a top-level array is flattened exactly one level; other values
/// are one message each; reads return one array of all messages.
pub async fn arrays_flatten_one_level<T: Target>(t: &mut T) {
    create(t, "j", JSON).await;
    for body in [
        r#"{"event": "created"}"#,
        r#"[{"event": "a"}, {"event": "b"}]"#,
        "[[1,2], [3,4]]",
        "[[[1,2,3]]]",
        r#""text""#,
        "42",
        "true",
        "null",
    ] {
        append(t, "j", JSON, body).await;
    }
    let messages = read_json(t, "j", None).await;
    assert_eq!(
        Json::Array(messages),
        json_value(
            r#"[{"event":"created"},{"event":"a"},{"event":"b"},[1,2],[3,4],[[1,2,3]],"text",42,true,null]"#
        )
    );
}

/// §9.1.3: `PUT []` creates an empty stream; `POST []` is 400.
pub async fn empty_arrays<T: Target>(t: &mut T) {
    create_with(t, "j", JSON, "[]").await;
    let r = t.request(get("j")).await;
    r.status_is(200)
        .json_is("[]")
        .header_is("content-type", JSON);
    assert!(r.up_to_date());
    t.request(post("j").ct(JSON).with_body("[]"))
        .await
        .status_is(400);
    t.request(post("j").ct(JSON).with_body(" [ ] "))
        .await
        .status_is(400);
    t.request(get("j")).await.json_is("[]");
}

/// §9.1.4: invalid JSON is 400 on `POST` and on `PUT`, and stores nothing.
pub async fn invalid_json_is_rejected<T: Target>(t: &mut T) {
    t.request(put("bad").ct(JSON).with_body("{ invalid json }"))
        .await
        .status_is(400);
    assert_eq!(head_status(t, "bad").await, 404);
    create_with(t, "j", JSON, r#"{"ok":true}"#).await;
    for body in ["{ invalid json }", "[1,", "1 2", "\u{0}"] {
        t.request(post("j").ct(JSON).with_body(body))
            .await
            .status_is(400);
    }
    t.request(get("j")).await.json_is(r#"[{"ok":true}]"#);
}

/// §9.1.1: reading from a saved offset returns the later messages as an
/// array, never a fragment.
pub async fn reads_from_offsets_are_arrays<T: Target>(t: &mut T) {
    create_with(t, "j", JSON, r#"[{"n":1},{"n":2}]"#).await;
    let o = head_of(t, "j").await.next_offset();
    append(t, "j", JSON, r#"{"n":3}"#).await;
    append(t, "j", JSON, r#"[{"n":4},{"n":5}]"#).await;
    t.request(get("j").offset(&o))
        .await
        .status_is(200)
        .json_is(r#"[{"n":3},{"n":4},{"n":5}]"#);
    let tail = head_of(t, "j").await.next_offset();
    t.request(get("j").offset(&tail))
        .await
        .status_is(200)
        .json_is("[]");
}

/// §9.1: parameters on `application/json` still select JSON mode.
pub async fn charset_parameter_keeps_json_mode<T: Target>(t: &mut T) {
    let ct = "application/json; charset=utf-8";
    create(t, "j", ct).await;
    append(t, "j", ct, r#"{"message":"hello"}"#).await;
    t.request(post("j").ct(ct).with_body("[]"))
        .await
        .status_is(400);
    t.request(get("j"))
        .await
        .json_is(r#"[{"message":"hello"}]"#);
}

/// §8: `offset=now` on a JSON stream is exactly `[]`.
pub async fn offset_now_is_empty_array<T: Target>(t: &mut T) {
    create_with(t, "j", JSON, r#"[{"event": "historical"}]"#).await;
    let r = t.request(get("j").offset("now")).await;
    r.status_is(200)
        .body_is("[]")
        .header_is("content-type", JSON);
    assert!(r.up_to_date());
}

/// §5.6, §9.1.1: a JSON stream larger than one chunk comes back in several
/// arrays that never split a message.
pub async fn chunks_never_split_messages<T: Target>(t: &mut T) {
    create(t, "j", JSON).await;
    let filler = "x".repeat(1000);
    let mut want = Vec::new();
    for batch in 0..10 {
        let items: Vec<String> = (0..5)
            .map(|i| format!(r#"{{"n":{},"pad":"{filler}"}}"#, batch * 5 + i))
            .collect();
        want.extend(items.iter().map(|s| json_value(s)));
        append(t, "j", JSON, format!("[{}]", items.join(","))).await;
    }
    let pages = read_all(t, "j", None).await;
    assert!(
        pages.replies.len() >= 50_000 / MAX_CHUNK_BYTES,
        "expected several chunks, got {}",
        pages.replies.len()
    );
    let mut got = Vec::new();
    for page in &pages.replies {
        match page.json() {
            Json::Array(items) => {
                assert!(!items.is_empty() || page.up_to_date());
                got.extend(items);
            }
            other => panic!("chunk is not an array: {other:?}"),
        }
    }
    assert_eq!(got, want);
}

/// §9.1.1, §5.8: messages keep their boundaries whatever the whitespace:
/// pretty-printed values read back as the same values, in catch-up and in
/// SSE (where multi-line text spans several `data:` lines).
pub async fn pretty_printed_messages<T: Target>(t: &mut T) {
    create(t, "j", JSON).await;
    append(t, "j", JSON, "[\n  {\n    \"a\": 1\n  },\n  [ 2, 3 ]\n]\n").await;
    append(t, "j", JSON, "  {\"b\" :\r\n \"x\\ny\"}  ").await;
    let want = r#"[{"a":1},[2,3],{"b":"x\ny"}]"#;
    t.request(get("j")).await.json_is(want);
    close(t, "j").await;
    let body = t.request(get("j").offset("-1").sse()).await.sse();
    body.assert_well_formed();
    let mut all = Vec::new();
    for d in body.data() {
        match crate::json::parse(d) {
            Ok(Json::Array(items)) => all.extend(items),
            other => panic!("data event is not a JSON array: {d:?} ({other:?})"),
        }
    }
    assert_eq!(Json::Array(all), json_value(want));
}
