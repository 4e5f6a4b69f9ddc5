//! The hub: every live upstream and every subscription to it. Identical subscriptions share one upstream;
//! the upstream lives while it has subscribers, lingers briefly after the last one leaves (so a reloading
//! page re-attaches without a reconnect), then closes. It never touches a socket itself: it starts
//! connection tasks and talks to them through channels. Its bookkeeping is in `registry.rs`.

mod registry;

use std::{
    collections::{BTreeMap, HashSet},
    sync::{atomic::Ordering, Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use futures_util::FutureExt;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::registry::{
    close_upstream, drop_upstream, evict_lingering, joinable, owned_upstream, register, Lingering,
    Registry, Sub, Upstream,
};
use super::{
    connection::{Connection, Control, Stats, Wiring},
    cookies::{CookieJar, Cookies},
    error::Error,
    fanout::Subscriber,
    frame::{State, Transport},
    on_connect::{check_key, OnConnectLimits},
    options::{ConnectOptions, Limits, Resolved, Sharing},
    outbox::SendRequest,
    proxy::ProxyConfig,
    queue::Outgoing,
    sink::{deliver_loop, queue, BatchLimits, FrameSink, Inlet, SinkGone},
    tls::TlsConfig,
    transport::{check_close, Env, HeaderSource, UrlGuard},
    wake::{self, LinkCheck, Signal, Sources},
};

/// Settings of the whole engine, chosen by the app's Rust code.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// How long an upstream stays open after its last subscriber leaves. Default: 3 s.
    pub linger: Duration,
    /// Bounds on what one connect may ask for.
    pub limits: Limits,
    /// Upstream connections open at once, app-wide. Default: 256.
    pub max_connections: usize,
    /// Subscriptions one owner (a webview) may hold. Default: 64.
    pub max_subscriptions_per_owner: usize,
    /// Frames per delivery batch and bytes per batch.
    pub batch: BatchLimits,
    /// Frames waiting per subscriber before the upstream read is paused. Default: 1024.
    pub channel_capacity: usize,
    /// Bytes of frames waiting per subscriber before the upstream read is paused (a frame larger than this
    /// still passes alone). Default: 1 MiB.
    pub channel_bytes: usize,
    /// Which certificates to trust, and the client certificates to present.
    pub tls: TlsConfig,
    /// HTTP/1.1 only: no HTTP/2 for event streams, polls and sends even where a server offers it over TLS
    /// (ALPN). Default: false (HTTP/2 where offered; cleartext `http://` is HTTP/1.1 either way).
    pub http1_only: bool,
    /// Headers the app's Rust code attaches per URL (e.g. a bearer token), unseen by JavaScript.
    pub secret_headers: SecretHeaders,
    /// Which proxy every request goes through. Default: the environment, then the OS's settings.
    pub proxy: ProxyConfig,
    /// Notice by itself when the machine wakes from sleep or the network changes, and have every live
    /// connection check its link then ([`Hub::check_links`] works either way). Default: true.
    pub detect_wake: bool,
}

/// Headers added by Rust code per URL; JavaScript never sees them and cannot override them.
#[derive(Clone, Default)]
pub struct SecretHeaders(pub Option<Arc<dyn HeaderSource>>);

impl std::fmt::Debug for SecretHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the values.
        f.write_str(if self.0.is_some() {
            "SecretHeaders(set)"
        } else {
            "SecretHeaders(none)"
        })
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            linger: Duration::from_secs(3),
            limits: Limits::default(),
            max_connections: 256,
            max_subscriptions_per_owner: 64,
            batch: BatchLimits::default(),
            channel_capacity: 1024,
            channel_bytes: 1 << 20,
            tls: TlsConfig::default(),
            http1_only: false,
            secret_headers: SecretHeaders::default(),
            proxy: ProxyConfig::default(),
            detect_wake: true,
        }
    }
}

