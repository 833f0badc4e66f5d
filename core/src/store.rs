//! The storage seam: a few dumb operations, all meaning lives above them.
//!
//! A store keeps two things: an opaque metadata blob per stream path, and data
//! records keyed by `(stream id, start position)`. It knows nothing about
//! HTTP, producers, TTLs or forks (DESIGN.md §3). Every change the engine makes
//! reaches the store as one [`Batch`], which the store commits atomically per
//! shard (see [`crate::shard`]); invariants that span shards are re-derived by
//! the engine at load time, so a crash between two shard commits is harmless.

use std::fmt;

use crate::pieces::{Deferred, Pieces};

/// A stream's internal identity. Unique for the lifetime of a data directory,
/// so a deleted and re-created path never shares data keys or ETags.
pub type StreamId = u64;

/// One stored record: an append's bytes (or one JSON message) at `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position of the record's first byte in the stream.
    pub start: u64,
    /// The record's bytes.
    pub data: Vec<u8>,
}

impl Record {
    /// Position just past the record's last byte.
    pub fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

/// One change inside a [`Batch`]. `path` selects the shard; `id` keys data.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace the metadata blob of `path`.
    PutMeta { path: String, meta: Vec<u8> },
    /// Remove the metadata of `path`.
    DeleteMeta { path: String },
    /// Store a data record of stream `id` (which lives under `path`).
    /// `mergeable`: a byte-stream record, which a store may merge with the
    /// adjacent records of the same stream (byte reads cut at any
    /// position). False for a JSON message: its record boundaries are
    /// message boundaries (PROTOCOL §9.1) and must be kept.
    Append {
        path: String,
        id: StreamId,
        record: Record,
        mergeable: bool,
    },
    /// Remove every data record of stream `id` (which lived under `path`).
    PurgeData { path: String, id: StreamId },
}

/// Changes that become visible together or not at all (per shard).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The operations, applied in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// True when the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Which ops of `ops` (applied together, atomically) still matter: every
/// data op, and only the last metadata write of each path, since no reader
/// can see the ones it replaces. Parallel to `ops`.
pub fn last_meta_writes(ops: &[Op]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    // Newest first, so the first one seen of a path is its last.
    let mut keep: Vec<bool> = ops
        .iter()
        .rev()
        .map(|op| match op {
            Op::PutMeta { path, .. } | Op::DeleteMeta { path } => seen.insert(path.as_str()),
            Op::Append { .. } | Op::PurgeData { .. } => true,
        })
        .collect();
    keep.reverse();
    keep
}

