//! The WebSocket upstream (tokio-tungstenite over rustls): the opening handshake, then reading, writing one
//! message at a time with a deadline, the heartbeat (protocol ping/pong, an application message and its reply,
//! or both) and the close handshake.
//!
//! Everything it has in flight lives in [`WsUpstream`], so [`WsUpstream::next`] can be dropped and called
//! again at any point: the connection polls it beside its controls, and a server that stops reading or
//! sending never keeps `close` from being heard.

use std::{pin::Pin, task::Poll, time::Duration};

use futures_util::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{sleep, timeout, timeout_at, Instant, Sleep},
};
use tokio_tungstenite::{
    tungstenite::{
        self, client::IntoClientRequest, protocol::frame::coding::CloseCode, protocol::CloseFrame,
        protocol::WebSocketConfig, Message,
    },
    Connector, MaybeTlsStream, WebSocketStream,
};

use super::{
    request::{classify_status, retry_after, store_cookies, tls_failure},
    AttemptError, Env, Event, Notes, Writable,
};
use crate::{
    error::Error,
    frame::{FrameBody, Transport},
    options::Resolved,
    policy::{Ended, Progress},
    queue::Outgoing,
    time::{deadline, millis, NEVER},
};

/// Time allowed for the server's side of a close it started, before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Longest close reason a close frame can carry (125 bytes of payload less the 2-byte code).
pub const MAX_CLOSE_REASON: usize = 123;

/// A close an app may ask for: code 1000 or 3000-4999 (the others are the protocol's own), a short reason.
pub fn check_close(code: u16, reason: &str) -> Result<(), Error> {
    if code != 1000 && !(3000..=4999).contains(&code) {
        return Err(Error::InvalidClose(format!(
            "code {code} is not allowed; use 1000 or 3000-4999"
        )));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(Error::InvalidClose(format!(
            "reason is {} bytes; at most {MAX_CLOSE_REASON} are allowed",
            reason.len()
        )));
    }
    Ok(())
}

/// What a WebSocket upstream runs over: TCP (direct, or through a proxy), with or without TLS.
pub(crate) type Socket = MaybeTlsStream<crate::proxy::Stream>;

/// Why the upstream is writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writing {
    /// A message of the app's: its end is reported as [`Event::Written`].
    App,
    /// The heartbeat's ping.
    Ping,
    /// The application heartbeat's message: never queued, never counted as a send.
    Beat,
}

/// The application heartbeat: a text sent every interval, and what proves the link alive after it.
struct AppBeat {
    message: String,
    /// Only this text proves the link alive (and it is not relayed unless `deliver`); `None`: any message.
    reply: Option<String>,
    deliver: bool,
}

