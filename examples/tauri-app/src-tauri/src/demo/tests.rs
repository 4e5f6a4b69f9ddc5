//! The demo server's tests: they talk to the real server on 127.0.0.1:0 with real clients. Every await is
//! bounded.

use super::*;
use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{
    self, protocol::frame::coding::CloseCode, protocol::CloseFrame,
};

const LIMIT: Duration = Duration::from_secs(10);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Ws) -> tungstenite::Message {
    timeout(LIMIT, ws.next())
        .await
        .expect("expected a frame within the limit, got a timeout")
        .expect("expected a frame, got the end of the stream")
        .expect("expected a frame, got an error")
}

fn fast() -> DemoConfig {
    DemoConfig {
        token_interval: Duration::from_millis(5),
        tick_interval: Duration::from_millis(50),
        feed_interval: Duration::from_millis(20),
    }
}

/// One parsed SSE event: only the fields this server writes.
#[derive(Debug, Default, Clone, PartialEq)]
struct SseEvent {
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    retry: Option<String>,
}

/// A minimal SSE reader over a reqwest response: enough to check this server's output, not a full parser.
/// It buffers bytes, so a chunk that ends inside a UTF-8 character is fine.
struct SseReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

/// One event block (its lines, without the blank line that ends it).
fn parse_event(block: &str) -> SseEvent {
    let mut event = SseEvent::default();
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_string();
        match field {
            "event" => event.event = Some(value),
            "id" => event.id = Some(value),
            "data" => event.data = Some(value),
            "retry" => event.retry = Some(value),
            _ => {}
        }
    }
    event
}

impl SseReader {
    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("expected an SSE event in UTF-8");
                return parse_event(&block);
            }
            let chunk = timeout(LIMIT, self.response.chunk())
                .await
                .expect("expected an SSE chunk within the limit, got a timeout")
                .expect("expected an SSE chunk, got a read error")
                .expect("expected an SSE chunk, got the end of the stream");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Reads the first event, which must be the `retry: 1000` the server sends before any other.
    async fn retry_first(&mut self) {
        let first = self.next().await;
        assert_eq!(
            first.retry.as_deref(),
            Some("1000"),
            "expected retry: 1000 first, got {first:?}"
        );
    }

    /// Drains whatever was buffered and waits for the body's end; `false` if it has not ended within the limit.
    async fn ends(&mut self) -> bool {
        let ended = timeout(LIMIT, async {
            loop {
                match self.response.chunk().await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                }
            }
        })
        .await;
        ended.is_ok()
    }
}

fn assert_status(response: &reqwest::Response, want: u16) {
    assert_eq!(
        response.status(),
        want,
        "expected status {want}, got {}",
        response.status()
    );
}

fn assert_content_type(response: &reqwest::Response, want: &str) {
    let content_type = response.headers().get("content-type").cloned();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some(want),
        "expected content-type {want}, got {content_type:?}"
    );
}

async fn open_sse(request: reqwest::RequestBuilder) -> SseReader {
    let response = timeout(LIMIT, request.send())
        .await
        .expect("expected a response within the limit, got a timeout")
        .expect("expected a response, got an error");
    assert_status(&response, 200);
    assert_content_type(&response, "text/event-stream");
    SseReader {
        response,
        buffer: Vec::new(),
    }
}

/// Reads the retry event, then every event up to and including `done`.
async fn read_until_done(reader: &mut SseReader) -> Vec<SseEvent> {
    reader.retry_first().await;
    let mut events = Vec::new();
    loop {
        let event = reader.next().await;
        let done = event.event.as_deref() == Some("done");
        events.push(event);
        if done {
            return events;
        }
    }
}

/// A `tick` event with the id `id`.
fn assert_tick(tick: &SseEvent, id: u64) {
    assert_eq!(
        tick.event.as_deref(),
        Some("tick"),
        "expected a tick, got {tick:?}"
    );
    assert_eq!(
        tick.id,
        Some(id.to_string()),
        "expected tick id {id}, got {tick:?}"
    );
}

fn words_of(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event.as_deref() == Some("summary"))
        .map(|e| e.data.clone().unwrap_or_default())
        .collect()
}

fn ids_of(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.id.as_deref().and_then(|id| id.parse().ok()).unwrap_or(0))
        .collect()
}

