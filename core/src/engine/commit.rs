//! Group commit: writes are staged in memory and committed together.
//!
//! Every successful write adds its operations to the pending batch and gets a
//! [`Ticket`]. The host takes the whole pending batch at once
//! ([`Engine::take_commit`]), commits it (one transaction and one fsync per
//! shard touched, however many writes it holds), then calls
//! [`Engine::finish_commit`] to learn the response of every ticket in it.
//! While one group is being committed, new writes stage into the next.
//! Readers see a write only once its group is committed (see `Visible`).
//! If a commit fails, every staged write fails with the storage error and the
//! engine reloads its state from the store, which holds exactly the committed
//! groups.

use crate::engine::{decorate_with, CorsHeaders, Engine, Event, Outcome};
use crate::error::EngineError;
use crate::problem::error_response;
use crate::response::Response;
use crate::store::{Batch, Op, Store, StoreError, StreamId};

/// Identifies a staged write until its group is committed.
pub type Ticket = u64;

/// A group of staged writes, to be committed as one batch.
#[derive(Debug)]
pub struct Commit {
    /// Everything the group changes, in staging order (see [`Commit::batch`]).
    batch: Batch,
    /// Number of writes in the group (for metrics).
    pub writes: usize,
    /// Superseded metadata writes have been dropped from `batch`.
    compacted: bool,
}

impl Commit {
    /// What to store: everything the group changes, in staging order,
    /// except metadata writes a later one in the group replaces. Computed
    /// on first use, so a host can take the group under its lock and leave
    /// this work for after.
    pub fn batch(&mut self) -> &Batch {
        if !self.compacted {
            keep_last_meta(&mut self.batch.ops);
            self.compacted = true;
        }
        &self.batch
    }

    /// Stores [`Commit::batch`] in `store` (nothing when it is empty); the
    /// result is what [`Engine::finish_commit`] takes.
    pub fn store_in<S: Store + ?Sized>(&mut self, store: &S) -> Result<(), StoreError> {
        let batch = self.batch();
        if batch.is_empty() {
            Ok(())
        } else {
            store.commit(batch)
        }
    }
}

/// A visibility update applied when a group is committed.
#[derive(Clone, Debug)]
pub(crate) struct Publish {
    pub path: String,
    pub id: StreamId,
    pub tail: u64,
    pub closed: bool,
}

/// One staged write (or internal change, such as an expiry).
#[derive(Debug)]
struct Entry {
    ticket: Option<Ticket>,
    response: Option<Response>,
    cors: CorsHeaders,
    publish: Publishes,
}

/// The visibility updates of one entry: most writes make exactly one, which
/// is then kept without a heap allocation.
#[derive(Debug, Default)]
enum Publishes {
    #[default]
    None,
    One(Publish),
    Many(Vec<Publish>),
}

impl Publishes {
    fn push(&mut self, p: Publish) {
        *self = match std::mem::take(self) {
            Publishes::None => Publishes::One(p),
            Publishes::One(first) => Publishes::Many(vec![first, p]),
            Publishes::Many(mut all) => {
                all.push(p);
                Publishes::Many(all)
            }
        };
    }

    fn as_slice(&self) -> &[Publish] {
        match self {
            Publishes::None => &[],
            Publishes::One(p) => std::slice::from_ref(p),
            Publishes::Many(all) => all,
        }
    }
}

/// Largest settled entry list kept for reuse (a group holds one entry per
/// write; a burst of more writes allocates its own list once).
const SPARE_ENTRIES_MAX: usize = 1024;

/// The engine's staging area.
#[derive(Debug, Default)]
pub(crate) struct Staging {
    next_ticket: Ticket,
    /// Operations of the next group.
    pending: Batch,
    pending_entries: Vec<Entry>,
    /// Visibility updates of the write being handled.
    scratch: Publishes,
    /// The group being committed, if any.
    in_flight: Option<Vec<Entry>>,
    /// An empty list with the capacity of a settled group's, reused for
    /// the next group (staging then allocates nothing per write).
    spare_entries: Vec<Entry>,
    /// Changes staged by handlers (set by [`Engine::stage`]).
    dirty: bool,
}

impl Staging {
    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        self.next_ticket
    }
}

