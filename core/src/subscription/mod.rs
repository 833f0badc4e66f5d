//! Subscriptions (PROTOCOL §6–7): durable cursors over sets of streams that
//! wake workers when the streams have new data. This module holds the data
//! model, its validation and persistence; the state machine that drives it
//! is in `crate::engine::subscribe`.

pub mod crypto;
pub mod glob;
pub mod webhook_url;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lease bounds (PROTOCOL §6.2).
pub const LEASE_MIN_MS: u64 = 1_000;
/// Upper lease bound: ten minutes.
pub const LEASE_MAX_MS: u64 = 600_000;
/// Lease when none is configured.
pub const LEASE_DEFAULT_MS: u64 = 30_000;

/// How a subscription is delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Delivery {
    /// POST to `url` (PROTOCOL §7.1).
    Webhook {
        /// The receiver.
        url: String,
    },
    /// Wake events written to the stream-root-relative `wake_stream` (§7.2).
    PullWake {
        /// The wake channel.
        wake_stream: String,
    },
}

/// The normalized configuration whose hash decides idempotent re-PUTs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubConfig {
    /// Delivery mechanism and its target.
    pub delivery: Delivery,
    /// Glob over stream-root-relative paths.
    pub pattern: Option<String>,
    /// Explicit streams given at creation, sorted and de-duplicated.
    pub streams: Vec<String>,
    /// Lease duration.
    pub lease_ttl_ms: u64,
    /// Free text.
    pub description: Option<String>,
}

impl SubConfig {
    /// SHA-256 of the canonical JSON of the normalized configuration.
    pub fn hash(&self) -> String {
        crypto::sha256_hex(&serde_json::to_vec(self).expect("config serializes"))
    }
}

/// One linked stream (PROTOCOL §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Added through `streams` (explicit beats glob when serialized).
    pub explicit: bool,
    /// Matched by `pattern`.
    pub glob: bool,
    /// Processed up to this position (exclusive).
    pub acked: u64,
}

/// A stream in a wake snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Stream-root-relative path.
    pub path: String,
    /// `explicit` or `glob`.
    pub explicit: bool,
    /// Acked position at wake time.
    pub acked: u64,
    /// Tail position at wake time.
    pub tail: u64,
}

/// The wake in flight (PROTOCOL §7, §7.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    /// Unique per wake.
    pub wake_id: String,
    /// The generation it belongs to.
    pub generation: u64,
    /// Streams and positions when it was issued.
    pub snapshot: Vec<SnapshotEntry>,
    /// The worker holding the lease (pull-wake), if claimed.
    pub holder: Option<String>,
    /// When the lease (or the unclaimed wake) expires.
    pub lease_until: u64,
}

/// A persisted subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Record format version.
    pub v: u32,
    /// Client-chosen id.
    pub id: String,
    /// Distinguishes re-creations of the same id (tokens carry it).
    pub incarnation: u64,
    /// The configuration.
    pub config: SubConfig,
    /// Hash of `config`.
    pub config_hash: String,
    /// `scheme://host` the subscription was created through (callback and
    /// JWKS URLs are built from it).
    pub origin: String,
    /// Creation time.
    pub created_at: u64,
    /// Linked streams by stream-root-relative path.
    pub links: BTreeMap<String, Link>,
    /// Fencing counter; grows with every wake.
    pub generation: u64,
    /// The wake in flight.
    pub wake: Option<Wake>,
    /// Failed webhook attempts in a row.
    pub attempts: u32,
    /// When the next webhook attempt may go out after a failure.
    pub retry_at: Option<u64>,
}

/// Format version of [`Subscription`] records.
pub const SUB_VERSION: u32 = 1;

/// Metadata key prefix of subscription records (never a stream path).
pub const SUB_KEY_PREFIX: &str = "sub:";
/// Metadata key of the server secret.
pub const SECRET_KEY: &str = "secret:";

impl Subscription {
    /// The metadata key of this record.
    pub fn key(&self) -> String {
        format!("{SUB_KEY_PREFIX}{}", self.id)
    }

    /// `active`, or `failed` while a webhook retry is scheduled.
    pub fn status(&self) -> &'static str {
        if self.retry_at.is_some() {
            "failed"
        } else {
            "active"
        }
    }
}

