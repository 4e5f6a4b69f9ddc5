//! The plugin's commands through Tauri's real IPC and permission system: the example app's own configuration
//! and capabilities (`tauri::generate_context!`), on the mock runtime, against the demo server on loopback.

mod common;

use std::time::Duration;

use common::{invoke, window};

use realtime_example_lib::demo::DemoServer;
use serde_json::{json, Value};
use tauri::{test::MockRuntime, App};
use tauri_plugin_realtime::RealtimeExt;

fn app(server: &DemoServer) -> App<MockRuntime> {
    common::app(server.urls())
}

fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    common::wait_for(what, Duration::from_secs(10), cond)
}

fn server() -> DemoServer {
    tauri::async_runtime::block_on(DemoServer::start()).expect("demo server")
}

#[test]
fn granted_commands_work_end_to_end() {
    let server = server();
    let app = app(&server);
    let main = window(&app, "main");
    let urls = server.urls();

    let got = invoke(
        &main,
        "connect",
        json!({ "id": "chat-1", "options": { "url": urls.ws } }),
    )
    .unwrap();
    assert_eq!(
        got,
        json!({ "id": "chat-1", "state": "connecting", "shared": false }),
        "got {got}"
    );

    wait_for("the connection to open", || {
        invoke(&main, "inspect", json!({ "id": "chat-1" })).unwrap()[0]["state"] == "connected"
    });
    let sent = invoke(&main, "send", json!({ "id": "chat-1", "data": "hi" })).unwrap();
    assert_eq!(sent, json!({ "queued": false }), "got {sent}");
    let sent = invoke(
        &main,
        "send",
        json!({ "id": "chat-1", "data": "AAEC", "binary": true }),
    )
    .unwrap();
    assert_eq!(sent, json!({ "queued": false }), "got {sent}");
    wait_for("the echoes to come back", || {
        invoke(&main, "inspect", json!({ "id": "chat-1" })).unwrap()[0]["framesIn"].as_u64()
            >= Some(3)
    });
    let info = &invoke(&main, "inspect", json!({})).unwrap()[0];
    assert_eq!(
        (&info["framesOut"], &info["bytesOut"], &info["owners"]),
        (&json!(2), &json!(5), &json!({ "main": 1 })),
        "got {info}"
    );

    // An on-connect message set while connected goes at once too (the demo's chat echoes it back).
    let set = invoke(
        &main,
        "set_on_connect",
        json!({ "id": "chat-1", "key": "topic", "data": "sub" }),
    )
    .unwrap();
    assert_eq!(set, json!({ "connected": true }), "got {set}");
    wait_for("the on-connect message's echo", || {
        invoke(&main, "inspect", json!({ "id": "chat-1" })).unwrap()[0]["framesIn"].as_u64()
            >= Some(4)
    });
    let removed = invoke(
        &main,
        "remove_on_connect",
        json!({ "id": "chat-1", "key": "topic" }),
    )
    .unwrap();
    assert_eq!(removed, json!({ "removed": true }), "got {removed}");

    // A second identical subscription shares the upstream.
    let got = invoke(
        &main,
        "connect",
        json!({ "id": "chat-2", "options": { "url": urls.ws } }),
    )
    .unwrap();
    assert_eq!(got["shared"], json!(true), "got {got}");
    assert_eq!(app.realtime().hub().upstream_count(), 1);
    let info = &invoke(&main, "inspect", json!({ "id": "chat-1" })).unwrap()[0];
    // One connection task and one delivery task per subscriber.
    assert_eq!(
        (&info["subscribers"], &info["tasks"]),
        (&json!(2), &json!(3)),
        "got {info}"
    );

    assert_eq!(
        invoke(&main, "ack", json!({ "id": "chat-1", "frames": 3 })).unwrap(),
        Value::Null
    );
    invoke(&main, "reconnect", json!({ "id": "chat-1" })).unwrap();
    assert_eq!(
        invoke(
            &main,
            "close",
            json!({ "id": "chat-1", "code": 4000, "reason": "bye" })
        )
        .unwrap(),
        Value::Null
    );
    assert_eq!(
        invoke(&main, "close", json!({ "id": "chat-2" })).unwrap(),
        Value::Null
    );
    let e = invoke(&main, "send", json!({ "id": "chat-1", "data": "late" })).unwrap_err();
    assert!(
        e.contains("unknown connection id"),
        "expected unknown connection id, got {e}"
    );
}

