//! # tauri-plugin-realtime
//!
//! WebSocket and Server-Sent Events streams opened in Rust and relayed to the webview in batches of frames in
//! `seq` order (to the guest bindings as scripts the webview evaluates, to apps that call the commands
//! themselves as the Tauri event `realtime://<id>`), with reconnect, heartbeats, an outbound queue, shared
//! upstreams and per-webview ownership.
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
    Manager, RunEvent, Runtime, WindowEvent,
};

mod commands;
mod cookies;
/// The engine, which knows nothing of Tauri (the crate `tauri-plugin-realtime-core`).
pub use tauri_plugin_realtime_core as core;
mod error;
mod identities;
mod relay;
pub mod scope;
mod secrets;

pub use crate::core::LinkCheck;
pub use crate::core::{
    AllowAll, ChannelSink, ClientIdentity, ConnectOptions, Connected, ConnectionInfo, CookieJar,
    Frame, FrameSink, HeaderSource, Hub, HubConfig, Limits, Outgoing, State, TlsConfig, Transport,
    UrlGuard,
};
pub use error::{Error, Result};
pub use relay::EVENT_PREFIX;

/// What the benchmark needs beyond the public API: the direct route's delivery, and each of its two forms, exactly
/// as the relay makes them. Not part of the API: it may change in any release.
#[doc(hidden)]
pub mod testing {
    #[cfg(webkitgtk)]
    pub use crate::relay::receiver::argument::deliver as receiver_argument;
    pub use crate::relay::receiver::{
        deliver as receiver_deliver, script as receiver_script, set_argument_max_frame,
        set_argument_min_batch,
    };
}

/// Owner name of subscriptions made from Rust; `#` cannot appear in a webview label.
pub const RUST_OWNER: &str = "#rust";

/// Time allowed at app exit for every upstream to close.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Access to the engine from Rust, through [`RealtimeExt::realtime`].
pub struct Realtime<R: Runtime> {
    hub: Hub,
    // One engine per app; the runtime parameter keeps `app.realtime()` typed like the app.
    _runtime: std::marker::PhantomData<fn() -> R>,
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
            cookies: None,
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
#[derive(Default)]
pub struct Builder {
    config: HubConfig,
    secret_headers: Vec<(String, String, String)>,
    header_source: Option<Arc<dyn HeaderSource>>,
    pem_roots: Vec<Vec<u8>>,
    client_identities: Vec<(String, Vec<u8>, Vec<u8>)>,
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
        self.config.tls.extra_roots.push(der);
        self
    }

