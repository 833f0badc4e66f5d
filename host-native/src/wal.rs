//! The write-ahead log in front of the redb shards: the native [`Store`].
//!
//! A group commit is one frame appended to the current log segment and
//! synced in the same call (`pwritev2` with `RWF_DSYNC`, the per-write form
//! of `fdatasync`; a segment is a preallocated, zero-filled file, so the
//! sync flushes data only). That is all an acknowledgement waits for. The group
//! is indexed in the in-memory overlay of its segment (where each record
//! sits in the file; reads fetch the bytes from the file). A checkpointer
//! thread streams each sealed segment's groups into redb (transactions of
//! ~256 KiB of log, adjacent byte-stream records merged), then retires the
//! segment (it becomes the next spare). Segments are sealed when full,
//! after a short idle time, and at close, so at most a few segments wait
//! for their checkpoint.
//!
//! Contracts:
//! - [`Store::commit`] returns `Ok` only once its frame is durable; on error
//!   nothing of the batch is visible, and the frame's bytes are zeroed
//!   before anything else is logged (a failed frame is never replayed in
//!   front of acknowledged ones).
//! - Reads see every committed batch: overlay first, redb for positions
//!   below the overlay's.
//! - Opening replays every segment present into the overlay (no disk space
//!   needed); the checkpointer then moves them into redb. Replaying a
//!   segment whose checkpoint had already landed is harmless: every op is
//!   an assignment (put, delete, insert, purge), applied in log order, and
//!   segments are retired oldest first, durably, so the segments present
//!   are always the newest.
//!
//! Frame format: see `wal/frame.rs`. Files: `log/NNNNNNNNNNNNNNNN.log` and
//! `log/spare` in the data directory (docs/design.md §4.1).

mod frame;
pub mod medium;
mod overlay;

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ds_core::{Batch, Deferred, Op, Pieces, Record, Store, StoreError, StreamId};

use crate::redb_shards::{OpenError, RedbShards};
use medium::{DirMedium, LogMedium, LogSegment};
use overlay::{Generation, Overlay};

/// Bytes of log applied to redb per checkpoint transaction (each one starts
/// every stream's merged record afresh; larger ones left more memory with
/// the allocator: 1 MiB cost ~200 bytes of RSS per stream in many-streams).
const CHECKPOINT_CHUNK: usize = 256 << 10;

/// How much nicer than the server the checkpointer thread runs (Linux).
#[cfg(target_os = "linux")]
const CHECKPOINT_NICE: i32 = 5;

/// Largest record a checkpoint makes of byte-stream records (the default
/// of [`LogOptions::merged_record_bytes`]): adjacent records are merged, so
/// catch-up reads fetch a few large values from redb instead of one small
/// value per append, and larger ones are cut. redb gives a value that
/// outgrows its leaf a page of the next power of two, so the size leaves
/// room for the leaf's header and key inside 64 KiB: records of exactly
/// 64 KiB took 128 KiB pages, which doubled the file (a 64 MiB stream: 121
/// MiB of redb file, now 69 MiB) and what a catch-up read copied from disk;
/// an uncut 1 MiB append took 2 MiB.
pub const MERGED_RECORD: usize = (64 << 10) - 256;

