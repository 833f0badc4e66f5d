//! `POST`: append, append-and-close, close-only, with `Stream-Seq` and
//! idempotent producers (PROTOCOL §5.2, §5.2.1, §5.3).

use crate::engine::commit::Publish;
use crate::engine::Engine;
use crate::error::{BadRequest, Conflict, EngineError, ProtocolError};
use crate::headers::{is_true, producer_claim};
use crate::json::{is_json, mark_batch_end, media_type, split_messages, JsonError};
use crate::offset::Offset;
use crate::producer::{check, Decision, ProducerClaim};
use crate::request::Request;
use crate::response::{names, Response};
use crate::store::{Op, Record, Store};
use crate::time::UnixMillis;

impl<S: Store> Engine<S> {
    /// Takes the request's body once the append is accepted (no copy).
    pub(crate) fn append(
        &mut self,
        req: &mut Request,
        now: UnixMillis,
    ) -> Result<Response, EngineError> {
        let claim = producer_claim(req)?;
        let close = is_true(req.header_value(names::STREAM_CLOSED));
        let stream_seq = req.header_value(names::STREAM_SEQ).map(str::to_string);
        let has_body = !req.body.is_empty();
        if !has_body && !close {
            return Err(BadRequest::EmptyBody.into());
        }
        // One copy of the metadata: checks read it before any field changes.
        let mut next = self.live_meta(&req.path, now)?;
        let meta = &next;
        let tail = Offset(meta.tail);

        // PROTOCOL §5.2 error precedence: closed first.
        if meta.closed {
            if let (Some(c), Some(by)) = (&claim, &meta.closed_by) {
                if c == &**by {
                    return Ok(closed_ack(tail, Some(c), 204));
                }
            }
            if !has_body {
                // Close-only on a closed stream is idempotent (PROTOCOL §5.2).
                return Ok(closed_ack(tail, None, 204));
            }
            return Err(ProtocolError::StreamClosed { tail }.into());
        }

        let json = is_json(&meta.content_type);
        // JSON messages are split (and validated) now; a byte-stream body
        // is moved into its record once every check has passed.
        let mut messages = Vec::new();
        if has_body {
            let ct = req
                .header_value(names::CONTENT_TYPE)
                .map(str::trim)
                .filter(|c| !c.is_empty());
            let ct = ct.ok_or(BadRequest::MissingContentType)?;
            if !media_type(ct).eq_ignore_ascii_case(media_type(&meta.content_type)) {
                return Err(Conflict::ContentTypeMismatch.into());
            }
            if json {
                messages = split_messages(&req.body, false).map_err(|e| match e {
                    JsonError::Invalid => BadRequest::InvalidJson,
                    JsonError::EmptyArray => BadRequest::EmptyJsonArray,
                })?;
                mark_batch_end(&mut messages);
            }
        }

        if let Some(c) = &claim {
            match check(next.producers.get(&c.id).copied(), c.epoch, c.seq) {
                Decision::Accept { next: state } => {
                    next.producers.insert(c.id.clone(), state);
                }
                Decision::Duplicate { last_seq } => {
                    let mut res = Response::new(204);
                    res.set(names::STREAM_NEXT_OFFSET, tail.to_string());
                    res.set(names::PRODUCER_EPOCH, c.epoch.to_string());
                    res.set(names::PRODUCER_SEQ, last_seq.to_string());
                    return Ok(res);
                }
                Decision::StaleEpoch { current } => {
                    return Err(ProtocolError::StaleProducerEpoch { current }.into());
                }
                Decision::NewEpochNotAtZero => return Err(BadRequest::NewEpochNotAtZero.into()),
                Decision::Gap { expected, received } => {
                    return Err(ProtocolError::ProducerSeqGap { expected, received }.into());
                }
            }
        }
        if let Some(seq) = &stream_seq {
            if next
                .last_stream_seq
                .as_ref()
                .is_some_and(|last| seq.as_bytes() <= last.as_bytes())
            {
                return Err(Conflict::StreamSeqRegression.into());
            }
            next.last_stream_seq = Some(seq.clone());
        }

        let added: u64 = if json {
            messages.iter().map(|m| m.len() as u64).sum()
        } else {
            req.body.len() as u64
        };
        self.check_quota(false, next.tail + added, added)?;
        if has_body && !json {
            messages.push(std::mem::take(&mut req.body));
        }
        // Every check has passed: stage the records and the new metadata.
        for data in messages {
            let start = next.tail;
            next.tail += data.len() as u64;
            self.stage_op(Op::Append {
                path: req.path.clone(),
                id: next.id,
                record: Record { start, data },
                mergeable: !json,
            });
        }
        if close {
            next.closed = true;
            next.closed_by = claim.clone().map(Box::new);
        }
        next.last_access = now.0;
        self.stage_op(Op::PutMeta {
            path: req.path.clone(),
            meta: next.encode(),
        });
        let tail = Offset(next.tail);
        let closed = next.closed;
        self.stage_publish(Some(Publish {
            path: req.path.clone(),
            id: next.id,
            tail: next.tail,
            closed,
        }));
        self.install(&req.path, next);

        // PROTOCOL §5.2.1: a producer's new data is 200; close-only is 204.
        let mut res = Response::new(if claim.is_some() && has_body {
            200
        } else {
            204
        });
        res.set(names::STREAM_NEXT_OFFSET, tail.to_string());
        if let Some(c) = &claim {
            res.set(names::PRODUCER_EPOCH, c.epoch.to_string());
            res.set(names::PRODUCER_SEQ, c.seq.to_string());
        }
        if closed {
            res.set(names::STREAM_CLOSED, "true");
        }
        Ok(res)
    }
}

/// The answer to a write on an already-closed stream that is a no-op.
fn closed_ack(tail: Offset, claim: Option<&ProducerClaim>, status: u16) -> Response {
    let mut res = Response::new(status);
    res.set(names::STREAM_NEXT_OFFSET, tail.to_string());
    res.set(names::STREAM_CLOSED, "true");
    if let Some(c) = claim {
        res.set(names::PRODUCER_EPOCH, c.epoch.to_string());
        res.set(names::PRODUCER_SEQ, c.seq.to_string());
    }
    res
}
