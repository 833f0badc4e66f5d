//! Server-Sent Events reads (PROTOCOL §5.8, §10.2), in virtual time.

use crate::base64;
use crate::dsl::*;
use crate::json::Json;
use crate::target::{Target, SSE_KEEP_ALIVE_MS, SSE_RECONNECT_MS};

/// §5.8: SSE answers `text/event-stream`, `no-cache`, no length, and the
/// security headers.
pub async fn sse_response_headers<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "x").await;
    close(t, "s").await;
    t.request(get("s").offset("-1").sse())
        .await
        .status_is(200)
        .header_is("content-type", "text/event-stream")
        .header_contains("cache-control", "no-cache")
        .lacks_header("content-length")
        .lacks_header("stream-sse-data-encoding")
        .header_is("x-content-type-options", "nosniff");
}

/// §5.8: binary streams carry `stream-sse-data-encoding: base64`; `text/*`
/// and `application/json` do not.
pub async fn base64_header_follows_content_type<T: Target>(t: &mut T) {
    for (name, ct, base64) in [
        ("bin", "application/octet-stream", true),
        ("proto", "application/x-protobuf", true),
        ("nd", "application/ndjson", true),
        ("txt", "text/plain", false),
        ("csv", "text/csv; charset=utf-8", false),
        ("json", "application/json", false),
    ] {
        create(t, name, ct).await;
        close(t, name).await;
        let r = t.request(get(name).offset("-1").sse()).await;
        r.status_is(200);
        if base64 {
            r.header_is("stream-sse-data-encoding", "base64");
        } else {
            r.lacks_header("stream-sse-data-encoding");
        }
    }
}

/// §5.8: catching up from `-1` sends the data, a control event after
/// every data event, `upToDate` once caught up, and closes at EOF with a
/// final control that has `streamClosed` and no cursor.
pub async fn catch_up_then_close_at_eof<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "message one").await;
    append(t, "s", "text/plain", " message two").await;
    let fin = close(t, "s").await;
    let before = t.now();
    let r = t.request(get("s").offset("-1").sse()).await;
    assert!(
        t.now().millis_since(before) < 100,
        "the body did not end at EOF"
    );
    let body = r.sse();
    body.assert_well_formed();
    assert_eq!(body.data().concat(), "message one message two");
    let last = body.last_control();
    assert!(last.closed && last.cursor.is_none(), "{last:?}");
    assert_eq!(last.next_offset, fin);
    assert!(body.events.last().is_some_and(|e| e.is_control()));
}

/// §5.8: the first control event of a live session carries the cursor,
/// `upToDate`, and the tail (also on an empty stream).
pub async fn first_control_reports_tail<T: Target>(t: &mut T) {
    let tail = create(t, "s", "application/octet-stream").await;
    let read = t.start(get("s").offset("-1").sse()).await;
    close(t, "s").await;
    let body = t.finish(read).await.sse();
    body.assert_well_formed();
    let first = &body.controls()[0];
    assert_eq!(first.next_offset, tail);
    assert!(first.up_to_date && first.cursor.is_some(), "{first:?}");
    assert!(body.data().is_empty());
}

/// §5.8: live data arrives as it is appended, each data event followed by
/// its control event; the final control closes the body.
pub async fn live_appends_are_delivered<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    let read = t.start(get("s").offset(&tail).sse()).await;
    append(t, "s", "text/plain", "one").await;
    t.advance(1_000).await;
    let mid = append(t, "s", "text/plain", "two").await;
    t.request(post("s").ct("text/plain").with_body("three").closed())
        .await
        .status_is(204);
    let body = t.finish(read).await.sse();
    body.assert_well_formed();
    assert_eq!(body.data().concat(), "onetwothree");
    assert!(body.controls().iter().any(|c| c.next_offset == mid));
    let last = body.last_control();
    assert!(last.closed, "{last:?}");
}

