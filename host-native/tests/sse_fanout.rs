//! SSE fan-out end to end, in both storage modes: readers that follow the
//! tail (sent from the frame each append makes for them), a reader that
//! joins late and catches up (sent by the engine), and concurrent writers
//! all end with exactly the stream's messages, in its order, once each, and
//! the final `streamClosed` control event. So does a follower that stops
//! reading while megabytes are appended (its socket fills, and the events
//! written to it directly queue behind).

mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{get_after_pause, request, Server};

const JSON: (&str, &str) = ("content-type", "application/json");

/// The messages of every `event: data` of an SSE body, in order, and
/// whether its last control event said `streamClosed`.
fn messages(sse: &[u8]) -> (Vec<Value>, bool) {
    let text = String::from_utf8(sse.to_vec()).expect("SSE is text");
    let (mut out, mut closed) = (Vec::new(), false);
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut kind = "";
        let mut data = Vec::new();
        for line in event.lines() {
            if let Some(k) = line.strip_prefix("event:") {
                kind = k.trim();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push(d);
            }
        }
        let data: Value = match data.is_empty() {
            true => continue,
            false => serde_json::from_str(&data.join("\n")).expect("data is JSON"),
        };
        match kind {
            "data" => out.extend(data.as_array().expect("a JSON array").iter().cloned()),
            "control" => closed = data["streamClosed"] == Value::Bool(true),
            other => panic!("unexpected event {other:?}"),
        }
    }
    (out, closed)
}

fn follow(server: &Server, target: String) -> thread::JoinHandle<Vec<u8>> {
    let addr = server.addr;
    thread::spawn(move || {
        let r = request(addr, "GET", &target, &[], b"").expect("SSE read");
        assert_eq!(r.status, 200);
        r.body
    })
}

/// Closes the stream at `path` (an empty append with `Stream-Closed`).
fn close(server: &Server, path: &str) {
    let closed = request(
        server.addr,
        "POST",
        path,
        &[JSON, ("stream-closed", "true")],
        b"",
    )
    .unwrap();
    assert_eq!(closed.status, 204);
}

/// Waits until the server counts `n` SSE bodies open (its metrics).
fn wait_for_sse_readers(server: &Server, n: usize) {
    let want = format!("ds_live_readers{{mode=\"sse\"}} {n}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap();
        if String::from_utf8_lossy(&metrics.body)
            .lines()
            .any(|l| l == want)
        {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("{n} SSE readers never connected");
}

fn fan_out(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), extra);
    let path = "/v1/stream/fan";
    let created = request(server.addr, "PUT", path, &[JSON], b"").unwrap();
    assert_eq!(created.status, 201);

    let live = |offset: &str| format!("{path}?offset={offset}&live=sse");
    let followers: Vec<_> = (0..12).map(|_| follow(&server, live("-1"))).collect();
    // Every follower is at the tail before the first append.
    wait_for_sse_readers(&server, 12);

    let writers: Vec<_> = (0..3)
        .map(|w| {
            let addr = server.addr;
            thread::spawn(move || {
                for i in 0..60 {
                    let body = format!(r#"{{"w":{w},"i":{i},"pad":"{}"}}"#, "x".repeat(i * 7));
                    let r = request(addr, "POST", path, &[JSON], body.as_bytes()).unwrap();
                    assert_eq!(r.status, 204);
                }
            })
        })
        .collect();
    // One reader joins while the writers run: it starts behind.
    let late = follow(&server, live("-1"));
    for w in writers {
        w.join().unwrap();
    }
    close(&server, path);

    let all = request(server.addr, "GET", &format!("{path}?offset=-1"), &[], b"").unwrap();
    let expected: Vec<Value> = serde_json::from_slice::<Value>(&all.body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(expected.len(), 180);
    // Most events went straight into the followers' sockets (the rest
    // through their bodies' tasks: a body busy sending takes none).
    let metrics = request(server.addr, "GET", "/metrics", &[], b"").unwrap();
    let direct: u64 = String::from_utf8_lossy(&metrics.body)
        .lines()
        .find_map(|l| l.strip_prefix("ds_sse_direct_events_total "))
        .expect("the direct events metric")
        .parse()
        .unwrap();
    assert!(direct > 0, "no event was written directly ({extra:?})");
    for (n, reader) in followers.into_iter().chain([late]).enumerate() {
        let (got, closed) = messages(&reader.join().unwrap());
        assert_eq!(got.len(), expected.len(), "reader {n} ({extra:?})");
        assert!(
            got == expected,
            "reader {n} ({extra:?}): same messages, same order"
        );
        assert!(closed, "reader {n} ({extra:?}) saw the stream closed");
    }
}

#[test]
fn every_sse_reader_gets_each_message_once_in_order_durable() {
    fan_out(&[]);
}

#[test]
fn every_sse_reader_gets_each_message_once_in_order_memory() {
    fan_out(&["--memory"]);
}

/// A follower that reads nothing for a while as 16 MiB of events are
/// appended (far more than the sockets buffer): the writes to it stop and
/// queue, then resume; it ends with every message once, in order.
fn stalled_reader(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), extra);
    let path = "/v1/stream/stall";
    assert_eq!(
        request(server.addr, "PUT", path, &[JSON], b"")
            .unwrap()
            .status,
        201
    );
    let addr = server.addr;
    let target = format!("{path}?offset=-1&live=sse");
    let reader = thread::spawn(move || {
        get_after_pause(addr, &target, Duration::from_millis(1500)).expect("SSE read")
    });
    let fast = follow(&server, format!("{path}?offset=-1&live=sse"));
    wait_for_sse_readers(&server, 2);
    let pad = "p".repeat(32 << 10);
    for i in 0..512 {
        let body = format!(r#"{{"i":{i},"pad":"{pad}"}}"#);
        let r = request(server.addr, "POST", path, &[JSON], body.as_bytes()).unwrap();
        assert_eq!(r.status, 204);
    }
    close(&server, path);
    for (name, body) in [
        ("stalled", reader.join().unwrap().body),
        ("fast", fast.join().unwrap()),
    ] {
        let (got, closed) = messages(&body);
        let order: Vec<u64> = got.iter().map(|m| m["i"].as_u64().unwrap()).collect();
        assert_eq!(
            order,
            (0..512).collect::<Vec<u64>>(),
            "{name} reader ({extra:?})"
        );
        assert!(got.iter().all(|m| m["pad"].as_str() == Some(pad.as_str())));
        assert!(closed, "{name} reader ({extra:?}) saw the stream closed");
    }
}

#[test]
fn a_stalled_sse_reader_gets_every_message_once_in_order_durable() {
    stalled_reader(&[]);
}

#[test]
fn a_stalled_sse_reader_gets_every_message_once_in_order_memory() {
    stalled_reader(&["--memory"]);
}
