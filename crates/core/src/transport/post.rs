//! Sends over HTTP: each message POSTed to the send URL with the connection's headers (and the app's secret
//! ones for that URL), one at a time, so that the server gets them in the order they were sent.
//!
//! A POST that fails for a reason worth retrying (network, timeout, 408, 429, 5xx) is tried again, after the
//! connection's reconnect backoff (or a longer `Retry-After`), before any later message goes: order is never
//! traded for speed. Any other answer fails that message alone. Every try carries the same `Idempotency-Key`,
//! so a server can tell a retry of a message it already took (its answer lost) from a new message.

use std::{future::Future, pin::Pin, sync::Arc};

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::Notify;
use url::Url;

use super::{
    request::{classify_status, retry_after, store_cookies},
    AttemptError, Env, Notes,
};
use crate::{backoff::Backoff, options::Resolved, queue::Outgoing, time::deadline};

/// Bytes of a POST's answer read (and dropped) so that its connection can be kept alive; a longer answer
/// closes the connection instead of filling memory or waiting on an endless body.
const ANSWER_READ: u64 = 64 << 10;
/// Characters of a text message quoted in the error that says which send failed.
const QUOTED: usize = 24;

type Posting = Pin<Box<dyn Future<Output = Result<(), PostFailed>> + Send>>;

/// A message that the send URL did not take.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PostFailed {
    /// Which send: its number among this poster's, its size, content type and first characters.
    pub what: String,
    /// Why, naming the URL (without its query) and the status or the network error; for the caller.
    pub why: String,
}

/// POSTs messages to one URL, one at a time, retrying each by the reconnect policy.
pub(crate) struct Poster {
    opts: Arc<Resolved>,
    env: Arc<Env>,
    notes: Arc<Notes>,
    url: Url,
    backoff: Option<Backoff>,
    /// Messages started so far: the number of the latest.
    count: u64,
    /// What every `Idempotency-Key` of this poster starts with.
    key: String,
    /// Cuts the POST in flight's next wait short (the stream came back: the server is likely up again). One
    /// per POST, so a nudge never shortens a later message's wait.
    wake: Arc<Notify>,
    in_flight: Option<Posting>,
}

impl Poster {
    pub(crate) fn new(opts: Arc<Resolved>, env: Arc<Env>, notes: Arc<Notes>, url: Url) -> Self {
        Self {
            backoff: opts.reconnect.clone().map(Backoff::new),
            opts,
            env,
            notes,
            url,
            count: 0,
            key: uuid::Uuid::new_v4().simple().to_string(),
            wake: Arc::default(),
            in_flight: None,
        }
    }

    pub(crate) fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts POSTing `msg`; [`Poster::done`] tells how it ended. Its `Content-Type`: `content_type` when
    /// the send gave one, else one among the connection's headers, else text or bytes by its kind.
    pub(crate) fn start(&mut self, msg: Outgoing, content_type: Option<HeaderValue>) {
        self.count = self.count.saturating_add(1);
        let n = self.count;
        let (body, by_kind) = match msg {
            Outgoing::Text(t) => (
                Bytes::from(t),
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            Outgoing::Binary(b) => (
                Bytes::from(b),
                HeaderValue::from_static("application/octet-stream"),
            ),
        };
        let own = self
            .opts
            .headers
            .iter()
            .find(|(name, _)| name == http::header::CONTENT_TYPE)
            .map(|(_, v)| v.clone());
        let content_type = Typed {
            given: content_type,
            by_kind,
        };
        let what = describe(
            n,
            &body,
            content_type
                .given
                .as_ref()
                .or(own.as_ref())
                .unwrap_or(&content_type.by_kind),
        );
        // Hex digits and a number: always a valid header value.
        let key = HeaderValue::from_str(&format!("{}-{n}", self.key))
            .unwrap_or(HeaderValue::from_static("0"));
        let (opts, env, notes, url) = (
            self.opts.clone(),
            self.env.clone(),
            self.notes.clone(),
            self.url.clone(),
        );
        self.wake = Arc::default();
        let (backoff, wake) = (self.backoff.clone(), self.wake.clone());
        self.in_flight = Some(Box::pin(async move {
            let shown = shown(&url);
            let mut tries: u32 = 0;
            loop {
                tries = tries.saturating_add(1);
                let (reason, retry_after) =
                    match post_once(&opts, &env, &notes, &url, &body, &content_type, &key).await {
                        Ok(()) => return Ok(()),
                        Err(AttemptError::Retry {
                            reason,
                            retry_after,
                        }) => (reason, retry_after),
                        // A status (`HTTP 400 Bad Request`) the server answered, or a certificate refused.
                        Err(e) if e.reason().starts_with("HTTP ") => {
                            return Err(PostFailed {
                                what,
                                why: format!("{shown} answered {}", e.reason()),
                            })
                        }
                        Err(e) => {
                            return Err(PostFailed {
                                what,
                                why: format!("{shown}: {}", e.reason()),
                            })
                        }
                    };
                // Attempt numbers as the reconnect policy counts them: the first retry is attempt 1.
                let Some(b) = backoff.as_ref().filter(|b| b.may_retry(tries)) else {
                    let policy = match &backoff {
                        Some(_) => "reconnect.maxRetries",
                        None => "reconnect is off",
                    };
                    let tries = if tries == 1 {
                        "1 try".to_owned()
                    } else {
                        format!("{tries} tries")
                    };
                    return Err(PostFailed {
                        what,
                        why: format!(
                            "{shown}: {reason}; gave up after {tries} ({policy}), it may not have reached \
                             the server"
                        ),
                    });
                };
                let wait = b.with_retry_after(b.delay(tries, fastrand::f64()), retry_after);
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline(wait)) => {}
                    _ = wake.notified() => {}
                }
            }
        }));
    }

    /// How the POST in flight ended; never, while none is. Cancel-safe: the POST stays in flight.
    pub(crate) async fn done(&mut self) -> Result<(), PostFailed> {
        let Some(posting) = self.in_flight.as_mut() else {
            return std::future::pending().await;
        };
        let result = posting.await;
        self.in_flight = None;
        result
    }

    /// The message in flight, if it waits to be tried again, is tried now (or skips its next wait, if a try
    /// is under way).
    pub(crate) fn nudge(&self) {
        if self.busy() {
            self.wake.notify_one();
        }
    }

    /// Drops the POST in flight, if any; true when there was one (its sender must be told).
    pub(crate) fn cancel(&mut self) -> bool {
        self.in_flight.take().is_some()
    }
}

