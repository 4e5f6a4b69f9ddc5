//! Fault injection against real loopback servers: servers killed mid-stream and restarted on the same port,
//! servers that accept and then stall, the backoff schedule on a paused clock, the stable-period reset of
//! the attempt count, and the `tap` example driven as a real process.
//!
//! The killable servers are the test kit's `RawServer`: an accept loop whose connections live in a `JoinSet`
//! inside the server task, so that killing it drops the listener and every socket at once, which is what a
//! crashed server looks like to the client (no close frame, no end of the chunked body). axum's own `serve`
//! spawns connections onto the runtime, where an abort cannot reach them.

mod common;
mod tapkit;

use std::{future::Future, sync::Arc, time::Duration};

use common::{
    bind, chunk, closed_port, connect, header_of, hub, is_state, opts, read_head, reason, sse,
    RawServer, Seen, SSE_HEAD_CHUNKED, WAIT,
};
use futures_util::{SinkExt, StreamExt};
use tapkit::tap;
use tauri_plugin_realtime_core::{
    Frame, HeartbeatOptions, Outgoing, ReconnectOptions, State, Toggle,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    time::{sleep, timeout, Instant},
};
use tokio_tungstenite::tungstenite::{
    protocol::{frame::coding::CloseCode, CloseFrame},
    Message,
};

fn reconnect(r: ReconnectOptions) -> Option<Toggle<ReconnectOptions>> {
    Some(Toggle::With(r))
}

/// A quick, exact (no jitter) policy that keeps retrying.
fn quick_retries() -> ReconnectOptions {
    ReconnectOptions {
        initial_delay_ms: 50,
        max_delay_ms: 200,
        jitter: 0.0,
        ..Default::default()
    }
}

/// Event `i` of the streams below: `id: i`, `data: event i`.
fn sse_event(i: u32) -> String {
    sse::Event::new(i.into(), format!("event {i}")).to_wire()
}

// ---------------------------------------------------------------------------------------------------------
// 1. SSE: killed mid-stream, restarted on the same port.

#[tokio::test]
async fn sse_server_killed_mid_stream_resumes_with_last_event_id_on_the_same_port() {
    const N: u32 = 10;
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let requests = Seen::default();

    let r = requests.clone();
    let first = RawServer::start(listener, move |mut socket, _| {
        let r = r.clone();
        async move {
            let Some(head) = read_head(&mut socket).await else {
                return;
            };
            r.push(format!(
                "first last-event-id={}",
                header_of(&head, "last-event-id").unwrap_or_default()
            ));
            let _ = socket.write_all(SSE_HEAD_CHUNKED).await;
            for i in 1..=4 {
                chunk(&mut socket, &sse_event(i)).await;
            }
            // Event 5 and, in the same chunk, the start of event 6, which the crash cuts off: its `id: 6`
            // must not become the Last-Event-ID (WHATWG commits an id only when its event is dispatched).
            chunk(&mut socket, &format!("{}id: 6\ndata: cut", sse_event(5))).await;
            std::future::pending::<()>().await;
        }
    });

    let hub = hub();
    let mut o = opts(format!("http://127.0.0.1:{port}/events"));
    o.reconnect = reconnect(quick_retries());
    let (id, mut tape) = connect(&hub, o);
    tape.until(
        "event 5",
        |f| matches!(f, Frame::Message { last_event_id: Some(i), .. } if i == "5"),
    )
    .await;

    first.kill().await;
    let dropped = tape.state(State::Reconnecting).await;
    // While the port is closed, attempts are refused; the resume must survive them.
    let refused = tape
        .until("a refused attempt while the server is down", |f| {
            is_state(f, State::Reconnecting) && reason(f).contains("network error")
        })
        .await;

    let r = requests.clone();
    let second = RawServer::start(bind(port).await, move |mut socket, _| {
        let r = r.clone();
        async move {
            let Some(head) = read_head(&mut socket).await else {
                return;
            };
            let last = header_of(&head, "last-event-id").unwrap_or_default();
            r.push(format!("second last-event-id={last}"));
            let _ = socket.write_all(SSE_HEAD_CHUNKED).await;
            let from = last.parse::<u32>().unwrap_or(0) + 1;
            for i in from..=N {
                chunk(&mut socket, &sse_event(i)).await;
            }
            std::future::pending::<()>().await;
        }
    });

    tape.until(
        &format!("event {N}"),
        |f| matches!(f, Frame::Message { last_event_id: Some(i), .. } if *i == N.to_string()),
    )
    .await;
    // Room for a duplicate to show up, if the engine were to make one.
    sleep(Duration::from_millis(100)).await;
    tape.drain();

    let got: Vec<(String, Option<String>)> = tape
        .messages()
        .into_iter()
        .map(|(_, data, id)| (data, id))
        .collect();
    let want: Vec<(String, Option<String>)> = (1..=N)
        .map(|i| (format!("event {i}"), Some(i.to_string())))
        .collect();
    assert_eq!(
        got, want,
        "expected every event once, in order: {want:?}, got {got:?}"
    );
    let seen = requests.all();
    let want_requests = vec![
        "first last-event-id=".to_string(),
        "second last-event-id=5".to_string(),
    ];
    assert_eq!(
        seen,
        want_requests,
        "expected {want_requests:?}, got {seen:?} (crash reason {:?}, then {:?})",
        reason(&dropped),
        reason(&refused)
    );
    tape.assert_contiguous();

    hub.close(&id, "test", None, None).unwrap();
    second.kill().await;
}

