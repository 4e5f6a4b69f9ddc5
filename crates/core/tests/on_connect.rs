//! Messages re-sent after every reconnect (`Hub::set_on_connect`) against a real WebSocket server on
//! 127.0.0.1:0: they arrive first after every open, in the order their keys were first set, before the
//! messages queued while down; one set while connected goes at once; a removed one stops; a subscription's go
//! when it leaves; the set is bounded and WebSocket-only.

mod common;

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State as AxState,
    },
    response::IntoResponse,
    routing::get,
    Router,
};
use common::*;
use tauri_plugin_realtime_core::{
    ConnectOptions, Error, HubConfig, Limits, Outgoing, ReconnectOptions, State, Toggle,
};

/// Records every text as `"<session>:<text>"`; on `drop` it closes with 4000, which the client reconnects
/// after.
async fn recorder(ws: WebSocketUpgrade, AxState(server): AxState<Sessions>) -> impl IntoResponse {
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        let n = server.open();
        while let Some(Ok(msg)) = socket.recv().await {
            if let Message::Text(t) = msg {
                server.seen.push(format!("{n}:{}", t.as_str()));
                if t.as_str() == "drop" {
                    let close = CloseFrame {
                        code: 4000,
                        reason: "dropped".into(),
                    };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
            }
        }
    })
}

async fn server() -> (std::net::SocketAddr, Sessions) {
    let server = Sessions::default();
    let app = Router::new()
        .route("/", get(recorder))
        .with_state(server.clone());
    (serve(app).await, server)
}

/// What session `n` received, in order.
fn session(server: &Sessions, n: usize) -> Vec<String> {
    let prefix = format!("{n}:");
    server
        .seen
        .all()
        .into_iter()
        .filter_map(|s| s.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// A reconnect that waits long enough for sends to queue; the tests skip the wait with `reconnect`.
fn slow_reconnect(url: String) -> ConnectOptions {
    ConnectOptions {
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: 60_000,
            jitter: 0.0,
            ..Default::default()
        })),
        ..once(url)
    }
}

fn text(s: &str) -> Outgoing {
    Outgoing::Text(s.into())
}

#[tokio::test]
async fn sent_first_after_every_open_in_order_before_the_queue_and_removed_ones_stop() {
    let (addr, server) = server().await;
    let hub = hub();
    let (id, mut tape) = connect(&hub, slow_reconnect(format!("ws://{addr}/")));
    tape.state(State::Connected).await;
    // Set while connected: each goes at once too.
    for (key, data) in [
        ("auth", "login"),
        ("topic:a", "sub a"),
        ("topic:b", "sub b"),
    ] {
        let now = hub
            .set_on_connect(&id, OWNER, key, text(data))
            .await
            .unwrap();
        assert!(now, "expected {key} to be written now as well");
    }
    // A new value keeps the key's place.
    hub.set_on_connect(&id, OWNER, "topic:a", text("sub a v2"))
        .await
        .unwrap();
    hub.send(&id, OWNER, text("drop")).await.unwrap();
    tape.state(State::Reconnecting).await;
    assert_eq!(
        session(&server, 1),
        ["login", "sub a", "sub b", "sub a v2", "drop"]
    );

    // While down: sends queue; a key set now waits for the open (no write now).
    for m in ["queued 1", "queued 2"] {
        assert!(
            hub.send(&id, OWNER, text(m)).await.unwrap(),
            "expected {m} queued"
        );
    }
    let now = hub
        .set_on_connect(&id, OWNER, "topic:c", text("sub c"))
        .await
        .unwrap();
    assert!(!now, "expected topic:c to wait for the open");
    hub.reconnect(&id, OWNER).unwrap();
    tape.nth("connected again", 2, |f| is_state(f, State::Connected))
        .await;
    hub.send(&id, OWNER, text("marker")).await.unwrap();
    server
        .seen
        .wait_for("the marker on the second session", |s| s == "2:marker")
        .await;
    assert_eq!(
        session(&server, 2),
        ["login", "sub a v2", "sub b", "sub c", "queued 1", "queued 2", "marker"]
    );

    // Removed: not sent after the next open; removing it again says there was none.
    assert!(hub.remove_on_connect(&id, OWNER, "topic:b").await.unwrap());
    assert!(!hub.remove_on_connect(&id, OWNER, "topic:b").await.unwrap());
    hub.send(&id, OWNER, text("drop")).await.unwrap();
    tape.nth("reconnecting again", 2, |f| {
        is_state(f, State::Reconnecting)
    })
    .await;
    hub.reconnect(&id, OWNER).unwrap();
    tape.nth("connected a third time", 3, |f| {
        is_state(f, State::Connected)
    })
    .await;
    hub.send(&id, OWNER, text("marker")).await.unwrap();
    server
        .seen
        .wait_for("the marker on the third session", |s| s == "3:marker")
        .await;
    assert_eq!(
        session(&server, 3),
        ["login", "sub a v2", "sub c", "marker"]
    );

    // The on-connect messages count as messages out; `inspect` says nothing queued is left.
    let info = hub.inspect(Some(OWNER), Some(&id)).unwrap();
    assert_eq!(info[0].queued, 0, "got {info:?}");
    hub.close(&id, OWNER, None, None).unwrap();
    all_tasks_end(&hub).await;
}

