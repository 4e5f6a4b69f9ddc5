//! The embedded demo server: a small axum app on `127.0.0.1:<random port>` that gives the example page something
//! real to stream from, with no network access.
//!
//! - `GET /chat`: a WebSocket chat that greets on connect and echoes every message back.
//! - `GET|POST /summary`: a Server-Sent-Events stream shaped like an LLM search summary: one word per event, then
//!   `done`, then a `tick` every few seconds, forever. It honours `Last-Event-ID`, so a client that reconnects
//!   resumes where it left off and never sees an event twice.
//!
//! It is also meant as a plain sample of such a server: nothing in here knows about Tauri. It listens on loopback
//! only and stops with [`DemoServer::shutdown`] (or when the handle is dropped).

use std::{net::SocketAddr, time::Duration};

use axum::{
    body::Bytes,
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Query, State,
    },
    http::HeaderMap,
    response::{
        sse::{Event, Sse},
        IntoResponse, Response,
    },
    routing::get,
    Router,
};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// The greeting `/chat` sends as soon as a client connects.
pub const WELCOME: &str = "welcome to the demo chat: every message you send comes back as an echo";

/// What `/summary` streams when the request names no query.
pub const DEFAULT_QUERY: &str = "tauri realtime";

/// The `retry:` value (in ms) that `/summary` sends first: how long a client should wait before reconnecting.
pub const RETRY: Duration = Duration::from_millis(1000);

/// Timing of the demo streams. The defaults are for people watching; tests shorten them.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Pause between two `summary` events. Default 150 ms.
    pub token_interval: Duration,
    /// Pause between two `tick` events after `done`. Default 5 s.
    pub tick_interval: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            token_interval: Duration::from_millis(150),
            tick_interval: Duration::from_secs(5),
        }
    }
}

/// Where the demo server listens, as the page needs it (returned by the `demo_urls` command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoUrls {
    /// The WebSocket chat, `ws://127.0.0.1:PORT/chat`.
    pub ws: String,
    /// The SSE summary stream, `http://127.0.0.1:PORT/summary`.
    pub sse: String,
}

impl DemoUrls {
    pub fn for_addr(addr: SocketAddr) -> Self {
        Self {
            ws: format!("ws://{addr}/chat"),
            sse: format!("http://{addr}/summary"),
        }
    }
}

