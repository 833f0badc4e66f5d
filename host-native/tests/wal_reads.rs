//! Reads through the write-ahead log store equal a plain model of the
//! records, wherever the records happen to be: in the active segment's
//! overlay, in sealed segments waiting for their checkpoint, in redb, or
//! replayed from the log after a reopen. Tiny segments make every read
//! straddle those places. Streams 0 and 1 hold byte-stream records, which
//! checkpoints may merge: their reads must honour the `Store::read`
//! contract over the same bytes and still know where each append ended;
//! streams 2 and 3 hold JSON messages, whose records must come back exactly.

use std::sync::Arc;

use ds_core::{load_exactly, Batch, Deferred, Op, Record, Store};
use durable_streams_server::redb_shards::RedbShards;
use durable_streams_server::wal::medium::DirMedium;
use durable_streams_server::wal::{LogOptions, LoggedStore};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The `Store::read` contract on a plain list of contiguous records.
fn model_read(records: &[Record], from: u64, end: u64, max: usize) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    let mut total = 0;
    for r in records.iter().filter(|r| r.end() > from && r.start < end) {
        if total >= max && !out.is_empty() {
            break;
        }
        total += r.data.len();
        out.push(r.clone());
    }
    out
}

fn open(dir: &std::path::Path, background: bool) -> LoggedStore {
    let redb = RedbShards::open(dir, 2).unwrap();
    let medium = DirMedium::open(&dir.join("log")).unwrap();
    let options = LogOptions {
        segment_bytes: 2048,
        background,
        idle_seal: std::time::Duration::from_millis(5),
        // Records of 1..300 bytes: checkpoints both fill and cut.
        merged_record_bytes: 100,
        ..LogOptions::default()
    };
    LoggedStore::with_medium(Arc::new(redb), Box::new(medium), options).unwrap()
}

fn mergeable(stream: usize) -> bool {
    stream < 2
}

/// The `Store::read` contract, for records that may have been merged:
/// contiguous, the first one contains `from` (or starts the range), each
/// overlaps `[from, end)`, the bytes are the stream's, and reading stopped
/// only once `max` was reached.
fn check_merged(got: &[Record], records: &[Record], from: u64, end: u64, max: usize, what: &str) {
    let bytes: Vec<u8> = records.iter().flat_map(|r| r.data.clone()).collect();
    let tail = bytes.len() as u64;
    if tail == 0 || (from >= tail) {
        assert!(got.is_empty(), "{what}: nothing to read, got {got:?}");
        return;
    }
    assert!(!got.is_empty(), "{what}: no records");
    assert!(
        got[0].start <= from && got[0].end() > from,
        "{what}: first record {}..{}",
        got[0].start,
        got[0].end()
    );
    for pair in got.windows(2) {
        assert_eq!(
            pair[0].end(),
            pair[1].start,
            "{what}: records not contiguous"
        );
    }
    for r in got {
        assert!(
            r.start < end.max(from + 1),
            "{what}: record {} past the range",
            r.start
        );
        assert_eq!(
            r.data,
            bytes[r.start as usize..r.end() as usize],
            "{what}: bytes of record {}",
            r.start
        );
    }
    let before_last: usize = got[..got.len() - 1].iter().map(|r| r.data.len()).sum();
    assert!(before_last < max, "{what}: read past max");
    let last_end = got.last().unwrap().end();
    if last_end < end.min(tail) {
        let total: usize = got.iter().map(|r| r.data.len()).sum();
        assert!(total >= max, "{what}: stopped early at {last_end}");
    }
}

/// A deferred read made at one step and its bytes, loaded a step later.
type Pending = Vec<(Arc<dyn Deferred>, Vec<u8>, String)>;

/// Loads every deferred read made earlier: the bytes are the same,
/// wherever the checkpoints moved them meanwhile.
fn load_pending(pending: &mut Pending) {
    for (later, want, what) in pending.drain(..) {
        let mut got = ds_core::Pieces::new();
        load_exactly(later.as_ref(), &mut got).unwrap();
        assert_eq!(got.to_vec(), want, "{what}: deferred, loaded later");
    }
}

