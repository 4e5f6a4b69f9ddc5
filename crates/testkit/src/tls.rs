//! TLS on loopback: a CA and certificates made by rcgen, and a server that serves an axum router over TLS with
//! ALPN (HTTP/2, HTTP/1.1 or both: hyper's server for the protocol ALPN chose), optionally requiring a
//! client certificate signed by the CA. It counts the TCP connections it accepted and records the HTTP version
//! of every request, and whether its connection presented a client certificate.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use hyper::server::conn::{http1, http2};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Seen, WAIT};

/// A CA, and a server certificate it signed.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA's certificate, for the client to trust.
    pub ca_der: Vec<u8>,
    pub ca_pem: String,
    /// The server's certificate and its key (PKCS#8 DER).
    pub server_der: Vec<u8>,
    pub server_pem: String,
    pub server_key: Vec<u8>,
}

impl Pki {
    /// For `127.0.0.1` and `localhost`.
    pub fn new() -> Self {
        Self::for_names(&["127.0.0.1", "localhost"])
    }

    /// A server certificate for `names` (IP addresses become IP SANs; the first is the common name).
    pub fn for_names(names: &[&str]) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "realtime loopback CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
            .expect("CA certificate");
        let (server, server_key) = leaf(&ca, names, ExtendedKeyUsagePurpose::ServerAuth);
        Self {
            ca_der: ca.der().to_vec(),
            ca_pem: ca.pem(),
            ca,
            server_der: server.der().to_vec(),
            server_pem: server.pem(),
            server_key: server_key.serialize_der(),
        }
    }

    /// A client certificate signed by the CA, and its key, as PEM.
    pub fn client_identity(&self, name: &str) -> (String, String) {
        let (cert, key) = leaf(&self.ca, &[name], ExtendedKeyUsagePurpose::ClientAuth);
        (cert.pem(), key.serialize_pem())
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("leaf certificate");
    (cert, key)
}

/// How a [`serve_tls`] server speaks.
#[derive(Clone, Debug)]
pub struct TlsServe {
    /// ALPN protocols offered, in the server's order of preference.
    pub alpn: Vec<Vec<u8>>,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of its HTTP/2 connections (hyper's default: 200).
    pub max_streams: Option<u32>,
    /// Require a client certificate signed by the [`Pki`]'s CA.
    pub require_client_cert: bool,
}

impl TlsServe {
    /// HTTP/2 and HTTP/1.1, HTTP/2 preferred, as most servers.
    pub fn h2() -> Self {
        Self {
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            max_streams: None,
            require_client_cert: false,
        }
    }

    /// HTTP/1.1 only.
    pub fn http1() -> Self {
        Self {
            alpn: vec![b"http/1.1".to_vec()],
            ..Self::h2()
        }
    }
}

/// What a [`serve_tls`] server saw.
#[derive(Default, Debug)]
pub struct TlsStats {
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// Every request: its path, HTTP version and whether its connection presented a client certificate.
    pub requests: Mutex<Vec<(String, axum::http::Version, bool)>>,
    /// Handshakes that failed, and why.
    pub refused: Seen,
}

impl TlsStats {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<(String, axum::http::Version, bool)> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Serves `app` over TLS on 127.0.0.1:0 until the runtime ends.
pub async fn serve_tls(
    pki: &Pki,
    serve: TlsServe,
    app: axum::Router,
) -> (SocketAddr, Arc<TlsStats>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = if serve.require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki.ca_der.clone()))
            .expect("the CA as a root");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(
            vec![CertificateDer::from(pki.server_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
        )
        .expect("server certificate");
    config.alpn_protocols = serve.alpn.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener.local_addr().expect("the listener's address");
    let stats = Arc::new(TlsStats::default());
    let seen = stats.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, stats, app, serve) =
                (acceptor.clone(), seen.clone(), app.clone(), serve.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(WAIT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => return stats.refused.push(e.to_string()),
                    Err(_) => return stats.refused.push("handshake timed out"),
                };
                let with_cert = tls.get_ref().1.peer_certificates().is_some();
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = TowerToHyperService::new(app);
                let record = stats.clone();
                let service = hyper::service::service_fn(move |req: axum::http::Request<_>| {
                    record
                        .requests
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((req.uri().path().to_owned(), req.version(), with_cert));
                    hyper::service::Service::call(&service, req)
                });
                let io = TokioIo::new(tls);
                // By what ALPN chose, as browsers' servers do; HTTP/1.1 with upgrades, for WebSockets.
                let served = if h2 {
                    let mut builder = http2::Builder::new(TokioExecutor::new());
                    if let Some(n) = serve.max_streams {
                        builder.max_concurrent_streams(n);
                    }
                    builder.serve_connection(io, service).await
                } else {
                    http1::Builder::new()
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await
                };
                if let Err(e) = served {
                    stats.refused.push(format!("connection error: {e}"));
                }
            });
        }
    });
    (addr, stats)
}
