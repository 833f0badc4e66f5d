//! Parked long-polls and followed SSE bodies, keyed by stream path. The
//! engine's events say which path advanced; everything waiting on it is
//! woken, and each SSE body that follows the path is handed the data event
//! framed for it once ([`ds_core::LiveFrame`]): written straight into its
//! socket when the body waits at the tail on a plain HTTP/1.1 connection
//! ([`crate::live_socket`]), or through its own task otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ds_core::{LiveFrame, SseSession, UnixMillis};
use futures_util::task::AtomicWaker;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::live_socket::{LiveSocket, Wrote};

/// Registry of per-path wake-ups.
#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Weak<Watch>>>,
    /// The map's length, updated under its lock: a write with no reader
    /// anywhere (the common case under write load) then needs neither the
    /// lock nor a hash of its path. The engine's events are collected under
    /// the engine lock after the change they announce, and a reader
    /// registers before it looks at the engine under that same lock, so a
    /// reader that could miss the change is always counted here.
    entries: AtomicUsize,
    /// Events the fan-out wrote straight into sockets (a metric).
    direct_events: Arc<AtomicU64>,
}

/// What waits on one path: parked long-polls, and the SSE bodies that
/// follow it. Held by each of them; the registry keeps a weak reference.
#[derive(Default)]
pub struct Watch {
    notify: Notify,
    followers: Mutex<Vec<Weak<Follower>>>,
}

/// Where and when a fan-out writes directly: the runtime its tasks run on
/// (the group-commit thread is not a runtime thread) and the time the
/// advance was made visible (the sessions' clock for the events).
#[derive(Clone, Copy)]
pub struct Fanout<'a> {
    /// Runs the fan-out's tasks.
    pub runtime: &'a tokio::runtime::Handle,
    /// The engine's time of the advance.
    pub now: UnixMillis,
}

/// Followers written to by one fan-out task. 500 followers make 16 tasks:
/// enough for every worker to take a share (a task spawned last sits in
/// its worker's LIFO slot, which no other worker steals), few enough that
/// the tasks cost little beside the writes (measured: a fan-out split in 8
/// tasks delivered sooner than one in 2, and than 500 task wake-ups).
const FANOUT_GROUP: usize = 32;

impl Watch {
    /// A wake-up for the next event on the path (enable it before looking
    /// at the engine).
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Wakes the long-polls, and hands `frame` to every follower: written
    /// directly by fan-out tasks for followers with a socket when `fanout`
    /// is given (a follower they cannot write to is woken to ask the engine),
    /// through their own tasks otherwise.
    fn wake(
        &self,
        frame: Option<&LiveFrame>,
        fanout: Option<Fanout<'_>>,
        direct_events: &Arc<AtomicU64>,
    ) {
        self.notify.notify_waiters();
        let direct_ok = frame.is_some() && fanout.is_some();
        let mut direct = Vec::new();
        {
            let mut followers = self.followers.lock().expect("followers lock");
            followers.retain(|f| match f.upgrade() {
                Some(f) => {
                    if direct_ok && f.socket.is_some() {
                        direct.push(f);
                    } else {
                        f.deliver(frame);
                    }
                    true
                }
                None => false,
            });
        }
        let (Some(frame), Some(fanout)) = (frame, fanout) else {
            return;
        };
        let mut rest = direct.into_iter().peekable();
        while rest.peek().is_some() {
            let group: Vec<Arc<Follower>> = rest.by_ref().take(FANOUT_GROUP).collect();
            let (frame, now) = (frame.clone(), fanout.now);
            let counter = Arc::clone(direct_events);
            fanout.runtime.spawn(async move {
                let mut direct = 0;
                for f in group {
                    if f.deliver_direct(&frame, now) {
                        direct += 1;
                    } else {
                        // Not with the frame: these tasks may run after a
                        // later advance was handed to the follower (a close
                        // is), and a body that sent this frame would take
                        // it for the latest news. It asks the engine.
                        f.deliver(None);
                    }
                }
                counter.fetch_add(direct, Ordering::Relaxed);
            });
        }
    }
}

