//! A stream's persisted metadata (PROTOCOL §4) and its encoding.
//!
//! The blob is binary (see [`blob`]; earlier versions stored JSON, which is
//! still read) and carries a format version `v`; see docs/design.md. Everything
//! that must survive a restart lives here and is committed in the same batch
//! as the data it describes: tail, closure, producer state, `Stream-Seq`,
//! TTL/expiry, fork origin, soft deletion. Fork reference counts are not
//! stored: the engine derives them from fork origins when it opens.

mod blob;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::producer::{ProducerClaim, ProducerState};
use crate::store::{StoreError, StreamId};
use crate::time::UnixMillis;

/// One shared copy of each content type in use: most servers hold many
/// streams of a few types. At most [`ContentTypes::LIMIT`] distinct types are
/// kept (content types come from clients); beyond that each stream keeps
/// its own copy, as before there was a table.
#[derive(Debug, Default)]
pub struct ContentTypes {
    known: std::collections::BTreeSet<Arc<str>>,
}

impl ContentTypes {
    /// Most distinct types shared.
    pub const LIMIT: usize = 256;

    /// The shared copy of `ct` (made the shared one if there is room).
    pub fn intern(&mut self, ct: Arc<str>) -> Arc<str> {
        if let Some(known) = self.known.get(&*ct) {
            return Arc::clone(known);
        }
        if self.known.len() < Self::LIMIT {
            self.known.insert(Arc::clone(&ct));
        }
        ct
    }
}

/// Version of the metadata blob format.
pub const META_VERSION: u32 = 1;

/// Where a fork branches from its source (PROTOCOL §4.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkOrigin {
    /// The source stream's path (its URL path).
    pub source: String,
    /// The source's internal id, pinned at fork time.
    pub source_id: StreamId,
    /// The divergence position: data before it comes from the source.
    pub point: u64,
    /// The `Stream-Fork-Offset` position the fork was created with.
    pub anchor: u64,
    /// The `Stream-Fork-Sub-Offset` the fork was created with.
    pub sub_offset: u64,
}

/// Expiry policy of a stream (PROTOCOL §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiry {
    /// Lives until deleted.
    Never,
    /// Sliding window in seconds, renewed by reads and writes.
    Ttl(u64),
    /// Absolute deadline (boxed: few streams have one, and every stream's
    /// metadata is held in memory).
    At(Box<Deadline>),
}

/// The absolute deadline of [`Expiry::At`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// The deadline.
    pub at: u64,
    /// The RFC 3339 text the client sent, echoed in `Stream-Expires-At`.
    pub text: String,
}

impl Expiry {
    /// An absolute deadline.
    pub fn at(at: u64, text: String) -> Expiry {
        Expiry::At(Box::new(Deadline { at, text }))
    }
}

/// Persisted state of one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// Blob format version ([`META_VERSION`]).
    pub v: u32,
    /// Internal identity, unique per data directory.
    pub id: StreamId,
    /// The content type as given at creation. Shared: the engine hands
    /// every stream of the same type one copy ([`ContentTypes`]), and a
    /// metadata copy (one per append) copies no text.
    pub content_type: Arc<str>,
    /// Creation time.
    pub created_at: u64,
    /// Expiry policy.
    pub expiry: Expiry,
    /// Last read or write, for sliding TTLs (persisted with each write).
    pub last_access: u64,
    /// Tail position: one past the last byte.
    pub tail: u64,
    /// Closed (EOF) state, monotonic.
    pub closed: bool,
    /// The producer request that closed the stream, for duplicate detection.
    /// Boxed, like `fork`: most streams have neither, and the engine holds
    /// every stream's metadata in memory.
    pub closed_by: Option<Box<ProducerClaim>>,
    /// Present when this stream is a fork.
    pub fork: Option<Box<ForkOrigin>>,
    /// Deleted by its owner but kept for the forks that read it.
    pub soft_deleted: bool,
    /// Last accepted `Stream-Seq` (scope: per stream).
    pub last_stream_seq: Option<String>,
    /// Idempotent producer state by producer id.
    pub producers: BTreeMap<String, ProducerState>,
}

impl StreamMeta {
    /// When the stream expires, if it can.
    pub fn expires_at(&self) -> Option<UnixMillis> {
        match &self.expiry {
            Expiry::Never => None,
            Expiry::Ttl(secs) => {
                Some(UnixMillis(self.last_access).plus_millis(secs.saturating_mul(1000)))
            }
            Expiry::At(d) => Some(UnixMillis(d.at)),
        }
    }

    /// True when the stream has expired at `now`.
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// The blob stored for this metadata.
    pub fn encode(&self) -> Vec<u8> {
        blob::encode(self)
    }

    /// Decodes a blob written by [`StreamMeta::encode`].
    pub fn decode(path: &str, blob: &[u8]) -> Result<StreamMeta, StoreError> {
        let meta = blob::decode(blob).map_err(|e| StoreError::Corrupt {
            detail: format!("metadata of {path:?}: {e}"),
        })?;
        if meta.v != META_VERSION {
            return Err(StoreError::Corrupt {
                detail: format!(
                    "metadata of {path:?} has format version {}, expected {META_VERSION}",
                    meta.v
                ),
            });
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod content_type_tests {
    use super::*;

    #[test]
    fn equal_content_types_share_one_copy_up_to_the_limit() {
        let mut table = ContentTypes::default();
        let a = table.intern("application/json".into());
        let b = table.intern("application/json".into());
        assert!(Arc::ptr_eq(&a, &b), "the second stream gets the first copy");
        for i in 1..ContentTypes::LIMIT {
            table.intern(format!("text/x-{i}").into());
        }
        assert_eq!(table.known.len(), ContentTypes::LIMIT);
        // Full: a new type is kept by its stream alone, and still works.
        let c = table.intern("text/plain".into());
        let d = table.intern("text/plain".into());
        assert_eq!(&*c, "text/plain");
        assert!(!Arc::ptr_eq(&c, &d));
        assert_eq!(table.known.len(), ContentTypes::LIMIT);
        // Known ones are still shared.
        let e = table.intern("application/json".into());
        assert!(Arc::ptr_eq(&a, &e));
    }
}
