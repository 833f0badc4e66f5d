//! The subscription state machine (PROTOCOL §6–7): the control API under
//! `{stream root}__ds/`, wakes with generation fencing and leases, webhook
//! deliveries as output data, pull-wake events written to wake streams.
//!
//! Everything here is driven by the engine's inputs: requests, committed
//! groups (`subs_after_publish`: appends wake subscriptions only once they
//! are durable), timeouts (lease expiry, webhook retries) and the host's
//! report of each webhook attempt ([`Engine::webhook_result`]). Subscription
//! records are persisted as reserved metadata keys in the same staged groups
//! as everything else.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{json, Value};

use crate::engine::{Engine, Outcome};
use crate::error::{EngineError, ProtocolError};
use crate::offset::Offset;
use crate::request::{percent_decode, Method, Request};
use crate::response::{names, Body, Response};
use crate::store::{Batch, Op, Store, StoreError};
use crate::subscription::crypto::Keys;
use crate::subscription::{
    glob, normalize_path, parse_config, parse_streams, Delivery, Link, SnapshotEntry, SubError,
    Subscription, Wake, SECRET_KEY, SUB_KEY_PREFIX, SUB_VERSION,
};
use crate::time::{format_rfc3339, UnixMillis};

/// A webhook request the host must send (PROTOCOL §7.1), then report with
/// [`Engine::webhook_result`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The subscription it belongs to.
    pub subscription: String,
    /// The wake it announces.
    pub wake_id: String,
    /// Its generation.
    pub generation: u64,
    /// Where to POST.
    pub url: String,
    /// Headers to send (`content-type`, `webhook-signature`).
    pub headers: Vec<(&'static str, String)>,
    /// The exact body bytes (the signature covers them).
    pub body: Vec<u8>,
}

/// Subscription state held by the engine.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    map: BTreeMap<String, Subscription>,
    /// Stream-root-relative path → ids of subscriptions linked to it.
    by_stream: BTreeMap<String, BTreeSet<String>>,
    keys: Option<Keys>,
    /// Lower bounds of lease and retry deadlines; re-checked when due.
    pub timers: BTreeSet<(UnixMillis, String)>,
    outbox: VecDeque<WebhookDelivery>,
    /// Wakes issued since the engine opened.
    wakes: u64,
    /// The latest `now` the engine was given (used where an input carries
    /// no time of its own, such as a commit finishing).
    pub now_hint: UnixMillis,
}

/// Webhook retry backoff: 1 s doubling to 60 s, ±20 % jitter (PROTOCOL §7.1).
fn backoff_ms(attempts: u32, jitter: u64) -> u64 {
    let base = 1_000u64
        .saturating_mul(1 << attempts.saturating_sub(1).min(6))
        .min(60_000);
    let spread = base / 5;
    base - spread + jitter % (2 * spread + 1)
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut res = Response::new(status);
    res.set(names::CONTENT_TYPE, "application/json");
    res.set(names::CACHE_CONTROL, "no-store");
    res.body = Body::Full(body.to_string().into_bytes());
    res
}

/// The error shape of the subscription API: `{"error":{"code":…}}`.
fn sub_error(status: u16, code: &str, message: &str, extra: Value) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if let (Some(e), Value::Object(more)) = (error.as_object_mut(), extra) {
        e.extend(more);
    }
    json_response(status, &json!({ "error": error }))
}

fn from_sub_error((status, code, message): SubError) -> Response {
    sub_error(status, code, &message, Value::Null)
}

fn fenced() -> Response {
    sub_error(
        409,
        "FENCED",
        "the wake_id or generation is not current",
        Value::Null,
    )
}

