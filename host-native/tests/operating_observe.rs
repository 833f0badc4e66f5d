//! Observability from the outside: `/healthz`, `/readyz`, Prometheus
//! `/metrics` scraped and parsed, request ids, and structured logs (JSON at
//! debug carries the request id; nothing per request at the default level).

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{request, Server};

/// Parses OpenMetrics text into `series → value`, checking every line.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let r = request(addr, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(r.body).unwrap();
    assert_eq!(text.lines().last(), Some("# EOF"));
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        assert!(series.starts_with("ds_"), "{line}");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        out.insert(series.to_string(), value);
    }
    out
}

#[test]
fn health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--long-poll-timeout-ms", "5000"]);
    assert_eq!(
        request(s.addr, "GET", "/healthz", &[], b"").unwrap().body,
        b"ok\n"
    );
    assert_eq!(
        request(s.addr, "GET", "/readyz", &[], b"").unwrap().status,
        200
    );
    // Operational endpoints are not streams, and streams are not them.
    assert_eq!(
        request(s.addr, "GET", "/v1/stream/metrics", &[], b"")
            .unwrap()
            .status,
        404
    );

    let p = "/v1/stream/m";
    let text = [("content-type", "text/plain")];
    assert_eq!(request(s.addr, "PUT", p, &text, b"").unwrap().status, 201);
    for body in [&b"one"[..], b"two", b"three"] {
        assert_eq!(request(s.addr, "POST", p, &text, body).unwrap().status, 204);
    }
    let r = request(
        s.addr,
        "GET",
        &format!("{p}?offset=-1"),
        &[("x-request-id", "trace-42")],
        b"",
    )
    .unwrap();
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    let generated = request(s.addr, "HEAD", p, &[], b"").unwrap();
    assert!(!generated.header("x-request-id").unwrap().is_empty());
    let tail = generated.header("stream-next-offset").unwrap().to_string();
    let addr = s.addr;
    let poll = std::thread::spawn(move || {
        request(
            addr,
            "GET",
            &format!("/v1/stream/m?offset={tail}&live=long-poll"),
            &[],
            b"",
        )
        .unwrap()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape(s.addr).get("ds_live_readers{mode=\"long_poll\"}") != Some(&1.0) {
        assert!(Instant::now() < deadline, "the long-poll never showed up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        request(s.addr, "POST", p, &text, b"four").unwrap().status,
        204
    );
    assert_eq!(poll.join().unwrap().body, b"four");

    let m = scrape(s.addr);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("missing {k}"));
    assert_eq!(
        get("ds_http_requests_total{operation=\"append\",status=\"204\"}"),
        4.0
    );
    assert_eq!(
        get("ds_http_requests_total{operation=\"create\",status=\"201\"}"),
        1.0
    );
    assert_eq!(
        get("ds_http_requests_total{operation=\"long_poll\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        get("ds_http_request_duration_seconds_count{operation=\"append\"}"),
        4.0
    );
    // The catch-up read and the 404 of /v1/stream/metrics.
    assert_eq!(
        get("ds_http_request_duration_seconds_bucket{le=\"+Inf\",operation=\"read\"}"),
        2.0
    );
    assert_eq!(get("ds_appends_total"), 4.0);
    assert_eq!(get("ds_append_bytes_total"), 15.0);
    assert!(get("ds_commit_batch_writes_count") >= 1.0);
    assert!(
        get("ds_commit_batch_writes_sum") >= 5.0,
        "create + 4 appends committed"
    );
    assert!(get("ds_commit_duration_seconds_count") >= 1.0);
    assert!(
        get("ds_commit_duration_seconds_sum") > 0.0,
        "fsyncs take time"
    );
    assert_eq!(get("ds_commit_failures_total"), 0.0);
    assert_eq!(get("ds_live_readers{mode=\"long_poll\"}"), 0.0);
    assert_eq!(get("ds_live_readers{mode=\"sse\"}"), 0.0);
    assert_eq!(get("ds_streams"), 1.0);
    assert_eq!(get("ds_stored_bytes"), 15.0);
    assert_eq!(get("ds_subscription_wakes_total"), 0.0);
    assert!(get("ds_open_connections") >= 1.0);
}

struct Logged {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_logged(log: &Path, args: &[&str]) -> Logged {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .args(["--bind", &addr.to_string(), "--memory"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while request(addr, "GET", "/healthz", &[], b"").is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    Logged { child, addr }
}

/// Stops the server with SIGTERM so it flushes its logs, and returns them.
fn stop(mut l: Logged, log: &Path) -> String {
    Command::new("kill")
        .args(["-TERM", &l.child.id().to_string()])
        .status()
        .unwrap();
    let _ = l.child.wait();
    let mut text = String::new();
    std::fs::File::open(log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn json_logs_carry_request_ids_and_info_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("debug.log");
    let l = start_logged(&log, &["--log-format", "json", "--log-level", "debug"]);
    let r = request(
        l.addr,
        "PUT",
        "/v1/stream/logged",
        &[("x-request-id", "req-abc-123")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 201);
    let text = stop(l, &log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|v| v["message"] == "request" && v["span"]["id"] == "req-abc-123")
        .unwrap_or_else(|| panic!("no request line with its id in:\n{text}"));
    assert_eq!(line["status"], 201);
    assert_eq!(line["level"], "DEBUG");

    let log = dir.path().join("info.log");
    let l = start_logged(&log, &[]);
    for _ in 0..5 {
        request(l.addr, "PUT", "/v1/stream/quiet", &[], b"").unwrap();
    }
    let mut raw = TcpStream::connect(l.addr).unwrap();
    raw.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let text = stop(l, &log);
    assert!(
        !text.contains("request"),
        "per-request lines at info:\n{text}"
    );
}
