//! Deferred byte reads (`Store::defer_bytes`, `ds_core::pieces`): a store
//! that can read later gets catch-up bodies whose first window is read
//! now and the rest left to the response; loaded, they are exactly the
//! bytes an eager store returns, across a fork's chain too, and a deferred
//! part of a stream deleted meanwhile fails to load instead of sending
//! wrong bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ds_core::{
    load_exactly, Batch, Config, Deferred, Engine, MemStore, Method, Outcome, Pieces, Record,
    Request, Response, Store, StoreError, StreamId, UnixMillis,
};

const T0: UnixMillis = UnixMillis(1_800_000_000_000);
const WINDOW: usize = 64 << 10;

/// The memory store, but reads past the first window are deferred.
#[derive(Clone)]
struct Deferring {
    inner: MemStore,
    handed_out: Arc<AtomicUsize>,
    /// Says it defers, then declines every range.
    declines: bool,
}

struct Later {
    store: MemStore,
    path: String,
    id: StreamId,
    from: u64,
    end: u64,
}

impl Deferred for Later {
    fn len(&self) -> usize {
        (self.end - self.from) as usize
    }

    fn load(&self, out: &mut Pieces) -> Result<(), StoreError> {
        self.store
            .lend_bytes(&self.path, self.id, self.from, self.end, self.len(), out)
    }
}

impl Store for Deferring {
    fn load_meta(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.load_meta()
    }

    fn append_end(&self, path: &str, id: StreamId, at: u64) -> Result<Option<u64>, StoreError> {
        self.inner.append_end(path, id, at)
    }

    fn read(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.inner.read(path, id, from, end, max_bytes)
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        self.inner.commit(batch)
    }

    fn defers(&self) -> bool {
        true
    }

    fn defer_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
    ) -> Option<Arc<dyn Deferred>> {
        if self.declines {
            return None;
        }
        self.handed_out.fetch_add(1, Ordering::Relaxed);
        Some(Arc::new(Later {
            store: self.inner.clone(),
            path: path.to_string(),
            id,
            from,
            end,
        }))
    }
}

fn open(store: Deferring, max_read_bytes: usize) -> Engine<Deferring> {
    let config = Config {
        max_chunk_bytes: 1000,
        max_streamed_read_bytes: max_read_bytes,
        streamed_window_bytes: WINDOW,
        ..Config::default()
    };
    let mut engine = Engine::open(store, config, T0, 1).unwrap();
    engine.commit_pending();
    engine
}

fn send(engine: &mut Engine<Deferring>, req: Request) -> Response {
    let res = match engine.handle_and_commit(req.header("host", "ds.test"), T0) {
        Outcome::Respond(r) => r,
        other => panic!("unexpected {other:?}"),
    };
    engine.commit_pending();
    res
}

/// Bytes whose every position is recognisable.
fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

fn append(engine: &mut Engine<Deferring>, path: &str, from: usize, len: usize) -> String {
    let res = send(
        engine,
        Request::new(Method::Post, format!("/v1/stream/{path}"))
            .header("content-type", "application/octet-stream")
            .body(pattern(from, len)),
    );
    assert_eq!(res.status, 204, "append {path}");
    res.header("stream-next-offset").unwrap().to_string()
}

fn create(engine: &mut Engine<Deferring>, path: &str, fork: Option<(&str, &str)>) {
    let mut req = Request::new(Method::Put, format!("/v1/stream/{path}"))
        .header("content-type", "application/octet-stream");
    if let Some((source, offset)) = fork {
        req = req
            .header("stream-forked-from", &format!("/v1/stream/{source}"))
            .header("stream-fork-offset", offset);
    }
    assert_eq!(send(engine, req).status, 201, "create {path}");
}

/// The body of a read: its parts loaded, or the loading error.
fn read(engine: &mut Engine<Deferring>, path: &str, offset: &str) -> (Response, Pieces) {
    let mut res = send(
        engine,
        Request::new(Method::Get, format!("/v1/stream/{path}")).query(&format!("offset={offset}")),
    );
    assert_eq!(res.status, 200, "read {path}");
    let body = match std::mem::replace(&mut res.body, ds_core::Body::Empty) {
        ds_core::Body::Pieces(p) => p,
        ds_core::Body::Full(b) => Pieces::from(b),
        _ => panic!("not a data body"),
    };
    (res, body)
}

