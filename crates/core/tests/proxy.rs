//! Proxies, against a real one: Debian's `tinyproxy`, started by each test on a loopback port with a config
//! of its own, and stopped at the end. What went through it is read from its log (every request it took, at
//! log level Connect): a WebSocket as a `CONNECT` tunnel (ws:// and wss://), SSE, polls and sends to http://
//! as forwarded requests.

mod common;
mod tapkit;
mod tlskit;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use axum::{routing::get, Router};
use common::*;
use tauri_plugin_realtime_core::{
    ConnectOptions, Error, Hub, HubConfig, Outgoing, ProxyConfig, ProxySetting, State, TlsConfig,
    Toggle, Transport, UrlGuard,
};
use tokio::net::TcpListener;

/// A tinyproxy of the test's own, killed (and its directory removed) on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Tinyproxy {
    async fn start(extra: &str) -> Self {
        if let Err(e) = Command::new("tinyproxy").arg("-v").output() {
            panic!(
                "tinyproxy could not be run ({e}): install it (apt-get install tinyproxy) or run ./scripts/test, which installs it"
            );
        }
        // tinyproxy wants a port of its own: take a free one from the OS, then give it back.
        let port = closed_port().await;
        let dir =
            std::env::temp_dir().join(format!("realtime-tinyproxy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let log = dir.join("tinyproxy.log");
        // No `ConnectPort`: every port may be tunnelled to (the test servers' ports are random).
        let conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Connect\nLogFile \"{}\"\nMaxClients 64\nAllow 127.0.0.1\nDisableViaHeader Yes\n{extra}\n",
            log.display()
        );
        std::fs::write(dir.join("tinyproxy.conf"), conf).expect("the config");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(dir.join("tinyproxy.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy starts");
        let mut proxy = Self { child, port, dir };
        let log = proxy.dir.join("tinyproxy.log");
        let log = move || std::fs::read_to_string(&log).unwrap_or_default();
        until_listening(&mut proxy.child, "tinyproxy", port, log).await;
        proxy
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tinyproxy.log")).unwrap_or_default()
    }

    /// The requests it took, as their request lines (`CONNECT 127.0.0.1:1234 HTTP/1.1`, `GET http://…`).
    fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("Request (file descriptor ").map(|(_, r)| r))
            .filter_map(|r| r.split_once("): ").map(|(_, line)| line.to_owned()))
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }

    /// Asserts that the proxy took exactly one `CONNECT` to 127.0.0.1:`port`; `what` says which.
    fn assert_one_tunnel(&self, port: u16, what: &str) {
        assert_eq!(
            self.count(&format!("CONNECT 127.0.0.1:{port} ")),
            1,
            "{what}; the proxy took {:?}",
            self.requests()
        );
    }
}

/// Waits until `name`, just spawned as `child`, listens on 127.0.0.1:`port` (5 s at most); panics with
/// `log()` if it exits first.
async fn until_listening(child: &mut Child, name: &str, port: u16, log: impl Fn() -> String) {
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited at start ({status}); its log: {}", log());
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} did not listen on {port} within 5 s");
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn proxied_hub(url: &str, no_proxy: &str, tls: TlsConfig) -> Hub {
    hub_with(HubConfig {
        linger: Duration::ZERO,
        tls,
        proxy: ProxyConfig {
            proxy: ProxySetting::Url(url.into()),
            // Set, so that the machine's own NO_PROXY never decides a test.
            no_proxy: Some(no_proxy.into()),
        },
        ..Default::default()
    })
}

/// What a connection settles on (failed, reconnecting or connected), asserted to be `want`; gives its reason.
async fn settles_as(frames: &mut Frames, want: State) -> String {
    let f = frames
        .settled(&[State::Failed, State::Reconnecting, State::Connected])
        .await;
    assert!(is_state(&f, want), "{f:?}");
    reason(&f)
}

/// TLS that also trusts `roots` (the test CAs of [`tls_server`]).
fn trusting(roots: Vec<Vec<u8>>) -> TlsConfig {
    TlsConfig {
        extra_roots: roots,
        ..Default::default()
    }
}