    /// Trusts every certificate of a PEM bundle. A bundle with no valid certificate fails the plugin's setup.
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.pem_roots.push(pem.into());
        self
    }

    /// Also trusts the operating system's root store. Default: false (the webpki roots only).
    pub fn native_roots(mut self, enabled: bool) -> Self {
        self.config.tls.native_roots = enabled;
        self
    }

    /// Accepts invalid TLS certificates (self-signed, expired, wrong host). Default: false. For development
    /// only: it removes what TLS protects against.
    pub fn danger_accept_invalid_certs(mut self, enabled: bool) -> Self {
        self.config.tls.danger_accept_invalid_certs = enabled;
        self
    }

    /// Sends every request (WebSocket upgrades through a `CONNECT` tunnel, SSE, polls, sends) through this
    /// proxy: `http://[user:password@]host[:port]` (the credentials percent-decoded, sent as
    /// `Proxy-Authorization: Basic`), `socks5://…` or `socks5h://…` (the proxy resolves names). Hosts in the
    /// environment's `NO_PROXY` still go direct, as with curl's `--proxy`. Default: the environment's
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, else the OS's settings (macOS, Windows). An invalid URL fails
    /// the plugin's setup with a message saying what is wrong (never the password). The scope applies to the
    /// target URLs, never to the proxy.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.config.proxy.proxy = core::ProxySetting::Url(url.into());
        self
    }

    /// Connects directly, whatever the environment or the OS's settings say about proxies.
    pub fn no_proxy(mut self) -> Self {
        self.config.proxy.proxy = core::ProxySetting::None;
        self
    }

    /// Attaches a header to every request whose URL matches `url_pattern` (the scope's URL pattern syntax):
    /// WebSocket upgrades, SSE requests (each redirect hop by its own URL), polls and `sendUrl` posts.
    /// JavaScript never sees it and cannot override it: it replaces a header of the same name from the options.
    /// An invalid pattern, name or value fails the plugin's setup with a message saying which.
    ///
    /// ```ignore
    /// tauri_plugin_realtime::Builder::new()
    ///     .secret_header("https://api.example.com/*", "Authorization", format!("Bearer {token}"))
    ///     .build()
    /// ```
    pub fn secret_header(
        mut self,
        url_pattern: impl Into<String>,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.secret_headers
            .push((url_pattern.into(), name.into(), value.into()));
        self
    }

    /// Presents a client certificate (mutual TLS) to every server whose URL matches `url_pattern` (the scope's
    /// URL pattern syntax) and asks for one: WebSocket upgrades, SSE requests (each redirect hop by its own URL),
    /// polls and `sendUrl` posts. `cert_pem` holds the certificate chain, the client's own certificate first;
    /// `key_pem` its private key (PKCS#8, PKCS#1 or SEC1); both may be the same text. Several identities may be
    /// given: the first whose pattern matches is presented. No certificate, no key, a key that is not the
    /// certificate's or an invalid pattern fails the plugin's setup with a message saying which. Default: none.
    ///
    /// ```ignore
    /// tauri_plugin_realtime::Builder::new()
    ///     .client_identity("https://devices.example.com/*", cert_pem, key_pem)
    ///     .build()
    /// ```
    pub fn client_identity(
        mut self,
        url_pattern: impl Into<String>,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_identities
            .push((url_pattern.into(), cert_pem.into(), key_pem.into()));
        self
    }

    /// HTTP/1.1 only: no HTTP/2 for event streams, polls and sends even where a server offers it. Default: HTTP/2
    /// over TLS where the server offers it (ALPN), so streams, polls and sends to one origin share a connection;
    /// WebSockets and cleartext `http://` are HTTP/1.1 either way.
    pub fn http1_only(mut self) -> Self {
        self.config.http1_only = true;
        self
    }

    /// Computes secret headers per request, e.g. a token read from the OS keychain and refreshed as needed.
    /// Its headers come after those of [`Builder::secret_header`] and win over them.
    pub fn header_source(mut self, source: impl HeaderSource) -> Self {
        self.header_source = Some(Arc::new(source));
        self
    }

    /// Notice when the machine wakes from sleep or the network changes (and, on Android and iOS, when the app
    /// comes back to the foreground), and have every live connection check its link then. Default: true.
    /// The app can also tell the engine itself: `app.realtime().hub().check_links(LinkCheck::NetworkChanged)`.
    pub fn detect_wake(mut self, enabled: bool) -> Self {
        self.config.detect_wake = enabled;
        self
    }

    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        let mut config = self.config;
        let secrets = secrets::SecretHeaderSet::new(self.secret_headers, self.header_source);
        let pem_roots = self.pem_roots;
        let identities = identities::client_identities(self.client_identities);
        PluginBuilder::new("realtime")
            .invoke_handler(tauri::generate_handler![
                commands::connect,
                commands::send,
                commands::close,
                commands::reconnect,
                commands::inspect,
                commands::ack,
                commands::set_on_connect,
                commands::remove_on_connect
            ])
            .setup(move |app, _api| {
                for pem in &pem_roots {
                    config
                        .tls
                        .extra_roots
                        .extend(core::pem_certificates(pem).map_err(Error::from)?);
                }
                config.tls.client_identities = identities?;
                config.secret_headers =
                    core::SecretHeaders(secrets?.map(|s| Arc::new(s) as Arc<dyn HeaderSource>));
                let tauri::async_runtime::RuntimeHandle::Tokio(runtime) =
                    tauri::async_runtime::handle();
                let hub = Hub::new(config, runtime)?;
                app.manage(Realtime::<R> {
                    hub,
                    _runtime: std::marker::PhantomData,
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
                // The OS froze the app in the background: its links may have died meanwhile.
                #[cfg(any(target_os = "android", target_os = "ios"))]
                RunEvent::WindowEvent {
                    event: WindowEvent::Resumed,
                    ..
                } => {
                    if let Some(rt) = app.try_state::<Realtime<R>>() {
                        if rt.hub.config().detect_wake {
                            rt.hub.check_links(LinkCheck::Woke);
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
