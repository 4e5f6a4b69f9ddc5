//! HTTP/2 for event streams, polls and sends, against a loopback TLS server (the test kit's `serve_tls`: a CA of
//! its own, trusted through the hub's extra roots; ALPN; axum routes served by hyper-util's `auto` builder) that
//! counts the TCP connections it accepted and records each request's HTTP version.
//!
//! Twenty event streams share one connection, with the polls and sends beside them; with HTTP/2 turned off they
//! take twenty; a server of HTTP/1.1 only still works; a server whose `SETTINGS_MAX_CONCURRENT_STREAMS` is
//! smaller than the streams asked for gets another connection for the rest, with a reason that names the limit.

mod common;

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::State as AxState,
    http::{header, Version},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use common::{all_tasks_end, connect, hub_with, opts, reason, Frames, OWNER, WAIT};
use realtime_testkit::tls::{serve_tls, Pki, TlsServe, TlsStats};
use tauri_plugin_realtime_core::{
    ConnectOptions, Frame, Hub, HubConfig, Outgoing, ReconnectOptions, Share, State, TlsConfig,
    Toggle, Transport,
};
use tokio::sync::broadcast;

/// Event streams (`/sse`: "hello", then whatever `/send` gets), a poll (`/poll`) and sends (`POST /send`).
fn app() -> Router {
    let (tx, _) = broadcast::channel::<String>(64);
    Router::new()
        .route("/sse", get(stream))
        .route("/poll", get(|| async { "polled" }))
        .route("/send", post(relay))
        .with_state(tx)
}

async fn stream(AxState(tx): AxState<broadcast::Sender<String>>) -> Response {
    let rx = tx.subscribe();
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
        b"data: hello\n\n",
    ))]);
    let relayed = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) => return Some((Ok(Bytes::from(format!("data: {m}\n\n"))), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(first.chain(relayed)),
    )
        .into_response()
}

async fn relay(AxState(tx): AxState<broadcast::Sender<String>>, body: String) -> &'static str {
    let _ = tx.send(body);
    "ok"
}

