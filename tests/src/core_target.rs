//! [`CoreTarget`]: the engine itself as a target, with a manual clock.
//!
//! It is the smallest possible host: it does what every host must do
//! (refuse bodies over the limit, commit staged writes before answering
//! them, drain events after every call, resume woken long-polls, drive SSE
//! sessions, call `handle_timeout` at `poll_timeout`) and nothing else, all
//! synchronously: every staged write is committed as its own group. Restart reopens a
//! new engine over a clone of the [`MemStore`], which exercises
//! [`Engine::open`]'s reload path.

use std::collections::BTreeSet;

use ds_core::{
    Body, Config, Engine, LongPoll, MemStore, Outcome, ProtocolError, Request, Response,
    SseSession, UnixMillis,
};

use crate::dsl::summarize;
use crate::target::{suite_config, LiveRead, Reply, Target, START};

/// The engine over a [`MemStore`], driven by a manual clock.
pub struct CoreTarget {
    engine: Engine<MemStore>,
    config: Config,
    now: UnixMillis,
    seed: u64,
    reads: Vec<Live>,
}

/// A response in progress.
enum Live {
    /// Complete; `None` once collected.
    Done(Option<Reply>),
    /// A parked long-poll.
    Parked { request: String, poll: LongPoll },
    /// An SSE body being produced.
    Streaming {
        head: Reply,
        session: SseSession,
        wake_at: UnixMillis,
    },
}

impl Default for CoreTarget {
    fn default() -> Self {
        Self::new(suite_config())
    }
}

impl CoreTarget {
    /// An empty store and an engine with `config`, at [`START`].
    pub fn new(config: Config) -> CoreTarget {
        let engine =
            Engine::open(MemStore::new(), config.clone(), START, 1).expect("MemStore never fails");
        CoreTarget {
            engine,
            config,
            now: START,
            seed: 1,
            reads: Vec::new(),
        }
    }

    /// The engine, for checks a scenario cannot express over HTTP.
    pub fn engine(&mut self) -> &mut Engine<MemStore> {
        &mut self.engine
    }

    /// Hands `req` to the engine the way a host does and records the
    /// response in progress.
    fn begin(&mut self, req: Request) -> usize {
        let request = summarize(&req);
        let limit = self.config.max_body_bytes;
        let outcome = if req.body.len() > limit {
            // Hosts refuse oversized bodies before the engine sees them.
            Outcome::Respond(
                self.engine
                    .reject(&req, ProtocolError::PayloadTooLarge { limit }),
            )
        } else {
            self.engine.handle(req, self.now)
        };
        // Like any host, commit whatever the call staged, even when the
        // answer does not wait for it (a read that found its stream
        // expired stages the removal).
        let mut settled = if self.engine.has_pending_commit() {
            self.engine.commit_pending()
        } else {
            Vec::new()
        };
        let live = match outcome {
            Outcome::Respond(res) => self.live_from(request, res),
            Outcome::Wait(poll) => Live::Parked { request, poll },
            Outcome::Pending(ticket) => {
                // A write is answered only once its group is durable.
                if settled.is_empty() {
                    settled = self.engine.commit_pending();
                }
                let res = settled
                    .into_iter()
                    .find_map(|(t, res)| (t == ticket).then_some(res))
                    .expect("a staged write settles in the commit that follows it");
                self.live_from(request, res)
            }
        };
        self.reads.push(live);
        self.settle();
        self.reads.len() - 1
    }

