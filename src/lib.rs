//! # tauri-plugin-realtime
//!
//! WebSocket and Server-Sent Events streams opened in Rust and relayed to the webview as Tauri events
//! (`realtime://<id>`, each payload an array of frames in `seq` order), with reconnect, heartbeats, an
//! outbound queue, shared upstreams and per-webview ownership.
//!
//! ```ignore
//! // In the app's src-tauri/src/lib.rs:
//! tauri::Builder::default()
//!     .plugin(tauri_plugin_realtime::init())
//!     .run(tauri::generate_context!())
//!     .expect("error while running tauri application");
//! ```
//!
//! The engine lives in [`core`] and knows nothing of Tauri; this layer adds the commands, the URL scope,
//! the relay to webviews and the lifecycle hooks.

use std::{sync::Arc, time::Duration};

use tauri::{
    plugin::{Builder as PluginBuilder, TauriPlugin},
    webview::PageLoadEvent,
    AppHandle, Manager, RunEvent, Runtime, WindowEvent,
};

mod commands;
pub mod core;
mod error;
mod relay;
pub mod scope;

pub use crate::core::{
    AllowAll, ChannelSink, ConnectOptions, Connected, ConnectionInfo, Frame, FrameSink, Hub,
    HubConfig, Limits, Outgoing, State, Transport, UrlGuard,
};
pub use error::{Error, Result};
pub use relay::EVENT_PREFIX;

/// Owner name of subscriptions made from Rust; `#` cannot appear in a webview label.
pub const RUST_OWNER: &str = "#rust";

/// Time allowed at app exit for every upstream to close.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Access to the engine from Rust, through [`RealtimeExt::realtime`].
pub struct Realtime<R: Runtime> {
    #[allow(dead_code)]
    app: AppHandle<R>,
    hub: Hub,
}

impl<R: Runtime> Realtime<R> {
    /// The engine itself, for everything the commands can do and more.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Opens (or joins) a stream whose frames go to `sink`, owned by Rust code rather than a webview.
    /// No URL scope applies: Rust code chooses its URLs itself.
    pub fn connect(&self, options: ConnectOptions, sink: Arc<dyn FrameSink>) -> Result<Connected> {
        Ok(self.hub.connect(core::ConnectRequest {
            id: None,
            options,
            owner: RUST_OWNER.to_owned(),
            sink,
            guard: Arc::new(AllowAll),
        })?)
    }

    /// Sends on a stream opened with [`Realtime::connect`]; `Ok(true)` when queued until reconnect.
    pub async fn send(&self, id: &str, msg: Outgoing) -> Result<bool> {
        Ok(self.hub.send(id, RUST_OWNER, msg).await?)
    }

    /// Closes a stream opened with [`Realtime::connect`].
    pub fn close(&self, id: &str, code: Option<u16>, reason: Option<String>) -> Result<()> {
        Ok(self.hub.close(id, RUST_OWNER, code, reason)?)
    }
}

/// Extension trait: `app.realtime()` on anything that implements [`Manager`].
pub trait RealtimeExt<R: Runtime> {
    fn realtime(&self) -> &Realtime<R>;
}

impl<R: Runtime, T: Manager<R>> RealtimeExt<R> for T {
    fn realtime(&self) -> &Realtime<R> {
        self.state::<Realtime<R>>().inner()
    }
}

/// Configures the plugin. `init()` is `Builder::new().build()`.
#[derive(Debug, Default)]
pub struct Builder {
    config: HubConfig,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long an upstream stays open after its last subscriber leaves, so a reloading page re-attaches
    /// without a reconnect. Default: 3 s; zero closes at once.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// Upstream connections open at once, app-wide. Default: 256.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// Subscriptions one webview may hold. Default: 64.
    pub fn max_subscriptions_per_webview(mut self, n: usize) -> Self {
        self.config.max_subscriptions_per_owner = n;
        self
    }

    /// Ceilings on what a connect may ask for (headers, message size, queue).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Trusts an extra root certificate (DER), e.g. a company CA, besides the webpki roots.
    pub fn add_root_certificate(mut self, der: Vec<u8>) -> Self {
        self.config.extra_roots.push(der);
        self
    }

    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        let config = self.config;
        PluginBuilder::new("realtime")
            .invoke_handler(tauri::generate_handler![
                commands::connect,
                commands::send,
                commands::close,
                commands::reconnect,
                commands::inspect
            ])
            .setup(move |app, _api| {
                let tauri::async_runtime::RuntimeHandle::Tokio(runtime) =
                    tauri::async_runtime::handle();
                let hub = Hub::new(config, runtime)?;
                app.manage(Realtime {
                    app: app.clone(),
                    hub,
                });
                Ok(())
            })
            .on_page_load(|webview, payload| {
                // A reload or navigation: the page's listeners are gone, so are its subscriptions.
                if payload.event() == PageLoadEvent::Started {
                    if let Some(rt) = webview.try_state::<Realtime<R>>() {
                        rt.hub.release_owner(webview.label());
                    }
                }
            })
            .on_event(|app, event| match event {
                RunEvent::WindowEvent {
                    event: WindowEvent::Destroyed,
                    ..
                } => {
                    if let Some(rt) = app.try_state::<Realtime<R>>() {
                        for owner in rt.hub.owners() {
                            if owner != RUST_OWNER && app.get_webview_window(&owner).is_none() {
                                rt.hub.release_owner(&owner);
                            }
                        }
                    }
                }
                RunEvent::Exit => {
                    if let Some(rt) = app.try_state::<Realtime<R>>() {
                        let hub = rt.hub.clone();
                        tauri::async_runtime::block_on(
                            async move { hub.shutdown(EXIT_GRACE).await },
                        );
                    }
                }
                _ => {}
            })
            .build()
    }
}

/// The plugin with every default.
pub fn init<R: Runtime>() -> TauriPlugin<R> {
    Builder::new().build()
}
