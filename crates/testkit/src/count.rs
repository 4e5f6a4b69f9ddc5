//! Counting what a server holds: a [`Gauge`] for anything live, a listener whose sockets count themselves open
//! until the server drops them, and a [`CountingServer`] built on both.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{
        ws::{Message, WebSocket, WebSocketUpgrade},
        State,
    },
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::broadcast,
};

use crate::{sse, Seen};

/// Counts one live thing (a connection, a stream) in its counter until dropped.
#[derive(Debug)]
pub struct Gauge(Arc<AtomicUsize>);

impl Gauge {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn load(n: &AtomicUsize) -> usize {
    n.load(Ordering::SeqCst)
}

/// A server-side TCP socket that counts itself open until the server drops it.
pub struct CountedStream {
    inner: TcpStream,
    _open: Gauge,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Sockets accepted and still held, for [`CountingListener`].
#[derive(Clone, Debug, Default)]
pub struct Sockets {
    pub accepted: Arc<AtomicUsize>,
    pub open: Arc<AtomicUsize>,
    /// The most sockets open at once.
    pub peak: Arc<AtomicUsize>,
}

/// An axum listener whose sockets count themselves in [`Sockets`].
pub struct CountingListener {
    pub inner: TcpListener,
    pub sockets: Sockets,
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((inner, addr)) => {
                    let _ = inner.set_nodelay(true);
                    self.sockets.accepted.fetch_add(1, Ordering::SeqCst);
                    let open = Gauge::new(&self.sockets.open);
                    self.sockets
                        .peak
                        .fetch_max(load(&self.sockets.open), Ordering::SeqCst);
                    return (CountedStream { inner, _open: open }, addr);
                }
                // Out of file descriptors, say: wait and go on, as axum's own listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A stream kind of [`CountingServer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ws,
    Sse,
}

/// What a [`CountingServer`] has seen.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub sockets: Sockets,
    pub ws_upgrades: Arc<AtomicUsize>,
    pub ws_live: Arc<AtomicUsize>,
    pub sse_requests: Arc<AtomicUsize>,
    pub sse_live: Arc<AtomicUsize>,
    /// `close <code> <reason>` for every WebSocket close frame received.
    pub closes: Seen,
}

/// A loopback server that counts: TCP sockets accepted and still held (whatever the protocol on them),
/// WebSocket upgrades and SSE requests, live sessions and streams, and the close frames it receives. Every live
/// session and stream relays what the test says ([`CountingServer::say`]): a WebSocket text message, or an SSE
/// event `say` with a rising id. An SSE stream also sends a comment every 50 ms, so that a client that went away
/// is noticed by the next write at the latest.
#[derive(Clone)]
pub struct CountingServer {
    pub addr: SocketAddr,
    pub counts: Counts,
    tx: broadcast::Sender<(u64, String)>,
    said: Arc<AtomicU64>,
}

impl CountingServer {
    /// Serves `/ws` and `/sse` on 127.0.0.1:0 until the runtime ends.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("the listener's address");
        let (tx, _) = broadcast::channel(1024);
        let server = Self {
            addr,
            counts: Counts::default(),
            tx,
            said: Arc::default(),
        };
        let app = Router::new()
            .route("/ws", get(ws_handler))
            .route("/sse", get(sse_handler))
            .with_state(server.clone());
        let listener = CountingListener {
            inner: listener,
            sockets: server.counts.sockets.clone(),
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        server
    }

    /// A URL of a stream of `kind`, told apart from the others by `tag` (its query).
    pub fn url(&self, kind: Kind, tag: &str) -> String {
        match kind {
            Kind::Ws => format!("ws://{}/ws?{tag}", self.addr),
            Kind::Sse => format!("http://{}/sse?{tag}", self.addr),
        }
    }

    /// Sends `text` on every live session and stream.
    pub fn say(&self, text: &str) {
        let id = self.said.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.tx.send((id, text.to_owned()));
    }

    /// Streams opened at the server: WebSocket upgrades or SSE requests.
    pub fn streams(&self, kind: Kind) -> usize {
        match kind {
            Kind::Ws => load(&self.counts.ws_upgrades),
            Kind::Sse => load(&self.counts.sse_requests),
        }
    }

    /// Streams the server is serving now.
    pub fn live(&self, kind: Kind) -> usize {
        match kind {
            Kind::Ws => load(&self.counts.ws_live),
            Kind::Sse => load(&self.counts.sse_live),
        }
    }

    pub fn tcp_accepted(&self) -> usize {
        load(&self.counts.sockets.accepted)
    }

    pub fn tcp_open(&self) -> usize {
        load(&self.counts.sockets.open)
    }

    pub fn tcp_peak(&self) -> usize {
        load(&self.counts.sockets.peak)
    }

    pub fn closes(&self) -> Vec<String> {
        self.counts.closes.all()
    }

    /// Every count on one line, for a failure message.
    pub fn summary(&self) -> String {
        format!(
            "tcp_open={} ws_upgrades={} ws_live={} sse_live={} closes={:?}",
            self.tcp_open(),
            self.streams(Kind::Ws),
            self.live(Kind::Ws),
            self.live(Kind::Sse),
            self.closes()
        )
    }
}

async fn ws_handler(ws: WebSocketUpgrade, State(srv): State<CountingServer>) -> Response {
    srv.counts.ws_upgrades.fetch_add(1, Ordering::SeqCst);
    ws.on_upgrade(move |socket| ws_session(socket, srv))
}

async fn ws_session(mut socket: WebSocket, srv: CountingServer) {
    // Subscribed before it counts as live: a test that waits for `live` cannot lose a message.
    let mut said = srv.tx.subscribe();
    let _live = Gauge::new(&srv.counts.ws_live);
    loop {
        tokio::select! {
            m = socket.recv() => match m {
                Some(Ok(Message::Close(c))) => {
                    let (code, reason) = c
                        .map(|c| (c.code, c.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    srv.counts.closes.push(format!("close {code} {reason}"));
                    // Go on reading: the reply to the close goes out and the client ends the socket.
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            s = said.recv() => match s {
                Ok((_, text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

async fn sse_handler(State(srv): State<CountingServer>) -> Response {
    srv.counts.sse_requests.fetch_add(1, Ordering::SeqCst);
    let said = srv.tx.subscribe();
    let live = Gauge::new(&srv.counts.sse_live);
    let beat = tokio::time::interval(Duration::from_millis(50));
    let body = futures_util::stream::unfold(
        (said, beat, live),
        |(mut said, mut beat, live)| async move {
            let chunk = tokio::select! {
                s = said.recv() => match s {
                    Ok((id, text)) => sse::Event::new(id, text).named("say").to_wire(),
                    Err(broadcast::error::RecvError::Lagged(_)) => ": lagged\n\n".to_owned(),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = beat.tick() => ":\n\n".to_owned(),
            };
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(chunk)),
                (said, beat, live),
            ))
        },
    );
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
