//! Owns the engine: serialises calls to it, runs the group committer, drains
//! its events into wake-ups, and runs the expiry timer.
//!
//! Writes are staged by the engine under its lock (microseconds). A single
//! committer thread takes everything staged as one group, commits it
//! *outside* the lock (one transaction and one fsync per shard touched,
//! shards in parallel), then settles every response in the group. So writes
//! arriving together share one fsync, and readers never wait for a disk
//! flush.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ds_core::{Engine, Event, Outcome, Response, Store, Ticket, UnixMillis};
use tokio::sync::{oneshot, watch};

use crate::clock::Clock;
use crate::waiters::Waiters;
use lock::{Lock, LockKind};

mod lock;

/// The store type the native host runs on, shared by engine and committer.
pub type DynStore = Arc<dyn Store + Send + Sync>;

/// Shared state of a running server.
pub struct Driver {
    engine: Lock<Engine<DynStore>>,
    store: DynStore,
    /// Responses waiting for their group to commit. Taken under the engine
    /// lock by every staged write, so never held while waking anyone.
    tickets: Lock<Tickets>,
    /// Set when a group may be ready to commit.
    work: (Mutex<bool>, Condvar),
    /// Parked readers.
    pub waiters: Waiters,
    /// The clock all engine calls use.
    pub clock: Clock,
    shutdown: watch::Sender<bool>,
    /// The shutdown flag for readers that look at it on every wake-up (an
    /// atomic load; the watch channel's is a lock every reader shares).
    stopping: std::sync::atomic::AtomicBool,
    /// Told about every group commit (metrics), once set.
    commit_observer: std::sync::OnceLock<CommitObserver>,
    /// Runs webhook deliveries (the committer thread is not a runtime thread).
    runtime: Option<tokio::runtime::Handle>,
    /// This driver, for tasks it spawns.
    me: std::sync::Weak<Driver>,
    /// Set by [`Driver::close`]: the committer thread ends.
    closing: std::sync::atomic::AtomicBool,
    /// The committer thread, joined by [`Driver::close`].
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Commit on the calling thread (memory storage: a commit is a map
    /// update, so handing it to the committer thread only adds latency).
    inline_commit: bool,
    /// Groups of at most one write committed in a row (see
    /// [`Driver::handle`]).
    lone_groups: std::sync::atomic::AtomicUsize,
    /// Group commits under way, each from its store commit until its
    /// readers have been woken (see [`Driver::commits_running`]).
    commits_running: std::sync::atomic::AtomicUsize,
    /// The [`Writer`] of the last write request.
    last_writer: std::sync::atomic::AtomicU64,
    /// The engine's request body limit (its config is fixed once open).
    max_body_bytes: usize,
}

impl Driver {
    /// Wraps an opened engine and starts its committer thread.
    pub fn new(engine: Engine<DynStore>, store: DynStore, clock: Clock) -> Arc<Driver> {
        Self::with_commit_mode(engine, store, clock, false)
    }

    /// Like [`Driver::new`]; with `inline_commit` every engine call commits
    /// what it staged before returning (for storage without fsync).
    pub fn with_commit_mode(
        engine: Engine<DynStore>,
        store: DynStore,
        clock: Clock,
        inline_commit: bool,
    ) -> Arc<Driver> {
        let (shutdown, _) = watch::channel(false);
        let max_body_bytes = engine.config().max_body_bytes;
        // Durable storage runs a busy committer thread next to the workers
        // (see `lock.rs` for the measurements behind the choice).
        let kind = if inline_commit {
            LockKind::Spin
        } else {
            LockKind::Block
        };
        let driver = Arc::new_cyclic(|me| Driver {
            engine: Lock::new(kind, engine),
            store,
            tickets: Lock::new(kind, Tickets::default()),
            work: (Mutex::new(false), Condvar::new()),
            waiters: Waiters::default(),
            clock,
            shutdown,
            stopping: std::sync::atomic::AtomicBool::new(false),
            commit_observer: std::sync::OnceLock::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            me: me.clone(),
            closing: std::sync::atomic::AtomicBool::new(false),
            committer: Mutex::new(None),
            inline_commit,
            lone_groups: std::sync::atomic::AtomicUsize::new(0),
            commits_running: std::sync::atomic::AtomicUsize::new(0),
            last_writer: std::sync::atomic::AtomicU64::new(u64::MAX),
            max_body_bytes,
        });
        let weak = Arc::downgrade(&driver);
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || committer(weak))
            .expect("spawn the group-commit thread");
        *driver.committer.lock().expect("committer lock") = Some(thread);
        // Whatever opening staged (a new server secret) gets committed.
        driver.signal_work();
        driver
    }

