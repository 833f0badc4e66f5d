//! A live SSE read (PROTOCOL §5.8): catch up from the start offset, then
//! emit new data as it is appended, with a `control` event after every data
//! event, and end at EOF or after the reconnect interval (§10.2).

use crate::config::Config;
use crate::cursor::next_cursor;
use crate::engine::read::View;
use crate::engine::Engine;
use crate::offset::Offset;
use crate::sse::{push_control_event, push_data_event, DataEncoding, KEEP_ALIVE};
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
        let mut out = Vec::new();
        let meta = match self.streams.get(&session.path) {
            Some(s)
                if s.meta.id == session.id && !s.meta.soft_deleted && !s.meta.is_expired(now) =>
            {
                View::of(s)
            }
            // Deleted or expired while live: end the body; a reconnect sees 404.
            _ => {
                return SseStep {
                    bytes: out,
                    wake_at: None,
                }
            }
        };
        let json = crate::json::is_json(&meta.content_type);
        let mut budget = 4 * self.config.max_chunk_bytes.max(1);
        while session.position < meta.tail && budget > 0 {
            let chunk = match self.read_chunk(&session.path, &meta, session.position) {
                Ok(c) => c,
                Err(_) => {
                    return SseStep {
                        bytes: out,
                        wake_at: None,
                    }
                }
            };
            if chunk.next <= session.position {
                break;
            }
            budget = budget.saturating_sub(chunk.body.len());
            session.position = chunk.next;
            if !(json && chunk.records == 0) {
                push_data_event(&mut out, &chunk.body, session.encoding);
            }
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
        meta: &View,
        now: UnixMillis,
    ) {
        let at_tail = session.position >= meta.tail;
        let mut control = format!("{{\"streamNextOffset\":\"{}\"", Offset(session.position));
        if at_tail && meta.closed {
            session.sent_closed = true;
            control.push_str(",\"streamClosed\":true,\"upToDate\":true");
        } else {
            // The client's cursor decides the first value; later ones only
            // follow the clock, never going backwards.
            let cursor = match session.last_cursor {
                Some(last) => last.max(next_cursor(now, None, &mut self.jitter)),
                None => next_cursor(now, session.cursor.as_deref(), &mut self.jitter),
            };
            session.last_cursor = Some(cursor);
            control.push_str(&format!(",\"streamCursor\":\"{cursor}\""));
            if at_tail {
                control.push_str(",\"upToDate\":true");
            }
        }
        control.push('}');
        push_control_event(out, &control);
        session.sent_control = true;
    }
}
