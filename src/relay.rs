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

use crate::core::{
    wire::{self, Part},
    AckWindow, Frame, FrameSink, SinkGone,
};

/// Event name prefix; the full name is `realtime://<id>`.
pub const EVENT_PREFIX: &str = "realtime://";

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
            Route::Channel(channel) => wire::parts(frames).into_iter().try_for_each(|part| {
                channel.send(match part {
                    Part::Literal(literal) => InvokeResponseBody::Json(literal),
                    Part::Bytes(bytes) => InvokeResponseBody::Raw(bytes),
                })
            }),
        }
        .map_err(|_| SinkGone)
    }

    fn ack_window(&self) -> Option<Arc<AckWindow>> {
        self.window.clone()
    }
}