/// A request to open or join a stream.
pub struct ConnectRequest {
    /// The subscription id (event `realtime://<id>`); chosen by the caller so it can listen first.
    /// `None`: the hub picks one.
    pub id: Option<String>,
    pub options: ConnectOptions,
    /// Who holds the subscription (a webview label); only the owner may act on it.
    pub owner: String,
    pub sink: Arc<dyn FrameSink>,
    /// Checks the URLs of the request and every redirect hop.
    pub guard: Arc<dyn UrlGuard>,
    /// The owner's cookie store, used when the options ask for `withCredentials` (the plugin passes the
    /// calling webview's). `None`: a connect with `withCredentials: true` is refused.
    pub cookies: Option<Arc<dyn CookieJar>>,
}

/// The answer to `connect`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    pub id: String,
    pub state: State,
    /// Joined an upstream that another subscription had opened.
    pub shared: bool,
}

/// What `inspect` reports for one subscription and its upstream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub id: String,
    pub url: String,
    pub transport: Transport,
    pub state: State,
    pub attempt: u32,
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub queued: usize,
    pub queued_bytes: usize,
    pub last_error: Option<String>,
    pub last_event_id: Option<String>,
    /// The WebSocket subprotocol the server chose.
    pub protocol: Option<String>,
    /// Subscriptions to this upstream, all owners together.
    pub subscribers: usize,
    /// Subscriptions to this upstream per owner (webview label).
    pub owners: BTreeMap<String, usize>,
    /// Whether this upstream can be joined (by identical options from its webview, or by its share key); not
    /// whether this subscription joined (that is [`Connected::shared`]).
    pub joinable: bool,
    /// Tasks alive for this upstream: its connection task and one delivery task per subscriber.
    pub tasks: usize,
}

struct Inner {
    config: HubConfig,
    env: Arc<Env>,
    registry: Mutex<Registry>,
    tracker: TaskTracker,
    root: CancellationToken,
    runtime: tokio::runtime::Handle,
    /// What every connection hears of wakes and network changes, and the app's own signals to it.
    wake: Arc<watch::Sender<Signal>>,
    link_checks: mpsc::UnboundedSender<LinkCheck>,
}

/// The streaming engine's front door. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A connect that passed its checks: what to register.
struct Authorised {
    id: Arc<str>,
    resolved: Resolved,
    reaches: Vec<url::Url>,
    /// The name under which it may be joined; `None` for a private upstream.
    key: Option<String>,
}

impl Hub {
    /// Builds the engine; tasks run on `runtime`, so the hub can be used from any thread.
    pub fn new(config: HubConfig, runtime: tokio::runtime::Handle) -> Result<Self, Error> {
        let sources = Sources::system(config.detect_wake);
        Self::with_wake_sources(config, runtime, sources)
    }

