//! Subscriptions (PROTOCOL §6–7) against the engine in virtual time: what the
//! official suite does not check — configuration conflicts, `**` globs,
//! required fields, backfill at the tail, lease expiry re-wakes, webhook
//! retries with `status: failed` (across a restart), signatures verified
//! from the served JWKS, callbacks after delete, SSRF refusals, pull-wake.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ds_core::{
    Config, Engine, MemStore, Method, Outcome, Request, Response, UnixMillis, WebhookDelivery,
};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{json, Value};

const T0: UnixMillis = UnixMillis(1_800_000_000_000);

struct Host {
    engine: Engine<MemStore>,
    store: MemStore,
    now: UnixMillis,
}

impl Host {
    fn new() -> Host {
        let store = MemStore::new();
        let config = Config {
            allow_local_webhooks: true,
            ..Config::default()
        };
        let mut engine = Engine::open(store.clone(), config, T0, 9).unwrap();
        engine.set_entropy([42; 32]);
        engine.commit_pending();
        Host {
            engine,
            store,
            now: T0,
        }
    }

    fn restart(&mut self) {
        let config = Config {
            allow_local_webhooks: true,
            ..Config::default()
        };
        self.engine = Engine::open(self.store.clone(), config, self.now, 10).unwrap();
        self.engine.set_entropy([7; 32]); // ignored: the stored secret wins
        self.engine.commit_pending();
    }

    fn send(&mut self, req: Request) -> Response {
        let res = match self
            .engine
            .handle_and_commit(req.header("host", "ds.test"), self.now)
        {
            Outcome::Respond(r) => r,
            other => panic!("unexpected {other:?}"),
        };
        self.engine.commit_pending();
        res
    }

    fn json(&mut self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let req = Request::new(method, format!("/v1/stream/{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        let res = self.send(req);
        let v = serde_json::from_slice(&res.body_bytes()).unwrap_or(Value::Null);
        (res.status, v)
    }

    fn bearer(&mut self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let req = Request::new(Method::Post, format!("/v1/stream/{path}"))
            .header("content-type", "application/json")
            .header("authorization", &format!("Bearer {token}"))
            .body(body.to_string());
        let res = self.send(req);
        (
            res.status,
            serde_json::from_slice(&res.body_bytes()).unwrap_or(Value::Null),
        )
    }

    fn append(&mut self, path: &str, text: &str) -> u16 {
        let req = Request::new(Method::Post, format!("/v1/stream/{path}"))
            .header("content-type", "text/plain")
            .body(text);
        self.send(req).status
    }

    fn create(&mut self, path: &str, text: &str) -> u16 {
        let req = Request::new(Method::Put, format!("/v1/stream/{path}"))
            .header("content-type", "text/plain")
            .body(text);
        self.send(req).status
    }

    fn webhooks(&mut self) -> Vec<WebhookDelivery> {
        std::iter::from_fn(|| self.engine.poll_webhook()).collect()
    }

    /// Advances virtual time through every deadline up to `ms` from now.
    fn advance(&mut self, ms: u64) {
        let until = self.now.plus_millis(ms);
        while let Some(at) = self.engine.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.engine.handle_timeout(self.now);
            self.engine.commit_pending();
        }
        self.now = until;
    }

    fn get(&mut self, id: &str) -> Value {
        self.json(
            Method::Get,
            &format!("__ds/subscriptions/{id}"),
            Value::Null,
        )
        .1
    }
}

fn webhook_sub(pattern: &str) -> Value {
    json!({ "type": "webhook", "pattern": pattern, "webhook": { "url": "http://localhost:9/hook" }, "lease_ttl_ms": 1000 })
}

fn body(d: &WebhookDelivery) -> Value {
    serde_json::from_slice(&d.body).unwrap()
}

#[test]
fn reput_with_another_configuration_conflicts() {
    let mut h = Host::new();
    assert_eq!(
        h.json(Method::Put, "__ds/subscriptions/s", webhook_sub("events/*"))
            .0,
        201
    );
    assert_eq!(
        h.json(Method::Put, "__ds/subscriptions/s", webhook_sub("events/*"))
            .0,
        200
    );
    let (status, v) = h.json(Method::Put, "__ds/subscriptions/s", webhook_sub("other/*"));
    assert_eq!(status, 409);
    assert_eq!(v["error"]["code"], "SUBSCRIPTION_EXISTS");
    let mut with_description = webhook_sub("events/*");
    with_description["description"] = json!("changed");
    assert_eq!(
        h.json(Method::Put, "__ds/subscriptions/s", with_description)
            .0,
        409
    );
}

#[test]
fn pattern_or_streams_is_required_and_urls_are_checked() {
    let mut h = Host::new();
    let (status, v) = h.json(
        Method::Put,
        "__ds/subscriptions/x",
        json!({ "type": "webhook", "webhook": { "url": "https://a.example/h" } }),
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("INVALID_SUBSCRIPTION"))
    );
    for url in [
        "http://10.0.0.1/hook",
        "https://192.168.0.2/",
        "https://169.254.169.254/",
        "http://public.example/h",
        "https://[::1]/",
    ] {
        let (status, v) = h.json(
            Method::Put,
            "__ds/subscriptions/x",
            json!({ "type": "webhook", "pattern": "a/*", "webhook": { "url": url } }),
        );
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("WEBHOOK_URL_REJECTED")),
            "{url}"
        );
    }
    // Streams under the reserved prefix cannot be created.
    assert_eq!(h.create("__ds/mine", "x"), 404);
}

