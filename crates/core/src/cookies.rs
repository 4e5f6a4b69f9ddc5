//! Cookies for connections opened with `withCredentials: true`: the [`CookieJar`] that the caller brings
//! (the Tauri layer's is the calling webview's own cookie store), and the two calls every transport makes
//! around each request: the `Cookie` header for its URL, and the response's `Set-Cookie` stored back.
//!
//! A jar is the app's code, and a webview's store answers through the GUI thread: every call goes to the
//! blocking pool, bounded in time, its panics caught and its answer checked, so a jar that hangs, panics or
//! returns garbage costs a request its cookies (and says so once) but never the engine its task or a
//! connection its `select!`.

use std::{fmt, sync::Arc, time::Duration};

use http::HeaderValue;
use url::Url;

use crate::transport::Notes;

/// Where a connection opened with `withCredentials: true` gets its cookies and stores the ones servers set.
///
/// Both calls may block (a webview's store answers from the GUI thread); the engine makes them on the
/// blocking pool, at most [`COOKIE_WAIT`] each, never while it holds a lock.
pub trait CookieJar: Send + Sync + 'static {
    /// The `Cookie` header for a request to `url` (`name=value; name2=value2`), or `None` when there are no
    /// cookies for it. `Err` says why the store could not be read (without any cookie value): the request
    /// goes without cookies, and the connection notes it once.
    fn cookie_header(&self, url: &Url) -> Result<Option<HeaderValue>, String>;

    /// Stores the `Set-Cookie` values of a response from `url` (a redirect or an error status included).
    /// Returns what it refused, one line each, naming the cookie but never its value; the connection notes
    /// them, and they never fail it.
    fn store(&self, url: &Url, set_cookie: &[HeaderValue]) -> Vec<String>;
}

/// Time a cookie jar may take to answer one call before the request goes on without it.
pub const COOKIE_WAIT: Duration = Duration::from_secs(5);

/// Longest `Cookie` header sent, in bytes: what common servers accept in one request header. A longer one
/// from the jar is left out (and noted), rather than have every request refused.
pub const MAX_COOKIE_HEADER: usize = 16 << 10;

/// Notes one `store` call may add, and their length: a jar's words are relayed, not its memory.
const MAX_STORE_NOTES: usize = 8;
const MAX_NOTE_LEN: usize = 300;

/// A connection's jar, as its options carry it.
#[derive(Clone)]
pub(crate) struct Cookies(pub(crate) Arc<dyn CookieJar>);

impl fmt::Debug for Cookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the cookies themselves.
        f.write_str("CookieJar")
    }
}

/// Where a request went, for a note: scheme, host and port only (a query may hold a token).
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl Cookies {
    /// The `Cookie` header for a request to `url`, if the jar has one that HTTP can carry.
    pub(crate) async fn header_for(&self, url: &Url, notes: &Notes) -> Option<HeaderValue> {
        let jar = self.0.clone();
        let target = url.clone();
        let asked = tokio::task::spawn_blocking(move || jar.cookie_header(&target));
        let answer = match tokio::time::timeout(COOKIE_WAIT, asked).await {
            Err(_) => Err(format!(
                "the cookie store did not answer within {} s",
                COOKIE_WAIT.as_secs()
            )),
            Ok(Err(e)) if e.is_panic() => Err("the cookie store failed (it panicked)".to_owned()),
            Ok(Err(_)) => Err("the cookie store was shut down".to_owned()),
            Ok(Ok(Err(why))) => Err(clip(&why)),
            Ok(Ok(Ok(header))) => Ok(header),
        };
        let header = match answer {
            Ok(h) => h?,
            Err(why) => {
                notes.once(format!("cookies for {} were not sent: {why}", origin(url)));
                return None;
            }
        };
        if header.is_empty() {
            return None;
        }
        // Cookie values are ASCII (RFC 6265); anything else is not a cookie header.
        if header.to_str().is_err() {
            notes.once(format!(
                "cookies for {} were not sent: the cookie store gave a value that is not plain ASCII text",
                origin(url)
            ));
            return None;
        }
        if header.len() > MAX_COOKIE_HEADER {
            notes.once(format!(
                "cookies for {} were not sent: {} bytes of them, more than the {} a request may carry",
                origin(url),
                header.len(),
                MAX_COOKIE_HEADER
            ));
            return None;
        }
        let mut header = header;
        header.set_sensitive(true);
        Some(header)
    }

    /// Stores the `Set-Cookie` values of a response from `url`, and waits until the jar took them, so that
    /// the next request (a redirect's next hop) carries them.
    pub(crate) async fn store_from(&self, url: &Url, headers: &http::HeaderMap, notes: &Notes) {
        let set: Vec<HeaderValue> = headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        if set.is_empty() {
            return;
        }
        let jar = self.0.clone();
        let from = url.clone();
        let stored = tokio::task::spawn_blocking(move || jar.store(&from, &set));
        let refused = match tokio::time::timeout(COOKIE_WAIT, stored).await {
            Err(_) => vec![format!(
                "the cookie store did not answer within {} s",
                COOKIE_WAIT.as_secs()
            )],
            Ok(Err(e)) if e.is_panic() => vec!["the cookie store failed (it panicked)".to_owned()],
            Ok(Err(_)) => vec!["the cookie store was shut down".to_owned()],
            Ok(Ok(refused)) => refused,
        };
        for why in refused.iter().take(MAX_STORE_NOTES) {
            notes.once(format!(
                "a cookie set by {} was not stored: {}",
                origin(url),
                clip(why)
            ));
        }
    }
}

/// A jar's message, cut to a bounded length on a character boundary.
fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_NOTE_LEN) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}
