//! Parked long-polls and followed SSE bodies, keyed by stream path. The
//! engine's events say which path advanced; everything waiting on it is
//! woken, and each SSE body that follows the path is handed the data event
//! framed for it once ([`ds_core::LiveFrame`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ds_core::LiveFrame;
use futures_util::task::AtomicWaker;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

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
}

/// What waits on one path: parked long-polls, and the SSE bodies that
/// follow it. Held by each of them; the registry keeps a weak reference.
#[derive(Default)]
pub struct Watch {
    notify: Notify,
    followers: Mutex<Vec<Weak<Follower>>>,
}

impl Watch {
    /// A wake-up for the next event on the path (enable it before looking
    /// at the engine).
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Wakes the long-polls, and hands `frame` to every follower.
    fn wake(&self, frame: Option<&LiveFrame>) {
        self.notify.notify_waiters();
        let mut followers = self.followers.lock().expect("followers lock");
        followers.retain(|f| match f.upgrade() {
            Some(f) => {
                f.deliver(frame);
                true
            }
            None => false,
        });
    }
}

/// Largest frame a follower's slot keeps after reading it (the size the
/// engine's own frame cache keeps).
const KEEP_FRAME_MAX: usize = 64 << 10;

/// One SSE body's wake-up. Written by whoever wakes the path, read only by
/// the body's own task: a fan-out touches no lock or counter that all of
/// its readers share, only each reader's own slot.
#[derive(Default)]
pub struct Follower {
    waker: AtomicWaker,
    woken: AtomicBool,
    /// The data event of the last advance, when one was framed.
    frame: Mutex<Option<LiveFrame>>,
}

impl Follower {
    fn deliver(&self, frame: Option<&LiveFrame>) {
        *self.frame.lock().expect("follower lock") = frame.cloned();
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
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

    /// Registers a follower of `path` (an SSE body): woken, with the
    /// advance's frame, by every event on the path until it is dropped.
    pub fn follow(&self, path: &str) -> (Arc<Watch>, Arc<Follower>) {
        let watch = self.subscribe(path);
        let follower = Arc::new(Follower::default());
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

    /// Wakes everything parked on `path`, handing followers `frame`.
    pub fn wake(&self, path: &str, frame: Option<&LiveFrame>) {
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
        watch.wake(frame);
    }

    /// Wakes everything parked on any path (shutdown).
    pub fn wake_all(&self) {
        let watches: Vec<_> = {
            let map = self.map.lock().expect("waiters lock");
            map.values().filter_map(Weak::upgrade).collect()
        };
        for w in watches {
            w.wake(None);
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
    use std::task::Waker;

    #[test]
    fn wakes_reach_subscribers_and_the_count_follows_the_map() {
        let w = Waiters::default();
        // Nobody waits: nothing to look up, nothing recorded.
        w.wake("/a", None);
        assert!(!w.is_watched("/a"));

        let n = w.subscribe("/a");
        {
            let notified = n.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            assert!(w.is_watched("/a"));
            assert!(!w.is_watched("/b"));
            assert!(!w.is_followed("/a"), "a long-poll is no follower");
            w.wake("/b", None);
            w.wake("/a", None);
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
        w.wake("/a", None);
        assert_eq!(
            w.entries.load(Ordering::Relaxed),
            0,
            "a dead entry is dropped on wake"
        );
    }

    #[test]
    fn followers_are_woken_once_per_advance_and_leave_when_dropped() {
        let w = Waiters::default();
        let (watch, f) = w.follow("/s");
        let (_watch2, g) = w.follow("/s");
        assert!(w.is_followed("/s"));
        assert!(!f.poll_woken(Waker::noop()), "nothing happened yet");

        w.wake("/s", None);
        assert!(f.poll_woken(Waker::noop()));
        assert!(!f.poll_woken(Waker::noop()), "the flag is taken once");
        assert!(g.poll_woken(Waker::noop()));
        assert!(f.with_frame(|frame| frame.is_none()));

        // A dropped follower is forgotten on the next wake; the watch stays
        // while anyone holds it.
        drop(g);
        w.wake("/s", None);
        assert_eq!(watch.followers.lock().unwrap().len(), 1);
        drop(f);
        w.wake("/s", None);
        assert!(!w.is_followed("/s"));
        assert!(w.is_watched("/s"));
    }

    #[test]
    fn a_large_frame_leaves_the_slot_once_read() {
        use ds_core::{Engine, MemStore, Method, Request, UnixMillis};
        let now = UnixMillis(1_800_000_000_000);
        let mut e = Engine::open(MemStore::new(), ds_core::Config::default(), now, 1).unwrap();
        let path = "/v1/stream/big";
        let put = Request::new(Method::Put, path).header("content-type", "text/plain");
        e.handle_and_commit(put, now);
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
        let (_watch, f) = w.follow(path);
        w.wake(path, Some(&frames[0]));
        assert!(f.with_frame(|frame| frame.is_some()));
        assert!(f.with_frame(|frame| frame.is_some()), "a small frame stays");
        w.wake(path, Some(&frames[1]));
        assert!(f.with_frame(|frame| frame.is_some_and(|fr| fr.len() > KEEP_FRAME_MAX)));
        assert!(
            f.with_frame(|frame| frame.is_none()),
            "a large one is let go"
        );
    }
}