// ---------------------------------------------------------------------------------------------------------
// 2. WebSocket: killed, restarted on the same port; what was sent meanwhile arrives, in order.

/// A WebSocket server that records every text message it receives as `<tag>:<text>`.
fn recording_ws_server(listener: TcpListener, tag: &'static str, seen: Seen) -> RawServer {
    RawServer::start(listener, move |socket, _| {
        let seen = seen.clone();
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg {
                    seen.push(format!("{tag}:{}", t.as_str()));
                }
            }
        }
    })
}

#[tokio::test]
async fn ws_server_killed_and_restarted_gets_the_queued_sends_in_order() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let first = recording_ws_server(listener, "first", seen.clone());

    let hub = hub();
    let mut o = opts(format!("ws://127.0.0.1:{port}/"));
    o.reconnect = reconnect(quick_retries());
    let (id, mut tape) = connect(&hub, o);
    tape.state(State::Connected).await;
    let queued = hub
        .send(&id, "test", Outgoing::Text("before".into()))
        .await
        .unwrap();
    assert!(
        !queued,
        "expected a direct write while connected, got queued"
    );
    seen.wait_for("the first message", |s| s == "first:before")
        .await;

    first.kill().await;
    tape.state(State::Reconnecting).await;
    let held: Vec<String> = (1..=5).map(|i| format!("q{i}")).collect();
    for m in &held {
        let queued = hub
            .send(&id, "test", Outgoing::Text(m.clone()))
            .await
            .unwrap();
        assert!(
            queued,
            "expected {m} to be queued while down, got a direct write"
        );
    }
    // The queue survives attempts that fail while the server is down.
    tape.until("a refused attempt while the server is down", |f| {
        is_state(f, State::Reconnecting) && reason(f).contains("network error")
    })
    .await;
    let info = hub.inspect(Some("test"), Some(&id)).unwrap();
    assert_eq!(info[0].queued, 5, "expected 5 held, got {:?}", info[0]);

    let second = recording_ws_server(bind(port).await, "second", seen.clone());
    tape.nth("connected again", 2, |f| is_state(f, State::Connected))
        .await;
    let queued = hub
        .send(&id, "test", Outgoing::Text("after".into()))
        .await
        .unwrap();
    assert!(
        !queued,
        "expected a direct write after the reconnect, got queued"
    );
    seen.wait_for("the message sent after the reconnect", |s| {
        s == "second:after"
    })
    .await;

    let got = seen.all();
    let mut want = vec!["first:before".to_string()];
    want.extend(held.iter().map(|m| format!("second:{m}")));
    want.push("second:after".into());
    assert_eq!(got, want, "expected {want:?}, got {got:?}");
    let info = hub.inspect(Some("test"), Some(&id)).unwrap();
    assert_eq!(
        info[0].queued, 0,
        "expected an empty queue, got {:?}",
        info[0]
    );
    tape.assert_contiguous();

    hub.close(&id, "test", None, None).unwrap();
    second.kill().await;
}