/// Why a subscription request is refused: `(status, code, message)`.
pub type SubError = (u16, &'static str, String);

/// Parses and normalizes a PUT body (PROTOCOL §6.2).
pub fn parse_config(body: &[u8], allow_local_webhooks: bool) -> Result<SubConfig, SubError> {
    let invalid = |m: &str| (400, "INVALID_SUBSCRIPTION", m.to_string());
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| invalid("the body is not JSON"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("the body must be a JSON object"))?;
    let text = |k: &str| -> Result<Option<String>, SubError> {
        match obj.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&format!("{k} must be a string"))),
        }
    };
    let pattern = text("pattern")?;
    if let Some(p) = &pattern {
        if !glob::is_valid(p) {
            return Err(invalid(
                "pattern must be a relative path glob without empty segments",
            ));
        }
    }
    let streams = parse_streams(obj.get("streams")).map_err(|m| invalid(&m))?;
    if pattern.is_none() && streams.is_empty() {
        return Err(invalid("at least one of pattern or streams is required"));
    }
    let delivery = match text("type")?.as_deref() {
        Some("webhook") => {
            let url = obj
                .get("webhook")
                .and_then(|w| w.get("url"))
                .and_then(|u| u.as_str())
                .ok_or_else(|| invalid("webhook.url is required for type webhook"))?;
            webhook_url::check(url, allow_local_webhooks)
                .map_err(|why| (400, "WEBHOOK_URL_REJECTED", format!("webhook.url {why}")))?;
            Delivery::Webhook {
                url: url.to_string(),
            }
        }
        Some("pull-wake") => {
            let wake_stream = text("wake_stream")?
                .ok_or_else(|| invalid("wake_stream is required for type pull-wake"))?;
            Delivery::PullWake {
                wake_stream: normalize_path(&wake_stream).map_err(|m| invalid(&m))?,
            }
        }
        _ => return Err(invalid("type must be webhook or pull-wake")),
    };
    let lease_ttl_ms = match obj.get("lease_ttl_ms") {
        None | Some(serde_json::Value::Null) => LEASE_DEFAULT_MS,
        Some(n) => n
            .as_u64()
            .filter(|n| (LEASE_MIN_MS..=LEASE_MAX_MS).contains(n))
            .ok_or_else(|| invalid("lease_ttl_ms must be an integer from 1000 to 600000"))?,
    };
    Ok(SubConfig {
        delivery,
        pattern,
        streams,
        lease_ttl_ms,
        description: text("description")?,
    })
}

/// Parses a `streams` array into sorted, de-duplicated relative paths.
pub fn parse_streams(value: Option<&serde_json::Value>) -> Result<Vec<String>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or("streams must be an array of stream paths")?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let s = item
            .as_str()
            .ok_or("streams must be an array of stream paths")?;
        out.push(normalize_path(s)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A stream-root-relative path: no leading slash, no empty segments, not
/// under the reserved `__ds` prefix.
pub fn normalize_path(path: &str) -> Result<String, String> {
    let p = path.trim_start_matches('/');
    if p.is_empty() || p.split('/').any(str::is_empty) {
        return Err(format!("{path:?} is not a stream path"));
    }
    if p == "__ds" || p.starts_with("__ds/") {
        return Err(format!("{path:?} is under the reserved __ds prefix"));
    }
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_normalize_and_validate() {
        let a = parse_config(br#"{"type":"webhook","pattern":"events/*","streams":["b","a","b"],"webhook":{"url":"https://x.example/h"}}"#, false).unwrap();
        assert_eq!(a.streams, vec!["a", "b"]);
        assert_eq!(a.lease_ttl_ms, LEASE_DEFAULT_MS);
        let b = parse_config(br#"{"type":"webhook","pattern":"events/*","streams":["a","b"],"webhook":{"url":"https://x.example/h"},"lease_ttl_ms":30000}"#, false).unwrap();
        assert_eq!(a.hash(), b.hash());
        let c = parse_config(br#"{"type":"webhook","pattern":"events/*","webhook":{"url":"https://x.example/h"},"description":"d"}"#, false).unwrap();
        assert_ne!(a.hash(), c.hash());
        let err = |body: &[u8]| parse_config(body, false).unwrap_err().1;
        assert_eq!(
            err(br#"{"type":"webhook","webhook":{"url":"https://x.example/h"}}"#),
            "INVALID_SUBSCRIPTION"
        );
        assert_eq!(
            err(br#"{"type":"webhook","pattern":"a/*","webhook":{"url":"http://10.0.0.1/hook"}}"#),
            "WEBHOOK_URL_REJECTED"
        );
        assert_eq!(
            err(br#"{"type":"pull-wake","pattern":"a/*"}"#),
            "INVALID_SUBSCRIPTION"
        );
        assert_eq!(
            err(br#"{"type":"pull-wake","pattern":"a/*","wake_stream":"w","lease_ttl_ms":999}"#),
            "INVALID_SUBSCRIPTION"
        );
        assert_eq!(
            err(br#"{"type":"pull-wake","pattern":"a/*","wake_stream":"w","lease_ttl_ms":600001}"#),
            "INVALID_SUBSCRIPTION"
        );
        assert_eq!(
            err(br#"{"type":"carrier-pigeon","pattern":"a/*"}"#),
            "INVALID_SUBSCRIPTION"
        );
        assert!(parse_config(
            br#"{"type":"pull-wake","streams":["x"],"wake_stream":"/w/pool","lease_ttl_ms":1000}"#,
            false
        )
        .is_ok());
    }
}
