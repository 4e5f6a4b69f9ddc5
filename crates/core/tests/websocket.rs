//! WebSocket streams against a real tokio/axum server on 127.0.0.1:0.

mod common;

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State as AxState,
    },
    http::HeaderMap,
    response::IntoResponse,
    routing::get,
    Router,
};
use base64::Engine as _;
use common::*;
use tauri_plugin_realtime_core::{Error, Frame, Outgoing, State, Transport};

async fn echo(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    AxState(seen): AxState<Seen>,
) -> impl IntoResponse {
    seen.push(format!(
        "x-token={}",
        headers
            .get("x-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    ));
    ws.protocols(["chat.v2"])
        .on_upgrade(move |mut socket: WebSocket| async move {
            let _ = socket.send(Message::Text("welcome".into())).await;
            while let Some(Ok(msg)) = socket.recv().await {
                match msg {
                    Message::Text(t) => {
                        let _ = socket.send(Message::Text(t)).await;
                    }
                    Message::Binary(b) => {
                        let _ = socket.send(Message::Binary(b)).await;
                    }
                    Message::Close(c) => {
                        let (code, reason) = c
                            .map(|c| (c.code, c.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        seen.push(format!("close {code} {reason}"));
                        break;
                    }
                    _ => {}
                }
            }
        })
}

async fn server_closes(ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.on_upgrade(|mut socket: WebSocket| async move {
        let _ = socket.send(Message::Text("last words".into())).await;
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "server bye".into(),
            })))
            .await;
        while socket.recv().await.is_some() {}
    })
}

async fn server() -> (std::net::SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/echo", get(echo))
        .route("/closes", get(server_closes))
        .with_state(seen.clone());
    (serve(app).await, seen)
}

#[tokio::test]
async fn text_binary_headers_and_subprotocol() {
    let (addr, seen) = server().await;
    let hub = hub();
    let mut o = opts(format!("ws://{addr}/echo"));
    o.headers.insert("X-Token".into(), "secret-1".into());
    o.protocols = vec!["chat.v2".into()];
    let (id, mut frames) = connect(&hub, o);
    frames.state(State::Connected).await;
    frames.message("welcome").await;
    seen.wait_for("the request header", |s| s == "x-token=secret-1")
        .await;

    assert!(
        !hub.send(&id, "test", Outgoing::Text("hello".into()))
            .await
            .unwrap(),
        "expected a direct write"
    );
    frames.message("hello").await;

    let bytes = vec![0u8, 1, 2, 255];
    hub.send(&id, "test", Outgoing::Binary(bytes.clone()))
        .await
        .unwrap();
    let f = frames
        .until("binary echo", |f| {
            matches!(f, Frame::Message { binary: true, .. })
        })
        .await;
    let Frame::Message {
        data,
        transport,
        event,
        last_event_id,
        ..
    } = f
    else {
        unreachable!()
    };
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&data)
            .unwrap(),
        bytes
    );
    assert_eq!(
        (transport, event, last_event_id),
        (Transport::Websocket, None, None)
    );

    let info = hub.inspect(Some("test"), Some(&id)).unwrap();
    assert_eq!(
        info[0].protocol.as_deref(),
        Some("chat.v2"),
        "expected the chosen subprotocol, got {:?}",
        info[0]
    );
    assert_eq!((info[0].frames_out, info[0].bytes_out), (2, 9));
    assert_eq!(info[0].frames_in, 3);

    hub.close(&id, "test", Some(4000), Some("bye".into()))
        .unwrap();
    seen.wait_for("the client's close code", |s| s == "close 4000 bye")
        .await;
    frames.assert_contiguous();
    // The closer's subscription ends at once; the upstream and every task of it are gone soon after.
    assert_eq!(hub.upstream_count(), 0);
    wait_until("no live task", || hub.live_tasks() == 0).await;
}

#[tokio::test]
async fn server_close_is_relayed_and_ends_disconnected() {
    let (addr, _) = server().await;
    let hub = hub();
    let (_id, mut frames) = connect(&hub, opts(format!("ws://{addr}/closes")));
    frames.message("last words").await;
    let close = frames
        .until("close frame", |f| matches!(f, Frame::Close { .. }))
        .await;
    assert!(
        matches!(&close, Frame::Close { code: 1000, reason, .. } if reason == "server bye"),
        "expected close 1000 server bye, got {close:?}"
    );
    let end = frames.state(State::Disconnected).await;
    assert!(
        matches!(&end, Frame::State { reason: Some(r), .. } if r.contains("server bye")),
        "expected the reason to name the server's close, got {end:?}"
    );
    frames.assert_contiguous();
}

#[tokio::test]
async fn bad_input_gives_clear_errors() {
    let (addr, _) = server().await;
    let hub = hub();
    let e = hub
        .send("nope", "test", Outgoing::Text("x".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnknownConnection(_)),
        "expected UnknownConnection, got {e:?}"
    );
    assert!(e.to_string().contains("unknown connection id"), "got {e}");

    let (id, mut frames) = connect(&hub, opts(format!("ws://{addr}/echo")));
    frames.state(State::Connected).await;
    // Another owner's id is unknown to it.
    let e = hub
        .send(&id, "someone-else", Outgoing::Text("x".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnknownConnection(_)),
        "expected UnknownConnection, got {e:?}"
    );
    let e = hub.close(&id, "test", Some(1001), None).unwrap_err();
    assert!(e.to_string().contains("1000 or 3000-4999"), "got {e}");
    let e = Outgoing::from_base64("not base64!").unwrap_err();
    assert!(e.to_string().contains("not valid base64"), "got {e}");
    hub.close(&id, "test", None, None).unwrap();
    let e = hub
        .send(&id, "test", Outgoing::Text("late".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::UnknownConnection(_)),
        "expected UnknownConnection after close, got {e:?}"
    );

    for (url, want) in [
        ("ws://", "not a valid URL"),
        ("ftp://127.0.0.1/x", "unsupported url scheme"),
    ] {
        let e = try_connect(&hub, opts(url)).err().expect("an error");
        assert!(
            e.to_string().contains(want),
            "expected {want:?} for {url}, got {e}"
        );
    }
}

#[tokio::test]
async fn unreachable_server_reconnects_and_queues_sends() {
    let port = closed_port().await;
    let hub = hub();
    let mut o = opts(format!("ws://127.0.0.1:{port}/echo"));
    o.reconnect = Some(tauri_plugin_realtime_core::Toggle::With(
        tauri_plugin_realtime_core::ReconnectOptions {
            initial_delay_ms: 50,
            max_retries: Some(2),
            ..Default::default()
        },
    ));
    let (id, mut frames) = connect(&hub, o);
    let r = frames.state(State::Reconnecting).await;
    assert!(
        matches!(&r, Frame::State { attempt: Some(1), reason: Some(reason), .. } if reason.contains("network error")),
        "expected attempt 1 with a network error, got {r:?}"
    );
    assert!(
        hub.send(&id, "test", Outgoing::Text("held".into()))
            .await
            .unwrap(),
        "expected the send to be queued"
    );
    let failed = frames.state(State::Failed).await;
    assert!(
        matches!(&failed, Frame::State { reason: Some(reason), .. } if reason.contains("gave up after 2 retries")),
        "expected give-up reason, got {failed:?}"
    );
    frames
        .until("fatal error frame", |f| {
            matches!(f, Frame::Error { fatal: true, .. })
        })
        .await;
    let info = hub.inspect(None, Some(&id)).unwrap();
    assert_eq!(
        info[0].queued, 1,
        "expected the held message to be visible, got {:?}",
        info[0]
    );
    frames.assert_contiguous();
}