// ---------------------------------------------------------------------------------------------------------
// 3. Servers that accept and then stall.

#[tokio::test]
async fn ws_server_that_never_answers_pings_is_dropped_for_no_pong() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    // Never reads after the handshake, so no automatic pong.
    let server = RawServer::start(listener, common::deaf_ws);

    let hub = hub();
    let mut o = opts(format!("ws://127.0.0.1:{port}/"));
    o.heartbeat = Some(Toggle::With(HeartbeatOptions {
        ping_interval_ms: 100,
        pong_timeout_ms: 100,
        ..Default::default()
    }));
    o.reconnect = reconnect(ReconnectOptions {
        initial_delay_ms: 5000,
        ..Default::default()
    });
    let (id, mut tape) = connect(&hub, o);
    tape.state(State::Connected).await;
    let f = tape.state(State::Reconnecting).await;
    assert!(
        reason(&f).contains("no pong"),
        "expected a reason with \"no pong\", got {f:?}"
    );
    // A ping after 100 ms, then 100 ms for its pong.
    let up = tape.time_of(1, |f| is_state(f, State::Reconnecting))
        - tape.time_of(1, |f| is_state(f, State::Connected));
    assert!(
        (Duration::from_millis(150)..Duration::from_secs(3)).contains(&up),
        "expected about 200 ms between connected and reconnecting, got {up:?}"
    );

    hub.close(&id, "test", None, None).unwrap();
    server.kill().await;
}

#[tokio::test]
async fn sse_server_that_goes_quiet_is_dropped_for_idle_timeout() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let server = RawServer::start(listener, |mut socket, _| async move {
        if read_head(&mut socket).await.is_none() {
            return;
        }
        let _ = socket.write_all(SSE_HEAD_CHUNKED).await;
        chunk(&mut socket, "id: 1\ndata: only\n\n").await;
        std::future::pending::<()>().await;
    });

    let hub = hub();
    let mut o = opts(format!("http://127.0.0.1:{port}/"));
    o.heartbeat = Some(Toggle::With(HeartbeatOptions {
        idle_timeout_ms: 200,
        ..Default::default()
    }));
    o.reconnect = reconnect(ReconnectOptions {
        initial_delay_ms: 5000,
        ..Default::default()
    });
    let (id, mut tape) = connect(&hub, o);
    tape.message("only").await;
    let f = tape.state(State::Reconnecting).await;
    assert!(
        reason(&f).contains("idle timeout"),
        "expected a reason with \"idle timeout\", got {f:?}"
    );
    let quiet = tape.time_of(1, |f| is_state(f, State::Reconnecting))
        - tape.time_of(1, |f| matches!(f, Frame::Message { .. }));
    assert!(
        (Duration::from_millis(150)..Duration::from_secs(3)).contains(&quiet),
        "expected about 200 ms of silence before reconnecting, got {quiet:?}"
    );

    hub.close(&id, "test", None, None).unwrap();
    server.kill().await;
}

#[tokio::test]
async fn servers_that_accept_but_never_answer_the_request_time_out_and_retry() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    // TCP accepted, the request read, and then nothing: no 101, no response head.
    let server = RawServer::start(listener, common::silent);

    let hub = hub();
    for url in [
        format!("ws://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{port}/"),
    ] {
        let mut o = opts(&url);
        o.connect_timeout_ms = Some(200);
        o.reconnect = reconnect(ReconnectOptions {
            initial_delay_ms: 5000,
            ..Default::default()
        });
        let (id, mut tape) = connect(&hub, o);
        let f = tape.state(State::Reconnecting).await;
        assert!(
            reason(&f).contains("timed out after 200 ms"),
            "{url}: expected a reason with \"timed out after 200 ms\", got {f:?}"
        );
        assert!(
            !tape.seen.iter().any(|f| is_state(f, State::Connected)),
            "{url}: expected no connected state, got {:?}",
            tape.seen
        );
        hub.close(&id, "test", None, None).unwrap();
    }
    server.kill().await;
}