/// An open WebSocket.
pub(crate) struct WsUpstream<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    stream: SplitStream<WebSocketStream<S>>,
    protocol: Option<String>,
    /// Ping every `ping_every` while nothing is written; a pong must come within `pong_within`.
    heartbeat: Option<(Duration, Duration)>,
    /// Whether the heartbeat sends protocol pings.
    protocol_ping: bool,
    /// The application heartbeat, when the options set a `message`.
    beat: Option<AppBeat>,
    /// The protocol ping is due after the application message being written (both are on).
    ping_after: bool,
    ping: Pin<Box<Sleep>>,
    pong: Pin<Box<Sleep>>,
    awaiting_pong: bool,
    /// A reply to the application heartbeat must come by this.
    reply: Pin<Box<Sleep>>,
    awaiting_reply: bool,
    /// A check of the link asked for out of turn (after a wake or a network change): said in the reason if it
    /// finds the link dead, and until its answer comes.
    checking: Option<&'static str>,
    /// The message being written: `pending` until the socket takes it, then flushed.
    pending: Option<Message>,
    writing: Option<Writing>,
    write_within: Duration,
    write_deadline: Pin<Box<Sleep>>,
    /// The server closed: how the upstream ended, reported once its reply to the close is flushed (or the
    /// grace is over).
    ending: Option<(Ended, Instant)>,
    since: Instant,
    delivered: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WsUpstream<S> {
    /// Wraps a socket whose handshake is done. The heartbeat, when on, pings every `pingIntervalMs` and
    /// expects a pong within `pongTimeoutMs`, which is also the write deadline (without a heartbeat, the
    /// write deadline is `connectTimeoutMs`). With a `message`, it sends that text instead (or before the ping,
    /// with `protocolPing`) and expects a reply within the same time.
    pub(crate) fn new(ws: WebSocketStream<S>, protocol: Option<String>, opts: &Resolved) -> Self {
        let heartbeat = opts
            .heartbeat
            .as_ref()
            .map(|h| (millis(h.ping_interval_ms), millis(h.pong_timeout_ms)));
        let protocol_ping = opts
            .heartbeat
            .as_ref()
            .is_some_and(|h| h.sends_protocol_ping());
        let beat = opts.heartbeat.as_ref().and_then(|h| {
            h.message.clone().map(|message| AppBeat {
                message,
                reply: h.reply.clone(),
                deliver: h.deliver_replies,
            })
        });
        let write_within = heartbeat.map_or(opts.connect_timeout, |(_, pong)| pong);
        let (sink, stream) = ws.split();
        Self {
            sink,
            stream,
            protocol,
            ping: Box::pin(sleep(heartbeat.map_or(NEVER, |(ping, _)| ping))),
            pong: Box::pin(sleep(NEVER)),
            heartbeat,
            protocol_ping,
            beat,
            ping_after: false,
            awaiting_pong: false,
            reply: Box::pin(sleep(NEVER)),
            awaiting_reply: false,
            checking: None,
            pending: None,
            writing: None,
            write_within,
            write_deadline: Box::pin(sleep(NEVER)),
            ending: None,
            since: Instant::now(),
            delivered: false,
        }
    }

    pub(crate) fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub(crate) fn writable(&self) -> Writable {
        if self.writing.is_some() || self.ending.is_some() {
            Writable::Busy
        } else {
            Writable::Now
        }
    }

    pub(crate) fn write(&mut self, msg: Outgoing) {
        self.start(
            Writing::App,
            match msg {
                Outgoing::Text(t) => Message::text(t),
                Outgoing::Binary(b) => Message::binary(b),
            },
        );
    }

    fn start(&mut self, why: Writing, msg: Message) {
        self.writing = Some(why);
        self.pending = Some(msg);
        self.write_deadline
            .as_mut()
            .reset(deadline(self.write_within));
    }

    /// Checks the link now, out of turn (`why` is said if it is found dead): the heartbeat goes at once (the
    /// application message, or a protocol ping, also with the heartbeat off) and its answer must come within
    /// the pong timeout (`connectTimeoutMs` with the heartbeat off). A healthy link answers and nothing shows.
    /// While an answer is already awaited, that wait and its deadline are the check.
    pub(crate) fn check(&mut self, why: &'static str) {
        if self.awaiting_pong || self.awaiting_reply || self.ending.is_some() {
            return;
        }
        self.checking = Some(why);
        // Fires once the write in flight, if any, is done.
        self.ping.as_mut().reset(Instant::now());
    }

    /// The reason a missing answer ends the link with.
    fn unanswered(&self, what: String) -> String {
        match self.checking {
            Some(why) => format!("{what} ({why})"),
            None => what,
        }
    }

    /// The heartbeat's next write: the application message (then the ping, when both are on), or the ping.
    fn beat(&mut self) {
        match &self.beat {
            Some(beat) => {
                self.ping_after = self.protocol_ping;
                let text = Message::text(beat.message.clone());
                self.start(Writing::Beat, text);
            }
            None => self.start(Writing::Ping, Message::Ping(Default::default())),
        }
    }

    /// A heartbeat write went out: wait for its answer (an earlier wait keeps its deadline), then the ping
    /// that was due after it, if any.
    fn beat_written(&mut self, what: Writing) {
        // The pong timeout, or `connectTimeoutMs` for a check with the heartbeat off.
        let within = self.write_within;
        if what == Writing::Ping && !self.awaiting_pong {
            self.awaiting_pong = true;
            self.pong.as_mut().reset(deadline(within));
        }
        if what == Writing::Beat && !self.awaiting_reply {
            self.awaiting_reply = true;
            self.reply.as_mut().reset(deadline(within));
        }
        if std::mem::take(&mut self.ping_after) {
            self.start(Writing::Ping, Message::Ping(Default::default()));
        }
    }

    /// A text or binary message arrived: whether it answers the application heartbeat, and whether it is
    /// only that answer (not to be relayed).
    fn heard(&mut self, text: Option<&str>) -> bool {
        let Some(beat) = &self.beat else { return false };
        let (answers, hold) = match (&beat.reply, text) {
            (None, _) => (true, false),
            (Some(reply), Some(t)) if t == reply => (true, !beat.deliver),
            (Some(_), _) => (false, false),
        };
        if answers {
            self.checking = None;
            self.awaiting_reply = false;
            self.reply.as_mut().reset(deadline(NEVER));
        }
        hold
    }

    fn progress(&self) -> Progress {
        Progress {
            uptime: self.since.elapsed(),
            delivered: self.delivered,
        }
    }

    /// Ends with `ended`, telling first whoever waits for the write in flight that it may not have arrived.
    fn end(&mut self, ended: Ended) -> Event {
        if self.writing.take() == Some(Writing::App) {
            // The `Ended` comes next, from the call after this one.
            self.ending = Some((ended, Instant::now()));
            return Event::Written(Err("the connection ended while it was being written".into()));
        }
        Event::Ended(ended)
    }

    pub(crate) async fn next(&mut self) -> Event {
        loop {
            if let Some((_, until)) = &self.ending {
                // Lets tungstenite write its reply to a close the server started, within the grace.
                let until = *until;
                let _ = timeout_at(
                    until,
                    std::future::poll_fn(|cx| self.sink.poll_flush_unpin(cx)),
                )
                .await;
                if let Some((ended, _)) = self.ending.take() {
                    return Event::Ended(ended);
                }
            }
            tokio::select! {
                biased;
                written = std::future::poll_fn(|cx| poll_write(&mut self.sink, &mut self.pending, cx)), if self.writing.is_some() => {
                    self.write_deadline.as_mut().reset(deadline(NEVER));
                    match (self.writing.take(), written) {
                        (Some(what @ (Writing::Ping | Writing::Beat)), Ok(())) => {
                            self.beat_written(what);
                            if self.writing.is_none() {
                                return Event::Writable;
                            }
                        }
                        (Some(Writing::App), Ok(())) => return Event::Written(Ok(())),
                        (Some(Writing::App), Err(e)) => {
                            let why = format!("the write failed ({e})");
                            self.ending = Some((self.failed(e), Instant::now()));
                            return Event::Written(Err(why));
                        }
                        (_, Err(e)) => return Event::Ended(self.failed(e)),
                        (None, Ok(())) => {}
                    }
                }
                _ = &mut self.write_deadline, if self.writing.is_some() => {
                    let reason = format!(
                        "the server stopped reading: a write did not finish within {} ms",
                        self.write_within.as_millis()
                    );
                    return self.end(Ended::Dropped { reason, progress: self.progress() });
                }
                m = self.stream.next() => match m {
                    Some(Ok(Message::Text(text))) => {
                        if self.heard(Some(text.as_str())) {
                            continue;
                        }
                        self.delivered = true;
                        let len = text.len();
                        return Event::Message(FrameBody::Message {
                            transport: Transport::Websocket,
                            event: None,
                            data: text.as_str().to_owned(),
                            last_event_id: None,
                            binary: false,
                        }, len);
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        use base64::Engine as _;
                        self.heard(None);
                        self.delivered = true;
                        return Event::Message(FrameBody::Message {
                            transport: Transport::Websocket,
                            event: None,
                            data: base64::engine::general_purpose::STANDARD.encode(&bytes),
                            last_event_id: None,
                            binary: true,
                        }, bytes.len());
                    }
                    Some(Ok(Message::Pong(_))) => {
                        self.checking = None;
                        self.awaiting_pong = false;
                        self.pong.as_mut().reset(deadline(NEVER));
                    }
                    Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                            .unwrap_or((1005, String::new()));
                        let progress = self.progress();
                        let ended = Ended::ServerClosed { code, reason, progress };
                        if self.writing.take() == Some(Writing::App) {
                            self.ending = Some((ended, deadline(CLOSE_GRACE)));
                            return Event::Written(Err("the server closed the connection".into()));
                        }
                        self.ending = Some((ended, deadline(CLOSE_GRACE)));
                    }
                    Some(Err(e)) => {
                        let ended = self.failed(e);
                        return self.end(ended);
                    }
                    None => {
                        let reason = "connection closed without a close frame".to_owned();
                        return self.end(Ended::Dropped { reason, progress: self.progress() });
                    }
                },
                _ = &mut self.ping, if (self.heartbeat.is_some() || self.checking.is_some()) && self.writing.is_none() => {
                    let every = self.heartbeat.map_or(NEVER, |(ping, _)| ping);
                    self.ping.as_mut().reset(deadline(every));
                    self.beat();
                }
                _ = &mut self.pong, if self.awaiting_pong => {
                    let reason = self.unanswered(format!("no pong within {} ms", self.write_within.as_millis()));
                    return self.end(Ended::Dropped { reason, progress: self.progress() });
                }
                _ = &mut self.reply, if self.awaiting_reply => {
                    let within = self.write_within.as_millis();
                    let reason = match self.beat.as_ref().and_then(|b| b.reply.as_deref()) {
                        Some(reply) => format!("no heartbeat reply {reply:?} within {within} ms"),
                        None => format!("no message after the heartbeat within {within} ms"),
                    };
                    let reason = self.unanswered(reason);
                    return self.end(Ended::Dropped { reason, progress: self.progress() });
                }
            }
        }
    }

    /// How a read or write error ends the upstream.
    fn failed(&self, e: tungstenite::Error) -> Ended {
        use tungstenite::Error as E;
        let progress = self.progress();
        match e {
            // The server sent more than we accept: retrying would only repeat it.
            E::Capacity(c) => Ended::Attempt(AttemptError::Fatal {
                reason: format!("message from the server too large ({c}); raise maxMessageSize"),
            }),
            E::Protocol(p) => Ended::Dropped {
                reason: format!("WebSocket protocol error: {p}"),
                progress,
            },
            E::Utf8(_) => Ended::Dropped {
                reason: "server sent invalid UTF-8 in a text message".into(),
                progress,
            },
            other => Ended::Dropped {
                reason: format!("network error: {other}"),
                progress,
            },
        }
    }

    /// Sends a close frame and waits briefly for the server's reply; returns the code and reason it echoed.
    /// Each step is bounded by `grace`, so a server that stopped reading only delays the end by that much.
    pub(crate) async fn close(
        &mut self,
        code: u16,
        reason: &str,
        grace: Duration,
    ) -> Option<(u16, String)> {
        self.pending = None;
        self.writing = None;
        self.ping_after = false;
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        if timeout(grace, self.sink.send(Message::Close(Some(frame))))
            .await
            .is_err()
        {
            return None;
        }
        let stream = &mut self.stream;
        let wait = async {
            while let Some(m) = stream.next().await {
                match m {
                    Ok(Message::Close(f)) => {
                        return f.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()));
                    }
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
            None
        };
        timeout(grace, wait).await.ok().flatten()
    }
}

