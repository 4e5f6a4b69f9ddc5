//! `withCredentials`: the caller's cookie jar on every request of the connection (WebSocket upgrade, SSE
//! request and each redirect hop by its own URL, poll, `sendUrl` POST), and every response's `Set-Cookie`
//! (a redirect's and an error status's too) stored back into it. Without the option the jar is never asked.
//! A jar that panics or answers garbage costs a request its cookies, never the engine. Every server is real,
//! on 127.0.0.1.

mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{ws::WebSocketUpgrade, State as AxState},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use common::*;
use http::HeaderValue;
use tauri_plugin_realtime_core::{
    ConnectOptions, CookieJar, HeaderSource, HubConfig, Outgoing, SecretHeaders, Share, State,
};
use url::Url;

/// A cookie jar in memory: `name=value` per host, and every `Set-Cookie` it was given, in order.
#[derive(Default)]
struct MemJar {
    cookies: Mutex<BTreeMap<(String, String), String>>,
    stored: Seen,
    asked: Seen,
}

impl MemJar {
    fn with(host: &str, pairs: &[(&str, &str)]) -> Arc<Self> {
        let jar = Self::default();
        for (n, v) in pairs {
            jar.cookies
                .lock()
                .unwrap()
                .insert((host.into(), (*n).into()), (*v).into());
        }
        Arc::new(jar)
    }

    fn has(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().keys().any(|(_, n)| n == name)
    }
}

impl CookieJar for MemJar {
    fn cookie_header(&self, url: &Url) -> Result<Option<HeaderValue>, String> {
        self.asked.push(url.path());
        let host = url.host_str().unwrap_or_default();
        let pairs: Vec<String> = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .filter(|((h, _), _)| h == host)
            .map(|((_, n), v)| format!("{n}={v}"))
            .collect();
        Ok((!pairs.is_empty()).then(|| HeaderValue::from_str(&pairs.join("; ")).unwrap()))
    }

    fn store(&self, url: &Url, set_cookie: &[HeaderValue]) -> Vec<String> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut refused = Vec::new();
        for v in set_cookie {
            let text = v.to_str().unwrap_or_default();
            self.stored.push(format!("{} {text}", url.path()));
            match text.split(';').next().and_then(|p| p.split_once('=')) {
                Some((n, v)) => {
                    self.cookies
                        .lock()
                        .unwrap()
                        .insert((host.clone(), n.trim().into()), v.trim().into());
                }
                None => refused.push("a Set-Cookie without name=value".to_owned()),
            }
        }
        refused
    }
}

/// The server: every route records `path cookie-header` and sets a cookie of its own; the guarded ones answer
/// 401 (setting `denied`) without `session=s1`.
#[derive(Clone, Default)]
struct Site {
    seen: Seen,
}

fn cookie_of(headers: &HeaderMap) -> String {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

fn signed_in(headers: &HeaderMap) -> bool {
    cookie_of(headers).split("; ").any(|c| c == "session=s1")
}

fn denied() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::SET_COOKIE, "denied=1; Path=/")],
        "sign in first",
    )
        .into_response()
}

fn sse(data: &str, set: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::SET_COOKIE, set),
        ],
        format!("data: {data}\n\n"),
    )
        .into_response()
}

