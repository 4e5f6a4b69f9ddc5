//! Tests of `/topics` and the fault switches (`faults.rs`), against the real server on 127.0.0.1:0 with real
//! clients. Every await is bounded.

use super::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode};

const LIMIT: Duration = Duration::from_secs(10);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str) -> Ws {
    timeout(LIMIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("expected a WebSocket handshake within the limit, got a timeout")
        .expect("expected the WebSocket handshake to succeed")
        .0
}

async fn recv(ws: &mut Ws) -> Option<tungstenite::Message> {
    timeout(LIMIT, ws.next())
        .await
        .expect("expected a frame within the limit, got a timeout")
        .map(|r| r.expect("expected a frame, got an error"))
}

/// The next JSON text from `/topics`.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match recv(ws).await {
            Some(tungstenite::Message::Text(text)) => {
                return serde_json::from_str(&text).expect("expected JSON")
            }
            Some(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_)) => continue,
            other => panic!("expected a JSON text, got {other:?}"),
        }
    }
}

async fn send_json(ws: &mut Ws, value: Value) {
    ws.send(tungstenite::Message::text(value.to_string()))
        .await
        .expect("expected the send to succeed");
}

async fn status(urls: &DemoUrls) -> DemoStatus {
    let response = timeout(LIMIT, reqwest::Client::new().get(&urls.status).send())
        .await
        .expect("expected /status within the limit, got a timeout")
        .expect("expected /status to answer");
    serde_json::from_slice(&response.bytes().await.unwrap()).expect("expected DemoStatus JSON")
}

async fn post(urls: &DemoUrls, path: &str, body: Value) -> DemoStatus {
    let response = timeout(
        LIMIT,
        reqwest::Client::new()
            .post(format!("{}{path}", urls.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send(),
    )
    .await
    .expect("expected an answer within the limit, got a timeout")
    .expect("expected the control endpoint to answer");
    assert_eq!(
        response.status(),
        200,
        "expected 200 from {path}, got {response:?}"
    );
    serde_json::from_slice(&response.bytes().await.unwrap()).expect("expected DemoStatus JSON")
}

#[tokio::test]
async fn topics_subscribe_publish_typed_messages_unsubscribe_and_answer_pings() {
    let server = DemoServer::start().await.unwrap();
    let urls = server.urls();
    let mut ws = open(&urls.topics).await;

    send_json(&mut ws, json!({ "type": "subscribe", "topic": "news" })).await;
    let got = next_json(&mut ws).await;
    assert_eq!(
        got,
        json!({ "type": "subscribed", "topic": "news" }),
        "expected the subscription, got {got}"
    );
    let got = next_json(&mut ws).await;
    assert_eq!(
        got["type"], "headline",
        "expected a headline on news, got {got}"
    );
    assert_eq!(got["topic"], "news", "expected topic news, got {got}");

    send_json(&mut ws, json!({ "type": "ping" })).await;
    let mut seen = Vec::new();
    loop {
        let got = next_json(&mut ws).await;
        if got == json!({ "type": "pong" }) {
            break;
        }
        seen.push(got);
        assert!(seen.len() < 10, "expected a pong, got {seen:?}");
    }
    let s = status(&urls).await;
    assert_eq!(
        s.topic_sockets.len(),
        1,
        "expected one topics socket, got {s:?}"
    );
    assert_eq!(
        s.topic_sockets[0].topics,
        vec!["news"],
        "expected news only, got {s:?}"
    );
    assert_eq!(
        (s.pings_answered, s.pings_ignored),
        (1, 0),
        "expected one ping answered, got {s:?}"
    );

    // Pings switched off: the ping goes unanswered and is counted as ignored.
    let off = post(&urls, "/control/pings", json!({ "answer": false })).await;
    assert!(!off.answer_pings, "expected pings off, got {off:?}");
    send_json(&mut ws, json!({ "type": "unsubscribe", "topic": "news" })).await;
    send_json(&mut ws, json!({ "type": "ping" })).await;
    send_json(&mut ws, json!({ "type": "nonsense" })).await;
    loop {
        let got = next_json(&mut ws).await;
        assert_ne!(
            got["type"], "pong",
            "expected no pong while pings are off, got {got}"
        );
        if got["type"] == "error" {
            break;
        }
    }
    let s = status(&urls).await;
    assert!(
        s.topic_sockets[0].topics.is_empty(),
        "expected no topic held, got {s:?}"
    );
    assert_eq!(
        (s.pings_answered, s.pings_ignored),
        (1, 1),
        "expected one ping ignored, got {s:?}"
    );
    assert_eq!(s.topic_sockets[0].subscribes, 1, "got {s:?}");
    assert_eq!(s.topic_sockets[0].unsubscribes, 1, "got {s:?}");
}

#[tokio::test]
async fn drop_cuts_every_socket_without_a_close_frame_and_the_server_keeps_listening() {
    let server = DemoServer::start().await.unwrap();
    let urls = server.urls();
    let mut chat = open(&urls.ws).await;
    let _welcome = recv(&mut chat).await;
    let mut topics = open(&urls.topics).await;

    let s = post(&urls, "/control/drop", json!({})).await;
    assert_eq!(s.drops, 1, "expected one drop, got {s:?}");
    for ws in [&mut chat, &mut topics] {
        let got = timeout(LIMIT, ws.next())
            .await
            .expect("expected the cut within the limit");
        assert!(
            matches!(
                got,
                None | Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                )))
            ),
            "expected the socket cut without a closing handshake, got {got:?}"
        );
    }
    // Still listening: a new chat gets its welcome.
    let mut again = open(&urls.ws).await;
    let welcome = recv(&mut again).await;
    assert_eq!(
        welcome,
        Some(tungstenite::Message::text(WELCOME)),
        "got {welcome:?}"
    );
}

