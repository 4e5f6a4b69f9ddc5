//! The embedded demo server: a small axum app on `127.0.0.1:<random port>` that gives the example page something
//! real to stream from, with no network access.
//!
//! The sample endpoints (`samples.rs`, what a real backend would serve):
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
//! - `GET /summary/poll?query=...` (`summary_poll.rs`): the summary for pollers, a finite document of the next
//!   few words after `Last-Event-ID` (then `done`), what the summary panel polls while streaming is refused.
//! - `GET /topics` (`topics.rs`): a WebSocket app server speaking JSON with a `type`: per-socket topic
//!   subscriptions, typed messages per topic, and an application heartbeat (`{"type":"ping"}` -> `pong`).
//!
//! The test hooks (`control.rs`, what the page's switch and the tests use to watch and break the server):
//!
//! - `GET /status`: what the server sees, as JSON ([`DemoStatus`]): open chat sockets, open streams, polls.
//! - `POST /control/streaming` with `{"enabled": false}`: the server **refuses streaming** until it gets
//!   `{"enabled": true}`. Open streams end at once (chat sockets with close code 1012), new chat upgrades and
//!   summary requests get `503` with `Retry-After`, and `/feed/stream` answers `200 application/json`, the answer
//!   of a server that cannot stream, so a client with a polling fallback degrades at once. `/feed` keeps working.
//! - `POST /control/{drop,stop,slow,pings}` (`faults.rs`): drop every connection, stop listening and start again
//!   on the same port, slow every stream down, stop answering application pings. [`DemoHandle`] stops and
//!   starts the server without HTTP, for the app.
//!
//! The panels' endpoints: `room.rs`, a POST + SSE chat room (`GET /room/events`, `POST /room/messages`,
//! `GET /room/log`, `POST /control/room` to restart it), and `feeds.rs`, open `/feed/stream?via=...` responses
//! per name (`GET /feeds`), and `session.rs`, a session held in a cookie (`GET /session/signin`, the SSE
//! `GET /session/events` that answers 401 without it, `GET /session/log`).
//!
//! It is also meant as a plain sample of such a server: nothing in here knows about Tauri. It listens on loopback
//! only and stops with [`DemoServer::shutdown`] (or when the handle is dropped). The `realtime-demo-server` binary
//! runs it on its own, for an app started with `REALTIME_DEMO_SERVER=127.0.0.1:<port>`.

#[cfg(test)]
mod connections_tests;
mod control;
mod faults;
mod feeds;
mod room;
mod samples;
mod session;
mod summary_poll;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;
mod topics;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use control::{DemoStatus, StreamingSwitch, CLOSE_STREAMING_OFF, REFUSED_RETRY_AFTER_SECS};
pub use faults::{DemoHandle, PingsRequest, SlowRequest, StopRequest, MAX_FAULT_MS};
pub use room::{RoomLog, RoomMessage, ROOM_DOWN, ROOM_KEEP, ROOM_NEW_MESSAGE, ROOM_WELCOME};
pub use samples::{
    feed_text, summary_words, FeedEvent, DEFAULT_QUERY, FEED_BACKLOG, FEED_EVENT, FEED_KEEP,
    FEED_WINDOW, RETRY, WELCOME,
};
pub use session::{SessionHit, SessionLog, SESSION_COOKIE, STREAM_COOKIE};
pub use summary_poll::{summary_document, SUMMARY_POLL_WORDS};
pub use topics::{TopicSocket, PUBLISH_EVERY};

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
    /// The topics server (JSON with a `type`, subscriptions, application ping): `ws://127.0.0.1:PORT/topics`.
    pub topics: String,
    /// The server's base URL, `http://127.0.0.1:PORT`, for the other `/control/...` endpoints.
    pub base: String,
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
            topics: format!("ws://{addr}/topics"),
            base: format!("http://{addr}"),
        }
    }
}

/// A running demo server. Dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct DemoServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    shared: AppState,
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
        tokio::spawn(samples::produce_feed(shared.clone()));
        let app = router(shared.clone());
        let task = tokio::spawn(faults::listen(listener, addr, shared.clone(), app));
        Ok(Self {
            addr,
            shutdown,
            task: Some(task),
            shared,
        })
    }

    /// What stops and starts this server without HTTP (the app's `demo_server_stop` and `demo_server_start`).
    pub fn handle(&self) -> DemoHandle {
        DemoHandle(self.shared.clone())
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
    feed: samples::Feed,
    /// The streaming switch and the counters that `/status` reports.
    control: control::Control,
    /// Drop, stop and start, slow down, stop answering pings.
    faults: faults::Faults,
    /// The `/topics` sockets.
    topics: topics::Topics,
    /// The POST + SSE chat room (`room.rs`).
    room: room::Room,
    /// Open `/feed/stream?via=...` responses per name (`feeds.rs`).
    feeds: feeds::FeedHolders,
    /// Sessions held in cookies, and what the session routes saw (`session.rs`).
    sessions: session::Sessions,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

type AppState = Arc<Shared>;

impl Shared {
    fn new(config: DemoConfig, shutdown: CancellationToken) -> Self {
        Self {
            config,
            shutdown,
            feed: samples::Feed::new(),
            control: control::Control::new(),
            faults: faults::Faults::new(),
            topics: topics::Topics::default(),
            room: room::Room::new(),
            feeds: feeds::FeedHolders::default(),
            sessions: session::Sessions::default(),
        }
    }

    /// Resolves when the server shuts down or streaming is switched off: open streams end then.
    fn stream_end(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shutdown = self.shutdown.clone();
        let mut streaming = self.control.watch();
        let cut = self.faults.cut();
        async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = control::streaming_off(&mut streaming) => {}
                _ = cut => {}
            }
        }
    }
}

fn router(shared: AppState) -> Router {
    samples::routes()
        .merge(control::routes())
        .merge(faults::routes())
        .merge(topics::routes())
        .merge(room::routes())
        .merge(feeds::routes())
        .merge(summary_poll::routes())
        .merge(session::routes())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            feeds::count,
        ))
        .with_state(shared)
}