/// Takes `pending` into the socket once it has room, then flushes: the next step of writing one message.
/// Cancel-safe: a message not yet taken stays in `pending`, one taken stays in the socket's buffer.
fn poll_write<S>(
    sink: &mut S,
    pending: &mut Option<Message>,
    cx: &mut std::task::Context<'_>,
) -> Poll<Result<(), tungstenite::Error>>
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    if pending.is_some() {
        std::task::ready!(sink.poll_ready_unpin(cx))?;
        if let Some(msg) = pending.take() {
            sink.start_send_unpin(msg)?;
        }
    }
    sink.poll_flush_unpin(cx)
}

/// Performs the opening handshake.
pub(crate) async fn open(
    opts: &Resolved,
    env: &Env,
    notes: &Notes,
) -> Result<WsUpstream<Socket>, AttemptError> {
    let mut request = opts
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| AttemptError::Fatal {
            reason: format!("invalid WebSocket request: {e}"),
        })?;
    let own = env
        .headers_with_cookies(opts, &opts.headers, &opts.url, notes)
        .await;
    let headers = request.headers_mut();
    for (name, value) in own {
        headers.append(name, value);
    }
    if !opts.protocols.is_empty() {
        let joined = opts.protocols.join(", ");
        let value = http::HeaderValue::from_str(&joined).map_err(|_| AttemptError::Fatal {
            reason: "invalid subprotocol list".into(),
        })?;
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(opts.max_message_size))
        .max_frame_size(Some(opts.max_message_size));
    let connector = Connector::Rustls(env.ws_tls(&opts.url));
    // The socket first (through the proxy, if any, which never sees the scope: only the target is checked),
    // then TLS to the target and the upgrade over it.
    let stream = crate::proxy::connect(&env.proxies, &opts.url).await?;
    match tokio_tungstenite::client_async_tls_with_config(
        request,
        stream,
        Some(config),
        Some(connector),
    )
    .await
    {
        Ok((ws, response)) => {
            store_cookies(opts, &opts.url, response.headers(), notes).await;
            let protocol = response
                .headers()
                .get(http::header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok(WsUpstream::new(ws, protocol, opts))
        }
        Err(tungstenite::Error::Http(response)) => {
            store_cookies(opts, &opts.url, response.headers(), notes).await;
            Err(classify(tungstenite::Error::Http(response)))
        }
        Err(e) => Err(classify(e)),
    }
}

