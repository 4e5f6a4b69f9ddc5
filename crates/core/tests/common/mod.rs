//! The engine's test kit, shared with the plugin's tests (`tests/common` includes this file): a hub for tests,
//! one way to subscribe, and one recorder of the frames a subscription receives. The servers, the raw-TCP
//! helpers and the waits that know nothing of the engine come from the workspace's `realtime-testkit`.
#![allow(dead_code, unused_imports)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tauri_plugin_realtime_core::{
    AllowAll, ChannelSink, ConnectOptions, ConnectRequest, Connected, CookieJar, Error,
    FallbackOptions, Frame, FrameSink, Hub, HubConfig, ProxySetting, Share, State, Toggle,
    Transport, UrlGuard,
};
use tokio::{
    sync::mpsc,
    time::{timeout_at, Instant},
};

pub use realtime_testkit::{
    closed_port,
    count::{CountingServer, Kind},
    raw::{
        self, answer_sse, bind, chunk, deaf_ws, drip_server, flood, header_of, raw_server,
        read_head, say_sse, say_ws, silent, until_closed, RawServer, SSE_HEAD, SSE_HEAD_CHUNKED,
    },
    serve, sse, wait_until, Seen, WAIT,
};

/// The owner of every subscription that does not name its own.
pub const OWNER: &str = "test";

pub fn hub() -> Hub {
    hub_with(HubConfig {
        linger: Duration::ZERO,
        ..Default::default()
    })
}

/// A hub for tests: `config`, but with the floor on intervals lowered to 10 ms, so that reconnects, polls
/// and heartbeats can be watched in a fraction of a second (the floor itself has tests of its own), and
/// without a proxy unless the test names one.
pub fn hub_with(mut config: HubConfig) -> Hub {
    config.limits.min_interval_ms = config.limits.min_interval_ms.min(10);
    // Every test talks to loopback: a proxy from the machine's environment must not decide one.
    if config.proxy.proxy == ProxySetting::System {
        config.proxy.proxy = ProxySetting::None;
    }
    Hub::new(config, tokio::runtime::Handle::current()).expect("hub")
}

/// Waits until the hub has no live task.
pub async fn all_tasks_end(hub: &Hub) {
    wait_until("every task of the hub to end", || hub.live_tasks() == 0).await;
}

pub fn opts(url: impl Into<String>) -> ConnectOptions {
    ConnectOptions {
        url: url.into(),
        ..Default::default()
    }
}

/// Private upstream, no reconnect: one attempt only.
pub fn once(url: impl Into<String>) -> ConnectOptions {
    ConnectOptions {
        reconnect: Some(Toggle::Enabled(false)),
        share: Some(Share::Enabled(false)),
        ..opts(url)
    }
}

/// What a WebSocket test server saw: the entries its handler records (`"<session>:<text>"`), and how many
/// sessions it opened.
#[derive(Clone, Default)]
pub struct Sessions {
    pub seen: Seen,
    pub sessions: Arc<AtomicUsize>,
}

