//! # durable-streams-server
//!
//! The native Durable Streams host: axum + tokio in front of the portable
//! engine of `durable-streams-core`, storing data in redb file shards.
//! [`app`] builds the router (tests drive it without sockets); [`serve`]
//! binds, serves and shuts down gracefully.

pub mod allocator;
pub mod archive_cli;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod driver;
pub mod gate;
pub mod health;
pub mod http;
pub mod inspect;
pub mod limits;
pub mod live_socket;
pub mod logging;
pub mod metrics;
pub mod redb_shards;
mod response_head;
pub mod scheduling;
pub mod server;
pub mod stall;
pub mod tls;
pub mod waiters;
pub mod wal;
pub mod webhook;
pub mod www;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use ds_core::{Config as EngineConfig, Engine, MemStore};

use crate::clock::Clock;
use crate::driver::{Driver, DynStore};
use crate::wal::LoggedStore;

/// Where streams are stored.
#[derive(Clone, Debug)]
pub enum Storage {
    /// redb file shards in this directory (durable).
    Dir(PathBuf),
    /// In memory; gone when the process exits.
    Memory,
}

/// Process exit codes for startup failures (documented in `--help`).
pub mod exit {
    /// The data directory is in use by another running server.
    pub const DATA_DIR_IN_USE: u8 = 3;
    /// The data directory's layout or format version is not supported.
    pub const LAYOUT_MISMATCH: u8 = 4;
    /// A shard or stored record cannot be read (corrupt or I/O failure).
    pub const STORAGE_UNREADABLE: u8 = 5;
    /// The listen address cannot be bound.
    pub const CANNOT_BIND: u8 = 6;
    /// Invalid arguments or configuration (also clap's usage errors).
    pub const INVALID_CONFIG: u8 = 2;
    /// Anything else.
    pub const OTHER: u8 = 1;
}

/// The exit code for an error that stopped the server from starting.
pub fn exit_code(error: &(dyn std::error::Error + 'static)) -> u8 {
    use redb_shards::OpenError;
    if let Some(open) = error.downcast_ref::<OpenError>() {
        return match open {
            OpenError::Shard(_, redb::DatabaseError::DatabaseAlreadyOpen) => exit::DATA_DIR_IN_USE,
            OpenError::Layout(_) => exit::LAYOUT_MISMATCH,
            OpenError::Shard(..) | OpenError::Io(..) => exit::STORAGE_UNREADABLE,
        };
    }
    if error.downcast_ref::<ds_core::StoreError>().is_some() {
        return exit::STORAGE_UNREADABLE;
    }
    if error.downcast_ref::<BindError>().is_some() {
        return exit::CANNOT_BIND;
    }
    if error.downcast_ref::<config::ConfigError>().is_some() {
        return exit::INVALID_CONFIG;
    }
    exit::OTHER
}

/// The listen address could not be bound.
#[derive(Debug)]
pub struct BindError(pub SocketAddr, pub std::io::Error);

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot listen on {}: {}", self.0, self.1)
    }
}

impl std::error::Error for BindError {}

/// Opens the configured storage and the engine over it.
pub fn open_driver(
    storage: &Storage,
    engine: EngineConfig,
    clock: Clock,
) -> Result<Arc<Driver>, Box<dyn std::error::Error>> {
    let store: DynStore = match storage {
        Storage::Dir(dir) => Arc::new(LoggedStore::open(dir, redb_shards::DEFAULT_SHARDS)?),
        Storage::Memory => Arc::new(MemStore::new()),
    };
    let now = clock.now();
    let seed = now.0 ^ u64::from(std::process::id()).rotate_left(32);
    let mut engine = Engine::open(Arc::clone(&store), engine, now, seed)?;
    engine.set_entropy(entropy()?);
    let inline_commit = matches!(storage, Storage::Memory);
    Ok(Driver::with_commit_mode(
        engine,
        store,
        clock,
        inline_commit,
    ))
}

/// 32 bytes from the operating system's generator, for the server secret
/// (webhook signing key, callback tokens) of a new data directory.
fn entropy() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The router: every path under the stream root goes to the engine.
pub fn app(driver: Arc<Driver>) -> Router {
    let root = driver.with_engine(|e, _| e.config().stream_root.clone());
    let pattern = format!("{}{{*path}}", root);
    Router::new()
        .route(&pattern, axum::routing::any(http::stream_handler))
        .route(
            root.trim_end_matches('/'),
            axum::routing::any(http::stream_handler),
        )
        .route(&root, axum::routing::any(http::stream_handler))
        .with_state(driver)
}

pub use server::serve;
