//! The server's TLS configuration (rustls with the ring provider) from a
//! PEM certificate chain and a PEM private key.

use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::tokio_rustls::rustls;
use pgwire::tokio::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::AuthError;

/// Builds the acceptor from `--tls-cert` and `--tls-key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, AuthError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| AuthError::Tls(format!("cannot read {}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| AuthError::Tls(format!("cannot read {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(AuthError::Tls(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        AuthError::Tls(format!(
            "cannot read a private key from {}: {e}",
            key.display()
        ))
    })?;
    // (the ring provider has no post-quantum key exchange; the clients
    // this serves, libpq and the drivers, negotiate X25519 or P-256)
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| AuthError::Tls(format!("certificate and key do not go together: {e}")))?;
    // direct TLS (Postgres 17 `sslnegotiation=direct`) requires the ALPN
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
