//! The POST + SSE chat room, the shape of many chat backends: typed events on one SSE stream, each message sent as
//! its own POST.
//!
//! - `GET /room/events`: `retry: 1000`, a `WELCOME` event (no id: it must not move the client's `Last-Event-ID`),
//!   then one `NEW_MESSAGE` event per stored message (id = the message's id, data = its JSON), the backlog after
//!   `Last-Event-ID` first (every message without one), then each new message as it is stored.
//! - `POST /room/messages`: `{"author", "text", "clientId"?}` stores one message and answers `201` with it. A POST
//!   whose `Idempotency-Key` was seen before answers `200` with the message stored then and stores nothing: a
//!   retried POST is not stored twice.
//! - `GET /room/log`: what the room accepted and saw ([`RoomLog`]), for the page's counters and the tests.
//! - `POST /control/room` with `{"downMs": N}` (default [`ROOM_DOWN`]): a restart. Open room streams end at once,
//!   and for `downMs` streams and POSTs get `503` with `Retry-After: 1`. The stored messages and the keys seen are
//!   kept, as a server with a database keeps them across a restart.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Json, Router,
};
use futures_util::StreamExt;
use realtime_testkit::{sse, Gauge};
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};

use super::{AppState, RETRY};

/// The SSE event type of a stored message.
pub const ROOM_NEW_MESSAGE: &str = "NEW_MESSAGE";

/// The SSE event type that starts every room stream.
pub const ROOM_WELCOME: &str = "WELCOME";

/// How long a restart refuses streams and POSTs when the request names no `downMs`.
pub const ROOM_DOWN: Duration = Duration::from_millis(3000);

/// The longest restart a request may ask for: the demo must come back.
const ROOM_DOWN_MAX: Duration = Duration::from_secs(30);

/// Messages the room keeps (older ones are dropped, with their keys).
pub const ROOM_KEEP: usize = 500;

/// Longest author and text accepted, in characters.
const MAX_AUTHOR: usize = 40;
const MAX_TEXT: usize = 2000;

/// One stored message, as `NEW_MESSAGE` carries it and `POST /room/messages` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMessage {
    pub id: u64,
    pub author: String,
    pub text: String,
    /// The sender's own id for the message, if it sent one: how a page matches the event to what it sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The `Idempotency-Key` of the POST that stored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `POST /room/messages` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewMessage {
    author: String,
    text: String,
    #[serde(default)]
    client_id: Option<String>,
}

/// `POST /control/room` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Restart {
    down_ms: Option<u64>,
}

/// What the room accepted and saw (`GET /room/log`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomLog {
    /// The stored messages, oldest first.
    pub messages: Vec<RoomMessage>,
    /// POSTs answered since the server started, whatever the answer.
    pub posts: u64,
    /// POSTs answered `200` because their `Idempotency-Key` was seen before: retries, not stored again.
    pub replays: u64,
    /// POSTs answered `503` during a restart (the plugin retries them).
    pub refused_posts: u64,
    /// Stream requests answered `503` during a restart.
    pub refused_streams: u64,
    /// Room streams open now.
    pub streams: usize,
    /// Room streams accepted since the server started.
    pub streams_accepted: u64,
    /// Restarts since the server started.
    pub restarts: u64,
    /// True while a restart refuses requests.
    pub down: bool,
}

#[derive(Default)]
struct Stored {
    messages: Vec<RoomMessage>,
    /// `Idempotency-Key` to message id.
    keys: HashMap<String, u64>,
    next_id: u64,
    down_until: Option<Instant>,
}

/// The room's messages and counters.
pub(super) struct Room {
    stored: Mutex<Stored>,
    live: broadcast::Sender<RoomMessage>,
    /// Counts restarts; open streams end when it changes.
    restarts: watch::Sender<u64>,
    streams: Arc<AtomicUsize>,
    streams_accepted: AtomicU64,
    posts: AtomicU64,
    replays: AtomicU64,
    refused_posts: AtomicU64,
    refused_streams: AtomicU64,
}

