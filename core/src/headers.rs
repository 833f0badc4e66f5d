//! Strict parsers for protocol header values.

use crate::error::BadRequest;
use crate::producer::ProducerClaim;
use crate::request::Request;
use crate::response::names;

/// The largest integer JavaScript represents exactly (PROTOCOL §5.2.1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `Stream-Closed` and similar presence flags: only `true`, any case, counts
/// (PROTOCOL §4.1); every other value is treated as absent.
pub fn is_true(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// A decimal integer without sign, leading zeros, fraction or exponent
/// (the `Stream-TTL` grammar of PROTOCOL §5.1).
pub fn parse_canonical_uint(value: &str) -> Option<u64> {
    let v = value.trim();
    let ok =
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
    if ok {
        v.parse().ok()
    } else {
        None
    }
}

/// A non-negative decimal integer no larger than 2^53-1.
pub fn parse_safe_uint(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().filter(|n| *n <= MAX_SAFE_INTEGER)
}

/// The stream path a `Stream-Forked-From` value names (PROTOCOL §4.2): a
/// full URL path, or a path relative to `stream_root`. Hosts that authorize
/// forks resolve the source with this same rule.
pub fn forked_from_path(stream_root: &str, value: &str) -> String {
    let value = value.trim();
    if value.starts_with('/') {
        value.to_string()
    } else {
        format!("{stream_root}{value}")
    }
}

/// The producer headers of a request: all three or none (PROTOCOL §5.2.1).
pub fn producer_claim(req: &Request) -> Result<Option<ProducerClaim>, BadRequest> {
    let id = req.header_value(names::PRODUCER_ID);
    let epoch = req.header_value(names::PRODUCER_EPOCH);
    let seq = req.header_value(names::PRODUCER_SEQ);
    match (id, epoch, seq) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) => {
            if id.trim().is_empty() {
                return Err(BadRequest::Header {
                    name: "Producer-Id",
                    reason: "must not be empty",
                });
            }
            let epoch = parse_safe_uint(epoch).ok_or(BadRequest::Header {
                name: "Producer-Epoch",
                reason: "must be an integer from 0 to 2^53-1",
            })?;
            let seq = parse_safe_uint(seq).ok_or(BadRequest::Header {
                name: "Producer-Seq",
                reason: "must be an integer from 0 to 2^53-1",
            })?;
            Ok(Some(ProducerClaim {
                id: id.to_string(),
                epoch,
                seq,
            }))
        }
        _ => Err(BadRequest::PartialProducerHeaders),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers() {
        assert_eq!(parse_canonical_uint("3600"), Some(3600));
        assert_eq!(parse_canonical_uint("0"), Some(0));
        for bad in ["+3600", "03600", "3600.0", "3.6e3", "-1", "", "abc", " "] {
            assert_eq!(parse_canonical_uint(bad), None, "{bad}");
        }
        assert_eq!(parse_safe_uint("9007199254740991"), Some(MAX_SAFE_INTEGER));
        assert_eq!(parse_safe_uint("9007199254740992"), None);
        assert!(is_true(Some("TRUE")));
        assert!(!is_true(Some("yes")));
        assert!(!is_true(None));
    }
}