#[test]
fn bad_input_is_refused_with_a_message() {
    let server = server();
    let app = app(&server);
    let main = window(&app, "main");
    let port = server.addr().port();
    let cases = [
        (
            json!({ "options": { "url": "not a url" } }),
            "not a valid URL",
        ),
        (
            json!({ "options": { "url": "ftp://127.0.0.1/x" } }),
            "unsupported url scheme",
        ),
        (
            json!({ "options": { "url": format!("ws://127.0.0.1:{port}/chat"), "retries": 3 } }),
            "unknown field `retries`",
        ),
        (
            json!({ "id": "no spaces", "options": { "url": format!("ws://127.0.0.1:{port}/chat") } }),
            "invalid connection id",
        ),
        // Outside the capability's scope: refused before any traffic.
        (
            json!({ "options": { "url": format!("ws://localhost:{port}/chat") } }),
            "not allowed by the realtime scope",
        ),
        (
            json!({ "options": { "url": format!("wss://127.0.0.1:{port}/chat") } }),
            "not allowed by the realtime scope",
        ),
        (
            json!({ "options": { "url": format!("ws://127.0.0.1:{port}/chat"), "headers": { "bad name": "x" } } }),
            "invalid header name",
        ),
    ];
    for (args, want) in cases {
        let e = invoke(&main, "connect", args.clone()).expect_err("expected an error");
        assert!(e.contains(want), "expected {want:?} for {args}, got {e:?}");
    }
    for (cmd, args) in [
        ("send", json!({ "id": "missing", "data": "x" })),
        ("close", json!({ "id": "missing" })),
        ("reconnect", json!({ "id": "missing" })),
        ("inspect", json!({ "id": "missing" })),
        ("ack", json!({ "id": "missing", "frames": 1 })),
        (
            "set_on_connect",
            json!({ "id": "missing", "key": "k", "data": "x" }),
        ),
        ("remove_on_connect", json!({ "id": "missing", "key": "k" })),
    ] {
        let e = invoke(&main, cmd, args).expect_err("expected an error");
        assert!(
            e.contains("unknown connection id"),
            "{cmd}: expected unknown connection id, got {e:?}"
        );
    }
    assert_eq!(app.realtime().hub().upstream_count(), 0);
}

#[test]
fn a_window_without_the_capability_is_refused() {
    let server = server();
    let app = app(&server);
    let other = window(&app, "other");
    let e = invoke(
        &other,
        "connect",
        json!({ "options": { "url": server.urls().ws } }),
    )
    .unwrap_err();
    assert!(
        e.contains("not allowed"),
        "expected a permission error, got {e:?}"
    );
    assert_eq!(app.realtime().hub().upstream_count(), 0);
}

#[test]
fn another_webviews_connection_is_unknown_to_it() {
    let server = server();
    let app = app(&server);
    let main = window(&app, "main");
    invoke(
        &main,
        "connect",
        json!({ "id": "mine", "options": { "url": server.urls().ws } }),
    )
    .unwrap();
    // Ownership is checked by the hub, whatever the permissions: use the Rust API as a second owner.
    let e = tauri::async_runtime::block_on(app.realtime().hub().send(
        "mine",
        "other",
        tauri_plugin_realtime::Outgoing::Text("x".into()),
    ))
    .unwrap_err();
    assert!(e.to_string().contains("unknown connection id"), "got {e}");
    let e = app
        .realtime()
        .hub()
        .close("mine", "other", None, None)
        .unwrap_err();
    assert!(e.to_string().contains("unknown connection id"), "got {e}");
    invoke(&main, "close", json!({ "id": "mine" })).unwrap();
}

