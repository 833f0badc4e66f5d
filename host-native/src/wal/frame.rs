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
//!         | 4 path id start data   Append (mergeable: a byte-stream record)
//! path    = len:u32le utf8[len]    meta, data = len:u64le bytes[len]
//! id, start = u64le
//! ```
//!
//! Segments are preallocated with zeros, so the log ends at the first frame
//! whose length is zero, whose bytes run past the segment, or whose checksum
//! does not match (a torn write, or a frame left over from an older segment
//! file: the segment number inside the checksum tells them apart).

use ds_core::{Batch, Op, Record};

use super::medium::LogRead;

/// Bytes before a frame's payload.
pub const HEADER: usize = 8;

const PUT_META: u8 = 0;
const DELETE_META: u8 = 1;
const APPEND: u8 = 2;
const PURGE_DATA: u8 = 3;
const APPEND_MERGEABLE: u8 = 4;

/// Length of `batch`'s frame payload (the frame is [`HEADER`] longer).
pub fn payload_len(batch: &Batch) -> usize {
    4 + batch.ops.iter().map(op_size).sum::<usize>()
}

/// Encodes `batch` as one frame of segment `segment`, its payload being
/// `payload_len` bytes (from [`payload_len`]); also returns where each
/// append's data starts within the frame (in op order).
pub fn encode(segment: u64, batch: &Batch, payload_len: usize) -> (Vec<u8>, Vec<u64>) {
    let size = HEADER + payload_len;
    let mut out = Vec::with_capacity(size);
    let mut data_at = Vec::new();
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
            Op::Append {
                path,
                id,
                record,
                mergeable,
            } => {
                out.push(if *mergeable { APPEND_MERGEABLE } else { APPEND });
                put_path(&mut out, path);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&record.start.to_le_bytes());
                data_at.push(out.len() as u64 + 8);
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
    (out, data_at)
}

/// One decoded frame: its batch, and where each append's data starts in
/// the segment (in op order).
pub type Decoded = (Batch, Vec<u64>);

/// Reads the frame at `at` of segment `segment` through `file`: its batch,
/// each append's data offset in the segment, and where the next frame
/// starts. `None` where the log ends (zeros, a torn or foreign frame, or
/// `limit`, which no frame may cross).
///
/// The length field is checked against `limit` before anything is
/// allocated: past the log's end a recycled segment holds old bytes, and a
/// length read from them can be anything up to 4 GiB. `buf` is scratch
/// space for the payload, reused from frame to frame.
fn read_frame(
    segment: u64,
    file: &mut impl ReadAt,
    at: u64,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Option<(Decoded, u64)> {
    if at + HEADER as u64 > limit {
        return None;
    }
    let mut header = [0u8; HEADER];
    file.read_at(at, &mut header).ok()?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len == 0 || at + (HEADER + len) as u64 > limit {
        return None;
    }
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let payload = &mut buf[..len];
    file.read_at(at + HEADER as u64, payload).ok()?;
    if checksum(segment, payload) != crc {
        return None;
    }
    let (batch, data_at) = decode_payload(payload)?;
    let base = at + HEADER as u64;
    let next = base + len as u64;
    Some((
        (batch, data_at.into_iter().map(|d| base + d).collect()),
        next,
    ))
}

/// Every frame of segment `segment` from its start, with where each ends,
/// until the log ends or reaches `limit` (see [`read_frame`]). The segment
/// is read ahead in windows of [`WINDOW`] bytes: a frame costs a copy, not
/// two system calls (the checkpointer made ~12k reads a second under load).
pub fn frames(
    segment: u64,
    file: &dyn LogRead,
    limit: u64,
) -> impl Iterator<Item = (Decoded, u64)> + '_ {
    let mut at = 0;
    let mut buf = Vec::new();
    let mut ahead = Ahead {
        file,
        limit,
        start: 0,
        window: Vec::new(),
    };
    std::iter::from_fn(move || {
        let (frame, next) = read_frame(segment, &mut ahead, at, limit, &mut buf)?;
        at = next;
        Some((frame, next))
    })
}

