//! What every request the engine makes shares, once: the HTTP client and TLS configuration, the request
//! headers (the connection's own with the app's secret ones over them), how a failed request or a status is
//! classified for the reconnect policy, `Retry-After`, and the notes a connection says only once.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use super::{clients::Clients, AttemptError, HeaderSource};
use crate::{
    error::Error,
    options::Resolved,
    proxy::{Proxies, ProxyConfig},
    time::server_delay,
    tls::{client_config, http_alpn, with_identity, TlsConfig},
};

/// What every connection shares: the HTTP clients, the TLS configuration and the app's secret headers.
pub(crate) struct Env {
    /// The HTTP clients, chosen per request URL (`clients.rs`).
    pub http: Arc<Clients>,
    /// The WebSocket's TLS, per client identity as in [`Clients`]: `[0]` without a client certificate.
    ws_tls: Vec<Arc<rustls::ClientConfig>>,
    pub secrets: Option<Arc<dyn HeaderSource>>,
    /// The one proxy decision, asked by the HTTP client and by the WebSocket.
    pub proxies: Arc<Proxies>,
}

impl Env {
    /// `http1_only`: no HTTP/2 even where the server offers it.
    pub(crate) fn new(
        tls: &TlsConfig,
        http1_only: bool,
        secrets: Option<Arc<dyn HeaderSource>>,
        proxy: &ProxyConfig,
    ) -> Result<Self, Error> {
        let base = client_config(tls)?;
        let proxies = Arc::new(Proxies::new(proxy)?);
        let http = Arc::new(Clients::new(
            &base,
            &tls.client_identities,
            http1_only,
            proxies.reqwest(),
        )?);
        // tungstenite speaks WebSocket over HTTP/1.1 only (no RFC 8441), so it never offers h2.
        let ws_tls = std::iter::once(None)
            .chain(tls.client_identities.iter().map(Some))
            .map(|id| Arc::new(with_identity(&base, id, http_alpn(true))))
            .collect();
        Ok(Self {
            http,
            ws_tls,
            secrets,
            proxies,
        })
    }

    /// A request to `url` failed: as [`request_failed`], naming the proxy it went through, if any (its
    /// address only, never its credentials).
    pub(crate) async fn request_failed(
        &self,
        what: &str,
        url: &url::Url,
        e: &(dyn std::error::Error + Send + Sync + 'static),
    ) -> AttemptError {
        let Some(proxy) = self.proxies.for_url(url) else {
            return request_failed(what, e);
        };
        let who = crate::proxy::name(&proxy);
        let chain = error_chain(e);
        // reqwest's tunnel (hyper-util's) says "unsuccessful" for any refusal but 407: ask the proxy once
        // more, with a tunnel of the engine's own that reads its status, to tell 403 (stop) from 502 (retry).
        if chain.contains("tunnel error: unsuccessful") {
            if let Some(refused) = crate::proxy::why_no_tunnel(&proxy, url).await {
                return refused;
            }
        }
        // reqwest's CONNECT (hyper-util's tunnel) says 407 in these words, and folds every other refusal
        // into "unsuccessful".
        if chain.contains("proxy authorization required") {
            return AttemptError::Fatal {
                reason: if proxy.basic_auth().is_some() {
                    format!("the proxy {who} refused its credentials (HTTP 407): the user or password in the proxy URL is wrong")
                } else {
                    format!("the proxy {who} asks for credentials (HTTP 407): put them in the proxy URL, http://user:password@host:port")
                },
            };
        }
        if chain.contains("SOCKS error") {
            let target = format!(
                "{}:{}",
                url.host_str().unwrap_or(""),
                url.port_or_known_default().unwrap_or(0)
            );
            return crate::proxy::socks_failed(&proxy, &target, &chain, &format!("{e:?}"));
        }
        match request_failed(what, e) {
            AttemptError::Retry {
                reason,
                retry_after,
            } => AttemptError::Retry {
                reason: format!(
                    "{reason} (through the proxy {who}: check that it runs and allows this destination, or list the host in NO_PROXY)"
                ),
                retry_after,
            },
            other => other,
        }
    }

    /// The WebSocket's TLS configuration for `url`, with the client certificate the HTTP clients would
    /// present there.
    pub(crate) fn ws_tls(&self, url: &url::Url) -> Arc<rustls::ClientConfig> {
        self.ws_tls[self.http.identity(url)].clone()
    }

    /// The connection's headers for a request to `url`, with the secret ones put over them.
    pub(crate) fn headers_for(
        &self,
        own: &[(http::HeaderName, http::HeaderValue)],
        url: &url::Url,
        notes: &Notes,
    ) -> Vec<(http::HeaderName, http::HeaderValue)> {
        request_headers(own, self.secrets.as_deref(), url, notes)
    }

    /// [`Env::headers_for`], plus the caller's cookies for `url` when the connection was opened with
    /// `withCredentials`. A secret `Cookie` header from Rust wins: the jar is not asked.
    pub(crate) async fn headers_with_cookies(
        &self,
        opts: &Resolved,
        own: &[(http::HeaderName, http::HeaderValue)],
        url: &url::Url,
        notes: &Notes,
    ) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let mut headers = self.headers_for(own, url, notes);
        if let Some(jar) = &opts.cookies {
            if !headers.iter().any(|(n, _)| n == http::header::COOKIE) {
                if let Some(cookie) = jar.header_for(url, notes).await {
                    headers.push((http::header::COOKIE, cookie));
                }
            }
        }
        headers
    }
}

