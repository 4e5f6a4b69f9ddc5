//! `tap`: watch a WebSocket or Server-Sent-Events endpoint through the plugin's own engine.
//!
//! It opens the stream with the same core code as the Tauri relay (`tauri_plugin_realtime_core::Hub`) and
//! prints every frame a webview would receive, one JSON envelope per line on stdout, so what you see here is
//! exactly what `listen('realtime://<id>')` would get: state changes, messages, errors and closes, with
//! their `seq`. Diagnostics go to stderr.
//!
//! ```text
//! cargo run --example tap -- <URL> [--transport websocket|sse|poll] [--header 'K: V']... [--method M]
//!                            [--body STR] [--last-event-id ID] [--max-retries N] [--no-reconnect] [--echo]
//!                            [--protocol P]... [--max-message-size BYTES]
//!                            [--poll-url URL] [--send-url URL] [--poll-interval-ms N]
//!                            [--probe-interval-ms N] [--after-failures N]
//!                            [--protocol P]... [--max-message-size BYTES]
//! ```
//!
//! - `URL`: `ws://`, `wss://`, `http://` or `https://`; the transport defaults from the scheme.
//! - `--header 'K: V'`: a request header, sent on every attempt (repeat for more).
//! - `--method`, `--body`, `--last-event-id`: the SSE request (e.g. a POST stream) and where to resume.
//! - `--max-retries N`: give up (`failed`) after N reconnect attempts; default: unlimited.
//! - `--no-reconnect`: no reconnect at all.
//! - `--poll-url`, `--send-url`, `--poll-interval-ms`, `--probe-interval-ms`, `--after-failures`: the polling
//!   fallback (`fallback` in the options), to watch a connection degrade to polling and come back;
//!   `--transport poll` polls the URL itself from the start.
//! - `--protocol P`: a WebSocket subprotocol to offer (repeat for more).
//! - `--max-message-size BYTES`: the largest message accepted from the server; default 16 MiB.
//! - `--echo` (WebSocket): send every received message back unchanged, text as text and binary as binary,
//!   in the order received. This is how the Autobahn fuzzingserver drives a client; run each case with
//!   `--echo --no-reconnect`, so that a connection the client had to fail is not opened again.
//!
//! For a WebSocket, each line of stdin is sent as a text message (while the connection is down it is
//! queued and goes out after the reconnect; stderr says so). End of stdin does not close the connection.
//!
//! Exit status: 0 when the connection ends `disconnected` (e.g. the server closed it with 1000) or on
//! SIGINT/SIGTERM (which close it gracefully first: WebSocket close 1000, printing the close's frames down to
//! `disconnected`); 1 when it ends `failed`; 2 on bad arguments.
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
    io::{BufRead, Write},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use tauri_plugin_realtime_core::{
    AllowAll, ChannelSink, ConnectOptions, ConnectRequest, Error, FallbackOptions, Frame, Hub,
    HubConfig, Limits, Outgoing, ReconnectOptions, State, Toggle, Transport,
};
use tokio::sync::mpsc;

const USAGE: &str = "\
usage: tap <URL> [--transport websocket|sse|poll] [--header 'K: V']... [--method M] [--body STR]
           [--last-event-id ID] [--max-retries N] [--no-reconnect] [--echo]
           [--protocol P]... [--max-message-size BYTES]
           [--poll-url URL] [--send-url URL] [--poll-interval-ms N] [--probe-interval-ms N]
           [--after-failures N]

Prints every frame of the stream as one JSON line on stdout; WebSocket: sends each stdin line as text.
Exit status: 0 disconnected or interrupted, 1 failed, 2 bad arguments.";

/// Exit status for a connection that ended `failed`, or could not be opened.
const FAILED: u8 = 1;
/// Exit status for bad arguments.
const USAGE_ERROR: u8 = 2;
/// How long a close after SIGINT/SIGTERM may take before tap exits anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Args {
    options: ConnectOptions,
    transport: Transport,
    echo: bool,
}