/// Bytes a sequential read of a segment fetches at a time.
pub const WINDOW: usize = 256 << 10;

/// What [`read_frame`] reads from.
trait ReadAt {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// A segment read front to back through one window: reads inside it are
/// copies; one outside it refills it from there (up to `limit`). A frame
/// larger than the window is read directly.
struct Ahead<'a> {
    file: &'a dyn LogRead,
    limit: u64,
    /// Where `window` starts in the segment.
    start: u64,
    window: Vec<u8>,
}

impl ReadAt for Ahead<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let inside = offset
            .checked_sub(self.start)
            .map(|from| from as usize)
            .filter(|from| from + buf.len() <= self.window.len());
        if let Some(from) = inside {
            buf.copy_from_slice(&self.window[from..from + buf.len()]);
            return Ok(());
        }
        if buf.len() >= WINDOW {
            return self.file.read_at(offset, buf);
        }
        let len = (self.limit.saturating_sub(offset).min(WINDOW as u64) as usize).max(buf.len());
        self.window.resize(len, 0);
        if self.file.read_at(offset, &mut self.window).is_err() {
            // Past what can be read ahead (an error near the segment's
            // end): just what was asked for.
            self.window.clear();
            return self.file.read_at(offset, buf);
        }
        self.start = offset;
        buf.copy_from_slice(&self.window[..buf.len()]);
        Ok(())
    }
}

