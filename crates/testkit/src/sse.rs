//! A finite Server-Sent Events document of the events after `Last-Event-ID`: what a server answers a poller,
//! and what the demo server's `/feed`, the bench server's `/poll` and the tests' poll endpoints serve.
//!
//! The server owns which events exist; this module owns the rest: reading the resume point from the request,
//! writing the events in the wire format, and the answer's head.

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

/// One event of a document: `event:` (when named), `id:` and one `data:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: u64,
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    pub fn new(id: u64, data: impl Into<String>) -> Self {
        Self {
            id,
            event: None,
            data: data.into(),
        }
    }

    /// The same event with an `event:` name.
    pub fn named(self, event: impl Into<String>) -> Self {
        Self {
            event: Some(event.into()),
            ..self
        }
    }

    /// The event in the wire format, blank line included. `data` is written as one line: callers keep it free
    /// of line breaks.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    pub fn write_to(&self, out: &mut String) {
        if let Some(event) = &self.event {
            out.push_str("event: ");
            out.push_str(event);
            out.push('\n');
        }
        out.push_str(&format!("id: {}\ndata: {}\n\n", self.id, self.data));
    }
}

/// `events`, in order, as one document.
pub fn document(events: impl IntoIterator<Item = Event>) -> String {
    let mut out = String::new();
    for event in events {
        event.write_to(&mut out);
    }
    out
}

/// The request's `Last-Event-ID`, if it is a number (surrounding blanks allowed). Ids of this kit's servers are
/// numbers; anything else is no resume point.
pub fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Answers a poll with a finite document: `events(after)`, where `after` is the later of `since` (a resume point
/// the request gives in its own way, such as a query parameter) and the request's `Last-Event-ID`, 0 for none.
/// `200`, `text/event-stream`, `Cache-Control: no-cache`; the caller may add headers to the answer.
pub fn after_last_event_id<I>(
    headers: &HeaderMap,
    since: Option<u64>,
    events: impl FnOnce(u64) -> I,
) -> Response
where
    I: IntoIterator<Item = Event>,
{
    let after = since.max(last_event_id(headers)).unwrap_or(0);
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        document(events(after)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(last: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = last {
            h.insert("last-event-id", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn events_are_written_in_the_wire_format() {
        let doc = document([Event::new(1, "a"), Event::new(2, "b c").named("notice")]);
        assert_eq!(doc, "id: 1\ndata: a\n\nevent: notice\nid: 2\ndata: b c\n\n");
    }

    #[test]
    fn the_resume_point_is_the_later_of_since_and_last_event_id() {
        for (since, last, want) in [
            (None, None, 0),
            (None, Some(" 5 "), 5),
            (Some(7), Some("5"), 7),
            (Some(3), Some("5"), 5),
            (None, Some("abc"), 0),
            (Some(2), Some(""), 2),
        ] {
            let mut got = None;
            let _ = after_last_event_id(&headers(last), since, |after| {
                got = Some(after);
                Vec::new()
            });
            assert_eq!(
                got,
                Some(want),
                "since {since:?}, Last-Event-ID {last:?}: expected {want}, got {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_answer_is_an_event_stream_that_is_not_cached() {
        let r = after_last_event_id(&headers(Some("1")), None, |after| {
            (after + 1..=3).map(|i| Event::new(i, format!("event {i}")))
        });
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert_eq!(
            &body[..],
            b"id: 2\ndata: event 2\n\nid: 3\ndata: event 3\n\n"
        );
    }
}
