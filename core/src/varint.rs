//! LEB128 unsigned integers: the compact integers of stored blobs (stream
//! metadata, the native store's record of where appends ended).

/// Appends `n`: seven bits per byte, low bits first, the high bit set on
/// every byte but the last.
pub fn push(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads one integer from the front of `bytes` and moves past it; `None`
/// when `bytes` ends inside it or it does not fit 64 bits.
pub fn take(bytes: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        let bits = u64::from(b & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        n |= bits << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncated_or_oversized_integers() {
        for n in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut out = Vec::new();
            push(&mut out, n);
            let mut rest = out.as_slice();
            assert_eq!(take(&mut rest), Some(n));
            assert!(rest.is_empty());
            let mut short = &out[..out.len() - 1];
            assert_eq!(take(&mut short), None);
        }
        let mut huge: &[u8] = &[0xff; 10];
        assert_eq!(take(&mut huge), None);
        let mut over: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(take(&mut over), None);
    }
}