    /// [`Hub::new`], watching `sources` for wakes and network changes (tests give their own).
    pub(crate) fn with_wake_sources(
        config: HubConfig,
        runtime: tokio::runtime::Handle,
        sources: Sources,
    ) -> Result<Self, Error> {
        let env = Arc::new(Env::new(
            &config.tls,
            config.http1_only,
            config.secret_headers.0.clone(),
            &config.proxy,
        )?);
        let root = CancellationToken::new();
        let (wake, _) = watch::channel(Signal {
            why: LinkCheck::Woke,
            slept: Duration::ZERO,
        });
        let wake = Arc::new(wake);
        let (link_checks, asked) = mpsc::unbounded_channel();
        // Not in the tracker: `live_tasks` counts connections' tasks. It ends with the hub or at shutdown.
        runtime.spawn(wake::run(sources, asked, wake.clone(), root.child_token()));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                env,
                registry: Mutex::default(),
                tracker: TaskTracker::new(),
                root,
                runtime,
                wake,
                link_checks,
            }),
        })
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Opens a stream, or joins the identical one already open. The same connect again (same id, owner and
    /// options) answers with the subscription it made.
    pub fn connect(&self, req: ConnectRequest) -> Result<Connected, Error> {
        let inner = &self.inner;
        if inner.root.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let Authorised {
            id,
            resolved,
            reaches,
            key,
        } = authorise(&req, &inner.config)?;
        let (out, inlet) = queue(inner.config.channel_capacity, inner.config.channel_bytes);
        let subscriber = Subscriber {
            id: id.clone(),
            out,
        };
        let mut reg = inner.lock();
        if let Some(sub) = reg.subs.get(&id) {
            // The same connect again (an invoke that Tauri re-sent as a page reloaded, a retry of a
            // connect whose answer was lost) is answered with the subscription it already made.
            if let Some(again) = repeated(&reg, sub, &req.owner, key.as_deref(), &resolved) {
                return Ok(Connected {
                    id: id.to_string(),
                    state: again,
                    shared: sub.joined,
                });
            }
            // The same answer whoever holds it: a page learns nothing about another webview's ids.
            return Err(Error::IdRefused(id.to_string()));
        }
        let held = reg.subs.values().filter(|s| s.owner == req.owner).count();
        if held >= inner.config.max_subscriptions_per_owner {
            return Err(Error::TooManyConnections(format!(
                "this webview holds {held}, the limit is {}",
                inner.config.max_subscriptions_per_owner
            )));
        }
        let (upstream, state, shared) =
            match joinable(&mut reg, key.as_deref(), &resolved.fingerprint)? {
                Some(uid) => {
                    let state = self.join(&mut reg, uid, &req, subscriber)?;
                    (uid, state, true)
                }
                None => {
                    let opened = (resolved, reaches, key, req.owner.clone());
                    let uid = self.spawn(&mut reg, opened, req.guard.clone(), subscriber)?;
                    (uid, State::Connecting, false)
                }
            };
        let (token, serial, tasks) = register(
            &mut reg,
            &inner.root,
            (&id, shared),
            upstream,
            &req.owner,
            &*req.sink,
        );
        drop(reg);
        self.start_delivery(&tasks, id.clone(), serial, inlet, req.sink, token);
        Ok(Connected {
            id: id.to_string(),
            state,
            shared,
        })
    }

    /// Adds a subscriber to a live upstream; it is told the current state at once.
    fn join(
        &self,
        reg: &mut Registry,
        uid: u64,
        req: &ConnectRequest,
        subscriber: Subscriber,
    ) -> Result<State, Error> {
        let up = reg
            .upstreams
            .get_mut(&uid)
            .ok_or_else(|| Error::Closed(subscriber.id.to_string()))?;
        // A share key must not let a webview read a URL its own scope refuses.
        for u in &up.reaches {
            req.guard.check(u).map_err(Error::UrlNotAllowed)?;
        }
        // A credentialed upstream speaks with its opener's cookies, and stores what servers set into the
        // opener's store: another webview joining it would read a stream signed in as someone else.
        if up.credentials_of.as_ref().is_some_and(|o| *o != req.owner) {
            return Err(Error::InvalidOptions(
                "this share key is held by a `withCredentials` connection of another webview, which carries \
                 that webview's cookies; connect with your own share key (or none) to use your own"
                    .into(),
            ));
        }
        if let Some(linger) = up.linger.take() {
            linger.token.cancel();
        }
        up.subs.insert(subscriber.id.clone());
        let state = up.stats.status().state;
        let _ = up.ctl.send(Box::new(Control::Subscribe(subscriber)));
        if state.is_terminal() {
            // Someone asks for this stream anew: give it a fresh try.
            let _ = up.ctl.send(Box::new(Control::Reconnect));
        }
        Ok(state)
    }

    /// Starts a new upstream for this subscriber: its connection task, and its place in the registry.
    fn spawn(
        &self,
        reg: &mut Registry,
        ok: (Resolved, Vec<url::Url>, Option<String>, String),
        guard: Arc<dyn UrlGuard>,
        subscriber: Subscriber,
    ) -> Result<u64, Error> {
        let inner = &self.inner;
        let (resolved, reaches, key, owner) = ok;
        if reg.upstreams.len() >= inner.config.max_connections && !evict_lingering(reg) {
            return Err(Error::TooManyConnections(format!(
                "{} upstream connections are open, the limit is {}",
                reg.upstreams.len(),
                inner.config.max_connections
            )));
        }
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (send_tx, send_rx) = mpsc::channel(64);
        let stats = Arc::new(Stats::default());
        let uid = reg.next();
        let upstream = Upstream {
            tasks: TaskTracker::new(),
            ctl: ctl_tx,
            sends: send_tx,
            stats: stats.clone(),
            url: resolved.url.to_string(),
            reaches,
            transport: resolved.transport,
            key: key.clone(),
            fingerprint: resolved.fingerprint.clone(),
            subs: HashSet::from([subscriber.id.clone()]),
            linger: None,
            max_message_size: resolved.max_message_size,
            credentials_of: resolved.cookies.is_some().then_some(owner),
        };
        let conn = Connection::new(
            Arc::new(resolved),
            inner.env.clone(),
            guard,
            Wiring {
                ctl: ctl_rx,
                sends: send_rx,
                stats,
                token: inner.root.child_token(),
                wake: inner.wake.subscribe(),
            },
            subscriber,
        );
        // However the task ends, a panic included, the hub forgets the upstream, so the next connect opens
        // a fresh one instead of joining a dead one.
        let weak = Arc::downgrade(inner);
        // `map`, not an async block: a block would hold the connection once more beside `run`'s own copy,
        // for the task's whole life.
        inner.tracker.spawn_on(
            upstream
                .tasks
                .track_future(conn.run().map(move |()| forget_upstream(&weak, uid))),
            &inner.runtime,
        );
        if let Some(k) = key {
            reg.by_key.insert(k, uid);
        }
        reg.upstreams.insert(uid, upstream);
        Ok(uid)
    }

    /// The subscription's delivery task: frames from its queue to its sink, until either end goes.
    fn start_delivery(
        &self,
        tasks: &TaskTracker,
        id: Arc<str>,
        serial: u64,
        inlet: Inlet,
        sink: Arc<dyn FrameSink>,
        token: CancellationToken,
    ) {
        let inner = &self.inner;
        let weak = Arc::downgrade(inner);
        let batch = inner.config.batch;
        inner.tracker.spawn_on(
            tasks.track_future(async move {
                let delivered =
                    std::panic::AssertUnwindSafe(deliver_loop(inlet, sink, batch, token))
                        .catch_unwind()
                        .await;
                match delivered {
                    // The queue closed: the upstream ended and said so; nothing more will come.
                    Ok(Ok(())) => release(&weak, &id, Leave::going_away(Some(serial))),
                    // The receiver is gone (a closed webview) or its sink panicked: release what it held.
                    Ok(Err(SinkGone)) | Err(_) => {
                        release(&weak, &id, Leave::going_away(Some(serial)))
                    }
                }
            }),
            &inner.runtime,
        );
    }

    /// Sends a message; `Ok(true)` when it was queued for delivery after reconnect.
    pub async fn send(&self, id: &str, owner: &str, msg: Outgoing) -> Result<bool, Error> {
        self.send_as(id, owner, msg, None).await
    }

    /// Sends a message, POSTed (on SSE and poll connections, or a WebSocket that polls) with this
    /// `Content-Type` instead of the one its kind implies (text or bytes). A WebSocket frame has no content
    /// type: there it is ignored. On a POST connection the answer comes once the server took the message
    /// (`Ok(false)`), or failed it.
    pub async fn send_as(
        &self,
        id: &str,
        owner: &str,
        msg: Outgoing,
        content_type: Option<&str>,
    ) -> Result<bool, Error> {
        let content_type = content_type.map(parse_content_type).transpose()?;
        let (sends, limit) = {
            let reg = self.inner.lock();
            let up = owned_upstream(&reg, id, owner)?;
            (up.sends.clone(), up.max_message_size)
        };
        if msg.len() > limit {
            return Err(Error::MessageTooLarge {
                size: msg.len(),
                limit,
            });
        }
        let (reply, answer) = oneshot::channel();
        sends
            .send(Box::new(SendRequest {
                msg,
                content_type,
                reply,
            }))
            .await
            .map_err(|_| Error::Closed(id.to_owned()))?;
        answer.await.map_err(|_| Error::Closed(id.to_owned()))?
    }

    /// Sets a message that the upstream writes right after every open, before anything queued (a topic
    /// subscription, an auth handshake), under `key`: setting the key again replaces its data and keeps its
    /// place, in the order keys were first set. Keys are this subscription's own, and go when it leaves. When
    /// the stream is open, the message is written now as well; `Ok(true)` says so. WebSocket only.
    pub async fn set_on_connect(
        &self,
        id: &str,
        owner: &str,
        key: &str,
        msg: Outgoing,
    ) -> Result<bool, Error> {
        check_key(key)?;
        let limits = &self.inner.config.limits;
        let limits = OnConnectLimits {
            messages: limits.max_on_connect_messages,
            bytes: limits.max_on_connect_bytes,
        };
        let (reply, answer) = oneshot::channel();
        {
            let reg = self.inner.lock();
            let up = owned_upstream(&reg, id, owner)?;
            writes_on_connect(up.transport)?;
            if msg.len() > up.max_message_size {
                return Err(Error::MessageTooLarge {
                    size: msg.len(),
                    limit: up.max_message_size,
                });
            }
            up.ctl
                .send(Box::new(Control::SetOnConnect {
                    sub: id.into(),
                    key: key.to_owned(),
                    msg,
                    limits,
                    reply,
                }))
                .map_err(|_| Error::Closed(id.to_owned()))?;
        }
        answer.await.map_err(|_| Error::Closed(id.to_owned()))?
    }

    /// Removes this subscription's on-connect message `key`; `Ok(false)` when it had none. Nothing is sent
    /// for it: undoing a subscription on the server is the app's own message.
    pub async fn remove_on_connect(&self, id: &str, owner: &str, key: &str) -> Result<bool, Error> {
        check_key(key)?;
        let (reply, answer) = oneshot::channel();
        {
            let reg = self.inner.lock();
            let up = owned_upstream(&reg, id, owner)?;
            writes_on_connect(up.transport)?;
            up.ctl
                .send(Box::new(Control::RemoveOnConnect {
                    sub: id.into(),
                    key: key.to_owned(),
                    reply,
                }))
                .map_err(|_| Error::Closed(id.to_owned()))?;
        }
        answer.await.map_err(|_| Error::Closed(id.to_owned()))
    }

    /// The subscriber has processed `frames` frames in all: with an ack window, delivery may go on.
    pub fn ack(&self, id: &str, owner: &str, frames: u64) -> Result<(), Error> {
        let reg = self.inner.lock();
        let sub = reg
            .subs
            .get(id)
            .filter(|s| s.owner == owner)
            .ok_or_else(|| Error::UnknownConnection(id.to_owned()))?;
        if let Some(w) = &sub.window {
            w.ack(frames);
        }
        Ok(())
    }

    /// Ends this subscription; the upstream closes (with this code) once none is left and the linger passed.
    /// The subscription receives nothing more, not even the close.
    pub fn close(
        &self,
        id: &str,
        owner: &str,
        code: Option<u16>,
        reason: Option<String>,
    ) -> Result<(), Error> {
        self.leave(id, owner, code, reason, false)
    }

    /// Ends this subscription like [`Hub::close`], but when it is its upstream's last subscriber the upstream
    /// closes now (no linger) and the subscription first receives its last frames: the close handshake and
    /// the `disconnected` state. For Rust callers that want to see the end, such as a command-line client.
    pub fn end(
        &self,
        id: &str,
        owner: &str,
        code: Option<u16>,
        reason: Option<String>,
    ) -> Result<(), Error> {
        self.leave(id, owner, code, reason, true)
    }

    fn leave(
        &self,
        id: &str,
        owner: &str,
        code: Option<u16>,
        reason: Option<String>,
        drain: bool,
    ) -> Result<(), Error> {
        let code = code.unwrap_or(1000);
        check_close(code, reason.as_deref().unwrap_or(""))?;
        {
            let reg = self.inner.lock();
            owned_upstream(&reg, id, owner)?;
        }
        let reason = reason.unwrap_or_default();
        release(
            &Arc::downgrade(&self.inner),
            id,
            Leave {
                serial: None,
                code,
                reason: &reason,
                drain,
            },
        );
        Ok(())
    }

    /// Every live connection checks its link now, as after a wake the engine noticed itself: for an app that
    /// hears of a wake or a network change the engine cannot see (a mobile OS's resume, its own reachability
    /// API). A connected WebSocket sends its heartbeat at once and reconnects if the answer does not come in
    /// time; an SSE stream must show a byte within `pongTimeoutMs`; polling polls; one waiting to reconnect
    /// tries at once. Quiet for a healthy link. Calls closer together than 2 s are merged.
    pub fn check_links(&self, why: LinkCheck) {
        let _ = self.inner.link_checks.send(why);
    }

    /// A fresh attempt now, e.g. from `failed`, or to skip a backoff wait.
    pub fn reconnect(&self, id: &str, owner: &str) -> Result<(), Error> {
        let reg = self.inner.lock();
        let up = owned_upstream(&reg, id, owner)?;
        up.ctl
            .send(Box::new(Control::Reconnect))
            .map_err(|_| Error::Closed(id.to_owned()))
    }

    /// Subscriptions of `owner` (all owners when `None`), optionally only `id`.
    pub fn inspect(
        &self,
        owner: Option<&str>,
        id: Option<&str>,
    ) -> Result<Vec<ConnectionInfo>, Error> {
        let reg = self.inner.lock();
        if let Some(id) = id {
            match reg.subs.get(id) {
                Some(s) if owner.is_none_or(|o| o == s.owner) => {}
                _ => return Err(Error::UnknownConnection(id.to_owned())),
            }
        }
        let mut out = Vec::new();
        for (sid, sub) in &reg.subs {
            if owner.is_some_and(|o| o != sub.owner) || id.is_some_and(|i| i != &**sid) {
                continue;
            }
            let Some(up) = reg.upstreams.get(&sub.upstream) else {
                continue;
            };
            let status = up.stats.status().clone();
            let mut owners = BTreeMap::new();
            for s in &up.subs {
                if let Some(o) = reg.subs.get(s) {
                    *owners.entry(o.owner.clone()).or_insert(0) += 1;
                }
            }
            out.push(ConnectionInfo {
                id: sid.to_string(),
                url: up.url.clone(),
                transport: status.transport.unwrap_or(up.transport),
                state: status.state,
                attempt: status.attempt,
                frames_in: up.stats.frames_in.load(Ordering::Relaxed),
                frames_out: up.stats.frames_out.load(Ordering::Relaxed),
                bytes_in: up.stats.bytes_in.load(Ordering::Relaxed),
                bytes_out: up.stats.bytes_out.load(Ordering::Relaxed),
                queued: status.queued,
                queued_bytes: status.queued_bytes,
                last_error: status.last_error,
                last_event_id: status.last_event_id,
                protocol: status.protocol,
                subscribers: up.subs.len(),
                owners,
                joinable: up.key.is_some(),
                tasks: up.tasks.len(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Drops every subscription of `owner`: its webview was destroyed or reloaded.
    pub fn release_owner(&self, owner: &str) -> usize {
        let ids: Vec<Arc<str>> = {
            let reg = self.inner.lock();
            reg.subs
                .iter()
                .filter(|(_, s)| s.owner == owner)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let weak = Arc::downgrade(&self.inner);
        for id in &ids {
            release(&weak, id, Leave::going_away(None));
        }
        ids.len()
    }

    /// Owners that hold at least one subscription.
    pub fn owners(&self) -> Vec<String> {
        let reg = self.inner.lock();
        let mut owners: Vec<String> = reg.subs.values().map(|s| s.owner.clone()).collect();
        owners.sort();
        owners.dedup();
        owners
    }

    /// Upstream connections open now.
    pub fn upstream_count(&self) -> usize {
        self.inner.lock().upstreams.len()
    }

    /// Tasks alive now: connections, deliveries and lingers. Zero once everything is closed.
    pub fn live_tasks(&self) -> usize {
        self.inner.tracker.len()
    }

    /// Closes every upstream (WebSocket close 1001) and waits up to `grace` for the tasks to end.
    /// Returns whether they all ended in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.root.cancel();
        {
            let mut reg = self.inner.lock();
            reg.subs.clear();
            reg.by_key.clear();
            reg.upstreams.clear();
        }
        self.inner.tracker.close();
        tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_ok()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere must not take the whole engine down with a poisoned lock.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Longest `Content-Type` a send may give.
const MAX_CONTENT_TYPE: usize = 256;

/// A send's `Content-Type`, when HTTP can carry it: visible ASCII and spaces, nothing else.
fn parse_content_type(ct: &str) -> Result<http::HeaderValue, Error> {
    let fits = !ct.trim().is_empty()
        && ct.len() <= MAX_CONTENT_TYPE
        && ct.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    fits.then(|| http::HeaderValue::from_str(ct).ok())
        .flatten()
        .ok_or_else(|| Error::InvalidContentType(ct.chars().take(MAX_CONTENT_TYPE).collect()))
}

/// Checks a connect before anything is registered: its id, its options, and the scope of every URL it may
/// reach. Nothing here touches the registry.
/// The state of `sub`'s upstream when a connect for its id is the same request again: the same owner, the
/// same options and the same sharing. Anything else with a taken id is refused.
fn repeated(
    reg: &Registry,
    sub: &Sub,
    owner: &str,
    key: Option<&str>,
    resolved: &Resolved,
) -> Option<State> {
    let up = reg.upstreams.get(&sub.upstream)?;
    let same =
        sub.owner == owner && up.key.as_deref() == key && up.fingerprint == resolved.fingerprint;
    same.then(|| up.stats.status().state)
}

fn authorise(req: &ConnectRequest, config: &HubConfig) -> Result<Authorised, Error> {
    let id: Arc<str> = match &req.id {
        Some(id) if valid_id(id) => id.as_str().into(),
        Some(id) => return Err(Error::InvalidId(id.clone())),
        None => new_id().into(),
    };
    let mut resolved = req.options.resolve(&config.limits)?;
    if resolved.with_credentials {
        let jar = req.cookies.clone().ok_or_else(|| {
            Error::InvalidOptions(
                "`withCredentials: true` needs the caller's cookie store, and this caller has none (a connect \
                 from Rust or tap): leave it out and send a Cookie header from Rust instead"
                    .into(),
            )
        })?;
        resolved.cookies = Some(Cookies(jar));
    }
    let mut reaches = vec![resolved.url.clone()];
    reaches.extend(resolved.send_url.clone());
    if let Some(f) = &resolved.fallback {
        for u in [&f.poll_url, &f.send_url].into_iter().flatten() {
            reaches.push(url::Url::parse(u).map_err(|e| Error::InvalidOptions(e.to_string()))?);
        }
    }
    for u in &reaches {
        req.guard.check(u).map_err(Error::UrlNotAllowed)?;
    }
    // Identical options share within one owner (the components of a page, a reload within the linger);
    // across owners only by an explicit key, so no page silently reads or writes another's stream.
    let key = match &resolved.sharing {
        Sharing::Private => None,
        Sharing::Auto => Some(format!("auto\0{}\0{}", req.owner, resolved.fingerprint)),
        Sharing::Key(k) => Some(format!("key\0{k}")),
    };
    Ok(Authorised {
        id,
        resolved,
        reaches,
        key,
    })
}

/// How a subscription ends.
#[derive(Clone, Copy)]
struct Leave<'a> {
    /// Only the subscription with this serial (a delivery task ending), or whichever holds the id.
    serial: Option<u64>,
    /// The close code and reason, if this was the last subscriber.
    code: u16,
    reason: &'a str,
    /// The subscriber hears the upstream's last frames (its close and `disconnected`) before it ends, and the
    /// upstream closes now rather than after the linger.
    drain: bool,
}

impl Leave<'static> {
    /// A webview that went away, or a subscription whose upstream already ended.
    fn going_away(serial: Option<u64>) -> Self {
        Self {
            serial,
            code: 1001,
            reason: "going away",
            drain: false,
        }
    }
}

/// Removes a subscription; when its upstream has none left, closes it now or after the linger.
fn release(weak: &Weak<Inner>, id: &str, leave: Leave<'_>) {
    let Some(inner) = weak.upgrade() else { return };
    let mut reg = inner.lock();
    match reg.subs.get(id) {
        Some(s) if leave.serial.is_none_or(|n| n == s.serial) => {}
        _ => return,
    }
    let Some(sub) = reg.subs.remove(id) else {
        return;
    };
    let uid = sub.upstream;
    let Some(up) = reg.upstreams.get_mut(&uid) else {
        sub.token.cancel();
        return;
    };
    up.subs.remove(id);
    let last = up.subs.is_empty();
    if leave.drain && last {
        // Its queue stays open: the connection sends its last frames to it, then drops it.
        close_upstream(&mut reg, uid, leave.code, leave.reason);
        return;
    }
    sub.token.cancel();
    let _ = up.ctl.send(Box::new(Control::Unsubscribe(id.into())));
    if !last {
        return;
    }
    let linger = inner.config.linger;
    if linger.is_zero() || up.key.is_none() {
        close_upstream(&mut reg, uid, leave.code, leave.reason);
        return;
    }
    let token = inner.root.child_token();
    let order = reg.next();
    let reason = leave.reason.to_owned();
    if let Some(up) = reg.upstreams.get_mut(&uid) {
        up.linger = Some(Lingering {
            order,
            token: token.clone(),
            code: leave.code,
            reason: reason.clone(),
        });
    }
    let weak = weak.clone();
    let code = leave.code;
    inner.tracker.spawn_on(
        async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(linger) => {
                    let Some(inner) = weak.upgrade() else { return };
                    let mut reg = inner.lock();
                    // Still nobody, and still the same linger (not re-joined and left again).
                    let still = reg.upstreams.get(&uid).is_some_and(|u| {
                        u.subs.is_empty() && u.linger.as_ref().is_some_and(|l| l.order == order)
                    });
                    if still {
                        close_upstream(&mut reg, uid, code, &reason);
                    }
                }
            }
        },
        &inner.runtime,
    );
}

/// The task of upstream `uid` has ended: whatever the reason, the hub no longer offers it to joiners.
fn forget_upstream(weak: &Weak<Inner>, uid: u64) {
    if let Some(inner) = weak.upgrade() {
        drop_upstream(&mut inner.lock(), uid);
    }
}

/// On-connect messages are written on the WebSocket; SSE and polling have no socket to write them on.
fn writes_on_connect(transport: Transport) -> Result<(), Error> {
    match transport {
        Transport::Websocket => Ok(()),
        Transport::Sse => Err(Error::OnConnectNotWritable("server-sent events")),
        Transport::Poll => Err(Error::OnConnectNotWritable("by polling")),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh random subscription id (128 bits, hex): unguessable by other webviews.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for (id, ok) in [
            ("a", true),
            ("A-b_9", true),
            ("", false),
            ("a b", false),
            ("ü", false),
        ] {
            assert_eq!(valid_id(id), ok, "expected {ok} for {id:?}");
        }
        assert!(valid_id(&"x".repeat(64)) && !valid_id(&"x".repeat(65)));
        assert!(valid_id(&new_id()));
    }
}
