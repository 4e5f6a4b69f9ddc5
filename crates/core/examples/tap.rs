//! `tap`: watch a WebSocket or Server-Sent-Events endpoint through the plugin's own engine.
//!
//! It opens the stream with the same core code as the Tauri relay (`tauri_plugin_realtime_core::Hub`) and
//! prints every frame a webview would receive, one JSON envelope per line on stdout, so what you see here is
//! exactly what `listen('realtime://<id>')` would get: state changes, messages, errors and closes, with
//! their `seq`. Diagnostics go to stderr.
//!
//! ```text
//! cargo run --example tap -- [URL] [--options JSON] [--transport websocket|sse|poll] [--header 'K: V']...
//!                            [--method M] [--body STR] [--last-event-id ID] [--max-retries N] [--no-reconnect]
//!                            [--echo] [--protocol P]... [--max-message-size BYTES]
//!                            [--poll-url URL] [--send-url URL] [--poll-interval-ms N]
//!                            [--probe-interval-ms N] [--after-failures N]
//!                            [--cacert FILE] [--cert FILE] [--key FILE] [--http1.1]
//! ```
//!
//! - `URL`: `ws://`, `wss://`, `http://` or `https://`; the transport defaults from the scheme. It may come
//!   from `--options` instead.
//! - `--options JSON`: any `ConnectOptions`, as the same JSON object the bindings take (camelCase: `heartbeat`,
//!   `queue`, `connectTimeoutMs`, ...), so every option can be tried from a terminal. The flags are merged
//!   into it and win, field by field: `--header` replaces a header of the same name (in any case) and keeps
//!   the others, `--max-retries` and the fallback flags set their field and keep the object's others,
//!   `--protocol` replaces the list. `share` is always `false`: one tap, one upstream.
//! - `--header 'K: V'`: a request header, sent on every attempt (repeat for more).
//! - `--method`, `--body`, `--last-event-id`: the SSE request (e.g. a POST stream) and where to resume.
//! - `--max-retries N`: give up (`failed`) after N reconnect attempts; default: unlimited.
//! - `--no-reconnect`: no reconnect at all.
//! - `--send-url URL`: `sendUrl`, where sends are POSTed: each stdin line on an SSE or poll connection, a
//!   WebSocket's while it polls.
//! - `--poll-url`, `--poll-interval-ms`, `--probe-interval-ms`, `--after-failures`: the polling fallback
//!   (`fallback` in the options), to watch a connection degrade to polling and come back; `--transport poll`
//!   polls the URL itself from the start.
//! - `--protocol P`: a WebSocket subprotocol to offer (repeat for more).
//! - `--max-message-size BYTES`: the largest message accepted from the server; default 16 MiB.
//! - `--cacert FILE`: a PEM bundle of CA certificates to trust besides the built-in roots (a company CA, a
//!   test server's).
//! - `--cert FILE`, `--key FILE`: a client certificate (PEM, the client's own certificate first) and its
//!   private key, presented to every server that asks (mutual TLS). As with curl, the key may be in the
//!   certificate's file: without `--key` it is read from there.
//! - `--http1.1`: no HTTP/2 for SSE, polls and sends (by default they use it where a server offers it over TLS).
//! - `--echo` (WebSocket): send every received message back unchanged, text as text and binary as binary,
//!   in the order received. This is how the Autobahn fuzzingserver drives a client; run each case with
//!   `--echo --no-reconnect`, so that a connection the client had to fail is not opened again.
//!
//! A value goes after its flag or after `=` (`--header 'K: V'`, `--header='K: V'`), and may start with `-`.
//! `--` ends the flags, for a URL that starts with `-`. `-h` or `--help` prints the usage and every flag on
//! stdout. A flag that takes a value may be given once, but for `--header` (once per header name, in any
//! case) and `--protocol`.
//!
//! Each line of stdin is sent as a text message through the engine's `send`, whatever the transport: over a
//! WebSocket (while the connection is down it is queued and goes out after the reconnect; stderr says so), or
//! as a POST to `sendUrl` where the connection has one; where it cannot be sent, stderr says why. End of stdin
//! does not close the connection.
//!
//! Exit status: 0 when the connection ends `disconnected` (e.g. the server closed it with 1000) or on
//! SIGINT/SIGTERM (which close it gracefully first: WebSocket close 1000, printing the close's frames down to
//! `disconnected`); 1 when it ends `failed`; 2 on bad arguments, including options the engine refuses (an
//! `ftp://` URL, a forbidden header), with what is wrong and the usage on stderr; 130 on a second signal
//! while closing.
//!
//! Example, an LLM-style POST stream with a bearer token, then a chat socket:
//!
//! ```text
//! $ cargo run --example tap -- https://api.example.com/v1/complete --method POST \
//!       --header 'Authorization: Bearer t0k' --header 'Content-Type: application/json' --body '{"prompt":"hi"}'
//! {"kind":"state","seq":1,"state":"connecting","transport":"sse","attempt":0}
//! {"kind":"state","seq":2,"state":"connected","transport":"sse"}
//! {"kind":"message","seq":3,"transport":"sse","event":"token","data":"Hel","lastEventId":"1"}
//!
//! $ echo hello | cargo run --example tap -- ws://127.0.0.1:8080/chat
//! {"kind":"state","seq":1,"state":"connecting","transport":"websocket","attempt":0}
//! {"kind":"state","seq":2,"state":"connected","transport":"websocket"}
//! {"kind":"message","seq":3,"transport":"websocket","data":"hello"}
//! ```
//!
//! Frames are buffered without bound between the engine and stdout. That is deliberate: `--echo` awaits
//! each send, and a send waits for the connection, which itself waits for room for the frames it reads; a
//! bounded buffer here could deadlock the echo.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    io::{BufRead, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::{error::ErrorKind, Parser, ValueEnum};
use tauri_plugin_realtime_core::{
    pem_certificates, AllowAll, ChannelSink, ClientIdentity, ConnectOptions, ConnectRequest, Error,
    FallbackOptions, Frame, Hub, HubConfig, Limits, Outgoing, ProxyConfig, ProxySetting,
    ReconnectOptions, State, TlsConfig, Toggle, Transport,
};
use tokio::sync::mpsc;

