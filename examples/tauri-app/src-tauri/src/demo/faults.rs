//! The demo server's fault switches, for the page's control panel and the tests: drop every connection, stop
//! listening and start again on the same port, slow every stream down, stop answering application pings. Like
//! `control.rs`, a real backend would have none of this; the samples only ask [`Faults`] when to end a stream
//! and how long to wait before each item.
//!
//! - `POST /control/drop`: every open WebSocket and stream ends at once, without a close frame (a network cut);
//!   the server keeps listening, so clients come back after their backoff.
//! - `POST /control/stop` with `{"downMs": N}`: the server stops listening (connections are refused; open
//!   WebSockets get close code 1001) and listens again on the same port after `N` ms. The app's commands stop
//!   and start the embedded server without a timer through [`DemoHandle`] instead: nothing can reach a stopped
//!   server over HTTP.
//! - `POST /control/slow` with `{"delayMs": N}`: every streamed item (chat echo, SSE event, topic message) waits
//!   `N` ms first; `0` is full speed.
//! - `POST /control/pings` with `{"answer": false}`: `/topics` stops answering `{"type":"ping"}`, so a client's
//!   application heartbeat times out; `{"answer": true}` answers again.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{extract::State, routing::post, Json, Router};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::watch};

use super::{control, AppState, DemoStatus};

/// The longest `downMs` and `delayMs` accepted: a demo should come back within a minute.
pub const MAX_FAULT_MS: u64 = 60_000;

/// Time allowed to stop or start listening.
const PHASE_LIMIT: Duration = Duration::from_secs(10);

/// Whether the server listens now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    Up,
    Down,
    /// Starting again failed (the port was taken meanwhile, say).
    Failed(String),
}

/// The switches and their counters.
pub(super) struct Faults {
    /// `true` while the server should listen; the listener task follows it.
    listening: watch::Sender<bool>,
    /// What the listener task did about it.
    phase: watch::Sender<Phase>,
    /// Bumped by every drop: open streams end when it changes.
    drops: watch::Sender<u64>,
    slow_ms: AtomicU64,
    answer_pings: AtomicBool,
    /// Times the server started listening (1 after the first start).
    starts: AtomicU64,
}

impl Faults {
    pub(super) fn new() -> Self {
        Self {
            listening: watch::Sender::new(true),
            phase: watch::Sender::new(Phase::Down),
            drops: watch::Sender::new(0),
            slow_ms: AtomicU64::new(0),
            answer_pings: AtomicBool::new(true),
            starts: AtomicU64::new(0),
        }
    }

    pub(super) fn answer_pings(&self) -> bool {
        self.answer_pings.load(Ordering::SeqCst)
    }

    pub(super) fn fill(&self, status: &mut DemoStatus) {
        status.listening = *self.phase.borrow() == Phase::Up;
        status.server_starts = self.starts.load(Ordering::SeqCst);
        status.drops = *self.drops.borrow();
        status.slow_ms = self.slow_ms.load(Ordering::SeqCst);
        status.answer_pings = self.answer_pings();
    }

    /// Resolves when open streams must end: a drop (`Cut::Dropped`), or the server stops listening
    /// (`Cut::Stopped`). Call it when the stream opens: a drop before that does not count.
    pub(super) fn cut(&self) -> impl std::future::Future<Output = Cut> + Send + 'static {
        let mut drops = self.drops.subscribe();
        let mut listening = self.listening.subscribe();
        async move {
            // The guard that `wait_for` returns is not `Send`: drop it at once.
            let stopped = async move { listening.wait_for(|on| !*on).await.is_ok() };
            tokio::select! {
                Ok(()) = drops.changed() => Cut::Dropped,
                true = stopped => Cut::Stopped,
                else => std::future::pending().await,
            }
        }
    }

    /// The pause before each streamed item, while the server is slowed down.
    pub(super) async fn pace(&self) {
        let ms = self.slow_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    fn stop(&self) {
        self.listening.send_replace(false);
    }

    fn start(&self) {
        self.listening.send_replace(true);
    }

    /// Waits (bounded) until the listener task reached `accept`.
    async fn reached(&self, accept: impl Fn(&Phase) -> bool) -> Result<Phase, String> {
        let mut phase = self.phase.subscribe();
        let reached = async { phase.wait_for(|p| accept(p)).await.map(|p| p.clone()) };
        tokio::time::timeout(PHASE_LIMIT, reached)
            .await
            .map_err(|_| format!("the demo server did not follow within {PHASE_LIMIT:?}"))?
            .map_err(|_| "the demo server is gone".to_string())
    }
}

/// How an open stream was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// `POST /control/drop`: end without a word, like a network cut.
    Dropped,
    /// The server stops listening: say goodbye (WebSocket 1001).
    Stopped,
}

/// `stream` with the server's pace before each item: what "slow every stream down" does.
pub(super) fn paced<S>(stream: S, state: AppState) -> impl Stream<Item = S::Item> + Send
where
    S: Stream + Send + 'static,
    S::Item: Send,
{
    async_stream::stream! {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            state.faults.pace().await;
            yield item;
        }
    }
}