/// A TLS server with a certificate for 127.0.0.1 of a fresh CA: a WebSocket that says "hello-tls" (`sse:
/// false`) or an event stream with one event "hello-tls"; and the CA, to trust.
async fn tls_server(sse: bool) -> (std::net::SocketAddr, Vec<u8>) {
    let pki = tlskit::pki(&["127.0.0.1"]);
    let mode = if sse {
        tlskit::Serve::Sse
    } else {
        tlskit::Serve::Ws
    };
    let addr = tlskit::tls_server(&pki, mode, Seen::default()).await;
    (addr, pki.ca_der)
}

/// GET /poll answers a body, POST /send takes a message.
async fn poll_site() -> std::net::SocketAddr {
    serve(Router::new().route("/poll", get(|| async { "v1" })).route(
        "/send",
        axum::routing::post(|body: String| async move { format!("took {}", body.len()) }),
    ))
    .await
}

#[tokio::test]
async fn websockets_go_through_a_connect_tunnel_for_ws_and_wss() {
    let proxy = Tinyproxy::start("").await;
    let server = CountingServer::start().await;
    let (wss, ca) = tls_server(false).await;
    let (https, sse_ca) = tls_server(true).await;
    let hub = proxied_hub(&proxy.url(), "", trusting(vec![ca, sse_ca]));

    let (_, mut ws) = connect(&hub, once(server.url(Kind::Ws, "a")));
    ws.state(State::Connected).await;
    server.say("through");
    ws.message("through").await;
    proxy.assert_one_tunnel(server.addr.port(), "ws:// goes through one CONNECT tunnel");

    let (_, mut tls) = connect(&hub, once(format!("wss://127.0.0.1:{}/", wss.port())));
    tls.message("hello-tls").await;
    proxy.assert_one_tunnel(
        wss.port(),
        "wss:// goes through one CONNECT tunnel, TLS to the target inside",
    );

    // And SSE to https://, through the HTTP client's own tunnel.
    let (_, mut sse) = connect(&hub, once(format!("https://127.0.0.1:{}/", https.port())));
    sse.message("hello-tls").await;
    proxy.assert_one_tunnel(https.port(), "https:// goes through one CONNECT tunnel");
}

#[tokio::test]
async fn sse_polls_and_sends_go_through_the_proxy() {
    let proxy = Tinyproxy::start("").await;
    let server = CountingServer::start().await;
    let site = poll_site().await;
    let hub = proxied_hub(&proxy.url(), "", TlsConfig::default());

    let (_, mut sse) = connect(&hub, once(server.url(Kind::Sse, "a")));
    sse.state(State::Connected).await;
    server.say("streamed");
    sse.message("streamed").await;

    let (id, mut polled) = connect(
        &hub,
        polling(
            format!("http://{site}/send"),
            // With retries: tinyproxy closes a kept-alive connection from the client's pool between two
            // requests, and a POST written on it is tried again (with the same idempotency key).
            opts(format!("http://{site}/poll")),
        ),
    );
    polled.message("v1").await;
    hub.send(&id, OWNER, Outgoing::Text("posted".into()))
        .await
        .expect("the send is taken");

    let port = server.addr.port();
    assert!(
        proxy.count(&format!("GET http://127.0.0.1:{port}/sse?a ")) >= 1,
        "the SSE request went through the proxy; it took {:?}",
        proxy.requests()
    );
    assert!(proxy.count(&format!("GET http://{site}/poll ")) >= 1);
    assert!(
        proxy.count(&format!("POST http://{site}/send ")) >= 1,
        "the send went through the proxy; it took {:?}",
        proxy.requests()
    );
}

#[tokio::test]
async fn no_proxy_hosts_bypass_it() {
    let proxy = Tinyproxy::start("").await;
    let server = CountingServer::start().await;
    for list in ["127.0.0.1", "*", "example.test, 127.0.0.0/8"] {
        let hub = proxied_hub(&proxy.url(), list, TlsConfig::default());
        let (_, mut ws) = connect(&hub, once(server.url(Kind::Ws, list)));
        ws.state(State::Connected).await;
        let (_, mut sse) = connect(&hub, once(server.url(Kind::Sse, list)));
        sse.state(State::Connected).await;
    }
    assert!(
        proxy.requests().is_empty(),
        "nothing goes through the proxy; it took {:?}",
        proxy.requests()
    );
    // Another host on the list leaves this one proxied.
    let hub = proxied_hub(&proxy.url(), "example.test", TlsConfig::default());
    let (_, mut ws) = connect(&hub, once(server.url(Kind::Ws, "other")));
    ws.state(State::Connected).await;
    assert_eq!(proxy.requests().len(), 1, "{:?}", proxy.requests());
}