/// The synopsis, written out rather than generated: it reads like the README and the module doc, and every
/// usage error repeats it.
const SYNOPSIS: &str = "\
tap [URL] [--options JSON] [--transport websocket|sse|poll] [--header 'K: V']... [--method M]
           [--body STR] [--last-event-id ID] [--max-retries N] [--no-reconnect] [--echo]
           [--protocol P]... [--max-message-size BYTES]
           [--poll-url URL] [--send-url URL] [--poll-interval-ms N] [--probe-interval-ms N]
           [--after-failures N]
           [--proxy URL] [--noproxy LIST] [--cacert FILE] [--cert FILE] [--key FILE] [--http1.1]";
const ABOUT: &str = "\
Prints every frame of the stream as one JSON line on stdout; sends each stdin line as text with send() (a POST
to sendUrl beside SSE and polling).";
const EXIT_STATUS: &str = "\
Exit status: 0 disconnected or interrupted, 1 failed, 2 bad arguments, 130 a second signal while closing.";

/// Exit status for a connection that ended `failed`, or could not be opened.
const FAILED: u8 = 1;
/// Exit status for bad arguments, as clap's own.
const USAGE_ERROR: u8 = 2;
/// Exit status for a second signal while the first one's close is under way.
const INTERRUPTED: u8 = 130;
/// How long a close after SIGINT/SIGTERM may take before tap exits anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The command line. Every value may start with `-` (`--body -1`, `--header 'X: -v'`): a flag's value is
/// whatever follows it.
#[derive(Parser, Debug)]
#[command(
    name = "tap",
    about = ABOUT,
    // One help for `-h` and `--help`, whatever this struct's doc comment grows into.
    long_about = None,
    override_usage = SYNOPSIS,
    // `{after-help}` brings its own blank line.
    help_template = "usage: {usage}\n\n{about}\n\n{all-args}{after-help}",
    after_help = EXIT_STATUS
)]
struct Cli {
    /// ws://, wss://, http:// or https://; the transport defaults from the scheme [default: `url` of --options]
    #[arg(value_name = "URL")]
    url: Option<String>,
    /// Any ConnectOptions as the JSON object the bindings take, e.g. '{"heartbeat":{"message":"ping"}}'; the
    /// flags are merged into it and win
    #[arg(long, value_name = "JSON", allow_hyphen_values = true)]
    options: Option<String>,
    /// Instead of the transport the URL's scheme implies
    #[arg(long, value_enum, value_name = "TRANSPORT", allow_hyphen_values = true)]
    transport: Option<TransportArg>,
    /// A request header, sent on every attempt (repeat for more)
    #[arg(long = "header", value_name = "K: V", value_parser = header, allow_hyphen_values = true)]
    headers: Vec<(String, String)>,
    /// The SSE request's method (e.g. POST)
    #[arg(long, value_name = "M", allow_hyphen_values = true)]
    method: Option<String>,
    /// The SSE request's body
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    body: Option<String>,
    /// The SSE Last-Event-ID to resume from
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    last_event_id: Option<String>,
    /// Give up (failed) after N reconnect attempts [default: unlimited]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    max_retries: Option<u32>,
    /// No reconnect at all
    // A switch given twice means what it does once: each overrides itself, or clap would refuse a repeat.
    #[arg(long, overrides_with = "no_reconnect", conflicts_with = "max_retries")]
    no_reconnect: bool,
    /// WebSocket: send each message received back unchanged, in order
    #[arg(long, overrides_with = "echo")]
    echo: bool,
    /// A WebSocket subprotocol to offer (repeat for more)
    #[arg(long = "protocol", value_name = "P", allow_hyphen_values = true)]
    protocols: Vec<String>,
    /// The largest message accepted from the server [default: 16 MiB]
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    max_message_size: Option<usize>,
    /// Fallback: the URL to poll when the stream cannot be had
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    poll_url: Option<String>,
    /// Where sends are POSTed: beside an SSE or poll stream, or while a WebSocket polls
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    send_url: Option<String>,
    /// Fallback: ms between polls [default: 2000]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    poll_interval_ms: Option<u64>,
    /// Fallback: ms between tries to get the stream back [default: 30000]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    probe_interval_ms: Option<u64>,
    /// Fallback: failed attempts in a row before polling [default: 3]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    after_failures: Option<u32>,
    /// Every request through this proxy: http://[user:password@]host[:port], socks5:// or socks5h://; ""
    /// for none [default: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, then the OS's settings]
    #[arg(long, short = 'x', value_name = "URL", allow_hyphen_values = true)]
    proxy: Option<String>,
    /// Hosts reached without the proxy, comma-separated (names match their subdomains, IPs, CIDR ranges);
    /// '*' for every host; overrides NO_PROXY
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    noproxy: Option<String>,
    /// A PEM bundle of CA certificates to trust, besides the built-in roots
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    cacert: Option<PathBuf>,
    /// A PEM client certificate to present to every server that asks (mutual TLS); may hold the key too
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    cert: Option<PathBuf>,
    /// The client certificate's PEM private key [default: read from the --cert file]
    #[arg(
        long,
        value_name = "FILE",
        allow_hyphen_values = true,
        requires = "cert"
    )]
    key: Option<PathBuf>,
    /// HTTP/1.1 only: no HTTP/2 for SSE, polls and sends, even where the server offers it
    #[arg(long = "http1.1", overrides_with = "http1_1")]
    http1_1: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TransportArg {
    Websocket,
    Sse,
    Poll,
}