impl Sessions {
    /// Counts a new session; gives its number, from 1.
    pub fn open(&self) -> usize {
        self.sessions.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// `options`, polling its URL every 50 ms, with sends POSTed to `send_url`.
pub fn polling(send_url: String, options: ConnectOptions) -> ConnectOptions {
    ConnectOptions {
        transport: Some(Transport::Poll),
        send_url: Some(send_url),
        fallback: Some(Toggle::With(FallbackOptions {
            interval_ms: 50,
            ..Default::default()
        })),
        ..options
    }
}

// ---------------------------------------------------------------------------------------------------------
// Subscribing.

/// Subscribes as [`OWNER`], with every URL allowed; panics if the hub refuses.
pub fn connect(hub: &Hub, options: ConnectOptions) -> (String, Frames) {
    try_connect(hub, options).expect("connect")
}

pub fn try_connect(hub: &Hub, options: ConnectOptions) -> Result<(String, Frames), Error> {
    subscribe(hub, None, options, OWNER, Arc::new(AllowAll))
}

/// A subscription with the id, owner and scope of the test's choosing: the one way every test subscribes.
pub fn subscribe(
    hub: &Hub,
    id: Option<&str>,
    options: ConnectOptions,
    owner: &str,
    guard: Arc<dyn UrlGuard>,
) -> Result<(String, Frames), Error> {
    open(hub, |sink| ConnectRequest {
        id: id.map(str::to_owned),
        options,
        owner: owner.into(),
        sink,
        guard,
        cookies: None,
    })
}

/// [`subscribe`] as `owner` with every URL allowed, and the owner's cookie jar for `withCredentials`.
pub fn subscribe_with_cookies(
    hub: &Hub,
    options: ConnectOptions,
    owner: &str,
    jar: Arc<dyn CookieJar>,
) -> Result<(String, Frames), Error> {
    open(hub, |sink| ConnectRequest {
        id: None,
        options,
        owner: owner.into(),
        sink,
        guard: Arc::new(AllowAll),
        cookies: Some(jar),
    })
}

/// Makes the request with a sink that feeds the [`Frames`] it gives.
fn open(
    hub: &Hub,
    request: impl FnOnce(Arc<dyn FrameSink>) -> ConnectRequest,
) -> Result<(String, Frames), Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    let request = request(Arc::new(ChannelSink(tx)));
    let owner = request.owner.clone();
    let connected = hub.connect(request)?;
    let frames = Frames {
        id: connected.id.clone(),
        owner,
        connected,
        rx,
        seen: Vec::new(),
        at: Vec::new(),
        batches: 0,
    };
    Ok((frames.id.clone(), frames))
}

// ---------------------------------------------------------------------------------------------------------
// The recorder.

/// One subscription as a test sees it: the hub's answer to the connect, and every frame delivered since,
/// flattened from its batches.
pub struct Frames {
    pub id: String,
    pub owner: String,
    /// What `connect` answered.
    pub connected: Connected,
    rx: mpsc::UnboundedReceiver<Vec<Arc<Frame>>>,
    /// Every frame read so far, in order.
    pub seen: Vec<Frame>,
    /// When each frame of `seen` was read (its batch's arrival), on tokio's clock.
    pub at: Vec<Instant>,
    /// Batches read so far.
    pub batches: usize,
}

impl Frames {
    fn record(&mut self, batch: Vec<Arc<Frame>>) {
        let now = Instant::now();
        self.batches += 1;
        for f in batch {
            self.seen.push((*f).clone());
            self.at.push(now);
        }
    }

    /// Waits until a frame matches `pred` (frames seen before count too), within [`WAIT`], and returns it.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        self.nth(what, 1, pred).await
    }

    /// Waits for the `n`-th frame (from 1) that matches `pred`, within [`WAIT`].
    pub async fn nth(&mut self, what: &str, n: usize, pred: impl Fn(&Frame) -> bool) -> Frame {
        self.nth_by(what, n, Instant::now() + WAIT, pred).await
    }

