//! # durable-streams-core
//!
//! The portable protocol engine of Durable Streams (see `PROTOCOL.md`).
//!
//! ## Charter: what this crate never does
//! - It never reads a clock: every entry point takes `now` ([`UnixMillis`]).
//! - It never touches a socket, a thread, a runtime, a timer or a file; the
//!   only I/O goes through the [`Store`] trait its host supplies.
//! - It holds no `static` mutable state; randomness (cursor jitter) comes
//!   from a generator seeded by the host.
//! - It knows no HTTP framework: requests and responses are plain data
//!   ([`Request`], [`Response`]), and one table ([`problem`]) maps every
//!   error to its status, headers and `application/problem+json` body, so
//!   every host sends identical bytes.
//!
//! It builds for `wasm32-unknown-unknown`; CI checks that, and that its
//! dependency tree holds no tokio, axum, hyper, redb, mio or web-sys.
//!
//! ## Driving it
//! See [`Engine`]: `handle` → `Outcome`, then drain `poll_event`; park
//! long-polls until an event or their deadline and call `resume`; drive SSE
//! bodies with `sse_poll`; call `handle_timeout` at `poll_timeout`.

#![warn(missing_docs)]

pub mod archive;
pub mod config;
pub mod cors;
pub mod cursor;
pub mod engine;
pub mod error;
pub mod headers;
pub mod json;
pub mod mem_store;
pub mod offset;
pub mod pieces;
pub mod problem;
pub mod producer;
pub mod request;
pub mod response;
pub mod shard;
pub mod sse;
pub mod store;
pub mod stream;
pub mod subscription;
pub mod time;
pub mod varint;

pub use archive::{ArchiveError, ArchiveInfo, ArchiveReader, ArchiveWriter};
pub use config::{Config, CorsPolicy, Quotas};
pub use engine::{
    Commit, ConflictMode, Engine, Event, ExportPlan, ImportSummary, LiveFrame, LongPoll, Outcome,
    SseSession, SseStep, Ticket, WebhookDelivery,
};
pub use error::{BadRequest, Conflict, EngineError, ProtocolError, Quota, Refusal};
pub use mem_store::MemStore;
pub use offset::{Offset, ReadFrom};
pub use pieces::{load_exactly, Deferred, Lent, Piece, Pieces};
pub use request::{Method, Request};
pub use response::{Body, Response};
pub use store::{Batch, Op, Record, Store, StoreError, StreamId};
pub use time::UnixMillis;
