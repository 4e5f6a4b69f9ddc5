//! The streaming engine of `tauri-plugin-realtime`, without Tauri. It opens WebSocket and Server-Sent Events
//! streams, numbers every frame, reconnects by policy, degrades to HTTP polling, queues what the app sends
//! while down, and lets identical subscriptions share one upstream. It delivers frames to a [`FrameSink`], so
//! it runs and is tested without a webview.
//!
//! The front door is [`Hub`]: [`Hub::connect`] with a [`ConnectRequest`] (its [`ConnectOptions`], a
//! [`FrameSink`] and a [`UrlGuard`]), then `send`, `close`, `reconnect` and `inspect` by subscription id.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tauri_plugin_realtime_core::Error> {
//! use std::sync::Arc;
//! use tauri_plugin_realtime_core::{AllowAll, ChannelSink, ConnectOptions, ConnectRequest, Hub, HubConfig};
//!
//! let hub = Hub::new(HubConfig::default(), tokio::runtime::Handle::current())?;
//! let (tx, mut frames) = tokio::sync::mpsc::unbounded_channel();
//! let connected = hub.connect(ConnectRequest {
//!     id: None,
//!     options: ConnectOptions { url: "wss://chat.example.com/room/1".into(), ..Default::default() },
//!     owner: "me".into(),
//!     sink: Arc::new(ChannelSink(tx)),
//!     guard: Arc::new(AllowAll),
//!     cookies: None,
//! })?;
//! while let Some(batch) = frames.recv().await {
//!     for frame in batch {
//!         println!("{}", serde_json::to_string(&*frame).unwrap_or_default());
//!     }
//! }
//! # Ok(()) }
//! ```

mod backoff;
mod connection;
mod cookies;
mod error;
mod fanout;
mod frame;
mod hub;
mod on_connect;
mod options;
mod outbox;
mod policy;
mod proxy;
mod queue;
mod sink;
mod sse;
mod time;
mod tls;
mod transport;
mod wake;
pub mod wire;

pub use cookies::{CookieJar, COOKIE_WAIT, MAX_COOKIE_HEADER};
pub use error::Error;
pub use frame::{Frame, State, Transport};
pub use hub::{new_id, ConnectRequest, Connected, ConnectionInfo, Hub, HubConfig, SecretHeaders};
pub use on_connect::MAX_ON_CONNECT_KEY;
pub use options::{
    ConnectOptions, FallbackOptions, HeartbeatOptions, Limits, QueueOptions, ReconnectOptions,
    Share, Toggle, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_MESSAGE_SIZE, MAX_HEARTBEAT_TEXT,
    MAX_SHARE_KEY, MIN_INTERVAL_MS,
};
pub use proxy::{ProxyConfig, ProxySetting};
pub use queue::Outgoing;
pub use sink::{
    AckWindow, BatchLimits, ChannelSink, FrameSink, SinkGone, MAX_ACK_BYTES, MAX_ACK_FRAMES,
};
pub use time::MAX_SERVER_DELAY;
pub use tls::{pem_certificates, ClientIdentity, TlsConfig, UrlMatcher};
pub use transport::{AllowAll, HeaderSource, UrlGuard};
pub use wake::LinkCheck;

/// What the engine's own tests and benchmarks need beyond the public API. Not part of it: it may change in
/// any release.
#[doc(hidden)]
pub mod testing {
    pub use crate::options::{is_forbidden_header, Resolved, Sharing};
    pub use crate::sse::{SseError, SseEvent, SseParser};
    pub use crate::wake::{Clocks, Reading, SystemClocks};

    /// A hub whose wake detection reads `clocks` and takes address events (`(true, addr)`: it came,
    /// `(false, addr)`: it went) from `addresses` instead of the machine's.
    pub fn hub_with_wake_sources(
        config: crate::HubConfig,
        runtime: tokio::runtime::Handle,
        clocks: std::sync::Arc<dyn Clocks>,
        addresses: tokio::sync::mpsc::UnboundedReceiver<(bool, std::net::IpAddr)>,
    ) -> Result<crate::Hub, crate::Error> {
        use futures_util::StreamExt;
        let events = futures_util::stream::unfold(addresses, |mut rx| async move {
            rx.recv().await.map(|e| (Ok(e), rx))
        })
        .boxed();
        let sources = crate::wake::Sources {
            clocks: Some(clocks),
            network: Some(Some(events)),
        };
        crate::Hub::with_wake_sources(config, runtime, sources)
    }
}
