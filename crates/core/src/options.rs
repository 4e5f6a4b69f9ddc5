//! Connection options as the app gives them (`ConnectOptions`, camelCase JSON) and their validated form.
//!
//! Every default is stated on its field; README and `guest-js/types.ts` state the same numbers.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use super::{cookies::Cookies, error::Error, frame::Transport};

/// What the app asks for. Unknown fields are refused so that a typo is an error, not a silent default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectOptions {
    /// `ws://`, `wss://`, `http://` or `https://`.
    pub url: String,
    /// Default: `websocket` for ws(s) URLs, `sse` for http(s) URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// Request headers, sent on every attempt. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// WebSocket subprotocols (`Sec-WebSocket-Protocol`). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
    /// SSE request method. Default: `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// SSE request body, re-sent on every reconnect. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// SSE `Last-Event-ID` for the first request. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<String>,
    /// URL (http or https) that `send()` POSTs each message to, one at a time, in order, with the connection's
    /// headers: on SSE and poll connections always, on a WebSocket while it polls (`fallback.sendUrl` wins
    /// there when both are set). Default: none (`send()` on SSE and poll connections is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_url: Option<String>,
    /// Reconnect policy, or `false` for none. Default: on, see [`ReconnectOptions`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<Toggle<ReconnectOptions>>,
    /// Liveness checks, or `false` for none. Default: on, see [`HeartbeatOptions`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Toggle<HeartbeatOptions>>,
    /// Outbound queue limits while not connected. Default: see [`QueueOptions`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueOptions>,
    /// Polling fallback, or `false`. Default: off until a `pollUrl` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Toggle<FallbackOptions>>,
    /// `true` (default): identical options share one upstream. `false`: a private upstream.
    /// A string: share with every subscription that names the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<Share>,
    /// Largest message accepted from the server, in bytes (a WebSocket message, an SSE event or line).
    /// Default: 16 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
    /// Time allowed to open the stream (TCP, TLS, upgrade or response headers), in ms. Default: 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Send the caller's cookies for each request's URL (upgrade, stream and every redirect hop, poll, send)
    /// and store every response's `Set-Cookie` back, as `EventSource`'s option of that name does. Needs a
    /// caller with a cookie store ([`ConnectRequest::cookies`](crate::ConnectRequest::cookies): the webview,
    /// in the plugin). Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_credentials: bool,
}

/// `false`, `true` (the defaults) or an object of settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Toggle<T> {
    Enabled(bool),
    With(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Hand-written so that a bad field inside the object is reported as such, rather than as
        // serde's untagged "did not match any variant".
        let value = serde_json::Value::deserialize(d)?;
        match value {
            serde_json::Value::Bool(b) => Ok(Toggle::Enabled(b)),
            v @ serde_json::Value::Object(_) => T::deserialize(v)
                .map(Toggle::With)
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected true, false or an object, got {other}"
            ))),
        }
    }
}

impl<T: Default + Clone> Toggle<T> {
    fn resolve(this: &Option<Toggle<T>>, default_on: bool) -> Option<T> {
        match this {
            None => default_on.then(T::default),
            Some(Toggle::Enabled(true)) => Some(T::default()),
            Some(Toggle::Enabled(false)) => None,
            Some(Toggle::With(t)) => Some(t.clone()),
        }
    }
}

/// `true`/`false`, or a share key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Share {
    Enabled(bool),
    Key(String),
}

/// Exponential backoff: delay = min(initial x multiplier^(n-1), max), shortened by up to `jitter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReconnectOptions {
    /// Delay before the first retry, in ms. Default: 1000.
    pub initial_delay_ms: u64,
    /// Growth per attempt. Default: 2.
    pub multiplier: f64,
    /// Ceiling of the delay, in ms; never below the initial delay. Default: 30000.
    pub max_delay_ms: u64,
    /// Largest fraction by which a delay is shortened at random (0 turns jitter off). Default: 0.2.
    pub jitter: f64,
    /// Attempts before `failed`; `null` for unlimited. Default: unlimited.
    pub max_retries: Option<u32>,
    /// How long a connection must stay up before the attempt count resets, in ms. Default: 5000.
    pub stable_after_ms: u64,
    /// Reconnect also after the server closes a WebSocket normally (1000). Default: false.
    pub on_normal_close: bool,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        Self {
            initial_delay_ms: 1000,
            multiplier: 2.0,
            max_delay_ms: 30_000,
            jitter: 0.2,
            max_retries: None,
            stable_after_ms: 5000,
            on_normal_close: false,
        }
    }
}

