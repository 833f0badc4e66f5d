//! `GET` and `HEAD`: catch-up reads, long-poll, the start of SSE, metadata
//! (PROTOCOL §5.5–5.8, §8, §10).

use crate::cursor::next_cursor;
use crate::engine::sse_session::SseSession;
use crate::engine::{decorate_with, Engine, Outcome, StreamState};
use crate::error::{BadRequest, EngineError, ProtocolError};
use crate::json::{is_json, render_array};
use crate::offset::{Offset, ReadFrom};
use crate::pieces::Pieces;
use crate::problem::error_response;
use crate::request::Request;
use crate::response::{names, Body, Response};
use crate::store::{Record, Store, StoreError, StreamId};
use crate::stream::{Expiry, ForkOrigin};
use crate::time::UnixMillis;

/// The read mode named by the `live` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Live {
    CatchUp,
    LongPoll,
    Sse,
}

struct ReadQuery {
    from: Option<ReadFrom>,
    live: Live,
    cursor: Option<String>,
}

/// A parked long-poll: the host waits for an event on `path` or for
/// `deadline`, then calls [`Engine::resume`].
#[derive(Debug, Clone)]
pub struct LongPoll {
    /// The stream's URL path (events for it wake this poll).
    pub path: String,
    /// When the poll answers 204 if nothing arrived.
    pub deadline: UnixMillis,
    id: StreamId,
    position: u64,
    cursor: Option<String>,
    pub(crate) extra_headers: crate::engine::CorsHeaders,
}

/// A stream as readers see it: the committed tail and closure.
#[derive(Clone, Debug)]
pub(crate) struct View {
    pub id: StreamId,
    pub content_type: std::sync::Arc<str>,
    pub tail: u64,
    pub closed: bool,
    pub fork: Option<ForkOrigin>,
    pub expiry: Expiry,
}

impl View {
    pub(crate) fn of(state: &StreamState) -> View {
        View {
            id: state.meta.id,
            content_type: state.meta.content_type.clone(),
            tail: state.visible.tail,
            closed: state.visible.closed,
            fork: state.meta.fork.as_deref().cloned(),
            expiry: state.meta.expiry.clone(),
        }
    }
}

/// A chunk of stream data ready to send.
pub(crate) struct Chunk {
    pub body: Pieces,
    pub next: u64,
    /// Number of records (JSON messages) included.
    pub records: usize,
}

impl<S: Store> Engine<S> {
    pub(crate) fn read(&mut self, req: &Request, now: UnixMillis) -> Result<Outcome, EngineError> {
        let query = parse_query(req)?;
        let state = self.readable_stream(&req.path, now)?;
        // PROTOCOL §5.1: reads renew a sliding TTL (kept in memory; see open).
        state.meta.last_access = now.0;
        let meta = View::of(state);
        let position = match query.from.unwrap_or(ReadFrom::Start) {
            ReadFrom::Start => 0,
            ReadFrom::Now => meta.tail,
            ReadFrom::At(o) => o.0,
        };
        if position > meta.tail {
            return Err(BadRequest::Query {
                name: "offset",
                reason: "is beyond the stream's tail",
            }
            .into());
        }
        let cursor = query.cursor;
        match query.live {
            Live::Sse => {
                let session =
                    SseSession::new(req.path.clone(), &meta, position, cursor, now, &self.config);
                let mut res = Response::new(200);
                res.set(names::CONTENT_TYPE, "text/event-stream");
                res.set(names::CACHE_CONTROL, "no-cache");
                if session.base64() {
                    res.set(names::STREAM_SSE_DATA_ENCODING, "base64");
                }
                res.body = Body::Sse(session);
                Ok(Outcome::Respond(res))
            }
            Live::LongPoll => {
                let lp = LongPoll {
                    path: req.path.clone(),
                    deadline: now.plus_millis(self.config.long_poll_timeout_ms),
                    id: meta.id,
                    position,
                    cursor,
                    extra_headers: std::borrow::Cow::Borrowed(&[]),
                };
                Ok(self
                    .poll_once(&lp, &meta, now)
                    .map_or(Outcome::Wait(lp), Outcome::Respond))
            }
            Live::CatchUp if query.from == Some(ReadFrom::Now) => {
                let mut res = Response::new(200);
                res.set(names::CONTENT_TYPE, meta.content_type.to_string());
                res.set(names::STREAM_NEXT_OFFSET, Offset(meta.tail).to_string());
                res.set(names::STREAM_UP_TO_DATE, "true");
                res.set(names::CACHE_CONTROL, "no-store");
                if meta.closed {
                    res.set(names::STREAM_CLOSED, "true");
                }
                let body = if is_json(&meta.content_type) {
                    b"[]".to_vec()
                } else {
                    Vec::new()
                };
                res.body = Body::Full(body);
                Ok(Outcome::Respond(res))
            }
            Live::CatchUp => {
                let chunk = self.read_chunk(&req.path, &meta, position, true)?;
                let etag = etag(&meta, position, chunk.next);
                if req
                    .header_value(names::IF_NONE_MATCH)
                    .is_some_and(|v| etag_matches(v, &etag))
                {
                    let mut res = Response::new(304);
                    res.set(names::ETAG, etag);
                    res.set(names::STREAM_NEXT_OFFSET, Offset(chunk.next).to_string());
                    res.set(names::CACHE_CONTROL, self.config.cacheable_read.clone());
                    return Ok(Outcome::Respond(res));
                }
                let mut res = data_response(&meta, chunk, etag);
                res.set(names::CACHE_CONTROL, self.config.cacheable_read.clone());
                Ok(Outcome::Respond(res))
            }
        }
    }

