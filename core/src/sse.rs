//! Server-Sent Events framing (PROTOCOL §5.8). Timing (keep-alives, the ~60 s
//! reconnect) is decided by the engine's session; bytes are built here.

use base64::Engine as _;

/// How `event: data` payloads are encoded for a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataEncoding {
    /// `text/*` and `application/json`: UTF-8 text as is.
    Text,
    /// Every other content type: standard base64 (RFC 4648).
    Base64,
}

impl DataEncoding {
    /// The encoding PROTOCOL §5.8 prescribes for a stream's content type.
    pub fn for_content_type(content_type: &str) -> DataEncoding {
        let media = crate::json::media_type(content_type).to_ascii_lowercase();
        if media.starts_with("text/") || media == "application/json" {
            DataEncoding::Text
        } else {
            DataEncoding::Base64
        }
    }
}

/// Appends one `event: data` frame carrying `payload` to `out`. Text is split
/// on line breaks into `data:` lines; base64 text is one line.
pub fn push_data_event(out: &mut Vec<u8>, payload: &[u8], encoding: DataEncoding) {
    out.extend_from_slice(b"event: data\n");
    match encoding {
        DataEncoding::Base64 => {
            out.extend_from_slice(b"data:");
            let encoded = base64::engine::general_purpose::STANDARD.encode(payload);
            out.extend_from_slice(encoded.as_bytes());
            out.push(b'\n');
        }
        DataEncoding::Text => {
            // Every line terminator SSE knows (CRLF, CR, LF) starts a new
            // `data:` line, so stream content can never inject an event.
            let mut rest = payload;
            loop {
                let cut = rest.iter().position(|b| *b == b'\n' || *b == b'\r');
                out.extend_from_slice(b"data:");
                out.extend_from_slice(&rest[..cut.unwrap_or(rest.len())]);
                out.push(b'\n');
                match cut {
                    None => break,
                    Some(i) => {
                        let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                            2
                        } else {
                            1
                        };
                        rest = &rest[i + skip..];
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

/// A comment line that keeps idle connections and proxies alive.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_cannot_inject_events() {
        let mut out = Vec::new();
        push_data_event(
            &mut out,
            b"a\r\n\r\nevent: control\rb\nc",
            DataEncoding::Text,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: data\ndata:a\ndata:\ndata:event: control\ndata:b\ndata:c\n\n"
        );
    }

    #[test]
    fn binary_is_base64() {
        let mut out = Vec::new();
        push_data_event(
            &mut out,
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            DataEncoding::Base64,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: data\ndata:AQIDBAUGBwgJCg==\n\n"
        );
        assert_eq!(
            DataEncoding::for_content_type("Text/Plain; charset=utf-8"),
            DataEncoding::Text
        );
        assert_eq!(
            DataEncoding::for_content_type("application/json"),
            DataEncoding::Text
        );
        assert_eq!(
            DataEncoding::for_content_type("application/ndjson"),
            DataEncoding::Base64
        );
    }
}