/// Liveness: WebSocket ping/pong or an application heartbeat, and an idle timeout for SSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HeartbeatOptions {
    /// WebSocket ping interval (and application heartbeat interval), in ms. Default: 30000.
    pub ping_interval_ms: u64,
    /// Time allowed for the pong (or the heartbeat's reply), in ms; after a wake or a network change, also the
    /// time an SSE stream has to show a byte. Default: 10000.
    pub pong_timeout_ms: u64,
    /// SSE: reconnect when no byte at all arrives for this long, in ms. Default: 45000.
    pub idle_timeout_ms: u64,
    /// WebSocket: a text message sent every `pingIntervalMs` as an application heartbeat (e.g.
    /// `{"type":"ping"}`), for servers that ignore protocol pings. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// WebSocket: the text that answers `message`. Set, only a message equal to it proves the link alive;
    /// unset, any message from the server does. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// WebSocket: send protocol pings too (each must get its pong). Default: true without `message`, false
    /// with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_ping: Option<bool>,
    /// WebSocket: relay messages equal to `reply` to the subscribers as well. Default: false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deliver_replies: bool,
}

impl Default for HeartbeatOptions {
    fn default() -> Self {
        Self {
            ping_interval_ms: 30_000,
            pong_timeout_ms: 10_000,
            idle_timeout_ms: 45_000,
            message: None,
            reply: None,
            protocol_ping: None,
            deliver_replies: false,
        }
    }
}

impl HeartbeatOptions {
    /// Whether protocol pings go: asked for, or by default when there is no application heartbeat.
    pub fn sends_protocol_ping(&self) -> bool {
        self.protocol_ping.unwrap_or(self.message.is_none())
    }
}

/// Longest application heartbeat `message` or `reply`, in bytes: a heartbeat is a small thing, and it is
/// written on every interval.
pub const MAX_HEARTBEAT_TEXT: usize = 4096;

/// Bounds of the outbound queue that holds sends while not connected. Overflow is an error to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct QueueOptions {
    /// Messages held at most. Default: 1000.
    pub max_messages: usize,
    /// Bytes held at most. Default: 1048576 (1 MiB).
    pub max_bytes: usize,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            max_messages: 1000,
            max_bytes: 1 << 20,
        }
    }
}

/// The degraded path: HTTP polling when streaming cannot be had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FallbackOptions {
    /// URL to GET while degraded. Without it there is no fallback. Default: none.
    pub poll_url: Option<String>,
    /// URL to POST sends to while a WebSocket connection is polling (it wins over the top-level `sendUrl`
    /// there); on SSE and poll connections it stands in for a missing top-level `sendUrl`. Default: none (sends
    /// are queued).
    pub send_url: Option<String>,
    /// Time between the end of one poll and the next, in ms. Default: 2000.
    pub interval_ms: u64,
    /// Consecutive failed attempts before polling. Default: 3.
    pub after_failures: u32,
    /// Time between attempts to get the stream back, in ms. Default: 30000.
    pub probe_interval_ms: u64,
}

impl Default for FallbackOptions {
    fn default() -> Self {
        Self {
            poll_url: None,
            send_url: None,
            interval_ms: 2000,
            after_failures: 3,
            probe_interval_ms: 30_000,
        }
    }
}

/// Default for [`ConnectOptions::max_message_size`].
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;
/// Default for [`ConnectOptions::connect_timeout_ms`].
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Options after validation: parsed URL, resolved transport and defaults applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub url: Url,
    pub transport: Transport,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub protocols: Vec<String>,
    pub method: http::Method,
    pub body: Option<String>,
    pub last_event_id: Option<String>,
    /// Where sends are POSTed (see [`ConnectOptions::send_url`]).
    pub send_url: Option<Url>,
    pub reconnect: Option<ReconnectOptions>,
    pub heartbeat: Option<HeartbeatOptions>,
    pub queue: QueueOptions,
    pub fallback: Option<FallbackOptions>,
    pub max_message_size: usize,
    pub connect_timeout: Duration,
    /// Who may join this upstream.
    pub sharing: Sharing,
    /// The options in a canonical form, without `share`: what a joiner's options must equal.
    pub fingerprint: String,
    /// Whether requests carry the caller's cookies (`withCredentials`).
    pub with_credentials: bool,
    /// The opener's cookie jar, when `withCredentials` is on: set by the hub, not by the options.
    pub(crate) cookies: Option<Cookies>,
}