    /// Waits for the `n`-th frame (from 1) that matches `pred`, until `deadline`: for a paused clock, where
    /// what takes minutes passes at once.
    pub async fn nth_by(
        &mut self,
        what: &str,
        n: usize,
        deadline: Instant,
        pred: impl Fn(&Frame) -> bool,
    ) -> Frame {
        loop {
            if let Some(f) = self.seen.iter().filter(|f| pred(f)).nth(n - 1) {
                return f.clone();
            }
            match timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(batch)) => self.record(batch),
                Ok(None) => panic!(
                    "{}: expected {what}, got the end of the stream after {:#?}",
                    self.id, self.seen
                ),
                Err(_) => panic!("{}: expected {what} in time, got {:#?}", self.id, self.seen),
            }
        }
    }

    pub async fn state(&mut self, state: State) -> Frame {
        self.until(&format!("state {state:?}"), |f| is_state(f, state))
            .await
    }

    /// The first state frame in one of `states`.
    pub async fn settled(&mut self, states: &[State]) -> Frame {
        self.until(&format!("a state in {states:?}"), |f| {
            state_of(f).is_some_and(|s| states.contains(&s))
        })
        .await
    }

    /// The first message frame whose data is `text`.
    pub async fn message(&mut self, text: &str) -> Frame {
        self.until(
            &format!("message {text:?}"),
            |f| matches!(f, Frame::Message { data, .. } if data == text),
        )
        .await
    }

    /// The very first frame delivered.
    pub async fn first(&mut self) -> Frame {
        self.until("a first frame", |_| true).await;
        self.seen[0].clone()
    }

    /// Waits for the end of the subscription's frames (the engine dropped its sink), within [`WAIT`].
    pub async fn until_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            match timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(batch)) => self.record(batch),
                Ok(None) => return,
                Err(_) => panic!(
                    "{}: expected the frames to end within {WAIT:?}, got {:#?}",
                    self.id, self.seen
                ),
            }
        }
    }

    /// Takes in what has been delivered by now, without waiting.
    pub fn drain(&mut self) {
        while let Ok(batch) = self.rx.try_recv() {
            self.record(batch);
        }
    }

    /// Forgets the frames seen so far that match `pred`, so that a later wait looks for new ones.
    pub fn forget(&mut self, pred: impl Fn(&Frame) -> bool) {
        let (seen, at) = std::mem::take(&mut self.seen)
            .into_iter()
            .zip(std::mem::take(&mut self.at))
            .filter(|(f, _)| !pred(f))
            .unzip();
        self.seen = seen;
        self.at = at;
    }

    /// Whether a state frame of `state` was seen.
    pub fn reached(&self, state: State) -> bool {
        self.seen.iter().any(|f| is_state(f, state))
    }

    /// When the `n`-th frame (from 1) matching `pred` was read.
    pub fn time_of(&self, n: usize, pred: impl Fn(&Frame) -> bool) -> Instant {
        self.seen
            .iter()
            .zip(&self.at)
            .filter(|(f, _)| pred(f))
            .nth(n - 1)
            .map(|(_, t)| *t)
            .expect("a frame seen before")
    }

    /// Error frames seen so far: (message, fatal).
    pub fn errors(&self) -> Vec<(String, bool)> {
        self.seen
            .iter()
            .filter_map(|f| match f {
                Frame::Error { message, fatal, .. } => Some((message.clone(), *fatal)),
                _ => None,
            })
            .collect()
    }

    /// Message frames seen so far: (event, data, lastEventId).
    pub fn messages(&self) -> Vec<(Option<String>, String, Option<String>)> {
        self.seen
            .iter()
            .filter_map(|f| match f {
                Frame::Message {
                    event,
                    data,
                    last_event_id,
                    ..
                } => Some((event.clone(), data.clone(), last_event_id.clone())),
                _ => None,
            })
            .collect()
    }

    /// Message frames seen so far: (seq, data).
    pub fn numbered_messages(&self) -> Vec<(u64, String)> {
        self.seen
            .iter()
            .filter_map(|f| match f {
                Frame::Message { seq, data, .. } => Some((*seq, data.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn message_count(&self) -> usize {
        self.seen
            .iter()
            .filter(|f| matches!(f, Frame::Message { .. }))
            .count()
    }

    /// Every state frame as (state, attempt, delayMs).
    pub fn states(&self) -> Vec<(State, Option<u32>, Option<u64>)> {
        self.seen
            .iter()
            .filter_map(|f| match f {
                Frame::State {
                    state,
                    attempt,
                    delay_ms,
                    ..
                } => Some((*state, *attempt, *delay_ms)),
                _ => None,
            })
            .collect()
    }

    /// Every `reconnecting` frame as (attempt, delayMs).
    pub fn retries(&self) -> Vec<(Option<u32>, Option<u64>)> {
        self.states()
            .into_iter()
            .filter(|(s, ..)| *s == State::Reconnecting)
            .map(|(_, attempt, delay)| (attempt, delay))
            .collect()
    }

    /// How many state frames of `state` were seen.
    pub fn count(&self, state: State) -> usize {
        self.seen.iter().filter(|f| is_state(f, state)).count()
    }

    pub fn last_state(&self) -> Option<Frame> {
        self.seen
            .iter()
            .rev()
            .find(|f| matches!(f, Frame::State { .. }))
            .cloned()
    }

    /// Every seq from 1 up, with no gap and no repeat.
    pub fn assert_contiguous(&self) {
        let seqs: Vec<u64> = self.seen.iter().map(Frame::seq).collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, want, "expected contiguous seq from 1, got {seqs:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Reading frames.

pub fn state_of(f: &Frame) -> Option<State> {
    match f {
        Frame::State { state, .. } => Some(*state),
        _ => None,
    }
}

pub fn is_state(f: &Frame, want: State) -> bool {
    state_of(f) == Some(want)
}

/// A state frame's reason or an error frame's message; empty for anything else.
pub fn reason(f: &Frame) -> String {
    match f {
        Frame::State { reason, .. } => reason.clone().unwrap_or_default(),
        Frame::Error { message, .. } => message.clone(),
        _ => String::new(),
    }
}
