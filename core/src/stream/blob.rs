//! The stored form of [`StreamMeta`]: a compact binary blob.
//!
//! Every write stores its stream's metadata again (in the same batch as the
//! data it describes), so the blob is on the hot path of every append: it is
//! written with a few integer and string copies, and is about a fifth of the
//! size of the JSON form earlier versions stored (which [`decode`] still
//! reads: a JSON blob begins with `{`, a binary one with `0`).
//!
//! Layout (integers are LEB128 varints, strings a varint length then UTF-8):
//!
//! ```text
//! 0x00 · v · id · content_type · created_at · expiry · last_access · tail
//!      · flags · [closed_by] · [fork] · [last_stream_seq] · producers
//! expiry      0 (never) | 1 · secs (sliding TTL) | 2 · at · text (absolute)
//! flags       bit 0 closed · 1 soft_deleted · 2 closed_by · 3 fork
//!             · 4 last_stream_seq (bits 2-4: the optional parts present)
//! closed_by   producer id · epoch · seq
//! fork        source · source_id · point · anchor · sub_offset
//! producers   count · (id · epoch · last_seq) in id order
//! ```

use std::collections::BTreeMap;

use super::{Expiry, ForkOrigin, StreamMeta};
use crate::producer::{ProducerClaim, ProducerState};
use crate::varint::push as varint;

/// First byte of a binary blob (a JSON blob starts with `{`).
const BINARY: u8 = 0;

const CLOSED: u8 = 1;
const SOFT_DELETED: u8 = 1 << 1;
const CLOSED_BY: u8 = 1 << 2;
const FORK: u8 = 1 << 3;
const LAST_STREAM_SEQ: u8 = 1 << 4;

/// Encodes `meta` (see the module docs).
pub(super) fn encode(meta: &StreamMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + meta.content_type.len());
    out.push(BINARY);
    varint(&mut out, u64::from(meta.v));
    varint(&mut out, meta.id);
    text(&mut out, &meta.content_type);
    varint(&mut out, meta.created_at);
    match &meta.expiry {
        Expiry::Never => out.push(0),
        Expiry::Ttl(secs) => {
            out.push(1);
            varint(&mut out, *secs);
        }
        Expiry::At(d) => {
            out.push(2);
            varint(&mut out, d.at);
            text(&mut out, &d.text);
        }
    }
    varint(&mut out, meta.last_access);
    varint(&mut out, meta.tail);
    let flag = |on: bool, bit: u8| if on { bit } else { 0 };
    out.push(
        flag(meta.closed, CLOSED)
            | flag(meta.soft_deleted, SOFT_DELETED)
            | flag(meta.closed_by.is_some(), CLOSED_BY)
            | flag(meta.fork.is_some(), FORK)
            | flag(meta.last_stream_seq.is_some(), LAST_STREAM_SEQ),
    );
    if let Some(by) = &meta.closed_by {
        text(&mut out, &by.id);
        varint(&mut out, by.epoch);
        varint(&mut out, by.seq);
    }
    if let Some(fork) = &meta.fork {
        text(&mut out, &fork.source);
        varint(&mut out, fork.source_id);
        varint(&mut out, fork.point);
        varint(&mut out, fork.anchor);
        varint(&mut out, fork.sub_offset);
    }
    if let Some(seq) = &meta.last_stream_seq {
        text(&mut out, seq);
    }
    varint(&mut out, meta.producers.len() as u64);
    for (id, state) in &meta.producers {
        text(&mut out, id);
        varint(&mut out, state.epoch);
        varint(&mut out, state.last_seq);
    }
    out
}

