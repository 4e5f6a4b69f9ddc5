//! Hostile and unusual servers on 127.0.0.1, driven through the `Hub`: oversized and malformed WebSocket
//! frames, endless SSE lines, garbage instead of HTTP, slowloris servers, self-signed TLS, secret headers,
//! limits and redirects. Each case must end in the stated state with a reason, keep memory bounded (the
//! hostile server sees the client stop reading), and leave the hub working for the next, normal connection.
//!
//! Every server here listens on 127.0.0.1:0 (the `localhost` name resolves to 127.0.0.1 too), every wait is
//! bounded by `WAIT`, and every server task dies with its test's runtime.

mod common;
mod tlskit;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{
        ws::{Message as AxMessage, WebSocket, WebSocketUpgrade},
        State as AxState,
    },
    http::{HeaderMap, Uri},
    response::{IntoResponse, Redirect, Response},
    routing::{get, MethodRouter},
    Router,
};
use common::{
    all_tasks_end, closed_port, connect, drip_server, flood, hub, hub_with, once, opts, raw_server,
    read_head, reason, state_of, subscribe, until_closed, wait_until, Frames, Seen, OWNER,
    SSE_HEAD, WAIT,
};
use tauri_plugin_realtime_core::{
    pem_certificates, AllowAll, ConnectOptions, Error, Frame, HeaderSource, HeartbeatOptions, Hub,
    HubConfig, Limits, Outgoing, QueueOptions, ReconnectOptions, SecretHeaders, Share, State,
    TlsConfig, Toggle, Transport, UrlGuard,
};
use tlskit::{pki, tls_server, Serve};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
};

/// Private upstream, quick retries.
fn quick(url: impl Into<String>) -> ConnectOptions {
    ConnectOptions {
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: 50,
            max_delay_ms: 200,
            ..Default::default()
        })),
        share: Some(Share::Enabled(false)),
        ..opts(url)
    }
}

fn sse_response(body: &'static str) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from(body))
        .unwrap()
}

/// A normal WebSocket and SSE connection on the same hub still work: the hostile case left nothing broken.
async fn assert_still_works(hub: &Hub) {
    let app = Router::new()
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut s: WebSocket| async move {
                    let _ = s.send(AxMessage::Text("ok".into())).await;
                    while let Some(Ok(_)) = s.recv().await {}
                })
            }),
        )
        .route("/sse", get(|| async { sse_response("data: ok\n\n") }));
    let addr = common::serve(app).await;
    for url in [format!("ws://{addr}/ws"), format!("http://{addr}/sse")] {
        let (id, mut w) = connect(hub, once(&url));
        w.message("ok").await;
        hub.close(&id, OWNER, None, None).unwrap();
    }
}

/// Closes the subscriptions, then checks that no task of theirs is left.
async fn close_all(hub: &Hub, ids: &[&str]) {
    for id in ids {
        hub.close(id, OWNER, None, None).unwrap();
    }
    all_tasks_end(hub).await;
}

// ---------------------------------------------------------------------------------------------------------
// WebSocket: oversized and malformed messages.

#[tokio::test]
async fn websocket_message_over_max_message_size_fails_naming_the_limit() {
    let app = Router::new().route(
        "/big",
        get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut s: WebSocket| async move {
                let _ = s.send(AxMessage::Text("x".repeat(64 << 10).into())).await;
                while let Some(Ok(_)) = s.recv().await {}
            })
        }),
    );
    let addr = common::serve(app).await;
    let hub = hub();
    let mut o = quick(format!("ws://{addr}/big"));
    o.max_message_size = Some(1024);
    let (id, mut w) = connect(&hub, o);
    let end = w.settled(&[State::Failed, State::Reconnecting]).await;
    assert_eq!(state_of(&end), Some(State::Failed), "got {end:?}");
    assert!(
        reason(&end).contains("too large") && reason(&end).contains("maxMessageSize"),
        "expected a reason naming the size limit, got {end:?}"
    );
    w.until(
        "a fatal error frame",
        |f| matches!(f, Frame::Error { fatal: true, message, .. } if message.contains("too large")),
    )
    .await;
    assert_eq!(
        w.message_count(),
        0,
        "nothing of the message may be relayed"
    );
    assert_still_works(&hub).await;
    close_all(&hub, &[&id]).await;
}

