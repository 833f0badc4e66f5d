//! Wall-clock time as plain data.
//!
//! The core never reads a clock: every entry point takes a [`UnixMillis`] from
//! its host. TTL and `Stream-Expires-At` are wall-clock ideas (PROTOCOL §5.1),
//! so the unit is milliseconds since the Unix epoch.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since 1970-01-01T00:00:00Z. Arithmetic saturates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// `self + ms`, saturating at `u64::MAX`.
    pub fn plus_millis(self, ms: u64) -> UnixMillis {
        UnixMillis(self.0.saturating_add(ms))
    }

    /// `self - other` in milliseconds, or 0 when `other` is later.
    pub fn millis_since(self, other: UnixMillis) -> u64 {
        self.0.saturating_sub(other.0)
    }
}

/// Parses an RFC 3339 timestamp (`2026-01-01T00:00:00Z`, offsets allowed).
/// Returns `None` for anything else, and for instants before the epoch.
pub fn parse_rfc3339(text: &str) -> Option<UnixMillis> {
    let parsed = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    let ms = parsed.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).ok().map(UnixMillis)
}

/// Formats an instant as RFC 3339 in UTC with millisecond precision.
pub fn format_rfc3339(at: UnixMillis) -> String {
    let nanos = i128::from(at.0) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let t = parse_rfc3339("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(t, UnixMillis(1_767_323_045_000));
        assert_eq!(format_rfc3339(t), "2026-01-02T03:04:05Z");
        let with_offset = parse_rfc3339("2026-01-02T04:04:05+01:00").unwrap();
        assert_eq!(with_offset, t);
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2026-01-02").is_none());
    }
}