    fn live_from(&self, request: String, res: Response) -> Live {
        let Response {
            status,
            headers,
            body,
        } = res;
        let mut head = Reply {
            request,
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.into_owned()))
                .collect(),
            body: Vec::new(),
        };
        match body {
            Body::Empty => Live::Done(Some(head)),
            Body::Full(bytes) => {
                head.body = bytes;
                Live::Done(Some(head))
            }
            Body::Pieces(pieces) => {
                head.body = pieces.to_vec();
                Live::Done(Some(head))
            }
            Body::Sse(session) => Live::Streaming {
                head,
                session,
                wake_at: self.now,
            },
        }
    }

    /// Runs everything due at `now`: expiry, woken or timed-out long-polls,
    /// SSE sessions with news, until nothing more happens.
    fn settle(&mut self) {
        loop {
            if self.engine.poll_timeout().is_some_and(|at| at <= self.now) {
                self.engine.handle_timeout(self.now);
                // Expiries are staged like writes; nobody waits for them.
                self.engine.commit_pending();
            }
            let mut woken = BTreeSet::new();
            while let Some(event) = self.engine.poll_event() {
                woken.insert(event.path().to_string());
            }
            let now = self.now;
            let mut ran = false;
            for live in &mut self.reads {
                let due = match live {
                    Live::Done(_) => false,
                    Live::Parked { poll, .. } => woken.contains(&poll.path) || poll.deadline <= now,
                    Live::Streaming {
                        session, wake_at, ..
                    } => woken.contains(&session.path) || *wake_at <= now,
                };
                if !due {
                    continue;
                }
                ran = true;
                let current = std::mem::replace(live, Live::Done(None));
                *live = match current {
                    Live::Parked { request, poll } => match self.engine.resume(poll, now) {
                        Outcome::Respond(res) => {
                            let Response {
                                status,
                                headers,
                                body,
                            } = res;
                            let body = match body {
                                Body::Full(b) => b,
                                Body::Pieces(p) => p.to_vec(),
                                Body::Empty | Body::Sse(_) => Vec::new(),
                            };
                            Live::Done(Some(Reply {
                                request,
                                status,
                                headers: headers
                                    .into_iter()
                                    .map(|(n, v)| (n.to_ascii_lowercase(), v.into_owned()))
                                    .collect(),
                                body,
                            }))
                        }
                        Outcome::Wait(poll) => Live::Parked { request, poll },
                        Outcome::Pending(_) => unreachable!("reads never stage writes"),
                    },
                    Live::Streaming {
                        mut head,
                        mut session,
                        ..
                    } => {
                        let step = self.engine.sse_poll(&mut session, now);
                        head.body.extend_from_slice(&step.bytes);
                        match step.wake_at {
                            None => Live::Done(Some(head)),
                            Some(wake_at) => Live::Streaming {
                                head,
                                session,
                                wake_at,
                            },
                        }
                    }
                    done => done,
                };
            }
            if !ran && woken.is_empty() {
                return;
            }
        }
    }

    /// The earliest instant at which something is scheduled.
    fn next_deadline(&self) -> Option<UnixMillis> {
        let reads = self.reads.iter().filter_map(|l| match l {
            Live::Done(_) => None,
            Live::Parked { poll, .. } => Some(poll.deadline),
            Live::Streaming { wake_at, .. } => Some(*wake_at),
        });
        reads.chain(self.engine.poll_timeout()).min()
    }

    /// Moves the clock to `to`, firing every deadline on the way in order.
    fn run_until(&mut self, to: UnixMillis) {
        while let Some(at) = self.next_deadline().filter(|at| *at <= to) {
            assert!(
                at > self.now,
                "deadline {at:?} not after now {:?}",
                self.now
            );
            self.now = at;
            self.settle();
        }
        self.now = self.now.max(to);
        self.settle();
    }

    /// Waits in virtual time until read `id` is complete.
    fn complete(&mut self, id: usize) -> Reply {
        loop {
            if let Live::Done(reply) = &mut self.reads[id] {
                return reply.take().expect("live read finished twice");
            }
            let at = self
                .next_deadline()
                .expect("a live read is pending but nothing is scheduled");
            self.run_until(at);
        }
    }
}

impl Target for CoreTarget {
    async fn request(&mut self, req: Request) -> Reply {
        let id = self.begin(req);
        self.complete(id)
    }

    async fn start(&mut self, req: Request) -> LiveRead {
        LiveRead(self.begin(req))
    }

    async fn finish(&mut self, read: LiveRead) -> Reply {
        self.complete(read.0)
    }

    async fn advance(&mut self, ms: u64) {
        let to = self.now.plus_millis(ms);
        self.run_until(to);
    }

    fn now(&self) -> UnixMillis {
        self.now
    }

    async fn restart(&mut self) -> bool {
        assert!(
            self.reads
                .iter()
                .all(|l| matches!(l, Live::Done(None) | Live::Done(Some(_)))),
            "restart with live reads still running"
        );
        let store = self.engine.store().clone();
        self.seed += 1;
        self.engine = Engine::open(store, self.config.clone(), self.now, self.seed)
            .expect("reopening a MemStore never fails");
        true
    }
}
