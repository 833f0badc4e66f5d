//! `Stream-Cursor` values for CDN collapsing (PROTOCOL §10.1).
//!
//! Time is divided into 20-second intervals counted from 2024-10-09T00:00:00Z;
//! the cursor is the interval number in decimal. When the client echoes a
//! cursor at or ahead of the current interval, the answer jumps ahead of it by
//! 1–3600 seconds of random jitter, so cursors never go backwards and a cached
//! response can never loop.

use crate::time::UnixMillis;

/// 2024-10-09T00:00:00Z in Unix milliseconds.
pub const CURSOR_EPOCH: UnixMillis = UnixMillis(1_728_432_000_000);
/// Length of one cursor interval.
pub const INTERVAL_MS: u64 = 20_000;

/// A small deterministic generator (SplitMix64) owned by the engine; the host
/// seeds it. Used only for cursor jitter.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Jitter(seed)
    }

    /// The next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The number of the interval `now` falls in (the cursor when the client
/// echoed none).
pub fn interval(now: UnixMillis) -> u64 {
    now.millis_since(CURSOR_EPOCH) / INTERVAL_MS
}

/// The cursor for a live response at `now`, given the client's echoed
/// `cursor` query value (ignored when not a decimal integer).
pub fn next_cursor(now: UnixMillis, client: Option<&str>, jitter: &mut Jitter) -> u64 {
    let current = interval(now);
    match client.and_then(|c| c.parse::<u64>().ok()) {
        Some(echoed) if echoed >= current => {
            let jitter_secs = 1 + jitter.next_u64() % 3600;
            echoed.saturating_add((jitter_secs * 1000 / INTERVAL_MS).max(1))
        }
        _ => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_and_monotonic() {
        let mut j = Jitter::new(7);
        let now = CURSOR_EPOCH.plus_millis(INTERVAL_MS * 1000 + 5);
        assert_eq!(next_cursor(now, None, &mut j), 1000);
        assert_eq!(next_cursor(now, Some("12"), &mut j), 1000);
        assert_eq!(next_cursor(now, Some("junk"), &mut j), 1000);
        for echoed in [1000u64, 1001, 5000] {
            let c = next_cursor(now, Some(&echoed.to_string()), &mut j);
            assert!(c > echoed && c <= echoed + 180, "{c}");
        }
    }
}
