//! The server's configuration: command-line flags, environment variables and
//! an optional TOML file, merged with one precedence:
//!
//! **flags > environment (`DS_*`) > TOML file (`--config`) > defaults.**
//!
//! Every setting has a flag `--a-b`, an environment variable `DS_A_B`, and a
//! TOML key: top-level settings by their name (`bind`, `data_dir`, …),
//! grouped ones in their table without the group prefix (`--tls-cert` is
//! `[tls] cert`, `--log-format` is `[log] format`, `--auth-jwks-file` is
//! `[auth] jwks_file`, and the limits are keys of `[limits]`: `--max-streams`
//! is `[limits] max_streams`). Static bearer tokens are structured, so they
//! live only in the file (`[[auth.tokens]]`). For numeric limits, 0 means
//! unlimited. Invalid values stop the server at startup with a message that
//! names the setting; `serve --print-config` prints the effective result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};

/// Flags of `serve` (also accepted without the subcommand).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "DS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Address and port to listen on.
    #[arg(
        long,
        env = "DS_BIND",
        default_value = "127.0.0.1:4437",
        value_name = "ADDR:PORT"
    )]
    pub bind: SocketAddr,
    /// Directory for the redb file shards (created if missing).
    #[arg(
        long,
        env = "DS_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Keep streams in memory only: nothing is written to disk.
    #[arg(long, env = "DS_MEMORY")]
    pub memory: bool,
    /// How long a long-poll read waits for new data before answering 204.
    #[arg(
        long,
        env = "DS_LONG_POLL_TIMEOUT_MS",
        default_value_t = 30_000,
        value_name = "MS"
    )]
    pub long_poll_timeout_ms: u64,
    /// Most bytes one read holds in memory: a JSON-stream read, an SSE
    /// event, a byte-stream read in --memory mode
    #[arg(long, env = "DS_MAX_CHUNK_BYTES", default_value_t = 1 << 20, value_name = "N")]
    pub max_chunk_bytes: usize,
    /// Most bytes one read of a byte stream returns from the data
    /// directory; they are read from disk as they are sent, so a response
    /// holds about 256 KiB in memory however long it is
    #[arg(
        long,
        env = "DS_MAX_STREAMED_READ_BYTES",
        default_value_t = 16 << 20,
        value_name = "N"
    )]
    pub max_streamed_read_bytes: usize,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, env = "DS_MAX_BODY_BYTES", default_value_t = 64 << 20, value_name = "N")]
    pub max_body_bytes: usize,
    /// Origins allowed to read responses cross-origin (comma-separated);
    /// `*` allows any.
    #[arg(
        long,
        env = "DS_CORS_ORIGINS",
        default_value = "*",
        value_name = "LIST"
    )]
    pub cors_origins: String,
    /// Also accept HTTP/2 with prior knowledge (h2c) on plain TCP.
    #[arg(long, env = "DS_H2C")]
    pub h2c: bool,
    /// Development only: let subscriptions send webhooks to
    /// http://localhost and http://127.0.0.x (PROTOCOL §12.8).
    #[arg(long, env = "DS_ALLOW_LOCAL_WEBHOOKS")]
    pub allow_local_webhooks: bool,
    /// Serve this folder's files at `/` (the offline demo, built by
    /// scripts/build-www.sh) [default: www/dist when it exists]; an empty
    /// value turns it off.
    #[arg(long, env = "DS_WWW", value_name = "DIR")]
    pub www: Option<String>,
    /// How the server's threads ask Linux to schedule them: `batch`
    /// (SCHED_BATCH: a thread that wakes up waits for the running one
    /// instead of preempting it; fewer context switches under load),
    /// `normal` (as started: the kernel's default policy unless the process
    /// was started with another), or `auto`: batch with durable storage,
    /// normal with --memory. No effect off Linux.
    #[arg(
        long,
        env = "DS_SCHEDULING",
        default_value = "auto",
        value_name = "POLICY"
    )]
    pub scheduling: Scheduling,

    /// PEM certificate chain: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN).
    /// Reloaded with the key on SIGHUP.
    #[arg(long, env = "DS_TLS_CERT", value_name = "FILE", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "DS_TLS_KEY", value_name = "FILE", help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,

    /// Log format: `text` or `json`.
    #[arg(
        long,
        env = "DS_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT",
        help_heading = "Logging"
    )]
    pub log_format: LogFormat,
    /// Log filter (`info`, `debug`, `durable_streams_server=debug`, …);
    /// `debug` adds one line per request.
    #[arg(
        long,
        env = "DS_LOG_LEVEL",
        default_value = "info",
        value_name = "FILTER",
        help_heading = "Logging"
    )]
    pub log_level: String,

    /// HS256 secret for bearer JWTs (prefer the _FILE form).
    #[arg(
        long,
        env = "DS_AUTH_HS256_SECRET",
        value_name = "SECRET",
        help_heading = "Auth",
        hide_env_values = true
    )]
    pub auth_hs256_secret: Option<String>,
    /// File holding the HS256 secret for bearer JWTs.
    #[arg(
        long,
        env = "DS_AUTH_HS256_SECRET_FILE",
        value_name = "FILE",
        help_heading = "Auth"
    )]
    pub auth_hs256_secret_file: Option<PathBuf>,
    /// JWKS file with the EdDSA (Ed25519) and RS256 public keys for JWTs.
    #[arg(
        long,
        env = "DS_AUTH_JWKS_FILE",
        value_name = "FILE",
        help_heading = "Auth"
    )]
    pub auth_jwks_file: Option<PathBuf>,
    /// Required `iss` claim of JWTs.
    #[arg(
        long,
        env = "DS_AUTH_ISSUER",
        value_name = "ISS",
        help_heading = "Auth"
    )]
    pub auth_issuer: Option<String>,
    /// Required `aud` claim of JWTs.
    #[arg(
        long,
        env = "DS_AUTH_AUDIENCE",
        value_name = "AUD",
        help_heading = "Auth"
    )]
    pub auth_audience: Option<String>,

    /// Largest size (tail offset) a stream may reach; beyond it 413. 0: none.
    #[arg(
        long,
        env = "DS_MAX_STREAM_BYTES",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_stream_bytes: u64,
    /// Most streams held; creating more gets 507. 0: none.
    #[arg(
        long,
        env = "DS_MAX_STREAMS",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_streams: u64,
    /// Most data bytes stored in all; writes beyond it get 507. 0: none.
    #[arg(
        long,
        env = "DS_MAX_TOTAL_BYTES",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_total_bytes: u64,
    /// Most concurrent live reads (long-poll + SSE); beyond it 503. 0: none.
    #[arg(
        long,
        env = "DS_MAX_LIVE_READERS",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_live_readers: u64,
    /// Most concurrent live reads of one stream; beyond it 429. 0: none.
    #[arg(
        long,
        env = "DS_MAX_LIVE_READERS_PER_STREAM",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_live_readers_per_stream: u64,
    /// Requests per second each client IP may send (token bucket); beyond it 429. 0: none.
    #[arg(
        long,
        env = "DS_RATE_LIMIT_PER_SECOND",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub rate_limit_per_second: u64,
    /// Burst of the per-client rate limit [default: 2 × the rate].
    #[arg(
        long,
        env = "DS_RATE_LIMIT_BURST",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub rate_limit_burst: u64,
    /// Most writes in flight (received, not yet acknowledged); beyond it 503. 0: none.
    #[arg(
        long,
        env = "DS_MAX_PENDING_WRITES",
        default_value_t = 1024,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_pending_writes: u64,
    /// Most open client connections; more are closed at once.
    #[arg(
        long,
        env = "DS_MAX_CONNECTIONS",
        default_value_t = 4096,
        value_name = "N",
        help_heading = "Limits"
    )]
    pub max_connections: u64,
    /// Largest request head (HTTP/1.1 read buffer, HTTP/2 header list); beyond it 431.
    #[arg(long, env = "DS_MAX_HEADER_BYTES", default_value_t = 64 << 10, value_name = "N", help_heading = "Limits")]
    pub max_header_bytes: u64,
    /// Time a client has to send a request head (and that an idle HTTP/1.1
    /// connection or a TLS handshake may take) before it is closed.
    #[arg(
        long,
        env = "DS_HEADER_TIMEOUT_MS",
        default_value_t = 30_000,
        value_name = "MS",
        help_heading = "Limits"
    )]
    pub header_timeout_ms: u64,
    /// Time a client may accept no bytes while the server has some to send
    /// (a reader that stopped reading) before its connection is closed.
    #[arg(
        long,
        env = "DS_SEND_TIMEOUT_MS",
        default_value_t = 60_000,
        value_name = "MS",
        help_heading = "Limits"
    )]
    pub send_timeout_ms: u64,
    /// `Retry-After` seconds sent with 429 and 503 answers.
    #[arg(
        long,
        env = "DS_RETRY_AFTER_SECS",
        default_value_t = 1,
        value_name = "S",
        help_heading = "Limits"
    )]
    pub retry_after_secs: u64,
}