#[tokio::test]
async fn websocket_frame_header_claiming_a_terabyte_is_refused_without_reading_it() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = raw_server(move |tcp, _| {
        let tx = tx.clone();
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            // A binary frame whose header claims 2^40 bytes, then zeros for as long as the client reads.
            let mut header = vec![0x82u8, 127];
            header.extend_from_slice(&(1u64 << 40).to_be_bytes());
            let _ = tx.send(flood(ws.get_mut(), &header, &[0u8]).await);
        }
    })
    .await;
    let hub = hub();
    let mut o = quick(format!("ws://{addr}/"));
    o.max_message_size = Some(1 << 20);
    let (id, mut w) = connect(&hub, o);
    let end = w.settled(&[State::Failed, State::Reconnecting]).await;
    assert_eq!(state_of(&end), Some(State::Failed), "got {end:?}");
    assert!(reason(&end).contains("too large"), "got {end:?}");
    let flood = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the server to stop within WAIT")
        .unwrap();
    assert!(
        flood.write_failed && flood.written < 16 << 20 && flood.elapsed < WAIT,
        "expected the client to close the socket soon after the header, got {flood:?}"
    );
    assert_still_works(&hub).await;
    close_all(&hub, &[&id]).await;
}

#[tokio::test]
async fn websocket_text_frame_with_invalid_utf8_drops_the_connection() {
    let addr = raw_server(|tcp, _| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        // FIN + text, unmasked, 4 bytes that are not UTF-8.
        let s = ws.get_mut();
        if s.write_all(&[0x81, 0x04, 0xff, 0xfe, 0xc3, 0x28])
            .await
            .is_err()
        {
            return;
        }
        until_closed(s).await;
    })
    .await;
    let hub = hub();
    let (id, mut w) = connect(&hub, quick(format!("ws://{addr}/")));
    w.settled(&[State::Connected]).await;
    let end = w
        .settled(&[State::Reconnecting, State::Failed, State::Disconnected])
        .await;
    assert_eq!(state_of(&end), Some(State::Reconnecting), "got {end:?}");
    assert!(
        reason(&end).contains("UTF-8"),
        "expected the reason to name the invalid UTF-8, got {end:?}"
    );
    assert_eq!(w.message_count(), 0, "a broken text frame is not relayed");
    assert_still_works(&hub).await;
    close_all(&hub, &[&id]).await;
}

// ---------------------------------------------------------------------------------------------------------
// SSE: endless lines and events.

async fn sse_flood_case(head_tail: &'static [u8], unit: &'static [u8]) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = raw_server(move |mut tcp, _| {
        let tx = tx.clone();
        async move {
            read_head(&mut tcp).await;
            let head = [SSE_HEAD, head_tail].concat();
            let _ = tx.send(flood(&mut tcp, &head, unit).await);
        }
    })
    .await;
    let hub = hub();
    let mut o = quick(format!("http://{addr}/endless"));
    o.max_message_size = Some(64 << 10);
    let (id, mut w) = connect(&hub, o);
    let end = w.settled(&[State::Failed, State::Reconnecting]).await;
    assert_eq!(state_of(&end), Some(State::Failed), "got {end:?}");
    assert!(
        reason(&end).contains("larger than 65536"),
        "expected the size limit in the reason, got {end:?}"
    );
    assert_eq!(w.message_count(), 0);
    // The client stopped reading: the server's writes fail soon, long before it could send 512 MiB.
    let flood = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the server to stop within WAIT")
        .unwrap();
    assert!(
        flood.write_failed && flood.written < 16 << 20,
        "expected the connection to be closed by the client, got {flood:?}"
    );
    let info = &hub.inspect(Some(OWNER), Some(&id)).unwrap()[0];
    assert!(
        info.bytes_in < 2 << 20,
        "expected the client to read little past the 64 KiB limit, read {}",
        info.bytes_in
    );
    assert_still_works(&hub).await;
    close_all(&hub, &[&id]).await;
}

#[tokio::test]
async fn sse_endless_line_fails_and_the_client_stops_reading() {
    sse_flood_case(b"data: ", b"x").await;
}

