//! Opening a stream: one module per transport. Each returns an open stream or an [`AttemptError`] that says
//! how the connection should react (retry, give up, or fall back to polling).

pub mod poll;
pub mod sse;
pub mod ws;

use std::time::Duration;

/// Why one attempt to open (or keep) a stream failed, classified for the reconnect policy.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptError {
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
    pub fn reason(&self) -> &str {
        match self {
            AttemptError::Retry { reason, .. }
            | AttemptError::NoStream { reason }
            | AttemptError::Fatal { reason }
            | AttemptError::Stop { reason } => reason,
        }
    }
}

/// Classifies an HTTP status that is not the expected success (101 for WebSocket, 200 for SSE).
pub fn classify_status(status: http::StatusCode, retry_after: Option<Duration>) -> AttemptError {
    let reason = format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string();
    match status.as_u16() {
        408 | 429 | 500..=599 => AttemptError::Retry {
            reason,
            retry_after,
        },
        _ => AttemptError::Fatal { reason },
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

/// Things a connection says once, not on every attempt (a secret header it had to leave out, an event id
/// it cannot send back): the transports note them while they work, the connection relays each new one as a
/// non-fatal `error` frame.
#[derive(Debug, Default)]
pub struct Notes {
    said: std::sync::Mutex<(std::collections::HashSet<String>, Vec<String>)>,
}

impl Notes {
    /// Notes `what`, unless it was noted before.
    pub fn once(&self, what: String) {
        let mut st = self.said.lock().unwrap_or_else(|p| p.into_inner());
        if st.0.insert(what.clone()) {
            st.1.push(what);
        }
    }

    /// What was noted since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.said.lock().unwrap_or_else(|p| p.into_inner()).1)
    }
}

/// The connection's own headers for a request to `url`, with the secret ones put over them.
///
/// A secret value that HTTP cannot carry as text (anything but visible ASCII, space and tab) is left out,
/// and noted by its header's name only: a value is never written into a message the page can read.
pub fn request_headers(
    own: &[(http::HeaderName, http::HeaderValue)],
    secrets: Option<&dyn HeaderSource>,
    url: &url::Url,
    notes: &Notes,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut secret = secrets.map(|s| s.headers_for(url)).unwrap_or_default();
    secret.retain_mut(|(name, value)| {
        value.set_sensitive(true);
        let sendable = value.to_str().is_ok();
        if !sendable {
            notes.once(format!(
                "secret header {name} was left out of the request: its value is not plain ASCII text"
            ));
        }
        sendable
    });
    let mut headers: Vec<_> = own
        .iter()
        .filter(|(name, _)| !secret.iter().any(|(s, _)| s == name))
        .cloned()
        .collect();
    headers.extend(secret);
    headers
}

/// `Last-Event-ID` for an id, when HTTP can carry it: an id holding a control character (a server may send
/// one; the SSE format allows it) cannot be sent, and resuming without it beats never reconnecting.
pub fn last_event_id_header(id: &str) -> Option<http::HeaderValue> {
    if id.is_empty() {
        return None;
    }
    http::HeaderValue::from_bytes(id.as_bytes()).ok()
}

/// A TLS failure that retrying cannot fix (an untrusted or invalid certificate, no common protocol),
/// found anywhere in an error's chain. Libraries wrap rustls errors in `io::Error`s, so look inside those too.
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    fn fatal(r: &rustls::Error) -> Option<String> {
        match r {
            rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::PeerIncompatible(_) => Some(format!("TLS error: {r}")),
            _ => None,
        }
    }
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return fatal(r);
        }
        // `io::Error::source` skips the error it wraps, so step into it by hand.
        current = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A failed request: fatal for a bad certificate, otherwise a network error worth retrying.
pub fn request_failed(what: &str, e: &(dyn std::error::Error + 'static)) -> AttemptError {
    match tls_failure(e) {
        Some(reason) => AttemptError::Fatal { reason },
        None => AttemptError::Retry {
            reason: format!("{what}: {}", sse::error_chain(e)),
            retry_after: None,
        },
    }
}
