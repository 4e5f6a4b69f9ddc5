//! The bench server: an axum app on `127.0.0.1:<random port>` that the bench page streams from, and the same
//! routes and state over TLS with HTTP/2 on a second port (for the idle-stream scaling over HTTP/2). Nothing in
//! here knows about Tauri. The app runs it in a child process of its own binary (`realtime-bench --serve`), so
//! that the app process's memory and CPU time measure the client side only.
//!
//! Every message is text: `"<index> <epoch ms, 3 decimals> "` padded with `x` to the requested size. The stamp
//! is the wall clock (`SystemTime`) at the moment the message is handed to the socket, in the unit of JavaScript's
//! `Date.now()`, so the page can compute latency with `performance.timeOrigin + performance.now()`.
//!
//! - `GET /ws?n=&size=&rate=`: a WebSocket that waits for the client's text message `go`, then sends `n`
//!   messages of `size` bytes, as fast as the socket takes them (`rate` 0 or absent) or `rate` per second (each
//!   send dithered by up to 1 ms, see [`dither`]); then
//!   it stays open until the client closes (at most [`HOLD`]). Waiting for `go` lets every client attach its
//!   listener first (the official plugin's JS API attaches it only after `connect` resolves).
//! - `GET /sse?n=&size=&rate=`: the same messages as Server-Sent Events (`data: <message>`), starting at once.
//!   The response stays open afterwards (a closed stream would make the client reconnect and get it all again).
//! - `GET /idle`: an SSE stream that sends a comment, then one `data: ping <k>` event per `GET /idle/ping`.
//! - `GET /idle/ping`: pings every open `/idle` stream; answers the number of open ones.
//! - `GET /poll?key=&n=&rate=&since=`: for pollers, a finite `text/event-stream` document of the events of
//!   session `key` that exist now and come after `since` (or the `Last-Event-ID` header). A session starts at its
//!   first request; event `i` (id `i + 1`) exists from `start + i / rate`, and its stamp is that instant.
//! - `GET /stats`: open `/ws`, `/sse` and `/idle` streams, and messages sent in all, as JSON.
//!
//! Every answer carries `Access-Control-Allow-Origin: *`, so the page's own `fetch` and `WebSocket` can use it.

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::{Body, Bytes},
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        Query, State,
    },
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use futures_util::{SinkExt, StreamExt};
use realtime_testkit::{sse, Gauge};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

/// How long a stream stays open after its last message, waiting for the client to close it.
pub const HOLD: Duration = Duration::from_secs(300);

/// Time allowed for a WebSocket client to send `go`.
const GO_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest message the server agrees to build.
const MAX_SIZE: usize = 1 << 20;

/// Most messages one stream may ask for.
const MAX_N: u64 = 10_000_000;

/// Bytes of SSE events gathered into one body chunk when sending as fast as possible.
const SSE_CHUNK: usize = 64 * 1024;

/// Most events in one `/poll` answer.
const POLL_MAX_EVENTS: u64 = 20_000;

/// Poll sessions older than this are forgotten.
const POLL_SESSION_TTL: Duration = Duration::from_secs(600);

/// The wall clock in ms since the Unix epoch, with sub-ms precision: what `Date.now()` counts.
pub fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Message `index`, stamped now, padded with `x` to `size` bytes (never cut: a small size gives the bare header).
pub fn message(index: u64, size: usize) -> String {
    let mut s = String::with_capacity(size.max(32));
    let _ = write!(s, "{index} {:.3} ", epoch_ms());
    while s.len() < size {
        s.push('x');
    }
    s
}

/// A pseudo-random delay in [0, 1 ms) for message `i` (splitmix64 of `i`). The page's clock counts whole
/// milliseconds: dithered send times make its rounding uniform over a millisecond, so half a millisecond
/// corrects it on average, whatever the latency (without it, a paced stream would arrive at the same phase of the
/// page's millisecond every time, and the rounding would be a fixed unknown).
fn dither(i: u64) -> Duration {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Duration::from_nanos(z % 1_000_000)
}

#[derive(Debug, Deserialize)]
struct StreamParams {
    #[serde(default)]
    n: u64,
    #[serde(default)]
    size: usize,
    /// Messages per second; 0: as fast as possible.
    #[serde(default)]
    rate: f64,
}

impl StreamParams {
    fn checked(self) -> Self {
        Self {
            n: self.n.min(MAX_N),
            size: self.size.min(MAX_SIZE),
            rate: if self.rate.is_finite() && self.rate > 0.0 {
                self.rate
            } else {
                0.0
            },
        }
    }

