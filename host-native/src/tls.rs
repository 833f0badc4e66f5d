//! TLS with rustls: a PEM certificate chain and key, ALPN `h2` and
//! `http/1.1`, and reloading both files on SIGHUP. A reload swaps the
//! certificate for new handshakes only; open connections keep theirs, and a
//! reload that fails (unreadable file, key not matching) keeps the old pair.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::ConfigError;

/// The certificate in use and where it is reloaded from.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads `cert` and `key`; errors name the setting and the file.
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<CertStore>, ConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = load(cert, key, &provider)?;
        Ok(Arc::new(CertStore {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Re-reads both files; on failure the old certificate stays in use.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let fresh = load(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// A rustls acceptor offering `h2` and `http/1.1`.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, ConfigError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError(format!("tls: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reloads on every SIGHUP for the life of the process.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let store = Arc::clone(self);
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP: TLS files will not be reloaded");
                return;
            };
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match store.reload() {
                        Ok(()) => {
                            tracing::info!(cert = %store.cert.display(), "TLS certificate reloaded")
                        }
                        Err(e) => tracing::error!(
                            "TLS reload failed, keeping the previous certificate: {e}"
                        ),
                    }
                }
            });
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, ConfigError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConfigError(format!("tls.cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ConfigError(format!(
            "tls.cert {}: no PEM certificate in it",
            cert.display()
        )));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ConfigError(format!("tls.key {}: {e}", key.display())))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        ConfigError(format!(
            "tls.key {}: does not fit tls.cert {}: {e}",
            key.display(),
            cert.display()
        ))
    })
}