/// The arguments, or `None` when help was asked for.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = args.into_iter();
    let mut url = None;
    let mut transport = None;
    let mut headers = BTreeMap::new();
    let mut method = None;
    let mut body = None;
    let mut last_event_id = None;
    let mut max_retries = None;
    let mut protocols = Vec::new();
    let mut max_message_size = None;
    let mut no_reconnect = false;
    let mut echo = false;
    let mut fallback = FallbackOptions::default();
    let mut fallback_given = false;
    let mut only_positional = false;

    fn once<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), String> {
        if slot.is_some() {
            return Err(format!("{flag} is given twice"));
        }
        *slot = Some(value);
        Ok(())
    }

    while let Some(arg) = args.next() {
        if only_positional || !arg.starts_with("--") && arg != "-h" {
            if url.is_some() {
                return Err(format!(
                    "unexpected argument {arg:?}: only one URL is taken"
                ));
            }
            url = Some(arg);
            continue;
        }
        // `--flag value` and `--flag=value` alike.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        match flag.as_str() {
            "--" => only_positional = true,
            "-h" | "--help" => return Ok(None),
            "--transport" => {
                let t = match value()?.as_str() {
                    "websocket" => Transport::Websocket,
                    "sse" => Transport::Sse,
                    "poll" => Transport::Poll,
                    other => {
                        return Err(format!(
                            "--transport takes websocket, sse or poll, not {other:?}"
                        ))
                    }
                };
                once(&mut transport, "--transport", t)?;
            }
            "--header" => {
                let h = value()?;
                let Some((name, v)) = h.split_once(':') else {
                    return Err(format!("--header takes 'Name: value', got {h:?}"));
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(format!("--header {h:?} has no name"));
                }
                if headers
                    .insert(name.to_ascii_lowercase(), v.trim().to_owned())
                    .is_some()
                {
                    return Err(format!("--header {name} is given twice"));
                }
            }
            "--method" => once(&mut method, "--method", value()?)?,
            "--body" => once(&mut body, "--body", value()?)?,
            "--last-event-id" => once(&mut last_event_id, "--last-event-id", value()?)?,
            "--max-retries" => {
                let v = value()?;
                let n = v
                    .parse::<u32>()
                    .map_err(|_| format!("--max-retries takes a whole number, not {v:?}"))?;
                once(&mut max_retries, "--max-retries", n)?;
            }
            "--protocol" => protocols.push(value()?),
            "--max-message-size" => {
                let v = value()?;
                let n = v.parse::<usize>().map_err(|_| {
                    format!("--max-message-size takes a number of bytes, not {v:?}")
                })?;
                once(&mut max_message_size, "--max-message-size", n)?;
            }
            "--poll-url" => {
                fallback_given = true;
                once(&mut fallback.poll_url, "--poll-url", value()?)?;
            }
            "--send-url" => {
                fallback_given = true;
                once(&mut fallback.send_url, "--send-url", value()?)?;
            }
            "--poll-interval-ms" | "--probe-interval-ms" | "--after-failures" => {
                fallback_given = true;
                let v = value()?;
                let n = v
                    .parse::<u64>()
                    .map_err(|_| format!("{flag} takes a whole number, not {v:?}"))?;
                match flag.as_str() {
                    "--poll-interval-ms" => fallback.interval_ms = n,
                    "--probe-interval-ms" => fallback.probe_interval_ms = n,
                    _ => {
                        fallback.after_failures = u32::try_from(n)
                            .map_err(|_| format!("--after-failures is too large: {n}"))?
                    }
                }
            }
            "--no-reconnect" | "--echo" if inline.is_some() => {
                return Err(format!("{flag} takes no value"))
            }
            "--no-reconnect" => no_reconnect = true,
            "--echo" => echo = true,
            _ => return Err(format!("unknown option {flag}")),
        }
    }

    let url = url.ok_or("a URL is required")?;
    let reconnect = match (no_reconnect, max_retries) {
        (true, Some(_)) => return Err("--no-reconnect and --max-retries exclude each other".into()),
        (true, None) => Some(Toggle::Enabled(false)),
        (false, Some(n)) => Some(Toggle::With(ReconnectOptions {
            max_retries: Some(n),
            ..Default::default()
        })),
        (false, None) => None,
    };
    let options = ConnectOptions {
        url,
        transport,
        headers,
        method,
        body,
        last_event_id,
        reconnect,
        protocols,
        max_message_size,
        fallback: fallback_given.then_some(Toggle::With(fallback)),
        // One tap, one upstream: never join another subscription's.
        share: Some(tauri_plugin_realtime_core::Share::Enabled(false)),
        ..Default::default()
    };
    // The engine's own validation, so that a bad URL or header is a usage error (exit 2), not a failure.
    let resolved = options.resolve(&limits()).map_err(|e| e.to_string())?;
    if echo && resolved.transport != Transport::Websocket {
        return Err("--echo needs a WebSocket (ws:// or wss://)".into());
    }
    Ok(Some(Args {
        options,
        transport: resolved.transport,
        echo,
    }))
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
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("tap: {msg}\n\n{USAGE}");
            return ExitCode::from(USAGE_ERROR);
        }
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
    });
    let id = match connected {
        Ok(c) => c.id,
        Err(e @ Error::InvalidOptions(_)) => {
            eprintln!("tap: {e}\n\n{USAGE}");
            return USAGE_ERROR;
        }
        Err(e) => {
            eprintln!("tap: {e}");
            return FAILED;
        }
    };

    if args.transport == Transport::Websocket {
        spawn_stdin_sender(hub.clone(), id.clone());
    }
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
                    break 130;
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
                            match Hub::binary(data) {
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

/// Sends each stdin line as a text message. Stdin is read on a plain thread: a blocking read there never
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
