//! Sleep, wake and network changes, against real servers on 127.0.0.1:0, with the clocks and the address
//! events injected (`testing::hub_with_wake_sources`): a simulated sleep makes a connection waiting out a
//! long backoff try at once, and a WebSocket whose server stopped answering found dead at once; a network
//! change does the same; a healthy link is checked without a reconnect, a lost or a repeated frame; a wall
//! clock set back is no wake; SSE and polling have checks of their own; an attempt stuck on the old network
//! starts afresh; a server's `Retry-After` holds, less the time asleep.

mod common;

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        State as AxState,
    },
    response::IntoResponse,
    routing::get,
    Router,
};
use common::*;
use tauri_plugin_realtime_core::{
    testing::{hub_with_wake_sources, Clocks, Reading},
    ConnectOptions, Frame, HeartbeatOptions, Hub, HubConfig, LinkCheck, Outgoing, ReconnectOptions,
    State, Toggle,
};
use tokio::{sync::mpsc, time::Instant};

/// Clocks a test moves: the awake clock is the real one, the one that counts sleep is it plus `shift`.
struct TestClock {
    origin: std::time::Instant,
    /// Seconds the sleep-counting clock is ahead (a simulated sleep) or behind (set back).
    shift: Mutex<i64>,
}

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: std::time::Instant::now(),
            shift: Mutex::new(0),
        })
    }

    /// The machine "sleeps" `secs` seconds: the sleep-counting clock jumps ahead.
    fn sleep(&self, secs: i64) {
        *self.shift.lock().unwrap() += secs;
    }
}

impl Clocks for TestClock {
    fn read(&self) -> Option<Reading> {
        let awake = self.origin.elapsed();
        // A day in, so that a clock set back stays positive.
        let base = Duration::from_secs(86_400) + awake;
        let shift = *self.shift.lock().unwrap();
        let with_sleep = if shift >= 0 {
            base + Duration::from_secs(shift.unsigned_abs())
        } else {
            base.saturating_sub(Duration::from_secs(shift.unsigned_abs()))
        };
        Some(Reading { with_sleep, awake })
    }
}

/// A hub whose clocks and address events the test controls.
fn test_hub() -> (Hub, Arc<TestClock>, mpsc::UnboundedSender<(bool, IpAddr)>) {
    let clock = TestClock::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut config = HubConfig {
        linger: Duration::ZERO,
        ..Default::default()
    };
    config.limits.min_interval_ms = 10;
    let hub = hub_with_wake_sources(config, tokio::runtime::Handle::current(), clock.clone(), rx)
        .expect("hub");
    // The machine's addresses as the watcher starts: its inventory, no change.
    tx.send((true, "192.0.2.1".parse().unwrap())).unwrap();
    (hub, clock, tx)
}

/// A chat server: greets each session with `hello <n>`, numbers what it streams (`tick <i>` every 20 ms,
/// asked for with `stream`), goes deaf on `deaf` (stops reading for good, holding the socket: no pong, no
/// close), and records `<n>:protocol-ping`, `<n>:<text>`.
async fn chat(ws: WebSocketUpgrade, AxState(app): AxState<Sessions>) -> impl IntoResponse {
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        let n = app.open();
        let _ = socket
            .send(Message::Text(format!("hello {n}").into()))
            .await;
        let mut streaming = false;
        let mut i = 0u32;
        loop {
            let msg = if streaming {
                match tokio::time::timeout(Duration::from_millis(20), socket.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        i += 1;
                        if socket
                            .send(Message::Text(format!("tick {i}").into()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                }
            } else {
                socket.recv().await
            };
            match msg {
                Some(Ok(Message::Ping(_))) => app.seen.push(format!("{n}:protocol-ping")),
                Some(Ok(Message::Text(t))) if t.as_str() == "deaf" => {
                    app.seen.push(format!("{n}:deaf"));
                    let _held = socket;
                    std::future::pending::<()>().await;
                    return;
                }
                Some(Ok(Message::Text(t))) if t.as_str() == "stream" => streaming = true,
                Some(Ok(Message::Text(t))) => app.seen.push(format!("{n}:{}", t.as_str())),
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    })
}

fn router(app: &Sessions) -> Router {
    Router::new()
        .route("/chat", get(chat))
        .with_state(app.clone())
}

async fn server() -> (std::net::SocketAddr, Sessions) {
    let app = Sessions::default();
    (serve(router(&app)).await, app)
}

/// A WebSocket whose heartbeat is a minute apart (so only a check can find a dead link soon), with a short
/// pong timeout, reconnecting after `delay_ms` (no jitter).
fn ws(url: String, delay_ms: u64) -> ConnectOptions {
    ConnectOptions {
        heartbeat: Some(Toggle::With(HeartbeatOptions {
            ping_interval_ms: 60_000,
            pong_timeout_ms: 500,
            ..Default::default()
        })),
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: delay_ms,
            max_delay_ms: delay_ms.max(30_000),
            jitter: 0.0,
            ..Default::default()
        })),
        ..once(url)
    }
}