    /// When message `i` is due, for a paced stream: `i / rate`, plus a dither of 0 to 1 ms (see [`dither`]).
    fn due(&self, start: Instant, i: u64) -> Instant {
        start + Duration::from_secs_f64(i as f64 / self.rate) + dither(i)
    }
}

#[derive(Debug, Deserialize)]
struct PollParams {
    key: String,
    n: u64,
    rate: f64,
    since: Option<u64>,
}

struct PollSession {
    start: Instant,
    start_ms: f64,
}

#[derive(Clone)]
struct Shared {
    ws_open: Arc<AtomicUsize>,
    sse_open: Arc<AtomicUsize>,
    idle_open: Arc<AtomicUsize>,
    ping: broadcast::Sender<u64>,
    pings: Arc<AtomicUsize>,
    polls: Arc<Mutex<HashMap<String, PollSession>>>,
    /// Messages of `/ws` and `/sse` handed to their sockets, in all.
    sent: Arc<AtomicU64>,
}

/// What `GET /stats` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    ws_open: usize,
    sse_open: usize,
    idle_open: usize,
    sent: u64,
}

fn cors(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// An event stream for the page: not stored by its cache, readable from its origin.
fn for_the_page(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cors(response)
}

fn event_stream(rx: mpsc::Receiver<Bytes>) -> Response {
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    for_the_page(Body::from_stream(body).into_response())
}

async fn ws(
    upgrade: WebSocketUpgrade,
    Query(params): Query<StreamParams>,
    State(shared): State<Shared>,
) -> Response {
    let params = params.checked();
    cors(
        upgrade
            .max_message_size(MAX_SIZE)
            .on_upgrade(move |socket| ws_session(socket, params, shared)),
    )
}

async fn ws_session(mut socket: WebSocket, params: StreamParams, shared: Shared) {
    let _open = Gauge::new(&shared.ws_open);
    let go = tokio::time::timeout(GO_TIMEOUT, async {
        while let Some(Ok(msg)) = socket.recv().await {
            match msg {
                Message::Text(t) if t.as_str() == "go" => return true,
                Message::Close(_) => return false,
                _ => {}
            }
        }
        false
    })
    .await;
    if go != Ok(true) {
        return;
    }
    let (mut tx, mut rx) = socket.split();
    // Read meanwhile, so a close from the client is seen (and answered) at once.
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut ok = true;
    for i in 0..params.n {
        if reader.is_finished() {
            ok = false;
            break;
        }
        if params.rate > 0.0 {
            tokio::time::sleep_until(params.due(start, i).into()).await;
        }
        let msg = Message::Text(message(i, params.size).into());
        // Paced: each message goes out at once. Fast: let the sink gather a few before writing.
        let sent = if params.rate > 0.0 || i % 64 == 63 {
            tx.send(msg).await
        } else {
            tx.feed(msg).await
        };
        if sent.is_err() {
            ok = false;
            break;
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
    }
    if ok && tx.flush().await.is_ok() {
        let _ = tokio::time::timeout(HOLD, reader).await;
    }
    let _ = tx.close().await;
}

async fn sse(Query(params): Query<StreamParams>, State(shared): State<Shared>) -> Response {
    let params = params.checked();
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        let _open = Gauge::new(&shared.sse_open);
        let start = Instant::now();
        let mut chunk = String::new();
        let mut pending = 0u64;
        for i in 0..params.n {
            if params.rate > 0.0 {
                tokio::time::sleep_until(params.due(start, i).into()).await;
            }
            chunk.push_str("data: ");
            chunk.push_str(&message(i, params.size));
            chunk.push_str("\n\n");
            pending += 1;
            if params.rate > 0.0 || chunk.len() >= SSE_CHUNK || i + 1 == params.n {
                let bytes = Bytes::from(std::mem::take(&mut chunk));
                if tx.send(bytes).await.is_err() {
                    return;
                }
                shared
                    .sent
                    .fetch_add(std::mem::take(&mut pending), Ordering::Relaxed);
            }
        }
        // Keep the stream open until the client goes (the receiver is dropped with the response body).
        let _ = tokio::time::timeout(HOLD, tx.closed()).await;
    });
    event_stream(rx)
}

