//! A deliberately naive model of the protocol: the oracle for model-based
//! property tests (`tests/model_prop.rs`).
//!
//! Streams are plain vectors (bytes, or JSON message texts), forks are
//! copies, and every rule is written the obvious way, straight from
//! PROTOCOL §4.2, §5.1–§5.6, §5.2.1 and §9.1. [`Model::apply`] sends one
//! [`Op`] to a [`Target`], predicts the answer from the model, checks it,
//! and updates the model. Offsets stay opaque: the model only remembers
//! which token the target minted for which position, and checks that
//! tokens are stable and sort like their positions (§8).

use std::collections::BTreeMap;

use crate::dsl::*;
use crate::json::Json;
use crate::target::{Reply, Target};

/// How many distinct stream names operations pick from.
pub const STREAMS: u8 = 4;
const BIN: &str = "application/octet-stream";
const JSON: &str = "application/json";

/// A producer's `(Producer-Id, Producer-Epoch, Producer-Seq)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Which of a few producer ids.
    pub producer: u8,
    /// `Producer-Epoch`.
    pub epoch: u64,
    /// `Producer-Seq`.
    pub seq: u64,
}

/// What a write carries. Byte streams use `bytes`; JSON streams send
/// `{"n":…}` messages built from `numbers`, as an array when `as_array`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Bytes for a byte stream.
    pub bytes: Vec<u8>,
    /// One message per number for a JSON stream.
    pub numbers: Vec<u8>,
    /// Send a JSON array (flattened one level) instead of one value.
    pub as_array: bool,
}

/// Where a read starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// `offset=-1`.
    Start,
    /// `offset=now`.
    Now,
    /// One of the offsets the target minted for this stream (by index).
    Saved(u8),
}

/// One generated operation. Stream numbers are taken modulo [`STREAMS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `PUT`, optionally closed, with an optional body.
    Create {
        /// Target stream.
        stream: u8,
        /// `application/json` rather than bytes.
        json: bool,
        /// Initial content (may be empty).
        body: Payload,
        /// `Stream-Closed: true`.
        closed: bool,
    },
    /// `POST` with a body.
    Append {
        /// Target stream.
        stream: u8,
        /// The data (never empty).
        body: Payload,
        /// Send the other content type.
        wrong_type: bool,
        /// `Stream-Seq: s<n>`.
        seq: Option<u8>,
        /// Producer headers.
        claim: Option<Claim>,
        /// `Stream-Closed: true` as well.
        close: bool,
    },
    /// Close-only `POST`.
    Close {
        /// Target stream.
        stream: u8,
        /// Producer headers.
        claim: Option<Claim>,
    },
    /// `DELETE`.
    Delete {
        /// Target stream.
        stream: u8,
    },
    /// `HEAD`.
    Head {
        /// Target stream.
        stream: u8,
    },
    /// Catch-up reads until up to date.
    Read {
        /// Target stream.
        stream: u8,
        /// Start position.
        from: ReadFrom,
    },
    /// `PUT` with `Stream-Forked-From`.
    Fork {
        /// The new stream.
        stream: u8,
        /// The source stream.
        source: u8,
        /// Which saved offset of the source to fork at (tail when none).
        at: u8,
    },
    /// Restart the host over the same storage.
    Restart,
}

#[derive(Clone, Debug)]
struct ForkOf {
    source: String,
    source_id: u64,
    anchor: String,
}

#[derive(Clone, Debug)]
struct Stream {
    id: u64,
    json: bool,
    bytes: Vec<u8>,
    messages: Vec<Json>,
    closed: bool,
    closed_by: Option<Claim>,
    producers: BTreeMap<u8, (u64, u64)>,
    last_seq: Option<String>,
    soft_deleted: bool,
    fork: Option<ForkOf>,
}

impl Stream {
    fn len(&self) -> usize {
        if self.json {
            self.messages.len()
        } else {
            self.bytes.len()
        }
    }
}

/// The model's state.
#[derive(Debug, Default)]
pub struct Model {
    streams: BTreeMap<String, Stream>,
    next_id: u64,
    /// Offsets minted by the target: (stream id, position) → token.
    tokens: BTreeMap<(u64, usize), String>,
}

fn name(stream: u8) -> String {
    format!("m{}", stream % STREAMS)
}

fn claim_headers(req: ds_core::Request, claim: &Option<Claim>) -> ds_core::Request {
    match claim {
        Some(c) => req.producer(&format!("p{}", c.producer), c.epoch, c.seq),
        None => req,
    }
}

