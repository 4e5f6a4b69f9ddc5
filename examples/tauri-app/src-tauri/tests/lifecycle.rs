//! Lifecycle of the plugin's upstreams in the example app (its own configuration and capabilities, on the mock
//! runtime): a webview that goes away, a page that reloads, and app exit. The streams go to a counting server
//! on 127.0.0.1:0 (the capability allows `ws://127.0.0.1:*/*` and `http://127.0.0.1:*/*`), which records the
//! TCP sockets it holds, its live WebSocket sessions and SSE streams, and every close frame it receives.
//!
//! What the mock runtime (tauri 2.12) can and cannot drive, read from `tauri::test::mock_runtime`:
//!
//! - `WebviewWindow::destroy()` and `close()` only post a message to the mock event loop, which exists only
//!   inside `App::run` / `run_return`. There, `destroy` removes the window from the mock's own table and
//!   `close` emits `CloseRequested` first; neither ever emits `WindowEvent::Destroyed`, so tauri's manager
//!   keeps the window and the plugin's `Destroyed` hook is never called. A test cannot raise that event
//!   itself either: `RunEvent::WindowEvent` is `#[non_exhaustive]`. When the last window goes, the loop
//!   emits `ExitRequested`, then `Exit`, which reach the plugin like on a real runtime.
//! - The mock never calls page-load handlers (and `PageLoadPayload` cannot be built outside tauri), so the
//!   plugin's reload hook (`PageLoadEvent::Started`) cannot run either.
//!
//! So these tests drive what can be driven for real: a webview that tauri's manager forgets
//! (`Webview::close()`, the same removal that a `Destroyed` event does) loses its subscriptions through the
//! relay, as soon as a frame for it finds no webview; a reload is modelled by `release_owner(label)`, the one
//! call the reload hook makes; app exit runs the mock event loop to `RunEvent::Exit`.

mod common;

use common::invoke;
use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use realtime_example_lib::demo::DemoUrls;
use realtime_testkit::count::{CountingServer, Kind};
use serde_json::{json, Value};
use tauri::{test::MockRuntime, App, AppHandle, Manager, RunEvent, WebviewWindow};
use tauri_plugin_realtime::RealtimeExt;

/// The plugin's default linger (`init()`), which the example app uses.
const LINGER: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(10);

/// The kit's counting server, on the runtime Tauri's commands run on.
fn start_server() -> CountingServer {
    tauri::async_runtime::block_on(CountingServer::start())
}

// ---------------------------------------------------------------------------------------------------------
// The app and its IPC, as in ipc.rs.

fn app(server: &CountingServer) -> App<MockRuntime> {
    common::app(DemoUrls::for_addr(server.addr))
}

fn main_window(app: &App<MockRuntime>) -> WebviewWindow<MockRuntime> {
    common::window(app, "main")
}

fn connect(w: &WebviewWindow<MockRuntime>, id: &str, url: &str) -> Value {
    invoke(w, "connect", json!({ "id": id, "options": { "url": url } }))
        .unwrap_or_else(|e| panic!("expected connect {id} to {url} to succeed, got {e}"))
}

fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    common::wait_for(what, WAIT, cond)
}

/// Waits until `main` sees every one of `ids` connected.
fn wait_connected(w: &WebviewWindow<MockRuntime>, ids: &[&str]) {
    wait_for(&format!("{ids:?} to be connected"), || {
        let all = invoke(w, "inspect", json!({})).unwrap();
        ids.iter().all(|id| {
            all.as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == *id && i["state"] == "connected")
        })
    });
}

// ---------------------------------------------------------------------------------------------------------