#[tokio::test]
async fn basic_credentials_come_from_the_proxy_url_and_a_wrong_password_is_named_without_it() {
    let proxy = Tinyproxy::start("BasicAuth us3r s3cret").await;
    let server = CountingServer::start().await;
    let with = |user_pass: &str| format!("http://{user_pass}@127.0.0.1:{}", proxy.port);

    // Percent-decoded: `%65` is `e`.
    let hub = proxied_hub(&with("us3r:s3cr%65t"), "", TlsConfig::default());
    let (_, mut ws) = connect(&hub, once(server.url(Kind::Ws, "ok")));
    ws.state(State::Connected).await;
    let (_, mut sse) = connect(&hub, once(server.url(Kind::Sse, "ok")));
    sse.state(State::Connected).await;
    assert_eq!(proxy.requests().len(), 2, "{:?}", proxy.requests());
    // The HTTP client's tunnel (https://) carries them too.
    let (https, ca) = tls_server(true).await;
    let tls = trusting(vec![ca]);
    let hub = proxied_hub(&with("us3r:s3cr%65t"), "", tls.clone());
    let (_, mut sse) = connect(&hub, once(format!("https://127.0.0.1:{}/", https.port())));
    sse.message("hello-tls").await;
    assert_eq!(proxy.requests().len(), 3, "{:?}", proxy.requests());
    // reqwest's tunnel says only "unsuccessful" for a 401: the engine asks the proxy itself what it refuses.
    let hub = proxied_hub(&with("us3r:wrong-Passw0rd"), "", tls);
    let (_, mut refused) = connect(&hub, opts(format!("https://127.0.0.1:{}/", https.port())));
    let why = settles_as(&mut refused, State::Failed).await;
    assert!(why.contains("refused its credentials"), "{why}");
    assert!(!why.contains("wrong-Passw0rd"), "{why}");
    assert!(
        why.contains(&format!("proxy http://127.0.0.1:{}", proxy.port)),
        "{why}"
    );

    let where_ = format!("127.0.0.1:{}", proxy.port);
    for creds in ["us3r:wrong-Passw0rd", "us3r"] {
        let hub = proxied_hub(&with(creds), "", TlsConfig::default());
        for kind in [Kind::Ws, Kind::Sse] {
            let (_, mut frames) = connect(&hub, opts(server.url(kind, creds)));
            let failed = frames.state(State::Failed).await;
            let why = reason(&failed);
            // tinyproxy answers a CONNECT with 401, a forwarded request with 407.
            assert!(
                why.contains("407") || why.contains("401"),
                "{kind:?}: {why}"
            );
            assert!(!why.contains("wrong-Passw0rd"), "{kind:?}: {why}");
            // A forwarded http:// request gets the proxy's answer in the server's place, which cannot be
            // told from the server's own 401; a tunnel's answer can only be the proxy's.
            if kind == Kind::Ws {
                assert!(why.contains(&where_), "the proxy is named: {why}");
                assert!(why.contains("credentials"), "{why}");
            }
        }
    }
    // Without any credentials, it says what to do.
    let hub = proxied_hub(&proxy.url(), "", TlsConfig::default());
    let (_, mut ws) = connect(&hub, opts(server.url(Kind::Ws, "none")));
    let why = reason(&ws.state(State::Failed).await);
    assert!(why.contains("user:password@"), "{why}");
}

#[tokio::test]
async fn a_proxy_that_is_not_listening_is_named() {
    let port = closed_port().await;
    let server = CountingServer::start().await;
    let site = poll_site().await;
    for scheme in ["http", "socks5h"] {
        let hub = proxied_hub(
            &format!("{scheme}://user:hunter22@127.0.0.1:{port}"),
            "",
            TlsConfig::default(),
        );
        for url in [server.url(Kind::Ws, "x"), server.url(Kind::Sse, "x")] {
            let (_, mut frames) = connect(&hub, once(&url));
            let f = frames.settled(&[State::Failed, State::Disconnected]).await;
            let all = format!("{f:?} {:?}", frames.errors());
            assert!(
                all.contains(&format!("proxy {scheme}://127.0.0.1:{port}")),
                "{url}: {all}"
            );
            assert!(!all.contains("hunter22"), "{url}: {all}");
        }
        // A send's POST says it too.
        let (id, _frames) = connect(
            &hub,
            ConnectOptions {
                transport: Some(Transport::Poll),
                send_url: Some(format!("http://{site}/send")),
                reconnect: Some(Toggle::Enabled(false)),
                ..opts(format!("http://{site}/poll"))
            },
        );
        let e = hub
            .send(&id, OWNER, Outgoing::Text("x".into()))
            .await
            .expect_err("no proxy, no send")
            .to_string();
        assert!(
            e.contains(&format!("proxy {scheme}://127.0.0.1:{port}")),
            "{e}"
        );
        assert!(!e.contains("hunter22"), "{e}");
    }
}

