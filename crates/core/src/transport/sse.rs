//! The Server-Sent Events upstream (reqwest): the request a browser's EventSource would make, plus the app's
//! method, headers and body, with redirects followed by hand so that every hop is checked against the scope;
//! then the response body, read chunk by chunk into the SSE parser, with the idle timeout.
//!
//! The parser's last event id is the resume point: each read reports it when it moved, and the connection
//! sends it back as `Last-Event-ID` on the next open.

use std::{pin::Pin, time::Duration};

use bytes::Bytes;
use futures_util::{stream::BoxStream, StreamExt};
use http::{header, Method, StatusCode};
use tokio::time::{sleep, Instant, Sleep};
use url::Url;

use super::{
    clients::Slot,
    request::{classify_status, error_chain, last_event_id_header, retry_after, store_cookies},
    AttemptError, Env, Event, Notes, Received, UrlGuard,
};
use crate::{
    frame::{FrameBody, Transport},
    options::Resolved,
    policy::{Ended, Progress},
    sse::SseParser,
    time::{deadline, millis, NEVER},
};

/// Hops followed before giving up, as browsers do.
const MAX_REDIRECTS: usize = 10;

/// An open event stream.
pub(crate) struct SseUpstream {
    body: BoxStream<'static, Result<Bytes, String>>,
    parser: SseParser,
    /// The resume point last reported.
    resume: String,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    /// With the heartbeat on, the time a check of the link allows for the next byte (`pongTimeoutMs`).
    check_within: Option<Duration>,
    /// A check out of turn (after a wake or a network change) is waiting for a byte: said in the reason.
    checking: Option<&'static str>,
    /// An oversized event ends the stream after the events before it are reported: the end, held for the
    /// next call.
    ending: Option<Ended>,
    since: Instant,
    delivered: bool,
    /// The stream's place on its HTTP client's lane, given back when the stream is dropped.
    _slot: Option<Slot>,
}

impl SseUpstream {
    /// Reads `body`, resuming after `resume`; no byte for `idleTimeoutMs` (with the heartbeat on) ends it.
    pub(crate) fn new(
        body: BoxStream<'static, Result<Bytes, String>>,
        opts: &Resolved,
        resume: &str,
    ) -> Self {
        let idle = opts
            .heartbeat
            .as_ref()
            .map_or(NEVER, |h| millis(h.idle_timeout_ms));
        Self {
            body,
            parser: SseParser::new(opts.max_message_size).with_last_event_id(resume.to_owned()),
            resume: resume.to_owned(),
            idle,
            idle_timer: Box::pin(sleep(idle)),
            check_within: opts.heartbeat.as_ref().map(|h| millis(h.pong_timeout_ms)),
            checking: None,
            ending: None,
            since: Instant::now(),
            delivered: false,
            _slot: None,
        }
    }

    fn holding(mut self, slot: Slot) -> Self {
        self._slot = Some(slot);
        self
    }

    fn progress(&self) -> Progress {
        Progress {
            uptime: self.since.elapsed(),
            delivered: self.delivered,
        }
    }

    /// Checks the link now, out of turn (`why` is said if it is found dead). An event stream cannot be asked
    /// anything, so the check is a shorter idle timeout: some byte must come within `pongTimeoutMs`, or the
    /// stream is taken for dead and reopened (with `Last-Event-ID`). A stream whose server sends more often
    /// than that is not disturbed. With the heartbeat off nothing is checked: the app said the stream may stay
    /// quiet.
    pub(crate) fn check(&mut self, why: &'static str) {
        let Some(within) = self.check_within else {
            return;
        };
        let by = deadline(within);
        if by < self.idle_timer.deadline() {
            self.idle_timer.as_mut().reset(by);
            self.checking = Some(why);
        }
    }