impl From<TransportArg> for Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Websocket => Transport::Websocket,
            TransportArg::Sse => Transport::Sse,
            TransportArg::Poll => Transport::Poll,
        }
    }
}

/// `--header 'Name: value'`, name and value trimmed.
fn header(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once(':') else {
        return Err("expected 'Name: value'".into());
    };
    let name = name.trim();
    if name.is_empty() {
        return Err("the header has no name".into());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

#[derive(Debug)]
struct Args {
    options: ConnectOptions,
    echo: bool,
    proxy: ProxyConfig,
    /// `--cacert`, `--cert` and `--key`.
    tls: TlsConfig,
    http1_only: bool,
}

/// A file a flag names, whole.
fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))
}

/// The TLS flags: CA certificates to trust, and a client identity for every URL.
fn tls_config(
    cacert: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<TlsConfig, String> {
    let mut tls = TlsConfig::default();
    if let Some(path) = cacert {
        tls.extra_roots = pem_certificates(&read_file("--cacert", path)?)
            .map_err(|e| format!("--cacert {}: {}", path.display(), tls_message(e)))?;
    }
    if let Some(cert_path) = cert {
        let cert = read_file("--cert", cert_path)?;
        // As curl: without --key, the key is in the certificate's file.
        let key_pem = match key {
            Some(path) => read_file("--key", path)?,
            None => cert.clone(),
        };
        let identity = ClientIdentity::from_pem(&cert, &key_pem, |_| true).map_err(|e| {
            let flags = if key.is_some() {
                "--cert/--key"
            } else {
                "--cert"
            };
            format!("{flags}: {}", tls_message(e))
        })?;
        tls.client_identities.push(identity);
    }
    Ok(tls)
}

/// The engine's TLS message without its "could not set up TLS" prefix, which the flag's name replaces.
fn tls_message(e: Error) -> String {
    match e {
        Error::Tls(m) => m,
        other => other.to_string(),
    }
}

/// What the command line asks for.
#[derive(Debug)]
enum Parsed {
    Run(Box<Args>),
    /// `-h` or `--help`: this text, for stdout.
    Help(String),
}

/// Parses a command line (the program's name first). An error is what is wrong with it, for a usage error.
fn parse<I, T>(args: I) -> Result<Parsed, String>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => cli.into_args().map(|a| Parsed::Run(Box::new(a))),
        Err(e) if e.kind() == ErrorKind::DisplayHelp => Ok(Parsed::Help(e.render().to_string())),
        Err(e) => Err(clap_message(&e)),
    }
}

/// clap's message and tips, without the prefix, usage and pointer to `--help` that `usage_error` writes its
/// own way.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let end = ["\n\nUsage:", "\n\nFor more information"]
        .iter()
        .filter_map(|tail| text.find(tail))
        .min()
        .unwrap_or(text.len());
    text[..end].trim_end().to_owned()
}

/// Prints a usage error (what is wrong, then the usage) on stderr; returns its exit status.
fn usage_error(msg: &str) -> u8 {
    eprintln!(
        "tap: {msg}\n\nusage: {SYNOPSIS}\n\n{ABOUT}\n{EXIT_STATUS}\nFor more information, try '--help'."
    );
    USAGE_ERROR
}

/// `--options`: a JSON object of `ConnectOptions`, its `url` from the command line when it has none.
fn base_options(json: Option<&str>, url: Option<&str>) -> Result<ConnectOptions, String> {
    let mut value = match json {
        None => serde_json::Value::Object(Default::default()),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| format!("--options is not valid JSON: {e}"))?
        }
    };
    let Some(object) = value.as_object_mut() else {
        return Err(
            "--options must be a JSON object of connect options, e.g. '{\"url\":\"wss://...\"}'"
                .into(),
        );
    };
    match url {
        Some(url) => {
            object.insert("url".into(), url.into());
        }
        None if !object.contains_key("url") => {
            return Err("a URL is needed: give it first, or as \"url\" in --options".into())
        }
        None => {}
    }
    serde_json::from_value(value).map_err(|e| format!("--options: {e}"))
}

