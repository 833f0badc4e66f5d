//! The engine: one state machine over a [`Store`], driven by its host.
//!
//! Contract with the host (DESIGN.md §2):
//! - [`Engine::handle`] takes a request and `now`, and returns either a
//!   complete response or a [`LongPoll`] to park.
//! - After every call the host drains [`Engine::poll_event`] and wakes the
//!   long-polls and SSE sessions parked on each event's path; a woken
//!   long-poll is retried with [`Engine::resume`], an SSE session with
//!   [`Engine::sse_poll`].
//! - The host asks [`Engine::poll_timeout`] for the next deadline (expiry)
//!   and calls [`Engine::handle_timeout`] once it has passed.
//! - Writes are staged, not committed: a successful write returns
//!   [`Outcome::Pending`] with a ticket. The host takes every staged change as
//!   one batch with [`Engine::take_commit`], commits it to the store (one
//!   fsync for the whole group), and reports the result with
//!   [`Engine::finish_commit`], which hands back the response of every ticket
//!   in the group. So a 2xx is only ever sent for durable state (group commit,
//!   DESIGN.md §3). Single-threaded hosts can call [`Engine::commit_pending`].
//! - Readers only ever see committed state: each stream keeps a *visible*
//!   tail and closure, advanced when the group that wrote them is committed.

pub mod append;
pub mod archive;
pub mod commit;
pub mod create;
pub mod delete;
pub mod quota;
pub mod read;
pub mod sse_session;
pub mod subscribe;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::config::{Config, CorsPolicy};
use crate::cursor::Jitter;
use crate::error::{EngineError, ProtocolError};
use crate::problem::error_response;
use crate::request::{Method, Request};
use crate::response::{names, Body, Response};
use crate::store::{Batch, Op, Store, StoreError, StreamId};
use crate::stream::{ContentTypes, StreamMeta};
use crate::time::UnixMillis;

pub use archive::{ConflictMode, ExportPlan, ImportSummary};
pub use commit::{Commit, Ticket};
pub use read::LongPoll;
pub use sse_session::{LiveFrame, SseSession, SseStep};
pub use subscribe::WebhookDelivery;

/// Something the host must react to: wake whatever waits on `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Data was appended to, or the closure of, the stream at `path`.
    Advanced {
        /// The stream's URL path.
        path: String,
        /// The stream's visible tail before the change: where a live reader
        /// that had read everything sits (see [`Engine::live_frame`]).
        from: u64,
    },
    /// The stream at `path` was deleted or expired.
    Removed {
        /// The stream's URL path.
        path: String,
    },
}

impl Event {
    /// The path whose waiters must be woken.
    pub fn path(&self) -> &str {
        match self {
            Event::Advanced { path, .. } | Event::Removed { path } => path,
        }
    }
}

/// What [`Engine::handle`] and [`Engine::resume`] produce.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response.
    Respond(Response),
    /// Park until an event for `LongPoll::path` or `LongPoll::deadline`,
    /// then call [`Engine::resume`].
    Wait(LongPoll),
    /// A staged write: its response comes from [`Engine::finish_commit`]
    /// once the group holding it is durable.
    Pending(Ticket),
}

/// A stream as the engine holds it in memory.
#[derive(Clone, Debug)]
pub(crate) struct StreamState {
    /// The latest staged metadata (what writers plan against).
    pub meta: StreamMeta,
    /// Number of live forks whose origin is this stream (derived).
    pub forks: u32,
    /// What readers may see: the committed tail and closure.
    pub visible: Visible,
}

// Every stream's state is held in memory (issue 8: at most 1 KiB per
// stream in all): 160 bytes is one allocator size class; a field that
// grows it costs 32 bytes per stream.
const _: () = assert!(std::mem::size_of::<StreamState>() <= 160);

/// The committed part of a stream's state, shown to readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Visible {
    /// False until the batch that created the stream is committed.
    pub exists: bool,
    pub tail: u64,
    pub closed: bool,
}

