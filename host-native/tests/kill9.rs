//! kill -9 under load: concurrent writers (half of them idempotent
//! producers that retry on errors) append to the real server binary; the
//! server is SIGKILLed mid-load and restarted on the same data directory.
//! Every acknowledged append must be present exactly once and in order;
//! the only other data allowed is a plain writer's single in-flight append.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{read_all, request, Server};

const WRITERS: usize = 8;

/// What one writer did before the kill.
#[derive(Default, Debug)]
struct Log {
    acked: Vec<String>,
    in_flight: Option<String>,
    /// For producers: the next sequence number to send.
    seq: u64,
}

fn record(i: usize, n: u64) -> String {
    format!("w{i}-{n};")
}

fn producer_headers(i: usize, seq: u64) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "text/plain".into()),
        ("producer-id".into(), format!("writer-{i}")),
        ("producer-epoch".into(), "0".into()),
        ("producer-seq".into(), seq.to_string()),
    ]
}

fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<u16> {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    request(addr, "POST", path, &h, body.as_bytes()).map(|r| r.status)
}

#[test]
fn acknowledged_appends_survive_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let addr = server.addr;
    for i in 0..WRITERS {
        let r = request(
            addr,
            "PUT",
            &format!("/v1/stream/w{i}"),
            &[("content-type", "text/plain")],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 201);
    }
    let logs: Vec<Arc<Mutex<Log>>> = (0..WRITERS)
        .map(|_| Arc::new(Mutex::new(Log::default())))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (log, stop, total) = (Arc::clone(&logs[i]), Arc::clone(&stop), Arc::clone(&total));
            std::thread::spawn(move || {
                let path = format!("/v1/stream/w{i}");
                let producer = i % 2 == 0;
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let body = record(i, n);
                    let headers = if producer {
                        producer_headers(i, n)
                    } else {
                        vec![("content-type".to_string(), "text/plain".to_string())]
                    };
                    log.lock().unwrap().in_flight = Some(body.clone());
                    match post(addr, &path, &headers, &body) {
                        Ok(200 | 204) => {
                            let mut l = log.lock().unwrap();
                            l.acked.push(body);
                            l.in_flight = None;
                            n += 1;
                            l.seq = n;
                            total.fetch_add(1, Ordering::SeqCst);
                        }
                        // The server died: stop; what is in flight is in doubt.
                        Ok(status) if status >= 500 => return,
                        Ok(status) => panic!("writer {i}: unexpected status {status}"),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // Let load build up, then pull the plug.
    while total.load(Ordering::SeqCst) < 1500 {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }

    let server = Server::start(dir.path(), &[]);
    let addr = server.addr;
    let mut acknowledged = 0;
    for (i, log) in logs.iter().enumerate() {
        let mut log = log.lock().unwrap();
        let path = format!("/v1/stream/w{i}");
        if i % 2 == 0 {
            // A producer retries its in-flight append after the restart; it
            // must land exactly once whether or not it was committed.
            if let Some(body) = log.in_flight.take() {
                let status = post(addr, &path, &producer_headers(i, log.seq), &body).unwrap();
                assert!(
                    status == 200 || status == 204,
                    "writer {i}: retry got {status}"
                );
                log.acked.push(body);
                log.seq += 1;
            }
            // And carries on.
            let body = record(i, log.seq);
            assert_eq!(
                post(addr, &path, &producer_headers(i, log.seq), &body).unwrap(),
                200
            );
            log.acked.push(body);
        }
        let data = String::from_utf8(read_all(addr, &path)).unwrap();
        let expected: String = log.acked.concat();
        acknowledged += log.acked.len();
        if data != expected {
            let with_doubt = format!("{expected}{}", log.in_flight.clone().unwrap_or_default());
            assert!(
                i % 2 == 1 && data == with_doubt,
                "writer {i}: after kill -9 the stream holds\n{data}\nbut the acknowledged appends were\n{expected}"
            );
        }
    }
    assert!(
        acknowledged >= 1500,
        "the load was real ({acknowledged} acknowledged appends)"
    );
    drop(server);
}
