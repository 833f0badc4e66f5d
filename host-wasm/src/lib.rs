//! # durable-streams-wasm
//!
//! The wasm host: the portable engine of `durable-streams-core` over an
//! in-memory store, compiled to WebAssembly and shipped as the npm package
//! `durable-streams-local` (built by `scripts/build-wasm.sh` into `pkg/`).
//!
//! The split of work (DESIGN.md §4 "host-wasm"):
//! - [`LocalHost`] (plain Rust, unit-tested natively) owns the engine, the
//!   parked long-polls and the live SSE sessions, each under a numeric
//!   handle. Every protocol decision stays in the core; this layer only
//!   parks, resumes, commits and reports which paths advanced.
//! - [`bindings`] exposes it to JavaScript as the class `Core`.
//! - `js/durable-streams.js` (shipped in the package) is the public
//!   `DurableStreams` class: it turns a fetch `Request` into a call on
//!   `Core`, builds the `Response` (long-poll as a pending promise, SSE as a
//!   `ReadableStream`), and runs the timers and wake-ups. It owns no
//!   protocol rules.

#![warn(missing_docs)]

pub mod bindings;
pub mod local_host;

pub use local_host::{Answer, Handle, LocalHost, Reply, ReplyBody};