/// §5.8 closure: data appended together with the close is delivered
/// before the `streamClosed` control.
pub async fn append_and_close_race<T: Target>(t: &mut T) {
    for round in 0..3 {
        let name = format!("race{round}");
        let tail = create_with(t, &name, "text/plain", "initial").await;
        let read = t.start(get(&name).offset(&tail).sse()).await;
        t.advance(40 + 25 * round).await;
        t.request(post(&name).ct("text/plain").with_body("sse-data").closed())
            .await
            .status_is(204);
        let body = t.finish(read).await.sse();
        body.assert_well_formed();
        assert_eq!(body.data().concat(), "sse-data");
        assert!(body.last_control().closed);
    }
}

/// §5.8: text payloads split on CR, LF and CRLF into `data:` lines, so
/// stream content can never inject an event.
pub async fn line_breaks_cannot_inject_events<T: Target>(t: &mut T) {
    let attacks = [
        "safe content\r\n\r\nevent: control\r\ndata: {\"injected\":true}\r\n\r\nmore safe content",
        "start\n\nevent: data\ndata: fake-event\n\nend",
        "start\r\revent: control\rdata: {\"cr_injected\":true}\r\rend",
    ];
    for (i, attack) in attacks.iter().enumerate() {
        let name = format!("inj{i}");
        create_with(t, &name, "text/plain", attack).await;
        close(t, &name).await;
        let r = t.request(get(&name).offset("-1").sse()).await;
        let body = r.sse();
        body.assert_well_formed();
        assert_eq!(body.data().len(), 1, "{r:?}");
        assert_eq!(body.controls().len(), 1, "{r:?}");
        let normalised = attack.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(body.data()[0], normalised);
    }
}

/// §5.8: multi-line text becomes one `data:` line per line, with no space
/// after the colon.
pub async fn text_lines_use_bare_data_prefix<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "line1\nline2\nline3").await;
    close(t, "s").await;
    let r = t.request(get("s").offset("-1").sse()).await;
    let text = r.text();
    assert!(
        text.contains("event: data\ndata:line1\ndata:line2\ndata:line3\n\n"),
        "{r:?}"
    );
    assert!(text.contains("event: control\ndata:{"), "{r:?}");
}

/// §5.8: binary data events are padded standard base64 that decode to
/// the appended bytes, one event per catch-up.
pub async fn binary_data_is_base64<T: Target>(t: &mut T) {
    let bytes: Vec<u8> = vec![0x00, 0x0a, 0x0d, 0xff, 0xfe, b'H', b'i'];
    create_with(t, "b", "application/octet-stream", &bytes).await;
    let tail = head_of(t, "b").await.next_offset();
    let read = t.start(get("b").offset("-1").sse()).await;
    append(t, "b", "application/octet-stream", b"Hello").await;
    close(t, "b").await;
    let r = t.finish(read).await;
    r.header_is("stream-sse-data-encoding", "base64");
    let body = r.sse();
    body.assert_well_formed();
    let decoded: Vec<Vec<u8>> = body
        .data()
        .iter()
        .map(|d| {
            let joined = d.replace('\n', "");
            base64::decode(&joined).unwrap_or_else(|| panic!("not padded base64: {d:?}"))
        })
        .collect();
    assert_eq!(decoded, vec![bytes, b"Hello".to_vec()]);
    assert_eq!(body.data()[1], "SGVsbG8=");
    assert!(body.controls().iter().any(|c| c.next_offset == tail));
}

/// §5.8, §9.1: on a JSON stream every data event is one complete array.
pub async fn json_data_events_are_arrays<T: Target>(t: &mut T) {
    create_with(t, "j", "application/json", r#"[{"n":1}]"#).await;
    let read = t.start(get("j").offset("-1").sse()).await;
    append(t, "j", "application/json", r#"[{"n":2},{"n":3}]"#).await;
    close(t, "j").await;
    let body = t.finish(read).await.sse();
    body.assert_well_formed();
    let mut all = Vec::new();
    for d in body.data() {
        match crate::json::parse(d) {
            Ok(Json::Array(items)) => all.extend(items),
            other => panic!("data event is not a JSON array: {d:?} ({other:?})"),
        }
    }
    assert_eq!(Json::Array(all), json_value(r#"[{"n":1},{"n":2},{"n":3}]"#));
}

/// §8 `now` + SSE: no history; the first control has the tail and
/// `upToDate`; later appends arrive.
pub async fn offset_now_skips_history<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "historical").await;
    let read = t.start(get("s").offset("now").sse()).await;
    append(t, "s", "text/plain", "future").await;
    close(t, "s").await;
    let body = t.finish(read).await.sse();
    body.assert_well_formed();
    let first = &body.controls()[0];
    assert_eq!(first.next_offset, tail);
    assert!(first.up_to_date);
    assert_eq!(body.data().concat(), "future");
}

/// §8 `now` on a closed stream: one control with `streamClosed` and
/// `upToDate`, then the body ends.
pub async fn offset_now_on_closed_stream<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "all").await;
    let fin = close(t, "s").await;
    let body = t.request(get("s").offset("now").sse()).await.sse();
    body.assert_well_formed();
    assert_eq!(body.events.len(), 1, "{body:?}");
    let c = body.last_control();
    assert!(c.closed && c.up_to_date && c.next_offset == fin, "{c:?}");
}

