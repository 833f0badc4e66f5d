//! Export → import round trips through the archive format, checked stream
//! by stream from the outside (HEAD, catch-up reads, producer and
//! `Stream-Seq` behaviour), plus the three conflict modes and quotas.

use ds_core::archive::{ArchiveReader, ArchiveWriter};
use ds_core::{
    ArchiveError, ArchiveInfo, Config, ConflictMode, Engine, MemStore, Method, Outcome, Quotas,
    Request, Response, UnixMillis,
};

const T0: UnixMillis = UnixMillis(1_767_225_600_000);
const B: &str = "/v1/stream/";

fn engine() -> Engine<MemStore> {
    engine_with(Config::default())
}

fn engine_with(config: Config) -> Engine<MemStore> {
    Engine::open(MemStore::new(), config, T0, 1).unwrap()
}

fn call(e: &mut Engine<MemStore>, req: Request) -> Response {
    match e.handle_and_commit(req, T0) {
        Outcome::Respond(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn put(e: &mut Engine<MemStore>, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut req = Request::new(Method::Put, format!("{B}{path}")).body(body.to_vec());
    for (n, v) in headers {
        req = req.header(n, v);
    }
    call(e, req)
}

fn post(e: &mut Engine<MemStore>, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut req = Request::new(Method::Post, format!("{B}{path}")).body(body.to_vec());
    for (n, v) in headers {
        req = req.header(n, v);
    }
    call(e, req)
}

/// HEAD headers that describe a stream, and its whole content.
fn describe(e: &mut Engine<MemStore>, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let head = call(e, Request::new(Method::Head, format!("{B}{path}")));
    let mut headers: Vec<(String, String)> = head
        .headers
        .iter()
        .filter(|(n, _)| {
            matches!(
                *n,
                "content-type"
                    | "stream-next-offset"
                    | "stream-closed"
                    | "stream-ttl"
                    | "stream-expires-at"
            )
        })
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    headers.sort();
    let mut body = Vec::new();
    if head.status == 200 {
        let mut offset = "-1".to_string();
        loop {
            let r = call(
                e,
                Request::new(Method::Get, format!("{B}{path}")).query(&format!("offset={offset}")),
            );
            assert_eq!(r.status, 200, "{path}");
            body.extend_from_slice(&r.body_bytes());
            let next = r.header("stream-next-offset").unwrap().to_string();
            if r.header("stream-up-to-date").is_some() || next == offset {
                break;
            }
            offset = next;
        }
    }
    (head.status, headers, body)
}

fn export(e: &Engine<MemStore>, prefix: &str) -> Vec<u8> {
    let info = ArchiveInfo {
        writer: "test".into(),
        created_at: T0.0,
        prefix: prefix.into(),
    };
    let mut w = ArchiveWriter::new(Vec::new(), &info).unwrap();
    let plan = e.export_plan(prefix, T0);
    let mut last = 0;
    e.export_archive(&plan, &mut w, &mut |done| last = done)
        .unwrap();
    assert_eq!(last, plan.bytes);
    w.finish().unwrap().0
}

fn import(e: &mut Engine<MemStore>, bytes: &[u8], mode: ConflictMode) -> ds_core::ImportSummary {
    e.import_archive(ArchiveReader::new(bytes).unwrap(), mode, T0)
        .unwrap()
}

/// A source with every kind of state the archive must carry.
fn populate(e: &mut Engine<MemStore>) -> Vec<&'static str> {
    put(e, "bytes", &[("content-type", "text/plain")], b"hello ");
    post(
        e,
        "bytes",
        &[("content-type", "text/plain"), ("stream-seq", "a1")],
        b"world",
    );
    put(e, "json", &[("content-type", "application/json")], b"[1,2]");
    post(
        e,
        "json",
        &[("content-type", "application/json")],
        br#"{"x":"y"}"#,
    );
    put(e, "ttl", &[("stream-ttl", "3600")], b"\x00\x01");
    put(
        e,
        "until",
        &[("stream-expires-at", "2099-01-01T00:00:00Z")],
        b"",
    );
    put(e, "closed", &[("content-type", "text/plain")], b"");
    let producer = [
        ("content-type", "text/plain"),
        ("producer-id", "p1"),
        ("producer-epoch", "2"),
        ("producer-seq", "0"),
    ];
    assert_eq!(post(e, "closed", &producer, b"one").status, 200);
    let close = [
        ("content-type", "text/plain"),
        ("producer-id", "p1"),
        ("producer-epoch", "2"),
        ("producer-seq", "1"),
        ("stream-closed", "true"),
    ];
    assert_eq!(post(e, "closed", &close, b"two").status, 200);
    // A fork with a sub-offset, of a source that is then deleted (soft).
    put(
        e,
        "src",
        &[("content-type", "application/json")],
        b"[1,2,3]",
    );
    let fork = put(
        e,
        "tenant-a/fork",
        &[
            ("stream-forked-from", "src"),
            ("stream-fork-offset", "0000000000000000_0000000000000000"),
            ("stream-fork-sub-offset", "2"),
        ],
        b"",
    );
    assert_eq!(
        fork.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&fork.body_bytes())
    );
    post(
        e,
        "tenant-a/fork",
        &[("content-type", "application/json")],
        b"[9]",
    );
    assert_eq!(
        call(e, Request::new(Method::Delete, format!("{B}src"))).status,
        204
    );
    vec![
        "bytes",
        "json",
        "ttl",
        "until",
        "closed",
        "src",
        "tenant-a/fork",
    ]
}

#[test]
fn everything_round_trips() {
    let mut a = engine();
    let paths = populate(&mut a);
    let archive = export(&a, "");
    let mut b = engine();
    let summary = import(&mut b, &archive, ConflictMode::Fail);
    assert_eq!(summary.imported.len(), paths.len(), "{summary:?}");
    for p in &paths {
        assert_eq!(describe(&mut a, p), describe(&mut b, p), "stream {p}");
    }
    assert_eq!(
        describe(&mut b, "src").0,
        410,
        "the source stays soft-deleted"
    );
    assert_eq!(b.stored_bytes(), a.stored_bytes());
    for e in [&mut a, &mut b] {
        // Stream-Seq state: a regression is refused, a later one accepted.
        let seq = |v| [("content-type", "text/plain"), ("stream-seq", v)];
        assert_eq!(post(e, "bytes", &seq("a0"), b"!").status, 409);
        assert_eq!(post(e, "bytes", &seq("a2"), b"!").status, 204);
        // Producer state: the closing request is recognised as a duplicate.
        let dup = [
            ("content-type", "text/plain"),
            ("producer-id", "p1"),
            ("producer-epoch", "2"),
            ("producer-seq", "1"),
            ("stream-closed", "true"),
        ];
        let r = post(e, "closed", &dup, b"two");
        assert_eq!(r.status, 204);
        assert_eq!(r.header("stream-closed"), Some("true"));
        // The fork keeps reading its soft-deleted source's bytes.
        let r = call(
            e,
            Request::new(Method::Get, format!("{B}tenant-a/fork")).query("offset=-1"),
        );
        assert_eq!(&*r.body_bytes(), b"[1,2,9]");
    }
}

#[test]
fn a_prefix_brings_fork_sources_along() {
    let mut a = engine();
    populate(&mut a);
    let plan = a.export_plan("tenant-a/", T0);
    assert_eq!(
        plan.paths,
        vec![format!("{B}src"), format!("{B}tenant-a/fork")]
    );
    let archive = export(&a, "tenant-a/");
    let mut b = engine();
    let summary = import(&mut b, &archive, ConflictMode::Skip);
    assert_eq!(summary.imported, vec!["src", "tenant-a/fork"]);
    assert_eq!(
        describe(&mut a, "tenant-a/fork"),
        describe(&mut b, "tenant-a/fork")
    );
}

#[test]
fn conflict_modes() {
    let mut a = engine();
    put(&mut a, "x", &[("content-type", "text/plain")], b"archived");
    put(&mut a, "y", &[("content-type", "text/plain")], b"new");
    let archive = export(&a, "");

    let mut b = engine();
    put(&mut b, "x", &[("content-type", "text/plain")], b"local");
    let conflicts = b
        .import_conflicts(ArchiveReader::new(&archive[..]).unwrap())
        .unwrap();
    assert_eq!(conflicts, vec!["x"]);
    let fail = b.import_archive(
        ArchiveReader::new(&archive[..]).unwrap(),
        ConflictMode::Fail,
        T0,
    );
    assert_eq!(fail.unwrap_err(), ArchiveError::Conflict(vec!["x".into()]));

    let s = import(&mut b, &archive, ConflictMode::Skip);
    assert_eq!(s.imported, vec!["y"]);
    assert_eq!(s.skipped.len(), 1);
    assert_eq!(describe(&mut b, "x").2, b"local");

    let s = import(&mut b, &archive, ConflictMode::Replace);
    assert_eq!(s.replaced, vec!["x", "y"]);
    assert_eq!(describe(&mut b, "x").2, b"archived");
    assert_eq!(describe(&mut b, "y").2, b"new");
}

#[test]
fn damaged_archives_change_nothing() {
    let mut a = engine();
    populate(&mut a);
    let mut archive = export(&a, "");
    let n = archive.len();
    archive[n / 2] ^= 1;
    let b = engine();
    let err = ArchiveReader::new(&archive[..]).and_then(|r| b.import_conflicts(r));
    assert!(err.is_err());
    assert_eq!(b.stream_count(), 0);
}

#[test]
fn quotas_refuse_writes_with_their_status() {
    let mut e = engine_with(Config {
        quotas: Quotas {
            max_stream_bytes: Some(10),
            max_streams: Some(2),
            max_total_bytes: Some(15),
        },
        ..Config::default()
    });
    let text = [("content-type", "text/plain")];
    assert_eq!(put(&mut e, "a", &text, b"12345678").status, 201);
    let r = post(&mut e, "a", &text, b"abc");
    assert_eq!(r.status, 413);
    assert!(String::from_utf8_lossy(&r.body_bytes()).contains("stream-size-limit"));
    assert_eq!(post(&mut e, "a", &text, b"ab").status, 204);
    assert_eq!(
        put(&mut e, "b", &text, b"123456").status,
        507,
        "total bytes"
    );
    assert_eq!(put(&mut e, "b", &text, b"12345").status, 201);
    let r = put(&mut e, "c", &text, b"");
    assert_eq!(r.status, 507);
    assert!(String::from_utf8_lossy(&r.body_bytes()).contains("stream-count-limit"));
    assert_eq!(e.stored_bytes(), 15);
    assert_eq!(
        call(&mut e, Request::new(Method::Delete, format!("{B}a"))).status,
        204
    );
    assert_eq!(e.stored_bytes(), 5);
    assert_eq!(put(&mut e, "c", &text, b"").status, 201);
}
