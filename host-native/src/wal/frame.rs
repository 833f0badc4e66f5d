//! The log's frame format: one committed [`Batch`] per frame.
//!
//! ```text
//! frame   = len:u32le crc:u32le payload[len]
//! crc     = CRC-32 (IEEE) of (segment number as u64le ++ payload)
//! payload = count:u32le op*
//! op      = 0 path meta            PutMeta
//!         | 1 path                 DeleteMeta
//!         | 2 path id start data   Append
//!         | 3 path id              PurgeData
//! path    = len:u32le utf8[len]    meta, data = len:u64le bytes[len]
//! id, start = u64le
//! ```
//!
//! Segments are preallocated with zeros, so the log ends at the first frame
//! whose length is zero, whose bytes run past the segment, or whose checksum
//! does not match (a torn write, or a frame left over from an older segment
//! file: the segment number inside the checksum tells them apart).

use ds_core::{Batch, Op, Record};

/// Bytes before a frame's payload.
pub const HEADER: usize = 8;

const PUT_META: u8 = 0;
const DELETE_META: u8 = 1;
const APPEND: u8 = 2;
const PURGE_DATA: u8 = 3;

/// Length of `batch`'s frame payload (the frame is [`HEADER`] longer).
pub fn payload_len(batch: &Batch) -> usize {
    4 + batch.ops.iter().map(op_size).sum::<usize>()
}

/// Encodes `batch` as one frame of segment `segment`.
pub fn encode(segment: u64, batch: &Batch) -> Vec<u8> {
    let size = HEADER + payload_len(batch);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&(batch.ops.len() as u32).to_le_bytes());
    for op in &batch.ops {
        match op {
            Op::PutMeta { path, meta } => {
                out.push(PUT_META);
                put_path(&mut out, path);
                put_bytes(&mut out, meta);
            }
            Op::DeleteMeta { path } => {
                out.push(DELETE_META);
                put_path(&mut out, path);
            }
            Op::Append { path, id, record } => {
                out.push(APPEND);
                put_path(&mut out, path);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&record.start.to_le_bytes());
                put_bytes(&mut out, &record.data);
            }
            Op::PurgeData { path, id } => {
                out.push(PURGE_DATA);
                put_path(&mut out, path);
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
    let len = (out.len() - HEADER) as u32;
    let crc = checksum(segment, &out[HEADER..]);
    out[..4].copy_from_slice(&len.to_le_bytes());
    out[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The batches of a segment's bytes, in order, and the length of the valid
/// prefix (where the next frame would be written).
pub fn decode_all(segment: u64, bytes: &[u8]) -> (Vec<Batch>, usize) {
    let mut batches = Vec::new();
    let mut at = 0usize;
    while let Some((batch, next)) = decode_one(segment, bytes, at) {
        batches.push(batch);
        at = next;
    }
    (batches, at)
}

fn decode_one(segment: u64, bytes: &[u8], at: usize) -> Option<(Batch, usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len == 0 {
        return None;
    }
    let end = at.checked_add(HEADER)?.checked_add(len)?;
    let payload = bytes.get(at + HEADER..end)?;
    if checksum(segment, payload) != crc {
        return None;
    }
    let batch = decode_payload(payload)?;
    Some((batch, end))
}

fn decode_payload(payload: &[u8]) -> Option<Batch> {
    let mut r = Reader(payload);
    let count = r.u32()? as usize;
    let mut ops = Vec::with_capacity(count.min(payload.len()));
    for _ in 0..count {
        let op = match r.u8()? {
            PUT_META => Op::PutMeta {
                path: r.path()?,
                meta: r.bytes()?,
            },
            DELETE_META => Op::DeleteMeta { path: r.path()? },
            APPEND => {
                let path = r.path()?;
                let id = r.u64()?;
                let start = r.u64()?;
                let data = r.bytes()?;
                Op::Append {
                    path,
                    id,
                    record: Record { start, data },
                }
            }
            PURGE_DATA => Op::PurgeData {
                path: r.path()?,
                id: r.u64()?,
            },
            _ => return None,
        };
        ops.push(op);
    }
    r.0.is_empty().then_some(Batch { ops })
}

fn checksum(segment: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&segment.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn op_size(op: &Op) -> usize {
    match op {
        Op::PutMeta { path, meta } => 1 + 4 + path.len() + 8 + meta.len(),
        Op::DeleteMeta { path } => 1 + 4 + path.len(),
        Op::Append { path, record, .. } => 1 + 4 + path.len() + 16 + 8 + record.data.len(),
        Op::PurgeData { path, .. } => 1 + 4 + path.len() + 8,
    }
}

fn put_path(out: &mut Vec<u8>, path: &str) {
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn path(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.u64()?).ok()?;
        Some(self.take(n)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        Batch {
            ops: vec![
                Op::PutMeta {
                    path: "/s/a".into(),
                    meta: b"{}".to_vec(),
                },
                Op::Append {
                    path: "/s/a".into(),
                    id: 7,
                    record: Record {
                        start: 12,
                        data: b"hello".to_vec(),
                    },
                },
                Op::DeleteMeta {
                    path: "/s/b".into(),
                },
                Op::PurgeData {
                    path: "/s/b".into(),
                    id: 3,
                },
            ],
        }
    }

    #[test]
    fn frames_round_trip_and_the_log_ends_at_zeros() {
        let mut seg = encode(5, &sample());
        let first = seg.len();
        seg.extend(encode(5, &Batch { ops: vec![] }));
        let valid = seg.len();
        seg.extend([0u8; 64]);
        let (batches, end) = decode_all(5, &seg);
        assert_eq!(batches, vec![sample(), Batch { ops: vec![] }]);
        assert_eq!(end, valid);
        assert!(first < valid);
    }

    #[test]
    fn a_torn_or_foreign_frame_ends_the_log() {
        let a = encode(5, &sample());
        let mut seg = a.clone();
        seg.extend(encode(5, &sample()));
        // Torn: the second frame's last byte never reached the disk.
        let torn = &seg[..seg.len() - 1];
        assert_eq!(decode_all(5, torn), (vec![sample()], a.len()));
        // Flipped bit in the payload.
        let mut flipped = seg.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode_all(5, &flipped).1, a.len());
        // A frame written for segment 4 (a reused file) is not ours.
        assert_eq!(decode_all(6, &seg), (vec![], 0));
    }
}