/// Largest frame a follower's slot keeps after reading it (the size the
/// engine's own frame cache keeps).
const KEEP_FRAME_MAX: usize = 64 << 10;

/// One SSE body's wake-up and session. The fan-out writes to the body's
/// socket directly when it can ([`Follower::deliver_direct`]); otherwise it
/// leaves the frame in the body's slot and wakes its task, touching no lock
/// or counter that all of the readers share, only each reader's own.
pub struct Follower {
    waker: AtomicWaker,
    woken: AtomicBool,
    /// The data event of the last advance, when one was framed.
    frame: Mutex<Option<LiveFrame>>,
    /// The body's session: its task and direct writes both advance it.
    session: Mutex<SseSession>,
    /// The connection's socket and the body's number on it, when events
    /// may be written to it directly.
    socket: Option<(Arc<LiveSocket>, u64)>,
}

impl Follower {
    fn new(session: SseSession, socket: Option<Arc<LiveSocket>>) -> Follower {
        let socket = socket.map(|s| {
            let body = s.begin_body();
            (s, body)
        });
        Follower {
            waker: AtomicWaker::new(),
            woken: AtomicBool::new(false),
            frame: Mutex::new(None),
            session: Mutex::new(session),
            socket,
        }
    }

    fn deliver(&self, frame: Option<&LiveFrame>) {
        *self.frame.lock().expect("follower lock") = frame.cloned();
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Writes `frame`'s event straight into the body's socket when the body
    /// is open for it and the frame is its next event; true when done so
    /// (the task is woken only to send a backlog or to end). False: deliver
    /// it through the task.
    fn deliver_direct(&self, frame: &LiveFrame, now: UnixMillis) -> bool {
        let Some((socket, body)) = &self.socket else {
            return false;
        };
        let mut session = self.session.lock().expect("session lock");
        match socket.write(*body, || session.follow(frame, now).map(|step| step.bytes)) {
            Wrote::Sent => true,
            Wrote::Refused => false,
            Wrote::WakeBody => {
                self.waker.wake();
                true
            }
        }
    }

    /// Registers the task to wake, then takes the woken flag: true when the
    /// path advanced since the last call (no wake-up is lost between the
    /// two).
    pub fn poll_woken(&self, waker: &std::task::Waker) -> bool {
        self.waker.register(waker);
        self.woken.swap(false, Ordering::AcqRel)
    }

    /// Calls `f` with the frame of the last advance, if any. A frame of
    /// more than [`KEEP_FRAME_MAX`] bytes leaves the slot once read: it is
    /// the last append's data, which every followed stream would otherwise
    /// keep in memory until its next append.
    pub fn with_frame<R>(&self, f: impl FnOnce(Option<&LiveFrame>) -> R) -> R {
        let mut slot = self.frame.lock().expect("follower lock");
        let result = f(slot.as_ref());
        if slot
            .as_ref()
            .is_some_and(|frame| frame.len() > KEEP_FRAME_MAX)
        {
            *slot = None;
        }
        result
    }

    /// The body's session, locked (direct writes wait meanwhile).
    pub fn session(&self) -> std::sync::MutexGuard<'_, SseSession> {
        self.session.lock().expect("session lock")
    }

    /// The body waits at the tail: open it to direct writes once hyper has
    /// flushed. No-op without a socket.
    pub fn arm(&self) {
        if let Some((socket, body)) = &self.socket {
            socket.arm(*body);
        }
    }

    /// The body hands hyper a frame or ends: no direct writes until it
    /// arms again.
    pub fn disarm(&self) {
        if let Some((socket, body)) = &self.socket {
            socket.disarm(*body);
        }
    }

    /// A direct write failed (the client went away): the body ends.
    pub fn failed(&self) -> bool {
        self.socket
            .as_ref()
            .is_some_and(|(socket, body)| socket.failed(*body))
    }
}

impl Waiters {
    /// The watch of `path`; hold it while waiting.
    pub fn subscribe(&self, path: &str) -> Arc<Watch> {
        let mut map = self.map.lock().expect("waiters lock");
        if let Some(w) = map.get(path).and_then(Weak::upgrade) {
            return w;
        }
        let w = Arc::new(Watch::default());
        map.insert(path.to_string(), Arc::downgrade(&w));
        self.entries.store(map.len(), Ordering::Relaxed);
        w
    }