    pub(crate) async fn next(&mut self) -> Event {
        if let Some(ended) = self.ending.take() {
            return Event::Ended(ended);
        }
        tokio::select! {
                chunk = self.body.next() => match chunk {
                    Some(Ok(bytes)) => {
                        self.checking = None;
                        self.idle_timer.as_mut().reset(deadline(self.idle));
                        let mut received = Received { bytes: bytes.len(), ..Received::default() };
                        let mut events = Vec::new();
                        // Events completed before an oversized one are reported first: their ids are already
                        // the resume point.
                        if let Err(e) = self.parser.feed(&bytes, &mut events) {
                            self.ending = Some(Ended::Attempt(AttemptError::Fatal { reason: e.to_string() }));
                        }
                        received.retry = self.parser.take_retry();
                        if self.parser.committed_id() != self.resume {
                            self.resume = self.parser.committed_id().to_owned();
                            received.resume = Some(self.resume.clone());
                        }
                        self.delivered |= !events.is_empty();
                        received.messages = events
                            .into_iter()
                            .map(|ev| FrameBody::Message {
                                transport: Transport::Sse,
                                event: Some(ev.event),
                                data: ev.data,
                                last_event_id: Some(ev.last_event_id),
                                binary: false,
                            })
                            .collect();
                        // Even a chunk with no whole event is reported: its bytes count, and it kept the stream alive.
                        Event::Received(received)
                    }
                    Some(Err(e)) => {
                        let reason = format!("stream error: {e}");
                        Event::Ended(Ended::Dropped { reason, progress: self.progress() })
                    }
                    // A partial event at the end of a stream is discarded (WHATWG); the resume point stays at
                    // the last blank line.
                    None => Event::Ended(Ended::Finished { progress: self.progress() }),
                },
                _ = &mut self.idle_timer => {
                    let reason = match self.checking {
                        Some(why) => format!(
                            "no data within {} ms ({why})",
                            self.check_within.unwrap_or(self.idle).as_millis()
                        ),
                        None => format!("no data for {} ms (idle timeout)", self.idle.as_millis()),
                    };
                    Event::Ended(Ended::Dropped { reason, progress: self.progress() })
                }
        }
    }
}

/// Sends the request and checks the response: 200 with `text/event-stream`, or a classified error. The
/// response must come by `until` (the connect timeout).
pub(crate) async fn open(
    opts: &Resolved,
    env: &Env,
    resume: &str,
    guard: &dyn UrlGuard,
    notes: &Notes,
    until: Instant,
) -> Result<SseUpstream, AttemptError> {
    let mut url = opts.url.clone();
    let mut method = opts.method.clone();
    let mut body = opts.body.clone();
    let mut same_origin = true;
    let mut slot = env.http.stream(&opts.url);
    slot.turn(until).await;
    for hop in 0..=MAX_REDIRECTS {
        // A hop keeps the stream's lane, with the client certificate its own URL asks for.
        let client = if hop == 0 {
            slot.client()
        } else {
            env.http.on_lane(&url, slot.lane())
        };
        let mut req = client
            .request(method.clone(), url.clone())
            .header(header::ACCEPT, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache");
        // Secret headers go by the URL of each hop; the app's own credentials do not follow a redirect to
        // another origin, as in browsers.
        let own: Vec<_> = opts
            .headers
            .iter()
            .filter(|(name, _)| same_origin || !is_credential(name))
            .cloned()
            .collect();
        // Cookies, like secret headers, go by each hop's own URL, as a browser's jar would choose them.
        for (name, value) in env.headers_with_cookies(opts, &own, &url, notes).await {
            req = req.header(name, value);
        }
        if let Some(id) = last_event_id_header(resume) {
            req = req.header("last-event-id", id);
        }
        if let Some(b) = &body {
            req = req.body(b.clone());
        }
        let response = match tokio::time::timeout_at(until, req.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(env.request_failed("network error", &url, &e).await),
            Err(_) => return Err(unanswered(&slot, hop, opts.connect_timeout)),
        };
        if hop == 0 {
            slot.answered(response.version());
        }
        store_cookies(opts, &url, response.headers(), notes).await;
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let next = redirect_target(&url, &response)?;
            guard.check(&next).map_err(|_| AttemptError::Fatal {
                reason: format!(
                    "redirect to {next} is not allowed by the realtime scope; add it to the capability's allow list"
                ),
            })?;
            same_origin &= next.origin() == opts.url.origin();
            // Fetch's rule: 303, and 301/302 after a POST, continue as a GET without a body.
            if status == StatusCode::SEE_OTHER
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::POST)
            {
                method = Method::GET;
                body = None;
            }
            url = next;
            continue;
        }
        let response = check_response(response)?;
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| error_chain(&e)))
            .boxed();
        return Ok(SseUpstream::new(body, opts, resume).holding(slot));
    }
    Err(AttemptError::Fatal {
        reason: format!("too many redirects (more than {MAX_REDIRECTS})"),
    })
}

