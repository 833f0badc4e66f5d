//! The in-memory store: the wasm default and the unit-test store.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::store::{Batch, Op, Record, Store, StoreError, StreamId};

#[derive(Debug, Default, Clone)]
struct Tables {
    meta: BTreeMap<String, Vec<u8>>,
    records: BTreeMap<(StreamId, u64), Vec<u8>>,
    /// Of each merged record (same key), where the appends merged into it
    /// ended inside it (its own end is always one); see
    /// [`Store::append_end`].
    ends: BTreeMap<(StreamId, u64), Vec<u64>>,
}

/// Byte-stream records grow by merging adjacent appends up to this size
/// (see [`Tables::extend_last`]).
const MERGED_RECORD: usize = 64 << 10;

/// A record as `(start, bytes)`.
type Slice<'a> = (u64, &'a [u8]);

impl Tables {
    /// Appends `record` (a byte-stream append) to stream `id`'s last record
    /// when it ends where `record` starts and stays within
    /// [`MERGED_RECORD`]: one map entry and one buffer per 64 KiB of small
    /// appends instead of one per append (byte reads cut records at any
    /// position). False when it is stored as a record of its own.
    fn extend_last(&mut self, id: StreamId, record: &Record) -> bool {
        let last = self
            .records
            .range_mut((id, 0)..=(id, record.start))
            .next_back();
        match last {
            Some((&(_, start), data))
                if start + data.len() as u64 == record.start
                    && data.len() + record.data.len() <= MERGED_RECORD =>
            {
                data.extend_from_slice(&record.data);
                self.ends.entry((id, start)).or_default().push(record.start);
                true
            }
            _ => false,
        }
    }

    /// Stream `id`'s record starting at or before `from` (it may end before
    /// `from`), and the records after `from`, in order.
    fn records_from(
        &self,
        id: StreamId,
        from: u64,
    ) -> (Option<Slice<'_>>, impl Iterator<Item = Slice<'_>>) {
        let at_or_before = self
            .records
            .range((id, 0)..=(id, from))
            .next_back()
            .map(|(k, v)| (k.1, v.as_slice()));
        let after = self
            .records
            .range((id, from.saturating_add(1))..(id, u64::MAX))
            .map(|(k, v)| (k.1, v.as_slice()));
        (at_or_before, after)
    }
}

/// A [`Store`] kept in `BTreeMap`s. Commits are atomic because they cannot
/// fail halfway. Clones share the same tables (like reopening the same
/// directory); [`MemStore::snapshot`] makes an independent copy.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    tables: Arc<RwLock<Tables>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent copy of the current contents.
    pub fn snapshot(&self) -> MemStore {
        let tables = self
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        MemStore {
            tables: Arc::new(RwLock::new(tables)),
        }
    }

    /// Total bytes of data records held (for tests and diagnostics).
    pub fn data_bytes(&self) -> usize {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .records
            .values()
            .map(Vec::len)
            .sum()
    }
}

