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

use ds_core::mem_store::collect_records;
use ds_core::shard::{shard_of, SHARD_POLICY};
use ds_core::{Batch, Op, Record, Store, StoreError, StreamId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DATA: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("data");

/// Version of the on-disk layout (manifest, tables, key encodings).
pub const LAYOUT_VERSION: u32 = 1;
/// Shards created in a new data directory.
pub const DEFAULT_SHARDS: u32 = 16;
const MANIFEST: &str = "layout.json";

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

/// The native [`Store`]: redb file shards.
pub struct RedbShards {
    shards: Vec<Database>,
}

impl RedbShards {
    /// Opens (or initialises) the data directory `dir`.
    pub fn open(dir: &Path) -> Result<RedbShards, OpenError> {
        fs::create_dir_all(dir).map_err(|e| OpenError::Io(dir.to_path_buf(), e))?;
        let manifest = dir.join(MANIFEST);
        let layout = match fs::read(&manifest) {
            Ok(bytes) => {
                let layout: Layout = serde_json::from_slice(&bytes).map_err(|e| {
                    OpenError::Layout(format!(
                        "{}: unreadable layout manifest: {e}",
                        manifest.display()
                    ))
                })?;
                if layout.format_version != LAYOUT_VERSION
                    || layout.hash != SHARD_POLICY
                    || layout.shards == 0
                {
                    return Err(OpenError::Layout(format!(
                        "{}: layout format {} with hash {:?} is not supported by this server (expects format {LAYOUT_VERSION}, hash {SHARD_POLICY:?})",
                        manifest.display(),
                        layout.format_version,
                        layout.hash
                    )));
                }
                layout
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let layout = Layout {
                    format_version: LAYOUT_VERSION,
                    shards: DEFAULT_SHARDS,
                    hash: SHARD_POLICY.to_string(),
                };
                let tmp = dir.join("layout.json.tmp");
                let text = serde_json::to_vec_pretty(&layout).expect("layout serializes");
                fs::write(&tmp, text).map_err(|e| OpenError::Io(tmp.clone(), e))?;
                fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| OpenError::Io(tmp.clone(), e))?;
                fs::rename(&tmp, &manifest).map_err(|e| OpenError::Io(manifest.clone(), e))?;
                if let Ok(d) = fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                layout
            }
            Err(e) => return Err(OpenError::Io(manifest, e)),
        };
        let mut shards = Vec::with_capacity(layout.shards as usize);
        for i in 0..layout.shards {
            let path = dir.join(format!("shard-{i:03}.redb"));
            let db = Database::create(&path).map_err(|e| OpenError::Shard(path.clone(), e))?;
            let txn = db.begin_write().map_err(|e| {
                OpenError::Shard(path.clone(), redb::DatabaseError::Storage(txn_storage(e)))
            })?;
            {
                txn.open_table(META).map_err(|e| {
                    OpenError::Shard(path.clone(), redb::DatabaseError::Storage(table_storage(e)))
                })?;
                txn.open_table(DATA).map_err(|e| {
                    OpenError::Shard(path.clone(), redb::DatabaseError::Storage(table_storage(e)))
                })?;
            }
            txn.commit().map_err(|e| {
                OpenError::Shard(
                    path.clone(),
                    redb::DatabaseError::Storage(commit_storage(e)),
                )
            })?;
            shards.push(db);
        }
        Ok(RedbShards { shards })
    }

    fn shard(&self, path: &str) -> (usize, &Database) {
        let i = shard_of(path, self.shards.len() as u32) as usize;
        (i, &self.shards[i])
    }

    fn commit_shard(db: &Database, ops: &[&Op]) -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut data = txn.open_table(DATA)?;
            for op in ops {
                match op {
                    Op::PutMeta { path, meta: blob } => {
                        meta.insert(path.as_str(), blob.as_slice())?;
                    }
                    Op::DeleteMeta { path } => {
                        meta.remove(path.as_str())?;
                    }
                    Op::Append { id, record, .. } => {
                        data.insert((*id, record.start), record.data.as_slice())?;
                    }
                    Op::PurgeData { id, .. } => {
                        data.retain_in((*id, 0)..=(*id, u64::MAX), |_, _| false)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

fn table_storage(e: redb::TableError) -> redb::StorageError {
    match e {
        redb::TableError::Storage(s) => s,
        other => redb::StorageError::Io(std::io::Error::other(other.to_string())),
    }
}

fn txn_storage(e: redb::TransactionError) -> redb::StorageError {
    match e {
        redb::TransactionError::Storage(s) => s,
        other => redb::StorageError::Io(std::io::Error::other(other.to_string())),
    }
}

fn commit_storage(e: redb::CommitError) -> redb::StorageError {
    match e {
        redb::CommitError::Storage(s) => s,
        other => redb::StorageError::Io(std::io::Error::other(other.to_string())),
    }
}

/// Maps a redb failure to the core's storage error; a full disk is distinct.
fn store_error(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    if let redb::Error::Io(io) = &e {
        if io.kind() == ErrorKind::StorageFull || io.raw_os_error() == Some(28) {
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
        for db in &self.shards {
            let txn = db.begin_read().map_err(store_error)?;
            let table = txn.open_table(META).map_err(store_error)?;
            for entry in table.iter().map_err(store_error)? {
                let (k, v) = entry.map_err(store_error)?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
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
        let (_, db) = self.shard(path);
        let txn = db.begin_read().map_err(store_error)?;
        let table = txn.open_table(DATA).map_err(store_error)?;
        let before = table
            .range((id, 0)..=(id, from))
            .map_err(store_error)?
            .next_back();
        let before = match before {
            Some(entry) => {
                let (k, v) = entry.map_err(store_error)?;
                Some((k.value().1, v.value().to_vec()))
            }
            None => None,
        };
        let mut after = Vec::new();
        let mut total = before.as_ref().map_or(0, |(_, d)| d.len());
        if from < u64::MAX && (total < max_bytes || before.is_none()) {
            for entry in table
                .range((id, from + 1)..(id, end.max(from + 1)))
                .map_err(store_error)?
            {
                let (k, v) = entry.map_err(store_error)?;
                let data = v.value().to_vec();
                total += data.len();
                after.push((k.value().1, data));
                if total >= max_bytes {
                    break;
                }
            }
        }
        let before_ref = before.as_ref().map(|(s, d)| (*s, d.as_slice()));
        Ok(collect_records(
            before_ref,
            after.iter().map(|(s, d)| (*s, d.as_slice())),
            from,
            end,
            max_bytes,
        ))
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut by_shard: Vec<Vec<&Op>> = vec![Vec::new(); self.shards.len()];
        for op in &batch.ops {
            let path = match op {
                Op::PutMeta { path, .. }
                | Op::DeleteMeta { path }
                | Op::Append { path, .. }
                | Op::PurgeData { path, .. } => path,
            };
            by_shard[self.shard(path).0].push(op);
        }
        let touched: Vec<(usize, Vec<&Op>)> = by_shard
            .into_iter()
            .enumerate()
            .filter(|(_, ops)| !ops.is_empty())
            .collect();
        match touched.as_slice() {
            [] => Ok(()),
            [(i, ops)] => Self::commit_shard(&self.shards[*i], ops).map_err(store_error),
            // Several shards: their transactions (and fsyncs) run in parallel.
            many => std::thread::scope(|scope| {
                let handles: Vec<_> = many
                    .iter()
                    .map(|(i, ops)| {
                        let db = &self.shards[*i];
                        scope.spawn(move || Self::commit_shard(db, ops))
                    })
                    .collect();
                let mut first_error = None;
                for h in handles {
                    if let Err(e) = h.join().expect("shard commit thread panicked") {
                        first_error.get_or_insert(store_error(e));
                    }
                }
                first_error.map_or(Ok(()), Err)
            }),
        }
    }
}