impl Visible {
    fn of(meta: &StreamMeta) -> Visible {
        Visible {
            exists: true,
            tail: meta.tail,
            closed: meta.closed,
        }
    }
}

/// The protocol engine over a store `S`.
pub struct Engine<S: Store> {
    pub(crate) store: S,
    pub(crate) config: Config,
    /// Every stream by path. Boxed: the map's nodes then hold a pointer per
    /// stream rather than the whole state, so their unused slots stay small.
    pub(crate) streams: BTreeMap<String, Box<StreamState>>,
    /// Lower bounds of expiry deadlines; re-checked when they pass.
    expiry_queue: BTreeSet<(UnixMillis, String)>,
    events: VecDeque<Event>,
    pub(crate) jitter: Jitter,
    next_id: StreamId,
    /// Persisted bound: every id ever handed out is below it.
    id_mark: StreamId,
    pub(crate) subs: subscribe::Subscriptions,
    pub(crate) staging: commit::Staging,
    /// Stored bytes, kept current for quotas and metrics.
    pub(crate) usage: quota::Usage,
    /// Data events framed for SSE sessions, shared by sessions reading the
    /// same range.
    pub(crate) sse_frames: sse_session::SseFrames,
    /// The content types of the streams held, one copy of each.
    content_types: ContentTypes,
}

impl<S: Store> Engine<S> {
    /// Opens an engine over `store`, loading every stream's metadata.
    ///
    /// `seed` feeds cursor jitter. Sliding TTLs restart no earlier than
    /// `now`, since read renewals are kept in memory between writes.
    /// Fork reference counts are recomputed, and soft-deleted streams that
    /// no fork references any longer are cleaned up.
    pub fn open(store: S, config: Config, now: UnixMillis, seed: u64) -> Result<Self, StoreError> {
        let mut content_types = ContentTypes::default();
        let Loaded {
            streams,
            max_id,
            id_mark,
            reserved,
        } = load_streams(&store, now, &mut content_types)?;
        let mut engine = Engine {
            store,
            config,
            streams,
            expiry_queue: BTreeSet::new(),
            events: VecDeque::new(),
            jitter: Jitter::new(seed),
            next_id: (max_id + 1).max(id_mark),
            id_mark,
            staging: commit::Staging::default(),
            usage: quota::Usage::default(),
            subs: subscribe::Subscriptions::default(),
            sse_frames: sse_session::SseFrames::default(),
            content_types,
        };
        engine.subs_load(reserved, now)?;
        engine.index_expiry();
        engine.recount_usage();
        let orphans: Vec<String> = engine
            .streams
            .iter()
            .filter(|(_, s)| s.meta.soft_deleted && s.forks == 0)
            .map(|(p, _)| p.clone())
            .collect();
        if !orphans.is_empty() {
            let mut batch = Batch::default();
            for path in orphans {
                engine.purge(&path, &mut batch);
            }
            engine.store.commit(&batch)?;
        }
        Ok(engine)
    }

    /// Rebuilds the in-memory state from the store after a failed commit.
    /// In-memory read renewals of sliding TTLs are kept.
    fn reload(&mut self) -> Result<(), StoreError> {
        let Loaded {
            mut streams,
            max_id,
            id_mark,
            reserved,
        } = load_streams(&self.store, UnixMillis(0), &mut self.content_types)?;
        for (path, state) in streams.iter_mut() {
            if let Some(old) = self
                .streams
                .get(path)
                .filter(|o| o.meta.id == state.meta.id)
            {
                state.meta.last_access = state.meta.last_access.max(old.meta.last_access);
            }
        }
        self.streams = streams;
        self.next_id = self.next_id.max(max_id + 1).max(id_mark);
        self.id_mark = id_mark;
        self.expiry_queue.clear();
        self.index_expiry();
        self.recount_usage();
        let now = self.subs.now_hint;
        self.subs_load(reserved, now)?;
        Ok(())
    }