/// Range logic over the ordered record map: the record containing `from`
/// (if any) and those after it, bounded by `end` and `max_bytes`.
fn collect_records<'a, I>(
    before_or_at: Option<(u64, &'a [u8])>,
    after: I,
    from: u64,
    end: u64,
    max_bytes: usize,
) -> Vec<Record>
where
    I: Iterator<Item = (u64, &'a [u8])>,
{
    let mut out = Vec::new();
    let mut total = 0usize;
    let first = before_or_at.filter(|(start, data)| start + data.len() as u64 > from);
    for (start, data) in first.into_iter().chain(after) {
        if start >= end || (total >= max_bytes && !out.is_empty()) {
            break;
        }
        total += data.len();
        out.push(Record {
            start,
            data: data.to_vec(),
        });
    }
    out
}

impl Store for MemStore {
    fn load_meta(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        Ok(t.meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn read(
        &self,
        _path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        let (before, after) = t.records_from(id, from);
        Ok(collect_records(before, after, from, end, max_bytes))
    }

    fn append_end(&self, _path: &str, id: StreamId, at: u64) -> Result<Option<u64>, StoreError> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        let Some((&(_, start), data)) = t.records.range((id, 0)..=(id, at)).next_back() else {
            return Ok(None);
        };
        let end = start + data.len() as u64;
        if end <= at {
            return Ok(None);
        }
        let inner = t.ends.get(&(id, start)).map_or(&[][..], Vec::as_slice);
        Ok(Some(inner.iter().copied().find(|&e| e > at).unwrap_or(end)))
    }

    fn read_bytes(
        &self,
        _path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let t = self.tables.read().unwrap_or_else(|p| p.into_inner());
        let (first, rest) = t.records_from(id, from);
        crate::store::copy_range(first.into_iter().chain(rest), from, end, max_bytes, out);
        Ok(())
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut t = self.tables.write().unwrap_or_else(|p| p.into_inner());
        for op in &batch.ops {
            match op {
                // A stream's blob is replaced in place (every write
                // stores it again): no new key, no new buffer.
                Op::PutMeta { path, meta } => match t.meta.get_mut(path) {
                    Some(stored) => {
                        stored.clear();
                        stored.extend_from_slice(meta);
                    }
                    None => {
                        t.meta.insert(path.clone(), meta.clone());
                    }
                },
                Op::DeleteMeta { path } => {
                    t.meta.remove(path);
                }
                Op::Append {
                    id,
                    record,
                    mergeable,
                    ..
                } => {
                    if *mergeable && t.extend_last(*id, record) {
                        continue;
                    }
                    t.records.insert((*id, record.start), record.data.clone());
                }
                Op::PurgeData { id, .. } => {
                    let keys: Vec<_> = t
                        .records
                        .range((*id, 0)..=(*id, u64::MAX))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in keys {
                        t.records.remove(&k);
                        t.ends.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(id: StreamId, start: u64, data: &[u8], mergeable: bool) -> Op {
        Op::Append {
            path: "/s".into(),
            id,
            record: Record {
                start,
                data: data.to_vec(),
            },
            mergeable,
        }
    }

    #[test]
    fn adjacent_byte_appends_merge_and_read_back_exactly() {
        let store = MemStore::new();
        let mut ops = Vec::new();
        let mut expected = Vec::new();
        // 300 appends of 1000 bytes: about 65 per merged record.
        for i in 0..300u64 {
            let data: Vec<u8> = (0..1000).map(|j| ((i * 7 + j) % 251) as u8).collect();
            ops.push(append(1, i * 1000, &data, true));
            expected.extend_from_slice(&data);
        }
        // Another stream's appends interleave without merging into it.
        ops.insert(10, append(2, 0, b"other", true));
        store.commit(&Batch { ops }).unwrap();
        let records = store.read("/s", 1, 0, 300_000, usize::MAX).unwrap();
        assert_eq!(records.len(), 5, "300 kB in records of at most 64 KiB");
        assert!(records.iter().all(|r| r.data.len() <= MERGED_RECORD));
        let mut out = Vec::new();
        store
            .read_bytes("/s", 1, 1234, 299_999, usize::MAX, &mut out)
            .unwrap();
        assert_eq!(out, expected[1234..299_999]);
        let other = store.read("/s", 2, 0, 5, usize::MAX).unwrap();
        assert_eq!(other[0].data, b"other");
    }

    #[test]
    fn merged_records_remember_where_each_append_ended() {
        let store = MemStore::new();
        let ops = vec![
            append(1, 0, b"ab", true),
            append(1, 2, b"cde", true),
            append(1, 5, b"f", true),
        ];
        store.commit(&Batch { ops }).unwrap();
        assert_eq!(store.read("/s", 1, 0, 6, usize::MAX).unwrap().len(), 1);
        let ends: Vec<_> = (0..7)
            .map(|at| store.append_end("/s", 1, at).unwrap())
            .collect();
        assert_eq!(
            ends,
            [Some(2), Some(2), Some(5), Some(5), Some(5), Some(6), None]
        );
        store
            .commit(&Batch {
                ops: vec![Op::PurgeData {
                    path: "/s".into(),
                    id: 1,
                }],
            })
            .unwrap();
        assert_eq!(store.append_end("/s", 1, 0).unwrap(), None);
    }

    #[test]
    fn json_messages_and_gaps_keep_their_own_records() {
        let store = MemStore::new();
        let ops = vec![
            append(1, 0, b"[1]", false),
            append(1, 3, b"[2]", false),
            append(3, 0, b"ab", true),
            // Not adjacent: a record of its own.
            append(3, 5, b"cd", true),
        ];
        store.commit(&Batch { ops }).unwrap();
        assert_eq!(store.read("/s", 1, 0, 6, usize::MAX).unwrap().len(), 2);
        assert_eq!(store.read("/s", 3, 0, 7, usize::MAX).unwrap().len(), 2);
    }
}
