//! JSON mode (PROTOCOL §9.1): validation, one-level flattening, rendering.

use serde_json::value::RawValue;

/// Why a JSON body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not valid JSON (PROTOCOL §9.1.4).
    Invalid,
    /// `[]` on an append (PROTOCOL §9.1.3).
    EmptyArray,
}

/// True when `content_type` selects JSON mode: `application/json`, any case,
/// parameters ignored.
pub fn is_json(content_type: &str) -> bool {
    media_type(content_type).eq_ignore_ascii_case("application/json")
}

/// The media type of a `Content-Type` value, without parameters or spaces.
pub fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Splits a JSON body into the messages it stores: the elements of a top-level
/// array (flattened exactly one level), or the single value otherwise. Each
/// message keeps its original text, trimmed of surrounding whitespace.
/// `allow_empty` permits `[]` (PUT) and yields no messages.
pub fn split_messages(body: &[u8], allow_empty: bool) -> Result<Vec<Vec<u8>>, JsonError> {
    let text = std::str::from_utf8(body).map_err(|_| JsonError::Invalid)?;
    let value: &RawValue = serde_json::from_str(text).map_err(|_| JsonError::Invalid)?;
    let raw = value.get().trim();
    if raw.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(raw).map_err(|_| JsonError::Invalid)?;
        if items.is_empty() && !allow_empty {
            return Err(JsonError::EmptyArray);
        }
        Ok(items.iter().map(|v| message(v.get().trim())).collect())
    } else {
        Ok(vec![message(raw)])
    }
}

/// A message's bytes, with room for the [`BATCH_END`] the last one of an
/// append gets (no reallocation when it is added).
fn message(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 1);
    out.extend_from_slice(text.as_bytes());
    out
}

/// Stored JSON messages are one record each; the last message of each
/// append carries a trailing `\n` (JSON whitespace, stripped on output), so
/// append boundaries survive for `Stream-Fork-Sub-Offset` (PROTOCOL §4.2:
/// a sub-offset may not pass the next data boundary).
pub const BATCH_END: u8 = b'\n';

/// Marks the last of one append's messages as the end of its append.
pub fn mark_batch_end(messages: &mut [Vec<u8>]) {
    if let Some(last) = messages.last_mut() {
        last.push(BATCH_END);
    }
}

/// True when a stored message is the last of its append.
pub fn is_batch_end(record: &[u8]) -> bool {
    record.last() == Some(&BATCH_END)
}

/// Renders stored messages as one JSON array (PROTOCOL §9.1.5).
pub fn render_array<'a>(messages: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(b'[');
    for (i, m) in messages.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(m.strip_suffix(&[BATCH_END]).unwrap_or(m));
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_messages(s.as_bytes(), false)
            .unwrap()
            .into_iter()
            .map(|m| String::from_utf8(m).unwrap())
            .collect()
    }

    #[test]
    fn flattens_one_level() {
        assert_eq!(
            split(r#"{"event": "created"}"#),
            vec![r#"{"event": "created"}"#]
        );
        assert_eq!(
            split(r#"[{"a":1}, {"b":2}]"#),
            vec![r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert_eq!(split("[[1,2], [3,4]]"), vec!["[1,2]", "[3,4]"]);
        assert_eq!(split("[[[1,2,3]]]"), vec!["[[1,2,3]]"]);
        assert_eq!(split(" 5 "), vec!["5"]);
    }

    #[test]
    fn refuses_bad_json_and_empty_arrays() {
        assert_eq!(split_messages(b"[]", false), Err(JsonError::EmptyArray));
        assert_eq!(split_messages(b" [ ] ", true), Ok(vec![]));
        assert_eq!(split_messages(b"{", false), Err(JsonError::Invalid));
        assert_eq!(split_messages(b"", false), Err(JsonError::Invalid));
        assert_eq!(split_messages(b"1 2", false), Err(JsonError::Invalid));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("application/ndjson"));
    }
}
