//! Owns the engine: serialises calls to it off the async runtime, drains
//! its events into wake-ups, and runs the expiry timer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ds_core::{Engine, Store};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::waiters::Waiters;

/// The store type the native host runs on.
pub type DynStore = Box<dyn Store + Send>;

/// Shared state of a running server.
pub struct Driver {
    engine: Mutex<Engine<DynStore>>,
    /// Parked readers.
    pub waiters: Waiters,
    /// The clock all engine calls use.
    pub clock: Clock,
    shutdown: watch::Sender<bool>,
}

impl Driver {
    /// Wraps an opened engine.
    pub fn new(engine: Engine<DynStore>, clock: Clock) -> Arc<Driver> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Driver {
            engine: Mutex::new(engine),
            waiters: Waiters::default(),
            clock,
            shutdown,
        })
    }

    /// Runs `f` on the engine on a blocking thread (commits may fsync), then
    /// wakes every reader parked on a path the call advanced.
    pub async fn call<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Engine<DynStore>, ds_core::UnixMillis) -> R + Send + 'static,
    ) -> R {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.call_blocking(f))
            .await
            .expect("engine call panicked")
    }

    /// [`Driver::call`] on the current thread.
    pub fn call_blocking<R>(
        &self,
        f: impl FnOnce(&mut Engine<DynStore>, ds_core::UnixMillis) -> R,
    ) -> R {
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let result = f(&mut engine, self.clock.now());
        while let Some(event) = engine.poll_event() {
            self.waiters.wake(event.path());
        }
        result
    }

    /// A receiver that flips to `true` when the server starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells live readers to finish.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
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
                let result = this.call(|e, now| e.handle_timeout(now)).await;
                if let Err(e) = result {
                    tracing::error!("background expiry failed: {e}");
                }
                this.waiters.sweep();
            }
        })
    }
}
