//! A live SSE read (PROTOCOL §5.8): catch up from the start offset, then
//! emit new data as it is appended, with a `control` event after every data
//! event, and end at EOF or after the reconnect interval (§10.2).

use crate::config::Config;
use crate::cursor::{interval, next_cursor, Jitter};
use crate::engine::read::View;
use crate::engine::Engine;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::offset::{push_decimal, Offset, MAX_POSITION};
use crate::sse::{push_data_event, DataEncoding, KEEP_ALIVE};
use crate::store::{Store, StreamId};
use crate::time::UnixMillis;

/// State of one SSE response body. Drive it with [`Engine::sse_poll`].
#[derive(Debug, Clone)]
pub struct SseSession {
    /// The stream's URL path (events for it mean new data may be ready).
    pub path: String,
    id: StreamId,
    position: u64,
    encoding: DataEncoding,
    /// A JSON stream (its content type is fixed for its id, so this is
    /// worked out once, not per append).
    json: bool,
    cursor: Option<String>,
    last_cursor: Option<u64>,
    /// When the server ends the response so the client reconnects.
    end_at: UnixMillis,
    keep_alive_ms: u64,
    sent_control: bool,
    sent_closed: bool,
    idle_since: UnixMillis,
}

/// What to send next on an SSE body.
#[derive(Debug, PartialEq, Eq)]
pub struct SseStep {
    /// Bytes to write now (may be empty).
    pub bytes: Vec<u8>,
    /// `Some(t)`: call again after an event for the path or at `t`.
    /// `None`: the body is complete; close it.
    pub wake_at: Option<UnixMillis>,
}

impl SseSession {
    pub(crate) fn new(
        path: String,
        meta: &View,
        position: u64,
        cursor: Option<String>,
        now: UnixMillis,
        config: &Config,
    ) -> SseSession {
        SseSession {
            path,
            id: meta.id,
            position,
            encoding: DataEncoding::for_content_type(&meta.content_type),
            json: crate::json::is_json(&meta.content_type),
            cursor,
            last_cursor: None,
            end_at: now.plus_millis(config.sse_reconnect_ms),
            keep_alive_ms: config.sse_keep_alive_ms.max(1),
            sent_control: false,
            sent_closed: false,
            idle_since: now,
        }
    }

    /// True when data events carry base64 (binary streams).
    pub fn base64(&self) -> bool {
        self.encoding == DataEncoding::Base64
    }
}

impl<S: Store> Engine<S> {
    /// Advances an SSE session at `now`: everything readable is framed into
    /// `bytes`; `wake_at` says when to call again (or `None` to finish).
    pub fn sse_poll(&mut self, session: &mut SseSession, now: UnixMillis) -> SseStep {
        // Room for a small event and its control event: one allocation.
        let mut out = Vec::with_capacity(SMALL_STEP);
        // What the step needs of the stream, without copying its metadata
        // (this runs once per live reader per append).
        let meta = match self.streams.get(&session.path) {
            Some(s)
                if s.meta.id == session.id && !s.meta.soft_deleted && !s.meta.is_expired(now) =>
            {
                Live {
                    id: s.meta.id,
                    tail: s.visible.tail,
                    closed: s.visible.closed,
                }
            }
            // Deleted or expired while live: end the body; a reconnect sees 404.
            _ => {
                return SseStep {
                    bytes: out,
                    wake_at: None,
                }
            }
        };
        let max_chunk = self.config.max_chunk_bytes.max(1);
        let mut budget = 4 * max_chunk;
        while session.position < meta.tail && budget > 0 {
            let key = FrameKey {
                id: meta.id,
                from: session.position,
                tail: meta.tail,
                max_chunk,
                encoding: session.encoding,
            };
            let (next, size) = match self.sse_frames.get(&key) {
                Some(frame) => {
                    out.extend_from_slice(&frame.event);
                    (frame.next, frame.size)
                }
                None => {
                    // The first reader of this range frames it for all.
                    let Some(frame) = self.frame_range(&session.path, &key, session.json) else {
                        return SseStep {
                            bytes: out,
                            wake_at: None,
                        };
                    };
                    out.extend_from_slice(&frame.event);
                    let at = (frame.next, frame.size);
                    self.sse_frames.put(key, Arc::new(frame));
                    at
                }
            };
            if next <= session.position {
                break;
            }
            budget = budget.saturating_sub(size);
            session.position = next;
            session.push_control(&mut out, &meta, now, &mut self.jitter);
        }
        let at_tail = session.position >= meta.tail;
        // PROTOCOL §5.8 / §8: the first control event reports the tail, and
        // a stream closed at the tail always gets its final closed control
        // (also when the close came without data).
        if at_tail && (!session.sent_control || (meta.closed && !session.sent_closed)) {
            session.push_control(&mut out, &meta, now, &mut self.jitter);
        }
        if at_tail && meta.closed {
            return SseStep {
                bytes: out,
                wake_at: None,
            };
        }
        if now >= session.end_at {
            return SseStep {
                bytes: out,
                wake_at: None,
            };
        }
        if !at_tail {
            // More data than one step carries: come back at once.
            return SseStep {
                bytes: out,
                wake_at: Some(now),
            };
        }
        if out.is_empty() && now.millis_since(session.idle_since) >= session.keep_alive_ms {
            out.extend_from_slice(KEEP_ALIVE);
        }
        if !out.is_empty() {
            session.idle_since = now;
        }
        SseStep {
            bytes: out,
            wake_at: Some(session.next_look()),
        }
    }

