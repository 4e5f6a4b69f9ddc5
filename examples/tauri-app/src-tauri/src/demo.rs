//! The embedded demo server: a small axum app on `127.0.0.1:<random port>` that gives the example page something
//! real to stream from, with no network access.
//!
//! - `GET /chat`: a WebSocket chat that greets on connect and echoes every message back.
//! - `GET|POST /summary`: a Server-Sent-Events stream shaped like an LLM search summary: one word per event, then
//!   `done`, then a `tick` every few seconds, forever. It honours `Last-Event-ID`, so a client that reconnects
//!   resumes where it left off and never sees an event twice.
//! - `GET /feed/stream`: a live feed (one `notice` event about every second, ids rising from 1) as an SSE stream,
//!   resumable with `Last-Event-ID`.
//! - `GET /feed`: the same feed for pollers: a finite `text/event-stream` document of the events after
//!   `Last-Event-ID` (or the most recent ones), with an `ETag`, answering `304` to `If-None-Match` when nothing is
//!   new.
//! - `GET /status`: what the server sees, as JSON ([`DemoStatus`]): open chat sockets, open streams, polls.
//! - `POST /control/streaming` with `{"enabled": false}`: the server **refuses streaming** until it gets
//!   `{"enabled": true}`. Open streams end at once (chat sockets with close code 1012), new chat upgrades and
//!   summary requests get `503` with `Retry-After`, and `/feed/stream` answers `200 application/json`, the answer
//!   of a server that cannot stream, so a client with a polling fallback degrades at once. `/feed` keeps working.
//!
//! It is also meant as a plain sample of such a server: nothing in here knows about Tauri. It listens on loopback
//! only and stops with [`DemoServer::shutdown`] (or when the handle is dropped). The `realtime-demo-server` binary
//! runs it on its own, for an app started with `REALTIME_DEMO_SERVER=127.0.0.1:<port>`.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Query, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Json, Router,
};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::{
    net::TcpListener,
    sync::{broadcast, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// The greeting `/chat` sends as soon as a client connects.
pub const WELCOME: &str = "welcome to the demo chat: every message you send comes back as an echo";

/// What `/summary` streams when the request names no query.
pub const DEFAULT_QUERY: &str = "tauri realtime";

/// The `retry:` value (in ms) that `/summary` and `/feed/stream` send first: how long a client should wait before
/// reconnecting.
pub const RETRY: Duration = Duration::from_millis(1000);

/// The `Retry-After` (in s) of the `503` answers while streaming is refused.
pub const REFUSED_RETRY_AFTER_SECS: u64 = 1;

/// The close code `/chat` ends open sockets with when streaming is switched off (1012, Service Restart: the
/// client should reconnect).
pub const CLOSE_STREAMING_OFF: u16 = 1012;

/// Feed events the server keeps for resuming streams and for pollers.
pub const FEED_KEEP: usize = 200;

/// At most this many events in one `/feed` document.
pub const FEED_WINDOW: usize = 50;

/// Events a new `/feed/stream` (without `Last-Event-ID`) starts with, so a fresh page is not empty.
pub const FEED_BACKLOG: usize = 5;

/// The SSE event type of the feed.
pub const FEED_EVENT: &str = "notice";

/// Timing of the demo streams. The defaults are for people watching; tests shorten them.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Pause between two `summary` events. Default 150 ms.
    pub token_interval: Duration,
    /// Pause between two `tick` events after `done`. Default 5 s.
    pub tick_interval: Duration,
    /// Pause between two feed events. Default 1 s.
    pub feed_interval: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            token_interval: Duration::from_millis(150),
            tick_interval: Duration::from_secs(5),
            feed_interval: Duration::from_secs(1),
        }
    }
}