/// A running demo server. Dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct DemoServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl DemoServer {
    /// Binds `127.0.0.1:0` and serves with the default timing. Must be called inside a tokio runtime (the app uses
    /// Tauri's); the server runs as a task on that runtime.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(DemoConfig::default()).await
    }

    /// Like [`DemoServer::start`], with the given timing.
    pub async fn start_with(config: DemoConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let app = router(config, shutdown.clone());
        let signal = shutdown.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                eprintln!("demo server stopped: {err}");
            }
        });
        Ok(Self {
            addr,
            shutdown,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn urls(&self) -> DemoUrls {
        DemoUrls::for_addr(self.addr)
    }

    /// Stops accepting, ends every open stream (WebSocket clients get close code 1001) and waits for the server
    /// task to finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Clone)]
struct AppState {
    config: DemoConfig,
    shutdown: CancellationToken,
}

fn router(config: DemoConfig, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/chat", get(chat))
        .route("/summary", get(summary).post(summary))
        .with_state(AppState { config, shutdown })
}

// ---------------------------------------------------------------------------------------------------------------
// WebSocket chat
// ---------------------------------------------------------------------------------------------------------------

async fn chat(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.on_upgrade(move |socket| echo(socket, state.shutdown))
}

async fn echo(mut socket: WebSocket, shutdown: CancellationToken) {
    if socket.send(Message::Text(WELCOME.into())).await.is_err() {
        return;
    }
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            () = shutdown.cancelled() => {
                let bye = axum::extract::ws::CloseFrame { code: 1001, reason: "server shutting down".into() };
                let _ = socket.send(Message::Close(Some(bye))).await;
                return;
            }
        };
        let reply = match message {
            Some(Ok(Message::Text(text))) => Message::Text(text),
            Some(Ok(Message::Binary(bytes))) => Message::Binary(bytes),
            // Pings are answered by the WebSocket library itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            // The library answers a close frame by itself with the client's own code and reason; the next read
            // sends that reply and then reports the end of the connection.
            Some(Ok(Message::Close(_))) => continue,
            // The client went away without a close frame.
            Some(Err(_)) | None => return,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// SSE summary
// ---------------------------------------------------------------------------------------------------------------

/// `POST /summary` body, or `GET /summary?query=...`.
#[derive(Debug, Default, Deserialize)]
struct SummaryRequest {
    query: Option<String>,
}

async fn summary(
    State(state): State<AppState>,
    Query(params): Query<SummaryRequest>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    // A POST body that is not the expected JSON is treated like no body: this is a demo, not a validator.
    let from_body = serde_json::from_slice::<SummaryRequest>(&body).unwrap_or_default();
    let query = from_body
        .query
        .or(params.query)
        .filter(|q| !q.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_QUERY.to_string());
    // A Last-Event-ID that is not one of our numeric ids means "from the start".
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);

    let stream = summary_events(summary_words(&query), last_id, state.config);
    // Streams run forever, so they must end by themselves when the server shuts down.
    Sse::new(stream.take_until(state.shutdown.cancelled_owned()))
}

/// The text of the summary, one word per `summary` event.
pub fn summary_words(query: &str) -> Vec<String> {
    let text = format!(
        "Top results for \u{201c}{query}\u{201d} agree: open streams in Rust, relay every frame as an event, \
         and reconnect with backoff."
    );
    text.split_whitespace().map(str::to_string).collect()
}

/// The event sequence: ids `1..=n` are the words, `n + 1` is `done`, every id after that is a `tick`. Events with
/// an id up to `last_id` are skipped, so a resumed stream carries on with the next one.
fn summary_events(
    words: Vec<String>,
    last_id: u64,
    config: DemoConfig,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    async_stream::stream! {
        yield Ok(Event::default().retry(RETRY));

        let done_id = words.len() as u64 + 1;
        let mut sent_one = false;
        for (id, word) in (1..).zip(&words) {
            if id <= last_id {
                continue;
            }
            if sent_one {
                tokio::time::sleep(config.token_interval).await;
            }
            sent_one = true;
            yield Ok(Event::default().event("summary").id(id.to_string()).data(word));
        }

        if last_id < done_id {
            if sent_one {
                tokio::time::sleep(config.token_interval).await;
            }
            let done = serde_json::json!({ "words": words.len() }).to_string();
            yield Ok(Event::default().event("done").id(done_id.to_string()).data(done));
        }

        let mut id = last_id.max(done_id);
        loop {
            tokio::time::sleep(config.tick_interval).await;
            id += 1;
            yield Ok(Event::default().event("tick").id(id.to_string()).data(unix_millis().to_string()));
        }
    }
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! These talk to the real server on 127.0.0.1:0 with real clients. Every await is bounded.

    use super::*;
    use futures_util::SinkExt;
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::{
        self, protocol::frame::coding::CloseCode, protocol::CloseFrame,
    };

    const LIMIT: Duration = Duration::from_secs(10);

    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

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

    impl SseReader {
        async fn next(&mut self) -> SseEvent {
            loop {
                if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                    let block = String::from_utf8(block).expect("expected an SSE event in UTF-8");
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
                    return event;
                }
                let chunk = timeout(LIMIT, self.response.chunk())
                    .await
                    .expect("expected an SSE chunk within the limit, got a timeout")
                    .expect("expected an SSE chunk, got a read error")
                    .expect("expected an SSE chunk, got the end of the stream");
                self.buffer.extend_from_slice(&chunk);
            }
        }
    }

    async fn open_sse(request: reqwest::RequestBuilder) -> SseReader {
        let response = timeout(LIMIT, request.send())
            .await
            .expect("expected a response within the limit, got a timeout")
            .expect("expected a response, got an error");
        assert_eq!(
            response.status(),
            200,
            "expected status 200, got {}",
            response.status()
        );
        let content_type = response.headers().get("content-type").cloned();
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("text/event-stream"),
            "expected content-type text/event-stream, got {content_type:?}"
        );
        SseReader {
            response,
            buffer: Vec::new(),
        }
    }

    /// Reads the retry event, then every event up to and including `done`.
    async fn read_until_done(reader: &mut SseReader) -> Vec<SseEvent> {
        let first = reader.next().await;
        assert_eq!(
            first.retry.as_deref(),
            Some("1000"),
            "expected retry: 1000 first, got {first:?}"
        );
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
            let tick = reader.next().await;
            assert_eq!(
                tick.event.as_deref(),
                Some("tick"),
                "expected a tick, got {tick:?}"
            );
            assert_eq!(
                tick.id,
                Some(expected_id.to_string()),
                "expected tick id {expected_id}, got {tick:?}"
            );
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
        let first = reader.next().await;
        assert_eq!(
            first.retry.as_deref(),
            Some("1000"),
            "expected retry: 1000 first, got {first:?}"
        );
        let tick = reader.next().await;
        assert_eq!(
            tick.event.as_deref(),
            Some("tick"),
            "expected a tick, got {tick:?}"
        );
        assert_eq!(
            tick.id.as_deref(),
            Some("41"),
            "expected id 41, got {tick:?}"
        );
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
        let ended = timeout(LIMIT, async {
            loop {
                match reader.response.chunk().await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "expected the SSE stream to end after shutdown, got a timeout"
        );
    }
}
