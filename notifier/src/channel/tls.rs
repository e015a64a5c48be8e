//! The TLS client used for SMTP STARTTLS and `https` webhooks: rustls (ring), trusting the CA
//! bundle in `ca_file` (the system bundle by default).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

use crate::error::NotifyError;

/// Debian's (and most distributions') system CA bundle.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub fn connector(ca_file: &Path) -> Result<TlsConnector, NotifyError> {
    let config_error = |e: String| NotifyError::Config(format!("{}: {e}", ca_file.display()));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| config_error(e.to_string()))? {
        let cert = cert.map_err(|e| config_error(e.to_string()))?;
        roots.add(cert).map_err(|e| config_error(e.to_string()))?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
