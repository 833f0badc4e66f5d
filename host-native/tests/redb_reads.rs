//! The redb store's range reads agree with the in-memory store's, including
//! records larger than the read budget (a read that starts right after a
//! record bigger than `max_bytes` must still return the next record).

use ds_core::{Batch, MemStore, Op, Record, Store};
use durable_streams_server::redb_shards::RedbShards;

fn batch(records: &[(u64, usize)]) -> Batch {
    let mut b = Batch::default();
    for (start, len) in records {
        let data = (0..*len).map(|i| (i % 251) as u8).collect();
        b.ops.push(Op::Append {
            path: "/v1/stream/s".into(),
            id: 7,
            record: Record {
                start: *start,
                data,
            },
            // Kept as given by both stores (the memory store merges
            // adjacent mergeable appends), so their records compare.
            mergeable: false,
        });
    }
    b
}

#[test]
fn range_reads_match_the_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbShards::open(dir.path(), 2).unwrap();
    let mem = MemStore::new();
    let layout = [(0, 2000), (2000, 10), (2010, 3000), (5010, 1)];
    redb.commit(&batch(&layout)).unwrap();
    mem.commit(&batch(&layout)).unwrap();
    let whole: Vec<u8> = mem
        .read("/v1/stream/s", 7, 0, u64::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .flat_map(|r| r.data)
        .collect();
    assert_eq!(whole.len(), 5011);
    for from in [0u64, 1, 1999, 2000, 2005, 2010, 4000, 5010, 5011] {
        for end in [2000u64, 2010, 5011, u64::MAX] {
            for max in [1usize, 500, 2000, 5000, usize::MAX] {
                let a = redb.read("/v1/stream/s", 7, from, end, max).unwrap();
                let b = mem.read("/v1/stream/s", 7, from, end, max).unwrap();
                assert_eq!(a, b, "from {from} end {end} max {max}");
                // Byte reads: redb's, the memory store's and the default
                // (built on `read`) agree, and are the stream's bytes.
                let (mut x, mut y) = (Vec::new(), Vec::new());
                redb.read_bytes("/v1/stream/s", 7, from, end, max, &mut x)
                    .unwrap();
                mem.read_bytes("/v1/stream/s", 7, from, end, max, &mut y)
                    .unwrap();
                let want: Vec<u8> = whole
                    .iter()
                    .copied()
                    .skip(from as usize)
                    .take((end.min(5011).saturating_sub(from) as usize).min(max))
                    .collect();
                assert_eq!(x, want, "read_bytes from {from} end {end} max {max}");
                // Lent pieces (redb's pages, no copy) hold the same bytes.
                let mut lent = ds_core::Pieces::new();
                redb.lend_bytes("/v1/stream/s", 7, from, end, max, &mut lent)
                    .unwrap();
                assert_eq!(
                    lent.to_vec(),
                    want,
                    "lend_bytes from {from} end {end} max {max}"
                );
                assert_eq!(y, want, "memory read_bytes from {from} end {end} max {max}");
                if from < end.min(5011) {
                    assert!(
                        !a.is_empty(),
                        "from {from} end {end} max {max}: data exists"
                    );
                }
            }
        }
    }
}

/// Bytes lent to a response stay as they were read while later
/// transactions purge the stream and write over the space it used: the
/// lent values keep their read transaction alive, so redb neither frees
/// nor rewrites their pages meanwhile. (Holding only the pages failed here:
/// redb's debug build asserts that a freed page has no reader, and its
/// write path needs the cached page buffer unshared.)
#[test]
fn lent_bytes_survive_purges_and_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbShards::open(dir.path(), 1).unwrap();
    // 40 values big enough to be lent, then 30 small ones (copied).
    let mut layout: Vec<(u64, usize)> = (0..40).map(|i| (i * 20_000, 20_000)).collect();
    layout.extend((0..30).map(|i| (800_000 + i * 100, 100)));
    redb.commit(&batch(&layout)).unwrap();
    let mut lent = ds_core::Pieces::new();
    redb.lend_bytes("/v1/stream/s", 7, 0, 803_000, usize::MAX, &mut lent)
        .unwrap();
    let before = lent.to_vec();
    assert_eq!(before.len(), 803_000);
    assert_eq!(
        lent.count(),
        41,
        "one piece per big value, one run of small ones"
    );
    redb.commit(&Batch {
        ops: vec![Op::PurgeData {
            path: "/v1/stream/s".into(),
            id: 7,
        }],
    })
    .unwrap();
    for round in 0..20u64 {
        let mut b = Batch::default();
        for i in 0..40u64 {
            b.ops.push(Op::Append {
                path: "/v1/stream/t".into(),
                id: 8,
                record: Record {
                    start: (round * 40 + i) * 20_000,
                    data: vec![0xEE; 20_000],
                },
                mergeable: false,
            });
        }
        redb.commit(&b).unwrap();
    }
    assert_eq!(lent.to_vec(), before);
    drop(lent);
    // The purge took effect for new reads.
    let mut after = ds_core::Pieces::new();
    redb.lend_bytes("/v1/stream/s", 7, 0, 803_000, usize::MAX, &mut after)
        .unwrap();
    assert!(after.is_empty());
}

/// A record a checkpoint gathered from several JSON messages reads back as
/// those messages, from any message on and within the budget; ends that do
/// not add up to the record are reported, not guessed at.
#[test]
fn gathered_json_records_read_back_as_their_messages() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbShards::open(dir.path(), 1).unwrap();
    let op = |start: u64, data: &[u8]| Op::Append {
        path: "/v1/stream/j".into(),
        id: 9,
        record: Record {
            start,
            data: data.to_vec(),
        },
        mergeable: false,
    };
    let ends = [Some(vec![3, 7, 12]), Some(vec![15])];
    redb.commit_ops_lazily(&[op(0, b"[1][22][333]"), op(12, b"[4]")], &ends)
        .unwrap();
    let read = |from: u64, max: usize| -> Vec<(u64, Vec<u8>)> {
        let records = redb.read("/v1/stream/j", 9, from, 15, max).unwrap();
        records.into_iter().map(|r| (r.start, r.data)).collect()
    };
    let all = vec![
        (0, b"[1]".to_vec()),
        (3, b"[22]".to_vec()),
        (7, b"[333]".to_vec()),
        (12, b"[4]".to_vec()),
    ];
    assert_eq!(read(0, usize::MAX), all);
    assert_eq!(read(3, usize::MAX), all[1..]);
    assert_eq!(read(3, 4), all[1..2]);
    assert_eq!(read(7, 1), all[2..3]);
    assert_eq!(redb.append_end("/v1/stream/j", 9, 4).unwrap(), Some(7));
    redb.commit_ops_lazily(&[op(15, b"[5][6]")], &[Some(vec![18, 20])])
        .unwrap();
    assert!(matches!(
        redb.read("/v1/stream/j", 9, 15, 21, usize::MAX),
        Err(ds_core::StoreError::Corrupt { .. })
    ));
}