/// A webview that tauri no longer knows (what `Destroyed` does to the manager: `Webview::close()` performs the
/// same removal on the mock runtime) loses its subscriptions as soon as a frame for it finds no webview;
/// the upstreams linger, then close (WebSocket 1001 "going away", SSE request ended), leaving no task and no
/// socket.
#[test]
fn a_gone_webview_loses_its_subscriptions_and_the_upstreams_close_after_the_linger() {
    let srv = start_server();
    let app = app(&srv);
    let main = main_window(&app);
    let hub = app.realtime().hub().clone();

    let got = connect(&main, "ws-1", &srv.url(Kind::Ws, "room"));
    assert_eq!(got["shared"], json!(false), "got {got}");
    let got = connect(&main, "ws-2", &srv.url(Kind::Ws, "room"));
    assert_eq!(
        got["shared"],
        json!(true),
        "expected the second to share, got {got}"
    );
    connect(&main, "sse-1", &srv.url(Kind::Sse, "feed"));
    wait_connected(&main, &["ws-1", "ws-2", "sse-1"]);
    wait_for("the sessions at the server", || {
        srv.live(Kind::Ws) == 1 && srv.live(Kind::Sse) == 1
    });
    assert_eq!(
        (hub.upstream_count(), hub.owners()),
        (2, vec!["main".to_owned()]),
        "expected 2 upstreams held by main, got (upstreams, owners)"
    );

    AsRef::<tauri::Webview<MockRuntime>>::as_ref(&main)
        .close()
        .expect("expected the webview to close");
    assert!(
        app.get_webview_window("main").is_none(),
        "expected tauri to have forgotten the webview"
    );
    // No event reached the plugin: the subscriptions are still there until a frame finds no webview.
    assert_eq!(hub.owners(), ["main"], "got {:?}", hub.owners());

    srv.say("for nobody");
    wait_for("main's subscriptions to be released", || {
        hub.owners().is_empty()
    });
    let released = Instant::now();
    // The upstreams linger, so that a reloaded page could re-attach.
    std::thread::sleep(LINGER / 3);
    assert_eq!(
        (
            hub.upstream_count(),
            srv.live(Kind::Ws),
            srv.live(Kind::Sse)
        ),
        (2, 1, 1),
        "expected both upstreams to linger, got (upstreams, ws live, sse live); server: {}",
        srv.summary()
    );
    assert!(
        srv.closes().is_empty(),
        "expected no close yet, got {:?}",
        srv.closes()
    );

    wait_for("the WebSocket close at the server", || {
        !srv.closes().is_empty()
    });
    let closed_after = released.elapsed();
    assert_eq!(
        srv.closes(),
        ["close 1001 going away"],
        "expected one close 1001 going away"
    );
    assert!(
        closed_after + Duration::from_millis(100) >= LINGER,
        "expected the upstream to close after the {LINGER:?} linger, got {closed_after:?}"
    );
    wait_for("the SSE request to end", || srv.live(Kind::Sse) == 0);
    wait_for("no upstream", || hub.upstream_count() == 0);
    wait_for("no live task", || hub.live_tasks() == 0);
    wait_for("no open socket at the server", || srv.tcp_open() == 0);
    assert_eq!(
        srv.streams(Kind::Ws),
        1,
        "expected one WebSocket for the two shared subscriptions; server: {}",
        srv.summary()
    );
}

/// A reload drops the page's subscriptions (the reload hook calls `release_owner(label)`, which is what this
/// test calls: the mock runtime has no page loads); the reloaded page connects again within the linger and
/// re-attaches to the same upstream, with no new connection at the server. Once it leaves for good, the
/// upstream closes after the linger.
#[test]
fn a_reloaded_page_reattaches_within_the_linger() {
    let srv = start_server();
    let app = app(&srv);
    let main = main_window(&app);
    let hub = app.realtime().hub().clone();

    connect(&main, "chat", &srv.url(Kind::Ws, "chat"));
    wait_connected(&main, &["chat"]);
    wait_for("the session at the server", || srv.live(Kind::Ws) == 1);

    assert_eq!(
        hub.release_owner("main"),
        1,
        "expected one subscription released"
    );
    let e = invoke(&main, "inspect", json!({ "id": "chat" })).unwrap_err();
    assert!(
        e.contains("unknown connection id"),
        "expected the old page's id to be gone, got {e}"
    );
    std::thread::sleep(LINGER / 6);
    let got = connect(&main, "chat", &srv.url(Kind::Ws, "chat"));
    assert_eq!(
        got,
        json!({ "id": "chat", "state": "connected", "shared": true }),
        "expected the reloaded page to re-attach to the lingering upstream, got {got}"
    );
    // Past the first linger: still the same single upstream.
    std::thread::sleep(LINGER + LINGER / 6);
    let info = invoke(&main, "inspect", json!({ "id": "chat" })).unwrap();
    assert!(
        info[0]["state"] == "connected" && info[0]["subscribers"] == 1,
        "expected the re-attached subscription connected, got {info}"
    );
    assert_eq!(
        (
            srv.streams(Kind::Ws),
            srv.live(Kind::Ws),
            srv.closes().len()
        ),
        (1, 1, 0),
        "expected no reconnect and no close, got (upgrades, live, closes); server: {}",
        srv.summary()
    );

    invoke(
        &main,
        "close",
        json!({ "id": "chat", "code": 4000, "reason": "done" }),
    )
    .unwrap();
    let left = Instant::now();
    wait_for("the close at the server", || !srv.closes().is_empty());
    assert!(
        left.elapsed() + Duration::from_millis(100) >= LINGER,
        "expected the close after the linger, got {:?}",
        left.elapsed()
    );
    assert_eq!(srv.closes(), ["close 4000 done"], "expected the app's code");
    wait_for("no live task", || hub.live_tasks() == 0);
    wait_for("no open socket at the server", || srv.tcp_open() == 0);
    assert_eq!(hub.upstream_count(), 0, "expected no upstream");
}