/// No answer by the connect timeout. Over an HTTP/2 connection that already carries other streams, that is
/// the server's stream limit (hyper queues a request beyond `SETTINGS_MAX_CONCURRENT_STREAMS` until a stream
/// ends, and an event stream does not end): the connection is taken as full, and the next attempt goes to
/// another one.
fn unanswered(slot: &Slot, hop: usize, limit: Duration) -> AttemptError {
    let ms = limit.as_millis();
    let reason = if hop == 0 && slot.shares_h2() {
        let streams = slot.full();
        format!(
            "timed out after {ms} ms opening the stream: the HTTP/2 connection to {} already carries {streams} event \
             streams, which the server takes as its limit (SETTINGS_MAX_CONCURRENT_STREAMS); the next attempt \
             opens another connection",
            slot.origin()
        )
    } else {
        format!("timed out after {ms} ms opening the stream")
    };
    AttemptError::Retry {
        reason,
        retry_after: None,
    }
}

fn check_response(response: reqwest::Response) -> Result<reqwest::Response, AttemptError> {
    let status = response.status();
    if status == StatusCode::NO_CONTENT {
        return Err(AttemptError::Stop {
            reason: "server answered 204 No Content: it asks the client to stop".into(),
        });
    }
    if status != StatusCode::OK {
        let retry_after = retry_after(response.headers());
        return Err(classify_status(status, retry_after));
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_event_stream(content_type) {
        return Err(AttemptError::NoStream {
            reason: format!(
                "server answered with content type {:?}, not text/event-stream",
                if content_type.is_empty() {
                    "(none)"
                } else {
                    content_type
                }
            ),
        });
    }
    Ok(response)
}

/// `text/event-stream`, ignoring case, parameters and white space.
pub fn is_event_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
}

fn is_credential(name: &http::HeaderName) -> bool {
    name == header::AUTHORIZATION || name == header::COOKIE || name == header::PROXY_AUTHORIZATION
}