/// Decodes a blob of either form; what is wrong when it is malformed.
pub(super) fn decode(blob: &[u8]) -> Result<StreamMeta, String> {
    match blob.first() {
        Some(&BINARY) => {
            let mut r = Reader { rest: &blob[1..] };
            let meta = r.meta()?;
            if !r.rest.is_empty() {
                return Err(format!("{} bytes after the end", r.rest.len()));
            }
            Ok(meta)
        }
        Some(b'{') => serde_json::from_slice(blob).map_err(|e| e.to_string()),
        Some(other) => Err(format!("unknown blob form {other:#04x}")),
        None => Err("empty blob".to_string()),
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Reads a binary blob front to back; every read checks its bounds.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let (&b, rest) = self.rest.split_first().ok_or("truncated")?;
        self.rest = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        crate::varint::take(&mut self.rest)
            .ok_or_else(|| "truncated, or an integer over 64 bits".to_string())
    }

    fn text(&mut self) -> Result<String, String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "string too long")?;
        if len > self.rest.len() {
            return Err("truncated".to_string());
        }
        let (s, rest) = self.rest.split_at(len);
        self.rest = rest;
        String::from_utf8(s.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
    }

    fn meta(&mut self) -> Result<StreamMeta, String> {
        let v = u32::try_from(self.varint()?).map_err(|_| "version out of range")?;
        let id = self.varint()?;
        let content_type = self.text()?;
        let created_at = self.varint()?;
        let expiry = match self.byte()? {
            0 => Expiry::Never,
            1 => Expiry::Ttl(self.varint()?),
            2 => {
                let at = self.varint()?;
                Expiry::at(at, self.text()?)
            }
            other => return Err(format!("unknown expiry kind {other}")),
        };
        let last_access = self.varint()?;
        let tail = self.varint()?;
        let flags = self.byte()?;
        if flags & !(CLOSED | SOFT_DELETED | CLOSED_BY | FORK | LAST_STREAM_SEQ) != 0 {
            return Err(format!("unknown flags {flags:#04x}"));
        }
        let closed_by = if flags & CLOSED_BY != 0 {
            Some(Box::new(ProducerClaim {
                id: self.text()?,
                epoch: self.varint()?,
                seq: self.varint()?,
            }))
        } else {
            None
        };
        let fork = if flags & FORK != 0 {
            Some(Box::new(ForkOrigin {
                source: self.text()?,
                source_id: self.varint()?,
                point: self.varint()?,
                anchor: self.varint()?,
                sub_offset: self.varint()?,
            }))
        } else {
            None
        };
        let last_stream_seq = if flags & LAST_STREAM_SEQ != 0 {
            Some(self.text()?)
        } else {
            None
        };
        let count = self.varint()?;
        let mut producers = BTreeMap::new();
        for _ in 0..count {
            let id = self.text()?;
            let state = ProducerState {
                epoch: self.varint()?,
                last_seq: self.varint()?,
            };
            if producers.insert(id, state).is_some() {
                return Err("a producer is listed twice".to_string());
            }
        }
        Ok(StreamMeta {
            v,
            id,
            content_type: content_type.into(),
            created_at,
            expiry,
            last_access,
            tail,
            closed: flags & CLOSED != 0,
            closed_by,
            fork,
            soft_deleted: flags & SOFT_DELETED != 0,
            last_stream_seq,
            producers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::META_VERSION;

    fn plain() -> StreamMeta {
        StreamMeta {
            v: META_VERSION,
            id: 77_000_123,
            content_type: "application/octet-stream".into(),
            created_at: 1_790_000_000_000,
            expiry: Expiry::Never,
            last_access: 1_790_000_000_500,
            tail: 128,
            closed: false,
            closed_by: None,
            fork: None,
            soft_deleted: false,
            last_stream_seq: None,
            producers: BTreeMap::new(),
        }
    }

    fn full() -> StreamMeta {
        let mut m = plain();
        m.content_type = "application/json; charset=utf-8".into();
        m.expiry = Expiry::at(1_800_000_000_000, "2027-01-15T08:00:00Z".into());
        m.tail = u64::MAX;
        m.closed = true;
        m.closed_by = Some(Box::new(ProducerClaim {
            id: "writer-é".into(),
            epoch: 3,
            seq: 41,
        }));
        m.fork = Some(Box::new(ForkOrigin {
            source: "/v1/stream/source".into(),
            source_id: 9,
            point: 1 << 40,
            anchor: 1 << 40,
            sub_offset: 2,
        }));
        m.soft_deleted = true;
        m.last_stream_seq = Some("000123".into());
        for (id, epoch) in [("a", 0u64), ("b", 7), ("zz", u64::MAX)] {
            m.producers.insert(
                id.into(),
                ProducerState {
                    epoch,
                    last_seq: epoch / 2,
                },
            );
        }
        m
    }

    #[test]
    fn round_trips_every_field() {
        for meta in [plain(), full(), {
            let mut m = plain();
            m.expiry = Expiry::Ttl(3600);
            m
        }] {
            let blob = encode(&meta);
            assert_eq!(blob[0], BINARY);
            assert_eq!(decode(&blob), Ok(meta));
        }
    }

    #[test]
    fn reads_the_json_blobs_of_earlier_versions() {
        for meta in [plain(), full()] {
            let json = serde_json::to_vec(&meta).unwrap();
            assert_eq!(decode(&json), Ok(meta));
        }
    }

    #[test]
    fn is_much_smaller_than_json() {
        let meta = plain();
        let (blob, json) = (encode(&meta), serde_json::to_vec(&meta).unwrap());
        assert!(
            blob.len() * 4 < json.len(),
            "{} vs {}",
            blob.len(),
            json.len()
        );
    }

    #[test]
    fn malformed_blobs_are_errors_not_panics() {
        let blob = encode(&full());
        for len in 0..blob.len() {
            assert!(decode(&blob[..len]).is_err(), "prefix of {len} bytes");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode(&[7, 1]).is_err());
        // An integer of eleven continuation bytes.
        let mut huge = vec![BINARY];
        huge.extend([0xff; 10]);
        huge.push(1);
        assert!(decode(&huge).is_err());
        // Every single-byte corruption decodes to something or fails cleanly.
        for at in 0..blob.len() {
            for b in [0x00, 0x7f, 0x80, 0xff] {
                let mut bad = blob.clone();
                bad[at] = b;
                let _ = decode(&bad);
            }
        }
    }
}