#[test]
fn a_long_read_defers_all_but_its_first_window_and_loads_the_same_bytes() {
    let store = Deferring {
        inner: MemStore::new(),
        handed_out: Arc::default(),
        declines: false,
    };
    let mut engine = open(store.clone(), 4 << 20);
    create(&mut engine, "a", None);
    let total = 3 * WINDOW + 1000;
    let mut at = 0;
    while at < total {
        let len = 70_000.min(total - at);
        append(&mut engine, "a", at, len);
        at += len;
    }
    let (res, mut body) = read(&mut engine, "a", "-1");
    assert_eq!(body.len(), total);
    assert_eq!(body.deferred(), total - WINDOW, "all but the first window");
    assert_eq!(
        store.handed_out.load(Ordering::Relaxed),
        3,
        "windows of {WINDOW}"
    );
    body.load().unwrap();
    assert_eq!(body.deferred(), 0);
    assert_eq!(body.to_vec(), pattern(0, total));
    assert_eq!(res.header("stream-up-to-date"), Some("true"));

    // A read no longer than a window is read now.
    let before = store.handed_out.load(Ordering::Relaxed);
    let next = res.header("stream-next-offset").unwrap().to_string();
    append(&mut engine, "a", total, 500);
    let (_, body) = read(&mut engine, "a", &next);
    assert_eq!((body.len(), body.deferred()), (500, 0));
    assert_eq!(store.handed_out.load(Ordering::Relaxed), before);
}

#[test]
fn a_read_is_cut_at_the_chunk_limit_and_a_fork_chain_is_stitched() {
    let store = Deferring {
        inner: MemStore::new(),
        handed_out: Arc::default(),
        declines: false,
    };
    let chunk = 2 * WINDOW + 123;
    let mut engine = open(store, chunk);
    create(&mut engine, "src", None);
    let first = WINDOW + 5000;
    let fork_at = append(&mut engine, "src", 0, first);
    // Bytes the source gets after the fork point are not the fork's.
    append(&mut engine, "src", first, 9999);
    create(&mut engine, "fork", Some(("src", &fork_at)));
    let own = 2 * WINDOW;
    append(&mut engine, "fork", first, own);
    let mut want = pattern(0, first);
    want.extend(pattern(first, own));

    let mut got = Vec::new();
    let mut offset = "-1".to_string();
    let mut reads = 0;
    loop {
        let (res, mut body) = read(&mut engine, "fork", &offset);
        assert!(body.len() <= chunk, "cut at the chunk limit");
        body.load().unwrap();
        got.extend(body.to_vec());
        reads += 1;
        offset = res.header("stream-next-offset").unwrap().to_string();
        if res.header("stream-up-to-date") == Some("true") {
            break;
        }
    }
    assert_eq!(reads, 2);
    assert_eq!(got, want);
}

#[test]
fn a_deferred_part_of_a_deleted_stream_fails_to_load() {
    let store = Deferring {
        inner: MemStore::new(),
        handed_out: Arc::default(),
        declines: false,
    };
    let mut engine = open(store, 4 << 20);
    create(&mut engine, "gone", None);
    append(&mut engine, "gone", 0, 2 * WINDOW);
    let (_, body) = read(&mut engine, "gone", "-1");
    let res = send(
        &mut engine,
        Request::new(Method::Delete, "/v1/stream/gone".to_string()),
    );
    assert_eq!(res.status, 204);
    let (_, later) = body.into_parts();
    let mut out = Pieces::new();
    let err = load_exactly(later[0].as_ref(), &mut out).unwrap_err();
    assert!(err.to_string().contains("deleted meanwhile"), "{err}");
}

#[test]
fn a_store_that_declines_to_defer_ends_the_chunk_after_what_it_read() {
    let store = Deferring {
        inner: MemStore::new(),
        handed_out: Arc::default(),
        declines: true,
    };
    let mut engine = open(store, 4 << 20);
    create(&mut engine, "d", None);
    append(&mut engine, "d", 0, 3 * WINDOW);
    let mut got = Vec::new();
    let mut offset = "-1".to_string();
    for _ in 0..3 {
        let (res, body) = read(&mut engine, "d", &offset);
        assert_eq!((body.len(), body.deferred()), (WINDOW, 0));
        got.extend(body.to_vec());
        offset = res.header("stream-next-offset").unwrap().to_string();
    }
    assert_eq!(got, pattern(0, 3 * WINDOW));
}