    fn index_expiry(&mut self) {
        for (path, s) in &self.streams {
            if let Some(at) = s.meta.expires_at() {
                self.expiry_queue.insert((at, path.clone()));
            }
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store (for diagnostics and tests).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Number of streams held, soft-deleted ones included.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Handles one request at `now`. A successful write comes back as
    /// [`Outcome::Pending`] when its response must wait for a commit.
    pub fn handle(&mut self, req: Request, now: UnixMillis) -> Outcome {
        let cors = self.cors_headers(&req);
        let is_write = matches!(req.method, Method::Put | Method::Post | Method::Delete);
        let mut req = req;
        match self.dispatch(&mut req, now) {
            Ok(Outcome::Respond(res)) if is_write => self.seal(res, cors),
            Ok(Outcome::Respond(res)) => Outcome::Respond(decorate(res, &cors)),
            Ok(Outcome::Wait(mut lp)) => {
                lp.extra_headers = cors;
                Outcome::Wait(lp)
            }
            Ok(pending @ Outcome::Pending(_)) => pending,
            Err(e) => {
                // Nothing was staged: errors are decided before any change.
                self.staging_discard_scratch();
                Outcome::Respond(decorate(error_response(&e), &cors))
            }
        }
    }

    /// [`Engine::handle`], then commits whatever it staged through the
    /// engine's own store and returns the final answer: the whole cycle for
    /// single-threaded hosts (the wasm host) and tests.
    pub fn handle_and_commit(&mut self, req: Request, now: UnixMillis) -> Outcome {
        let outcome = self.handle(req, now);
        // Commit whatever the call staged, including internal changes that
        // no response waits for (an expiry noticed during a read).
        let settled = self.commit_pending();
        match outcome {
            Outcome::Pending(ticket) => {
                let res = settled
                    .into_iter()
                    .find(|(t, _)| *t == ticket)
                    .map(|(_, r)| r);
                Outcome::Respond(
                    res.expect("a staged ticket settles in the commit that follows it"),
                )
            }
            other => other,
        }
    }

    /// The response for an error found by the host before the engine saw the
    /// request (for example a body over [`Config::max_body_bytes`]).
    pub fn reject(&self, req: &Request, error: ProtocolError) -> Response {
        decorate(
            error_response(&EngineError::Protocol(error)),
            &self.cors_headers(req),
        )
    }

    /// The next queued event, if any. Drain after every call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`Engine::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        let expiry = self.expiry_queue.first().map(|(at, _)| *at);
        let subs = self.subs.timers.first().map(|(at, _)| *at);
        match (expiry, subs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires every stream whose deadline has passed at `now`. The removals
    /// are staged; the host commits them like any other group.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        self.subs.now_hint = self.subs.now_hint.max(now);
        self.subs_timeout(now);
        while let Some((at, path)) = self.expiry_queue.first().cloned() {
            if at > now {
                break;
            }
            self.expiry_queue.pop_first();
            let Some(state) = self.streams.get(&path) else {
                continue;
            };
            if state.meta.soft_deleted {
                continue;
            }
            match state.meta.expires_at() {
                Some(real) if real <= now => self.expire(&path),
                Some(real) => {
                    self.expiry_queue.insert((real, path));
                }
                None => {}
            }
        }
    }

    fn dispatch(&mut self, req: &mut Request, now: UnixMillis) -> Result<Outcome, EngineError> {
        if !req.path.starts_with(&self.config.stream_root)
            || req.path.len() == self.config.stream_root.len()
        {
            return Err(ProtocolError::NotAStreamPath.into());
        }
        self.subs.now_hint = self.subs.now_hint.max(now);
        // PROTOCOL §6: the reserved control prefix is routed before streams.
        let rel = &req.path[self.config.stream_root.len()..];
        if rel == "__ds" || rel.starts_with("__ds/") {
            return self.control(req, now);
        }
        let respond = Outcome::Respond;
        match req.method {
            Method::Put => self.create(req, now).map(respond),
            Method::Post => self.append(req, now).map(respond),
            Method::Get => self.read(req, now),
            Method::Head => self.head(req, now).map(respond),
            Method::Delete => self.delete(req, now).map(respond),
            Method::Options => Ok(respond(Response::new(204))),
            Method::Other(_) => Err(ProtocolError::MethodNotAllowed.into()),
        }
    }

    /// The live (not expired, not soft-deleted) stream at `path` as writers
    /// see it (staged state included), expiring it first when its deadline
    /// has passed.
    pub(crate) fn live_stream(
        &mut self,
        path: &str,
        now: UnixMillis,
    ) -> Result<&mut StreamState, EngineError> {
        let expired = match self.streams.get(path) {
            None => return Err(ProtocolError::NotFound.into()),
            Some(s) if s.meta.soft_deleted => return Err(ProtocolError::Gone.into()),
            Some(s) => s.meta.is_expired(now),
        };
        if expired {
            self.expire(path);
            return Err(ProtocolError::NotFound.into());
        }
        Ok(self.streams.get_mut(path).expect("checked above"))
    }

    /// A copy of the metadata of the live stream at `path` (the checks of
    /// [`Engine::live_stream`], with one map lookup where it needs two).
    pub(crate) fn live_meta(
        &mut self,
        path: &str,
        now: UnixMillis,
    ) -> Result<StreamMeta, EngineError> {
        match self.streams.get(path) {
            None => return Err(ProtocolError::NotFound.into()),
            Some(s) if s.meta.soft_deleted => return Err(ProtocolError::Gone.into()),
            Some(s) if !s.meta.is_expired(now) => return Ok(s.meta.clone()),
            Some(_) => {}
        }
        self.expire(path);
        Err(ProtocolError::NotFound.into())
    }

    /// The stream at `path` as readers see it: [`Engine::live_stream`], and
    /// its creation must be committed.
    pub(crate) fn readable_stream(
        &mut self,
        path: &str,
        now: UnixMillis,
    ) -> Result<&mut StreamState, EngineError> {
        let state = self.live_stream(path, now)?;
        if state.visible.exists {
            Ok(state)
        } else {
            Err(ProtocolError::NotFound.into())
        }
    }

    /// Removes an expired stream like a `DELETE` would.
    fn expire(&mut self, path: &str) {
        let mut batch = Batch::default();
        self.remove(path, &mut batch);
        self.stage_internal(batch);
    }

    /// A fresh stream id, unique for this store's lifetime: ids only grow,
    /// and a persisted high-water mark (reserved metadata key
    /// [`ID_MARK_KEY`]), raised in blocks in the creating batch, keeps them
    /// growing across restarts even after the newest streams were deleted.
    pub(crate) fn allocate_id(&mut self, now: UnixMillis, batch: &mut Batch) -> StreamId {
        let id = self.next_id.max(now.0 << 12);
        self.next_id = id + 1;
        if self.next_id > self.id_mark {
            self.id_mark = self.next_id + ID_BLOCK;
            batch.ops.push(Op::PutMeta {
                path: ID_MARK_KEY.to_string(),
                meta: self.id_mark.to_be_bytes().to_vec(),
            });
        }
        id
    }

    /// Installs `meta` as the staged state of `path`, keeping the visible
    /// state of the same stream (a new stream is invisible until committed).
    pub(crate) fn install(&mut self, path: &str, meta: StreamMeta) {
        if let Some(at) = meta.expires_at() {
            self.expiry_queue.insert((at, path.to_string()));
        }
        // One lookup: fields are borrowed apart, not through `self`.
        match self.streams.get_mut(path) {
            // The same stream: keep its fork count and what readers see.
            Some(state) if state.meta.id == meta.id => {
                self.usage.replace(Some(&state.meta), Some(&meta));
                state.meta = meta;
            }
            existing => {
                self.usage
                    .replace(existing.as_ref().map(|s| &s.meta), Some(&meta));
                let mut meta = meta;
                meta.content_type = self.content_types.intern(meta.content_type);
                let state = StreamState {
                    meta,
                    forks: 0,
                    visible: Visible {
                        exists: false,
                        tail: 0,
                        closed: false,
                    },
                };
                self.streams.insert(path.to_string(), Box::new(state));
            }
        }
    }

    /// Forgets visibility updates of a write that failed validation.
    fn staging_discard_scratch(&mut self) {
        debug_assert!(
            !self.staging_is_dirty(),
            "a handler staged changes and then failed"
        );
        self.staging_clear_scratch();
    }

    /// Queues an event for the host.
    pub(crate) fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Adds the ops that remove `path` to `batch` and applies the removal in
    /// memory: a soft delete while forks reference it, else a purge that
    /// cascades up the fork chain (PROTOCOL §4.2, §5.4).
    pub(crate) fn remove(&mut self, path: &str, batch: &mut Batch) {
        let Some(state) = self.streams.get_mut(path) else {
            return;
        };
        if state.forks > 0 {
            state.meta.soft_deleted = true;
            batch.ops.push(Op::PutMeta {
                path: path.to_string(),
                meta: state.meta.encode(),
            });
        } else {
            self.purge(path, batch);
        }
        self.emit(Event::Removed {
            path: path.to_string(),
        });
    }

    /// Purges `path` (which no fork references) and, transitively, sources
    /// that were soft-deleted and lose their last fork.
    fn purge(&mut self, path: &str, batch: &mut Batch) {
        let mut next = Some(path.to_string());
        while let Some(path) = next.take() {
            let Some(state) = self.streams.remove(&path) else {
                break;
            };
            self.usage.replace(Some(&state.meta), None);
            batch.ops.push(Op::DeleteMeta { path: path.clone() });
            batch.ops.push(Op::PurgeData {
                path: path.clone(),
                id: state.meta.id,
            });
            if let Some(origin) = state.meta.fork {
                if let Some(source) = self
                    .streams
                    .get_mut(&origin.source)
                    .filter(|s| s.meta.id == origin.source_id)
                {
                    source.forks = source.forks.saturating_sub(1);
                    if source.forks == 0 && source.meta.soft_deleted {
                        next = Some(origin.source);
                    }
                }
            }
        }
    }

    fn cors_headers(&self, req: &Request) -> CorsHeaders {
        let origin = req.header_value(names::ORIGIN);
        let allowed = match (&self.config.cors, origin) {
            // A write without `Origin` comes from no browser (the Fetch
            // standard sends `Origin` with every request whose method is
            // not GET or HEAD), and its response is never cached, so no
            // browser ever sees it: CORS headers would be ~290 wasted
            // bytes per append. Reads keep them without `Origin`: a shared
            // cache may hand the same response to a browser later.
            (CorsPolicy::AnyOrigin, None)
                if matches!(req.method, Method::Post | Method::Put | Method::Delete) =>
            {
                return Cow::Borrowed(&[]);
            }
            // The common answer: constants only, nothing to allocate.
            (CorsPolicy::AnyOrigin, _) if req.method != Method::Options => {
                return Cow::Borrowed(&ANY_ORIGIN);
            }
            (CorsPolicy::AnyOrigin, _) => Some(Cow::Borrowed("*")),
            (CorsPolicy::AllowList(list), Some(o)) if list.iter().any(|a| a == o) => {
                Some(Cow::Owned(o.to_string()))
            }
            _ => None,
        };
        let mut out = Vec::new();
        if let Some(allowed) = allowed {
            if allowed != "*" {
                out.push(("vary", Cow::Borrowed("Origin")));
            }
            out.push(("access-control-allow-origin", allowed));
            out.push((
                "access-control-expose-headers",
                Cow::Borrowed(crate::cors::EXPOSE_HEADERS),
            ));
            if req.method == Method::Options {
                out.push((
                    "access-control-allow-methods",
                    Cow::Borrowed(crate::cors::ALLOW_METHODS),
                ));
                let requested = req.header_value("access-control-request-headers");
                out.push((
                    "access-control-allow-headers",
                    requested.map_or(Cow::Borrowed(crate::cors::ALLOW_HEADERS), |r| {
                        Cow::Owned(r.to_string())
                    }),
                ));
                out.push(("access-control-max-age", Cow::Borrowed("86400")));
            }
        }
        Cow::Owned(out)
    }
}

/// CORS headers of one request, added to its response when it is sent.
pub(crate) type CorsHeaders = Cow<'static, [(&'static str, Cow<'static, str>)]>;

/// The CORS headers of any request but a preflight under
/// [`CorsPolicy::AnyOrigin`] (the default).
static ANY_ORIGIN: [(&str, Cow<'static, str>); 2] = [
    ("access-control-allow-origin", Cow::Borrowed("*")),
    (
        "access-control-expose-headers",
        Cow::Borrowed(crate::cors::EXPOSE_HEADERS),
    ),
];

/// Adds the security headers of PROTOCOL §12.7 and the CORS headers.
fn decorate(mut res: Response, cors: &[(&'static str, Cow<'static, str>)]) -> Response {
    res.set("x-content-type-options", "nosniff");
    res.set("cross-origin-resource-policy", "cross-origin");
    res.headers.extend(cors.iter().cloned());
    res
}

/// Adds the security and CORS headers to a response built outside `handle`.
pub(crate) fn decorate_with(
    res: Response,
    extra: &[(&'static str, Cow<'static, str>)],
) -> Response {
    decorate(res, extra)
}

impl Body {
    /// True for an SSE body.
    pub fn is_sse(&self) -> bool {
        matches!(self, Body::Sse(_))
    }
}

/// What [`load_streams`] read from the store.
struct Loaded {
    streams: BTreeMap<String, Box<StreamState>>,
    max_id: StreamId,
    id_mark: StreamId,
    /// Records under reserved (non-path) keys.
    reserved: Vec<(String, Vec<u8>)>,
}

/// Reserved metadata key of the stream id high-water mark (stream paths
/// always start with the stream root, so they never collide with it).
pub const ID_MARK_KEY: &str = "";
/// How far ahead the high-water mark is raised at a time.
const ID_BLOCK: u64 = 1 << 16;

/// Loads every stream's metadata, the id high-water mark, and derives fork
/// reference counts.
fn load_streams<S: Store>(
    store: &S,
    now: UnixMillis,
    content_types: &mut ContentTypes,
) -> Result<Loaded, StoreError> {
    let mut streams = BTreeMap::new();
    let mut max_id = 0;
    let mut id_mark = 0;
    let mut reserved = Vec::new();
    for (path, blob) in store.load_meta()? {
        if !path.starts_with('/') && path != ID_MARK_KEY {
            // Subscription records and the server secret.
            reserved.push((path, blob));
            continue;
        }
        if path == ID_MARK_KEY {
            let bytes: [u8; 8] = blob
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt {
                    detail: "the stream id high-water mark is not 8 bytes".to_string(),
                })?;
            id_mark = u64::from_be_bytes(bytes);
            continue;
        }
        let mut meta = StreamMeta::decode(&path, &blob)?;
        meta.content_type = content_types.intern(meta.content_type);
        meta.last_access = meta.last_access.max(now.0);
        max_id = max_id.max(meta.id);
        let visible = Visible::of(&meta);
        streams.insert(
            path,
            Box::new(StreamState {
                meta,
                forks: 0,
                visible,
            }),
        );
    }
    let origins: Vec<(String, StreamId)> = streams
        .values()
        .filter_map(|s| {
            s.meta
                .fork
                .as_ref()
                .map(|f| (f.source.clone(), f.source_id))
        })
        .collect();
    for (source, source_id) in origins {
        if let Some(s) = streams.get_mut(&source).filter(|s| s.meta.id == source_id) {
            s.forks += 1;
        }
    }
    Ok(Loaded {
        streams,
        max_id,
        id_mark,
        reserved,
    })
}
