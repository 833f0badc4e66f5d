//! Every limit hit from the outside, with its status and problem code:
//! body size 413, stream size 413, total bytes 507, stream count 507, live
//! readers 503 / 429 per stream, per-client rate 429, write shedding 503
//! under a flood, huge headers 431, the connection limit, and the
//! request-head timeout that closes slow and idle connections.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{request, Reply, Server};

fn start(args: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["--memory"];
    all.extend_from_slice(args);
    (Server::start(dir.path(), &all), dir)
}

fn put(addr: SocketAddr, path: &str, body: &[u8]) -> Reply {
    request(addr, "PUT", path, &[("content-type", "text/plain")], body).unwrap()
}

fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Reply {
    request(addr, "POST", path, &[("content-type", "text/plain")], body).unwrap()
}

fn code(r: &Reply) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("problem+json body");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    v["code"].as_str().unwrap().to_string()
}

/// The value of one metric series (exact name and labels).
fn metric(addr: SocketAddr, series: &str) -> f64 {
    let r = request(addr, "GET", "/metrics", &[], b"").unwrap();
    String::from_utf8(r.body)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn wait_for(addr: SocketAddr, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(addr, series) != value {
        assert!(Instant::now() < deadline, "{series} never reached {value}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a request head (and optionally part of a body) and keeps the
/// connection open without reading.
fn hold(addr: SocketAddr, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

#[test]
fn storage_quotas_and_body_size() {
    let (s, _d) = start(&[
        "--max-stream-bytes",
        "10",
        "--max-total-bytes",
        "15",
        "--max-streams",
        "2",
        "--max-body-bytes",
        "8",
    ]);
    let a = "/v1/stream/a";
    assert_eq!(put(s.addr, a, b"12345678").status, 201);
    let r = post(s.addr, a, b"123456789");
    assert_eq!((r.status, code(&r).as_str()), (413, "payload-too-large"));
    let r = post(s.addr, a, b"abc");
    assert_eq!((r.status, code(&r).as_str()), (413, "stream-size-limit"));
    assert_eq!(post(s.addr, a, b"ab").status, 204);
    let r = put(s.addr, "/v1/stream/b", b"123456");
    assert_eq!((r.status, code(&r).as_str()), (507, "storage-quota"));
    assert_eq!(put(s.addr, "/v1/stream/b", b"12345").status, 201);
    let r = put(s.addr, "/v1/stream/c", b"");
    assert_eq!((r.status, code(&r).as_str()), (507, "stream-count-limit"));
    assert_eq!(metric(s.addr, "ds_stored_bytes"), 15.0);
    assert_eq!(metric(s.addr, "ds_streams"), 2.0);
}

/// A chunked POST (no declared length): the body limit is counted as the
/// chunks arrive.
fn post_chunked(addr: SocketAddr, path: &str, chunks: &[&[u8]]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for c in chunks {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

#[test]
fn chunked_bodies_are_held_to_the_body_limit() {
    let (s, _d) = start(&["--max-body-bytes", "8"]);
    let a = "/v1/stream/a";
    assert_eq!(put(s.addr, a, b"").status, 201);
    let over = post_chunked(s.addr, a, &[b"12345", b"6789"]);
    assert!(over.starts_with("HTTP/1.1 413"), "{over}");
    assert!(over.contains("payload-too-large"), "{over}");
    let fits = post_chunked(s.addr, a, &[b"1234", b"5678"]);
    assert!(fits.starts_with("HTTP/1.1 204"), "{fits}");
    assert_eq!(support::read_all(s.addr, a), b"12345678");
}

#[test]
fn live_reader_limits() {
    let (s, _d) = start(&[
        "--max-live-readers",
        "2",
        "--max-live-readers-per-stream",
        "1",
        "--long-poll-timeout-ms",
        "1500",
    ]);
    for p in ["a", "b", "c"] {
        assert_eq!(put(s.addr, &format!("/v1/stream/{p}"), b"x").status, 201);
    }
    let tail = "0000000000000000_0000000000000001";
    let live = |path: &str, mode: &str| {
        format!("GET /v1/stream/{path}?offset={tail}&live={mode} HTTP/1.1\r\nhost: x\r\n\r\n")
    };
    let _poll = hold(s.addr, &live("a", "long-poll"));
    wait_for(s.addr, "ds_live_readers{mode=\"long_poll\"}", 1.0);
    let r = request(
        s.addr,
        "GET",
        &format!("/v1/stream/a?offset={tail}&live=sse"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!((r.status, code(&r).as_str()), (429, "stream-readers-limit"));
    assert_eq!(r.header("retry-after"), Some("1"));
    let _sse = hold(s.addr, &live("b", "sse"));
    wait_for(s.addr, "ds_live_readers{mode=\"sse\"}", 1.0);
    let r = request(
        s.addr,
        "GET",
        &format!("/v1/stream/c?offset={tail}&live=long-poll"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!((r.status, code(&r).as_str()), (503, "live-readers-limit"));
    assert_eq!(r.header("retry-after"), Some("1"));
    // Catch-up reads are not live and are never limited.
    assert_eq!(
        request(s.addr, "GET", "/v1/stream/c?offset=-1", &[], b"")
            .unwrap()
            .status,
        200
    );
    // When the long-poll times out its slot frees up.
    wait_for(s.addr, "ds_live_readers{mode=\"long_poll\"}", 0.0);
    let r = request(
        s.addr,
        "GET",
        &format!("/v1/stream/c?offset={tail}&live=long-poll"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert!(
        metric(
            s.addr,
            "ds_rejected_requests_total{reason=\"live_readers\"}"
        ) >= 1.0
    );
}

#[test]
fn per_client_rate_limit() {
    let (s, _d) = start(&["--rate-limit-per-second", "5", "--rate-limit-burst", "5"]);
    let statuses: Vec<Reply> = (0..20)
        .map(|_| request(s.addr, "HEAD", "/v1/stream/none", &[], b"").unwrap())
        .collect();
    let limited: Vec<&Reply> = statuses.iter().filter(|r| r.status == 429).collect();
    assert!(limited.len() >= 10, "{} of 20 limited", limited.len());
    assert!(statuses.iter().all(|r| r.status == 404 || r.status == 429));
    let r = request(s.addr, "GET", "/v1/stream/none", &[], b"").unwrap();
    assert_eq!((r.status, code(&r).as_str()), (429, "rate-limited"));
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // The bucket refills at the configured rate.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        request(s.addr, "HEAD", "/v1/stream/none", &[], b"")
            .unwrap()
            .status,
        404
    );
    // Health checks are not rate limited.
    assert_eq!(
        request(s.addr, "GET", "/healthz", &[], b"").unwrap().status,
        200
    );
}

#[test]
fn writes_are_shed_under_a_flood() {
    let (s, _d) = start(&["--max-pending-writes", "4"]);
    let path = "/v1/stream/flood";
    assert_eq!(put(s.addr, path, b"").status, 201);
    // Four writes whose bodies are still arriving fill the write queue.
    let mut holders: Vec<TcpStream> = (0..4)
        .map(|i| {
            hold(
                s.addr,
                &format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{i}"),
            )
        })
        .collect();
    wait_for(s.addr, "ds_writes_in_flight", 4.0);
    // A flood from many clients is answered at once with 503 + Retry-After.
    let addr = s.addr;
    let flood: Vec<_> = (0..40)
        .map(|_| std::thread::spawn(move || post(addr, path, b"zz")))
        .collect();
    for t in flood {
        let r = t.join().unwrap();
        assert_eq!((r.status, code(&r).as_str()), (503, "write-queue-full"));
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert!(
        metric(
            s.addr,
            "ds_rejected_requests_total{reason=\"write_queue_full\"}"
        ) >= 40.0
    );
    // The held writes complete normally; nothing of the shed ones was kept.
    for h in &mut holders {
        h.write_all(b"!").unwrap();
        let mut out = String::new();
        h.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 204"), "{out}");
    }
    let r = request(s.addr, "GET", &format!("{path}?offset=-1"), &[], b"").unwrap();
    let mut body = r.body.clone();
    body.sort();
    assert_eq!(body, b"!!!!0123");
    assert_eq!(post(s.addr, path, b"ok").status, 204);
}

#[test]
fn huge_headers_get_431() {
    let (s, _d) = start(&[]);
    let big = "x".repeat(100 << 10);
    let r = request(s.addr, "GET", "/v1/stream/a", &[("x-big", &big)], b"");
    match r {
        Ok(r) => {
            assert_eq!(r.status, 431);
            if !r.body.is_empty() {
                assert_eq!(code(&r), "headers-too-large");
            }
        }
        // The server may close before the client finished sending.
        Err(e) => assert!(matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )),
    }
    assert_eq!(
        request(s.addr, "GET", "/healthz", &[], b"").unwrap().status,
        200
    );
}

#[test]
fn connection_limit_and_head_timeout() {
    let (s, _d) = start(&["--max-connections", "3", "--header-timeout-ms", "1000"]);
    // Three idle connections take every slot; then a fourth is closed at
    // once. Until the server has counted all three (and closed whatever
    // connection the start-up probe left), a fourth may still be served, or
    // one of the three refused: then the attempt starts over (the head
    // timeout closes leftovers within a second).
    let mut buf = [0u8; 64];
    let held = |c: &mut TcpStream| {
        c.set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        let mut b = [0u8; 1];
        matches!(c.read(&mut b), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    };
    let mut attempts = 0;
    let idle = loop {
        attempts += 1;
        assert!(
            attempts <= 5,
            "a connection over the limit is closed at once"
        );
        let mut idle: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(s.addr).unwrap())
            .collect();
        if !idle.iter_mut().all(held) {
            std::thread::sleep(Duration::from_millis(1200));
            continue;
        }
        let mut extra = TcpStream::connect(s.addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        if extra.read(&mut buf).unwrap_or(0) == 0 {
            break idle;
        }
        std::thread::sleep(Duration::from_millis(1200));
    };
    // Idle connections (and slow request heads) are closed after the
    // head timeout, which frees their slots.
    let started = Instant::now();
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = c.read(&mut buf).unwrap_or(0);
        assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost:").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = slow.read(&mut buf).unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
    assert_eq!(
        request(s.addr, "GET", "/healthz", &[], b"").unwrap().status,
        200
    );
    assert!(metric(s.addr, "ds_rejected_connections_total") >= 1.0);
}

#[test]
fn a_reader_that_stops_reading_is_disconnected() {
    let (s, _d) = start(&["--send-timeout-ms", "500", "--max-live-readers", "1"]);
    let path = "/v1/stream/firehose";
    assert_eq!(put(s.addr, path, b"").status, 201);
    let stuck = hold(
        s.addr,
        &format!("GET {path}?offset=-1&live=sse HTTP/1.1\r\nhost: x\r\n\r\n"),
    );
    wait_for(s.addr, "ds_live_readers{mode=\"sse\"}", 1.0);
    // Far more than the socket buffers hold; the reader never reads.
    let chunk = vec![b'x'; 512 << 10];
    for _ in 0..48 {
        assert_eq!(post(s.addr, path, &chunk).status, 204);
    }
    // The server gives up on it, and its live-reader slot is free again.
    wait_for(s.addr, "ds_live_readers{mode=\"sse\"}", 0.0);
    let tail = request(s.addr, "HEAD", path, &[], b"").unwrap();
    let tail = tail.header("stream-next-offset").unwrap();
    let mut again = hold(
        s.addr,
        &format!("GET {path}?offset={tail}&live=sse HTTP/1.1\r\nhost: x\r\n\r\n"),
    );
    let mut buf = [0u8; 12];
    again.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    drop(stuck);
}