/// Tauri can run one `connect` invoke twice (its IPC falls back to a second route when the first fails, as a
/// reloading page may make it), and a page may retry a connect whose answer it lost: the repeats, sequential
/// and racing from other threads, answer with the first subscription; the server sees one stream.
#[test]
fn the_same_connect_twice_is_one_subscription() {
    let srv = start_server();
    let app = app(&srv);
    let main = main_window(&app);
    let args = json!({
        "id": "feed",
        "options": { "url": srv.url(Kind::Sse, "feed"), "share": false },
        "route": "direct",
        "ack": { "frames": 64, "bytes": 65536 }
    });
    let first = invoke(&main, "connect", args.clone()).unwrap();
    let racers: Vec<_> = (0..3)
        .map(|_| {
            let (w, a) = (main.clone(), args.clone());
            std::thread::spawn(move || invoke(&w, "connect", a))
        })
        .collect();
    for r in racers {
        let again = r.join().expect("the racing thread");
        assert_eq!(
            again.as_ref().map(|v| &v["id"]),
            Ok(&json!("feed")),
            "expected a repeat to answer with the same subscription, got {again:?}"
        );
        assert_eq!(again.unwrap()["shared"], false, "a repeat is not a join");
    }
    assert_eq!(first["shared"], false);
    wait_connected(&main, &["feed"]);
    let info = invoke(&main, "inspect", json!({})).unwrap();
    assert_eq!(
        info.as_array().map(Vec::len),
        Some(1),
        "expected one subscription, got {info}"
    );
    assert_eq!(
        srv.streams(Kind::Sse),
        1,
        "expected one stream: {}",
        srv.summary()
    );
    // Other options under the id are a different request: refused.
    let e = invoke(
        &main,
        "connect",
        json!({ "id": "feed", "options": { "url": srv.url(Kind::Sse, "other") } }),
    )
    .unwrap_err();
    assert!(
        e.contains("cannot be used"),
        "expected the id refused, got {e}"
    );
    invoke(&main, "close", json!({ "id": "feed" })).unwrap();
    wait_for("no open socket at the server", || srv.tcp_open() == 0);
}

/// What the app saw while its event loop ran.
#[derive(Default)]
struct Seen {
    events: Vec<String>,
    exit_requested: Option<Instant>,
    exit: Option<Instant>,
    tasks_at_exit: Option<usize>,
    upstreams_at_exit: Option<usize>,
    worker: Option<std::thread::JoinHandle<Result<(), String>>>,
}