/// The scheduling policy of the server's threads (Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scheduling {
    /// Batch with durable storage, normal in memory mode (what measured
    /// best for each).
    Auto,
    /// `SCHED_BATCH` for every thread: a wake-up does not preempt.
    Batch,
    /// The policy the process was started with, left alone (the
    /// group-commit thread is a batch thread either way).
    Normal,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The effective configuration of a server.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Listen address.
    pub bind: SocketAddr,
    /// Data directory of the redb shards.
    pub data_dir: PathBuf,
    /// Memory-only storage.
    pub memory: bool,
    /// Long-poll wait before 204.
    pub long_poll_timeout_ms: u64,
    /// Most bytes one read holds in memory.
    pub max_chunk_bytes: usize,
    /// Most bytes one byte-stream read streams from the data directory.
    pub max_streamed_read_bytes: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// CORS allow-list (`*` or comma-separated origins).
    pub cors_origins: String,
    /// Accept h2c (prior knowledge) on plain TCP.
    pub h2c: bool,
    /// Allow webhooks to loopback addresses (development).
    pub allow_local_webhooks: bool,
    /// Folder served at `/` (the offline demo), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub www: Option<PathBuf>,
    /// Scheduling policy of the server's threads.
    pub scheduling: Scheduling,
    /// TLS files.
    pub tls: TlsSettings,
    /// Logging.
    pub log: LogSettings,
    /// Limits (0 = unlimited where it applies).
    pub limits: Limits,
    /// Bearer-token authentication.
    pub auth: AuthSettings,
}

