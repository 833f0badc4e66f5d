//! Every scenario against the native host's router (`host_native::app`),
//! driven with `tower::ServiceExt::oneshot` (no sockets) on a paused tokio
//! clock, twice: over redb file shards in a temporary directory (restart =
//! drop the driver and reopen the directory) and in memory (no restart).
//! Plus one smoke test over real TCP.

#![cfg(not(target_arch = "wasm32"))]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::Router;
use ds_conformance::dsl::summarize;
use ds_conformance::{suite_config, LiveRead, Reply, Target, START};
use ds_core::{Method, Request, UnixMillis};
use durable_streams_server::clock::Clock;
use durable_streams_server::driver::Driver;
use durable_streams_server::{app, exit, exit_code, open_driver, Storage};
use http_body_util::BodyExt;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// The native host in one test's runtime.
struct NativeTarget {
    storage: Storage,
    _dir: Option<tempfile::TempDir>,
    clock: Clock,
    /// Tokio instant at which the clock read [`START`].
    origin: tokio::time::Instant,
    /// Virtual milliseconds the scenario has asked for so far.
    planned: u64,
    driver: Option<Arc<Driver>>,
    router: Router,
    timer: Option<JoinHandle<()>>,
    reads: Vec<Option<JoinHandle<Reply>>>,
}

impl NativeTarget {
    /// redb file shards in a fresh temporary directory.
    async fn redb() -> NativeTarget {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::Dir(dir.path().to_path_buf());
        Self::open(storage, Some(dir)).await
    }

    /// In-memory storage: everything but restarts.
    async fn memory() -> NativeTarget {
        Self::open(Storage::Memory, None).await
    }

    async fn open(storage: Storage, dir: Option<tempfile::TempDir>) -> NativeTarget {
        let origin = tokio::time::Instant::now();
        let clock = Clock::tokio_driven(START);
        let mut t = NativeTarget {
            storage,
            _dir: dir,
            clock,
            origin,
            planned: 0,
            driver: None,
            router: Router::new(),
            timer: None,
            reads: Vec::new(),
        };
        t.boot().await;
        t
    }

    /// Opens the storage, builds the router, starts background expiry (as
    /// `serve` does). After a restart the previous driver's files may still
    /// be closing on its group-commit thread: retry while they are in use.
    async fn boot(&mut self) {
        let mut attempts = 0;
        let driver = loop {
            match open_driver(&self.storage, suite_config(), self.clock.clone()) {
                Ok(driver) => break driver,
                Err(e) if attempts < 1_000 && exit_code(&*e) == exit::DATA_DIR_IN_USE => {
                    attempts += 1;
                    frozen(tokio::task::spawn_blocking(|| {
                        std::thread::sleep(Duration::from_millis(5));
                    }))
                    .await
                    .expect("pause");
                }
                Err(e) => panic!("open driver: {e}"),
            }
        };
        self.router = app(Arc::clone(&driver));
        self.timer = Some(driver.spawn_timer());
        self.driver = Some(driver);
    }

    /// Waiting for a live read moved time on; later `advance`s count from
    /// there, as they do on a manual clock.
    fn catch_up_plan(&mut self) {
        let elapsed = self.origin.elapsed().as_millis() as u64;
        self.planned = self.planned.max(elapsed);
    }

    fn reads_pending(&self) -> bool {
        self.reads.iter().any(Option::is_some)
    }

    /// Lets every task that was woken run until all wait again (a paused
    /// clock only advances once the runtime is idle).
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// True for requests that may wait in virtual time (long-poll, SSE).
fn is_live(req: &Request) -> bool {
    req.method == Method::Get && req.query_pairs().iter().any(|(k, _)| k == "live")
}

/// Runs `fut` with the paused clock frozen: a blocking task inhibits
/// auto-advance until `fut` is done. Writes wait for the group-commit
/// thread, which tokio cannot see; without this, virtual time would jump to
/// the next timer while a commit is on disk.
async fn frozen<F: Future>(fut: F) -> F::Output {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let hold = tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
    });
    let out = fut.await;
    drop(tx);
    hold.await.expect("freeze task");
    out
}