fn is_message(f: &Frame, text: &str) -> bool {
    matches!(f, Frame::Message { data, .. } if data == text)
}

/// The chat server, started late on `listener` (a port the client already tries).
fn serve_chat_on(listener: tokio::net::TcpListener) -> Sessions {
    let app = Sessions::default();
    let router = router(&app);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    app
}

/// The next state is `reconnecting`, waiting `delay_ms`; `what` says whose wait that is.
async fn waits(tape: &mut Frames, delay_ms: u64, what: &str) {
    let waiting = tape.state(State::Reconnecting).await;
    assert!(
        matches!(waiting, Frame::State { delay_ms: Some(d), .. } if d == delay_ms),
        "expected {what}, got {waiting:?}"
    );
}

/// Why a deaf link is dropped after a wake, and after a network change.
const NO_PONG_AFTER_WAKE: &str = "no pong within 500 ms (checked after the machine woke)";
const NO_PONG_AFTER_CHANGE: &str = "no pong within 500 ms (checked after a network change)";

/// The link is found dead: the next state is `reconnecting`, for `why`.
async fn found_dead(tape: &mut Frames, why: &str) {
    let dropped = tape.state(State::Reconnecting).await;
    assert_eq!(reason(&dropped), why);
}

/// Closes `id` and waits until the hub has no task left.
async fn finish(hub: &Hub, id: &str) {
    hub.close(id, OWNER, None, None).unwrap();
    all_tasks_end(hub).await;
}

/// A connection waiting out a 60 s backoff tries at once after a sleep, with a fresh attempt count.
#[tokio::test]
async fn after_a_sleep_a_connection_waiting_a_long_backoff_tries_at_once() {
    let (hub, clock, _addresses) = test_hub();
    let port = closed_port().await;
    let (id, mut tape) = connect(&hub, ws(format!("ws://127.0.0.1:{port}/chat"), 60_000));
    waits(&mut tape, 60_000, "a 60 s wait").await;
    // The server comes up; without a wake, the connection would not look for a minute.
    let _app = serve_chat_on(bind(port).await);
    let slept_at = Instant::now();
    clock.sleep(3_600);
    tape.state(State::Connected).await;
    assert!(
        slept_at.elapsed() < Duration::from_secs(30),
        "expected the attempt long before the backoff ended, after {:?}",
        slept_at.elapsed()
    );
    tape.message("hello 1").await;
    let attempts: Vec<_> = tape
        .states()
        .into_iter()
        .filter(|(s, ..)| *s == State::Connecting)
        .map(|(_, attempt, _)| attempt)
        .collect();
    assert_eq!(
        attempts,
        vec![Some(0), Some(0)],
        "expected the attempt after the wake to start the count afresh"
    );
    finish(&hub, &id).await;
}

/// Starts a WebSocket to the chat server and makes it go deaf: the link is dead, but nothing says so.
async fn deaf_link(hub: &Hub) -> (Sessions, String, Frames) {
    let (addr, app) = server().await;
    let (id, mut tape) = connect(hub, ws(format!("ws://{addr}/chat"), 50));
    tape.message("hello 1").await;
    hub.send(&id, OWNER, Outgoing::Text("deaf".into()))
        .await
        .unwrap();
    app.seen
        .wait_for("the session going deaf", |s| s == "1:deaf")
        .await;
    (app, id, tape)
}

/// A server that stopped answering is found dead right after a wake, with the wake as the reason, and the
/// connection comes back on a new session, long before its minute-long heartbeat would have looked.
#[tokio::test]
async fn after_a_sleep_a_dead_websocket_is_found_at_once() {
    let (hub, clock, _addresses) = test_hub();
    let (app, id, mut tape) = deaf_link(&hub).await;
    clock.sleep(600);
    found_dead(&mut tape, NO_PONG_AFTER_WAKE).await;
    tape.message("hello 2").await;
    assert_eq!(app.sessions.load(Ordering::SeqCst), 2);
    finish(&hub, &id).await;
}

/// The OS says an address came: the same check.
#[tokio::test]
async fn a_network_change_finds_a_dead_websocket_at_once() {
    let (hub, _clock, addresses) = test_hub();
    let (_app, id, mut tape) = deaf_link(&hub).await;
    // Past the watcher's inventory, a new address: the Wi-Fi came back.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    addresses
        .send((true, "198.51.100.7".parse().unwrap()))
        .unwrap();
    found_dead(&mut tape, NO_PONG_AFTER_CHANGE).await;
    tape.message("hello 2").await;
    finish(&hub, &id).await;
}

