//! The single-threaded host cycle around the engine, as plain Rust.
//!
//! A JavaScript host has one thread and no locks: every call here runs to
//! completion, so a reader parked by one call can never miss an event of the
//! next. What needs JavaScript (timers, promises, streams) stays outside;
//! this type gives it numeric [`Handle`]s for parked long-polls, live SSE
//! bodies and webhook deliveries, and after every call the set of stream
//! paths whose waiters must be woken ([`LocalHost::take_advanced`]) and the
//! webhooks to send ([`LocalHost::take_webhooks`]).

use std::collections::{BTreeMap, BTreeSet};

use ds_core::archive::{ArchiveError, ArchiveInfo, ArchiveReader, ArchiveWriter};
use ds_core::{
    Body, Config, ConflictMode, Engine, ImportSummary, LongPoll, MemStore, Outcome, ProtocolError,
    Request, Response, SseSession, SseStep, StoreError, UnixMillis, WebhookDelivery,
};

/// Names a parked long-poll, a live SSE body or a webhook delivery held by
/// a [`LocalHost`].
pub type Handle = u32;

/// The body of a [`Reply`].
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyBody {
    /// No body.
    Empty,
    /// A complete body.
    Bytes(Vec<u8>),
    /// A live SSE body: drive it with [`LocalHost::sse_poll`].
    Sse(Handle),
}

/// A response ready to send.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Header fields, names lower case.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: ReplyBody,
}

/// What a request or a resumed long-poll produced.
#[derive(Debug)]
pub enum Answer {
    /// Send this response.
    Reply(Reply),
    /// A long-poll to park: call [`LocalHost::resume`] with `handle` after an
    /// advance of `path` or at `deadline`.
    Wait {
        /// The parked poll.
        handle: Handle,
        /// The stream path whose advances wake it.
        path: String,
        /// When it answers 204 if nothing arrived.
        deadline: UnixMillis,
    },
}

/// The engine over an in-memory store, plus the readers it has parked.
pub struct LocalHost {
    engine: Engine<MemStore>,
    polls: BTreeMap<Handle, LongPoll>,
    sessions: BTreeMap<Handle, SseSession>,
    /// Webhooks handed out to be sent, until their result is reported.
    webhooks: BTreeMap<Handle, WebhookDelivery>,
    /// Webhooks not yet handed out.
    outgoing: Vec<Handle>,
    next_handle: Handle,
    advanced: BTreeSet<String>,
}