    /// The largest request body the engine accepts.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// [`Driver::handle_from`] for a request of an unknown writer (all such
    /// requests count as one writer's).
    pub fn handle(&self, req: ds_core::Request) -> Handled {
        self.handle_from(req, Writer(0))
    }

    /// Handles a request of `writer`: the response, a long-poll to park, or
    /// (for a write) a receiver that yields the response once it is durable.
    ///
    /// A lone writer (the last [`LONE_GROUPS`] groups held at most one write
    /// each, the last write came from the same writer, none is being
    /// committed now, and no reader is parked on its stream) commits on the
    /// calling thread itself: its fsync then needs no wake-up of the
    /// committer thread and none back. The same-writer condition keeps
    /// writers that a worker happens to serve one after another (one worker
    /// thread, many connections) from committing one by one, each blocking
    /// the worker for an fsync while the others wait (one worker, 32
    /// connections: 6.4k appends/s with it missing, 45k with it). Under
    /// concurrent writes most groups hold more, and every group is left to the
    /// committer thread, so no request thread waits on the disk while others
    /// could be served. Nor does a write that live readers wait for: woken
    /// from the committer thread, they are spread over every worker at once,
    /// where woken from a worker they would queue behind its own writer's
    /// acknowledgement (fan-out ack-to-delivery p99 2.6 -> 6.4 ms).
    pub fn handle_from(&self, req: ds_core::Request, writer: Writer) -> Handled {
        use std::sync::atomic::Ordering::Relaxed;
        let writes = matches!(
            req.method,
            ds_core::Method::Post | ds_core::Method::Put | ds_core::Method::Delete
        );
        let same_writer = writes && self.last_writer.swap(writer.0, Relaxed) == writer.0;
        let lone = !self.inline_commit
            && same_writer
            && self.lone_groups.load(Relaxed) >= LONE_GROUPS
            && !self.waiters.is_watched(&req.path);
        let mut solo = None;
        let (outcome, rx) = self.with_engine(|e, now| {
            let mut outcome = e.handle(req, now);
            if lone && matches!(outcome, Outcome::Pending(_)) {
                solo = e.take_commit();
            }
            if let (true, Outcome::Pending(ticket)) = (self.inline_commit, &outcome) {
                // Commit here; if a group is still being committed by the
                // committer thread, fall back to waiting for it below.
                let ticket = *ticket;
                let mut own = None;
                for (t, res) in e.commit_pending() {
                    if t == ticket {
                        own = Some(res);
                    } else if let Some(tx) = self.tickets.lock().remove(&t) {
                        let _ = tx.send(res);
                    }
                }
                if let Some(res) = own {
                    outcome = Outcome::Respond(res);
                }
            }
            let rx = match &outcome {
                Outcome::Pending(t) => {
                    let (tx, rx) = oneshot::channel();
                    // Registered under the engine lock, so the committer
                    // (which settles under the same lock) cannot miss it.
                    self.tickets.lock().insert(*t, tx);
                    Some(rx)
                }
                _ => None,
            };
            (outcome, rx)
        });
        if let Some(commit) = solo {
            // Settles this write's ticket (and any grouped with it) before
            // the receiver below is first polled.
            self.run_commit(commit, false);
        }
        match (outcome, rx) {
            (_, Some(rx)) => Handled::Durable(rx),
            (Outcome::Respond(r), None) => Handled::Respond(r),
            (Outcome::Wait(lp), None) => Handled::Wait(lp),
            (Outcome::Pending(_), None) => unreachable!("pending outcomes get a receiver"),
        }
    }

