//! A signed-in session held in a cookie, for the page's cookie section (`withCredentials`):
//!
//! - `GET /session/signin`: issues a session cookie (`demo_session=user-N; Path=/; HttpOnly; SameSite=Lax`) on a
//!   small page saying who signed in.
//! - `GET /session/events` (SSE): `401` without a session cookie the server issued; with one, `Set-Cookie:
//!   demo_stream=N` on the response and one `session` event naming the user and the cookies it got (names only),
//!   then nothing but the open stream.
//! - `GET /session/log`: what the server saw, as JSON ([`SessionLog`]): every request with the names of the cookies
//!   it carried and the status it got, and the sessions issued.

use std::sync::Mutex;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "demo_session";
/// The cookie the event stream sets on its response.
pub const STREAM_COOKIE: &str = "demo_stream";
/// Requests remembered by the log, the newest kept.
const LOG_KEEP: usize = 200;

/// One request the session routes answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionHit {
    /// `/session/signin` or `/session/events`.
    pub path: String,
    /// The names of the cookies it carried, in order.
    pub cookies: Vec<String>,
    pub status: u16,
}

/// What `GET /session/log` answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionLog {
    pub hits: Vec<SessionHit>,
    /// Session values issued so far (`user-1`, ...).
    pub issued: Vec<String>,
}

#[derive(Default)]
pub(super) struct Sessions(Mutex<SessionLog>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionLog> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hit(&self, path: &str, headers: &HeaderMap, status: StatusCode) {
        let mut log = self.lock();
        log.hits.push(SessionHit {
            path: path.to_owned(),
            cookies: cookies(headers).into_iter().map(|(n, _)| n).collect(),
            status: status.as_u16(),
        });
        let extra = log.hits.len().saturating_sub(LOG_KEEP);
        log.hits.drain(..extra);
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/session/signin", get(signin))
        .route("/session/events", get(events))
        .route("/session/log", get(log))
}

/// The cookies of a request, `(name, value)`, from every `Cookie` header.
fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

async fn signin(State(shared): State<AppState>, headers: HeaderMap) -> Response {
    let user = {
        let mut log = shared.sessions.lock();
        let user = format!("user-{}", log.issued.len() + 1);
        log.issued.push(user.clone());
        user
    };
    shared
        .sessions
        .hit("/session/signin", &headers, StatusCode::OK);
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<!doctype html><title>Signed in</title><p>Signed in as {user}.</p>"),
    )
        .into_response();
    let cookie = format!("{SESSION_COOKIE}={user}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[derive(Serialize)]
struct SessionEvent<'a> {
    user: &'a str,
    cookies: Vec<String>,
}

async fn events(State(shared): State<AppState>, headers: HeaderMap) -> Response {
    let got = cookies(&headers);
    let user = {
        let log = shared.sessions.lock();
        got.iter()
            .find(|(n, v)| n == SESSION_COOKIE && log.issued.contains(v))
            .map(|(_, v)| v.clone())
    };
    let Some(user) = user else {
        shared
            .sessions
            .hit("/session/events", &headers, StatusCode::UNAUTHORIZED);
        return (
            StatusCode::UNAUTHORIZED,
            "no session cookie: sign in first, and connect with withCredentials",
        )
            .into_response();
    };
    shared
        .sessions
        .hit("/session/events", &headers, StatusCode::OK);
    let n = shared.sessions.lock().hits.len();
    let event = SessionEvent {
        user: &user,
        cookies: got.into_iter().map(|(n, _)| n).collect(),
    };
    let first = format!(
        "event: session\ndata: {}\n\n",
        serde_json::to_string(&event).unwrap_or_default()
    );
    let end = shared.stream_end();
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures_util::stream::once(async move {
            end.await;
            Ok(String::new())
        }),
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream".to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::SET_COOKIE, format!("{STREAM_COOKIE}={n}; Path=/")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

async fn log(State(shared): State<AppState>) -> Json<SessionLog> {
    Json(shared.sessions.lock().clone())
}
