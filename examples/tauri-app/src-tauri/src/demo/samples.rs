//! The demo server's sample endpoints, what a real backend would serve: the WebSocket chat (`/chat`), the SSE
//! summary (`/summary`), and the live feed as a stream (`/feed/stream`) and as a finite document for pollers
//! (`/feed`). They report to the counters of `control.rs` and honour its streaming switch, and know nothing
//! else of it.

use std::{
    collections::VecDeque,
    sync::{atomic::Ordering, Mutex},
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
    routing::get,
    Json, Router,
};
use futures_util::{Stream, StreamExt};
use realtime_testkit::{sse, Gauge};
use serde::Deserialize;
use tokio::sync::broadcast;

use super::{
    control::streaming_off,
    faults::{paced, Cut},
    AppState, DemoConfig, Shared, CLOSE_STREAMING_OFF,
};

/// The greeting `/chat` sends as soon as a client connects.
pub const WELCOME: &str = "welcome to the demo chat: every message you send comes back as an echo";

/// What `/summary` streams when the request names no query.
pub const DEFAULT_QUERY: &str = "tauri realtime";

/// The `retry:` value (in ms) that `/summary` and `/feed/stream` send first: how long a client should wait before
/// reconnecting.
pub const RETRY: Duration = Duration::from_millis(1000);

/// Feed events the server keeps for resuming streams and for pollers.
pub const FEED_KEEP: usize = 200;

/// At most this many events in one `/feed` document.
pub const FEED_WINDOW: usize = 50;

/// Events a new `/feed/stream` (without `Last-Event-ID`) starts with, so a fresh page is not empty.
pub const FEED_BACKLOG: usize = 5;

/// The SSE event type of the feed.
pub const FEED_EVENT: &str = "notice";

pub(super) fn routes() -> axum::Router<AppState> {
    Router::new()
        .route("/chat", get(chat))
        .route("/summary", get(summary).post(summary))
        .route("/feed", get(feed_document))
        .route("/feed/stream", get(feed_stream))
}

/// `stream`, counted as open (by `open`) until axum drops it: the client left, or the stream ended.
fn counted<S>(stream: S, open: Gauge) -> impl Stream<Item = S::Item> + Send
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

// ---------------------------------------------------------------------------------------------------------------
// WebSocket chat
// ---------------------------------------------------------------------------------------------------------------

async fn chat(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    if !state.control.streaming() {
        return state.control.refuse();
    }
    ws.on_upgrade(move |socket| async move {
        let _open = Gauge::new(&state.control.chat_open);
        state.control.chat_accepted.fetch_add(1, Ordering::SeqCst);
        echo(socket, &state).await;
    })
}

async fn echo(mut socket: WebSocket, state: &Shared) {
    if socket.send(Message::Text(WELCOME.into())).await.is_err() {
        return;
    }
    let shutdown = state.shutdown.clone();
    let mut streaming = state.control.watch();
    let cut = state.faults.cut();
    tokio::pin!(cut);
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            how = &mut cut => {
                // A drop ends without a word, like a network cut; a stop says goodbye.
                if how == Cut::Stopped {
                    let bye = axum::extract::ws::CloseFrame { code: 1001, reason: "server stopping".into() };
                    let _ = socket.send(Message::Close(Some(bye))).await;
                }
                return;
            }
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
            Some(Ok(Message::Text(text))) => {
                state.control.chat_received(text.as_str());
                Message::Text(text)
            }
            Some(Ok(Message::Binary(bytes))) => Message::Binary(bytes),
            // Pings are answered by the WebSocket library itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            // The library answers a close frame by itself with the client's own code and reason; the next read
            // sends that reply and then reports the end of the connection.
            Some(Ok(Message::Close(frame))) => {
                state.control.closed_with(frame.map_or(1005, |f| f.code));
                continue;
            }
            // The client went away without a close frame.
            Some(Err(_)) | None => return,
        };
        state.faults.pace().await;
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
pub(super) struct SummaryRequest {
    pub(super) query: Option<String>,
}

async fn summary(
    State(state): State<AppState>,
    Query(params): Query<SummaryRequest>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.control.streaming() {
        return state.control.refuse();
    }
    // A POST body that is not the expected JSON is treated like no body: this is a demo, not a validator.
    let from_body = serde_json::from_slice::<SummaryRequest>(&body).unwrap_or_default();
    let query = from_body
        .query
        .or(params.query)
        .filter(|q| !q.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_QUERY.to_string());
    // A Last-Event-ID that is not one of our numeric ids means "from the start".
    let last_id = sse::last_event_id(&headers).unwrap_or(0);

    let events = summary_events(summary_words(&query), last_id, state.config.clone());
    let stream = counted(events, Gauge::new(&state.control.summary_streams));
    // Streams run forever, so they must end by themselves when the server shuts down or stops streaming.
    Sse::new(paced(stream, state.clone()).take_until(state.stream_end())).into_response()
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

    /// The event as an entry of the `/feed` document.
    fn to_document(&self) -> sse::Event {
        sse::Event::new(self.id, self.text.clone()).named(FEED_EVENT)
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
pub(super) struct Feed {
    events: Mutex<VecDeque<FeedEvent>>,
    live: broadcast::Sender<FeedEvent>,
}

impl Feed {
    pub(super) fn new() -> Self {
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

    pub(super) fn last_id(&self) -> u64 {
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

pub(super) async fn produce_feed(state: AppState) {
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
    state.control.feed_polls.fetch_add(1, Ordering::SeqCst);
    let etag = format!("\"feed-{}\"", state.feed.last_id());
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let document = sse::after_last_event_id(&headers, None, |after| {
        let from = state.feed.resume_after(Some(after));
        state
            .feed
            .after(from, FEED_WINDOW)
            .iter()
            .map(FeedEvent::to_document)
            .collect::<Vec<_>>()
    });
    ([(header::ETAG, etag)], document).into_response()
}

/// `GET /feed/stream`: the feed as it happens. Starts after `Last-Event-ID` (or with the last
/// [`FEED_BACKLOG`] events), then relays each new event.
async fn feed_stream(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.control.streaming() {
        // What a server (or a proxy) that cannot stream answers: a plain document. A client with a polling
        // fallback degrades at once; without one, this is an error.
        state.control.refused.fetch_add(1, Ordering::SeqCst);
        let body = serde_json::json!({
            "streaming": false,
            "message": "this server does not stream right now; poll /feed",
        });
        return Json(body).into_response();
    }
    let last_id = sse::last_event_id(&headers);
    let open = Gauge::new(&state.control.feed_streams);
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
    Sse::new(paced(stream, state.clone()).take_until(state.stream_end())).into_response()
}
