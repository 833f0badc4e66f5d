//! Model-based property test: random operation sequences (creates, appends
//! with producers and `Stream-Seq`, closes, deletes, forks, reads from saved
//! offsets, restarts) run against the engine and against the naive model in
//! `ds_conformance::model`; statuses and read-back data must agree.
//!
//! The engine runs with a tiny chunk size so every read paginates and fork
//! reads stitch across chunk boundaries.

#![cfg(not(target_arch = "wasm32"))]

use ds_conformance::model::{Claim, Model, Op, Payload, ReadFrom, STREAMS};
use ds_conformance::{block_on, suite_config, CoreTarget};
use proptest::prelude::*;

fn stream() -> impl Strategy<Value = u8> {
    0..STREAMS
}

fn payload(min_items: usize) -> impl Strategy<Value = Payload> {
    (
        proptest::collection::vec(any::<u8>(), min_items.max(1)..12),
        proptest::collection::vec(0u8..100, min_items..4),
        any::<bool>(),
    )
        .prop_map(move |(bytes, numbers, as_array)| Payload {
            bytes: if min_items == 0 && numbers.is_empty() {
                Vec::new()
            } else {
                bytes
            },
            numbers,
            as_array,
        })
}

fn claim() -> impl Strategy<Value = Option<Claim>> {
    proptest::option::weighted(
        0.4,
        (0u8..2, 0u64..3, 0u64..4).prop_map(|(producer, epoch, seq)| Claim {
            producer,
            epoch,
            seq,
        }),
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (stream(), any::<bool>(), payload(0), proptest::bool::weighted(0.15)).prop_map(
            |(stream, json, body, closed)| Op::Create { stream, json, body, closed }
        ),
        8 => (
            stream(),
            payload(1),
            proptest::bool::weighted(0.1),
            proptest::option::weighted(0.3, 0u8..6),
            claim(),
            proptest::bool::weighted(0.08),
        )
            .prop_map(|(stream, body, wrong_type, seq, claim, close)| Op::Append {
                stream,
                body,
                wrong_type,
                seq,
                claim,
                close,
            }),
        1 => (stream(), claim()).prop_map(|(stream, claim)| Op::Close { stream, claim }),
        1 => stream().prop_map(|stream| Op::Delete { stream }),
        2 => stream().prop_map(|stream| Op::Head { stream }),
        4 => (
            stream(),
            prop_oneof![
                Just(ReadFrom::Start),
                Just(ReadFrom::Now),
                any::<u8>().prop_map(ReadFrom::Saved)
            ]
        )
            .prop_map(|(stream, from)| Op::Read { stream, from }),
        2 => (stream(), stream(), any::<u8>())
            .prop_map(|(stream, source, at)| Op::Fork { stream, source, at }),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    /// PROTOCOL §4–§5.6, §5.2.1, §8, §9.1: the engine agrees with the
    /// model on every status, header checked and byte read back.
    #[test]
    fn engine_agrees_with_model(ops in proptest::collection::vec(op(), 1..80)) {
        let config = ds_core::Config { max_chunk_bytes: 7, ..suite_config() };
        let mut target = CoreTarget::new(config);
        let mut model = Model::new();
        for op in &ops {
            block_on(model.apply(&mut target, op));
        }
        // Finally every stream reads back in full.
        for stream in 0..STREAMS {
            block_on(model.apply(&mut target, &Op::Read { stream, from: ReadFrom::Start }));
        }
    }
}