impl Cli {
    /// The checks clap cannot express, then the engine's own validation, so that a bad URL or header is a
    /// usage error (exit 2), not a failure. The flags are laid over `--options`, field by field.
    fn into_args(self) -> Result<Args, String> {
        let mut options = base_options(self.options.as_deref(), self.url.as_deref())?;
        let mut given = BTreeMap::new();
        for (name, value) in self.headers {
            // Header names are case-insensitive: `A` and `a` would be the same header, one value lost.
            if given.insert(name.to_ascii_lowercase(), value).is_some() {
                return Err(format!("--header {name} is given twice"));
            }
        }
        for (name, value) in given {
            options
                .headers
                .retain(|k, _| !k.eq_ignore_ascii_case(&name));
            options.headers.insert(name, value);
        }
        // clap has refused --no-reconnect with --max-retries.
        if self.no_reconnect {
            options.reconnect = Some(Toggle::Enabled(false));
        } else if let Some(n) = self.max_retries {
            let mut r = match options.reconnect.take() {
                Some(Toggle::With(r)) => r,
                _ => ReconnectOptions::default(),
            };
            r.max_retries = Some(n);
            options.reconnect = Some(Toggle::With(r));
        }
        let fallback_given = self.poll_url.is_some()
            || self.poll_interval_ms.is_some()
            || self.probe_interval_ms.is_some()
            || self.after_failures.is_some();
        if fallback_given {
            let mut fallback = match options.fallback.take() {
                Some(Toggle::With(f)) => f,
                _ => FallbackOptions::default(),
            };
            if let Some(u) = self.poll_url {
                fallback.poll_url = Some(u);
            }
            if let Some(ms) = self.poll_interval_ms {
                fallback.interval_ms = ms;
            }
            if let Some(ms) = self.probe_interval_ms {
                fallback.probe_interval_ms = ms;
            }
            if let Some(n) = self.after_failures {
                fallback.after_failures = n;
            }
            options.fallback = Some(Toggle::With(fallback));
        }
        if let Some(t) = self.transport {
            options.transport = Some(t.into());
        }
        options.method = self.method.or(options.method);
        options.body = self.body.or(options.body);
        options.last_event_id = self.last_event_id.or(options.last_event_id);
        if !self.protocols.is_empty() {
            options.protocols = self.protocols;
        }
        options.send_url = self.send_url.or(options.send_url);
        options.max_message_size = self.max_message_size.or(options.max_message_size);
        // One tap, one upstream: never join another subscription's.
        options.share = Some(tauri_plugin_realtime_core::Share::Enabled(false));
        let resolved = options.resolve(&limits()).map_err(|e| e.to_string())?;
        if self.echo && resolved.transport != Transport::Websocket {
            return Err("--echo needs a WebSocket (ws:// or wss://)".into());
        }
        // curl's meaning: an empty --proxy turns the proxy off, --noproxy replaces NO_PROXY.
        let proxy = ProxyConfig {
            proxy: match self.proxy {
                None => ProxySetting::System,
                Some(url) if url.is_empty() => ProxySetting::None,
                Some(url) => ProxySetting::Url(url),
            },
            no_proxy: self.noproxy,
        };
        proxy.check().map_err(|e| format!("--proxy: {e}"))?;
        let tls = tls_config(
            self.cacert.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )?;
        Ok(Args {
            options,
            echo: self.echo,
            proxy,
            tls,
            http1_only: self.http1_1,
        })
    }
}

/// The engine's limits, but for the floor on intervals: that floor keeps a page from making a request storm,
/// and a terminal has no page; whoever types `--poll-interval-ms 10` means it.
fn limits() -> Limits {
    Limits {
        min_interval_ms: 1,
        ..Limits::default()
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args_os()) {
        Ok(Parsed::Run(args)) => *args,
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => return ExitCode::from(usage_error(&msg)),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tap: cannot start the runtime: {e}");
            return ExitCode::from(FAILED);
        }
    };
    let code = runtime.block_on(run(args));
    // Nothing of ours is left running; do not wait on anything that might be.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

