//! The example app for `tauri-plugin-realtime`: a window whose page streams from a demo server (see [`demo`])
//! through the plugin: a WebSocket chat, an SSE search summary, and a live feed with a polling fallback. A second,
//! chat-only window shares the chat's upstream connection.
//!
//! [`register`] holds everything the app adds to a `tauri::Builder` (plugin, state, commands) and is generic over
//! the runtime, so tests build the very same app on `tauri::test::mock_builder()`.
//!
//! The demo server normally runs inside the app (started by [`run`]). With `REALTIME_DEMO_SERVER=127.0.0.1:<port>`
//! the app uses one that runs on its own instead (the `realtime-demo-server` binary), which outlives the app: the
//! end-to-end test reads its counters after the app has quit.

mod connections;
pub mod demo;

use std::{net::SocketAddr, time::Duration};

use demo::{
    DemoHandle, DemoServer, DemoStatus, DemoUrls, PingsRequest, SlowRequest, StreamingSwitch,
};
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

/// Label of the second, chat-only window (listed in `capabilities/default.json`).
pub const SECOND_WINDOW: &str = "second";

/// The environment variable that names an external demo server, `127.0.0.1:<port>`.
pub const DEMO_SERVER_ENV: &str = "REALTIME_DEMO_SERVER";

/// Time allowed for one request to the demo server's status or control endpoint.
const DEMO_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client the app's own commands use to reach the demo server (status and streaming switch). The app
/// talks to the server only over HTTP, as to any backend, whether the server runs inside the app or not.
pub struct DemoClient(reqwest::Client);

impl DemoClient {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            // Loopback only: never through a proxy from the environment.
            .no_proxy()
            .timeout(DEMO_REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self(client)
    }

