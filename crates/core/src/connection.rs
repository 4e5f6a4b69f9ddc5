//! One upstream connection's task: the supervisor. It owns the connection's state machine (an explicit
//! [`Phase`]), opens an [`Upstream`] of the right transport, relays what the upstream reports to the
//! subscribers as numbered frames, decides after every end by the reconnect policy (`policy.rs`), degrades to
//! polling and probes its way back, and writes what the app sends, holding it in the queue while down.
//!
//! One `select!` over cancellation, the hub's controls, wakes (`wake.rs`), the app's sends and the phase; each
//! arm is one call. It never speaks WebSocket, SSE or HTTP (the transports do), and never touches the registry
//! (the hub does): the hub talks to it only through channels, and cancelling its token ends it.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use futures_util::FutureExt;
use serde::Serialize;
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::{sleep, Instant, Sleep},
};
use tokio_util::sync::CancellationToken;

use crate::{
    backoff::Backoff,
    error::Error,
    fanout::{Fanout, Subscriber},
    frame::{FrameBody, State, Transport},
    on_connect::{OnConnect, OnConnectLimits},
    options::Resolved,
    outbox::{Outbox, SendRequest, Wrote},
    policy::{decide, Ended, Step},
    queue::Outgoing,
    time::{deadline, millis, server_delay},
    transport::{
        self, last_event_id_header, AttemptError, Env, Event, Notes, PollUpstream, PostFailed,
        Poster, Received, Upstream, UrlGuard, Writable,
    },
    wake::Signal,
};

/// After a wake or a network change, an attempt to open that has been under way this long is started
/// afresh (it may be stuck on a route that is gone); a younger one likely began on the network as it is now.
const STUCK_AFTER: Duration = Duration::from_secs(1);

/// Time allowed for our close handshake before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The same at app exit, which waits for every connection within its own grace.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Requests from the hub, rare and never blocked behind sends. They travel boxed, as sends do: a Tokio channel
/// allocates its first block of 32 items up front, which for a connection that never hears either (most idle
/// streams) was 5.7 KiB of its memory (docs/BENCHMARKS.md, issue 17).
pub(crate) enum Control {
    Subscribe(Subscriber),
    Unsubscribe(Arc<str>),
    Close {
        code: u16,
        reason: String,
    },
    Reconnect,
    /// Subscription `sub` sets its on-connect message `key`; the reply says whether the link is open (so it
    /// goes now as well).
    SetOnConnect {
        sub: Arc<str>,
        key: String,
        msg: Outgoing,
        limits: OnConnectLimits,
        reply: oneshot::Sender<Result<bool, Error>>,
    },
    /// Subscription `sub` removes its on-connect message `key`; the reply says whether there was one.
    RemoveOnConnect {
        sub: Arc<str>,
        key: String,
        reply: oneshot::Sender<bool>,
    },
}

/// What `inspect` reports, updated by the connection as it goes.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub bytes_out: AtomicU64,
    status: Mutex<Status>,
    /// The task has ended or is ending by a fault: a new subscriber must open a fresh upstream.
    pub ended: AtomicBool,
}

impl Stats {
    /// The connection's current status; a poisoned lock still reads.
    pub(crate) fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The part of `inspect`'s answer that the connection keeps up to date.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    pub state: State,
    pub transport: Option<Transport>,
    pub attempt: u32,
    pub queued: usize,
    pub queued_bytes: usize,
    pub last_error: Option<String>,
    pub last_event_id: Option<String>,
    pub protocol: Option<String>,
}

impl Default for Status {
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
    pub ctl: mpsc::UnboundedReceiver<Box<Control>>,
    pub sends: mpsc::Receiver<Box<SendRequest>>,
    pub stats: Arc<Stats>,
    pub token: CancellationToken,
    /// Wakes and network changes (`wake.rs`).
    pub wake: watch::Receiver<Signal>,
}

type Opening = Pin<Box<dyn Future<Output = Result<Upstream, AttemptError>> + Send>>;

/// Where the connection is in its life.
enum Phase {
    /// Opening the stream: `connecting`.
    Opening(Opening),
    /// The stream is open: `connected`.
    Streaming(Upstream),
    /// Waiting out the backoff before the next attempt: `reconnecting`.
    Waiting(Pin<Box<Sleep>>),
    /// Degraded: `polling`, and, unless polling was asked for, trying the stream again every probe interval.
    Polling {
        poll: Box<PollUpstream>,
        probe: Option<Probe>,
    },
    /// `failed` or `disconnected`: until `reconnect`, or until the last subscriber leaves.
    Ended,
}

