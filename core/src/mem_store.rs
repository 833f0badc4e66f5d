//! The in-memory store: the wasm default and the unit-test store.

use std::collections::BTreeMap;

use crate::store::{Batch, Op, Record, Store, StoreError, StreamId};

/// A [`Store`] kept in `BTreeMap`s. Commits are atomic because they cannot
/// fail halfway.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    meta: BTreeMap<String, Vec<u8>>,
    records: BTreeMap<(StreamId, u64), Vec<u8>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes of data records held (for tests and diagnostics).
    pub fn data_bytes(&self) -> usize {
        self.records.values().map(Vec::len).sum()
    }
}

/// Shared range logic for ordered record maps: the record containing `from`
/// (if any) and those after it, bounded by `end` and `max_bytes`.
pub fn collect_records<'a, I>(
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
        Ok(self
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn read(
        &self,
        _path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let before = self
            .records
            .range((id, 0)..=(id, from))
            .next_back()
            .map(|(k, v)| (k.1, v.as_slice()));
        let after = self
            .records
            .range((id, from.saturating_add(1))..(id, u64::MAX))
            .map(|(k, v)| (k.1, v.as_slice()));
        Ok(collect_records(before, after, from, end, max_bytes))
    }

    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        for op in batch.ops {
            match op {
                Op::PutMeta { path, meta } => {
                    self.meta.insert(path, meta);
                }
                Op::DeleteMeta { path } => {
                    self.meta.remove(&path);
                }
                Op::Append { id, record, .. } => {
                    self.records.insert((id, record.start), record.data);
                }
                Op::PurgeData { id, .. } => {
                    let keys: Vec<_> = self
                        .records
                        .range((id, 0)..=(id, u64::MAX))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in keys {
                        self.records.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }
}