impl Room {
    pub(super) fn new() -> Self {
        Self {
            stored: Mutex::new(Stored {
                next_id: 1,
                ..Stored::default()
            }),
            live: broadcast::Sender::new(256),
            restarts: watch::Sender::new(0),
            streams: Arc::default(),
            streams_accepted: AtomicU64::new(0),
            posts: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            refused_posts: AtomicU64::new(0),
            refused_streams: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn down(&self) -> bool {
        self.lock().down_until.is_some_and(|t| Instant::now() < t)
    }

    fn refuse(&self, counter: &AtomicU64) -> Response {
        counter.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "the room is restarting\n",
        )
            .into_response()
    }

    /// Stores `message` under `key`, or gives the message stored under it before (`false`: nothing stored).
    fn store(&self, message: NewMessage, key: Option<String>) -> (RoomMessage, bool) {
        let mut stored = self.lock();
        if let Some(id) = key.as_ref().and_then(|k| stored.keys.get(k)) {
            if let Some(found) = stored.messages.iter().find(|m| m.id == *id) {
                return (found.clone(), false);
            }
        }
        let id = stored.next_id;
        stored.next_id += 1;
        let message = RoomMessage {
            id,
            author: message.author,
            text: message.text,
            client_id: message.client_id,
            key: key.clone(),
        };
        if stored.messages.len() == ROOM_KEEP {
            let old = stored.messages.remove(0);
            if let Some(k) = old.key {
                stored.keys.remove(&k);
            }
        }
        if let Some(k) = key {
            stored.keys.insert(k, id);
        }
        stored.messages.push(message.clone());
        // Under the lock, so that a stream that subscribed before reading the backlog misses nothing.
        let _ = self.live.send(message.clone());
        (message, true)
    }

    fn after(&self, last_id: u64) -> Vec<RoomMessage> {
        self.lock()
            .messages
            .iter()
            .filter(|m| m.id > last_id)
            .cloned()
            .collect()
    }

    pub(super) fn log(&self) -> RoomLog {
        // Read before `down()`, which takes the same lock.
        let messages = self.lock().messages.clone();
        RoomLog {
            messages,
            posts: self.posts.load(Ordering::SeqCst),
            replays: self.replays.load(Ordering::SeqCst),
            refused_posts: self.refused_posts.load(Ordering::SeqCst),
            refused_streams: self.refused_streams.load(Ordering::SeqCst),
            streams: self.streams.load(Ordering::SeqCst),
            streams_accepted: self.streams_accepted.load(Ordering::SeqCst),
            restarts: *self.restarts.borrow(),
            down: self.down(),
        }
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/room/events", get(events))
        .route("/room/messages", post(post_message))
        .route("/room/log", get(log))
        .route("/control/room", post(restart))
}

fn event_of(message: &RoomMessage) -> Event {
    let data = serde_json::to_string(message).unwrap_or_default();
    Event::default()
        .event(ROOM_NEW_MESSAGE)
        .id(message.id.to_string())
        .data(data)
}

async fn events(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let room = &state.room;
    if room.down() {
        return room.refuse(&room.refused_streams);
    }
    let open = Gauge::new(&room.streams);
    room.streams_accepted.fetch_add(1, Ordering::SeqCst);
    // Subscribe before reading the backlog: a message stored in between is in both, and skipped the second time.
    let mut live = room.live.subscribe();
    let mut sent = sse::last_event_id(&headers).unwrap_or(0);
    let backlog = room.after(sent);
    let welcome = serde_json::json!({ "messages": room.lock().messages.len() }).to_string();
    let shared = state.clone();
    let mut restarts = room.restarts.subscribe();
    restarts.mark_unchanged();
    let stream = async_stream::stream! {
        let _open = open;
        yield Ok::<_, std::convert::Infallible>(Event::default().retry(RETRY));
        yield Ok(Event::default().event(ROOM_WELCOME).data(welcome));
        for message in backlog {
            sent = message.id;
            yield Ok(event_of(&message));
        }
        loop {
            match live.recv().await {
                Ok(message) if message.id <= sent => continue,
                Ok(message) => {
                    sent = message.id;
                    yield Ok(event_of(&message));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    for message in shared.room.after(sent) {
                        sent = message.id;
                        yield Ok(event_of(&message));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    let shutdown = state.shutdown.clone();
    let end = async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            _ = restarts.changed() => {}
        }
    };
    Sse::new(stream.take_until(end)).into_response()
}

async fn post_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let room = &state.room;
    room.posts.fetch_add(1, Ordering::SeqCst);
    if room.down() {
        return room.refuse(&room.refused_posts);
    }
    let message: NewMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            let why = format!("expected {{\"author\": string, \"text\": string}}: {e}\n");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    if message.text.trim().is_empty()
        || message.text.chars().count() > MAX_TEXT
        || message.author.chars().count() > MAX_AUTHOR
    {
        let why = format!(
            "expected a text of 1-{MAX_TEXT} characters and an author of at most {MAX_AUTHOR}\n"
        );
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 256)
        .map(str::to_owned);
    let (stored, new) = room.store(message, key);
    if new {
        (StatusCode::CREATED, Json(stored)).into_response()
    } else {
        room.replays.fetch_add(1, Ordering::SeqCst);
        (StatusCode::OK, Json(stored)).into_response()
    }
}

async fn log(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(state.room.log()),
    )
        .into_response()
}

async fn restart(State(state): State<AppState>, body: axum::body::Bytes) -> Json<RoomLog> {
    // An empty or unreadable body is a restart of the default length.
    let asked = serde_json::from_slice::<Restart>(&body).unwrap_or_default();
    let down = asked
        .down_ms
        .map_or(ROOM_DOWN, Duration::from_millis)
        .min(ROOM_DOWN_MAX);
    let room = &state.room;
    room.lock().down_until = Some(Instant::now() + down);
    room.restarts.send_modify(|n| *n += 1);
    Json(room.log())
}
