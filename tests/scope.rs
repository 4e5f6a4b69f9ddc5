//! The URL scope through the engine: the example app's capability (loopback allowed, `/admin*` denied) against
//! a server on 127.0.0.1 that records every request. Each other spelling of `/admin` (escapes, extra slashes,
//! case, a redirect hop) is refused before the server sees it, and allowed URLs still stream.
//!
//! Only 127.0.0.1 is ever contacted: the `localhost`, `0.0.0.0` and IPv6 spellings are refused at connect,
//! which comes before any traffic; that they would otherwise pass is asserted on the scope alone.

mod common;

use std::sync::Arc;

use axum::{
    extract::{
        ws::{
            rejection::WebSocketUpgradeRejection, Message as AxMessage, WebSocket, WebSocketUpgrade,
        },
        State as AxState,
    },
    http::Uri,
    response::{IntoResponse, Redirect, Response},
    Router,
};
use common::{hub, once, subscribe, Frames, Seen, OWNER};
use tauri_plugin_realtime::{
    core::{ConnectOptions, Error, FallbackOptions, Frame, Hub, State, Toggle},
    scope::{Entry, Scope},
};
use url::Url;

const DENY: [&str; 2] = ["http://127.0.0.1:*/admin*", "ws://127.0.0.1:*/admin*"];

fn entries(patterns: &[&str]) -> Vec<Arc<Entry>> {
    patterns
        .iter()
        .map(|p| Arc::new(Entry::parse(p).expect("a valid pattern")))
        .collect()
}

/// The example app's capability.
fn example() -> Scope {
    Scope::new(
        entries(&["ws://127.0.0.1:*/*", "http://127.0.0.1:*/*"]),
        entries(&DENY),
    )
}

/// The example's deny entries under an allow for every host, so that a refusal is the deny's doing.
fn any_host() -> Scope {
    Scope::new(entries(&["ws://*:*/*", "http://*:*/*"]), entries(&DENY))
}

fn connect(hub: &Hub, options: ConnectOptions, scope: Scope) -> Result<(String, Frames), Error> {
    subscribe(hub, None, options, OWNER, Arc::new(scope))
}

