//! The mutex around the engine and the commit tickets, of the kind that
//! suits the storage.
//!
//! Two kinds, measured on 2 cores with 32 connections (same-run A/B):
//! - [`LockKind::Spin`] (`parking_lot`): a waiter spins a little, then
//!   calls `sched_yield` up to seven times, then parks. Right for memory
//!   storage, where the two request workers are the only busy threads:
//!   std's lock cost 13% of the appends there (`append-many` 88k -> 77k/s;
//!   spinning on `try_lock` before blocking did not win it back).
//! - [`LockKind::Block`] (std's futex lock): a waiter spins a little, then
//!   sleeps until the holder unlocks. Right for durable storage, where the
//!   group-commit thread shares the two cores with the workers and a
//!   holder is often preempted: a waiter that yields gives its core away
//!   for up to a scheduler slice (~1 ms per `sched_yield` under
//!   `perf trace`; ~2k of them per second per worker, 3/4 of them waiting
//!   for the engine). Blocking took the durable `append-many` p99 from
//!   1.76 to 1.36 ms and its rate from 44.2k to 45.6k/s (means of 18
//!   rounds each in five same-run A/B runs, ahead in all five); the durable
//!   SSE fan-out p99 (500 readers, each taking the lock when woken) moved
//!   from 6.3 to 6.7 ms (10 runs each, within its noise).

use std::ops::{Deref, DerefMut};
use std::sync::PoisonError;

/// Which kind of [`Lock`] to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Spin, then yield, then park (`parking_lot`).
    Spin,
    /// Spin briefly, then sleep until woken (std).
    Block,
}

/// A mutex of either [`LockKind`]. A panic while it is held does not
/// poison it: the engine keeps its invariants between calls, as with
/// `parking_lot`.
pub enum Lock<T> {
    /// See [`LockKind::Spin`].
    Spin(parking_lot::Mutex<T>),
    /// See [`LockKind::Block`].
    Block(std::sync::Mutex<T>),
}

/// Access to what a [`Lock`] holds, until dropped.
pub enum Guard<'a, T> {
    /// Held through a [`Lock::Spin`].
    Spin(parking_lot::MutexGuard<'a, T>),
    /// Held through a [`Lock::Block`].
    Block(std::sync::MutexGuard<'a, T>),
}

impl<T> Lock<T> {
    /// A lock of `kind` holding `value`.
    pub fn new(kind: LockKind, value: T) -> Lock<T> {
        match kind {
            LockKind::Spin => Lock::Spin(parking_lot::Mutex::new(value)),
            LockKind::Block => Lock::Block(std::sync::Mutex::new(value)),
        }
    }

    /// Waits for the lock and holds it until the guard is dropped.
    pub fn lock(&self) -> Guard<'_, T> {
        match self {
            Lock::Spin(m) => Guard::Spin(m.lock()),
            Lock::Block(m) => Guard::Block(m.lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Guard::Spin(g) => g,
            Guard::Block(g) => g,
        }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match self {
            Guard::Spin(g) => g,
            Guard::Block(g) => g,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn both_kinds_exclude_each_other_and_survive_a_panic() {
        for kind in [LockKind::Spin, LockKind::Block] {
            let lock = Arc::new(Lock::new(kind, 0u64));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let lock = Arc::clone(&lock);
                    std::thread::spawn(move || {
                        for _ in 0..10_000 {
                            let mut g = lock.lock();
                            let v = *g;
                            *g = v + 1;
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(*lock.lock(), 40_000, "{kind:?}");
            let held = Arc::clone(&lock);
            let _ = std::thread::spawn(move || {
                let _g = held.lock();
                panic!("a panic while holding the lock");
            })
            .join();
            *lock.lock() += 1;
            assert_eq!(*lock.lock(), 40_001, "{kind:?}");
        }
    }
}