impl Resolved {
    /// Where `send()` POSTs: on SSE and poll connections `sendUrl` (else `fallback.sendUrl`), in every
    /// state; on a WebSocket only while it polls, `fallback.sendUrl` (else `sendUrl`).
    pub fn post_url(&self) -> Option<Url> {
        let fallback = self
            .fallback
            .as_ref()
            .and_then(|f| f.send_url.as_deref())
            .and_then(|u| Url::parse(u).ok());
        if self.transport == Transport::Websocket {
            fallback.or_else(|| self.send_url.clone())
        } else {
            self.send_url.clone().or(fallback)
        }
    }
}

/// Who may join an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sharing {
    /// Nobody (`share: false`).
    Private,
    /// Identical options from the same owner (`share: true`, the default).
    Auto,
    /// Identical options from any owner that names the same key.
    Key(String),
}

/// Longest explicit share key, in bytes.
pub const MAX_SHARE_KEY: usize = 256;

/// Limits on what an app may ask for, set by the app's Rust code.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request headers per connection. Default: 64.
    pub max_headers: usize,
    /// Bytes of all request header names and values together. Default: 16 KiB.
    pub max_header_bytes: usize,
    /// Ceiling for `maxMessageSize`. Default: 64 MiB.
    pub max_message_size: usize,
    /// Ceiling for the outbound queue's `maxMessages`. Default: 100000.
    pub max_queue_messages: usize,
    /// Ceiling for the outbound queue's `maxBytes`. Default: 64 MiB.
    pub max_queue_bytes: usize,
    /// Floor for every interval and timeout (`reconnect.initialDelayMs`, the heartbeat's, `fallback.intervalMs`
    /// and `probeIntervalMs`, `connectTimeoutMs`), in ms, so a page cannot turn a connection into a request
    /// storm. Default: 100.
    pub min_interval_ms: u64,
    /// Messages an upstream re-sends after every open (`set_on_connect`), all subscribers together.
    /// Default: 64.
    pub max_on_connect_messages: usize,
    /// Bytes of those messages together. Default: 256 KiB.
    pub max_on_connect_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_headers: 64,
            max_header_bytes: 16 << 10,
            max_message_size: 64 << 20,
            max_queue_messages: 100_000,
            max_queue_bytes: 64 << 20,
            min_interval_ms: MIN_INTERVAL_MS,
            max_on_connect_messages: 64,
            max_on_connect_bytes: 256 << 10,
        }
    }
}