/// Allows one port only: the target's, never the proxy's.
struct OnlyPort(u16);

impl UrlGuard for OnlyPort {
    fn check(&self, url: &url::Url) -> Result<(), String> {
        if url.port() == Some(self.0) {
            Ok(())
        } else {
            Err(format!("{url} is not allowed"))
        }
    }
}

#[tokio::test]
async fn the_scope_applies_to_the_target_never_to_the_proxy() {
    let proxy = Tinyproxy::start("").await;
    let server = CountingServer::start().await;
    let hub = proxied_hub(&proxy.url(), "", TlsConfig::default());
    // The proxy's port is outside the scope: the target's is what counts.
    let guard = Arc::new(OnlyPort(server.addr.port()));
    for kind in [Kind::Ws, Kind::Sse] {
        let (_, mut f) = subscribe(
            &hub,
            None,
            once(server.url(kind, "in")),
            OWNER,
            guard.clone(),
        )
        .expect("an allowed target through a proxy outside the scope");
        f.state(State::Connected).await;
    }
    assert_eq!(proxy.requests().len(), 2, "{:?}", proxy.requests());
    // A target outside the scope stays refused, proxy or not.
    let other = CountingServer::start().await;
    for kind in [Kind::Ws, Kind::Sse] {
        let refused = subscribe(
            &hub,
            None,
            once(other.url(kind, "out")),
            OWNER,
            guard.clone(),
        );
        assert!(
            matches!(refused, Err(Error::UrlNotAllowed(_))),
            "{kind:?}: {:?}",
            refused.map(|(id, _)| id)
        );
    }
    assert_eq!(proxy.requests().len(), 2, "{:?}", proxy.requests());
}

#[test]
fn an_invalid_proxy_url_fails_the_hub_saying_which() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for bad in [
        "ftp://u:pw-x@proxy.test",
        "http://u:pw-x@proxy.test:1/p",
        "::",
    ] {
        let e = Hub::new(
            HubConfig {
                proxy: ProxyConfig {
                    proxy: ProxySetting::Url(bad.into()),
                    no_proxy: None,
                },
                ..Default::default()
            },
            rt.handle().clone(),
        )
        .err()
        .unwrap_or_else(|| panic!("{bad} accepted"))
        .to_string();
        assert!(e.starts_with("invalid proxy"), "{e}");
        assert!(!e.contains("pw-x"), "{e}");
    }
}

/// Every variable a proxy decision reads, cleared from each `tap` so that the machine's own never counts.
const PROXY_VARS: [&str; 9] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
];

/// Runs `tap URL --no-reconnect ARGS` with exactly the proxy variables `env`, until it prints `connected`
/// (then kills it); panics with its output if it ends otherwise.
async fn tap_connects(url: &str, env: &[(&str, &str)], args: &[&str]) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut argv = vec![url, "--no-reconnect"];
    argv.extend_from_slice(args);
    let mut cmd = tapkit::tap(&argv);
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn tap");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let connected = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(r#""state":"connected""#) {
                return true;
            }
            seen.push(line);
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert!(
        matches!(connected, Ok(true)),
        "tap {argv:?} with {env:?}: expected connected, got {seen:#?}"
    );
}