#[test]
fn urls_point_at_loopback_port() {
    let urls = DemoUrls::for_addr(SocketAddr::from(([127, 0, 0, 1], 4321)));
    assert_eq!(urls.ws, "ws://127.0.0.1:4321/chat");
    assert_eq!(urls.sse, "http://127.0.0.1:4321/summary");
    assert_eq!(urls.feed, "http://127.0.0.1:4321/feed");
    assert_eq!(urls.feed_stream, "http://127.0.0.1:4321/feed/stream");
    assert_eq!(urls.status, "http://127.0.0.1:4321/status");
    assert_eq!(urls.control, "http://127.0.0.1:4321/control/streaming");
    let json = serde_json::to_value(&urls).unwrap();
    assert_eq!(
        json["feedStream"], "http://127.0.0.1:4321/feed/stream",
        "expected camelCase field names, got {json}"
    );
}

#[test]
fn summary_has_about_twenty_words_and_names_the_query() {
    let words = summary_words("rust sse");
    assert!(
        (16..=24).contains(&words.len()),
        "expected about 20 words, got {}",
        words.len()
    );
    assert!(
        words.join(" ").contains("rust sse"),
        "expected the query in the text, got {words:?}"
    );
}

#[tokio::test]
async fn chat_greets_then_echoes_text_and_binary_and_repeats_close_code() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    assert!(
        server.addr().ip().is_loopback(),
        "expected a loopback address, got {}",
        server.addr()
    );
    let (mut ws, _) = timeout(LIMIT, tokio_tungstenite::connect_async(server.urls().ws))
        .await
        .expect("expected a WebSocket handshake within the limit, got a timeout")
        .expect("expected the WebSocket handshake to succeed");

    let welcome = recv(&mut ws).await;
    assert_eq!(
        welcome,
        tungstenite::Message::text(WELCOME),
        "expected the welcome, got {welcome:?}"
    );

    ws.send(tungstenite::Message::text("hello")).await.unwrap();
    let reply = recv(&mut ws).await;
    assert_eq!(
        reply,
        tungstenite::Message::text("hello"),
        "expected the text echo, got {reply:?}"
    );

    let payload = vec![0u8, 1, 2, 255];
    ws.send(tungstenite::Message::binary(payload.clone()))
        .await
        .unwrap();
    let reply = recv(&mut ws).await;
    assert_eq!(
        reply,
        tungstenite::Message::binary(payload),
        "expected the binary echo, got {reply:?}"
    );

    ws.close(Some(CloseFrame {
        code: CloseCode::from(4001),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    let reply = recv(&mut ws).await;
    match reply {
        tungstenite::Message::Close(Some(frame)) => {
            assert_eq!(
                u16::from(frame.code),
                4001,
                "expected close code 4001, got {:?}",
                frame.code
            );
            assert_eq!(
                frame.reason.as_str(),
                "bye",
                "expected close reason bye, got {:?}",
                frame.reason
            );
        }
        other => panic!("expected a close frame with code 4001, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn summary_get_streams_words_in_order_then_done_then_ticks() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let mut reader = open_sse(reqwest::Client::new().get(server.urls().sse)).await;

    let events = read_until_done(&mut reader).await;
    let expected_words = summary_words(DEFAULT_QUERY);
    assert_eq!(
        words_of(&events),
        expected_words,
        "expected the default summary, got {events:?}"
    );
    let n = expected_words.len() as u64;
    assert_eq!(
        ids_of(&events),
        (1..=n + 1).collect::<Vec<_>>(),
        "expected ids 1..={}, got {events:?}",
        n + 1
    );
    let done = events.last().unwrap();
    assert_eq!(
        done.data.as_deref(),
        Some(format!("{{\"words\":{n}}}").as_str()),
        "expected done data, got {done:?}"
    );

    for expected_id in [n + 2, n + 3] {
        assert_tick(&reader.next().await, expected_id);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn summary_post_body_picks_the_text() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let request = reqwest::Client::new()
        .post(server.urls().sse)
        .header("content-type", "application/json")
        .body(r#"{"query": "websocket reconnect"}"#);
    let mut reader = open_sse(request).await;
    let events = read_until_done(&mut reader).await;
    assert_eq!(
        words_of(&events),
        summary_words("websocket reconnect"),
        "expected the summary for the posted query, got {events:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn summary_resumes_after_last_event_id() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let request = reqwest::Client::new()
        .get(server.urls().sse)
        .header("Last-Event-ID", "5");
    let mut reader = open_sse(request).await;
    let events = read_until_done(&mut reader).await;
    let n = summary_words(DEFAULT_QUERY).len() as u64;
    assert_eq!(
        ids_of(&events),
        (6..=n + 1).collect::<Vec<_>>(),
        "expected ids 6..={}, got {events:?}",
        n + 1
    );
    assert_eq!(
        words_of(&events),
        summary_words(DEFAULT_QUERY)[5..].to_vec(),
        "expected the words after the fifth, got {events:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn summary_resumed_after_done_sends_only_later_ticks() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let request = reqwest::Client::new()
        .get(server.urls().sse)
        .header("Last-Event-ID", "40");
    let mut reader = open_sse(request).await;
    reader.retry_first().await;
    assert_tick(&reader.next().await, 41);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let urls = server.urls();
    let mut reader = open_sse(reqwest::Client::new().get(urls.sse)).await;
    let _ = reader.next().await;
    let (mut ws, _) = timeout(LIMIT, tokio_tungstenite::connect_async(urls.ws))
        .await
        .unwrap()
        .unwrap();
    let _welcome = recv(&mut ws).await;

    timeout(LIMIT, server.shutdown())
        .await
        .expect("expected shutdown within the limit, got a timeout");

    let reply = timeout(LIMIT, ws.next())
        .await
        .expect("expected a close frame, got a timeout");
    match reply {
        Some(Ok(tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(
                u16::from(frame.code),
                1001,
                "expected close code 1001, got {:?}",
                frame.code
            )
        }
        other => panic!("expected a close frame with code 1001, got {other:?}"),
    }
    // The SSE body ends: drain whatever was buffered, then the stream must report its end.
    assert!(
        reader.ends().await,
        "expected the SSE stream to end after shutdown, got a timeout"
    );
}

// -----------------------------------------------------------------------------------------------------------
// Feed, status and the streaming switch
// -----------------------------------------------------------------------------------------------------------

async fn get_status(urls: &DemoUrls) -> DemoStatus {
    let response = timeout(LIMIT, reqwest::Client::new().get(&urls.status).send())
        .await
        .expect("expected /status within the limit, got a timeout")
        .expect("expected /status to answer");
    let body = response.bytes().await.expect("expected a /status body");
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "expected DemoStatus JSON, got {e}: {}",
            String::from_utf8_lossy(&body)
        )
    })
}

async fn switch_streaming(urls: &DemoUrls, enabled: bool) -> DemoStatus {
    let response = timeout(
        LIMIT,
        reqwest::Client::new()
            .post(&urls.control)
            .header("content-type", "application/json")
            .body(format!(r#"{{"enabled": {enabled}}}"#))
            .send(),
    )
    .await
    .expect("expected /control/streaming within the limit, got a timeout")
    .expect("expected /control/streaming to answer");
    assert_status(&response, 200);
    serde_json::from_slice(&response.bytes().await.unwrap()).expect("expected DemoStatus JSON")
}

/// Polls `/status` until `accept` holds; panics with the last status after the limit.
async fn wait_status(
    urls: &DemoUrls,
    what: &str,
    accept: impl Fn(&DemoStatus) -> bool,
) -> DemoStatus {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let status = get_status(urls).await;
        if accept(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {what} within {LIMIT:?}, got {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn feed_ids(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.event.as_deref() == Some(FEED_EVENT))
        .map(|e| {
            e.id.as_deref()
                .and_then(|id| id.parse().ok())
                .expect("a numeric id")
        })
        .collect()
}

/// Parses a finite SSE document (the `/feed` answer).
fn parse_document(text: &str) -> Vec<SseEvent> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(parse_event)
        .collect()
}

/// The ids of the `/feed` document, asked for with `Last-Event-ID: last` if given.
async fn feed_document_ids(
    client: &reqwest::Client,
    urls: &DemoUrls,
    last: Option<&str>,
) -> Vec<u64> {
    let mut request = client.get(&urls.feed);
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last);
    }
    let response = timeout(LIMIT, request.send())
        .await
        .expect("expected /feed within the limit, got a timeout")
        .unwrap();
    feed_ids(&parse_document(&response.text().await.unwrap()))
}

#[test]
fn feed_texts_rotate_and_name_the_number() {
    assert_eq!(feed_text(1), "build #1 passed");
    assert_eq!(feed_text(7), "build #7 passed");
    assert!(
        feed_text(4).starts_with("cache hit rate back to 9"),
        "got {}",
        feed_text(4)
    );
}

#[tokio::test]
async fn feed_stream_relays_new_events_in_order_and_resumes_after_last_event_id() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let urls = server.urls();
    let mut reader = open_sse(reqwest::Client::new().get(&urls.feed_stream)).await;
    reader.retry_first().await;
    let mut events = Vec::new();
    for _ in 0..5 {
        events.push(reader.next().await);
    }
    let ids = feed_ids(&events);
    let expected: Vec<u64> = (ids[0]..ids[0] + 5).collect();
    assert_eq!(ids, expected, "expected 5 consecutive ids, got {events:?}");
    assert_eq!(
        events[0].data.as_deref(),
        Some(feed_text(ids[0]).as_str()),
        "expected the feed text, got {events:?}"
    );

    // Resume after the third: the fourth comes next, whatever was produced meanwhile.
    let request = reqwest::Client::new()
        .get(&urls.feed_stream)
        .header("Last-Event-ID", ids[2].to_string());
    let mut resumed = open_sse(request).await;
    let _retry = resumed.next().await;
    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(resumed.next().await);
    }
    assert_eq!(
        feed_ids(&again),
        vec![ids[2] + 1, ids[2] + 2, ids[2] + 3],
        "expected the events after #{}, got {again:?}",
        ids[2]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn feed_document_answers_304_while_nothing_is_new() {
    // The producer waits an hour: no event comes during this test.
    let config = DemoConfig {
        feed_interval: Duration::from_secs(3600),
        ..fast()
    };
    let server = DemoServer::start_with(config).await.unwrap();
    let urls = server.urls();
    let client = reqwest::Client::new();

    let response = client.get(&urls.feed).send().await.unwrap();
    assert_status(&response, 200);
    assert_content_type(&response, "text/event-stream");
    let etag = response
        .headers()
        .get("etag")
        .cloned()
        .expect("expected an ETag");
    let body = response.text().await.unwrap();
    assert_eq!(
        body, "",
        "expected an empty document before the first event, got {body:?}"
    );

    let response = client
        .get(&urls.feed)
        .header("If-None-Match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        304,
        "expected 304 for {etag:?}, got {}",
        response.status()
    );
    let status = get_status(&urls).await;
    assert_eq!(
        status.feed_polls, 2,
        "expected 2 polls counted, got {status:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn feed_document_after_last_event_id() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let urls = server.urls();
    wait_status(&urls, "at least 8 feed events", |s| s.feed_last_id >= 8).await;
    let client = reqwest::Client::new();

    let ids = feed_document_ids(&client, &urls, None).await;
    assert!(ids.len() >= 8, "expected at least 8 events, got {ids:?}");
    let expected: Vec<u64> = (ids[0]..ids[0] + ids.len() as u64).collect();
    assert_eq!(ids, expected, "expected consecutive ids, got {ids:?}");

    let ids = feed_document_ids(&client, &urls, Some("5")).await;
    assert_eq!(
        ids.first(),
        Some(&6),
        "expected the document to start at #6, got {ids:?}"
    );

    // An id from an earlier run of the server (newer than any event) counts as none.
    let ids = feed_document_ids(&client, &urls, Some("999999")).await;
    assert!(
        !ids.is_empty(),
        "expected the recent events for a stale id, got none"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn status_counts_open_chat_sockets() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let urls = server.urls();
    let status = get_status(&urls).await;
    assert_eq!(
        (status.streaming, status.chat_open, status.chat_accepted),
        (true, 0, 0),
        "expected streaming with no chat socket, got {status:?}"
    );
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (mut ws, _) = timeout(LIMIT, tokio_tungstenite::connect_async(&urls.ws))
            .await
            .unwrap()
            .unwrap();
        let _welcome = recv(&mut ws).await;
        sockets.push(ws);
    }
    wait_status(&urls, "2 open chat sockets", |s| {
        s.chat_open == 2 && s.chat_accepted == 2
    })
    .await;
    let mut first = sockets.remove(0);
    first.close(None).await.unwrap();
    let _ = timeout(LIMIT, first.next()).await;
    drop(first);
    wait_status(&urls, "1 open chat socket, 2 accepted", |s| {
        s.chat_open == 1 && s.chat_accepted == 2
    })
    .await;
    drop(sockets);
    wait_status(&urls, "no open chat socket", |s| s.chat_open == 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn refusing_streaming_ends_open_streams_and_refuses_new_ones_until_allowed_again() {
    let server = DemoServer::start_with(fast()).await.unwrap();
    let urls = server.urls();
    let client = reqwest::Client::new();
    let (mut ws, _) = timeout(LIMIT, tokio_tungstenite::connect_async(&urls.ws))
        .await
        .unwrap()
        .unwrap();
    let _welcome = recv(&mut ws).await;
    let mut feed = open_sse(client.get(&urls.feed_stream)).await;
    let _retry = feed.next().await;
    let mut summary = open_sse(client.get(&urls.sse)).await;
    let _retry = summary.next().await;
    wait_status(&urls, "one of each stream open", |s| {
        (s.chat_open, s.feed_streams, s.summary_streams) == (1, 1, 1)
    })
    .await;

    let status = switch_streaming(&urls, false).await;
    assert!(!status.streaming, "expected streaming off, got {status:?}");

    // The open socket is closed with 1012 (come back later), not 1000.
    loop {
        match recv(&mut ws).await {
            tungstenite::Message::Close(Some(frame)) => {
                assert_eq!(
                    u16::from(frame.code),
                    CLOSE_STREAMING_OFF,
                    "expected close code {CLOSE_STREAMING_OFF}, got {frame:?}"
                );
                break;
            }
            tungstenite::Message::Close(None) => panic!("expected a close code, got none"),
            _ => continue,
        }
    }
    // Both SSE bodies end.
    for (name, reader) in [("feed", &mut feed), ("summary", &mut summary)] {
        assert!(
            reader.ends().await,
            "expected the {name} stream to end, got a timeout"
        );
    }
    wait_status(&urls, "no stream open", |s| {
        (s.chat_open, s.feed_streams, s.summary_streams) == (0, 0, 0)
    })
    .await;

    // New streams are refused: 503 with Retry-After for the chat and the summary ...
    match timeout(LIMIT, tokio_tungstenite::connect_async(&urls.ws))
        .await
        .unwrap()
    {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(
                response.status(),
                503,
                "expected 503, got {}",
                response.status()
            );
            assert_eq!(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("1"),
                "expected Retry-After: 1, got {:?}",
                response.headers()
            );
        }
        other => panic!("expected the upgrade to be refused with 503, got {other:?}"),
    }
    let response = client.get(&urls.sse).send().await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "expected 503 for /summary, got {}",
        response.status()
    );
    // ... and a plain JSON answer from the feed stream, while the poll document still works.
    let response = client.get(&urls.feed_stream).send().await.unwrap();
    assert_status(&response, 200);
    assert_content_type(&response, "application/json");
    let response = client.get(&urls.feed).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "expected /feed to answer 200, got {}",
        response.status()
    );
    let status = get_status(&urls).await;
    assert_eq!(
        status.refused, 3,
        "expected 3 refused requests, got {status:?}"
    );
    assert!(
        status.feed_polls >= 1,
        "expected the poll counted, got {status:?}"
    );

    // Allowed again: everything streams.
    let status = switch_streaming(&urls, true).await;
    assert!(status.streaming, "expected streaming on, got {status:?}");
    let (mut ws, _) = timeout(LIMIT, tokio_tungstenite::connect_async(&urls.ws))
        .await
        .unwrap()
        .expect("expected the upgrade to succeed again");
    let welcome = recv(&mut ws).await;
    assert_eq!(
        welcome,
        tungstenite::Message::text(WELCOME),
        "got {welcome:?}"
    );
    let mut feed = open_sse(client.get(&urls.feed_stream)).await;
    let _retry = feed.next().await;
    let event = feed.next().await;
    assert_eq!(
        event.event.as_deref(),
        Some(FEED_EVENT),
        "expected a feed event, got {event:?}"
    );
    server.shutdown().await;
}
