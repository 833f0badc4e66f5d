//! redb file shards: N databases in a data directory, chosen by the core's
//! versioned path hash, pinned by a layout manifest.
//!
//! Each shard holds two tables: `meta` (stream path → metadata blob) and
//! `data` ((stream id, start position) → record bytes). A batch is split by
//! shard and each part is one write transaction with immediate durability,
//! so everything a response acknowledges is on disk first (see
//! docs/design.md for why cross-shard invariants need no distributed commit).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ds_core::shard::{shard_of, SHARD_POLICY};
use ds_core::{Batch, Op, Pieces, Record, Store, StoreError, StreamId};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageBackend,
    TableDefinition,
};
use serde::{Deserialize, Serialize};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DATA: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("data");
/// Of each record a checkpoint merged from several appends (same key as in
/// `data`): where those appends ended, in `(start, end]`, as LEB128 deltas
/// from `start`. Its end is missing when the last append goes on in the next
/// record. A record without an entry ends where its one append ended.
const APPEND_ENDS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("append_ends");
/// Of each record a checkpoint gathered from several JSON messages (same key
/// as in `data`): where the messages end, in `(start, end]`, as LEB128
/// deltas from `start`, the last one at the record's end. Reads split the
/// record there (PROTOCOL §9.1: message boundaries are kept). A record
/// without an entry is one message.
const MESSAGE_ENDS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("message_ends");

/// Version of the on-disk layout (manifest, tables, key encodings). 2 added
/// the write-ahead log directory `log/` (see [`crate::wal`]): a server that
/// only knows 1 would ignore acknowledged writes still in the log, so it
/// must refuse the directory. 3 gathers JSON messages into records split by
/// `message_ends`: a server that only knows 2 would read such a record as
/// one message.
pub const LAYOUT_VERSION: u32 = 3;
/// Versions this server opens; an older one is upgraded in place.
const READABLE_VERSIONS: [u32; 3] = [1, 2, 3];
/// Shards created in a new data directory (existing directories keep the
/// count their `layout.json` pins). One: with group commit every group is
/// one transaction and one fsync however many streams it touches, which
/// measured twice as fast as committing four shards in parallel (64 writers
/// on distinct streams, durable: 12.1k → 23.7k appends/s on 2 cores).
pub const DEFAULT_SHARDS: u32 = 1;
const MANIFEST: &str = "layout.json";

/// redb's page cache per shard, in bytes (redb's default is 1 GiB). redb
/// moves every page a commit writes into this cache, so with the default the
/// process kept nearly all recently written data (10k streams x 1 KiB: ~20 MiB)
/// on top of the OS page cache that holds the same file pages. A small cache
/// still keeps the upper B-tree pages that every lookup walks; other pages are
/// read from the file, usually from the OS page cache. The price: a catch-up
/// read of a stream that would have fit the old cache is slower (64 MiB:
/// ~760 -> ~410 MiB/s on a 2-core machine).
const CACHE_BYTES: usize = 1 << 20;

/// The layout manifest, `layout.json` in the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// [`LAYOUT_VERSION`] of the directory.
    pub format_version: u32,
    /// Number of shard files.
    pub shards: u32,
    /// Name of the path → shard hash policy.
    pub hash: String,
}