impl LocalHost {
    /// An empty host. `seed` feeds the engine's cursor jitter.
    pub fn open(config: Config, now: UnixMillis, seed: u64) -> Result<LocalHost, StoreError> {
        Ok(LocalHost {
            engine: Engine::open(MemStore::new(), config, now, seed)?,
            polls: BTreeMap::new(),
            sessions: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            outgoing: Vec::new(),
            next_handle: 0,
            advanced: BTreeSet::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    /// Handles one request at `now`. The caller reads at most
    /// `max_body_bytes + 1` bytes of the body, so an over-limit body is seen
    /// here and answered 413 without being read whole.
    pub fn handle(&mut self, req: Request, now: UnixMillis) -> Answer {
        let limit = self.engine.config().max_body_bytes;
        if req.body.len() > limit {
            let res = self
                .engine
                .reject(&req, ProtocolError::PayloadTooLarge { limit });
            return self.answer(Outcome::Respond(res));
        }
        let outcome = self.engine.handle_and_commit(req, now);
        self.settle();
        self.answer(outcome)
    }

    /// Retries the parked long-poll `handle` at `now`: a reply, or the same
    /// handle parked again. `None` when the handle is unknown (cancelled).
    pub fn resume(&mut self, handle: Handle, now: UnixMillis) -> Option<Answer> {
        let lp = self.polls.remove(&handle)?;
        let outcome = self.engine.resume(lp, now);
        self.settle();
        Some(match outcome {
            Outcome::Wait(lp) => self.park(handle, lp),
            other => self.answer(other),
        })
    }

    /// Advances the SSE body `handle` at `now`. When the step's `wake_at` is
    /// `None` the body is complete and the handle is released. `None` when
    /// the handle is unknown (cancelled or finished).
    pub fn sse_poll(&mut self, handle: Handle, now: UnixMillis) -> Option<SseStep> {
        let session = self.sessions.get_mut(&handle)?;
        let step = self.engine.sse_poll(session, now);
        if step.wake_at.is_none() {
            self.sessions.remove(&handle);
        }
        self.settle();
        Some(step)
    }

    /// Releases a parked long-poll or SSE body whose reader went away.
    pub fn cancel(&mut self, handle: Handle) {
        self.polls.remove(&handle);
        self.sessions.remove(&handle);
    }

    /// Number of parked long-polls plus live SSE bodies.
    pub fn parked(&self) -> usize {
        self.polls.len() + self.sessions.len()
    }

    /// The paths that advanced (appends, closes, deletes, expiries) since
    /// the last call, each once: wake every reader parked on them.
    pub fn take_advanced(&mut self) -> Vec<String> {
        std::mem::take(&mut self.advanced).into_iter().collect()
    }

    /// The webhooks (PROTOCOL §7.1) to send since the last call, each with
    /// the handle to report its outcome with [`LocalHost::webhook_result`].
    pub fn take_webhooks(&mut self) -> Vec<(Handle, &WebhookDelivery)> {
        let handles = std::mem::take(&mut self.outgoing);
        handles
            .into_iter()
            .filter_map(|h| self.webhooks.get(&h).map(|d| (h, d)))
            .collect()
    }

    /// Reports how sending webhook `handle` went: `Ok((status, body))` when
    /// the receiver answered, `Err(reason)` when it could not be reached.
    pub fn webhook_result(
        &mut self,
        handle: Handle,
        result: Result<(u16, Vec<u8>), String>,
        now: UnixMillis,
    ) {
        if let Some(delivery) = self.webhooks.remove(&handle) {
            self.engine.webhook_result(&delivery, result, now);
            self.settle();
        }
    }

    /// When [`LocalHost::on_timeout`] next has work (stream expiry,
    /// subscription leases, webhook retries).
    pub fn next_timeout(&self) -> Option<UnixMillis> {
        self.engine.poll_timeout()
    }

    /// Runs every deadline that has passed at `now` (expiries, leases,
    /// webhook retries).
    pub fn on_timeout(&mut self, now: UnixMillis) {
        self.engine.handle_timeout(now);
        self.settle();
    }

    /// Exports every stream whose root-relative path starts with `prefix`
    /// as one archive (the format `durable-streams-server export` writes).
    pub fn export_archive(
        &mut self,
        prefix: &str,
        now: UnixMillis,
    ) -> Result<Vec<u8>, ArchiveError> {
        self.settle();
        let plan = self.engine.export_plan(prefix, now);
        let info = ArchiveInfo {
            writer: format!("durable-streams-local {}", env!("CARGO_PKG_VERSION")),
            created_at: now.0,
            prefix: prefix.to_string(),
        };
        let mut writer = ArchiveWriter::new(Vec::new(), &info)?;
        self.engine
            .export_archive(&plan, &mut writer, &mut |_| {})?;
        Ok(writer.finish()?.0)
    }

    /// Imports an archive (from `export_archive` or the native server's
    /// `export`). `mode` decides what happens to paths already taken; in
    /// `Fail` mode nothing is imported when any is.
    pub fn import_archive(
        &mut self,
        archive: &[u8],
        mode: ConflictMode,
        now: UnixMillis,
    ) -> Result<ImportSummary, ArchiveError> {
        let conflicts = self.engine.import_conflicts(ArchiveReader::new(archive)?)?;
        if mode == ConflictMode::Fail && !conflicts.is_empty() {
            return Err(ArchiveError::Conflict(conflicts));
        }
        let summary = self
            .engine
            .import_archive(ArchiveReader::new(archive)?, mode, now);
        self.settle();
        summary
    }

    /// Commits whatever an engine call left staged (an expiry noticed
    /// during a read is staged, not committed), then collects the events
    /// and the webhooks to send.
    fn settle(&mut self) {
        if self.engine.has_pending_commit() {
            // Internal changes only: no client waits for these tickets.
            self.engine.commit_pending();
        }
        while let Some(event) = self.engine.poll_event() {
            self.advanced.insert(event.path().to_string());
        }
        while let Some(delivery) = self.engine.poll_webhook() {
            let handle = self.allocate();
            self.webhooks.insert(handle, delivery);
            self.outgoing.push(handle);
        }
    }

    fn answer(&mut self, outcome: Outcome) -> Answer {
        match outcome {
            Outcome::Respond(res) => Answer::Reply(self.reply(res)),
            Outcome::Wait(lp) => {
                let handle = self.allocate();
                self.park(handle, lp)
            }
            // `handle_and_commit` settles every write it stages.
            Outcome::Pending(_) => Answer::Reply(Reply {
                status: 500,
                headers: vec![("cache-control", "no-store".to_string())],
                body: ReplyBody::Empty,
            }),
        }
    }

    fn park(&mut self, handle: Handle, lp: LongPoll) -> Answer {
        let path = lp.path.clone();
        let deadline = lp.deadline;
        self.polls.insert(handle, lp);
        Answer::Wait {
            handle,
            path,
            deadline,
        }
    }

    fn reply(&mut self, res: Response) -> Reply {
        let Response {
            status,
            headers,
            body,
        } = res;
        let body = match body {
            Body::Empty => ReplyBody::Empty,
            Body::Full(bytes) => ReplyBody::Bytes(bytes),
            // One piece (what the in-memory store gives) is taken as is;
            // the memory store never defers (`Store::defer_bytes`).
            Body::Pieces(pieces) => ReplyBody::Bytes(pieces.contiguous().into_owned()),
            Body::Sse(session) => {
                let handle = self.allocate();
                self.sessions.insert(handle, session);
                ReplyBody::Sse(handle)
            }
        };
        Reply {
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n, v.into_owned()))
                .collect(),
            body,
        }
    }

    fn allocate(&mut self) -> Handle {
        self.next_handle = self.next_handle.wrapping_add(1);
        self.next_handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ds_core::Method;

    const T0: UnixMillis = UnixMillis(1_767_225_600_000);

    fn host() -> LocalHost {
        let config = Config {
            long_poll_timeout_ms: 1_000,
            max_body_bytes: 16,
            ..Config::default()
        };
        LocalHost::open(config, T0, 7).unwrap()
    }

    fn reply(answer: Answer) -> Reply {
        match answer {
            Answer::Reply(r) => r,
            Answer::Wait { .. } => panic!("expected a reply, got a wait"),
        }
    }

    fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    fn create(h: &mut LocalHost, path: &str) -> String {
        let req = Request::new(Method::Put, path).header("content-type", "text/plain");
        let r = reply(h.handle(req, T0));
        assert_eq!(r.status, 201);
        header(&r, "stream-next-offset").to_string()
    }

    fn append(h: &mut LocalHost, path: &str, body: &str) {
        let req = Request::new(Method::Post, path)
            .header("content-type", "text/plain")
            .body(body);
        assert_eq!(reply(h.handle(req, T0)).status, 204);
    }

    #[test]
    fn long_poll_parks_until_an_append_wakes_it() {
        let mut h = host();
        let tail = create(&mut h, "/v1/stream/a");
        assert_eq!(h.take_advanced(), vec!["/v1/stream/a".to_string()]);
        let read = Request::new(Method::Get, "/v1/stream/a")
            .query(&format!("offset={tail}&live=long-poll"));
        let Answer::Wait {
            handle,
            path,
            deadline,
        } = h.handle(read, T0)
        else {
            panic!("expected the poll to park")
        };
        assert_eq!(
            (path.as_str(), deadline),
            ("/v1/stream/a", T0.plus_millis(1_000))
        );
        assert!(matches!(h.resume(handle, T0), Some(Answer::Wait { .. })));
        append(&mut h, "/v1/stream/a", "hi");
        assert_eq!(h.take_advanced(), vec!["/v1/stream/a".to_string()]);
        let r = reply(h.resume(handle, T0).unwrap());
        assert_eq!((r.status, r.body), (200, ReplyBody::Bytes(b"hi".to_vec())));
        assert_eq!(h.parked(), 0);
        assert!(h.resume(handle, T0).is_none());
    }

    #[test]
    fn long_poll_times_out_with_204() {
        let mut h = host();
        let tail = create(&mut h, "/v1/stream/a");
        let read = Request::new(Method::Get, "/v1/stream/a")
            .query(&format!("offset={tail}&live=long-poll"));
        let Answer::Wait {
            handle, deadline, ..
        } = h.handle(read, T0)
        else {
            panic!("expected the poll to park")
        };
        assert_eq!(reply(h.resume(handle, deadline).unwrap()).status, 204);
    }

    #[test]
    fn sse_delivers_appends_and_ends_at_close() {
        let mut h = host();
        create(&mut h, "/v1/stream/s");
        let read = Request::new(Method::Get, "/v1/stream/s").query("offset=-1&live=sse");
        let r = reply(h.handle(read, T0));
        let ReplyBody::Sse(handle) = r.body else {
            panic!("expected an SSE body")
        };
        let first = h.sse_poll(handle, T0).unwrap();
        assert!(String::from_utf8(first.bytes).unwrap().contains("upToDate"));
        assert!(first.wake_at.is_some());
        append(&mut h, "/v1/stream/s", "hello");
        let step = h.sse_poll(handle, T0).unwrap();
        assert!(String::from_utf8(step.bytes)
            .unwrap()
            .contains("data:hello"));
        let close = Request::new(Method::Post, "/v1/stream/s").header("stream-closed", "true");
        assert_eq!(reply(h.handle(close, T0)).status, 204);
        // The body ends at EOF. (Whether this last step carries a final
        // `streamClosed` control event is the core's business.)
        let last = h.sse_poll(handle, T0).unwrap();
        assert_eq!(last.wake_at, None);
        assert_eq!(h.parked(), 0);
    }

    #[test]
    fn cancel_releases_parked_readers() {
        let mut h = host();
        create(&mut h, "/v1/stream/c");
        let read = Request::new(Method::Get, "/v1/stream/c").query("offset=-1&live=sse");
        let ReplyBody::Sse(handle) = reply(h.handle(read, T0)).body else {
            panic!("expected an SSE body")
        };
        assert_eq!(h.parked(), 1);
        h.cancel(handle);
        assert_eq!(h.parked(), 0);
        assert!(h.sse_poll(handle, T0).is_none());
    }

    #[test]
    fn oversized_bodies_get_413() {
        let mut h = host();
        create(&mut h, "/v1/stream/b");
        let req = Request::new(Method::Post, "/v1/stream/b")
            .header("content-type", "text/plain")
            .body(vec![b'x'; 17]);
        assert_eq!(reply(h.handle(req, T0)).status, 413);
    }

    #[test]
    fn webhooks_are_handed_out_once_and_settled_by_their_result() {
        let mut h = LocalHost::open(Config::default(), T0, 7).unwrap();
        create(&mut h, "/v1/stream/events/a");
        let sub = Request::new(Method::Put, "/v1/stream/__ds/subscriptions/s1")
            .header("content-type", "application/json")
            .body(r#"{"type":"webhook","pattern":"events/*","webhook":{"url":"https://worker.example/hook"}}"#);
        assert_eq!(reply(h.handle(sub, T0)).status, 201);
        append(&mut h, "/v1/stream/events/a", "x");
        let hooks: Vec<(Handle, String)> = h
            .take_webhooks()
            .into_iter()
            .map(|(handle, d)| (handle, d.url.clone()))
            .collect();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].1, "https://worker.example/hook");
        assert!(h.take_webhooks().is_empty());
        h.webhook_result(hooks[0].0, Ok((200, br#"{"done":true}"#.to_vec())), T0);
        assert!(h.webhooks.is_empty());
        assert!(h.take_webhooks().is_empty());
    }

    #[test]
    fn expiry_runs_at_the_next_timeout() {
        let mut h = host();
        let req = Request::new(Method::Put, "/v1/stream/t")
            .header("content-type", "text/plain")
            .header("stream-ttl", "1");
        assert_eq!(reply(h.handle(req, T0)).status, 201);
        h.take_advanced();
        let at = h.next_timeout().expect("an expiry deadline");
        h.on_timeout(at);
        assert_eq!(h.take_advanced(), vec!["/v1/stream/t".to_string()]);
        let head = Request::new(Method::Head, "/v1/stream/t");
        assert_eq!(reply(h.handle(head, at)).status, 404);
    }
}
