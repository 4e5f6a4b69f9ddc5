//! What the example's IPC tests share: the app built on the mock runtime with its real configuration and
//! capabilities, its windows, and a call to one of the plugin's commands through the IPC.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use realtime_example_lib::demo::DemoUrls;
use serde_json::Value;
use tauri::{
    ipc::{CallbackFn, InvokeBody},
    test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY},
    webview::InvokeRequest,
    App, Manager, WebviewWindow, WebviewWindowBuilder,
};

/// The example app on the mock runtime, with `tauri.conf.json` and the capabilities as built.
pub fn app(urls: DemoUrls) -> App<MockRuntime> {
    realtime_example_lib::register(mock_builder(), urls)
        .build(tauri::generate_context!(test = true))
        .expect("expected the example app to build on the mock runtime")
}

/// The window `label`, made if the configuration did not make it.
pub fn window(app: &App<MockRuntime>, label: &str) -> WebviewWindow<MockRuntime> {
    app.get_webview_window(label).unwrap_or_else(|| {
        WebviewWindowBuilder::new(app, label, Default::default())
            .build()
            .expect("expected a mock window")
    })
}

/// `plugin:realtime|<cmd>` from `w`, through the permission checks; errors as their message.
pub fn invoke(w: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, String> {
    get_ipc_response(
        w,
        InvokeRequest {
            cmd: format!("plugin:realtime|{cmd}"),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|r| r.deserialize::<Value>().expect("a JSON answer"))
    .map_err(|e| match e {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// Polls `cond` every 10 ms until it holds, or panics after `within`.
pub fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "expected {what} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
