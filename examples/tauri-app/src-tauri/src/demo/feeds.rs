//! Who holds the feed: `/feed/stream?via=<name>` responses open now, counted per name, so the page's components
//! panel can show how many upstreams each of its three patterns keeps at the server (and that they close after
//! the plugin's linger). `GET /feeds` answers them as JSON, e.g. `{"own": 1, "service": 0}`. The feed itself
//! (`samples.rs`) knows nothing of this: a middleware wraps its streaming responses.

use std::{
    collections::BTreeMap,
    sync::{atomic::AtomicUsize, Arc, Mutex},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use futures_util::StreamExt;
use realtime_testkit::Gauge;

use super::AppState;

/// At most this many distinct `via` names are counted: the map must stay small whatever clients send.
const MAX_NAMES: usize = 16;

/// Open `/feed/stream` responses per `via` name.
#[derive(Default)]
pub(super) struct FeedHolders(Mutex<BTreeMap<String, Arc<AtomicUsize>>>);

impl FeedHolders {
    fn counter(&self, via: &str) -> Option<Arc<AtomicUsize>> {
        let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !names.contains_key(via) && names.len() >= MAX_NAMES {
            return None;
        }
        Some(names.entry(via.to_owned()).or_default().clone())
    }

    fn counts(&self) -> BTreeMap<String, usize> {
        let names = self.0.lock().unwrap_or_else(|p| p.into_inner());
        names
            .iter()
            .map(|(name, n)| (name.clone(), n.load(std::sync::atomic::Ordering::SeqCst)))
            .collect()
    }
}

/// The `via` of a `/feed/stream` request: 1-16 lower-case letters, else none.
fn via_of(request: &Request) -> Option<String> {
    if request.uri().path() != "/feed/stream" {
        return None;
    }
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("via="))
        .filter(|v| (1..=16).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_lowercase()))
        .map(str::to_owned)
}

/// Counts a streaming `/feed/stream?via=...` response as open until its body is dropped (the client left, or the
/// stream ended).
pub(super) async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let via = via_of(&request);
    let response = next.run(request).await;
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let Some(counter) = via
        .filter(|_| streaming)
        .and_then(|v| state.feeds.counter(&v))
    else {
        return response;
    };
    let open = Gauge::new(&counter);
    let (parts, body) = response.into_parts();
    let mut data = body.into_data_stream();
    let counted = async_stream::stream! {
        let _open = open;
        while let Some(chunk) = data.next().await {
            yield chunk;
        }
    };
    Response::from_parts(parts, Body::from_stream(counted))
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/feeds", get(holders))
}

async fn holders(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(state.feeds.counts()),
    )
        .into_response()
}
