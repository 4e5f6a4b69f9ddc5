//! One test kit for the workspace: what the engine's tests, the plugin's tests, the example's demo server and
//! the bench server share, so that each piece is written once.
//!
//! - [`sse`]: a finite Server-Sent Events document of the events after `Last-Event-ID`, as pollers get it.
//! - [`raw`]: raw-TCP servers (killable, dripping, silent, flooding) and the reading of a request head.
//! - [`count`]: counters of what a server holds ([`Gauge`], a listener that counts its sockets) and a
//!   loopback server that counts its WebSocket sessions and SSE streams and relays what a test says to them.
//! - [`tls`]: a loopback CA (rcgen) and a TLS server of an axum router over HTTP/2 or HTTP/1.1 (ALPN), with
//!   client certificates if asked, counting its TCP connections and the HTTP version of every request.
//! - Here: [`WAIT`], [`Seen`], [`serve`], [`closed_port`] and [`wait_until`].
//!
//! Every server binds 127.0.0.1 and every wait is bounded by [`WAIT`]. Nothing here knows the engine or Tauri
//! (the engine's frame recorder lives with its tests), and the crate is never published.

pub mod count;
pub mod raw;
pub mod sse;
pub mod tls;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

pub use count::Gauge;

/// How long any test waits for anything.
pub const WAIT: Duration = Duration::from_secs(10);

/// Observations a test server records for the test to assert on.
#[derive(Default, Clone, Debug)]
pub struct Seen(pub Arc<Mutex<Vec<String>>>);

impl Seen {
    pub fn push(&self, s: impl Into<String>) {
        self.lock().push(s.into());
    }

    pub fn all(&self) -> Vec<String> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Waits (at most [`WAIT`]) until one observation matches `pred`, and returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(s) = self.all().into_iter().find(|s| pred(s)) {
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("expected the server to see {what}, got {:?}", self.all());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A test that panicked while pushing has failed already; its observations are still worth showing.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves `app` on 127.0.0.1:0 until the runtime ends.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A port on 127.0.0.1 with nothing listening.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    l.local_addr().expect("the listener's address").port()
}

/// Polls `cond` every 10 ms until it holds, or panics after [`WAIT`].
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {what} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