/// A closed port on 127.0.0.1: allowed by the scope, and nothing answers.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_scope_limits_and_ownership_hold_through_the_ipc() {
    let server = server();
    let app = app(&server);
    let main = window(&app, "main");
    let second = window(&app, "second");
    let port = server.addr().port();

    // Deny wins over allow, for the connect URL and for the fallback's URLs.
    let denied = [
        json!({ "options": { "url": format!("http://127.0.0.1:{port}/admin/stream") } }),
        json!({ "options": { "url": format!("ws://127.0.0.1:{port}/admin") } }),
        json!({ "options": { "url": format!("http://127.0.0.1:{port}/summary"),
            "fallback": { "pollUrl": format!("http://127.0.0.1:{port}/admin/poll") } } }),
        json!({ "options": { "url": format!("ws://127.0.0.1:{port}/chat"),
            "fallback": { "pollUrl": format!("http://127.0.0.1:{port}/feed"), "sendUrl": "https://example.com/send" } } }),
        json!({ "options": { "url": format!("http://127.0.0.1:{port}/feed/stream"),
            "sendUrl": format!("http://127.0.0.1:{port}/admin/send") } }),
    ];
    for args in denied {
        let e = invoke(&main, "connect", args.clone()).expect_err("expected a scope error");
        assert!(
            e.contains("not allowed by the realtime scope"),
            "expected a scope error for {args}, got {e:?}"
        );
    }

    // Header values and counts.
    let url = format!("ws://127.0.0.1:{port}/chat");
    let e = invoke(
        &main,
        "connect",
        json!({ "options": { "url": url, "headers": { "x-a": "line\nbreak" } } }),
    )
    .unwrap_err();
    assert!(e.contains("invalid value for header"), "got {e:?}");
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let e = invoke(
        &main,
        "connect",
        json!({ "options": { "url": url, "headers": many } }),
    )
    .unwrap_err();
    assert!(e.contains("too many headers"), "got {e:?}");

    // Another window's connection id is unknown to it, for every command.
    invoke(
        &main,
        "connect",
        json!({ "id": "main-chat", "options": { "url": url } }),
    )
    .unwrap();
    for (cmd, args) in [
        ("send", json!({ "id": "main-chat", "data": "x" })),
        ("close", json!({ "id": "main-chat" })),
        ("reconnect", json!({ "id": "main-chat" })),
        ("inspect", json!({ "id": "main-chat" })),
        ("ack", json!({ "id": "main-chat", "frames": 1 })),
        (
            "set_on_connect",
            json!({ "id": "main-chat", "key": "k", "data": "x" }),
        ),
        (
            "remove_on_connect",
            json!({ "id": "main-chat", "key": "k" }),
        ),
    ] {
        let e = invoke(&second, cmd, args).expect_err("expected an error");
        assert!(
            e.contains("unknown connection id"),
            "{cmd} from another window: got {e:?}"
        );
    }
    assert_eq!(
        invoke(&second, "inspect", json!({})).unwrap(),
        json!([]),
        "another window sees nothing"
    );
    invoke(&main, "close", json!({ "id": "main-chat" })).unwrap();

    // A queue over its limit, while the server is down.
    let down = format!("ws://127.0.0.1:{}/chat", closed_port());
    invoke(&main, "connect", json!({ "id": "down", "options": {
        "url": down, "queue": { "maxMessages": 1 }, "reconnect": { "initialDelayMs": 60000 }, "share": false } })).unwrap();
    wait_for("the first attempt to fail", || {
        invoke(&main, "inspect", json!({ "id": "down" })).unwrap()[0]["state"] == "reconnecting"
    });
    assert_eq!(
        invoke(&main, "send", json!({ "id": "down", "data": "held" })).unwrap(),
        json!({ "queued": true })
    );
    let e = invoke(
        &main,
        "send",
        json!({ "id": "down", "data": "one too many" }),
    )
    .unwrap_err();
    assert!(e.contains("outbound queue is full"), "got {e:?}");
    invoke(&main, "close", json!({ "id": "down" })).unwrap();

    // Too many subscriptions for one webview (64 by default).
    for i in 0..64 {
        invoke(
            &second,
            "connect",
            json!({ "id": format!("s{i}"), "options": {
            "url": down, "reconnect": false, "share": false } }),
        )
        .unwrap();
    }
    let e = invoke(
        &second,
        "connect",
        json!({ "options": { "url": down, "reconnect": false, "share": false } }),
    )
    .unwrap_err();
    assert!(e.contains("too many connections"), "got {e:?}");
    // ... which does not limit another webview.
    invoke(
        &main,
        "connect",
        json!({ "id": "still-fine", "options": { "url": url } }),
    )
    .unwrap();
}

