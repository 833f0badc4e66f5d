//! The scenario language: request builders, response assertions and a few
//! multi-request helpers, in the spirit of h2's `h2-support`.
//!
//! ```ignore
//! put("s").ct("text/plain").body("hi");
//! t.request(get("s").offset(&tail).live_long_poll()).await.status_is(200);
//! ```

use std::fmt;

use ds_core::{Method, Request};

use crate::json::{self, Json};
use crate::sse::{self, SseBody};
use crate::target::{Reply, Target, STREAM_ROOT};

/// The URL path of the stream called `name`.
pub fn stream_path(name: &str) -> String {
    format!("{STREAM_ROOT}{name}")
}

/// `PUT` to the stream `name` (create, or fork with [`RequestExt::fork_of`]).
pub fn put(name: &str) -> Request {
    Request::new(Method::Put, stream_path(name))
}

/// `POST` to the stream `name` (append or close).
pub fn post(name: &str) -> Request {
    Request::new(Method::Post, stream_path(name))
}

/// `GET` of the stream `name` (catch-up, long-poll or SSE).
pub fn get(name: &str) -> Request {
    Request::new(Method::Get, stream_path(name))
}

/// `HEAD` of the stream `name`.
pub fn head(name: &str) -> Request {
    Request::new(Method::Head, stream_path(name))
}

/// `DELETE` of the stream `name`.
pub fn delete(name: &str) -> Request {
    Request::new(Method::Delete, stream_path(name))
}

/// `OPTIONS` (CORS preflight) on the stream `name`.
pub fn options(name: &str) -> Request {
    Request::new(Method::Options, stream_path(name))
}

/// A request with any method name on the stream `name`.
pub fn method(name_of_method: &str, name: &str) -> Request {
    Request::new(Method::from_name(name_of_method), stream_path(name))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Protocol-level builder methods on [`Request`].
pub trait RequestExt: Sized {
    /// Sets a header (any previous value of it is kept too).
    fn with_header(self, name: &str, value: &str) -> Self;
    /// `Content-Type`.
    fn ct(self, content_type: &str) -> Self;
    /// The body.
    fn with_body(self, body: impl AsRef<[u8]>) -> Self;
    /// `Stream-Closed: true`.
    fn closed(self) -> Self;
    /// `Stream-TTL: secs`.
    fn ttl(self, secs: u64) -> Self;
    /// `Stream-Expires-At`.
    fn expires_at(self, rfc3339: &str) -> Self;
    /// `Stream-Seq`.
    fn seq(self, seq: &str) -> Self;
    /// The three idempotent-producer headers.
    fn producer(self, id: &str, epoch: u64, seq: u64) -> Self;
    /// `Stream-Forked-From` naming the stream `source` by URL path.
    fn fork_of(self, source: &str) -> Self;
    /// `Stream-Fork-Offset`.
    fn fork_offset(self, offset: &str) -> Self;
    /// `Stream-Fork-Sub-Offset`.
    fn sub_offset(self, value: &str) -> Self;
    /// `If-None-Match`.
    fn if_none_match(self, etag: &str) -> Self;
    /// Appends `key=value` (value percent-encoded) to the query.
    fn param(self, key: &str, value: &str) -> Self;
    /// Appends raw, already encoded query text.
    fn raw_query(self, text: &str) -> Self;
    /// `offset=…`.
    fn offset(self, offset: &str) -> Self {
        self.param("offset", offset)
    }
    /// `live=long-poll`.
    fn long_poll(self) -> Self {
        self.param("live", "long-poll")
    }
    /// `live=sse`.
    fn sse(self) -> Self {
        self.param("live", "sse")
    }
    /// `cursor=…`.
    fn cursor(self, cursor: &str) -> Self {
        self.param("cursor", cursor)
    }
}

impl RequestExt for Request {
    fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    fn ct(self, content_type: &str) -> Self {
        self.with_header("Content-Type", content_type)
    }
    fn with_body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }
    fn closed(self) -> Self {
        self.with_header("Stream-Closed", "true")
    }
    fn ttl(self, secs: u64) -> Self {
        self.with_header("Stream-TTL", &secs.to_string())
    }
    fn expires_at(self, rfc3339: &str) -> Self {
        self.with_header("Stream-Expires-At", rfc3339)
    }
    fn seq(self, seq: &str) -> Self {
        self.with_header("Stream-Seq", seq)
    }
    fn producer(self, id: &str, epoch: u64, seq: u64) -> Self {
        self.with_header("Producer-Id", id)
            .with_header("Producer-Epoch", &epoch.to_string())
            .with_header("Producer-Seq", &seq.to_string())
    }
    fn fork_of(self, source: &str) -> Self {
        self.with_header("Stream-Forked-From", &stream_path(source))
    }
    fn fork_offset(self, offset: &str) -> Self {
        self.with_header("Stream-Fork-Offset", offset)
    }
    fn sub_offset(self, value: &str) -> Self {
        self.with_header("Stream-Fork-Sub-Offset", value)
    }
    fn if_none_match(self, etag: &str) -> Self {
        self.with_header("If-None-Match", etag)
    }
    fn param(self, key: &str, value: &str) -> Self {
        self.raw_query(&format!("{}={}", encode(key), encode(value)))
    }
    fn raw_query(mut self, text: &str) -> Self {
        if !self.query.is_empty() {
            self.query.push('&');
        }
        self.query.push_str(text);
        self
    }
}

