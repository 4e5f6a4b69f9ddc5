//! The application heartbeat (`heartbeat.message`) against real WebSocket servers on 127.0.0.1:0: an app
//! server that answers `{"type":"ping"}` with `{"type":"pong"}` keeps the link without any protocol ping, one
//! that stops answering gets a reconnect, and replies reach the page only when asked for.

mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use axum::{
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Path, State as AxState,
    },
    response::IntoResponse,
    routing::get,
    Router,
};
use common::*;
use tauri_plugin_realtime_core::{
    ConnectOptions, Frame, HeartbeatOptions, ReconnectOptions, State, Toggle,
};

const PING: &str = r#"{"type":"ping"}"#;
const PONG: &str = r#"{"type":"pong"}"#;

#[derive(Clone, Default)]
struct App {
    seen: Seen,
    sessions: Arc<AtomicUsize>,
}

/// An app server in the manner of the issue's `useWebSocket` servers: it greets, answers the first `answers`
/// `{"type":"ping"}` of each session with `answer` (then goes on reading without a word), and records per
/// session what it got: `"<session>:ping"`, `"<session>:protocol-ping"`, `"<session>:<text>"`.
async fn app_server(
    ws: WebSocketUpgrade,
    Path((answers, answer)): Path<(usize, String)>,
    AxState(app): AxState<App>,
) -> impl IntoResponse {
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        let n = app.sessions.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = socket.send(Message::Text("hello".into())).await;
        let mut answered = 0;
        while let Some(Ok(msg)) = socket.recv().await {
            match msg {
                Message::Text(t) if t.as_str() == PING => {
                    app.seen.push(format!("{n}:ping"));
                    if answered < answers {
                        answered += 1;
                        let reply = if answer == "pong" { PONG } else { &answer };
                        let _ = socket.send(Message::Text(reply.into())).await;
                    }
                }
                Message::Text(t) if t.as_str() == "say after" => {
                    let _ = socket.send(Message::Text("after".into())).await;
                }
                Message::Text(t) => app.seen.push(format!("{n}:{}", t.as_str())),
                Message::Ping(_) => app.seen.push(format!("{n}:protocol-ping")),
                _ => {}
            }
        }
    })
}

async fn server() -> (std::net::SocketAddr, App) {
    let app = App::default();
    let router = Router::new()
        .route("/{answers}/{answer}", get(app_server))
        .with_state(app.clone());
    (serve(router).await, app)
}

fn beat(url: String, reply: Option<&str>, deliver: bool) -> ConnectOptions {
    ConnectOptions {
        heartbeat: Some(Toggle::With(HeartbeatOptions {
            ping_interval_ms: 50,
            pong_timeout_ms: 2000,
            message: Some(PING.into()),
            reply: reply.map(str::to_owned),
            deliver_replies: deliver,
            ..Default::default()
        })),
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: 50,
            jitter: 0.0,
            ..Default::default()
        })),
        ..once(url)
    }
}

fn pings(app: &App, session: usize) -> usize {
    let want = format!("{session}:ping");
    app.seen.all().iter().filter(|s| **s == want).count()
}

fn is_message(f: &Frame, text: &str) -> bool {
    matches!(f, Frame::Message { data, .. } if data == text)
}

