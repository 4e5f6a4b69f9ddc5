//! What a hostile or broken server, or a compromised page, could once do to the engine, each against a real
//! server on 127.0.0.1:0: panic it with a `Retry-After`, freeze it by not reading, make it hold gigabytes,
//! retarget a request with a page-chosen `Host`, wedge it with an id HTTP cannot carry, lose events at an
//! oversized one or at a poll, throttle a productive stream, lock other webviews out with lingering upstreams.
//! Each test names the behaviour that must hold; every wait is bounded by `WAIT`.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::ws::WebSocketUpgrade,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use common::{
    all_tasks_end, answer_sse, connect, header_of, hub, hub_with, is_state, opts, raw_server,
    reason, serve, subscribe, wait_until, Seen, OWNER, WAIT,
};
use tauri_plugin_realtime_core::{
    AckWindow, AllowAll, ConnectOptions, ConnectRequest, Error, FallbackOptions, Frame, FrameSink,
    HeaderSource, HeartbeatOptions, Hub, HubConfig, Outgoing, ReconnectOptions, SecretHeaders,
    Share, State, Toggle, Transport,
};
use tokio::sync::mpsc;

fn quick_reconnect() -> Option<Toggle<ReconnectOptions>> {
    Some(Toggle::With(ReconnectOptions {
        initial_delay_ms: 20,
        max_delay_ms: 100,
        jitter: 0.0,
        ..Default::default()
    }))
}

fn private(url: impl Into<String>) -> ConnectOptions {
    ConnectOptions {
        share: Some(Share::Enabled(false)),
        reconnect: quick_reconnect(),
        ..opts(url)
    }
}

/// Private, reconnecting by `policy`.
fn retrying(url: impl Into<String>, policy: ReconnectOptions) -> ConnectOptions {
    ConnectOptions {
        reconnect: Some(Toggle::With(policy)),
        ..private(url)
    }
}

/// Private, polling `url` itself every 20 ms.
fn polling(url: impl Into<String>) -> ConnectOptions {
    ConnectOptions {
        transport: Some(Transport::Poll),
        fallback: Some(Toggle::With(FallbackOptions {
            interval_ms: 20,
            ..Default::default()
        })),
        ..private(url)
    }
}

// ---------------------------------------------------------------------------------------------------------
// A server's delays: capped in one place, never an overflow.

/// A poll answered 503 with a `Retry-After` past what an `Instant` can hold panicked the connection task,
/// and `Retry-After: 86400` stopped polling for a day. Both now wait the capped 600 s, and say so.
#[tokio::test]
async fn a_huge_retry_after_on_a_poll_waits_the_capped_delay_without_panicking() {
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let app = Router::new().route(
        "/poll",
        get(move || {
            let n = p.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "18446744073709551615")],
                        "busy",
                    )
                        .into_response(),
                    1 => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "86400")],
                        "busy",
                    )
                        .into_response(),
                    _ => "the latest state".into_response(),
                }
            }
        }),
    );
    let addr = serve(app).await;
    let hub = hub();
    let (id, mut f) = connect(&hub, polling(format!("http://{addr}/poll")));
    for n in 1..=2 {
        let e = f
            .until(&format!("poll error {n}"), |fr| {
                matches!(fr, Frame::Error { .. })
            })
            .await;
        let (message, fatal) = match e {
            Frame::Error { message, fatal, .. } => (message, fatal),
            _ => unreachable!("matched an error frame"),
        };
        assert!(
            !fatal
                && message.contains("HTTP 503")
                && message.contains("polling again in 600000 ms"),
            "expected a non-fatal 503 that waits the capped 600 s, got {message:?}"
        );
        // The connection is alive and hears the app: `reconnect` polls again now.
        hub.reconnect(&id, OWNER)
            .expect("the connection still answers");
        wait_until("the next poll", || polls.load(Ordering::SeqCst) > n).await;
        f.forget(|fr| matches!(fr, Frame::Error { .. }));
    }
    f.message("the latest state").await;
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

