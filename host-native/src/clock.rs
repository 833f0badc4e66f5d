//! Where the host's `now` comes from.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ds_core::UnixMillis;

/// A source of wall-clock time, injectable for tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> UnixMillis + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            UnixMillis(ms)
        }))
    }

    /// Wall time that follows tokio's clock from `start`, so
    /// `tokio::time::pause` and `advance` drive expiry and long-polls alike.
    pub fn tokio_driven(start: UnixMillis) -> Clock {
        let origin = tokio::time::Instant::now();
        Clock(Arc::new(move || {
            start.plus_millis(origin.elapsed().as_millis() as u64)
        }))
    }

    /// The current time.
    pub fn now(&self) -> UnixMillis {
        (self.0)()
    }
}
