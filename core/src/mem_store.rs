//! The in-memory store: the wasm default and the unit-test store.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::store::{Batch, Op, Record, Store, StoreError, StreamId};

#[derive(Debug, Default, Clone)]
struct Tables {
    meta: BTreeMap<String, Vec<u8>>,
    records: BTreeMap<(StreamId, u64), Vec<u8>>,
}

/// A record as `(start, bytes)`.
type Slice<'a> = (u64, &'a [u8]);

impl Tables {
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
                Op::Append { id, record, .. } => {
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
                    }
                }
            }
        }
        Ok(())
    }
}