/// Asserts that connecting is refused by the scope, naming the URL.
fn assert_refused(hub: &Hub, options: ConnectOptions, scope: Scope) {
    let url = options.url.clone();
    match connect(hub, options, scope) {
        Err(e @ Error::UrlNotAllowed(_)) => assert!(
            e.to_string().contains("not allowed by the realtime scope"),
            "{url}: expected the error to name the scope, got {e}"
        ),
        Err(e) => panic!("{url}: expected a scope refusal, got {e:?}"),
        Ok(_) => panic!("{url}: expected a scope refusal, got a connection"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// A server on 127.0.0.1 that answers every path: a WebSocket upgrade, an SSE stream, or (under `/public/hop`)
// a 307 to the path in the query, kept as written. It records each request's path as it arrived.

#[derive(Clone)]
struct Rec {
    seen: Seen,
    port: u16,
}

async fn any_path(
    AxState(rec): AxState<Rec>,
    uri: Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    rec.seen.push(uri.path());
    if let Ok(ws) = ws {
        return ws.on_upgrade(|mut s: WebSocket| async move {
            let _ = s.send(AxMessage::Text("hi".into())).await;
            while let Some(Ok(_)) = s.recv().await {}
        });
    }
    if uri.path() == "/public/hop" {
        let to = uri.query().unwrap_or("").trim_start_matches("to=");
        // Absolute, so that `//admin` stays a path rather than a host.
        return Redirect::temporary(&format!("http://127.0.0.1:{}{to}", rec.port)).into_response();
    }
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from("data: hi\n\n"))
        .unwrap_or_default()
}

async fn recorder() -> (u16, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = Rec {
        seen: Seen::default(),
        port,
    };
    let app = Router::new().fallback(any_path).with_state(rec.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, rec.seen)
}

/// Paths the server saw that are not under `/public/`.
fn outside_public(seen: &Seen) -> Vec<String> {
    seen.all()
        .into_iter()
        .filter(|p| !p.starts_with("/public/"))
        .collect()
}

/// Each spelling, under ws and http. The url crate already resolves `%2e%2e`, `\` and `127.1` itself; the
/// rest is the scope's doing.
const ADMIN_SPELLINGS: [&str; 10] = [
    "/%61dmin/x",
    "//admin/x",
    "/ADMIN/x",
    "/adm%69n",
    "/Admin%2Fx",
    "/.//admin",
    "/public/..%2Fadmin",
    "/public/%2e%2e/admin",
    "/x/..;/admin",
    "/;x/admin",
];

#[tokio::test]
async fn every_spelling_of_a_denied_path_is_refused_before_the_server_sees_it() {
    let (port, seen) = recorder().await;
    let hub = hub();
    for path in ADMIN_SPELLINGS {
        for scheme in ["ws", "http"] {
            assert_refused(
                &hub,
                once(format!("{scheme}://127.0.0.1:{port}{path}")),
                example(),
            );
        }
    }
    // A poll URL is checked like the stream's.
    let mut o = once(format!("http://127.0.0.1:{port}/public/sse"));
    o.fallback = Some(Toggle::With(FallbackOptions {
        poll_url: Some(format!("http://127.0.0.1:{port}/%61dmin/poll")),
        ..Default::default()
    }));
    assert_refused(&hub, o, example());
    assert_eq!(
        hub.live_tasks(),
        0,
        "expected no task started for a refused connect"
    );

    // The same server still streams to allowed URLs, which also shows that it was up and reachable.
    for url in [
        format!("ws://127.0.0.1:{port}/public/ws"),
        format!("http://127.0.0.1:{port}/public/sse"),
    ] {
        let (id, mut w) = connect(&hub, once(&url), example()).expect("an allowed url connects");
        w.message("hi").await;
        hub.close(&id, OWNER, None, None).unwrap();
    }
    let outside = outside_public(&seen);
    assert!(
        outside.is_empty(),
        "expected the server to see only /public/ paths, got {outside:?} among {:?}",
        seen.all()
    );
}

#[tokio::test]
async fn an_sse_redirect_to_a_spelling_of_a_denied_path_fails_naming_the_scope() {
    let (port, seen) = recorder().await;
    let hub = hub();
    for to in ["//admin/x", "/%61dmin/x", "/ADMIN/x", "/public/..%2Fadmin"] {
        let url = format!("http://127.0.0.1:{port}/public/hop?to={to}");
        let (id, mut w) = connect(&hub, once(&url), example()).expect("the first hop is allowed");
        let end = w
            .until("failed or disconnected", |f| {
                matches!(
                    f,
                    Frame::State {
                        state: State::Failed | State::Disconnected,
                        ..
                    }
                )
            })
            .await;
        match &end {
            Frame::State {
                state: State::Failed,
                reason: Some(reason),
                ..
            } if reason.contains("not allowed by the realtime scope") => {}
            other => panic!("{to}: expected failed with a reason naming the scope, got {other:?}"),
        }
        hub.close(&id, OWNER, None, None).unwrap();
    }
    let outside = outside_public(&seen);
    assert!(
        outside.is_empty(),
        "expected the server to see only the /public/hop requests, got {outside:?}"
    );

    // An allowed hop is followed.
    let url = format!("http://127.0.0.1:{port}/public/hop?to=/public/sse");
    let (id, mut w) = connect(&hub, once(&url), example()).expect("connect");
    w.message("hi").await;
    hub.close(&id, OWNER, None, None).unwrap();
    assert!(
        seen.all().iter().any(|p| p == "/public/sse"),
        "expected the hop to reach /public/sse, got {:?}",
        seen.all()
    );
}

#[tokio::test]
async fn loopback_spellings_of_a_denied_host_are_refused_at_connect() {
    let hub = hub();
    // Never contacted: each is refused at connect, before any traffic.
    let port = 9;
    for host in [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "api.localhost",
        "0.0.0.0",
        "127.0.0.2",
        "127.1",
        "2130706433",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
    ] {
        for scheme in ["ws", "http"] {
            let public = Url::parse(&format!("{scheme}://{host}:{port}/public")).expect("url");
            assert!(
                any_host().is_allowed(&public),
                "expected {public} allowed: the refusals below must be the deny's doing"
            );
            for path in ["/admin/x", "/%61dmin"] {
                let url = format!("{scheme}://{host}:{port}{path}");
                // The scope first: were it to allow the URL, the engine would open a connection to it.
                let parsed = Url::parse(&url).expect("url");
                assert!(
                    !any_host().is_allowed(&parsed),
                    "expected {url} denied, got allowed"
                );
                assert_refused(&hub, once(url), any_host());
            }
        }
    }
    // The example's own allow names 127.0.0.1 only, and stays as strict as written.
    assert_refused(
        &hub,
        once(format!("ws://localhost:{port}/public")),
        example(),
    );
    assert_eq!(
        hub.live_tasks(),
        0,
        "expected no task started for a refused connect"
    );
}
