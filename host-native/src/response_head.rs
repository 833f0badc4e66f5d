//! The engine's response header names and constant values as ready-made
//! `http` values. Building a `HeaderName` or `HeaderValue` from text checks
//! every byte, for every response; the constants below are checked once, at
//! compile time (`from_static` is a `const fn`). Names and values that are
//! not listed here are still built from their text, so the table only
//! decides speed, never what is sent.

use axum::http::{HeaderName, HeaderValue};
use ds_core::cors;
use ds_core::response::names;

/// Declares `const` values of type `$ty` (built with its `const fn
/// from_static`) and the function `$fun` that finds one by its text, and
/// builds any other text at run time.
macro_rules! known {
    ($(#[$doc:meta])* fn $fun:ident -> $ty:ident { $($konst:ident = $text:expr;)* }) => {
        $(const $konst: $ty = $ty::from_static($text);)*

        $(#[$doc])*
        pub fn $fun(text: &'static str) -> $ty {
            // String comparisons: lengths first, rarely more.
            $(if text == $text {
                return $konst;
            })*
            $ty::from_static(text)
        }
    };
}

known! {
    /// The header name `text` (lower case, as the engine writes them).
    fn name -> HeaderName {
        CONTENT_TYPE = names::CONTENT_TYPE;
        CACHE_CONTROL = names::CACHE_CONTROL;
        ETAG = names::ETAG;
        LOCATION = names::LOCATION;
        STREAM_NEXT_OFFSET = names::STREAM_NEXT_OFFSET;
        STREAM_UP_TO_DATE = names::STREAM_UP_TO_DATE;
        STREAM_CLOSED = names::STREAM_CLOSED;
        STREAM_CURSOR = names::STREAM_CURSOR;
        STREAM_TTL = names::STREAM_TTL;
        STREAM_EXPIRES_AT = names::STREAM_EXPIRES_AT;
        STREAM_SSE_DATA_ENCODING = names::STREAM_SSE_DATA_ENCODING;
        PRODUCER_EPOCH = names::PRODUCER_EPOCH;
        PRODUCER_SEQ = names::PRODUCER_SEQ;
        PRODUCER_EXPECTED_SEQ = names::PRODUCER_EXPECTED_SEQ;
        PRODUCER_RECEIVED_SEQ = names::PRODUCER_RECEIVED_SEQ;
        X_CONTENT_TYPE_OPTIONS = "x-content-type-options";
        CROSS_ORIGIN_RESOURCE_POLICY = "cross-origin-resource-policy";
        ALLOW_ORIGIN = "access-control-allow-origin";
        EXPOSE_HEADERS = "access-control-expose-headers";
        VARY = "vary";
    }
}

known! {
    /// The header value of the engine constant `text`.
    fn static_value -> HeaderValue {
        EXPOSE = cors::EXPOSE_HEADERS;
        NOSNIFF = "nosniff";
        CROSS_ORIGIN = "cross-origin";
        ANY = "*";
        TRUE = "true";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_text_give_the_same_header() {
        for n in [names::STREAM_NEXT_OFFSET, "vary", names::RETRY_AFTER] {
            assert_eq!(name(n), HeaderName::from_static(n));
        }
        for v in [cors::EXPOSE_HEADERS, "nosniff", "*", "no-store"] {
            assert_eq!(static_value(v), HeaderValue::from_static(v));
        }
    }
}