impl<S: Store> Engine<S> {
    /// Loads subscription records and the server secret (at open/reload).
    pub(crate) fn subs_load(
        &mut self,
        reserved: Vec<(String, Vec<u8>)>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let now_hint = self.subs.now_hint.max(now);
        let keys = self.subs.keys.take();
        self.subs = Subscriptions {
            now_hint,
            keys,
            ..Default::default()
        };
        for (key, blob) in reserved {
            if key == SECRET_KEY {
                let secret: [u8; 32] =
                    blob.as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            detail: "the server secret is not 32 bytes".into(),
                        })?;
                self.subs.keys = Some(Keys::from_secret(&secret));
            } else if let Some(id) = key.strip_prefix(SUB_KEY_PREFIX) {
                let sub: Subscription =
                    serde_json::from_slice(&blob).map_err(|e| StoreError::Corrupt {
                        detail: format!("subscription {id:?}: {e}"),
                    })?;
                self.index_sub(&sub);
                self.subs.map.insert(sub.id.clone(), sub);
            }
        }
        Ok(())
    }

    /// Supplies 32 bytes of entropy for the server secret (webhook signing
    /// key, token key). Used only when the store holds no secret yet; the new
    /// secret is staged like any write. Hosts call this once after opening.
    pub fn set_entropy(&mut self, entropy: [u8; 32]) {
        if self.subs.keys.is_some() {
            return;
        }
        self.subs.keys = Some(Keys::from_secret(&entropy));
        self.stage(
            Batch {
                ops: vec![Op::PutMeta {
                    path: SECRET_KEY.into(),
                    meta: entropy.to_vec(),
                }],
            },
            None,
        );
        self.seal_internal();
    }

    /// The keys, creating a secret from the engine's generator when the host
    /// supplied no entropy (fine for tests; hosts should call `set_entropy`).
    fn keys(&mut self) -> Keys {
        if self.subs.keys.is_none() {
            let mut secret = [0u8; 32];
            for chunk in secret.chunks_mut(8) {
                chunk.copy_from_slice(&self.jitter.next_u64().to_le_bytes());
            }
            self.set_entropy(secret);
        }
        self.subs.keys.clone().expect("created above")
    }

    /// Subscription wakes issued since the engine opened (for metrics).
    pub fn subscription_wakes(&self) -> u64 {
        self.subs.wakes
    }

    /// The next webhook the host must send, if any.
    pub fn poll_webhook(&mut self) -> Option<WebhookDelivery> {
        self.subs.outbox.pop_front()
    }

    fn index_sub(&mut self, sub: &Subscription) {
        for path in sub.links.keys() {
            self.subs
                .by_stream
                .entry(path.clone())
                .or_default()
                .insert(sub.id.clone());
        }
        self.arm_timers(sub);
    }

    fn arm_timers(&mut self, sub: &Subscription) {
        if let Some(w) = &sub.wake {
            self.subs
                .timers
                .insert((UnixMillis(w.lease_until), sub.id.clone()));
        }
        if let Some(at) = sub.retry_at {
            self.subs.timers.insert((UnixMillis(at), sub.id.clone()));
        }
    }

    fn unindex_link(&mut self, id: &str, path: &str) {
        if let Some(set) = self.subs.by_stream.get_mut(path) {
            set.remove(id);
            if set.is_empty() {
                self.subs.by_stream.remove(path);
            }
        }
    }

    /// Stages the record of subscription `id` (or its removal).
    fn persist_sub(&mut self, id: &str) {
        let op = match self.subs.map.get(id) {
            Some(sub) => Op::PutMeta {
                path: sub.key(),
                meta: serde_json::to_vec(sub).expect("subscription serializes"),
            },
            None => Op::DeleteMeta {
                path: format!("{SUB_KEY_PREFIX}{id}"),
            },
        };
        self.stage_op(op);
    }

    fn rel<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.strip_prefix(self.config.stream_root.as_str())
    }

    /// The committed tail of a stream-root-relative path (0 when absent).
    fn visible_tail(&self, rel: &str) -> Option<u64> {
        let full = format!("{}{rel}", self.config.stream_root);
        self.streams
            .get(&full)
            .filter(|s| s.visible.exists && !s.meta.soft_deleted)
            .map(|s| s.visible.tail)
    }

    fn has_pending(&self, sub: &Subscription) -> bool {
        sub.links
            .iter()
            .any(|(path, link)| self.visible_tail(path).unwrap_or(0) > link.acked)
    }

    /// PROTOCOL §7: pending work creates a wake unless one is in flight, a
    /// lease is held, or a webhook retry is scheduled. Returns true when a
    /// wake was issued.
    fn maybe_wake(&mut self, id: &str, now: UnixMillis) -> bool {
        let Some(sub) = self.subs.map.get(id) else {
            return false;
        };
        if sub.wake.is_some() || sub.retry_at.is_some() || !self.has_pending(sub) {
            return false;
        }
        let snapshot: Vec<SnapshotEntry> = sub
            .links
            .iter()
            .map(|(path, link)| SnapshotEntry {
                path: path.clone(),
                explicit: link.explicit,
                acked: link.acked,
                tail: self.visible_tail(path).unwrap_or(0).max(link.acked),
            })
            .collect();
        let wake_id = format!("w_{:016x}", self.jitter.next_u64());
        self.subs.wakes += 1;
        let sub = self.subs.map.get_mut(id).expect("checked above");
        sub.generation += 1;
        let wake = Wake {
            wake_id,
            generation: sub.generation,
            snapshot,
            holder: None,
            lease_until: now.plus_millis(sub.config.lease_ttl_ms).0,
        };
        sub.wake = Some(wake.clone());
        let sub = sub.clone();
        self.arm_timers(&sub);
        self.persist_sub(id);
        match &sub.config.delivery {
            Delivery::Webhook { url } => {
                let delivery = self.webhook_for(&sub, &wake, url, now);
                self.subs.outbox.push_back(delivery);
            }
            Delivery::PullWake { wake_stream } => {
                self.write_wake_event(&sub, &wake, wake_stream, now)
            }
        }
        true
    }

    fn snapshot_json(entries: &[SnapshotEntry]) -> Vec<Value> {
        entries
            .iter()
            .map(|e| {
                json!({
                    "path": e.path,
                    "link_type": if e.explicit { "explicit" } else { "glob" },
                    "acked_offset": Offset(e.acked).to_string(),
                    "tail_offset": Offset(e.tail).to_string(),
                    "has_pending": e.tail > e.acked,
                })
            })
            .collect()
    }

    fn token_for(&mut self, sub: &Subscription, wake: &Wake) -> String {
        let claims = format!(
            "{}\n{}\n{}\n{}",
            sub.id, sub.incarnation, wake.generation, wake.wake_id
        );
        self.keys().token(&claims)
    }

    fn control_url(&self, sub: &Subscription, tail: &str) -> String {
        format!("{}{}__ds/{tail}", sub.origin, self.config.stream_root)
    }

    fn webhook_for(
        &mut self,
        sub: &Subscription,
        wake: &Wake,
        url: &str,
        now: UnixMillis,
    ) -> WebhookDelivery {
        let body = json!({
            "subscription_id": sub.id,
            "wake_id": wake.wake_id,
            "generation": wake.generation,
            "streams": Self::snapshot_json(&wake.snapshot),
            "callback_url": self.control_url(sub, &format!("subscriptions/{}/callback", sub.id)),
            "callback_token": self.token_for(sub, wake),
        })
        .to_string()
        .into_bytes();
        let signature = self.keys().sign_webhook(now.0 / 1000, &body);
        WebhookDelivery {
            subscription: sub.id.clone(),
            wake_id: wake.wake_id.clone(),
            generation: wake.generation,
            url: url.to_string(),
            headers: vec![
                ("content-type", "application/json".into()),
                ("webhook-signature", signature),
            ],
            body,
        }
    }

    /// PROTOCOL §7.2: one wake event per stream with pending work, appended
    /// to the application's wake stream (skipped if it does not exist).
    fn write_wake_event(
        &mut self,
        sub: &Subscription,
        wake: &Wake,
        wake_stream: &str,
        now: UnixMillis,
    ) {
        let path = format!("{}{wake_stream}", self.config.stream_root);
        let Some(state) = self
            .streams
            .get(&path)
            .filter(|s| !s.meta.soft_deleted && !s.meta.closed)
        else {
            return;
        };
        let content_type = state.meta.content_type.clone();
        let json_mode = crate::json::is_json(&content_type);
        let mut events = Vec::new();
        for e in wake.snapshot.iter().filter(|e| e.tail > e.acked) {
            events.push(json!({
                "type": "wake",
                "subscription_id": sub.id,
                "stream": e.path,
                "generation": wake.generation,
                "ts": now.0,
            }));
        }
        let body = if json_mode {
            Value::Array(events).to_string().into_bytes()
        } else {
            events
                .iter()
                .map(|e| format!("{e}\n"))
                .collect::<String>()
                .into_bytes()
        };
        let mut req = Request::new(Method::Post, path)
            .header("content-type", &content_type)
            .body(body);
        // The wake stream is an ordinary stream; a refusal (closed, type
        // mismatch) leaves the wake claimable and is not an error here.
        let _ = self.append(&mut req, now);
    }

    /// True when any subscription exists (only then does a commit list
    /// the streams it advanced).
    pub(crate) fn has_subscriptions(&self) -> bool {
        !self.subs.map.is_empty()
    }

    /// After a group commits: link newly created streams that match a
    /// pattern, then wake subscriptions whose streams advanced.
    pub(crate) fn subs_after_publish(&mut self, advanced: Vec<(String, bool)>) {
        if self.subs.map.is_empty() || advanced.is_empty() {
            return;
        }
        let now = self.subs.now_hint;
        for (path, created) in advanced {
            let Some(rel) = self.rel(&path).map(str::to_string) else {
                continue;
            };
            if created {
                let start = self
                    .streams
                    .get(&path)
                    .and_then(|s| s.meta.fork.as_ref())
                    .map_or(0, |f| f.point);
                self.link_created(&rel, start);
            }
            let ids: Vec<String> = self
                .subs
                .by_stream
                .get(&rel)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for id in ids {
                self.maybe_wake(&id, now);
            }
        }
        self.seal_internal();
    }

    /// PROTOCOL §6.2: a stream discovered by a matching append is linked
    /// before that append; links left by an earlier stream at the same path
    /// restart from the new stream's beginning.
    fn link_created(&mut self, rel: &str, start: u64) {
        let ids: Vec<String> = self.subs.map.keys().cloned().collect();
        for id in ids {
            let sub = self.subs.map.get_mut(&id).expect("listed");
            let matches = sub
                .config
                .pattern
                .as_deref()
                .is_some_and(|p| glob::matches(p, rel));
            let changed = match sub.links.get_mut(rel) {
                Some(link) => {
                    link.glob |= matches;
                    link.acked = start;
                    true
                }
                None if matches => {
                    sub.links.insert(
                        rel.to_string(),
                        Link {
                            explicit: false,
                            glob: true,
                            acked: start,
                        },
                    );
                    true
                }
                None => false,
            };
            if changed {
                self.subs
                    .by_stream
                    .entry(rel.to_string())
                    .or_default()
                    .insert(id.clone());
                self.persist_sub(&id);
            }
        }
    }

    /// Lease expiry and webhook retries.
    pub(crate) fn subs_timeout(&mut self, now: UnixMillis) {
        while let Some((at, id)) = self.subs.timers.first().cloned() {
            if at > now {
                break;
            }
            self.subs.timers.pop_first();
            let Some(sub) = self.subs.map.get_mut(&id) else {
                continue;
            };
            let mut changed = false;
            if sub.wake.as_ref().is_some_and(|w| w.lease_until <= now.0) {
                // PROTOCOL §7.3: clear the holder and token; re-wake if pending.
                sub.wake = None;
                changed = true;
            }
            if sub.retry_at.is_some_and(|t| t <= now.0) {
                sub.retry_at = None;
                changed = true;
            }
            if changed {
                self.persist_sub(&id);
                self.maybe_wake(&id, now);
            } else if let Some(sub) = self.subs.map.get(&id).cloned() {
                self.arm_timers(&sub);
            }
        }
        self.seal_internal();
    }

    /// Reports how a webhook attempt went: `Ok((status, body))` when the
    /// receiver answered, `Err(reason)` when it could not be reached.
    pub fn webhook_result(
        &mut self,
        delivery: &WebhookDelivery,
        result: Result<(u16, Vec<u8>), String>,
        now: UnixMillis,
    ) {
        self.subs.now_hint = self.subs.now_hint.max(now);
        let id = delivery.subscription.as_str();
        let current = self
            .subs
            .map
            .get(id)
            .and_then(|s| s.wake.as_ref())
            .is_some_and(|w| w.wake_id == delivery.wake_id && w.generation == delivery.generation);
        if !current {
            return; // superseded, or the subscription was deleted
        }
        let jitter = self.jitter.next_u64();
        let sub = self.subs.map.get_mut(id).expect("checked above");
        match result {
            Ok((status, body)) if (200..300).contains(&status) => {
                sub.attempts = 0;
                let done = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("done")?.as_bool())
                    == Some(true);
                if done {
                    // PROTOCOL §7.1: ack the snapshot's tails and release.
                    let wake = sub.wake.take().expect("current");
                    for e in wake.snapshot {
                        if let Some(link) = sub.links.get_mut(&e.path) {
                            link.acked = link.acked.max(e.tail);
                        }
                    }
                    self.persist_sub(id);
                    self.maybe_wake(id, now);
                } else {
                    self.persist_sub(id);
                }
            }
            _ => {
                // PROTOCOL §7.1: retry with backoff; `failed` until it works.
                sub.attempts = sub.attempts.saturating_add(1);
                sub.wake = None;
                sub.retry_at = Some(now.plus_millis(backoff_ms(sub.attempts, jitter)).0);
                let sub = sub.clone();
                self.arm_timers(&sub);
                self.persist_sub(id);
            }
        }
        self.seal_internal();
    }

    /// Routes `{root}__ds/…` (PROTOCOL §6).
    pub(crate) fn control(
        &mut self,
        req: &Request,
        now: UnixMillis,
    ) -> Result<Outcome, EngineError> {
        let rest = req.path[self.config.stream_root.len()..]
            .trim_start_matches("__ds")
            .trim_start_matches('/');
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        let res = match (&req.method, parts.as_slice()) {
            (Method::Options, _) => Response::new(204),
            (Method::Get, ["jwks.json"]) => {
                let mut res = json_response(200, &self.keys().jwks());
                res.headers
                    .retain(|(n, _)| *n != names::CONTENT_TYPE && *n != names::CACHE_CONTROL);
                res.set(names::CONTENT_TYPE, "application/jwk-set+json");
                res.set(names::CACHE_CONTROL, "public, max-age=300");
                res
            }
            (m, ["subscriptions", id]) => {
                let id = percent_decode(id);
                match m {
                    Method::Put => self.sub_put(req, &id, now),
                    Method::Get => self.sub_get(req, &id),
                    Method::Delete => self.sub_delete(&id),
                    _ => return Err(ProtocolError::MethodNotAllowed.into()),
                }
            }
            (Method::Post, ["subscriptions", id, "streams"]) => {
                self.sub_add_streams(&percent_decode(id), &req.body)
            }
            (Method::Delete, ["subscriptions", id, "streams", path]) => {
                self.sub_remove_stream(&percent_decode(id), &percent_decode(path))
            }
            (
                Method::Post,
                ["subscriptions", id, action @ ("callback" | "ack" | "release" | "claim")],
            ) => {
                let id = percent_decode(id);
                match *action {
                    "claim" => self.sub_claim(&id, &req.body, now),
                    _ => self.sub_settle(req, &id, action, now),
                }
            }
            _ => sub_error(404, "NOT_FOUND", "no such control resource", Value::Null),
        };
        Ok(Outcome::Respond(res))
    }

    fn sub_json(&self, sub: &Subscription) -> Value {
        let streams: Vec<Value> = sub
            .links
            .iter()
            .map(|(path, link)| {
                json!({
                    "path": path,
                    "link_type": if link.explicit { "explicit" } else { "glob" },
                    "acked_offset": Offset(link.acked).to_string(),
                })
            })
            .collect();
        let (webhook, wake_stream) = match &sub.config.delivery {
            Delivery::Webhook { url } => {
                let kid = self.subs.keys.as_ref().map(|k| k.kid().to_string());
                let signing = json!({
                    "alg": "ed25519",
                    "kid": kid,
                    "jwks_url": self.control_url(sub, "jwks.json"),
                });
                (json!({ "url": url, "signing": signing }), Value::Null)
            }
            Delivery::PullWake { wake_stream } => (Value::Null, json!(wake_stream)),
        };
        json!({
            "id": sub.id,
            "subscription_id": sub.id,
            "type": match sub.config.delivery { Delivery::Webhook { .. } => "webhook", Delivery::PullWake { .. } => "pull-wake" },
            "pattern": sub.config.pattern,
            "streams": streams,
            "webhook": webhook,
            "wake_stream": wake_stream,
            "lease_ttl_ms": sub.config.lease_ttl_ms,
            "created_at": format_ms(sub.created_at),
            "status": sub.status(),
            "description": sub.config.description,
            "generation": sub.generation,
        })
    }

    fn sub_put(&mut self, req: &Request, id: &str, now: UnixMillis) -> Response {
        if id.is_empty() {
            return sub_error(
                400,
                "INVALID_SUBSCRIPTION",
                "a subscription id is required",
                Value::Null,
            );
        }
        let config = match parse_config(&req.body, self.config.allow_local_webhooks) {
            Ok(c) => c,
            Err(e) => return from_sub_error(e),
        };
        let hash = config.hash();
        if let Some(existing) = self.subs.map.get(id) {
            return if existing.config_hash == hash {
                json_response(200, &self.sub_json(existing))
            } else {
                sub_error(
                    409,
                    "SUBSCRIPTION_EXISTS",
                    "a subscription with this id has another configuration",
                    Value::Null,
                )
            };
        }
        self.keys();
        let mut links = BTreeMap::new();
        if let Some(pattern) = &config.pattern {
            // Eager backfill: matching streams are linked at their tail.
            let root = self.config.stream_root.clone();
            for (path, state) in &self.streams {
                let Some(rel) = path.strip_prefix(root.as_str()) else {
                    continue;
                };
                if state.visible.exists && !state.meta.soft_deleted && glob::matches(pattern, rel) {
                    links.insert(
                        rel.to_string(),
                        Link {
                            explicit: false,
                            glob: true,
                            acked: state.visible.tail,
                        },
                    );
                }
            }
        }
        for rel in &config.streams {
            let acked = self.visible_tail(rel).unwrap_or(0);
            links
                .entry(rel.clone())
                .or_insert(Link {
                    explicit: true,
                    glob: false,
                    acked,
                })
                .explicit = true;
        }
        let sub = Subscription {
            v: SUB_VERSION,
            id: id.to_string(),
            incarnation: self.jitter.next_u64(),
            config,
            config_hash: hash,
            origin: origin_of(req),
            created_at: now.0,
            links,
            generation: 0,
            wake: None,
            attempts: 0,
            retry_at: None,
        };
        self.index_sub(&sub);
        let body = self.sub_json(&sub);
        self.subs.map.insert(id.to_string(), sub);
        self.persist_sub(id);
        json_response(201, &body)
    }

    fn sub_get(&mut self, _req: &Request, id: &str) -> Response {
        match self.subs.map.get(id) {
            Some(sub) => json_response(200, &self.sub_json(sub)),
            None => not_found(id),
        }
    }

    fn sub_delete(&mut self, id: &str) -> Response {
        let Some(sub) = self.subs.map.remove(id) else {
            return not_found(id);
        };
        for path in sub.links.keys() {
            self.unindex_link(id, path);
        }
        self.subs.outbox.retain(|d| d.subscription != id);
        self.persist_sub(id);
        Response::new(204)
    }

    fn sub_add_streams(&mut self, id: &str, body: &[u8]) -> Response {
        if !self.subs.map.contains_key(id) {
            return not_found(id);
        }
        let parsed =
            serde_json::from_slice::<Value>(body).map_err(|_| "the body is not JSON".to_string());
        let streams = match parsed.and_then(|v| parse_streams(v.get("streams"))) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                return sub_error(
                    400,
                    "INVALID_REQUEST",
                    "streams must list at least one stream",
                    Value::Null,
                )
            }
            Err(m) => return sub_error(400, "INVALID_REQUEST", &m, Value::Null),
        };
        for rel in streams {
            let acked = self.visible_tail(&rel).unwrap_or(0);
            let sub = self.subs.map.get_mut(id).expect("checked");
            sub.links
                .entry(rel.clone())
                .or_insert(Link {
                    explicit: true,
                    glob: false,
                    acked,
                })
                .explicit = true;
            self.subs
                .by_stream
                .entry(rel)
                .or_default()
                .insert(id.to_string());
        }
        self.persist_sub(id);
        Response::new(204)
    }

    fn sub_remove_stream(&mut self, id: &str, path: &str) -> Response {
        let Some(sub) = self.subs.map.get_mut(id) else {
            return not_found(id);
        };
        let rel = match normalize_path(path) {
            Ok(r) => r,
            Err(m) => return sub_error(400, "INVALID_REQUEST", &m, Value::Null),
        };
        let mut unlinked = false;
        if let Some(link) = sub.links.get_mut(&rel) {
            link.explicit = false;
            // Removing the explicit link keeps a glob link that still matches.
            let still_matches = sub
                .config
                .pattern
                .as_deref()
                .is_some_and(|p| glob::matches(p, &rel));
            link.glob = still_matches;
            if !still_matches {
                sub.links.remove(&rel);
                unlinked = true;
            }
        }
        if unlinked {
            self.unindex_link(id, &rel);
        }
        self.persist_sub(id);
        Response::new(204)
    }

    /// PROTOCOL §7.2 claim.
    fn sub_claim(&mut self, id: &str, body: &[u8], now: UnixMillis) -> Response {
        let Some(sub) = self.subs.map.get(id) else {
            return not_found(id);
        };
        if !matches!(sub.config.delivery, Delivery::PullWake { .. }) {
            return sub_error(
                409,
                "NOT_PULL_WAKE",
                "only pull-wake subscriptions are claimed",
                Value::Null,
            );
        }
        let worker = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("worker").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| "anonymous".to_string());
        if let Some(w) = &sub.wake {
            if let Some(holder) = &w.holder {
                if w.lease_until > now.0 {
                    let extra = json!({ "current_holder": holder, "generation": w.generation });
                    return sub_error(
                        409,
                        "ALREADY_CLAIMED",
                        "another worker holds the lease",
                        extra,
                    );
                }
            }
        }
        // An expired or missing wake: issue one now if work is pending.
        if sub.wake.as_ref().is_some_and(|w| w.lease_until <= now.0) {
            self.subs.map.get_mut(id).expect("checked").wake = None;
        }
        if self.subs.map[id].wake.is_none() && !self.maybe_wake(id, now) {
            return sub_error(
                409,
                "NO_PENDING_WORK",
                "no linked stream has unacknowledged data",
                Value::Null,
            );
        }
        let sub = self.subs.map.get_mut(id).expect("checked");
        let lease = sub.config.lease_ttl_ms;
        if let Some(wake) = sub.wake.as_mut() {
            wake.holder = Some(worker);
            wake.lease_until = now.plus_millis(lease).0;
        }
        let sub = sub.clone();
        let wake = sub.wake.clone().expect("issued above");
        self.arm_timers(&sub);
        self.persist_sub(id);
        let token = self.token_for(&sub, &wake);
        json_response(
            200,
            &json!({
                "wake_id": wake.wake_id,
                "generation": wake.generation,
                "token": token,
                "streams": Self::snapshot_json(&wake.snapshot),
                "lease_ttl_ms": lease,
            }),
        )
    }

    /// PROTOCOL §7.1 callback, §7.2 ack and release, fenced per §7.3.
    fn sub_settle(&mut self, req: &Request, id: &str, action: &str, now: UnixMillis) -> Response {
        let Some(sub) = self.subs.map.get(id) else {
            return not_found(id);
        };
        let token = req
            .header_value("authorization")
            .and_then(|a| a.strip_prefix("Bearer ").or(a.strip_prefix("bearer ")));
        let claims = token.and_then(|t| self.subs.keys.as_ref()?.verify_token(t.trim()));
        let Some(claims) = claims else {
            return sub_error(
                401,
                "UNAUTHORIZED",
                "a valid bearer token for this subscription is required",
                Value::Null,
            );
        };
        let fields: Vec<&str> = claims.split('\n').collect();
        if fields.len() != 4 || fields[0] != sub.id || fields[1] != sub.incarnation.to_string() {
            return sub_error(
                401,
                "UNAUTHORIZED",
                "the token is for another subscription",
                Value::Null,
            );
        }
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => {
                return sub_error(400, "INVALID_REQUEST", "the body is not JSON", Value::Null)
            }
        };
        let Some(wake) = sub.wake.clone() else {
            return fenced();
        };
        let req_gen = body.get("generation").and_then(Value::as_u64);
        let req_wake = body.get("wake_id").and_then(Value::as_str);
        if fields[2] != wake.generation.to_string()
            || fields[3] != wake.wake_id
            || req_gen != Some(wake.generation)
            || req_wake != Some(wake.wake_id.as_str())
        {
            return fenced();
        }
        if action == "release" {
            self.subs.map.get_mut(id).expect("checked").wake = None;
            self.persist_sub(id);
            self.maybe_wake(id, now);
            return Response::new(204);
        }
        let acks = body
            .get("acks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut parsed = Vec::with_capacity(acks.len());
        for ack in &acks {
            let stream = ack
                .get("stream")
                .and_then(Value::as_str)
                .map(normalize_path);
            let offset = ack
                .get("offset")
                .and_then(Value::as_str)
                .and_then(Offset::parse);
            match (stream, offset) {
                (Some(Ok(s)), Some(o)) => parsed.push((s, o.0)),
                _ => {
                    return sub_error(
                        400,
                        "INVALID_REQUEST",
                        "each ack needs a stream path and an offset",
                        Value::Null,
                    )
                }
            }
        }
        let tails: Vec<u64> = parsed
            .iter()
            .map(|(s, _)| self.visible_tail(s).unwrap_or(0))
            .collect();
        let done = body.get("done").and_then(Value::as_bool) == Some(true);
        let sub = self.subs.map.get_mut(id).expect("checked");
        for ((stream, offset), tail) in parsed.into_iter().zip(tails) {
            if let Some(link) = sub.links.get_mut(&stream) {
                link.acked = link.acked.max(offset.min(tail));
            }
        }
        let next_wake = if done {
            sub.wake = None;
            self.persist_sub(id);
            self.maybe_wake(id, now)
        } else {
            // A heartbeat: extend the lease.
            let lease = sub.config.lease_ttl_ms;
            if let Some(w) = sub.wake.as_mut() {
                w.lease_until = now.plus_millis(lease).0;
            }
            let sub = sub.clone();
            self.arm_timers(&sub);
            self.persist_sub(id);
            false
        };
        json_response(200, &json!({ "ok": true, "next_wake": next_wake }))
    }
}

fn not_found(id: &str) -> Response {
    sub_error(
        404,
        "SUBSCRIPTION_NOT_FOUND",
        &format!("no subscription {id:?}"),
        Value::Null,
    )
}

fn format_ms(ms: u64) -> String {
    let text = format_rfc3339(UnixMillis(ms));
    // Always show milliseconds, as the spec's examples do.
    if text.contains('.') {
        text
    } else {
        text.replace('Z', ".000Z")
    }
}

/// `scheme://host` of a request, for absolute control URLs.
fn origin_of(req: &Request) -> String {
    let scheme = req.header_value("x-forwarded-proto").unwrap_or("http");
    match req.header_value("host") {
        Some(host) => format!("{scheme}://{host}"),
        None => String::new(),
    }
}
