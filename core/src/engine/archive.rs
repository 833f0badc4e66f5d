//! Export and import of archives ([`crate::archive`]): the engine-level half
//! of backup and restore, shared by every host.
//!
//! Export walks the selected streams (forks bring their source chains, so a
//! fork always reads the same bytes after a restore), sources before forks,
//! and copies each stream's own records straight from the store. Import goes
//! through the engine's staging and commit path: each stream's records are
//! staged and committed in bounded groups, then its metadata, so memory stays
//! bounded however large the archive is. Imported streams get fresh ids (ids
//! are unique per store) but keep their offsets, content type, closure,
//! producer state, `Stream-Seq`, expiry and fork links.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use crate::archive::{
    ArchiveError, ArchiveReader, ArchiveWriter, ArchivedClaim, ArchivedExpiry, ArchivedFork,
    ArchivedProducer, Item, StreamEntry,
};
use crate::engine::{Engine, Event, Visible};
use crate::producer::{ProducerClaim, ProducerState};
use crate::store::{Batch, Op, Record, Store, StoreError, StreamId};
use crate::stream::{Expiry, ForkOrigin, StreamMeta, META_VERSION};
use crate::time::UnixMillis;

/// Records staged per commit while importing one stream.
const IMPORT_GROUP_BYTES: u64 = 4 << 20;
/// Most bytes read from the store per call while exporting.
const EXPORT_READ_BYTES: usize = 1 << 20;

/// What an import does with an archived stream whose path already holds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictMode {
    /// Keep the existing stream; skip the archived one (and forks of it).
    Skip,
    /// Delete the existing stream, then import the archived one. A stream
    /// that forks in the target still read is kept and reported as skipped.
    Replace,
    /// Refuse. Check with [`Engine::import_conflicts`] first for an import
    /// that changes nothing when any path is taken.
    Fail,
}

impl ConflictMode {
    /// Parses `skip`, `replace` or `fail`.
    pub fn parse(text: &str) -> Option<ConflictMode> {
        match text {
            "skip" => Some(ConflictMode::Skip),
            "replace" => Some(ConflictMode::Replace),
            "fail" => Some(ConflictMode::Fail),
            _ => None,
        }
    }
}

/// What an export selects: streams in export order and their data bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportPlan {
    /// Full stream paths, sources before their forks.
    pub paths: Vec<String>,
    /// Own data bytes of those streams.
    pub bytes: u64,
}

/// What an import did, stream by stream (root-relative paths).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Streams created from the archive.
    pub imported: Vec<String>,
    /// Of those, the ones that replaced an existing stream.
    pub replaced: Vec<String>,
    /// Streams not imported, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Data records written.
    pub records: u64,
    /// Data bytes written.
    pub bytes: u64,
}

/// A stream being imported while its data records arrive.
struct Incoming {
    entry: StreamEntry,
    path: String,
    /// `None` when the stream is being skipped (its data is only checked).
    meta: Option<StreamMeta>,
    batch: Batch,
    batch_bytes: u64,
    next: u64,
}

impl<S: Store> Engine<S> {
    /// The streams an export of `prefix` (root-relative; `""` for all)
    /// writes: live streams under it, plus the source chains of their forks
    /// (soft-deleted sources included), sources first.
    pub fn export_plan(&self, prefix: &str, now: UnixMillis) -> ExportPlan {
        let root = self.config.stream_root.as_str();
        let mut chosen: BTreeMap<String, u32> = BTreeMap::new();
        for (path, state) in &self.streams {
            let rel = &path[root.len().min(path.len())..];
            if !rel.starts_with(prefix) || state.meta.soft_deleted || state.meta.is_expired(now) {
                continue;
            }
            let mut link = Some(path.clone());
            while let Some(p) = link.take() {
                if chosen.contains_key(&p) {
                    break;
                }
                let Some(s) = self.streams.get(&p) else { break };
                chosen.insert(p, 0);
                link = s.meta.fork.as_ref().map(|f| f.source.clone());
            }
        }
        let mut order: Vec<(u32, String)> = chosen
            .into_keys()
            .map(|p| (self.fork_depth(&p), p))
            .collect();
        order.sort();
        let bytes = order
            .iter()
            .filter_map(|(_, p)| self.streams.get(p))
            .map(|s| crate::engine::quota::own_bytes(&s.meta))
            .sum();
        ExportPlan {
            paths: order.into_iter().map(|(_, p)| p).collect(),
            bytes,
        }
    }