fn check(
    store: &LoggedStore,
    model: &[Vec<Record>],
    rng: &mut Rng,
    step: usize,
    pending: &mut Pending,
) {
    for (i, records) in model.iter().enumerate() {
        let tail = records.last().map_or(0, |r| r.end());
        let from = rng.below(tail + 1);
        let end = from + rng.below(tail - from + 1);
        let max = 1 + rng.below(1500) as usize;
        let got = store
            .read(&format!("/s/{i}"), i as u64 + 1, from, end, max)
            .unwrap();
        let what = format!("step {step}: stream {i} read [{from}, {end}) max {max}");
        let mut bytes = Vec::new();
        store
            .read_bytes(&format!("/s/{i}"), i as u64 + 1, from, end, max, &mut bytes)
            .unwrap();
        let all: Vec<u8> = records.iter().flat_map(|r| r.data.clone()).collect();
        let upto = end.min(from + max as u64) as usize;
        assert_eq!(bytes, all[from as usize..upto], "{what}: read_bytes");
        let mut lent = ds_core::Pieces::new();
        store
            .lend_bytes(&format!("/s/{i}"), i as u64 + 1, from, end, max, &mut lent)
            .unwrap();
        assert_eq!(lent.to_vec(), bytes, "{what}: lend_bytes");
        if mergeable(i) {
            let later = store
                .defer_bytes(&format!("/s/{i}"), i as u64 + 1, from, upto as u64)
                .expect("the log store defers");
            assert_eq!(later.len(), bytes.len(), "{what}: deferred length");
            pending.push((later, bytes.clone(), what.clone()));
        }
        if mergeable(i) {
            check_merged(&got, records, from, end, max, &what);
        } else {
            assert_eq!(got, model_read(records, from, end, max), "{what}");
        }
        // Where each append ended survives merging and cutting: a
        // sub-offset fork may not cross it (PROTOCOL §4.2).
        let path = format!("/s/{i}");
        if tail > 0 {
            let at = rng.below(tail);
            let want = records
                .iter()
                .find(|r| r.start <= at && at < r.end())
                .map(Record::end);
            let end_of = store.append_end(&path, i as u64 + 1, at).unwrap();
            assert_eq!(end_of, want, "step {step}: stream {i} append_end({at})");
        }
        assert_eq!(store.append_end(&path, i as u64 + 1, tail).unwrap(), None);
    }
}

#[test]
fn reads_match_the_model_across_overlay_checkpoints_and_replay() {
    for background in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(7 + u64::from(background));
        let mut model: Vec<Vec<Record>> = vec![Vec::new(); 4];
        let mut store = open(dir.path(), background);
        let mut pending = Pending::new();
        for step in 0..1500 {
            let mut batch = Batch::default();
            for _ in 0..=rng.below(3) {
                let i = rng.below(model.len() as u64) as usize;
                let start = model[i].last().map_or(0, |r| r.end());
                let len = 1 + rng.below(300) as usize;
                let record = Record {
                    start,
                    data: (0..len).map(|b| (b as u64 + start) as u8).collect(),
                };
                model[i].push(record.clone());
                batch.ops.push(Op::Append {
                    path: format!("/s/{i}"),
                    id: i as u64 + 1,
                    record,
                    mergeable: mergeable(i),
                });
            }
            store.commit(&batch).unwrap();
            load_pending(&mut pending);
            check(&store, &model, &mut rng, step, &mut pending);
            match rng.below(100) {
                0 => store.checkpoint().unwrap(),
                1 => {
                    // Reopen: whatever the log holds is replayed. (Deferred
                    // reads hold the store open: loaded first.)
                    load_pending(&mut pending);
                    drop(store);
                    store = open(dir.path(), background);
                    check(&store, &model, &mut rng, step, &mut pending);
                }
                2 if background => std::thread::sleep(std::time::Duration::from_millis(10)),
                _ => {}
            }
        }
        store.checkpoint().unwrap();
        load_pending(&mut pending);
        assert_eq!(store.overlay_bytes(), 0, "a checkpoint empties the overlay");
        check(&store, &model, &mut rng, usize::MAX, &mut pending);
        load_pending(&mut pending);
    }
}