/// Subscriptions sharing an upstream keep their keys apart, and a subscription's messages go when it leaves.
#[tokio::test]
async fn shared_upstream_keys_are_per_subscription() {
    let (addr, server) = server().await;
    let hub = hub_with(HubConfig {
        linger: std::time::Duration::from_secs(30),
        ..Default::default()
    });
    let shared = ConnectOptions {
        share: None,
        ..slow_reconnect(format!("ws://{addr}/"))
    };
    let (a, mut tape_a) = connect(&hub, shared.clone());
    let (b, tape_b) = connect(&hub, shared);
    assert!(tape_b.connected.shared, "expected the second to join");
    tape_a.state(State::Connected).await;
    hub.set_on_connect(&a, OWNER, "topic", text("a's topic"))
        .await
        .unwrap();
    hub.set_on_connect(&b, OWNER, "topic", text("b's topic"))
        .await
        .unwrap();
    hub.close(&b, OWNER, None, None).unwrap();
    // The close reached the connection before this send: both go through its channels in order.
    hub.send(&a, OWNER, text("drop")).await.unwrap();
    tape_a.state(State::Reconnecting).await;
    assert_eq!(session(&server, 1), ["a's topic", "b's topic", "drop"]);
    hub.reconnect(&a, OWNER).unwrap();
    tape_a
        .nth("connected again", 2, |f| is_state(f, State::Connected))
        .await;
    hub.send(&a, OWNER, text("marker")).await.unwrap();
    server
        .seen
        .wait_for("the marker on the second session", |s| s == "2:marker")
        .await;
    assert_eq!(session(&server, 2), ["a's topic", "marker"]);
    hub.close(&a, OWNER, None, None).unwrap();
}

#[tokio::test]
async fn bounded_owner_checked_and_websocket_only() {
    let (addr, _server) = server().await;
    let hub = hub_with(HubConfig {
        linger: std::time::Duration::ZERO,
        limits: Limits {
            max_on_connect_messages: 2,
            max_on_connect_bytes: 10,
            ..Default::default()
        },
        ..Default::default()
    });
    let (id, _tape) = connect(&hub, slow_reconnect(format!("ws://{addr}/")));
    hub.set_on_connect(&id, OWNER, "1", text("abcd"))
        .await
        .unwrap();
    hub.set_on_connect(&id, OWNER, "2", text("efgh"))
        .await
        .unwrap();
    let cases: Vec<(Result<bool, Error>, &str)> = vec![
        (
            hub.set_on_connect(&id, OWNER, "3", text("i")).await,
            "2 messages are set, the limit is 2",
        ),
        (
            hub.set_on_connect(&id, OWNER, "1", text("abcdefgh")).await,
            "12 bytes, the limit is 10",
        ),
        (
            hub.set_on_connect(&id, OWNER, "", text("x")).await,
            "key must be 1 to 256 bytes",
        ),
        (
            hub.set_on_connect(&id, "another webview", "k", text("x"))
                .await,
            "unknown connection id",
        ),
        (
            hub.remove_on_connect(&id, "another webview", "1").await,
            "unknown connection id",
        ),
    ];
    for (got, want) in cases {
        match got {
            Err(e) => assert!(e.to_string().contains(want), "expected {want:?}, got {e}"),
            Ok(v) => panic!("expected an error saying {want:?}, got Ok({v})"),
        }
    }
    let (sse, _sse_tape) = connect(&hub, once(format!("http://{addr}/")));
    match hub.set_on_connect(&sse, OWNER, "k", text("x")).await {
        Err(e @ Error::OnConnectNotWritable(_)) => {
            assert!(
                e.to_string().contains("for WebSocket connections"),
                "got {e}"
            )
        }
        other => panic!("expected SSE to be refused, got {other:?}"),
    }
}
