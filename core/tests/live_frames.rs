//! SSE fan-out without the engine (`Engine::live_frame`,
//! `SseSession::follow`): a session at the tail, given the frame made when
//! an append became visible, sends exactly the bytes `Engine::sse_poll`
//! would send and ends in the same state; every other session is told to
//! take `sse_poll`, with nothing of it changed.

use ds_core::{
    Body, Config, Engine, Event, LiveFrame, MemStore, Method, Outcome, Request, Response,
    SseSession, UnixMillis,
};

const T0: UnixMillis = UnixMillis(1_800_000_000_000);
const MAX_CHUNK: usize = 1024;

fn engine() -> Engine<MemStore> {
    let config = Config {
        max_chunk_bytes: MAX_CHUNK,
        ..Config::default()
    };
    let mut e = Engine::open(MemStore::new(), config, T0, 3).unwrap();
    e.commit_pending();
    e
}

fn send(e: &mut Engine<MemStore>, req: Request, now: UnixMillis) -> Response {
    match e.handle_and_commit(req.header("host", "ds.test"), now) {
        Outcome::Respond(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn create(e: &mut Engine<MemStore>, path: &str, content_type: &str, now: UnixMillis) {
    let res = send(
        e,
        Request::new(Method::Put, path).header("content-type", content_type),
        now,
    );
    assert_eq!(res.status, 201);
}

fn append(e: &mut Engine<MemStore>, path: &str, content_type: &str, body: &[u8], now: UnixMillis) {
    let req = Request::new(Method::Post, path)
        .header("content-type", content_type)
        .body(body.to_vec());
    assert_eq!(send(e, req, now).status, 204);
}

/// The SSE session of a `GET path?query` (before its first step).
fn open(e: &mut Engine<MemStore>, path: &str, query: &str, now: UnixMillis) -> SseSession {
    let mut req = Request::new(Method::Get, path);
    req.query = query.into();
    match send(e, req, now).body {
        Body::Sse(s) => s,
        other => panic!("not an SSE body: {other:?}"),
    }
}

/// An SSE session of `path` from `query`, after its first step.
fn follower_from(e: &mut Engine<MemStore>, path: &str, query: &str, now: UnixMillis) -> SseSession {
    let mut session = open(e, path, query, now);
    let first = e.sse_poll(&mut session, now);
    assert!(
        !first.bytes.is_empty(),
        "the first step sends a control event"
    );
    session
}

/// An SSE session from the start of `path`, after its first step.
fn follower(e: &mut Engine<MemStore>, path: &str, now: UnixMillis) -> SseSession {
    follower_from(e, path, "offset=-1&live=sse", now)
}

/// Where `path` was before each change since the last call.
fn advanced_from(e: &mut Engine<MemStore>, path: &str) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(event) = e.poll_event() {
        if let Event::Advanced { path: p, from } = event {
            if p == path {
                out.push(from);
            }
        }
    }
    out
}

fn frame_of_last_append(e: &mut Engine<MemStore>, path: &str, now: UnixMillis) -> LiveFrame {
    let from = *advanced_from(e, path).last().expect("an advance");
    e.live_frame(path, from, now).expect("a frame")
}

#[test]
fn a_following_session_sends_what_sse_poll_sends() {
    let cases: [(&str, &[u8]); 3] = [
        ("application/octet-stream", b"\x00\x01binary\xff"),
        ("text/plain", b"hello, stream"),
        ("application/json", br#"{"n":1,"text":"x"}"#),
    ];
    for (i, (content_type, body)) in cases.into_iter().enumerate() {
        let mut e = engine();
        let path = format!("/v1/stream/follow-{i}");
        let mut now = T0;
        create(&mut e, &path, content_type, now);
        append(&mut e, &path, content_type, body, now);
        let mut session = follower(&mut e, &path, now);
        advanced_from(&mut e, &path);
        for round in 0..6u64 {
            // Across cursor intervals (20 s) too.
            now = now.plus_millis(4_500);
            append(&mut e, &path, content_type, body, now);
            let frame = frame_of_last_append(&mut e, &path, now);
            let (mut fast, mut slow) = (session.clone(), session.clone());
            let followed = fast
                .follow(&frame, now)
                .unwrap_or_else(|| panic!("{content_type} round {round}: {frame:?} {session:?}"));
            let polled = e.sse_poll(&mut slow, now);
            assert_eq!(followed, polled, "{content_type}, round {round}");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{content_type}");
            session = fast;
        }
    }
}

#[test]
fn a_client_cursor_echo_is_kept_ahead_of_on_the_fast_path_too() {
    let mut e = engine();
    let path = "/v1/stream/cursor";
    let now = T0;
    create(&mut e, path, "text/plain", now);
    // A cursor far ahead of the clock: the first control jumps past it, and
    // later ones never go back.
    let session = follower_from(&mut e, path, "offset=-1&live=sse&cursor=99999999", now);
    advanced_from(&mut e, path);
    append(&mut e, path, "text/plain", b"x", now);
    let frame = frame_of_last_append(&mut e, path, now);
    let (mut fast, mut slow) = (session.clone(), session);
    assert_eq!(fast.follow(&frame, now), Some(e.sse_poll(&mut slow, now)));
}

#[test]
fn sessions_the_frame_does_not_fit_take_the_engine() {
    let mut e = engine();
    let path = "/v1/stream/misfits";
    let now = T0;
    create(&mut e, path, "text/plain", now);
    let session = follower(&mut e, path, now);
    advanced_from(&mut e, path);

    // Behind: it missed an append, so the next frame starts past it.
    append(&mut e, path, "text/plain", b"one", now);
    advanced_from(&mut e, path);
    append(&mut e, path, "text/plain", b"two", now);
    let frame = frame_of_last_append(&mut e, path, now);
    let mut behind = session.clone();
    assert_eq!(behind.follow(&frame, now), None);
    assert_eq!(format!("{behind:?}"), format!("{session:?}"), "unchanged");

    // Not started: no control event (and cursor) sent yet.
    let mut fresh = open(
        &mut e,
        path,
        "offset=0000000000000000_0000000000000003&live=sse",
        now,
    );
    assert_eq!(fresh.follow(&frame, now), None);

    // Past its reconnect time: the engine ends it.
    let mut caught_up = session.clone();
    e.sse_poll(&mut caught_up, now);
    append(&mut e, path, "text/plain", b"three", now);
    let frame = frame_of_last_append(&mut e, path, now);
    let late = now.plus_millis(Config::default().sse_reconnect_ms + 1);
    assert_eq!(caught_up.clone().follow(&frame, late), None);
    assert!(caught_up.clone().follow(&frame, now).is_some());

    // Another stream's frame.
    let other = "/v1/stream/misfits-other";
    create(&mut e, other, "text/plain", now);
    advanced_from(&mut e, other);
    append(&mut e, other, "text/plain", b"elsewhere", now);
    let elsewhere = frame_of_last_append(&mut e, other, now);
    assert_eq!(caught_up.clone().follow(&elsewhere, now), None);
}

#[test]
fn no_frame_for_closed_large_or_empty_ranges() {
    let mut e = engine();
    let path = "/v1/stream/no-frame";
    let now = T0;
    create(&mut e, path, "text/plain", now);
    advanced_from(&mut e, path);

    // More than one event's worth: the engine splits it.
    append(&mut e, path, "text/plain", &vec![b'x'; MAX_CHUNK * 2], now);
    let from = *advanced_from(&mut e, path).last().unwrap();
    assert!(e.live_frame(path, from, now).is_none());

    // Nothing past `from`.
    let tail = (MAX_CHUNK * 2) as u64;
    assert!(e.live_frame(path, tail, now).is_none());

    // Closed: the final control event is the engine's to send.
    let req = Request::new(Method::Post, path)
        .header("content-type", "text/plain")
        .header("stream-closed", "true")
        .body(b"end".to_vec());
    assert_eq!(send(&mut e, req, now).status, 204);
    let from = *advanced_from(&mut e, path).last().unwrap();
    assert!(e.live_frame(path, from, now).is_none());

    // Gone.
    assert!(e.live_frame("/v1/stream/none", 0, now).is_none());
}