#[test]
fn a_redirect_to_a_denied_url_fails_the_connection() {
    use axum::{response::Redirect, routing::get, Router};
    let server = server();
    let app = app(&server);
    let main = window(&app, "main");
    let (port, _rt) = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = Router::new()
            .route(
                "/moved",
                get(|| async { Redirect::temporary("/admin/secrets") }),
            )
            .route("/admin/secrets", get(|| async { "must never be fetched" }));
        rt.spawn(async move { axum::serve(listener, router).await });
        (port, rt)
    };
    invoke(
        &main,
        "connect",
        json!({ "id": "r", "options": { "url": format!("http://127.0.0.1:{port}/moved") } }),
    )
    .unwrap();
    wait_for("the redirect to fail the connection", || {
        invoke(&main, "inspect", json!({ "id": "r" })).unwrap()[0]["state"] == "failed"
    });
    let info = &invoke(&main, "inspect", json!({ "id": "r" })).unwrap()[0];
    let reason = info["lastError"].as_str().unwrap_or_default();
    assert!(
        reason.contains("/admin/secrets") && reason.contains("not allowed by the realtime scope"),
        "expected the denied hop named, got {info}"
    );
}

/// One argument chooses the route. Without one (or with `route: "event"`) the frames come as the event
/// `realtime://<id>`, arrays of frame objects in `seq` order, as raw `invoke` callers `listen()` for them; with
/// `route: "direct"` (the bindings') they go to the page's receiver and no event is emitted. Any other route,
/// and the arguments that used to choose one, are refused.
#[test]
fn one_argument_chooses_the_route() {
    use std::sync::{Arc, Mutex};
    use tauri::Listener;
    use tauri_plugin_realtime::Frame;

    let server = server();
    let app = app(&server);
    let main = window(&app, "main");
    let urls = server.urls();
    // Each batch with the id whose event carried it.
    type Batches = Arc<Mutex<Vec<(&'static str, Vec<Frame>)>>>;
    let events: Batches = Arc::default();
    for id in ["ev-default", "ev-named", "direct-1"] {
        let got = events.clone();
        app.listen_any(format!("realtime://{id}"), move |e| {
            let frames = serde_json::from_str(e.payload()).expect("an array of frames");
            got.lock().unwrap().push((id, frames));
        });
    }
    let options = json!({ "url": urls.ws, "share": false });
    for (id, route) in [
        ("ev-default", None),
        ("ev-named", Some("event")),
        ("direct-1", Some("direct")),
    ] {
        let mut args = json!({ "id": id, "options": options });
        if let Some(route) = route {
            args["route"] = json!(route);
        }
        invoke(&main, "connect", args)
            .unwrap_or_else(|e| panic!("expected {id} to connect, got {e}"));
    }
    wait_for("all three to open", || {
        let all = invoke(&main, "inspect", json!({})).unwrap();
        all.as_array().unwrap().len() == 3
            && all
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["state"] == "connected")
    });
    // Small messages and one larger than any single evaluation Tauri makes of a channel message (8 KiB).
    let sent: Vec<String> = (0..50)
        .map(|i| match i {
            25 => format!("{i}{}", "z".repeat(70_000)),
            i => format!("m{i} \"quoted\" é"),
        })
        .collect();
    for id in ["ev-default", "ev-named", "direct-1"] {
        for text in &sent {
            invoke(&main, "send", json!({ "id": id, "data": text })).unwrap();
        }
    }
    let messages = |id: &str| -> Vec<Frame> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|(of, _)| *of == id)
            .flat_map(|(_, frames)| frames.clone())
            .collect()
    };
    for id in ["ev-default", "ev-named"] {
        wait_for(&format!("every echo of {id} as events"), || {
            let n = messages(id)
                .iter()
                .filter(|f| matches!(f, Frame::Message { .. }))
                .count();
            n > sent.len()
        });
        let frames = messages(id);
        let seqs: Vec<u64> = frames.iter().map(Frame::seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "expected {id}'s frames in seq order from 1, none missing"
        );
        let texts: Vec<&str> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Message { data, .. } => Some(data.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts[0], realtime_example_lib::demo::WELCOME);
        assert_eq!(
            &texts[1..],
            &sent.iter().map(String::as_str).collect::<Vec<_>>()[..]
        );
    }
    wait_for("every echo of direct-1 to be relayed", || {
        invoke(&main, "inspect", json!({ "id": "direct-1" })).unwrap()[0]["framesIn"].as_u64()
            > Some(sent.len() as u64)
    });
    assert!(
        messages("direct-1").is_empty(),
        "expected no event for the direct route, got {:?}",
        messages("direct-1")
    );

    let refused = invoke(
        &main,
        "connect",
        json!({ "id": "bad-route", "options": options, "route": "channel" }),
    )
    .expect_err("an unknown route is refused");
    assert!(
        refused.contains("route")
            && refused.contains("unknown variant `channel`, expected `event` or `direct`"),
        "expected the unknown route named, got {refused}"
    );
    for old in [
        json!({ "direct": true }),
        json!({ "channel": "__CHANNEL__:4242" }),
    ] {
        let mut args = json!({ "id": "old-args", "options": options });
        args.as_object_mut()
            .unwrap()
            .extend(old.as_object().unwrap().clone());
        let refused =
            invoke(&main, "connect", args).expect_err("the old route arguments are refused");
        assert!(
            refused.contains("takes no `direct` or `channel`")
                && refused.contains("route: \"direct\""),
            "expected the old argument refused with what to pass instead, got {refused}"
        );
    }
    let ids: Vec<Value> = invoke(&main, "inspect", json!({}))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(
        ids.len(),
        3,
        "expected no subscription from a refused connect, got {ids:?}"
    );
}