fn classify(e: tungstenite::Error) -> AttemptError {
    use tungstenite::Error as E;
    match e {
        E::Http(response) => {
            let status = response.status();
            let retry_after = retry_after(response.headers());
            match classify_status(status, retry_after) {
                // Anything else than a transient status means this endpoint will not upgrade.
                AttemptError::Fatal { reason } => AttemptError::NoStream {
                    reason: format!("WebSocket upgrade refused: {reason}"),
                },
                other => other,
            }
        }
        E::Tls(e) => AttemptError::Fatal {
            reason: format!("TLS error: {e}"),
        },
        E::Url(e) => AttemptError::Fatal {
            reason: format!("invalid WebSocket URL: {e}"),
        },
        // Closed before the answer, or an answer that is not HTTP at all: a server or proxy in trouble, not
        // one that refuses to stream. Retry.
        E::Protocol(
            e @ (tungstenite::error::ProtocolError::HandshakeIncomplete
            | tungstenite::error::ProtocolError::HttparseError(_)),
        ) => AttemptError::Retry {
            reason: format!("network error: WebSocket handshake failed: {e}"),
            retry_after: None,
        },
        E::Protocol(e) => AttemptError::NoStream {
            reason: format!("WebSocket handshake failed: {e}"),
        },
        // tokio-tungstenite reports rustls handshake failures as I/O errors.
        E::Io(e) => match tls_failure(&e) {
            Some(reason) => AttemptError::Fatal { reason },
            None => AttemptError::Retry {
                reason: format!("network error: {e}"),
                retry_after: None,
            },
        },
        other => AttemptError::Retry {
            reason: other.to_string(),
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{ConnectOptions, HeartbeatOptions, Limits, Toggle};
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    fn opts(heartbeat: Option<HeartbeatOptions>) -> Resolved {
        ConnectOptions {
            url: "ws://example.test/".into(),
            heartbeat: Some(heartbeat.map_or(Toggle::Enabled(false), Toggle::With)),
            ..Default::default()
        }
        .resolve(&Limits::default())
        .expect("valid options")
    }

    /// An upstream over an in-memory pipe of `buffer` bytes, and the server's end of it.
    async fn pair(
        buffer: usize,
        heartbeat: Option<HeartbeatOptions>,
    ) -> (WsUpstream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (client, server) = tokio::io::duplex(buffer);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        (WsUpstream::new(client, None, &opts(heartbeat)), server)
    }

    #[tokio::test]
    async fn messages_in_and_writes_out() {
        let (mut up, mut server) = pair(1 << 16, None).await;
        server.send(Message::text("hello")).await.unwrap();
        server.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
        match up.next().await {
            Event::Message(
                FrameBody::Message {
                    data,
                    binary: false,
                    ..
                },
                5,
            ) => assert_eq!(data, "hello"),
            other => panic!("expected the text, got {other:?}"),
        }
        match up.next().await {
            Event::Message(
                FrameBody::Message {
                    data, binary: true, ..
                },
                3,
            ) => assert_eq!(data, "AAEC"),
            other => panic!("expected the binary as base64, got {other:?}"),
        }
        assert_eq!(up.writable(), Writable::Now);
        up.write(Outgoing::Text("up".into()));
        assert_eq!(up.writable(), Writable::Busy);
        assert!(matches!(up.next().await, Event::Written(Ok(()))));
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("up"));
    }

    /// Dropping `next` in the middle of a write loses nothing and sends nothing twice.
    #[tokio::test]
    async fn a_write_survives_a_dropped_next() {
        let (mut up, mut server) = pair(1024, None).await;
        up.write(Outgoing::Binary(vec![9; 64 << 10]));
        // The pipe holds 1 KiB: the write cannot finish until the server reads.
        assert!(tokio::time::timeout(Duration::from_millis(50), up.next())
            .await
            .is_err());
        let read = tokio::spawn(async move {
            let m = server.next().await.unwrap().unwrap();
            (m, server)
        });
        assert!(matches!(up.next().await, Event::Written(Ok(()))));
        let (m, mut server) = read.await.unwrap();
        assert_eq!(m.len(), 64 << 10);
        // Exactly once.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), server.next())
                .await
                .is_err()
        );
    }

    /// A server that stops reading: the write misses its deadline (the pong timeout), the write is reported
    /// as possibly lost, and the upstream ends as a dead link.
    #[tokio::test(start_paused = true)]
    async fn a_write_past_its_deadline_ends_the_upstream() {
        let heartbeat = HeartbeatOptions {
            ping_interval_ms: 60_000,
            pong_timeout_ms: 500,
            ..Default::default()
        };
        let (mut up, _server) = pair(1024, Some(heartbeat)).await;
        up.write(Outgoing::Binary(vec![1; 64 << 10]));
        match up.next().await {
            Event::Written(Err(why)) => assert!(why.contains("ended"), "got {why}"),
            other => panic!("expected the write reported, got {other:?}"),
        }
        match up.next().await {
            Event::Ended(Ended::Dropped { reason, .. }) => {
                assert!(
                    reason.contains("stopped reading") && reason.contains("500 ms"),
                    "got {reason}"
                )
            }
            other => panic!("expected a dead link, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_without_a_pong_ends_the_upstream() {
        let heartbeat = HeartbeatOptions {
            ping_interval_ms: 1000,
            pong_timeout_ms: 300,
            ..Default::default()
        };
        // The server never reads, so it never answers the ping.
        let (mut up, _server) = pair(1 << 16, Some(heartbeat)).await;
        let started = Instant::now();
        match next_but_writable(&mut up).await {
            Event::Ended(Ended::Dropped { reason, .. }) => {
                assert_eq!(reason, "no pong within 300 ms")
            }
            other => panic!("expected no pong, got {other:?}"),
        }
        assert_eq!(started.elapsed(), Duration::from_millis(1300));
    }

    /// The next event but the heartbeat's own `Writable`s.
    async fn next_but_writable(up: &mut WsUpstream<DuplexStream>) -> Event {
        loop {
            match up.next().await {
                Event::Writable => continue,
                other => return other,
            }
        }
    }

    fn app_beat(reply: Option<&str>, protocol_ping: Option<bool>) -> HeartbeatOptions {
        HeartbeatOptions {
            ping_interval_ms: 1000,
            pong_timeout_ms: 300,
            message: Some("hb".into()),
            reply: reply.map(str::to_owned),
            protocol_ping,
            ..Default::default()
        }
    }

    /// The application heartbeat goes out as text every interval (no protocol ping unless asked for), its
    /// reply keeps the link and is held back, other messages are relayed.
    #[tokio::test(start_paused = true)]
    async fn an_application_heartbeat_and_its_reply() {
        let (mut up, mut server) = pair(1 << 16, Some(app_beat(Some("ok"), None))).await;
        let answer = tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                let m = server.next().await.unwrap().unwrap();
                got.push(m.clone());
                server.send(Message::text("ok")).await.unwrap();
            }
            server.send(Message::text("data")).await.unwrap();
            (got, server)
        });
        match next_but_writable(&mut up).await {
            Event::Message(FrameBody::Message { data, .. }, _) => assert_eq!(data, "data"),
            other => panic!("expected only the data relayed, got {other:?}"),
        }
        let (got, _server) = answer.await.unwrap();
        assert_eq!(got, vec![Message::text("hb"); 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_without_its_reply_ends_the_upstream() {
        let (mut up, mut server) = pair(1 << 16, Some(app_beat(Some("ok"), None))).await;
        // The server answers with something else: it does not prove the link.
        let answer = tokio::spawn(async move {
            let m = server.next().await.unwrap().unwrap();
            server.send(Message::text("other")).await.unwrap();
            (m, server)
        });
        assert!(matches!(
            next_but_writable(&mut up).await,
            Event::Message(..)
        ));
        match next_but_writable(&mut up).await {
            Event::Ended(Ended::Dropped { reason, .. }) => {
                assert_eq!(reason, "no heartbeat reply \"ok\" within 300 ms")
            }
            other => panic!("expected no reply, got {other:?}"),
        }
        let (m, _server) = answer.await.unwrap();
        assert_eq!(m, Message::text("hb"));
    }

    /// The connection takes sends only while the upstream is writable: the end of a heartbeat's write is told,
    /// or a send that came meanwhile would wait for the server's next message.
    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_heartbeat_write_is_told() {
        for heartbeat in [app_beat(None, None), HeartbeatOptions::default()] {
            let (mut up, _server) = pair(1 << 16, Some(heartbeat)).await;
            assert_eq!(up.next().await, Event::Writable);
            assert_eq!(up.writable(), Writable::Now);
        }
    }

    /// With `protocolPing: true` beside the message, both go out each interval, the message first.
    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_message_and_a_protocol_ping() {
        let (mut up, mut server) = pair(1 << 16, Some(app_beat(None, Some(true)))).await;
        let read = tokio::spawn(async move {
            let a = server.next().await.unwrap().unwrap();
            let b = server.next().await.unwrap().unwrap();
            server.send(Message::text("anything")).await.unwrap();
            (a, b, server)
        });
        // Any message answers a heartbeat without `reply`, and is relayed.
        assert!(matches!(
            next_but_writable(&mut up).await,
            Event::Message(..)
        ));
        let (a, b, _server) = read.await.unwrap();
        assert_eq!(a, Message::text("hb"));
        assert!(matches!(b, Message::Ping(_)), "expected a ping, got {b:?}");
    }

    #[tokio::test]
    async fn a_close_from_the_server_ends_with_its_code_after_the_reply() {
        let (mut up, mut server) = pair(1 << 16, None).await;
        server.send(Message::text("last")).await.unwrap();
        server
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(4001),
                reason: "bye".into(),
            })))
            .await
            .unwrap();
        assert!(matches!(up.next().await, Event::Message(..)));
        match up.next().await {
            Event::Ended(Ended::ServerClosed {
                code: 4001,
                reason,
                progress,
            }) => {
                assert_eq!(reason, "bye");
                assert!(progress.delivered, "a message came before the close");
            }
            other => panic!("expected the server's close, got {other:?}"),
        }
        // The client's reply to the close reached the server.
        assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
    }

    #[tokio::test]
    async fn our_close_gets_the_servers_echo() {
        let (mut up, mut server) = pair(1 << 16, None).await;
        let echo = tokio::spawn(async move { while let Some(Ok(_)) = server.next().await {} });
        let echoed = up.close(1000, "done", Duration::from_secs(2)).await;
        assert_eq!(echoed, Some((1000, "done".into())));
        echo.await.unwrap();
    }
}
