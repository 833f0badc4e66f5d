//! A live SSE read (PROTOCOL §5.8): catch up from the start offset, then
//! emit new data as it is appended, with a `control` event after every data
//! event, and end at EOF or after the reconnect interval (§10.2).

use crate::config::Config;
use crate::cursor::next_cursor;
use crate::engine::read::View;
use crate::engine::Engine;
use std::collections::VecDeque;

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
        let json = session.json;
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
                    let view = match self.streams.get(&session.path) {
                        Some(s) => View::of(s),
                        None => {
                            return SseStep {
                                bytes: out,
                                wake_at: None,
                            }
                        }
                    };
                    let chunk = match self.read_chunk(&session.path, &view, session.position, false)
                    {
                        Ok(c) => c,
                        Err(_) => {
                            return SseStep {
                                bytes: out,
                                wake_at: None,
                            }
                        }
                    };
                    let mut event = Vec::new();
                    if chunk.next > session.position && !(json && chunk.records == 0) {
                        push_data_event(&mut event, &chunk.body.contiguous(), session.encoding);
                    }
                    out.extend_from_slice(&event);
                    let frame = Frame {
                        event,
                        next: chunk.next,
                        size: chunk.body.len(),
                    };
                    let at = (frame.next, frame.size);
                    self.sse_frames.put(key, frame);
                    at
                }
            };
            if next <= session.position {
                break;
            }
            budget = budget.saturating_sub(size);
            session.position = next;
            self.push_control(&mut out, session, &meta, now);
        }
        let at_tail = session.position >= meta.tail;
        // PROTOCOL §5.8 / §8: the first control event reports the tail, and
        // a stream closed at the tail always gets its final closed control
        // (also when the close came without data).
        if at_tail && (!session.sent_control || (meta.closed && !session.sent_closed)) {
            self.push_control(&mut out, session, &meta, now);
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
        let keep_alive = session.idle_since.plus_millis(session.keep_alive_ms);
        SseStep {
            bytes: out,
            wake_at: Some(keep_alive.min(session.end_at)),
        }
    }

    fn push_control(
        &mut self,
        out: &mut Vec<u8>,
        session: &mut SseSession,
        meta: &Live,
        now: UnixMillis,
    ) {
        let at_tail = session.position >= meta.tail;
        // Framed by hand (this runs once per reader per append): one
        // `event: control` frame whose data line is the JSON object below.
        out.extend_from_slice(b"event: control\ndata:{\"streamNextOffset\":\"");
        push_offset_token(out, session.position);
        out.push(b'"');
        if at_tail && meta.closed {
            session.sent_closed = true;
            out.extend_from_slice(b",\"streamClosed\":true,\"upToDate\":true");
        } else {
            // The client's cursor decides the first value; later ones only
            // follow the clock, never going backwards.
            let cursor = match session.last_cursor {
                Some(last) => last.max(next_cursor(now, None, &mut self.jitter)),
                None => next_cursor(now, session.cursor.as_deref(), &mut self.jitter),
            };
            session.last_cursor = Some(cursor);
            out.extend_from_slice(b",\"streamCursor\":\"");
            push_decimal(out, cursor);
            out.push(b'"');
            if at_tail {
                out.extend_from_slice(b",\"upToDate\":true");
            }
        }
        out.extend_from_slice(b"}\n\n");
        session.sent_control = true;
    }
}

/// Bytes reserved for one step's output: a small data event with its
/// control event fit.
const SMALL_STEP: usize = 512;

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
    entries: VecDeque<(FrameKey, Frame)>,
}

/// Entries kept (most recent first).
const FRAMES_KEPT: usize = 8;
/// Larger events (catch-up chunks) are not kept.
const FRAME_MAX_BYTES: usize = 64 * 1024;

impl SseFrames {
    fn get(&self, key: &FrameKey) -> Option<&Frame> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }

    fn put(&mut self, key: FrameKey, frame: Frame) {
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
        let frame = |len| Frame {
            event: vec![b'x'; len],
            next: 100,
            size: len,
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