    /// Retries a parked long-poll at `now`: data, EOF, timeout (204), or
    /// another wait.
    pub fn resume(&mut self, lp: LongPoll, now: UnixMillis) -> Outcome {
        let meta = match self.streams.get(&lp.path) {
            Some(s) if s.meta.id == lp.id && !s.meta.soft_deleted => View::of(s),
            _ => {
                let res = error_response(&EngineError::Protocol(ProtocolError::NotFound));
                return Outcome::Respond(decorate_with(res, &lp.extra_headers));
            }
        };
        match self.poll_once(&lp, &meta, now) {
            Some(res) => Outcome::Respond(decorate_with(res, &lp.extra_headers)),
            None => Outcome::Wait(lp),
        }
    }

    /// The long-poll answer available at `now`, or `None` to keep waiting.
    fn poll_once(&mut self, lp: &LongPoll, meta: &View, now: UnixMillis) -> Option<Response> {
        if lp.position < meta.tail {
            let chunk = match self.read_chunk(&lp.path, meta, lp.position, true) {
                Ok(c) => c,
                Err(e) => return Some(error_response(&EngineError::Store(e))),
            };
            let etag = etag(meta, lp.position, chunk.next);
            let closed_at_tail = meta.closed && chunk.next == meta.tail;
            let mut res = data_response(meta, chunk, etag);
            res.set(names::CACHE_CONTROL, self.config.cacheable_read.clone());
            if !closed_at_tail {
                let cursor = next_cursor(now, lp.cursor.as_deref(), &mut self.jitter);
                res.set(names::STREAM_CURSOR, cursor.to_string());
            }
            return Some(res);
        }
        if !meta.closed && now < lp.deadline {
            return None;
        }
        // PROTOCOL §5.7: timeout, or closed at the tail (answered at once).
        let mut res = Response::new(204);
        res.set(names::STREAM_NEXT_OFFSET, Offset(meta.tail).to_string());
        res.set(names::STREAM_UP_TO_DATE, "true");
        res.set(names::CACHE_CONTROL, "no-store");
        if meta.closed {
            res.set(names::STREAM_CLOSED, "true");
        } else {
            let cursor = next_cursor(now, lp.cursor.as_deref(), &mut self.jitter);
            res.set(names::STREAM_CURSOR, cursor.to_string());
        }
        Some(res)
    }

