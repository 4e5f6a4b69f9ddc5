//! The sink that carries frames into one webview: one Tauri event `realtime://<id>` per batch, emitted only
//! to the webview that holds the subscription. A webview that is gone ends the subscription; it never panics.

use std::sync::Arc;

use tauri::{AppHandle, Emitter, EventTarget, Manager, Runtime};

use crate::core::{AckWindow, Frame, FrameSink, SinkGone};

/// Event name prefix; the full name is `realtime://<id>`.
pub const EVENT_PREFIX: &str = "realtime://";

pub(crate) struct WebviewSink<R: Runtime> {
    app: AppHandle<R>,
    label: String,
    event: String,
    window: Option<Arc<AckWindow>>,
}

impl<R: Runtime> WebviewSink<R> {
    pub(crate) fn new(
        app: AppHandle<R>,
        label: &str,
        id: &str,
        window: Option<Arc<AckWindow>>,
    ) -> Self {
        Self {
            app,
            label: label.to_owned(),
            event: format!("{EVENT_PREFIX}{id}"),
            window,
        }
    }
}

impl<R: Runtime> FrameSink for WebviewSink<R> {
    fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone> {
        if self.app.get_webview_window(&self.label).is_none() {
            return Err(SinkGone);
        }
        // `AnyLabel` reaches the webview whether its listener targets it as a webview or a window.
        self.app
            .emit_to(
                EventTarget::AnyLabel {
                    label: self.label.clone(),
                },
                &self.event,
                frames,
            )
            .map_err(|_| SinkGone)
    }

    fn ack_window(&self) -> Option<Arc<AckWindow>> {
        self.window.clone()
    }
}