async fn run(args: Args) -> u8 {
    // Listen for signals before anything starts, so that an early Ctrl-C is handled too.
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tap: cannot listen for signals: {e}");
            return FAILED;
        }
    };
    let hub = match Hub::new(
        HubConfig {
            linger: Duration::ZERO,
            limits: limits(),
            proxy: args.proxy.clone(),
            tls: args.tls,
            http1_only: args.http1_only,
            ..Default::default()
        },
        tokio::runtime::Handle::current(),
    ) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("tap: {e}");
            return FAILED;
        }
    };
    let (frames_tx, mut frames) = mpsc::unbounded_channel();
    let connected = hub.connect(ConnectRequest {
        id: None,
        options: args.options,
        owner: "tap".into(),
        sink: Arc::new(ChannelSink(frames_tx)),
        guard: Arc::new(AllowAll),
        cookies: None,
    });
    let id = match connected {
        Ok(c) => c.id,
        // Whatever `parse` did not catch is still a usage error.
        Err(e @ Error::InvalidOptions(_)) => return usage_error(&e.to_string()),
        Err(e) => {
            eprintln!("tap: {e}");
            return FAILED;
        }
    };

    // Whatever the transport: over SSE or polling, `send` POSTs to `sendUrl`, or says why it cannot.
    spawn_stdin_sender(hub.clone(), id.clone());
    // One task sends the echoes, in the order the frames arrived.
    let echo = args.echo.then(|| spawn_echo(hub.clone(), id.clone()));

    let stdout = std::io::stdout();
    // Set once a signal asked to close: the close's own frames are still printed, within this time.
    let mut closing: Option<tokio::time::Instant> = None;
    let code = loop {
        let give_up = async {
            match closing {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let batch = tokio::select! {
            b = frames.recv() => b,
            _ = signals.recv() => {
                if closing.is_some() {
                    // A second signal while closing: give up at once.
                    break INTERRUPTED;
                }
                eprintln!("tap: closing");
                if let Err(e) = hub.end(&id, "tap", None, None) {
                    eprintln!("tap: {e}");
                    break 0;
                }
                // The engine allows the server 2 s to answer the close handshake.
                closing = Some(tokio::time::Instant::now() + CLOSE_WAIT);
                continue;
            }
            _ = give_up => {
                eprintln!("tap: the close did not finish within {} s", CLOSE_WAIT.as_secs());
                break 0;
            }
        };
        let Some(batch) = batch else {
            if closing.is_some() {
                break 0;
            }
            // The engine dropped the subscription without a terminal state: should not happen.
            eprintln!("tap: the connection ended without a final state");
            break FAILED;
        };
        let mut end = None;
        let written = {
            let mut out = stdout.lock();
            let mut write = || -> std::io::Result<()> {
                for frame in &batch {
                    serde_json::to_writer(&mut out, &**frame)?;
                    out.write_all(b"\n")?;
                }
                out.flush()
            };
            write()
        };
        for frame in &batch {
            match &**frame {
                Frame::Message { data, binary, .. } => {
                    if let Some(echo) = &echo {
                        let msg = if *binary {
                            match Outgoing::from_base64(data) {
                                Ok(m) => m,
                                Err(e) => {
                                    eprintln!("tap: cannot echo a binary message: {e}");
                                    continue;
                                }
                            }
                        } else {
                            Outgoing::Text(data.clone())
                        };
                        let _ = echo.send(msg);
                    }
                }
                Frame::State { state, .. } => match state {
                    State::Disconnected => end = Some(0),
                    // Closing on a signal is a normal end, whatever state the connection was in.
                    State::Failed => end = Some(if closing.is_some() { 0 } else { FAILED }),
                    _ => {}
                },
                _ => {}
            }
        }
        if let Err(e) = written {
            // `tap ... | head`: the reader is gone; that is a normal way to stop looking.
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("tap: cannot write to stdout: {e}");
            }
            let _ = hub.close(&id, "tap", None, None);
            break if e.kind() == std::io::ErrorKind::BrokenPipe {
                0
            } else {
                FAILED
            };
        }
        if let Some(code) = end {
            break code;
        }
    };
    if let Some(echo) = echo {
        echo.abort();
    }
    if !hub.shutdown(Duration::from_secs(2)).await {
        eprintln!("tap: the connection did not stop within 2 s");
    }
    code
}

/// Sends each stdin line as a text message through the hub's `send`. Stdin is read on a plain thread: a blocking read there never
/// holds up the exit, as one on the runtime's blocking pool would.
fn spawn_stdin_sender(hub: Hub, id: String) {
    let (tx, mut rx) = mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    eprintln!("tap: cannot read stdin: {e}");
                    return;
                }
            }
            line_no += 1;
            if buf.ends_with(b"\n") {
                buf.pop();
                if buf.ends_with(b"\r") {
                    buf.pop();
                }
            }
            match String::from_utf8(std::mem::take(&mut buf)) {
                Ok(line) => {
                    if tx.blocking_send(line).is_err() {
                        return;
                    }
                }
                Err(_) => eprintln!("tap: stdin line {line_no} is not valid UTF-8; not sent"),
            }
        }
    });
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            match hub.send(&id, "tap", Outgoing::Text(line)).await {
                Ok(true) => eprintln!("tap: not connected; the message is queued"),
                Ok(false) => {}
                Err(e) => eprintln!("tap: send failed: {e}"),
            }
        }
    });
}

/// The echo: one task, one FIFO, so messages go back in the order they came.
fn spawn_echo(hub: Hub, id: String) -> EchoHandle {
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let task = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if let Err(e) = hub.send(&id, "tap", msg).await {
                eprintln!("tap: echo failed: {e}");
            }
        }
    });
    EchoHandle { tx, task }
}