#[tokio::test]
async fn sse_endless_event_fails_and_the_client_stops_reading() {
    // Short lines, but never the blank line that would end the event.
    sse_flood_case(
        b"",
        b"data: 0123456789abcdef0123456789abcdef0123456789abcdef012345678\n",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------------------
// Garbage instead of HTTP.

async fn garbage_server() -> SocketAddr {
    raw_server(|mut tcp, _| async move {
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
        let mut junk: Vec<u8> = (0..4096).map(|_| fastrand::u8(..)).collect();
        // Never "HTTP/": this is not a response of any version.
        junk[0] = 0;
        junk[1] = 0xff;
        let _ = tcp.write_all(&junk).await;
        let _ = tcp.shutdown().await;
    })
    .await
}

async fn garbage_case(scheme: &str) {
    let addr = garbage_server().await;
    let hub = hub();
    let (id, mut w) = connect(&hub, quick(format!("{scheme}://{addr}/")));
    let end = w.settled(&[State::Reconnecting, State::Failed]).await;
    assert_eq!(
        state_of(&end),
        Some(State::Reconnecting),
        "{scheme}: expected reconnecting, got {end:?}"
    );
    assert!(!reason(&end).is_empty(), "expected a reason, got {end:?}");
    assert!(!w.reached(State::Connected));
    assert_still_works(&hub).await;
    close_all(&hub, &[&id]).await;
}

#[tokio::test]
async fn garbage_answer_to_an_sse_request_reconnects() {
    garbage_case("http").await;
}

#[tokio::test]
async fn garbage_answer_to_a_websocket_upgrade_reconnects() {
    garbage_case("ws").await;
}

/// Whatever state the WebSocket garbage case ends in, it ends with a reason, nothing panics, and the hub
/// keeps working.
#[tokio::test]
async fn garbage_answer_to_a_websocket_upgrade_is_reported_and_harmless() {
    let addr = garbage_server().await;
    let hub = hub();
    let (id, mut w) = connect(&hub, quick(format!("ws://{addr}/")));
    let end = w.settled(&[State::Reconnecting, State::Failed]).await;
    assert!(
        reason(&end).contains("handshake") || reason(&end).contains("network"),
        "got {end:?}"
    );
    assert!(!w.reached(State::Connected));
    assert_still_works(&hub).await;
    close_all(&hub, &[&id]).await;
}

// ---------------------------------------------------------------------------------------------------------
// Slowloris: one byte per second.

async fn slowloris_case(url: String, options: impl FnOnce(&mut ConnectOptions), want: &str) {
    let hub = hub();
    let mut o = quick(url);
    options(&mut o);
    let started = Instant::now();
    let (id, mut w) = connect(&hub, o);
    let end = w.settled(&[State::Reconnecting, State::Failed]).await;
    assert_eq!(state_of(&end), Some(State::Reconnecting), "got {end:?}");
    assert!(
        reason(&end).contains(want),
        "expected {want:?} in the reason, got {end:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout must fire long before the slow server finishes ({:?})",
        started.elapsed()
    );
    assert_still_works(&hub).await;
    close_all(&hub, &[&id]).await;
}

#[tokio::test]
async fn sse_status_line_one_byte_per_second_hits_the_connect_timeout() {
    let addr = drip_server(
        b"",
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: late\n\n",
    )
    .await;
    slowloris_case(
        format!("http://{addr}/slow"),
        |o| o.connect_timeout_ms = Some(500),
        "timed out after 500 ms",
    )
    .await;
}

#[tokio::test]
async fn sse_body_one_byte_per_second_hits_the_idle_timeout() {
    let addr = drip_server(SSE_HEAD, b"data: late\n\n").await;
    slowloris_case(
        format!("http://{addr}/slow"),
        |o| {
            o.connect_timeout_ms = Some(500);
            o.heartbeat = Some(Toggle::With(HeartbeatOptions {
                idle_timeout_ms: 500,
                ..Default::default()
            }));
        },
        "idle timeout",
    )
    .await;
}

#[tokio::test]
async fn websocket_handshake_one_byte_per_second_hits_the_connect_timeout() {
    let addr = drip_server(
        b"",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .await;
    slowloris_case(
        format!("ws://{addr}/slow"),
        |o| o.connect_timeout_ms = Some(500),
        "timed out after 500 ms",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------------------
// TLS with a certificate of our own CA (`tlskit`).

fn tls_hub(tls: TlsConfig) -> Hub {
    hub_with(HubConfig {
        linger: Duration::ZERO,
        tls,
        ..Default::default()
    })
}

/// The connection never opens and says why: the certificate.
async fn assert_refused_for_the_certificate(w: &mut Frames, what: &str) {
    let end = w.settled(&[State::Failed, State::Reconnecting]).await;
    assert!(
        reason(&end).contains("certificate"),
        "{what}: expected a certificate reason, got {end:?}"
    );
    assert!(
        !w.reached(State::Connected) && w.message_count() == 0,
        "{what}: nothing may get through: {:?}",
        w.seen
    );
}

#[tokio::test]
async fn self_signed_tls_is_refused_by_default() {
    let p = pki(&["127.0.0.1", "localhost"]);
    let seen = Seen::default();
    let wss = tls_server(&p, Serve::Ws, seen.clone()).await;
    let https = tls_server(&p, Serve::Sse, seen.clone()).await;
    let hub = hub();
    // Refused, whatever state it then takes: see the ignored test below for the state it should end in.
    let (ws_id, mut w) = connect(&hub, quick(format!("wss://{wss}/")));
    assert_refused_for_the_certificate(&mut w, "wss").await;
    let (sse_id, mut w) = connect(&hub, quick(format!("https://{https}/")));
    assert_refused_for_the_certificate(&mut w, "https").await;

    seen.wait_for("a refused handshake", |s| s.starts_with("handshake failed"))
        .await;
    assert!(
        !seen.all().iter().any(|s| s == "handshake ok"),
        "no handshake may complete: {:?}",
        seen.all()
    );
    assert_still_works(&hub).await;
    close_all(&hub, &[&ws_id, &sse_id]).await;
}

#[tokio::test]
async fn self_signed_tls_fails_rather_than_retrying() {
    let p = pki(&["127.0.0.1", "localhost"]);
    let wss = tls_server(&p, Serve::Ws, Seen::default()).await;
    let https = tls_server(&p, Serve::Sse, Seen::default()).await;
    let hub = hub();
    for url in [format!("wss://{wss}/"), format!("https://{https}/")] {
        let (id, mut w) = connect(&hub, quick(&url));
        let end = w.settled(&[State::Failed, State::Reconnecting]).await;
        assert_eq!(
            state_of(&end),
            Some(State::Failed),
            "{url}: a bad certificate cannot be fixed by retrying; got {end:?}"
        );
        assert!(
            reason(&end).contains("TLS") && reason(&end).contains("certificate"),
            "{url}: got {end:?}"
        );
        hub.close(&id, OWNER, None, None).unwrap();
    }
}

#[tokio::test]
async fn self_signed_tls_is_accepted_with_its_ca_or_with_the_explicit_opt_out() {
    let p = pki(&["127.0.0.1", "localhost"]);
    let seen = Seen::default();
    let wss = tls_server(&p, Serve::Ws, seen.clone()).await;
    let https = tls_server(&p, Serve::Sse, seen.clone()).await;

    // The PEM of the CA parses to the same DER; a bundle gives every certificate in order.
    let roots = pem_certificates(p.ca_pem.as_bytes()).unwrap();
    assert_eq!(roots, vec![p.ca_der.clone()]);
    let bundle = format!("{}\n{}", p.ca_pem, p.server_pem);
    assert_eq!(
        pem_certificates(bundle.as_bytes()).unwrap(),
        vec![p.ca_der.clone(), p.server_der.clone()]
    );

    for (name, config) in [
        (
            "extra root",
            TlsConfig {
                extra_roots: roots,
                ..Default::default()
            },
        ),
        (
            "danger_accept_invalid_certs",
            TlsConfig {
                danger_accept_invalid_certs: true,
                ..Default::default()
            },
        ),
    ] {
        let hub = tls_hub(config);
        for url in [
            format!("wss://{wss}/"),
            format!("https://{https}/"),
            format!("wss://localhost:{}/", wss.port()),
            format!("https://localhost:{}/", https.port()),
        ] {
            let (id, mut w) = connect(&hub, quick(&url));
            let f = w
                .until(&format!("{name}: hello over {url}"), |f| {
                    matches!(f, Frame::Message { data, .. } if data == "hello-tls")
                        || matches!(
                            f,
                            Frame::State {
                                state: State::Failed,
                                ..
                            }
                        )
                })
                .await;
            assert!(
                matches!(&f, Frame::Message { .. }),
                "{name}: {url} was refused: {f:?}"
            );
            hub.close(&id, OWNER, None, None).unwrap();
        }
        assert_still_works(&hub).await;
        all_tasks_end(&hub).await;
    }
}

#[tokio::test]
async fn trusted_ca_does_not_excuse_a_certificate_for_another_name() {
    let p = pki(&["other.test"]);
    let wss = tls_server(&p, Serve::Ws, Seen::default()).await;
    let hub = tls_hub(TlsConfig {
        extra_roots: vec![p.ca_der.clone()],
        ..Default::default()
    });
    let (id, mut w) = connect(&hub, quick(format!("wss://{wss}/")));
    assert_refused_for_the_certificate(&mut w, "wss for another name").await;
    let end = w.settled(&[State::Failed, State::Reconnecting]).await;
    assert!(reason(&end).contains("not valid for name"), "got {end:?}");
    close_all(&hub, &[&id]).await;
}

#[tokio::test]
async fn bad_roots_and_pem_are_clear_errors() {
    let e = pem_certificates(b"not a certificate").unwrap_err();
    assert!(e.to_string().contains("no certificate found"), "got {e}");
    let e = Hub::new(
        HubConfig {
            tls: TlsConfig {
                extra_roots: vec![vec![0x30, 0x03, 0x02, 0x01, 0x01]],
                ..Default::default()
            },
            ..Default::default()
        },
        tokio::runtime::Handle::current(),
    )
    .err()
    .expect("an invalid root must refuse to build the hub");
    assert!(
        matches!(&e, Error::Tls(m) if m.contains("invalid root certificate")),
        "got {e:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// A recording server: every request's host, path and interesting headers.

#[derive(Clone)]
struct Rec {
    seen: Seen,
    port: u16,
}

fn note(rec: &Rec, uri: &Uri, headers: &HeaderMap) {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    let all = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    rec.seen.push(format!(
        "{host}{} key={} auth={} cookie={} other={}",
        uri.path(),
        all("x-api-key"),
        all("authorization"),
        all("cookie"),
        all("x-other")
    ));
}

async fn rec_sse(AxState(rec): AxState<Rec>, uri: Uri, headers: HeaderMap) -> Response {
    note(&rec, &uri, &headers);
    sse_response("data: hi\n\n")
}

async fn rec_poll(AxState(rec): AxState<Rec>, uri: Uri, headers: HeaderMap) -> Response {
    note(&rec, &uri, &headers);
    "body".into_response()
}

async fn rec_ws(
    ws: WebSocketUpgrade,
    AxState(rec): AxState<Rec>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    note(&rec, &uri, &headers);
    ws.on_upgrade(|mut s: WebSocket| async move {
        let _ = s.send(AxMessage::Text("hi".into())).await;
        while let Some(Ok(_)) = s.recv().await {}
    })
}

/// A 307 to `to(port)`.
fn hop(to: fn(u16) -> String) -> MethodRouter<Rec> {
    get(
        move |AxState(rec): AxState<Rec>, uri: Uri, headers: HeaderMap| async move {
            note(&rec, &uri, &headers);
            Redirect::temporary(&to(rec.port))
        },
    )
}

async fn recorder() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Rec {
        seen: Seen::default(),
        port: addr.port(),
    };
    let app = Router::new()
        .route("/secret/ws", get(rec_ws))
        .route("/public/ws", get(rec_ws))
        .route("/secret/sse", get(rec_sse))
        .route("/public/sse", get(rec_sse))
        .route("/landing", get(rec_sse))
        .route("/forbidden", get(rec_sse))
        .route("/secret/poll", get(rec_poll))
        .route("/public/poll", get(rec_poll))
        .route("/secret/to-public", hop(|_| "/public/sse".into()))
        .route("/public/to-secret", hop(|_| "/secret/sse".into()))
        .route(
            "/secret/to-localhost",
            hop(|p| format!("http://localhost:{p}/secret/sse")),
        )
        .route(
            "/hop-cross",
            hop(|p| format!("http://localhost:{p}/landing")),
        )
        .route("/hop-same", hop(|_| "/landing".into()))
        .route("/start", hop(|_| "/forbidden".into()))
        .route("/loop", hop(|_| "/loop".into()))
        .route("/to-ws", hop(|p| format!("ws://127.0.0.1:{p}/public/ws")))
        .with_state(rec.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rec.seen)
}

// ---------------------------------------------------------------------------------------------------------
// Secret headers.

/// `x-api-key: s3cret` for http(s) and ws(s) URLs on 127.0.0.1 whose path starts with /secret.
struct ApiKey;

impl HeaderSource for ApiKey {
    fn headers_for(&self, url: &url::Url) -> Vec<(http::HeaderName, http::HeaderValue)> {
        if url.host_str() == Some("127.0.0.1") && url.path().starts_with("/secret") {
            let mut v = http::HeaderValue::from_static("s3cret");
            v.set_sensitive(true);
            vec![(http::HeaderName::from_static("x-api-key"), v)]
        } else {
            Vec::new()
        }
    }
}

fn secret_hub() -> Hub {
    hub_with(HubConfig {
        linger: Duration::ZERO,
        secret_headers: SecretHeaders(Some(Arc::new(ApiKey))),
        ..Default::default()
    })
}

#[tokio::test]
async fn secret_headers_reach_matching_urls_only_and_replace_the_options_header() {
    let (addr, seen) = recorder().await;
    let hub = secret_hub();
    let host = format!("127.0.0.1:{}", addr.port());
    // (path, transport, the options' own x-api-key, what the server must see, the message)
    let cases = [
        ("/secret/ws", None, Some("from-js"), "s3cret", "hi"),
        ("/public/ws", None, Some("from-js"), "from-js", "hi"),
        ("/public/ws", None, None, "", "hi"),
        ("/secret/sse", None, Some("from-js"), "s3cret", "hi"),
        ("/secret/sse", None, None, "s3cret", "hi"),
        ("/public/sse", None, Some("from-js"), "from-js", "hi"),
        ("/public/sse", None, None, "", "hi"),
        (
            "/secret/poll",
            Some(Transport::Poll),
            Some("from-js"),
            "s3cret",
            "body",
        ),
        ("/public/poll", Some(Transport::Poll), None, "", "body"),
    ];
    for (path, transport, own, want, message) in cases {
        seen.clear();
        let scheme = if path.ends_with("/ws") { "ws" } else { "http" };
        let mut o = once(format!("{scheme}://{host}{path}"));
        o.transport = transport;
        if let Some(v) = own {
            o.headers.insert("X-Api-Key".into(), v.into());
        }
        let (id, mut w) = connect(&hub, o);
        w.message(message).await;
        let line = seen
            .wait_for(&format!("a request to {path}"), |s| {
                s.starts_with(&format!("{host}{path} "))
            })
            .await;
        assert!(
            line.starts_with(&format!("{host}{path} key={want} ")),
            "{path} with own key {own:?}: expected exactly key={want}, got {line:?}"
        );
        hub.close(&id, OWNER, None, None).unwrap();
    }
    assert_still_works(&hub).await;
    all_tasks_end(&hub).await;
}

#[tokio::test]
async fn secret_headers_follow_each_redirect_hop_by_its_own_url() {
    let (addr, seen) = recorder().await;
    let hub = secret_hub();
    let port = addr.port();
    let ip = format!("127.0.0.1:{port}");
    let name = format!("localhost:{port}");
    // (start, the hops the server must see, each with its x-api-key)
    let cases = [
        (
            "/secret/to-public",
            vec![
                format!("{ip}/secret/to-public key=s3cret "),
                format!("{ip}/public/sse key= "),
            ],
        ),
        (
            "/public/to-secret",
            vec![
                format!("{ip}/public/to-secret key= "),
                format!("{ip}/secret/sse key=s3cret "),
            ],
        ),
        (
            "/secret/to-localhost",
            vec![
                format!("{ip}/secret/to-localhost key=s3cret "),
                format!("{name}/secret/sse key= "),
            ],
        ),
    ];
    for (start, hops) in cases {
        seen.clear();
        let (id, mut w) = connect(&hub, once(format!("http://{ip}{start}")));
        w.message("hi").await;
        let got = seen.all();
        let want: Vec<&str> = hops.iter().map(String::as_str).collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{start}: expected {want:?}, got {got:?}"
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(g.starts_with(w), "{start}: expected {w:?}, got {g:?}");
        }
        hub.close(&id, OWNER, None, None).unwrap();
    }
    assert_still_works(&hub).await;
}

// ---------------------------------------------------------------------------------------------------------
// Limits.

#[tokio::test]
async fn header_limits_refuse_before_any_connection() {
    let hub = hub_with(HubConfig {
        linger: Duration::ZERO,
        limits: Limits {
            max_headers: 3,
            max_header_bytes: 100,
            ..Default::default()
        },
        ..Default::default()
    });
    let mut many = quick("ws://127.0.0.1:9/");
    for i in 0..4 {
        many.headers.insert(format!("x-h{i}"), "v".into());
    }
    let mut big = quick("ws://127.0.0.1:9/");
    big.headers.insert("x-big".into(), "v".repeat(101));
    let mut over_queue = quick("ws://127.0.0.1:9/");
    over_queue.queue = Some(QueueOptions {
        max_messages: 100_001,
        ..Default::default()
    });
    let mut over_size = quick("ws://127.0.0.1:9/");
    over_size.max_message_size = Some((64 << 20) + 1);
    for (o, want) in [
        (many, "too many headers: 4 given, at most 3 allowed"),
        (big, "headers too large: 106 bytes, at most 100 allowed"),
        (over_queue, "queue limits too large"),
        (over_size, "`maxMessageSize` must be between 1 and"),
    ] {
        let e = subscribe(&hub, None, o, OWNER, Arc::new(AllowAll))
            .err()
            .expect("refused");
        assert!(
            matches!(&e, Error::InvalidOptions(m) if m.contains(want)),
            "expected {want:?}, got {e:?}"
        );
    }
    assert_eq!(hub.upstream_count(), 0, "nothing may have been opened");

    // The defaults: 64 headers, 16 KiB.
    let hub = common::hub();
    let mut many = quick("ws://127.0.0.1:9/");
    for i in 0..65 {
        many.headers.insert(format!("x-h{i}"), "v".into());
    }
    let mut big = quick("ws://127.0.0.1:9/");
    big.headers.insert("x-big".into(), "v".repeat(16 << 10));
    for (o, want) in [(many, "too many headers"), (big, "headers too large")] {
        let e = subscribe(&hub, None, o, OWNER, Arc::new(AllowAll))
            .err()
            .expect("refused");
        assert!(e.to_string().contains(want), "expected {want:?}, got {e}");
    }
    assert_eq!(hub.upstream_count(), 0);
    assert_still_works(&hub).await;
}

/// Options that stay `reconnecting` against a closed port, with a share key.
fn idle_ws(port: u16, key: &str) -> ConnectOptions {
    ConnectOptions {
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: 5000,
            max_delay_ms: 5000,
            ..Default::default()
        })),
        share: Some(Share::Key(key.into())),
        ..opts(format!("ws://127.0.0.1:{port}/"))
    }
}

#[tokio::test]
async fn connection_limits_give_too_many_connections() {
    let port = closed_port().await;
    let hub = hub_with(HubConfig {
        linger: Duration::ZERO,
        max_connections: 2,
        max_subscriptions_per_owner: 2,
        ..Default::default()
    });
    let allow = || Arc::new(AllowAll) as Arc<dyn UrlGuard>;
    let (a, _wa) = subscribe(&hub, None, idle_ws(port, "a"), "w1", allow()).unwrap();
    let (b, _wb) = subscribe(&hub, None, idle_ws(port, "b"), "w2", allow()).unwrap();
    assert_eq!(hub.upstream_count(), 2);

    // A third upstream is refused, app-wide.
    let e = subscribe(&hub, None, idle_ws(port, "c"), "w3", allow())
        .err()
        .expect("refused");
    assert!(
        matches!(&e, Error::TooManyConnections(_)),
        "expected TooManyConnections, got {e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("2 upstream connections are open, the limit is 2") && msg.contains("close"),
        "got {msg}"
    );
    // Joining an open upstream opens nothing, so it is allowed.
    let (a2, _wa2) = subscribe(&hub, None, idle_ws(port, "a"), "w1", allow()).unwrap();
    assert_eq!(hub.upstream_count(), 2);

    // w1 now holds two subscriptions: a third is refused, whatever it joins.
    let e = subscribe(&hub, None, idle_ws(port, "b"), "w1", allow())
        .err()
        .expect("refused");
    assert!(
        matches!(&e, Error::TooManyConnections(m) if m.contains("this webview holds 2, the limit is 2")),
        "got {e:?}"
    );
    // Another owner is not affected by w1's count.
    let (b2, _wb2) = subscribe(&hub, None, idle_ws(port, "b"), "w3", allow()).unwrap();

    // Closing frees the slots.
    hub.close(&a, "w1", None, None).unwrap();
    hub.close(&a2, "w1", None, None).unwrap();
    wait_until("upstream a to close", || hub.upstream_count() == 1).await;
    let (c, _wc) = subscribe(&hub, None, idle_ws(port, "c"), "w1", allow()).unwrap();
    assert_eq!(hub.upstream_count(), 2);
    hub.close(&c, "w1", None, None).unwrap();
    hub.close(&b2, "w3", None, None).unwrap();
    hub.close(&b, "w2", None, None).unwrap();
    all_tasks_end(&hub).await;
    assert_still_works(&hub).await;
}

#[tokio::test]
async fn full_outbound_queue_is_an_error_to_the_caller() {
    let port = closed_port().await;
    let hub = hub();

    let mut o = idle_ws(port, "by-count");
    o.queue = Some(QueueOptions {
        max_messages: 2,
        ..Default::default()
    });
    o.max_message_size = Some(1024);
    let (id, _w) = connect(&hub, o);
    for m in ["one", "two"] {
        assert!(
            hub.send(&id, OWNER, Outgoing::Text(m.into()))
                .await
                .unwrap(),
            "expected {m} to be queued"
        );
    }
    let e = hub
        .send(&id, OWNER, Outgoing::Text("three".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::QueueFull(m) if m.contains("2 messages held")),
        "got {e:?}"
    );
    assert!(e.to_string().contains("outbound queue is full"), "got {e}");
    let e = hub
        .send(&id, OWNER, Outgoing::Binary(vec![0; 2048]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::MessageTooLarge {
                size: 2048,
                limit: 1024
            }
        ),
        "got {e:?}"
    );
    let info = &hub.inspect(Some(OWNER), Some(&id)).unwrap()[0];
    assert_eq!((info.queued, info.queued_bytes), (2, 6), "got {info:?}");

    let mut o = idle_ws(port, "by-bytes");
    o.queue = Some(QueueOptions {
        max_messages: 100,
        max_bytes: 8,
    });
    let (id2, _w2) = connect(&hub, o);
    assert!(hub
        .send(&id2, OWNER, Outgoing::Text("12345".into()))
        .await
        .unwrap());
    let e = hub
        .send(&id2, OWNER, Outgoing::Text("67890".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::QueueFull(m) if m.contains("5 bytes held")),
        "got {e:?}"
    );
    assert_still_works(&hub).await;
    close_all(&hub, &[&id, &id2]).await;
}

// ---------------------------------------------------------------------------------------------------------
// Redirects.

/// Allows exactly one path.
struct OnlyPath(&'static str);

impl UrlGuard for OnlyPath {
    fn check(&self, url: &url::Url) -> Result<(), String> {
        if url.path() == self.0 {
            Ok(())
        } else {
            Err(url.to_string())
        }
    }
}

#[tokio::test]
async fn sse_redirect_to_a_denied_url_fails_naming_it() {
    let (addr, seen) = recorder().await;
    let hub = hub();
    let denied = format!("http://{addr}/forbidden");
    // The plugin's own scope, with its deny entries, is tried on redirects in the plugin's tests/scope.rs.
    let guards: [(&str, Arc<dyn UrlGuard>); 1] = [("one-path guard", Arc::new(OnlyPath("/start")))];
    for (name, guard) in guards {
        seen.clear();
        let (id, mut w) = subscribe(
            &hub,
            None,
            quick(format!("http://{addr}/start")),
            OWNER,
            guard.clone(),
        )
        .unwrap();
        let end = w.settled(&[State::Failed, State::Reconnecting]).await;
        assert_eq!(state_of(&end), Some(State::Failed), "{name}: got {end:?}");
        assert!(
            reason(&end).contains(&denied),
            "{name}: expected the denied URL in the reason, got {end:?}"
        );
        w.until(
            "a fatal error naming the URL",
            |f| matches!(f, Frame::Error { fatal: true, message, .. } if message.contains(&denied)),
        )
        .await;
        assert!(
            !seen.all().iter().any(|s| s.contains("/forbidden")),
            "{name}: the denied URL must not be requested: {:?}",
            seen.all()
        );
        // Asked for directly, the same URL is refused at connect.
        let e = subscribe(&hub, None, quick(&denied), OWNER, guard)
            .err()
            .expect("refused");
        assert!(
            matches!(&e, Error::UrlNotAllowed(u) if *u == denied),
            "{name}: got {e:?}"
        );
        assert!(e.to_string().contains("not allowed"), "got {e}");
        hub.close(&id, OWNER, None, None).unwrap();
    }
    assert_still_works(&hub).await;
}

#[tokio::test]
async fn credentials_from_the_options_do_not_follow_a_redirect_to_another_origin() {
    let (addr, seen) = recorder().await;
    let hub = hub();
    let port = addr.port();
    // (`Cookie` cannot come from the options at all: it is a forbidden header, see `forbidden_headers_*`.)
    for (start, landing, auth) in [
        (
            "/hop-same",
            format!("127.0.0.1:{port}/landing"),
            "Bearer js",
        ),
        ("/hop-cross", format!("localhost:{port}/landing"), ""),
    ] {
        seen.clear();
        let mut o = once(format!("http://127.0.0.1:{port}{start}"));
        o.headers.insert("Authorization".into(), "Bearer js".into());
        o.headers.insert("X-Other".into(), "kept".into());
        let (id, mut w) = connect(&hub, o);
        w.message("hi").await;
        let got = seen.all();
        assert_eq!(got.len(), 2, "{start}: got {got:?}");
        assert!(
            got[0].ends_with("auth=Bearer js cookie= other=kept"),
            "{start}: the first request carries everything, got {got:?}"
        );
        let want = format!("{landing} key= auth={auth} cookie= other=kept");
        assert_eq!(got[1], want, "{start}");
        hub.close(&id, OWNER, None, None).unwrap();
    }
    assert_still_works(&hub).await;
}

#[tokio::test]
async fn redirect_loops_and_foreign_schemes_fail() {
    let (addr, seen) = recorder().await;
    let hub = hub();
    for (path, want) in [
        ("/loop", "too many redirects"),
        ("/to-ws", "unsupported scheme"),
    ] {
        let (id, mut w) = connect(&hub, quick(format!("http://{addr}{path}")));
        let end = w.settled(&[State::Failed, State::Reconnecting]).await;
        assert_eq!(state_of(&end), Some(State::Failed), "{path}: got {end:?}");
        assert!(reason(&end).contains(want), "{path}: got {end:?}");
        hub.close(&id, OWNER, None, None).unwrap();
    }
    let loops = seen.all().iter().filter(|s| s.contains("/loop")).count();
    assert_eq!(loops, 11, "the first request and 10 hops, no more");
    assert!(!seen.all().iter().any(|s| s.contains("/public/ws")));
    assert_still_works(&hub).await;
}

#[tokio::test]
async fn sse_redirect_denial_says_the_url_is_not_allowed() {
    let (addr, _seen) = recorder().await;
    let hub = hub();
    let (id, mut w) = subscribe(
        &hub,
        None,
        quick(format!("http://{addr}/start")),
        OWNER,
        Arc::new(OnlyPath("/start")),
    )
    .unwrap();
    let end = w.settled(&[State::Failed, State::Reconnecting]).await;
    assert!(
        reason(&end).contains("not allowed") && reason(&end).contains("redirect"),
        "expected the reason to say a redirect was not allowed, got {end:?}"
    );
    close_all(&hub, &[&id]).await;
}
