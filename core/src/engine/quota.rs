//! Storage quotas ([`crate::config::Quotas`]): the stream size, stream
//! count and total stored bytes a write may not pass, checked before
//! anything is staged.
//!
//! Stored bytes are each stream's *own* records (a fork's inherited prefix
//! belongs to its source), counted from the staged state: the engine adds a
//! stream's growth when its metadata is installed and subtracts its bytes
//! when it is purged, and recounts from scratch whenever it (re)loads.

use crate::engine::Engine;
use crate::error::{EngineError, Quota};
use crate::store::Store;
use crate::stream::StreamMeta;

/// Running totals the quotas are checked against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Data bytes of every stream's own records (staged writes included).
    pub bytes: u64,
}

impl Usage {
    /// Accounts for the metadata of one stream changing from `old` to `new`
    /// (`None`: absent).
    pub(crate) fn replace(&mut self, old: Option<&StreamMeta>, new: Option<&StreamMeta>) {
        let old = old.map_or(0, own_bytes);
        let new = new.map_or(0, own_bytes);
        self.bytes = self.bytes.saturating_sub(old).saturating_add(new);
    }
}

/// Bytes of `meta`'s own records: its tail less a fork's inherited prefix.
pub fn own_bytes(meta: &StreamMeta) -> u64 {
    meta.tail
        .saturating_sub(meta.fork.as_ref().map_or(0, |f| f.point))
}

impl<S: Store> Engine<S> {
    /// Data bytes stored across all streams (staged writes included).
    pub fn stored_bytes(&self) -> u64 {
        self.usage.bytes
    }

    /// Recomputes [`Usage`] from the streams held.
    pub(crate) fn recount_usage(&mut self) {
        self.usage = Usage {
            bytes: self.streams.values().map(|s| own_bytes(&s.meta)).sum(),
        };
    }

    /// Checks a write that takes a stream's tail to `new_tail` and adds
    /// `added` bytes of its own records; `creates` when it creates a stream.
    pub(crate) fn check_quota(
        &self,
        creates: bool,
        new_tail: u64,
        added: u64,
    ) -> Result<(), EngineError> {
        let q = self.config.quotas;
        if let Some(limit) = q
            .max_streams
            .filter(|l| creates && self.streams.len() as u64 >= *l)
        {
            return Err(Quota::StreamCount { limit }.into());
        }
        if let Some(limit) = q.max_stream_bytes.filter(|l| added > 0 && new_tail > *l) {
            return Err(Quota::StreamSize { limit }.into());
        }
        if let Some(limit) = q
            .max_total_bytes
            .filter(|l| added > 0 && self.usage.bytes.saturating_add(added) > *l)
        {
            return Err(Quota::TotalBytes { limit }.into());
        }
        Ok(())
    }
}