    /// Runs `f` on the engine (under its lock), then wakes readers parked on
    /// paths that advanced and the committer if anything was staged.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine<DynStore>, UnixMillis) -> R) -> R {
        let (result, after) = self.engine_call(f);
        self.follow_up(after);
        result
    }

    /// Runs `f` on the engine (under its lock) and collects what is to be
    /// done once the lock is released; [`Driver::follow_up`] does it.
    ///
    /// Readers are woken only after the lock is released (a fan-out to 500
    /// readers is 500 task wake-ups, which other workers' engine calls would
    /// otherwise wait behind). Still after the change they learn of: a
    /// reader enables its wake-up before it looks at the engine.
    fn engine_call<R>(
        &self,
        f: impl FnOnce(&mut Engine<DynStore>, UnixMillis) -> R,
    ) -> (R, FollowUp) {
        let mut engine = self.engine.lock();
        let now = self.clock.now();
        let result = f(&mut engine, now);
        // Each path once, from where its first change in this call started
        // (`None`: removed, nothing to frame).
        let mut paths: Vec<(String, Option<u64>)> = Vec::new();
        while let Some(event) = engine.poll_event() {
            if !self.waiters.any() {
                continue;
            }
            let (path, from) = match event {
                Event::Advanced { path, from } => (path, Some(from)),
                Event::Removed { path } => (path, None),
            };
            match paths.iter_mut().find(|(p, _)| *p == path) {
                Some((_, seen)) => *seen = seen.zip(from).map(|(a, b)| a.min(b)),
                None => paths.push((path, from)),
            }
        }
        // The data event SSE followers send next, framed once for all of
        // them here, where the data is at hand.
        let advanced = paths
            .into_iter()
            .map(|(path, from)| {
                let frame = from
                    .filter(|_| self.waiters.is_followed(&path))
                    .and_then(|from| engine.live_frame(&path, from, now));
                (path, frame)
            })
            .collect();
        let mut webhooks = Vec::new();
        while let Some(delivery) = engine.poll_webhook() {
            webhooks.push(delivery);
        }
        let after = FollowUp {
            advanced,
            now,
            webhooks,
            allow_local: engine.config().allow_local_webhooks,
            pending: engine.has_pending_commit(),
        };
        (result, after)
    }

    /// Wakes the readers of advanced paths, the committer when a commit is
    /// pending, and sends the webhooks an engine call left.
    fn follow_up(&self, after: FollowUp) {
        let fanout = self.runtime.as_ref().map(|runtime| crate::waiters::Fanout {
            runtime,
            now: after.now,
        });
        for (path, frame) in after.advanced {
            self.waiters.wake(&path, frame.as_ref(), fanout);
        }
        if after.pending {
            self.signal_work();
        }
        for delivery in after.webhooks {
            self.deliver(delivery, after.allow_local);
        }
    }

    /// Sends a webhook in the background and reports the outcome.
    fn deliver(&self, delivery: ds_core::WebhookDelivery, allow_local: bool) {
        let (Some(runtime), Some(me)) = (self.runtime.as_ref(), self.me.upgrade()) else {
            tracing::warn!(
                "no runtime to deliver the webhook of {}",
                delivery.subscription
            );
            return;
        };
        runtime.spawn(async move {
            let result = crate::webhook::send(&delivery, allow_local).await;
            if let Err(e) = &result {
                tracing::warn!(
                    "webhook for subscription {} failed: {e}",
                    delivery.subscription
                );
            }
            me.with_engine(|e, now| e.webhook_result(&delivery, result, now));
        });
    }

    /// [`Driver::with_engine`] on a blocking-friendly thread.
    pub async fn call<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Engine<DynStore>, UnixMillis) -> R + Send + 'static,
    ) -> R {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.with_engine(f))
            .await
            .expect("engine call panicked")
    }

    /// Tells the committer there is work. Only the first signal after the
    /// committer took the flag wakes it (a condvar notify is a futex call
    /// even with no one waiting); later ones find the flag set, and the
    /// committer looks at the engine again before it waits.
    fn signal_work(&self) {
        let (lock, cv) = &self.work;
        let mut ready = lock.lock().expect("work lock");
        if !*ready {
            *ready = true;
            cv.notify_one();
        }
    }

    /// Commits groups until nothing is staged; false when nothing was.
    fn commit_staged(&self) -> bool {
        let Some(mut commit) = self.with_engine(|e, _| e.take_commit()) else {
            return false;
        };
        loop {
            match self.run_commit(commit, true) {
                Some(next) => commit = next,
                None => return true,
            }
        }
    }

    /// Commits a group taken from the engine, settles it, and answers its
    /// writes. With `take_next` (the committer thread) the next group staged
    /// meanwhile is taken under the same lock and returned: one lock round
    /// per cycle, and no wake-up of the committer by itself. Otherwise what
    /// was staged meanwhile wakes the committer.
    fn run_commit(&self, mut commit: ds_core::Commit, take_next: bool) -> Option<ds_core::Commit> {
        use std::sync::atomic::Ordering;
        self.commits_running.fetch_add(1, Ordering::AcqRel);
        if commit.writes <= 1 {
            self.lone_groups.fetch_add(1, Ordering::Relaxed);
        } else {
            self.lone_groups.store(0, Ordering::Relaxed);
        }
        let started = std::time::Instant::now();
        // Compacted here, outside the engine lock (`Commit::batch`).
        let result = commit.store_in(&*self.store);
        if let Some(observe) = self.commit_observer.get() {
            observe(commit.writes, started.elapsed(), result.is_ok());
        }
        if let Err(e) = &result {
            tracing::error!("commit of {} writes failed: {e}", commit.writes);
        }
        let ((settled, next), after) = self.engine_call(|e, _| {
            let settled = e.finish_commit(result);
            (settled, if take_next { e.take_commit() } else { None })
        });
        // Each send may wake a task (and a parked worker): done after the
        // lock is released, or staging writes would queue behind the wakes.
        let answers: Vec<_> = {
            let mut tickets = self.tickets.lock();
            settled
                .into_iter()
                .filter_map(|(ticket, response)| Some((tickets.remove(&ticket)?, response)))
                .collect()
        };
        for (tx, response) in answers {
            let _ = tx.send(response);
        }
        // The writers first, then their readers: woken in the other order,
        // an append's acknowledgement queued behind its whole fan-out (500
        // SSE readers: writer p50 5.6 ms; 500 long-polls: 11.3 ms).
        self.follow_up(after);
        self.commits_running.fetch_sub(1, Ordering::AcqRel);
        next
    }

    /// Group commits under way. A commit answers its writers before it
    /// wakes their readers, so a writer may hold its answer while the
    /// readers' wake-ups are still coming; once this reads 0, every
    /// wake-up of every settled commit has been delivered (tests on a
    /// paused clock wait for that before letting virtual time move).
    pub fn commits_running(&self) -> usize {
        self.commits_running
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sets the function told about every group commit: writes in the
    /// group, how long the commit took, and whether it succeeded. Only the
    /// first call has an effect.
    pub fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.commit_observer.set(observer);
    }

    /// True once the server started shutting down (set before parked
    /// readers are woken).
    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A receiver that flips to `true` when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells live readers to finish: sets the shutdown flag, then wakes
    /// every parked reader (SSE bodies look at the flag when woken).
    pub fn begin_shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        self.waiters.wake_all();
    }

    /// Commits whatever is staged and waits until it is settled (shutdown).
    pub fn flush(&self) {
        while self.commit_staged() {}
    }

    /// Commits what is staged, then stops and joins the committer thread, so
    /// once the last handle to the driver is dropped the storage is closed
    /// at once (a restart in the same process can reopen it immediately).
    pub fn close(&self) {
        self.flush();
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.signal_work();
        let thread = self.committer.lock().expect("committer lock").take();
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
        self.flush();
    }

    /// Expires streams in the background at the engine's deadlines.
    pub fn spawn_timer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut shutdown = this.shutdown_signal();
            loop {
                let next = this.call(|e, _| e.poll_timeout()).await;
                let now = this.clock.now();
                let wait = next.map_or(1000, |at| at.millis_since(now).min(1000));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = shutdown.changed() => return,
                }
                this.call(|e, now| e.handle_timeout(now)).await;
                this.waiters.sweep();
            }
        })
    }
}