/// The first connection is accepted, its request read, and then dropped without a response: a server
/// crashing during the handshake, or a proxy whose backend is down. Later connections are served by
/// `serve`. A client must treat the first as a network error and retry, not as a server that cannot stream.
fn drops_first_request_then<H, F>(listener: TcpListener, serve: H) -> RawServer
where
    H: Fn(TcpStream) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    RawServer::start(listener, move |mut socket, n| {
        let serve = serve.clone();
        async move {
            if n == 0 {
                let _ = read_head(&mut socket).await;
                return;
            }
            serve(socket).await;
        }
    })
}

#[tokio::test]
async fn sse_connection_dropped_before_the_response_is_retried() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let server = drops_first_request_then(listener, |mut socket| async move {
        if read_head(&mut socket).await.is_none() {
            return;
        }
        let _ = socket.write_all(SSE_HEAD_CHUNKED).await;
        chunk(&mut socket, "data: second time lucky\n\n").await;
        std::future::pending::<()>().await;
    });

    let hub = hub();
    let mut o = opts(format!("http://127.0.0.1:{port}/"));
    o.reconnect = reconnect(quick_retries());
    let (id, mut tape) = connect(&hub, o);
    tape.message("second time lucky").await;
    let got = tape.states();
    assert!(
        matches!(
            got.as_slice(),
            [
                (State::Connecting, Some(0), _),
                (State::Reconnecting, Some(1), Some(50)),
                (State::Connecting, Some(1), _),
                (State::Connected, ..),
            ]
        ),
        "expected connecting, reconnecting, connecting, connected, got {got:?}"
    );
    hub.close(&id, "test", None, None).unwrap();
    server.kill().await;
}

#[tokio::test]
async fn ws_connection_dropped_during_the_handshake_is_retried() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let server = drops_first_request_then(listener, |socket| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
            return;
        };
        let _ = ws.send(Message::text("second time lucky")).await;
        while ws.next().await.is_some() {}
    });

    let hub = hub();
    let mut o = opts(format!("ws://127.0.0.1:{port}/"));
    o.reconnect = reconnect(quick_retries());
    let (id, mut tape) = connect(&hub, o);
    let first_end = tape
        .until("the end of the first attempt", |f| {
            is_state(f, State::Reconnecting) || is_state(f, State::Failed)
        })
        .await;
    assert!(
        is_state(&first_end, State::Reconnecting),
        "expected reconnecting after the server dropped the handshake, got {first_end:?}"
    );
    tape.message("second time lucky").await;
    hub.close(&id, "test", None, None).unwrap();
    server.kill().await;
}

// ---------------------------------------------------------------------------------------------------------
// 4. The backoff schedule, on a paused clock.

#[tokio::test(start_paused = true)]
async fn backoff_delays_follow_the_policy_then_fail() {
    let port = closed_port().await;
    let hub = hub();
    let mut o = opts(format!("ws://127.0.0.1:{port}/"));
    o.reconnect = reconnect(ReconnectOptions {
        initial_delay_ms: 1000,
        jitter: 0.0,
        max_retries: Some(5),
        ..Default::default()
    });
    let (_id, mut tape) = connect(&hub, o);
    // Virtual time: the whole schedule is 31 s of waiting, which passes at once.
    let deadline = Instant::now() + Duration::from_secs(600);
    tape.nth_by("failed", 1, deadline, |f| is_state(f, State::Failed))
        .await;

    let delays = [1000u64, 2000, 4000, 8000, 16000];
    let mut want = vec![(State::Connecting, Some(0), None)];
    for (i, d) in delays.iter().enumerate() {
        let n = i as u32 + 1;
        want.push((State::Reconnecting, Some(n), Some(*d)));
        want.push((State::Connecting, Some(n), None));
    }
    want.push((State::Failed, None, None));
    let got = tape.states();
    assert_eq!(got, want, "expected {want:?}, got {got:?}");

    // And the engine really waited that long before each attempt.
    for (i, d) in delays.iter().enumerate() {
        let n = i + 1;
        let waited = tape.time_of(n + 1, |f| is_state(f, State::Connecting))
            - tape.time_of(n, |f| is_state(f, State::Reconnecting));
        let d = Duration::from_millis(*d);
        assert!(
            waited >= d && waited < d + Duration::from_millis(50),
            "expected a wait of {d:?} before attempt {n}, got {waited:?}"
        );
    }
    tape.assert_contiguous();
}