/// Where the demo server listens, as the page needs it (returned by the `demo_urls` command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoUrls {
    /// The WebSocket chat, `ws://127.0.0.1:PORT/chat`.
    pub ws: String,
    /// The SSE summary stream, `http://127.0.0.1:PORT/summary`.
    pub sse: String,
    /// The feed as a finite SSE document, for polling: `http://127.0.0.1:PORT/feed`.
    pub feed: String,
    /// The feed as an SSE stream: `http://127.0.0.1:PORT/feed/stream`.
    pub feed_stream: String,
    /// The server's counters as JSON ([`DemoStatus`]): `http://127.0.0.1:PORT/status`.
    pub status: String,
    /// `POST {"enabled": bool}` here to allow or refuse streaming: `http://127.0.0.1:PORT/control/streaming`.
    pub control: String,
}

impl DemoUrls {
    pub fn for_addr(addr: SocketAddr) -> Self {
        Self {
            ws: format!("ws://{addr}/chat"),
            sse: format!("http://{addr}/summary"),
            feed: format!("http://{addr}/feed"),
            feed_stream: format!("http://{addr}/feed/stream"),
            status: format!("http://{addr}/status"),
            control: format!("http://{addr}/control/streaming"),
        }
    }
}

/// What the server sees (`GET /status`, and the `demo_status` command).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoStatus {
    /// False while the server refuses streaming.
    pub streaming: bool,
    /// WebSocket connections open on `/chat` now.
    pub chat_open: usize,
    /// WebSocket connections `/chat` accepted since the server started.
    pub chat_accepted: u64,
    /// `/feed/stream` responses streaming now.
    pub feed_streams: usize,
    /// `/summary` responses streaming now.
    pub summary_streams: usize,
    /// `GET /feed` requests answered since the server started (including `304`s).
    pub feed_polls: u64,
    /// Stream requests refused since the server started (while streaming was off).
    pub refused: u64,
    /// Id of the newest feed event (0 before the first).
    pub feed_last_id: u64,
}

/// `POST /control/streaming` body.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StreamingSwitch {
    pub enabled: bool,
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
        Self::start_on(0, config).await
    }

    /// Like [`DemoServer::start_with`], on `127.0.0.1:port` (0 picks a free port).
    pub async fn start_on(port: u16, config: DemoConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared::new(config, shutdown.clone()));
        tokio::spawn(produce_feed(shared.clone()));
        let app = router(shared);
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

/// Everything the handlers share.
struct Shared {
    config: DemoConfig,
    shutdown: CancellationToken,
    /// `true` while streaming is allowed; streams watch it to end when it turns `false`.
    streaming: watch::Sender<bool>,
    feed: Feed,
    chat_open: Arc<AtomicUsize>,
    chat_accepted: AtomicU64,
    feed_streams: Arc<AtomicUsize>,
    summary_streams: Arc<AtomicUsize>,
    feed_polls: AtomicU64,
    refused: AtomicU64,
}

type AppState = Arc<Shared>;

impl Shared {
    fn new(config: DemoConfig, shutdown: CancellationToken) -> Self {
        Self {
            config,
            shutdown,
            streaming: watch::Sender::new(true),
            feed: Feed::new(),
            chat_open: Arc::default(),
            chat_accepted: AtomicU64::new(0),
            feed_streams: Arc::default(),
            summary_streams: Arc::default(),
            feed_polls: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn streaming(&self) -> bool {
        *self.streaming.borrow()
    }

    fn status(&self) -> DemoStatus {
        DemoStatus {
            streaming: self.streaming(),
            chat_open: self.chat_open.load(Ordering::SeqCst),
            chat_accepted: self.chat_accepted.load(Ordering::SeqCst),
            feed_streams: self.feed_streams.load(Ordering::SeqCst),
            summary_streams: self.summary_streams.load(Ordering::SeqCst),
            feed_polls: self.feed_polls.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
            feed_last_id: self.feed.last_id(),
        }
    }

    /// Resolves when the server shuts down or streaming is switched off: open streams end then.
    fn stream_end(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shutdown = self.shutdown.clone();
        let mut streaming = self.streaming.subscribe();
        async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = streaming_off(&mut streaming) => {}
            }
        }
    }

