//! The demo server's test hooks, apart from its samples: `GET /status` (what the server sees) and
//! `POST /control/streaming` (the switch that makes it refuse streaming). The samples report to the counters and
//! honour the switch through [`Control`]; a real backend would have neither.

use std::sync::{
    atomic::{AtomicU64, AtomicUsize, Ordering},
    Arc,
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

use super::AppState;

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

/// The streaming switch, and the counters the samples keep for `/status`.
pub(super) struct Control {
    /// `true` while streaming is allowed; streams watch it to end when it turns `false`.
    streaming: watch::Sender<bool>,
    pub(super) chat_open: Arc<AtomicUsize>,
    pub(super) chat_accepted: AtomicU64,
    pub(super) feed_streams: Arc<AtomicUsize>,
    pub(super) summary_streams: Arc<AtomicUsize>,
    pub(super) feed_polls: AtomicU64,
    pub(super) refused: AtomicU64,
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
            refused: AtomicU64::new(0),
        }
    }

    pub(super) fn streaming(&self) -> bool {
        *self.streaming.borrow()
    }

    /// A receiver of the switch, for a stream that must end when streaming is switched off.
    pub(super) fn watch(&self) -> watch::Receiver<bool> {
        self.streaming.subscribe()
    }

    fn status(&self, feed_last_id: u64) -> DemoStatus {
        DemoStatus {
            streaming: self.streaming(),
            chat_open: self.chat_open.load(Ordering::SeqCst),
            chat_accepted: self.chat_accepted.load(Ordering::SeqCst),
            feed_streams: self.feed_streams.load(Ordering::SeqCst),
            summary_streams: self.summary_streams.load(Ordering::SeqCst),
            feed_polls: self.feed_polls.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
            feed_last_id,
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

fn status_of(state: &AppState) -> DemoStatus {
    state.control.status(state.feed.last_id())
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