impl ConnectOptions {
    /// Checks every field and applies defaults. Errors say which field is wrong and what to do.
    pub fn resolve(&self, limits: &Limits) -> Result<Resolved, Error> {
        let url = parse_url(&self.url, "url")?;
        let scheme_transport = match url.scheme() {
            "ws" | "wss" => Transport::Websocket,
            "http" | "https" => Transport::Sse,
            other => {
                return Err(Error::InvalidOptions(format!(
                    "unsupported url scheme `{other}:` in {}; use ws, wss, http or https",
                    self.url
                )))
            }
        };
        let transport = self.transport.unwrap_or(scheme_transport);
        match (transport, scheme_transport) {
            (Transport::Websocket, Transport::Websocket) | (Transport::Sse | Transport::Poll, Transport::Sse) => {}
            (t, _) => {
                return Err(Error::InvalidOptions(format!(
                    "transport `{}` does not go with a {}: url; leave `transport` out or change the url",
                    t.name(),
                    url.scheme()
                )))
            }
        }

        if self.headers.len() > limits.max_headers {
            return Err(Error::InvalidOptions(format!(
                "too many headers: {} given, at most {} allowed",
                self.headers.len(),
                limits.max_headers
            )));
        }
        let mut header_bytes = 0;
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            header_bytes += name.len() + value.len();
            let n = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Error::InvalidOptions(format!(
                    "invalid header name {name:?}: use letters, digits and - only"
                ))
            })?;
            if is_forbidden_header(&n, value) {
                if matches!(n.as_str(), "cookie" | "cookie2") {
                    return Err(Error::InvalidOptions(format!(
                        "header {name:?} cannot be set from the options: the Fetch standard forbids it to pages; \
                         pass `withCredentials: true` to send the webview's own cookies, or set it from Rust \
                         with Builder::secret_header"
                    )));
                }
                return Err(Error::InvalidOptions(format!(
                    "header {name:?} cannot be set from the options: the Fetch standard forbids it to pages \
                     (it could retarget or smuggle the request); leave it to the engine, or set it from Rust \
                     with Builder::secret_header"
                )));
            }
            let v = http::HeaderValue::from_str(value).map_err(|_| {
                Error::InvalidOptions(format!(
                    "invalid value for header {name:?}: no line breaks or control characters allowed"
                ))
            })?;
            headers.push((n, v));
        }
        if header_bytes > limits.max_header_bytes {
            return Err(Error::InvalidOptions(format!(
                "headers too large: {header_bytes} bytes, at most {} allowed",
                limits.max_header_bytes
            )));
        }

        if !self.protocols.is_empty() && transport != Transport::Websocket {
            return Err(Error::InvalidOptions(
                "`protocols` is only for WebSocket connections".into(),
            ));
        }
        if self.protocols.len() > limits.max_headers {
            return Err(Error::InvalidOptions(format!(
                "too many subprotocols: {} given, at most {} allowed",
                self.protocols.len(),
                limits.max_headers
            )));
        }
        // They travel in one header, so they count against the same byte limit.
        let protocol_bytes: usize = self.protocols.iter().map(|p| p.len() + 2).sum();
        if header_bytes + protocol_bytes > limits.max_header_bytes {
            return Err(Error::InvalidOptions(format!(
                "headers and subprotocols too large: {} bytes, at most {} allowed",
                header_bytes + protocol_bytes,
                limits.max_header_bytes
            )));
        }
        for p in &self.protocols {
            let token = !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !token {
                return Err(Error::InvalidOptions(format!(
                    "invalid WebSocket subprotocol {p:?}: use a token without spaces or separators"
                )));
            }
        }
        if transport == Transport::Websocket && (self.method.is_some() || self.body.is_some()) {
            return Err(Error::InvalidOptions(
                "`method` and `body` are only for SSE connections; send data over a WebSocket with send()".into(),
            ));
        }
        let method = match &self.method {
            None => http::Method::GET,
            Some(m) => http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| Error::InvalidOptions(format!("invalid HTTP method {m:?}")))?,
        };
        if is_forbidden_method(method.as_str()) {
            return Err(Error::InvalidOptions(format!(
                "HTTP method {} is not allowed (the Fetch standard forbids it); use GET or POST",
                method.as_str()
            )));
        }
        if let Some(id) = &self.last_event_id {
            if id.contains(['\0', '\r', '\n']) {
                return Err(Error::InvalidOptions(
                    "`lastEventId` must not contain NUL or line breaks".into(),
                ));
            }
        }

        let reconnect = Toggle::resolve(&self.reconnect, true);
        if let Some(r) = &reconnect {
            at_least("reconnect.initialDelayMs", r.initial_delay_ms, limits)?;
            if !(r.multiplier.is_finite() && r.multiplier >= 1.0) {
                return Err(Error::InvalidOptions(
                    "`reconnect.multiplier` must be a number >= 1".into(),
                ));
            }
            if !(0.0..=1.0).contains(&r.jitter) {
                return Err(Error::InvalidOptions(
                    "`reconnect.jitter` must be between 0 and 1".into(),
                ));
            }
        }
        // `{ initialDelayMs: 60000 }` alone means a minute between attempts, not the default 30 s ceiling.
        let reconnect = reconnect.map(|r| ReconnectOptions {
            max_delay_ms: r.max_delay_ms.max(r.initial_delay_ms),
            ..r
        });
        let heartbeat = Toggle::resolve(&self.heartbeat, true);
        if let Some(h) = &heartbeat {
            at_least("heartbeat.pingIntervalMs", h.ping_interval_ms, limits)?;
            at_least("heartbeat.pongTimeoutMs", h.pong_timeout_ms, limits)?;
            at_least("heartbeat.idleTimeoutMs", h.idle_timeout_ms, limits)?;
            check_app_heartbeat(h, transport)?;
        }
        let queue = self.queue.clone().unwrap_or_default();
        if queue.max_messages > limits.max_queue_messages
            || queue.max_bytes > limits.max_queue_bytes
        {
            return Err(Error::InvalidOptions(format!(
                "queue limits too large: at most {} messages and {} bytes allowed",
                limits.max_queue_messages, limits.max_queue_bytes
            )));
        }
        // Forced polling keeps the fallback's settings (interval, headers) even without a poll URL: it polls `url`.
        let fallback = Toggle::resolve(&self.fallback, false)
            .filter(|f| f.poll_url.is_some() || transport == Transport::Poll);
        if let Some(f) = &fallback {
            at_least("fallback.intervalMs", f.interval_ms, limits)?;
            at_least("fallback.probeIntervalMs", f.probe_interval_ms, limits)?;
            for (field, u) in [
                ("fallback.pollUrl", &f.poll_url),
                ("fallback.sendUrl", &f.send_url),
            ] {
                if let Some(u) = u {
                    let parsed = parse_url(u, field)?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(Error::InvalidOptions(format!(
                            "`{field}` must be an http or https URL"
                        )));
                    }
                }
            }
        }

        let send_url = match &self.send_url {
            Some(u) => Some(http_url(u, "sendUrl")?),
            None => None,
        };

        let max_message_size = self.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
        if max_message_size == 0 || max_message_size > limits.max_message_size {
            return Err(Error::InvalidOptions(format!(
                "`maxMessageSize` must be between 1 and {} bytes",
                limits.max_message_size
            )));
        }
        let connect_timeout_ms = self
            .connect_timeout_ms
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
        at_least("connectTimeoutMs", connect_timeout_ms, limits)?;

        let sharing = match &self.share {
            None | Some(Share::Enabled(true)) => Sharing::Auto,
            Some(Share::Enabled(false)) => Sharing::Private,
            Some(Share::Key(k)) if k.is_empty() || k.len() > MAX_SHARE_KEY => {
                return Err(Error::InvalidOptions(format!(
                    "`share` key must be 1 to {MAX_SHARE_KEY} bytes"
                )))
            }
            Some(Share::Key(k)) => Sharing::Key(k.clone()),
        };
        // The options themselves, in a canonical form: identical subscriptions have identical fingerprints.
        let fingerprint = {
            let mut canon = self.clone();
            canon.share = None;
            serde_json::to_string(&canon).unwrap_or_default()
        };

        Ok(Resolved {
            url,
            transport,
            headers,
            protocols: self.protocols.clone(),
            method,
            body: self.body.clone(),
            last_event_id: self.last_event_id.clone(),
            send_url,
            reconnect,
            heartbeat,
            queue,
            fallback,
            max_message_size,
            connect_timeout: Duration::from_millis(connect_timeout_ms),
            sharing,
            fingerprint,
            with_credentials: self.with_credentials,
            cookies: None,
        })
    }
}