#[test]
fn send_beside_an_event_stream_posts_with_the_content_type_it_is_given() {
    let server = server();
    let app = app(&server);
    let main = window(&app, "main");
    let urls = server.urls();
    // The summary endpoint takes a POST (and answers it with a stream, which the send does not wait for).
    invoke(
        &main,
        "connect",
        json!({ "id": "feed", "options": { "url": urls.feed_stream, "sendUrl": urls.sse } }),
    )
    .unwrap();
    let sent = invoke(
        &main,
        "send",
        json!({ "id": "feed", "data": "{\"query\":\"rust\"}", "contentType": "application/json" }),
    )
    .unwrap();
    assert_eq!(sent, json!({ "queued": false }), "got {sent}");
    let e = invoke(
        &main,
        "send",
        json!({ "id": "feed", "data": "x", "contentType": "text/plain\r\nx-injected: 1" }),
    )
    .unwrap_err();
    assert!(e.contains("invalid content type"), "got {e:?}");
    let e = invoke(
        &main,
        "send",
        json!({ "id": "feed", "data": "x", "contentType": 5 }),
    )
    .unwrap_err();
    assert!(
        e.contains("contentType"),
        "expected the argument named, got {e:?}"
    );
    let info = &invoke(&main, "inspect", json!({ "id": "feed" })).unwrap()[0];
    assert_eq!(info["framesOut"], json!(1), "got {info}");

    // Without a sendUrl, the error says what to set.
    invoke(
        &main,
        "connect",
        json!({ "id": "bare", "options": { "url": urls.feed_stream, "share": false } }),
    )
    .unwrap();
    let e = invoke(&main, "send", json!({ "id": "bare", "data": "x" })).unwrap_err();
    assert!(e.contains("needs `sendUrl`"), "got {e:?}");
}

/// `withCredentials` through the IPC: the command brings the calling webview's cookie store (empty on the mock
/// runtime), so the connect is accepted and the demo server's session stream refuses it for want of a cookie (a
/// request without cookies, not a refused option). A `Cookie` header stays refused, pointing at
/// `withCredentials`.
#[test]
fn with_credentials_goes_through_the_ipc_and_a_cookie_header_points_at_it() {
    let server = server();
    let app = app(&server);
    let main = window(&app, "main");
    let url = format!("{}/session/events", server.urls().base);
    invoke(
        &main,
        "connect",
        json!({ "id": "c", "options": { "url": url, "withCredentials": true, "reconnect": false } }),
    )
    .unwrap_or_else(|e| panic!("expected withCredentials accepted from a webview, got {e}"));
    wait_for("the session stream to be refused", || {
        invoke(&main, "inspect", json!({ "id": "c" })).unwrap()[0]["state"] == "failed"
    });
    let info = &invoke(&main, "inspect", json!({ "id": "c" })).unwrap()[0];
    assert!(
        info["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "expected the server's 401, got {info}"
    );
    let body = tauri::async_runtime::block_on(async {
        reqwest::get(format!("{}/session/log", server.urls().base))
            .await?
            .bytes()
            .await
    })
    .expect("the session log");
    let log: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        log["hits"],
        json!([{ "path": "/session/events", "cookies": [], "status": 401 }])
    );
    let e = invoke(
        &main,
        "connect",
        json!({ "options": { "url": url, "headers": { "Cookie": "demo_session=user-1" } } }),
    )
    .unwrap_err();
    assert!(
        e.contains("forbids") && e.contains("withCredentials"),
        "expected the Cookie header refused, naming withCredentials, got {e}"
    );
}
