//! The polling fallback and the upgrade back to streaming, against real servers on 127.0.0.1:0.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{ws::WebSocketUpgrade, State as AxState},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use common::*;
use tauri_plugin_realtime_core::{
    FallbackOptions, Frame, Outgoing, ReconnectOptions, State, Toggle, Transport,
};

/// A server whose streaming can be switched off, with a poll endpoint whose content the test sets.
#[derive(Clone, Default)]
struct Site {
    streaming: Arc<AtomicBool>,
    /// The JSON document served at /poll, with its ETag.
    doc: Arc<Mutex<(String, u32)>>,
    /// Events 1..=n served both by /sse (resumable) and as a finite document at /doc.
    events: Arc<AtomicU32>,
    polls: Arc<AtomicU32>,
    poll_status: Arc<Mutex<Option<StatusCode>>>,
    seen: Seen,
}

/// Event `i` of the site: `id: i`, `data: event i`.
fn event(i: u32) -> sse::Event {
    sse::Event::new(i.into(), format!("event {i}"))
}

fn last_id(headers: &HeaderMap) -> u32 {
    sse::last_event_id(headers).map_or(0, |id| id as u32)
}

async fn sse(AxState(site): AxState<Site>, headers: HeaderMap) -> Response {
    if !site.streaming.load(Ordering::SeqCst) {
        return axum::Json(serde_json::json!({"streaming": "off"})).into_response();
    }
    site.seen
        .push(format!("stream last-event-id={}", last_id(&headers)));
    let from = last_id(&headers) + 1;
    let site2 = site.clone();
    // Events that exist now, then new ones as the test adds them; the stream stays open.
    let body = async_stream(from, site2);
    (
        [("content-type", "text/event-stream")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

fn async_stream(
    from: u32,
    site: Site,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::unfold(from, move |next| {
        let site = site.clone();
        async move {
            loop {
                let n = site.events.load(Ordering::SeqCst);
                if next <= n {
                    return Some((Ok(event(next).to_wire()), next + 1));
                }
                if !site.streaming.load(Ordering::SeqCst) {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
}

async fn doc(AxState(site): AxState<Site>, headers: HeaderMap) -> Response {
    site.polls.fetch_add(1, Ordering::SeqCst);
    if let Some(s) = *site.poll_status.lock().unwrap() {
        return (s, "nope").into_response();
    }
    let n = site.events.load(Ordering::SeqCst);
    // Ignores Last-Event-ID on purpose (every event, whatever the resume point): the client must skip what it
    // has.
    sse::after_last_event_id(&headers, None, |_| (1..=n).map(event))
}

async fn poll(AxState(site): AxState<Site>, headers: HeaderMap) -> Response {
    site.polls.fetch_add(1, Ordering::SeqCst);
    if let Some(s) = *site.poll_status.lock().unwrap() {
        return (s, "nope").into_response();
    }
    let (body, version) = site.doc.lock().unwrap().clone();
    let etag = format!("\"v{version}\"");
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        site.seen.push("304");
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [
            ("content-type", "application/json"),
            ("etag", etag.as_str()),
        ],
        body,
    )
        .into_response()
}

async fn chat(AxState(site): AxState<Site>, ws: WebSocketUpgrade) -> Response {
    if !site.streaming.load(Ordering::SeqCst) {
        return (StatusCode::FORBIDDEN, "no websockets here").into_response();
    }
    ws.on_upgrade(|mut s| async move { while s.recv().await.is_some() {} })
}

async fn send(AxState(site): AxState<Site>, body: String) -> StatusCode {
    site.seen.push(format!("sent {body}"));
    StatusCode::NO_CONTENT
}

async fn site() -> (std::net::SocketAddr, Site) {
    let site = Site::default();
    site.doc.lock().unwrap().0 = r#"{"v":0}"#.into();
    let app = Router::new()
        .route("/sse", get(sse))
        .route("/doc", get(doc))
        .route("/poll", get(poll))
        .route("/chat", get(chat))
        .route("/send", post(send))
        .with_state(site.clone());
    (serve(app).await, site)
}

fn fallback(addr: std::net::SocketAddr, path: &str) -> Option<Toggle<FallbackOptions>> {
    Some(Toggle::With(FallbackOptions {
        poll_url: Some(format!("http://{addr}{path}")),
        send_url: Some(format!("http://{addr}/send")),
        interval_ms: 40,
        after_failures: 3,
        probe_interval_ms: 300,
    }))
}

fn quick_reconnect() -> Option<Toggle<ReconnectOptions>> {
    Some(Toggle::With(ReconnectOptions {
        initial_delay_ms: 20,
        jitter: 0.0,
        ..Default::default()
    }))
}

fn polling_reason(f: &Frame) -> Option<String> {
    match f {
        Frame::State {
            state: State::Polling,
            transport: Some(Transport::Poll),
            reason,
            ..
        } => reason.clone(),
        _ => None,
    }
}

#[tokio::test]
async fn no_stream_means_polling_after_one_attempt_and_only_changes_are_relayed() {
    let (addr, site) = site().await;
    let hub = hub();
    for url in [format!("http://{addr}/sse"), format!("ws://{addr}/chat")] {
        let mut o = opts(&url);
        o.fallback = fallback(addr, "/poll");
        let (id, mut frames) = connect(&hub, o);
        let f = frames.state(State::Polling).await;
        let reason = polling_reason(&f).unwrap_or_default();
        assert!(
            reason.contains("text/event-stream") || reason.contains("upgrade refused"),
            "{url}: expected polling because the server cannot stream, got {f:?}"
        );
        // Exactly one attempt at the stream before polling.
        let attempts = frames.count(State::Connecting);
        assert_eq!(
            attempts, 1,
            "{url}: expected one attempt, got {:#?}",
            frames.seen
        );

        frames
            .until(
                "the first body",
                |f| matches!(f, Frame::Message { data, .. } if data.contains("\"v\":0")),
            )
            .await;
        site.seen
            .wait_for("a conditional request answered 304", |s| s == "304")
            .await;
        *site.doc.lock().unwrap() = (r#"{"v":1}"#.into(), 1);
        frames
            .until(
                "the changed body",
                |f| matches!(f, Frame::Message { data, .. } if data.contains("\"v\":1")),
            )
            .await;
        let polls = site.polls.load(Ordering::SeqCst);
        wait_until("three more polls", || {
            site.polls.load(Ordering::SeqCst) >= polls + 3
        })
        .await;
        let bodies: Vec<String> = frames.messages().into_iter().map(|m| m.1).collect();
        assert_eq!(
            bodies,
            [r#"{"v":0}"#, r#"{"v":1}"#],
            "{url}: expected one frame per change, got {bodies:?}"
        );
        assert!(frames.seen.iter().all(
            |f| !matches!(f, Frame::Message { transport, .. } if *transport != Transport::Poll)
        ));
        hub.close(&id, "test", None, None).unwrap();
        *site.doc.lock().unwrap() = (r#"{"v":0}"#.into(), 0);
    }
}

#[tokio::test]
async fn a_server_that_is_down_is_polled_after_three_failures() {
    let (addr, _site) = site().await;
    let hub = hub();
    let mut o = opts(format!("ws://127.0.0.1:{}/chat", closed_port().await));
    o.fallback = fallback(addr, "/poll");
    o.reconnect = quick_reconnect();
    let (_id, mut frames) = connect(&hub, o);
    let f = frames.state(State::Polling).await;
    assert!(
        polling_reason(&f).is_some_and(|r| r.starts_with("3 failed attempts")),
        "got {f:?}"
    );
    let attempts = frames.count(State::Connecting);
    assert_eq!(
        attempts, 3,
        "expected three attempts before polling, got {:#?}",
        frames.seen
    );
    frames
        .until("a polled body", |f| {
            matches!(
                f,
                Frame::Message {
                    transport: Transport::Poll,
                    ..
                }
            )
        })
        .await;
}

#[tokio::test]
async fn a_finite_sse_document_is_relayed_once_per_event_then_streaming_comes_back() {
    let (addr, site) = site().await;
    site.events.store(3, Ordering::SeqCst);
    let hub = hub();
    let mut o = opts(format!("http://{addr}/sse"));
    o.fallback = fallback(addr, "/doc");
    let (_id, mut frames) = connect(&hub, o);
    frames.state(State::Polling).await;
    frames.message("event 3").await;
    site.events.store(5, Ordering::SeqCst);
    frames.message("event 5").await;

    // Streaming is allowed again: within one probe interval the stream is back, resuming after event 5.
    let allowed = Instant::now();
    site.streaming.store(true, Ordering::SeqCst);
    frames.state(State::Connected).await;
    let took = allowed.elapsed();
    site.seen
        .wait_for("the stream resumed from the last polled id", |s| {
            s == "stream last-event-id=5"
        })
        .await;
    site.events.store(7, Ordering::SeqCst);
    frames.until("event 7 by streaming", |f| matches!(f, Frame::Message { data, transport: Transport::Sse, .. } if data == "event 7")).await;

    let got: Vec<(String, Option<String>)> =
        frames.messages().into_iter().map(|m| (m.1, m.2)).collect();
    let want: Vec<(String, Option<String>)> = (1..=7)
        .map(|i| (format!("event {i}"), Some(i.to_string())))
        .collect();
    assert_eq!(got, want, "expected every event exactly once, in order");
    frames.assert_contiguous();
    println!(
        "fallback: stream back {} ms after it was allowed (probe interval 300 ms)",
        took.as_millis()
    );
}

#[tokio::test]
async fn poll_errors_keep_polling_and_401_fails() {
    let (addr, site) = site().await;
    let hub = hub();
    let mut o = opts(format!("http://{addr}/sse"));
    o.fallback = fallback(addr, "/poll");
    let (_id, mut frames) = connect(&hub, o);
    frames
        .until("a polled body", |f| matches!(f, Frame::Message { .. }))
        .await;
    *site.poll_status.lock().unwrap() = Some(StatusCode::INTERNAL_SERVER_ERROR);
    let e = frames
        .until("a poll error", |f| matches!(f, Frame::Error { .. }))
        .await;
    assert!(
        matches!(&e, Frame::Error { fatal: false, message, .. } if message.contains("500")),
        "got {e:?}"
    );
    *site.poll_status.lock().unwrap() = None;
    *site.doc.lock().unwrap() = (r#"{"v":2}"#.into(), 2);
    frames
        .until(
            "polling goes on after errors",
            |f| matches!(f, Frame::Message { data, .. } if data.contains("\"v\":2")),
        )
        .await;
    assert!(!frames.seen.iter().any(|f| matches!(
        f,
        Frame::State {
            state: State::Failed,
            ..
        }
    )));

    *site.poll_status.lock().unwrap() = Some(StatusCode::UNAUTHORIZED);
    let f = frames.state(State::Failed).await;
    assert!(
        matches!(&f, Frame::State { reason: Some(r), .. } if r.contains("401")),
        "got {f:?}"
    );
}

#[tokio::test]
async fn a_refused_poll_connection_keeps_polling() {
    let (addr, _site) = site().await;
    let hub = hub();
    let mut o = opts(format!("http://{addr}/sse"));
    o.fallback = Some(Toggle::With(FallbackOptions {
        poll_url: Some(format!("http://127.0.0.1:{}/poll", closed_port().await)),
        interval_ms: 20,
        ..Default::default()
    }));
    let (_id, mut frames) = connect(&hub, o);
    frames.state(State::Polling).await;
    for n in 1..=2 {
        frames.until(&format!("poll error {n}"), |f| {
            matches!(f, Frame::Error { fatal: false, message, .. } if message.contains("poll failed"))
        }).await;
        frames.seen.retain(|f| !matches!(f, Frame::Error { .. }));
    }
    assert!(!frames.seen.iter().any(|f| matches!(
        f,
        Frame::State {
            state: State::Failed,
            ..
        }
    )));
}

#[tokio::test]
async fn sends_go_to_the_send_url_while_a_websocket_polls() {
    let (addr, site) = site().await;
    let hub = hub();
    let mut o = opts(format!("ws://{addr}/chat"));
    o.fallback = fallback(addr, "/poll");
    let (id, mut frames) = connect(&hub, o);
    frames.state(State::Polling).await;
    let queued = hub
        .send(&id, "test", Outgoing::Text("via post".into()))
        .await
        .unwrap();
    assert!(!queued, "expected a direct POST, not the queue");
    site.seen
        .wait_for("the POSTed message", |s| s == "sent via post")
        .await;
}

#[tokio::test]
async fn forced_polling_polls_the_url_itself() {
    let (addr, _site) = site().await;
    let hub = hub();
    let mut o = opts(format!("http://{addr}/poll"));
    o.transport = Some(Transport::Poll);
    let (_id, mut frames) = connect(&hub, o);
    let f = frames.state(State::Polling).await;
    assert_eq!(polling_reason(&f).as_deref(), Some("transport is poll"));
    frames.until("the body", |f| matches!(f, Frame::Message { transport: Transport::Poll, data, .. } if data.contains("\"v\":0"))).await;
    assert!(
        !frames.seen.iter().any(|f| matches!(
            f,
            Frame::State {
                state: State::Connecting,
                ..
            }
        )),
        "expected no stream attempt"
    );
}
