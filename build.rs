const COMMANDS: &[&str] = &[
    "connect",
    "send",
    "close",
    "reconnect",
    "inspect",
    "ack",
    "set_on_connect",
    "remove_on_connect",
];

/// A URL the webview may reach with the realtime plugin: the connect URL, `fallback.pollUrl`,
/// `fallback.sendUrl` and every redirect hop are checked. Deny entries win over allow entries.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct ScopeEntry {
    /// A URL pattern ([URL Pattern standard](https://urlpattern.spec.whatwg.org/)), for example:
    ///
    /// - "wss://chat.example.com/*": any path on that host, over TLS
    ///
    /// - "ws://127.0.0.1:*/*": any port and path on the loopback address
    ///
    /// - "https://*.example.com/stream/*": SSE or polling under /stream/ on any subdomain
    url: String,
}

fn main() {
    // `cfg(webkitgtk)`: the targets whose webview is WebKitGTK (Tauri's Linux and BSD builds), where the direct
    // route can hand a batch over as a function argument (src/relay/receiver.rs). One name instead of the list.
    println!("cargo::rustc-check-cfg=cfg(webkitgtk)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if ["linux", "dragonfly", "freebsd", "netbsd", "openbsd"].contains(&os.as_str()) {
        println!("cargo::rustc-cfg=webkitgtk");
    }
    tauri_plugin::Builder::new(COMMANDS)
        .global_scope_schema(schemars::schema_for!(ScopeEntry))
        // The bindings as `window.__TAURI__.realtime` for apps with `withGlobalTauri: true` (no bundler):
        // `npm run build:iife` writes it, and it is committed so that this build needs no Node.
        .global_api_script_path("./api-iife.js")
        .build();
}