/// The app forwards a signal of its own (here with automatic detection on, but no clock jump and no event).
#[tokio::test]
async fn the_app_can_ask_for_the_check_itself() {
    let (hub, _clock, _addresses) = test_hub();
    let (_app, id, mut tape) = deaf_link(&hub).await;
    hub.check_links(LinkCheck::NetworkChanged);
    found_dead(&mut tape, NO_PONG_AFTER_CHANGE).await;
    tape.message("hello 2").await;
    finish(&hub, &id).await;
}

/// A healthy link is checked (the server sees the ping right after the wake) and nothing else happens: no
/// reconnect, no state frame, every streamed frame once and in order.
#[tokio::test]
async fn a_healthy_link_is_checked_without_a_reconnect_or_a_lost_frame() {
    let (hub, clock, addresses) = test_hub();
    let (addr, app) = server().await;
    let (id, mut tape) = connect(&hub, ws(format!("ws://{addr}/chat"), 50));
    tape.message("hello 1").await;
    hub.send(&id, OWNER, Outgoing::Text("stream".into()))
        .await
        .unwrap();
    tape.message("tick 5").await;
    assert!(
        !app.seen.all().iter().any(|s| s.ends_with("protocol-ping")),
        "expected no ping before the wake, got {:?}",
        app.seen.all()
    );
    clock.sleep(120);
    app.seen
        .wait_for("a ping after the wake", |s| s == "1:protocol-ping")
        .await;
    // And a network change too (merged or after the first: either way checked, and answered).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    addresses
        .send((false, "192.0.2.1".parse().unwrap()))
        .unwrap();
    wait_until("a second ping", || {
        app.seen
            .all()
            .iter()
            .filter(|s| *s == "1:protocol-ping")
            .count()
            >= 2
    })
    .await;
    // Well past the pong timeout.
    let last = tape.message_count();
    tape.nth("more ticks", last + 40, |f| {
        matches!(f, Frame::Message { .. })
    })
    .await;
    let states: Vec<_> = tape.states();
    assert_eq!(
        states,
        vec![
            (State::Connecting, Some(0), None),
            (State::Connected, None, None)
        ],
        "expected no other state"
    );
    assert_eq!(app.sessions.load(Ordering::SeqCst), 1);
    let ticks: Vec<String> = tape
        .messages()
        .into_iter()
        .map(|(_, data, _)| data)
        .filter(|d| d.starts_with("tick "))
        .collect();
    let want: Vec<String> = (1..=ticks.len()).map(|i| format!("tick {i}")).collect();
    assert_eq!(ticks, want, "expected every tick once, in order");
    tape.assert_contiguous();
    assert!(tape.errors().is_empty(), "got {:?}", tape.errors());
    finish(&hub, &id).await;
}

/// A wall clock set back an hour is no wake: the connection keeps waiting. Then a real jump is one, so the
/// detector was alive all along.
#[tokio::test]
async fn a_clock_set_back_is_no_wake() {
    let (hub, clock, _addresses) = test_hub();
    let port = closed_port().await;
    let (id, mut tape) = connect(&hub, ws(format!("ws://127.0.0.1:{port}/chat"), 60_000));
    tape.state(State::Reconnecting).await;
    let _app = serve_chat_on(bind(port).await);
    clock.sleep(-3_600);
    // Three ticks of the detector.
    tokio::time::sleep(Duration::from_secs(5)).await;
    tape.drain();
    assert_eq!(
        tape.count(State::Connecting),
        1,
        "expected no attempt after the clock was set back, got {:?}",
        tape.states()
    );
    clock.sleep(7_200);
    tape.state(State::Connected).await;
    finish(&hub, &id).await;
}

/// SSE cannot be pinged: after a wake, a stream that shows no byte within `pongTimeoutMs` is taken for dead
/// and reopened with `Last-Event-ID`; polling polls at once.
#[tokio::test]
async fn after_a_sleep_a_silent_event_stream_is_reopened_where_it_left_off() {
    let (hub, clock, _addresses) = test_hub();
    let heads = Seen::default();
    let seen = heads.clone();
    let addr = raw_server(move |mut tcp, n| {
        let seen = seen.clone();
        async move {
            let head =
                answer_sse(&mut tcp, format!("id: {n}\ndata: event {n}\n\n").as_bytes()).await;
            seen.push(format!(
                "{n}:{}",
                head.as_deref()
                    .and_then(|h| header_of(h, "last-event-id"))
                    .unwrap_or_default()
            ));
            // Then silence, the socket held: a link that died while the machine slept.
            std::future::pending::<()>().await;
        }
    })
    .await;
    let o = ConnectOptions {
        heartbeat: Some(Toggle::With(HeartbeatOptions {
            idle_timeout_ms: 60_000,
            pong_timeout_ms: 500,
            ..Default::default()
        })),
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: 50,
            jitter: 0.0,
            ..Default::default()
        })),
        ..once(format!("http://{addr}/events"))
    };
    let (id, mut tape) = connect(&hub, o);
    tape.until("the first event", |f| is_message(f, "event 0"))
        .await;
    clock.sleep(600);
    found_dead(
        &mut tape,
        "no data within 500 ms (checked after the machine woke)",
    )
    .await;
    tape.until("the next stream's event", |f| is_message(f, "event 1"))
        .await;
    assert_eq!(heads.all(), vec!["0:".to_owned(), "1:0".to_owned()]);
    finish(&hub, &id).await;
}

