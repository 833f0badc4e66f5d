//! Parked long-polls and SSE bodies, keyed by stream path. The engine's
//! events say which path advanced; everything parked on it is woken.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// Registry of per-path wake-ups.
#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Weak<Notify>>>,
    /// The map's length, updated under its lock: a write with no reader
    /// anywhere (the common case under write load) then needs neither the
    /// lock nor a hash of its path. The engine calls `wake` after the
    /// change it announces, under the engine lock, and a reader registers
    /// before it looks at the engine under that same lock, so a reader that
    /// could miss the change is always counted here.
    entries: AtomicUsize,
}

impl Waiters {
    /// The notifier for `path`; hold it while waiting.
    pub fn subscribe(&self, path: &str) -> Arc<Notify> {
        let mut map = self.map.lock().expect("waiters lock");
        if let Some(n) = map.get(path).and_then(Weak::upgrade) {
            return n;
        }
        let n = Arc::new(Notify::new());
        map.insert(path.to_string(), Arc::downgrade(&n));
        self.entries.store(map.len(), Ordering::Relaxed);
        n
    }

    /// True while anything may be parked on any path.
    pub fn any(&self) -> bool {
        self.entries.load(Ordering::Relaxed) > 0
    }

    /// True while a reader is parked on `path` (or an SSE body follows it).
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

    /// Wakes everything parked on `path`.
    pub fn wake(&self, path: &str) {
        if !self.any() {
            return;
        }
        let mut map = self.map.lock().expect("waiters lock");
        match map.get(path).and_then(Weak::upgrade) {
            Some(n) => n.notify_waiters(),
            None => {
                if map.remove(path).is_some() {
                    self.entries.store(map.len(), Ordering::Relaxed);
                }
            }
        }
    }

    /// Wakes everything parked on any path (shutdown).
    pub fn wake_all(&self) {
        let map = self.map.lock().expect("waiters lock");
        for n in map.values().filter_map(Weak::upgrade) {
            n.notify_waiters();
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

    #[test]
    fn wakes_reach_subscribers_and_the_count_follows_the_map() {
        let w = Waiters::default();
        // Nobody waits: nothing to look up, nothing recorded.
        w.wake("/a");
        assert!(!w.is_watched("/a"));

        let n = w.subscribe("/a");
        {
            let notified = n.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            assert!(w.is_watched("/a"));
            assert!(!w.is_watched("/b"));
            w.wake("/b");
            w.wake("/a");
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
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
        w.wake("/a");
        assert_eq!(
            w.entries.load(Ordering::Relaxed),
            0,
            "a dead entry is dropped on wake"
        );
    }
}
