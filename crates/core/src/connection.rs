//! One upstream connection: a single task that opens the stream, pumps frames to its subscribers, reconnects
//! by the policy, and holds the outbound queue. It owns all of the connection's state; the hub talks to it
//! only through channels, and cancelling its token ends it.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use base64::Engine as _;
use futures_util::{FutureExt, SinkExt, StreamExt};
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
    policy::{decide, Ended, Progress, Step},
    queue::{OutQueue, Outgoing},
    sink::Outlet,
    sse::SseParser,
    time::{deadline, millis, server_delay, NEVER},
    transport::{
        self,
        poll::{Polled, Poller},
        sse::error_chain,
        AttemptError, Notes, UrlGuard,
    },
};

/// Time allowed for the close handshake, ours or the server's, before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The same at app exit, which waits for every connection within its own grace.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What every connection shares: the HTTP client and the TLS configuration.
pub(crate) struct Env {
    pub http: reqwest::Client,
    pub tls: Arc<rustls::ClientConfig>,
    pub secrets: Option<Arc<dyn transport::HeaderSource>>,
}

/// A subscriber's end of the frame channel.
pub(crate) struct Subscriber {
    pub id: Arc<str>,
    pub out: Outlet,
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
    /// The task has ended or is ending by a fault: a new subscriber must open a fresh upstream.
    pub ended: AtomicBool,
}

impl Stats {
    /// The connection's current state and counters for `inspect`; a poisoned lock still reads.
    pub(crate) fn view(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }
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
    notes: Arc<Notes>,
}

