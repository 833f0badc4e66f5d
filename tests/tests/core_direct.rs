//! Every scenario against the engine itself (`Engine<MemStore>` with a
//! manual clock), plus checks of the engine's host contract that only the
//! core target can see: background expiry through `poll_timeout` /
//! `handle_timeout`, events, and group-commit visibility.

use ds_conformance::dsl::*;
use ds_conformance::{block_on, suite_config, CoreTarget, Target, START};
use ds_core::{Engine, Event, MemStore, Outcome, Request, UnixMillis};

/// One `#[test]` per scenario, in a module per spec area.
macro_rules! core_tests {
    (() $($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        $(mod $module {
            $(
                #[test]
                fn $name() {
                    let mut t = super::CoreTarget::default();
                    super::block_on(ds_conformance::cases::$module::$name(&mut t));
                }
            )*
        })*
    };
}

ds_conformance::for_each_scenario!(core_tests!());

/// The runtime list and the macro list agree, so `all()` can drive targets
/// that cannot generate one test per scenario.
#[test]
fn runtime_list_runs_too() {
    let scenarios = ds_conformance::all::<CoreTarget>();
    assert!(scenarios.len() > 100, "{} scenarios", scenarios.len());
    let probe = scenarios
        .iter()
        .find(|s| s.module == "create" && s.name == "put_creates_stream")
        .expect("listed");
    let mut t = CoreTarget::default();
    block_on((probe.run)(&mut t));
}

fn engine() -> Engine<MemStore> {
    Engine::open(MemStore::new(), suite_config(), START, 7).expect("open")
}

/// Handles `req` like a single-threaded host: commit what it staged, then
/// answer.
fn send(e: &mut Engine<MemStore>, req: Request, now: UnixMillis) -> ds_core::Response {
    match e.handle_and_commit(req, now) {
        Outcome::Respond(res) => res,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn drain(e: &mut Engine<MemStore>) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

/// PROTOCOL §5.1 with DESIGN.md §2: `poll_timeout` names each expiry
/// deadline; `handle_timeout` there removes the stream without any request,
/// emits `Removed`, and purges its data from the store.
#[test]
fn background_expiry_follows_poll_timeout() {
    let mut e = engine();
    let res = send(
        &mut e,
        put("s").ct("text/plain").ttl(5).with_body("data"),
        START,
    );
    assert_eq!(res.status, 201);
    drain(&mut e);
    assert_eq!(e.poll_timeout(), Some(START.plus_millis(5_000)));
    assert!(e.store().data_bytes() > 0);

    // Too early: nothing happens.
    e.handle_timeout(START.plus_millis(4_999));
    assert_eq!(e.commit_pending().len(), 0);
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.stream_count(), 1);

    e.handle_timeout(START.plus_millis(5_000));
    e.commit_pending();
    assert_eq!(
        drain(&mut e),
        vec![Event::Removed {
            path: stream_path("s")
        }]
    );
    assert_eq!(e.stream_count(), 0);
    assert_eq!(e.store().data_bytes(), 0, "expired data stays in the store");
    assert_eq!(e.poll_timeout(), None);
}

/// PROTOCOL §5.1: a read renews a sliding TTL; the stale deadline that
/// `poll_timeout` reported is re-checked and moved, not acted on.
#[test]
fn renewed_ttl_moves_the_deadline() {
    let mut e = engine();
    send(&mut e, put("s").ct("text/plain").ttl(5), START);
    let at_read = START.plus_millis(3_000);
    assert_eq!(send(&mut e, get("s"), at_read).status, 200);
    let first = e.poll_timeout().expect("a deadline");
    e.handle_timeout(first);
    e.commit_pending();
    assert_eq!(e.stream_count(), 1, "expired despite the read");
    let renewed = e.poll_timeout().expect("re-queued");
    assert_eq!(renewed, at_read.plus_millis(5_000));
    e.handle_timeout(renewed);
    e.commit_pending();
    assert_eq!(e.stream_count(), 0);
}

/// PROTOCOL §5.1: `HEAD` leaves the deadline where it was.
#[test]
fn head_leaves_the_deadline() {
    let mut e = engine();
    send(&mut e, put("s").ct("text/plain").ttl(5), START);
    assert_eq!(
        send(&mut e, head("s"), START.plus_millis(4_000)).status,
        200
    );
    e.handle_timeout(START.plus_millis(5_000));
    e.commit_pending();
    assert_eq!(e.stream_count(), 0);
}

/// A group of appends to one stream stores that stream's metadata once:
/// [`ds_core::Commit::batch`] drops every metadata write a later one in the
/// group replaces (the host computes it outside its engine lock).
#[test]
fn a_group_stores_each_streams_metadata_once() {
    let mut e = engine();
    send(&mut e, put("s").ct("text/plain"), START);
    send(&mut e, put("t").ct("text/plain"), START);
    for (path, body) in [("s", "a"), ("t", "b"), ("s", "c"), ("s", "d")] {
        match e.handle(post(path).ct("text/plain").with_body(body), START) {
            Outcome::Pending(_) => {}
            other => panic!("a write must wait for its commit, got {other:?}"),
        }
    }
    let mut commit = e.take_commit().expect("a group");
    assert_eq!(commit.writes, 4);
    let ops = &commit.batch().ops;
    let metas: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            ds_core::Op::PutMeta { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(metas, [stream_path("t"), stream_path("s")]);
    let appends = ops
        .iter()
        .filter(|op| matches!(op, ds_core::Op::Append { .. }))
        .count();
    assert_eq!(appends, 4);
    ds_core::Store::commit(e.store(), commit.batch()).expect("MemStore");
    assert_eq!(e.finish_commit(Ok(())).len(), 4);
    let read = send(&mut e, get("s"), START);
    assert_eq!(&*read.body_bytes(), b"acd");
}

/// DESIGN.md §3 (acknowledged means durable): a staged write is invisible
/// to readers and unanswered until its group commits; then it is visible,
/// answered, and announced by an event.
#[test]
fn staged_writes_are_invisible_until_committed() {
    let mut e = engine();
    let tail = send(&mut e, put("s").ct("text/plain").with_body("a"), START)
        .header("stream-next-offset")
        .expect("offset")
        .to_string();
    drain(&mut e);
    let ticket = match e.handle(post("s").ct("text/plain").with_body("b"), START) {
        Outcome::Pending(t) => t,
        other => panic!("a write must wait for its commit, got {other:?}"),
    };
    // A plain `handle` (not `handle_and_commit`, which commits what is
    // staged): the read sees only committed data.
    let before = match e.handle(get("s"), START) {
        Outcome::Respond(res) => res,
        other => panic!("a read answers at once, got {other:?}"),
    };
    assert_eq!(&*before.body_bytes(), b"a");
    let poll = match e.handle(get("s").offset(&tail).long_poll(), START) {
        Outcome::Wait(lp) => lp,
        other => panic!("the poll must wait for the commit, got {other:?}"),
    };
    assert!(drain(&mut e).is_empty(), "event before the commit");
    let mut commit = e.take_commit().expect("a group");
    assert_eq!(commit.writes, 1);
    ds_core::Store::commit(e.store(), commit.batch()).expect("MemStore");
    let settled = e.finish_commit(Ok(()));
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].0, ticket);
    assert_eq!(settled[0].1.status, 204);
    assert_eq!(
        drain(&mut e),
        vec![Event::Advanced {
            path: stream_path("s"),
            // Where "a" ended: a reader that had it all sits there.
            from: 1,
        }]
    );
    match e.resume(poll, START) {
        Outcome::Respond(res) => assert_eq!(&*res.body_bytes(), b"b"),
        other => panic!("the commit must answer the poll, got {other:?}"),
    }
}

/// The core target's own clock only moves when told to.
#[test]
fn core_target_time_is_manual() {
    let mut t = CoreTarget::default();
    assert_eq!(t.now(), START);
    block_on(t.advance(1_234));
    assert_eq!(t.now(), START.plus_millis(1_234));
}
