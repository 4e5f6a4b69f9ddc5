//! The upstreams: one module per transport, each owning both its opening and its pumping, behind one small
//! interface ([`Upstream`]): [`Upstream::next`] for what happened next (a message, a finished write, the end),
//! [`Upstream::write`] for a message to the server, [`Upstream::close`]. The connection task drives an upstream
//! and never speaks WebSocket, SSE or HTTP itself; an upstream never numbers a frame, decides on a reconnect
//! or talks to a subscriber.
//!
//! `request.rs` holds what every request shares (the client, headers, classification of failures, `Retry-After`).

mod clients;
mod poll;
mod post;
pub(crate) mod request;
mod sse;
mod ws;

use std::{sync::Arc, time::Duration};

pub(crate) use self::poll::PollUpstream;
pub(crate) use self::post::{PostFailed, Poster};
pub(crate) use self::request::{last_event_id_header, Env, Notes};
pub(crate) use self::ws::check_close;
use crate::{
    frame::{FrameBody, Transport},
    options::Resolved,
    policy::Ended,
    queue::Outgoing,
};

/// Why one attempt to open (or keep) a stream failed, classified for the reconnect policy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttemptError {
    /// Transient (network error, timeout, 408, 429, 5xx): retry with backoff, at least `retry_after`.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server plainly cannot stream (upgrade refused, SSE with another content type): fall back to
    /// polling when a poll URL is set, else fail.
    NoStream { reason: String },
    /// Retrying cannot help (4xx, scope denial, bad certificate): `failed`.
    Fatal { reason: String },
    /// The server asked us to stop (SSE 204): `disconnected`.
    Stop { reason: String },
}

impl AttemptError {
    pub(crate) fn reason(&self) -> &str {
        match self {
            AttemptError::Retry { reason, .. }
            | AttemptError::NoStream { reason }
            | AttemptError::Fatal { reason }
            | AttemptError::Stop { reason } => reason,
        }
    }
}

/// Is this URL allowed? The Tauri layer answers with its scope; each redirect hop is asked.
pub trait UrlGuard: Send + Sync + 'static {
    fn check(&self, url: &url::Url) -> Result<(), String>;
}

/// A guard that allows everything: for Rust callers that chose their URLs themselves.
pub struct AllowAll;

impl UrlGuard for AllowAll {
    fn check(&self, _url: &url::Url) -> Result<(), String> {
        Ok(())
    }
}

/// Headers that the app's Rust code attaches to requests for some URLs (a bearer token from the OS keychain,
/// say). JavaScript never sees them, and they replace any header of the same name it asked for.
pub trait HeaderSource: Send + Sync + 'static {
    fn headers_for(&self, url: &url::Url) -> Vec<(http::HeaderName, http::HeaderValue)>;
}

/// What an upstream reports.
#[derive(Debug, PartialEq)]
pub(crate) enum Event {
    /// A message from the server, and its size on the wire.
    Message(FrameBody, usize),
    /// Messages from one read, in order, with the resume point and reconnection time they leave (SSE, polls).
    Received(Received),
    /// The message given to [`Upstream::write`] was written (`Ok`), or was not and may not have arrived (`Err`,
    /// saying why). Either way the upstream can take the next one.
    Written(Result<(), String>),
    /// A heartbeat's own write finished: the upstream can take a message again. Sends held back while it was
    /// being written go now, rather than after whatever the server sends next (a held-back reply is nothing).
    Writable,
    /// The message given to [`PollUpstream::write`] was POSTed (`Ok`), or was not, saying which and why.
    Posted(Result<(), PostFailed>),
    /// Something went wrong that the upstream got over by itself (a failed poll): worth a non-fatal `error`.
    Trouble(String),
    /// The upstream has ended; it reports nothing more.
    Ended(Ended),
}

/// What one read of an event stream or one poll brought.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Received {
    pub messages: Vec<FrameBody>,
    /// The SSE last event id after these messages, when it changed.
    pub resume: Option<String>,
    /// A reconnection time the server set with `retry:`, in ms.
    pub retry: Option<u64>,
    /// Bytes read from the network for these.
    pub bytes: usize,
}

