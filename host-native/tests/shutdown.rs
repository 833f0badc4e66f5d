//! Graceful shutdown: on SIGTERM, parked long-polls are answered (204),
//! SSE bodies end cleanly, acknowledged writes are on disk, and the process
//! exits 0.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{read_all, request, Server};

fn raw_get(server: &Server, target: &str) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    s
}

#[test]
fn sigterm_answers_live_readers_and_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--long-poll-timeout-ms", "60000"]);
    let ct = [("content-type", "text/plain")];
    assert_eq!(
        request(server.addr, "PUT", "/v1/stream/s", &ct, b"one")
            .unwrap()
            .status,
        201
    );
    let tail = request(server.addr, "HEAD", "/v1/stream/s", &[], b"").unwrap();
    let tail = tail.header("stream-next-offset").unwrap().to_string();
    let mut poll = raw_get(
        &server,
        &format!("/v1/stream/s?offset={tail}&live=long-poll"),
    );
    let mut sse = raw_get(&server, "/v1/stream/s?offset=-1&live=sse");
    // Both readers are parked before the signal.
    let mut first = [0u8; 64];
    let n = sse.read(&mut first).unwrap();
    assert!(n > 0, "the SSE head arrived");
    assert_eq!(
        request(server.addr, "POST", "/v1/stream/s", &ct, b" two")
            .unwrap()
            .status,
        204
    );
    let mut poll_reply = Vec::new();
    // The append answered the long-poll; park a fresh one at the new tail.
    poll.read_to_end(&mut poll_reply).unwrap();
    assert!(String::from_utf8_lossy(&poll_reply).starts_with("HTTP/1.1 200"));
    let tail = request(server.addr, "HEAD", "/v1/stream/s", &[], b"").unwrap();
    let tail = tail.header("stream-next-offset").unwrap().to_string();
    let mut poll = raw_get(
        &server,
        &format!("/v1/stream/s?offset={tail}&live=long-poll"),
    );
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut reply = Vec::new();
    poll.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 204"),
        "a parked long-poll is answered at shutdown: {reply}"
    );
    let mut rest = Vec::new();
    sse.read_to_end(&mut rest)
        .expect("the SSE body ends cleanly");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    // Live readers are woken at once (not at their next keep-alive, nor
    // cut off at the drain limit): well under a second here.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );

    let server = Server::start(dir.path(), &[]);
    assert_eq!(read_all(server.addr, "/v1/stream/s"), b"one two");
}
