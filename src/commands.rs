//! The plugin's commands: parse, check scope and ownership (the webview's label is the owner), call the
//! engine, answer. No socket code here.

use std::sync::Arc;

use serde::{de::IgnoredAny, Deserialize, Serialize};
use tauri::{
    command,
    ipc::{CommandScope, GlobalScope},
    AppHandle, Runtime, Webview,
};

use crate::{
    cookies::WebviewJar,
    core::{
        new_id, AckWindow, ConnectOptions, ConnectRequest, Connected, ConnectionInfo, Outgoing,
        MAX_ACK_BYTES, MAX_ACK_FRAMES,
    },
    relay::{Route, WebviewSink},
    scope::{Entry, Scope},
    RealtimeExt, Result,
};

/// Flow control asked for by the guest bindings: delivery pauses while this much is unacknowledged.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AckArgs {
    /// Frames in flight at most.
    pub frames: u64,
    /// Approximate bytes in flight at most.
    pub bytes: u64,
}

impl AckArgs {
    /// The window's memory is the app's: a page may not ask for more than the engine allows.
    fn check(&self) -> Result<()> {
        let fits = (1..=MAX_ACK_FRAMES).contains(&self.frames)
            && (1..=MAX_ACK_BYTES).contains(&self.bytes);
        if fits {
            return Ok(());
        }
        Err(crate::core::Error::InvalidOptions(format!(
            "`ack` must be 1 to {MAX_ACK_FRAMES} frames and 1 to {MAX_ACK_BYTES} bytes, got {} and {}",
            self.frames, self.bytes
        ))
        .into())
    }
}

/// The answer to `send`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResult {
    /// True when the message is held in the outbound queue until the connection is back.
    pub queued: bool,
}

#[command]
// Each argument is a named IPC parameter or an extractor: they cannot be grouped in a struct.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn connect<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    id: Option<String>,
    options: ConnectOptions,
    ack: Option<AckArgs>,
    // `"event"` (the default: `realtime://<id>` for `listen()`) or `"direct"` (the bindings' receiver); Tauri
    // refuses any other value, naming the argument.
    route: Option<Route>,
    // Arguments of earlier versions: refused rather than ignored, or their frames would go, unheard, as events.
    direct: Option<IgnoredAny>,
    channel: Option<IgnoredAny>,
    command_scope: CommandScope<Entry>,
    global_scope: GlobalScope<Entry>,
) -> Result<Connected> {
    if direct.is_some() || channel.is_some() {
        return Err(crate::core::Error::InvalidOptions(
            "`connect` takes no `direct` or `channel`: pass `route: \"direct\"` for the bindings' receiver, or no \
             route for the event `realtime://<id>`"
                .into(),
        )
        .into());
    }
    let id = id.unwrap_or_else(new_id);
    if let Some(a) = &ack {
        a.check()?;
    }
    let window = ack.map(|a| Arc::new(AckWindow::new(a.frames, a.bytes)));
    let sink = Arc::new(WebviewSink::new(
        app.clone(),
        webview.label(),
        &id,
        route.unwrap_or_default(),
        window,
    ));
    let guard = Arc::new(Scope::from_ipc(&command_scope, &global_scope));
    // Used only by a connect with `withCredentials: true`, from the engine's blocking pool.
    let cookies = Arc::new(WebviewJar(webview.clone()));
    let connected = app.realtime().hub().connect(ConnectRequest {
        id: Some(id),
        options,
        owner: webview.label().to_owned(),
        sink,
        guard,
        cookies: Some(cookies),
    })?;
    Ok(connected)
}

#[command]
pub(crate) async fn send<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    id: String,
    data: String,
    binary: Option<bool>,
    // The `Content-Type` of the POST when the message is POSTed to `sendUrl`; by default
    // `text/plain; charset=utf-8` for text and `application/octet-stream` for bytes.
    content_type: Option<String>,
) -> Result<SendResult> {
    let msg = if binary.unwrap_or(false) {
        Outgoing::from_base64(&data)?
    } else {
        Outgoing::Text(data)
    };
    let queued = app
        .realtime()
        .hub()
        .send_as(&id, webview.label(), msg, content_type.as_deref())
        .await?;
    Ok(SendResult { queued })
}

/// The answer to `set_on_connect`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnConnectResult {
    /// True when the connection is open, so the message was also written now; false: it waits for the open.
    pub connected: bool,
}

/// The answer to `remove_on_connect`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedResult {
    /// False when the subscription had no message under that key.
    pub removed: bool,
}

/// A message the upstream writes right after every open, before queued sends (a topic subscription, an auth
/// handshake), under this subscription's `key`. WebSocket only.
#[command]
pub(crate) async fn set_on_connect<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    id: String,
    key: String,
    data: String,
    binary: Option<bool>,
) -> Result<OnConnectResult> {
    let msg = if binary.unwrap_or(false) {
        Outgoing::from_base64(&data)?
    } else {
        Outgoing::Text(data)
    };
    let connected = app
        .realtime()
        .hub()
        .set_on_connect(&id, webview.label(), &key, msg)
        .await?;
    Ok(OnConnectResult { connected })
}

#[command]
pub(crate) async fn remove_on_connect<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    id: String,
    key: String,
) -> Result<RemovedResult> {
    let removed = app
        .realtime()
        .hub()
        .remove_on_connect(&id, webview.label(), &key)
        .await?;
    Ok(RemovedResult { removed })
}

#[command]
pub(crate) async fn close<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    id: String,
    code: Option<u16>,
    reason: Option<String>,
) -> Result<()> {
    app.realtime()
        .hub()
        .close(&id, webview.label(), code, reason)?;
    Ok(())
}

#[command]
pub(crate) async fn reconnect<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    id: String,
) -> Result<()> {
    app.realtime().hub().reconnect(&id, webview.label())?;
    Ok(())
}

#[command]
pub(crate) async fn inspect<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    id: Option<String>,
) -> Result<Vec<ConnectionInfo>> {
    Ok(app
        .realtime()
        .hub()
        .inspect(Some(webview.label()), id.as_deref())?)
}

/// The webview has processed `frames` frames of this subscription in all (flow control, see `connect`'s `ack`).
#[command]
pub(crate) async fn ack<R: Runtime>(
    app: AppHandle<R>,
    webview: Webview<R>,
    id: String,
    frames: u64,
) -> Result<()> {
    app.realtime().hub().ack(&id, webview.label(), frames)?;
    Ok(())
}
