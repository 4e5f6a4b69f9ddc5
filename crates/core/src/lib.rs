//! The streaming engine. It opens WebSocket and SSE streams, numbers every frame, reconnects by policy,
//! queues what the app sends while down, and lets identical subscriptions share one upstream.
//!
//! It does not depend on Tauri: it delivers frames to a [`sink::FrameSink`] and is tested without a webview.

pub mod backoff;
pub(crate) mod connection;
pub mod error;
pub mod frame;
pub mod hub;
pub mod options;
pub mod policy;
pub mod queue;
pub mod sink;
pub mod sse;
pub mod time;
pub mod tls;
pub mod transport;
pub mod wire;

pub use error::Error;
pub use frame::{Frame, State, Transport};
pub use hub::{ConnectRequest, Connected, ConnectionInfo, Hub, HubConfig, SecretHeaders};
pub use options::{ConnectOptions, Limits};
pub use queue::Outgoing;
pub use sink::{AckWindow, BatchLimits, ChannelSink, FrameSink, SinkGone};
pub use tls::TlsConfig;
pub use transport::{AllowAll, HeaderSource, UrlGuard};