/// What the connection is writing: one message at a time, so that controls are heard between writes and a
/// write that stalls is noticed.
enum Writing {
    /// A send whose caller waits for the answer.
    Send {
        len: usize,
        reply: oneshot::Sender<Result<bool, Error>>,
    },
    /// A message from the outbound queue; its caller was told `queued: true`.
    Queued { len: usize },
    /// A heartbeat ping.
    Ping,
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
            notes: Arc::default(),
        }
    }

    /// The connection's whole life, and what happens if it ends by a fault: a panic anywhere in it (a
    /// `HeaderSource` or `UrlGuard` of the app's, or a bug of ours) still ends the connection visibly, with a
    /// fatal `error` and `failed` to every subscriber, instead of leaving them waiting on a task that is gone.
    pub(crate) async fn run(mut self) {
        let outcome = std::panic::AssertUnwindSafe(self.live())
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            let what = panic_message(&*panic);
            log::error!(
                "realtime: the connection to {} stopped: {what}",
                self.opts.url
            );
            self.fault(format!(
                "internal error: the connection task stopped ({what}); connect again"
            ))
            .await;
        }
    }

    async fn live(&mut self) {
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
        let notes = self.notes.clone();
        let last_id = self.parser.last_event_id().to_owned();
        async move {
            let connect_timeout = opts.connect_timeout;
            let opening = async {
                match opts.transport {
                    Transport::Websocket => transport::ws::open(&opts, &env, &notes)
                        .await
                        .map(|(ws, protocol)| Opened::Ws(Box::new(ws), protocol)),
                    Transport::Sse | Transport::Poll => {
                        transport::sse::open(&env, &opts, Some(&last_id), guard.as_ref(), &notes)
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
        let opened = self.serve(open).await;
        self.say_notes().await;
        match opened {
            Err(i) => Flow::Interrupt(i),
            Ok(Err(e)) => Flow::Ended(Ended::Attempt(e)),
            Ok(Ok(opened)) => self.pump(opened).await,
        }
    }

    async fn pump(&mut self, opened: Opened) -> Flow {
        match opened {
            Opened::Ws(ws, protocol) => {
                self.stats.view().protocol = protocol.clone();
                self.protocol = protocol;
                self.pump_ws(*ws).await
            }
            Opened::Sse(response) => self.pump_sse(response).await,
        }
    }

    /// The degraded path: poll every `intervalMs`, and (when `probe`) try the stream every
    /// `probeIntervalMs`. Returns when an upgraded stream ends, on a fatal poll answer, or on an interrupt.
    ///
    /// A probe and a poll never overlap, so the stream resumes exactly after the last polled event id. With a
    /// `sendUrl`, a WebSocket's sends are POSTed there one at a time, the queue's first, in the order sent.
    async fn poll_loop(&mut self, reason: String, probe: bool) -> Flow {
        let fb = self.opts.fallback.clone().unwrap_or_default();
        let url = fb
            .poll_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .unwrap_or_else(|| self.opts.url.clone());
        let send_url = fb
            .send_url
            .as_deref()
            .filter(|_| self.opts.transport == Transport::Websocket)
            .and_then(|u| url::Url::parse(u).ok());
        let interval = millis(fb.interval_ms);
        let probe_every = millis(fb.probe_interval_ms);
        self.set_state(State::Polling, None, None, Some(reason))
            .await;

        type Boxed<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;
        let mut poller = Some(Poller::default());
        let mut polling: Option<Boxed<(Poller, Result<Polled, AttemptError>)>> = None;
        let mut probing: Option<Boxed<Result<Opened, AttemptError>>> = None;
        let mut posting: Option<(Writing, Boxed<Result<(), String>>)> = None;
        let next_poll = sleep(Duration::ZERO);
        let next_probe = sleep(probe_every);
        tokio::pin!(next_poll, next_probe);
        let mut failures: u32 = 0;

        let flow = loop {
            if let (None, Some(send_url)) = (&posting, &send_url) {
                if let Some(msg) = self.queue.pop() {
                    self.sync_queue_stats();
                    let len = msg.len();
                    posting = Some((Writing::Queued { len }, Box::pin(self.post(send_url, msg))));
                }
            }
            tokio::select! {
                biased;
                _ = self.token.cancelled() => break Flow::Interrupt(Interrupt::Shutdown),
                c = self.ctl.recv() => match self.on_control(c).await {
                    None => {}
                    // From polling, `reconnect` means: try the stream now.
                    Some(Interrupt::Reconnect) if probe => next_probe.as_mut().reset(Instant::now()),
                    Some(i) => break Flow::Interrupt(i),
                },
                Some(req) = self.sends.recv(), if posting.is_none() => match &send_url {
                    Some(send_url) => {
                        let len = req.msg.len();
                        posting = Some((Writing::Send { len, reply: req.reply }, Box::pin(self.post(send_url, req.msg))));
                    }
                    None => self.send_offline(req),
                },
                posted = async { posting.as_mut().expect("guarded").1.as_mut().await }, if posting.is_some() => {
                    if let Some((writing, _)) = posting.take() {
                        match posted {
                            Ok(()) => self.wrote(writing),
                            Err(why) => self.not_written(writing, &why).await,
                        }
                    }
                    self.say_notes().await;
                }
                _ = &mut next_poll, if polling.is_none() && probing.is_none() => {
                    let Some(mut p) = poller.take() else { continue };
                    let http = self.env.http.clone();
                    let url = url.clone();
                    let opts = self.opts.clone();
                    let headers = transport::request_headers(&opts.headers, self.env.secrets.as_deref(), &url, &self.notes);
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
                    next_poll.as_mut().reset(deadline(NEVER));
                }
                (p, result) = async { polling.as_mut().expect("guarded").await }, if polling.is_some() => {
                    polling = None;
                    poller = Some(p);
                    self.say_notes().await;
                    // Timed from the end of this poll; failed polls back off, without leaving `polling`.
                    let mut wait = interval;
                    match result {
                        Ok(polled) => {
                            failures = 0;
                            self.relay_polled(polled).await;
                        }
                        Err(AttemptError::Fatal { reason }) => {
                            break Flow::Ended(Ended::Attempt(AttemptError::Fatal { reason }));
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            let backoff = interval
                                .saturating_mul(1 << failures.min(4))
                                .min(Duration::from_secs(30).max(interval));
                            wait = match &e {
                                AttemptError::Retry { retry_after: Some(ra), .. } => backoff.max(server_delay(*ra)),
                                _ => backoff,
                            };
                            let message = format!("{}; polling again in {} ms", e.reason(), wait.as_millis());
                            self.note_error(&message);
                            self.emit(FrameBody::Error { message, fatal: false }).await;
                        }
                    }
                    next_poll.as_mut().reset(deadline(wait));
                }
                _ = &mut next_probe, if probe && probing.is_none() && polling.is_none() => {
                    probing = Some(Box::pin(self.open()));
                    next_probe.as_mut().reset(deadline(probe_every));
                }
                result = async { probing.as_mut().expect("guarded").await }, if probing.is_some() => {
                    probing = None;
                    self.say_notes().await;
                    match result {
                        Ok(opened) => {
                            if let Some((writing, _)) = posting.take() {
                                self.not_written(writing, "the connection left polling while it was being posted").await;
                            }
                            return self.pump(opened).await;
                        }
                        Err(AttemptError::Fatal { reason }) => {
                            break Flow::Ended(Ended::Attempt(AttemptError::Fatal { reason }));
                        }
                        Err(e) => self.note_error(e.reason()),
                    }
                }
            }
        };
        if let Some((writing, _)) = posting.take() {
            self.not_written(
                writing,
                "the connection left polling while it was being posted",
            )
            .await;
        }
        flow
    }

    /// POSTs one message to `sendUrl` with the connection's headers; `Err` says why it was not accepted.
    fn post(
        &self,
        send_url: &url::Url,
        msg: Outgoing,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let (body, content_type) = match msg {
            Outgoing::Text(t) => (t.into_bytes(), "text/plain; charset=utf-8"),
            Outgoing::Binary(b) => (b, "application/octet-stream"),
        };
        let mut post = self
            .env
            .http
            .post(send_url.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        let headers = transport::request_headers(
            &self.opts.headers,
            self.env.secrets.as_deref(),
            send_url,
            &self.notes,
        );
        for (n, v) in headers {
            post = post.header(n, v);
        }
        let limit = self.opts.connect_timeout;
        async move {
            match timeout(limit, post.send()).await {
                Ok(Ok(r)) if r.status().is_success() => Ok(()),
                Ok(Ok(r)) => Err(format!("sendUrl answered HTTP {}", r.status().as_u16())),
                Ok(Err(e)) => Err(error_chain(&e)),
                Err(_) => Err("sendUrl did not answer in time".into()),
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
                self.sync_last_event_id().await;
            }
        }
    }

    /// A write finished: count it, and answer its caller.
    fn wrote(&mut self, writing: Writing) {
        match writing {
            Writing::Send { len, reply } => {
                self.count_out(len);
                let _ = reply.send(Ok(false));
            }
            Writing::Queued { len } => self.count_out(len),
            Writing::Ping => {}
        }
    }

    /// A write that did not finish. Messages are written at most once: it is not tried again, and whoever
    /// sent it is told that it may not have arrived (the caller's promise rejects, or for a message that
    /// waited in the queue, an `error` frame says so).
    async fn not_written(&mut self, writing: Writing, why: &str) {
        match writing {
            Writing::Send { reply, .. } => {
                let _ = reply.send(Err(Error::SendFailed(format!(
                    "{why}; it may not have reached the server"
                ))));
            }
            Writing::Queued { .. } => {
                let message = format!("a queued message may not have reached the server: {why}");
                self.note_error(&message);
                self.emit(FrameBody::Error {
                    message,
                    fatal: false,
                })
                .await;
            }
            Writing::Ping => {}
        }
    }

    /// Relays an open WebSocket until it ends. One message is written at a time (the queue's first), inside
    /// the same `select!` as everything else, so a server that stops reading can never keep the connection
    /// from hearing `close`, cancellation or its timers: a write that does not finish within the write
    /// deadline is a dead link.
    async fn pump_ws(&mut self, ws: transport::ws::Ws) -> Flow {
        let since = Instant::now();
        let mut delivered = false;
        let (mut sink, mut stream) = ws.split();
        self.set_state(State::Connected, Some(0), None, None).await;

        let heartbeat = self.opts.heartbeat.clone();
        let ping_every = heartbeat
            .as_ref()
            .map_or(NEVER, |h| millis(h.ping_interval_ms));
        let pong_within = heartbeat
            .as_ref()
            .map_or(NEVER, |h| millis(h.pong_timeout_ms));
        // As long as a server may take to answer a ping: a write that takes longer means nobody is reading.
        let write_within = heartbeat
            .as_ref()
            .map_or(self.opts.connect_timeout, |h| millis(h.pong_timeout_ms));
        let ping = sleep(ping_every);
        let pong = sleep(NEVER);
        let write_deadline = sleep(NEVER);
        tokio::pin!(ping, pong, write_deadline);
        let mut awaiting_pong = false;
        // The message being written: `pending` until the socket takes it, then flushed.
        let mut pending: Option<Message> = None;
        let mut writing: Option<Writing> = None;

        loop {
            if writing.is_none() {
                // Messages held while down go first, in order.
                if let Some(msg) = self.queue.pop() {
                    self.sync_queue_stats();
                    writing = Some(Writing::Queued { len: msg.len() });
                    pending = Some(to_ws(msg));
                    write_deadline.as_mut().reset(deadline(write_within));
                }
            }
            let progress = |delivered| Progress {
                uptime: since.elapsed(),
                delivered,
            };
            tokio::select! {
                biased;
                _ = self.token.cancelled() => {
                    if let Some(w) = writing.take() {
                        self.not_written(w, "the app is exiting").await;
                    }
                    close_ws(&mut sink, &mut stream, 1001, "the app is exiting", SHUTDOWN_GRACE).await;
                    return Flow::Interrupt(Interrupt::Shutdown);
                }
                c = self.ctl.recv() => match self.on_control(c).await {
                    None => {}
                    Some(i) => {
                        if let Some(w) = writing.take() {
                            self.not_written(w, "the connection closed").await;
                        }
                        return match i {
                            Interrupt::Close(code, reason) => {
                                let echoed = close_ws(&mut sink, &mut stream, code, &reason, CLOSE_GRACE).await;
                                let (code, reason) = echoed.unwrap_or((code, reason));
                                self.emit(FrameBody::Close { code, reason }).await;
                                Flow::Interrupt(Interrupt::Close(code, String::new()))
                            }
                            Interrupt::Reconnect => {
                                close_ws(&mut sink, &mut stream, 1000, "reconnecting", CLOSE_GRACE).await;
                                Flow::Interrupt(Interrupt::Reconnect)
                            }
                            Interrupt::Shutdown => Flow::Interrupt(Interrupt::Shutdown),
                        };
                    }
                },
                written = std::future::poll_fn(|cx| poll_write(&mut sink, &mut pending, cx)), if writing.is_some() => {
                    write_deadline.as_mut().reset(deadline(NEVER));
                    let Some(w) = writing.take() else { continue };
                    match written {
                        Ok(()) => {
                            if matches!(w, Writing::Ping) && !awaiting_pong {
                                awaiting_pong = true;
                                pong.as_mut().reset(deadline(pong_within));
                            }
                            self.wrote(w);
                        }
                        Err(e) => {
                            self.not_written(w, &format!("the write failed ({e})")).await;
                            return self.ws_error(e, progress(delivered));
                        }
                    }
                }
                _ = &mut write_deadline, if writing.is_some() => {
                    let why = format!(
                        "the server stopped reading: a write did not finish within {} ms",
                        write_within.as_millis()
                    );
                    if let Some(w) = writing.take() {
                        self.not_written(w, &why).await;
                    }
                    return Flow::Ended(Ended::Dropped { reason: why, progress: progress(delivered) });
                }
                Some(req) = self.sends.recv(), if writing.is_none() => {
                    writing = Some(Writing::Send { len: req.msg.len(), reply: req.reply });
                    pending = Some(to_ws(req.msg));
                    write_deadline.as_mut().reset(deadline(write_within));
                }
                m = stream.next() => match m {
                    Some(Ok(Message::Text(text))) => {
                        delivered = true;
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
                        delivered = true;
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
                        pong.as_mut().reset(deadline(NEVER));
                    }
                    Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        if let Some(w) = writing.take() {
                            self.not_written(w, "the server closed the connection").await;
                        }
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                            .unwrap_or((1005, String::new()));
                        // Lets tungstenite write its reply to the close.
                        let _ = timeout(CLOSE_GRACE, sink.close()).await;
                        self.emit(FrameBody::Close { code, reason: reason.clone() }).await;
                        return Flow::Ended(Ended::ServerClosed { code, reason, progress: progress(delivered) });
                    }
                    Some(Err(e)) => {
                        if let Some(w) = writing.take() {
                            self.not_written(w, "the connection dropped").await;
                        }
                        return self.ws_error(e, progress(delivered));
                    }
                    None => {
                        if let Some(w) = writing.take() {
                            self.not_written(w, "the connection dropped").await;
                        }
                        return Flow::Ended(Ended::Dropped {
                            reason: "connection closed without a close frame".into(),
                            progress: progress(delivered),
                        });
                    }
                },
                _ = &mut ping, if heartbeat.is_some() && writing.is_none() => {
                    writing = Some(Writing::Ping);
                    pending = Some(Message::Ping(Default::default()));
                    write_deadline.as_mut().reset(deadline(write_within));
                    ping.as_mut().reset(deadline(ping_every));
                }
                _ = &mut pong, if awaiting_pong => {
                    if let Some(w) = writing.take() {
                        self.not_written(w, "the server stopped answering").await;
                    }
                    return Flow::Ended(Ended::Dropped {
                        reason: format!("no pong within {} ms", pong_within.as_millis()),
                        progress: progress(delivered),
                    });
                }
            }
        }
    }

    fn ws_error(&mut self, e: tungstenite::Error, progress: Progress) -> Flow {
        use tungstenite::Error as E;
        match e {
            // The server sent more than we accept: retrying would only repeat it.
            E::Capacity(c) => Flow::Ended(Ended::Attempt(AttemptError::Fatal {
                reason: format!("message from the server too large ({c}); raise maxMessageSize"),
            })),
            E::Protocol(p) => Flow::Ended(Ended::Dropped {
                reason: format!("WebSocket protocol error: {p}"),
                progress,
            }),
            E::Utf8(_) => Flow::Ended(Ended::Dropped {
                reason: "server sent invalid UTF-8 in a text message".into(),
                progress,
            }),
            other => Flow::Ended(Ended::Dropped {
                reason: format!("network error: {other}"),
                progress,
            }),
        }
    }

    /// Relays an open SSE response until it ends, with the idle timeout.
    async fn pump_sse(&mut self, response: reqwest::Response) -> Flow {
        let since = Instant::now();
        let mut delivered = false;
        self.set_state(State::Connected, Some(0), None, None).await;
        let idle = self
            .opts
            .heartbeat
            .as_ref()
            .map_or(NEVER, |h| millis(h.idle_timeout_ms));
        let idle_timer = sleep(idle);
        tokio::pin!(idle_timer);
        let mut body = response.bytes_stream();
        let mut events = Vec::new();
        let ended = loop {
            let progress = |delivered| Progress {
                uptime: since.elapsed(),
                delivered,
            };
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
                        idle_timer.as_mut().reset(deadline(idle));
                        self.count_in_bytes(bytes.len());
                        // Events completed before an oversized one are delivered first: their ids are
                        // already the resume point.
                        let fed = self.parser.feed(&bytes, &mut events);
                        if let Some(retry) = self.parser.take_retry() {
                            if let Some(b) = self.backoff.as_mut() {
                                b.set_base(millis(retry));
                            }
                        }
                        delivered |= !events.is_empty();
                        self.relay_events(&mut events).await;
                        if let Err(e) = fed {
                            break Flow::Ended(Ended::Attempt(AttemptError::Fatal { reason: e.to_string() }));
                        }
                    }
                    Some(Err(e)) => break Flow::Ended(Ended::Dropped {
                        reason: format!("stream error: {}", error_chain(&e)),
                        progress: progress(delivered),
                    }),
                    None => break Flow::Ended(Ended::Finished { progress: progress(delivered) }),
                },
                _ = &mut idle_timer => break Flow::Ended(Ended::Dropped {
                    reason: format!("no data for {} ms (idle timeout)", idle.as_millis()),
                    progress: progress(delivered),
                }),
            }
        };
        // A partial event at the end of a stream is discarded (WHATWG).
        self.parser.reset_stream();
        self.sync_last_event_id().await;
        ended
    }

    /// Relays the SSE events parsed from one chunk.
    async fn relay_events(&mut self, events: &mut Vec<crate::sse::SseEvent>) {
        if events.is_empty() {
            return;
        }
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
        self.sync_last_event_id().await;
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
                    let _ = sub.out.send(Arc::new(f.as_snapshot())).await;
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

    /// Publishes the resume point to `inspect`, and says once if HTTP cannot carry it back.
    async fn sync_last_event_id(&mut self) {
        let id = self.parser.last_event_id();
        if !id.is_empty() && transport::last_event_id_header(id).is_none() {
            self.notes.once(format!(
                "the server's event id {id:?} has characters that an HTTP header cannot carry; reconnects \
                 do not send it as Last-Event-ID"
            ));
        }
        self.stats.view().last_event_id = (!id.is_empty()).then(|| id.to_owned());
        self.say_notes().await;
    }

    /// Relays, as non-fatal `error` frames, what the transports noted since the last call.
    async fn say_notes(&mut self) {
        for message in self.notes.take() {
            log::warn!("realtime: {}: {message}", self.opts.url);
            self.emit(FrameBody::Error {
                message,
                fatal: false,
            })
            .await;
        }
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
    async fn finish(&mut self, reason: &str) {
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
    async fn finish_quietly(&mut self) {
        self.queue.clear();
        self.sync_queue_stats();
    }

    /// After a fault: no joiner may take this upstream any more, and everyone who subscribed (including a
    /// joiner whose request is still in the channel) is told it failed.
    async fn fault(&mut self, reason: String) {
        self.stats.ended.store(true, Ordering::Release);
        while let Ok(c) = self.ctl.try_recv() {
            match c {
                Control::Subscribe(sub) => self.subs.push(sub),
                Control::Unsubscribe(id) => self.subs.retain(|s| s.id != id),
                Control::Close { .. } | Control::Reconnect => {}
            }
        }
        self.note_error(&reason);
        let dropped = self.queue.clear();
        self.sync_queue_stats();
        let message = if dropped > 0 {
            format!("{reason}; {dropped} queued messages were not sent")
        } else {
            reason.clone()
        };
        let token = self.token.clone();
        let tell = async {
            self.emit(FrameBody::Error {
                message,
                fatal: true,
            })
            .await;
            self.set_state(State::Failed, None, None, Some(reason))
                .await;
        };
        tokio::select! {
            _ = token.cancelled() => {}
            _ = tell => {}
        }
    }
}

/// The text of a panic's payload, for the reason a subscriber reads.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Numbers a frame and hands it to every subscriber, waiting for room (backpressure on the upstream read).
/// A subscriber whose receiver is gone is dropped.
async fn emit_to(subs: &mut Vec<Subscriber>, seq: &mut u64, body: FrameBody) -> Arc<Frame> {
    *seq += 1;
    let frame = Arc::new(body.number(*seq));
    let mut gone = false;
    for sub in subs.iter() {
        if sub.out.send(frame.clone()).await.is_err() {
            gone = true;
        }
    }
    if gone {
        subs.retain(|s| !s.out.is_closed());
    }
    frame
}

fn to_ws(msg: Outgoing) -> Message {
    match msg {
        Outgoing::Text(t) => Message::text(t),
        Outgoing::Binary(b) => Message::binary(b),
    }
}

/// Takes `pending` into the socket once it has room, then flushes: the next step of writing one message.
/// Cancel-safe: a message not yet taken stays in `pending`, one taken stays in the socket's buffer.
fn poll_write<S>(
    sink: &mut S,
    pending: &mut Option<Message>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Result<(), tungstenite::Error>>
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

/// Sends a close frame and waits briefly for the server's reply; returns the code and reason it echoed.
/// Each step is bounded by `grace`, so a server that stopped reading only delays the end by that much.
async fn close_ws<S, R>(
    sink: &mut S,
    stream: &mut R,
    code: u16,
    reason: &str,
    grace: Duration,
) -> Option<(u16, String)>
where
    S: futures_util::Sink<Message> + Unpin,
    R: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    if timeout(grace, sink.send(Message::Close(Some(frame))))
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
    timeout(grace, wait).await.ok().flatten()
}
