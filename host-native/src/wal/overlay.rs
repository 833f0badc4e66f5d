//! What the log holds that redb does not yet: one [`Generation`] per log
//! segment. A generation keeps only an index (where each stream's records
//! sit in the segment file); record bytes are read back from the file, so
//! memory holds ~24 bytes per recent record, not the record.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;

use ds_core::{Batch, Op, Record, StreamId};

use super::medium::LogRead;

/// Where one record's bytes sit in a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    /// Position of the record's first byte in its stream.
    start: u64,
    /// Offset of its bytes in the segment file.
    at: u64,
    len: u64,
}

impl Loc {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The batches logged in one segment, indexed for reads.
pub struct Generation {
    /// The segment these batches were logged in.
    pub segment: u64,
    /// Reads the segment's frames.
    pub file: Arc<dyn LogRead>,
    /// Bytes of valid frames in the segment.
    pub len: u64,
    /// The segment file was preallocated (it can become the next spare).
    pub preallocated: bool,
    /// Per stream, where its appends sit (ascending positions).
    records: HashMap<StreamId, Vec<Loc>>,
    /// Streams whose data this generation purged.
    purged: HashSet<StreamId>,
    /// Record bytes logged.
    pub bytes: u64,
}

impl Generation {
    /// An empty generation for segment `segment`, read through `file`.
    pub fn new(segment: u64, file: Arc<dyn LogRead>, preallocated: bool) -> Generation {
        Generation {
            segment,
            file,
            len: 0,
            preallocated,
            records: HashMap::new(),
            purged: HashSet::new(),
            bytes: 0,
        }
    }

    /// Indexes a batch logged as the frame at `frame_at` .. `frame_end`;
    /// `data_at` holds each append's data offset (in op order, relative to
    /// `frame_at`).
    pub fn add(&mut self, batch: &Batch, frame_at: u64, frame_end: u64, data_at: &[u64]) {
        let mut appends = data_at.iter();
        for op in &batch.ops {
            match op {
                Op::Append { id, record, .. } => {
                    let at = frame_at + appends.next().expect("one offset per append");
                    let len = record.data.len() as u64;
                    self.bytes += len;
                    self.records.entry(*id).or_default().push(Loc {
                        start: record.start,
                        at,
                        len,
                    });
                }
                Op::PurgeData { id, .. } => {
                    self.records.remove(id);
                    self.purged.insert(*id);
                }
                Op::PutMeta { .. } | Op::DeleteMeta { .. } => {}
            }
        }
        self.len = self.len.max(frame_end);
    }
}

/// The active generation and the sealed ones waiting for their checkpoint.
#[derive(Default)]
pub struct Overlay {
    /// Receives new batches (none before the first segment is activated).
    pub active: Option<Generation>,
    /// Oldest first; the checkpointer applies the front one to redb.
    pub sealed: VecDeque<Arc<Generation>>,
}

/// What the overlay has of one stream for a read, resolved to file ranges
/// under the overlay lock and read after it ([`Found::load`]).
pub struct Found {
    /// Position of the stream's first record in the overlay, if any: every
    /// record below it is in redb.
    pub first: Option<u64>,
    /// True when the overlay purged the stream: redb holds nothing of it.
    pub purged: bool,
    /// Records overlapping the read, with the file that holds each.
    picks: Vec<(Arc<dyn LogRead>, Loc)>,
}

impl Overlay {
    /// Generations oldest first, active last.
    fn generations(&self) -> impl Iterator<Item = &Generation> {
        self.sealed
            .iter()
            .map(|g| g.as_ref())
            .chain(self.active.as_ref())
    }

    /// The overlay's records of stream `id` overlapping `[from, end)`,
    /// starting with the one that contains `from`, until their total
    /// reaches `max_bytes` (the rule of [`ds_core::Store::read`]).
    pub fn find(&self, id: StreamId, from: u64, end: u64, max_bytes: usize) -> Found {
        let gens: Vec<&Generation> = self.generations().collect();
        // Generations older than the newest purge of `id` do not count.
        let newest_purge = gens.iter().rposition(|g| g.purged.contains(&id));
        let mut found = Found {
            first: None,
            purged: newest_purge.is_some(),
            picks: Vec::new(),
        };
        let mut total = 0u64;
        for g in &gens[newest_purge.unwrap_or(0)..] {
            let Some(locs) = g.records.get(&id) else {
                continue;
            };
            if found.first.is_none() {
                found.first = locs.first().map(|l| l.start);
            }
            let skip = locs.partition_point(|l| l.end() <= from);
            for loc in &locs[skip..] {
                if loc.start >= end || (total >= max_bytes as u64 && !found.picks.is_empty()) {
                    return found;
                }
                total += loc.len;
                found.picks.push((Arc::clone(&g.file), *loc));
            }
        }
        found
    }

    /// Record bytes logged in every generation.
    pub fn bytes(&self) -> u64 {
        self.generations().map(|g| g.bytes).sum()
    }
}

/// Reads spanning less than this between two records of the same file are
/// merged into one read.
const MERGE_GAP: u64 = 4096;

impl Found {
    /// Where a read of `[from, end)` must go to redb: `Some(below)` when
    /// positions from `from` up to `below` (or the record containing `from`)
    /// are there. Everything below the overlay's first record is in redb
    /// already (checkpoints land before the overlay forgets a segment).
    pub fn redb_part(&self, from: u64, end: u64) -> Option<u64> {
        let in_redb = self.first.is_none_or(|first| from < first);
        (!self.purged && in_redb).then(|| self.first.unwrap_or(end).min(end))
    }