fn decode_payload(payload: &[u8]) -> Option<(Batch, Vec<u64>)> {
    let mut r = Reader {
        rest: payload,
        at: 0,
    };
    let count = r.u32()? as usize;
    let mut ops = Vec::with_capacity(count.min(payload.len()));
    let mut data_at = Vec::new();
    for _ in 0..count {
        let op = match r.u8()? {
            PUT_META => Op::PutMeta {
                path: r.path()?,
                meta: r.bytes()?,
            },
            DELETE_META => Op::DeleteMeta { path: r.path()? },
            tag @ (APPEND | APPEND_MERGEABLE) => {
                let path = r.path()?;
                let id = r.u64()?;
                let start = r.u64()?;
                data_at.push((r.at + 8) as u64);
                let data = r.bytes()?;
                Op::Append {
                    path,
                    id,
                    record: Record { start, data },
                    mergeable: tag == APPEND_MERGEABLE,
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
    r.rest.is_empty().then_some((Batch { ops }, data_at))
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

struct Reader<'a> {
    rest: &'a [u8],
    /// Bytes consumed so far.
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        self.at += n;
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
    use std::io;

    struct Bytes<'a>(&'a [u8]);

    impl super::super::medium::LogRead for Bytes<'_> {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let src = self
                .0
                .get(offset as usize..offset as usize + buf.len())
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            Ok(())
        }

        fn size(&self) -> io::Result<u64> {
            Ok(self.0.len() as u64)
        }
    }

    /// Every frame of a segment's bytes, and where the valid prefix ends.
    fn decode_all(segment: u64, bytes: &[u8]) -> (Vec<Decoded>, usize) {
        let (mut all, mut at) = (Vec::new(), 0);
        for (frame, end) in frames(segment, &Bytes(bytes), bytes.len() as u64) {
            all.push(frame);
            at = end;
        }
        (all, at as usize)
    }

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
                    mergeable: true,
                },
                Op::Append {
                    path: "/s/j".into(),
                    id: 8,
                    record: Record {
                        start: 0,
                        data: b"[1]".to_vec(),
                    },
                    mergeable: false,
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
        let (mut seg, data_at) = encode(5, &sample(), payload_len(&sample()));
        let first = seg.len();
        // The data offset points at the append's bytes.
        assert_eq!(&seg[data_at[0] as usize..][..5], b"hello");
        seg.extend(encode(5, &Batch { ops: vec![] }, 4).0);
        let valid = seg.len();
        seg.extend([0u8; 64]);
        let (frames, end) = decode_all(5, &seg);
        let batches: Vec<Batch> = frames.iter().map(|(b, _)| b.clone()).collect();
        assert_eq!(batches, vec![sample(), Batch { ops: vec![] }]);
        assert_eq!(frames[0].1, data_at);
        assert_eq!(end, valid);
        assert!(first < valid);
    }

    #[test]
    fn a_torn_or_foreign_frame_ends_the_log() {
        let a = encode(5, &sample(), payload_len(&sample())).0;
        let mut seg = a.clone();
        seg.extend(encode(5, &sample(), payload_len(&sample())).0);
        // Torn: the second frame's last byte never reached the disk.
        let torn = &seg[..seg.len() - 1];
        let (frames, end) = decode_all(5, torn);
        assert_eq!((frames.len(), end), (1, a.len()));
        // Flipped bit in the payload.
        let mut flipped = seg.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode_all(5, &flipped).1, a.len());
        // A frame written for segment 4 (a reused file) is not ours.
        assert_eq!(decode_all(6, &seg).1, 0);
    }

    #[test]
    fn a_length_past_the_limit_ends_the_log_before_any_read() {
        // Old bytes after the log's end claim a 4 GiB frame.
        let a = encode(5, &sample(), payload_len(&sample())).0;
        let mut seg = a.clone();
        seg.extend([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 9, 9]);
        assert_eq!(decode_all(5, &seg).1, a.len());
        // A limit inside the first frame: nothing is read.
        let mut buf = Vec::new();
        let limit = a.len() as u64 - 1;
        let mut ahead = Ahead {
            file: &Bytes(&seg),
            limit,
            start: 0,
            window: Vec::new(),
        };
        assert!(read_frame(5, &mut ahead, 0, limit, &mut buf).is_none());
        assert!(buf.is_empty());
        // The limit bounds what is read even where the bytes go on.
        assert_eq!(frames(5, &Bytes(&seg), a.len() as u64).count(), 1);
    }

    /// Counts the reads that reach the file.
    struct Counted<'a>(Bytes<'a>, std::sync::atomic::AtomicUsize);

    impl super::super::medium::LogRead for Counted<'_> {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.read_at(offset, buf)
        }

        fn size(&self) -> io::Result<u64> {
            self.0.size()
        }
    }

    #[test]
    fn a_segment_is_read_a_window_at_a_time() {
        // ~1 MiB of small frames, and one frame larger than a window.
        let mut seg = Vec::new();
        let mut expected = Vec::new();
        for i in 0..4000u64 {
            let data = if i == 2000 {
                vec![7u8; WINDOW + 10]
            } else {
                vec![i as u8; 200]
            };
            let batch = Batch {
                ops: vec![Op::Append {
                    path: "/s/a".into(),
                    id: 1,
                    record: Record { start: i, data },
                    mergeable: true,
                }],
            };
            seg.extend(encode(9, &batch, payload_len(&batch)).0);
            expected.push(batch);
        }
        let valid = seg.len();
        seg.extend([0u8; 100]);
        let file = Counted(Bytes(&seg), Default::default());
        let read: Vec<Batch> = frames(9, &file, seg.len() as u64)
            .map(|((b, _), _)| b)
            .collect();
        assert_eq!(read, expected, "every frame, byte for byte");
        let reads = file.1.load(std::sync::atomic::Ordering::Relaxed);
        // Windows over the small frames, plus the large frame's own reads.
        assert!(
            reads <= valid / WINDOW + 6,
            "{reads} reads for {valid} bytes"
        );
        // And the log still ends where the frames do.
        assert_eq!(decode_all(9, &seg).1, valid);
    }
}