/// Whether an upstream can write a message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writable {
    /// Yes: nothing is being written.
    Now,
    /// After the message being written: the next one waits (in the sends channel, or in the queue).
    Busy,
    /// Not at all: a stream that only reads, with no `sendUrl`.
    Never,
}

/// An open stream. Polling, the degraded path, is an upstream of its own ([`PollUpstream`]), which the
/// connection drives beside its probes for the stream.
pub(crate) enum Upstream {
    // Boxed: both are large, and this enum is moved around.
    Ws(Box<ws::WsUpstream<ws::Socket>>),
    Sse(Box<sse::SseUpstream>),
}

impl Upstream {
    /// What happened next. Cancel-safe: everything in flight is kept in the upstream, so dropping this
    /// future loses nothing, and the connection can `select!` on it beside its controls.
    pub(crate) async fn next(&mut self) -> Event {
        match self {
            Upstream::Ws(ws) => ws.next().await,
            Upstream::Sse(sse) => sse.next().await,
        }
    }

    pub(crate) fn writable(&self) -> Writable {
        match self {
            Upstream::Ws(ws) => ws.writable(),
            Upstream::Sse(_) => Writable::Never,
        }
    }

    /// Starts writing `msg`; only when [`Upstream::writable`] says `Now`. [`Event::Written`] tells the end.
    pub(crate) fn write(&mut self, msg: Outgoing) {
        match self {
            Upstream::Ws(ws) => ws.write(msg),
            Upstream::Sse(_) => {}
        }
    }

    /// Ends the upstream: a WebSocket close handshake (each step bounded by `grace`), returning the code and
    /// reason the server echoed; the others simply stop.
    pub(crate) async fn close(
        &mut self,
        code: u16,
        reason: &str,
        grace: Duration,
    ) -> Option<(u16, String)> {
        match self {
            Upstream::Ws(ws) => ws.close(code, reason, grace).await,
            Upstream::Sse(_) => None,
        }
    }

    /// Checks the link now, out of turn, after a wake or a network change; `why` is said if it is dead. Quiet
    /// when the link is healthy; a dead one ends as a drop, as a heartbeat would find it.
    pub(crate) fn check(&mut self, why: &'static str) {
        match self {
            Upstream::Ws(ws) => ws.check(why),
            Upstream::Sse(sse) => sse.check(why),
        }
    }

    /// The transport this upstream delivers by.
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Upstream::Ws(_) => Transport::Websocket,
            Upstream::Sse(_) => Transport::Sse,
        }
    }

    /// The WebSocket subprotocol the server chose.
    pub(crate) fn protocol(&self) -> Option<String> {
        match self {
            Upstream::Ws(ws) => ws.protocol().map(str::to_owned),
            Upstream::Sse(_) => None,
        }
    }
}

/// Opens the stream the options ask for (WebSocket or SSE), within `connectTimeoutMs`: a future that owns
/// what it needs, so that the connection can await it beside its own work. `resume` is the SSE last event id.
pub(crate) async fn open(
    opts: Arc<Resolved>,
    env: Arc<Env>,
    guard: Arc<dyn UrlGuard>,
    notes: Arc<Notes>,
    resume: String,
) -> Result<Upstream, AttemptError> {
    let limit = opts.connect_timeout;
    let until = crate::time::deadline(limit);
    let opening = async {
        match opts.transport {
            Transport::Websocket => ws::open(&opts, &env, &notes)
                .await
                .map(|ws| Upstream::Ws(Box::new(ws))),
            Transport::Sse | Transport::Poll => {
                sse::open(&opts, &env, &resume, guard.as_ref(), &notes, until)
                    .await
                    .map(|sse| Upstream::Sse(Box::new(sse)))
            }
        }
    };
    tokio::time::timeout(limit, opening)
        .await
        .unwrap_or_else(|_| {
            Err(AttemptError::Retry {
                reason: format!(
                    "timed out after {} ms opening the stream",
                    limit.as_millis()
                ),
                retry_after: None,
            })
        })
}