    /// The data event for sessions at `from` of the stream at `path`, made
    /// once when its data became visible, so every session following the
    /// stream can send it without calling the engine (see
    /// [`SseSession::follow`]). `None` when the stream is gone, expired or
    /// closed, `from` is not below its tail, or the range takes more than
    /// one event: those sessions take [`Engine::sse_poll`].
    pub fn live_frame(&mut self, path: &str, from: u64, now: UnixMillis) -> Option<LiveFrame> {
        let s = self.streams.get(path)?;
        if s.meta.soft_deleted || s.meta.is_expired(now) || s.visible.closed {
            return None;
        }
        let (id, tail) = (s.meta.id, s.visible.tail);
        if from >= tail {
            return None;
        }
        let encoding = DataEncoding::for_content_type(&s.meta.content_type);
        let json = crate::json::is_json(&s.meta.content_type);
        let key = FrameKey {
            id,
            from,
            tail,
            max_chunk: self.config.max_chunk_bytes.max(1),
            encoding,
        };
        let frame = match self.sse_frames.get(&key) {
            Some(frame) => Arc::clone(frame),
            None => {
                let frame = Arc::new(self.frame_range(path, &key, json)?);
                self.sse_frames.put(key, Arc::clone(&frame));
                frame
            }
        };
        // One event up to the tail; anything else is the slow path's.
        (frame.next == tail).then_some(LiveFrame {
            id,
            from,
            encoding,
            frame,
        })
    }

    /// Reads and frames the chunk at `key.from` (what every session at that
    /// position sends next); `None` when the stream cannot be read.
    fn frame_range(&self, path: &str, key: &FrameKey, json: bool) -> Option<Frame> {
        let view = View::of(self.streams.get(path)?);
        let chunk = self.read_chunk(path, &view, key.from, false).ok()?;
        let mut event = Vec::new();
        if chunk.next > key.from && !(json && chunk.records == 0) {
            push_data_event(&mut event, &chunk.body.contiguous(), key.encoding);
        }
        Some(Frame {
            event,
            next: chunk.next,
            size: chunk.body.len(),
        })
    }
}

impl SseSession {
    /// The step [`Engine::sse_poll`] would take for this session at `now`
    /// when `live` is the only news, without the engine: `Some` when the
    /// session sits at the frame's start with everything before it sent,
    /// and the frame carries the stream up to its tail. `None` otherwise;
    /// then call [`Engine::sse_poll`] (nothing of the session has changed).
    pub fn follow(&mut self, live: &LiveFrame, now: UnixMillis) -> Option<SseStep> {
        let frame = &live.frame;
        let fits = live.id == self.id
            && live.from == self.position
            && live.encoding == self.encoding
            && frame.next > self.position
            // A cursor was sent: the next one needs no jitter (§10.1).
            && self.last_cursor.is_some()
            && now < self.end_at;
        if !fits {
            return None;
        }
        let mut out = Vec::with_capacity(frame.event.len() + CONTROL_BYTES);
        out.extend_from_slice(&frame.event);
        self.position = frame.next;
        let at = Live {
            id: live.id,
            tail: frame.next,
            closed: false,
        };
        // With a last cursor set, the jitter is never drawn.
        self.push_control(&mut out, &at, now, &mut Jitter::new(0));
        self.idle_since = now;
        Some(SseStep {
            bytes: out,
            wake_at: Some(self.next_look()),
        })
    }

    /// When an idle session looks again: its next keep-alive, or its end.
    fn next_look(&self) -> UnixMillis {
        self.idle_since
            .plus_millis(self.keep_alive_ms)
            .min(self.end_at)
    }

    fn push_control(
        &mut self,
        out: &mut Vec<u8>,
        meta: &Live,
        now: UnixMillis,
        jitter: &mut Jitter,
    ) {
        let at_tail = self.position >= meta.tail;
        // Framed by hand (this runs once per reader per append): one
        // `event: control` frame whose data line is the JSON object below.
        out.extend_from_slice(b"event: control\ndata:{\"streamNextOffset\":\"");
        push_offset_token(out, self.position);
        out.push(b'"');
        if at_tail && meta.closed {
            self.sent_closed = true;
            out.extend_from_slice(b",\"streamClosed\":true,\"upToDate\":true");
        } else {
            // The client's cursor decides the first value; later ones only
            // follow the clock, never going backwards.
            let cursor = match self.last_cursor {
                Some(last) => last.max(interval(now)),
                None => next_cursor(now, self.cursor.as_deref(), jitter),
            };
            self.last_cursor = Some(cursor);
            out.extend_from_slice(b",\"streamCursor\":\"");
            push_decimal(out, cursor);
            out.push(b'"');
            if at_tail {
                out.extend_from_slice(b",\"upToDate\":true");
            }
        }
        out.extend_from_slice(b"}\n\n");
        self.sent_control = true;
    }
}

