//! # durable-streams-conformance
//!
//! One conformance suite for every Durable Streams host (DESIGN.md §5).
//! Scenarios are written once, against the small [`Target`] trait, and run
//! against the core engine directly ([`CoreTarget`], `tests/core_direct.rs`),
//! the native host (`tests/native.rs`) and, later, the wasm host.
//!
//! - [`target`]: the [`Target`] trait, [`Reply`], and the configuration and
//!   start time every target uses.
//! - [`dsl`]: request builders and response assertions.
//! - [`cases`]: the scenarios by spec area, each citing its PROTOCOL
//!   section; [`for_each_scenario!`] lists them all.
//! - [`model`]: a naive model of the protocol for property tests.
//! - [`sse`], [`json`], [`base64`]: strict readers for response bodies.
//!
//! Scenarios never sleep: time is virtual and moves only through
//! [`Target::advance`] or by waiting for a live read in [`Target::finish`].
//!
//! This library depends on nothing but the core and `std`, so it also
//! builds for `wasm32-unknown-unknown`.
//!
//! ## Adding a target
//!
//! Implement [`Target`] for the host (see `tests/native.rs`: requests as
//! plain data in, [`Reply`] out, a clock the target controls, `restart`
//! reopening the same storage or returning `false`), build it with
//! [`suite_config`] at [`START`], then turn the scenario list into tests:
//!
//! ```ignore
//! macro_rules! my_tests {
//!     (() $($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
//!         $(mod $module { $(
//!             #[wasm_bindgen_test]
//!             async fn $name() {
//!                 let mut t = super::MyTarget::new().await;
//!                 ds_conformance::cases::$module::$name(&mut t).await;
//!             }
//!         )* })*
//!     };
//! }
//! ds_conformance::for_each_scenario!(my_tests!());
//! ```

#![warn(missing_docs)]

pub mod base64;
pub mod block_on;
pub mod cases;
pub mod core_target;
pub mod dsl;
pub mod json;
pub mod model;
pub mod sse;
pub mod target;

pub use block_on::block_on;
pub use cases::{all, Scenario};
pub use core_target::CoreTarget;
pub use target::{suite_config, LiveRead, Reply, Target, START};
