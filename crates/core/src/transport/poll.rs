//! HTTP polling, the degraded path: one conditional GET at a time, reporting only what changed.
//!
//! It remembers the validators (`ETag`, `Last-Modified`) and the last body, so a 304 or an identical body
//! yields nothing. A `text/event-stream` body is parsed as SSE and only events after the last event id are
//! returned, so a finite SSE document can be polled without repeats.

use std::hash::{DefaultHasher, Hash, Hasher};

use http::{header, StatusCode};
use url::Url;

use super::{classify_status, request_failed, sse::error_chain, AttemptError};
use crate::{
    backoff::retry_after,
    sse::{SseEvent, SseParser},
};

/// What one poll found.
#[derive(Debug, PartialEq)]
pub enum Polled {
    /// 304, an identical body, or an SSE document with no event newer than the last id.
    Nothing,
    /// A body that changed.
    Body(String),
    /// SSE events newer than the last event id, in order.
    Events(Vec<SseEvent>),
}

/// The memory of a poller between polls.
#[derive(Debug, Default)]
pub struct Poller {
    etag: Option<http::HeaderValue>,
    last_modified: Option<http::HeaderValue>,
    body_hash: Option<u64>,
}

impl Poller {
    /// One GET of `url` with the connection's headers, conditional on the previous answer.
    pub async fn poll(
        &mut self,
        client: &reqwest::Client,
        url: &Url,
        headers: &[(http::HeaderName, http::HeaderValue)],
        last_event_id: &str,
        max_size: usize,
    ) -> Result<Polled, AttemptError> {
        let mut req = client.get(url.clone());
        for (n, v) in headers {
            req = req.header(n.clone(), v.clone());
        }
        if let Some(etag) = &self.etag {
            req = req.header(header::IF_NONE_MATCH, etag.clone());
        }
        if let Some(lm) = &self.last_modified {
            req = req.header(header::IF_MODIFIED_SINCE, lm.clone());
        }
        if let Some(id) = super::last_event_id_header(last_event_id) {
            req = req.header("last-event-id", id);
        }
        let response = req
            .send()
            .await
            .map_err(|e| request_failed("poll failed", &e))?;
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
pub fn after_last_id(events: Vec<SseEvent>, last_id: &str) -> Vec<SseEvent> {
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
