//! The sink that carries frames into one webview, only to the webview that holds the subscription. A webview
//! that is gone ends the subscription; it never panics.
//!
//! Two routes: the guest bindings pass a `tauri::ipc::Channel` to `connect`, and each batch goes through it in
//! the compact encoding of [`crate::core::wire`]: in parts of a few KiB, each a string the webview evaluates, or
//! for large frames whole as bytes it fetches; never as a script literal of frame objects. A caller that passes
//! no channel gets the Tauri event `realtime://<id>` with the batch as an array of frame objects, for `listen()`.

use std::sync::Arc;

use tauri::{
    ipc::{Channel, InvokeResponseBody},
    AppHandle, Emitter, EventTarget, Manager, Runtime,
};

use crate::core::{wire, AckWindow, Frame, FrameSink, SinkGone};

/// Event name prefix; the full name is `realtime://<id>`.
pub const EVENT_PREFIX: &str = "realtime://";

/// Parts encoded smaller than this go as a JSON string evaluated in the webview; larger ones as raw bytes,
/// which Tauri hands over through its IPC protocol (a fetch): dearer per message, cheaper per byte.
const DIRECT_MAX: usize = 7168;
/// Tauri evaluates a channel's JSON message directly below this size, and fetches it otherwise.
const TAURI_DIRECT_MAX: usize = 8192;
/// Encoded size at which a part of a split batch is sent.
const PART: usize = 6144;
/// Batches of about this size and more (see [`Frame::approx_len`]) go whole, as bytes in one fetch; smaller
/// ones are split into parts that Tauri evaluates directly.
const SPLIT_MAX: usize = 64 << 10;

pub(crate) enum Route {
    Event(String),
    Channel(Channel<InvokeResponseBody>),
}

pub(crate) struct WebviewSink<R: Runtime> {
    app: AppHandle<R>,
    label: String,
    route: Route,
    window: Option<Arc<AckWindow>>,
}

impl<R: Runtime> WebviewSink<R> {
    pub(crate) fn new(
        app: AppHandle<R>,
        label: &str,
        id: &str,
        channel: Option<Channel<InvokeResponseBody>>,
        window: Option<Arc<AckWindow>>,
    ) -> Self {
        let route = match channel {
            Some(c) => Route::Channel(c),
            None => Route::Event(format!("{EVENT_PREFIX}{id}")),
        };
        Self {
            app,
            label: label.to_owned(),
            route,
            window,
        }
    }
}

impl<R: Runtime> FrameSink for WebviewSink<R> {
    fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone> {
        if self.app.get_webview_window(&self.label).is_none() {
            return Err(SinkGone);
        }
        match &self.route {
            // `AnyLabel` reaches the webview whether its listener targets it as a webview or a window.
            Route::Event(event) => self.app.emit_to(
                EventTarget::AnyLabel {
                    label: self.label.clone(),
                },
                event,
                frames,
            ),
            Route::Channel(channel) => {
                let total: usize = frames.iter().map(|f| f.approx_len()).sum();
                if total >= SPLIT_MAX {
                    send(channel, wire::encode(frames))
                } else {
                    // Parts small enough for Tauri to evaluate directly: cheaper for the webview than a fetch.
                    let mut part = wire::Encoder::default();
                    for f in frames {
                        part.push(f);
                        if part.len() >= PART {
                            send(channel, part.take()).map_err(|_| SinkGone)?;
                        }
                    }
                    if part.is_empty() {
                        Ok(())
                    } else {
                        send(channel, part.take())
                    }
                }
            }
        }
        .map_err(|_| SinkGone)
    }

    fn ack_window(&self) -> Option<Arc<AckWindow>> {
        self.window.clone()
    }
}

fn send(channel: &Channel<InvokeResponseBody>, bytes: Vec<u8>) -> tauri::Result<()> {
    let body = match String::from_utf8(bytes) {
        // The batch as a JSON string literal, which the webview evaluates as it is.
        Ok(text) if text.len() < DIRECT_MAX => match serde_json::to_string(text.as_str()) {
            Ok(literal) if literal.len() < TAURI_DIRECT_MAX => InvokeResponseBody::Json(literal),
            // Escapes made it too long to be evaluated directly.
            _ => InvokeResponseBody::Raw(text.into_bytes()),
        },
        Ok(text) => InvokeResponseBody::Raw(text.into_bytes()),
        // Not reached: serde_json writes UTF-8. Bytes are decoded by the bindings all the same.
        Err(e) => InvokeResponseBody::Raw(e.into_bytes()),
    };
    channel.send(body)
}