/// Trying to get the stream back while polling.
enum Probe {
    /// Until the next try.
    Waiting(Pin<Box<Sleep>>),
    /// A try under way; polls wait for it, so that the two never overlap.
    Trying(Opening),
}

/// What the phase brought.
enum Happened {
    Opened(Result<Upstream, AttemptError>),
    Upstream(Event),
    TimeToRetry,
    TimeToProbe,
    Probed(Result<Upstream, AttemptError>),
}

impl Phase {
    /// What happens next in this phase. Cancel-safe: whatever is in flight is kept in the phase.
    async fn next(&mut self) -> Happened {
        match self {
            Phase::Opening(open) => Happened::Opened(open.await),
            Phase::Streaming(upstream) => Happened::Upstream(upstream.next().await),
            Phase::Waiting(timer) => {
                timer.await;
                Happened::TimeToRetry
            }
            Phase::Polling { poll, probe: None } => Happened::Upstream(poll.next().await),
            Phase::Polling {
                poll,
                probe: Some(Probe::Waiting(timer)),
            } => {
                let idle = poll.idle();
                tokio::select! {
                    _ = timer, if idle => Happened::TimeToProbe,
                    event = poll.next() => Happened::Upstream(event),
                }
            }
            Phase::Polling {
                poll,
                probe: Some(Probe::Trying(open)),
            } => {
                tokio::select! {
                    opened = open => Happened::Probed(opened),
                    event = poll.next_written() => Happened::Upstream(event),
                }
            }
            Phase::Ended => std::future::pending().await,
        }
    }
}

/// What the select heard.
enum Input {
    Exit,
    Control(Option<Control>),
    Send(SendRequest),
    Posted(Result<(), PostFailed>),
    Phase(Happened),
    /// The machine woke or the network changed (`None`: the hub's signal is gone).
    Wake(Option<Signal>),
}

