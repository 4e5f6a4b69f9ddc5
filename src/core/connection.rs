//! One upstream connection: a single task that opens the stream, pumps frames to its subscribers, reconnects
//! by the policy, and holds the outbound queue. It owns all of the connection's state; the hub talks to it
//! only through channels, and cancelling its token ends it.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::{
    sync::{mpsc, oneshot},
    time::{sleep, timeout, Instant},
};
use tokio_tungstenite::tungstenite::{
    self, protocol::frame::coding::CloseCode, protocol::CloseFrame, Message,
};
use tokio_util::sync::CancellationToken;

use super::{
    backoff::Backoff,
    error::Error,
    frame::{Frame, FrameBody, State, Transport},
    options::Resolved,
    policy::{decide, Ended, Step},
    queue::{OutQueue, Outgoing},
    sse::SseParser,
    transport::{
        self,
        poll::{Polled, Poller},
        sse::error_chain,
        AttemptError, UrlGuard,
    },
};

/// Time allowed for the close handshake, ours or the server's, before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What every connection shares: the HTTP client and the TLS configuration.
pub(crate) struct Env {
    pub http: reqwest::Client,
    pub tls: Arc<rustls::ClientConfig>,
    pub secrets: Option<Arc<dyn transport::HeaderSource>>,
}

/// A subscriber's end of the frame channel.
pub(crate) struct Subscriber {
    pub id: Arc<str>,
    pub tx: mpsc::Sender<Arc<Frame>>,
}

/// Requests from the hub, rare and never blocked behind sends.
pub(crate) enum Control {
    Subscribe(Subscriber),
    Unsubscribe(Arc<str>),
    Close { code: u16, reason: String },
    Reconnect,
}

/// A message from the app; the reply says whether it was queued (`true`) or written (`false`).
pub(crate) struct SendRequest {
    pub msg: Outgoing,
    pub reply: oneshot::Sender<Result<bool, Error>>,
}

/// What `inspect` reports, updated by the connection as it goes.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub snapshot: Mutex<Snapshot>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Snapshot {
    pub state: State,
    pub transport: Option<Transport>,
    pub attempt: u32,
    pub queued: usize,
    pub queued_bytes: usize,
    pub last_error: Option<String>,
    pub last_event_id: Option<String>,
    pub protocol: Option<String>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Self {
            state: State::Connecting,
            transport: None,
            attempt: 0,
            queued: 0,
            queued_bytes: 0,
            last_error: None,
            last_event_id: None,
            protocol: None,
        }
    }
}

/// How the hub reaches a connection task, and how it ends it.
pub(crate) struct Wiring {
    pub ctl: mpsc::UnboundedReceiver<Control>,
    pub sends: mpsc::Receiver<SendRequest>,
    pub stats: Arc<Stats>,
    pub token: CancellationToken,
}

/// Why the connection stopped serving the current phase.
enum Interrupt {
    /// The last subscriber left: close with this code and end.
    Close(u16, String),
    /// The app asked for a fresh attempt now.
    Reconnect,
    /// The app is exiting.
    Shutdown,
}

/// A stream that is open and ready to pump.
enum Opened {
    // Boxed: a TLS WebSocket is large and this enum is moved around.
    Ws(Box<transport::ws::Ws>, Option<String>),
    Sse(reqwest::Response),
}

enum Flow {
    Interrupt(Interrupt),
    Ended(Ended),
}

pub(crate) struct Connection {
    pub(crate) opts: Arc<Resolved>,
    pub(crate) env: Arc<Env>,
    pub(crate) guard: Arc<dyn UrlGuard>,
    pub(crate) ctl: mpsc::UnboundedReceiver<Control>,
    pub(crate) sends: mpsc::Receiver<SendRequest>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) token: CancellationToken,
    pub(crate) subs: Vec<Subscriber>,
    seq: u64,
    state: State,
    last_state: Option<Arc<Frame>>,
    queue: OutQueue,
    backoff: Option<Backoff>,
    parser: SseParser,
    /// The WebSocket subprotocol of the current stream, announced on `connected`.
    protocol: Option<String>,
}