#[test]
fn double_star_globs_and_backfill_at_the_tail() {
    let mut h = Host::new();
    assert_eq!(h.create("logs/a/b/c", "old"), 201);
    assert_eq!(h.create("logs", "root"), 201);
    assert_eq!(h.create("other/x", "no"), 201);
    assert_eq!(
        h.json(Method::Put, "__ds/subscriptions/g", webhook_sub("logs/**"))
            .0,
        201
    );
    let v = h.get("g");
    let paths: Vec<&str> = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["logs", "logs/a/b/c"]);
    // Linked at their tail: nothing pending, no wake.
    assert!(h.webhooks().is_empty());
    assert_eq!(
        v["streams"][1]["acked_offset"],
        "0000000000000000_0000000000000003"
    );
    // A new matching stream is linked before the append that reveals it.
    assert_eq!(h.create("logs/new/deep", "fresh"), 201);
    let w = h.webhooks();
    assert_eq!(w.len(), 1);
    let b = body(&w[0]);
    let s = b["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "logs/new/deep")
        .unwrap();
    assert_eq!(s["acked_offset"], "0000000000000000_0000000000000000");
    assert_eq!(s["has_pending"], true);
}

#[test]
fn webhook_signature_verifies_with_the_served_jwks() {
    let mut h = Host::new();
    let (_, created) = h.json(
        Method::Put,
        "__ds/subscriptions/sig",
        webhook_sub("events/*"),
    );
    assert_eq!(
        created["webhook"]["signing"]["jwks_url"],
        "http://ds.test/v1/stream/__ds/jwks.json"
    );
    let res = h.send(Request::new(Method::Get, "/v1/stream/__ds/jwks.json"));
    assert_eq!(res.header("content-type"), Some("application/jwk-set+json"));
    assert_eq!(res.header("cache-control"), Some("public, max-age=300"));
    let jwks: Value = serde_json::from_slice(&res.body_bytes()).unwrap();
    h.create("events/one", "hello");
    let d = h.webhooks().pop().expect("a webhook");
    let header = d
        .headers
        .iter()
        .find(|(n, _)| *n == "webhook-signature")
        .unwrap()
        .1
        .clone();
    let (t, rest) = header
        .strip_prefix("t=")
        .unwrap()
        .split_once(",kid=")
        .unwrap();
    let (kid, sig) = rest.split_once(",ed25519=").unwrap();
    assert_eq!(kid, created["webhook"]["signing"]["kid"].as_str().unwrap());
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap();
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&d.body);
    VerifyingKey::from_bytes(&x)
        .unwrap()
        .verify(&signed, &signature)
        .expect("signature verifies");
    // The private key never appears in what is served.
    assert!(!jwks.to_string().contains("\"d\""));
}

#[test]
fn callbacks_ack_fence_and_lease_expiry_rewakes() {
    let mut h = Host::new();
    h.json(
        Method::Put,
        "__ds/subscriptions/cb",
        webhook_sub("events/*"),
    );
    h.create("events/a", "1");
    let d = h.webhooks().pop().unwrap();
    h.engine
        .webhook_result(&d, Ok((200, b"{}".to_vec())), h.now);
    let b = body(&d);
    let token = b["callback_token"].as_str().unwrap().to_string();
    // A heartbeat extends the lease.
    h.advance(800);
    let beat = json!({ "wake_id": b["wake_id"], "generation": b["generation"], "acks": [] });
    assert_eq!(
        h.bearer("__ds/subscriptions/cb/callback", &token, beat.clone())
            .0,
        200
    );
    h.advance(800);
    assert!(h.webhooks().is_empty(), "the heartbeat kept the lease");
    // Without further callbacks the lease expires and the pending work re-wakes.
    h.advance(300);
    let again = h.webhooks().pop().expect("re-woken after lease expiry");
    let b2 = body(&again);
    assert_eq!(
        b2["generation"].as_u64(),
        Some(b["generation"].as_u64().unwrap() + 1)
    );
    // The old token is fenced now.
    let (status, v) = h.bearer("__ds/subscriptions/cb/callback", &token, beat);
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("FENCED")));
    // A forged token is refused outright.
    assert_eq!(
        h.bearer("__ds/subscriptions/cb/callback", "bogus.token", json!({}))
            .0,
        401
    );
}