    pub(crate) fn head(&mut self, req: &Request, now: UnixMillis) -> Result<Response, EngineError> {
        let meta = View::of(self.readable_stream(&req.path, now)?);
        let mut res = Response::new(200);
        res.set(names::CONTENT_TYPE, meta.content_type.to_string());
        res.set(names::STREAM_NEXT_OFFSET, Offset(meta.tail).to_string());
        match &meta.expiry {
            Expiry::Never => {}
            Expiry::Ttl(secs) => res.set(names::STREAM_TTL, secs.to_string()),
            Expiry::At(d) => res.set(names::STREAM_EXPIRES_AT, d.text.clone()),
        }
        if meta.closed {
            res.set(names::STREAM_CLOSED, "true");
        }
        res.set(names::CACHE_CONTROL, "no-store");
        Ok(res)
    }

    /// At most one chunk of data from `from` (PROTOCOL §5.6): JSON messages
    /// are never split, and are cut at [`crate::Config::max_chunk_bytes`];
    /// bytes too, unless `defer` and the store [`Store::defers`]: then
    /// bytes past the first [`crate::Config::streamed_window_bytes`] are
    /// left for the response to read as it is sent ([`crate::pieces`]), up
    /// to [`crate::Config::max_streamed_read_bytes`].
    pub(crate) fn read_chunk(
        &self,
        path: &str,
        meta: &View,
        from: u64,
        defer: bool,
    ) -> Result<Chunk, StoreError> {
        let max = self.config.max_chunk_bytes.max(1);
        if is_json(&meta.content_type) {
            let records =
                self.read_stitched(path, meta.id, meta.fork.as_ref(), from, meta.tail, max)?;
            // A position inside a message (never minted by us) skips it.
            let mut next = from;
            let mut included: Vec<&Record> = Vec::new();
            let mut size = 0usize;
            for r in &records {
                next = next.max(r.end());
                if r.start < from {
                    continue;
                }
                if !included.is_empty() && size + r.data.len() > max {
                    next = r.start;
                    break;
                }
                size += r.data.len();
                included.push(r);
            }
            let records = included.len();
            let body = render_array(included.into_iter().map(|r| r.data.as_slice()));
            Ok(Chunk {
                body: body.into(),
                next,
                records,
            })
        } else {
            // Bytes: the first window lent by the store (or copied once into
            // the body); the rest deferred when the store can (see
            // `crate::pieces`), else read now too.
            let defer = defer && self.store.defers();
            let max = if defer {
                self.config.max_streamed_read_bytes.max(max)
            } else {
                max
            };
            let window = self.config.streamed_window_bytes.max(1);
            let mut body = Pieces::new();
            let mut pos = from;
            for (seg_path, id, lo, hi) in
                self.fork_chain(path, meta.id, meta.fork.as_ref(), meta.tail)?
            {
                if pos >= hi || lo >= hi {
                    continue;
                }
                let room = max - body.len();
                if room == 0 {
                    break;
                }
                let start = pos.max(lo);
                let end = hi.min(start.saturating_add(room as u64));
                let mut at = start;
                let now = if defer {
                    window.saturating_sub(body.len()).min(room)
                } else {
                    room
                };
                if now > 0 {
                    let before = body.len();
                    self.store
                        .lend_bytes(seg_path, id, start, hi, now, &mut body)?;
                    at = start + (body.len() - before) as u64;
                    if at < end && body.len() - before < now {
                        // The store holds less than the tail says.
                        pos = at;
                        break;
                    }
                }
                while at < end {
                    let upto = end.min(at.saturating_add(window as u64));
                    // A store that declines (it should not, having said it
                    // defers) ends the chunk here: nothing read can follow
                    // deferred bytes, and the body is not empty.
                    let Some(later) = self.store.defer_bytes(seg_path, id, at, upto) else {
                        break;
                    };
                    body.push_later(later);
                    at = upto;
                }
                pos = at;
                if pos < hi {
                    break;
                }
            }
            Ok(Chunk {
                body,
                next: pos,
                records: 0,
            })
        }
    }