/// The environment, as `tap` reads it: the variables with reqwest's rules (upper case `HTTP_PROXY` too, unlike
/// curl; none under CGI), for the HTTP client and the WebSocket alike, and curl's `--proxy`/`--noproxy`.
#[tokio::test]
async fn tap_reads_the_environment_and_curls_flags() {
    let proxy = Tinyproxy::start("").await;
    let server = CountingServer::start().await;
    let p = proxy.url();
    let ws = server.url(Kind::Ws, "tap");
    let sse = server.url(Kind::Sse, "tap");
    // (what, url, env, args, requests the proxy takes)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<&'a str>,
        usize,
    );
    let cases: Vec<Case> = vec![
        ("HTTP_PROXY, ws", &ws, vec![("HTTP_PROXY", &p)], vec![], 1),
        ("HTTP_PROXY, sse", &sse, vec![("HTTP_PROXY", &p)], vec![], 1),
        ("http_proxy", &ws, vec![("http_proxy", &p)], vec![], 1),
        ("ALL_PROXY", &ws, vec![("ALL_PROXY", &p)], vec![], 1),
        ("all_proxy, sse", &sse, vec![("all_proxy", &p)], vec![], 1),
        // HTTPS_PROXY is for https:// and wss:// only.
        ("HTTPS_PROXY, ws", &ws, vec![("HTTPS_PROXY", &p)], vec![], 0),
        (
            "HTTPS_PROXY, sse",
            &sse,
            vec![("HTTPS_PROXY", &p)],
            vec![],
            0,
        ),
        (
            "NO_PROXY",
            &ws,
            vec![("HTTP_PROXY", &p), ("NO_PROXY", "127.0.0.1")],
            vec![],
            0,
        ),
        (
            "no_proxy, sse",
            &sse,
            vec![("HTTP_PROXY", &p), ("no_proxy", "127.0.0.0/8")],
            vec![],
            0,
        ),
        (
            "--noproxy *",
            &ws,
            vec![("HTTP_PROXY", &p)],
            vec!["--noproxy", "*"],
            0,
        ),
        (
            "--noproxy * sse",
            &sse,
            vec![("HTTP_PROXY", &p)],
            vec!["--noproxy", "*"],
            0,
        ),
        (
            "--proxy ''",
            &ws,
            vec![("HTTP_PROXY", &p)],
            vec!["--proxy", ""],
            0,
        ),
        ("--proxy", &ws, vec![], vec!["--proxy", &p], 1),
        ("--proxy, sse", &sse, vec![], vec!["--proxy", &p], 1),
        // NO_PROXY applies to --proxy too, as with curl; --noproxy replaces it.
        (
            "--proxy, NO_PROXY",
            &ws,
            vec![("NO_PROXY", "127.0.0.1")],
            vec!["--proxy", &p],
            0,
        ),
        (
            "--noproxy ''",
            &ws,
            vec![("NO_PROXY", "127.0.0.1")],
            vec!["--proxy", &p, "--noproxy", ""],
            1,
        ),
        // Under CGI, HTTP_PROXY may come from a request's `Proxy:` header: reqwest ignores the variables.
        (
            "CGI",
            &ws,
            vec![("HTTP_PROXY", &p), ("REQUEST_METHOD", "GET")],
            vec![],
            0,
        ),
    ];
    for (what, url, env, args, took) in cases {
        let before = proxy.requests().len();
        tap_connects(url, &env, &args).await;
        let after = proxy.requests();
        assert_eq!(
            after.len() - before,
            took,
            "{what}: expected {took} request(s) through the proxy, it took {:?}",
            &after[before..]
        );
    }
}

/// A microsocks SOCKS5 proxy of the test's own, its outgoing connections bound to 127.0.0.2, so that the
/// target tells them from direct ones (127.0.0.1); killed on drop.
struct Microsocks {
    child: Child,
    port: u16,
}

impl Microsocks {
    async fn start(auth: Option<(&str, &str)>) -> Self {
        let port = closed_port().await;
        let mut cmd = Command::new("microsocks");
        cmd.args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-b",
            "127.0.0.2",
        ]);
        if let Some((user, pass)) = auth {
            cmd.args(["-u", user, "-P", pass]);
        }
        let child = match cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!(
                "microsocks could not be run ({e}): install it (apt-get install microsocks) or run ./scripts/test, which installs it"
            ),
        };
        let mut proxy = Self { child, port };
        // microsocks logs to its stdout, which the test does not keep.
        until_listening(&mut proxy.child, "microsocks", port, String::new).await;
        proxy
    }
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that records each peer's address, and then serves a WebSocket (a GET with `Upgrade`) that says
/// "hi", or an event stream with one event "hi".
async fn peer_server() -> (std::net::SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Seen::default();
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, peer)) = listener.accept().await {
            seen.push(peer.ip().to_string());
            tokio::spawn(async move {
                let mut head = [0u8; 4];
                if tcp.peek(&mut head).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; 2048];
                let n = tcp.peek(&mut buf).await.unwrap_or(0);
                if String::from_utf8_lossy(&buf[..n])
                    .to_ascii_lowercase()
                    .contains("upgrade: websocket")
                {
                    say_ws(tcp, "hi").await;
                } else {
                    say_sse(&mut tcp, b"data: hi\n\n").await;
                }
            });
        }
    });
    (addr, peers)
}