/// The same header on a stream's answer reconnects after at most the cap.
#[tokio::test]
async fn a_huge_retry_after_on_a_stream_is_capped() {
    let app = Router::new().route(
        "/sse",
        get(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "18446744073709551615")],
                "busy",
            )
        }),
    );
    let addr = serve(app).await;
    let hub = hub();
    let (id, mut f) = connect(&hub, private(format!("http://{addr}/sse")));
    let r = f.state(State::Reconnecting).await;
    assert!(
        matches!(
            r,
            Frame::State {
                delay_ms: Some(600_000),
                ..
            }
        ),
        "expected a 600 s wait, got {r:?}"
    );
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

// ---------------------------------------------------------------------------------------------------------
// A task that ends for any reason ends its connection visibly.

/// Panics the first time it is asked for `/boom`: a fault inside the connection task, as an app's own
/// header code could cause.
struct PanicsOnce(AtomicBool);

impl HeaderSource for PanicsOnce {
    fn headers_for(&self, url: &url::Url) -> Vec<(http::HeaderName, http::HeaderValue)> {
        if url.path() == "/boom" && !self.0.swap(true, Ordering::SeqCst) {
            panic!("injected fault");
        }
        Vec::new()
    }
}

fn ws_counter(accepted: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/boom",
        get(move |ws: WebSocketUpgrade| {
            accepted.fetch_add(1, Ordering::SeqCst);
            async move {
                ws.on_upgrade(|mut s| async move {
                    let _ = s
                        .send(axum::extract::ws::Message::Text("hello".into()))
                        .await;
                    while let Some(Ok(_)) = s.recv().await {}
                })
            }
        }),
    )
}

#[tokio::test]
async fn a_connection_task_that_panics_fails_its_subscribers_and_is_replaced() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let addr = serve(ws_counter(accepted.clone())).await;
    let hub = hub_with(HubConfig {
        linger: Duration::ZERO,
        secret_headers: SecretHeaders(Some(Arc::new(PanicsOnce(AtomicBool::new(false))))),
        ..Default::default()
    });
    let url = format!("ws://{addr}/boom");
    // Two components of one page on one upstream: both are told.
    let (a, mut fa) = connect(&hub, opts(&url));
    let (b, mut fb) = connect(&hub, opts(&url));
    for f in [&mut fa, &mut fb] {
        let failed = f.state(State::Failed).await;
        assert!(
            reason(&failed).contains("internal error")
                && reason(&failed).contains("injected fault"),
            "expected failed with the fault as its reason, got {failed:?}"
        );
        assert!(
            f.errors()
                .iter()
                .any(|(m, fatal)| *fatal && m.contains("internal error")),
            "expected a fatal error frame, got {:?}",
            f.seen
        );
        f.until_closed().await;
        f.assert_contiguous();
    }
    wait_until("the hub to forget the upstream", || {
        hub.upstream_count() == 0
    })
    .await;
    wait_until("the subscriptions to go", || hub.owners().is_empty()).await;
    for id in [&a, &b] {
        assert!(
            hub.reconnect(id, OWNER).is_err(),
            "expected {id} to be gone"
        );
    }
    // The same options again: a fresh upstream, not the dead one.
    let (c, mut fc) = connect(&hub, opts(&url));
    fc.message("hello").await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "expected one real connection"
    );
    hub.close(&c, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

/// A sink that panics: its delivery task ends, and the subscription with it.
struct PanickingSink;

impl FrameSink for PanickingSink {
    fn deliver(&self, _frames: &[Arc<Frame>]) -> Result<(), tauri_plugin_realtime_core::SinkGone> {
        panic!("injected sink fault");
    }
}

#[tokio::test]
async fn a_sink_that_panics_releases_its_subscription() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let addr = serve(ws_counter(accepted.clone())).await;
    let hub = hub();
    hub.connect(ConnectRequest {
        id: None,
        options: private(format!("ws://{addr}/boom")),
        owner: OWNER.into(),
        sink: Arc::new(PanickingSink),
        guard: Arc::new(AllowAll),
        cookies: None,
    })
    .expect("connect");
    wait_until("the subscription to be released", || {
        hub.owners().is_empty()
    })
    .await;
    wait_until("the upstream to close", || hub.upstream_count() == 0).await;
    all_tasks_end(&hub).await;
}

