//! Backup and inspection from the outside: populate a server over HTTP,
//! stop it, `export` its data directory, `import` into another, serve that,
//! and compare every stream over HTTP; conflict modes, damaged archives,
//! prefixes, `list` and `inspect`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use support::{request, Reply, Server};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .args(args)
        .env_remove("DS_DATA_DIR")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = cli(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    request(addr, method, &format!("/v1/stream/{path}"), headers, body).unwrap()
}

/// Streams with every kind of state an archive must carry.
fn populate(addr: SocketAddr) -> Vec<&'static str> {
    let text = [("content-type", "text/plain")];
    let json = [("content-type", "application/json")];
    assert_eq!(call(addr, "PUT", "bytes", &text, b"hello ").status, 201);
    let seq = [("content-type", "text/plain"), ("stream-seq", "0005")];
    assert_eq!(call(addr, "POST", "bytes", &seq, b"world").status, 204);
    assert_eq!(
        call(addr, "PUT", "tenant-a/json", &json, b"[1,{\"a\":2}]").status,
        201
    );
    assert_eq!(
        call(addr, "POST", "tenant-a/json", &json, b"\"three\"").status,
        204
    );
    assert_eq!(
        call(addr, "PUT", "ttl", &[("stream-ttl", "86400")], b"\x00\xff").status,
        201
    );
    let until = [("stream-expires-at", "2099-12-31T23:59:59Z")];
    assert_eq!(call(addr, "PUT", "until", &until, b"").status, 201);
    let producer = |seq: &'static str, close: bool| {
        let mut h = vec![
            ("content-type", "text/plain"),
            ("producer-id", "writer-1"),
            ("producer-epoch", "3"),
            ("producer-seq", seq),
        ];
        if close {
            h.push(("stream-closed", "true"));
        }
        h
    };
    assert_eq!(call(addr, "PUT", "closed", &text, b"").status, 201);
    assert_eq!(
        call(addr, "POST", "closed", &producer("0", false), b"a").status,
        200
    );
    assert_eq!(
        call(addr, "POST", "closed", &producer("1", true), b"b").status,
        200
    );
    assert_eq!(call(addr, "PUT", "src", &text, b"source-bytes").status, 201);
    let fork = [
        ("stream-forked-from", "src"),
        ("stream-fork-offset", "0000000000000000_0000000000000006"),
    ];
    assert_eq!(call(addr, "PUT", "tenant-a/fork", &fork, b"").status, 201);
    assert_eq!(
        call(addr, "POST", "tenant-a/fork", &text, b"+fork").status,
        204
    );
    assert_eq!(call(addr, "DELETE", "src", &[], b"").status, 204);
    vec![
        "bytes",
        "tenant-a/json",
        "ttl",
        "until",
        "closed",
        "src",
        "tenant-a/fork",
    ]
}

/// What a client can observe of a stream: HEAD state and all its bytes.
fn observe(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let head = call(addr, "HEAD", path, &[], b"");
    let mut state: Vec<(String, String)> = head
        .headers
        .iter()
        .filter(|(n, _)| {
            [
                "content-type",
                "stream-next-offset",
                "stream-closed",
                "stream-expires-at",
            ]
            .contains(&n.as_str())
        })
        .cloned()
        .collect();
    if let Some(ttl) = head.header("stream-ttl") {
        state.push(("stream-ttl".into(), ttl.into()));
    }
    state.sort();
    let body = if head.status == 200 {
        call(addr, "GET", &format!("{path}?offset=-1"), &[], b"").body
    } else {
        Vec::new()
    };
    (head.status, state, body)
}