/// Who sent a request, as far as [`Driver::handle_from`] tells writers
/// apart: the server gives each connection its own (from 1); 0 stands for
/// every caller that does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writer(pub u64);

/// Senders of the responses waiting for a commit, by ticket.
type Tickets = HashMap<Ticket, oneshot::Sender<Response>, BuildHasherDefault<TicketHasher>>;

/// Tickets are sequence numbers: one multiply spreads them over the hash
/// (SipHash, the default, was ~1% of the committer's time).
#[derive(Default)]
struct TicketHasher(u64);

impl Hasher for TicketHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// See [`Driver::observe_commits`].
pub type CommitObserver = Box<dyn Fn(usize, Duration, bool) + Send + Sync>;

/// What [`Driver::handle`] produced.
pub enum Handled {
    /// Send this now.
    Respond(Response),
    /// Park until woken or its deadline, then resume.
    Wait(ds_core::LongPoll),
    /// A staged write; its response arrives when its group is durable.
    Durable(oneshot::Receiver<Response>),
}

/// Groups of at most one write in a row after which a write is taken to
/// come from a lone writer ([`Driver::handle`]). Under concurrent writes a
/// group of one happens now and then, several in a row rarely.
const LONE_GROUPS: usize = 4;

/// What an engine call leaves for after its lock: see [`Driver::follow_up`].
struct FollowUp {
    /// Paths that advanced or went away, each with the data event its SSE
    /// followers send next when one was framed (only collected when
    /// readers wait somewhere).
    advanced: Vec<(String, Option<ds_core::LiveFrame>)>,
    /// The engine's time of the call (the frames' time).
    now: UnixMillis,
    webhooks: Vec<ds_core::WebhookDelivery>,
    allow_local: bool,
    /// A commit is staged: the committer is to be woken.
    pending: bool,
}