/// `METHOD path?query`, for failure messages.
pub fn summarize(req: &Request) -> String {
    let method = match &req.method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other(m) => m.as_str(),
    };
    if req.query.is_empty() {
        format!("{method} {}", req.path)
    } else {
        format!("{method} {}?{}", req.path, req.query)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} -> {}", self.request, self.status)?;
        for (n, v) in &self.headers {
            writeln!(f, "  {n}: {v}")?;
        }
        let shown = &self.body[..self.body.len().min(600)];
        write!(
            f,
            "  body ({} bytes): {:?}",
            self.body.len(),
            String::from_utf8_lossy(shown)
        )
    }
}

/// Assertions and accessors on a [`Reply`]. Each `*_is`/`has_*`/`lacks_*`
/// method panics with the whole reply on mismatch and returns `self` for
/// chaining.
impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    #[track_caller]
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or_else(|_| panic!("body is not UTF-8: {self:?}"))
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Json {
        json::must_parse(&self.body)
    }

    /// The body as SSE events.
    #[track_caller]
    pub fn sse(&self) -> SseBody {
        sse::parse(&self.body)
    }

    /// Asserts the status code.
    #[track_caller]
    pub fn status_is(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        self
    }

    /// Asserts header `name` equals `value` exactly.
    #[track_caller]
    pub fn header_is(&self, name: &str, value: &str) -> &Self {
        assert_eq!(
            self.header(name),
            Some(value),
            "header {name} differs: {self:?}"
        );
        self
    }

    /// Asserts header `name` is present.
    #[track_caller]
    pub fn has_header(&self, name: &str) -> &Self {
        assert!(
            self.header(name).is_some(),
            "missing header {name}: {self:?}"
        );
        self
    }

    /// Asserts header `name` is absent.
    #[track_caller]
    pub fn lacks_header(&self, name: &str) -> &Self {
        assert!(
            self.header(name).is_none(),
            "unexpected header {name}: {self:?}"
        );
        self
    }

    /// Asserts header `name` contains `part`.
    #[track_caller]
    pub fn header_contains(&self, name: &str, part: &str) -> &Self {
        let v = self
            .header(name)
            .unwrap_or_else(|| panic!("missing header {name}: {self:?}"));
        assert!(
            v.to_ascii_lowercase().contains(&part.to_ascii_lowercase()),
            "header {name} lacks {part:?}: {self:?}"
        );
        self
    }

    /// Asserts the body bytes.
    #[track_caller]
    pub fn body_is(&self, body: impl AsRef<[u8]>) -> &Self {
        assert!(
            self.body == body.as_ref(),
            "body differs, expected {:?}: {self:?}",
            String::from_utf8_lossy(body.as_ref())
        );
        self
    }

    /// Asserts the body is the JSON value written in `expected`.
    #[track_caller]
    pub fn json_is(&self, expected: &str) -> &Self {
        let want = json::parse(expected).expect("expected value is not JSON");
        assert_eq!(self.json(), want, "JSON body differs: {self:?}");
        self
    }

    /// `Stream-Next-Offset`, asserting it is a real offset (PROTOCOL §8).
    #[track_caller]
    pub fn next_offset(&self) -> String {
        let o = self
            .header("stream-next-offset")
            .unwrap_or_else(|| panic!("missing Stream-Next-Offset: {self:?}"));
        assert_offset_token(o);
        o.to_string()
    }

    /// True when `Stream-Up-To-Date: true` is present.
    pub fn up_to_date(&self) -> bool {
        self.header("stream-up-to-date") == Some("true")
    }

    /// True when `Stream-Closed: true` is present.
    pub fn closed(&self) -> bool {
        self.header("stream-closed") == Some("true")
    }

    /// `Stream-Cursor` as a number, asserting it is decimal.
    #[track_caller]
    pub fn cursor(&self) -> u64 {
        let c = self
            .header("stream-cursor")
            .unwrap_or_else(|| panic!("missing Stream-Cursor: {self:?}"));
        c.parse()
            .unwrap_or_else(|_| panic!("Stream-Cursor is not decimal: {self:?}"))
    }

    /// `ETag`, asserting it is present and non-empty.
    #[track_caller]
    pub fn etag(&self) -> String {
        let e = self
            .header("etag")
            .unwrap_or_else(|| panic!("missing ETag: {self:?}"));
        assert!(!e.is_empty(), "empty ETag: {self:?}");
        e.to_string()
    }
}

