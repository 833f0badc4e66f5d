//! Browser security and CORS headers (PROTOCOL §12.7). CORS itself is not
//! in the spec; these scenarios pin what browser clients need.

use crate::dsl::*;
use crate::target::Target;

/// §12.7: every response, errors included, has `X-Content-Type-Options:
/// nosniff` and a `Cross-Origin-Resource-Policy`.
pub async fn security_headers_everywhere<T: Target>(t: &mut T) {
    let tail = create_with(t, "s", "application/octet-stream", [1u8, 2, 3, 4]).await;
    let replies = vec![
        t.request(put("s2").ct("text/plain")).await,
        t.request(post("s").ct("application/octet-stream").with_body([5u8]))
            .await,
        t.request(get("s")).await,
        t.request(head("s")).await,
        t.request(get("s").offset(&tail).if_none_match("*")).await,
        t.request(get("nope")).await,
        t.request(get("s").offset("bad offset")).await,
        t.request(post("s").ct("text/plain").with_body("x")).await,
        t.request(method("PATCH", "s")).await,
        t.request(options("s")).await,
        t.request(delete("s2")).await,
    ];
    for r in replies {
        r.header_is("x-content-type-options", "nosniff");
        let corp = r
            .header("cross-origin-resource-policy")
            .unwrap_or_else(|| panic!("missing Cross-Origin-Resource-Policy: {r:?}"));
        assert!(
            ["cross-origin", "same-origin", "same-site"].contains(&corp),
            "{r:?}"
        );
    }
}

/// §12.7: error bodies never sniff as HTML: they are typed and not cached.
pub async fn errors_are_typed_and_uncached<T: Target>(t: &mut T) {
    for r in [
        t.request(get("nope")).await,
        t.request(put("s").ct("text/plain").with_header("Stream-TTL", "x"))
            .await,
    ] {
        assert!(r.status >= 400, "{r:?}");
        r.has_header("content-type")
            .header_contains("cache-control", "no-store");
    }
}

/// §12.7 (browser clients; CORS is not in the spec itself): `OPTIONS` on
/// any stream URL, existing or not, is a 2xx that allows the protocol's
/// methods and the requested headers.
pub async fn preflight_allows_protocol<T: Target>(t: &mut T) {
    let r = t
        .request(
            options("never-created")
                .with_header("Origin", "https://example.com")
                .with_header("Access-Control-Request-Method", "GET")
                .with_header("Access-Control-Request-Headers", "if-none-match"),
        )
        .await;
    assert!(r.status == 200 || r.status == 204, "{r:?}");
    let allow = r
        .header("access-control-allow-headers")
        .unwrap_or_else(|| panic!("missing Access-Control-Allow-Headers: {r:?}"))
        .to_ascii_lowercase();
    assert!(
        allow.contains("if-none-match") || allow.contains('*'),
        "{r:?}"
    );
    let methods = r
        .header("access-control-allow-methods")
        .unwrap_or_else(|| panic!("missing Access-Control-Allow-Methods: {r:?}"));
    for m in ["GET", "HEAD", "PUT", "POST", "DELETE"] {
        assert!(methods.contains(m), "{m} not allowed: {r:?}");
    }
    assert_eq!(head_status(t, "never-created").await, 404);
}

/// §12.7 (browser clients), §13.2 headers: browser clients may read every
/// protocol response header.
pub async fn protocol_headers_are_exposed<T: Target>(t: &mut T) {
    create(t, "s", "text/plain").await;
    let r = t
        .request(get("s").with_header("Origin", "https://example.com"))
        .await;
    r.has_header("access-control-allow-origin");
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_else(|| panic!("missing Access-Control-Expose-Headers: {r:?}"))
        .to_ascii_lowercase();
    for h in [
        "stream-next-offset",
        "stream-cursor",
        "stream-up-to-date",
        "stream-closed",
        "producer-epoch",
        "producer-seq",
        "producer-expected-seq",
        "producer-received-seq",
        "etag",
    ] {
        assert!(exposed.contains(h), "{h} not exposed: {r:?}");
    }
}

/// Browser clients (CORS is not in the spec): a write from a browser, which
/// always carries `Origin`, gets the CORS headers; a write without `Origin`
/// comes from no browser and its response is never cached, so it goes
/// without them. Reads carry them either way: a shared cache may serve the
/// same response to a browser.
pub async fn writes_get_cors_headers_when_a_browser_asks<T: Target>(t: &mut T) {
    let origin = "https://example.com";
    let browser = vec![
        t.request(put("s").ct("text/plain").with_header("Origin", origin))
            .await,
        t.request(
            post("s")
                .ct("text/plain")
                .with_body("x")
                .with_header("Origin", origin),
        )
        .await,
        t.request(
            post("s")
                .ct("application/json")
                .with_header("Origin", origin),
        )
        .await,
    ];
    for r in browser {
        r.header_is("access-control-allow-origin", "*");
        let exposed = r
            .header("access-control-expose-headers")
            .unwrap_or_else(|| panic!("missing Access-Control-Expose-Headers: {r:?}"))
            .to_ascii_lowercase();
        assert!(exposed.contains("stream-next-offset"), "{r:?}");
    }
    let tool = vec![
        t.request(put("t").ct("text/plain")).await,
        t.request(post("t").ct("text/plain").with_body("x")).await,
        t.request(post("t").ct("application/json")).await,
        t.request(delete("t")).await,
    ];
    for r in tool {
        assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
        assert!(r.header("access-control-expose-headers").is_none(), "{r:?}");
        r.header_is("x-content-type-options", "nosniff");
    }
    for r in [t.request(get("s")).await, t.request(head("s")).await] {
        r.header_is("access-control-allow-origin", "*")
            .has_header("access-control-expose-headers");
    }
    let r = t.request(delete("s").with_header("Origin", origin)).await;
    r.header_is("access-control-allow-origin", "*");
}
