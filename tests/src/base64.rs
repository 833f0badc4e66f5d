//! Strict standard base64 (RFC 4648, padded) decoding for SSE data events
//! of binary streams (PROTOCOL §5.8).

/// Decodes padded standard base64. `None` when the text is not exactly that:
/// a length that is not a multiple of 4, a character outside the alphabet,
/// or misplaced padding.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (n, quad) in bytes.chunks(4).enumerate() {
        let last = n == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut acc = 0u32;
        for &b in &quad[..4 - pad] {
            acc = (acc << 6) | u32::from(sextet(b)?);
        }
        acc <<= 6 * pad as u32;
        let [_, a, b, c] = acc.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..3 - pad]);
    }
    Some(out)
}

fn sextet(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_padded_text() {
        assert_eq!(decode("SGVsbG8=").unwrap(), b"Hello");
        assert_eq!(decode("AAECAw==").unwrap(), [0, 1, 2, 3]);
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("SGVsbG8"), None);
        assert_eq!(decode("SG=sbG8="), None);
        assert_eq!(decode("SGVs bG8="), None);
    }
}
