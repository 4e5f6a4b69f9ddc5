//! HTTP polling, the degraded path, as an upstream: one conditional GET at a time every `intervalMs` (timed
//! from the end of the previous poll), reporting only what changed, and backing off without ending while
//! polls fail. With a `sendUrl`, it also writes: each message is POSTed there, one at a time.
//!
//! A poll remembers the validators (`ETag`, `Last-Modified`) and the last body, so a 304 or an identical body
//! yields nothing. A `text/event-stream` body is parsed as SSE and only events after the last event id are
//! relayed, so a finite SSE document can be polled without repeats.

use std::{
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use http::{header, StatusCode};
use tokio::time::{sleep, Sleep};
use url::Url;

use super::{
    post::Poster,
    request::{classify_status, error_chain, last_event_id_header, retry_after},
    AttemptError, Env, Event, Notes, Received, Writable,
};
use crate::{
    cookies::Cookies,
    frame::{FrameBody, Transport},
    options::Resolved,
    policy::Ended,
    queue::Outgoing,
    sse::{SseEvent, SseParser},
    time::{deadline, millis, server_delay, NEVER},
};

/// Longest wait between failed polls, unless the server asks for more with `Retry-After`.
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(30);

/// One poll in flight; it hands the poller's memory back with its answer.
type Fetching = Pin<Box<dyn Future<Output = (Poller, Result<Polled, AttemptError>)> + Send>>;
/// Starts one poll from the poller's memory and the resume point.
type Fetch = Box<dyn FnMut(Poller, &str) -> Fetching + Send>;

/// Polling, as an upstream.
pub(crate) struct PollUpstream {
    fetch: Fetch,
    /// The poller's memory, while no poll is in flight.
    poller: Option<Poller>,
    fetching: Option<Fetching>,
    resume: String,
    interval: Duration,
    failures: u32,
    next_poll: Pin<Box<Sleep>>,
    /// Where sends go while polling (`sendUrl`); without one, sends wait in the queue.
    poster: Option<Poster>,
}

impl PollUpstream {
    /// Polls `fallback.pollUrl` (or `url` itself, for `transport: "poll"`) with the connection's headers,
    /// resuming after `resume`; POSTs sends to the send URL when `posts` says so (a WebSocket that polls:
    /// other connections POST beside the stream, whatever its phase).
    pub(crate) fn new(
        opts: Arc<Resolved>,
        env: Arc<Env>,
        notes: Arc<Notes>,
        resume: &str,
        posts: bool,
    ) -> Self {
        let fallback = opts.fallback.clone().unwrap_or_default();
        let url = fallback
            .poll_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .unwrap_or_else(|| opts.url.clone());
        let poster = opts
            .post_url()
            .filter(|_| posts)
            .map(|u| Poster::new(opts.clone(), env.clone(), notes.clone(), u));
        let fetch: Fetch = Box::new(move |mut poller: Poller, resume: &str| {
            let (env, opts, url, notes) = (env.clone(), opts.clone(), url.clone(), notes.clone());
            let resume = resume.to_owned();
            Box::pin(async move {
                let polled = tokio::time::timeout(opts.connect_timeout, async {
                    let headers = env
                        .headers_with_cookies(&opts, &opts.headers, &url, &notes)
                        .await;
                    let jar = opts.cookies.as_ref().map(|c| (c, &*notes));
                    poller
                        .poll(&env, &url, &headers, &resume, opts.max_message_size, jar)
                        .await
                })
                .await
                .unwrap_or_else(|_| {
                    Err(AttemptError::Retry {
                        reason: "poll timed out".into(),
                        retry_after: None,
                    })
                });
                (poller, polled)
            })
        });
        Self::with(fetch, poster, millis(fallback.interval_ms), resume)
    }

    fn with(fetch: Fetch, poster: Option<Poster>, interval: Duration, resume: &str) -> Self {
        Self {
            fetch,
            poller: Some(Poller::default()),
            fetching: None,
            resume: resume.to_owned(),
            interval,
            failures: 0,
            // The first poll goes at once.
            next_poll: Box::pin(sleep(Duration::ZERO)),
            poster,
        }
    }

    /// Polls at once, skipping the interval or a backoff after failed polls (after a wake or a network
    /// change); a poll in flight is left to finish.
    pub(crate) fn poll_now(&mut self) {
        if self.fetching.is_none() {
            self.next_poll.as_mut().reset(tokio::time::Instant::now());
        }
        if let Some(p) = &self.poster {
            p.nudge();
        }
    }

    /// No poll is in flight: the stream may be probed now without the two overlapping.
    pub(crate) fn idle(&self) -> bool {
        self.fetching.is_none()
    }

    pub(crate) fn writable(&self) -> Writable {
        match &self.poster {
            None => Writable::Never,
            Some(p) if p.busy() => Writable::Busy,
            Some(_) => Writable::Now,
        }
    }

    pub(crate) fn write(&mut self, msg: Outgoing, content_type: Option<http::HeaderValue>) {
        if let Some(p) = &mut self.poster {
            p.start(msg, content_type);
        }
    }

    /// The next write's end only, polls paused: what the connection waits for while it probes the stream.
    pub(crate) async fn next_written(&mut self) -> Event {
        match &mut self.poster {
            Some(p) => Event::Posted(p.done().await),
            None => std::future::pending().await,
        }
    }

    pub(crate) async fn next(&mut self) -> Event {
        loop {
            tokio::select! {
                biased;
                written = async { match self.poster.as_mut() { Some(p) => p.done().await, None => std::future::pending().await } }, if self.poster.as_ref().is_some_and(Poster::busy) => {
                    return Event::Posted(written);
                }
                (poller, polled) = async { match self.fetching.as_mut() { Some(f) => f.await, None => std::future::pending().await } }, if self.fetching.is_some() => {
                    self.fetching = None;
                    self.poller = Some(poller);
                    return self.answered(polled);
                }
                _ = &mut self.next_poll, if self.fetching.is_none() => {
                    if let Some(poller) = self.poller.take() {
                        self.fetching = Some((self.fetch)(poller, &self.resume));
                    }
                    self.next_poll.as_mut().reset(deadline(NEVER));
                }
            }
        }
    }

    /// What a poll's answer means, and when the next poll goes.
    fn answered(&mut self, polled: Result<Polled, AttemptError>) -> Event {
        let mut wait = self.interval;
        let event = match polled {
            Ok(polled) => {
                self.failures = 0;
                self.relay(polled)
            }
            Err(AttemptError::Fatal { reason }) => {
                return Event::Ended(Ended::Attempt(AttemptError::Fatal { reason }))
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                wait = poll_backoff(self.interval, self.failures, &e);
                Event::Trouble(format!(
                    "{}; polling again in {} ms",
                    e.reason(),
                    wait.as_millis()
                ))
            }
        };
        self.next_poll.as_mut().reset(deadline(wait));
        event
    }

    fn relay(&mut self, polled: Polled) -> Event {
        let mut received = Received::default();
        match polled {
            // Nothing new is still news: the connection learns that no poll is in flight, and may probe.
            Polled::Nothing => {}
            Polled::Body(data) => {
                received.bytes = data.len();
                received.messages.push(FrameBody::Message {
                    transport: Transport::Poll,
                    event: None,
                    data,
                    last_event_id: None,
                    binary: false,
                });
            }
            Polled::Events(events) => {
                for ev in events {
                    received.bytes += ev.data.len();
                    if !ev.last_event_id.is_empty() && ev.last_event_id != self.resume {
                        self.resume.clone_from(&ev.last_event_id);
                        received.resume = Some(self.resume.clone());
                    }
                    received.messages.push(FrameBody::Message {
                        transport: Transport::Poll,
                        event: Some(ev.event),
                        data: ev.data,
                        last_event_id: Some(ev.last_event_id),
                        binary: false,
                    });
                }
            }
        }
        Event::Received(received)
    }
}

/// The wait after `failures` failed polls in a row: the interval doubled per failure up to 30 s (or the
/// interval, if longer), or what the server asked for with `Retry-After` when that is longer still.
fn poll_backoff(interval: Duration, failures: u32, e: &AttemptError) -> Duration {
    let backoff = interval
        .saturating_mul(1 << failures.min(4))
        .min(MAX_POLL_BACKOFF.max(interval));
    match e {
        AttemptError::Retry {
            retry_after: Some(ra),
            ..
        } => backoff.max(server_delay(*ra)),
        _ => backoff,
    }
}

/// What one poll found.
#[derive(Debug, PartialEq)]
pub(crate) enum Polled {
    /// 304, an identical body, or an SSE document with no event newer than the last id.
    Nothing,
    /// A body that changed.
    Body(String),
    /// SSE events newer than the last event id, in order.
    Events(Vec<SseEvent>),
}

/// The memory of a poller between polls.
#[derive(Debug, Default)]
pub(crate) struct Poller {
    etag: Option<http::HeaderValue>,
    last_modified: Option<http::HeaderValue>,
    body_hash: Option<u64>,
}

impl Poller {
    /// One GET of `url` with the connection's headers, conditional on the previous answer.
    pub(crate) async fn poll(
        &mut self,
        env: &Env,
        url: &Url,
        headers: &[(http::HeaderName, http::HeaderValue)],
        last_event_id: &str,
        max_size: usize,
        jar: Option<(&Cookies, &Notes)>,
    ) -> Result<Polled, AttemptError> {
        let mut req = env.http.for_request(url).get(url.clone());
        for (n, v) in headers {
            req = req.header(n.clone(), v.clone());
        }
        if let Some(etag) = &self.etag {
            req = req.header(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = &self.last_modified {
            req = req.header(header::IF_MODIFIED_SINCE, lm.clone());
        }
        if let Some(id) = last_event_id_header(last_event_id) {
            req = req.header("last-event-id", id);
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(env.request_failed("poll failed", url, &e).await),
        };
        if let Some((jar, notes)) = jar {
            jar.store_from(url, response.headers(), notes).await;
        }
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Polled::Nothing);
        }
        if !status.is_success() {
            let retry_after = retry_after(response.headers());
            return Err(match classify_status(status, retry_after) {
                // Only credentials problems end polling; anything else may pass, so keep polling.
                AttemptError::Fatal { reason } if !matches!(status.as_u16(), 401 | 403) => {
                    AttemptError::Retry {
                        reason: format!("poll answered {reason}"),
                        retry_after: None,
                    }
                }
                AttemptError::Retry {
                    reason,
                    retry_after,
                } => AttemptError::Retry {
                    reason: format!("poll answered {reason}"),
                    retry_after,
                },
                other => other,
            });
        }
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(super::sse::is_event_stream);
        let etag = response.headers().get(header::ETAG).cloned();
        let last_modified = response.headers().get(header::LAST_MODIFIED).cloned();
        let body = read_limited(response, max_size).await?;
        self.etag = etag;
        self.last_modified = last_modified;

        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        let hash = hasher.finish();
        if self.body_hash == Some(hash) {
            return Ok(Polled::Nothing);
        }
        self.body_hash = Some(hash);

        if is_sse {
            let mut parser = SseParser::new(max_size);
            let mut events = Vec::new();
            parser
                .feed(&body, &mut events)
                .map_err(|e| AttemptError::Fatal {
                    reason: e.to_string(),
                })?;
            let mut fresh = after_last_id(events, last_event_id);
            // An event before the document's first `id:` keeps the id we had, as a stream's would: polling
            // must not erase the resume point.
            for ev in &mut fresh {
                if ev.last_event_id.is_empty() {
                    ev.last_event_id = last_event_id.to_owned();
                }
            }
            return Ok(if fresh.is_empty() {
                Polled::Nothing
            } else {
                Polled::Events(fresh)
            });
        }
        Ok(Polled::Body(String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Events after the one carrying `last_id`; all of them when no event carries it (the server already
/// answered from `Last-Event-ID`, or the ids started afresh).
pub(crate) fn after_last_id(events: Vec<SseEvent>, last_id: &str) -> Vec<SseEvent> {
    if last_id.is_empty() {
        return events;
    }
    match events.iter().rposition(|e| e.last_event_id == last_id) {
        // Events after the last one that carried our id (an id may repeat on events without their own id).
        Some(i) => events.into_iter().skip(i + 1).collect(),
        None => events,
    }
}

async fn read_limited(
    mut response: reqwest::Response,
    max_size: usize,
) -> Result<Vec<u8>, AttemptError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max_size {
                    return Err(AttemptError::Fatal {
                        reason: format!(
                            "poll answer larger than {max_size} bytes; raise maxMessageSize"
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(AttemptError::Retry {
                    reason: format!("poll failed: {}", error_chain(&e)),
                    retry_after: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MAX_SERVER_DELAY;
    use std::sync::Mutex;

    /// A poll upstream whose polls answer from `script`, in order, then `Nothing` for ever; it records the
    /// resume point each poll was sent with.
    fn scripted(
        script: Vec<Result<Polled, AttemptError>>,
        interval_ms: u64,
    ) -> (PollUpstream, Arc<Mutex<Vec<String>>>) {
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = sent.clone();
        let fetch: Fetch = Box::new(move |poller, resume: &str| {
            seen.lock().unwrap().push(resume.to_owned());
            let next = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(Polled::Nothing));
            Box::pin(async move { (poller, next) })
        });
        (
            PollUpstream::with(fetch, None, Duration::from_millis(interval_ms), "7"),
            sent,
        )
    }

    fn retry(after: Option<u64>) -> AttemptError {
        AttemptError::Retry {
            reason: "poll answered HTTP 503".into(),
            retry_after: after.map(Duration::from_secs),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failed_polls_back_off_and_say_when_the_next_one_goes() {
        let (mut up, _) = scripted(
            vec![
                Err(retry(None)),
                Err(retry(None)),
                Err(retry(Some(u64::MAX))),
                Ok(Polled::Body("x".into())),
            ],
            1000,
        );
        let mut waits = Vec::new();
        for _ in 0..3 {
            let started = tokio::time::Instant::now();
            match up.next().await {
                Event::Trouble(t) => waits.push((t, started.elapsed())),
                other => panic!("expected a failed poll, got {other:?}"),
            }
        }
        let said: Vec<_> = waits
            .iter()
            .map(|(t, _)| t.rsplit(' ').nth(1).unwrap().to_owned())
            .collect();
        assert_eq!(
            said,
            ["2000", "4000", &MAX_SERVER_DELAY.as_millis().to_string()],
            "got {waits:?}"
        );
        // Each poll went when the previous one said it would.
        assert_eq!(waits[1].1, Duration::from_millis(2000));
        assert_eq!(waits[2].1, Duration::from_millis(4000));
        match up.next().await {
            Event::Received(r) => assert_eq!(r.messages.len(), 1),
            other => panic!("expected the body, got {other:?}"),
        }
    }

    /// A poll that finds nothing new still reports, so that the connection sees no poll in flight and can
    /// probe the stream between two polls.
    #[tokio::test(start_paused = true)]
    async fn a_poll_that_finds_nothing_still_reports_and_leaves_the_poller_idle() {
        let (mut up, sent) = scripted(vec![Ok(Polled::Nothing), Ok(Polled::Nothing)], 1000);
        for _ in 0..2 {
            assert_eq!(up.next().await, Event::Received(Received::default()));
            assert!(up.idle(), "no poll in flight between two polls");
        }
        assert_eq!(sent.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_resume_point_follows_the_events_and_credentials_problems_end() {
        let (mut up, sent) = scripted(
            vec![
                Ok(Polled::Events(vec![ev("7", "kept 7"), ev("8", "moved on")])),
                Ok(Polled::Nothing),
                Err(AttemptError::Fatal {
                    reason: "HTTP 401".into(),
                }),
            ],
            100,
        );
        match up.next().await {
            Event::Received(r) => {
                assert_eq!(r.resume.as_deref(), Some("8"));
                assert_eq!(r.messages.len(), 2);
            }
            other => panic!("expected events, got {other:?}"),
        }
        assert_eq!(up.next().await, Event::Received(Received::default()));
        match up.next().await {
            Event::Ended(Ended::Attempt(AttemptError::Fatal { reason })) => {
                assert_eq!(reason, "HTTP 401")
            }
            other => panic!("expected the end, got {other:?}"),
        }
        assert_eq!(*sent.lock().unwrap(), ["7", "8", "8"]);
    }

    fn ev(id: &str, data: &str) -> SseEvent {
        SseEvent {
            event: "message".into(),
            data: data.into(),
            last_event_id: id.into(),
        }
    }

    #[test]
    fn only_events_after_the_last_id() {
        let doc = || vec![ev("1", "a"), ev("2", "b"), ev("3", "c")];
        let ids = |v: Vec<SseEvent>| v.into_iter().map(|e| e.data).collect::<Vec<_>>();
        assert_eq!(ids(after_last_id(doc(), "")), ["a", "b", "c"]);
        assert_eq!(ids(after_last_id(doc(), "2")), ["c"]);
        assert_eq!(ids(after_last_id(doc(), "3")), Vec::<String>::new());
        // The server answered from Last-Event-ID: nothing of ours in it, so all is new.
        assert_eq!(ids(after_last_id(doc(), "0")), ["a", "b", "c"]);
        // An event without its own id carries the previous one; skip through the last such.
        assert_eq!(
            ids(after_last_id(
                vec![ev("1", "a"), ev("1", "b"), ev("2", "c")],
                "1"
            )),
            ["c"]
        );
    }
}