/// A storage failure. Protocol errors never travel through this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The medium is out of space; nothing of the batch was committed.
    Full,
    /// An I/O or database failure; nothing of the batch was committed.
    Io {
        /// What the backend reported.
        detail: String,
    },
    /// Stored bytes could not be decoded.
    Corrupt {
        /// Which record or table was unreadable.
        detail: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Full => write!(f, "storage is full"),
            StoreError::Io { detail } => write!(f, "storage I/O failed: {detail}"),
            StoreError::Corrupt { detail } => write!(f, "stored data is corrupt: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The storage trait under the engine.
pub trait Store {
    /// Every stored `(path, metadata blob)`, read once when the engine opens.
    fn load_meta(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Records of stream `id` (stored under `path`) that overlap
    /// `[from, end)`, in order, starting with the record that contains `from`.
    /// Stops after the first record that brings the total past `max_bytes`
    /// (at least one record is returned when any overlaps).
    fn read(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// Applies `batch` durably. On error nothing of it is visible (per shard;
    /// see the module docs). Called by one committer at a time.
    fn commit(&self, batch: &Batch) -> Result<(), StoreError>;

    /// Where the append that stored byte `at` of byte stream `id` ends
    /// (one past its last byte); `None` when no stored record holds `at`.
    /// A byte-stream sub-offset fork may not reach past it (PROTOCOL §4.2).
    /// The default takes the end of the record holding `at`, which is right
    /// for a store that keeps every append as its own record; a store that
    /// merges mergeable appends must remember where they ended.
    fn append_end(&self, path: &str, id: StreamId, at: u64) -> Result<Option<u64>, StoreError> {
        let records = self.read(path, id, at, at.saturating_add(1), 1)?;
        Ok(records.first().filter(|r| r.start <= at).map(Record::end))
    }

    /// Appends to `out` the bytes of stream `id` from position `from` up to
    /// `end` (exclusive), at most `max_bytes` of them, ignoring record
    /// boundaries (byte-stream reads). Stores override it to copy once,
    /// straight from their storage into `out`.
    fn read_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        // Every record overlapping [from, limit): a budget in whole records
        // could stop short inside a large first record.
        let limit = end.min(from.saturating_add(max_bytes as u64));
        let records = self.read(path, id, from, limit, usize::MAX)?;
        copy_range(
            records.iter().map(|r| (r.start, r.data.as_slice())),
            from,
            end,
            max_bytes,
            out,
        );
        Ok(())
    }

    /// Like [`Store::read_bytes`], but appends the bytes to `out` as
    /// pieces. A store that holds them in shareable memory once read lends
    /// that memory instead of copying it (see [`crate::pieces`]); the
    /// default copies once into an owned piece.
    fn lend_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
        out: &mut Pieces,
    ) -> Result<(), StoreError> {
        let want = usize::try_from(end.saturating_sub(from))
            .unwrap_or(usize::MAX)
            .min(max_bytes);
        let mut bytes = Vec::with_capacity(want);
        self.read_bytes(path, id, from, end, max_bytes, &mut bytes)?;
        out.push_owned(bytes);
        Ok(())
    }

    /// True when [`Store::defer_bytes`] hands out deferred reads (then a
    /// byte-stream response may be as long as
    /// [`crate::Config::max_streamed_read_bytes`]).
    fn defers(&self) -> bool {
        false
    }

    /// The bytes of stream `id` in `[from, end)`, all committed, to be read
    /// later, when a response gets to them ([`crate::pieces::Deferred`]):
    /// the handle reads them as [`Store::lend_bytes`] would then. `None`
    /// (the default) when this store reads only now; a store that
    /// [`Store::defers`] returns a handle for any committed range (a `None`
    /// ends the read before that range).
    fn defer_bytes(
        &self,
        _path: &str,
        _id: StreamId,
        _from: u64,
        _end: u64,
    ) -> Option<std::sync::Arc<dyn Deferred>> {
        None
    }
}

/// Appends to `out` the part of `records` (ascending `(start, bytes)`) that
/// lies in `[from, end)`, at most `max_bytes`; stops at the first gap.
/// Returns the position reached.
pub fn copy_range<'a>(
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
    from: u64,
    end: u64,
    max_bytes: usize,
    out: &mut Vec<u8>,
) -> u64 {
    let mut pos = from;
    let limit = end.min(from.saturating_add(max_bytes as u64));
    for (start, data) in records {
        if pos >= limit || start > pos {
            break;
        }
        let skip = usize::try_from(pos - start).unwrap_or(usize::MAX);
        if skip >= data.len() {
            continue;
        }
        let take = usize::try_from(limit - pos)
            .unwrap_or(usize::MAX)
            .min(data.len() - skip);
        out.extend_from_slice(&data[skip..skip + take]);
        pos += take as u64;
    }
    pos
}

impl<T: Store + ?Sized> Store for std::sync::Arc<T> {
    fn load_meta(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        (**self).load_meta()
    }

    fn read(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        (**self).read(path, id, from, end, max_bytes)
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        (**self).commit(batch)
    }

    fn append_end(&self, path: &str, id: StreamId, at: u64) -> Result<Option<u64>, StoreError> {
        (**self).append_end(path, id, at)
    }

    fn read_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        (**self).read_bytes(path, id, from, end, max_bytes, out)
    }

    fn lend_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
        out: &mut Pieces,
    ) -> Result<(), StoreError> {
        (**self).lend_bytes(path, id, from, end, max_bytes, out)
    }

    fn defers(&self) -> bool {
        (**self).defers()
    }

    fn defer_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
    ) -> Option<std::sync::Arc<dyn Deferred>> {
        (**self).defer_bytes(path, id, from, end)
    }
}
