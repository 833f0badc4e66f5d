//! `durable-streams-server`: command line → configuration → serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use durable_streams_server::{serve, ServerConfig, Storage};

/// A Durable Streams server (PROTOCOL.md): durable, append-only,
/// offset-addressable streams over HTTP, stored in redb file shards.
#[derive(Parser, Debug)]
#[command(
    name = "durable-streams-server",
    version,
    after_help = "Exit codes: 0 clean shutdown, 2 invalid arguments, 3 data directory in use by another \
server, 4 unsupported data directory layout or format, 5 unreadable storage, 6 cannot bind the \
listen address, 1 anything else."
)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, env = "DS_BIND", default_value = "127.0.0.1:4437")]
    bind: SocketAddr,
    /// Directory for the redb file shards (created if missing).
    #[arg(long, env = "DS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Keep streams in memory only: nothing is written to disk.
    #[arg(long, env = "DS_MEMORY")]
    memory: bool,
    /// How long a long-poll read waits for new data before answering 204.
    #[arg(long, env = "DS_LONG_POLL_TIMEOUT_MS", default_value_t = 30_000)]
    long_poll_timeout_ms: u64,
    /// Most bytes one catch-up read returns.
    #[arg(long, env = "DS_MAX_CHUNK_BYTES", default_value_t = 1 << 20)]
    max_chunk_bytes: usize,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, env = "DS_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    max_body_bytes: usize,
    /// Origins allowed to read responses cross-origin (comma-separated);
    /// `*` allows any.
    #[arg(long, env = "DS_CORS_ORIGINS", default_value = "*")]
    cors_origins: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut engine = ds_core::Config {
        long_poll_timeout_ms: args.long_poll_timeout_ms,
        max_chunk_bytes: args.max_chunk_bytes.max(1),
        max_body_bytes: args.max_body_bytes,
        ..Default::default()
    };
    if args.cors_origins.trim() != "*" {
        let list = args
            .cors_origins
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        engine.cors = ds_core::CorsPolicy::AllowList(list);
    }
    let storage = if args.memory {
        Storage::Memory
    } else {
        Storage::Dir(args.data_dir)
    };
    match serve(ServerConfig {
        bind: args.bind,
        storage,
        engine,
    })
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("durable-streams-server: {e}");
            ExitCode::from(durable_streams_server::exit_code(e.as_ref()))
        }
    }
}