/// Asserts `token` looks like an offset a server may mint (PROTOCOL §8):
/// non-empty, not a sentinel, none of `, & = ? /`, URL-safe.
#[track_caller]
pub fn assert_offset_token(token: &str) {
    assert!(
        !token.is_empty() && token != "-1" && token != "now",
        "not a real offset: {token:?}"
    );
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')),
        "offset is not a URL-safe token: {token:?}"
    );
    assert!(token.len() < 256, "offset too long: {token:?}");
}

/// Creates `name` with `content_type` and no body; asserts 201 and returns
/// the tail offset.
pub async fn create<T: Target>(t: &mut T, name: &str, content_type: &str) -> String {
    t.request(put(name).ct(content_type))
        .await
        .status_is(201)
        .next_offset()
}

/// Creates `name` with `content_type` and `body`; asserts 201 and returns
/// the tail offset.
pub async fn create_with<T: Target>(
    t: &mut T,
    name: &str,
    content_type: &str,
    body: impl AsRef<[u8]>,
) -> String {
    t.request(put(name).ct(content_type).with_body(body))
        .await
        .status_is(201)
        .next_offset()
}

/// Appends `body` to `name`; asserts 204 and returns the new tail offset.
pub async fn append<T: Target>(
    t: &mut T,
    name: &str,
    content_type: &str,
    body: impl AsRef<[u8]>,
) -> String {
    t.request(post(name).ct(content_type).with_body(body))
        .await
        .status_is(204)
        .next_offset()
}

/// Closes `name` with a close-only `POST`; asserts 204 and returns the
/// final offset.
pub async fn close<T: Target>(t: &mut T, name: &str) -> String {
    t.request(post(name).closed())
        .await
        .status_is(204)
        .header_is("stream-closed", "true")
        .next_offset()
}

/// The result of reading a stream page by page.
#[derive(Debug)]
pub struct Pages {
    /// Every byte of every page, concatenated.
    pub bytes: Vec<u8>,
    /// Each page's reply.
    pub replies: Vec<Reply>,
}

impl Pages {
    /// The concatenated bytes as text.
    #[track_caller]
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes).expect("stream is not UTF-8")
    }

    /// The last page.
    pub fn last(&self) -> &Reply {
        self.replies.last().expect("at least one page")
    }
}

/// Reads `name` with catch-up `GET`s from `from` (`None`: no `offset`)
/// until a page says `Stream-Up-To-Date`, asserting 200 for each page and
/// that `Stream-Up-To-Date` and `Stream-Closed` appear on the last page only.
pub async fn read_all<T: Target>(t: &mut T, name: &str, from: Option<&str>) -> Pages {
    let mut req = get(name);
    if let Some(from) = from {
        req = req.offset(from);
    }
    let mut pages = Pages {
        bytes: Vec::new(),
        replies: Vec::new(),
    };
    loop {
        let reply = t.request(req).await;
        reply.status_is(200);
        let next = reply.next_offset();
        pages.bytes.extend_from_slice(&reply.body);
        let done = reply.up_to_date();
        if !done {
            assert!(
                !reply.body.is_empty(),
                "a page that is not up to date must carry data: {reply:?}"
            );
            assert!(
                !reply.closed(),
                "Stream-Closed on a page that is not the last: {reply:?}"
            );
        }
        pages.replies.push(reply);
        assert!(pages.replies.len() < 10_000, "read never caught up");
        if done {
            return pages;
        }
        req = get(name).offset(&next);
    }
}

/// The messages of a JSON stream read page by page from `from`: each page
/// must be a JSON array; their elements are concatenated.
pub async fn read_json<T: Target>(t: &mut T, name: &str, from: Option<&str>) -> Vec<Json> {
    let pages = read_all(t, name, from).await;
    let mut out = Vec::new();
    for page in &pages.replies {
        match page.json() {
            Json::Array(items) => out.extend(items),
            other => panic!("JSON page is not an array: {other:?}"),
        }
    }
    out
}

/// `HEAD` of `name`.
pub async fn head_of<T: Target>(t: &mut T, name: &str) -> Reply {
    t.request(head(name)).await
}

/// The status of `HEAD` on `name`.
pub async fn head_status<T: Target>(t: &mut T, name: &str) -> u16 {
    t.request(head(name)).await.status
}

/// Parses a JSON literal written in a scenario.
#[track_caller]
pub fn json_value(text: &str) -> Json {
    json::parse(text).unwrap_or_else(|e| panic!("bad JSON literal {text:?}: {e}"))
}