/// Appends `op` to `ops`, re-cutting byte-stream records into records of
/// `max` bytes: a mergeable append first fills the previous record of its
/// stream when that one is adjacent and has room (`open`: index in `ops` of
/// each stream's last record), the rest goes into new records of at most
/// `max` bytes. JSON messages are gathered whole into records of at most
/// `max` bytes (a larger message keeps a record of its own). Given the same
/// ops from the same starting point the cut is the same, so a checkpoint
/// repeated after a crash overwrites or clears every record the first one
/// stored (see `RedbShards::commit_ops`).
fn push_merging(merged: &mut Merged, open: &mut HashMap<StreamId, usize>, op: Op, max: usize) {
    let max = max.max(1);
    let Merged { ops, ends } = merged;
    match op {
        Op::Append {
            path,
            id,
            mut record,
            mergeable,
        } => {
            if let Some(i) = open.get(&id).copied() {
                if let (
                    Op::Append {
                        record: prev,
                        mergeable: same_kind,
                        ..
                    },
                    Some(list),
                ) = (&mut ops[i], ends[i].as_mut())
                {
                    if *same_kind == mergeable && prev.end() == record.start {
                        if mergeable {
                            // Bytes fill the previous record up to `max`.
                            let take = max.saturating_sub(prev.data.len()).min(record.data.len());
                            prev.data.extend_from_slice(&record.data[..take]);
                            if take == record.data.len() {
                                list.push(prev.end());
                                return;
                            }
                            record.data.drain(..take);
                            record.start += take as u64;
                        } else if prev.data.len() + record.data.len() <= max {
                            // A JSON message is never cut (PROTOCOL §9.1):
                            // it joins the previous record only whole; reads
                            // split the record at `list` again.
                            prev.data.extend_from_slice(&record.data);
                            list.push(prev.end());
                            return;
                        }
                    }
                }
            }
            while mergeable && record.data.len() > max {
                let rest = record.data.split_off(max);
                let next = record.start + max as u64;
                // The append goes on in the next record: no end in this one.
                ops.push(Op::Append {
                    path: path.clone(),
                    id,
                    record,
                    mergeable: true,
                });
                ends.push(Some(Vec::new()));
                record = Record {
                    start: next,
                    data: rest,
                };
            }
            open.insert(id, ops.len());
            ends.push(Some(vec![record.end()]));
            ops.push(Op::Append {
                path,
                id,
                record,
                mergeable,
            });
        }
        Op::PurgeData { id, .. } => {
            open.remove(&id);
            ops.push(op);
            ends.push(None);
        }
        Op::PutMeta { .. } | Op::DeleteMeta { .. } => {
            ops.push(op);
            ends.push(None);
        }
    }
}

/// What a checkpoint transaction stores: the re-cut ops, and of each
/// byte-stream record among them where the appends in it ended (for
/// [`Store::append_end`]; `Some(empty)` when its last append goes on in the
/// next record), of each JSON record where its messages end.
#[derive(Default)]
struct Merged {
    ops: Vec<Op>,
    ends: Vec<Option<Vec<u64>>>,
}

impl Merged {
    /// Drops every metadata write of a path that a later one in the same
    /// transaction replaces: each write logs its stream's metadata again,
    /// so a chunk holds hundreds of them per busy stream, and redb need only
    /// store the last (the transaction is atomic; the meta table is apart
    /// from the data records, so the order against them does not matter).
    fn keep_last_meta(&mut self) {
        let keep = ds_core::store::last_meta_writes(&self.ops);
        let mut flags = keep.iter();
        self.ops.retain(|_| *flags.next().unwrap_or(&true));
        let mut flags = keep.iter();
        self.ends.retain(|_| *flags.next().unwrap_or(&true));
    }
}

/// Tuning of a [`LoggedStore`].
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Size of a preallocated segment; a segment is sealed once the next
    /// frame would not fit (a frame larger than a segment gets its own).
    pub segment_bytes: u64,
    /// Seal the active segment after this long without a commit.
    pub idle_seal: Duration,
    /// Sealed segments waiting for their checkpoint before commits wait.
    pub max_sealed: usize,
    /// Run checkpoints on a background thread. Without it they run on the
    /// committing thread right after each commit is durable (tests: every
    /// sync happens in a deterministic order).
    pub background: bool,
    /// Largest byte-stream record a checkpoint stores ([`MERGED_RECORD`]).
    pub merged_record_bytes: usize,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            segment_bytes: 16 << 20,
            idle_seal: Duration::from_millis(100),
            max_sealed: 3,
            background: true,
            merged_record_bytes: MERGED_RECORD,
        }
    }
}

/// The native store: a write-ahead log, an overlay of what it holds, and
/// the redb shards behind them.
pub struct LoggedStore {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    redb: Arc<RedbShards>,
    medium: Box<dyn LogMedium>,
    options: LogOptions,
    /// Lock order: `writer` before `overlay`.
    writer: Mutex<Writer>,
    overlay: Mutex<Overlay>,
    control: Mutex<Control>,
    /// Held while a checkpoint runs.
    checkpointing: Mutex<()>,
    /// A checkpointed segment whose retirement failed (and whether it was
    /// to become the spare).
    unretired: Mutex<Option<(u64, bool)>>,
    /// Wakes the checkpointer, and commits waiting for room.
    changed: Condvar,
}