impl<S: Store> Engine<S> {
    /// Adds `batch` to the pending group; `publish` says what readers may
    /// see once it is committed.
    pub(crate) fn stage(&mut self, batch: Batch, publish: Option<Publish>) {
        self.staging.pending.ops.extend(batch.ops);
        self.stage_publish(publish);
    }

    /// Adds one operation to the pending group (as [`Engine::stage`] with a
    /// batch of one, without building the batch).
    pub(crate) fn stage_op(&mut self, op: Op) {
        self.staging.pending.ops.push(op);
        self.staging.dirty = true;
    }

    /// Records what readers may see once the staged operations of the
    /// write being handled are committed.
    pub(crate) fn stage_publish(&mut self, publish: Option<Publish>) {
        if let Some(p) = publish {
            self.staging.scratch.push(p);
        }
        self.staging.dirty = true;
    }

    pub(crate) fn staging_is_dirty(&self) -> bool {
        self.staging.dirty
    }

    pub(crate) fn staging_clear_scratch(&mut self) {
        self.staging.scratch = Publishes::None;
        self.staging.dirty = false;
    }

    /// Stages an internal change (an expiry) that no client waits for.
    pub(crate) fn stage_internal(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        self.staging.pending.ops.extend(batch.ops);
        self.staging.pending_entries.push(Entry {
            ticket: None,
            response: None,
            cors: CorsHeaders::Borrowed(&[]),
            publish: Publishes::None,
        });
    }

    /// Files the successful write just handled. Its response waits for a
    /// commit when it staged changes or depends on uncommitted ones;
    /// otherwise it is sent at once.
    pub(crate) fn seal(&mut self, response: Response, cors: CorsHeaders) -> Outcome {
        let publish = std::mem::take(&mut self.staging.scratch);
        let dirty = std::mem::take(&mut self.staging.dirty);
        let in_flight = self.staging.in_flight.is_some();
        if !dirty && !in_flight && self.staging.pending_entries.is_empty() {
            return Outcome::Respond(decorate_with(response, &cors));
        }
        let ticket = self.staging.ticket();
        let entry = Entry {
            ticket: Some(ticket),
            response: Some(response),
            cors,
            publish,
        };
        match self.staging.in_flight.as_mut() {
            // Depends only on the group being committed: settle with it.
            Some(group) if !dirty && self.staging.pending_entries.is_empty() => group.push(entry),
            _ => self.staging.pending_entries.push(entry),
        }
        Outcome::Pending(ticket)
    }

    /// Takes every staged write as one group, unless a group is already
    /// being committed or nothing is staged. The host commits
    /// [`Commit::batch`] and then calls [`Engine::finish_commit`].
    pub fn take_commit(&mut self) -> Option<Commit> {
        if self.staging.in_flight.is_some() || self.staging.pending_entries.is_empty() {
            return None;
        }
        let spare = std::mem::take(&mut self.staging.spare_entries);
        let entries = std::mem::replace(&mut self.staging.pending_entries, spare);
        let batch = std::mem::take(&mut self.staging.pending);
        let writes = entries.iter().filter(|e| e.ticket.is_some()).count();
        self.staging.in_flight = Some(entries);
        Some(Commit {
            batch,
            writes,
            compacted: false,
        })
    }

    /// True when writes are staged and no group is being committed.
    pub fn has_pending_commit(&self) -> bool {
        self.staging.in_flight.is_none() && !self.staging.pending_entries.is_empty()
    }

