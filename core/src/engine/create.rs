//! `PUT`: create a stream, create it closed, or fork one (PROTOCOL §5.1, §4.2).

use std::collections::BTreeMap;

use crate::engine::commit::Publish;
use crate::engine::{Engine, StreamState};
use crate::error::{BadRequest, Conflict, EngineError, ProtocolError};
use crate::headers::{forked_from_path, is_true, parse_canonical_uint, MAX_SAFE_INTEGER};
use crate::json::{is_batch_end, is_json, mark_batch_end, media_type, split_messages, JsonError};
use crate::offset::Offset;
use crate::request::Request;
use crate::response::{names, Response};
use crate::store::{Batch, Op, Record, Store};
use crate::stream::{Expiry, ForkOrigin, StreamMeta, META_VERSION};
use crate::time::{parse_rfc3339, UnixMillis};

/// The configuration a `PUT` asks for, parsed and validated.
struct CreateSpec {
    content_type: Option<String>,
    expiry: Expiry,
    closed: bool,
    fork: Option<ForkSpec>,
}

struct ForkSpec {
    source: String,
    offset: Option<Offset>,
    sub_offset: u64,
}

/// The default content type when a `PUT` names none (PROTOCOL §5.1).
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

impl<S: Store> Engine<S> {
    pub(crate) fn create(
        &mut self,
        req: &Request,
        now: UnixMillis,
    ) -> Result<Response, EngineError> {
        let spec = self.parse_create(req)?;
        if let Some(existing) = self.streams.get(&req.path) {
            if existing.meta.soft_deleted {
                return Err(Conflict::PathSoftDeleted.into());
            }
        }
        if self.streams.contains_key(&req.path) {
            // live_stream expires a stale stream so the path is free again.
            match self.live_stream(&req.path, now) {
                Ok(state) => {
                    return same_config(state, &spec)
                        .map(|()| created_response(&state.meta, 200, req))
                }
                Err(EngineError::Protocol(ProtocolError::NotFound)) => {}
                Err(e) => return Err(e),
            }
        }

        let mut meta = StreamMeta {
            v: META_VERSION,
            id: 0,
            content_type: spec
                .content_type
                .as_deref()
                .unwrap_or(DEFAULT_CONTENT_TYPE)
                .into(),
            created_at: now.0,
            expiry: spec.expiry.clone(),
            last_access: now.0,
            tail: 0,
            closed: false,
            closed_by: None,
            fork: None,
            soft_deleted: false,
            last_stream_seq: None,
            producers: BTreeMap::new(),
        };
        if let Some(fork) = &spec.fork {
            self.resolve_fork(fork, &spec, &mut meta, now)?;
        }
        let messages = initial_records(&meta.content_type, &req.body)?;
        let added: u64 = messages.iter().map(|m| m.len() as u64).sum();
        self.check_quota(true, meta.tail + added, added)?;
        let mut batch = Batch::default();
        meta.id = self.allocate_id(now, &mut batch);
        for data in messages {
            let start = meta.tail;
            meta.tail += data.len() as u64;
            batch.ops.push(Op::Append {
                path: req.path.clone(),
                id: meta.id,
                record: Record { start, data },
                mergeable: !is_json(&meta.content_type),
            });
        }
        meta.closed = spec.closed;
        batch.ops.push(Op::PutMeta {
            path: req.path.clone(),
            meta: meta.encode(),
        });
        let publish = Publish {
            path: req.path.clone(),
            id: meta.id,
            tail: meta.tail,
            closed: meta.closed,
        };
        self.stage(batch, Some(publish));
        if let Some(origin) = &meta.fork {
            if let Some(source) = self.streams.get_mut(&origin.source) {
                source.forks += 1;
            }
        }
        let res = created_response(&meta, 201, req);
        self.install(&req.path, meta);
        Ok(res)
    }

