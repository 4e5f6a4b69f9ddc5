//! TLS for every connection: rustls with the webpki roots, optionally the OS's roots and extra CAs.
//! Invalid certificates are refused unless the app's Rust code opts out explicitly.

use std::sync::Arc;

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, SignatureScheme,
};

use super::error::Error;

/// Which certificates to trust.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// Extra trusted root certificates (DER), on top of the webpki roots.
    pub extra_roots: Vec<Vec<u8>>,
    /// Also trust the operating system's root store. Default: false (webpki roots only).
    pub native_roots: bool,
    /// Accept any certificate, valid or not. Default: false. Only for development against a self-signed
    /// server: it removes the protection TLS gives.
    pub danger_accept_invalid_certs: bool,
}

/// Builds the client configuration shared by WebSocket and HTTP connections.
pub fn client_config(config: &TlsConfig) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    if config.danger_accept_invalid_certs {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if config.native_roots {
        // Unreadable entries in the OS store are skipped, as browsers do; the rest still count.
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 && !native.errors.is_empty() {
            return Err(Error::Tls(format!(
                "could not read the operating system's root certificates: {}",
                native.errors[0]
            )));
        }
    }
    for der in &config.extra_roots {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| Error::Tls(format!("invalid root certificate: {e}")))?;
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Parses every certificate of a PEM bundle into DER.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| Error::Tls(format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate found in the PEM data".into()));
    }
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}

#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    // Signatures are still checked: only the chain of trust is skipped.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