#[tokio::test]
async fn stop_refuses_connections_then_start_listens_on_the_same_port_with_the_same_counters() {
    let server = DemoServer::start().await.unwrap();
    let urls = server.urls();
    let handle = server.handle();
    let mut chat = open(&urls.ws).await;
    let _welcome = recv(&mut chat).await;
    chat.send(tungstenite::Message::text("one")).await.unwrap();
    let _echo = recv(&mut chat).await;

    handle.stop().await.expect("expected the server to stop");
    match recv(&mut chat).await {
        Some(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Away, "expected 1001, got {frame:?}")
        }
        other => panic!("expected a close frame with 1001, got {other:?}"),
    }
    let refused = timeout(LIMIT, tokio::net::TcpStream::connect(server.addr())).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "expected the connection refused, got {refused:?}"
    );
    assert!(
        !handle.status().listening,
        "expected not listening, got {:?}",
        handle.status()
    );

    handle
        .start()
        .await
        .expect("expected the server to start again");
    let mut chat = open(&urls.ws).await;
    let _welcome = recv(&mut chat).await;
    chat.send(tungstenite::Message::text("two")).await.unwrap();
    let _echo = recv(&mut chat).await;
    let s = status(&urls).await;
    assert!(s.listening, "expected listening, got {s:?}");
    assert_eq!(s.server_starts, 2, "expected two starts, got {s:?}");
    assert_eq!(
        s.chat_received,
        vec!["one", "two"],
        "expected both texts once, in order, got {s:?}"
    );
    assert_eq!(s.chat_accepted, 2, "got {s:?}");

    // The HTTP form: down for a while, then back by itself.
    let s = post(&urls, "/control/stop", json!({ "downMs": 200 })).await;
    assert!(
        s.listening,
        "expected the answer before the stop, got {s:?}"
    );
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let s = handle.status();
        if s.server_starts == 3 && s.listening {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected a third start, got {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    chat.close(None).await.ok();
}

#[tokio::test]
async fn slow_delays_every_echo_and_the_chat_records_close_codes() {
    let server = DemoServer::start().await.unwrap();
    let urls = server.urls();
    let s = post(&urls, "/control/slow", json!({ "delayMs": 300 })).await;
    assert_eq!(s.slow_ms, 300, "got {s:?}");
    let mut chat = open(&urls.ws).await;
    let _welcome = recv(&mut chat).await;
    let sent = std::time::Instant::now();
    chat.send(tungstenite::Message::text("slow")).await.unwrap();
    let _echo = recv(&mut chat).await;
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "expected the echo after the 300 ms pause, got it after {:?}",
        sent.elapsed()
    );
    chat.close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::Away,
        reason: "".into(),
    }))
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let s = status(&urls).await;
        if s.close_codes == vec![1001] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected close code 1001 recorded, got {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