    fn parse_create(&self, req: &Request) -> Result<CreateSpec, BadRequest> {
        let ttl = req.header_value(names::STREAM_TTL);
        let expires = req.header_value(names::STREAM_EXPIRES_AT);
        let expiry = match (ttl, expires) {
            (Some(_), Some(_)) => return Err(BadRequest::TtlAndExpiresAt),
            (Some(ttl), None) => {
                Expiry::Ttl(parse_canonical_uint(ttl).ok_or(BadRequest::Header {
                    name: "Stream-TTL",
                    reason: "must be a non-negative decimal integer without sign or leading zeros",
                })?)
            }
            (None, Some(text)) => Expiry::at(
                parse_rfc3339(text)
                    .ok_or(BadRequest::Header {
                        name: "Stream-Expires-At",
                        reason: "must be an RFC 3339 timestamp",
                    })?
                    .0,
                text.trim().to_string(),
            ),
            (None, None) => Expiry::Never,
        };
        let fork = match req.header_value(names::STREAM_FORKED_FROM) {
            None if req.header_value(names::STREAM_FORK_OFFSET).is_some() => {
                return Err(BadRequest::Header {
                    name: "Stream-Fork-Offset",
                    reason: "requires Stream-Forked-From",
                });
            }
            None if req.header_value(names::STREAM_FORK_SUB_OFFSET).is_some() => {
                return Err(BadRequest::Header {
                    name: "Stream-Fork-Sub-Offset",
                    reason: "requires Stream-Forked-From",
                });
            }
            None => None,
            Some(source) => {
                let offset = match req.header_value(names::STREAM_FORK_OFFSET) {
                    None => None,
                    Some(v) => Some(Offset::parse(v.trim()).ok_or(BadRequest::Header {
                        name: "Stream-Fork-Offset",
                        reason: "is not an offset this server issued",
                    })?),
                };
                let sub_offset = match req.header_value(names::STREAM_FORK_SUB_OFFSET) {
                    None => 0,
                    Some(v) => parse_canonical_uint(v)
                        .filter(|n| *n <= MAX_SAFE_INTEGER)
                        .ok_or(BadRequest::Header {
                            name: "Stream-Fork-Sub-Offset",
                            reason: "must be a non-negative integer",
                        })?,
                };
                Some(ForkSpec {
                    source: forked_from_path(&self.config.stream_root, source),
                    offset,
                    sub_offset,
                })
            }
        };
        let content_type = req
            .header_value(names::CONTENT_TYPE)
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        Ok(CreateSpec {
            content_type,
            expiry,
            closed: is_true(req.header_value(names::STREAM_CLOSED)),
            fork,
        })
    }

    /// Fills in `meta` for a fork of `fork.source` (PROTOCOL §4.2).
    fn resolve_fork(
        &mut self,
        fork: &ForkSpec,
        spec: &CreateSpec,
        meta: &mut StreamMeta,
        now: UnixMillis,
    ) -> Result<(), EngineError> {
        let (source, source_tail) = match self.readable_stream(&fork.source, now) {
            Ok(s) => (s.meta.clone(), s.visible.tail),
            Err(EngineError::Protocol(ProtocolError::NotFound)) => {
                return Err(ProtocolError::ForkSourceNotFound.into())
            }
            Err(EngineError::Protocol(ProtocolError::Gone)) => {
                return Err(Conflict::SourceSoftDeleted.into())
            }
            Err(e) => return Err(e),
        };
        match &spec.content_type {
            Some(ct) if !media_type(ct).eq_ignore_ascii_case(media_type(&source.content_type)) => {
                return Err(Conflict::ContentTypeMismatch.into());
            }
            _ => meta.content_type = source.content_type.clone(),
        }
        // Forks branch from committed data only (PROTOCOL §4.2).
        let anchor = fork.offset.map_or(source_tail, |o| o.0);
        if anchor > source_tail {
            return Err(BadRequest::ForkOffsetBeyondTail.into());
        }
        let point =
            self.sub_offset_point(&fork.source, &source, source_tail, anchor, fork.sub_offset)?;
        meta.tail = point;
        meta.fork = Some(Box::new(ForkOrigin {
            source: fork.source.clone(),
            source_id: source.id,
            point,
            anchor,
            sub_offset: fork.sub_offset,
        }));
        // PROTOCOL §4.2 fork TTL table: a fork that asks for nothing inherits.
        if spec.expiry == Expiry::Never {
            meta.expiry = source.expiry.clone();
        }
        Ok(())
    }