/// The committer thread: waits for staged work, commits a group, repeats.
/// Ends when the driver is dropped.
fn committer(driver: std::sync::Weak<Driver>) {
    // Its wake-ups (one per completed log write) wait for a free core
    // instead of preempting a request worker (see `scheduling`).
    crate::scheduling::yield_on_wake();
    loop {
        let Some(d) = driver.upgrade() else { return };
        if d.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        d.commit_staged();
        let (lock, cv) = &d.work;
        let mut ready = lock.lock().expect("work lock");
        if !*ready {
            // Time out now and then so a dropped driver ends this thread.
            let (guard, _) = cv
                .wait_timeout(ready, Duration::from_millis(200))
                .expect("work lock");
            ready = guard;
        }
        *ready = false;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ds_core::{Method, Request};

    use super::*;
    use crate::{open_driver, Storage};

    /// Appends a byte to `path` and waits for the answer.
    async fn append(driver: &Arc<Driver>, path: &str) -> u16 {
        append_from(driver, path, Writer(0)).await
    }

    /// Appends a byte to `path` as `writer` and waits for the answer.
    async fn append_from(driver: &Arc<Driver>, path: &str, writer: Writer) -> u16 {
        let req = Request::new(Method::Post, path.to_string())
            .header("content-type", "text/plain")
            .body(b"x".to_vec());
        match driver.handle_from(req, writer) {
            Handled::Durable(rx) => rx.await.expect("answered").status,
            Handled::Respond(res) => res.status,
            Handled::Wait(_) => panic!("a write does not wait"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_writer_commits_on_its_own_thread_and_concurrent_writers_are_grouped() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::Dir(dir.path().to_path_buf());
        let driver = open_driver(&storage, ds_core::Config::default(), Clock::system()).unwrap();
        let committers: Arc<Mutex<Vec<(usize, bool)>>> = Arc::default();
        let seen = Arc::clone(&committers);
        driver.observe_commits(Box::new(move |writes, _, ok| {
            assert!(ok);
            let on_committer = std::thread::current().name() == Some("group-commit");
            seen.lock().unwrap().push((writes, on_committer));
        }));
        let create = Request::new(Method::Put, "/v1/stream/lone".to_string())
            .header("content-type", "text/plain");
        match driver.handle(create) {
            Handled::Durable(rx) => assert_eq!(rx.await.unwrap().status, 201),
            _ => panic!("a create is a write"),
        }
        for _ in 0..LONE_GROUPS + 3 {
            assert_eq!(append(&driver, "/v1/stream/lone").await, 204);
        }
        let lone = std::mem::take(&mut *committers.lock().unwrap());
        assert!(lone.iter().all(|&(writes, _)| writes == 1), "{lone:?}");
        assert!(
            lone[..LONE_GROUPS].iter().all(|&(_, committer)| committer),
            "the first groups go to the committer thread: {lone:?}"
        );
        assert!(
            lone[LONE_GROUPS..].iter().all(|&(_, committer)| !committer),
            "then a lone writer commits on its own thread: {lone:?}"
        );

        // Writers taking turns (one worker serving several connections)
        // are not a lone writer, though each group holds one write: none
        // may hold up the others for an fsync of its own.
        for i in 0..6 {
            let writer = Writer(1 + i % 2);
            assert_eq!(append_from(&driver, "/v1/stream/lone", writer).await, 204);
        }
        let turns = std::mem::take(&mut *committers.lock().unwrap());
        assert!(turns.iter().all(|&(_, committer)| committer), "{turns:?}");
        for _ in 0..2 {
            assert_eq!(append(&driver, "/v1/stream/lone").await, 204);
        }
        let again = std::mem::take(&mut *committers.lock().unwrap());
        assert_eq!(
            again,
            [(1, true), (1, false)],
            "the same writer again: solo"
        );

        // A reader parked on the stream: its writes go to the committer
        // thread, which wakes readers on every worker at once.
        let reader = driver.waiters.subscribe("/v1/stream/lone");
        for _ in 0..3 {
            assert_eq!(append(&driver, "/v1/stream/lone").await, 204);
        }
        drop(reader);
        let watched = std::mem::take(&mut *committers.lock().unwrap());
        assert!(
            watched.iter().all(|&(_, committer)| committer),
            "{watched:?}"
        );

        // Many writers at once: groups form again, on the committer thread.
        let writers: Vec<_> = (0..64)
            .map(|_| {
                let driver = Arc::clone(&driver);
                tokio::spawn(async move { append(&driver, "/v1/stream/lone").await })
            })
            .collect();
        for w in writers {
            assert_eq!(w.await.unwrap(), 204);
        }
        let grouped = std::mem::take(&mut *committers.lock().unwrap());
        assert_eq!(grouped.iter().map(|g| g.0).sum::<usize>(), 64);
        assert!(grouped.iter().any(|&(writes, _)| writes > 1), "{grouped:?}");
        let read = driver
            .handle(Request::new(Method::Get, "/v1/stream/lone".to_string()).query("offset=-1"));
        match read {
            Handled::Respond(res) => {
                assert_eq!(res.body_bytes().len(), LONE_GROUPS + 3 + 6 + 2 + 3 + 64)
            }
            _ => panic!("a catch-up read answers at once"),
        }
        driver.close();
    }
}