/// The application heartbeat's settings: WebSocket only (SSE has `idleTimeoutMs`), small texts, and nothing
/// that would leave it meaningless.
fn check_app_heartbeat(h: &HeartbeatOptions, transport: Transport) -> Result<(), Error> {
    let app =
        h.message.is_some() || h.reply.is_some() || h.protocol_ping.is_some() || h.deliver_replies;
    if app && transport != Transport::Websocket {
        return Err(Error::InvalidOptions(
            "`heartbeat.message`, `reply`, `protocolPing` and `deliverReplies` are for WebSocket connections; \
             an SSE or polled stream is checked by `heartbeat.idleTimeoutMs`"
                .into(),
        ));
    }
    for (field, text) in [
        ("heartbeat.message", &h.message),
        ("heartbeat.reply", &h.reply),
    ] {
        if let Some(t) = text {
            if t.is_empty() || t.len() > MAX_HEARTBEAT_TEXT {
                return Err(Error::InvalidOptions(format!(
                    "`{field}` must be 1 to {MAX_HEARTBEAT_TEXT} bytes, got {}",
                    t.len()
                )));
            }
        }
    }
    if h.message.is_none() && (h.reply.is_some() || h.deliver_replies) {
        return Err(Error::InvalidOptions(
            "`heartbeat.reply` and `deliverReplies` answer `heartbeat.message`: set `message` too"
                .into(),
        ));
    }
    if h.reply.is_none() && h.deliver_replies {
        return Err(Error::InvalidOptions(
            "`heartbeat.deliverReplies` needs `heartbeat.reply`: without it nothing is held back"
                .into(),
        ));
    }
    if h.message.is_none() && h.protocol_ping == Some(false) {
        return Err(Error::InvalidOptions(
            "`heartbeat.protocolPing: false` without `heartbeat.message` leaves nothing to check the link; set \
             `message`, or `heartbeat: false` for no heartbeat at all"
                .into(),
        ));
    }
    Ok(())
}

/// Default for [`Limits::min_interval_ms`].
pub const MIN_INTERVAL_MS: u64 = 100;

fn at_least(field: &str, ms: u64, limits: &Limits) -> Result<(), Error> {
    let floor = limits.min_interval_ms.max(1);
    if ms < floor {
        return Err(Error::InvalidOptions(format!(
            "`{field}` must be at least {floor} ms, got {ms}"
        )));
    }
    Ok(())
}

