//! The sink that carries frames into one webview, only to the webview that holds the subscription. A webview
//! that is gone ends the subscription; it never panics.
//!
//! Three routes. The guest bindings ask for direct delivery: each batch is one script the webview evaluates,
//! a call of the bindings' receiver with the batch in the compact encoding of [`crate::core::wire`] as an array
//! literal ([`wire::script`]). A caller that passes a `tauri::ipc::Channel` gets the same encoding through it,
//! in parts of a few KiB, each a string the webview evaluates, or for large frames whole as bytes it fetches.
//! A caller that passes neither gets the Tauri event `realtime://<id>` with the batch as an array of frame
//! objects, for `listen()`.

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
    /// The subscription's id, for the bindings' receiver.
    Direct(String),
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
        direct: bool,
        channel: Option<Channel<InvokeResponseBody>>,
        window: Option<Arc<AckWindow>>,
    ) -> Self {
        let route = match channel {
            _ if direct => Route::Direct(id.to_owned()),
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
        let Some(webview) = self.app.get_webview_window(&self.label) else {
            return Err(SinkGone);
        };
        match &self.route {
            Route::Direct(id) => webview.eval(wire::script(id, frames)),
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