/// Polling once a minute: a wake polls now.
#[tokio::test]
async fn after_a_sleep_polling_polls_at_once() {
    let (hub, clock, _addresses) = test_hub();
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = polls.clone();
    let router = Router::new().route(
        "/poll",
        get(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move { format!("poll {n}") }
        }),
    );
    let addr = serve(router).await;
    let o = ConnectOptions {
        transport: Some(tauri_plugin_realtime_core::Transport::Poll),
        fallback: Some(Toggle::With(tauri_plugin_realtime_core::FallbackOptions {
            interval_ms: 60_000,
            ..Default::default()
        })),
        ..once(format!("http://{addr}/poll"))
    };
    let (id, mut tape) = connect(&hub, o);
    tape.until("the first poll", |f| is_message(f, "poll 1"))
        .await;
    clock.sleep(600);
    tape.until("a poll right after the wake", |f| is_message(f, "poll 2"))
        .await;
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    finish(&hub, &id).await;
}

/// With detection off, the machine's clocks and addresses are not watched, but the app's signal still works.
#[tokio::test]
async fn detection_can_be_turned_off_and_the_app_still_asks() {
    let hub = hub_with(HubConfig {
        linger: Duration::ZERO,
        detect_wake: false,
        ..Default::default()
    });
    let (_app, id, mut tape) = deaf_link(&hub).await;
    hub.check_links(LinkCheck::Woke);
    found_dead(&mut tape, NO_PONG_AFTER_WAKE).await;
    finish(&hub, &id).await;
}

/// An attempt under way when the network changes may be stuck on a route that is gone: it starts afresh
/// instead of waiting out its minute-long connect timeout.
#[tokio::test]
async fn an_attempt_stuck_when_the_network_changes_starts_afresh() {
    let (hub, _clock, _addresses) = test_hub();
    let heads = Seen::default();
    let seen = heads.clone();
    // Reads the upgrade request and never answers: the attempt hangs.
    let addr = raw_server(move |tcp, n| {
        seen.push(format!("attempt {n}"));
        silent(tcp, n)
    })
    .await;
    let o = ConnectOptions {
        connect_timeout_ms: Some(60_000),
        ..ws(format!("ws://{addr}/chat"), 50)
    };
    let (id, mut tape) = connect(&hub, o);
    heads
        .wait_for("the first attempt", |s| s == "attempt 0")
        .await;
    // Older than a second: not one that began on the network as it is now.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    hub.check_links(LinkCheck::NetworkChanged);
    heads
        .wait_for("a fresh attempt", |s| s == "attempt 1")
        .await;
    assert_eq!(
        tape.count(State::Reconnecting),
        0,
        "got {:?}",
        tape.states()
    );
    tape.drain();
    assert_eq!(
        tape.count(State::Connecting),
        2,
        "expected the fresh attempt told as connecting, got {:?}",
        tape.states()
    );
    finish(&hub, &id).await;
}

/// A wait the server asked for (`Retry-After: 300`) holds through a network change, but the time asleep
/// counts towards it: after a ten-minute sleep the connection tries at once.
#[tokio::test]
async fn a_servers_retry_after_holds_less_the_time_asleep() {
    use axum::{
        http::{header::RETRY_AFTER, StatusCode},
        response::Response,
    };
    let (hub, clock, _addresses) = test_hub();
    let app = Sessions::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let chat_app = app.clone();
    let router = Router::new().route(
        "/chat",
        get(move |ws: WebSocketUpgrade| {
            let (counted, app) = (counted.clone(), chat_app.clone());
            async move {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    return (StatusCode::SERVICE_UNAVAILABLE, [(RETRY_AFTER, "300")])
                        .into_response();
                }
                let r: Response = chat(ws, AxState(app)).await.into_response();
                r
            }
        }),
    );
    let addr = serve(router).await;
    let (id, mut tape) = connect(&hub, ws(format!("ws://{addr}/chat"), 50));
    waits(&mut tape, 300_000, "the server's 300 s").await;
    hub.check_links(LinkCheck::NetworkChanged);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "expected the server's wait to hold"
    );
    clock.sleep(600);
    tape.state(State::Connected).await;
    tape.message("hello 1").await;
    finish(&hub, &id).await;
}