struct EchoHandle {
    tx: mpsc::UnboundedSender<Outgoing>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoHandle {
    fn send(&self, msg: Outgoing) -> Result<(), mpsc::error::SendError<Outgoing>> {
        self.tx.send(msg)
    }

    fn abort(self) {
        self.task.abort();
    }
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere).
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The command line, parsed in-process (`cargo test --example tap`); `tests/resilience.rs` runs the binary.
#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    const WS: &str = "ws://127.0.0.1:1/";
    const HTTP: &str = "http://127.0.0.1:1/";
    /// Every flag that takes one value, with a value it accepts.
    const SINGLE: [(&str, &str); 17] = [
        ("--cacert", "ca.pem"),
        ("--cert", "client.pem"),
        ("--key", "client.key"),
        ("--options", "{}"),
        ("--transport", "websocket"),
        ("--method", "GET"),
        ("--body", "b"),
        ("--last-event-id", "1"),
        ("--max-retries", "1"),
        ("--max-message-size", "1024"),
        ("--poll-url", HTTP),
        ("--send-url", HTTP),
        ("--poll-interval-ms", "10"),
        ("--probe-interval-ms", "10"),
        ("--after-failures", "1"),
        ("--proxy", "http://127.0.0.1:1"),
        ("--noproxy", "*"),
    ];

    fn transport(a: &Args) -> Transport {
        a.options.resolve(&limits()).expect("resolved").transport
    }

    fn parse_args(args: &[&str]) -> Result<Parsed, String> {
        parse(std::iter::once("tap").chain(args.iter().copied()))
    }

    fn run(args: &[&str]) -> Args {
        match parse_args(args) {
            Ok(Parsed::Run(a)) => *a,
            other => panic!("expected {args:?} to run, got {other:?}"),
        }
    }