async fn site() -> (std::net::SocketAddr, Site) {
    let site = Site::default();
    let app = Router::new()
        .route(
            "/ws",
            get(
                |AxState(s): AxState<Site>, h: HeaderMap, ws: WebSocketUpgrade| async move {
                    s.seen.push(format!("/ws {}", cookie_of(&h)));
                    if !signed_in(&h) {
                        return denied();
                    }
                    let up = ws.on_upgrade(|mut socket| async move {
                        let _ = socket
                            .send(axum::extract::ws::Message::Text("welcome".into()))
                            .await;
                        while let Some(Ok(_)) = socket.recv().await {}
                    });
                    ([(header::SET_COOKIE, "ws=1")], up).into_response()
                },
            ),
        )
        // A hop that sets a cookie on its redirect: the next hop must carry it.
        .route(
            "/start",
            get(|AxState(s): AxState<Site>, h: HeaderMap| async move {
                s.seen.push(format!("/start {}", cookie_of(&h)));
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/sse"), (header::SET_COOKIE, "hop=1")],
                )
                    .into_response()
            }),
        )
        .route(
            "/sse",
            get(|AxState(s): AxState<Site>, h: HeaderMap| async move {
                s.seen.push(format!("/sse {}", cookie_of(&h)));
                if !signed_in(&h) {
                    return denied();
                }
                sse("streamed", "stream=1; HttpOnly")
            }),
        )
        .route(
            "/open",
            get(|AxState(s): AxState<Site>, h: HeaderMap| async move {
                s.seen.push(format!("/open {}", cookie_of(&h)));
                sse("open", "open=1")
            }),
        )
        .route(
            "/poll",
            get(|AxState(s): AxState<Site>, h: HeaderMap| async move {
                s.seen.push(format!("/poll {}", cookie_of(&h)));
                if !signed_in(&h) {
                    return denied();
                }
                ([(header::SET_COOKIE, "poll=1")], "polled").into_response()
            }),
        )
        .route(
            "/send",
            post(|AxState(s): AxState<Site>, h: HeaderMap| async move {
                s.seen.push(format!("/send {}", cookie_of(&h)));
                if !signed_in(&h) {
                    return denied();
                }
                ([(header::SET_COOKIE, "sent=1")], StatusCode::NO_CONTENT).into_response()
            }),
        )
        .with_state(site.clone());
    (serve(app).await, site)
}

fn credentialed(url: String) -> ConnectOptions {
    ConnectOptions {
        with_credentials: true,
        ..once(url)
    }
}

fn signed_in_jar() -> Arc<MemJar> {
    MemJar::with("127.0.0.1", &[("session", "s1")])
}

fn connect_with(
    hub: &tauri_plugin_realtime_core::Hub,
    options: ConnectOptions,
    jar: &Arc<MemJar>,
) -> (String, Frames) {
    subscribe_with_cookies(hub, options, OWNER, jar.clone()).expect("connect")
}

#[tokio::test]
async fn a_websocket_upgrade_carries_the_cookies_only_with_credentials() {
    let (addr, site) = site().await;
    let hub = hub();
    let jar = signed_in_jar();
    let (_, mut frames) = connect_with(&hub, credentialed(format!("ws://{addr}/ws")), &jar);
    frames.message("welcome").await;
    assert!(
        jar.has("ws"),
        "expected the upgrade's Set-Cookie stored, got {:?}",
        jar.stored.all()
    );

    // The same jar, without the option: never asked, nothing sent, nothing stored, and the server refuses.
    let before = (jar.asked.all().len(), jar.stored.all().len());
    let (_, mut plain) = connect_with(&hub, once(format!("ws://{addr}/ws")), &jar);
    plain.state(State::Failed).await;
    assert_eq!(site.seen.all(), ["/ws session=s1", "/ws -"]);
    assert_eq!((jar.asked.all().len(), jar.stored.all().len()), before);
    assert!(!jar.has("denied"));
}

#[tokio::test]
async fn an_sse_request_and_each_redirect_hop_carry_their_cookies_and_store_theirs() {
    let (addr, site) = site().await;
    let hub = hub();
    let jar = signed_in_jar();
    let (_, mut frames) = connect_with(&hub, credentialed(format!("http://{addr}/start")), &jar);
    frames.message("streamed").await;
    // The hop's cookie, stored from the redirect, went with the next hop.
    assert_eq!(
        site.seen.all(),
        ["/start session=s1", "/sse hop=1; session=s1"]
    );
    assert_eq!(jar.asked.all(), ["/start", "/sse"]);
    assert_eq!(
        jar.stored.all(),
        ["/start hop=1", "/sse stream=1; HttpOnly"]
    );
}

#[tokio::test]
async fn an_error_status_still_stores_its_cookies() {
    let (addr, site) = site().await;
    let hub = hub();
    let jar = MemJar::with("127.0.0.1", &[("other", "x")]);
    let (_, mut frames) = connect_with(&hub, credentialed(format!("http://{addr}/sse")), &jar);
    let failed = frames.state(State::Failed).await;
    assert!(reason(&failed).contains("401"), "got {failed:?}");
    assert_eq!(site.seen.all(), ["/sse other=x"]);
    assert_eq!(jar.stored.all(), ["/sse denied=1; Path=/"]);
}

