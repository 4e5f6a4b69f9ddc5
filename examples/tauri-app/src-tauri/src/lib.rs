//! The example app for `tauri-plugin-realtime`: one window whose page streams from an embedded demo server (see
//! [`demo`]) through the plugin, a WebSocket chat and an SSE search summary.
//!
//! [`register`] holds everything the app adds to a `tauri::Builder` (plugin, state, commands) and is generic over
//! the runtime, so tests build the very same app on `tauri::test::mock_builder()`.

pub mod demo;

use demo::{DemoServer, DemoUrls};

/// The demo server's URLs, for the page to connect to.
#[tauri::command]
fn demo_urls(urls: tauri::State<'_, DemoUrls>) -> DemoUrls {
    urls.inner().clone()
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
        .invoke_handler(tauri::generate_handler![demo_urls])
}

/// [`register`] on a fresh `tauri::Builder`.
pub fn builder<R: tauri::Runtime>(demo: DemoUrls) -> tauri::Builder<R> {
    register(tauri::Builder::<R>::new(), demo)
}

/// Starts the demo server on Tauri's async runtime, then runs the app until its last window closes.
#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let server = tauri::async_runtime::block_on(DemoServer::start())
        .expect("error while starting the demo server on 127.0.0.1");
    // `server` stays alive for the whole run: the event loop below ends the process without returning.
    register(tauri::Builder::default(), server.urls())
        .run(tauri::generate_context!())
        .expect("error while running tauri application");
    drop(server);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, INVOKE_KEY};
    use tauri::webview::InvokeRequest;

    #[test]
    fn demo_urls_command_answers_over_ipc() {
        let urls = DemoUrls::for_addr(([127, 0, 0, 1], 4321).into());
        let app = register(mock_builder(), urls.clone())
            .build(mock_context(noop_assets()))
            .expect("expected the app to build on the mock runtime");
        let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("expected a mock webview");

        let response = get_ipc_response(
            &webview,
            InvokeRequest {
                cmd: "demo_urls".into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::default(),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        );
        let got: DemoUrls = response
            .expect("expected demo_urls to succeed")
            .deserialize()
            .expect("expected a DemoUrls payload");
        assert_eq!(got, urls, "expected {urls:?}, got {got:?}");
    }
}