/// [`frozen`], and still frozen after `fut` until `driver` has no group
/// commit under way: a commit answers its writers before it wakes their
/// readers, so a write's reply can arrive while the wake-ups of its live
/// readers are still coming from the group-commit thread, and virtual time
/// must not jump in between.
async fn committed<F: Future>(driver: Option<Arc<Driver>>, fut: F) -> F::Output {
    frozen(async move {
        let out = fut.await;
        if let Some(driver) = driver {
            tokio::task::spawn_blocking(move || {
                // Real time on another thread: microseconds, at most a commit.
                while driver.commits_running() > 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
            .await
            .expect("commit wait");
        }
        out
    })
    .await
}

/// One request through the router, body collected to the end.
async fn send(router: Router, req: Request) -> Reply {
    let request = summarize(&req);
    let uri = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let method = match &req.method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other(m) => m.as_str(),
    };
    let mut builder = axum::http::Request::builder().method(method).uri(uri);
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let http = builder
        .body(AxumBody::from(req.body))
        .expect("a valid HTTP request");
    let res = router.oneshot(http).await.expect("infallible");
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Reply {
        request,
        status,
        headers,
        body,
    }
}

impl Target for NativeTarget {
    async fn request(&mut self, req: Request) -> Reply {
        let live = is_live(&req);
        let fut = send(self.router.clone(), req);
        let reply = if live {
            let reply = fut.await;
            self.catch_up_plan();
            reply
        } else {
            committed(self.driver.clone(), fut).await
        };
        if self.reads_pending() {
            self.settle().await;
        }
        reply
    }

    async fn start(&mut self, req: Request) -> LiveRead {
        let handle = tokio::spawn(send(self.router.clone(), req));
        self.reads.push(Some(handle));
        self.settle().await;
        LiveRead(self.reads.len() - 1)
    }

    async fn finish(&mut self, read: LiveRead) -> Reply {
        let handle = self.reads[read.0].take().expect("live read finished twice");
        let reply = handle.await.expect("live read task");
        self.catch_up_plan();
        reply
    }

    async fn advance(&mut self, ms: u64) {
        self.planned += ms;
        let at = self.origin + Duration::from_millis(self.planned);
        tokio::time::sleep_until(at).await;
    }

    fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    async fn restart(&mut self) -> bool {
        if matches!(self.storage, Storage::Memory) {
            return false;
        }
        assert!(!self.reads_pending(), "restart with live reads running");
        if let Some(timer) = self.timer.take() {
            timer.abort();
            let _ = timer.await;
        }
        let driver = self.driver.take().expect("running");
        // What a graceful shutdown does: end live reads, commit what is
        // staged.
        driver.begin_shutdown();
        driver.close();
        drop(driver);
        self.router = Router::new();
        self.boot().await;
        true
    }
}

/// One `#[tokio::test]` per scenario for the target built by `$open`.
macro_rules! native_tests {
    (($open:ident) $($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        $(mod $module {
            $(
                #[tokio::test(start_paused = true)]
                async fn $name() {
                    let mut t = super::NativeTarget::$open().await;
                    ds_conformance::cases::$module::$name(&mut t).await;
                }
            )*
        })*
    };
}

/// The scenarios over redb file shards.
mod redb {
    use super::NativeTarget;
    ds_conformance::for_each_scenario!(native_tests!(redb));
}

/// The scenarios in memory.
mod memory {
    use super::NativeTarget;
    ds_conformance::for_each_scenario!(native_tests!(memory));
}

/// The real server over TCP: raw HTTP/1.1 requests, checking what only the
/// wire shows (absolute `Location`, framing of full and SSE bodies).
#[tokio::test]
async fn tcp_smoke() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("temp dir");
    let driver = open_driver(
        &Storage::Dir(dir.path().to_path_buf()),
        suite_config(),
        Clock::system(),
    )
    .expect("open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        axum::serve(listener, app(driver)).await.expect("serve");
    });

    let exchange = |raw: String| async move {
        let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
        sock.write_all(raw.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        sock.read_to_end(&mut out).await.expect("read");
        String::from_utf8(out).expect("UTF-8 response")
    };
    let host = format!("127.0.0.1:{}", addr.port());

    let created = exchange(format!(
        "PUT /v1/stream/smoke HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\nhello"
    ))
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    assert!(
        created
            .to_ascii_lowercase()
            .contains(&format!("location: http://{host}/v1/stream/smoke\r\n")),
        "{created}"
    );

    let closed = exchange(format!(
        "POST /v1/stream/smoke HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n\
         Stream-Closed: true\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         6\r\n world\r\n0\r\n\r\n"
    ))
    .await;
    assert!(closed.starts_with("HTTP/1.1 204"), "{closed}");

    let read = exchange(format!(
        "GET /v1/stream/smoke HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    let lower = read.to_ascii_lowercase();
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
    assert!(lower.contains("content-length: 11\r\n"), "{read}");
    assert!(lower.contains("stream-closed: true\r\n"), "{read}");
    assert!(read.ends_with("\r\n\r\nhello world"), "{read}");

    let head = exchange(format!(
        "HEAD /v1/stream/smoke HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD carried a body: {head}");

    let sse = exchange(format!(
        "GET /v1/stream/smoke?offset=-1&live=sse HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    let lower = sse.to_ascii_lowercase();
    assert!(sse.starts_with("HTTP/1.1 200"), "{sse}");
    assert!(
        lower.contains("content-type: text/event-stream\r\n"),
        "{sse}"
    );
    assert!(lower.contains("transfer-encoding: chunked\r\n"), "{sse}");
    assert!(!lower.contains("content-length"), "{sse}");
    assert!(sse.contains("event: data\ndata:hello world\n\n"), "{sse}");
    assert!(sse.contains("\"streamClosed\":true"), "{sse}");

    let missing = exchange(format!(
        "GET /v1/stream/nope HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(
        missing
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff\r\n"),
        "{missing}"
    );

    server.abort();
}