/// Opens streams from `main` through the IPC, then destroys the only window, which ends the mock event loop.
fn drive(handle: AppHandle<MockRuntime>, srv: CountingServer) -> Result<(), String> {
    let main = handle
        .get_webview_window("main")
        .ok_or("expected the app's setup to create the main window")?;
    let steps = std::panic::catch_unwind(AssertUnwindSafe(|| {
        assert_eq!(
            connect(&main, "a", &srv.url(Kind::Ws, "one"))["shared"],
            json!(false)
        );
        assert_eq!(
            connect(&main, "b", &srv.url(Kind::Ws, "one"))["shared"],
            json!(true)
        );
        connect(&main, "c", &srv.url(Kind::Ws, "two"));
        connect(&main, "d", &srv.url(Kind::Sse, "three"));
        wait_connected(&main, &["a", "b", "c", "d"]);
        wait_for("every session at the server", || {
            srv.live(Kind::Ws) == 2 && srv.live(Kind::Sse) == 1
        });
        // One of them is lingering when the app exits.
        invoke(&main, "close", json!({ "id": "c" })).unwrap();
    }));
    // Whatever happened, end the event loop: the last window gone, the mock exits.
    let destroyed = main.destroy().map_err(|e| e.to_string());
    steps.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the worker panicked".into())
    })?;
    destroyed
}

/// App exit (`RunEvent::Exit`, reached on the mock runtime by running its event loop until the last window
/// is gone) closes every upstream with 1001, the lingering one too, within the plugin's 2 s exit grace, and
/// leaves no task and no socket.
#[test]
fn app_exit_closes_every_upstream_with_1001() {
    let srv = start_server();
    let app = app(&srv);
    // The window comes from the app's configuration, created by setup when the event loop starts.
    assert!(app.get_webview_window("main").is_none());
    let hub = app.realtime().hub().clone();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let started = Instant::now();

    let (seen2, hub2, srv2) = (seen.clone(), hub.clone(), srv.clone());
    let code = app.run_return(move |handle, event| {
        let mut s = seen2.lock().unwrap();
        match &event {
            RunEvent::Ready => {
                let (handle, srv) = (handle.clone(), srv2.clone());
                s.worker = Some(std::thread::spawn(move || drive(handle, srv)));
            }
            RunEvent::ExitRequested { .. } => s.exit_requested = Some(Instant::now()),
            // The plugin's hook has run by now: plugins see each event before the app's callback.
            RunEvent::Exit => {
                s.exit = Some(Instant::now());
                s.tasks_at_exit = Some(hub2.live_tasks());
                s.upstreams_at_exit = Some(hub2.upstream_count());
            }
            RunEvent::MainEventsCleared => {
                // A watchdog: a stuck worker must not keep the loop (one iteration a second) alive.
                if started.elapsed() > Duration::from_secs(60) {
                    for w in handle.webview_windows().values() {
                        let _ = w.destroy();
                    }
                }
                return;
            }
            _ => {}
        }
        s.events.push(format!("{event:?}"));
    });
    let mut s = seen.lock().unwrap();
    println!(
        "exit code {code}; events seen by the app (and so by plugins): {:?}",
        s.events
    );
    let worker = s
        .worker
        .take()
        .expect("expected the Ready event to start the worker");
    worker
        .join()
        .expect("the worker thread")
        .unwrap_or_else(|e| panic!("expected the streams to open, got {e}"));

    let (Some(requested), Some(exit)) = (s.exit_requested, s.exit) else {
        panic!("expected ExitRequested and Exit, got {:?}", s.events);
    };
    let took = exit.duration_since(requested);
    println!("exit: the plugin's shutdown took {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "expected every upstream closed within the 2 s exit grace, got {took:?}"
    );
    assert_eq!(
        (s.tasks_at_exit, s.upstreams_at_exit),
        (Some(0), Some(0)),
        "expected no task and no upstream once the plugin handled Exit, got (tasks, upstreams)"
    );
    wait_for("two close frames at the server", || srv.closes().len() >= 2);
    let closes = srv.closes();
    assert!(
        closes.len() == 2 && closes.iter().all(|c| c.starts_with("close 1001 ")),
        "expected both WebSockets (one lingering) to get close 1001, got {closes:?}"
    );
    wait_for("the SSE request to end", || srv.live(Kind::Sse) == 0);
    wait_for("no open socket at the server", || srv.tcp_open() == 0);
    assert_eq!(
        (srv.live(Kind::Ws), hub.live_tasks()),
        (0, 0),
        "expected nothing left; server: {}",
        srv.summary()
    );
}
