//! The archive format: a versioned, checksummed, streamable file holding
//! streams with their data and state, written by `export` and read by
//! `import` on every host (see docs/design.md §8).
//!
//! ```text
//! archive  = magic "DSARCHIV" · version u32 LE · record* (the last is End)
//! record   = kind u8 · length u32 LE · payload[length] · crc32 u32 LE
//!            (CRC-32/ISO-HDLC of kind, length and payload)
//! kind 1   Begin   JSON [`ArchiveInfo`]
//! kind 2   Stream  JSON [`StreamEntry`]; the Data records after it are its own
//! kind 3   Data    start u64 LE · the record's bytes
//! kind 4   End     JSON [`Trailer`]: counts and the CRC of every byte before it
//! ```
//!
//! Records are written and read one at a time, so neither side holds more
//! than one record in memory. A reader rejects a wrong magic, an unknown
//! version, a bad checksum, a missing or inconsistent trailer, and anything
//! after it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// First bytes of every archive.
pub const MAGIC: &[u8; 8] = b"DSARCHIV";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const KIND_BEGIN: u8 = 1;
const KIND_STREAM: u8 = 2;
const KIND_DATA: u8 = 3;
const KIND_END: u8 = 4;

/// What the archive holds, written first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    /// The program that wrote it (name and version).
    pub writer: String,
    /// When it was written (Unix milliseconds).
    pub created_at: u64,
    /// The root-relative path prefix exported (`""`: everything).
    pub prefix: String,
}

/// Expiry policy of an archived stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchivedExpiry {
    /// Lives until deleted.
    Never,
    /// Sliding window of `secs`, last renewed at `last_access` (ms).
    Ttl {
        /// The window in seconds (`Stream-TTL`).
        secs: u64,
        /// The last read or write (Unix milliseconds).
        last_access: u64,
    },
    /// Absolute deadline `at` (ms); `text` is the `Stream-Expires-At` sent.
    At {
        /// The deadline (Unix milliseconds).
        at: u64,
        /// The RFC 3339 text the client sent.
        text: String,
    },
}

/// Where an archived fork branches from its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedFork {
    /// The source's root-relative path.
    pub source: String,
    /// The source's [`StreamEntry::id`] in the same archive.
    pub source_id: u64,
    /// The divergence position.
    pub point: u64,
    /// The `Stream-Fork-Offset` position it was created with.
    pub anchor: u64,
    /// The `Stream-Fork-Sub-Offset` it was created with.
    pub sub_offset: u64,
}

/// The producer request that closed a stream (for duplicate detection).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedClaim {
    /// `Producer-Id`.
    pub id: String,
    /// `Producer-Epoch`.
    pub epoch: u64,
    /// `Producer-Seq`.
    pub seq: u64,
}

/// One idempotent producer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedProducer {
    /// The current epoch.
    pub epoch: u64,
    /// The highest accepted sequence number in it.
    pub last_seq: u64,
}

/// Everything about one stream except its data, which follows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    /// Root-relative path (`chat/room-1`).
    pub path: String,
    /// The stream's id where it was exported (links forks to sources).
    pub id: u64,
    /// Content type as given at creation.
    pub content_type: String,
    /// Creation time (Unix milliseconds).
    pub created_at: u64,
    /// Expiry policy.
    pub expiry: ArchivedExpiry,
    /// Tail position: the next offset.
    pub tail: u64,
    /// Closed (EOF).
    pub closed: bool,
    /// The producer request that closed it.
    pub closed_by: Option<ArchivedClaim>,
    /// Present for forks.
    pub fork: Option<ArchivedFork>,
    /// Deleted but kept for its forks.
    pub soft_deleted: bool,
    /// The last accepted `Stream-Seq`.
    pub last_stream_seq: Option<String>,
    /// Idempotent producer state by producer id.
    pub producers: BTreeMap<String, ArchivedProducer>,
}