/// The request body for `payload` in JSON or byte form, and the messages
/// or bytes it stores.
fn encode(payload: &Payload, json: bool) -> (Vec<u8>, Vec<Json>) {
    if !json {
        return (payload.bytes.clone(), Vec::new());
    }
    let texts: Vec<String> = payload
        .numbers
        .iter()
        .map(|n| format!("{{\"n\":{n}}}"))
        .collect();
    let stored = texts.iter().map(|t| json_value(t)).collect();
    if payload.as_array {
        (format!("[{}]", texts.join(",")).into_bytes(), stored)
    } else {
        match texts.first() {
            Some(t) => (t.clone().into_bytes(), stored[..1].to_vec()),
            None => (Vec::new(), Vec::new()),
        }
    }
}

#[track_caller]
fn expect(reply: &Reply, status: u16, op: &Op) {
    assert_eq!(
        reply.status, status,
        "model expected {status} for {op:?}, got: {reply:?}"
    );
}

impl Model {
    /// An empty model.
    pub fn new() -> Model {
        Model::default()
    }

    /// Records that the target called position `pos` of stream `id` `token`;
    /// checks it is the same token as before and sorts like its position.
    #[track_caller]
    fn learn(&mut self, id: u64, pos: usize, token: String) {
        if let Some(known) = self.tokens.get(&(id, pos)) {
            assert_eq!(known, &token, "position {pos} got a second token");
            return;
        }
        if let Some(((_, p), before)) = self.tokens.range((id, 0)..(id, pos)).next_back() {
            assert!(
                *before < token,
                "offset for {p} ({before}) does not sort before the one for {pos} ({token})"
            );
        }
        if let Some(((_, p), after)) = self.tokens.range((id, pos + 1)..(id + 1, 0)).next() {
            assert!(
                token < *after,
                "offset for {pos} ({token}) does not sort before the one for {p} ({after})"
            );
        }
        self.tokens.insert((id, pos), token);
    }

    fn live(&self, path: &str) -> Result<&Stream, u16> {
        match self.streams.get(path) {
            None => Err(404),
            Some(s) if s.soft_deleted => Err(410),
            Some(s) => Ok(s),
        }
    }

    fn referenced(&self, id: u64) -> bool {
        self.streams
            .values()
            .any(|s| s.fork.as_ref().is_some_and(|f| f.source_id == id))
    }

    /// Removes `path` for good, then any soft-deleted source left without
    /// forks, up the chain (§4.2 cascade).
    fn purge(&mut self, path: &str) {
        let mut next = Some(path.to_string());
        while let Some(p) = next.take() {
            let Some(gone) = self.streams.remove(&p) else {
                return;
            };
            if let Some(f) = gone.fork {
                let orphan = self
                    .streams
                    .get(&f.source)
                    .is_some_and(|s| s.id == f.source_id && s.soft_deleted);
                if orphan && !self.referenced(f.source_id) {
                    next = Some(f.source);
                }
            }
        }
    }

    /// Sends `op` to `t`, checks the answer against the model, and applies
    /// it to the model. Panics (with the op and the reply) on disagreement.
    pub async fn apply<T: Target>(&mut self, t: &mut T, op: &Op) {
        match op {
            Op::Create {
                stream,
                json,
                body,
                closed,
            } => {
                self.create(t, op, &name(*stream), *json, body, *closed)
                    .await
            }
            Op::Append {
                stream,
                body,
                wrong_type,
                seq,
                claim,
                close,
            } => {
                let path = name(*stream);
                let json = self.streams.get(&path).is_some_and(|s| s.json);
                let as_json = json != *wrong_type;
                let (bytes, messages) = encode(body, as_json);
                let mut req = post(&path)
                    .ct(if as_json { JSON } else { BIN })
                    .with_body(bytes);
                if let Some(n) = seq {
                    req = req.seq(&format!("s{n}"));
                }
                if *close {
                    req = req.closed();
                }
                let req = claim_headers(req, claim);
                let seq = seq.map(|n| format!("s{n}"));
                self.write(
                    t,
                    op,
                    &path,
                    req,
                    Some((body, messages, *wrong_type)),
                    seq,
                    claim,
                    *close,
                )
                .await;
            }
            Op::Close { stream, claim } => {
                let path = name(*stream);
                let req = claim_headers(post(&path).closed(), claim);
                self.write(t, op, &path, req, None, None, claim, true).await;
            }
            Op::Delete { stream } => {
                let path = name(*stream);
                let reply = t.request(delete(&path)).await;
                match self.live(&path) {
                    Err(status) => expect(&reply, status, op),
                    Ok(s) => {
                        expect(&reply, 204, op);
                        let id = s.id;
                        if self.referenced(id) {
                            self.streams.get_mut(&path).expect("live").soft_deleted = true;
                        } else {
                            self.purge(&path);
                        }
                    }
                }
            }
            Op::Head { stream } => {
                let path = name(*stream);
                let reply = t.request(head(&path)).await;
                match self.live(&path) {
                    Err(status) => expect(&reply, status, op),
                    Ok(s) => {
                        expect(&reply, 200, op);
                        reply.header_is("content-type", if s.json { JSON } else { BIN });
                        assert_eq!(reply.closed(), s.closed, "HEAD closure: {reply:?}");
                        let (id, len) = (s.id, s.len());
                        self.learn(id, len, reply.next_offset());
                    }
                }
            }
            Op::Read { stream, from } => self.read(t, op, &name(*stream), from).await,
            Op::Fork { stream, source, at } => {
                self.fork(t, op, &name(*stream), &name(*source), *at).await
            }
            Op::Restart => {
                t.restart().await;
            }
        }
    }

