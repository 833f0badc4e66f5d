//! TLS and HTTP/2 from the outside: a certificate generated with rcgen, a
//! hyper client over rustls negotiating `h2` by ALPN, several SSE reads and
//! a long-poll multiplexed on one connection, HTTP/1.1 by ALPN, certificate
//! reload on SIGHUP without dropping open connections, and h2c with prior
//! knowledge on plain TCP.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

struct Proc(Child, SocketAddr);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn spawn(args: &[&str]) -> Proc {
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_durable-streams-server"))
        .args(["--bind", &addr.to_string(), "--memory"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child, addr)
}

/// A self-signed certificate for `localhost`, written as PEM files.
fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    ck.cert.der().clone()
}

fn connector(trusted: &CertificateDer<'static>, alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(addr: SocketAddr, connector: &TlsConnector) -> TlsStream<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tcp = TcpStream::connect(addr).await.unwrap();
        match connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("TLS handshake failed: {e}"),
        }
    }
}

fn req(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"));
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from_static(body))).unwrap()
}

async fn body_text(res: Response<hyper::body::Incoming>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Reads SSE frames until `needle` shows up (or panics after 10 s).
async fn sse_until(body: &mut hyper::body::Incoming, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("SSE data in time")
            .expect("body open")
            .unwrap();
        if let Some(d) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(d));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_h2_multiplexes_live_reads_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let server = spawn(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--long-poll-timeout-ms",
        "10000",
    ]);

    let tls = tls_connect(server.1, &connector(&first, b"h2")).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);

    let path = "/v1/stream/h2-chat";
    let text = [("content-type", "text/plain")];
    let res = h2.send_request(req("PUT", path, &text, b"")).await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.version(), hyper::Version::HTTP_2);
    let res = h2
        .send_request(req("POST", path, &text, b"first"))
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // Three SSE reads and a long-poll, all on this one connection.
    let mut sse = Vec::new();
    for _ in 0..3 {
        let res = h2
            .send_request(req("GET", &format!("{path}?offset=-1&live=sse"), &[], b""))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        sse_until(&mut body, "first").await;
        sse.push(body);
    }
    let head = h2.send_request(req("HEAD", path, &[], b"")).await.unwrap();
    let tail = head.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_string();
    let mut poller = h2.clone();
    let long_poll = tokio::spawn(async move {
        let res = poller
            .send_request(req(
                "GET",
                &format!("{path}?offset={tail}&live=long-poll"),
                &[],
                b"",
            ))
            .await
            .unwrap();
        (res.status(), body_text(res).await)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = h2
        .send_request(req("POST", path, &text, b"second"))
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    for body in &mut sse {
        sse_until(body, "second").await;
    }
    let (status, text) = long_poll.await.unwrap();
    assert_eq!((status.as_u16(), text.as_str()), (200, "second"));

    // HTTP/1.1 by ALPN works too.
    let tls1 = tls_connect(server.1, &connector(&first, b"http/1.1")).await;
    assert_eq!(tls1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut h1, conn) = http1::handshake(TokioIo::new(tls1)).await.unwrap();
    tokio::spawn(conn);
    let res = h1
        .send_request(req(
            "GET",
            &format!("{path}?offset=-1"),
            &[("host", "localhost")],
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(res.version(), hyper::Version::HTTP_11);
    assert_eq!(body_text(res).await, "firstsecond");

    // Replace the certificate and send SIGHUP: new handshakes get the new
    // one; the open HTTP/2 connection keeps working.
    let second = write_cert(dir.path());
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let only_new = connector(&second, b"h2");
    let deadline = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        let tcp = TcpStream::connect(server.1).await.unwrap();
        if let Ok(s) = only_new
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let served = fresh.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(served, second);
    let res = h2.send_request(req("HEAD", path, &[], b"")).await.unwrap();
    assert_eq!(res.status(), 200, "the old connection survives the reload");
    drop(sse);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_on_plain_tcp() {
    let server = spawn(&["--h2c"]);
    let tcp = TcpStream::connect(server.1).await.unwrap();
    let (mut h2, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = h2
        .send_request(
            Request::builder()
                .method("PUT")
                .uri("http://localhost/v1/stream/h2c")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.version(), hyper::Version::HTTP_2);

    // Without --h2c the server speaks HTTP/1.1 only.
    let plain = spawn(&[]);
    let tcp = TcpStream::connect(plain.1).await.unwrap();
    let (mut h2, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = h2
        .send_request(
            Request::builder()
                .uri("http://localhost/healthz")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert!(res.is_err(), "h2c must be opt-in");
}