// ---------------------------------------------------------------------------------------------------------
// 5. The attempt count resets only after a stable period.

#[tokio::test]
async fn attempt_count_grows_while_flapping_and_resets_after_a_stable_period() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    // Connections 1-3 and 5 (n = 0-2 and 4) drop right after the upgrade, without a close frame; 4 stays up
    // 800 ms (twice stableAfterMs, so a loaded machine cannot blur the two cases) and then drops the same way;
    // 6 stays.
    let server = RawServer::start(listener, |socket, n| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
            return;
        };
        match n {
            3 => {
                let _ = timeout(Duration::from_millis(800), async {
                    while ws.next().await.is_some() {}
                })
                .await;
            }
            n if n >= 5 => while ws.next().await.is_some() {},
            _ => {}
        }
        drop(ws);
    });

    let hub = hub();
    let mut o = opts(format!("ws://127.0.0.1:{port}/"));
    o.reconnect = reconnect(ReconnectOptions {
        initial_delay_ms: 50,
        multiplier: 2.0,
        max_delay_ms: 10_000,
        jitter: 0.0,
        stable_after_ms: 400,
        ..Default::default()
    });
    let (id, mut tape) = connect(&hub, o);
    tape.nth("the sixth connection", 6, |f| is_state(f, State::Connected))
        .await;

    let retries = tape.retries();
    let want = vec![
        (Some(1), Some(50)),
        (Some(2), Some(100)),
        (Some(3), Some(200)),
        // Connection 4 was stable: the count starts again.
        (Some(1), Some(50)),
        (Some(2), Some(100)),
    ];
    assert_eq!(retries, want, "expected {want:?}, got {retries:?}");
    tape.assert_contiguous();

    hub.close(&id, "test", None, None).unwrap();
    server.kill().await;
}

// ---------------------------------------------------------------------------------------------------------
// 6. The `tap` example as a real process.

struct Run {
    code: Option<i32>,
    frames: Vec<serde_json::Value>,
    stderr: String,
}

impl Run {
    /// The exit code is `want`; `context` follows "expected exit N" in the failure message.
    fn assert_exit(&self, want: i32, context: &str) {
        assert_eq!(
            self.code,
            Some(want),
            "expected exit {want}{context}, got {:?} (stderr: {})",
            self.code,
            self.stderr
        );
    }
}

/// Waits (bounded) for the process to end; every stdout line must be a JSON envelope.
async fn finish(child: tokio::process::Child) -> Run {
    let out = timeout(WAIT, child.wait_with_output())
        .await
        .expect("expected tap to exit within 10 s")
        .expect("tap's output");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 on stdout");
    let frames = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("expected one JSON envelope per line, got {l:?}: {e}"))
        })
        .collect();
    Run {
        code: out.status.code(),
        frames,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A compact view of the envelopes: "state:connected", "message:hello", "close:1000 done", ...
fn summary(frames: &[serde_json::Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f["kind"].as_str().unwrap_or("?") {
            "state" => format!("state:{}", f["state"].as_str().unwrap_or("?")),
            "message" if f["binary"] == true => {
                format!("binary:{}", f["data"].as_str().unwrap_or("?"))
            }
            "message" => format!("message:{}", f["data"].as_str().unwrap_or("?")),
            "close" => format!(
                "close:{} {}",
                f["code"],
                f["reason"].as_str().unwrap_or("?")
            ),
            other => other.to_string(),
        })
        .collect()
}

fn assert_seq_contiguous(frames: &[serde_json::Value]) {
    let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
    let want: Vec<u64> = (1..=frames.len() as u64).collect();
    assert_eq!(seqs, want, "expected contiguous seq from 1, got {seqs:?}");
}

/// Says hello, echoes one message, then closes with 1000.
fn hello_echo_close_server(listener: TcpListener) -> RawServer {
    RawServer::start(listener, |socket, _| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
            return;
        };
        let _ = ws.send(Message::text("hello from the server")).await;
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let _ = ws.send(Message::Text(t)).await;
                break;
            }
        }
        let _ = ws
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "done".into(),
            })))
            .await;
        let _ = timeout(WAIT, async { while ws.next().await.is_some() {} }).await;
    })
}