    /// Registers a follower of `path` (an SSE body driving `session`, on a
    /// connection whose `socket` takes direct writes, if any): woken, with
    /// the advance's frame, by every event on the path until it is dropped.
    pub fn follow(
        &self,
        path: &str,
        session: SseSession,
        socket: Option<Arc<LiveSocket>>,
    ) -> (Arc<Watch>, Arc<Follower>) {
        let watch = self.subscribe(path);
        let follower = Arc::new(Follower::new(session, socket));
        watch
            .followers
            .lock()
            .expect("followers lock")
            .push(Arc::downgrade(&follower));
        (watch, follower)
    }

    /// True while anything may be parked on any path.
    pub fn any(&self) -> bool {
        self.entries.load(Ordering::Relaxed) > 0
    }

    fn watch(&self, path: &str) -> Option<Arc<Watch>> {
        if !self.any() {
            return None;
        }
        self.map
            .lock()
            .expect("waiters lock")
            .get(path)
            .and_then(Weak::upgrade)
    }

    /// True while a reader is parked on `path` (or an SSE body follows it).
    /// Asked for every write while any reader waits anywhere: it counts
    /// references instead of taking one.
    pub fn is_watched(&self, path: &str) -> bool {
        if !self.any() {
            return false;
        }
        self.map
            .lock()
            .expect("waiters lock")
            .get(path)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// True while an SSE body follows `path` (a frame for it is worth
    /// making).
    pub fn is_followed(&self, path: &str) -> bool {
        // A follower dropped since the last wake is still listed: at worst
        // one frame is made for nobody. Called under the engine lock, so it
        // never waits for a fan-out that holds the list.
        self.watch(path)
            .is_some_and(|w| match w.followers.try_lock() {
                Ok(followers) => !followers.is_empty(),
                Err(std::sync::TryLockError::WouldBlock) => true,
                Err(std::sync::TryLockError::Poisoned(_)) => panic!("followers lock poisoned"),
            })
    }

    /// Wakes everything parked on `path`, handing followers `frame`
    /// (written directly where it can be when `fanout` is given).
    pub fn wake(&self, path: &str, frame: Option<&LiveFrame>, fanout: Option<Fanout<'_>>) {
        if !self.any() {
            return;
        }
        let watch = {
            let mut map = self.map.lock().expect("waiters lock");
            match map.get(path).and_then(Weak::upgrade) {
                Some(w) => w,
                None => {
                    if map.remove(path).is_some() {
                        self.entries.store(map.len(), Ordering::Relaxed);
                    }
                    return;
                }
            }
        };
        // Outside the registry's lock: a fan-out to many followers does not
        // hold up readers registering on other paths.
        watch.wake(frame, fanout, &self.direct_events);
    }

    /// Events written straight into followers' sockets so far.
    pub fn direct_events(&self) -> u64 {
        self.direct_events.load(Ordering::Relaxed)
    }

    /// Wakes everything parked on any path (shutdown).
    pub fn wake_all(&self) {
        let watches: Vec<_> = {
            let map = self.map.lock().expect("waiters lock");
            map.values().filter_map(Weak::upgrade).collect()
        };
        for w in watches {
            w.wake(None, None, &self.direct_events);
        }
    }

    /// Drops entries nobody waits on any more.
    pub fn sweep(&self) {
        let mut map = self.map.lock().expect("waiters lock");
        map.retain(|_, w| w.strong_count() > 0);
        self.entries.store(map.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ds_core::{Body, Engine, MemStore, Method, Outcome, Request};
    use std::task::Waker;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    /// An engine with a text stream at `path`.
    fn engine_with(path: &str) -> Engine<MemStore> {
        let mut e = Engine::open(MemStore::new(), ds_core::Config::default(), NOW, 1).unwrap();
        let put = Request::new(Method::Put, path).header("content-type", "text/plain");
        e.handle_and_commit(put, NOW);
        e
    }

    /// An SSE session reading `path` from its start.
    fn session(e: &mut Engine<MemStore>, path: &str) -> SseSession {
        let mut get = Request::new(Method::Get, path);
        get.query = "offset=-1&live=sse".into();
        match e.handle(get, NOW) {
            Outcome::Respond(r) => match r.body {
                Body::Sse(s) => s,
                _ => panic!("not an SSE body"),
            },
            _ => panic!("no response"),
        }
    }

    #[test]
    fn wakes_reach_subscribers_and_the_count_follows_the_map() {
        let w = Waiters::default();
        // Nobody waits: nothing to look up, nothing recorded.
        w.wake("/a", None, None);
        assert!(!w.is_watched("/a"));

        let n = w.subscribe("/a");
        {
            let notified = n.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            assert!(w.is_watched("/a"));
            assert!(!w.is_watched("/b"));
            assert!(!w.is_followed("/a"), "a long-poll is no follower");
            w.wake("/b", None, None);
            w.wake("/a", None, None);
            let mut cx = std::task::Context::from_waker(Waker::noop());
            let woken = std::future::Future::poll(notified.as_mut(), &mut cx);
            assert!(woken.is_ready(), "the subscriber was woken");
        }

        // Once the last holder is gone the entry goes, and the count with it.
        drop(n);
        assert!(!w.is_watched("/a"));
        w.sweep();
        assert_eq!(w.entries.load(Ordering::Relaxed), 0);
        let again = w.subscribe("/a");
        assert_eq!(w.entries.load(Ordering::Relaxed), 1);
        drop(again);
        w.wake("/a", None, None);
        assert_eq!(
            w.entries.load(Ordering::Relaxed),
            0,
            "a dead entry is dropped on wake"
        );
    }

    #[test]
    fn followers_are_woken_once_per_advance_and_leave_when_dropped() {
        let w = Waiters::default();
        let mut e = engine_with("/v1/stream/s");
        let (watch, f) = w.follow("/s", session(&mut e, "/v1/stream/s"), None);
        let (_watch2, g) = w.follow("/s", session(&mut e, "/v1/stream/s"), None);
        assert!(w.is_followed("/s"));
        assert!(!f.poll_woken(Waker::noop()), "nothing happened yet");

        w.wake("/s", None, None);
        assert!(f.poll_woken(Waker::noop()));
        assert!(!f.poll_woken(Waker::noop()), "the flag is taken once");
        assert!(g.poll_woken(Waker::noop()));
        assert!(f.with_frame(|frame| frame.is_none()));

        // A dropped follower is forgotten on the next wake; the watch stays
        // while anyone holds it.
        drop(g);
        w.wake("/s", None, None);
        assert_eq!(watch.followers.lock().unwrap().len(), 1);
        drop(f);
        w.wake("/s", None, None);
        assert!(!w.is_followed("/s"));
        assert!(w.is_watched("/s"));
    }

    #[test]
    fn a_large_frame_leaves_the_slot_once_read() {
        let now = NOW;
        let path = "/v1/stream/big";
        let mut e = engine_with(path);
        let mut frames = Vec::new();
        for size in [100, KEEP_FRAME_MAX + 1] {
            while e.poll_event().is_some() {}
            let append = Request::new(Method::Post, path)
                .header("content-type", "text/plain")
                .body(vec![b'x'; size]);
            e.handle_and_commit(append, now);
            let from = match e.poll_event() {
                Some(ds_core::Event::Advanced { from, .. }) => from,
                other => panic!("{other:?}"),
            };
            frames.push(e.live_frame(path, from, now).expect("a frame"));
        }
        let w = Waiters::default();
        let (_watch, f) = w.follow(path, session(&mut e, path), None);
        w.wake(path, Some(&frames[0]), None);
        assert!(f.with_frame(|frame| frame.is_some()));
        assert!(f.with_frame(|frame| frame.is_some()), "a small frame stays");
        w.wake(path, Some(&frames[1]), None);
        assert!(f.with_frame(|frame| frame.is_some_and(|fr| fr.len() > KEEP_FRAME_MAX)));
        assert!(
            f.with_frame(|frame| frame.is_none()),
            "a large one is let go"
        );
    }
}