/// Stores a response's `Set-Cookie` values in the caller's jar, when the connection was opened with
/// `withCredentials`: every response, a redirect's or an error status's too, as a browser does.
pub(crate) async fn store_cookies(
    opts: &Resolved,
    url: &url::Url,
    headers: &http::HeaderMap,
    notes: &Notes,
) {
    if let Some(jar) = &opts.cookies {
        jar.store_from(url, headers, notes).await;
    }
}

/// Things a connection says once, not on every attempt (a secret header it had to leave out, an event id
/// it cannot send back): the transports note them while they work, the connection relays each new one as a
/// non-fatal `error` frame.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    said: Mutex<(HashSet<String>, Vec<String>)>,
    /// Something new was noted: the connection asks after every frame, so this spares it the lock.
    fresh: AtomicBool,
}

impl Notes {
    /// Notes `what`, unless it was noted before.
    pub(crate) fn once(&self, what: String) {
        let mut st = self.said.lock().unwrap_or_else(|p| p.into_inner());
        if st.0.insert(what.clone()) {
            st.1.push(what);
            self.fresh.store(true, Ordering::Release);
        }
    }

    /// What was noted since the last call.
    pub(crate) fn take(&self) -> Vec<String> {
        if !self.fresh.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut self.said.lock().unwrap_or_else(|p| p.into_inner()).1)
    }
}

/// The connection's own headers for a request to `url`, with the secret ones put over them.
///
/// A secret value that HTTP cannot carry as text (anything but visible ASCII, space and tab) is left out,
/// and noted by its header's name only: a value is never written into a message the page can read.
pub(crate) fn request_headers(
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
pub(crate) fn last_event_id_header(id: &str) -> Option<http::HeaderValue> {
    if id.is_empty() {
        return None;
    }
    http::HeaderValue::from_bytes(id.as_bytes()).ok()
}

/// Parses `Retry-After` in its delay-seconds form, capped at
/// [`MAX_SERVER_DELAY`](crate::time::MAX_SERVER_DELAY); the HTTP-date form is rare for streams and is ignored.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| server_delay(Duration::from_secs(s)))
}

/// `Retry-After` of a response, if it has a usable one.
pub(crate) fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// Classifies an HTTP status that is not the expected success (101 for WebSocket, 200 for SSE).
pub(crate) fn classify_status(
    status: http::StatusCode,
    retry_after: Option<Duration>,
) -> AttemptError {
    let reason = format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string();
    match status.as_u16() {
        // Through a proxy to an http:// URL, the proxy answers in the server's place.
        407 => AttemptError::Fatal {
            reason: format!("{reason}: the proxy asks for credentials; put them in the proxy URL, http://user:password@host:port"),
        },
        408 | 429 | 500..=599 => AttemptError::Retry {
            reason,
            retry_after,
        },
        _ => AttemptError::Fatal { reason },
    }
}