#[tokio::test]
async fn polls_and_sends_carry_the_cookies_and_store_theirs() {
    let (addr, site) = site().await;
    let hub = hub();
    let jar = signed_in_jar();
    let o = polling(
        format!("http://{addr}/send"),
        credentialed(format!("http://{addr}/poll")),
    );
    let (id, mut frames) = connect_with(&hub, o, &jar);
    frames.message("polled").await;
    hub.send(&id, OWNER, Outgoing::Text("hi".into()))
        .await
        .expect("the POST taken");
    let seen = site.seen.all();
    assert!(seen.iter().any(|s| s == "/poll session=s1"), "got {seen:?}");
    assert!(
        seen.iter().any(|s| s == "/send poll=1; session=s1"),
        "expected the POST to carry the poll's cookie too, got {seen:?}"
    );
    assert!(
        jar.has("poll") && jar.has("sent"),
        "got {:?}",
        jar.stored.all()
    );
    assert!(!seen.iter().any(|s| s.ends_with(" -")), "got {seen:?}");
}

#[tokio::test]
async fn with_credentials_needs_a_jar_and_a_cookie_header_points_at_it() {
    let (addr, _site) = site().await;
    let hub = hub();
    let e = try_connect(&hub, credentialed(format!("http://{addr}/open")))
        .err()
        .expect("refused without a jar")
        .to_string();
    assert!(
        e.contains("withCredentials") && e.contains("cookie store"),
        "got {e}"
    );
    let o = ConnectOptions {
        headers: [("Cookie".to_string(), "session=s1".to_string())].into(),
        ..once(format!("http://{addr}/open"))
    };
    let e = try_connect(&hub, o).err().expect("refused").to_string();
    assert!(
        e.contains("forbids") && e.contains("withCredentials"),
        "got {e}"
    );
}

/// Puts a `Cookie` header on every request, from Rust.
struct SecretCookie;

impl HeaderSource for SecretCookie {
    fn headers_for(&self, _url: &Url) -> Vec<(http::HeaderName, HeaderValue)> {
        vec![(header::COOKIE, HeaderValue::from_static("session=s1"))]
    }
}

#[tokio::test]
async fn a_secret_cookie_header_from_rust_wins_over_the_jar() {
    let (addr, site) = site().await;
    let hub = hub_with(HubConfig {
        secret_headers: SecretHeaders(Some(Arc::new(SecretCookie))),
        ..Default::default()
    });
    let jar = MemJar::with("127.0.0.1", &[("session", "from-the-jar")]);
    let (_, mut frames) = connect_with(&hub, credentialed(format!("http://{addr}/sse")), &jar);
    frames.message("streamed").await;
    assert_eq!(site.seen.all(), ["/sse session=s1"]);
    assert!(
        jar.asked.all().is_empty(),
        "the jar was asked: {:?}",
        jar.asked.all()
    );
    // What the server sets is still stored.
    assert!(jar.has("stream"));
}

#[tokio::test]
async fn a_credentialed_upstream_is_joined_only_by_its_opener() {
    let (addr, _site) = site().await;
    let hub = hub();
    let jar = signed_in_jar();
    let keyed = ConnectOptions {
        share: Some(Share::Key("room".into())),
        ..credentialed(format!("http://{addr}/sse"))
    };
    let (_, mut first) = connect_with(&hub, keyed.clone(), &jar);
    first.message("streamed").await;
    let (_, again) = connect_with(&hub, keyed.clone(), &jar);
    assert!(again.connected.shared, "the opener joins its own upstream");
    let e = subscribe_with_cookies(
        &hub,
        keyed,
        "another-webview",
        MemJar::with("127.0.0.1", &[]),
    )
    .err()
    .expect("another webview refused")
    .to_string();
    assert!(
        e.contains("withCredentials") && e.contains("another webview"),
        "got {e}"
    );
}

/// A jar that panics on every call.
struct Panicking;

