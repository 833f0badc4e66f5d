//! Webhook delivery for subscriptions (PROTOCOL §7.1): the engine decides
//! what to send and signs it; this module only moves the bytes and reports
//! the outcome back. Connections are refused when the receiver's resolved
//! address is private, loopback, link-local or otherwise local (PROTOCOL
//! §12.8), unless it is the explicit localhost development exception.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use ds_core::subscription::webhook_url::{is_public, parse};
use ds_core::WebhookDelivery;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// How long one attempt may take, connect to last byte.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most response bytes read (only `{"done":true}` matters).
const MAX_RESPONSE: usize = 64 * 1024;

/// Sends one delivery: `Ok((status, body))` when the receiver answered.
pub async fn send(delivery: &WebhookDelivery, allow_local: bool) -> Result<(u16, Vec<u8>), String> {
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt(delivery, allow_local)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
    }
}

async fn attempt(delivery: &WebhookDelivery, allow_local: bool) -> Result<(u16, Vec<u8>), String> {
    let target = parse(&delivery.url).ok_or("not an http(s) URL")?;
    let https = target.scheme == "https";
    let authority = delivery
        .url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?', '#']).next())
        .unwrap_or("");
    let port = authority
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(if https { 443 } else { 80 });
    let path_start = delivery.url.find("://").map(|i| i + 3).unwrap_or(0);
    let path = match delivery.url[path_start..].find('/') {
        Some(i) => &delivery.url[path_start + i..],
        None => "/",
    };
    let local_dev = allow_local
        && (target.host == "localhost"
            || target
                .host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.octets()[..3] == [127, 0, 0]));
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    // SSRF guard at connect time: a public name must not resolve to a
    // local address.
    let allowed = |ip: IpAddr| is_public(ip) || (local_dev && ip.is_loopback());
    let addr = addrs.into_iter().find(|a| allowed(a.ip())).ok_or_else(|| {
        format!(
            "{} resolves only to local or private addresses",
            target.host
        )
    })?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let request = hyper::Request::post(path).header("host", authority).header(
        "user-agent",
        concat!("durable-streams-server/", env!("CARGO_PKG_VERSION")),
    );
    let request = delivery
        .headers
        .iter()
        .fold(request, |r, (n, v)| r.header(*n, v.as_str()))
        .body(Full::new(Bytes::from(delivery.body.clone())))
        .map_err(|e| e.to_string())?;
    if https {
        let server_name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(TokioIo::new(tls), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(io: T, request: hyper::Request<Full<Bytes>>) -> Result<(u16, Vec<u8>), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    Ok((status, body))
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}