impl StreamEntry {
    /// First position of the stream's own records (a fork's point, else 0).
    pub fn data_start(&self) -> u64 {
        self.fork.as_ref().map_or(0, |f| f.point)
    }
}

/// The closing record: what a complete archive holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Stream records written.
    pub streams: u64,
    /// Data records written.
    pub records: u64,
    /// Data bytes written.
    pub bytes: u64,
    /// CRC-32 of every archive byte before the End record.
    pub crc32: u32,
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A stream; its data records follow.
    Stream(Box<StreamEntry>),
    /// One data record of the last stream.
    Data {
        /// Its position in the stream.
        start: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
}

/// Why an archive cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveError {
    /// Reading or writing the underlying file failed.
    Io(String),
    /// Not an archive (wrong magic bytes).
    NotAnArchive,
    /// Written by a format version this build does not read.
    UnsupportedVersion(u32),
    /// A record's checksum does not match: the archive is corrupt.
    Checksum {
        /// Byte offset of the record.
        at: u64,
    },
    /// The archive ends before its End record.
    Truncated,
    /// A record is well-formed but makes no sense here.
    Malformed(String),
    /// The archive is fine but importing it conflicts with existing streams
    /// (`--on-conflict fail`), listed root-relative.
    Conflict(Vec<String>),
    /// The engine has staged writes; commit them before exporting.
    Busy,
    /// The store failed while importing or exporting.
    Store(String),
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::Io(e) => write!(f, "archive I/O failed: {e}"),
            ArchiveError::NotAnArchive => write!(f, "not a Durable Streams archive"),
            ArchiveError::UnsupportedVersion(v) => write!(
                f,
                "archive format version {v} is not supported (this build reads version {FORMAT_VERSION})"
            ),
            ArchiveError::Checksum { at } => {
                write!(f, "archive is corrupt: checksum mismatch in the record at byte {at}")
            }
            ArchiveError::Truncated => write!(f, "archive is truncated: it ends before its End record"),
            ArchiveError::Malformed(m) => write!(f, "archive is malformed: {m}"),
            ArchiveError::Conflict(paths) => write!(
                f,
                "{} stream(s) already exist (first: {}); nothing was imported",
                paths.len(),
                paths.first().map_or("", String::as_str)
            ),
            ArchiveError::Busy => write!(f, "writes are staged; commit them before exporting"),
            ArchiveError::Store(e) => write!(f, "storage failed: {e}"),
        }
    }
}

impl std::error::Error for ArchiveError {}

impl From<io::Error> for ArchiveError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ArchiveError::Truncated
        } else {
            ArchiveError::Io(e.to_string())
        }
    }
}

/// Writes an archive record by record.
pub struct ArchiveWriter<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    streams: u64,
    records: u64,
    bytes: u64,
    written: u64,
}

impl<W: Write> ArchiveWriter<W> {
    /// Writes the magic, version and Begin record.
    pub fn new(out: W, info: &ArchiveInfo) -> Result<Self, ArchiveError> {
        let mut w = ArchiveWriter {
            out,
            crc: crc32fast::Hasher::new(),
            streams: 0,
            records: 0,
            bytes: 0,
            written: 0,
        };
        w.put(MAGIC)?;
        w.put(&FORMAT_VERSION.to_le_bytes())?;
        w.record(KIND_BEGIN, &[&json(info)])?;
        Ok(w)
    }

    /// Writes a stream; its data records must follow.
    pub fn stream(&mut self, entry: &StreamEntry) -> Result<(), ArchiveError> {
        self.streams += 1;
        self.record(KIND_STREAM, &[&json(entry)])
    }