    /// Sends `request` and reads the demo server's JSON answer, saying which step failed.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, String> {
        let response = request
            .send()
            .await
            .map_err(|e| format!("demo server unreachable: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("demo server answer cut short: {e}"))?;
        if !status.is_success() {
            return Err(format!("demo server answered HTTP {status}"));
        }
        serde_json::from_slice(&body)
            .map_err(|e| format!("demo server answered something else: {e}"))
    }

    async fn status_from(&self, request: reqwest::RequestBuilder) -> Result<DemoStatus, String> {
        self.json(request).await
    }
}

/// The embedded demo server, when the app runs it (not with `REALTIME_DEMO_SERVER`): what stops and starts it.
#[derive(Default)]
pub struct DemoProcess(std::sync::OnceLock<DemoHandle>);

impl DemoProcess {
    fn handle(&self) -> Result<&DemoHandle, String> {
        self.0.get().ok_or_else(|| {
            format!("the demo server runs on its own ({DEMO_SERVER_ENV}): stop and start it there")
        })
    }
}

/// POSTs `body` as JSON to the demo server's `path` and gives the status it answers.
async fn post_control(
    urls: &DemoUrls,
    client: &DemoClient,
    path: &str,
    body: &impl serde::Serialize,
) -> Result<DemoStatus, String> {
    let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let request = client
        .0
        .post(format!("{}{path}", urls.base))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    client.status_from(request).await
}

/// The demo server's URLs, for the page to connect to.
#[tauri::command]
fn demo_urls(urls: tauri::State<'_, DemoUrls>) -> DemoUrls {
    urls.inner().clone()
}

/// What the demo server sees: open chat sockets, open streams, polls, and whether it streams at all.
#[tauri::command]
async fn demo_status(
    urls: tauri::State<'_, DemoUrls>,
    client: tauri::State<'_, DemoClient>,
    process: tauri::State<'_, DemoProcess>,
) -> Result<DemoStatus, String> {
    match client.status_from(client.0.get(&urls.status)).await {
        Ok(status) => Ok(status),
        // A stopped embedded server still has its counters (`listening: false`).
        Err(e) => process.handle().map(DemoHandle::status).map_err(|_| e),
    }
}

/// Ends every open connection of the demo server at once, without a close frame (a network cut).
#[tauri::command]
async fn demo_drop_connections(
    urls: tauri::State<'_, DemoUrls>,
    client: tauri::State<'_, DemoClient>,
) -> Result<DemoStatus, String> {
    post_control(&urls, &client, "/control/drop", &serde_json::json!({})).await
}

/// Stops the embedded demo server: connections are refused until `demo_server_start`.
#[tauri::command]
async fn demo_server_stop(process: tauri::State<'_, DemoProcess>) -> Result<DemoStatus, String> {
    let handle = process.handle()?;
    handle.stop().await?;
    Ok(handle.status())
}

/// Starts the embedded demo server again, on the same port.
#[tauri::command]
async fn demo_server_start(process: tauri::State<'_, DemoProcess>) -> Result<DemoStatus, String> {
    let handle = process.handle()?;
    handle.start().await?;
    Ok(handle.status())
}

/// Makes every stream of the demo server wait `delay_ms` before each item (0: full speed).
#[tauri::command]
async fn demo_set_slow(
    delay_ms: u64,
    urls: tauri::State<'_, DemoUrls>,
    client: tauri::State<'_, DemoClient>,
) -> Result<DemoStatus, String> {
    post_control(&urls, &client, "/control/slow", &SlowRequest { delay_ms }).await
}

/// Makes `/topics` answer application pings (`answer: true`) or ignore them.
#[tauri::command]
async fn demo_set_pings(
    answer: bool,
    urls: tauri::State<'_, DemoUrls>,
    client: tauri::State<'_, DemoClient>,
) -> Result<DemoStatus, String> {
    post_control(&urls, &client, "/control/pings", &PingsRequest { answer }).await
}

/// Makes the demo server refuse streaming (`enabled: false`) or allow it again; gives the new status.
#[tauri::command]
async fn demo_set_streaming(
    enabled: bool,
    urls: tauri::State<'_, DemoUrls>,
    client: tauri::State<'_, DemoClient>,
) -> Result<DemoStatus, String> {
    let body = serde_json::to_vec(&StreamingSwitch { enabled }).map_err(|e| e.to_string())?;
    let request = client
        .0
        .post(&urls.control)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    client.status_from(request).await
}

/// Opens the second, chat-only window (`index.html?view=chat`), or brings it to the front if it is open.
///
/// An app command rather than the JS window API, so the capability does not need `core:window:allow-create`.
/// Async, because creating a window from a synchronous command deadlocks on Windows.
#[tauri::command]
async fn open_second_window<R: Runtime>(app: AppHandle<R>) -> Result<(), String> {
    if let Some(window) = app.get_webview_window(SECOND_WINDOW) {
        window.show().map_err(|e| e.to_string())?;
        return window.set_focus().map_err(|e| e.to_string());
    }
    WebviewWindowBuilder::new(
        &app,
        SECOND_WINDOW,
        WebviewUrl::App("index.html?view=chat".into()),
    )
    .title("Realtime Example: chat (second window)")
    .inner_size(480.0, 640.0)
    .min_inner_size(360.0, 400.0)
    .build()
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Label of the sign-in window that the session cookie section opens.
pub const SIGNIN_WINDOW: &str = "signin";

/// Opens the demo server's sign-in page in a window of its own: a top-level page of the server's origin, so the
/// session cookie it sets is first-party and lands in the webview's cookie store, which every window of the app
/// shares. When the page has loaded, the window closes and the main window hears `session-signed-in`. The page
/// is remote: no capability lists this window, so it gets no command. (Navigating the main window there and
/// redirecting back does not work: WebKitGTK will not follow a redirect from http to `tauri://`.)
#[tauri::command]
async fn open_signin_window<R: Runtime>(
    app: AppHandle<R>,
    urls: tauri::State<'_, DemoUrls>,
) -> Result<(), String> {
    if let Some(window) = app.get_webview_window(SIGNIN_WINDOW) {
        window.close().map_err(|e| e.to_string())?;
    }
    let url: tauri::Url = format!("{}/session/signin", urls.base)
        .parse()
        .map_err(|e| format!("bad demo server URL: {e}"))?;
    WebviewWindowBuilder::new(&app, SIGNIN_WINDOW, WebviewUrl::External(url))
        .title("Sign in to the demo server")
        .inner_size(420.0, 240.0)
        .on_page_load(|window, payload| {
            if payload.event() == tauri::webview::PageLoadEvent::Finished
                && payload.url().path() == "/session/signin"
            {
                let _ = window.emit_to("main", "session-signed-in", ());
                let _ = window.close();
            }
        })
        .build()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Closes the window that asks: the chat-only window's "Close window" button.
#[tauri::command]
fn close_window<R: Runtime>(window: tauri::Window<R>) -> Result<(), String> {
    window.close().map_err(|e| e.to_string())
}

/// Adds the realtime plugin, the demo server's URLs (as managed state) and the app's commands to `builder`.
///
/// ```text
/// let app = realtime_example_lib::register(tauri::test::mock_builder(), server.urls())
///     .build(tauri::test::mock_context(tauri::test::noop_assets()))?;
/// ```
pub fn register<R: tauri::Runtime>(
    builder: tauri::Builder<R>,
    demo: DemoUrls,
) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_realtime::init())
        .manage(demo)
        .manage(DemoClient::new())
        .manage(DemoProcess::default())
        .invoke_handler(tauri::generate_handler![
            demo_urls,
            demo_status,
            demo_set_streaming,
            demo_drop_connections,
            demo_server_stop,
            demo_server_start,
            demo_set_slow,
            demo_set_pings,
            open_second_window,
            open_signin_window,
            close_window,
            connections::demo_room_feeds_status,
            connections::demo_room_restart
        ])
}

/// [`register`] on a fresh `tauri::Builder`.
pub fn builder<R: tauri::Runtime>(demo: DemoUrls) -> tauri::Builder<R> {
    register(tauri::Builder::<R>::new(), demo)
}

/// Reads `REALTIME_DEMO_SERVER` (`127.0.0.1:<port>`, or `http://127.0.0.1:<port>`). Only 127.0.0.1 is accepted:
/// it is also all that the capability's URL scope allows.
pub fn external_demo_server(value: &str) -> Result<SocketAddr, String> {
    let trimmed = value
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let addr: SocketAddr = trimmed
        .parse()
        .map_err(|_| format!("{DEMO_SERVER_ENV} must be 127.0.0.1:<port>, got {value:?}"))?;
    if addr.ip() != std::net::IpAddr::from([127, 0, 0, 1]) || addr.port() == 0 {
        return Err(format!(
            "{DEMO_SERVER_ENV} must be 127.0.0.1:<port>, got {value:?}"
        ));
    }
    Ok(addr)
}

/// Starts the demo server on Tauri's async runtime (unless `REALTIME_DEMO_SERVER` names one), then runs the app
/// until its last window closes.
#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let (server, urls) = match std::env::var(DEMO_SERVER_ENV) {
        Ok(value) => {
            let addr = external_demo_server(&value).unwrap_or_else(|e| panic!("{e}"));
            (None, DemoUrls::for_addr(addr))
        }
        Err(_) => {
            let server = tauri::async_runtime::block_on(DemoServer::start())
                .expect("error while starting the demo server on 127.0.0.1");
            let urls = server.urls();
            (Some(server), urls)
        }
    };
    let app = register(tauri::Builder::default(), urls)
        .build(tauri::generate_context!())
        .expect("error while building tauri application");
    if let Some(server) = &server {
        let _ = app.state::<DemoProcess>().0.set(server.handle());
    }
    // `server` stays alive for the whole run: the event loop below ends the process without returning.
    app.run(|_, _| {});
    drop(server);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{
        get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY,
    };
    use tauri::webview::InvokeRequest;

    fn app(urls: DemoUrls) -> tauri::App<MockRuntime> {
        register(mock_builder(), urls)
            .build(mock_context(noop_assets()))
            .expect("expected the app to build on the mock runtime")
    }

    fn window(app: &tauri::App<MockRuntime>) -> tauri::WebviewWindow<MockRuntime> {
        tauri::WebviewWindowBuilder::new(app, "main", Default::default())
            .build()
            .expect("expected a mock webview")
    }

    fn invoke(
        webview: &tauri::WebviewWindow<MockRuntime>,
        cmd: &str,
        args: Value,
    ) -> Result<Value, Value> {
        get_ipc_response(
            webview,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|r| r.deserialize::<Value>().expect("expected a JSON answer"))
    }

    #[test]
    fn demo_urls_command_answers_over_ipc() {
        let urls = DemoUrls::for_addr(([127, 0, 0, 1], 4321).into());
        let app = app(urls.clone());
        let webview = window(&app);
        let got: DemoUrls = serde_json::from_value(
            invoke(&webview, "demo_urls", json!({})).expect("expected demo_urls to succeed"),
        )
        .expect("expected a DemoUrls payload");
        assert_eq!(got, urls, "expected {urls:?}, got {got:?}");
    }

    #[test]
    fn demo_status_and_streaming_switch_reach_the_server_over_http() {
        let server = tauri::async_runtime::block_on(DemoServer::start()).expect("demo server");
        let app = app(server.urls());
        let webview = window(&app);

        let status: DemoStatus = serde_json::from_value(
            invoke(&webview, "demo_status", json!({})).expect("expected demo_status to succeed"),
        )
        .unwrap();
        assert!(
            status.streaming,
            "expected streaming on at start, got {status:?}"
        );

        let off: DemoStatus = serde_json::from_value(
            invoke(&webview, "demo_set_streaming", json!({ "enabled": false }))
                .expect("expected demo_set_streaming to succeed"),
        )
        .unwrap();
        assert!(!off.streaming, "expected streaming off, got {off:?}");
        let on: DemoStatus = serde_json::from_value(
            invoke(&webview, "demo_set_streaming", json!({ "enabled": true })).unwrap(),
        )
        .unwrap();
        assert!(on.streaming, "expected streaming on again, got {on:?}");

        let e = invoke(&webview, "demo_set_streaming", json!({})).expect_err("expected an error");
        assert!(
            e.to_string().contains("enabled"),
            "expected a missing `enabled` argument error, got {e}"
        );
        drop(server);
    }

    #[test]
    fn demo_status_without_a_server_is_an_error_not_a_hang() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let app = app(DemoUrls::for_addr(([127, 0, 0, 1], port).into()));
        let webview = window(&app);
        let e = invoke(&webview, "demo_status", json!({})).expect_err("expected an error");
        assert!(
            e.to_string().contains("demo server unreachable"),
            "expected `demo server unreachable`, got {e}"
        );
    }

    #[test]
    fn fault_commands_reach_the_server_and_stop_start_need_the_embedded_one() {
        let server = tauri::async_runtime::block_on(DemoServer::start()).expect("demo server");
        let app = app(server.urls());
        let webview = window(&app);

        let status = |v: Value| -> DemoStatus { serde_json::from_value(v).expect("a DemoStatus") };
        let dropped = status(invoke(&webview, "demo_drop_connections", json!({})).unwrap());
        assert_eq!(dropped.drops, 1, "expected one drop, got {dropped:?}");
        let slow = status(invoke(&webview, "demo_set_slow", json!({ "delayMs": 250 })).unwrap());
        assert_eq!(slow.slow_ms, 250, "expected 250 ms, got {slow:?}");
        let pings = status(invoke(&webview, "demo_set_pings", json!({ "answer": false })).unwrap());
        assert!(!pings.answer_pings, "expected pings off, got {pings:?}");

        // Not given the embedded server's handle (as with REALTIME_DEMO_SERVER): stop and start say so.
        for command in ["demo_server_stop", "demo_server_start"] {
            let e = invoke(&webview, command, json!({})).expect_err("expected an error");
            assert!(
                e.to_string().contains(DEMO_SERVER_ENV),
                "expected {command} to name {DEMO_SERVER_ENV}, got {e}"
            );
        }

        // Given it: stop, the status still answers (from the handle), start again on the same port.
        let _ = app.state::<DemoProcess>().0.set(server.handle());
        let stopped = status(invoke(&webview, "demo_server_stop", json!({})).unwrap());
        assert!(!stopped.listening, "expected stopped, got {stopped:?}");
        let seen = status(invoke(&webview, "demo_status", json!({})).unwrap());
        assert!(
            !seen.listening,
            "expected the status of a stopped server, got {seen:?}"
        );
        let started = status(invoke(&webview, "demo_server_start", json!({})).unwrap());
        assert!(
            started.listening && started.server_starts == 2,
            "expected listening after a second start, got {started:?}"
        );
        drop(server);
    }

    #[test]
    fn open_second_window_opens_it_once() {
        let app = app(DemoUrls::for_addr(([127, 0, 0, 1], 4321).into()));
        let webview = window(&app);
        for _ in 0..2 {
            invoke(&webview, "open_second_window", json!({})).expect("expected the window to open");
            assert!(
                app.get_webview_window(SECOND_WINDOW).is_some(),
                "expected a window labelled {SECOND_WINDOW:?}"
            );
        }
        let labels: Vec<String> = app.webview_windows().into_keys().collect();
        assert_eq!(
            labels.len(),
            2,
            "expected main and second only, got {labels:?}"
        );
    }

    #[test]
    fn external_demo_server_must_be_127_0_0_1() {
        assert_eq!(
            external_demo_server("127.0.0.1:4321"),
            Ok(([127, 0, 0, 1], 4321).into())
        );
        assert_eq!(
            external_demo_server("http://127.0.0.1:4321/"),
            Ok(([127, 0, 0, 1], 4321).into())
        );
        for bad in [
            "10.0.0.1:4321",
            "localhost:4321",
            "127.0.0.1:0",
            "127.0.0.1",
            "",
        ] {
            let got = external_demo_server(bad);
            assert!(got.is_err(), "expected {bad:?} to be refused, got {got:?}");
        }
    }
}