    /// Records covering `[from, end)` of the stream at `path`, stitched
    /// across its fork chain (PROTOCOL §4.2): positions below a fork's point
    /// come from its source. Records are clipped to the segment they belong to.
    pub(crate) fn read_stitched(
        &self,
        path: &str,
        id: StreamId,
        fork: Option<&ForkOrigin>,
        from: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        let mut budget = max_bytes;
        for (seg_path, id, lo, hi) in self.fork_chain(path, id, fork, end)? {
            if from >= hi || lo >= hi {
                continue;
            }
            let start = from.max(lo);
            for mut r in self.store.read(seg_path, id, start, hi, budget)? {
                if r.end() > hi {
                    r.data
                        .truncate(usize::try_from(hi - r.start).unwrap_or(usize::MAX));
                }
                budget = budget.saturating_sub(r.data.len());
                out.push(r);
            }
            if budget == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// The segments a read of the stream at `path` below `end` draws from,
    /// oldest first: `(path, id, lo, hi)`, positions `[lo, hi)` of each
    /// stream in its fork chain (PROTOCOL §4.2).
    pub(crate) fn fork_chain<'a>(
        &'a self,
        path: &'a str,
        id: StreamId,
        fork: Option<&'a ForkOrigin>,
        end: u64,
    ) -> Result<Vec<(&'a str, StreamId, u64, u64)>, StoreError> {
        // Segments from the top of the chain down: (path, id, lo, hi).
        let mut chain: Vec<(&str, StreamId, u64, u64)> = Vec::new();
        let (mut cur_path, mut cur_id, mut cur_fork, mut hi) = (path, id, fork, end);
        loop {
            let lo = cur_fork.map_or(0, |f| f.point).min(hi);
            chain.push((cur_path, cur_id, lo, hi));
            let Some(origin) = cur_fork else { break };
            let Some(source) = self
                .streams
                .get(&origin.source)
                .filter(|s| s.meta.id == origin.source_id)
            else {
                return Err(StoreError::Corrupt {
                    detail: format!("fork source {:?} of {cur_path:?} is missing", origin.source),
                });
            };
            (cur_path, cur_id, cur_fork, hi) = (
                &origin.source,
                source.meta.id,
                source.meta.fork.as_deref(),
                lo,
            );
        }
        chain.reverse();
        Ok(chain)
    }
}

fn parse_query(req: &Request) -> Result<ReadQuery, BadRequest> {
    let (mut from, mut live, mut cursor) = (None, None, None);
    for (key, value) in req.query_pairs() {
        match key.as_str() {
            "offset" => {
                if from.is_some() {
                    return Err(BadRequest::Query {
                        name: "offset",
                        reason: "must be given once",
                    });
                }
                from = Some(ReadFrom::parse(&value).ok_or(BadRequest::Query {
                    name: "offset",
                    reason: "must be -1, now, or an offset this server issued",
                })?);
            }
            "live" => {
                if live.is_some() {
                    return Err(BadRequest::Query {
                        name: "live",
                        reason: "must be given once",
                    });
                }
                live = Some(match value.as_str() {
                    "long-poll" => Live::LongPoll,
                    "sse" => Live::Sse,
                    _ => {
                        return Err(BadRequest::Query {
                            name: "live",
                            reason: "must be long-poll or sse",
                        })
                    }
                });
            }
            "cursor" => cursor = Some(value),
            _ => {}
        }
    }
    let live = live.unwrap_or(Live::CatchUp);
    if live != Live::CatchUp && from.is_none() {
        return Err(BadRequest::LiveWithoutOffset);
    }
    Ok(ReadQuery { from, live, cursor })
}

/// `"{id}:{from}:{next}"`, plus `:c` once the stream is closed (PROTOCOL §10.1).
fn etag(meta: &View, from: u64, next: u64) -> String {
    let closed = if meta.closed { ":c" } else { "" };
    format!("\"{:x}:{from}:{next}{closed}\"", meta.id)
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// A 200 carrying `chunk`, with the headers of PROTOCOL §5.6.
fn data_response(meta: &View, chunk: Chunk, etag: String) -> Response {
    let mut res = Response::new(200);
    res.set(names::CONTENT_TYPE, meta.content_type.to_string());
    res.set(names::STREAM_NEXT_OFFSET, Offset(chunk.next).to_string());
    res.set(names::ETAG, etag);
    if chunk.next == meta.tail {
        res.set(names::STREAM_UP_TO_DATE, "true");
        if meta.closed {
            res.set(names::STREAM_CLOSED, "true");
        }
    }
    res.body = Body::Pieces(chunk.body);
    res
}
