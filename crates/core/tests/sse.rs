//! Server-Sent Events against a real axum server on 127.0.0.1:0.

mod common;

use std::collections::BTreeMap;

use axum::{
    body::Body,
    extract::State as AxState,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{any, get},
    Router,
};
use common::*;
use tauri_plugin_realtime_core::{Frame, ReconnectOptions, State, Toggle, Transport};

fn event_stream(body: impl Into<Body>) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .body(body.into())
        .unwrap()
}

/// Three events, the last two lines deep; then the stream ends. A resumed request gets only what follows its
/// Last-Event-ID.
async fn summary(headers: HeaderMap, AxState(seen): AxState<Seen>, body: String) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.push(format!(
        "auth={} accept={} cache={} last-event-id={last} body={body}",
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    ));
    let doc = match last.as_str() {
        "" => "\u{feff}retry: 50\r\n\r\nevent: summary\nid: 1\ndata: hello\n\n: a comment\ndata: plain\n\nevent: done\nid: 3\ndata: a\ndata: b\n\n",
        "3" => "id: 4\ndata: after resume\n\n",
        _ => ": nothing new\n\n",
    };
    event_stream(doc)
}

async fn status(
    AxState(_): AxState<Seen>,
    axum::extract::Path(code): axum::extract::Path<u16>,
) -> Response {
    let mut r = (StatusCode::from_u16(code).unwrap(), "no").into_response();
    if code == 503 {
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
    }
    r
}

async fn server() -> (std::net::SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/summary", any(summary))
        .route("/status/{code}", get(status))
        .route(
            "/json",
            get(|| async { axum::Json(serde_json::json!({"not": "a stream"})) }),
        )
        .route("/moved", get(|| async { Redirect::temporary("/summary") }))
        .with_state(seen.clone());
    (serve(app).await, seen)
}

fn fast_reconnect() -> Option<Toggle<ReconnectOptions>> {
    Some(Toggle::With(ReconnectOptions {
        initial_delay_ms: 20,
        ..Default::default()
    }))
}

#[tokio::test]
async fn post_with_headers_named_events_ids_and_resume() {
    let (addr, seen) = server().await;
    let hub = hub();
    let mut o = opts(format!("http://{addr}/summary"));
    o.method = Some("POST".into());
    o.body = Some(r#"{"q":"rust"}"#.into());
    o.headers = BTreeMap::from([("Authorization".into(), "Bearer t0k".into())]);
    o.reconnect = fast_reconnect();
    let (_id, mut frames) = connect(&hub, o);

    frames.message("hello").await;
    // inspect knows the last event id while the stream is open, not only after it ends.
    let id = _id.clone();
    wait_until("inspect to report lastEventId", || {
        hub.inspect(None, Some(&id)).unwrap()[0]
            .last_event_id
            .is_some()
    })
    .await;
    frames.message("after resume").await;
    let got = frames.messages();
    let want = vec![
        (Some("summary".into()), "hello".into(), Some("1".into())),
        (Some("message".into()), "plain".into(), Some("1".into())),
        (Some("done".into()), "a\nb".into(), Some("3".into())),
        (
            Some("message".into()),
            "after resume".into(),
            Some("4".into()),
        ),
    ];
    assert_eq!(got, want, "expected {want:?}, got {got:?}");
    assert!(frames
        .seen
        .iter()
        .all(|f| !matches!(f, Frame::Message { transport, .. } if *transport != Transport::Sse)));

    let requests = seen.all();
    let first = "auth=Bearer t0k accept=text/event-stream cache=no-cache last-event-id= body={\"q\":\"rust\"}";
    let resumed = "auth=Bearer t0k accept=text/event-stream cache=no-cache last-event-id=3 body={\"q\":\"rust\"}";
    assert_eq!(
        requests.first().map(String::as_str),
        Some(first),
        "expected {first}, got {requests:?}"
    );
    assert!(
        requests.iter().any(|r| r == resumed),
        "expected {resumed}, got {requests:?}"
    );

    // After the stream ended it waited the server's `retry: 50`, not the 20 ms default of this test.
    let wait = frames.seen.iter().find_map(|f| match f {
        Frame::State {
            state: State::Reconnecting,
            delay_ms,
            ..
        } => *delay_ms,
        _ => None,
    });
    assert!(
        matches!(wait, Some(40..=50)),
        "expected a delay from retry: 50, got {wait:?}"
    );
    frames.assert_contiguous();
}

#[tokio::test]
async fn statuses_and_content_types_are_classified() {
    let (addr, _) = server().await;
    let hub = hub();
    let cases = [
        ("/status/401", State::Failed, "HTTP 401 Unauthorized"),
        ("/status/404", State::Failed, "HTTP 404 Not Found"),
        ("/status/204", State::Disconnected, "204 No Content"),
        ("/json", State::Failed, "not text/event-stream"),
        (
            "/status/503",
            State::Reconnecting,
            "HTTP 503 Service Unavailable",
        ),
    ];
    for (path, state, reason) in cases {
        let mut o = opts(format!("http://{addr}{path}"));
        o.reconnect = fast_reconnect();
        let (id, mut frames) = connect(&hub, o);
        let f = frames.state(state).await;
        assert!(
            matches!(&f, Frame::State { reason: Some(r), .. } if r.contains(reason)),
            "{path}: expected {state:?} with {reason:?}, got {f:?}"
        );
        if path == "/status/503" {
            // Retry-After: 1 outweighs the 20 ms policy.
            assert!(
                matches!(
                    f,
                    Frame::State {
                        delay_ms: Some(1000),
                        ..
                    }
                ),
                "expected Retry-After honoured, got {f:?}"
            );
        }
        hub.close(&id, "test", None, None).unwrap();
    }
}

#[tokio::test]
async fn redirects_are_followed() {
    let (addr, _) = server().await;
    let hub = hub();
    let (_id, mut frames) = connect(&hub, opts(format!("http://{addr}/moved")));
    frames.message("hello").await;
}