async fn idle(State(shared): State<Shared>) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let mut ping = shared.ping.subscribe();
    tokio::spawn(async move {
        let _open = Gauge::new(&shared.idle_open);
        if tx.send(Bytes::from_static(b": idle\n\n")).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(HOLD);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                k = ping.recv() => match k {
                    Ok(k) => {
                        if tx.send(Bytes::from(format!("data: ping {k}\n\n"))).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    event_stream(rx)
}

async fn idle_ping(State(shared): State<Shared>) -> Response {
    let k = shared.pings.fetch_add(1, Ordering::SeqCst) as u64 + 1;
    let _ = shared.ping.send(k);
    cors(Json(shared.idle_open.load(Ordering::SeqCst)).into_response())
}

async fn poll(
    Query(params): Query<PollParams>,
    headers: HeaderMap,
    State(shared): State<Shared>,
) -> Response {
    let now = Instant::now();
    let (start, start_ms) = {
        let mut polls = shared.polls.lock().unwrap_or_else(|p| p.into_inner());
        polls.retain(|_, s| now.duration_since(s.start) < POLL_SESSION_TTL);
        let s = polls
            .entry(params.key.clone())
            .or_insert_with(|| PollSession {
                start: now,
                start_ms: epoch_ms(),
            });
        (s.start, s.start_ms)
    };
    let rate = if params.rate.is_finite() && params.rate > 0.0 {
        params.rate
    } else {
        1.0
    };
    // Events 0..available exist now.
    let available = ((now.duration_since(start).as_secs_f64() * rate).floor() as u64 + 1)
        .min(params.n.min(MAX_N));
    // Event `i` has the id `i + 1`: a resume point `since` is the index of the first event to send.
    let document = sse::after_last_event_id(&headers, params.since, |since| {
        let first = since.min(available);
        let last = available.min(first + POLL_MAX_EVENTS);
        (first..last).map(move |i| {
            let stamp = start_ms + i as f64 * 1000.0 / rate;
            sse::Event::new(i + 1, format!("{i} {stamp:.3} "))
        })
    });
    for_the_page(document)
}

async fn stats(State(shared): State<Shared>) -> Response {
    cors(
        Json(Stats {
            ws_open: shared.ws_open.load(Ordering::SeqCst),
            sse_open: shared.sse_open.load(Ordering::SeqCst),
            idle_open: shared.idle_open.load(Ordering::SeqCst),
            sent: shared.sent.load(Ordering::SeqCst),
        })
        .into_response(),
    )
}

/// The routes and their shared state (served over cleartext and over TLS with the same state).
pub fn router() -> Router {
    let (ping, _) = broadcast::channel(16);
    let shared = Shared {
        ws_open: Arc::default(),
        sse_open: Arc::default(),
        idle_open: Arc::default(),
        ping,
        pings: Arc::default(),
        polls: Arc::default(),
        sent: Arc::default(),
    };
    Router::new()
        .route("/ws", get(ws))
        .route("/sse", get(sse))
        .route("/idle", get(idle))
        .route("/idle/ping", get(idle_ping))
        .route("/poll", get(poll))
        .route("/stats", get(stats))
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_their_size_index_and_a_stamp() {
        let m = message(42, 64);
        assert_eq!(m.len(), 64);
        let mut parts = m.split(' ');
        assert_eq!(parts.next(), Some("42"));
        let stamp: f64 = parts.next().unwrap().parse().unwrap();
        assert!((stamp - epoch_ms()).abs() < 1000.0, "stamp {stamp}");
        assert!(message(123_456, 4).starts_with("123456 "));
    }

    #[test]
    fn dither_spreads_over_a_millisecond_and_keeps_order() {
        let d: Vec<u128> = (0..10_000).map(|i| dither(i).as_nanos()).collect();
        assert!(d.iter().all(|&x| x < 1_000_000));
        let mean = d.iter().sum::<u128>() as f64 / d.len() as f64;
        assert!((mean - 500_000.0).abs() < 20_000.0, "mean {mean}");
        let p = StreamParams {
            n: 10,
            size: 64,
            rate: 1000.0,
        };
        let start = Instant::now();
        assert!((1..10).all(|i| p.due(start, i) > p.due(start, i - 1)));
    }

    #[tokio::test]
    async fn poll_serves_the_events_that_exist_after_since() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move { axum::serve(listener, router()).await });
        let get = |path: String| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let first = get("/poll?key=t&n=5&rate=1000".into()).await;
        assert!(first.contains("id: 1\ndata: 0 "), "{first}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let all = get("/poll?key=t&n=5&rate=1000&since=2".into()).await;
        assert!(!all.contains("id: 2\n"), "{all}");
        assert!(
            all.contains("id: 3\n") && all.contains("id: 5\n") && !all.contains("id: 6\n"),
            "{all}"
        );
        assert!(all.contains("access-control-allow-origin: *"), "{all}");
        task.abort();
    }
}