/// Bytes reserved for one step's output: a small data event with its
/// control event fit.
const SMALL_STEP: usize = 512;
/// Room for one control event (offset token, cursor, flags).
const CONTROL_BYTES: usize = 128;

/// The state of a live stream one SSE step reads.
struct Live {
    id: StreamId,
    tail: u64,
    closed: bool,
}

/// What a framed data event is keyed by: the same stream, range and
/// framing always give the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameKey {
    id: StreamId,
    from: u64,
    /// The committed tail the chunk was read up to.
    tail: u64,
    max_chunk: usize,
    encoding: DataEncoding,
}

/// One chunk framed as an `event: data` (PROTOCOL §5.8).
#[derive(Debug)]
struct Frame {
    /// The event's bytes; empty when the chunk held no whole JSON message.
    event: Vec<u8>,
    /// The position after the chunk.
    next: u64,
    /// Stream bytes the chunk carried (counted against a step's budget).
    size: usize,
}

/// A data event of a stream, framed once when its data became visible, for
/// the SSE sessions that sit where it starts ([`Engine::live_frame`],
/// [`SseSession::follow`]). Cheap to share between threads.
#[derive(Debug, Clone)]
pub struct LiveFrame {
    id: StreamId,
    from: u64,
    encoding: DataEncoding,
    frame: Arc<Frame>,
}

impl LiveFrame {
    /// Bytes of the framed event.
    pub fn len(&self) -> usize {
        self.frame.event.len()
    }

    /// True when the range held no whole JSON message (only a control event
    /// follows).
    pub fn is_empty(&self) -> bool {
        self.frame.event.is_empty()
    }
}

/// Data events recently framed for SSE sessions. When many sessions follow
/// one stream, every append wakes them all and each asks for the same range;
/// the first reads and frames it, the rest copy its bytes, so the store is
/// read once per append rather than once per reader.
///
/// Only saves work, never changes output: committed data below a tail is
/// never rewritten and stream ids are never reused, so an entry is right for
/// as long as it is kept. Small and bounded: [`FRAMES_KEPT`] entries of at
/// most [`FRAME_MAX_BYTES`] each.
#[derive(Debug, Default)]
pub(crate) struct SseFrames {
    entries: VecDeque<(FrameKey, Arc<Frame>)>,
}

/// Entries kept (most recent first).
const FRAMES_KEPT: usize = 8;
/// Larger events (catch-up chunks) are not kept.
const FRAME_MAX_BYTES: usize = 64 * 1024;

impl SseFrames {
    fn get(&self, key: &FrameKey) -> Option<&Arc<Frame>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }

    fn put(&mut self, key: FrameKey, frame: Arc<Frame>) {
        if frame.event.len() > FRAME_MAX_BYTES {
            return;
        }
        if self.entries.len() >= FRAMES_KEPT {
            self.entries.pop_back();
        }
        self.entries.push_front((key, frame));
    }
}

/// Appends the token of `position` (the `Display` of [`Offset`]).
fn push_offset_token(out: &mut Vec<u8>, position: u64) {
    if position > MAX_POSITION {
        out.extend_from_slice(Offset(position).to_string().as_bytes());
        return;
    }
    out.extend_from_slice(b"0000000000000000_");
    let mut digits = [b'0'; 16];
    let mut n = position;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_numbers_match_display() {
        for n in [
            0,
            1,
            9,
            10,
            12_345,
            MAX_POSITION,
            MAX_POSITION + 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            push_offset_token(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), Offset(n).to_string());
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn frames_are_bounded() {
        let mut frames = SseFrames::default();
        let key = |from| FrameKey {
            id: 1,
            from,
            tail: 100,
            max_chunk: 10,
            encoding: DataEncoding::Text,
        };
        let frame = |len| {
            Arc::new(Frame {
                event: vec![b'x'; len],
                next: 100,
                size: len,
            })
        };
        for from in 0..20 {
            frames.put(key(from), frame(3));
        }
        assert_eq!(frames.entries.len(), FRAMES_KEPT);
        assert!(frames.get(&key(19)).is_some());
        assert!(frames.get(&key(0)).is_none());
        frames.put(key(50), frame(FRAME_MAX_BYTES + 1));
        assert!(frames.get(&key(50)).is_none());
    }
}
