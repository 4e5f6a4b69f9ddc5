//! The sink that carries frames into one webview, only to the webview that holds the subscription. A webview
//! that is gone ends the subscription; it never panics.
//!
//! Two routes, chosen by `connect`'s `route` argument. The guest bindings ask for the direct route: each batch is
//! one call of the bindings' receiver with the batch in the engine's compact encoding, as a script the webview
//! evaluates ([`receiver::script`]) or, on WebKitGTK unless its frames are very large, as the argument of a function that never
//! changes ([`receiver::deliver`]). Callers that use the commands themselves get the Tauri
//! event `realtime://<id>`, the default, with the batch as an array of frame objects, for `listen()`.

pub(crate) mod receiver;

use std::sync::Arc;

use serde::Deserialize;
use tauri::{AppHandle, Emitter, EventTarget, Manager, Runtime};

use crate::core::{AckWindow, Frame, FrameSink, SinkGone};

/// Event name prefix; the full name is `realtime://<id>`.
pub const EVENT_PREFIX: &str = "realtime://";

/// How a subscription's batches reach its webview: `connect`'s `route` argument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Route {
    /// The Tauri event `realtime://<id>`, whose payload is the array of frames: for `listen()`.
    #[default]
    Event,
    /// One script per batch calling the page's receiver: the guest bindings' route, the cheaper one for the
    /// webview (docs/DECISIONS.md).
    Direct,
}

enum Delivery {
    /// The event's name.
    Event(String),
    /// The subscription's id, for the bindings' receiver.
    Direct(String),
}

pub(crate) struct WebviewSink<R: Runtime> {
    app: AppHandle<R>,
    label: String,
    delivery: Delivery,
    window: Option<Arc<AckWindow>>,
}

impl<R: Runtime> WebviewSink<R> {
    pub(crate) fn new(
        app: AppHandle<R>,
        label: &str,
        id: &str,
        route: Route,
        window: Option<Arc<AckWindow>>,
    ) -> Self {
        let delivery = match route {
            Route::Event => Delivery::Event(format!("{EVENT_PREFIX}{id}")),
            Route::Direct => Delivery::Direct(id.to_owned()),
        };
        Self {
            app,
            label: label.to_owned(),
            delivery,
            window,
        }
    }
}

impl<R: Runtime> FrameSink for WebviewSink<R> {
    fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone> {
        let Some(webview) = self.app.get_webview_window(&self.label) else {
            return Err(SinkGone);
        };
        match &self.delivery {
            Delivery::Direct(id) => receiver::deliver(&webview, id, frames),
            // `AnyLabel` reaches the webview whether its listener targets it as a webview or a window.
            Delivery::Event(event) => self.app.emit_to(
                EventTarget::AnyLabel {
                    label: self.label.clone(),
                },
                event,
                frames,
            ),
        }
        .map_err(|_| SinkGone)
    }

    fn ack_window(&self) -> Option<Arc<AckWindow>> {
        self.window.clone()
    }
}