struct Writer {
    segment: Option<Active>,
    /// Number of the next segment to activate.
    next: u64,
    /// A failed write or sync left bytes `[from, to)` of the active segment
    /// unacknowledged; they are zeroed before anything else is logged.
    broken: Option<(u64, u64)>,
    last_commit: Instant,
}

struct Active {
    n: u64,
    file: Box<dyn LogSegment>,
    /// Preallocated length (0: the file grows with each write).
    capacity: u64,
    offset: u64,
}

#[derive(Default)]
struct Control {
    stop: bool,
    /// Why the last checkpoint failed (cleared by the next success).
    failure: Option<StoreError>,
}

impl LoggedStore {
    /// Opens the data directory `dir` (initialising it with `new_shards`
    /// shards), replaying its log.
    pub fn open(dir: &Path, new_shards: u32) -> Result<LoggedStore, OpenError> {
        let redb = RedbShards::open(dir, new_shards)?;
        let log_dir = dir.join("log");
        let medium = DirMedium::open(&log_dir).map_err(|e| OpenError::Io(log_dir.clone(), e))?;
        LoggedStore::with_medium(Arc::new(redb), Box::new(medium), LogOptions::default())
            .map_err(|e| OpenError::Io(log_dir, e))
    }

    /// A store over `redb` logging to `medium`; replays what `medium` holds.
    pub fn with_medium(
        redb: Arc<RedbShards>,
        medium: Box<dyn LogMedium>,
        options: LogOptions,
    ) -> io::Result<LoggedStore> {
        medium.discard_spare()?;
        let mut overlay = Overlay::default();
        let mut next = 1;
        for n in medium.segments()? {
            let file = medium.open_read(n)?;
            let mut g = Generation::new(n, Arc::clone(&file), false);
            let limit = file.size()?;
            for ((batch, data_at), end) in frame::frames(n, file.as_ref(), limit) {
                g.add(&batch, 0, end, &data_at);
            }
            overlay.sealed.push_back(Arc::new(g));
            next = n + 1;
        }
        if !overlay.sealed.is_empty() {
            tracing::info!(
                "replayed {} log segment(s), {} bytes of records",
                overlay.sealed.len(),
                overlay.bytes()
            );
        }
        let background = options.background;
        let shared = Arc::new(Shared {
            redb,
            medium,
            options,
            writer: Mutex::new(Writer {
                segment: None,
                next,
                broken: None,
                last_commit: Instant::now(),
            }),
            overlay: Mutex::new(overlay),
            control: Mutex::new(Control::default()),
            checkpointing: Mutex::new(()),
            unretired: Mutex::new(None),
            changed: Condvar::new(),
        });
        let thread = if background {
            let s = Arc::clone(&shared);
            Some(
                std::thread::Builder::new()
                    .name("checkpoint".into())
                    .spawn(move || s.run_checkpointer())?,
            )
        } else {
            shared.maintain();
            None
        };
        Ok(LoggedStore {
            shared,
            thread: Mutex::new(thread),
        })
    }

    /// Seals the active segment and moves everything logged into redb
    /// (waits for it). The log is empty afterwards unless a checkpoint fails.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.shared.seal();
        while self.shared.checkpoint_one()? {}
        Ok(())
    }

    /// Record bytes logged but not yet checkpointed into redb.
    pub fn overlay_bytes(&self) -> u64 {
        lock(&self.shared.overlay).bytes()
    }
}

