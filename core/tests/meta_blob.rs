//! Stream metadata is stored as a binary blob; a store written by an
//! earlier version (JSON blobs) still opens, reads and appends, and its
//! blobs become binary as its streams are written.

use ds_core::stream::StreamMeta;
use ds_core::{
    Batch, Body, Config, Engine, MemStore, Method, Op, Outcome, Request, Store, UnixMillis,
};

const T0: UnixMillis = UnixMillis(1_800_000_000_000);
const PATH: &str = "/v1/stream/old";

fn send(engine: &mut Engine<MemStore>, req: Request) -> ds_core::Response {
    match engine.handle_and_commit(req.header("host", "ds.test"), T0) {
        Outcome::Respond(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

fn stored_blob(store: &MemStore) -> Vec<u8> {
    let metas = store.load_meta().unwrap();
    metas
        .into_iter()
        .find(|(p, _)| p == PATH)
        .expect("stored")
        .1
}

#[test]
fn json_metadata_of_earlier_versions_still_opens_and_becomes_binary() {
    let store = MemStore::new();
    let mut engine = Engine::open(store.clone(), Config::default(), T0, 1).unwrap();
    engine.commit_pending();
    let create = Request::new(Method::Put, PATH)
        .header("content-type", "text/plain")
        .header("producer-id", "p");
    assert_eq!(send(&mut engine, create).status, 201);
    let append = |seq: u64, body: &str| {
        Request::new(Method::Post, PATH)
            .header("content-type", "text/plain")
            .header("producer-id", "p")
            .header("producer-epoch", "0")
            .header("producer-seq", &seq.to_string())
            .body(body.as_bytes().to_vec())
    };
    assert_eq!(send(&mut engine, append(0, "hello")).status, 200);
    drop(engine);

    // Rewrite the metadata as the JSON an earlier version stored.
    let blob = stored_blob(&store);
    assert_eq!(blob[0], 0, "binary blob");
    let meta = StreamMeta::decode(PATH, &blob).unwrap();
    assert_eq!((meta.tail, meta.producers.len()), (5, 1));
    let json = serde_json::to_vec(&meta).unwrap();
    assert!(
        json.len() > 4 * blob.len(),
        "{} vs {}",
        json.len(),
        blob.len()
    );
    store
        .commit(&Batch {
            ops: vec![Op::PutMeta {
                path: PATH.to_string(),
                meta: json,
            }],
        })
        .unwrap();

    let mut engine = Engine::open(store.clone(), Config::default(), T0, 2).unwrap();
    engine.commit_pending();
    // The producer state came through: a retry is a duplicate, the next
    // sequence number appends.
    assert_eq!(send(&mut engine, append(0, "hello")).status, 204);
    assert_eq!(send(&mut engine, append(1, " world")).status, 200);
    let read = send(
        &mut engine,
        Request::new(Method::Get, PATH).query("offset=-1"),
    );
    let body = match read.body {
        Body::Full(b) => b,
        Body::Pieces(p) => p.to_vec(),
        other => panic!("unexpected body {other:?}"),
    };
    assert_eq!(body, b"hello world");
    assert_eq!(stored_blob(&store)[0], 0, "rewritten as binary");
}