impl Connection {
    pub(crate) fn new(
        opts: Arc<Resolved>,
        env: Arc<Env>,
        guard: Arc<dyn UrlGuard>,
        wiring: Wiring,
        first: Subscriber,
    ) -> Self {
        let Wiring {
            ctl,
            sends,
            stats,
            token,
        } = wiring;
        let backoff = opts.reconnect.clone().map(|r| {
            Backoff::new(r).with_fallback_after(opts.fallback.as_ref().map(|f| f.after_failures))
        });
        let mut parser = SseParser::new(opts.max_message_size);
        if let Some(id) = &opts.last_event_id {
            parser = parser.with_last_event_id(id.clone());
        }
        Self {
            queue: OutQueue::new(opts.queue.clone()),
            opts,
            env,
            guard,
            ctl,
            sends,
            stats,
            token,
            subs: vec![first],
            seq: 0,
            state: State::Connecting,
            last_state: None,
            backoff,
            parser,
            protocol: None,
        }
    }

    /// The connection's whole life.
    pub(crate) async fn run(mut self) {
        let forced_poll = self.opts.transport == Transport::Poll;
        let mut attempt: u32 = 0;
        let mut degraded: Option<String> = None;
        loop {
            let flow = match degraded.take() {
                _ if forced_poll => self.poll_loop("transport is poll".into(), false).await,
                Some(reason) => self.poll_loop(reason, true).await,
                None => {
                    self.set_state(State::Connecting, Some(attempt), None, None)
                        .await;
                    self.attempt().await
                }
            };
            let ended = match flow {
                Flow::Ended(e) => e,
                Flow::Interrupt(Interrupt::Reconnect) => {
                    attempt = 0;
                    continue;
                }
                Flow::Interrupt(Interrupt::Close(..)) => {
                    return self.finish("closed by the app").await
                }
                Flow::Interrupt(Interrupt::Shutdown) => {
                    return self.finish("the app is exiting").await
                }
            };
            let can_fall_back = !forced_poll && self.opts.fallback.is_some();
            let step = decide(
                self.backoff.as_ref(),
                attempt,
                &ended,
                fastrand::f64(),
                can_fall_back,
            );
            match step {
                Step::Fallback { reason } => {
                    self.note_error(&reason);
                    attempt = 0;
                    degraded = Some(reason);
                    continue;
                }
                Step::Retry {
                    attempt: next,
                    delay,
                    reason,
                } => {
                    attempt = next;
                    self.note_error(&reason);
                    self.set_state(
                        State::Reconnecting,
                        Some(attempt),
                        Some(delay.as_millis() as u64),
                        Some(reason),
                    )
                    .await;
                    match self.serve(sleep(delay)).await {
                        Ok(()) => continue,
                        Err(Interrupt::Reconnect) => {
                            attempt = 0;
                            continue;
                        }
                        Err(Interrupt::Close(..)) => return self.finish("closed by the app").await,
                        Err(Interrupt::Shutdown) => return self.finish("the app is exiting").await,
                    }
                }
                Step::Fail { reason } => {
                    self.note_error(&reason);
                    self.emit(FrameBody::Error {
                        message: reason.clone(),
                        fatal: true,
                    })
                    .await;
                    self.set_state(State::Failed, None, None, Some(reason))
                        .await;
                }
                Step::Disconnect { reason } => {
                    self.set_state(State::Disconnected, None, None, Some(reason))
                        .await;
                }
            }
            // Terminal: wait for `reconnect`, or for the last subscriber to leave.
            match self.serve(std::future::pending::<()>()).await {
                Err(Interrupt::Reconnect) => attempt = 0,
                _ => return self.finish_quietly().await,
            }
        }
    }

