//! Shared pieces of the integration tests: a hub with a channel sink, and real servers on 127.0.0.1:0.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tauri_plugin_realtime_core::{
    AllowAll, ChannelSink, ConnectOptions, ConnectRequest, Frame, Hub, HubConfig, State, UrlGuard,
};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);

pub fn hub() -> Hub {
    hub_with(HubConfig {
        linger: Duration::ZERO,
        ..Default::default()
    })
}

/// A hub for tests: `config`, but with the floor on intervals lowered to 10 ms, so that reconnects, polls
/// and heartbeats can be watched in a fraction of a second (the floor itself has tests of its own).
pub fn hub_with(mut config: HubConfig) -> Hub {
    config.limits.min_interval_ms = config.limits.min_interval_ms.min(10);
    Hub::new(config, tokio::runtime::Handle::current()).expect("hub")
}

/// The frames one subscription receives, flattened from its batches.
pub struct Frames {
    rx: mpsc::UnboundedReceiver<Vec<Arc<Frame>>>,
    pub seen: Vec<Frame>,
    pub batches: usize,
}

impl Frames {
    pub fn new(rx: mpsc::UnboundedReceiver<Vec<Arc<Frame>>>) -> Self {
        Self {
            rx,
            seen: Vec::new(),
            batches: 0,
        }
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

    /// Waits for the end of the subscription's frames (the engine dropped it), within [`WAIT`].
    pub async fn until_closed(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(batch)) => self.seen.extend(batch.iter().map(|f| (**f).clone())),
                Ok(None) => return,
                Err(_) => panic!(
                    "expected the frames to end within {WAIT:?}, got {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits until a frame matches `pred`, returning it; every frame is kept in `seen`.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        let deadline = tokio::time::Instant::now() + WAIT;
        if let Some(f) = self.seen.iter().find(|f| pred(f)) {
            return f.clone();
        }
        loop {
            let batch = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(b)) => b,
                Ok(None) => panic!(
                    "expected {what}, got the end of the stream after {:#?}",
                    self.seen
                ),
                Err(_) => panic!("expected {what} within {WAIT:?}, got {:#?}", self.seen),
            };
            self.batches += 1;
            let mut hit = None;
            for f in batch {
                let f = (*f).clone();
                if hit.is_none() && pred(&f) {
                    hit = Some(f.clone());
                }
                self.seen.push(f);
            }
            if let Some(h) = hit {
                return h;
            }
        }
    }

    pub async fn state(&mut self, state: State) -> Frame {
        self.until(
            &format!("state {state:?}"),
            |f| matches!(f, Frame::State { state: s, .. } if *s == state),
        )
        .await
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

    /// Every seq from 1 up, with no gap and no repeat.
    pub fn assert_contiguous(&self) {
        let seqs: Vec<u64> = self.seen.iter().map(Frame::seq).collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, want, "expected contiguous seq from 1, got {seqs:?}");
    }
}

pub fn connect(hub: &Hub, options: ConnectOptions) -> (String, Frames) {
    try_connect(hub, options).expect("connect")
}

pub fn try_connect(
    hub: &Hub,
    options: ConnectOptions,
) -> Result<(String, Frames), tauri_plugin_realtime_core::Error> {
    subscribe(hub, None, options, "test", Arc::new(AllowAll))
}

/// A subscription with the id, owner and scope of the test's choosing.
pub fn subscribe(
    hub: &Hub,
    id: Option<&str>,
    options: ConnectOptions,
    owner: &str,
    guard: Arc<dyn UrlGuard>,
) -> Result<(String, Frames), tauri_plugin_realtime_core::Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    let connected = hub.connect(ConnectRequest {
        id: id.map(str::to_owned),
        options,
        owner: owner.into(),
        sink: Arc::new(ChannelSink(tx)),
        guard,
    })?;
    Ok((connected.id, Frames::new(rx)))
}

pub fn opts(url: impl Into<String>) -> ConnectOptions {
    ConnectOptions {
        url: url.into(),
        ..Default::default()
    }
}

/// Observations a test server records for the test to assert on.
#[derive(Default, Clone)]
pub struct Seen(pub Arc<Mutex<Vec<String>>>);

impl Seen {
    pub fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(s) = self.all().into_iter().find(|s| pred(s)) {
                return s;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("expected the server to see {what}, got {:?}", self.all());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Serves `app` on 127.0.0.1:0 until the test ends.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A port on 127.0.0.1 with nothing listening.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `cond` every 10 ms until it holds, or panics after [`WAIT`].
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {what} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
