//! Tests of the panels' endpoints (`room.rs`, `feeds.rs`) against the real server on 127.0.0.1:0 with a real HTTP
//! client. Every await is bounded.

use super::*;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(LIMIT)
        .build()
        .expect("expected a client")
}

async fn post(base: &str, key: &str, text: &str) -> (u16, RoomMessage) {
    let response = client()
        .post(format!("{base}/room/messages"))
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(serde_json::json!({ "author": "t", "text": text }).to_string())
        .send()
        .await
        .expect("expected an answer to the POST");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("expected a body");
    let message = serde_json::from_slice(&body).unwrap_or(RoomMessage {
        id: 0,
        author: String::new(),
        text: String::from_utf8_lossy(&body).into_owned(),
        client_id: None,
        key: None,
    });
    (status, message)
}

async fn room_log(base: &str) -> RoomLog {
    let response = client()
        .get(format!("{base}/room/log"))
        .send()
        .await
        .expect("expected an answer from /room/log");
    serde_json::from_slice(&response.bytes().await.expect("expected a body"))
        .expect("expected a RoomLog")
}

/// Reads `response` until its text holds `needle` (or it ends); gives everything read.
async fn read_until(response: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        match timeout(LIMIT, response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => panic!("expected {needle:?} within the limit, got {text:?}"),
        }
    }
    text
}

#[tokio::test]
async fn a_post_is_stored_once_per_idempotency_key() {
    let server = DemoServer::start().await.expect("demo server");
    let base = format!("http://{}", server.addr());

    let (first, stored) = post(&base, "k1", "hello").await;
    assert_eq!(first, 201, "expected 201 for a new key, got {first}");
    let (again, replayed) = post(&base, "k1", "hello").await;
    assert_eq!(
        again, 200,
        "expected 200 for a key seen before, got {again}"
    );
    assert_eq!(
        replayed, stored,
        "expected the message stored the first time"
    );
    let (other, next) = post(&base, "k2", "hello").await;
    assert_eq!(other, 201, "expected 201 for another key, got {other}");
    assert_eq!(next.id, stored.id + 1);

    let log = room_log(&base).await;
    let texts: Vec<_> = log.messages.iter().map(|m| (m.id, m.key.clone())).collect();
    assert_eq!(
        texts,
        vec![(1, Some("k1".into())), (2, Some("k2".into()))],
        "expected two messages, got {log:?}"
    );
    assert_eq!((log.posts, log.replays), (3, 1), "got {log:?}");

    let (bad, _) = post(&base, "k3", " ").await;
    assert_eq!(bad, 400, "expected an empty text refused, got {bad}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_restart_ends_streams_refuses_for_a_moment_and_streams_resume_after_last_event_id() {
    let server = DemoServer::start().await.expect("demo server");
    let base = format!("http://{}", server.addr());
    post(&base, "a", "one").await;

    let mut stream = client()
        .get(format!("{base}/room/events"))
        .send()
        .await
        .expect("expected the room stream");
    let head = read_until(&mut stream, "id: 1\n").await;
    assert!(
        head.contains(&format!("event: {ROOM_WELCOME}\ndata: {{\"messages\":1}}")),
        "expected a WELCOME first, got {head:?}"
    );
    assert!(
        head.contains(&format!("event: {ROOM_NEW_MESSAGE}")),
        "got {head:?}"
    );

    let restarted = client()
        .post(format!("{base}/control/room"))
        .body(r#"{"downMs": 400}"#)
        .send()
        .await
        .expect("expected the restart to answer");
    assert_eq!(restarted.status(), 200);
    // The open stream ends.
    let rest = read_until(&mut stream, "never sent").await;
    assert!(
        !rest.contains("id: 2"),
        "expected no more events, got {rest:?}"
    );

    let (refused, _) = post(&base, "b", "two").await;
    assert_eq!(refused, 503, "expected 503 while restarting, got {refused}");
    let refused = client()
        .get(format!("{base}/room/events"))
        .send()
        .await
        .expect("expected an answer");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");

    // Back after downMs: the retried POST is stored, and a stream resumed after id 1 starts with id 2.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while room_log(&base).await.down {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected the room back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stored, message) = post(&base, "b", "two").await;
    assert_eq!((stored, message.id), (201, 2));
    let mut resumed = client()
        .get(format!("{base}/room/events"))
        .header("last-event-id", "1")
        .send()
        .await
        .expect("expected the room stream");
    let text = read_until(&mut resumed, "id: 2\n").await;
    assert!(
        text.contains("id: 2\n") && !text.contains("id: 1\n"),
        "expected only the message after id 1, got {text:?}"
    );
    let log = room_log(&base).await;
    assert_eq!(
        (
            log.refused_posts,
            log.refused_streams,
            log.restarts,
            log.streams_accepted
        ),
        (1, 1, 1, 2),
        "got {log:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn feed_streams_are_counted_per_via_while_open() {
    let server = DemoServer::start().await.expect("demo server");
    let base = format!("http://{}", server.addr());
    let feeds = || async {
        let response = client()
            .get(format!("{base}/feeds"))
            .send()
            .await
            .expect("expected /feeds");
        serde_json::from_slice::<std::collections::BTreeMap<String, usize>>(
            &response.bytes().await.expect("expected a body"),
        )
        .expect("expected counts")
    };

    let mut open = client()
        .get(format!("{base}/feed/stream?via=own"))
        .send()
        .await
        .expect("expected the feed stream");
    read_until(&mut open, "retry:").await;
    // Not counted: no via, or one that is not 1-16 lower-case letters.
    let _plain = client()
        .get(format!("{base}/feed/stream?via=NOPE"))
        .send()
        .await
        .expect("expected the feed stream");
    let counts = feeds().await;
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![("own".to_string(), 1)],
        "expected one own stream"
    );

    drop(open);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while feeds().await.get("own") != Some(&0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected the count back to 0"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}
