//! [`LocalHost`] as the JavaScript class `Core` (wasm-bindgen).
//!
//! `Core` is internal to the npm package: `js/durable-streams.js` wraps it
//! in the public `DurableStreams` class. Values cross the boundary as plain
//! JS objects:
//!
//! - a reply: `{ status, headers: [name, value, …], body?: Uint8Array,
//!   sse?: handle }`;
//! - a parked long-poll: `{ wait: handle, path, deadline }`;
//! - an SSE step: `{ bytes: Uint8Array, wakeAt: number | null }`;
//! - a webhook to send: `{ handle, url, headers: [name, value, …],
//!   body: Uint8Array }`.
//!
//! Times are milliseconds since the Unix epoch as JS numbers.

use ds_core::{Config, Method, Request, SseStep, UnixMillis};
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::local_host::{Answer, LocalHost, ReplyBody};

/// The engine and its parked readers, driven by the JS wrapper.
#[wasm_bindgen]
pub struct Core {
    host: LocalHost,
}

#[wasm_bindgen]
impl Core {
    /// Opens an empty in-memory engine. Omitted options take the core's
    /// defaults; `seed` feeds cursor jitter and subscription keys.
    #[wasm_bindgen(constructor)]
    pub fn new(
        long_poll_timeout_ms: Option<f64>,
        max_chunk_bytes: Option<f64>,
        max_body_bytes: Option<f64>,
        allow_local_webhooks: Option<bool>,
        now: f64,
        seed: f64,
    ) -> Result<Core, JsError> {
        let mut config = Config::default();
        if let Some(allow) = allow_local_webhooks {
            config.allow_local_webhooks = allow;
        }
        if let Some(ms) = count("longPollTimeoutMs", long_poll_timeout_ms)? {
            config.long_poll_timeout_ms = ms;
        }
        if let Some(n) = count("maxChunkBytes", max_chunk_bytes)? {
            config.max_chunk_bytes = usize::try_from(n).unwrap_or(usize::MAX).max(1);
        }
        if let Some(n) = count("maxBodyBytes", max_body_bytes)? {
            config.max_body_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        let host = LocalHost::open(config, millis(now), seed as u64)
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Core { host })
    }