impl CookieJar for Panicking {
    fn cookie_header(&self, _url: &Url) -> Result<Option<HeaderValue>, String> {
        panic!("the jar broke")
    }
    fn store(&self, _url: &Url, _set: &[HeaderValue]) -> Vec<String> {
        panic!("the jar broke again")
    }
}

/// A jar that answers what no cookie header can be: bytes beyond ASCII, or far too many.
struct Garbage(HeaderValue);

impl CookieJar for Garbage {
    fn cookie_header(&self, _url: &Url) -> Result<Option<HeaderValue>, String> {
        Ok(Some(self.0.clone()))
    }
    fn store(&self, _url: &Url, _set: &[HeaderValue]) -> Vec<String> {
        vec!["x".repeat(100_000); 1000]
    }
}

#[tokio::test]
async fn a_jar_that_panics_or_answers_garbage_costs_the_cookies_not_the_engine() {
    let (addr, site) = site().await;
    let hub = hub();
    let jars: [Arc<dyn CookieJar>; 3] = [
        Arc::new(Panicking),
        Arc::new(Garbage(
            HeaderValue::from_bytes(b"session=\xff\xfe").unwrap(),
        )),
        Arc::new(Garbage(
            HeaderValue::from_str(&format!("session={}", "s".repeat(20_000))).unwrap(),
        )),
    ];
    let expect = ["panicked", "not plain ASCII", "more than"];
    for (jar, says) in jars.into_iter().zip(expect) {
        site.seen.clear();
        let (_, mut frames) = subscribe_with_cookies(
            &hub,
            credentialed(format!("http://{addr}/open")),
            OWNER,
            jar,
        )
        .expect("connect");
        frames.message("open").await;
        assert_eq!(site.seen.all(), ["/open -"], "sent without cookies");
        frames
            .until("a note about the jar", |f| {
                matches!(f, tauri_plugin_realtime_core::Frame::Error { message, fatal: false, .. } if message.contains(says))
            })
            .await;
        let errors = frames.errors();
        assert!(
            errors.iter().all(|(m, fatal)| !fatal && m.len() < 1000),
            "expected short non-fatal notes, got {:?}",
            errors.iter().map(|(m, f)| (m.len(), f)).collect::<Vec<_>>()
        );
        assert!(errors.len() <= 9, "got {} notes", errors.len());
    }
    // The engine still serves.
    let jar = signed_in_jar();
    let (_, mut frames) = connect_with(&hub, credentialed(format!("http://{addr}/sse")), &jar);
    frames.message("streamed").await;
}

/// A jar that does not answer until the test lets it (a webview's store whose GUI thread is busy).
struct Stuck(Mutex<std::sync::mpsc::Receiver<()>>);

impl CookieJar for Stuck {
    fn cookie_header(&self, _url: &Url) -> Result<Option<HeaderValue>, String> {
        let _ = self.0.lock().unwrap().recv();
        Ok(Some(HeaderValue::from_static("session=s1")))
    }
    fn store(&self, _url: &Url, _set: &[HeaderValue]) -> Vec<String> {
        Vec::new()
    }
}

#[tokio::test]
async fn a_jar_that_does_not_answer_costs_the_request_its_cookies_after_the_wait() {
    let (addr, site) = site().await;
    let hub = hub();
    let (release, stuck) = std::sync::mpsc::channel();
    let jar: Arc<dyn CookieJar> = Arc::new(Stuck(Mutex::new(stuck)));
    let started = std::time::Instant::now();
    let (_, mut frames) = subscribe_with_cookies(
        &hub,
        ConnectOptions {
            connect_timeout_ms: Some(8000),
            ..credentialed(format!("http://{addr}/open"))
        },
        OWNER,
        jar,
    )
    .expect("connect");
    frames.message("open").await;
    let waited = started.elapsed();
    assert!(
        waited >= tauri_plugin_realtime_core::COOKIE_WAIT,
        "expected the request to wait for the jar first, it went after {waited:?}"
    );
    assert_eq!(site.seen.all(), ["/open -"], "sent without cookies");
    let errors = frames.errors();
    assert!(
        errors
            .iter()
            .any(|(m, fatal)| !fatal && m.contains("did not answer within 5 s")),
        "got {errors:?}"
    );
    // Lets the blocked thread end, so the runtime can.
    drop(release);
}
