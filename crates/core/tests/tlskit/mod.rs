//! TLS servers with a certificate of a CA of the test's own, for the tests that need one (`mod tlskit;`, beside
//! `mod common;`).
#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use crate::common::{say_sse, say_ws, Seen, WAIT};

pub use realtime_testkit::tls::Pki;

/// A fresh CA and a server certificate it signed for `names` (IP addresses become IP SANs).
pub fn pki(names: &[&str]) -> Pki {
    Pki::for_names(names)
}

#[derive(Clone, Copy)]
pub enum Serve {
    Ws,
    Sse,
}

/// A TLS server with the leaf certificate of `pki`: a WebSocket that says "hello-tls", or a hand-written
/// HTTP/1.1 event stream with one event "hello-tls". Handshake outcomes go to `seen`.
pub async fn tls_server(pki: &Pki, mode: Serve, seen: Seen) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(pki.server_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut tls = match tokio::time::timeout(WAIT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return seen.push(format!("handshake failed: {e}")),
                    Err(_) => return seen.push("handshake timed out"),
                };
                seen.push("handshake ok");
                match mode {
                    Serve::Ws => say_ws(tls, "hello-tls").await,
                    Serve::Sse => say_sse(&mut tls, b"data: hello-tls\n\n").await,
                }
            });
        }
    });
    addr
}