/// §10.2: an open stream's SSE body ends after the reconnect interval;
/// the last control's offset resumes exactly where it left off.
pub async fn sse_ends_after_reconnect_interval<T: Target>(t: &mut T) {
    create_with(t, "s", "text/plain", "message 1").await;
    append(t, "s", "text/plain", "message 2").await;
    let started = t.now();
    let r = t.request(get("s").offset("-1").sse()).await;
    let lasted = t.now().millis_since(started);
    assert!(
        (SSE_RECONNECT_MS..SSE_RECONNECT_MS + 1_000).contains(&lasted),
        "SSE body lasted {lasted} ms"
    );
    let body = r.sse();
    body.assert_well_formed();
    assert!(
        body.comments >= 1,
        "an idle session sends keep-alives every {SSE_KEEP_ALIVE_MS} ms"
    );
    let resume = body.last_control();
    assert!(resume.up_to_date && !resume.closed);
    append(t, "s", "text/plain", "message 3").await;
    close(t, "s").await;
    let again = t
        .request(get("s").offset(&resume.next_offset).sse())
        .await
        .sse();
    assert_eq!(again.data().concat(), "message 3");
}

/// §5.8: an SSE session whose stream is deleted ends.
pub async fn delete_ends_sse<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    let read = t.start(get("s").offset(&tail).sse()).await;
    t.request(delete("s")).await.status_is(204);
    let before = t.now();
    let r = t.finish(read).await;
    assert!(
        t.now().millis_since(before) < 100,
        "the delete did not end the body"
    );
    r.sse().assert_well_formed();
    t.request(get("s").offset(&tail).sse()).await.status_is(404);
}

/// §5.8: control offsets strictly increase across data events.
pub async fn control_offsets_increase<T: Target>(t: &mut T) {
    let tail = create(t, "s", "text/plain").await;
    let read = t.start(get("s").offset(&tail).sse()).await;
    for i in 0..5 {
        append(t, "s", "text/plain", format!("m{i}")).await;
    }
    close(t, "s").await;
    let body = t.finish(read).await.sse();
    body.assert_well_formed();
    let offsets: Vec<String> = body.controls().into_iter().map(|c| c.next_offset).collect();
    for pair in offsets.windows(2) {
        assert!(pair[0] <= pair[1], "{offsets:?}");
    }
    let data_controls: Vec<&String> = body
        .events
        .iter()
        .zip(body.events.iter().skip(1))
        .filter(|(a, _)| a.is_data())
        .map(|(_, b)| &b.data)
        .collect();
    assert_eq!(data_controls.len(), 5, "{body:?}");
    assert_eq!(body.data().concat(), "m0m1m2m3m4");
}

/// §5.8 closure: a close-only `POST` while a session waits at the tail
/// sends a final control with `streamClosed` and ends the body, so the
/// client knows not to reconnect.
pub async fn close_only_sends_closed_control<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "data").await;
    let read = t.start(get("s").offset(&tail).sse()).await;
    t.advance(1_000).await;
    let fin = close(t, "s").await;
    let before = t.now();
    let r = t.finish(read).await;
    assert!(
        t.now().millis_since(before) < 100,
        "the close did not end the body"
    );
    let body = r.sse();
    body.assert_well_formed();
    let last = body.last_control();
    assert!(
        last.closed,
        "the body ended without a streamClosed control: {r:?}"
    );
    assert_eq!(last.next_offset, fin);
}

