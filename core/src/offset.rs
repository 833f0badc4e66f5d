//! Offsets (PROTOCOL §8).
//!
//! A concrete [`Offset`] is a position in the stream's logical byte space
//! (for JSON streams, the concatenated stored message texts). Its token is
//! fixed-width and lexicographically ordered: two 16-digit zero-padded decimal
//! fields joined by `_`, `GGGGGGGGGGGGGGGG_PPPPPPPPPPPPPPPP`. The first field
//! is a format generation, always `0` today; the second is the position. The
//! stream start is `0000000000000000_0000000000000000`. Tokens never contain
//! `,` `&` `=` `?` `/` and are never the sentinels `-1` or `now`.

use std::fmt;

/// Width of each numeric field of the token.
const FIELD: usize = 16;
/// The largest position a token can carry (16 decimal digits).
pub const MAX_POSITION: u64 = 9_999_999_999_999_999;

/// A concrete position in a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl Offset {
    /// The start of every stream.
    pub const ZERO: Offset = Offset(0);

    /// Parses a token minted by [`Offset::fmt`]. `None` for anything else,
    /// including the sentinels (see [`ReadFrom::parse`]).
    pub fn parse(token: &str) -> Option<Offset> {
        let bytes = token.as_bytes();
        if bytes.len() != FIELD * 2 + 1 || bytes[FIELD] != b'_' {
            return None;
        }
        let (generation, position) = (&token[..FIELD], &token[FIELD + 1..]);
        if !generation.bytes().all(|b| b == b'0') || !position.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        position.parse().ok().map(Offset)
    }
}

impl fmt::Display for Offset {
    /// Writes the token (digit by digit: every response carries one).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > MAX_POSITION {
            // Wider than a token; never minted, but printed faithfully.
            return write!(f, "{:0FIELD$}_{:0FIELD$}", 0, self.0);
        }
        let mut token = *b"0000000000000000_0000000000000000";
        let (mut rest, mut at) = (self.0, token.len());
        while rest > 0 {
            at -= 1;
            token[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        f.write_str(std::str::from_utf8(&token).expect("ASCII digits"))
    }
}

/// Appends `n` in decimal (digit by digit: hot paths write counters and
/// positions into every response).
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Where a read starts: the request-side position, before resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// `-1` or no `offset`: the stream's beginning.
    Start,
    /// `now`: the tail at the time the request is handled.
    Now,
    /// A concrete offset previously returned by the server.
    At(Offset),
}

impl ReadFrom {
    /// Parses the `offset` query value (PROTOCOL §8 sentinels included).
    pub fn parse(value: &str) -> Option<ReadFrom> {
        match value {
            "-1" => Some(ReadFrom::Start),
            "now" => Some(ReadFrom::Now),
            other => Offset::parse(other).map(ReadFrom::At),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders() {
        assert_eq!(
            Offset::ZERO.to_string(),
            "0000000000000000_0000000000000000"
        );
        for p in [0u64, 1, 42, 1 << 40, MAX_POSITION] {
            let token = Offset(p).to_string();
            assert_eq!(token.len(), 33);
            assert_eq!(Offset::parse(&token), Some(Offset(p)));
        }
        assert!(Offset(9).to_string() < Offset(10).to_string());
    }

    #[test]
    fn tokens_are_zero_padded_decimal() {
        for p in [
            0u64,
            7,
            10,
            99,
            1_000_000,
            123_456_789_012,
            MAX_POSITION,
            MAX_POSITION + 1,
        ] {
            assert_eq!(Offset(p).to_string(), format!("{:016}_{:016}", 0, p));
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "0",
            "-1",
            "now",
            "0,1",
            "0 1",
            "abc",
            "0000000000000001_0000000000000000",
            "000000000000000_00000000000000000",
            "0000000000000000_000000000000000a",
        ] {
            assert_eq!(Offset::parse(bad), None, "{bad}");
        }
        assert_eq!(ReadFrom::parse("-1"), Some(ReadFrom::Start));
        assert_eq!(ReadFrom::parse("now"), Some(ReadFrom::Now));
    }
}