pub(crate) struct Connection {
    opts: Arc<Resolved>,
    env: Arc<Env>,
    guard: Arc<dyn UrlGuard>,
    ctl: mpsc::UnboundedReceiver<Box<Control>>,
    sends: mpsc::Receiver<Box<SendRequest>>,
    stats: Arc<Stats>,
    token: CancellationToken,
    fanout: Fanout,
    outbox: Outbox,
    /// Written after every open of the stream, before the queue.
    on_connect: OnConnect,
    backoff: Option<Backoff>,
    notes: Arc<Notes>,
    phase: Phase,
    state: State,
    /// The attempt that ended last, for the reconnect policy (0: the first).
    attempt: u32,
    /// The SSE last event id: sent as `Last-Event-ID` on the next open or poll.
    resume: String,
    /// SSE and poll connections with a send URL: sends are POSTed there beside the stream, in every phase.
    lane: Option<Poster>,
    /// Wakes and network changes; `None` once the hub's sender is gone.
    wake: Option<watch::Receiver<Signal>>,
    /// When the attempt under way started.
    opened_at: Instant,
    /// While waiting to retry: the earliest instant the server allowed (`Retry-After`), which a wake only
    /// shortens by the time the machine slept.
    server_wait: Option<Instant>,
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
            wake,
        } = wiring;
        let backoff = opts.reconnect.clone().map(|r| {
            Backoff::new(r).with_fallback_after(opts.fallback.as_ref().map(|f| f.after_failures))
        });
        let notes: Arc<Notes> = Arc::default();
        let lane = opts
            .post_url()
            .filter(|_| opts.transport != Transport::Websocket)
            .map(|u| Poster::new(opts.clone(), env.clone(), notes.clone(), u));
        Self {
            outbox: Outbox::new(opts.queue.clone()),
            on_connect: OnConnect::default(),
            resume: opts.last_event_id.clone().unwrap_or_default(),
            opts,
            env,
            guard,
            ctl,
            sends,
            stats,
            token,
            fanout: Fanout::new(first),
            backoff,
            notes,
            phase: Phase::Ended,
            state: State::Connecting,
            attempt: 0,
            lane,
            wake: Some(wake),
            opened_at: Instant::now(),
            server_wait: None,
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
        if self.opts.transport == Transport::Poll {
            self.poll("transport is poll".into(), false).await;
        } else {
            self.open(0).await;
        }
        loop {
            let input = tokio::select! {
                biased;
                _ = self.token.cancelled() => Input::Exit,
                c = self.ctl.recv() => Input::Control(c.map(|c| *c)),
                woke = woke(&mut self.wake) => Input::Wake(woke),
                posted = posted(&mut self.lane), if self.lane.as_ref().is_some_and(Poster::busy) => Input::Posted(posted),
                Some(req) = self.sends.recv(), if self.takes_sends() => Input::Send(*req),
                happened = self.phase.next() => Input::Phase(happened),
            };
            let done = match input {
                Input::Exit => {
                    self.exit().await;
                    true
                }
                Input::Control(c) => self.on_control(c).await,
                Input::Send(req) => {
                    self.on_send(req);
                    false
                }
                Input::Posted(result) => {
                    self.posted(result).await;
                    false
                }
                Input::Phase(happened) => {
                    self.on_phase(happened).await;
                    false
                }
                Input::Wake(signal) => {
                    self.on_wake(signal).await;
                    false
                }
            };
            if done {
                return;
            }
            self.say_notes().await;
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Phases.

    /// Starts attempt `attempt` to open the stream.
    async fn open(&mut self, attempt: u32) {
        self.attempt = attempt;
        self.opened_at = Instant::now();
        self.server_wait = None;
        self.phase = Phase::Opening(Box::pin(self.opening()));
        self.set_state(State::Connecting, Some(attempt), None, None)
            .await;
    }

    fn opening(&self) -> impl Future<Output = Result<Upstream, AttemptError>> + Send + 'static {
        transport::open(
            self.opts.clone(),
            self.env.clone(),
            self.guard.clone(),
            self.notes.clone(),
            self.resume.clone(),
        )
    }

    /// The stream is open.
    async fn connected(&mut self, upstream: Upstream) {
        let protocol = upstream.protocol();
        self.stats.status().protocol.clone_from(&protocol);
        self.phase = Phase::Streaming(upstream);
        self.emit_state(State::Connected, Some(0), None, None, protocol)
            .await;
        // The server gets its subscriptions back before anything queued.
        self.outbox.start_round(self.on_connect.messages());
        self.write_queued();
    }

    /// Degrades to polling (`probe`: and tries the stream every probe interval).
    async fn poll(&mut self, reason: String, probe: bool) {
        let every = millis(
            self.opts
                .fallback
                .as_ref()
                .map_or(0, |f| f.probe_interval_ms),
        );
        let poll = Box::new(PollUpstream::new(
            self.opts.clone(),
            self.env.clone(),
            self.notes.clone(),
            &self.resume,
            self.opts.transport == Transport::Websocket,
        ));
        let probe = probe.then(|| Probe::Waiting(Box::pin(sleep(every))));
        self.phase = Phase::Polling { poll, probe };
        self.set_state(State::Polling, None, None, Some(reason))
            .await;
        self.write_queued();
    }

    /// The rare turns (an open, an end, a retry) are boxed, so that the task keeps room only for the frequent one
    /// (frames): an async fn holds its largest await for its whole life, and every connection holds this one.
    async fn on_phase(&mut self, happened: Happened) {
        match happened {
            Happened::Opened(Ok(upstream)) | Happened::Probed(Ok(upstream)) => {
                if let Some(lane) = &self.lane {
                    // The server is likely up again: a send waiting out its backoff goes now.
                    lane.nudge();
                }
                Box::pin(async {
                    self.abandon_write("the connection left polling").await;
                    self.connected(upstream).await;
                })
                .await;
            }
            Happened::Opened(Err(e)) => Box::pin(self.ended(Ended::Attempt(e))).await,
            Happened::Probed(Err(AttemptError::Fatal { reason })) => {
                Box::pin(self.ended(Ended::Attempt(AttemptError::Fatal { reason }))).await
            }
            Happened::Probed(Err(e)) => {
                self.note_error(e.reason());
                self.probe_later();
            }
            Happened::TimeToRetry => Box::pin(self.open(self.attempt)).await,
            Happened::TimeToProbe => {
                let open = Box::pin(self.opening());
                if let Phase::Polling { probe, .. } = &mut self.phase {
                    *probe = Some(Probe::Trying(open));
                }
            }
            Happened::Upstream(event) => self.on_event(event).await,
        }
    }

    fn probe_later(&mut self) {
        let every = millis(
            self.opts
                .fallback
                .as_ref()
                .map_or(0, |f| f.probe_interval_ms),
        );
        if let Phase::Polling { probe, .. } = &mut self.phase {
            *probe = Some(Probe::Waiting(Box::pin(sleep(every))));
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Message(body, bytes) => {
                self.count_in(1, bytes);
                self.fanout.emit(body).await;
            }
            Event::Received(received) => self.received(received).await,
            Event::Written(result) => {
                match self.outbox.written(result) {
                    Some(Wrote::Out(len)) => self.count_out(len),
                    Some(Wrote::Lost(message) | Wrote::Failed(message)) => {
                        self.report(message).await
                    }
                    Some(Wrote::Refused | Wrote::Cut) | None => {}
                }
                self.write_queued();
            }
            Event::Writable => self.write_queued(),
            Event::Posted(result) => self.posted(result).await,
            Event::Trouble(message) => self.report(message).await,
            Event::Ended(ended) => Box::pin(self.ended(ended)).await,
        }
    }

    /// Relays what one read or poll brought, and keeps the resume point and the reconnection time.
    async fn received(&mut self, received: Received) {
        let Received {
            messages,
            resume,
            retry,
            bytes,
        } = received;
        self.count_in(messages.len() as u64, bytes);
        if let (Some(ms), Some(b)) = (retry, self.backoff.as_mut()) {
            b.set_base(millis(ms));
        }
        for body in messages {
            self.fanout.emit(body).await;
        }
        if let Some(id) = resume {
            if !id.is_empty() && last_event_id_header(&id).is_none() {
                self.notes.once(format!(
                    "the server's event id {id:?} has characters that an HTTP header cannot carry; reconnects \
                     do not send it as Last-Event-ID"
                ));
            }
            self.stats.status().last_event_id = (!id.is_empty()).then(|| id.clone());
            self.resume = id;
        }
    }

    /// The stream ended, or an attempt failed: what the policy says comes next.
    async fn ended(&mut self, ended: Ended) {
        self.abandon_write("the connection dropped").await;
        if let Ended::ServerClosed { code, reason, .. } = &ended {
            let (code, reason) = (*code, reason.clone());
            self.fanout.emit(FrameBody::Close { code, reason }).await;
        }
        let forced_poll = self.opts.transport == Transport::Poll;
        let can_fall_back = !forced_poll && self.opts.fallback.is_some();
        let step = decide(
            self.backoff.as_ref(),
            self.attempt,
            &ended,
            fastrand::f64(),
            can_fall_back,
        );
        match step {
            Step::Fallback { reason } => {
                self.note_error(&reason);
                self.attempt = 0;
                self.poll(reason, true).await;
            }
            Step::Retry {
                attempt,
                delay,
                reason,
            } => {
                self.attempt = attempt;
                self.server_wait = match &ended {
                    Ended::Attempt(AttemptError::Retry {
                        retry_after: Some(asked),
                        ..
                    }) => Some(deadline(server_delay(*asked))),
                    _ => None,
                };
                self.note_error(&reason);
                self.phase = Phase::Waiting(Box::pin(sleep(delay)));
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                self.set_state(
                    State::Reconnecting,
                    Some(attempt),
                    Some(delay_ms),
                    Some(reason),
                )
                .await;
            }
            Step::Fail { reason } => {
                self.note_error(&reason);
                self.phase = Phase::Ended;
                self.fanout
                    .emit(FrameBody::Error {
                        message: reason.clone(),
                        fatal: true,
                    })
                    .await;
                self.set_state(State::Failed, None, None, Some(reason))
                    .await;
            }
            Step::Disconnect { reason } => {
                self.phase = Phase::Ended;
                self.set_state(State::Disconnected, None, None, Some(reason))
                    .await;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Controls.

    /// Returns whether the connection is done.
    async fn on_control(&mut self, c: Option<Control>) -> bool {
        match c {
            // The hub dropped us: nobody can reach this connection any more.
            None => {
                self.close(1000, String::new()).await;
                true
            }
            Some(Control::Subscribe(sub)) => {
                self.fanout.join(sub).await;
                false
            }
            Some(Control::Unsubscribe(id)) => {
                self.fanout.leave(&id);
                self.on_connect.leave(&id);
                false
            }
            Some(Control::SetOnConnect {
                sub,
                key,
                msg,
                limits,
                reply,
            }) => {
                let _ = reply.send(self.set_on_connect(&sub, &key, msg, limits));
                false
            }
            Some(Control::RemoveOnConnect { sub, key, reply }) => {
                let _ = reply.send(self.on_connect.remove(&sub, &key));
                false
            }
            Some(Control::Close { code, reason }) => {
                self.close(code, reason).await;
                true
            }
            Some(Control::Reconnect) => {
                self.reconnect_now().await;
                false
            }
        }
    }

    /// Keeps an on-connect message for every open; when the stream is open now, it goes now too (a topic
    /// subscribed while connected must reach the server), after what is already being written.
    fn set_on_connect(
        &mut self,
        sub: &Arc<str>,
        key: &str,
        msg: Outgoing,
        limits: OnConnectLimits,
    ) -> Result<bool, Error> {
        self.on_connect.set(sub, key, msg.clone(), limits)?;
        if !matches!(self.phase, Phase::Streaming(_)) {
            return Ok(false);
        }
        self.outbox.add_to_round(msg);
        self.write_queued();
        Ok(true)
    }

    /// The app asked for a fresh attempt now: from `failed`, to skip a backoff wait, or to probe at once.
    async fn reconnect_now(&mut self) {
        match &mut self.phase {
            Phase::Polling {
                probe: Some(probe), ..
            } => {
                if let Probe::Waiting(timer) = probe {
                    timer.as_mut().reset(Instant::now());
                }
            }
            Phase::Polling { probe: None, .. } => {
                self.abandon_write("the connection restarted polling").await;
                self.poll("transport is poll".into(), false).await;
            }
            Phase::Streaming(upstream) => {
                upstream.close(1000, "reconnecting", CLOSE_GRACE).await;
                self.abandon_write("the connection was reopened").await;
                self.open(0).await;
            }
            Phase::Opening(_) | Phase::Waiting(_) | Phase::Ended => self.open(0).await,
        }
    }

    /// The machine woke or the network changed: every link that may have died is checked now, and what was
    /// waiting goes now. Quiet when the link is fine; one found dead ends as a drop and reconnects by the
    /// policy, its reason saying why it was checked. `failed` and `disconnected` stay as they are.
    async fn on_wake(&mut self, signal: Option<Signal>) {
        let Some(signal) = signal else {
            self.wake = None;
            return;
        };
        let why = signal.why.cause();
        let now = Instant::now();
        if let Some(lane) = &self.lane {
            // A POST waiting out its backoff goes now too.
            lane.nudge();
        }
        match &mut self.phase {
            Phase::Streaming(upstream) => upstream.check(why),
            Phase::Waiting(timer) => {
                // The failures before say nothing about the network now: the count starts afresh (for
                // `maxRetries` and `afterFailures` too). A wait the server asked for still holds, less the
                // time asleep, which counted as waiting.
                self.attempt = 0;
                let at = self
                    .server_wait
                    .and_then(|until| until.checked_sub(signal.slept))
                    .map_or(now, |until| until.max(now));
                timer.as_mut().reset(at);
            }
            Phase::Opening(_) if now.saturating_duration_since(self.opened_at) >= STUCK_AFTER => {
                self.open(0).await
            }
            Phase::Opening(_) | Phase::Ended => {}
            Phase::Polling { poll, probe } => {
                poll.poll_now();
                if let Some(Probe::Waiting(timer)) = probe {
                    timer.as_mut().reset(now);
                }
            }
        }
    }

    /// Ends the connection on purpose, with a close handshake when there is one to make.
    async fn close(&mut self, code: u16, reason: String) {
        self.abandon_write("the connection closed").await;
        if let Phase::Streaming(upstream) = &mut self.phase {
            if upstream.transport() == Transport::Websocket {
                let echoed = upstream.close(code, &reason, CLOSE_GRACE).await;
                let (code, reason) = echoed.unwrap_or((code, reason));
                self.fanout.emit(FrameBody::Close { code, reason }).await;
            }
        }
        self.finish("closed by the app").await;
    }

    /// The app is exiting: close quickly (WebSocket close 1001) and say so.
    async fn exit(&mut self) {
        self.abandon_write("the app is exiting").await;
        if let Phase::Streaming(upstream) = &mut self.phase {
            upstream
                .close(1001, "the app is exiting", SHUTDOWN_GRACE)
                .await;
        }
        self.finish("the app is exiting").await;
    }

    /// The last frames of a connection that ends: what the queue still held, and `disconnected`, unless it
    /// already reported its end (`failed` or `disconnected`).
    async fn finish(&mut self, reason: &str) {
        if self.lane.as_mut().is_some_and(Poster::cancel) {
            self.outbox
                .written(Err(format!("{reason} while it was being POSTed")));
        }
        let dropped = self.outbox.clear();
        self.sync_queue();
        if matches!(self.phase, Phase::Ended) {
            return;
        }
        self.phase = Phase::Ended;
        if dropped > 0 {
            self.report(format!(
                "{dropped} queued messages were not sent: the connection closed"
            ))
            .await;
        }
        self.set_state(State::Disconnected, None, None, Some(reason.to_owned()))
            .await;
    }

    // ---------------------------------------------------------------------------------------------------------
    // Sends.

    /// Whether the select should take the next send now: not while a write is in flight (it waits in the
    /// channel, in order), or while queued messages are still going out.
    fn takes_sends(&self) -> bool {
        if let Some(lane) = &self.lane {
            return !lane.busy();
        }
        let writable = match &self.phase {
            Phase::Streaming(upstream) => upstream.writable(),
            Phase::Polling { poll, .. } => poll.writable(),
            _ => return true,
        };
        match writable {
            Writable::Now => self.outbox.clear_to_send(),
            Writable::Busy => false,
            Writable::Never => true,
        }
    }

    fn on_send(&mut self, mut req: SendRequest) {
        let content_type = req.content_type.take();
        if let Some(lane) = &mut self.lane {
            if self.state == State::Disconnected {
                let _ = req
                    .reply
                    .send(Err(Error::Closed(self.opts.url.to_string())));
            } else {
                lane.start(self.outbox.write(req), content_type);
            }
            return;
        }
        match &mut self.phase {
            Phase::Streaming(upstream) if upstream.writable() == Writable::Now => {
                upstream.write(self.outbox.write(req));
            }
            Phase::Polling { poll, .. } if poll.writable() == Writable::Now => {
                poll.write(self.outbox.write(req), content_type);
            }
            Phase::Streaming(_) if self.opts.transport != Transport::Websocket => {
                let _ = req.reply.send(Err(not_writable(self.opts.transport)));
            }
            _ => self.hold(req),
        }
    }

    /// A send while the stream cannot take it: held in the queue for a WebSocket (also while `failed`, for
    /// `reconnect()`; the app can see the depth in `inspect`), refused otherwise.
    fn hold(&mut self, req: SendRequest) {
        if self.opts.transport != Transport::Websocket {
            let _ = req.reply.send(Err(not_writable(self.opts.transport)));
        } else if self.state == State::Disconnected {
            let _ = req
                .reply
                .send(Err(Error::Closed(self.opts.url.to_string())));
        } else {
            self.outbox.hold(req);
        }
        self.sync_queue();
    }

    /// Starts writing the oldest queued message, when the upstream can take it.
    fn write_queued(&mut self) {
        if !self.outbox.idle() {
            return;
        }
        let upstream_ready = match &self.phase {
            Phase::Streaming(upstream) => upstream.writable() == Writable::Now,
            Phase::Polling { poll, .. } => poll.writable() == Writable::Now,
            _ => false,
        };
        if !upstream_ready {
            return;
        }
        if let Some(msg) = self.outbox.write_queued() {
            match &mut self.phase {
                Phase::Streaming(upstream) => upstream.write(msg),
                // A message queued for the WebSocket goes as text or bytes.
                Phase::Polling { poll, .. } => poll.write(msg, None),
                _ => {}
            }
        }
        self.sync_queue();
    }

    /// A POST beside the stream ended: counted, or its failure reported.
    async fn posted(&mut self, result: Result<(), PostFailed>) {
        match self.outbox.posted(result) {
            Some(Wrote::Out(len)) => self.count_out(len),
            Some(Wrote::Lost(message) | Wrote::Failed(message)) => self.report(message).await,
            Some(Wrote::Refused | Wrote::Cut) | None => {}
        }
        self.write_queued();
    }

    /// A write in flight that will not finish: its sender is told it may not have arrived. Called whenever
    /// the stream is left, so the on-connect round ends here too (the next open starts a new one). A POST
    /// beside the stream is not the stream's: it goes on whatever the stream does, until the connection ends.
    async fn abandon_write(&mut self, why: &str) {
        self.outbox.end_round();
        if self.lane.is_some() {
            return;
        }
        if let Some(Wrote::Lost(message)) = self.outbox.written(Err(why.to_owned())) {
            self.report(message).await;
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Frames and status.

    async fn set_state(
        &mut self,
        state: State,
        attempt: Option<u32>,
        delay_ms: Option<u64>,
        reason: Option<String>,
    ) {
        self.emit_state(state, attempt, delay_ms, reason, None)
            .await;
    }

    async fn emit_state(
        &mut self,
        state: State,
        attempt: Option<u32>,
        delay_ms: Option<u64>,
        reason: Option<String>,
        protocol: Option<String>,
    ) {
        self.state = state;
        let transport = match state {
            State::Polling => Some(Transport::Poll),
            State::Connecting | State::Connected => Some(self.opts.transport),
            _ => None,
        };
        {
            let mut status = self.stats.status();
            status.state = state;
            status.transport = Some(transport.unwrap_or(self.opts.transport));
            if let Some(a) = attempt {
                status.attempt = a;
            }
        }
        self.fanout
            .emit(FrameBody::State {
                state,
                transport,
                attempt: attempt
                    .filter(|_| matches!(state, State::Connecting | State::Reconnecting)),
                delay_ms,
                reason,
                protocol,
            })
            .await;
    }

    /// A non-fatal `error` frame, also kept as the last error for `inspect`.
    async fn report(&mut self, message: String) {
        self.note_error(&message);
        self.fanout
            .emit(FrameBody::Error {
                message,
                fatal: false,
            })
            .await;
    }

    /// Relays, as non-fatal `error` frames, what the transports noted since the last call.
    async fn say_notes(&mut self) {
        for message in self.notes.take() {
            log::warn!("realtime: {}: {message}", self.opts.url);
            self.fanout
                .emit(FrameBody::Error {
                    message,
                    fatal: false,
                })
                .await;
        }
    }

    fn note_error(&self, reason: &str) {
        self.stats.status().last_error = Some(reason.to_owned());
    }

    fn sync_queue(&self) {
        let (queued, bytes) = self.outbox.queued();
        let mut status = self.stats.status();
        status.queued = queued;
        status.queued_bytes = bytes;
    }

    fn count_in(&self, frames: u64, bytes: usize) {
        self.stats.frames_in.fetch_add(frames, Ordering::Relaxed);
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

    /// After a fault: no joiner may take this upstream any more, and everyone who subscribed (including a
    /// joiner whose request is still in the channel) is told it failed.
    async fn fault(&mut self, reason: String) {
        self.stats.ended.store(true, Ordering::Release);
        while let Ok(c) = self.ctl.try_recv() {
            match *c {
                Control::Subscribe(sub) => self.fanout.push(sub),
                Control::Unsubscribe(id) => self.fanout.leave(&id),
                // Their replies are dropped: the caller hears that the connection closed.
                Control::Close { .. }
                | Control::Reconnect
                | Control::SetOnConnect { .. }
                | Control::RemoveOnConnect { .. } => {}
            }
        }
        self.note_error(&reason);
        let dropped = self.outbox.clear();
        self.sync_queue();
        let message = if dropped > 0 {
            format!("{reason}; {dropped} queued messages were not sent")
        } else {
            reason.clone()
        };
        let token = self.token.clone();
        let tell = async {
            self.fanout
                .emit(FrameBody::Error {
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

/// The next wake or network change; `None` once the hub's sender is gone, never without a receiver.
async fn woke(wake: &mut Option<watch::Receiver<Signal>>) -> Option<Signal> {
    match wake {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(*rx.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// How the POST in flight beside the stream ends; never, without one.
async fn posted(lane: &mut Option<Poster>) -> Result<(), PostFailed> {
    match lane {
        Some(p) => p.done().await,
        None => std::future::pending().await,
    }
}

fn not_writable(transport: Transport) -> Error {
    Error::NotWritable(match transport {
        Transport::Sse => "server-sent events",
        _ => "polling",
    })
}

/// The text of a panic's payload, for the reason a subscriber reads.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