    /// Writes one data record of the last stream.
    pub fn data(&mut self, start: u64, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.records += 1;
        self.bytes += bytes.len() as u64;
        self.record(KIND_DATA, &[&start.to_le_bytes(), bytes])
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the End record, flushes, and returns the output and trailer.
    pub fn finish(mut self) -> Result<(W, Trailer), ArchiveError> {
        let trailer = Trailer {
            streams: self.streams,
            records: self.records,
            bytes: self.bytes,
            crc32: self.crc.clone().finalize(),
        };
        self.record(KIND_END, &[&json(&trailer)])?;
        self.out.flush()?;
        Ok((self.out, trailer))
    }

    fn record(&mut self, kind: u8, parts: &[&[u8]]) -> Result<(), ArchiveError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).map_err(|_| {
            ArchiveError::Malformed(format!("a record of {len} bytes is too large"))
        })?;
        let mut sum = crc32fast::Hasher::new();
        let head = [&[kind][..], &len.to_le_bytes()].concat();
        sum.update(&head);
        self.put(&head)?;
        for p in parts {
            sum.update(p);
            self.put(p)?;
        }
        self.put(&sum.finalize().to_le_bytes())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        self.out.write_all(bytes)?;
        Ok(())
    }
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("archive records always serialize")
}

/// Reads an archive record by record, verifying as it goes.
pub struct ArchiveReader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    at: u64,
    info: ArchiveInfo,
    streams: u64,
    records: u64,
    bytes: u64,
    in_stream: bool,
    trailer: Option<Trailer>,
}

impl<R: Read> ArchiveReader<R> {
    /// Checks the magic and version and reads the Begin record.
    pub fn new(input: R) -> Result<Self, ArchiveError> {
        let mut r = ArchiveReader {
            input,
            crc: crc32fast::Hasher::new(),
            at: 0,
            info: ArchiveInfo {
                writer: String::new(),
                created_at: 0,
                prefix: String::new(),
            },
            streams: 0,
            records: 0,
            bytes: 0,
            in_stream: false,
            trailer: None,
        };
        let mut magic = [0u8; 8];
        r.take(&mut magic).map_err(|e| match e {
            ArchiveError::Truncated => ArchiveError::NotAnArchive,
            e => e,
        })?;
        if &magic != MAGIC {
            return Err(ArchiveError::NotAnArchive);
        }
        let mut version = [0u8; 4];
        r.take(&mut version)?;
        let version = u32::from_le_bytes(version);
        if version != FORMAT_VERSION {
            return Err(ArchiveError::UnsupportedVersion(version));
        }
        match r.record()? {
            (KIND_BEGIN, payload) => r.info = parse(&payload, "Begin")?,
            (kind, _) => {
                return Err(ArchiveError::Malformed(format!(
                    "expected the Begin record, found kind {kind}"
                )))
            }
        }
        Ok(r)
    }

    /// What the Begin record says.
    pub fn info(&self) -> &ArchiveInfo {
        &self.info
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.at
    }

    /// The next stream or data record; `None` after a valid End record.
    pub fn next_item(&mut self) -> Result<Option<Item>, ArchiveError> {
        if self.trailer.is_some() {
            return Ok(None);
        }
        let before = self.crc.clone().finalize();
        let (kind, payload) = self.record()?;
        match kind {
            KIND_STREAM => {
                self.streams += 1;
                self.in_stream = true;
                Ok(Some(Item::Stream(Box::new(parse(&payload, "Stream")?))))
            }
            KIND_DATA => {
                if !self.in_stream || payload.len() < 8 {
                    return Err(ArchiveError::Malformed(
                        "a data record outside a stream".into(),
                    ));
                }
                let (start, bytes) = payload.split_at(8);
                let start = u64::from_le_bytes(start.try_into().expect("8 bytes"));
                self.records += 1;
                self.bytes += bytes.len() as u64;
                Ok(Some(Item::Data {
                    start,
                    bytes: bytes.to_vec(),
                }))
            }
            KIND_END => {
                let t: Trailer = parse(&payload, "End")?;
                let counts = (t.streams, t.records, t.bytes);
                if counts != (self.streams, self.records, self.bytes) || t.crc32 != before {
                    return Err(ArchiveError::Malformed(format!(
                        "the End record promises {} streams, {} records, {} bytes (crc {:08x}); \
                         the archive holds {}, {}, {} (crc {before:08x})",
                        t.streams,
                        t.records,
                        t.bytes,
                        t.crc32,
                        self.streams,
                        self.records,
                        self.bytes
                    )));
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(ArchiveError::Malformed(
                        "bytes follow the End record".into(),
                    ));
                }
                self.trailer = Some(t);
                Ok(None)
            }
            other => Err(ArchiveError::Malformed(format!(
                "unknown record kind {other}"
            ))),
        }
    }

