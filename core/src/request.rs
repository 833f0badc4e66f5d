//! Requests as plain data: what a host hands the engine.

/// HTTP method of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: read.
    Get,
    /// `HEAD`: metadata.
    Head,
    /// `PUT`: create or fork.
    Put,
    /// `POST`: append or close.
    Post,
    /// `DELETE`: delete.
    Delete,
    /// `OPTIONS`: CORS preflight.
    Options,
    /// Anything else (answered 405).
    Other(String),
}

impl Method {
    /// Maps a method name (case-sensitive, as HTTP defines).
    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }
}

/// Request header fields (lower case) the engine never reads: framing and
/// hop-by-hop fields the HTTP layer has already acted on, and content
/// negotiation the protocol does not do. A host may leave them out of a
/// [`Request`] instead of copying them.
pub const UNREAD_HEADERS: [&str; 6] = [
    "content-length",
    "connection",
    "transfer-encoding",
    "user-agent",
    "accept-encoding",
    "accept",
];

/// One request to a stream URL.
#[derive(Clone, Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The URL path as received (still percent-encoded), e.g. `/v1/stream/a`.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header fields in arrival order; names in any case.
    pub headers: Vec<(String, String)>,
    /// The complete request body.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with no query, headers or body.
    pub fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the query string (builder style).
    pub fn query(mut self, query: &str) -> Request {
        self.query = query.to_string();
        self
    }

    /// Sets the body (builder style).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decoded query parameters in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }
}

/// Decodes `%XX` escapes and `+` (as space). Invalid escapes stay literal.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let r = Request::new(Method::Get, "/x").query("offset=0%201&live=sse&cursor=&x");
        assert_eq!(
            r.query_pairs(),
            vec![
                ("offset".into(), "0 1".into()),
                ("live".into(), "sse".into()),
                ("cursor".into(), "".into()),
                ("x".into(), "".into())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