/// Why a data directory cannot be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The directory or a file in it could not be read or created.
    Io(PathBuf, std::io::Error),
    /// `layout.json` is unreadable or describes another layout.
    Layout(String),
    /// A shard file could not be opened (held by another process, corrupt).
    Shard(PathBuf, redb::DatabaseError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            OpenError::Layout(m) => write!(f, "{m}"),
            OpenError::Shard(p, redb::DatabaseError::DatabaseAlreadyOpen) => {
                write!(f, "{}: already open by another process (is another server using this data directory?)", p.display())
            }
            OpenError::Shard(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for OpenError {}

/// Opens (or reopens) one shard's database.
pub type Opener = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// One shard: its database, and how to reopen it after an I/O failure
/// (redb refuses further use of a database once an I/O error happened).
struct Shard {
    name: String,
    db: RwLock<Option<Database>>,
    open: Opener,
    /// Holds commits made with [`RedbShards::commit_ops_lazily`] that no
    /// durable commit has followed yet.
    unpersisted: std::sync::atomic::AtomicBool,
}

/// The native [`Store`]: redb file shards.
pub struct RedbShards {
    shards: Vec<Shard>,
}

impl RedbShards {
    /// Opens (or initialises, with `new_shards` shards) the data directory `dir`.
    pub fn open(dir: &Path, new_shards: u32) -> Result<RedbShards, OpenError> {
        fs::create_dir_all(dir).map_err(|e| OpenError::Io(dir.to_path_buf(), e))?;
        let (layout, fresh) = match read_layout(dir)? {
            Some(layout) => (layout, false),
            None => {
                // No manifest: a new directory, or an initialisation that was
                // interrupted. Shard files left by the latter hold nothing
                // acknowledged (the manifest is written last), so start over.
                remove_shard_files(dir)?;
                let layout = Layout {
                    format_version: LAYOUT_VERSION,
                    shards: new_shards.max(1),
                    hash: SHARD_POLICY.to_string(),
                };
                (layout, true)
            }
        };
        let mut openers = Vec::with_capacity(layout.shards as usize);
        for i in 0..layout.shards {
            let path = dir.join(format!("shard-{i:03}.redb"));
            if !fresh && !path.exists() {
                return Err(OpenError::Layout(format!(
                    "{} is missing ({} names {} shards)",
                    path.display(),
                    dir.join(MANIFEST).display(),
                    layout.shards
                )));
            }
            let name = path.display().to_string();
            let opener: Opener = Box::new(move || {
                Database::builder()
                    .set_cache_size(CACHE_BYTES)
                    .create(&path)
            });
            openers.push((name, opener));
        }
        let shards = Self::from_openers(openers)?;
        if fresh || layout.format_version != LAYOUT_VERSION {
            let layout = Layout {
                format_version: LAYOUT_VERSION,
                ..layout
            };
            write_layout(dir, &layout)?;
        }
        Ok(shards)
    }

    /// Shards over custom redb backends (tests inject crash-simulating ones).
    /// `open` is called again whenever a shard must be reopened.
    pub fn from_openers(openers: Vec<(String, Opener)>) -> Result<RedbShards, OpenError> {
        let mut shards = Vec::with_capacity(openers.len());
        for (name, open) in openers {
            let db = open_prepared(&open).map_err(|e| OpenError::Shard(PathBuf::from(&name), e))?;
            shards.push(Shard {
                name,
                db: RwLock::new(Some(db)),
                open,
                unpersisted: std::sync::atomic::AtomicBool::new(false),
            });
        }
        Ok(RedbShards { shards })
    }

    /// An opener over a backend built by `make` (for tests).
    pub fn backend_opener<B: StorageBackend>(
        make: impl Fn() -> B + Send + Sync + 'static,
    ) -> Opener {
        Box::new(move || Database::builder().create_with_backend(make()))
    }

    fn shard_index(&self, path: &str) -> usize {
        shard_of(path, self.shards.len() as u32) as usize
    }

    /// Runs `f` on shard `i`'s database, reopening it first if an earlier
    /// I/O failure closed it.
    fn with_db<R>(
        &self,
        i: usize,
        f: impl FnOnce(&Database) -> Result<R, redb::Error>,
    ) -> Result<R, StoreError> {
        let shard = &self.shards[i];
        {
            let guard = shard.db.read().unwrap_or_else(|p| p.into_inner());
            if let Some(db) = guard.as_ref() {
                match f(db) {
                    Ok(r) => return Ok(r),
                    Err(e) if is_io(&e) => {
                        drop(guard);
                        // Close it: redb refuses further use after an I/O error.
                        *shard.db.write().unwrap_or_else(|p| p.into_inner()) = None;
                        return Err(store_error(e));
                    }
                    Err(e) => return Err(store_error(e)),
                }
            }
        }
        let mut guard = shard.db.write().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let db = open_prepared(&shard.open).map_err(|e| {
                tracing::warn!("reopening {} failed: {e}", shard.name);
                store_error(redb::Error::from(e))
            })?;
            tracing::info!("reopened {} after an I/O failure", shard.name);
            *guard = Some(db);
        }
        let result = f(guard.as_ref().expect("opened above"));
        if matches!(&result, Err(e) if is_io(e)) {
            *guard = None;
        }
        result.map_err(store_error)
    }

    /// Applies `ops` in order: one write transaction with immediate
    /// durability per shard touched (shards in parallel).
    pub fn commit_ops(&self, ops: &[Op]) -> Result<(), StoreError> {
        self.commit_ops_with(ops, &[], true)
    }

    /// Like [`RedbShards::commit_ops`], but without an fsync: the commit is
    /// visible to reads at once and durable only once [`RedbShards::persist`]
    /// returns (a crash before that loses it, as a unit per shard, back to
    /// the shard's last durable commit). `ends[i]`, when given, lists where
    /// the appends merged into the record of `ops[i]` ended (see
    /// [`Store::append_end`]).
    pub fn commit_ops_lazily(
        &self,
        ops: &[Op],
        ends: &[Option<Vec<u64>>],
    ) -> Result<(), StoreError> {
        self.commit_ops_with(ops, ends, false)
    }

    /// Makes every commit of [`RedbShards::commit_ops_lazily`] durable: an
    /// empty durable commit on each shard that holds some.
    pub fn persist(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        for (i, shard) in self.shards.iter().enumerate() {
            if shard.unpersisted.load(Ordering::Acquire) {
                self.with_db(i, |db| {
                    db.begin_write()?.commit().map_err(redb::Error::from)
                })?;
                shard.unpersisted.store(false, Ordering::Release);
            }
        }
        Ok(())
    }

    fn commit_ops_with(
        &self,
        ops: &[Op],
        ends: &[Option<Vec<u64>>],
        durable: bool,
    ) -> Result<(), StoreError> {
        let mut by_shard: Vec<Vec<Staged>> = vec![Vec::new(); self.shards.len()];
        for (i, op) in ops.iter().enumerate() {
            let path = match op {
                Op::PutMeta { path, .. }
                | Op::DeleteMeta { path }
                | Op::Append { path, .. }
                | Op::PurgeData { path, .. } => path,
            };
            let ends = ends.get(i).and_then(Option::as_deref);
            by_shard[self.shard_index(path)].push((op, ends));
        }
        let touched: Vec<(usize, Vec<Staged>)> = by_shard
            .into_iter()
            .enumerate()
            .filter(|(_, ops)| !ops.is_empty())
            .collect();
        match touched.as_slice() {
            [] => Ok(()),
            [(i, ops)] => self.commit_one(*i, ops, durable),
            // Several shards: their transactions (and fsyncs) run in parallel.
            many => std::thread::scope(|scope| {
                let handles: Vec<_> = many
                    .iter()
                    .map(|(i, ops)| scope.spawn(move || self.commit_one(*i, ops, durable)))
                    .collect();
                let mut first_error = None;
                for h in handles {
                    if let Err(e) = h.join().expect("shard commit thread panicked") {
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }),
        }
    }

    fn commit_one(&self, i: usize, ops: &[Staged], durable: bool) -> Result<(), StoreError> {
        if !durable {
            // Set first: a failed lazy commit may still have reached memory.
            self.shards[i]
                .unpersisted
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.with_db(i, |db| Self::commit_shard(db, ops, durable))
    }

    fn commit_shard(db: &Database, ops: &[Staged], durable: bool) -> Result<(), redb::Error> {
        let mut txn = db.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)?;
        }
        {
            let mut meta = txn.open_table(META)?;
            let mut data = txn.open_table(DATA)?;
            let mut append_ends = txn.open_table(APPEND_ENDS)?;
            let mut message_ends = txn.open_table(MESSAGE_ENDS)?;
            for &(op, ends) in ops {
                match op {
                    Op::PutMeta { path, meta: blob } => {
                        meta.insert(path.as_str(), blob.as_slice())?;
                    }
                    Op::DeleteMeta { path } => {
                        meta.remove(path.as_str())?;
                    }
                    Op::Append {
                        id,
                        record,
                        mergeable: false,
                        ..
                    } => {
                        let key = (*id, record.start);
                        match ends.filter(|e| e.len() > 1) {
                            Some(ends) => {
                                // As for merged byte records below.
                                let inside = (*id, record.start + 1)..(*id, record.end());
                                data.retain_in(inside.clone(), |_, _| false)?;
                                message_ends.retain_in(inside, |_, _| false)?;
                                message_ends
                                    .insert(key, encode_ends(record.start, ends).as_slice())?;
                            }
                            None => {
                                message_ends.remove(key)?;
                            }
                        }
                        data.insert(key, record.data.as_slice())?;
                    }
                    Op::Append {
                        id,
                        record,
                        mergeable: true,
                        ..
                    } => {
                        if record.data.len() > 1 {
                            // A merged record replaces any smaller ones an
                            // earlier checkpoint of the same log stored
                            // inside its range: records never overlap.
                            let inside = (*id, record.start + 1)..(*id, record.end());
                            data.retain_in(inside.clone(), |_, _| false)?;
                            append_ends.retain_in(inside, |_, _| false)?;
                        }
                        let key = (*id, record.start);
                        data.insert(key, record.data.as_slice())?;
                        match ends {
                            Some(ends) => {
                                append_ends
                                    .insert(key, encode_ends(record.start, ends).as_slice())?;
                            }
                            None => {
                                append_ends.remove(key)?;
                            }
                        }
                    }
                    Op::PurgeData { id, .. } => {
                        data.retain_in((*id, 0)..=(*id, u64::MAX), |_, _| false)?;
                        append_ends.retain_in((*id, 0)..=(*id, u64::MAX), |_, _| false)?;
                        message_ends.retain_in((*id, 0)..=(*id, u64::MAX), |_, _| false)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// An op of a commit and, for a merged record, where its appends ended.
type Staged<'a> = (&'a Op, Option<&'a [u64]>);

/// `ends` (ascending, in `(start, ..]`) as LEB128 deltas from `start`.
fn encode_ends(start: u64, ends: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ends.len() * 2);
    let mut prev = start;
    for &end in ends {
        ds_core::varint::push(&mut out, end - prev);
        prev = end;
    }
    out
}

/// The pieces `[start, end)` of the record at `start` of `len` bytes that
/// an [`encode_ends`] value marks; `None` when the value is malformed or
/// its last end is not the record's.
fn split_at_ends(start: u64, len: u64, mut encoded: &[u8]) -> Option<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut at = start;
    while !encoded.is_empty() {
        let end = at.checked_add(ds_core::varint::take(&mut encoded)?)?;
        out.push((at, end));
        at = end;
    }
    (at == start.checked_add(len)?).then_some(out)
}

/// The first end above `at` in an [`encode_ends`] value; `None` when there
/// is none (or the value is malformed).
fn first_end_after(start: u64, mut encoded: &[u8], at: u64) -> Option<u64> {
    let mut end = start;
    while !encoded.is_empty() {
        end = end.checked_add(ds_core::varint::take(&mut encoded)?)?;
        if end > at {
            return Some(end);
        }
    }
    None
}

/// Reads `layout.json`; `None` when the directory has none yet.
fn read_layout(dir: &Path) -> Result<Option<Layout>, OpenError> {
    let manifest = dir.join(MANIFEST);
    match fs::read(&manifest) {
        Ok(bytes) => {
            let layout: Layout = serde_json::from_slice(&bytes).map_err(|e| {
                OpenError::Layout(format!(
                    "{}: unreadable layout manifest: {e}",
                    manifest.display()
                ))
            })?;
            if !READABLE_VERSIONS.contains(&layout.format_version)
                || layout.hash != SHARD_POLICY
                || layout.shards == 0
            {
                return Err(OpenError::Layout(format!(
                    "{}: layout format {} with hash {:?} and {} shards is not supported by this server \
                     (it reads format {LAYOUT_VERSION}, hash {SHARD_POLICY:?})",
                    manifest.display(),
                    layout.format_version,
                    layout.hash,
                    layout.shards
                )));
            }
            Ok(Some(layout))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OpenError::Io(manifest, e)),
    }
}

/// Writes `layout.json` durably (temp file, fsync, rename, fsync the dir).
fn write_layout(dir: &Path, layout: &Layout) -> Result<(), OpenError> {
    let manifest = dir.join(MANIFEST);
    let tmp = dir.join("layout.json.tmp");
    let text = serde_json::to_vec_pretty(layout).expect("layout serializes");
    fs::write(&tmp, text).map_err(|e| OpenError::Io(tmp.clone(), e))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| OpenError::Io(tmp.clone(), e))?;
    fs::rename(&tmp, &manifest).map_err(|e| OpenError::Io(manifest.clone(), e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| OpenError::Io(dir.to_path_buf(), e))
}

/// Removes shard files left by an interrupted initialisation. Refuses to
/// touch a shard that holds any stream: then the manifest was lost, and the
/// operator must decide.
fn remove_shard_files(dir: &Path) -> Result<(), OpenError> {
    let entries = fs::read_dir(dir).map_err(|e| OpenError::Io(dir.to_path_buf(), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("shard-") && name.ends_with(".redb")) {
            continue;
        }
        let path = entry.path();
        let holds_streams = match Database::create(&path) {
            Ok(db) => {
                let count = || -> Result<u64, redb::Error> {
                    let txn = db.begin_read()?;
                    match txn.open_table(META) {
                        Ok(t) => Ok(ReadableTableMetadata::len(&t)?),
                        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                        Err(e) => Err(e.into()),
                    }
                };
                count().map_or(true, |n| n > 0)
            }
            // Never initialised far enough to be a database.
            Err(redb::DatabaseError::Storage(_)) => false,
            Err(e) => return Err(OpenError::Shard(path, e)),
        };
        if holds_streams {
            return Err(OpenError::Layout(format!(
                "{} holds streams but {} is missing; restore the manifest (or move the shard files away)",
                path.display(),
                dir.join(MANIFEST).display()
            )));
        }
        fs::remove_file(&path).map_err(|e| OpenError::Io(path.clone(), e))?;
    }
    Ok(())
}

/// Opens a shard and makes sure its tables exist.
fn open_prepared(open: &Opener) -> Result<Database, redb::DatabaseError> {
    let db = open()?;
    let prepare = || -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        txn.open_table(META)?;
        txn.open_table(DATA)?;
        txn.commit()?;
        Ok(())
    };
    prepare().map_err(|e| match e {
        redb::Error::Io(io) => redb::DatabaseError::Storage(redb::StorageError::Io(io)),
        other => redb::DatabaseError::Storage(redb::StorageError::Io(std::io::Error::other(
            other.to_string(),
        ))),
    })?;
    Ok(db)
}

fn is_io(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
}

/// Maps a redb failure to the core's storage error; a full disk is distinct.
fn store_error(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    if let redb::Error::Io(io) = &e {
        // ENOSPC (28) and EDQUOT (122) on Linux.
        if io.kind() == ErrorKind::StorageFull || matches!(io.raw_os_error(), Some(28 | 122)) {
            return StoreError::Full;
        }
    }
    if let redb::Error::Corrupted(detail) = &e {
        return StoreError::Corrupt {
            detail: detail.clone(),
        };
    }
    StoreError::Io {
        detail: e.to_string(),
    }
}

impl Store for RedbShards {
    fn load_meta(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            let part = self.with_db(i, |db| {
                let txn = db.begin_read()?;
                let table = txn.open_table(META)?;
                let mut part = Vec::new();
                for entry in table.iter()? {
                    let (k, v) = entry?;
                    part.push((k.value().to_string(), v.value().to_vec()));
                }
                Ok(part)
            })?;
            out.extend(part);
        }
        Ok(out)
    }

    fn read(
        &self,
        path: &str,
        id: StreamId,
        from: u64,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let corrupt = |start: u64| StoreError::Corrupt {
            detail: format!("message ends of record ({id}, {start}) in {path:?}"),
        };
        let found = self.with_db(self.shard_index(path), |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(DATA)?;
            // Written by checkpoints of JSON streams since layout 3.
            let messages = match txn.open_table(MESSAGE_ENDS) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            // The record (or message of a gathered record) that contains
            // `from`, then those after it, while under `max_bytes` (at least
            // one); values are copied once.
            let mut reader = RecordReader {
                from,
                end,
                max_bytes,
                total: 0,
                out: Vec::new(),
                bad: None,
            };
            let first = table.range((id, 0)..=(id, from))?.next_back();
            let rest = if from < end {
                Some(table.range((id, from + 1)..(id, end))?)
            } else {
                None
            };
            for entry in first.into_iter().chain(rest.into_iter().flatten()) {
                let (k, v) = entry?;
                let start = k.value().1;
                let ends = match &messages {
                    Some(t) => t.get((id, start))?,
                    None => None,
                };
                if !reader.take(start, v.value(), ends.as_ref().map(|e| e.value())) {
                    break;
                }
            }
            Ok(reader)
        })?;
        match found.bad {
            Some(start) => Err(corrupt(start)),
            None => Ok(found.out),
        }
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        self.commit_ops(&batch.ops)
    }

    fn append_end(&self, path: &str, id: StreamId, at: u64) -> Result<Option<u64>, StoreError> {
        self.with_db(self.shard_index(path), |db| {
            let txn = db.begin_read()?;
            let data = txn.open_table(DATA)?;
            // Written by checkpoints; a directory from before them has none.
            let ends = match txn.open_table(APPEND_ENDS) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            let Some(entry) = data.range((id, 0)..=(id, at))?.next_back() else {
                return Ok(None);
            };
            let (k, v) = entry?;
            let (mut start, mut end) = (k.value().1, k.value().1 + v.value().len() as u64);
            if end <= at {
                return Ok(None);
            }
            // A record of JSON messages: the end of the message holding `at`.
            let messages = match txn.open_table(MESSAGE_ENDS) {
                Ok(t) => t.get((id, start))?.map(|list| list.value().to_vec()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            if let Some(list) = messages {
                return Ok(Some(first_end_after(start, &list, at).unwrap_or(end)));
            }
            // An append cut over several records ends in a later one.
            loop {
                let Some(list) = ends
                    .as_ref()
                    .map(|t| t.get((id, start)))
                    .transpose()?
                    .flatten()
                else {
                    return Ok(Some(end));
                };
                if let Some(e) = first_end_after(start, list.value(), at) {
                    return Ok(Some(e));
                }
                let Some(next) = data.get((id, end))? else {
                    return Ok(Some(end));
                };
                (start, end) = (end, end + next.value().len() as u64);
            }
        })
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
        let limit = end.min(from.saturating_add(max_bytes as u64));
        self.with_db(self.shard_index(path), |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(DATA)?;
            // The values as redb read them from disk, lent to the response:
            // no copy in user space. Each lent value keeps the read
            // transaction alive (redb's owned guards), so redb neither frees
            // nor rewrites its page while a response still holds it. Small
            // values (records a checkpoint could not merge: a stream that
            // gets one append now and then) are copied into one run
            // instead: thousands of tiny pieces would cost a write each.
            let mut pos = from;
            let mut small: Vec<u8> = Vec::new();
            let mut lend = |start: u64, value: redb::OwnedAccessGuard<&'static [u8]>| {
                let data = value.value();
                let len = data.len();
                if start > pos || pos >= limit {
                    return false;
                }
                let skip = usize::try_from(pos - start).unwrap_or(usize::MAX);
                if skip < len {
                    let take = usize::try_from(limit - pos)
                        .unwrap_or(usize::MAX)
                        .min(len - skip);
                    if take < LEND_MIN_BYTES {
                        small.extend_from_slice(&data[skip..skip + take]);
                    } else {
                        if !small.is_empty() {
                            out.push_owned(std::mem::take(&mut small));
                        }
                        out.push_lent(Arc::new(Value(value)), skip..skip + take);
                    }
                    pos += take as u64;
                }
                true
            };
            if let Some(entry) = table.range_owned((id, 0)..=(id, from))?.next_back() {
                let (k, v) = entry?;
                lend(k.value().1, v);
            }
            if from < limit {
                for entry in table.range_owned((id, from + 1)..(id, limit))? {
                    let (k, v) = entry?;
                    if !lend(k.value().1, v) {
                        break;
                    }
                }
            }
            if !small.is_empty() {
                out.push_owned(small);
            }
            Ok(())
        })
    }
}

/// Collects the records of a [`Store::read`] in order, splitting gathered
/// JSON records into their messages.
struct RecordReader {
    from: u64,
    end: u64,
    max_bytes: usize,
    total: usize,
    out: Vec<Record>,
    /// A record whose message ends were malformed.
    bad: Option<u64>,
}

impl RecordReader {
    /// Takes the stored record at `start` (with its message ends, if
    /// gathered); false once no more records are wanted.
    fn take(&mut self, start: u64, data: &[u8], ends: Option<&[u8]>) -> bool {
        let whole = [(start, start + data.len() as u64)];
        let split;
        let pieces: &[(u64, u64)] = match ends {
            None => &whole,
            Some(ends) => match split_at_ends(start, data.len() as u64, ends) {
                Some(pieces) => {
                    split = pieces;
                    &split
                }
                None => {
                    self.bad = Some(start);
                    return false;
                }
            },
        };
        for &(at, to) in pieces {
            if to <= self.from {
                continue;
            }
            if at >= self.end || (self.total >= self.max_bytes && !self.out.is_empty()) {
                return false;
            }
            let bytes = &data[(at - start) as usize..(to - start) as usize];
            self.total += bytes.len();
            self.out.push(Record {
                start: at,
                data: bytes.to_vec(),
            });
        }
        true
    }
}

/// Values smaller than this are copied rather than lent.
const LEND_MIN_BYTES: usize = 16 << 10;

/// A value redb read, lent to a response ([`Store::lend_bytes`]): it holds
/// the page buffer the value lies in and the read transaction it was read
/// in. (Holding only the page is not enough: once the transaction ends,
/// redb may free the page and reuse its cached buffer for a write, which
/// needs the buffer unshared.)
struct Value(redb::OwnedAccessGuard<&'static [u8]>);

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}
