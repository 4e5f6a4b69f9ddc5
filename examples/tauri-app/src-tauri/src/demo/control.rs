//! The demo server's test hooks, apart from its samples: `GET /status` (what the server sees) and
//! `POST /control/streaming` (the switch that makes it refuse streaming). The samples report to the counters and
//! honour the switch through [`Control`]; a real backend would have neither.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{topics::TopicSocket, AppState};

/// The `Retry-After` (in s) of the `503` answers while streaming is refused.
pub const REFUSED_RETRY_AFTER_SECS: u64 = 1;

/// The close code `/chat` ends open sockets with when streaming is switched off (1012, Service Restart: the
/// client should reconnect).
pub const CLOSE_STREAMING_OFF: u16 = 1012;

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
    /// `GET /summary/poll` requests answered since the server started.
    #[serde(default)]
    pub summary_polls: u64,
    /// Stream requests refused since the server started (while streaming was off).
    pub refused: u64,
    /// Id of the newest feed event (0 before the first).
    pub feed_last_id: u64,
    /// False while the server is stopped (`/control/stop`, or the app's `demo_server_stop`).
    #[serde(default)]
    pub listening: bool,
    /// Times the server started listening: 1, plus one per restart.
    #[serde(default)]
    pub server_starts: u64,
    /// `POST /control/drop` calls so far.
    #[serde(default)]
    pub drops: u64,
    /// The pause before each streamed item (`/control/slow`), in ms.
    #[serde(default)]
    pub slow_ms: u64,
    /// Whether `/topics` answers `{"type":"ping"}` (`/control/pings`).
    #[serde(default)]
    pub answer_pings: bool,
    /// Texts `/chat` received, oldest first (the last [`CHAT_LOG_KEEP`]): what the server saw, in its order.
    #[serde(default)]
    pub chat_received: Vec<String>,
    /// Close codes that clients sent on `/chat` and `/topics`, oldest first (the last [`CHAT_LOG_KEEP`]).
    #[serde(default)]
    pub close_codes: Vec<u16>,
    /// WebSocket connections `/topics` accepted since the server started.
    #[serde(default)]
    pub topics_accepted: u64,
    /// The open `/topics` sockets with their subscriptions and counters.
    #[serde(default)]
    pub topic_sockets: Vec<TopicSocket>,
    /// `{"type":"ping"}` messages `/topics` answered, and those it ignored (`/control/pings`).
    #[serde(default)]
    pub pings_answered: u64,
    #[serde(default)]
    pub pings_ignored: u64,
    /// Protocol pings `/topics` received (the library answers them; the application ignores them).
    #[serde(default)]
    pub protocol_pings: u64,
}

/// How many received chat texts and close codes `/status` keeps.
pub const CHAT_LOG_KEEP: usize = 100;

/// `POST /control/streaming` body.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StreamingSwitch {
    pub enabled: bool,
}

/// The streaming switch, and the counters the samples keep for `/status`.
pub(super) struct Control {
    /// `true` while streaming is allowed; streams watch it to end when it turns `false`.
    streaming: watch::Sender<bool>,
    pub(super) chat_open: Arc<AtomicUsize>,
    pub(super) chat_accepted: AtomicU64,
    pub(super) feed_streams: Arc<AtomicUsize>,
    pub(super) summary_streams: Arc<AtomicUsize>,
    pub(super) feed_polls: AtomicU64,
    pub(super) summary_polls: AtomicU64,
    pub(super) refused: AtomicU64,
    chat_received: Mutex<VecDeque<String>>,
    close_codes: Mutex<VecDeque<u16>>,
}

fn keep<T>(list: &Mutex<VecDeque<T>>, item: T) {
    let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
    if list.len() == CHAT_LOG_KEEP {
        list.pop_front();
    }
    list.push_back(item);
}

fn listed<T: Clone>(list: &Mutex<VecDeque<T>>) -> Vec<T> {
    list.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect()
}

impl Control {
    pub(super) fn new() -> Self {
        Self {
            streaming: watch::Sender::new(true),
            chat_open: Arc::default(),
            chat_accepted: AtomicU64::new(0),
            feed_streams: Arc::default(),
            summary_streams: Arc::default(),
            feed_polls: AtomicU64::new(0),
            summary_polls: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            chat_received: Mutex::default(),
            close_codes: Mutex::default(),
        }
    }

    pub(super) fn streaming(&self) -> bool {
        *self.streaming.borrow()
    }

    /// A receiver of the switch, for a stream that must end when streaming is switched off.
    pub(super) fn watch(&self) -> watch::Receiver<bool> {
        self.streaming.subscribe()
    }

    /// Records a text `/chat` received.
    pub(super) fn chat_received(&self, text: &str) {
        keep(&self.chat_received, text.to_string());
    }

    /// Records the close code a client sent.
    pub(super) fn closed_with(&self, code: u16) {
        keep(&self.close_codes, code);
    }

    fn status(&self, feed_last_id: u64) -> DemoStatus {
        DemoStatus {
            streaming: self.streaming(),
            chat_open: self.chat_open.load(Ordering::SeqCst),
            chat_accepted: self.chat_accepted.load(Ordering::SeqCst),
            feed_streams: self.feed_streams.load(Ordering::SeqCst),
            summary_streams: self.summary_streams.load(Ordering::SeqCst),
            feed_polls: self.feed_polls.load(Ordering::SeqCst),
            summary_polls: self.summary_polls.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
            feed_last_id,
            chat_received: listed(&self.chat_received),
            close_codes: listed(&self.close_codes),
            ..DemoStatus::default()
        }
    }

    /// The `503` a stream request gets while streaming is refused.
    pub(super) fn refuse(&self) -> Response {
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
pub(super) async fn streaming_off(streaming: &mut watch::Receiver<bool>) {
    // The guard that `wait_for` returns is not `Send`: drop it here.
    let _ = streaming.wait_for(|on| !*on).await.map(|_| ());
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/status", get(status))
        .route("/control/streaming", post(set_streaming))
}

pub(super) fn status_of(state: &AppState) -> DemoStatus {
    let mut status = state.control.status(state.feed.last_id());
    state.faults.fill(&mut status);
    let topics = &state.topics;
    status.topics_accepted = topics.accepted.load(Ordering::SeqCst);
    status.topic_sockets = topics.sockets();
    status.pings_answered = topics.pings_answered.load(Ordering::SeqCst);
    status.pings_ignored = topics.pings_ignored.load(Ordering::SeqCst);
    status.protocol_pings = topics.protocol_pings.load(Ordering::SeqCst);
    status
}

async fn status(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(status_of(&state)),
    )
        .into_response()
}

async fn set_streaming(
    State(state): State<AppState>,
    Json(switch): Json<StreamingSwitch>,
) -> Json<DemoStatus> {
    // `send_replace` also works while no stream is watching.
    state.control.streaming.send_replace(switch.enabled);
    Json(status_of(&state))
}