#[tokio::test]
async fn tap_prints_every_frame_as_json_and_exits_0_when_the_server_closes() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let server = hello_echo_close_server(listener);

    let mut child = tap(&[&format!("ws://127.0.0.1:{port}/")])
        .spawn()
        .expect("spawn tap");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"typed line\n").await.unwrap();
    let run = finish(child).await;
    drop(stdin);

    let got = summary(&run.frames);
    let want = [
        "state:connecting",
        "state:connected",
        "message:hello from the server",
        "message:typed line",
        "close:1000 done",
        "state:disconnected",
    ];
    assert_eq!(
        got, want,
        "expected {want:?}, got {got:?} (stderr: {})",
        run.stderr
    );
    assert_eq!(
        run.frames[0]["transport"], "websocket",
        "expected the envelope's fields, got {:?}",
        run.frames[0]
    );
    assert_seq_contiguous(&run.frames);
    run.assert_exit(0, "");
    server.kill().await;
}

/// `--options` carries any option as the bindings' JSON, here an application heartbeat: the server gets it,
/// and its replies are not printed.
#[tokio::test]
async fn tap_options_json_sets_an_application_heartbeat() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let server = RawServer::start(listener, |socket, _| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
            return;
        };
        let _ = ws.send(Message::text("hello")).await;
        let mut answered = 0;
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(&msg, Message::Text(t) if t.as_str() == "ping") {
                let _ = ws.send(Message::text("pong")).await;
                answered += 1;
                if answered == 3 {
                    break;
                }
            }
        }
        let _ = ws
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "three beats".into(),
            })))
            .await;
        let _ = timeout(WAIT, async { while ws.next().await.is_some() {} }).await;
    });

    let options = r#"{"heartbeat":{"pingIntervalMs":50,"message":"ping","reply":"pong"}}"#;
    let child = tap(&[&format!("ws://127.0.0.1:{port}/"), "--options", options])
        .spawn()
        .expect("spawn tap");
    let run = finish(child).await;
    let got = summary(&run.frames);
    let want = [
        "state:connecting",
        "state:connected",
        "message:hello",
        "close:1000 three beats",
        "state:disconnected",
    ];
    assert_eq!(
        got, want,
        "expected {want:?}, got {got:?} (stderr: {})",
        run.stderr
    );
    run.assert_exit(0, "");
    server.kill().await;
}

#[tokio::test]
async fn tap_echo_sends_back_text_and_binary_in_order() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let echoed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = echoed.clone();
    let sent = vec![
        Message::text("one"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text("three"),
        Message::binary(Vec::<u8>::new()),
        Message::text("five"),
    ];
    let to_send = sent.clone();
    let server = RawServer::start(listener, move |socket, _| {
        let (record, to_send) = (record.clone(), to_send.clone());
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                return;
            };
            for m in &to_send {
                let _ = ws.send(m.clone()).await;
            }
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    let mut r = record.lock().unwrap();
                    r.push(msg);
                    if r.len() == to_send.len() {
                        break;
                    }
                }
            }
            let _ = ws
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "echoed".into(),
                })))
                .await;
            let _ = timeout(WAIT, async { while ws.next().await.is_some() {} }).await;
        }
    });

    // The flags scripts/autobahn runs every fuzzingserver case with.
    let child = tap(&[
        &format!("ws://127.0.0.1:{port}/"),
        "--echo",
        "--no-reconnect",
        "--max-message-size",
        "67108864",
    ])
    .stdin(std::process::Stdio::null())
    .spawn()
    .expect("spawn tap");
    let run = finish(child).await;
    let got = echoed.lock().unwrap().clone();
    assert_eq!(
        got, sent,
        "expected the messages back unchanged and in order, got {got:?}"
    );
    let frames = summary(&run.frames);
    assert!(
        frames.contains(&"binary:AAEC/w==".to_string()),
        "expected the binary frame as base64, got {frames:?}"
    );
    run.assert_exit(0, "");
    server.kill().await;
}