/// The Fetch standard's forbidden request header names: what a page must not choose, because the engine
/// or the HTTP layer owns them (`Host` would retarget a request through a shared proxy with the app's secret
/// headers attached; `Content-Length` and `Transfer-Encoding` would smuggle one).
pub fn is_forbidden_header(name: &http::HeaderName, value: &str) -> bool {
    const NAMES: [&str; 21] = [
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
    ];
    let n = name.as_str();
    if NAMES.contains(&n) || n.starts_with("proxy-") || n.starts_with("sec-") {
        return true;
    }
    // Method overrides are forbidden when they name a forbidden method.
    matches!(
        n,
        "x-http-method" | "x-http-method-override" | "x-method-override"
    ) && value
        .split(',')
        .any(|m| is_forbidden_method(&m.trim().to_ascii_uppercase()))
}

fn is_forbidden_method(method: &str) -> bool {
    matches!(method, "CONNECT" | "TRACE" | "TRACK")
}

/// A URL that must be http or https (`sendUrl`, which is POSTed to).
fn http_url(raw: &str, field: &str) -> Result<Url, Error> {
    let url = parse_url(raw, field)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidOptions(format!(
            "`{field}` must be an http or https URL"
        )));
    }
    Ok(url)
}

fn parse_url(raw: &str, field: &str) -> Result<Url, Error> {
    let url = Url::parse(raw).map_err(|e| {
        Error::InvalidOptions(format!("`{field}` is not a valid URL ({e}): {raw:?}; give an absolute URL such as wss://host/path"))
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidOptions(format!(
            "`{field}` has no host: {raw:?}"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> ConnectOptions {
        ConnectOptions {
            url: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn transport_follows_the_scheme() {
        let l = Limits::default();
        assert_eq!(
            opts("ws://127.0.0.1:1/x").resolve(&l).unwrap().transport,
            Transport::Websocket
        );
        assert_eq!(
            opts("https://example.test/s")
                .resolve(&l)
                .unwrap()
                .transport,
            Transport::Sse
        );
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let l = Limits::default();
        let cases: Vec<(ConnectOptions, &str)> = vec![
            (opts("not a url"), "not a valid URL"),
            (opts("ftp://host/x"), "unsupported url scheme"),
            (
                ConnectOptions {
                    transport: Some(Transport::Sse),
                    ..opts("ws://h/x")
                },
                "does not go with",
            ),
            (
                ConnectOptions {
                    headers: [("bad name".to_string(), "v".to_string())].into(),
                    ..opts("ws://h/x")
                },
                "invalid header name",
            ),
            (
                ConnectOptions {
                    headers: [("x-a".to_string(), "a\r\nb".to_string())].into(),
                    ..opts("ws://h/x")
                },
                "invalid value for header",
            ),
            (
                ConnectOptions {
                    body: Some("x".into()),
                    ..opts("ws://h/x")
                },
                "only for SSE",
            ),
            (
                ConnectOptions {
                    protocols: vec!["a b".into()],
                    ..opts("ws://h/x")
                },
                "invalid WebSocket subprotocol",
            ),
            (
                ConnectOptions {
                    max_message_size: Some(0),
                    ..opts("ws://h/x")
                },
                "maxMessageSize",
            ),
            (
                ConnectOptions {
                    protocols: (0..65).map(|i| format!("p{i}")).collect(),
                    ..opts("ws://h/x")
                },
                "too many subprotocols",
            ),
            (
                ConnectOptions {
                    protocols: vec!["p".repeat(10_000), "q".repeat(10_000)],
                    ..opts("ws://h/x")
                },
                "headers and subprotocols too large",
            ),
            (
                ConnectOptions {
                    method: Some("trace".into()),
                    ..opts("http://h/x")
                },
                "method TRACE is not allowed",
            ),
            (
                ConnectOptions {
                    send_url: Some("ws://h/send".into()),
                    ..opts("http://h/x")
                },
                "`sendUrl` must be an http or https URL",
            ),
            (
                ConnectOptions {
                    send_url: Some("/api/messages/send".into()),
                    ..opts("http://h/x")
                },
                "`sendUrl` is not a valid URL",
            ),
        ];
        for (o, want) in cases {
            match o.resolve(&l) {
                Err(Error::InvalidOptions(msg)) => {
                    assert!(msg.contains(want), "expected {want:?}, got {msg:?}")
                }
                other => panic!("expected InvalidOptions containing {want:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn sends_are_posted_to_the_top_level_send_url_or_the_fallbacks() {
        let l = Limits::default();
        let top = "http://h/top";
        let fb = || {
            Some(Toggle::With(FallbackOptions {
                poll_url: Some("http://h/poll".into()),
                send_url: Some("http://h/fallback".into()),
                ..Default::default()
            }))
        };
        let cases = [
            ("http://h/s", Some(top), None, Some(top)),
            ("http://h/s", Some(top), fb(), Some(top)),
            ("http://h/s", None, fb(), Some("http://h/fallback")),
            ("http://h/s", None, None, None),
            // A WebSocket posts only while it polls, where the fallback's own URL wins.
            ("ws://h/s", Some(top), fb(), Some("http://h/fallback")),
            ("ws://h/s", Some(top), None, Some(top)),
        ];
        for (url, send_url, fallback, want) in cases {
            let o = ConnectOptions {
                send_url: send_url.map(str::to_owned),
                fallback: fallback.clone(),
                ..opts(url)
            };
            let got = o.resolve(&l).unwrap().post_url();
            assert_eq!(
                got.as_ref().map(Url::as_str),
                want,
                "{url} with sendUrl {send_url:?} and fallback {fallback:?}"
            );
        }
    }

    #[test]
    fn forbidden_headers_are_refused_whatever_their_case() {
        let l = Limits::default();
        for name in [
            "Host",
            "host",
            "Connection",
            "Content-Length",
            "Transfer-Encoding",
            "Upgrade",
            "TE",
            "Trailer",
            "Keep-Alive",
            "Proxy-Authorization",
            "proxy-anything",
            "Sec-WebSocket-Key",
            "sec-fetch-site",
            "Cookie",
            "Origin",
            "Referer",
        ] {
            for url in ["ws://h/x", "https://h/x"] {
                let o = ConnectOptions {
                    headers: [(name.to_string(), "v".to_string())].into(),
                    ..opts(url)
                };
                match o.resolve(&l) {
                    Err(Error::InvalidOptions(m)) => assert!(
                        m.contains("cannot be set from the options") && m.contains(name),
                        "expected a forbidden-header error naming {name}, got {m:?}"
                    ),
                    other => panic!("expected {name} to be refused, got {other:?}"),
                }
            }
        }
        let override_trace = ConnectOptions {
            headers: [(
                "X-HTTP-Method-Override".to_string(),
                "get, TRACE".to_string(),
            )]
            .into(),
            ..opts("https://h/x")
        };
        assert!(override_trace.resolve(&l).is_err());
        // Ordinary headers, and a method override naming an allowed method, pass.
        let fine = ConnectOptions {
            headers: [
                ("Authorization".to_string(), "Bearer t".to_string()),
                ("X-HTTP-Method-Override".to_string(), "PATCH".to_string()),
                ("Accept-Language".to_string(), "en".to_string()),
            ]
            .into(),
            ..opts("https://h/x")
        };
        assert!(fine.resolve(&l).is_ok());
    }

    #[test]
    fn intervals_below_the_floor_are_refused() {
        let l = Limits::default();
        let cases = [
            (
                r#"{"reconnect":{"initialDelayMs":1}}"#,
                "reconnect.initialDelayMs",
            ),
            (
                r#"{"heartbeat":{"pingIntervalMs":0}}"#,
                "heartbeat.pingIntervalMs",
            ),
            (
                r#"{"heartbeat":{"pongTimeoutMs":99}}"#,
                "heartbeat.pongTimeoutMs",
            ),
            (
                r#"{"heartbeat":{"idleTimeoutMs":1}}"#,
                "heartbeat.idleTimeoutMs",
            ),
            (
                r#"{"fallback":{"pollUrl":"http://h/p","intervalMs":1}}"#,
                "fallback.intervalMs",
            ),
            (
                r#"{"fallback":{"pollUrl":"http://h/p","probeIntervalMs":1}}"#,
                "fallback.probeIntervalMs",
            ),
            (r#"{"connectTimeoutMs":0}"#, "connectTimeoutMs"),
        ];
        for (extra, field) in cases {
            let mut v: serde_json::Value = serde_json::from_str(extra).unwrap();
            v["url"] = "https://h/x".into();
            let o: ConnectOptions = serde_json::from_value(v).unwrap();
            match o.resolve(&l) {
                Err(Error::InvalidOptions(m)) => assert!(
                    m.contains(field) && m.contains("at least 100 ms"),
                    "expected {field} to be refused with its floor, got {m:?}"
                ),
                other => panic!("expected {field} to be refused, got {other:?}"),
            }
        }
        let at_floor: ConnectOptions = serde_json::from_str(
            r#"{"url":"https://h/x","reconnect":{"initialDelayMs":100},"heartbeat":{"pingIntervalMs":100,"pongTimeoutMs":100,"idleTimeoutMs":100}}"#,
        )
        .unwrap();
        assert!(at_floor.resolve(&l).is_ok());
    }

    #[test]
    fn the_application_heartbeat_is_checked() {
        let l = Limits::default();
        let with = |url: &str, hb: &str| -> Result<Resolved, Error> {
            let o: ConnectOptions =
                serde_json::from_str(&format!(r#"{{"url":"{url}","heartbeat":{hb}}}"#)).unwrap();
            o.resolve(&l)
        };
        let ok = with(
            "ws://h/x",
            r#"{"message":"{\"type\":\"ping\"}","reply":"{\"type\":\"pong\"}"}"#,
        )
        .unwrap();
        let h = ok.heartbeat.unwrap();
        assert_eq!(h.message.as_deref(), Some(r#"{"type":"ping"}"#));
        assert!(!h.sends_protocol_ping(), "off by default beside a message");
        assert!(HeartbeatOptions::default().sends_protocol_ping());
        for (url, hb, want) in [
            (
                "https://h/x",
                r#"{"message":"ping"}"#,
                "for WebSocket connections",
            ),
            (
                "https://h/x",
                r#"{"protocolPing":true}"#,
                "for WebSocket connections",
            ),
            (
                "ws://h/x",
                r#"{"message":""}"#,
                "`heartbeat.message` must be 1 to 4096 bytes",
            ),
            ("ws://h/x", r#"{"reply":"pong"}"#, "set `message` too"),
            (
                "ws://h/x",
                r#"{"message":"p","deliverReplies":true}"#,
                "needs `heartbeat.reply`",
            ),
            (
                "ws://h/x",
                r#"{"protocolPing":false}"#,
                "leaves nothing to check the link",
            ),
        ] {
            match with(url, hb) {
                Err(Error::InvalidOptions(m)) => {
                    assert!(m.contains(want), "expected {want:?} for {hb}, got {m:?}")
                }
                other => panic!("expected {hb} on {url} to be refused, got {other:?}"),
            }
        }
        let long = format!(r#"{{"message":"{}"}}"#, "p".repeat(MAX_HEARTBEAT_TEXT + 1));
        assert!(with("ws://h/x", &long).is_err());
    }

    #[test]
    fn unknown_fields_and_wrong_toggles_are_errors() {
        let e =
            serde_json::from_str::<ConnectOptions>(r#"{"url":"ws://h/","retries":3}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `retries`"), "got {e}");
        let e = serde_json::from_str::<ConnectOptions>(
            r#"{"url":"ws://h/","reconnect":{"maxRetry":1}}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("unknown field `maxRetry`"),
            "got {e}"
        );
        let o: ConnectOptions = serde_json::from_str(
            r#"{"url":"ws://h/","reconnect":false,"heartbeat":{"pingIntervalMs":500}}"#,
        )
        .unwrap();
        let r = o.resolve(&Limits::default()).unwrap();
        assert!(r.reconnect.is_none());
        // A ceiling below the initial delay is raised to it.
        let o: ConnectOptions =
            serde_json::from_str(r#"{"url":"ws://h/","reconnect":{"initialDelayMs":60000}}"#)
                .unwrap();
        let rc = o.resolve(&Limits::default()).unwrap().reconnect.unwrap();
        assert_eq!((rc.initial_delay_ms, rc.max_delay_ms), (60_000, 60_000));
        assert_eq!(r.heartbeat.unwrap().ping_interval_ms, 500);
    }

    #[test]
    fn identical_options_have_one_fingerprint_and_share_picks_who_joins() {
        let l = Limits::default();
        let a = opts("ws://h/x").resolve(&l).unwrap();
        let b = opts("ws://h/x").resolve(&l).unwrap();
        assert_eq!(
            (a.fingerprint.as_str(), &a.sharing),
            (b.fingerprint.as_str(), &Sharing::Auto)
        );
        assert_ne!(
            a.fingerprint,
            opts("ws://h/y").resolve(&l).unwrap().fingerprint
        );
        let private = ConnectOptions {
            share: Some(Share::Enabled(false)),
            ..opts("ws://h/x")
        };
        let private = private.resolve(&l).unwrap();
        assert_eq!(private.sharing, Sharing::Private);
        // `share` itself is not part of the fingerprint: a keyed joiner compares the rest.
        assert_eq!(private.fingerprint, a.fingerprint);
        let keyed = ConnectOptions {
            share: Some(Share::Key("room".into())),
            ..opts("ws://h/x")
        };
        assert_eq!(
            keyed.resolve(&l).unwrap().sharing,
            Sharing::Key("room".into())
        );
        for bad in [String::new(), "k".repeat(MAX_SHARE_KEY + 1)] {
            let o = ConnectOptions {
                share: Some(Share::Key(bad)),
                ..opts("ws://h/x")
            };
            assert!(matches!(o.resolve(&l), Err(Error::InvalidOptions(_))));
        }
    }
}