    /// Reads the picked records' bytes: records close together in the same
    /// file come from one read.
    pub fn load(self) -> io::Result<Vec<Record>> {
        let mut out = Vec::with_capacity(self.picks.len());
        self.for_each_span(|loc, bytes| {
            out.push(Record {
                start: loc.start,
                data: bytes.to_vec(),
            });
            true
        })?;
        Ok(out)
    }

    /// Appends the picked records' bytes in `[pos, limit)` to `out`
    /// (byte-stream reads); returns the position reached.
    pub fn copy_into(self, mut pos: u64, limit: u64, out: &mut Vec<u8>) -> io::Result<u64> {
        self.for_each_span(|loc, bytes| {
            if loc.start > pos || pos >= limit {
                return false;
            }
            pos = ds_core::store::copy_range([(loc.start, bytes)], pos, limit, usize::MAX, out);
            true
        })?;
        Ok(pos)
    }

    /// Calls `f` with each picked record and its bytes, in order, until it
    /// returns false; records close together in one file share one read.
    fn for_each_span(&self, mut f: impl FnMut(&Loc, &[u8]) -> bool) -> io::Result<()> {
        let mut i = 0;
        while i < self.picks.len() {
            let (file, first) = &self.picks[i];
            let mut j = i + 1;
            let mut span_end = first.at + first.len;
            while let Some((f, loc)) = self.picks.get(j) {
                if !Arc::ptr_eq(f, file) || loc.at < span_end || loc.at - span_end > MERGE_GAP {
                    break;
                }
                span_end = loc.at + loc.len;
                j += 1;
            }
            let mut span = vec![0u8; usize::try_from(span_end - first.at).unwrap_or(usize::MAX)];
            file.read_at(first.at, &mut span)?;
            for (_, loc) in &self.picks[i..j] {
                let from = (loc.at - first.at) as usize;
                if !f(loc, &span[from..from + loc.len as usize]) {
                    return Ok(());
                }
            }
            i = j;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Mem(Mutex<Vec<u8>>);

    impl LogRead for Mem {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let v = self.0.lock().unwrap();
            buf.copy_from_slice(&v[offset as usize..offset as usize + buf.len()]);
            Ok(())
        }

        fn size(&self) -> io::Result<u64> {
            Ok(self.0.lock().unwrap().len() as u64)
        }
    }

    /// A generation whose "file" holds each appended record at a known spot.
    fn gen(segment: u64, appends: &[(StreamId, u64, &str)]) -> Generation {
        let file = Arc::new(Mem(Mutex::new(Vec::new())));
        let mut g = Generation::new(segment, file.clone(), false);
        for (id, start, data) in appends {
            let mut v = file.0.lock().unwrap();
            let at = v.len() as u64;
            v.extend_from_slice(b"hdr");
            v.extend_from_slice(data.as_bytes());
            let end = v.len() as u64;
            drop(v);
            let batch = Batch {
                ops: vec![Op::Append {
                    path: "/s".into(),
                    id: *id,
                    record: Record {
                        start: *start,
                        data: data.as_bytes().to_vec(),
                    },
                    mergeable: true,
                }],
            };
            g.add(&batch, at, end, &[3]);
        }
        g
    }

    fn starts(f: Found) -> Vec<(u64, String)> {
        f.load()
            .unwrap()
            .into_iter()
            .map(|r| (r.start, String::from_utf8(r.data).unwrap()))
            .collect()
    }

    #[test]
    fn finds_across_generations_from_the_record_containing_from() {
        let mut o = Overlay::default();
        o.sealed.push_back(Arc::new(gen(
            1,
            &[(1, 10, "abc"), (2, 0, "zz"), (1, 13, "de")],
        )));
        o.active = Some(gen(2, &[(1, 15, "fgh")]));

        let f = o.find(1, 14, u64::MAX, usize::MAX);
        assert_eq!(f.first, Some(10));
        assert_eq!(starts(f), vec![(13, "de".into()), (15, "fgh".into())]);
        // Below the overlay: nothing from it, but `first` says where redb ends.
        let f = o.find(1, 0, 10, usize::MAX);
        assert_eq!(f.first, Some(10));
        assert!(starts(f).is_empty());
        // The budget: stop once reached, but always at least one record.
        assert_eq!(starts(o.find(1, 10, u64::MAX, 1)).len(), 1);
        assert_eq!(starts(o.find(1, 10, u64::MAX, 4)).len(), 2);
    }

    #[test]
    fn a_purge_hides_older_generations() {
        let mut o = Overlay::default();
        o.sealed.push_back(Arc::new(gen(1, &[(1, 0, "abc")])));
        let mut active = gen(2, &[]);
        let purge = Batch {
            ops: vec![Op::PurgeData {
                path: "/s".into(),
                id: 1,
            }],
        };
        active.add(&purge, 0, 10, &[]);
        o.active = Some(active);
        let f = o.find(1, 0, u64::MAX, usize::MAX);
        assert!(f.purged && f.first.is_none());
        assert!(starts(f).is_empty());
    }
}
