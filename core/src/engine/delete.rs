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
        let mut batch = Batch::default();
        self.remove(&req.path, &mut batch);
        self.stage(batch, None);
        Ok(Response::new(204))
    }
}