// ---------------------------------------------------------------------------------------------------------
// A server that stops reading cannot freeze the connection.

/// Sends megabyte messages that the server never reads, until the socket's buffers are full.
fn flood_sends(hub: &Hub, id: &str) -> mpsc::UnboundedReceiver<Result<bool, Error>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for _ in 0..48 {
        let (hub, id, tx) = (hub.clone(), id.to_owned(), tx.clone());
        tokio::spawn(async move {
            let r = hub
                .send(&id, OWNER, Outgoing::Binary(vec![7; 1 << 20]))
                .await;
            let _ = tx.send(r);
        });
    }
    rx
}

/// A connection to a server that never reads, with sends pending until a write is blocked; without heartbeat,
/// nothing ends it but the app. Gives its id.
async fn blocked_write(hub: &Hub) -> String {
    let addr = raw_server(common::deaf_ws).await;
    let (id, mut f) = connect(
        hub,
        ConnectOptions {
            heartbeat: Some(Toggle::Enabled(false)),
            connect_timeout_ms: Some(60_000),
            ..private(format!("ws://{addr}/"))
        },
    );
    f.state(State::Connected).await;
    // The send results are dropped: what matters is that the writes are pending.
    drop(flood_sends(hub, &id));
    // Let the socket's buffers fill, so a write is blocked.
    tokio::time::sleep(Duration::from_millis(500)).await;
    id
}

#[tokio::test]
async fn close_is_heard_while_a_write_is_blocked() {
    let hub = hub();
    let id = blocked_write(&hub).await;
    let started = tokio::time::Instant::now();
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "expected the close to end the task within the close grace, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_is_heard_while_a_write_is_blocked() {
    let hub = hub();
    blocked_write(&hub).await;
    assert!(
        hub.shutdown(Duration::from_secs(2)).await,
        "expected every task to end within the app's exit grace"
    );
}