    /// Exports the streams under `prefix` as archive bytes.
    #[wasm_bindgen(js_name = exportArchive)]
    pub fn export_archive(&mut self, prefix: &str, now: f64) -> Result<Uint8Array, JsError> {
        let bytes = self
            .host
            .export_archive(prefix, millis(now))
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Uint8Array::from(bytes.as_slice()))
    }

    /// Imports archive bytes; `mode` is `skip`, `replace` or `fail`.
    /// Returns `{ imported: [...], replaced: [...], skipped: [[path, why], ...] }`.
    #[wasm_bindgen(js_name = importArchive)]
    pub fn import_archive(
        &mut self,
        archive: &[u8],
        mode: &str,
        now: f64,
    ) -> Result<JsValue, JsError> {
        let mode = ds_core::ConflictMode::parse(mode)
            .ok_or_else(|| JsError::new("conflict mode must be skip, replace or fail"))?;
        let summary = self
            .host
            .import_archive(archive, mode, millis(now))
            .map_err(|e| JsError::new(&e.to_string()))?;
        let out = Object::new();
        let list = |items: &[String]| {
            items
                .iter()
                .map(|s| JsValue::from_str(s))
                .collect::<js_sys::Array>()
        };
        let _ = Reflect::set(&out, &"imported".into(), &list(&summary.imported));
        let _ = Reflect::set(&out, &"replaced".into(), &list(&summary.replaced));
        let skipped: js_sys::Array = summary
            .skipped
            .iter()
            .map(|(p, why)| js_sys::Array::of2(&JsValue::from_str(p), &JsValue::from_str(why)))
            .collect();
        let _ = Reflect::set(&out, &"skipped".into(), &skipped);
        Ok(out.into())
    }

    /// The largest request body accepted; read at most one byte more.
    #[wasm_bindgen(getter, js_name = maxBodyBytes)]
    pub fn max_body_bytes(&self) -> f64 {
        self.host.config().max_body_bytes as f64
    }

    /// Number of parked long-polls plus live SSE bodies.
    #[wasm_bindgen(getter)]
    pub fn parked(&self) -> u32 {
        u32::try_from(self.host.parked()).unwrap_or(u32::MAX)
    }

    /// Handles one request. `headers` alternates names and values.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        headers: Vec<String>,
        body: Vec<u8>,
        now: f64,
    ) -> JsValue {
        let mut req = Request::new(Method::from_name(method), path).query(query);
        let mut fields = headers.into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            req.headers.push((name, value));
        }
        req.body = body;
        let answer = self.host.handle(req, millis(now));
        answer_to_js(answer)
    }

    /// Retries a parked long-poll; `undefined` when it was cancelled.
    pub fn resume(&mut self, handle: u32, now: f64) -> JsValue {
        self.host
            .resume(handle, millis(now))
            .map_or(JsValue::UNDEFINED, answer_to_js)
    }

    /// Advances an SSE body; `undefined` when it was cancelled or finished.
    #[wasm_bindgen(js_name = ssePoll)]
    pub fn sse_poll(&mut self, handle: u32, now: f64) -> JsValue {
        self.host
            .sse_poll(handle, millis(now))
            .map_or(JsValue::UNDEFINED, step_to_js)
    }

    /// Releases a parked long-poll or SSE body whose reader went away.
    pub fn cancel(&mut self, handle: u32) {
        self.host.cancel(handle);
    }

    /// Paths that advanced since the last call: wake their readers.
    #[wasm_bindgen(js_name = takeAdvanced)]
    pub fn take_advanced(&mut self) -> Vec<String> {
        self.host.take_advanced()
    }

    /// Webhooks to send since the last call; report each with
    /// `webhookResult`.
    #[wasm_bindgen(js_name = takeWebhooks)]
    pub fn take_webhooks(&mut self) -> js_sys::Array {
        let out = js_sys::Array::new();
        for (handle, delivery) in self.host.take_webhooks() {
            let hook = Object::new();
            set(&hook, "handle", &JsValue::from(handle));
            set(&hook, "url", &JsValue::from_str(&delivery.url));
            set(&hook, "headers", &pairs(&delivery.headers));
            set(&hook, "body", &Uint8Array::from(delivery.body.as_slice()));
            out.push(&hook);
        }
        out
    }

    /// Reports a webhook attempt: the receiver's `status` and `body`, or
    /// the `error` that kept it from answering.
    #[wasm_bindgen(js_name = webhookResult)]
    pub fn webhook_result(
        &mut self,
        handle: u32,
        status: u16,
        body: Vec<u8>,
        error: Option<String>,
        now: f64,
    ) {
        let result = match error {
            Some(reason) => Err(reason),
            None => Ok((status, body)),
        };
        self.host.webhook_result(handle, result, millis(now));
    }

    /// When `onTimeout` next has work, if ever.
    #[wasm_bindgen(js_name = nextTimeout)]
    pub fn next_timeout(&self) -> Option<f64> {
        self.host.next_timeout().map(|t| t.0 as f64)
    }

    /// Runs the deadlines that have passed (expiry, leases, retries).
    #[wasm_bindgen(js_name = onTimeout)]
    pub fn on_timeout(&mut self, now: f64) {
        self.host.on_timeout(millis(now));
    }
}

/// A JS time in milliseconds as [`UnixMillis`] (negative and NaN become 0).
fn millis(now: f64) -> UnixMillis {
    UnixMillis(now.max(0.0) as u64)
}

/// An optional non-negative whole number option.
fn count(name: &str, value: Option<f64>) -> Result<Option<u64>, JsError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 => Ok(Some(v as u64)),
        Some(v) => Err(JsError::new(&format!(
            "{name} must be a non-negative whole number, got {v}"
        ))),
    }
}

fn set(target: &Object, key: &str, value: &JsValue) {
    // Setting a data property on a plain object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// Header fields as a flat JS array: name, value, name, value, …
fn pairs(headers: &[(&'static str, String)]) -> js_sys::Array {
    let out = js_sys::Array::new();
    for (name, value) in headers {
        out.push(&JsValue::from_str(name));
        out.push(&JsValue::from_str(value));
    }
    out
}

fn answer_to_js(answer: Answer) -> JsValue {
    let out = Object::new();
    match answer {
        Answer::Reply(reply) => {
            set(&out, "status", &JsValue::from(reply.status));
            set(&out, "headers", &pairs(&reply.headers));
            match reply.body {
                ReplyBody::Empty => {}
                ReplyBody::Bytes(bytes) => {
                    set(&out, "body", &Uint8Array::from(bytes.as_slice()));
                }
                ReplyBody::Sse(handle) => set(&out, "sse", &JsValue::from(handle)),
            }
        }
        Answer::Wait {
            handle,
            path,
            deadline,
        } => {
            set(&out, "wait", &JsValue::from(handle));
            set(&out, "path", &JsValue::from_str(&path));
            set(&out, "deadline", &JsValue::from(deadline.0 as f64));
        }
    }
    out.into()
}

fn step_to_js(step: SseStep) -> JsValue {
    let out = Object::new();
    set(&out, "bytes", &Uint8Array::from(step.bytes.as_slice()));
    let wake_at = step
        .wake_at
        .map_or(JsValue::NULL, |t| JsValue::from(t.0 as f64));
    set(&out, "wakeAt", &wake_at);
    out.into()
}