impl Drop for LoggedStore {
    fn drop(&mut self) {
        lock(&self.shared.control).stop = true;
        self.shared.changed.notify_all();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match thread {
            Some(t) => {
                let _ = t.join();
            }
            None => {
                let _ = self.checkpoint();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Maps a log I/O failure; a full disk is distinct.
fn io_error(e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122)) {
        StoreError::Full
    } else {
        StoreError::Io {
            detail: format!("log: {e}"),
        }
    }
}

impl Shared {
    /// Logs `batch` durably and adds it to the overlay.
    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        self.wait_for_room()?;
        let mut w = lock(&self.writer);
        Self::repair(&mut w)?;
        let payload_len = frame::payload_len(batch);
        let len = (frame::HEADER + payload_len) as u64;
        let full = w.segment.as_ref().is_some_and(|s| {
            let limit = if s.capacity > 0 {
                s.capacity
            } else {
                self.options.segment_bytes
            };
            s.offset > 0 && s.offset + len > limit
        });
        if full {
            self.seal_locked(&mut w);
        }
        if w.segment.is_none() {
            let n = w.next;
            let (file, capacity) = self.medium.activate(n).map_err(io_error)?;
            w.next = n + 1;
            let reader = file.reader().map_err(io_error)?;
            w.segment = Some(Active {
                n,
                file,
                capacity,
                offset: 0,
            });
            lock(&self.overlay).active = Some(Generation::new(n, reader, capacity > 0));
        }
        let s = w.segment.as_mut().expect("activated above");
        let (bytes, data_at) = frame::encode(s.n, batch, payload_len);
        let at = s.offset;
        let end = at + bytes.len() as u64;
        if let Err(e) = s.file.write_durably(at, &bytes) {
            w.broken = Some((at, end));
            return Err(io_error(e));
        }
        s.offset = end;
        w.last_commit = Instant::now();
        if let Some(g) = lock(&self.overlay).active.as_mut() {
            g.add(batch, at, end, &data_at);
        }
        Ok(())
    }

    /// Zeroes what a failed write may have left, so it is never replayed.
    fn repair(w: &mut Writer) -> Result<(), StoreError> {
        let Some((from, to)) = w.broken else {
            return Ok(());
        };
        let s = w
            .segment
            .as_mut()
            .expect("a broken write belongs to the active segment");
        let zeros = vec![0u8; usize::try_from(to - from).unwrap_or(usize::MAX)];
        s.file
            .write_at(from, &zeros)
            .and_then(|()| s.file.sync())
            .map_err(io_error)?;
        w.broken = None;
        Ok(())
    }

    /// Waits while too many sealed segments wait for their checkpoint.
    fn wait_for_room(&self) -> Result<(), StoreError> {
        if !self.options.background {
            self.maintain();
            return Ok(());
        }
        let mut control = lock(&self.control);
        loop {
            if lock(&self.overlay).sealed.len() < self.options.max_sealed {
                return Ok(());
            }
            if let Some(e) = &control.failure {
                return Err(e.clone());
            }
            control = self
                .changed
                .wait_timeout(control, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Seals the active segment (if it holds anything).
    fn seal(&self) {
        let mut w = lock(&self.writer);
        if Self::repair(&mut w).is_ok() {
            self.seal_locked(&mut w);
        }
    }

    fn seal_locked(&self, w: &mut Writer) {
        debug_assert!(w.broken.is_none(), "a broken segment is repaired first");
        if w.segment.take().is_some() {
            let mut o = lock(&self.overlay);
            if let Some(g) = o.active.take() {
                o.sealed.push_back(Arc::new(g));
            }
            drop(o);
            self.changed.notify_all();
        }
    }

    /// Applies the oldest sealed segment to redb and retires it; false when
    /// none is sealed.
    fn checkpoint_one(&self) -> Result<bool, StoreError> {
        // One checkpoint at a time (the thread, and `checkpoint` callers).
        let _one = lock(&self.checkpointing);
        let result = self.checkpoint_locked();
        let mut control = lock(&self.control);
        match result {
            Ok(progress) => {
                control.failure = None;
                drop(control);
                self.changed.notify_all();
                Ok(progress)
            }
            Err(e) => {
                control.failure = Some(e.clone());
                Err(e)
            }
        }
    }

    fn checkpoint_locked(&self) -> Result<bool, StoreError> {
        // Segments are retired oldest first: one whose retirement failed
        // is retried before anything newer.
        let mut unretired = lock(&self.unretired);
        if let Some((n, as_spare)) = *unretired {
            self.medium.retire(n, as_spare).map_err(io_error)?;
            *unretired = None;
        }
        let Some(g) = lock(&self.overlay).sealed.front().cloned() else {
            return Ok(false);
        };
        // Applied in transactions of about CHECKPOINT_CHUNK bytes, frame by
        // frame: memory stays small whatever the segment size (a crash in
        // between replays the whole segment, which is harmless).
        let (mut at, mut merged, mut size) = (0, Merged::default(), 0);
        let mut open = HashMap::new();
        for ((batch, _), next) in frame::frames(g.segment, g.file.as_ref(), g.len) {
            size += (next - at) as usize;
            for op in batch.ops {
                push_merging(&mut merged, &mut open, op, self.options.merged_record_bytes);
            }
            at = next;
            if size >= CHECKPOINT_CHUNK || at >= g.len {
                // Without an fsync: the segment stays until `persist` below,
                // and a crash before it replays the whole segment again.
                merged.keep_last_meta();
                self.redb.commit_ops_lazily(&merged.ops, &merged.ends)?;
                (merged, size) = (Merged::default(), 0);
                open.clear();
            }
        }
        if at < g.len {
            return Err(StoreError::Corrupt {
                detail: format!("log segment {} unreadable at {at}", g.segment),
            });
        }
        // One durable commit per shard for the whole segment, not one per
        // transaction: the checkpoint's fsyncs no longer queue behind and
        // in front of the log's own.
        self.redb.persist()?;
        // In redb now: reads stop using the segment...
        lock(&self.overlay).sealed.pop_front();
        // ...and once no read holds it, it can be reused as the spare.
        let as_spare = g.preallocated && Arc::strong_count(&g.file) == 1;
        let n = g.segment;
        drop(g);
        if let Err(e) = self.medium.retire(n, as_spare) {
            *unretired = Some((n, as_spare));
            return Err(io_error(e));
        }
        Ok(true)
    }

    /// Inline maintenance (no background thread): checkpoints what is
    /// sealed and prepares a spare. Failures are retried next time.
    fn maintain(&self) {
        while let Ok(true) = self.checkpoint_one() {}
        if !self.medium.has_spare() {
            let _ = self.medium.prepare_spare(self.options.segment_bytes);
        }
    }

    /// The checkpointer thread: checkpoints sealed segments, seals an idle
    /// active one, keeps a spare ready; at stop, moves everything to redb.
    fn run_checkpointer(&self) {
        // Requests first: a checkpoint is a burst of CPU (a segment's redb
        // transactions) that nothing waits for until three segments are
        // sealed, so this thread runs at a lower priority (nice +5).
        // Durable append-many A/B: +2-7% per round in 3 s rounds, equal
        // over 20 s; p99 1.96 -> 1.89 ms. Linux only: there the nice value
        // is the calling thread's; elsewhere it would be the whole server's.
        #[cfg(target_os = "linux")]
        let _ = rustix::process::nice(CHECKPOINT_NICE);
        let mut retry_at: Option<Instant> = None;
        loop {
            {
                let control = lock(&self.control);
                if !control.stop {
                    let _ = self
                        .changed
                        .wait_timeout(control, self.options.idle_seal / 2)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
            let stop = lock(&self.control).stop;
            if stop {
                self.seal();
                while let Ok(true) = self.checkpoint_one() {}
                return;
            }
            if retry_at.is_some_and(|t| Instant::now() < t) {
                continue;
            }
            retry_at = None;
            let mut applied = false;
            loop {
                match self.checkpoint_one() {
                    Ok(true) => {
                        applied = true;
                        continue;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!("checkpoint into redb failed (will retry): {e}");
                        retry_at = Some(Instant::now() + Duration::from_millis(200));
                        break;
                    }
                }
            }
            // The checkpoint's transactions allocated and freed megabytes;
            // hand them back to the OS now rather than keep them until
            // this thread next allocates (a checkpoint costs far more).
            // (Measured: 0.3-0.8 ms each after 10,000 stream creations.)
            if applied {
                crate::allocator::release_free_memory();
            }
            if retry_at.is_some() {
                continue;
            }
            // A busy writer is not idle (and is not waited for).
            let idle = self.writer.try_lock().is_ok_and(|w| {
                w.segment.is_some() && w.last_commit.elapsed() >= self.options.idle_seal
            });
            if idle {
                self.seal();
                continue;
            }
            if !self.medium.has_spare() {
                if let Err(e) = self.medium.prepare_spare(self.options.segment_bytes) {
                    tracing::debug!("no spare log segment yet: {e}");
                    retry_at = Some(Instant::now() + Duration::from_millis(500));
                    continue;
                }
            }
            // A segment activated without a spare (at start, or when the
            // disk was nearly full) grows with every write, so each fsync
            // also journals its new size (about twice the time): sealed as
            // soon as a spare is ready, the next write goes to the spare.
            let growing = self
                .writer
                .try_lock()
                .is_ok_and(|w| w.segment.as_ref().is_some_and(|s| s.capacity == 0));
            if growing && self.medium.has_spare() {
                self.seal();
            }
        }
    }
}

/// Bytes of a stream read when a response gets to them
/// ([`Store::defer_bytes`]): read then exactly as `lend_bytes` would, from
/// the log or redb, wherever they are by that time.
struct LaterBytes {
    shared: Arc<Shared>,
    path: String,
    id: StreamId,
    range: std::ops::Range<u64>,
}

impl Deferred for LaterBytes {
    fn len(&self) -> usize {
        usize::try_from(self.range.end - self.range.start).unwrap_or(usize::MAX)
    }

    fn load(&self, out: &mut Pieces) -> Result<(), StoreError> {
        let Self {
            shared,
            path,
            id,
            range,
        } = self;
        shared.lend_bytes(path, *id, range.start, range.end, self.len(), out)
    }
}

impl Shared {
    /// [`Store::lend_bytes`]: checkpointed bytes lent by redb, the rest read
    /// from the log (one copy).
    fn lend_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
        out: &mut Pieces,
    ) -> Result<(), StoreError> {
        let limit = end.min(from.saturating_add(max_bytes as u64));
        let found = lock(&self.overlay).find(id, from, limit, usize::MAX);
        let before = out.len();
        if let Some(below) = found.redb_part(from, limit) {
            self.redb
                .lend_bytes(path, id, from, below, max_bytes, out)?;
        }
        let pos = from + (out.len() - before) as u64;
        if pos < limit && found.first.is_some_and(|first| pos >= first) {
            let mut bytes = Vec::new();
            found.copy_into(pos, limit, &mut bytes).map_err(io_error)?;
            out.push_owned(bytes);
        }
        Ok(())
    }
}

impl Store for LoggedStore {
    fn load_meta(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // Under the overlay lock: no checkpoint can land unseen in between.
        let overlay = lock(&self.shared.overlay);
        let mut meta: HashMap<String, Vec<u8>> =
            self.shared.redb.load_meta()?.into_iter().collect();
        for g in overlay
            .sealed
            .iter()
            .map(|g| g.as_ref())
            .chain(overlay.active.as_ref())
        {
            for ((batch, _), _) in frame::frames(g.segment, g.file.as_ref(), g.len) {
                for op in batch.ops {
                    match op {
                        Op::PutMeta { path, meta: blob } => {
                            meta.insert(path, blob);
                        }
                        Op::DeleteMeta { path } => {
                            meta.remove(&path);
                        }
                        Op::Append { .. } | Op::PurgeData { .. } => {}
                    }
                }
            }
        }
        Ok(meta.into_iter().collect())
    }

    fn read(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let found = lock(&self.shared.overlay).find(id, from, end, max_bytes);
        let mut out = match found.redb_part(from, end) {
            Some(below) => self.shared.redb.read(path, id, from, below, max_bytes)?,
            None => Vec::new(),
        };
        let mut total: usize = out.iter().map(|r| r.data.len()).sum();
        if total < max_bytes || out.is_empty() {
            for r in found.load().map_err(io_error)? {
                if total >= max_bytes && !out.is_empty() {
                    break;
                }
                total += r.data.len();
                out.push(r);
            }
        }
        Ok(out)
    }

    fn append_end(&self, path: &str, id: StreamId, at: u64) -> Result<Option<u64>, StoreError> {
        // The log keeps each append as its own record; redb remembers the
        // ends of the appends a checkpoint merged.
        let found = lock(&self.shared.overlay).find(id, at, at.saturating_add(1), 1);
        if found.redb_part(at, at.saturating_add(1)).is_some() {
            return self.shared.redb.append_end(path, id, at);
        }
        let records = found.load().map_err(io_error)?;
        Ok(records.first().filter(|r| r.start <= at).map(Record::end))
    }

    fn lend_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
        out: &mut Pieces,
    ) -> Result<(), StoreError> {
        self.shared.lend_bytes(path, id, from, end, max_bytes, out)
    }

    fn defers(&self) -> bool {
        true
    }

    fn defer_bytes(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
    ) -> Option<Arc<dyn Deferred>> {
        Some(Arc::new(LaterBytes {
            shared: Arc::clone(&self.shared),
            path: path.to_owned(),
            id,
            range: from..end.max(from),
        }))
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // The checkpointer is woken when a segment is sealed, not per commit.
        self.shared.commit(batch)
    }
}