    fn fork_depth(&self, path: &str) -> u32 {
        let mut depth = 0;
        let mut link = self.streams.get(path).and_then(|s| s.meta.fork.as_ref());
        while let Some(f) = link {
            depth += 1;
            link = self
                .streams
                .get(&f.source)
                .and_then(|s| s.meta.fork.as_ref());
        }
        depth
    }

    /// Writes the streams of `plan` to `out`, calling `progress` with the
    /// data bytes written so far. Nothing may be staged (commit first).
    pub fn export_archive<W: Write>(
        &self,
        plan: &ExportPlan,
        out: &mut ArchiveWriter<W>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ArchiveError> {
        if self.has_pending_commit() {
            return Err(ArchiveError::Busy);
        }
        let root = self.config.stream_root.as_str();
        let mut done = 0u64;
        for path in &plan.paths {
            let Some(state) = self.streams.get(path) else {
                continue;
            };
            let entry = self.entry_of(path, &state.meta, root);
            out.stream(&entry)?;
            let (id, tail) = (state.meta.id, state.meta.tail);
            let mut from = entry.data_start();
            while from < tail {
                let records = self
                    .store
                    .read(path, id, from, tail, EXPORT_READ_BYTES)
                    .map_err(store_error)?;
                let mut advanced = false;
                let first = from;
                for r in records.iter().filter(|r| r.start >= first) {
                    out.data(r.start, &r.data)?;
                    done += r.data.len() as u64;
                    from = r.end();
                    advanced = true;
                }
                if !advanced {
                    return Err(ArchiveError::Store(format!(
                        "{path}: no stored record at position {from} (tail {tail})"
                    )));
                }
                progress(done);
            }
        }
        Ok(())
    }

    fn entry_of(&self, path: &str, meta: &StreamMeta, root: &str) -> StreamEntry {
        let rel = |p: &str| p.strip_prefix(root).unwrap_or(p).to_string();
        StreamEntry {
            path: rel(path),
            id: meta.id,
            content_type: meta.content_type.to_string(),
            created_at: meta.created_at,
            expiry: match &meta.expiry {
                Expiry::Never => ArchivedExpiry::Never,
                Expiry::Ttl(secs) => ArchivedExpiry::Ttl {
                    secs: *secs,
                    last_access: meta.last_access,
                },
                Expiry::At(d) => ArchivedExpiry::At {
                    at: d.at,
                    text: d.text.clone(),
                },
            },
            tail: meta.tail,
            closed: meta.closed,
            closed_by: meta.closed_by.as_ref().map(|c| ArchivedClaim {
                id: c.id.clone(),
                epoch: c.epoch,
                seq: c.seq,
            }),
            fork: meta.fork.as_ref().map(|f| ArchivedFork {
                source: rel(&f.source),
                source_id: f.source_id,
                point: f.point,
                anchor: f.anchor,
                sub_offset: f.sub_offset,
            }),
            soft_deleted: meta.soft_deleted,
            last_stream_seq: meta.last_stream_seq.clone(),
            producers: meta
                .producers
                .iter()
                .map(|(k, p)| {
                    (
                        k.clone(),
                        ArchivedProducer {
                            epoch: p.epoch,
                            last_seq: p.last_seq,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Reads the whole archive, verifying it, and lists the archived streams
    /// (root-relative) whose paths already hold a stream here. Changes
    /// nothing; run it before [`Engine::import_archive`] for an all-or-nothing
    /// `fail` import.
    pub fn import_conflicts<R: Read>(
        &self,
        mut reader: ArchiveReader<R>,
    ) -> Result<Vec<String>, ArchiveError> {
        let mut conflicts = Vec::new();
        let mut current: Option<(StreamEntry, u64)> = None;
        while let Some(item) = reader.next_item()? {
            match item {
                Item::Stream(entry) => {
                    if let Some((done, next)) = current.take() {
                        check_complete(&done, next)?;
                    }
                    check_entry(&entry)?;
                    let path = format!("{}{}", self.config.stream_root, entry.path);
                    if self.streams.contains_key(&path) {
                        conflicts.push(entry.path.clone());
                    }
                    let start = entry.data_start();
                    current = Some((*entry, start));
                }
                Item::Data { start, bytes } => {
                    let (entry, next) = current.as_mut().expect("the reader orders records");
                    *next = check_record(entry, *next, start, &bytes)?;
                }
            }
        }
        if let Some((done, next)) = current {
            check_complete(&done, next)?;
        }
        Ok(conflicts)
    }

    /// Imports every stream of the archive at `now`, committing as it goes.
    /// Sliding TTLs restart no earlier than `now` (as when a store reopens).
    /// Quotas do not apply: importing is an operator's action.
    pub fn import_archive<R: Read>(
        &mut self,
        mut reader: ArchiveReader<R>,
        mode: ConflictMode,
        now: UnixMillis,
    ) -> Result<ImportSummary, ArchiveError> {
        self.commit_now().map_err(store_error)?;
        let mut summary = ImportSummary::default();
        // Archived id → (path, id here) of every stream imported.
        let mut ids: HashMap<StreamId, (String, StreamId)> = HashMap::new();
        let mut soft_deleted = Vec::new();
        let mut current: Option<Incoming> = None;
        loop {
            let item = reader.next_item()?;
            if matches!(item, Some(Item::Stream(_)) | None) {
                if let Some(done) = current.take() {
                    self.finish_incoming(done, &mut ids, &mut soft_deleted, &mut summary)?;
                }
            }
            match item {
                None => break,
                Some(Item::Stream(entry)) => {
                    current = Some(self.begin_incoming(*entry, mode, now, &ids, &mut summary)?);
                }
                Some(Item::Data { start, bytes }) => {
                    let inc = current.as_mut().expect("the reader orders records");
                    inc.next = check_record(&inc.entry, inc.next, start, &bytes)?;
                    let Some(meta) = &inc.meta else { continue };
                    inc.batch_bytes += bytes.len() as u64;
                    summary.records += 1;
                    summary.bytes += bytes.len() as u64;
                    inc.batch.ops.push(Op::Append {
                        path: inc.path.clone(),
                        id: meta.id,
                        record: Record { start, data: bytes },
                        mergeable: !crate::json::is_json(&meta.content_type),
                    });
                    if inc.batch_bytes >= IMPORT_GROUP_BYTES {
                        self.stage_internal(std::mem::take(&mut inc.batch));
                        inc.batch_bytes = 0;
                        self.commit_now().map_err(store_error)?;
                    }
                }
            }
        }
        // Soft-deleted sources whose forks were all skipped serve no one.
        let mut batch = Batch::default();
        for path in soft_deleted {
            if self
                .streams
                .get(&path)
                .is_some_and(|s| s.meta.soft_deleted && s.forks == 0)
            {
                self.purge(&path, &mut batch);
            }
        }
        self.stage_internal(batch);
        self.commit_now().map_err(store_error)?;
        Ok(summary)
    }

    fn begin_incoming(
        &mut self,
        entry: StreamEntry,
        mode: ConflictMode,
        now: UnixMillis,
        ids: &HashMap<StreamId, (String, StreamId)>,
        summary: &mut ImportSummary,
    ) -> Result<Incoming, ArchiveError> {
        check_entry(&entry)?;
        let path = format!("{}{}", self.config.stream_root, entry.path);
        let mut incoming = Incoming {
            next: entry.data_start(),
            entry,
            path,
            meta: None,
            batch: Batch::default(),
            batch_bytes: 0,
        };
        let rel = incoming.entry.path.clone();
        let skip =
            |summary: &mut ImportSummary, why: String| summary.skipped.push((rel.clone(), why));
        let fork = match &incoming.entry.fork {
            None => None,
            Some(f) => match ids.get(&f.source_id) {
                Some((source, source_id)) => Some(Box::new(ForkOrigin {
                    source: source.clone(),
                    source_id: *source_id,
                    point: f.point,
                    anchor: f.anchor,
                    sub_offset: f.sub_offset,
                })),
                None => {
                    skip(
                        summary,
                        format!("its fork source {} was not imported", f.source),
                    );
                    return Ok(incoming);
                }
            },
        };
        if let Some(existing) = self.streams.get(&incoming.path) {
            match mode {
                ConflictMode::Fail => return Err(ArchiveError::Conflict(vec![rel])),
                ConflictMode::Skip => {
                    skip(summary, "a stream already exists at this path".into());
                    return Ok(incoming);
                }
                ConflictMode::Replace if existing.forks > 0 => {
                    skip(summary, "the existing stream has forks that read it".into());
                    return Ok(incoming);
                }
                ConflictMode::Replace => {
                    let mut batch = Batch::default();
                    self.remove(&incoming.path, &mut batch);
                    self.stage_internal(batch);
                    self.commit_now().map_err(store_error)?;
                    summary.replaced.push(rel.clone());
                }
            }
        }
        let e = &incoming.entry;
        let id = self.allocate_id(now, &mut incoming.batch);
        let (expiry, last_access) = match &e.expiry {
            ArchivedExpiry::Never => (Expiry::Never, now.0),
            ArchivedExpiry::Ttl { secs, last_access } => {
                (Expiry::Ttl(*secs), now.0.max(*last_access))
            }
            ArchivedExpiry::At { at, text } => (Expiry::at(*at, text.clone()), now.0),
        };
        incoming.meta = Some(StreamMeta {
            v: META_VERSION,
            id,
            content_type: e.content_type.as_str().into(),
            created_at: e.created_at,
            expiry,
            last_access,
            tail: e.tail,
            closed: e.closed,
            closed_by: e.closed_by.as_ref().map(|c| {
                Box::new(ProducerClaim {
                    id: c.id.clone(),
                    epoch: c.epoch,
                    seq: c.seq,
                })
            }),
            fork,
            soft_deleted: e.soft_deleted,
            last_stream_seq: e.last_stream_seq.clone(),
            producers: e
                .producers
                .iter()
                .map(|(k, p)| {
                    (
                        k.clone(),
                        ProducerState {
                            epoch: p.epoch,
                            last_seq: p.last_seq,
                        },
                    )
                })
                .collect(),
        });
        Ok(incoming)
    }

    fn finish_incoming(
        &mut self,
        mut inc: Incoming,
        ids: &mut HashMap<StreamId, (String, StreamId)>,
        soft_deleted: &mut Vec<String>,
        summary: &mut ImportSummary,
    ) -> Result<(), ArchiveError> {
        check_complete(&inc.entry, inc.next)?;
        let Some(meta) = inc.meta.take() else {
            return Ok(());
        };
        inc.batch.ops.push(Op::PutMeta {
            path: inc.path.clone(),
            meta: meta.encode(),
        });
        self.stage_internal(inc.batch);
        self.install(&inc.path, meta.clone());
        if let Some(origin) = &meta.fork {
            if let Some(source) = self.streams.get_mut(&origin.source) {
                source.forks += 1;
            }
        }
        self.commit_now().map_err(store_error)?;
        let mut from = 0;
        if let Some(state) = self.streams.get_mut(&inc.path) {
            state.visible = Visible::of(&meta);
            // An imported stream is new to every reader: no live reader
            // sits at its tail, so no frame is made for it.
            from = state.visible.tail;
        }
        self.emit(Event::Advanced {
            path: inc.path.clone(),
            from,
        });
        ids.insert(inc.entry.id, (inc.path.clone(), meta.id));
        if meta.soft_deleted {
            soft_deleted.push(inc.path.clone());
        }
        summary.imported.push(inc.entry.path);
        Ok(())
    }

    /// Commits everything staged through the staging path, synchronously,
    /// reporting a failed commit (which [`Engine::commit_pending`] answers
    /// only to waiting tickets).
    fn commit_now(&mut self) -> Result<(), StoreError> {
        while let Some(mut commit) = self.take_commit() {
            let result = commit.store_in(&self.store);
            let failed = result.as_ref().err().cloned();
            self.finish_commit(result);
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    }
}

fn store_error(e: StoreError) -> ArchiveError {
    ArchiveError::Store(e.to_string())
}

/// A stream record must name a usable path and a consistent range.
fn check_entry(e: &StreamEntry) -> Result<(), ArchiveError> {
    if e.path.is_empty() || e.path.starts_with('/') {
        return Err(ArchiveError::Malformed(format!(
            "stream path {:?} is not root-relative",
            e.path
        )));
    }
    if e.data_start() > e.tail {
        return Err(ArchiveError::Malformed(format!(
            "{}: fork point {} is past the tail {}",
            e.path,
            e.data_start(),
            e.tail
        )));
    }
    Ok(())
}

/// Data records of a stream are non-empty and contiguous up to its tail.
fn check_record(e: &StreamEntry, next: u64, start: u64, bytes: &[u8]) -> Result<u64, ArchiveError> {
    let end = start.saturating_add(bytes.len() as u64);
    if start != next || bytes.is_empty() || end > e.tail {
        return Err(ArchiveError::Malformed(format!(
            "{}: data record at {start} ({} bytes) does not continue at {next} below tail {}",
            e.path,
            bytes.len(),
            e.tail
        )));
    }
    Ok(end)
}

fn check_complete(e: &StreamEntry, next: u64) -> Result<(), ArchiveError> {
    if next != e.tail {
        return Err(ArchiveError::Malformed(format!(
            "{}: data ends at {next} but the tail is {}",
            e.path, e.tail
        )));
    }
    Ok(())
}
