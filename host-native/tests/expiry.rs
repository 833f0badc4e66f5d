//! Background expiry removes expired streams from disk, not only from view:
//! after the deadline, `handle_timeout` stages the removal, the commit purges
//! metadata and records from the redb shard, and a reopened directory holds
//! nothing of the stream.

use std::sync::Arc;

use ds_core::{Config, Engine, Method, Outcome, Request, Store, UnixMillis};
use durable_streams_server::redb_shards::RedbShards;

fn respond(
    engine: &mut Engine<Arc<RedbShards>>,
    req: Request,
    now: UnixMillis,
) -> ds_core::Response {
    match engine.handle_and_commit(req, now) {
        Outcome::Respond(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn expired_data_is_removed_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = UnixMillis(1_800_000_000_000);
    let store = Arc::new(RedbShards::open(dir.path(), 2).unwrap());
    let mut engine = Engine::open(Arc::clone(&store), Config::default(), t0, 1).unwrap();
    let put = Request::new(Method::Put, "/v1/stream/short")
        .header("content-type", "text/plain")
        .header("stream-ttl", "1")
        .body(vec![b'x'; 10_000]);
    assert_eq!(respond(&mut engine, put, t0).status, 201);
    let keep = Request::new(Method::Put, "/v1/stream/keep")
        .header("content-type", "text/plain")
        .body("kept");
    assert_eq!(respond(&mut engine, keep, t0).status, 201);
    let get = respond(
        &mut engine,
        Request::new(Method::Get, "/v1/stream/short").query("offset=-1"),
        t0,
    );
    let etag = get.header("etag").unwrap().trim_matches('"').to_string();
    let id = u64::from_str_radix(etag.split(':').next().unwrap(), 16).unwrap();
    assert_eq!(
        store
            .read("/v1/stream/short", id, 0, u64::MAX, usize::MAX)
            .unwrap()
            .len(),
        1
    );

    // The deadline passes with nobody touching the stream.
    let deadline = engine.poll_timeout().expect("an expiry is scheduled");
    assert_eq!(deadline, t0.plus_millis(1000));
    engine.handle_timeout(deadline);
    assert!(
        engine.has_pending_commit(),
        "the expiry is staged for commit"
    );
    engine.commit_pending();
    assert!(
        store
            .read("/v1/stream/short", id, 0, u64::MAX, usize::MAX)
            .unwrap()
            .is_empty(),
        "records purged"
    );
    drop(engine);
    drop(store);

    let store = Arc::new(RedbShards::open(dir.path(), 2).unwrap());
    let paths: Vec<String> = store
        .load_meta()
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(paths, vec!["/v1/stream/keep".to_string()]);
    assert!(store
        .read("/v1/stream/short", id, 0, u64::MAX, usize::MAX)
        .unwrap()
        .is_empty());
}