/// TLS files; both or neither.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// Logging settings.
#[derive(Clone, Debug, Serialize)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter.
    pub level: String,
}

/// Limits and overload protection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limits {
    /// Largest stream (tail offset); 413 beyond.
    pub max_stream_bytes: u64,
    /// Most streams; 507 beyond.
    pub max_streams: u64,
    /// Most stored data bytes; 507 beyond.
    pub max_total_bytes: u64,
    /// Most live reads in all; 503 beyond.
    pub max_live_readers: u64,
    /// Most live reads per stream; 429 beyond.
    pub max_live_readers_per_stream: u64,
    /// Requests per second per client IP; 429 beyond.
    pub rate_limit_per_second: u64,
    /// Token-bucket burst of the rate limit.
    pub rate_limit_burst: u64,
    /// Most writes in flight; 503 beyond.
    pub max_pending_writes: u64,
    /// Most open connections.
    pub max_connections: u64,
    /// Largest request head; 431 beyond.
    pub max_header_bytes: u64,
    /// Request-head / idle / TLS-handshake timeout.
    pub header_timeout_ms: u64,
    /// Longest a write to a client may stay blocked.
    pub send_timeout_ms: u64,
    /// `Retry-After` of 429 and 503 answers.
    pub retry_after_secs: u64,
}

