//! Serving: the accept loop (plain TCP or TLS), HTTP/1.1 and HTTP/2 on each
//! connection, connection limits and timeouts, and graceful shutdown.
//!
//! - HTTPS offers ALPN `h2` and `http/1.1`; plain TCP speaks HTTP/1.1, and
//!   also HTTP/2 with prior knowledge (h2c) when enabled.
//! - At most `max_connections` are open; more are closed at once.
//! - A TLS handshake, a request head, and an idle HTTP/1.1 keep-alive
//!   connection each get `header_timeout_ms`; request heads are capped at
//!   `max_header_bytes` (431 beyond). HTTP/2 connections are pinged so dead
//!   peers are dropped, and carry at most 256 concurrent streams.
//! - A client that accepts no bytes for `send_timeout_ms` while a response
//!   is waiting to be sent is disconnected (slow or stuck readers).
//! - On Ctrl-C / SIGTERM: stop accepting, tell live readers to finish, let
//!   in-flight requests complete (up to 30 s), commit what is staged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::config::Settings;
use crate::driver::Writer;
use crate::gate::{operated_app, Ops};
use crate::live_socket::{LiveSocket, SocketIo};
use crate::metrics::Metrics;
use crate::stall::StallTimeout;
use crate::tls::CertStore;
use crate::{open_driver, BindError, Storage};

/// How long shutdown waits for open requests before giving up on them.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Opens storage, binds, serves until Ctrl-C / SIGTERM, then drains.
pub async fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let tls = match (&settings.tls.cert, &settings.tls.key) {
        (Some(cert), Some(key)) => Some(CertStore::open(cert, key)?),
        _ => None,
    };
    let driver = open_driver(
        &settings.storage(),
        settings.engine_config(),
        Clock::system(),
    )?;
    let ops = Ops::new(Arc::clone(&driver), &settings)?;
    let listener = TcpListener::bind(settings.bind)
        .await
        .map_err(|e| BindError(settings.bind, e))?;
    let addr = listener.local_addr()?;
    let root = driver.with_engine(|e, _| e.config().stream_root.clone());
    let streams = driver.with_engine(|e, _| e.stream_count());
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("durable-streams-server listening on {scheme}://{addr}{root}");
    match settings.storage() {
        Storage::Dir(dir) => println!(
            "data: redb file shards in {} ({streams} streams)",
            dir.display()
        ),
        Storage::Memory => println!("data: in memory (--memory): nothing is kept after exit"),
    }
    if ops.auth_enabled() {
        println!("auth: bearer tokens required");
    }
    let acceptor = match &tls {
        Some(store) => {
            store.reload_on_sighup();
            Some(store.acceptor()?)
        }
        None => None,
    };
    let timer = driver.spawn_timer();
    let app = operated_app(Arc::clone(&ops));
    let app = match &settings.www {
        Some(dir) => {
            println!(
                "demo: {scheme}://{addr}/ (the offline demo, from {})",
                dir.display()
            );
            crate::www::with_static_files(app, dir.clone())
        }
        None => app,
    };
    let on_signal = Arc::clone(&driver);
    accept_loop(
        listener,
        Routes {
            ops: Arc::clone(&ops),
            app,
        },
        acceptor,
        &settings,
        Arc::clone(&ops.metrics),
        async move {
            shutdown_signal().await;
            println!("shutting down: finishing in-flight requests");
            on_signal.begin_shutdown();
        },
    )
    .await;
    timer.abort();
    driver.close();
    println!("stopped");
    Ok(())
}

/// The HTTP/1.1 + HTTP/2 connection builder for `settings`.
fn builder(settings: &Settings, h2: bool) -> auto::Builder<TokioExecutor> {
    let l = &settings.limits;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(l.header_timeout_ms))
        .max_buf_size(usize::try_from(l.max_header_bytes).unwrap_or(usize::MAX));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(l.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    if h2 {
        b
    } else {
        b.http1_only()
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: Routes,
    tls: Option<TlsAcceptor>,
    settings: &Settings,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let builder = Arc::new(builder(settings, tls.is_some() || settings.h2c));
    let slots = Arc::new(Semaphore::new(
        usize::try_from(settings.limits.max_connections).unwrap_or(usize::MAX),
    ));
    let handshake = Duration::from_millis(settings.limits.header_timeout_ms);
    let send_timeout = Duration::from_millis(settings.limits.send_timeout_ms);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics.connections_rejected.inc();
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (app, builder, watcher, tls, metrics) = (
            app.clone(),
            Arc::clone(&builder),
            graceful.watcher(),
            tls.clone(),
            Arc::clone(&metrics),
        );
        tokio::spawn(async move {
            metrics.connections.inc();
            let io = SocketIo::new(tcp);
            // Direct SSE writes need the bytes on the wire to be hyper's
            // own (no TLS record layer in between).
            let live = tls.is_none().then(|| io.live());
            let io = StallTimeout::new(io, send_timeout);
            serve_connection(io, peer, app, &builder, watcher, tls, live, handshake).await;
            metrics.connections.dec();
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown()).await;
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    tcp: StallTimeout<SocketIo>,
    peer: SocketAddr,
    app: Routes,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    tls: Option<TlsAcceptor>,
    live: Option<Arc<LiveSocket>>,
    handshake: Duration,
) {
    let writer = Writer(NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let service = Connection {
        routes: app,
        peer,
        writer,
        live,
    };
    let result = match tls {
        None => {
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            watcher.watch(conn.into_owned()).await
        }
        Some(acceptor) => {
            let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            watcher.watch(conn.into_owned()).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
}

/// What a connection serves: requests under the stream root go straight
/// to the gate and the stream handler ([`crate::gate::serve_stream`]),
/// everything else (health, metrics, the demo's files) through the router.
#[derive(Clone)]
struct Routes {
    ops: Arc<Ops>,
    app: Router,
}

/// Numbers connections, from 1 ([`Writer`] 0 means unknown).
static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The service of one connection: [`Routes`], the peer's address, and the
/// connection's number (the driver tells writers apart by it).
#[derive(Clone)]
struct Connection {
    routes: Routes,
    peer: SocketAddr,
    writer: Writer,
    /// The socket, when SSE events may be written to it directly.
    live: Option<Arc<LiveSocket>>,
}

impl hyper::service::Service<axum::http::Request<Incoming>> for Connection {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn call(&self, req: axum::http::Request<Incoming>) -> Self::Future {
        let mut req = req.map(axum::body::Body::new);
        let ops = &self.routes.ops;
        if ops.owns(req.uri().path()) {
            // On the stream path only the rate limiter reads the address.
            if ops.limits_rate() {
                req.extensions_mut().insert(ConnectInfo(self.peer));
            }
            // Only SSE reads use it (no extension allocated for the rest),
            // and only over HTTP/1.1: direct writes are chunks of an HTTP/1.1
            // body (see `live_socket`; HTTP/1.0 bodies end at close).
            if let Some(live) = &self.live {
                if req.version() == axum::http::Version::HTTP_11
                    && req.method() == axum::http::Method::GET
                    && req.uri().query().is_some_and(|q| q.contains("live=sse"))
                {
                    req.extensions_mut().insert(Arc::clone(live));
                }
            }
            let ops = Arc::clone(ops);
            let writer = self.writer;
            Box::pin(async move { Ok(crate::gate::serve_stream(ops, req, writer).await) })
        } else {
            req.extensions_mut().insert(ConnectInfo(self.peer));
            let app = self.routes.app.clone();
            Box::pin(app.oneshot(req))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