/// Stops a server gracefully (SIGTERM) and waits for it.
fn stop(mut server: Server) {
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    server.child.wait().unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn export_import_round_trip_stream_by_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let archive = tmp.path().join("backup.dsa");

    let server = Server::start(&a, &[]);
    let paths = populate(server.addr);
    let before: Vec<_> = paths.iter().map(|p| observe(server.addr, p)).collect();
    // Offline commands refuse a data directory a server holds (exit 3).
    let busy = cli(&["export", "--data-dir", s(&a), "-o", s(&archive)]);
    assert_eq!(
        busy.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    stop(server);

    let out = ok(&["export", "--data-dir", s(&a), "-o", s(&archive)]);
    assert!(out.contains("exported 7 streams"), "{out}");
    let listed = ok(&["list", "--data-dir", s(&a)]);
    assert!(
        listed.contains("tenant-a/fork") && listed.contains("fork of src"),
        "{listed}"
    );
    assert!(listed.contains("deleted (kept for forks)"), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "list",
        "--data-dir",
        s(&a),
        "--json",
        "--prefix",
        "tenant-a/",
    ]))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let inspected: serde_json::Value = serde_json::from_str(&ok(&[
        "inspect",
        "--data-dir",
        s(&a),
        "closed",
        "--records",
        "5",
    ]))
    .unwrap();
    assert_eq!(inspected["closed"], true);
    assert_eq!(inspected["closed_by"]["producer"], "writer-1");
    assert_eq!(inspected["producers"]["writer-1"]["epoch"], 3);
    // Two appends ("a", "b"); the store may have merged them into one
    // record when it checkpointed the log (byte streams only).
    let records = inspected["first_records"].as_array().unwrap();
    assert_eq!(inspected["records"], records.len());
    let text: String = records
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "ab");

    let out = ok(&["import", "--data-dir", s(&b), "-i", s(&archive)]);
    assert!(out.contains("imported 7 streams"), "{out}");
    let server = Server::start(&b, &[]);
    for (p, was) in paths.iter().zip(&before) {
        assert_eq!(&observe(server.addr, p), was, "stream {p}");
    }
    assert_eq!(before[5].0, 410, "the soft-deleted source stays deleted");
    assert_eq!(before[6].2, b"source+fork");
    // Producer and Stream-Seq state came along.
    let dup = [
        ("content-type", "text/plain"),
        ("producer-id", "writer-1"),
        ("producer-epoch", "3"),
        ("producer-seq", "1"),
        ("stream-closed", "true"),
    ];
    let r = call(server.addr, "POST", "closed", &dup, b"b");
    assert_eq!((r.status, r.header("stream-closed")), (204, Some("true")));
    let stale = [("content-type", "text/plain"), ("stream-seq", "0004")];
    assert_eq!(call(server.addr, "POST", "bytes", &stale, b"x").status, 409);
    stop(server);

    // Conflicts: fail (the default) changes nothing; skip; replace.
    let o = cli(&["import", "--data-dir", s(&b), "-i", s(&archive)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exist"));
    let out = ok(&[
        "import",
        "--data-dir",
        s(&b),
        "-i",
        s(&archive),
        "--on-conflict",
        "skip",
    ]);
    assert!(out.contains("imported 0 streams"), "{out}");
    let out = ok(&[
        "import",
        "--data-dir",
        s(&b),
        "-i",
        s(&archive),
        "--on-conflict",
        "replace",
    ]);
    assert!(
        out.contains("skipped src"),
        "a source its forks still read is kept: {out}"
    );
    let server = Server::start(&b, &[]);
    for (p, was) in paths.iter().zip(&before) {
        assert_eq!(&observe(server.addr, p), was, "stream {p} after replace");
    }
}

#[test]
fn prefixes_and_damaged_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let server = Server::start(&a, &[]);
    populate(server.addr);
    stop(server);
    let archive = tmp.path().join("tenant-a.dsa");
    let out = ok(&[
        "export",
        "--data-dir",
        s(&a),
        "--prefix",
        "tenant-a/",
        "-o",
        s(&archive),
    ]);
    assert!(
        out.contains("exported 3 streams"),
        "the fork's source comes along: {out}"
    );

    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let broken = tmp.path().join("broken.dsa");
    std::fs::write(&broken, &bytes).unwrap();
    let o = cli(&[
        "import",
        "--data-dir",
        s(&b),
        "-i",
        s(&broken),
        "--on-conflict",
        "skip",
    ]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("corrupt") || err.contains("malformed"),
        "{err}"
    );
    let truncated = tmp.path().join("truncated.dsa");
    std::fs::write(&truncated, &bytes[..middle]).unwrap();
    let o = cli(&["import", "--data-dir", s(&b), "-i", s(&truncated)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("truncated"));

    // Nothing was imported from the damaged files.
    ok(&["import", "--data-dir", s(&b), "-i", s(&archive)]);
    let listed = ok(&["list", "--data-dir", s(&b)]);
    assert!(listed.contains("3 streams"), "{listed}");
}