    async fn create<T: Target>(
        &mut self,
        t: &mut T,
        op: &Op,
        path: &str,
        json: bool,
        body: &Payload,
        closed: bool,
    ) {
        let (bytes, messages) = encode(body, json);
        let mut req = put(path)
            .ct(if json { JSON } else { BIN })
            .with_body(&bytes);
        if closed {
            req = req.closed();
        }
        let reply = t.request(req).await;
        match self.streams.get(path) {
            Some(s) if s.soft_deleted => expect(&reply, 409, op),
            Some(s) => {
                // §5.1: same content type, closure and (no) fork origin.
                let same = s.json == json && s.closed == closed && s.fork.is_none();
                expect(&reply, if same { 200 } else { 409 }, op);
                if same {
                    let (id, len) = (s.id, s.len());
                    self.learn(id, len, reply.next_offset());
                }
            }
            None => {
                expect(&reply, 201, op);
                self.next_id += 1;
                let s = Stream {
                    id: self.next_id,
                    json,
                    bytes: if json { Vec::new() } else { bytes },
                    messages,
                    closed,
                    closed_by: None,
                    producers: BTreeMap::new(),
                    last_seq: None,
                    soft_deleted: false,
                    fork: None,
                };
                let (id, len) = (s.id, s.len());
                self.streams.insert(path.to_string(), s);
                self.learn(id, len, reply.next_offset());
            }
        }
    }

    /// An append (`data: Some`) or a close-only request (`data: None`).
    #[allow(clippy::too_many_arguments)]
    async fn write<T: Target>(
        &mut self,
        t: &mut T,
        op: &Op,
        path: &str,
        req: ds_core::Request,
        data: Option<(&Payload, Vec<Json>, bool)>,
        seq: Option<String>,
        claim: &Option<Claim>,
        close: bool,
    ) {
        let reply = t.request(req).await;
        let s = match self.live(path) {
            Err(status) => return expect(&reply, status, op),
            Ok(s) => s.clone(),
        };
        // §5.2 precedence: closed first.
        if s.closed {
            let same_closer = claim.is_some() && *claim == s.closed_by;
            if same_closer || data.is_none() {
                expect(&reply, 204, op);
                assert!(reply.closed(), "no Stream-Closed: {reply:?}");
            } else {
                expect(&reply, 409, op);
                assert!(reply.closed(), "no Stream-Closed on 409: {reply:?}");
            }
            self.learn(s.id, s.len(), reply.next_offset());
            return;
        }
        if let Some((_, _, true)) = data {
            return expect(&reply, 409, op);
        }
        let mut next = s.clone();
        if let Some(c) = claim {
            // §5.2.1 validation table; an unknown producer is epoch "-1".
            match s.producers.get(&c.producer).copied() {
                None if c.seq != 0 => {
                    expect(&reply, 409, op);
                    reply.header_is("producer-expected-seq", "0");
                    return;
                }
                Some((epoch, _)) if c.epoch < epoch => {
                    expect(&reply, 403, op);
                    reply.header_is("producer-epoch", &epoch.to_string());
                    return;
                }
                Some((epoch, _)) if c.epoch > epoch && c.seq != 0 => {
                    return expect(&reply, 400, op);
                }
                Some((epoch, last)) if c.epoch == epoch && c.seq <= last => {
                    expect(&reply, 204, op);
                    reply.header_is("producer-seq", &last.to_string());
                    self.learn(s.id, s.len(), reply.next_offset());
                    return;
                }
                Some((epoch, last)) if c.epoch == epoch && c.seq > last + 1 => {
                    expect(&reply, 409, op);
                    reply.header_is("producer-expected-seq", &(last + 1).to_string());
                    return;
                }
                _ => {
                    next.producers.insert(c.producer, (c.epoch, c.seq));
                }
            }
        }
        if let Some(seq) = seq {
            if s.last_seq.as_ref().is_some_and(|last| seq <= *last) {
                return expect(&reply, 409, op);
            }
            next.last_seq = Some(seq);
        }
        match data {
            Some((_, ref messages, _)) if s.json => next.messages.extend(messages.iter().cloned()),
            Some((payload, _, _)) => next.bytes.extend_from_slice(&payload.bytes),
            None => {}
        }
        if close {
            next.closed = true;
            next.closed_by = claim.clone();
        }
        let status = if claim.is_some() && data.is_some() {
            200
        } else {
            204
        };
        expect(&reply, status, op);
        assert_eq!(reply.closed(), next.closed, "Stream-Closed: {reply:?}");
        let (id, len) = (next.id, next.len());
        self.streams.insert(path.to_string(), next);
        self.learn(id, len, reply.next_offset());
    }