#[test]
fn a_purged_stream_reads_empty_and_metadata_merges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), false);
    let append = |id: u64, start: u64| Op::Append {
        path: "/s/p".into(),
        id,
        record: Record {
            start,
            data: vec![1; 100],
        },
        mergeable: true,
    };
    store
        .commit(&Batch {
            ops: vec![
                Op::PutMeta {
                    path: "/s/p".into(),
                    meta: b"one".to_vec(),
                },
                append(9, 0),
            ],
        })
        .unwrap();
    store.checkpoint().unwrap();
    let deferred = store.defer_bytes("/s/p", 9, 0, 100).unwrap();
    store
        .commit(&Batch {
            ops: vec![
                append(9, 100),
                Op::PurgeData {
                    path: "/s/p".into(),
                    id: 9,
                },
                Op::DeleteMeta {
                    path: "/s/p".into(),
                },
                Op::PutMeta {
                    path: "/s/q".into(),
                    meta: b"two".to_vec(),
                },
            ],
        })
        .unwrap();
    assert!(store
        .read("/s/p", 9, 0, 200, usize::MAX)
        .unwrap()
        .is_empty());
    let err = load_exactly(deferred.as_ref(), &mut ds_core::Pieces::new()).unwrap_err();
    assert!(err.to_string().contains("deleted meanwhile"), "{err}");
    let meta = store.load_meta().unwrap();
    assert_eq!(meta, vec![("/s/q".to_string(), b"two".to_vec())]);
    store.checkpoint().unwrap();
    assert!(store
        .read("/s/p", 9, 0, 200, usize::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(store.load_meta().unwrap(), meta);
}

/// A segment started without a spare grows with every write (each fsync
/// also journals its size); once the background thread has a spare ready,
/// writes move to it.
#[test]
fn writes_move_from_a_growing_segment_to_the_spare() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbShards::open(dir.path(), 2).unwrap();
    let log = dir.path().join("log");
    let medium = DirMedium::open(&log).unwrap();
    let segment_bytes = 1 << 20;
    let options = LogOptions {
        segment_bytes,
        // Commits come every 20 ms: never idle, so only the spare can end
        // the first segment (the background thread looks every 500 ms).
        idle_seal: std::time::Duration::from_secs(1),
        ..LogOptions::default()
    };
    let store = LoggedStore::with_medium(Arc::new(redb), Box::new(medium), options).unwrap();
    // Sizes of the numbered segments present.
    let segments = || -> Vec<u64> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, e.metadata().unwrap().len())
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, len)| len).collect()
    };
    let mut start = 0;
    let mut commit = |store: &LoggedStore| {
        let record = Record {
            start,
            data: vec![7; 100],
        };
        start += 100;
        store
            .commit(&Batch {
                ops: vec![Op::Append {
                    path: "/s/g".into(),
                    id: 1,
                    record,
                    mergeable: true,
                }],
            })
            .unwrap();
    };
    commit(&store);
    let first = segments();
    assert_eq!(first.len(), 1);
    assert!(
        first[0] < segment_bytes,
        "the first segment grows: {first:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        commit(&store);
        if segments().last() == Some(&segment_bytes) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "writes never moved to the preallocated spare: {:?}",
            segments()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        store
            .read("/s/g", 1, 0, start, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| r.data.len())
            .sum::<usize>() as u64,
        start
    );
}

/// Checkpointed byte-stream records fill their redb pages, whatever the
/// appends' size: 16 MiB take ~25.7 MB of shard file (redb grows its file
/// in regions), against 42.5 MB when records merged to exactly 64 KiB each
/// took a 128 KiB page, and ~34 MB when 1 MiB appends were stored uncut.
#[test]
fn checkpointed_bytes_take_about_their_size_on_disk() {
    for append in [1024usize, 1 << 20, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let redb = RedbShards::open(dir.path(), 1).unwrap();
        let medium = DirMedium::open(&dir.path().join("log")).unwrap();
        let options = LogOptions {
            background: false,
            ..LogOptions::default()
        };
        let store = LoggedStore::with_medium(Arc::new(redb), Box::new(medium), options).unwrap();
        let total: u64 = 16 << 20;
        let mut start = 0;
        while start < total {
            let mut batch = Batch::default();
            while batch.ops.len() < 32 && start < total {
                let len = append.min((total - start) as usize);
                batch.ops.push(Op::Append {
                    path: "/s/big".into(),
                    id: 1,
                    record: Record {
                        start,
                        data: (0..len)
                            .map(|i| ((start as usize + i) % 253) as u8)
                            .collect(),
                    },
                    mergeable: true,
                });
                start += len as u64;
            }
            store.commit(&batch).unwrap();
        }
        store.checkpoint().unwrap();
        let mut bytes = Vec::new();
        store
            .read_bytes("/s/big", 1, 0, total, usize::MAX, &mut bytes)
            .unwrap();
        assert_eq!(bytes.len() as u64, total);
        assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8));
        drop(store);
        let file = std::fs::metadata(dir.path().join("shard-000.redb"))
            .unwrap()
            .len();
        assert!(
            file < total * 7 / 4,
            "appends of {append}: {file} bytes of redb file for {total} bytes of stream"
        );
    }
}