#[tokio::test]
async fn tap_exits_1_on_failed_and_2_on_bad_arguments() {
    let port = closed_port().await;
    let child = tap(&[&format!("ws://127.0.0.1:{port}/"), "--no-reconnect"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn tap");
    let run = finish(child).await;
    let got = summary(&run.frames);
    assert_eq!(
        got.last().map(String::as_str),
        Some("state:failed"),
        "expected to end failed, got {got:?}"
    );
    run.assert_exit(1, "");

    for args in [
        &[][..],
        &["ws://127.0.0.1:1/", "--transport", "carrier-pigeon"][..],
        &["ws://127.0.0.1:1/", "--header", "no colon"][..],
        &["http://127.0.0.1:1/", "--echo"][..],
        &["ws://127.0.0.1:1/", "--max-retries", "many"][..],
        &["ftp://127.0.0.1:1/"][..],
    ] {
        let child = tap(args)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn tap");
        let run = finish(child).await;
        run.assert_exit(2, &format!(" for {args:?}"));
        assert!(
            run.stderr.contains("usage: tap"),
            "expected the usage for {args:?}, got {:?}",
            run.stderr
        );
        assert!(
            run.frames.is_empty(),
            "expected no frame for {args:?}, got {:?}",
            run.frames
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn tap_closes_with_1000_on_sigterm_and_exits_0() {
    let listener = bind(0).await;
    let port = listener.local_addr().unwrap().port();
    let closes = Seen::default();
    let c = closes.clone();
    let server = RawServer::start(listener, move |socket, _| {
        let c = c.clone();
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Close(f) = msg {
                    c.push(match f {
                        Some(f) => format!("close {}", u16::from(f.code)),
                        None => "close without code".into(),
                    });
                }
            }
        }
    });

    let mut child = tap(&[&format!("ws://127.0.0.1:{port}/")])
        .spawn()
        .expect("spawn tap");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(r#""state":"connected""#) {
                return;
            }
        }
        panic!("expected a connected line before the end of stdout");
    })
    .await
    .expect("expected tap to connect within 10 s");

    let pid = child.id().expect("tap's pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill(1)");
    assert!(
        status.success(),
        "expected kill -TERM to work, got {status}"
    );
    let status = timeout(WAIT, child.wait())
        .await
        .expect("expected tap to exit within 10 s of SIGTERM")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "expected exit 0 after SIGTERM, got {status}"
    );
    closes
        .wait_for("the client's close 1000", |s| s == "close 1000")
        .await;
    // The frames of the close it made: the close handshake, then `disconnected`, as for a close by the server.
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push(serde_json::from_str::<serde_json::Value>(&line).expect("a JSON envelope"));
    }
    let tail = summary(&rest);
    let n = tail.len();
    assert!(
        n >= 2 && tail[n - 2].starts_with("close:1000") && tail[n - 1] == "state:disconnected",
        "expected the close and disconnected frames last, got {tail:?}"
    );
    server.kill().await;
}