    /// Reports how the commit of the group from [`Engine::take_commit`]
    /// went, and returns the response for each ticket settled by it.
    ///
    /// On success readers may now see the group, and events wake them. On
    /// failure every staged write (this group and any staged after it, which
    /// may depend on it) is answered with the storage error, and the engine
    /// reloads its state from the store.
    pub fn finish_commit(&mut self, result: Result<(), StoreError>) -> Vec<(Ticket, Response)> {
        let mut entries = self.staging.in_flight.take().unwrap_or_default();
        let mut out = Vec::with_capacity(entries.len());
        match result {
            Ok(()) => {
                // Only subscriptions need the list of what advanced.
                let watched = self.has_subscriptions();
                let mut advanced = Vec::new();
                for entry in entries.drain(..) {
                    for p in entry.publish.as_slice() {
                        if let Some(created) = self.publish(p) {
                            if watched {
                                advanced.push((p.path.clone(), created));
                            }
                        }
                    }
                    if let (Some(t), Some(r)) = (entry.ticket, entry.response) {
                        out.push((t, decorate_with(r, &entry.cors)));
                    }
                }
                // Subscriptions react to committed data only (PROTOCOL §7).
                self.subs_after_publish(advanced);
                // Kept for the next group, unless a rare burst made it big.
                if entries.capacity() <= SPARE_ENTRIES_MAX
                    && self.staging.spare_entries.capacity() < entries.capacity()
                {
                    self.staging.spare_entries = entries;
                }
            }
            Err(e) => {
                let later = std::mem::take(&mut self.staging.pending_entries);
                self.staging.pending = Batch::default();
                let error = EngineError::Store(e);
                for entry in entries.into_iter().chain(later) {
                    if let Some(t) = entry.ticket {
                        out.push((t, decorate_with(error_response(&error), &entry.cors)));
                    }
                }
                // If even reading fails, keep the state we have: the next
                // commit surfaces the error again.
                let _ = self.reload();
            }
        }
        out
    }

    /// Commits everything staged, synchronously, through the engine's own
    /// store: the whole cycle for single-threaded hosts and tests.
    pub fn commit_pending(&mut self) -> Vec<(Ticket, Response)> {
        let mut out = Vec::new();
        while let Some(mut commit) = self.take_commit() {
            let result = commit.store_in(&self.store);
            let settled = self.finish_commit(result);
            if out.is_empty() {
                out = settled;
            } else {
                out.extend(settled);
            }
        }
        out
    }

    /// Makes a committed change visible. Returns `Some(created)` when the
    /// stream advanced (`created` when this made it exist), `None` when the
    /// stream is gone.
    fn publish(&mut self, p: &Publish) -> Option<bool> {
        let state = self
            .streams
            .get_mut(&p.path)
            .filter(|s| s.meta.id == p.id)?;
        let v = &mut state.visible;
        let created = !v.exists;
        let from = v.tail;
        v.exists = true;
        v.tail = v.tail.max(p.tail);
        v.closed |= p.closed;
        self.events.push_back(Event::Advanced {
            path: p.path.clone(),
            from,
        });
        Some(created)
    }

    /// Files changes staged outside any client request (subscription
    /// bookkeeping, wake events) as an internal entry of the next group.
    pub(crate) fn seal_internal(&mut self) {
        let publish = std::mem::take(&mut self.staging.scratch);
        if std::mem::take(&mut self.staging.dirty) {
            self.staging.pending_entries.push(Entry {
                ticket: None,
                response: None,
                cors: CorsHeaders::Borrowed(&[]),
                publish,
            });
        }
    }
}

/// Drops every metadata write of a path that a later one in the same group
/// replaces: the group commits atomically, so only the last one can ever be
/// seen (32 appends to one stream in a group write its metadata once).
fn keep_last_meta(ops: &mut Vec<Op>) {
    // A group of one write has one metadata write: nothing to look up.
    let metas = ops
        .iter()
        .filter(|op| matches!(op, Op::PutMeta { .. } | Op::DeleteMeta { .. }));
    if metas.take(2).count() < 2 {
        return;
    }
    let mut keep = crate::store::last_meta_writes(ops).into_iter();
    ops.retain(|_| keep.next().unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_metadata_write_of_each_path_is_kept() {
        let put = |p: &str, m: &str| Op::PutMeta {
            path: p.into(),
            meta: m.as_bytes().to_vec(),
        };
        let del = |p: &str| Op::DeleteMeta { path: p.into() };
        let purge = Op::PurgeData {
            path: "/b".into(),
            id: 2,
        };
        let mut ops = vec![
            put("/a", "1"),
            put("/b", "1"),
            del("/b"),
            purge.clone(),
            put("/a", "2"),
            del("/c"),
            put("/c", "3"),
        ];
        keep_last_meta(&mut ops);
        assert_eq!(ops, vec![del("/b"), purge, put("/a", "2"), put("/c", "3")]);
    }
}