    /// The `503` a stream request gets while streaming is refused.
    fn refuse(&self) -> Response {
        self.refused.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, REFUSED_RETRY_AFTER_SECS.to_string())],
            "streaming is switched off on the demo server\n",
        )
            .into_response()
    }
}

/// Resolves once streaming is off (at once if it is off now), or when the server is gone.
async fn streaming_off(streaming: &mut watch::Receiver<bool>) {
    // The guard that `wait_for` returns is not `Send`: drop it here.
    let _ = streaming.wait_for(|on| !*on).await.map(|_| ());
}

/// Counts one open connection or stream for as long as it lives.
struct OpenGuard(Arc<AtomicUsize>);

/// `stream`, counted as open until axum drops it: the client left, or the stream ended.
fn counted<S>(stream: S, open: OpenGuard) -> impl Stream<Item = S::Item> + Send
where
    S: Stream + Send + 'static,
    S::Item: Send,
{
    async_stream::stream! {
        let _open = open;
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            yield item;
        }
    }
}

impl OpenGuard {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn router(shared: AppState) -> Router {
    Router::new()
        .route("/chat", get(chat))
        .route("/summary", get(summary).post(summary))
        .route("/feed", get(feed_document))
        .route("/feed/stream", get(feed_stream))
        .route("/status", get(status))
        .route("/control/streaming", post(set_streaming))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------------------------
// Status and the streaming switch
// ---------------------------------------------------------------------------------------------------------------

async fn status(State(state): State<AppState>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(state.status())).into_response()
}

async fn set_streaming(
    State(state): State<AppState>,
    Json(switch): Json<StreamingSwitch>,
) -> Json<DemoStatus> {
    // `send_replace` also works while no stream is watching.
    state.streaming.send_replace(switch.enabled);
    Json(state.status())
}

// ---------------------------------------------------------------------------------------------------------------
// WebSocket chat
// ---------------------------------------------------------------------------------------------------------------

async fn chat(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    if !state.streaming() {
        return state.refuse();
    }
    ws.on_upgrade(move |socket| async move {
        let _open = OpenGuard::new(&state.chat_open);
        state.chat_accepted.fetch_add(1, Ordering::SeqCst);
        echo(socket, &state).await;
    })
}

async fn echo(mut socket: WebSocket, state: &Shared) {
    if socket.send(Message::Text(WELCOME.into())).await.is_err() {
        return;
    }
    let shutdown = state.shutdown.clone();
    let mut streaming = state.streaming.subscribe();
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            () = shutdown.cancelled() => {
                let bye = axum::extract::ws::CloseFrame { code: 1001, reason: "server shutting down".into() };
                let _ = socket.send(Message::Close(Some(bye))).await;
                return;
            }
            () = streaming_off(&mut streaming) => {
                // Not 1000: a normal close would tell the client not to come back.
                let bye = axum::extract::ws::CloseFrame {
                    code: CLOSE_STREAMING_OFF,
                    reason: "streaming switched off".into(),
                };
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
) -> Response {
    if !state.streaming() {
        return state.refuse();
    }
    // A POST body that is not the expected JSON is treated like no body: this is a demo, not a validator.
    let from_body = serde_json::from_slice::<SummaryRequest>(&body).unwrap_or_default();
    let query = from_body
        .query
        .or(params.query)
        .filter(|q| !q.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_QUERY.to_string());
    // A Last-Event-ID that is not one of our numeric ids means "from the start".
    let last_id = last_event_id(&headers).unwrap_or(0);

    let events = summary_events(summary_words(&query), last_id, state.config.clone());
    let stream = counted(events, OpenGuard::new(&state.summary_streams));
    // Streams run forever, so they must end by themselves when the server shuts down or stops streaming.
    Sse::new(stream.take_until(state.stream_end())).into_response()
}

/// A numeric `Last-Event-ID`, if the request has one.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The text of the summary, one word per `summary` event.
pub fn summary_words(query: &str) -> Vec<String> {
    let text = format!(
        "Top results for \u{201c}{query}\u{201d} agree: open streams in Rust, relay every frame to the page, \
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

// ---------------------------------------------------------------------------------------------------------------
// Live feed: an SSE stream, and the same events as a finite document for pollers
// ---------------------------------------------------------------------------------------------------------------

/// One feed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub id: u64,
    pub text: String,
}

impl FeedEvent {
    fn to_sse(&self) -> Event {
        Event::default()
            .event(FEED_EVENT)
            .id(self.id.to_string())
            .data(&self.text)
    }

    /// The event in SSE wire format, for the `/feed` document.
    fn write_to(&self, out: &mut String) {
        out.push_str(&format!(
            "event: {FEED_EVENT}\nid: {}\ndata: {}\n\n",
            self.id, self.text
        ));
    }
}

/// What the `n`th feed event says: a rotating set of made-up notifications.
pub fn feed_text(n: u64) -> String {
    const NOTICES: [&str; 6] = [
        "build #{n} passed",
        "deploy #{n} rolled out to staging",
        "{n} new comments on the design review",
        "cache hit rate back to 9{d}%",
        "backup #{n} verified",
        "on-call handed over (shift {n})",
    ];
    NOTICES[(n as usize - 1) % NOTICES.len()]
        .replace("{n}", &n.to_string())
        .replace("{d}", &(n % 10).to_string())
}

/// The most recent feed events, and the channel that announces new ones.
struct Feed {
    events: Mutex<VecDeque<FeedEvent>>,
    live: broadcast::Sender<FeedEvent>,
}

impl Feed {
    fn new() -> Self {
        Self {
            events: Mutex::new(VecDeque::with_capacity(FEED_KEEP)),
            live: broadcast::Sender::new(64),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<FeedEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self) -> FeedEvent {
        let mut events = self.lock();
        let id = events.back().map_or(1, |e| e.id + 1);
        let event = FeedEvent {
            id,
            text: feed_text(id),
        };
        if events.len() == FEED_KEEP {
            events.pop_front();
        }
        events.push_back(event.clone());
        // Under the lock, so that a stream that subscribed before reading the backlog misses nothing.
        let _ = self.live.send(event.clone());
        event
    }

    fn last_id(&self) -> u64 {
        self.lock().back().map_or(0, |e| e.id)
    }

    /// Where a client that last saw `last_id` resumes: after it, or from the start without one. An id newer
    /// than any event (from an earlier run of the server) counts as none.
    fn resume_after(&self, last_id: Option<u64>) -> u64 {
        last_id.filter(|&id| id <= self.last_id()).unwrap_or(0)
    }

    /// Events with an id above `from`, at most the newest `limit`.
    fn after(&self, from: u64, limit: usize) -> Vec<FeedEvent> {
        let events = self.lock();
        let fresh: Vec<_> = events.iter().filter(|e| e.id > from).cloned().collect();
        fresh[fresh.len().saturating_sub(limit)..].to_vec()
    }
}

async fn produce_feed(state: AppState) {
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(state.config.feed_interval) => {}
        }
        state.feed.push();
    }
}

/// `GET /feed`: the feed for pollers, a finite SSE document. With `Last-Event-ID` it holds the events after it,
/// else the most recent ones (at most [`FEED_WINDOW`] either way). `ETag` is the newest id, so a poller that
/// sends it back in `If-None-Match` gets `304` until there is something new.
async fn feed_document(State(state): State<AppState>, headers: HeaderMap) -> Response {
    state.feed_polls.fetch_add(1, Ordering::SeqCst);
    let etag = format!("\"feed-{}\"", state.feed.last_id());
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mut body = String::new();
    let from = state.feed.resume_after(last_event_id(&headers));
    for event in state.feed.after(from, FEED_WINDOW) {
        event.write_to(&mut body);
    }
    (
        [
            (header::CONTENT_TYPE, "text/event-stream".to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

/// `GET /feed/stream`: the feed as it happens. Starts after `Last-Event-ID` (or with the last
/// [`FEED_BACKLOG`] events), then relays each new event.
async fn feed_stream(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.streaming() {
        // What a server (or a proxy) that cannot stream answers: a plain document. A client with a polling
        // fallback degrades at once; without one, this is an error.
        state.refused.fetch_add(1, Ordering::SeqCst);
        let body = serde_json::json!({
            "streaming": false,
            "message": "this server does not stream right now; poll /feed",
        });
        return Json(body).into_response();
    }
    let last_id = last_event_id(&headers);
    let open = OpenGuard::new(&state.feed_streams);
    // Subscribe before reading the backlog: an event pushed in between is in both, and skipped the second time.
    let mut live = state.feed.live.subscribe();
    let mut sent = state.feed.resume_after(last_id);
    let backlog = state.feed.after(
        sent,
        if last_id.is_some() {
            FEED_KEEP
        } else {
            FEED_BACKLOG
        },
    );
    let feed_state = state.clone();
    let stream = async_stream::stream! {
        let _open = open;
        yield Ok::<_, std::convert::Infallible>(Event::default().retry(RETRY));
        for event in backlog {
            sent = event.id;
            yield Ok(event.to_sse());
        }
        loop {
            match live.recv().await {
                Ok(event) if event.id <= sent => continue,
                Ok(event) => {
                    sent = event.id;
                    yield Ok(event.to_sse());
                }
                // Fell behind the channel: catch up from the kept events.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    for event in feed_state.feed.after(sent, FEED_KEEP) {
                        sent = event.id;
                        yield Ok(event.to_sse());
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    Sse::new(stream.take_until(state.stream_end())).into_response()
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
        assert_eq!(
            response.status(),
            200,
            "expected 200, got {}",
            response.status()
        );
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
            .map(|block| {
                let mut event = SseEvent::default();
                for line in block.lines() {
                    let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                    match field {
                        "event" => event.event = Some(value.into()),
                        "id" => event.id = Some(value.into()),
                        "data" => event.data = Some(value.into()),
                        _ => {}
                    }
                }
                event
            })
            .collect()
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
        let first = reader.next().await;
        assert_eq!(
            first.retry.as_deref(),
            Some("1000"),
            "expected retry: 1000 first, got {first:?}"
        );
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
        assert_eq!(
            response.status(),
            200,
            "expected 200, got {}",
            response.status()
        );
        let content_type = response.headers().get("content-type").cloned();
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("text/event-stream"),
            "expected text/event-stream, got {content_type:?}"
        );
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

        let all = parse_document(
            &client
                .get(&urls.feed)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        let ids = feed_ids(&all);
        assert!(ids.len() >= 8, "expected at least 8 events, got {ids:?}");
        let expected: Vec<u64> = (ids[0]..ids[0] + ids.len() as u64).collect();
        assert_eq!(ids, expected, "expected consecutive ids, got {ids:?}");

        let response = client
            .get(&urls.feed)
            .header("Last-Event-ID", "5")
            .send()
            .await
            .unwrap();
        let ids = feed_ids(&parse_document(&response.text().await.unwrap()));
        assert_eq!(
            ids.first(),
            Some(&6),
            "expected the document to start at #6, got {ids:?}"
        );

        // An id from an earlier run of the server (newer than any event) counts as none.
        let response = client
            .get(&urls.feed)
            .header("Last-Event-ID", "999999")
            .send()
            .await
            .unwrap();
        let ids = feed_ids(&parse_document(&response.text().await.unwrap()));
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
        assert_eq!(
            response.status(),
            200,
            "expected 200, got {}",
            response.status()
        );
        let content_type = response.headers().get("content-type").cloned();
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "expected application/json, got {content_type:?}"
        );
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
}