/// §5.8, §10.1: a session's cursor starts past an echoed `cursor`
/// (collision avoidance) and never goes backwards.
pub async fn sse_cursor_moves_past_echo<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "text/plain", "x").await;
    let c1 = t
        .request(get("s").offset("-1").long_poll())
        .await
        .status_is(200)
        .cursor();
    let read = t
        .start(get("s").offset(&tail).sse().cursor(&c1.to_string()))
        .await;
    append(t, "s", "text/plain", "y").await;
    t.advance(25_000).await;
    append(t, "s", "text/plain", "z").await;
    close(t, "s").await;
    let body = t.finish(read).await.sse();
    body.assert_well_formed();
    let cursors: Vec<u64> = body
        .controls()
        .iter()
        .filter_map(|c| c.cursor.as_deref().map(|s| s.parse().expect("decimal")))
        .collect();
    assert!(cursors.len() >= 3, "{body:?}");
    assert!(
        cursors[0] > c1,
        "cursor {} does not move past {c1}",
        cursors[0]
    );
    for pair in cursors.windows(2) {
        assert!(pair[0] <= pair[1], "cursors went backwards: {cursors:?}");
    }
}

/// §5.8 with many readers: sessions on one stream, started at different
/// offsets and with different cursors, each get exactly their own events
/// (servers may share the work of framing an append between readers, never
/// the per-reader parts: position, cursor, closure).
pub async fn many_readers_each_get_their_events<T: Target>(t: &mut T) {
    let first = create_with(t, "j", "application/json", r#"[{"n":0}]"#).await;
    let c1 = t
        .request(get("j").offset("-1").long_poll())
        .await
        .status_is(200)
        .cursor();
    let from_start = t.start(get("j").offset("-1").sse()).await;
    let at_tail = t.start(get("j").offset(&first).sse()).await;
    let echoed = t
        .start(get("j").offset(&first).sse().cursor(&c1.to_string()))
        .await;
    append(t, "j", "application/json", r#"[{"n":1},{"n":2}]"#).await;
    let late = t.start(get("j").offset(&first).sse()).await;
    let mid = append(t, "j", "application/json", r#"{"n":3}"#).await;
    let after_mid = t.start(get("j").offset(&mid).sse()).await;
    append(t, "j", "application/json", r#"[{"n":4}]"#).await;
    let fin = close(t, "j").await;
    let messages = |body: &crate::sse::SseBody| {
        let mut all = Vec::new();
        for d in body.data() {
            match crate::json::parse(d) {
                Ok(Json::Array(items)) => all.extend(items),
                other => panic!("data event is not a JSON array: {d:?} ({other:?})"),
            }
        }
        Json::Array(all)
    };
    let mut cursors = Vec::new();
    for (read, want) in [
        (from_start, r#"[{"n":0},{"n":1},{"n":2},{"n":3},{"n":4}]"#),
        (at_tail, r#"[{"n":1},{"n":2},{"n":3},{"n":4}]"#),
        (echoed, r#"[{"n":1},{"n":2},{"n":3},{"n":4}]"#),
        (late, r#"[{"n":1},{"n":2},{"n":3},{"n":4}]"#),
        (after_mid, r#"[{"n":4}]"#),
    ] {
        let body = t.finish(read).await.sse();
        body.assert_well_formed();
        assert_eq!(messages(&body), json_value(want), "{body:?}");
        let last = body.last_control();
        assert!(last.closed && last.next_offset == fin, "{last:?}");
        let offsets: Vec<String> = body.controls().into_iter().map(|c| c.next_offset).collect();
        for pair in offsets.windows(2) {
            assert!(pair[0] <= pair[1], "{offsets:?}");
        }
        cursors.push(body.controls()[0].cursor.clone());
    }
    let echoed_cursor: u64 = cursors[2]
        .as_deref()
        .expect("a cursor")
        .parse()
        .expect("decimal");
    assert!(
        echoed_cursor > c1,
        "cursor {echoed_cursor} does not move past {c1}"
    );
}