fn hub_trusting(pki: &Pki, http1_only: bool) -> Hub {
    hub_with(HubConfig {
        linger: Duration::ZERO,
        http1_only,
        tls: TlsConfig {
            extra_roots: vec![pki.ca_der.clone()],
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A private event stream (never joined with the others), reconnecting after `ms`.
fn stream_opts(url: String) -> ConnectOptions {
    ConnectOptions {
        share: Some(Share::Enabled(false)),
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: 50,
            jitter: 0.0,
            ..Default::default()
        })),
        ..opts(url)
    }
}

/// Opens `n` event streams at once and waits for each one's "hello".
async fn open_streams(hub: &Hub, url: &str, n: usize, first: ConnectOptions) -> Vec<Frames> {
    let mut all = vec![connect(hub, first).1];
    for _ in 1..n {
        all.push(connect(hub, stream_opts(url.to_owned())).1);
    }
    for f in &mut all {
        f.message("hello").await;
    }
    all
}

fn versions(stats: &TlsStats, path: &str) -> Vec<Version> {
    stats
        .requests()
        .into_iter()
        .filter(|(p, _, _)| p == path)
        .map(|(_, v, _)| v)
        .collect()
}

/// A send from the first stream is POSTed, and the server relays it to every stream: all are live.
async fn posted_to_all(hub: &Hub, all: &mut [Frames]) {
    let sent = hub
        .send(&all[0].id, OWNER, Outgoing::Text("ping".into()))
        .await;
    assert!(matches!(sent, Ok(false)), "expected posted, got {sent:?}");
    for f in all {
        f.message("ping").await;
    }
}

async fn close_all(hub: &Hub, all: &[Frames]) {
    for f in all {
        let _ = hub.close(&f.id, OWNER, None, None);
    }
    all_tasks_end(hub).await;
}

#[tokio::test]
async fn twenty_streams_polls_and_sends_share_one_connection() {
    let pki = Pki::new();
    let (addr, stats) = serve_tls(&pki, TlsServe::h2(), app()).await;
    let hub = hub_trusting(&pki, false);
    let url = format!("https://{addr}/sse");
    let with_sends = ConnectOptions {
        send_url: Some(format!("https://{addr}/send")),
        ..stream_opts(url.clone())
    };
    let mut all = open_streams(&hub, &url, 20, with_sends).await;

    posted_to_all(&hub, &mut all).await;
    // And a poll to the same origin.
    let (poll_id, mut polled) = connect(
        &hub,
        ConnectOptions {
            transport: Some(Transport::Poll),
            share: Some(Share::Enabled(false)),
            ..opts(format!("https://{addr}/poll"))
        },
    );
    polled.message("polled").await;

    let sse = versions(&stats, "/sse");
    assert_eq!(
        sse,
        vec![Version::HTTP_2; 20],
        "expected twenty HTTP/2 streams"
    );
    assert_eq!(versions(&stats, "/send"), [Version::HTTP_2]);
    assert!(
        versions(&stats, "/poll")
            .iter()
            .all(|v| *v == Version::HTTP_2),
        "expected HTTP/2 polls, got {:?}",
        stats.requests()
    );
    assert_eq!(
        stats.connections(),
        1,
        "expected one TCP connection for everything, got {} ({:?})",
        stats.connections(),
        stats.requests()
    );
    let _ = hub.close(&poll_id, OWNER, None, None);
    close_all(&hub, &all).await;
}

#[tokio::test]
async fn with_http2_off_each_stream_has_its_own_http1_connection() {
    let pki = Pki::new();
    let (addr, stats) = serve_tls(&pki, TlsServe::h2(), app()).await;
    let hub = hub_trusting(&pki, true);
    let url = format!("https://{addr}/sse");
    let all = open_streams(&hub, &url, 20, stream_opts(url.clone())).await;
    assert_eq!(versions(&stats, "/sse"), vec![Version::HTTP_11; 20]);
    assert_eq!(
        stats.connections(),
        20,
        "expected a connection per stream over HTTP/1.1"
    );
    close_all(&hub, &all).await;
}

#[tokio::test]
async fn a_server_of_http1_only_still_works() {
    let pki = Pki::new();
    let (addr, stats) = serve_tls(&pki, TlsServe::http1(), app()).await;
    let hub = hub_trusting(&pki, false);
    let url = format!("https://{addr}/sse");
    let with_sends = ConnectOptions {
        send_url: Some(format!("https://{addr}/send")),
        ..stream_opts(url.clone())
    };
    let mut all = open_streams(&hub, &url, 3, with_sends).await;
    posted_to_all(&hub, &mut all).await;
    assert_eq!(versions(&stats, "/sse"), vec![Version::HTTP_11; 3]);
    assert_eq!(versions(&stats, "/send"), [Version::HTTP_11]);
    close_all(&hub, &all).await;
}

#[tokio::test]
async fn streams_beyond_the_servers_stream_limit_get_another_connection() {
    let pki = Pki::new();
    let serve = TlsServe {
        max_streams: Some(4),
        ..TlsServe::h2()
    };
    let (addr, stats) = serve_tls(&pki, serve, app()).await;
    let hub = hub_trusting(&pki, false);
    let url = format!("https://{addr}/sse");
    let quick = |url: &str| ConnectOptions {
        // The wait for a stream the server will not open yet is bounded by the connect timeout.
        connect_timeout_ms: Some(1500),
        ..stream_opts(url.to_owned())
    };
    let mut all = Vec::new();
    for _ in 0..6 {
        all.push(connect(&hub, quick(&url)).1);
    }
    // Every stream opens, the last two after one attempt each that waited for a stream of the full connection.
    let deadline = tokio::time::Instant::now() + WAIT;
    for f in &mut all {
        f.nth_by(
            "hello",
            1,
            deadline,
            |fr| matches!(fr, Frame::Message { data, .. } if data == "hello"),
        )
        .await;
    }
    let waited: Vec<String> = all
        .iter()
        .flat_map(|f| f.seen.iter())
        .filter(|fr| {
            matches!(
                fr,
                Frame::State {
                    state: State::Reconnecting,
                    ..
                }
            )
        })
        .map(reason)
        .collect();
    assert_eq!(
        waited.len(),
        2,
        "expected two streams to wait once, got {waited:?}"
    );
    for r in &waited {
        assert!(
            r.contains("SETTINGS_MAX_CONCURRENT_STREAMS") && r.contains("carries 4"),
            "expected the reason to name the limit, got {r:?}"
        );
    }
    assert_eq!(
        stats.connections(),
        2,
        "expected a second connection for the streams beyond the limit, got {:?}",
        stats.requests()
    );
    // A seventh goes straight to the second connection, which has room: no wait, no third connection.
    let (_, mut seventh) = connect(&hub, quick(&url));
    seventh.message("hello").await;
    assert!(
        !seventh.reached(State::Reconnecting),
        "expected no wait: {:?}",
        seventh.seen
    );
    assert_eq!(stats.connections(), 2);
    all.push(seventh);
    close_all(&hub, &all).await;
    let _: Arc<TlsStats> = stats;
}
