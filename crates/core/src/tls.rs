//! TLS for every connection: rustls with the webpki roots, optionally the OS's roots and extra CAs, and the
//! client certificates the app gives per URL. Invalid certificates are refused unless the app's Rust code opts
//! out explicitly.

use std::sync::Arc;

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::ResolvesClientCert,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    sign::CertifiedKey,
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
    /// Client certificates (mutual TLS), each presented to the URLs its matcher accepts; the first that
    /// matches a request's URL is the one given. Default: none.
    pub client_identities: Vec<ClientIdentity>,
}

/// Decides which URLs a [`ClientIdentity`] is presented to (the plugin matches the scope's URL patterns).
pub type UrlMatcher = Arc<dyn Fn(&url::Url) -> bool + Send + Sync>;

/// A client certificate chain and its private key, for the URLs its matcher accepts.
#[derive(Clone)]
pub struct ClientIdentity {
    matcher: UrlMatcher,
    key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.key.cert.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Reads a certificate chain (the client's own certificate first) and its private key (PKCS#8, PKCS#1
    /// or SEC1) from PEM; both may be in one text. Fails, saying which, when there is no certificate, no key,
    /// or a key that is not the certificate's.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        matcher: impl Fn(&url::Url) -> bool + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        use rustls::pki_types::pem::PemObject;
        let certs = pem_certificates(cert_pem)
            .map_err(|e| Error::Tls(format!("client certificate: {e}")))?;
        // The key's own error would quote nothing of it, but say only what kind of problem it is anyway.
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            Error::Tls(match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "client certificate: no private key found in the key's PEM data (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)".into()
                }
                _ => "client certificate: the private key's PEM data is invalid".into(),
            })
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let certs = certs.into_iter().map(CertificateDer::from).collect();
        let key = CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
            Error::Tls(match e {
                rustls::Error::InconsistentKeys(_) => {
                    "client certificate: the private key does not match the certificate".into()
                }
                other => format!("client certificate: unusable private key: {other}"),
            })
        })?;
        Ok(Self {
            matcher: Arc::new(matcher),
            key: Arc::new(key),
        })
    }

    /// Whether this identity is presented to `url`.
    pub fn matches(&self, url: &url::Url) -> bool {
        (self.matcher)(url)
    }
}

/// The identity given to every server that asks, on the connections of one [`ClientIdentity`].
#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesClientCert for Present {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// ALPN for the HTTP client: HTTP/2 where the server offers it, unless turned off.
pub(crate) fn http_alpn(http1_only: bool) -> Vec<Vec<u8>> {
    if http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    }
}

/// The client configuration for one identity (`None`: no client certificate) with the given ALPN.
pub(crate) fn with_identity(
    base: &rustls::ClientConfig,
    identity: Option<&ClientIdentity>,
    alpn: Vec<Vec<u8>>,
) -> rustls::ClientConfig {
    let mut config = base.clone();
    if let Some(identity) = identity {
        // rustls's resolver is not told the server's name, so each identity has a configuration (and
        // connections) of its own, chosen per request URL.
        config.client_auth_cert_resolver = Arc::new(Present(identity.key.clone()));
    }
    config.alpn_protocols = alpn;
    config
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