#[tokio::test]
async fn an_answered_heartbeat_keeps_the_link_without_protocol_pings_and_its_replies_stay_in_rust()
{
    let (addr, app) = server().await;
    let hub = hub();
    let (id, mut tape) = connect(
        &hub,
        beat(format!("ws://{addr}/1000/pong"), Some(PONG), false),
    );
    tape.state(State::Connected).await;
    tape.message("hello").await;
    // Every heartbeat answered within the time allowed, many intervals in a row, on one session.
    wait_until("five heartbeats answered on the first session", || {
        pings(&app, 1) >= 5
    })
    .await;
    // The server writes `after` behind every reply it sent so far: once it is here, so would they be.
    hub.send(
        &id,
        OWNER,
        tauri_plugin_realtime_core::Outgoing::Text("say after".into()),
    )
    .await
    .unwrap();
    tape.message("after").await;

    assert_eq!(
        app.sessions.load(Ordering::SeqCst),
        1,
        "expected one session"
    );
    assert!(
        !tape.reached(State::Reconnecting),
        "expected no reconnect, got {:?}",
        tape.states()
    );
    let replies = tape.seen.iter().filter(|f| is_message(f, PONG)).count();
    assert_eq!(
        replies, 0,
        "expected no reply relayed, got {:#?}",
        tape.seen
    );
    let protocol = app
        .seen
        .all()
        .into_iter()
        .filter(|s| s.ends_with("protocol-ping"))
        .collect::<Vec<_>>();
    assert!(
        protocol.is_empty(),
        "expected no protocol ping, got {protocol:?}"
    );
    // The heartbeat is not a send of the app's.
    let info = hub.inspect(Some(OWNER), Some(&id)).unwrap();
    assert_eq!(
        info[0].frames_out, 1,
        "expected only `say after` counted, got {info:?}"
    );
    assert_eq!(
        info[0].frames_in, 2,
        "expected only `hello` and `after` counted in, got {info:?}"
    );
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

#[tokio::test]
async fn a_server_that_stops_answering_gets_a_reconnect() {
    let (addr, app) = server().await;
    let hub = hub();
    let mut o = beat(format!("ws://{addr}/2/pong"), Some(PONG), false);
    if let Some(Toggle::With(h)) = &mut o.heartbeat {
        h.pong_timeout_ms = 300;
    }
    let (id, mut tape) = connect(&hub, o);
    let dropped = tape.state(State::Reconnecting).await;
    assert_eq!(
        reason(&dropped),
        format!("no heartbeat reply {PONG:?} within 300 ms"),
        "expected the missing reply as the reason"
    );
    // Two answered, then the third went unanswered: the server still read it.
    assert!(pings(&app, 1) >= 3, "got {:?}", app.seen.all());
    tape.nth("connected again", 2, |f| is_state(f, State::Connected))
        .await;
    wait_until("a second session", || {
        app.sessions.load(Ordering::SeqCst) >= 2
    })
    .await;
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

#[tokio::test]
async fn replies_are_relayed_when_asked_for() {
    let (addr, _app) = server().await;
    let hub = hub();
    let (id, mut tape) = connect(&hub, beat(format!("ws://{addr}/2/pong"), Some(PONG), true));
    tape.nth("two replies relayed", 2, |f| is_message(f, PONG))
        .await;
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

/// Without `reply`, any message proves the link alive, and every message is relayed.
#[tokio::test]
async fn without_a_reply_any_message_answers_and_is_relayed() {
    let (addr, app) = server().await;
    let hub = hub();
    let (id, mut tape) = connect(&hub, beat(format!("ws://{addr}/1000/tick"), None, false));
    tape.nth("three answers relayed", 3, |f| is_message(f, "tick"))
        .await;
    assert!(
        !tape.reached(State::Reconnecting),
        "got {:?}",
        tape.states()
    );
    assert_eq!(app.sessions.load(Ordering::SeqCst), 1);
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

/// `protocolPing: true` beside the message: the server sees both.
#[tokio::test]
async fn protocol_pings_beside_the_message_when_asked_for() {
    let (addr, app) = server().await;
    let hub = hub();
    let mut o = beat(format!("ws://{addr}/1000/pong"), Some(PONG), false);
    if let Some(Toggle::With(h)) = &mut o.heartbeat {
        h.protocol_ping = Some(true);
    }
    let (id, mut tape) = connect(&hub, o);
    tape.state(State::Connected).await;
    app.seen
        .wait_for("a protocol ping", |s| s == "1:protocol-ping")
        .await;
    assert!(pings(&app, 1) >= 1, "got {:?}", app.seen.all());
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}
