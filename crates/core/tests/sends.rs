//! Sends beside a stream: `send()` on SSE and poll connections POSTs each message to `sendUrl`, in order,
//! one at a time, with the connection's headers and the app's secret ones, retrying what is worth retrying
//! (503, a dropped connection) before any later message, and failing what is not (400) alone. Every server is
//! real, on 127.0.0.1.

mod common;

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::State as AxState,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use common::*;
use futures_util::{future::join_all, StreamExt};
use tauri_plugin_realtime_core::{
    ConnectOptions, Error, FallbackOptions, Frame, HeaderSource, HubConfig, Outgoing,
    ReconnectOptions, SecretHeaders, Share, State, Toggle, Transport, UrlGuard,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The chat server: an event stream that says hello and stays open, and `/send`, which records every POST
/// it takes (body, content type, idempotency key, the headers a test asks about) and answers by script.
#[derive(Clone, Default)]
struct Chat {
    /// Accepted POSTs: `body|content-type|idempotency-key|x-client|authorization`.
    taken: Seen,
    /// Every POST, taken or not: its body.
    tries: Seen,
    /// Statuses for the next POSTs, in order; 204 once empty.
    script: Arc<Mutex<VecDeque<u16>>>,
    /// Bodies answered with 400.
    bad: Arc<Mutex<Vec<String>>>,
    /// POSTs being handled now, and the most at once.
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Chat {
    fn script(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    fn bodies(&self) -> Vec<String> {
        self.taken
            .all()
            .iter()
            .map(|r| r.split('|').next().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn events() -> Response {
    let hello = futures_util::stream::once(async { Ok::<_, Infallible>("data: hello\n\n") });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(
            hello.chain(futures_util::stream::pending()),
        ))
        .unwrap()
}

async fn send(AxState(chat): AxState<Chat>, headers: HeaderMap, body: String) -> Response {
    let at_once = chat.now.fetch_add(1, Ordering::SeqCst) + 1;
    chat.most.fetch_max(at_once, Ordering::SeqCst);
    // Long enough for a second POST to overlap, were the engine to send one.
    tokio::time::sleep(Duration::from_millis(2)).await;
    chat.now.fetch_sub(1, Ordering::SeqCst);
    chat.tries.push(body.clone());
    // Every value of a header, so that one sent twice shows.
    let h = |n: &str| {
        let all: Vec<&str> = headers
            .get_all(n)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if all.is_empty() {
            "-".to_owned()
        } else {
            all.join(",")
        }
    };
    if chat.bad.lock().unwrap().contains(&body) {
        return (StatusCode::BAD_REQUEST, "bad message").into_response();
    }
    let status = chat.script.lock().unwrap().pop_front().unwrap_or(204);
    if status == 204 {
        chat.taken.push(format!(
            "{body}|{}|{}|{}|{}",
            h("content-type"),
            h("idempotency-key"),
            h("x-client"),
            h("authorization")
        ));
    }
    let mut r = StatusCode::from_u16(status).unwrap().into_response();
    if status == 503 {
        r.headers_mut().insert("retry-after", "0".parse().unwrap());
    }
    r
}

/// Takes the message and answers with a body that never ends.
async fn endless(AxState(chat): AxState<Chat>, body: String) -> Response {
    chat.taken.push(body);
    events().await
}

async fn chat() -> (std::net::SocketAddr, Chat) {
    let chat = Chat::default();
    let app = Router::new()
        .route("/events", get(events))
        .route("/endless", post(endless))
        .route("/send", post(send))
        .with_state(chat.clone());
    (serve(app).await, chat)
}

fn quick_retries(max: Option<u32>) -> Option<Toggle<ReconnectOptions>> {
    Some(Toggle::With(ReconnectOptions {
        initial_delay_ms: 20,
        jitter: 0.0,
        max_retries: max,
        ..Default::default()
    }))
}

/// An SSE connection to the chat that POSTs its sends to `/send`.
fn sse_with_sends(addr: std::net::SocketAddr) -> ConnectOptions {
    ConnectOptions {
        send_url: Some(format!("http://{addr}/send")),
        reconnect: quick_retries(None),
        share: Some(Share::Enabled(false)),
        ..opts(format!("http://{addr}/events"))
    }
}

fn text(s: &str) -> Outgoing {
    Outgoing::Text(s.into())
}

#[tokio::test]
async fn many_sends_beside_sse_are_posted_in_order_one_at_a_time() {
    let (addr, chat) = chat().await;
    let hub = hub();
    let (id, mut frames) = connect(&hub, sse_with_sends(addr));
    frames.message("hello").await;
    let sent: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();
    // Issued together: they reach the connection in this order, and must reach the server in it too.
    let answers = join_all(sent.iter().map(|m| hub.send(&id, OWNER, text(m)))).await;
    for (m, a) in sent.iter().zip(&answers) {
        assert!(
            matches!(a, Ok(false)),
            "{m}: expected posted (Ok(false)), got {a:?}"
        );
    }
    assert_eq!(
        chat.bodies(),
        sent,
        "expected the server to get every send in order"
    );
    assert_eq!(
        chat.most.load(Ordering::SeqCst),
        1,
        "expected one POST at a time"
    );
    let taken = chat.taken.all();
    let keys: std::collections::HashSet<&str> =
        taken.iter().filter_map(|r| r.split('|').nth(2)).collect();
    assert_eq!(
        keys.len(),
        sent.len(),
        "expected an idempotency key per send, got {taken:?}"
    );
    assert!(
        taken
            .iter()
            .all(|r| r.split('|').nth(1) == Some("text/plain; charset=utf-8")),
        "expected text sends as text/plain; charset=utf-8, got {taken:?}"
    );
    let info = hub.inspect(Some(OWNER), Some(&id)).unwrap();
    assert_eq!(
        info[0].frames_out, 60,
        "expected every POST counted, got {info:?}"
    );
    assert!(
        frames.errors().is_empty(),
        "expected no error, got {:?}",
        frames.errors()
    );
}

#[tokio::test]
async fn a_503_is_retried_before_any_later_send() {
    let (addr, chat) = chat().await;
    chat.script(&[503, 503]);
    let hub = hub();
    let (id, mut frames) = connect(&hub, sse_with_sends(addr));
    frames.message("hello").await;
    let answers = join_all(["a", "b", "c"].map(|m| hub.send(&id, OWNER, text(m)))).await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(false))),
        "expected every send taken, got {answers:?}"
    );
    assert_eq!(
        chat.tries.all(),
        ["a", "a", "a", "b", "c"],
        "expected a retried before b"
    );
    assert_eq!(chat.bodies(), ["a", "b", "c"]);
}

/// Reads one POST from a raw socket: its head and its body (by `Content-Length`).
async fn read_post(socket: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let got = read_head(socket).await?;
    let (head, rest) = got.split_once("\r\n\r\n")?;
    let len: usize = header_of(head, "content-length")?.parse().ok()?;
    let mut body = rest.as_bytes().to_vec();
    if body.len() < len {
        let mut more = vec![0; len - body.len()];
        tokio::time::timeout(WAIT, socket.read_exact(&mut more))
            .await
            .ok()?
            .ok()?;
        body.extend(more);
    }
    Some((head.to_owned(), String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn a_dropped_connection_is_retried_with_the_same_idempotency_key() {
    let (sse_addr, _chat) = chat().await;
    let seen = Seen::default();
    let record = seen.clone();
    // The first POST's connection is dropped before any answer; every later one is taken.
    let post_addr = raw_server(move |mut socket, n| {
        let seen = record.clone();
        async move {
            let Some((head, body)) = read_post(&mut socket).await else {
                return;
            };
            let key = header_of(&head, "idempotency-key").unwrap_or_default();
            if n == 0 {
                seen.push(format!("dropped {body} {key}"));
                return;
            }
            seen.push(format!("took {body} {key}"));
            let _ = socket
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .await;
        }
    })
    .await;
    let hub = hub();
    let o = ConnectOptions {
        send_url: Some(format!("http://{post_addr}/send")),
        ..sse_with_sends(sse_addr)
    };
    let (id, _frames) = connect(&hub, o);
    let answers = join_all(["a", "b"].map(|m| hub.send(&id, OWNER, text(m)))).await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(false))),
        "expected both sends taken, got {answers:?}"
    );
    let all = seen.all();
    let words: Vec<Vec<&str>> = all.iter().map(|s| s.split(' ').collect()).collect();
    assert_eq!(
        words.iter().map(|w| (w[0], w[1])).collect::<Vec<_>>(),
        [("dropped", "a"), ("took", "a"), ("took", "b")],
        "expected a retried before b, got {all:?}"
    );
    assert_eq!(
        words[0][2], words[1][2],
        "expected one key for both tries of a, got {all:?}"
    );
    assert_ne!(
        words[1][2], words[2][2],
        "expected a new key for b, got {all:?}"
    );
}

#[tokio::test]
async fn a_400_fails_that_send_alone_and_an_error_frame_says_which() {
    let (addr, chat) = chat().await;
    chat.bad.lock().unwrap().push("{\"text\":\"bad\"}".into());
    let hub = hub();
    let (id, mut frames) = connect(&hub, sse_with_sends(addr));
    frames.message("hello").await;
    let msgs = [
        "{\"text\":\"one\"}",
        "{\"text\":\"bad\"}",
        "{\"text\":\"two\"}",
    ];
    let answers =
        join_all(msgs.map(|m| hub.send_as(&id, OWNER, text(m), Some("application/json")))).await;
    assert!(matches!(answers[0], Ok(false)), "got {answers:?}");
    assert!(matches!(answers[2], Ok(false)), "got {answers:?}");
    match &answers[1] {
        Err(e @ Error::SendFailed(_)) => {
            let m = e.to_string();
            assert!(
                m.contains(&format!("http://{addr}/send answered HTTP 400 Bad Request")),
                "expected the status and the URL, got {m}"
            );
        }
        other => panic!("expected the second send to fail, got {other:?}"),
    }
    assert_eq!(chat.bodies(), [msgs[0], msgs[2]]);
    assert_eq!(chat.tries.all().len(), 3, "expected the 400 not retried");
    let f = frames
        .until("the error frame", |f| matches!(f, Frame::Error { .. }))
        .await;
    match f {
        Frame::Error { message, fatal, .. } => {
            assert!(!fatal, "expected a non-fatal error, got {message}");
            assert!(
                message.starts_with(
                    "send #2 (14 bytes of application/json, \"{\\\"text\\\":\\\"bad\\\"}\") failed"
                ) && message.contains("HTTP 400"),
                "expected the error to say which send, got {message}"
            );
        }
        _ => unreachable!(),
    }
    // The stream is untouched.
    assert_eq!(frames.count(State::Connected), 1, "got {:#?}", frames.seen);
}

#[tokio::test]
async fn retries_end_at_max_retries_and_at_once_without_reconnect() {
    for (reconnect, tries, says) in [
        (
            quick_retries(Some(2)),
            3,
            "gave up after 3 tries (reconnect.maxRetries)",
        ),
        (
            Some(Toggle::Enabled(false)),
            1,
            "gave up after 1 try (reconnect is off)",
        ),
    ] {
        let (addr, chat) = chat().await;
        chat.script(&[503; 8]);
        let hub = hub();
        let o = ConnectOptions {
            reconnect,
            ..sse_with_sends(addr)
        };
        let (id, mut frames) = connect(&hub, o);
        frames.message("hello").await;
        let e = hub
            .send(&id, OWNER, text("x"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(says) && e.contains("503"),
            "expected {says:?}, got {e}"
        );
        assert_eq!(chat.tries.all().len(), tries, "expected {tries} tries");
        // The next send goes on: the server now takes it.
        chat.script.lock().unwrap().clear();
        assert!(matches!(hub.send(&id, OWNER, text("y")).await, Ok(false)));
        assert_eq!(chat.bodies(), ["y"]);
    }
}

struct Token;

impl HeaderSource for Token {
    fn headers_for(&self, url: &url::Url) -> Vec<(http::HeaderName, http::HeaderValue)> {
        if url.path() != "/send" {
            return Vec::new();
        }
        vec![(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer s3cret"),
        )]
    }
}

#[tokio::test]
async fn posts_carry_the_connections_headers_with_the_secret_ones_over_them() {
    let (addr, chat) = chat().await;
    let hub = hub_with(HubConfig {
        linger: Duration::ZERO,
        secret_headers: SecretHeaders(Some(Arc::new(Token))),
        ..Default::default()
    });
    let o = ConnectOptions {
        headers: [
            ("x-client".to_string(), "app".to_string()),
            (
                "authorization".to_string(),
                "Bearer from-the-page".to_string(),
            ),
        ]
        .into(),
        ..sse_with_sends(addr)
    };
    let (id, mut frames) = connect(&hub, o);
    frames.message("hello").await;
    hub.send(&id, OWNER, text("hi")).await.unwrap();
    let r = &chat.taken.all()[0];
    assert!(
        r.ends_with("|app|Bearer s3cret"),
        "expected the page's x-client and the secret authorization, got {r}"
    );
    // A failure names the URL and the status, never the secret.
    chat.bad.lock().unwrap().push("no".into());
    let e = hub
        .send(&id, OWNER, text("no"))
        .await
        .unwrap_err()
        .to_string();
    frames
        .until("the error frame", |f| matches!(f, Frame::Error { .. }))
        .await;
    let told: Vec<String> = frames
        .errors()
        .into_iter()
        .map(|(m, _)| m)
        .chain([e])
        .collect();
    assert!(
        told.iter()
            .all(|m| !m.contains("s3cret") && m.contains("HTTP 400")),
        "got {told:?}"
    );
}

/// Allows everything but paths that start with `/send`.
struct NoSend;

impl UrlGuard for NoSend {
    fn check(&self, url: &url::Url) -> Result<(), String> {
        if url.path().starts_with("/send") {
            Err(url.to_string())
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_send_url_outside_the_scope_is_refused_at_connect() {
    let (addr, chat) = chat().await;
    let hub = hub();
    let mut fallback_only = sse_with_sends(addr);
    fallback_only.send_url = None;
    fallback_only.fallback = Some(Toggle::With(FallbackOptions {
        poll_url: Some(format!("http://{addr}/events")),
        send_url: Some(format!("http://{addr}/send")),
        ..Default::default()
    }));
    for o in [sse_with_sends(addr), fallback_only] {
        match subscribe(&hub, None, o, OWNER, Arc::new(NoSend)) {
            Err(Error::UrlNotAllowed(u)) => {
                assert!(u.contains("/send"), "expected the send URL named, got {u}")
            }
            Err(e) => panic!("expected the scope to refuse the send URL, got {e}"),
            Ok(_) => panic!("expected the scope to refuse the send URL"),
        }
    }
    assert!(chat.tries.all().is_empty());
    assert_eq!(hub.live_tasks(), 0);
}

#[tokio::test]
async fn content_types_follow_the_kind_or_the_caller_and_a_bad_one_is_refused() {
    let (addr, chat) = chat().await;
    let hub = hub();
    let (id, mut frames) = connect(&hub, sse_with_sends(addr));
    frames.message("hello").await;
    hub.send(&id, OWNER, Outgoing::Binary(b"bytes".to_vec()))
        .await
        .unwrap();
    hub.send_as(&id, OWNER, text("{}"), Some("application/json"))
        .await
        .unwrap();
    hub.send_as(
        &id,
        OWNER,
        text("<b/>"),
        Some("application/xml; charset=utf-8"),
    )
    .await
    .unwrap();
    let types: Vec<String> = chat
        .taken
        .all()
        .iter()
        .map(|r| r.split('|').nth(1).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "application/octet-stream",
            "application/json",
            "application/xml; charset=utf-8"
        ]
    );
    for bad in ["text/plain\r\nx-injected: 1", "", "é/x", &"a".repeat(300)] {
        match hub.send_as(&id, OWNER, text("x"), Some(bad)).await {
            Err(e @ Error::InvalidContentType(_)) => {
                assert!(e.to_string().contains("media type"), "got {e}")
            }
            other => panic!("expected {bad:?} refused, got {other:?}"),
        }
    }
    assert_eq!(
        chat.tries.all().len(),
        3,
        "expected no refused type to be sent"
    );
}

#[tokio::test]
async fn without_a_send_url_an_sse_send_says_to_set_it() {
    let (addr, _chat) = chat().await;
    let hub = hub();
    let mut o = sse_with_sends(addr);
    o.send_url = None;
    let (id, mut frames) = connect(&hub, o);
    frames.message("hello").await;
    let e = hub.send(&id, OWNER, text("x")).await.unwrap_err();
    assert!(
        matches!(e, Error::NotWritable(_)) && e.to_string().contains("needs `sendUrl`"),
        "got {e}"
    );
}

#[tokio::test]
async fn posts_go_while_the_stream_is_down_and_on_poll_connections() {
    let (addr, chat) = chat().await;
    let hub = hub();
    let down = closed_port().await;
    let reconnecting = ConnectOptions {
        url: format!("http://127.0.0.1:{down}/events"),
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: 5_000,
            ..Default::default()
        })),
        ..sse_with_sends(addr)
    };
    let (id, mut frames) = connect(&hub, reconnecting);
    frames.state(State::Reconnecting).await;
    assert!(matches!(
        hub.send(&id, OWNER, text("while down")).await,
        Ok(false)
    ));

    let polling = ConnectOptions {
        transport: Some(Transport::Poll),
        ..sse_with_sends(addr)
    };
    let (id, mut frames) = connect(&hub, polling);
    frames.state(State::Polling).await;
    assert!(matches!(
        hub.send(&id, OWNER, text("while polling")).await,
        Ok(false)
    ));
    assert_eq!(chat.bodies(), ["while down", "while polling"]);
}

#[tokio::test]
async fn a_websocket_that_polls_posts_to_the_top_level_send_url() {
    let (addr, chat) = chat().await;
    let hub = hub();
    // `/send` refuses the upgrade (GET is not routed): the connection polls at once.
    let o = ConnectOptions {
        send_url: Some(format!("http://{addr}/send")),
        fallback: Some(Toggle::With(FallbackOptions {
            poll_url: Some(format!("http://{addr}/events")),
            interval_ms: 50,
            ..Default::default()
        })),
        ..opts(format!("ws://{addr}/send"))
    };
    let (id, mut frames) = connect(&hub, o);
    frames.state(State::Polling).await;
    assert!(matches!(
        hub.send(&id, OWNER, text("polled")).await,
        Ok(false)
    ));
    assert_eq!(chat.bodies(), ["polled"]);
}

#[tokio::test]
async fn close_during_a_post_tells_its_sender_and_the_one_behind_it() {
    // A send URL that reads the POST and never answers.
    let seen = Seen::default();
    let record = seen.clone();
    let post_addr = raw_server(move |mut socket, _| {
        let seen = record.clone();
        async move {
            if let Some((_, body)) = read_post(&mut socket).await {
                seen.push(body);
            }
            until_closed(&mut socket).await;
        }
    })
    .await;
    let (addr, _chat) = chat().await;
    let hub = hub();
    let o = ConnectOptions {
        send_url: Some(format!("http://{post_addr}/send")),
        ..sse_with_sends(addr)
    };
    let (id, mut frames) = connect(&hub, o);
    frames.message("hello").await;
    let (first, second) = {
        let (h1, h2) = (hub.clone(), hub.clone());
        let (i1, i2) = (id.clone(), id.clone());
        let first = tokio::spawn(async move { h1.send(&i1, OWNER, text("first")).await });
        seen.wait_for("the first POST", |b| b == "first").await;
        let second = tokio::spawn(async move { h2.send(&i2, OWNER, text("second")).await });
        (first, second)
    };
    // The second waits behind the first: give it the time to reach the connection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    hub.close(&id, OWNER, None, None).unwrap();
    let first = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    let second = tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
    match first {
        Err(e @ Error::SendFailed(_)) => assert!(
            e.to_string().contains("while it was being POSTed"),
            "got {e}"
        ),
        other => panic!("expected the POST in flight to fail, got {other:?}"),
    }
    assert!(
        matches!(second, Err(Error::Closed(_))),
        "expected the send behind it told the connection closed, got {second:?}"
    );
    assert_eq!(seen.all(), ["first"]);
    all_tasks_end(&hub).await;
}

#[tokio::test]
async fn a_taken_send_whose_answer_never_ends_is_not_held_or_sent_again() {
    let (addr, chat) = chat().await;
    let hub = hub();
    let o = ConnectOptions {
        send_url: Some(format!("http://{addr}/endless")),
        // Were the engine to wait for the body, the send would time out and be sent again.
        connect_timeout_ms: Some(200),
        ..sse_with_sends(addr)
    };
    let (id, mut frames) = connect(&hub, o);
    frames.message("hello").await;
    for m in ["a", "b"] {
        assert!(matches!(hub.send(&id, OWNER, text(m)).await, Ok(false)));
    }
    assert_eq!(chat.taken.all(), ["a", "b"]);
}

#[tokio::test]
async fn a_send_waiting_out_its_backoff_goes_as_soon_as_the_stream_is_back() {
    let (addr, chat) = chat().await;
    chat.script(&[503]);
    let hub = hub();
    let o = ConnectOptions {
        // Far longer than any wait of the test kit: only the stream's return can bring the retry in time.
        reconnect: Some(Toggle::With(ReconnectOptions {
            initial_delay_ms: 600_000,
            jitter: 0.0,
            ..Default::default()
        })),
        ..sse_with_sends(addr)
    };
    let (id, mut frames) = connect(&hub, o);
    frames.message("hello").await;
    let sending = {
        let (hub, id) = (hub.clone(), id.clone());
        tokio::spawn(async move { hub.send(&id, OWNER, text("a")).await })
    };
    chat.tries.wait_for("the first try", |b| b == "a").await;
    // The stream opens again (as after a server restart): the waiting send is tried at once.
    hub.reconnect(&id, OWNER).unwrap();
    let sent = tokio::time::timeout(WAIT, sending).await;
    assert!(
        matches!(sent, Ok(Ok(Ok(false)))),
        "expected the send taken once the stream was back, got {sent:?}"
    );
    assert_eq!(chat.bodies(), ["a"]);
}

#[tokio::test]
async fn the_connections_own_content_type_and_idempotency_key_stand_unless_a_send_gives_its_type() {
    let (addr, chat) = chat().await;
    let hub = hub();
    let o = ConnectOptions {
        headers: [
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Idempotency-Key".to_string(), "the-apps".to_string()),
        ]
        .into(),
        ..sse_with_sends(addr)
    };
    let (id, mut frames) = connect(&hub, o);
    frames.message("hello").await;
    hub.send(&id, OWNER, text("{}")).await.unwrap();
    hub.send_as(&id, OWNER, text("a,b"), Some("text/csv"))
        .await
        .unwrap();
    let got: Vec<(String, String)> = chat
        .taken
        .all()
        .iter()
        .map(|r| {
            let f: Vec<&str> = r.split('|').collect();
            (f[1].to_owned(), f[2].to_owned())
        })
        .collect();
    let want = [("application/json", "the-apps"), ("text/csv", "the-apps")];
    assert_eq!(
        got,
        want.map(|(t, k)| (t.to_owned(), k.to_owned())),
        "expected one content type and one key per POST"
    );
}

#[tokio::test]
async fn a_send_that_cannot_reach_its_url_names_it_without_its_query() {
    let (addr, _chat) = chat().await;
    let hub = hub();
    let down = closed_port().await;
    let o = ConnectOptions {
        send_url: Some(format!("http://127.0.0.1:{down}/send?token=s3cret")),
        reconnect: Some(Toggle::Enabled(false)),
        ..sse_with_sends(addr)
    };
    let (id, mut frames) = connect(&hub, o);
    frames.message("hello").await;
    let e = hub
        .send(&id, OWNER, text("x"))
        .await
        .unwrap_err()
        .to_string();
    frames
        .until("the error frame", |f| matches!(f, Frame::Error { .. }))
        .await;
    let frame = frames.errors().remove(0).0;
    for m in [&e, &frame] {
        assert!(
            m.contains(&format!("http://127.0.0.1:{down}/send: POST failed"))
                && m.contains("gave up after 1 try")
                && !m.contains("s3cret"),
            "expected the URL without its query, got {m}"
        );
    }
}
