//! `GET /summary/poll?query=...`: the search summary for pollers, what the summary panel's `fallback.pollUrl`
//! asks for while streaming is refused. A finite `text/event-stream` document of the summary's events after
//! `Last-Event-ID`, with the ids and event names of `/summary`, so a client can go from the stream to polls and
//! back without a word twice or missing.
//!
//! A poll gets at most [`SUMMARY_POLL_WORDS`] words, as a generator that hands out what it has written so far:
//! the summary keeps arriving poll by poll instead of all at once. After the last word comes `done`; the `tick`s
//! are the stream's alone (a poller has nothing to wait for).

use std::sync::atomic::Ordering;

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
    routing::get,
    Router,
};
use realtime_testkit::sse;

use super::{samples::SummaryRequest, summary_words, AppState, DEFAULT_QUERY};

/// At most this many `summary` events in one `/summary/poll` document.
pub const SUMMARY_POLL_WORDS: usize = 3;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/summary/poll", get(summary_poll))
}

async fn summary_poll(
    State(state): State<AppState>,
    Query(params): Query<SummaryRequest>,
    headers: HeaderMap,
) -> Response {
    state.control.summary_polls.fetch_add(1, Ordering::SeqCst);
    let query = params
        .query
        .filter(|q| !q.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_QUERY.to_string());
    let words = summary_words(&query);
    sse::after_last_event_id(&headers, None, |after| summary_document(&words, after))
}

/// The events after `after`: the next words (at most [`SUMMARY_POLL_WORDS`]), then `done` once they are all out,
/// with the same ids as `/summary` (words `1..=n`, `done` `n + 1`).
pub fn summary_document(words: &[String], after: u64) -> Vec<sse::Event> {
    let mut events: Vec<_> = (1..)
        .zip(words)
        .filter(|(id, _)| *id > after)
        .take(SUMMARY_POLL_WORDS)
        .map(|(id, word)| sse::Event::new(id, word.clone()).named("summary"))
        .collect();
    let done_id = words.len() as u64 + 1;
    let last = events.last().map_or(after, |e| e.id);
    if last + 1 == done_id {
        let done = serde_json::json!({ "words": words.len() }).to_string();
        events.push(sse::Event::new(done_id, done).named("done"));
    }
    events
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::demo::DemoServer;

    /// `(event, id, data)` of each event of a document: enough for this server's output.
    fn parse(document: &str) -> Vec<(String, u64, String)> {
        document
            .split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or_default()
                        .to_string()
                };
                let id = field("id: ").parse().expect("expected a numeric id");
                (field("event: "), id, field("data: "))
            })
            .collect()
    }

    #[tokio::test]
    async fn polls_carry_the_summary_a_few_words_at_a_time_then_done_then_nothing() {
        let server = DemoServer::start().await.unwrap();
        let url = format!("{}/summary/poll?query=rust%20sse", server.urls().base);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let expected = summary_words("rust sse");
        let mut last = 2u64; // as a client whose stream got the first two words
        let (mut words, mut done, mut polls) = (Vec::new(), None, 0);
        while polls < 40 {
            polls += 1;
            let answer = client
                .get(&url)
                .header("last-event-id", last.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(
                answer.headers()["content-type"],
                "text/event-stream",
                "expected an SSE document"
            );
            let events = parse(&answer.text().await.unwrap());
            let words_here = events.iter().filter(|e| e.0 == "summary").count();
            assert!(
                words_here <= SUMMARY_POLL_WORDS,
                "expected at most {SUMMARY_POLL_WORDS} words a poll, got {events:?}"
            );
            if events.is_empty() {
                break;
            }
            for (event, id, data) in events {
                assert_eq!(
                    id,
                    last + 1,
                    "expected the ids to follow Last-Event-ID {last}"
                );
                last = id;
                match event.as_str() {
                    "summary" => words.push(data),
                    "done" => done = Some(data),
                    other => panic!("expected summary or done, got {other}"),
                }
            }
        }
        assert_eq!(
            words,
            expected[2..],
            "expected the words after the second, once each"
        );
        assert_eq!(done, Some(format!("{{\"words\":{}}}", expected.len())));
        assert!(
            polls > 3,
            "expected the summary spread over several polls, got {polls}"
        );
        let body = reqwest::get(server.urls().status)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let status: crate::demo::DemoStatus = serde_json::from_str(&body).unwrap();
        assert_eq!(
            status.summary_polls, polls,
            "expected the server to count every poll"
        );
        server.shutdown().await;
    }
}