impl Limits {
    /// The defaults (as `--help` shows them).
    pub fn defaults() -> Limits {
        Limits {
            max_stream_bytes: 0,
            max_streams: 0,
            max_total_bytes: 0,
            max_live_readers: 0,
            max_live_readers_per_stream: 0,
            rate_limit_per_second: 0,
            rate_limit_burst: 0,
            max_pending_writes: 1024,
            max_connections: 4096,
            max_header_bytes: 64 << 10,
            header_timeout_ms: 30_000,
            send_timeout_ms: 60_000,
            retry_after_secs: 1,
        }
    }
}

/// Authentication settings. Auth is on when any token or key is configured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret (shown redacted).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redact")]
    pub hs256_secret: Option<String>,
    /// File holding the HS256 secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hs256_secret_file: Option<PathBuf>,
    /// JWKS file (EdDSA and RS256 public keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Static bearer tokens.
    #[serde(default)]
    pub tokens: Vec<TokenRule>,
}

fn default_leeway() -> u64 {
    30
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            hs256_secret: None,
            hs256_secret_file: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            leeway_secs: default_leeway(),
            tokens: Vec::new(),
        }
    }
}

/// One static bearer token and what it may do.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRule {
    /// The token (shown redacted).
    #[serde(serialize_with = "redact_str")]
    pub token: String,
    /// `read`, `write` and/or `admin` (admin implies the others).
    pub permissions: Vec<String>,
    /// Stream-path prefixes (relative to the stream root) it applies to;
    /// `""` is every stream.
    pub prefixes: Vec<String>,
}

fn redact<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

fn redact_str<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

impl AuthSettings {
    /// True when any credential is configured.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
            || self.hs256_secret.is_some()
            || self.hs256_secret_file.is_some()
            || self.jwks_file.is_some()
    }
}

/// The TOML file: every key optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    memory: Option<bool>,
    long_poll_timeout_ms: Option<u64>,
    max_chunk_bytes: Option<usize>,
    max_streamed_read_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    cors_origins: Option<String>,
    h2c: Option<bool>,
    allow_local_webhooks: Option<bool>,
    www: Option<String>,
    scheduling: Option<Scheduling>,
    #[serde(default)]
    tls: TlsSettings,
    #[serde(default)]
    log: FileLog,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    auth: AuthSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_stream_bytes: Option<u64>,
    max_streams: Option<u64>,
    max_total_bytes: Option<u64>,
    max_live_readers: Option<u64>,
    max_live_readers_per_stream: Option<u64>,
    rate_limit_per_second: Option<u64>,
    rate_limit_burst: Option<u64>,
    max_pending_writes: Option<u64>,
    max_connections: Option<u64>,
    max_header_bytes: Option<u64>,
    header_timeout_ms: Option<u64>,
    send_timeout_ms: Option<u64>,
    retry_after_secs: Option<u64>,
}