    /// Resolves `(anchor, sub_offset)` on `source` to a position: bytes past
    /// the anchor within the record that holds it, or whole JSON messages.
    fn sub_offset_point(
        &self,
        path: &str,
        source: &StreamMeta,
        tail: u64,
        anchor: u64,
        sub: u64,
    ) -> Result<u64, EngineError> {
        if sub == 0 {
            return Ok(anchor);
        }
        if is_json(&source.content_type) {
            // Whole messages, never past the end of the append at the anchor
            // nor past a fork point of the source's chain.
            let mut points = Vec::new();
            let mut link = source.fork.as_ref();
            while let Some(origin) = link {
                points.push(origin.point);
                link = self
                    .streams
                    .get(&origin.source)
                    .and_then(|s| s.meta.fork.as_ref());
            }
            let (mut pos, mut taken) = (anchor, 0u64);
            loop {
                let records = self.read_stitched(
                    path,
                    source.id,
                    source.fork.as_deref(),
                    pos,
                    tail,
                    64 << 10,
                )?;
                let mut progressed = false;
                let from = pos;
                for r in records.iter().filter(|r| r.start >= from) {
                    progressed = true;
                    taken += 1;
                    pos = r.end();
                    if taken == sub {
                        return Ok(pos);
                    }
                    if is_batch_end(&r.data) || points.contains(&pos) {
                        return Err(BadRequest::ForkSubOffsetOvershoot.into());
                    }
                }
                if !progressed {
                    return Err(BadRequest::ForkSubOffsetOvershoot.into());
                }
            }
        } else {
            // The end of the append holding the anchor, in the segment of
            // the source's fork chain the anchor lies in.
            let mut boundary = anchor;
            for (seg_path, id, lo, hi) in
                self.fork_chain(path, source.id, source.fork.as_deref(), tail)?
            {
                if anchor < hi && lo < hi {
                    let end = self.store.append_end(seg_path, id, anchor.max(lo))?;
                    boundary = end.map_or(anchor, |e| e.min(hi));
                    break;
                }
            }
            let point = anchor.saturating_add(sub);
            if point > boundary {
                return Err(BadRequest::ForkSubOffsetOvershoot.into());
            }
            Ok(point)
        }
    }
}

/// The records a `PUT` body creates: JSON messages or one byte record.
fn initial_records(content_type: &str, body: &[u8]) -> Result<Vec<Vec<u8>>, BadRequest> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if is_json(content_type) {
        let mut messages = split_messages(body, true).map_err(|e| match e {
            JsonError::Invalid => BadRequest::InvalidJson,
            JsonError::EmptyArray => BadRequest::EmptyJsonArray,
        })?;
        mark_batch_end(&mut messages);
        Ok(messages)
    } else {
        Ok(vec![body.to_vec()])
    }
}

/// PROTOCOL §5.1: an existing stream matches when content type, expiry,
/// closure and fork origin all match.
fn same_config(state: &StreamState, spec: &CreateSpec) -> Result<(), EngineError> {
    let meta = &state.meta;
    let ct_matches = match &spec.content_type {
        Some(ct) => media_type(ct).eq_ignore_ascii_case(media_type(&meta.content_type)),
        None => {
            spec.fork.is_some()
                || media_type(&meta.content_type).eq_ignore_ascii_case(DEFAULT_CONTENT_TYPE)
        }
    };
    let expiry_matches = match (&spec.expiry, &meta.expiry) {
        (Expiry::At(a), Expiry::At(b)) => a.at == b.at,
        (Expiry::Never, _) if spec.fork.is_some() => true,
        (a, b) => a == b,
    };
    let fork_matches = match (&spec.fork, &meta.fork) {
        (None, None) => true,
        (Some(want), Some(have)) => {
            want.source == have.source
                && want.offset.is_none_or(|o| o.0 == have.anchor)
                && want.sub_offset == have.sub_offset
        }
        _ => false,
    };
    if ct_matches && expiry_matches && spec.closed == meta.closed && fork_matches {
        Ok(())
    } else {
        Err(Conflict::ConfigMismatch.into())
    }
}

fn created_response(meta: &StreamMeta, status: u16, req: &Request) -> Response {
    let mut res = Response::new(status);
    if status == 201 {
        res.set(names::LOCATION, location(req));
    }
    res.set(names::CONTENT_TYPE, meta.content_type.to_string());
    res.set(names::STREAM_NEXT_OFFSET, Offset(meta.tail).to_string());
    if meta.closed {
        res.set(names::STREAM_CLOSED, "true");
    }
    res.set(names::CACHE_CONTROL, "no-store");
    res
}

/// `Location` of a created stream: absolute when the request named its host.
fn location(req: &Request) -> String {
    match req.header_value("host") {
        Some(host) => {
            let scheme = req.header_value("x-forwarded-proto").unwrap_or("http");
            format!("{scheme}://{host}{}", req.path)
        }
        None => req.path.clone(),
    }
}