#[tokio::test]
async fn socks5_carries_websockets_and_http_with_its_credentials() {
    let open = Microsocks::start(None).await;
    let (addr, peers) = peer_server().await;
    let urls = [format!("ws://{addr}/"), format!("http://{addr}/")];
    let socks = |url: String| proxied_hub(&url, "", TlsConfig::default());
    let both_say_hi = |hub: Hub| {
        let urls = urls.clone();
        async move {
            for url in urls {
                let (_, mut f) = connect(&hub, once(&url));
                f.message("hi").await;
            }
        }
    };
    for scheme in ["socks5", "socks5h"] {
        both_say_hi(socks(format!("{scheme}://127.0.0.1:{}", open.port))).await;
    }
    assert_eq!(
        peers.all(),
        ["127.0.0.2"; 4],
        "every connection came from the proxy's side"
    );

    let locked = Microsocks::start(Some(("us3r", "s3cret"))).await;
    both_say_hi(socks(format!(
        "socks5h://us3r:s3cr%65t@127.0.0.1:{}",
        locked.port
    )))
    .await;
    assert_eq!(peers.all().len(), 6, "{:?}", peers.all());

    // A wrong password: refused by the proxy, named, never printed.
    let hub = socks(format!(
        "socks5h://us3r:wrong-Passw0rd@127.0.0.1:{}",
        locked.port
    ));
    for url in &urls {
        let (_, mut f) = connect(&hub, once(url));
        f.settled(&[State::Failed, State::Disconnected]).await;
        let all = format!("{:?}", f.seen);
        assert!(!all.contains("wrong-Passw0rd"), "{url}: {all}");
        assert!(all.contains("refused its credentials"), "{url}: {all}");
        assert!(
            all.contains(&format!("socks5h://127.0.0.1:{}", locked.port)),
            "{url}: the proxy is named: {all}"
        );
    }
    assert_eq!(peers.all().len(), 6, "{:?}", peers.all());
}

/// tinyproxy refuses a tunnel to a port its `ConnectPort` does not list (403: the proxy will not, so `failed`),
/// and answers 5xx when the server cannot be reached (the proxy may manage later: `reconnecting`).
#[tokio::test]
async fn a_refused_tunnel_is_classified_and_names_the_proxy() {
    let proxy = Tinyproxy::start("ConnectPort 443").await;
    let server = CountingServer::start().await;
    let hub = proxied_hub(&proxy.url(), "", TlsConfig::default());
    let (_, mut denied) = connect(&hub, opts(server.url(Kind::Ws, "denied")));
    let why = settles_as(&mut denied, State::Failed).await;
    assert!(why.contains("403"), "{why}");
    assert!(why.contains(&format!("proxy {}", proxy.url())), "{why}");
    assert_eq!(server.streams(Kind::Ws), 0);
    // The same for the HTTP client's tunnel (https://), which the engine asks again for the status.
    let (https, ca) = tls_server(true).await;
    let hub = proxied_hub(&proxy.url(), "", trusting(vec![ca]));
    let (_, mut denied) = connect(&hub, opts(format!("https://127.0.0.1:{}/", https.port())));
    let why = settles_as(&mut denied, State::Failed).await;
    assert!(why.contains("403"), "{why}");
    assert!(why.contains(&format!("proxy {}", proxy.url())), "{why}");

    let open = Tinyproxy::start("").await;
    let hub = proxied_hub(&open.url(), "", TlsConfig::default());
    let closed = closed_port().await;
    let (_, mut down) = connect(&hub, opts(format!("ws://127.0.0.1:{closed}/")));
    let why = settles_as(&mut down, State::Reconnecting).await;
    assert!(why.contains(&format!("proxy {}", open.url())), "{why}");
    assert!(why.contains("HTTP 5"), "{why}");
}