#[test]
fn deleted_subscription_rejects_callbacks_and_advances_nothing() {
    let mut h = Host::new();
    h.json(
        Method::Put,
        "__ds/subscriptions/gone",
        webhook_sub("events/*"),
    );
    h.create("events/z", "data");
    let d = h.webhooks().pop().unwrap();
    let b = body(&d);
    assert_eq!(
        h.json(Method::Delete, "__ds/subscriptions/gone", Value::Null)
            .0,
        204
    );
    let ack = json!({ "wake_id": b["wake_id"], "generation": b["generation"], "acks": [{ "stream": "events/z", "offset": b["streams"][0]["tail_offset"] }], "done": true });
    let (status, _) = h.bearer(
        "__ds/subscriptions/gone/callback",
        b["callback_token"].as_str().unwrap(),
        ack.clone(),
    );
    assert_eq!(status, 404);
    // Re-created under the same id: the old token is still worthless.
    h.json(
        Method::Put,
        "__ds/subscriptions/gone",
        webhook_sub("events/*"),
    );
    let (status, _) = h.bearer(
        "__ds/subscriptions/gone/callback",
        b["callback_token"].as_str().unwrap(),
        ack,
    );
    assert_eq!(status, 401);
    assert_eq!(
        h.get("gone")["streams"][0]["acked_offset"],
        "0000000000000000_0000000000000004"
    );
}