/// Serves `router` on `first`, then follows the `listening` switch: stops accepting (and lets open connections
/// end) when it turns off, binds `addr` again when it turns back on, until `shutdown`.
pub(super) async fn listen(first: TcpListener, addr: SocketAddr, state: AppState, router: Router) {
    let faults = &state.faults;
    let mut listener = Some(first);
    let mut listening = faults.listening.subscribe();
    loop {
        if let Some(bound) = listener.take() {
            faults.starts.fetch_add(1, Ordering::SeqCst);
            faults.phase.send_replace(Phase::Up);
            let shutdown = state.shutdown.clone();
            let mut off = faults.listening.subscribe();
            let stop = async move {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    _ = async { off.wait_for(|on| !*on).await.is_ok() } => {}
                }
            };
            if let Err(err) = axum::serve(bound, router.clone())
                .with_graceful_shutdown(stop)
                .await
            {
                eprintln!("demo server stopped: {err}");
            }
            faults.phase.send_replace(Phase::Down);
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            on = async { listening.wait_for(|on| *on).await.is_ok() } => if !on { return },
        }
        match TcpListener::bind(addr).await {
            Ok(bound) => listener = Some(bound),
            Err(err) => {
                faults.listening.send_replace(false);
                faults.phase.send_replace(Phase::Failed(format!(
                    "cannot listen on {addr} again: {err}"
                )));
            }
        }
    }
}

/// What the app holds to stop and start the embedded demo server (its `demo_server_stop` and
/// `demo_server_start` commands): over HTTP, a stopped server could not be told to start.
#[derive(Clone)]
pub struct DemoHandle(pub(super) AppState);

impl std::fmt::Debug for DemoHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DemoHandle").finish()
    }
}

impl DemoHandle {
    /// Stops listening: new connections are refused, open ones end. Returns once the listener is closed.
    pub async fn stop(&self) -> Result<(), String> {
        self.0.faults.stop();
        self.0.faults.reached(|p| *p != Phase::Up).await.map(|_| ())
    }

    /// Listens again on the same port. Returns once it does, or why it cannot.
    pub async fn start(&self) -> Result<(), String> {
        // A failure from an earlier start is history: try again.
        self.0.faults.phase.send_if_modified(|p| {
            let failed = matches!(p, Phase::Failed(_));
            if failed {
                *p = Phase::Down;
            }
            failed
        });
        self.0.faults.start();
        match self.0.faults.reached(|p| *p != Phase::Down).await? {
            Phase::Failed(why) => Err(why),
            _ => Ok(()),
        }
    }

    /// The server's counters, as `GET /status` gives them (also while it is stopped).
    pub fn status(&self) -> DemoStatus {
        control::status_of(&self.0)
    }
}

/// `POST /control/stop` body.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopRequest {
    /// How long to stay stopped before listening again, in ms (at most [`MAX_FAULT_MS`]).
    pub down_ms: u64,
}

/// `POST /control/slow` body.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlowRequest {
    /// The pause before each streamed item, in ms (at most [`MAX_FAULT_MS`]); 0 is full speed.
    pub delay_ms: u64,
}

/// `POST /control/pings` body.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingsRequest {
    /// Whether `/topics` answers `{"type":"ping"}` with `{"type":"pong"}`.
    pub answer: bool,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/control/drop", post(drop_all))
        .route("/control/stop", post(stop_for))
        .route("/control/slow", post(slow))
        .route("/control/pings", post(pings))
}

async fn drop_all(State(state): State<AppState>) -> Json<DemoStatus> {
    state.faults.drops.send_modify(|n| *n += 1);
    Json(control::status_of(&state))
}

async fn stop_for(
    State(state): State<AppState>,
    Json(request): Json<StopRequest>,
) -> Json<DemoStatus> {
    let down = Duration::from_millis(request.down_ms.min(MAX_FAULT_MS));
    let handle = DemoHandle(Arc::clone(&state));
    // The answer goes out before the listener closes: graceful shutdown lets this request finish.
    tokio::spawn(async move {
        if handle.stop().await.is_ok() {
            tokio::time::sleep(down).await;
            if let Err(err) = handle.start().await {
                eprintln!("demo server: {err}");
            }
        }
    });
    Json(control::status_of(&state))
}

async fn slow(State(state): State<AppState>, Json(request): Json<SlowRequest>) -> Json<DemoStatus> {
    state
        .faults
        .slow_ms
        .store(request.delay_ms.min(MAX_FAULT_MS), Ordering::SeqCst);
    Json(control::status_of(&state))
}

async fn pings(
    State(state): State<AppState>,
    Json(request): Json<PingsRequest>,
) -> Json<DemoStatus> {
    state
        .faults
        .answer_pings
        .store(request.answer, Ordering::SeqCst);
    Json(control::status_of(&state))
}