fn redirect_target(base: &Url, response: &reqwest::Response) -> Result<Url, AttemptError> {
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AttemptError::Fatal {
            reason: format!(
                "HTTP {} redirect without a Location header",
                response.status().as_u16()
            ),
        })?;
    let next = base.join(location).map_err(|e| AttemptError::Fatal {
        reason: format!("redirect to an invalid URL {location:?}: {e}"),
    })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(AttemptError::Fatal {
            reason: format!("redirect to an unsupported scheme: {next}"),
        });
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{ConnectOptions, HeartbeatOptions, Limits, Toggle};
    use tokio::sync::mpsc;

    /// An upstream over a body whose chunks the test sends, with `max` as maxMessageSize.
    fn upstream(
        max: usize,
        idle_ms: Option<u64>,
    ) -> (SseUpstream, mpsc::UnboundedSender<Result<Bytes, String>>) {
        let opts = ConnectOptions {
            url: "https://example.test/s".into(),
            max_message_size: Some(max),
            heartbeat: Some(idle_ms.map_or(Toggle::Enabled(false), |ms| {
                Toggle::With(HeartbeatOptions {
                    idle_timeout_ms: ms,
                    ..Default::default()
                })
            })),
            ..Default::default()
        }
        .resolve(&Limits::default())
        .expect("valid options");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        (SseUpstream::new(body, &opts, "3"), tx)
    }

    fn datas(r: &Received) -> Vec<(&str, &str)> {
        r.messages
            .iter()
            .map(|m| match m {
                FrameBody::Message {
                    data,
                    last_event_id,
                    ..
                } => (data.as_str(), last_event_id.as_deref().unwrap_or("")),
                other => panic!("expected messages, got {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn events_split_across_chunks_come_whole_with_their_resume_point() {
        let (mut up, tx) = upstream(1 << 20, None);
        for chunk in [
            "retry: 250\nid: 4\nda",
            "ta: a\n\ndata: b\n",
            "\n: keep-alive\n",
        ] {
            tx.send(Ok(Bytes::from(chunk))).unwrap();
        }
        let mut all = Vec::new();
        for _ in 0..3 {
            match up.next().await {
                Event::Received(r) => all.push(r),
                other => panic!("expected a read, got {other:?}"),
            }
        }
        assert_eq!(all[0].retry, Some(250));
        assert!(
            all[0].messages.is_empty() && all[0].resume.is_none(),
            "half an event: nothing yet"
        );
        assert_eq!(datas(&all[1]), [("a", "4")]);
        assert_eq!(all[1].resume.as_deref(), Some("4"));
        // An event without an id keeps the last one, and the id did not move.
        assert_eq!(datas(&all[2]), [("b", "4")]);
        assert_eq!(all[2].resume, None);
        drop(tx);
        match up.next().await {
            Event::Ended(Ended::Finished { progress }) => assert!(progress.delivered),
            other => panic!("expected the end of the stream, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_oversized_event_ends_the_stream_after_the_events_before_it() {
        let (mut up, tx) = upstream(100, None);
        let chunk = format!("id: 5\ndata: ok\n\ndata: {}\n\n", "x".repeat(200));
        tx.send(Ok(Bytes::from(chunk))).unwrap();
        match up.next().await {
            Event::Received(r) => {
                assert_eq!(datas(&r), [("ok", "5")]);
                assert_eq!(r.resume.as_deref(), Some("5"));
            }
            other => panic!("expected the good event first, got {other:?}"),
        }
        match up.next().await {
            Event::Ended(Ended::Attempt(AttemptError::Fatal { reason })) => {
                assert!(reason.contains("larger than 100 bytes"), "got {reason}")
            }
            other => panic!("expected a fatal end, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_ends_at_the_idle_timeout_and_any_byte_resets_it() {
        let (mut up, tx) = upstream(1 << 20, Some(1000));
        tokio::time::sleep(Duration::from_millis(900)).await;
        tx.send(Ok(Bytes::from(": still here\n"))).unwrap();
        assert!(matches!(up.next().await, Event::Received(_)));
        let started = Instant::now();
        match up.next().await {
            Event::Ended(Ended::Dropped { reason, progress }) => {
                assert_eq!(reason, "no data for 1000 ms (idle timeout)");
                assert!(!progress.delivered);
            }
            other => panic!("expected the idle timeout, got {other:?}"),
        }
        assert_eq!(started.elapsed(), Duration::from_millis(1000));
    }

    #[tokio::test]
    async fn a_read_error_drops_the_stream_naming_it() {
        let (mut up, tx) = upstream(1 << 20, None);
        tx.send(Err("connection reset".into())).unwrap();
        match up.next().await {
            Event::Ended(Ended::Dropped { reason, .. }) => {
                assert_eq!(reason, "stream error: connection reset")
            }
            other => panic!("expected a drop, got {other:?}"),
        }
    }

    #[test]
    fn content_type_essence() {
        for (ct, ok) in [
            ("text/event-stream", true),
            ("Text/Event-Stream; charset=utf-8", true),
            (" text/event-stream ;x=y", true),
            ("application/json", false),
            ("text/event-streams", false),
            ("", false),
        ] {
            assert_eq!(is_event_stream(ct), ok, "expected {ok} for {ct:?}");
        }
    }
}
