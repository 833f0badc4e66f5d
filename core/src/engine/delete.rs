//! `DELETE` (PROTOCOL §5.4): purge, or soft-delete while forks read it.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::request::Request;
use crate::response::Response;
use crate::store::{Batch, Store};
use crate::time::UnixMillis;

impl<S: Store> Engine<S> {
    pub(crate) fn delete(
        &mut self,
        req: &Request,
        now: UnixMillis,
    ) -> Result<Response, EngineError> {
        self.live_stream(&req.path, now)?;
        // Plan on a copy of the in-memory state so a failed commit changes nothing.
        let saved = self.streams.clone();
        let mut batch = Batch::default();
        self.remove(&req.path, &mut batch);
        if let Err(e) = self.commit(batch) {
            self.streams = saved;
            return Err(e.into());
        }
        Ok(Response::new(204))
    }
}