    /// A usage error whose message says `what` (and leaves the usage to `usage_error`).
    fn refused(args: &[&str], what: &str) {
        match parse_args(args) {
            Err(msg) => {
                assert!(
                    msg.contains(what),
                    "expected the error for {args:?} to say {what:?}, got {msg:?}"
                );
                assert!(
                    !msg.is_empty()
                        && !msg.starts_with("error:")
                        && !msg.contains("Usage:")
                        && !msg.contains("For more information"),
                    "expected only what is wrong for {args:?}, got {msg:?}"
                );
            }
            other => panic!("expected a usage error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn clap_accepts_the_definition() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_synopsis_names_every_flag() {
        let longs: Vec<_> = Cli::command()
            .get_arguments()
            .filter_map(|a| a.get_long())
            .map(str::to_owned)
            .collect();
        assert!(longs.len() >= 15, "expected every flag, got {longs:?}");
        for long in longs {
            assert!(
                SYNOPSIS.contains(&format!("--{long} "))
                    || SYNOPSIS.contains(&format!("--{long}]")),
                "expected --{long} in the synopsis"
            );
        }
    }

    #[test]
    fn help_is_the_usage_then_every_flag_wherever_it_is_asked_for() {
        for flag in ["-h", "--help"] {
            for args in [&[flag][..], &[WS, flag], &[flag, "--bogus"]] {
                match parse_args(args) {
                    Ok(Parsed::Help(text)) => {
                        assert!(
                            text.starts_with(&format!("usage: {SYNOPSIS}\n\n{ABOUT}\n")),
                            "expected the usage first, got {text:?}"
                        );
                        for (f, _) in SINGLE {
                            assert!(text.contains(f), "expected {f} in the help, got {text:?}");
                        }
                        assert!(text.trim_end().ends_with(EXIT_STATUS), "got {text:?}");
                    }
                    other => panic!("expected help for {args:?}, got {other:?}"),
                }
            }
        }
        // Flags are read in order: one refused before the help is asked for wins.
        refused(&["--bogus", "-h"], "'--bogus'");
    }

    #[test]
    fn values_come_after_a_space_or_an_equals_sign_and_may_start_with_a_dash() {
        let a = run(&[
            HTTP,
            "--method=POST",
            "--body",
            "-1",
            "--header",
            "X-A: -v",
            "--header=X-B:2",
            "--last-event-id=--",
            "--no-reconnect",
        ]);
        assert_eq!(a.options.method.as_deref(), Some("POST"));
        assert_eq!(a.options.body.as_deref(), Some("-1"));
        assert_eq!(a.options.last_event_id.as_deref(), Some("--"));
        let headers: Vec<_> = a.options.headers.iter().collect();
        assert_eq!(
            headers,
            [
                (&"x-a".to_string(), &"-v".to_string()),
                (&"x-b".to_string(), &"2".to_string())
            ]
        );
        assert_eq!(a.options.reconnect, Some(Toggle::Enabled(false)));
        assert_eq!(transport(&a), Transport::Sse);
    }

    #[test]
    fn a_double_dash_ends_the_flags() {
        assert_eq!(run(&["--no-reconnect", "--", WS]).options.url, WS);
        refused(&["--", WS, "extra"], "'extra'");
        // After `--`, `-h` is a URL (a bad one), not a request for help.
        assert!(matches!(parse_args(&["--", "-h"]), Err(_)));
    }

    #[test]
    fn repeatable_flags_add_up_and_switches_may_repeat() {
        let a = run(&[
            WS,
            "--protocol",
            "a",
            "--protocol=b",
            "--echo",
            "--echo",
            "--no-reconnect",
            "--no-reconnect",
        ]);
        assert_eq!(a.options.protocols, ["a", "b"]);
        assert!(a.echo);
        assert_eq!(transport(&a), Transport::Websocket);
        assert_eq!(
            a.options.share,
            Some(tauri_plugin_realtime_core::Share::Enabled(false))
        );
    }

    #[test]
    fn max_retries_and_the_fallback_flags_set_their_options() {
        let a = run(&[WS]);
        assert_eq!((a.options.reconnect, a.options.fallback), (None, None));
        let a = run(&[WS, "--max-retries", "3", "--max-message-size=1024"]);
        match a.options.reconnect {
            Some(Toggle::With(r)) => assert_eq!(r.max_retries, Some(3)),
            other => panic!("expected max_retries 3, got {other:?}"),
        }
        assert_eq!(a.options.max_message_size, Some(1024));
        let a = run(&[
            HTTP,
            "--poll-url",
            "http://127.0.0.1:1/poll",
            "--send-url=http://127.0.0.1:1/send",
            "--poll-interval-ms",
            "10",
            "--probe-interval-ms",
            "20",
            "--after-failures",
            "1",
        ]);
        let want = FallbackOptions {
            poll_url: Some("http://127.0.0.1:1/poll".into()),
            send_url: None,
            interval_ms: 10,
            after_failures: 1,
            probe_interval_ms: 20,
        };
        assert_eq!(a.options.fallback, Some(Toggle::With(want)));
        assert_eq!(
            a.options.send_url.as_deref(),
            Some("http://127.0.0.1:1/send")
        );
        let a = run(&[
            HTTP,
            "--poll-url",
            "http://127.0.0.1:1/poll",
            "--transport",
            "poll",
        ]);
        assert_eq!(transport(&a), Transport::Poll);
    }

    /// `--options` takes any option as the bindings' JSON; the flags are laid over it and win, field by field.
    #[test]
    fn options_json_merged_with_the_flags_which_win() {
        let json = r#"{
            "url": "ws://127.0.0.1:1/from-json",
            "headers": { "X-A": "json", "X-Keep": "json" },
            "protocols": ["json"],
            "reconnect": { "initialDelayMs": 250, "maxRetries": 9 },
            "heartbeat": { "pingIntervalMs": 500, "message": "{\"type\":\"ping\"}", "reply": "{\"type\":\"pong\"}" },
            "queue": { "maxMessages": 5 },
            "share": "ignored",
            "connectTimeoutMs": 1500
        }"#;
        let a = run(&["--options", json]);
        assert_eq!(a.options.url, "ws://127.0.0.1:1/from-json");
        assert_eq!(a.options.connect_timeout_ms, Some(1500));
        match &a.options.heartbeat {
            Some(Toggle::With(h)) => {
                assert_eq!(h.message.as_deref(), Some(r#"{"type":"ping"}"#));
                assert_eq!(h.ping_interval_ms, 500);
            }
            other => panic!("expected the heartbeat from the JSON, got {other:?}"),
        }
        assert_eq!(a.options.queue.as_ref().map(|q| q.max_messages), Some(5));
        assert_eq!(
            a.options.share,
            Some(tauri_plugin_realtime_core::Share::Enabled(false))
        );

        let a = run(&[
            WS,
            "--options",
            json,
            "--header",
            "x-a: flag",
            "--protocol",
            "flag",
            "--max-retries",
            "3",
        ]);
        assert_eq!(a.options.url, WS, "the positional URL wins");
        let headers: Vec<_> = a
            .options
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(headers, [("X-Keep", "json"), ("x-a", "flag")]);
        assert_eq!(a.options.protocols, ["flag"]);
        match &a.options.reconnect {
            Some(Toggle::With(r)) => {
                assert_eq!((r.max_retries, r.initial_delay_ms), (Some(3), 250))
            }
            other => panic!("expected the merged reconnect, got {other:?}"),
        }
        let a = run(&["--options", json, "--no-reconnect"]);
        assert_eq!(a.options.reconnect, Some(Toggle::Enabled(false)));

        // The fallback flags set their field and keep the object's others.
        let a = run(&[
            HTTP,
            "--options",
            r#"{"fallback":{"pollUrl":"http://127.0.0.1:1/p","intervalMs":700}}"#,
            "--after-failures",
            "1",
        ]);
        match &a.options.fallback {
            Some(Toggle::With(f)) => assert_eq!(
                (f.poll_url.as_deref(), f.interval_ms, f.after_failures),
                (Some("http://127.0.0.1:1/p"), 700, 1)
            ),
            other => panic!("expected the merged fallback, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_command_line_is_refused_with_what_is_wrong() {
        for (args, what) in [
            (&[][..], "a URL is needed"),
            (&["--options", "{}"], "a URL is needed"),
            (&["--options", "[1]"], "must be a JSON object"),
            (&["--options", "{url"], "--options is not valid JSON"),
            (
                &[WS, "--options", r#"{"retries":3}"#],
                "unknown field `retries`",
            ),
            (
                &[WS, "--options", r#"{"heartbeat":{"message":""}}"#],
                "`heartbeat.message` must be 1 to 4096 bytes",
            ),
            (&[WS, "extra"], "'extra'"),
            (&[WS, "--bogus"], "'--bogus'"),
            (&[WS, "--transport", "carrier-pigeon"], "carrier-pigeon"),
            (&[WS, "--transport"], "--transport"),
            (&[WS, "--header", "no colon"], "'Name: value'"),
            (&[WS, "--header="], "'Name: value'"),
            (&[WS, "--header", " : v"], "no name"),
            (
                &[WS, "--header", "X-A: 1", "--header", "x-a: 2"],
                "--header x-a is given twice",
            ),
            (
                &[WS, "--no-reconnect", "--max-retries", "3"],
                "cannot be used with",
            ),
            (
                &[WS, "--max-retries=3", "--no-reconnect"],
                "cannot be used with",
            ),
            (&[HTTP, "--echo"], "--echo needs a WebSocket"),
            (&[WS, "--echo=yes"], "'yes'"),
            (&[WS, "--help=x"], "'x'"),
            (&[WS, "--max-retries", "many"], "'many'"),
            (&[WS, "--max-retries", "-1"], "'-1'"),
            (&[WS, "--max-message-size", "1k"], "'1k'"),
            (&[WS, "--poll-interval-ms", "x"], "'x'"),
            (&[WS, "--probe-interval-ms", "1.5"], "'1.5'"),
            (&[WS, "--after-failures", "99999999999"], "'99999999999'"),
        ] {
            refused(args, what);
        }
        for (flag, value) in SINGLE {
            refused(
                &[WS, flag, value, &format!("{flag}={value}")],
                "cannot be used multiple times",
            );
        }
    }

    /// A file of the test's own in the temporary directory, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "tap-test-{}-{}-{name}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::write(&path, text).expect("a temporary file");
            Self(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().expect("a UTF-8 temporary path")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn tls_flags_read_their_files() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca".to_owned()])
            .unwrap()
            .self_signed(&ca_key)
            .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let ca_file = TempFile::new("ca.pem", &ca.pem());
        let cert_file = TempFile::new("cert.pem", &cert.pem());
        let key_file = TempFile::new("key.pem", &key.serialize_pem());
        let both = TempFile::new(
            "both.pem",
            &format!("{}{}", cert.pem(), key.serialize_pem()),
        );
        let other_key = TempFile::new(
            "other.pem",
            &rcgen::KeyPair::generate().unwrap().serialize_pem(),
        );

        let a = run(&[
            HTTP,
            "--cacert",
            ca_file.arg(),
            "--cert",
            cert_file.arg(),
            "--key",
            key_file.arg(),
        ]);
        assert_eq!(a.tls.extra_roots, [ca.der().to_vec()]);
        assert_eq!(a.tls.client_identities.len(), 1);
        assert!(!a.http1_only);
        // The key in the certificate's file, as curl allows.
        let a = run(&[HTTP, "--cert", both.arg(), "--http1.1"]);
        assert_eq!(a.tls.client_identities.len(), 1);
        assert!(a.http1_only);
        let a = run(&[HTTP]);
        assert!(a.tls.extra_roots.is_empty() && a.tls.client_identities.is_empty());

        refused(&[HTTP, "--cacert", key_file.arg()], "--cacert");
        refused(&[HTTP, "--cacert", key_file.arg()], "no certificate found");
        refused(&[HTTP, "--cacert", "/nonexistent/ca.pem"], "cannot read it");
        refused(
            &[HTTP, "--cert", cert_file.arg()],
            "--cert: client certificate: no private key found",
        );
        refused(
            &[HTTP, "--cert", cert_file.arg(), "--key", other_key.arg()],
            "--cert/--key: client certificate: the private key does not match the certificate",
        );
        refused(&[HTTP, "--key", key_file.arg()], "--cert");
    }

    #[test]
    fn proxy_flags_have_curls_meaning() {
        let default = run(&[WS]);
        assert_eq!(default.proxy, ProxyConfig::default());
        let a = run(&[WS, "--proxy", "http://u:p@127.0.0.1:3128", "--noproxy", "*"]);
        assert_eq!(
            a.proxy.proxy,
            ProxySetting::Url("http://u:p@127.0.0.1:3128".into())
        );
        assert_eq!(a.proxy.no_proxy.as_deref(), Some("*"));
        // An empty proxy is none, as with curl.
        assert_eq!(run(&[WS, "-x", ""]).proxy.proxy, ProxySetting::None);
        // --noproxy alone keeps the environment's proxy.
        let b = run(&[WS, "--noproxy", "example.com,10.0.0.0/8"]);
        assert_eq!(b.proxy.proxy, ProxySetting::System);
        assert_eq!(b.proxy.no_proxy.as_deref(), Some("example.com,10.0.0.0/8"));
        refused(
            &[WS, "--proxy", "ftp://u:secret@h:1"],
            "--proxy: invalid proxy",
        );
        match parse_args(&[WS, "--proxy", "ftp://u:secret@h:1"]) {
            Err(msg) => assert!(!msg.contains("secret"), "{msg}"),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn options_the_engine_refuses_are_usage_errors() {
        for args in [
            &["ftp://127.0.0.1:1/"][..],
            &[""],
            &[WS, "--transport", "sse"],
            &[WS, "--header", "Host: x"],
            &[WS, "--max-message-size", "0"],
            &[HTTP, "--method", "BAD METHOD"],
        ] {
            refused(args, "");
        }
    }
}
