//! Parked long-polls and SSE bodies, keyed by stream path. The engine's
//! events say which path advanced; everything parked on it is woken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// Registry of per-path wake-ups.
#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Weak<Notify>>>,
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
        n
    }

    /// True while a reader is parked on `path` (or an SSE body follows it).
    pub fn is_watched(&self, path: &str) -> bool {
        self.map
            .lock()
            .expect("waiters lock")
            .get(path)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// Wakes everything parked on `path`.
    pub fn wake(&self, path: &str) {
        let mut map = self.map.lock().expect("waiters lock");
        match map.get(path).and_then(Weak::upgrade) {
            Some(n) => n.notify_waiters(),
            None => {
                map.remove(path);
            }
        }
    }

    /// Drops entries nobody waits on any more.
    pub fn sweep(&self) {
        self.map
            .lock()
            .expect("waiters lock")
            .retain(|_, w| w.strong_count() > 0);
    }
}
