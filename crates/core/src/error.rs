//! Errors of the engine. Messages are lower-case and say what to do.

/// Everything the engine can refuse or report to a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid connect options: {0}")]
    InvalidOptions(String),
    #[error("invalid connection id {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    InvalidId(String),
    #[error("connection id {0:?} cannot be used; pass a fresh random id, or none and the engine picks one (the JS bindings always pick a random one)")]
    IdRefused(String),
    #[error("share key {0:?} is held by a connection with other options; use the same options, or another key")]
    ShareKeyConflict(String),
    #[error("unknown connection id {0:?}: it was closed, or it is not this webview's")]
    UnknownConnection(String),
    #[error("connection {0:?} is closed; connect again")]
    Closed(String),
    #[error("connection {id:?} has failed ({reason}); call reconnect() to try again")]
    Failed { id: String, reason: String },
    #[error("outbound queue is full ({0}); wait for the connection to come back, or raise queue.maxMessages / queue.maxBytes")]
    QueueFull(String),
    #[error("send() on a connection that streams {0} needs `sendUrl`: set it to the http(s) URL that takes each message as a POST")]
    NotWritable(&'static str),
    #[error("send failed: {0}; the message was not delivered")]
    SendFailed(String),
    #[error("message of {size} bytes is larger than the limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("invalid content type {0:?}: give a media type such as application/json, at most 256 characters, without line breaks or control characters")]
    InvalidContentType(String),
    #[error("binary data is not valid base64: {0}")]
    InvalidBase64(String),
    #[error("invalid on-connect message: {0}")]
    InvalidOnConnect(String),
    #[error("too many on-connect messages on this connection: {0}; remove some with removeOnConnect(), or raise Limits::max_on_connect_messages / max_on_connect_bytes in Rust")]
    OnConnectFull(String),
    #[error("on-connect messages are for WebSocket connections; this one streams {0}: send what the server needs after each `connected` state instead")]
    OnConnectNotWritable(&'static str),
    #[error("invalid close: {0}")]
    InvalidClose(String),
    #[error("too many connections: {0}; close some first")]
    TooManyConnections(String),
    #[error("url not allowed by the realtime scope: {0}; add it to the `allow` list of the realtime permission in the capability")]
    UrlNotAllowed(String),
    #[error("invalid proxy {0}")]
    InvalidProxy(String),
    #[error("could not set up TLS: {0}")]
    Tls(String),
    #[error("the realtime engine is shutting down")]
    ShuttingDown,
}