/// One try: `Ok` on a 2xx answer, else the failure classified as the reconnect policy classifies a stream's.
async fn post_once(
    opts: &Resolved,
    env: &Env,
    notes: &Notes,
    url: &Url,
    body: &Bytes,
    content_type: &Typed,
    key: &HeaderValue,
) -> Result<(), AttemptError> {
    // Secret headers are asked for on every try: a token the app refreshed meanwhile is the one sent.
    let mut headers = env
        .headers_with_cookies(opts, &opts.headers, url, notes)
        .await;
    let has = |headers: &[(http::HeaderName, HeaderValue)], name: &str| {
        headers.iter().any(|(n, _)| n.as_str() == name)
    };
    match &content_type.given {
        Some(given) => {
            headers.retain(|(n, _)| n != http::header::CONTENT_TYPE);
            headers.push((http::header::CONTENT_TYPE, given.clone()));
        }
        None if has(&headers, "content-type") => {}
        None => headers.push((http::header::CONTENT_TYPE, content_type.by_kind.clone())),
    }
    // An app that sets its own key keeps it.
    if !has(&headers, "idempotency-key") {
        headers.push((
            http::HeaderName::from_static("idempotency-key"),
            key.clone(),
        ));
    }
    let mut post = env
        .http
        .for_request(url)
        .post(url.clone())
        .body(body.clone());
    for (n, v) in headers {
        post = post.header(n, v);
    }
    let limit = opts.connect_timeout;
    let answered = async {
        let r = match post.send().await {
            Ok(r) => r,
            // Without the URL, which reqwest would print whole, query and all.
            Err(e) => {
                return Err(env
                    .request_failed("POST failed", url, &e.without_url())
                    .await)
            }
        };
        store_cookies(opts, url, r.headers(), notes).await;
        let status = r.status();
        if !status.is_success() {
            return Err(classify_status(status, retry_after(r.headers())));
        }
        Ok(r)
    };
    let r = tokio::time::timeout(limit, answered)
        .await
        .unwrap_or_else(|_| {
            Err(AttemptError::Retry {
                reason: format!("no answer within {} ms", limit.as_millis()),
                retry_after: None,
            })
        })?;
    // Taken. A short answer is read to its end, so that the connection can carry the next message; a long or
    // endless one is dropped with its connection. Either way the outcome stands.
    if r.content_length().is_some_and(|n| n <= ANSWER_READ) {
        let _ = tokio::time::timeout(limit, r.bytes()).await;
    }
    Ok(())
}

/// A POST's `Content-Type`: the one its send gave, or, failing one among the connection's headers, the one
/// its kind implies.
struct Typed {
    given: Option<HeaderValue>,
    by_kind: HeaderValue,
}

/// The URL without its query, fragment or credentials: errors name where a send went, not its secrets.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Which send this is, for the `error` frame: its number, size, type, and the start of a text.
fn describe(n: u64, body: &[u8], content_type: &HeaderValue) -> String {
    let ty = content_type.to_str().unwrap_or("?");
    let start = if ty.starts_with("text/") || ty.contains("json") {
        std::str::from_utf8(body).ok().map(|t| {
            let quoted: String = t.chars().take(QUOTED).collect();
            let more = if quoted.len() < t.len() { "…" } else { "" };
            format!(", {quoted:?}{more}")
        })
    } else {
        None
    };
    format!(
        "send #{n} ({} bytes of {ty}{})",
        body.len(),
        start.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_send_is_named_without_its_url_secrets() {
        let url = Url::parse("https://user:pw@chat.test/api/send?token=s3cret#x").unwrap();
        assert_eq!(shown(&url), "https://chat.test/api/send");
        let json = HeaderValue::from_static("application/json");
        assert_eq!(
            describe(3, br#"{"text":"hello"}"#, &json),
            r#"send #3 (16 bytes of application/json, "{\"text\":\"hello\"}")"#
        );
        let long = "é".repeat(40);
        let text = HeaderValue::from_static("text/plain; charset=utf-8");
        let d = describe(1, long.as_bytes(), &text);
        assert!(
            d.starts_with("send #1 (80 bytes of text/plain; charset=utf-8, \"ééé")
                && d.ends_with("\"…)"),
            "got {d}"
        );
        let bin = HeaderValue::from_static("application/octet-stream");
        assert_eq!(
            describe(2, &[0, 1, 2], &bin),
            "send #2 (3 bytes of application/octet-stream)"
        );
    }
}