/// The fallback from a terminal: a stream URL that answers JSON drops to polling the `--poll-url`.
#[tokio::test]
async fn tap_falls_back_to_polling_with_its_flags() {
    use axum::{routing::get, Router};
    use tokio::io::{AsyncBufReadExt, BufReader};

    let app = Router::new()
        .route(
            "/stream",
            get(|| async { axum::Json(serde_json::json!({"no": "stream"})) }),
        )
        .route("/poll", get(|| async { "the latest state" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut child = tap(&[
        &format!("http://127.0.0.1:{port}/stream"),
        "--poll-url",
        &format!("http://127.0.0.1:{port}/poll"),
        "--poll-interval-ms",
        "50",
        "--probe-interval-ms",
        "60000",
    ])
    .spawn()
    .expect("spawn tap");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let found = timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let f: serde_json::Value = serde_json::from_str(&line).expect("a JSON envelope");
            seen.push(summary(std::slice::from_ref(&f))[0].clone());
            if f["kind"] == "message" && f["transport"] == "poll" {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.start_kill();
    server.abort();
    assert!(
        matches!(found, Ok(true)),
        "expected a polled message, got {seen:?}"
    );
    assert_eq!(
        seen,
        [
            "state:connecting",
            "state:polling",
            "message:the latest state"
        ],
        "expected one stream attempt, then polling, got {seen:?}"
    );
}

/// curl's TLS flags: `--cacert` trusts the test's CA, `--cert` (the key in the same file, as curl allows)
/// answers a server that requires a client certificate, `--http1.1` turns HTTP/2 off; without `--cert`, the
/// reason says one is required.
#[tokio::test]
async fn tap_takes_curls_tls_flags() {
    use axum::{
        extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade},
        routing::get,
        Router,
    };
    use realtime_testkit::tls::{serve_tls, Pki, TlsServe};
    let pki = Pki::new();
    let app = Router::new()
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut s: WebSocket| async move {
                    let _ = s.send(AxMessage::Text("hello".into())).await;
                    let _ = s.send(AxMessage::Close(None)).await;
                })
            }),
        )
        .route(
            "/sse",
            get(|| async { ([("content-type", "text/event-stream")], "data: hello\n\n") }),
        );
    let serve = TlsServe {
        require_client_cert: true,
        ..TlsServe::h2()
    };
    let (addr, stats) = serve_tls(&pki, serve, app).await;
    let dir = std::env::temp_dir().join(format!(
        "tap-tls-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = pki.client_identity("tap");
    let (ca_file, both_file) = (dir.join("ca.pem"), dir.join("client.pem"));
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    std::fs::write(&both_file, format!("{cert}{key}")).unwrap();
    let (ca, both) = (ca_file.to_str().unwrap(), both_file.to_str().unwrap());

    let ws = format!("wss://{addr}/ws");
    let run = finish(
        tap(&[&ws, "--cacert", ca, "--cert", both, "--no-reconnect"])
            .spawn()
            .unwrap(),
    )
    .await;
    assert!(
        summary(&run.frames).contains(&"message:hello".to_owned()),
        "expected the message through mutual TLS, got {:?} (stderr: {})",
        run.frames,
        run.stderr
    );

    let sse = format!("https://{addr}/sse");
    for (extra, version) in [
        (None, axum::http::Version::HTTP_2),
        (Some("--http1.1"), axum::http::Version::HTTP_11),
    ] {
        let mut args = vec![
            sse.as_str(),
            "--cacert",
            ca,
            "--cert",
            both,
            "--no-reconnect",
        ];
        args.extend(extra);
        let run = finish(tap(&args).spawn().unwrap()).await;
        assert!(
            summary(&run.frames).contains(&"message:hello".to_owned()),
            "{args:?}: expected the message, got {:?} (stderr: {})",
            run.frames,
            run.stderr
        );
        let last = stats.requests().last().cloned();
        assert_eq!(last.map(|r| r.1), Some(version), "{args:?}");
    }

    let run = finish(
        tap(&[&ws, "--cacert", ca, "--no-reconnect"])
            .spawn()
            .unwrap(),
    )
    .await;
    run.assert_exit(1, " without a client certificate");
    let failed = run.frames.iter().find(|f| f["state"] == "failed").cloned();
    assert!(
        failed
            .as_ref()
            .and_then(|f| f["reason"].as_str())
            .is_some_and(|r| r.contains("requires a client certificate")),
        "expected a reason that says a client certificate is required, got {:?}",
        run.frames
    );
    let _ = std::fs::remove_dir_all(&dir);
}
