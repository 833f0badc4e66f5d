//! Reading SSE bodies (PROTOCOL §5.8) the strict way: `\n` line endings,
//! `event: <type>` with one space, `data:` with none, blocks ended by a
//! blank line, `:` comments allowed between blocks.

use crate::json::{self, Json};

/// One event block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` type (`data` or `control`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// A `control` event's fields (PROTOCOL §5.8).
#[derive(Clone, Debug, PartialEq)]
pub struct Control {
    /// `streamNextOffset`.
    pub next_offset: String,
    /// `streamCursor`, when present.
    pub cursor: Option<String>,
    /// `upToDate: true`.
    pub up_to_date: bool,
    /// `streamClosed: true`.
    pub closed: bool,
}

/// A parsed SSE body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseBody {
    /// The event blocks in order.
    pub events: Vec<SseEvent>,
    /// Number of comment blocks (keep-alives).
    pub comments: usize,
}

/// Parses `body` strictly, panicking on anything outside the wire format
/// the protocol and the official suite pin down.
#[track_caller]
pub fn parse(body: &[u8]) -> SseBody {
    let text = std::str::from_utf8(body).expect("SSE body is not UTF-8");
    assert!(
        !text.contains('\r'),
        "SSE framing must use LF only: {text:?}"
    );
    let mut out = SseBody::default();
    if text.is_empty() {
        return out;
    }
    assert!(
        text.ends_with("\n\n"),
        "SSE body must end at a block boundary: {text:?}"
    );
    for block in text[..text.len() - 2].split("\n\n") {
        if block.starts_with(':') {
            assert!(
                block.lines().all(|l| l.starts_with(':')),
                "mixed comment block: {block:?}"
            );
            out.comments += 1;
            continue;
        }
        let mut lines = block.split('\n');
        let first = lines.next().unwrap_or_default();
        let event = first
            .strip_prefix("event: ")
            .unwrap_or_else(|| panic!("block must start with `event: `: {block:?}"));
        let data: Vec<&str> = lines
            .map(|l| {
                l.strip_prefix("data:")
                    .unwrap_or_else(|| panic!("expected a `data:` line, got {l:?} in {block:?}"))
            })
            .collect();
        assert!(!data.is_empty(), "event without data lines: {block:?}");
        out.events.push(SseEvent {
            event: event.to_string(),
            data: data.join("\n"),
        });
    }
    out
}

impl SseEvent {
    /// True for an `event: data` block.
    pub fn is_data(&self) -> bool {
        self.event == "data"
    }

    /// True for an `event: control` block.
    pub fn is_control(&self) -> bool {
        self.event == "control"
    }

    /// The control fields of a `control` event.
    #[track_caller]
    pub fn control(&self) -> Control {
        assert!(self.is_control(), "not a control event: {self:?}");
        assert!(
            !self.data.contains('\n'),
            "control JSON must be one line: {self:?}"
        );
        let v = json::parse(&self.data)
            .unwrap_or_else(|e| panic!("control data is not JSON ({e}): {:?}", self.data));
        let Json::Object(members) = &v else {
            panic!("control data is not an object: {:?}", self.data);
        };
        assert!(
            members
                .iter()
                .all(|(_, m)| !matches!(m, Json::Object(_) | Json::Array(_))),
            "control JSON must be flat: {:?}",
            self.data
        );
        let next_offset = v
            .get("streamNextOffset")
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("control without streamNextOffset: {:?}", self.data))
            .to_string();
        Control {
            next_offset,
            cursor: v.get("streamCursor").map(|c| {
                c.as_str()
                    .unwrap_or_else(|| panic!("streamCursor must be a string: {:?}", self.data))
                    .to_string()
            }),
            up_to_date: v.get("upToDate").and_then(Json::as_bool) == Some(true),
            closed: v.get("streamClosed").and_then(Json::as_bool) == Some(true),
        }
    }
}

impl SseBody {
    /// Every control event's fields, in order.
    pub fn controls(&self) -> Vec<Control> {
        self.events
            .iter()
            .filter(|e| e.is_control())
            .map(SseEvent::control)
            .collect()
    }

    /// The payload text of every data event, in order.
    pub fn data(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.is_data())
            .map(|e| e.data.as_str())
            .collect()
    }

    /// The last control event (panics when there is none).
    #[track_caller]
    pub fn last_control(&self) -> Control {
        self.controls()
            .pop()
            .expect("SSE body has no control event")
    }

    /// PROTOCOL §5.8: only `data` and `control` events, a `control` right
    /// after every `data`, and `streamNextOffset` never going backwards.
    #[track_caller]
    pub fn assert_well_formed(&self) -> &Self {
        let mut previous: Option<String> = None;
        for (i, e) in self.events.iter().enumerate() {
            assert!(
                e.is_data() || e.is_control(),
                "unknown event type {:?}",
                e.event
            );
            if e.is_data() {
                assert!(
                    self.events.get(i + 1).is_some_and(SseEvent::is_control),
                    "data event #{i} is not followed by a control event: {:?}",
                    self.events
                );
            } else {
                let c = e.control();
                if let Some(p) = &previous {
                    assert!(
                        c.next_offset >= *p,
                        "streamNextOffset went backwards: {p} then {}",
                        c.next_offset
                    );
                }
                if !c.closed {
                    let cursor = c.cursor.as_deref().unwrap_or_else(|| {
                        panic!("control of an open stream lacks streamCursor: {:?}", e.data)
                    });
                    assert!(
                        !cursor.is_empty() && cursor.bytes().all(|b| b.is_ascii_digit()),
                        "streamCursor must be decimal: {cursor:?}"
                    );
                }
                previous = Some(c.next_offset);
            }
        }
        self
    }
}