    /// Opens the stream: a future that owns what it needs, so it can run beside the connection's own work.
    fn open(&self) -> impl Future<Output = Result<Opened, AttemptError>> + Send + 'static {
        let opts = self.opts.clone();
        let env = self.env.clone();
        let guard = self.guard.clone();
        let last_id = self.parser.last_event_id().to_owned();
        async move {
            let connect_timeout = opts.connect_timeout;
            let opening = async {
                match opts.transport {
                    Transport::Websocket => transport::ws::open(&opts, &env)
                        .await
                        .map(|(ws, protocol)| Opened::Ws(Box::new(ws), protocol)),
                    Transport::Sse | Transport::Poll => {
                        transport::sse::open(&env, &opts, Some(&last_id), guard.as_ref())
                            .await
                            .map(Opened::Sse)
                    }
                }
            };
            timeout(connect_timeout, opening).await.unwrap_or_else(|_| {
                Err(AttemptError::Retry {
                    reason: format!(
                        "timed out after {} ms opening the stream",
                        connect_timeout.as_millis()
                    ),
                    retry_after: None,
                })
            })
        }
    }

    /// One attempt: open the stream and pump it until it ends.
    async fn attempt(&mut self) -> Flow {
        let open = self.open();
        match self.serve(open).await {
            Err(i) => Flow::Interrupt(i),
            Ok(Err(e)) => Flow::Ended(Ended::Attempt(e)),
            Ok(Ok(opened)) => self.pump(opened).await,
        }
    }

    async fn pump(&mut self, opened: Opened) -> Flow {
        match opened {
            Opened::Ws(ws, protocol) => {
                self.stats
                    .snapshot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .protocol = protocol.clone();
                self.protocol = protocol;
                self.pump_ws(*ws).await
            }
            Opened::Sse(response) => self.pump_sse(response).await,
        }
    }

    /// The degraded path: poll every `intervalMs`, and (when `probe`) try the stream every
    /// `probeIntervalMs`. Returns when an upgraded stream ends, on a fatal poll answer, or on an interrupt.
    ///
    /// A probe and a poll never overlap, so the stream resumes exactly after the last polled event id.
    async fn poll_loop(&mut self, reason: String, probe: bool) -> Flow {
        let fb = self.opts.fallback.clone().unwrap_or_default();
        let url = fb
            .poll_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .unwrap_or_else(|| self.opts.url.clone());
        let interval = Duration::from_millis(fb.interval_ms);
        let probe_every = Duration::from_millis(fb.probe_interval_ms);
        self.set_state(State::Polling, None, None, Some(reason))
            .await;

        type Boxed<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;
        let mut poller = Some(Poller::default());
        let mut polling: Option<Boxed<(Poller, Result<Polled, AttemptError>)>> = None;
        let mut probing: Option<Boxed<Result<Opened, AttemptError>>> = None;
        let next_poll = sleep(Duration::ZERO);
        let next_probe = sleep(probe_every);
        tokio::pin!(next_poll, next_probe);
        let mut failures: u32 = 0;
        let far = Duration::from_secs(86_400 * 365);

        loop {
            tokio::select! {
                biased;
                _ = self.token.cancelled() => return Flow::Interrupt(Interrupt::Shutdown),
                c = self.ctl.recv() => match self.on_control(c).await {
                    None => {}
                    // From polling, `reconnect` means: try the stream now.
                    Some(Interrupt::Reconnect) if probe => next_probe.as_mut().reset(Instant::now()),
                    Some(i) => return Flow::Interrupt(i),
                },
                Some(req) = self.sends.recv() => self.send_while_polling(req, fb.send_url.as_deref()).await,
                _ = &mut next_poll, if polling.is_none() && probing.is_none() => {
                    let Some(mut p) = poller.take() else { continue };
                    let http = self.env.http.clone();
                    let url = url.clone();
                    let opts = self.opts.clone();
                    let headers = transport::request_headers(&opts.headers, self.env.secrets.as_deref(), &url);
                    let last_id = self.parser.last_event_id().to_owned();
                    polling = Some(Box::pin(async move {
                        let r = timeout(
                            opts.connect_timeout,
                            p.poll(&http, &url, &headers, &last_id, opts.max_message_size),
                        )
                        .await
                        .unwrap_or_else(|_| Err(AttemptError::Retry { reason: "poll timed out".into(), retry_after: None }));
                        (p, r)
                    }));
                    next_poll.as_mut().reset(Instant::now() + far);
                }
                (p, result) = async { polling.as_mut().expect("guarded").await }, if polling.is_some() => {
                    polling = None;
                    poller = Some(p);
                    let mut retry_after = None;
                    match result {
                        Ok(polled) => {
                            failures = 0;
                            self.relay_polled(polled).await;
                        }
                        Err(AttemptError::Fatal { reason }) => {
                            return Flow::Ended(Ended::Attempt(AttemptError::Fatal { reason }));
                        }
                        Err(e) => {
                            failures += 1;
                            if let AttemptError::Retry { retry_after: ra, .. } = &e {
                                retry_after = *ra;
                            }
                            self.note_error(e.reason());
                            self.emit(FrameBody::Error { message: e.reason().to_owned(), fatal: false }).await;
                        }
                    }
                    // Timed from the end of this poll; failed polls back off, without leaving `polling`.
                    let backoff = interval.saturating_mul(1 << failures.min(4)).min(Duration::from_secs(30).max(interval));
                    let wait = retry_after.map_or(backoff, |ra| ra.max(backoff));
                    next_poll.as_mut().reset(Instant::now() + wait);
                }
                _ = &mut next_probe, if probe && probing.is_none() && polling.is_none() => {
                    probing = Some(Box::pin(self.open()));
                    next_probe.as_mut().reset(Instant::now() + probe_every);
                }
                result = async { probing.as_mut().expect("guarded").await }, if probing.is_some() => {
                    probing = None;
                    match result {
                        Ok(opened) => return self.pump(opened).await,
                        Err(AttemptError::Fatal { reason }) => {
                            return Flow::Ended(Ended::Attempt(AttemptError::Fatal { reason }));
                        }
                        Err(e) => self.note_error(e.reason()),
                    }
                }
            }
        }
    }

    async fn relay_polled(&mut self, polled: Polled) {
        match polled {
            Polled::Nothing => {}
            Polled::Body(data) => {
                self.count_in(data.len());
                self.emit(FrameBody::Message {
                    transport: Transport::Poll,
                    event: None,
                    data,
                    last_event_id: None,
                    binary: false,
                })
                .await;
            }
            Polled::Events(events) => {
                for ev in events {
                    self.count_in(ev.data.len());
                    if ev.last_event_id != self.parser.last_event_id() {
                        self.parser.set_last_event_id(ev.last_event_id.clone());
                    }
                    self.emit(FrameBody::Message {
                        transport: Transport::Poll,
                        event: Some(ev.event),
                        data: ev.data,
                        last_event_id: Some(ev.last_event_id),
                        binary: false,
                    })
                    .await;
                }
                self.sync_last_event_id();
            }
        }
    }

    /// While polling, a WebSocket connection's sends go to `sendUrl` when there is one, else to the queue.
    async fn send_while_polling(&mut self, req: SendRequest, send_url: Option<&str>) {
        let Some(send_url) = send_url.filter(|_| self.opts.transport == Transport::Websocket)
        else {
            return self.send_offline(req);
        };
        let len = req.msg.len();
        let (body, content_type) = match req.msg {
            Outgoing::Text(t) => (t.into_bytes(), "text/plain; charset=utf-8"),
            Outgoing::Binary(b) => (b, "application/octet-stream"),
        };
        let mut post = self
            .env
            .http
            .post(send_url)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        let target = url::Url::parse(send_url).ok();
        let headers = target.map_or_else(Vec::new, |u| {
            transport::request_headers(&self.opts.headers, self.env.secrets.as_deref(), &u)
        });
        for (n, v) in headers {
            post = post.header(n, v);
        }
        let result = match timeout(self.opts.connect_timeout, post.send()).await {
            Ok(Ok(r)) if r.status().is_success() => {
                self.count_out(len);
                Ok(false)
            }
            Ok(Ok(r)) => Err(Error::SendFailed(format!(
                "sendUrl answered HTTP {}",
                r.status().as_u16()
            ))),
            Ok(Err(e)) => Err(Error::SendFailed(error_chain(&e))),
            Err(_) => Err(Error::SendFailed("sendUrl did not answer in time".into())),
        };
        let _ = req.reply.send(result);
    }

    /// Relays an open WebSocket until it ends; sends go straight out, with a ping/pong heartbeat.
    async fn pump_ws(&mut self, ws: transport::ws::Ws) -> Flow {
        let opened = Instant::now();
        let (mut sink, mut stream) = ws.split();
        self.set_state(State::Connected, Some(0), None, None).await;

        // Messages held while down go first, in order.
        while let Some(msg) = self.queue.pop() {
            let len = msg.len();
            if let Err(e) = sink.send(to_ws(msg.clone())).await {
                self.queue.push_front(msg);
                self.sync_queue_stats();
                return Flow::Ended(Ended::Dropped {
                    reason: format!("send failed: {e}"),
                    uptime: opened.elapsed(),
                });
            }
            self.count_out(len);
        }
        self.sync_queue_stats();

        let heartbeat = self.opts.heartbeat.clone();
        let far = Duration::from_secs(86_400 * 365);
        let ping_every = heartbeat
            .as_ref()
            .map_or(far, |h| Duration::from_millis(h.ping_interval_ms));
        let pong_within = heartbeat
            .as_ref()
            .map_or(far, |h| Duration::from_millis(h.pong_timeout_ms));
        let ping = sleep(ping_every);
        let pong = sleep(far);
        tokio::pin!(ping, pong);
        let mut awaiting_pong = false;

        loop {
            tokio::select! {
                biased;
                _ = self.token.cancelled() => {
                    close_ws(&mut sink, &mut stream, 1001, "the app is exiting").await;
                    return Flow::Interrupt(Interrupt::Shutdown);
                }
                c = self.ctl.recv() => match self.on_control(c).await {
                    None => {}
                    Some(Interrupt::Close(code, reason)) => {
                        let echoed = close_ws(&mut sink, &mut stream, code, &reason).await;
                        let (code, reason) = echoed.unwrap_or((code, reason));
                        self.emit(FrameBody::Close { code, reason }).await;
                        return Flow::Interrupt(Interrupt::Close(code, String::new()));
                    }
                    Some(Interrupt::Reconnect) => {
                        close_ws(&mut sink, &mut stream, 1000, "reconnecting").await;
                        return Flow::Interrupt(Interrupt::Reconnect);
                    }
                    Some(Interrupt::Shutdown) => return Flow::Interrupt(Interrupt::Shutdown),
                },
                Some(req) = self.sends.recv() => {
                    let len = req.msg.len();
                    match sink.send(to_ws(req.msg.clone())).await {
                        Ok(()) => {
                            self.count_out(len);
                            let _ = req.reply.send(Ok(false));
                        }
                        Err(e) => {
                            // Not written: hold it for the next connection rather than lose it.
                            self.queue.push_front(req.msg);
                            self.sync_queue_stats();
                            let _ = req.reply.send(Ok(true));
                            return Flow::Ended(Ended::Dropped { reason: format!("send failed: {e}"), uptime: opened.elapsed() });
                        }
                    }
                }
                m = stream.next() => match m {
                    Some(Ok(Message::Text(text))) => {
                        self.count_in(text.len());
                        self.emit(FrameBody::Message {
                            transport: Transport::Websocket,
                            event: None,
                            data: text.as_str().to_owned(),
                            last_event_id: None,
                            binary: false,
                        }).await;
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        self.count_in(bytes.len());
                        self.emit(FrameBody::Message {
                            transport: Transport::Websocket,
                            event: None,
                            data: base64::engine::general_purpose::STANDARD.encode(&bytes),
                            last_event_id: None,
                            binary: true,
                        }).await;
                    }
                    Some(Ok(Message::Pong(_))) => {
                        awaiting_pong = false;
                        pong.as_mut().reset(Instant::now() + far);
                    }
                    Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                            .unwrap_or((1005, String::new()));
                        // Lets tungstenite write its reply to the close.
                        let _ = timeout(CLOSE_GRACE, sink.close()).await;
                        self.emit(FrameBody::Close { code, reason: reason.clone() }).await;
                        return Flow::Ended(Ended::ServerClosed { code, reason, uptime: opened.elapsed() });
                    }
                    Some(Err(e)) => return self.ws_error(e, opened),
                    None => return Flow::Ended(Ended::Dropped {
                        reason: "connection closed without a close frame".into(),
                        uptime: opened.elapsed(),
                    }),
                },
                _ = &mut ping, if heartbeat.is_some() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return Flow::Ended(Ended::Dropped { reason: "ping failed".into(), uptime: opened.elapsed() });
                    }
                    ping.as_mut().reset(Instant::now() + ping_every);
                    if !awaiting_pong {
                        awaiting_pong = true;
                        pong.as_mut().reset(Instant::now() + pong_within);
                    }
                }
                _ = &mut pong, if awaiting_pong => {
                    return Flow::Ended(Ended::Dropped {
                        reason: format!("no pong within {} ms", pong_within.as_millis()),
                        uptime: opened.elapsed(),
                    });
                }
            }
        }
    }

    fn ws_error(&mut self, e: tungstenite::Error, opened: Instant) -> Flow {
        use tungstenite::Error as E;
        let uptime = opened.elapsed();
        match e {
            // The server sent more than we accept: retrying would only repeat it.
            E::Capacity(c) => Flow::Ended(Ended::Attempt(AttemptError::Fatal {
                reason: format!("message from the server too large ({c}); raise maxMessageSize"),
            })),
            E::Protocol(p) => Flow::Ended(Ended::Dropped {
                reason: format!("WebSocket protocol error: {p}"),
                uptime,
            }),
            E::Utf8(_) => Flow::Ended(Ended::Dropped {
                reason: "server sent invalid UTF-8 in a text message".into(),
                uptime,
            }),
            other => Flow::Ended(Ended::Dropped {
                reason: format!("network error: {other}"),
                uptime,
            }),
        }
    }

    /// Relays an open SSE response until it ends, with the idle timeout.
    async fn pump_sse(&mut self, response: reqwest::Response) -> Flow {
        let opened = Instant::now();
        self.set_state(State::Connected, Some(0), None, None).await;
        let idle = self
            .opts
            .heartbeat
            .as_ref()
            .map_or(Duration::from_secs(86_400 * 365), |h| {
                Duration::from_millis(h.idle_timeout_ms)
            });
        let idle_timer = sleep(idle);
        tokio::pin!(idle_timer);
        let mut body = response.bytes_stream();
        let mut events = Vec::new();
        let ended = loop {
            tokio::select! {
                biased;
                _ = self.token.cancelled() => break Flow::Interrupt(Interrupt::Shutdown),
                c = self.ctl.recv() => match self.on_control(c).await {
                    None => {}
                    Some(i) => break Flow::Interrupt(i),
                },
                Some(req) = self.sends.recv() => {
                    let _ = req.reply.send(Err(Error::NotWritable("server-sent events")));
                }
                chunk = body.next() => match chunk {
                    Some(Ok(bytes)) => {
                        idle_timer.as_mut().reset(Instant::now() + idle);
                        self.count_in_bytes(bytes.len());
                        if let Err(e) = self.parser.feed(&bytes, &mut events) {
                            events.clear();
                            break Flow::Ended(Ended::Attempt(AttemptError::Fatal { reason: e.to_string() }));
                        }
                        if let Some(retry) = self.parser.take_retry() {
                            if let Some(b) = self.backoff.as_mut() {
                                b.set_base(Duration::from_millis(retry));
                            }
                        }
                        let relayed = !events.is_empty();
                        for ev in events.drain(..) {
                            self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
                            let body = FrameBody::Message {
                                transport: Transport::Sse,
                                event: Some(ev.event),
                                data: ev.data,
                                last_event_id: Some(ev.last_event_id),
                                binary: false,
                            };
                            emit_to(&mut self.subs, &mut self.seq, body).await;
                        }
                        // Once per chunk, not per event: `inspect` sees the id without a lock per frame.
                        if relayed {
                            self.sync_last_event_id();
                        }
                    }
                    Some(Err(e)) => break Flow::Ended(Ended::Dropped {
                        reason: format!("stream error: {}", error_chain(&e)),
                        uptime: opened.elapsed(),
                    }),
                    None => break Flow::Ended(Ended::StreamEnded { uptime: opened.elapsed() }),
                },
                _ = &mut idle_timer => break Flow::Ended(Ended::Dropped {
                    reason: format!("no data for {} ms (idle timeout)", idle.as_millis()),
                    uptime: opened.elapsed(),
                }),
            }
        };
        // A partial event at the end of a stream is discarded (WHATWG).
        self.parser.reset_stream();
        self.sync_last_event_id();
        ended
    }

    /// Awaits `fut` while answering the hub and the app: sends are queued, subscribers come and go.
    async fn serve<F: Future>(&mut self, fut: F) -> Result<F::Output, Interrupt> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                _ = self.token.cancelled() => return Err(Interrupt::Shutdown),
                c = self.ctl.recv() => if let Some(i) = self.on_control(c).await {
                    return Err(i);
                },
                Some(req) = self.sends.recv() => self.send_offline(req),
                out = &mut fut => return Ok(out),
            }
        }
    }

    async fn on_control(&mut self, c: Option<Control>) -> Option<Interrupt> {
        match c {
            // The hub dropped us: nobody can reach this connection any more.
            None => Some(Interrupt::Close(1000, String::new())),
            Some(Control::Subscribe(sub)) => {
                // A late joiner learns the current state at once.
                if let Some(f) = &self.last_state {
                    let _ = sub.tx.send(Arc::new(f.as_snapshot())).await;
                }
                self.subs.push(sub);
                None
            }
            Some(Control::Unsubscribe(id)) => {
                self.subs.retain(|s| s.id != id);
                None
            }
            Some(Control::Close { code, reason }) => Some(Interrupt::Close(code, reason)),
            Some(Control::Reconnect) => Some(Interrupt::Reconnect),
        }
    }

    fn send_offline(&mut self, req: SendRequest) {
        let result = if self.opts.transport != Transport::Websocket {
            Err(Error::NotWritable(
                if self.opts.transport == Transport::Sse {
                    "server-sent events"
                } else {
                    "polling"
                },
            ))
        } else if self.state == State::Disconnected {
            Err(Error::Closed(self.opts.url.to_string()))
        } else {
            // Also while `failed`: held for `reconnect()`, and the app can see the depth in `inspect`.
            self.queue.push(req.msg).map(|()| true)
        };
        self.sync_queue_stats();
        let _ = req.reply.send(result);
    }

    async fn set_state(
        &mut self,
        state: State,
        attempt: Option<u32>,
        delay_ms: Option<u64>,
        reason: Option<String>,
    ) {
        self.state = state;
        {
            let mut snap = self
                .stats
                .snapshot
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            snap.state = state;
            snap.transport = Some(if state == State::Polling {
                Transport::Poll
            } else {
                self.opts.transport
            });
            if let Some(a) = attempt {
                snap.attempt = a;
            }
        }
        let transport = match state {
            State::Polling => Some(Transport::Poll),
            State::Connecting | State::Connected => Some(self.opts.transport),
            _ => None,
        };
        let body = FrameBody::State {
            state,
            transport,
            attempt: attempt.filter(|_| matches!(state, State::Connecting | State::Reconnecting)),
            delay_ms,
            reason,
            protocol: if state == State::Connected {
                self.protocol.clone()
            } else {
                None
            },
        };
        let frame = emit_to(&mut self.subs, &mut self.seq, body).await;
        self.last_state = Some(frame);
    }

    async fn emit(&mut self, body: FrameBody) {
        emit_to(&mut self.subs, &mut self.seq, body).await;
    }

    fn note_error(&self, reason: &str) {
        self.stats
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error = Some(reason.to_owned());
    }

    fn sync_last_event_id(&self) {
        let id = self.parser.last_event_id();
        self.stats
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_event_id = (!id.is_empty()).then(|| id.to_owned());
    }

    fn sync_queue_stats(&self) {
        let mut snap = self
            .stats
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        snap.queued = self.queue.len();
        snap.queued_bytes = self.queue.bytes();
    }

    fn count_in(&self, bytes: usize) {
        self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        self.count_in_bytes(bytes);
    }

    fn count_in_bytes(&self, bytes: usize) {
        self.stats
            .bytes_in
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn count_out(&self, bytes: usize) {
        self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Ends the connection on purpose, telling whoever still listens.
    async fn finish(mut self, reason: &str) {
        let dropped = self.queue.clear();
        if dropped > 0 {
            self.emit(FrameBody::Error {
                message: format!("{dropped} queued messages were not sent: the connection closed"),
                fatal: false,
            })
            .await;
        }
        self.set_state(State::Disconnected, None, None, Some(reason.to_owned()))
            .await;
    }

    /// Ends a connection that already reported its terminal state.
    async fn finish_quietly(mut self) {
        self.queue.clear();
        self.sync_queue_stats();
    }
}

/// Numbers a frame and hands it to every subscriber, waiting for room (backpressure on the upstream read).
/// A subscriber whose receiver is gone is dropped.
async fn emit_to(subs: &mut Vec<Subscriber>, seq: &mut u64, body: FrameBody) -> Arc<Frame> {
    *seq += 1;
    let frame = Arc::new(body.number(*seq));
    let mut gone = false;
    for sub in subs.iter() {
        if sub.tx.send(frame.clone()).await.is_err() {
            gone = true;
        }
    }
    if gone {
        subs.retain(|s| !s.tx.is_closed());
    }
    frame
}

fn to_ws(msg: Outgoing) -> Message {
    match msg {
        Outgoing::Text(t) => Message::text(t),
        Outgoing::Binary(b) => Message::binary(b),
    }
}

/// Sends a close frame and waits briefly for the server's reply; returns the code and reason it echoed.
async fn close_ws<S, R>(
    sink: &mut S,
    stream: &mut R,
    code: u16,
    reason: &str,
) -> Option<(u16, String)>
where
    S: futures_util::Sink<Message> + Unpin,
    R: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    if timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame))))
        .await
        .is_err()
    {
        return None;
    }
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
    timeout(CLOSE_GRACE, wait).await.ok().flatten()
}