/// Alerts a server sends about the client's certificate (or its lack), which retrying cannot fix.
const CERTIFICATE_ALERTS: [rustls::AlertDescription; 8] = [
    rustls::AlertDescription::CertificateRequired,
    rustls::AlertDescription::BadCertificate,
    rustls::AlertDescription::UnsupportedCertificate,
    rustls::AlertDescription::CertificateRevoked,
    rustls::AlertDescription::CertificateExpired,
    rustls::AlertDescription::CertificateUnknown,
    rustls::AlertDescription::UnknownCA,
    rustls::AlertDescription::AccessDenied,
];

/// A TLS failure that retrying cannot fix (an untrusted or invalid certificate, no common protocol),
/// found anywhere in an error's chain. Libraries wrap rustls errors in `io::Error`s, so look inside those too.
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    fn fatal(r: &rustls::Error) -> Option<String> {
        use rustls::AlertDescription as A;
        match r {
            rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::PeerIncompatible(_) => Some(format!("TLS error: {r}")),
            // TLS 1.3 names it; over TLS 1.2 a server without a certificate from us says only "handshake
            // failure", which could be anything, so that one stays a network error.
            rustls::Error::AlertReceived(A::CertificateRequired) => Some(
                "TLS error: the server requires a client certificate (TLS alert certificate_required); give one \
                 for this URL with the plugin's Builder::client_identity (tap: --cert and --key)"
                    .into(),
            ),
            rustls::Error::AlertReceived(a) if CERTIFICATE_ALERTS.contains(a) => Some(format!(
                "TLS error: the server refused the client certificate, or the lack of one (TLS alert {a:?}); check \
                 the one given for this URL with Builder::client_identity (tap: --cert), and which CA the server \
                 trusts"
            )),
            _ => None,
        }
    }
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return fatal(r);
        }
        // HTTP/2 (h2) keeps an I/O error's kind and text only, so an alert read on an HTTP/2 connection comes as
        // text: rustls's own, for the alerts that say something about the client certificate.
        let text = err.to_string();
        if let Some(r) = CERTIFICATE_ALERTS
            .iter()
            .map(|a| rustls::Error::AlertReceived(*a))
            .find(|r| text.contains(&r.to_string()))
        {
            return fatal(&r);
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
pub(crate) fn request_failed(what: &str, e: &(dyn std::error::Error + 'static)) -> AttemptError {
    match tls_failure(e) {
        Some(reason) => AttemptError::Fatal { reason },
        None => AttemptError::Retry {
            reason: format!("{what}: {}", error_chain(e)),
            retry_after: None,
        },
    }
}

/// An error with its causes: reqwest hides the one that matters (connection refused, timed out) in its
/// source chain.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MAX_SERVER_DELAY;

    #[test]
    fn retry_after_is_capped_and_only_seconds_count() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(MAX_SERVER_DELAY)
        );
        assert_eq!(parse_retry_after("86400"), Some(MAX_SERVER_DELAY));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn statuses_are_classified_for_the_policy() {
        for (status, retry) in [
            (408, true),
            (429, true),
            (500, true),
            (503, true),
            (400, false),
            (401, false),
            (404, false),
        ] {
            let e = classify_status(http::StatusCode::from_u16(status).unwrap(), None);
            assert_eq!(
                matches!(e, AttemptError::Retry { .. }),
                retry,
                "{status}: got {e:?}"
            );
        }
    }

    #[test]
    fn event_ids_http_cannot_carry_are_not_sent() {
        assert!(last_event_id_header("").is_none());
        assert!(last_event_id_header("a\u{1}b").is_none());
        assert_eq!(last_event_id_header("42").unwrap(), "42");
        // UTF-8 goes as it is, as browsers send it.
        assert_eq!(
            last_event_id_header("é").unwrap().as_bytes(),
            "é".as_bytes()
        );
    }

    #[test]
    fn notes_are_said_once() {
        let notes = Notes::default();
        notes.once("a".into());
        notes.once("a".into());
        notes.once("b".into());
        assert_eq!(notes.take(), ["a", "b"]);
        notes.once("a".into());
        assert!(notes.take().is_empty());
    }
}