    async fn read<T: Target>(&mut self, t: &mut T, op: &Op, path: &str, from: &ReadFrom) {
        let s = match self.live(path) {
            Err(status) => {
                let reply = t.request(get(path).offset("-1")).await;
                return expect(&reply, status, op);
            }
            Ok(s) => s.clone(),
        };
        let (start, token) = match from {
            ReadFrom::Start => (0, None),
            ReadFrom::Now => {
                let reply = t.request(get(path).offset("now")).await;
                expect(&reply, 200, op);
                reply.body_is(if s.json { "[]" } else { "" });
                assert!(reply.up_to_date(), "{reply:?}");
                assert_eq!(reply.closed(), s.closed, "{reply:?}");
                self.learn(s.id, s.len(), reply.next_offset());
                return;
            }
            ReadFrom::Saved(i) => {
                let known: Vec<(usize, String)> = self
                    .tokens
                    .range((s.id, 0)..(s.id + 1, 0))
                    .map(|((_, p), tok)| (*p, tok.clone()))
                    .collect();
                if known.is_empty() {
                    (0, None)
                } else {
                    let (p, tok) = known[usize::from(*i) % known.len()].clone();
                    (p, Some(tok))
                }
            }
        };
        let pages = read_all(t, path, token.as_deref()).await;
        let mut pos = start;
        for page in &pages.replies {
            if s.json {
                let items = match page.json() {
                    Json::Array(items) => items,
                    other => panic!("JSON page is not an array: {other:?}"),
                };
                assert_eq!(
                    items,
                    s.messages[pos..(pos + items.len()).min(s.messages.len())],
                    "{op:?}: messages differ from position {pos}"
                );
                pos += items.len();
            } else {
                let end = pos + page.body.len();
                assert!(
                    end <= s.bytes.len() && page.body == s.bytes[pos..end],
                    "{op:?}: bytes differ from position {pos}: {page:?}"
                );
                pos = end;
            }
            self.learn(s.id, pos, page.next_offset());
        }
        assert_eq!(pos, s.len(), "{op:?}: read stopped short");
        assert_eq!(pages.last().closed(), s.closed, "{:?}", pages.last());
    }

    async fn fork<T: Target>(&mut self, t: &mut T, op: &Op, path: &str, source: &str, at: u8) {
        let anchor = self.live(source).ok().and_then(|src| {
            let known: Vec<(usize, String)> = self
                .tokens
                .range((src.id, 0)..(src.id + 1, 0))
                .filter(|((_, p), _)| *p <= src.len())
                .map(|((_, p), tok)| (*p, tok.clone()))
                .collect();
            (!known.is_empty()).then(|| known[usize::from(at) % known.len()].clone())
        });
        let mut req = put(path).fork_of(source);
        if let Some((_, tok)) = &anchor {
            req = req.fork_offset(tok);
        }
        let reply = t.request(req).await;
        if let Some(existing) = self.streams.get(path) {
            if existing.soft_deleted {
                return expect(&reply, 409, op);
            }
            let same = !existing.closed
                && existing.fork.as_ref().is_some_and(|f| {
                    f.source == source && anchor.as_ref().is_none_or(|(_, tok)| *tok == f.anchor)
                });
            expect(&reply, if same { 200 } else { 409 }, op);
            return;
        }
        let src = match self.live(source) {
            Err(404) => return expect(&reply, 404, op),
            Err(_) => return expect(&reply, 409, op),
            Ok(src) => src.clone(),
        };
        expect(&reply, 201, op);
        let pos = anchor.as_ref().map_or(src.len(), |(p, _)| *p);
        let token = reply.next_offset();
        self.next_id += 1;
        let fork = Stream {
            id: self.next_id,
            json: src.json,
            bytes: if src.json {
                Vec::new()
            } else {
                src.bytes[..pos].to_vec()
            },
            messages: if src.json {
                src.messages[..pos].to_vec()
            } else {
                Vec::new()
            },
            closed: false,
            closed_by: None,
            producers: BTreeMap::new(),
            last_seq: None,
            soft_deleted: false,
            fork: Some(ForkOf {
                source: source.to_string(),
                source_id: src.id,
                anchor: token.clone(),
            }),
        };
        let id = fork.id;
        self.streams.insert(path.to_string(), fork);
        self.learn(id, pos, token);
    }
}