/// A configuration that cannot be used; the message names the setting.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// True when `id` was not given as a flag or environment variable.
fn unset(m: &ArgMatches, id: &str) -> bool {
    !matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

impl Settings {
    /// Merges `args` (whose sources `matches` knows) over the TOML file they
    /// name over the defaults, and validates the result.
    pub fn resolve(args: &ServeArgs, matches: &ArgMatches) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        macro_rules! pick {
            ($id:ident, $file:expr) => {
                match $file {
                    Some(v) if unset(matches, stringify!($id)) => v,
                    _ => args.$id.clone(),
                }
            };
        }
        let or = |flag: &Option<PathBuf>, file: Option<PathBuf>| flag.clone().or(file);
        let l = file.limits;
        let settings = Settings {
            bind: pick!(bind, file.bind),
            data_dir: pick!(data_dir, file.data_dir),
            memory: pick!(memory, file.memory),
            long_poll_timeout_ms: pick!(long_poll_timeout_ms, file.long_poll_timeout_ms),
            max_chunk_bytes: pick!(max_chunk_bytes, file.max_chunk_bytes),
            max_streamed_read_bytes: pick!(max_streamed_read_bytes, file.max_streamed_read_bytes),
            max_body_bytes: pick!(max_body_bytes, file.max_body_bytes),
            cors_origins: pick!(cors_origins, file.cors_origins),
            h2c: pick!(h2c, file.h2c),
            allow_local_webhooks: pick!(allow_local_webhooks, file.allow_local_webhooks),
            www: www_dir(args.www.clone().or(file.www))?,
            scheduling: pick!(scheduling, file.scheduling),
            tls: TlsSettings {
                cert: or(&args.tls_cert, file.tls.cert),
                key: or(&args.tls_key, file.tls.key),
            },
            log: LogSettings {
                format: pick!(log_format, file.log.format),
                level: pick!(log_level, file.log.level),
            },
            limits: Limits {
                max_stream_bytes: pick!(max_stream_bytes, l.max_stream_bytes),
                max_streams: pick!(max_streams, l.max_streams),
                max_total_bytes: pick!(max_total_bytes, l.max_total_bytes),
                max_live_readers: pick!(max_live_readers, l.max_live_readers),
                max_live_readers_per_stream: pick!(
                    max_live_readers_per_stream,
                    l.max_live_readers_per_stream
                ),
                rate_limit_per_second: pick!(rate_limit_per_second, l.rate_limit_per_second),
                rate_limit_burst: pick!(rate_limit_burst, l.rate_limit_burst),
                max_pending_writes: pick!(max_pending_writes, l.max_pending_writes),
                max_connections: pick!(max_connections, l.max_connections),
                max_header_bytes: pick!(max_header_bytes, l.max_header_bytes),
                header_timeout_ms: pick!(header_timeout_ms, l.header_timeout_ms),
                send_timeout_ms: pick!(send_timeout_ms, l.send_timeout_ms),
                retry_after_secs: pick!(retry_after_secs, l.retry_after_secs),
            },
            auth: AuthSettings {
                hs256_secret: args.auth_hs256_secret.clone().or(file.auth.hs256_secret),
                hs256_secret_file: or(&args.auth_hs256_secret_file, file.auth.hs256_secret_file),
                jwks_file: or(&args.auth_jwks_file, file.auth.jwks_file),
                issuer: args.auth_issuer.clone().or(file.auth.issuer),
                audience: args.auth_audience.clone().or(file.auth.audience),
                leeway_secs: file.auth.leeway_secs,
                tokens: file.auth.tokens,
            },
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Whether the server's threads run as `SCHED_BATCH` threads. In an SSE
    /// fan-out tokio wakes an idle worker through its eventfd every few
    /// tasks; stacked on the core of the worker that was sending, a normal
    /// thread preempted it and the two took turns every 5-20 µs. `auto`
    /// picks batch for durable storage only: there it made the SSE fan-out
    /// faster end to end (same-run A/B, 7 rounds: p99 from the append's send
    /// 6.98 -> 6.29 ms, the writer's ack p99 3.88 -> 2.29 ms) with appends
    /// and long-polls within noise. In memory mode, where the appending
    /// request itself wakes the readers, the writer's ack came later (p50
    /// 2.2 -> 3.3 ms) and the readers' data with it (p50 from the send 3.5
    /// -> 4.7 ms).
    pub fn batch_scheduling(&self) -> bool {
        match self.scheduling {
            Scheduling::Auto => !self.memory,
            Scheduling::Batch => true,
            Scheduling::Normal => false,
        }
    }

    /// Checks values that parse but cannot work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return bad(
                "tls.cert (--tls-cert) and tls.key (--tls-key) must be set together".into(),
            );
        }
        if self.max_chunk_bytes == 0 {
            return bad("max_chunk_bytes (--max-chunk-bytes) must be at least 1".into());
        }
        if self.max_streamed_read_bytes == 0 {
            return bad(
                "max_streamed_read_bytes (--max-streamed-read-bytes) must be at least 1".into(),
            );
        }
        if self.limits.max_connections == 0 {
            return bad("limits.max_connections (--max-connections) must be at least 1".into());
        }
        if self.limits.max_header_bytes < 8192 {
            return bad(
                "limits.max_header_bytes (--max-header-bytes) must be at least 8192".into(),
            );
        }
        if self.limits.header_timeout_ms == 0 {
            return bad("limits.header_timeout_ms (--header-timeout-ms) must be at least 1".into());
        }
        if self.limits.send_timeout_ms == 0 {
            return bad("limits.send_timeout_ms (--send-timeout-ms) must be at least 1".into());
        }
        if self.auth.hs256_secret.is_some() && self.auth.hs256_secret_file.is_some() {
            return bad(
                "auth.hs256_secret and auth.hs256_secret_file are exclusive; set one".into(),
            );
        }
        if self.cors_origins.trim().is_empty() {
            return bad(
                "cors_origins (--cors-origins) is empty; use * or a list of origins".into(),
            );
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            ConfigError(format!("log.level (--log-level) {:?}: {e}", self.log.level))
        })?;
        for (i, t) in self.auth.tokens.iter().enumerate() {
            if t.token.len() < 8 {
                return bad(format!(
                    "auth.tokens[{i}].token is shorter than 8 characters"
                ));
            }
            if t.permissions.is_empty() || t.prefixes.is_empty() {
                return bad(format!("auth.tokens[{i}] needs permissions and prefixes"));
            }
            for p in &t.permissions {
                if !matches!(p.as_str(), "read" | "write" | "admin") {
                    return bad(format!(
                        "auth.tokens[{i}].permissions: {p:?} is not read, write or admin"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The engine's configuration.
    pub fn engine_config(&self) -> ds_core::Config {
        let limit = |n: u64| (n > 0).then_some(n);
        let mut engine = ds_core::Config {
            long_poll_timeout_ms: self.long_poll_timeout_ms,
            max_chunk_bytes: self.max_chunk_bytes,
            max_streamed_read_bytes: self.max_streamed_read_bytes,
            max_body_bytes: self.max_body_bytes,
            allow_local_webhooks: self.allow_local_webhooks,
            quotas: ds_core::Quotas {
                max_stream_bytes: limit(self.limits.max_stream_bytes),
                max_streams: limit(self.limits.max_streams),
                max_total_bytes: limit(self.limits.max_total_bytes),
            },
            ..Default::default()
        };
        if self.cors_origins.trim() != "*" {
            let list = self
                .cors_origins
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            engine.cors = ds_core::CorsPolicy::AllowList(list);
        }
        if self.auth.enabled() {
            // PROTOCOL §10.1: per-user data is cached privately.
            engine.cacheable_read = "private, max-age=60, stale-while-revalidate=300".into();
        }
        engine
    }

    /// Where streams are stored.
    pub fn storage(&self) -> crate::Storage {
        if self.memory {
            crate::Storage::Memory
        } else {
            crate::Storage::Dir(self.data_dir.clone())
        }
    }

    /// The configuration as a TOML document (secrets redacted).
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Effective configuration of durable-streams-server (flags > env > file > defaults).\n",
        );
        out.push_str(&toml::to_string(self).expect("settings serialize as TOML"));
        out
    }
}

/// The folder to serve at `/`: the one given (empty: none), else the built
/// demo at its default place when it is there.
fn www_dir(given: Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    let dir = match given {
        Some(d) if d.is_empty() => return Ok(None),
        Some(d) => PathBuf::from(d),
        None => {
            let default = PathBuf::from(crate::www::DEFAULT_DIR);
            return Ok(default.join("index.html").is_file().then_some(default));
        }
    };
    if !dir.join("index.html").is_file() {
        return Err(ConfigError(format!(
            "www (--www) {}: no index.html there (build the demo with scripts/build-www.sh)",
            dir.display()
        )));
    }
    Ok(Some(dir))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_string();
        let place = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                let key = text
                    .lines()
                    .nth(line - 1)
                    .and_then(|l| l.split('=').next())
                    .map(str::trim)
                    .unwrap_or("");
                format!(" at line {line} ({key})")
            })
            .unwrap_or_default();
        ConfigError(format!("config file {}{place}: {msg}", path.display()))
    })
}