/// A write that does not finish within the write deadline (the heartbeat's pong timeout) is a dead link: the
/// connection reconnects, and the send that was being written fails, saying it may not have arrived.
#[tokio::test]
async fn a_write_past_its_deadline_is_a_dead_link() {
    let addr = raw_server(common::deaf_ws).await;
    let hub = hub();
    let (id, mut f) = connect(
        &hub,
        ConnectOptions {
            heartbeat: Some(Toggle::With(HeartbeatOptions {
                ping_interval_ms: 60_000,
                pong_timeout_ms: 300,
                ..Default::default()
            })),
            ..private(format!("ws://{addr}/"))
        },
    );
    f.state(State::Connected).await;
    let mut results = flood_sends(&hub, &id);
    let r = f.state(State::Reconnecting).await;
    assert!(
        reason(&r).contains("stopped reading") && reason(&r).contains("300 ms"),
        "expected a reconnect for a stalled write, got {r:?}"
    );
    let failed = tokio::time::timeout(WAIT, async {
        while let Some(r) = results.recv().await {
            if let Err(e) = r {
                return e.to_string();
            }
        }
        String::new()
    })
    .await
    .expect("a send result");
    assert!(
        failed.contains("may not have reached the server"),
        "expected the stalled send to fail saying so, got {failed:?}"
    );
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

// ---------------------------------------------------------------------------------------------------------
// What waits for a slow subscriber is bounded in bytes.

/// A receiver with an ack window that never acknowledges: a page that stopped processing.
struct Stalled(Arc<AckWindow>, Arc<AtomicUsize>);

impl FrameSink for Stalled {
    fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), tauri_plugin_realtime_core::SinkGone> {
        self.1.fetch_add(frames.len(), Ordering::SeqCst);
        Ok(())
    }
    fn ack_window(&self) -> Option<Arc<AckWindow>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn a_slow_subscriber_holds_its_byte_budget_not_a_thousand_messages() {
    const MESSAGE: usize = 256 << 10;
    const SENT: usize = 100;
    let app = Router::new().route(
        "/burst",
        get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut s| async move {
                for _ in 0..SENT {
                    if s.send(axum::extract::ws::Message::Binary(
                        vec![1u8; MESSAGE].into(),
                    ))
                    .await
                    .is_err()
                    {
                        return;
                    }
                }
                while let Some(Ok(_)) = s.recv().await {}
            })
        }),
    );
    let addr = serve(app).await;
    let hub = hub();
    let window = Arc::new(AckWindow::new(4096, 2 << 20));
    let delivered = Arc::new(AtomicUsize::new(0));
    let connected = hub
        .connect(ConnectRequest {
            id: None,
            options: private(format!("ws://{addr}/burst")),
            owner: OWNER.into(),
            sink: Arc::new(Stalled(window, delivered.clone())),
            guard: Arc::new(AllowAll),
            cookies: None,
        })
        .expect("connect");
    wait_until("the first frames to be delivered", || {
        delivered.load(Ordering::SeqCst) > 0
    })
    .await;
    // Whatever it reads now waits for a page that never acknowledges: give it time to read all it will.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let info = hub.inspect(None, Some(&connected.id)).unwrap();
    let read = info[0].bytes_in as usize;
    // The ack window (2 MiB) plus the subscriber's queue (1 MiB) plus the message in hand, with room for the
    // one being read; a thousand-frame queue would have read all 25 MiB.
    assert!(
        read <= (2 << 20) + (1 << 20) + 3 * MESSAGE,
        "expected at most about 3.75 MiB read for a stalled page, got {read} bytes ({} messages)",
        read / MESSAGE
    );
    hub.close(&connected.id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

// ---------------------------------------------------------------------------------------------------------
// A page cannot set the headers the Fetch standard forbids it.

#[tokio::test]
async fn forbidden_headers_are_refused_before_any_request() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let s = s.clone();
        async move {
            s.push(format!("{:?}", headers.get("host")));
            StatusCode::NOT_FOUND
        }
    });
    let addr = serve(app).await;
    let hub = hub();
    for (name, value) in [
        ("Host", "internal.example"),
        ("Content-Length", "0"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "close"),
        ("Upgrade", "h2c"),
        ("Proxy-Authorization", "Basic eA=="),
        ("Sec-Fetch-Site", "none"),
    ] {
        for url in [format!("http://{addr}/s"), format!("ws://{addr}/w")] {
            let mut o = private(&url);
            o.headers.insert(name.into(), value.into());
            match common::try_connect(&hub, o) {
                Err(Error::InvalidOptions(m)) => assert!(
                    m.contains(name) && m.contains("Fetch standard"),
                    "expected {name} to be refused by name, got {m:?}"
                ),
                Err(e) => panic!("expected InvalidOptions for {name}, got {e:?}"),
                Ok(_) => panic!("expected {name} to be refused at connect"),
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        seen.all().is_empty(),
        "expected no request at all, got {:?}",
        seen.all()
    );
}

// ---------------------------------------------------------------------------------------------------------
// Lingering upstreams do not lock other webviews out.

#[tokio::test]
async fn lingering_upstreams_make_room_for_another_webviews_connect() {
    let closes = Seen::default();
    let c = closes.clone();
    let app = Router::new().route(
        "/room/{n}",
        get(
            move |ws: WebSocketUpgrade, axum::extract::Path(n): axum::extract::Path<String>| {
                let c = c.clone();
                async move {
                    ws.on_upgrade(move |mut s| async move {
                        while let Some(Ok(m)) = s.recv().await {
                            if let axum::extract::ws::Message::Close(f) = m {
                                c.push(format!("room {n} closed {}", f.map_or(0, |f| f.code)));
                            }
                        }
                    })
                }
            },
        ),
    );
    let addr = serve(app).await;
    let hub = hub_with(HubConfig {
        linger: Duration::from_secs(30),
        max_connections: 2,
        ..Default::default()
    });
    // A page opens two streams and leaves them lingering.
    for n in 1..=2 {
        let (id, mut f) = common::subscribe(
            &hub,
            None,
            opts(format!("ws://{addr}/room/{n}")),
            "a",
            Arc::new(AllowAll),
        )
        .unwrap();
        f.state(State::Connected).await;
        hub.close(&id, "a", Some(4000 + n), None).unwrap();
    }
    assert_eq!(hub.upstream_count(), 2, "expected two lingering upstreams");
    // Another webview still gets its connection: the oldest lingering upstream makes room, with its code.
    let (id, mut f) = common::subscribe(
        &hub,
        None,
        opts(format!("ws://{addr}/room/3")),
        "b",
        Arc::new(AllowAll),
    )
    .expect("expected a lingering upstream to make room");
    f.state(State::Connected).await;
    closes
        .wait_for("room 1 closed with its app's code", |s| {
            s == "room 1 closed 4001"
        })
        .await;
    assert!(
        !closes.all().iter().any(|s| s.starts_with("room 2")),
        "got {:?}",
        closes.all()
    );
    // With no lingering upstream left to end, the limit holds.
    let (id2, _f2) = common::subscribe(
        &hub,
        None,
        opts(format!("ws://{addr}/room/4")),
        "b",
        Arc::new(AllowAll),
    )
    .unwrap();
    let third = common::subscribe(
        &hub,
        None,
        opts(format!("ws://{addr}/room/5")),
        "b",
        Arc::new(AllowAll),
    );
    assert!(
        matches!(third, Err(Error::TooManyConnections(_))),
        "expected the limit to hold when nothing lingers, got {:?}",
        third.map(|(id, _)| id)
    );
    for id in [&id, &id2] {
        hub.close(id, "b", None, None).unwrap();
    }
    assert!(hub.shutdown(Duration::from_secs(3)).await);
}

// ---------------------------------------------------------------------------------------------------------
// SSE events: none lost, none replayed.

/// Events completed before an oversized one in the same read are delivered, and their ids stay the resume
/// point.
#[tokio::test]
async fn an_oversized_event_after_good_ones_in_the_same_read_delivers_them_first() {
    let addr = raw_server(|mut s, _| async move {
        let oversized = [b'x'; 4000];
        let body = [
            b"id: 1\ndata: a\n\nid: 2\ndata: b\n\ndata: ",
            &oversized[..],
            b"\n\n",
        ];
        answer_sse(&mut s, &body.concat()).await;
        tokio::time::sleep(WAIT).await;
    })
    .await;
    let hub = hub();
    let (id, mut f) = connect(
        &hub,
        ConnectOptions {
            max_message_size: Some(1000),
            ..private(format!("http://{addr}/sse"))
        },
    );
    f.state(State::Failed).await;
    let got: Vec<_> = f.messages().into_iter().map(|(_, d, id)| (d, id)).collect();
    assert_eq!(
        got,
        [
            ("a".to_owned(), Some("1".to_owned())),
            ("b".to_owned(), Some("2".to_owned()))
        ],
        "expected both good events before the failure, got {:?}",
        f.seen
    );
    assert!(
        f.errors()
            .iter()
            .any(|(m, fatal)| *fatal && m.contains("larger than 1000 bytes")),
        "expected the oversized event reported, got {:?}",
        f.seen
    );
    let info = hub.inspect(None, Some(&id)).unwrap();
    assert_eq!(info[0].last_event_id.as_deref(), Some("2"));
    f.assert_contiguous();
    hub.close(&id, OWNER, None, None).unwrap();
}

/// A polled document whose events carry no `id:` keeps the previous id, as a stream would: the next poll
/// still sends it, and the server does not replay.
#[tokio::test]
async fn polled_events_without_an_id_keep_the_resume_point() {
    let asked = Seen::default();
    let a = asked.clone();
    let n = Arc::new(AtomicUsize::new(0));
    let app = Router::new().route(
        "/poll",
        get(move |headers: HeaderMap| {
            let a = a.clone();
            let i = n.fetch_add(1, Ordering::SeqCst);
            async move {
                let last = headers
                    .get("last-event-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("(none)")
                    .to_owned();
                a.push(format!("poll {i} last-event-id {last}"));
                let body = match i {
                    0 => "id: 5\ndata: a\n\n",
                    _ => "data: b\n\n",
                };
                ([("content-type", "text/event-stream")], body)
            }
        }),
    );
    let addr = serve(app).await;
    let hub = hub();
    let (id, mut f) = connect(&hub, polling(format!("http://{addr}/poll")));
    let b = f.message("b").await;
    assert!(
        matches!(&b, Frame::Message { last_event_id: Some(l), .. } if l == "5"),
        "expected b to carry the previous id 5, got {b:?}"
    );
    asked
        .wait_for("a poll after b that still sends 5", |s| {
            s.starts_with("poll 2 ")
        })
        .await;
    let all = asked.all();
    assert!(
        all[1..].iter().all(|s| s.ends_with("last-event-id 5")),
        "expected every poll after the first to resume from 5, got {all:?}"
    );
    hub.close(&id, OWNER, None, None).unwrap();
}

// ---------------------------------------------------------------------------------------------------------
// What HTTP cannot carry is left out, said once, and never wedges a connection or echoes a secret.

#[tokio::test]
async fn an_event_id_http_cannot_carry_does_not_wedge_the_reconnect() {
    let heads = Seen::default();
    let h = heads.clone();
    let addr = raw_server(move |mut s, n| {
        let h = h.clone();
        async move {
            let body = if n == 0 {
                b"id: a\x01b\ndata: one\n\n" as &[u8]
            } else {
                b"data: two\n\n"
            };
            let head = answer_sse(&mut s, body).await.unwrap_or_default();
            h.push(format!(
                "request {n} last-event-id {:?}",
                header_of(&head, "last-event-id")
            ));
            if n > 0 {
                tokio::time::sleep(WAIT).await;
            }
        }
    })
    .await;
    let hub = hub();
    let (id, mut f) = connect(&hub, private(format!("http://{addr}/sse")));
    f.message("two").await;
    let notes: Vec<_> = f
        .errors()
        .into_iter()
        .filter(|(m, _)| m.contains("cannot carry"))
        .collect();
    assert_eq!(
        notes.len(),
        1,
        "expected the id reported once, got {:?}",
        f.seen
    );
    assert!(!notes[0].1, "expected a non-fatal note, got {notes:?}");
    assert_eq!(
        heads.all()[1],
        "request 1 last-event-id None",
        "expected the reconnect to go out without the id, got {:?}",
        heads.all()
    );
    hub.close(&id, OWNER, None, None).unwrap();
}

/// Gives `x-key` a value with bytes that are not ASCII text.
struct NonAsciiSecret;

const SECRET: &[u8] = "s\u{e9}cret-value".as_bytes();

impl HeaderSource for NonAsciiSecret {
    fn headers_for(&self, _url: &url::Url) -> Vec<(http::HeaderName, http::HeaderValue)> {
        vec![(
            http::HeaderName::from_static("x-key"),
            http::HeaderValue::from_bytes(SECRET).expect("obs-text is a valid header value"),
        )]
    }
}

#[tokio::test]
async fn a_secret_value_http_cannot_carry_is_left_out_and_never_echoed() {
    let seen = Seen::default();
    let s = seen.clone();
    let app = Router::new()
        .route(
            "/ws",
            get({
                let s = s.clone();
                move |headers: HeaderMap, ws: WebSocketUpgrade| {
                    s.push(format!("ws x-key {:?}", headers.get("x-key")));
                    async move {
                        ws.on_upgrade(|mut sock| async move {
                            let _ = sock
                                .send(axum::extract::ws::Message::Text("hi".into()))
                                .await;
                            while let Some(Ok(_)) = sock.recv().await {}
                        })
                    }
                }
            }),
        )
        .route(
            "/sse",
            get(move |headers: HeaderMap| {
                s.push(format!("sse x-key {:?}", headers.get("x-key")));
                async { ([("content-type", "text/event-stream")], "data: hi\n\n") }
            }),
        );
    let addr = serve(app).await;
    let hub = hub_with(HubConfig {
        linger: Duration::ZERO,
        secret_headers: SecretHeaders(Some(Arc::new(NonAsciiSecret))),
        ..Default::default()
    });
    for url in [format!("ws://{addr}/ws"), format!("http://{addr}/sse")] {
        let (id, mut f) = connect(&hub, private(&url));
        f.message("hi").await;
        let errors = f.errors();
        assert!(
            errors
                .iter()
                .any(|(m, fatal)| !fatal && m.contains("x-key") && m.contains("left out")),
            "{url}: expected the header named as left out, got {errors:?}"
        );
        let info = hub.inspect(None, Some(&id)).unwrap();
        let all = format!("{:?} {:?}", f.seen, info);
        assert!(
            !all.contains("cret-value"),
            "{url}: the secret leaked: {all}"
        );
        hub.close(&id, OWNER, None, None).unwrap();
    }
    assert_eq!(seen.all(), ["ws x-key None", "sse x-key None"]);
}

// ---------------------------------------------------------------------------------------------------------
// Sends keep their order through the queue and `sendUrl`.

#[tokio::test]
async fn sends_posted_while_polling_go_after_the_queued_ones_in_order() {
    let posted = Seen::default();
    let p = posted.clone();
    let app = Router::new()
        .route("/poll", get(|| async { "state" }))
        .route(
            "/send",
            post(move |body: String| {
                let p = p.clone();
                async move {
                    p.push(body);
                    StatusCode::NO_CONTENT
                }
            }),
        );
    let addr = serve(app).await;
    let closed = common::closed_port().await;
    let hub = hub();
    let (id, mut f) = connect(
        &hub,
        ConnectOptions {
            reconnect: Some(Toggle::With(ReconnectOptions {
                initial_delay_ms: 150,
                jitter: 0.0,
                ..Default::default()
            })),
            fallback: Some(Toggle::With(FallbackOptions {
                poll_url: Some(format!("http://{addr}/poll")),
                send_url: Some(format!("http://{addr}/send")),
                interval_ms: 50,
                probe_interval_ms: 60_000,
                ..Default::default()
            })),
            ..private(format!("ws://127.0.0.1:{closed}/chat"))
        },
    );
    // Down, not yet polling: these wait in the queue.
    for m in ["m1", "m2"] {
        let queued = hub
            .send(&id, OWNER, Outgoing::Text(m.into()))
            .await
            .unwrap();
        assert!(queued, "expected {m} to be queued while down");
    }
    f.state(State::Polling).await;
    let queued = hub
        .send(&id, OWNER, Outgoing::Text("m3".into()))
        .await
        .unwrap();
    assert!(!queued, "expected m3 to be posted, not queued");
    wait_until("three posts", || posted.all().len() == 3).await;
    assert_eq!(
        posted.all(),
        ["m1", "m2", "m3"],
        "expected the queue first, in order"
    );
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

// ---------------------------------------------------------------------------------------------------------
// Ids of other webviews.

#[tokio::test]
async fn an_id_held_by_another_webview_is_refused_like_any_taken_id() {
    let addr = serve(Router::new().route(
        "/sse",
        get(|| async { ([("content-type", "text/event-stream")], ": open\n\n") }),
    ))
    .await;
    let hub = hub();
    let url = format!("http://{addr}/sse");
    let (_, _a) = subscribe(&hub, Some("chat-1"), private(&url), "a", Arc::new(AllowAll)).unwrap();
    // Its own webview asking with other options (the same options are the same subscription).
    let own = subscribe(
        &hub,
        Some("chat-1"),
        private(format!("{url}?2")),
        "a",
        Arc::new(AllowAll),
    )
    .err()
    .expect("a refusal");
    let other = subscribe(&hub, Some("chat-1"), private(&url), "b", Arc::new(AllowAll))
        .err()
        .expect("a refusal");
    assert_eq!(
        own.to_string(),
        other.to_string(),
        "expected the same answer whoever holds the id"
    );
    assert!(!other.to_string().contains("in use"), "got {other}");
    assert!(hub.shutdown(Duration::from_secs(3)).await);
}

// ---------------------------------------------------------------------------------------------------------
// A productive stream is not throttled like a failing one.

/// A server that ends every response after one event, asking for 100 ms between streams (`retry:`).
#[tokio::test]
async fn a_stream_that_delivered_reconnects_after_the_base_delay_every_time() {
    let addr = raw_server(|mut s, n| async move {
        let body = format!("retry: 100\nid: {n}\ndata: event {n}\n\n");
        answer_sse(&mut s, body.as_bytes()).await;
    })
    .await;
    let hub = hub();
    let policy = ReconnectOptions {
        jitter: 0.0,
        ..Default::default()
    };
    let (id, mut f) = connect(&hub, retrying(format!("http://{addr}/sse"), policy));
    f.message("event 6").await;
    let delays = f.retries();
    assert!(delays.len() >= 6, "got {delays:?}");
    assert!(
        delays.iter().all(|d| *d == (Some(1), Some(100))),
        "expected every wait to be attempt 1 of 100 ms, got {delays:?}"
    );
    hub.close(&id, OWNER, None, None).unwrap();
}

/// One that accepts and ends at once with nothing delivered keeps growing the backoff.
#[tokio::test]
async fn a_stream_that_ends_with_nothing_grows_the_backoff() {
    let addr = raw_server(|mut s, _| async move {
        answer_sse(&mut s, b"").await;
    })
    .await;
    let hub = hub();
    let policy = ReconnectOptions {
        initial_delay_ms: 10,
        jitter: 0.0,
        ..Default::default()
    };
    let (id, mut f) = connect(&hub, retrying(format!("http://{addr}/sse"), policy));
    f.until("a fourth reconnect", |fr| {
        matches!(
            fr,
            Frame::State {
                state: State::Reconnecting,
                attempt: Some(4),
                ..
            }
        )
    })
    .await;
    let delays: Vec<u64> = f.retries().into_iter().filter_map(|(_, d)| d).collect();
    assert_eq!(
        delays,
        [10, 20, 40, 80],
        "expected a growing backoff, got {delays:?}"
    );
    hub.close(&id, OWNER, None, None).unwrap();
}

// ---------------------------------------------------------------------------------------------------------
// A Rust caller that ends its subscription sees the end.

#[tokio::test]
async fn end_delivers_the_close_and_disconnected_before_the_subscription_ends() {
    let addr = serve(ws_counter(Arc::new(AtomicUsize::new(0)))).await;
    let hub = hub_with(HubConfig {
        linger: Duration::from_secs(30),
        ..Default::default()
    });
    let (id, mut f) = connect(&hub, opts(format!("ws://{addr}/boom")));
    f.state(State::Connected).await;
    hub.end(&id, OWNER, Some(4001), Some("done".into()))
        .unwrap();
    f.until_closed().await;
    let tail: Vec<_> = f.seen.iter().rev().take(2).cloned().collect();
    assert!(
        matches!(&tail[1], Frame::Close { code: 4001, .. })
            && is_state(&tail[0], State::Disconnected),
        "expected the close then disconnected last, got {:?}",
        f.seen
    );
    // No linger for an ended upstream.
    wait_until("the upstream to be gone", || hub.upstream_count() == 0).await;
    all_tasks_end(&hub).await;
}

/// A delivery paused on an ack window that is never acknowledged still ends at app exit.
#[tokio::test]
async fn shutdown_ends_a_delivery_that_waits_for_an_acknowledgement() {
    let addr = serve(ws_counter(Arc::new(AtomicUsize::new(0)))).await;
    let hub = hub();
    let delivered = Arc::new(AtomicUsize::new(0));
    hub.connect(ConnectRequest {
        id: None,
        options: private(format!("ws://{addr}/boom")),
        owner: OWNER.into(),
        sink: Arc::new(Stalled(
            Arc::new(AckWindow::new(1, 1 << 20)),
            delivered.clone(),
        )),
        guard: Arc::new(AllowAll),
        cookies: None,
    })
    .expect("connect");
    wait_until("the first frame, which fills the window", || {
        delivered.load(Ordering::SeqCst) > 0
    })
    .await;
    assert!(
        hub.shutdown(Duration::from_secs(3)).await,
        "expected every task to end, the paused delivery included"
    );
}
