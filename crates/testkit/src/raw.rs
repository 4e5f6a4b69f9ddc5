//! Raw-TCP servers on 127.0.0.1, for what axum will not do: answer with garbage or half an answer, drip bytes,
//! flood, stall, or crash with every connection at once.
//!
//! A [`RawServer`] keeps its connections in a `JoinSet` inside its own task: [`RawServer::kill`] drops the
//! listener and every socket together, which is what a crashed server looks like to a client (no close frame,
//! no end of a chunked body). Left alone, it serves until the test's runtime ends.

use std::{
    future::Future,
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

use crate::WAIT;

/// Response head of an event stream whose body runs until the socket closes.
pub const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";

/// Response head of an event stream with a chunked body (see [`chunk`]): a cut connection is then an error to
/// the client, never a clean end of the body.
pub const SSE_HEAD_CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";

/// A killable accept loop.
pub struct RawServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RawServer {
    /// Serves `listener`, calling `handler(socket, n)` for the n-th connection (from 0).
    pub fn start<H, F>(listener: TcpListener, handler: H) -> Self
    where
        H: Fn(TcpStream, usize) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().expect("the listener's address");
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            let mut n = 0;
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((socket, _)) = accepted {
                            conns.spawn(handler(socket, n));
                            n += 1;
                        }
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Self { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Drops the listener and every connection at once, as a crash would.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A [`RawServer`] on 127.0.0.1:0 that serves until the test's runtime ends.
pub async fn raw_server<H, F>(handler: H) -> SocketAddr
where
    H: Fn(TcpStream, usize) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    RawServer::start(bind(0).await, handler).addr()
}

/// Binds 127.0.0.1:`port` (0 for any), retrying for up to [`WAIT`] while the port is still being released.
pub async fn bind(port: u16) -> TcpListener {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("expected to bind 127.0.0.1:{port}, got {e}"),
        }
    }
}

/// Reads a request head, up to its blank line. `None` if the client went away, sent more than 64 KiB or took
/// longer than [`WAIT`] first.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(WAIT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(n) if n > 0 && head.len() <= 64 << 10 => head.extend_from_slice(&buf[..n]),
                _ => return false,
            }
        }
        true
    })
    .await;
    matches!(read, Ok(true)).then(|| String::from_utf8_lossy(&head).into_owned())
}

/// The value of header `name` in a request head (the request line is not a header).
pub fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// Reads a request, then answers with [`SSE_HEAD`] and `body` in one write (a failed write is the client's
/// doing and is ignored). Gives the request head, `None` if none came.
pub async fn answer_sse<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    body: &[u8],
) -> Option<String> {
    let head = read_head(s).await;
    let _ = s.write_all(&[SSE_HEAD, body].concat()).await;
    head
}

/// Reads a request, answers [`SSE_HEAD`] and `body`, then holds the stream until the client closes it (for at
/// most [`WAIT`]): an event stream that says `body` once and then stays open.
pub async fn say_sse<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, body: &[u8]) {
    answer_sse(s, body).await;
    let _ = s.flush().await;
    until_closed(s).await;
}

/// Accepts a WebSocket on `stream`, sends `text`, then reads until the client closes it (for at most [`WAIT`]).
pub async fn say_ws<S: AsyncRead + AsyncWrite + Unpin>(stream: S, text: &str) {
    use futures_util::{SinkExt, StreamExt};
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let _ = ws
        .send(tokio_tungstenite::tungstenite::Message::text(text))
        .await;
    let _ = tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
}

/// Writes `data` as one chunk of a chunked body; a failed write is the client's doing and is ignored.
pub async fn chunk<S: AsyncWrite + Unpin>(socket: &mut S, data: &str) {
    let _ = socket
        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await;
}

/// Reads and drops whatever the client sends until it closes, for at most [`WAIT`].
pub async fn until_closed<S: AsyncRead + Unpin>(s: &mut S) {
    let mut sink = [0u8; 256];
    let _ = tokio::time::timeout(WAIT, async {
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A handler that reads the request and then says nothing, holding the socket until the server is killed or
/// the runtime ends: no `101`, no response head.
pub async fn silent(mut socket: TcpStream, _n: usize) {
    if read_head(&mut socket).await.is_some() {
        std::future::pending::<()>().await;
    }
}

/// A handler that completes the WebSocket handshake and then never reads again (so never answers a ping, and
/// lets the socket's buffers fill), holding the socket until the server is killed or the runtime ends.
pub async fn deaf_ws(socket: TcpStream, _n: usize) {
    if let Ok(ws) = tokio_tungstenite::accept_async(socket).await {
        let _held = ws;
        std::future::pending::<()>().await;
    }
}

/// A server that, after reading each request, writes `at_once` at once and then `dripped` one byte per second
/// (a slowloris), then waits for the client to go.
pub async fn drip_server(at_once: &'static [u8], dripped: &'static [u8]) -> SocketAddr {
    raw_server(move |mut tcp, _| async move {
        read_head(&mut tcp).await;
        if tcp.write_all(at_once).await.is_err() {
            return;
        }
        for b in dripped {
            if tcp.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        until_closed(&mut tcp).await;
    })
    .await
}

/// What a flooding server managed before the client stopped it.
#[derive(Debug)]
pub struct Flood {
    pub written: usize,
    pub write_failed: bool,
    pub elapsed: Duration,
}

/// Writes `head`, then `unit` over and over (64 KiB at a time) until a write fails, 512 MiB went out or
/// [`WAIT`] passed.
pub async fn flood<S: AsyncWrite + Unpin>(s: &mut S, head: &[u8], unit: &[u8]) -> Flood {
    let started = Instant::now();
    let chunk = unit.repeat((64 << 10) / unit.len());
    let mut written = 0;
    let mut result = s.write_all(head).await;
    while result.is_ok() && written < 512 << 20 && started.elapsed() < WAIT {
        result = s.write_all(&chunk).await;
        if result.is_ok() {
            written += chunk.len();
        }
    }
    Flood {
        written,
        write_failed: result.is_err(),
        elapsed: started.elapsed(),
    }
}