    /// The trailer, once [`ArchiveReader::next_item`] returned `None`.
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    fn record(&mut self) -> Result<(u8, Vec<u8>), ArchiveError> {
        let start = self.at;
        let mut head = [0u8; 5];
        self.take(&mut head)?;
        let len = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")) as u64;
        let mut payload = Vec::new();
        // Grows only as bytes arrive: a corrupt length cannot allocate.
        (&mut self.input).take(len).read_to_end(&mut payload)?;
        if payload.len() as u64 != len {
            return Err(ArchiveError::Truncated);
        }
        self.crc.update(&payload);
        self.at += len;
        let mut sum = [0u8; 4];
        self.take(&mut sum)?;
        let mut expect = crc32fast::Hasher::new();
        expect.update(&head);
        expect.update(&payload);
        if expect.finalize() != u32::from_le_bytes(sum) {
            return Err(ArchiveError::Checksum { at: start });
        }
        Ok((head[0], payload))
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), ArchiveError> {
        self.input.read_exact(buf)?;
        self.crc.update(buf);
        self.at += buf.len() as u64;
        Ok(())
    }
}

fn parse<T: for<'de> Deserialize<'de>>(payload: &[u8], what: &str) -> Result<T, ArchiveError> {
    serde_json::from_slice(payload)
        .map_err(|e| ArchiveError::Malformed(format!("{what} record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> StreamEntry {
        StreamEntry {
            path: path.into(),
            id: 7,
            content_type: "text/plain".into(),
            created_at: 1,
            expiry: ArchivedExpiry::Never,
            tail: 5,
            closed: false,
            closed_by: None,
            fork: None,
            soft_deleted: false,
            last_stream_seq: None,
            producers: BTreeMap::new(),
        }
    }

    fn sample() -> Vec<u8> {
        let info = ArchiveInfo {
            writer: "test".into(),
            created_at: 2,
            prefix: String::new(),
        };
        let mut w = ArchiveWriter::new(Vec::new(), &info).unwrap();
        w.stream(&entry("a")).unwrap();
        w.data(0, b"hello").unwrap();
        w.finish().unwrap().0
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Item>, ArchiveError> {
        let mut r = ArchiveReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(item) = r.next_item()? {
            out.push(item);
        }
        Ok(out)
    }

    #[test]
    fn round_trips() {
        let items = read_all(&sample()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], Item::Stream(Box::new(entry("a"))));
        assert_eq!(
            items[1],
            Item::Data {
                start: 0,
                bytes: b"hello".to_vec()
            }
        );
    }

    #[test]
    fn detects_damage() {
        let good = sample();
        assert_eq!(read_all(b"nope"), Err(ArchiveError::NotAnArchive));
        let mut v2 = good.clone();
        v2[8] = 2;
        assert_eq!(read_all(&v2), Err(ArchiveError::UnsupportedVersion(2)));
        for cut in [good.len() - 1, good.len() - 30, 20] {
            assert!(read_all(&good[..cut]).is_err(), "cut at {cut}");
        }
        let flip = good.len() / 2;
        let mut bad = good.clone();
        bad[flip] ^= 0x40;
        assert!(read_all(&bad).is_err());
        let mut extra = good.clone();
        extra.push(0);
        assert!(matches!(read_all(&extra), Err(ArchiveError::Malformed(_))));
    }
}
