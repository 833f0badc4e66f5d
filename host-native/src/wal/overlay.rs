//! What the log holds that redb does not yet: one [`Generation`] per log
//! segment, readable until its checkpoint lands in redb.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ds_core::{Batch, Op, Record, StreamId};

/// The batches logged in one segment, in commit order, indexed for reads.
#[derive(Default)]
pub struct Generation {
    /// The segment these batches were logged in.
    pub segment: u64,
    /// Every op, in commit order: what the checkpoint applies to redb.
    pub ops: Vec<Op>,
    /// Per stream, the indexes in `ops` of its appends (ascending positions).
    records: HashMap<StreamId, Vec<usize>>,
    /// Streams whose data this generation purged.
    purged: HashSet<StreamId>,
    /// Record bytes held.
    pub bytes: usize,
    /// The segment file was preallocated (it can become the next spare).
    pub preallocated: bool,
}

impl Generation {
    /// An empty generation for segment `segment`.
    pub fn new(segment: u64) -> Generation {
        Generation {
            segment,
            ..Generation::default()
        }
    }

    /// Adds a committed batch.
    pub fn add(&mut self, batch: Batch) {
        for op in batch.ops {
            match &op {
                Op::Append { id, record, .. } => {
                    self.bytes += record.data.len();
                    self.records.entry(*id).or_default().push(self.ops.len());
                }
                Op::PurgeData { id, .. } => {
                    self.records.remove(id);
                    self.purged.insert(*id);
                }
                Op::PutMeta { .. } | Op::DeleteMeta { .. } => {}
            }
            self.ops.push(op);
        }
    }

    /// True when nothing was logged in this generation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn record(&self, i: usize) -> &Record {
        match &self.ops[i] {
            Op::Append { record, .. } => record,
            _ => unreachable!("record indexes point at appends"),
        }
    }
}

/// The active generation and the sealed ones waiting for their checkpoint.
#[derive(Default)]
pub struct Overlay {
    /// Receives new batches.
    pub active: Generation,
    /// Oldest first; the checkpointer applies the front one to redb.
    pub sealed: VecDeque<Arc<Generation>>,
}

/// What the overlay has of one stream for a read.
pub struct Found {
    /// Position of the stream's first record in the overlay, if any: every
    /// record below it is in redb.
    pub first: Option<u64>,
    /// The overlay's records overlapping the read, starting with the one
    /// that contains `from` (when it is in the overlay).
    pub records: Vec<Record>,
    /// True when the overlay purged the stream: redb holds nothing of it.
    pub purged: bool,
}

impl Overlay {
    /// Generations oldest first, active last.
    fn generations(&self) -> impl DoubleEndedIterator<Item = &Generation> {
        self.sealed
            .iter()
            .map(|g| g.as_ref())
            .chain(std::iter::once(&self.active))
    }

    /// The overlay's records of stream `id` overlapping `[from, end)`, copied
    /// until their total reaches `max_bytes` (the same rule as
    /// [`ds_core::Store::read`]).
    pub fn find(&self, id: StreamId, from: u64, end: u64, max_bytes: usize) -> Found {
        // Generations older than the newest purge of `id` do not count.
        let gens: Vec<&Generation> = self.generations().collect();
        let newest_purge = gens.iter().rposition(|g| g.purged.contains(&id));
        let live = &gens[newest_purge.unwrap_or(0)..];
        let mut found = Found {
            first: None,
            records: Vec::new(),
            purged: newest_purge.is_some(),
        };
        let mut total = 0usize;
        for g in live {
            let Some(indexes) = g.records.get(&id) else {
                continue;
            };
            if found.first.is_none() {
                found.first = indexes.first().map(|&i| g.record(i).start);
            }
            // The first record that ends past `from`.
            let skip = indexes.partition_point(|&i| g.record(i).end() <= from);
            for &i in &indexes[skip..] {
                let r = g.record(i);
                if r.start >= end || (total >= max_bytes && !found.records.is_empty()) {
                    return found;
                }
                total += r.data.len();
                found.records.push(r.clone());
            }
        }
        found
    }

    /// Applies the overlay's metadata changes, oldest first, to `meta`.
    pub fn apply_meta(&self, meta: &mut HashMap<String, Vec<u8>>) {
        for g in self.generations() {
            for op in &g.ops {
                match op {
                    Op::PutMeta { path, meta: blob } => {
                        meta.insert(path.clone(), blob.clone());
                    }
                    Op::DeleteMeta { path } => {
                        meta.remove(path);
                    }
                    Op::Append { .. } | Op::PurgeData { .. } => {}
                }
            }
        }
    }

    /// Record bytes held by every generation.
    pub fn bytes(&self) -> usize {
        self.generations().map(|g| g.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(id: StreamId, start: u64, data: &str) -> Batch {
        Batch {
            ops: vec![Op::Append {
                path: "/s".into(),
                id,
                record: Record {
                    start,
                    data: data.as_bytes().to_vec(),
                },
            }],
        }
    }

    #[test]
    fn finds_across_generations_from_the_record_containing_from() {
        let mut old = Generation::new(1);
        old.add(append(1, 10, "abc"));
        old.add(append(2, 0, "zz"));
        old.add(append(1, 13, "de"));
        let mut o = Overlay::default();
        o.sealed.push_back(Arc::new(old));
        o.active = Generation::new(2);
        o.active.add(append(1, 15, "fgh"));

        let f = o.find(1, 14, u64::MAX, usize::MAX);
        assert_eq!(f.first, Some(10));
        let starts: Vec<u64> = f.records.iter().map(|r| r.start).collect();
        assert_eq!(starts, vec![13, 15]);
        // Below the overlay: nothing from it, but `first` says where redb ends.
        let f = o.find(1, 0, 10, usize::MAX);
        assert!(f.records.is_empty());
        assert_eq!(f.first, Some(10));
        // The budget: stop once reached, but always at least one record.
        let f = o.find(1, 10, u64::MAX, 1);
        assert_eq!(f.records.len(), 1);
        let f = o.find(1, 10, u64::MAX, 4);
        assert_eq!(f.records.len(), 2);
    }

    #[test]
    fn a_purge_hides_older_generations() {
        let mut old = Generation::new(1);
        old.add(append(1, 0, "abc"));
        let mut o = Overlay::default();
        o.sealed.push_back(Arc::new(old));
        o.active = Generation::new(2);
        o.active.add(Batch {
            ops: vec![Op::PurgeData {
                path: "/s".into(),
                id: 1,
            }],
        });
        let f = o.find(1, 0, u64::MAX, usize::MAX);
        assert!(f.purged && f.records.is_empty() && f.first.is_none());
    }
}