#[test]
fn webhook_failures_retry_with_backoff_and_survive_a_restart() {
    let mut h = Host::new();
    h.json(Method::Put, "__ds/subscriptions/r", webhook_sub("events/*"));
    h.create("events/r", "x");
    let d = h.webhooks().pop().unwrap();
    h.engine
        .webhook_result(&d, Err("connection refused".into()), h.now);
    h.engine.commit_pending();
    assert_eq!(h.get("r")["status"], "failed");
    // First retry 1 s ± 20 %: not before 800 ms.
    h.advance(790);
    assert!(h.webhooks().is_empty());
    h.advance(420);
    let d2 = h.webhooks().pop().expect("first retry");
    h.engine.webhook_result(&d2, Ok((503, Vec::new())), h.now);
    h.engine.commit_pending();
    // Second retry 2 s ± 20 %, and the schedule survives a restart.
    h.restart();
    assert_eq!(h.get("r")["status"], "failed");
    h.advance(1590);
    assert!(
        h.webhooks().is_empty(),
        "the persisted schedule holds after restart"
    );
    h.advance(820);
    let d3 = h.webhooks().pop().expect("second retry after restart");
    h.engine
        .webhook_result(&d3, Ok((200, br#"{"done":true}"#.to_vec())), h.now);
    h.engine.commit_pending();
    let v = h.get("r");
    assert_eq!(v["status"], "active");
    assert_eq!(
        v["streams"][0]["acked_offset"],
        "0000000000000000_0000000000000001"
    );
}

#[test]
fn pull_wake_claim_ack_release() {
    let mut h = Host::new();
    h.json(Method::Put, "wake/pool", json!([]));
    let sub = json!({ "type": "pull-wake", "pattern": "jobs/*", "wake_stream": "wake/pool", "lease_ttl_ms": 1000 });
    assert_eq!(h.json(Method::Put, "__ds/subscriptions/p", sub).0, 201);
    h.create("jobs/1", "work");
    let events: Value = serde_json::from_slice(
        &h.send(Request::new(Method::Get, "/v1/stream/wake/pool"))
            .body_bytes(),
    )
    .unwrap();
    assert_eq!(events[0]["type"], "wake");
    assert_eq!(events[0]["stream"], "jobs/1");
    let (status, claim) = h.json(
        Method::Post,
        "__ds/subscriptions/p/claim",
        json!({ "worker": "w1" }),
    );
    assert_eq!(status, 200);
    let (status, busy) = h.json(
        Method::Post,
        "__ds/subscriptions/p/claim",
        json!({ "worker": "w2" }),
    );
    assert_eq!(
        (
            status,
            busy["error"]["code"].as_str(),
            busy["error"]["current_holder"].as_str()
        ),
        (409, Some("ALREADY_CLAIMED"), Some("w1"))
    );
    let token = claim["token"].as_str().unwrap().to_string();
    let tail = claim["streams"][0]["tail_offset"].clone();
    let ack = json!({ "wake_id": claim["wake_id"], "generation": claim["generation"], "acks": [{ "stream": "jobs/1", "offset": tail }], "done": true });
    let (status, v) = h.bearer("__ds/subscriptions/p/ack", &token, ack);
    assert_eq!(
        (status, v),
        (200, json!({ "ok": true, "next_wake": false }))
    );
    let (status, v) = h.json(
        Method::Post,
        "__ds/subscriptions/p/claim",
        json!({ "worker": "w1" }),
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("NO_PENDING_WORK"))
    );
    // New data: claim, release without acking, and the work is offered again.
    assert_eq!(h.append("jobs/1", " more"), 204);
    let (_, c2) = h.json(
        Method::Post,
        "__ds/subscriptions/p/claim",
        json!({ "worker": "w2" }),
    );
    let rel = json!({ "wake_id": c2["wake_id"], "generation": c2["generation"] });
    let token2 = c2["token"].as_str().unwrap().to_string();
    assert_eq!(
        h.bearer("__ds/subscriptions/p/release", &token2, rel.clone())
            .0,
        204
    );
    let events: Value = serde_json::from_slice(
        &h.send(Request::new(Method::Get, "/v1/stream/wake/pool"))
            .body_bytes(),
    )
    .unwrap();
    assert_eq!(
        events.as_array().unwrap().len(),
        3,
        "a wake event for the claim after new data, and one after release"
    );
    assert_eq!(
        h.bearer("__ds/subscriptions/p/release", &token2, rel).0,
        409
    );
    // An unclaimed wake expires with the lease and is issued again.
    h.advance(1100);
    let events: Value = serde_json::from_slice(
        &h.send(Request::new(Method::Get, "/v1/stream/wake/pool"))
            .body_bytes(),
    )
    .unwrap();
    assert_eq!(events.as_array().unwrap().len(), 4);
}

#[test]
fn explicit_links_beat_globs_and_removal_keeps_the_glob() {
    let mut h = Host::new();
    h.create("events/both", "x");
    let sub = json!({ "type": "webhook", "pattern": "events/*", "streams": ["events/both", "manual/a"], "webhook": { "url": "http://127.0.0.1:9/" } });
    assert_eq!(h.json(Method::Put, "__ds/subscriptions/e", sub).0, 201);
    let v = h.get("e");
    let link = |v: &Value, p: &str| {
        v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["path"] == p)
            .cloned()
    };
    assert_eq!(link(&v, "events/both").unwrap()["link_type"], "explicit");
    assert_eq!(
        h.json(
            Method::Post,
            "__ds/subscriptions/e/streams",
            json!({ "streams": ["manual/b", "manual/b"] })
        )
        .0,
        204
    );
    assert_eq!(
        h.json(
            Method::Post,
            "__ds/subscriptions/e/streams",
            json!({ "streams": ["manual/b"] })
        )
        .0,
        204
    );
    let req = Request::new(
        Method::Delete,
        "/v1/stream/__ds/subscriptions/e/streams/events%2Fboth",
    );
    assert_eq!(h.send(req).status, 204);
    let v = h.get("e");
    assert_eq!(link(&v, "events/both").unwrap()["link_type"], "glob");
    assert!(link(&v, "manual/b").is_some());
    let req = Request::new(
        Method::Delete,
        "/v1/stream/__ds/subscriptions/e/streams/manual%2Fb",
    );
    assert_eq!(h.send(req).status, 204);
    let req = Request::new(
        Method::Delete,
        "/v1/stream/__ds/subscriptions/e/streams/manual%2Fb",
    );
    assert_eq!(h.send(req).status, 204, "idempotent");
    assert!(link(&h.get("e"), "manual/b").is_none());
}

#[test]
fn subscriptions_survive_a_restart() {
    let mut h = Host::new();
    h.json(
        Method::Put,
        "__ds/subscriptions/keep",
        webhook_sub("events/*"),
    );
    let before = h.get("keep");
    let kid = before["webhook"]["signing"]["kid"].clone();
    h.restart();
    let after = h.get("keep");
    assert_eq!(
        after["webhook"]["signing"]["kid"], kid,
        "the signing key is persisted"
    );
    assert_eq!(after["created_at"], before["created_at"]);
    h.create("events/later", "x");
    assert_eq!(
        h.webhooks().len(),
        1,
        "links are still made after a restart"
    );
}
