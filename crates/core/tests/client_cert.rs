//! Client certificates (mutual TLS) against a loopback TLS server that requires one signed by its CA (the test
//! kit's `serve_tls`, rustls's `WebPkiClientVerifier`): WebSocket and event stream are accepted with the
//! identity, refused without it with a reason that says a client certificate is required and how to give one,
//! an identity is presented only to the URLs its matcher accepts (each redirect hop by its own URL), and PEM
//! that cannot make an identity is refused saying what is wrong.

mod common;

use std::time::Duration;

use axum::{
    extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade},
    http::header,
    response::{IntoResponse, Redirect},
    routing::get,
    Router,
};
use common::{all_tasks_end, connect, hub_with, once, reason, Frames, OWNER};
use realtime_testkit::tls::{serve_tls, Pki, TlsServe};
use tauri_plugin_realtime_core::{ClientIdentity, Error, Hub, HubConfig, State, TlsConfig};

fn app() -> Router {
    Router::new()
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut s: WebSocket| async move {
                    let _ = s.send(AxMessage::Text("hello".into())).await;
                    while let Some(Ok(_)) = s.recv().await {}
                })
            }),
        )
        .route(
            "/sse",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    "data: hello\n\n",
                )
            }),
        )
}

fn requiring() -> TlsServe {
    TlsServe {
        require_client_cert: true,
        ..TlsServe::h2()
    }
}

fn hub_for(pki: &Pki, identities: Vec<ClientIdentity>) -> Hub {
    hub_with(HubConfig {
        linger: Duration::ZERO,
        tls: TlsConfig {
            extra_roots: vec![pki.ca_der.clone()],
            client_identities: identities,
            ..Default::default()
        },
        ..Default::default()
    })
}

fn identity(
    pki: &Pki,
    matcher: impl Fn(&url::Url) -> bool + Send + Sync + 'static,
) -> ClientIdentity {
    let (cert, key) = pki.client_identity("realtime test client");
    ClientIdentity::from_pem(cert.as_bytes(), key.as_bytes(), matcher).expect("a valid identity")
}

async fn close(hub: &Hub, f: &Frames) {
    let _ = hub.close(&f.id, OWNER, None, None);
}

/// The connection is refused for want of a certificate, once and for all (retrying cannot help).
async fn assert_certificate_required(f: &mut Frames, what: &str) {
    let end = f.settled(&[State::Failed, State::Reconnecting]).await;
    let why = reason(&end);
    assert!(
        common::is_state(&end, State::Failed),
        "{what}: expected failed, got {end:?}"
    );
    assert!(
        why.contains("requires a client certificate") && why.contains("client_identity"),
        "{what}: expected a reason that says a client certificate is required and how to give one, got {why:?}"
    );
    assert_eq!(f.message_count(), 0, "{what}: nothing may get through");
}

#[tokio::test]
async fn websocket_and_sse_are_accepted_with_the_identity() {
    let pki = Pki::new();
    let (addr, stats) = serve_tls(&pki, requiring(), app()).await;
    let hub = hub_for(&pki, vec![identity(&pki, |_| true)]);
    for url in [format!("wss://{addr}/ws"), format!("https://{addr}/sse")] {
        let (_, mut f) = connect(&hub, once(&url));
        f.message("hello").await;
        close(&hub, &f).await;
    }
    let requests = stats.requests();
    assert!(
        requests.len() == 2 && requests.iter().all(|(_, _, cert)| *cert),
        "expected both requests with a client certificate, got {requests:?}"
    );
    all_tasks_end(&hub).await;
}

#[tokio::test]
async fn without_an_identity_the_refusal_says_one_is_required() {
    let pki = Pki::new();
    let (addr, stats) = serve_tls(&pki, requiring(), app()).await;
    let hub = hub_for(&pki, vec![]);
    for url in [format!("wss://{addr}/ws"), format!("https://{addr}/sse")] {
        let (_, mut f) = connect(&hub, common::opts(&url));
        assert_certificate_required(&mut f, &url).await;
        close(&hub, &f).await;
    }
    assert!(stats.requests().is_empty(), "got {:?}", stats.requests());
    all_tasks_end(&hub).await;
}

#[tokio::test]
async fn an_identity_goes_only_to_the_urls_it_matches_each_hop_by_its_own() {
    let pki = Pki::new();
    let (secure, stats) = serve_tls(&pki, requiring(), app()).await;
    // A server that asks for no certificate and redirects to the one that requires it.
    let target = format!("https://{secure}/sse");
    let redirecting = Router::new().route(
        "/go",
        get(move || {
            let target = target.clone();
            async move { Redirect::temporary(&target).into_response() }
        }),
    );
    let (open, open_stats) = serve_tls(&pki, TlsServe::h2(), redirecting).await;
    let secure_port = secure.port();
    let hub = hub_for(
        &pki,
        vec![identity(&pki, move |u| {
            u.port() == Some(secure_port) && u.path() == "/sse"
        })],
    );

    // Another path of the same server: not matched, not sent, refused.
    let (_, mut ws) = connect(&hub, once(format!("wss://{secure}/ws")));
    assert_certificate_required(&mut ws, "a WebSocket the pattern does not match").await;
    close(&hub, &ws).await;

    // The redirect's first hop goes without it, the second (matched) with it.
    let (_, mut sse) = connect(&hub, once(format!("https://{open}/go")));
    sse.message("hello").await;
    close(&hub, &sse).await;
    assert_eq!(
        open_stats
            .requests()
            .iter()
            .map(|r| r.2)
            .collect::<Vec<_>>(),
        [false],
        "expected the first hop without a certificate"
    );
    assert_eq!(
        stats
            .requests()
            .iter()
            .map(|r| (r.0.as_str(), r.2))
            .collect::<Vec<_>>(),
        [("/sse", true)],
        "expected only the matched hop, with the certificate"
    );
    all_tasks_end(&hub).await;
}

#[test]
fn pem_that_makes_no_identity_is_refused_saying_why() {
    let pki = Pki::new();
    let (cert, key) = pki.client_identity("a");
    let (_, other_key) = pki.client_identity("b");
    let any = |_: &url::Url| true;
    let cases: [(&str, &str, &str, &str); 4] = [
        ("no certificate", "", &key, "no certificate found"),
        (
            "a key for a certificate",
            &key,
            &key,
            "no certificate found",
        ),
        ("no key", &cert, &cert, "no private key found"),
        (
            "another certificate's key",
            &cert,
            &other_key,
            "does not match the certificate",
        ),
    ];
    for (what, c, k, want) in cases {
        let e = ClientIdentity::from_pem(c.as_bytes(), k.as_bytes(), any).unwrap_err();
        assert!(
            matches!(&e, Error::Tls(m) if m.contains(want) && m.starts_with("client certificate")),
            "{what}: expected {want:?}, got {e:?}"
        );
        // A key is never quoted.
        let body: String = key.lines().nth(1).unwrap_or_default().to_owned();
        assert!(
            !e.to_string().contains(&body),
            "{what}: the key leaked: {e}"
        );
    }
    // Certificate and key in one text, as curl allows.
    let both = format!("{cert}{key}");
    assert!(ClientIdentity::from_pem(both.as_bytes(), both.as_bytes(), any).is_ok());
}
