//! Chaos: proptest generates what a server does on every request it gets (an HTTP status, headers, a body
//! in timed pieces, a WebSocket upgrade answer and raw frames, how it ends) and the options an app connects
//! with, then runs the real engine against a raw TCP server on 127.0.0.1:0 that plays that script.
//!
//! Whatever the server does, the engine must:
//! - never panic (a panic hook records panics on the case's runtime threads, where every engine task runs),
//!   and never report one in a frame or in `inspect`;
//! - end up terminal or still answering: `inspect` answers, sends get a reply, and `close` ends every task;
//! - number the frames 1, 2, 3... with no gap or repeat;
//! - stay bounded: the outbound queue within its limits, two tasks per connection, and no more bytes of
//!   message data delivered than the server wrote;
//! - make the attempts it reports: every stream attempt or poll that ended had reached the server (which
//!   answers one request per connection, so a request is an accepted connection).
//!
//! Bounded: `PROPTEST_CASES` cases (default 32, plus the saved seeds), each on its own runtime, with at most
//! a few seconds of script and observation plus bounded closing waits. Only 127.0.0.1 is ever contacted.

mod common;

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, Once,
    },
    time::Duration,
};

use base64::Engine as _;
use proptest::{collection::vec, option, prelude::*, sample::select, test_runner::TestCaseError};
use tauri_plugin_realtime_core::{
    AllowAll, ChannelSink, ConnectOptions, ConnectRequest, Error, FallbackOptions, Frame,
    HeartbeatOptions, Hub, HubConfig, Outgoing, QueueOptions, ReconnectOptions, State, Toggle,
    Transport,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{tcp::OwnedWriteHalf, TcpListener, TcpStream},
    sync::mpsc,
    time::{sleep, timeout, Instant},
};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

const OWNER: &str = "chaos";
/// Prefix of the runtime threads that run a case: a panic on one of them is the engine's (or the server's).
const ENGINE_THREAD: &str = "chaos-engine-";
const TICK: Duration = Duration::from_millis(10);
/// Longest observation of one case before the outcome is checked.
const OBSERVE: Duration = Duration::from_secs(4);
/// After the last scripted answer has played, time for the engine to react to it.
const AFTER_SCRIPT: Duration = Duration::from_millis(300);
/// No frame and no server activity for this long: nothing more is coming soon.
const QUIET: Duration = Duration::from_millis(500);
/// Time for `close` to end every task; a WebSocket close handshake alone may take 2 s.
const CLOSE_BOUND: Duration = Duration::from_secs(8);
/// Time for a send to be answered (queued, written or refused).
const SEND_BOUND: Duration = Duration::from_secs(5);

fn config() -> ProptestConfig {
    // The environment (PROPTEST_CASES, PROPTEST_MAX_SHRINK_TIME...) wins over these defaults.
    let default = ProptestConfig::default();
    let set = |var: &str| std::env::var_os(var).is_some();
    ProptestConfig {
        cases: if set("PROPTEST_CASES") {
            default.cases
        } else {
            32
        },
        // Every case runs servers and timers, so shrinking is bounded in time as well as in steps.
        max_shrink_iters: if set("PROPTEST_MAX_SHRINK_ITERS") {
            default.max_shrink_iters
        } else {
            512
        },
        max_shrink_time: if set("PROPTEST_MAX_SHRINK_TIME") {
            default.max_shrink_time
        } else {
            20_000
        },
        ..default
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bytes that read well when proptest prints a failing case.

#[derive(Clone, PartialEq)]
struct Bytes(Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.first() {
            Some(&b) if self.0.len() > 8 && self.0.iter().all(|&c| c == b) => {
                write!(f, "b\"{}\" * {}", [b].escape_ascii(), self.0.len())
            }
            _ => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
struct Lit(&'static [u8]);

impl fmt::Debug for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

fn lit(list: &'static [&'static [u8]]) -> impl Strategy<Value = Lit> {
    select(list).prop_map(Lit)
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes)
}

// ---------------------------------------------------------------------------------------------------------
// The script: HTTP answers.

/// Pieces of an event stream (and of other bodies): every field, odd ids and retries, BOM, all line endings.
const BODY_LITS: &[&[u8]] = &[
    b"data: hello\n",
    b"data:x\n",
    b"data\n",
    b"data: \xff\xfe\n",
    b"data: {\"n\":1}\n",
    b"data: ",
    b"event: ping\n",
    b"event:\n",
    b"id: 7\n",
    b"id: a\x01b\n",
    b"id: \x7f\n",
    b"id: x\x00y\n",
    b"id: \xe2\x82\n",
    b"id: caf\xc3\xa9\n",
    b"id:\n",
    b"retry: 0\n",
    b"retry: 10\n",
    b"retry: 86400000\n",
    b"retry: 18446744073709551615\n",
    b"retry: 99999999999999999999\n",
    b"retry: -1\n",
    b": comment\n",
    b":\n",
    b"\xef\xbb\xbf",
    b"\xef",
    b"\xbb\xbf",
    b"\n",
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b"\r\n\r\n",
    b"{\"n\":1}",
    b"\0",
];

/// Answers that are not HTTP at all.
const GARBAGE: &[&[u8]] = &[
    b"HELLO\r\n\r\n",
    b"HTTP/1.1 abc\r\n\r\n",
    b"HTTP/9.9 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"\x00\x01\x02\x03",
    b"\x16\x03\x01\x00\x05hello",
];

#[derive(Clone)]
enum Frag {
    Lit(Lit),
    Raw(Bytes),
    /// A `data:` line of this many bytes, to cross a small `maxMessageSize`.
    Long(usize),
}

impl fmt::Debug for Frag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frag::Lit(l) => l.fmt(f),
            Frag::Raw(b) => write!(f, "raw {b:?}"),
            Frag::Long(n) => write!(f, "b\"data: \" + b\"x\" * {n} + b\"\\n\""),
        }
    }
}

impl Frag {
    fn render(&self, out: &mut Vec<u8>) {
        match self {
            Frag::Lit(l) => out.extend_from_slice(l.0),
            Frag::Raw(b) => out.extend_from_slice(&b.0),
            Frag::Long(n) => {
                out.extend_from_slice(b"data: ");
                out.resize(out.len() + n, b'x');
                out.push(b'\n');
            }
        }
    }
}

fn frag() -> impl Strategy<Value = Frag> {
    prop_oneof![
        12 => lit(BODY_LITS).prop_map(Frag::Lit),
        1 => vec(any::<u8>(), 1..24).prop_map(|b| Frag::Raw(Bytes(b))),
        1 => (100usize..6000).prop_map(Frag::Long),
    ]
}

/// One write of the body, after a short pause.
#[derive(Clone)]
struct Piece {
    delay_ms: u64,
    frags: Vec<Frag>,
}

impl fmt::Debug for Piece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "after {}ms {:?}", self.delay_ms, self.frags)
    }
}

impl Piece {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for fr in &self.frags {
            fr.render(&mut out);
        }
        out
    }
}

fn pieces() -> impl Strategy<Value = Vec<Piece>> {
    vec(
        (0u64..60, vec(frag(), 0..4)).prop_map(|(delay_ms, frags)| Piece { delay_ms, frags }),
        0..6,
    )
}

#[derive(Debug, Clone)]
enum Status {
    Code(u16),
    Garbage(Frag),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// `Content-Length` of everything the pieces hold.
    Length,
    Chunked,
    /// Neither: the body ends when the connection does.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    /// The body is complete (the last chunk, the full length, or a FIN).
    Clean,
    /// RST, no more bytes.
    Reset,
    /// The socket stays open and silent until the case ends.
    Hang,
}

#[derive(Debug, Clone, Copy)]
enum Location {
    Relative,
    Absolute,
}

#[derive(Debug, Clone)]
struct HttpAnswer {
    status: Status,
    content_type: Option<&'static str>,
    retry_after: Option<&'static str>,
    etag: Option<Lit>,
    location: Option<Location>,
    huge_header: Option<usize>,
    framing: Framing,
    body: Vec<Piece>,
    ending: Ending,
}

const RETRY_AFTER: &[&str] = &[
    "0",
    "1",
    "86400",
    "18446744073709551615",
    "-1",
    "abc",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    " 2 ",
    "1.5",
    "",
];

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![4 => Just(Ending::Clean), 2 => Just(Ending::Reset), 1 => Just(Ending::Hang)]
}

fn http_answer() -> impl Strategy<Value = HttpAnswer> {
    let status = prop_oneof![
        7 => Just(Status::Code(200)),
        // The statuses a client retries, where `Retry-After` matters.
        3 => select(&[408u16, 429, 500, 503][..]).prop_map(Status::Code),
        4 => select(&[204u16, 301, 302, 307, 401, 404][..]).prop_map(Status::Code),
        1 => lit(GARBAGE).prop_map(|l| Status::Garbage(Frag::Lit(l))),
        1 => vec(any::<u8>(), 1..40).prop_map(|b| Status::Garbage(Frag::Raw(Bytes(b)))),
    ];
    let content_type = prop_oneof![
        6 => Just(Some("text/event-stream")),
        1 => Just(Some("Text/Event-Stream; charset=utf-8")),
        2 => Just(Some("application/json")),
        2 => Just(None),
    ];
    let retry_after = prop_oneof![1 => Just(None), 2 => select(RETRY_AFTER).prop_map(Some)];
    let etag = option::of(lit(&[b"\"v1\"", b"W/\"v2\"", b"\"\xff\"", b""]));
    let location = option::of(prop_oneof![
        Just(Location::Relative),
        Just(Location::Absolute)
    ]);
    let huge = prop_oneof![6 => Just(None), 1 => Just(Some(8 << 10)), 1 => Just(Some(600 << 10))];
    let framing = prop_oneof![
        Just(Framing::Length),
        Just(Framing::Chunked),
        Just(Framing::UntilClose)
    ];
    (
        status,
        content_type,
        retry_after,
        etag,
        location,
        huge,
        framing,
        pieces(),
        ending(),
    )
        .prop_map(
            |(
                status,
                content_type,
                retry_after,
                etag,
                location,
                huge_header,
                framing,
                body,
                ending,
            )| {
                HttpAnswer {
                    status,
                    content_type,
                    retry_after,
                    etag,
                    location,
                    huge_header,
                    framing,
                    body,
                    ending,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------------------------
// The script: WebSocket answers.

#[derive(Debug, Clone)]
enum Upgrade {
    /// 101, with a correct `Sec-WebSocket-Accept` or a wrong one, and maybe a subprotocol.
    Accept {
        key_ok: bool,
        protocol: Option<&'static str>,
    },
    Refuse {
        status: u16,
        retry_after: Option<&'static str>,
    },
    Garbage(Lit),
}

/// One thing the server writes after the upgrade (server frames are unmasked unless said otherwise).
#[derive(Debug, Clone)]
enum WsOut {
    Text(Bytes),
    Binary(Bytes),
    /// Payloads over 125 bytes are invalid for control frames.
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<u16>, Lit),
    /// A close payload of one byte: invalid.
    CloseOneByte,
    Fragmented {
        text: bool,
        parts: Vec<Bytes>,
        ping_between: bool,
    },
    StrayContinuation(Bytes),
    /// A header that claims `len` bytes, followed by only `sent`.
    Claim {
        opcode: u8,
        len: u64,
        sent: Bytes,
    },
    /// Just a first byte with reserved opcodes or RSV bits, and an empty payload.
    Reserved(u8),
    Masked(Bytes),
    Raw(Bytes),
}

#[derive(Debug, Clone)]
struct WsAnswer {
    upgrade: Upgrade,
    frames: Vec<(u64, WsOut)>,
    ending: Ending,
    reader: Reader,
}

/// What the server does with the client's frames.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reader {
    /// Answers pings and echoes a close, as a WebSocket library does even for a stalled app.
    Responsive,
    /// Reads and ignores everything.
    Silent,
    /// Never reads: the client's writes pile up until its socket buffer is full.
    Deaf,
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => Just(Bytes(b"hello".to_vec())),
        3 => "[a-z ]{0,20}".prop_map(|s| Bytes(s.into_bytes())),
        2 => bytes(32),
        1 => (126usize..5000).prop_map(|n| Bytes(vec![b'x'; n])),
    ]
}

fn ws_out() -> impl Strategy<Value = WsOut> {
    let code = option::of(select(
        &[
            0u16, 999, 1000, 1001, 1002, 1005, 1006, 1011, 1015, 2999, 3000, 4999, 5000, 65535,
        ][..],
    ));
    prop_oneof![
        6 => payload().prop_map(WsOut::Text),
        3 => payload().prop_map(WsOut::Binary),
        2 => bytes(200).prop_map(WsOut::Ping),
        1 => bytes(8).prop_map(WsOut::Pong),
        3 => (code, lit(&[b"", b"bye", b"\xff\xfe"])).prop_map(|(c, r)| WsOut::Close(c, r)),
        1 => Just(WsOut::CloseOneByte),
        2 => (any::<bool>(), vec(payload(), 2..4), any::<bool>()).prop_map(|(text, parts, ping_between)| {
            WsOut::Fragmented { text, parts, ping_between }
        }),
        1 => payload().prop_map(WsOut::StrayContinuation),
        1 => (
            select(&[1u8, 2][..]),
            select(&[1u64 << 16, 1 << 40, 1 << 63, u64::MAX][..]),
            bytes(32),
        )
            .prop_map(|(opcode, len, sent)| WsOut::Claim { opcode, len, sent }),
        1 => select(&[0x83u8, 0x87, 0x8b, 0x8f, 0xc1, 0xa1, 0x91][..]).prop_map(WsOut::Reserved),
        1 => payload().prop_map(WsOut::Masked),
        1 => bytes(24).prop_map(WsOut::Raw),
    ]
}

fn ws_answer() -> impl Strategy<Value = WsAnswer> {
    let upgrade = prop_oneof![
        8 => (option::weighted(0.1, Just("chat"))).prop_map(|protocol| Upgrade::Accept { key_ok: true, protocol }),
        1 => Just(Upgrade::Accept { key_ok: false, protocol: None }),
        2 => (
            select(&[200u16, 301, 400, 401, 403, 404, 408, 426, 429, 500, 503][..]),
            option::of(select(RETRY_AFTER)),
        )
            .prop_map(|(status, retry_after)| Upgrade::Refuse { status, retry_after }),
        1 => lit(GARBAGE).prop_map(Upgrade::Garbage),
    ];
    (
        upgrade,
        vec((0u64..60, ws_out()), 0..6),
        ending(),
        prop_oneof![
            5 => Just(Reader::Responsive),
            2 => Just(Reader::Silent),
            2 => Just(Reader::Deaf),
        ],
    )
        .prop_map(|(upgrade, frames, ending, reader)| WsAnswer {
            upgrade,
            frames,
            ending,
            reader,
        })
}

// ---------------------------------------------------------------------------------------------------------
// The options and the app's own actions.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Websocket,
    Sse,
    Poll,
    /// A URL scheme with a transport that does not go with it: must be refused at connect.
    Mismatch(u8),
}

#[derive(Debug, Clone)]
struct Fallback {
    poll_url: bool,
    interval_ms: u64,
    after_failures: u32,
    probe_interval_ms: u64,
}

#[derive(Debug, Clone)]
struct Opts {
    explicit_transport: bool,
    reconnect: Option<Toggle<ReconnectOptions>>,
    heartbeat: Option<Toggle<HeartbeatOptions>>,
    fallback: Option<Fallback>,
    max_message_size: Option<usize>,
    last_event_id: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    connect_timeout_ms: Option<u64>,
    queue: Option<QueueOptions>,
    protocols: bool,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        5 => Just(Kind::Websocket),
        5 => Just(Kind::Sse),
        2 => Just(Kind::Poll),
        1 => (0u8..3).prop_map(Kind::Mismatch),
    ]
}

/// An interval or timeout in ms: mostly from `lo..hi`, sometimes under 100 ms, down to values below the
/// engine's floor that `connect` may refuse.
fn interval(lo: u64, hi: u64) -> impl Strategy<Value = u64> {
    prop_oneof![1 => 0..100u64, 15 => lo..hi]
}

fn opts() -> impl Strategy<Value = Opts> {
    let reconnect = prop_oneof![
        1 => Just(None),
        2 => Just(Some(Toggle::Enabled(false))),
        7 => (
            interval(100, 300),
            1.0f64..3.0,
            0u64..500,
            0.0f64..1.0,
            option::of(0u32..5),
            0u64..2000,
            any::<bool>(),
        )
            .prop_map(|(initial, multiplier, max, jitter, max_retries, stable, normal)| {
                Some(Toggle::With(ReconnectOptions {
                    initial_delay_ms: initial,
                    multiplier,
                    max_delay_ms: max,
                    jitter,
                    max_retries,
                    stable_after_ms: stable,
                    on_normal_close: normal,
                }))
            }),
    ];
    let heartbeat = prop_oneof![
        1 => Just(None),
        1 => Just(Some(Toggle::Enabled(false))),
        2 => (interval(100, 1000), interval(100, 1000), interval(100, 2000)).prop_map(|(ping, pong, idle)| {
            Some(Toggle::With(HeartbeatOptions {
                ping_interval_ms: ping,
                pong_timeout_ms: pong,
                idle_timeout_ms: idle,
                ..Default::default()
            }))
        }),
    ];
    let fallback = option::weighted(
        0.5,
        (
            any::<bool>(),
            interval(100, 300),
            0u32..4,
            interval(100, 1000),
        )
            .prop_map(
                |(poll_url, interval_ms, after_failures, probe_interval_ms)| Fallback {
                    poll_url,
                    interval_ms,
                    after_failures,
                    probe_interval_ms,
                },
            ),
    );
    let max_message_size = prop_oneof![
        3 => Just(None),
        1 => (1usize..64).prop_map(Some),
        1 => select(&[1024usize, 65536][..]).prop_map(Some),
    ];
    let last_event_id = option::weighted(0.3, select(&["", "1", "abc", "a b", "a\u{1}b", "é"][..]));
    let headers = vec(
        prop_oneof![
            12 => select(
                &[
                    ("x-token", "abc"),
                    ("authorization", "Bearer t"),
                    ("accept", "application/json"),
                    ("x-empty", ""),
                    ("last-event-id", "5"),
                    ("cache-control", "max-age=0"),
                ][..],
            ),
            1 => Just(("bad name", "v")),
        ],
        0..3,
    );
    let connect_timeout = option::of(select(&[1000u64, 3000][..]));
    let queue = option::of(
        (0usize..4, 0usize..64).prop_map(|(max_messages, max_bytes)| QueueOptions {
            max_messages,
            max_bytes,
        }),
    );
    (
        any::<bool>(),
        reconnect,
        heartbeat,
        fallback,
        max_message_size,
        last_event_id,
        headers,
        connect_timeout,
        queue,
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(
                explicit_transport,
                reconnect,
                heartbeat,
                fallback,
                max_message_size,
                last_event_id,
                headers,
                connect_timeout_ms,
                queue,
                protocols,
            )| Opts {
                explicit_transport,
                reconnect,
                heartbeat,
                fallback,
                max_message_size,
                last_event_id,
                headers,
                connect_timeout_ms,
                queue,
                protocols,
            },
        )
}

#[derive(Debug, Clone)]
enum Action {
    Send(&'static str),
    /// `count` sends of `size` bytes each, one after the other, in the background.
    Flood {
        count: usize,
        size: usize,
    },
    Reconnect,
}

#[derive(Debug, Clone, Copy)]
enum After {
    /// Requests past the script are read, then the connection is closed.
    Close,
    /// Requests past the script are read and never answered.
    Hang,
}

#[derive(Debug, Clone)]
struct Case {
    kind: Kind,
    opts: Opts,
    /// Answers to plain HTTP requests (streams, polls, redirect hops), in order.
    http: Vec<HttpAnswer>,
    /// Answers to WebSocket upgrade requests, in order.
    ws: Vec<WsAnswer>,
    after: After,
    /// (ms after connect, what the app does).
    actions: Vec<(u64, Action)>,
}

fn case() -> impl Strategy<Value = Case> {
    let action = prop_oneof![
        3 => select(&["hi", "", "0123456789012345678901234567890123456789"][..]).prop_map(Action::Send),
        // Up to 32 MiB: more than the socket buffers hold, for a server that stops reading.
        1 => (1usize..32, select(&[1usize << 10, 64 << 10, 1 << 20][..]))
            .prop_map(|(count, size)| Action::Flood { count, size }),
        1 => Just(Action::Reconnect),
    ];
    // Flat, not flat-mapped: proptest shrinks each part on its own. Answers no request can reach are
    // dropped afterwards, so that a failing case prints only what played.
    (
        kind(),
        opts(),
        vec(http_answer(), 1..5),
        vec(ws_answer(), 1..5),
        prop_oneof![Just(After::Close), Just(After::Hang)],
        vec((0u64..1000, action), 0..3),
    )
        .prop_map(|(kind, opts, mut http, mut ws, after, mut actions)| {
            match kind {
                Kind::Websocket if opts.fallback.is_none() => http.clear(),
                Kind::Websocket => {}
                Kind::Mismatch(_) => {
                    http.clear();
                    ws.clear();
                }
                Kind::Sse | Kind::Poll => ws.clear(),
            }
            actions.sort_by_key(|(at, _)| *at);
            Case {
                kind,
                opts,
                http,
                ws,
                after,
                actions,
            }
        })
}

impl Case {
    fn connect_options(&self, addr: std::net::SocketAddr) -> ConnectOptions {
        let o = &self.opts;
        let http = format!("http://{addr}");
        let ws = format!("ws://{addr}/ws");
        let pick = |t| o.explicit_transport.then_some(t);
        let (url, transport) = match self.kind {
            Kind::Websocket => (ws, pick(Transport::Websocket)),
            Kind::Sse => (format!("{http}/stream"), pick(Transport::Sse)),
            Kind::Poll => (format!("{http}/stream"), Some(Transport::Poll)),
            Kind::Mismatch(0) => (ws, Some(Transport::Sse)),
            Kind::Mismatch(1) => (ws, Some(Transport::Poll)),
            Kind::Mismatch(_) => (format!("{http}/stream"), Some(Transport::Websocket)),
        };
        ConnectOptions {
            url,
            transport,
            headers: o
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            protocols: if o.protocols && self.kind == Kind::Websocket {
                vec!["chat".into()]
            } else {
                Vec::new()
            },
            last_event_id: o.last_event_id.map(str::to_owned),
            reconnect: o.reconnect.clone(),
            heartbeat: o.heartbeat.clone(),
            queue: o.queue.clone(),
            fallback: o.fallback.as_ref().map(|f| {
                Toggle::With(FallbackOptions {
                    poll_url: f.poll_url.then(|| format!("{http}/poll")),
                    send_url: None,
                    interval_ms: f.interval_ms,
                    after_failures: f.after_failures,
                    probe_interval_ms: f.probe_interval_ms,
                })
            }),
            max_message_size: o.max_message_size,
            connect_timeout_ms: o.connect_timeout_ms,
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Panics on the engine's threads.

/// (thread name, message and location) of every panic on a case runtime's threads.
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static CASE_NUMBER: AtomicUsize = AtomicUsize::new(0);

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if !name.starts_with(ENGINE_THREAD) {
                // The proptest thread: a failing check, reported by proptest itself.
                return previous(info);
            }
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string payload)".into());
            let at = info.location().map(|l| l.to_string()).unwrap_or_default();
            eprintln!("chaos: panic on {name}: {msg} at {at}");
            PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((name.to_owned(), format!("{msg} at {at}")));
        }));
    });
}

fn panics_on(thread: &str) -> Vec<String> {
    PANICS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(t, _)| t == thread)
        .map(|(_, m)| m.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// The server that plays the script.

struct Script {
    http: Mutex<VecDeque<HttpAnswer>>,
    ws: Mutex<VecDeque<WsAnswer>>,
    after: After,
    port: u16,
    stop: CancellationToken,
    /// Requests that reached the server: one per accepted connection.
    reached: AtomicU64,
    /// Every byte the server wrote, counted before the write so that the client cannot see a byte first.
    written: AtomicU64,
    /// Scripted answers being played now.
    playing: AtomicUsize,
    last_activity: Mutex<Instant>,
    /// When the last scripted answer finished playing.
    exhausted_at: Mutex<Option<Instant>>,
}

impl Script {
    fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn last_activity(&self) -> Instant {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn exhausted_at(&self) -> Option<Instant> {
        *self.exhausted_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_exhausted(&self) {
        let empty = self
            .http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            && self.ws.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        if empty && self.playing.load(Ordering::SeqCst) == 0 {
            self.exhausted_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(Instant::now);
        }
    }

    fn done_playing(&self) {
        self.playing.fetch_sub(1, Ordering::SeqCst);
        self.check_exhausted();
    }

    /// Writes everything, counting it; false when the client is gone.
    async fn put<W: AsyncWriteExt + Unpin>(&self, w: &mut W, bytes: &[u8]) -> bool {
        self.written.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        let ok = w.write_all(bytes).await.is_ok();
        self.touch();
        ok
    }
}

async fn start_server(case: &Case) -> Result<Arc<Script>, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let script = Arc::new(Script {
        http: Mutex::new(case.http.iter().cloned().collect()),
        ws: Mutex::new(case.ws.iter().cloned().collect()),
        after: case.after,
        port,
        stop: CancellationToken::new(),
        reached: AtomicU64::new(0),
        written: AtomicU64::new(0),
        playing: AtomicUsize::new(0),
        last_activity: Mutex::new(Instant::now()),
        exhausted_at: Mutex::new(None),
    });
    script.check_exhausted();
    let s = script.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = s.stop.cancelled() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((tcp, _)) => {
                    s.reached.fetch_add(1, Ordering::SeqCst);
                    s.touch();
                    let s = s.clone();
                    tokio::spawn(async move {
                        let stop = s.stop.clone();
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = serve_connection(tcp, s) => {}
                        }
                    });
                }
                // Out of descriptors, say: wait a little rather than spin.
                Err(_) => sleep(TICK).await,
            }
        }
    });
    Ok(script)
}

/// One request per connection: every answer says `connection: close`, so the client never reuses a socket
/// the script is about to break, and every request it makes is an accepted connection.
async fn serve_connection(mut tcp: TcpStream, s: Arc<Script>) {
    let _ = tcp.set_nodelay(true);
    let Some(head) = read_head(&mut tcp).await else {
        return;
    };
    s.touch();
    let upgrade = String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("upgrade: websocket");
    if upgrade {
        let answer = s.ws.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        let Some(answer) = answer else {
            return after_script(tcp, &s).await;
        };
        s.playing.fetch_add(1, Ordering::SeqCst);
        return play_ws(tcp, &head, &answer, &s).await;
    }
    let answer = s.http.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    let Some(answer) = answer else {
        return after_script(tcp, &s).await;
    };
    s.playing.fetch_add(1, Ordering::SeqCst);
    let hang = play_http(&mut tcp, &answer, &s).await;
    s.done_playing();
    if hang {
        drain(&mut tcp).await;
    }
}

async fn after_script(mut tcp: TcpStream, s: &Script) {
    match s.after {
        After::Close => {}
        After::Hang => drain(&mut tcp).await,
    }
}

/// Reads and discards until the client goes away.
async fn drain<R: AsyncRead + Unpin>(r: &mut R) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// A request head up to its blank line (at most 64 KiB); `None` when the client closes first.
async fn read_head(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(head);
        }
        if head.len() > 64 << 10 {
            return None;
        }
    }
}

fn reason_phrase(code: u16) -> &'static str {
    http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Whatever")
}

/// Plays one answer; true when the script says to hang on to the socket.
async fn play_http(tcp: &mut TcpStream, a: &HttpAnswer, s: &Script) -> bool {
    let mut head = Vec::new();
    let garbage = match &a.status {
        Status::Garbage(g) => {
            g.render(&mut head);
            true
        }
        Status::Code(code) => {
            head.extend_from_slice(
                format!(
                    "HTTP/1.1 {code} {}\r\nconnection: close\r\n",
                    reason_phrase(*code)
                )
                .as_bytes(),
            );
            if let Some(ct) = a.content_type {
                head.extend_from_slice(format!("content-type: {ct}\r\n").as_bytes());
            }
            if let Some(ra) = a.retry_after {
                head.extend_from_slice(format!("retry-after: {ra}\r\n").as_bytes());
            }
            if let Some(tag) = a.etag {
                head.extend_from_slice(b"etag: ");
                head.extend_from_slice(tag.0);
                head.extend_from_slice(b"\r\n");
            }
            match a.location {
                Some(Location::Relative) => head.extend_from_slice(b"location: /moved\r\n"),
                Some(Location::Absolute) => head.extend_from_slice(
                    format!("location: http://127.0.0.1:{}/moved\r\n", s.port).as_bytes(),
                ),
                None => {}
            }
            if let Some(n) = a.huge_header {
                head.extend_from_slice(b"x-padding: ");
                head.resize(head.len() + n, b'a');
                head.extend_from_slice(b"\r\n");
            }
            match a.framing {
                Framing::Length => {
                    let len: usize = a.body.iter().map(|p| p.bytes().len()).sum();
                    head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
                }
                Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
                Framing::UntilClose => {}
            }
            head.extend_from_slice(b"\r\n");
            false
        }
    };
    if !s.put(tcp, &head).await {
        return false;
    }
    let chunked = !garbage && a.framing == Framing::Chunked;
    for piece in &a.body {
        if piece.delay_ms > 0 {
            sleep(Duration::from_millis(piece.delay_ms)).await;
        }
        let bytes = piece.bytes();
        let mut out = Vec::with_capacity(bytes.len() + 16);
        if chunked {
            // An empty chunk would end the body early.
            if bytes.is_empty() {
                continue;
            }
            out.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
            out.extend_from_slice(&bytes);
            out.extend_from_slice(b"\r\n");
        } else {
            out = bytes;
        }
        if !s.put(tcp, &out).await {
            return false;
        }
    }
    match a.ending {
        Ending::Clean => {
            if chunked {
                s.put(tcp, b"0\r\n\r\n").await;
            }
            let _ = tcp.shutdown().await;
            false
        }
        Ending::Reset => {
            let _ = tcp.set_zero_linger();
            false
        }
        Ending::Hang => true,
    }
}

fn header_value(head: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(head).lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A frame with the given first byte; masked when `mask` is set.
fn ws_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

impl WsOut {
    fn encode(&self) -> Vec<u8> {
        match self {
            WsOut::Text(p) => ws_frame(0x81, &p.0, None),
            WsOut::Binary(p) => ws_frame(0x82, &p.0, None),
            WsOut::Ping(p) => ws_frame(0x89, &p.0, None),
            WsOut::Pong(p) => ws_frame(0x8a, &p.0, None),
            WsOut::Close(code, reason) => {
                let mut payload = Vec::new();
                if let Some(c) = code {
                    payload.extend_from_slice(&c.to_be_bytes());
                    payload.extend_from_slice(reason.0);
                }
                ws_frame(0x88, &payload, None)
            }
            WsOut::CloseOneByte => ws_frame(0x88, &[3], None),
            WsOut::Fragmented {
                text,
                parts,
                ping_between,
            } => {
                let mut out = Vec::new();
                let last = parts.len() - 1;
                for (i, p) in parts.iter().enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => 1,
                        (0, false) => 2,
                        _ => 0,
                    };
                    let fin = if i == last { 0x80 } else { 0 };
                    out.extend(ws_frame(fin | opcode, &p.0, None));
                    if i == 0 && *ping_between {
                        out.extend(ws_frame(0x89, b"", None));
                    }
                }
                out
            }
            WsOut::StrayContinuation(p) => ws_frame(0x80, &p.0, None),
            WsOut::Claim { opcode, len, sent } => {
                let mut out = vec![0x80 | opcode, 127];
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&sent.0);
                out
            }
            WsOut::Reserved(b0) => vec![*b0, 0],
            WsOut::Masked(p) => ws_frame(0x81, &p.0, Some([1, 2, 3, 4])),
            WsOut::Raw(b) => b.0.clone(),
        }
    }
}

async fn play_ws(mut tcp: TcpStream, head: &[u8], a: &WsAnswer, s: &Arc<Script>) {
    let answer = match &a.upgrade {
        Upgrade::Accept { key_ok, protocol } => {
            let key = header_value(head, "sec-websocket-key").unwrap_or_default();
            let accept = if *key_ok {
                derive_accept_key(key.as_bytes())
            } else {
                derive_accept_key(b"not the key")
            };
            let mut h = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n"
            );
            if let Some(p) = protocol {
                h.push_str(&format!("sec-websocket-protocol: {p}\r\n"));
            }
            h.push_str("\r\n");
            h.into_bytes()
        }
        Upgrade::Refuse {
            status,
            retry_after,
        } => {
            let mut h = format!(
                "HTTP/1.1 {status} {}\r\ncontent-length: 0\r\n",
                reason_phrase(*status)
            );
            if let Some(ra) = retry_after {
                h.push_str(&format!("retry-after: {ra}\r\n"));
            }
            h.push_str("\r\n");
            h.into_bytes()
        }
        Upgrade::Garbage(g) => g.0.to_vec(),
    };
    let upgraded = matches!(a.upgrade, Upgrade::Accept { .. });
    if !s.put(&mut tcp, &answer).await || !upgraded {
        s.done_playing();
        if upgraded {
            return;
        }
        let _ = tcp.shutdown().await;
        return drain(&mut tcp).await;
    }
    if a.ending == Ending::Reset {
        let _ = tcp.set_zero_linger();
    }
    let (mut rd, wr) = tcp.into_split();
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let reader = {
        let (wr, s, mode) = (wr.clone(), s.clone(), a.reader);
        async move {
            if mode == Reader::Deaf {
                return std::future::pending().await;
            }
            read_client_frames(&mut rd, &wr, &s, mode == Reader::Responsive).await
        }
    };
    let writer = async {
        for (delay, frame) in &a.frames {
            if *delay > 0 {
                sleep(Duration::from_millis(*delay)).await;
            }
            let bytes = frame.encode();
            if !s.put(&mut *wr.lock().await, &bytes).await {
                break;
            }
        }
        s.done_playing();
    };
    tokio::pin!(reader, writer);
    // The reader runs beside the writer (it answers pings and closes); the script decides when to stop.
    tokio::select! {
        _ = &mut reader => {
            writer.await;
            return;
        }
        _ = &mut writer => {}
    }
    match a.ending {
        Ending::Clean => {
            let _ = wr.lock().await.shutdown().await;
            reader.await;
        }
        // Dropping both halves with a zero linger sends the RST.
        Ending::Reset => {}
        Ending::Hang => reader.await,
    }
}

/// Reads the client's (masked) frames until it goes away; when `responsive`, answers pings and echoes a
/// close.
async fn read_client_frames(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    wr: &tokio::sync::Mutex<OwnedWriteHalf>,
    s: &Script,
    responsive: bool,
) {
    loop {
        let mut h = [0u8; 2];
        if rd.read_exact(&mut h).await.is_err() {
            return;
        }
        let opcode = h[0] & 0x0f;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            if rd.read_exact(&mut b).await.is_err() {
                return;
            }
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            if rd.read_exact(&mut b).await.is_err() {
                return;
            }
            len = u64::from_be_bytes(b);
        }
        if len > 1 << 20 {
            return drain(rd).await;
        }
        let mut key = [0u8; 4];
        if h[1] & 0x80 != 0 && rd.read_exact(&mut key).await.is_err() {
            return;
        }
        let mut payload = vec![0u8; len as usize];
        if rd.read_exact(&mut payload).await.is_err() {
            return;
        }
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
        if !responsive {
            continue;
        }
        match opcode {
            9 => {
                let pong = ws_frame(0x8a, &payload, None);
                if !s.put(&mut *wr.lock().await, &pong).await {
                    return;
                }
            }
            8 => {
                let echo = ws_frame(0x88, &payload[..payload.len().min(2)], None);
                let mut w = wr.lock().await;
                let _ = s.put(&mut *w, &echo).await;
                let _ = w.shutdown().await;
                drop(w);
                return drain(rd).await;
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// What the subscriber saw, checked frame by frame.

struct Watch {
    rx: mpsc::UnboundedReceiver<Vec<Arc<Frame>>>,
    frames: Vec<Frame>,
    last_frame_at: Instant,
    next_seq: u64,
    state: Option<State>,
    /// A `connecting` whose outcome has not been seen yet.
    in_attempt: bool,
    /// Stream attempts and polls that ended with an outcome: each one must have reached the server.
    attempts_ended: u64,
    /// Bytes of message data delivered (binary decoded, each U+FFFD counted as the one byte it replaced).
    delivered: u64,
    /// A fatal error frame, waiting for its `failed`.
    fatal_pending: bool,
    /// The app asked for a reconnect: frames after a terminal state are then expected.
    reconnects: usize,
}

fn text_bytes(s: &str) -> u64 {
    s.chars()
        .map(|c| {
            if c == '\u{FFFD}' {
                1
            } else {
                c.len_utf8() as u64
            }
        })
        .sum()
}

fn mentions_panic(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    s.contains("panicked") || s.contains("internal error")
}

/// A compact line per frame, for failure messages.
fn short(f: &Frame) -> String {
    let cut = |s: &str| -> String {
        match s.char_indices().nth(200) {
            Some((i, _)) => format!("{}...", &s[..i]),
            None => s.to_owned(),
        }
    };
    match f {
        Frame::State {
            seq,
            state,
            reason,
            delay_ms,
            ..
        } => format!(
            "{seq} state {} {}{}",
            state.name(),
            delay_ms.map(|d| format!("in {d}ms ")).unwrap_or_default(),
            cut(reason.as_deref().unwrap_or(""))
        ),
        Frame::Message { seq, data, .. } => format!("{seq} message {}", cut(&format!("{data:?}"))),
        Frame::Error {
            seq,
            message,
            fatal,
        } => format!("{seq} error fatal={fatal} {}", cut(message)),
        Frame::Close { seq, code, reason } => format!("{seq} close {code} {}", cut(reason)),
    }
}

impl Watch {
    fn new(rx: mpsc::UnboundedReceiver<Vec<Arc<Frame>>>) -> Self {
        Self {
            rx,
            frames: Vec::new(),
            last_frame_at: Instant::now(),
            next_seq: 1,
            state: None,
            in_attempt: false,
            attempts_ended: 0,
            delivered: 0,
            fatal_pending: false,
            reconnects: 0,
        }
    }

    fn tail(&self) -> String {
        let from = self.frames.len().saturating_sub(12);
        let mut out = format!("last frames ({} in all):", self.frames.len());
        for f in &self.frames[from..] {
            out.push_str("\n    ");
            out.push_str(&short(f));
        }
        out
    }

    fn fail(&self, what: String) -> String {
        format!("{what}\n  {}", self.tail())
    }

    /// Takes every frame delivered so far and checks it.
    fn drain(&mut self) -> Result<(), String> {
        while let Ok(batch) = self.rx.try_recv() {
            self.last_frame_at = Instant::now();
            for f in batch {
                self.frames.push((*f).clone());
                self.check(&f)?;
            }
        }
        Ok(())
    }

    fn check(&mut self, f: &Frame) -> Result<(), String> {
        if f.seq() != self.next_seq {
            return Err(self.fail(format!(
                "seq not contiguous: expected {}, got {}",
                self.next_seq,
                f.seq()
            )));
        }
        self.next_seq += 1;
        if self.state.is_some_and(State::is_terminal) && self.reconnects == 0 {
            return Err(
                self.fail("a frame after a terminal state, with no reconnect asked for".into())
            );
        }
        if std::mem::take(&mut self.fatal_pending)
            && !matches!(
                f,
                Frame::State {
                    state: State::Failed,
                    ..
                }
            )
        {
            return Err(self.fail("a fatal error not followed by `failed`".into()));
        }
        match f {
            Frame::State {
                state,
                reason,
                snapshot,
                ..
            } => {
                if *snapshot {
                    return Err(self.fail("a snapshot frame for the only subscriber".into()));
                }
                if reason.as_deref().is_some_and(mentions_panic) {
                    return Err(self.fail("a state reason reports a panic".into()));
                }
                if *state == State::Connecting {
                    self.in_attempt = true;
                } else {
                    let by_app = *state == State::Disconnected
                        && matches!(
                            reason.as_deref(),
                            Some("closed by the app" | "the app is exiting")
                        );
                    if self.in_attempt && !by_app {
                        self.attempts_ended += 1;
                    }
                    self.in_attempt = false;
                }
                self.state = Some(*state);
            }
            Frame::Message { data, binary, .. } => {
                self.delivered += if *binary {
                    match base64::engine::general_purpose::STANDARD.decode(data) {
                        Ok(b) => b.len() as u64,
                        Err(e) => return Err(self.fail(format!("binary data is not base64: {e}"))),
                    }
                } else {
                    text_bytes(data)
                };
            }
            Frame::Error { message, fatal, .. } => {
                if mentions_panic(message) {
                    return Err(self.fail("an error frame reports a panic".into()));
                }
                if message.trim().is_empty() {
                    return Err(self.fail("an error frame without a message".into()));
                }
                if *fatal {
                    self.fatal_pending = true;
                } else if self.state == Some(State::Polling) && message.starts_with("poll") {
                    // A failed poll: it went out to the server.
                    self.attempts_ended += 1;
                }
            }
            Frame::Close { .. } => {}
        }
        Ok(())
    }

    /// The invariants that compare with the server.
    fn against(&self, s: &Script) -> Result<(), String> {
        // Read after the frames: the server counted a request before it could answer it.
        let reached = s.reached.load(Ordering::SeqCst);
        if self.attempts_ended > reached {
            return Err(self.fail(format!(
                "{} attempts ended with an outcome, but only {reached} requests reached the server: \
                 attempts fail without being made",
                self.attempts_ended
            )));
        }
        let written = s.written.load(Ordering::SeqCst);
        if self.delivered > written {
            return Err(self.fail(format!(
                "{} bytes of message data delivered, but the server wrote only {written}",
                self.delivered
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------
// One case.

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    install_panic_hook();
    let thread = format!(
        "{ENGINE_THREAD}{}",
        CASE_NUMBER.fetch_add(1, Ordering::SeqCst)
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(thread.clone())
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
    let result = rt.block_on(drive(case, &thread));
    rt.shutdown_timeout(Duration::from_secs(1));
    let panics = panics_on(&thread);
    if !panics.is_empty() {
        // Found after the case ended; one found during the case is already in `result`, with its frames.
        return Err(TestCaseError::fail(match result {
            Err(e) if e.contains("panicked") => e,
            _ => format!("the engine panicked: {}", panics.join("; ")),
        }));
    }
    result.map_err(TestCaseError::fail)
}

async fn drive(case: &Case, thread: &str) -> Result<(), String> {
    let server = start_server(case).await?;
    let result = observe(case, thread, &server).await;
    server.stop.cancel();
    result
}

async fn observe(case: &Case, thread: &str, server: &Arc<Script>) -> Result<(), String> {
    let port = server.port;
    let options = case.connect_options(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let queue_limits = options.queue.clone().unwrap_or_default();
    let hub: Hub = common::hub_with(HubConfig {
        linger: Duration::ZERO,
        ..Default::default()
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let connected = hub.connect(ConnectRequest {
        id: None,
        options,
        owner: OWNER.into(),
        sink: Arc::new(ChannelSink(tx)),
        guard: Arc::new(AllowAll),
        cookies: None,
    });
    let id = match connected {
        Err(Error::InvalidOptions(msg)) => {
            if msg.trim().is_empty() || mentions_panic(&msg) {
                return Err(format!("connect refused with a useless message: {msg:?}"));
            }
            return shut_down(&hub).await;
        }
        Err(e) => {
            return Err(format!(
                "connect failed with {e:?}; only InvalidOptions may refuse options"
            ))
        }
        Ok(_) if matches!(case.kind, Kind::Mismatch(_)) => {
            return Err("a transport that does not go with the URL scheme was accepted".into())
        }
        Ok(c) => c.id,
    };

    let mut watch = Watch::new(rx);
    let started = Instant::now();
    let mut actions: VecDeque<(u64, Action)> = case.actions.iter().cloned().collect();
    let mut floods = Vec::new();
    let engine_panicked = || {
        let p = panics_on(thread);
        (!p.is_empty()).then(|| format!("the engine panicked: {}", p.join("; ")))
    };

    loop {
        watch.drain()?;
        if let Some(p) = engine_panicked() {
            return Err(watch.fail(p));
        }
        watch.against(server)?;
        check_inspect(&hub, &id, &queue_limits, &watch)?;

        while let Some((at, _)) = actions.front() {
            if started + Duration::from_millis(*at) > Instant::now() {
                break;
            }
            let Some((_, action)) = actions.pop_front() else {
                break;
            };
            match action {
                Action::Send(text) => {
                    let sent = timeout(
                        SEND_BOUND,
                        hub.send(&id, OWNER, Outgoing::Text(text.into())),
                    )
                    .await;
                    match sent {
                        Err(_) => {
                            return Err(
                                watch.fail(format!("a send got no answer within {SEND_BOUND:?}"))
                            )
                        }
                        Ok(Err(e)) if mentions_panic(&e.to_string()) => {
                            return Err(watch.fail(format!("a send failed with {e}")))
                        }
                        Ok(_) => {}
                    }
                }
                Action::Flood { count, size } => {
                    let (hub, id) = (hub.clone(), id.clone());
                    floods.push(tokio::spawn(async move {
                        for i in 0..count {
                            let mut text = format!("{i:08}");
                            text.extend(std::iter::repeat_n('f', size.saturating_sub(8)));
                            if let Err(e) = hub.send(&id, OWNER, Outgoing::Text(text)).await {
                                if mentions_panic(&e.to_string()) {
                                    return Err(format!("a send failed with {e}"));
                                }
                            }
                        }
                        Ok(())
                    }));
                }
                Action::Reconnect => {
                    watch.reconnects += 1;
                    if let Err(e) = hub.reconnect(&id, OWNER) {
                        return Err(watch.fail(format!("reconnect refused while subscribed: {e}")));
                    }
                }
            }
            check_inspect(&hub, &id, &queue_limits, &watch)?;
        }

        let now = Instant::now();
        let quiet_since = watch.last_frame_at.max(server.last_activity());
        let settled = actions.is_empty()
            && ((watch.state.is_some_and(State::is_terminal)
                && now > quiet_since + Duration::from_millis(150))
                || server
                    .exhausted_at()
                    .is_some_and(|t| now > t + AFTER_SCRIPT)
                || now > quiet_since + QUIET);
        if settled || now > started + OBSERVE {
            break;
        }
        sleep(TICK).await;
    }

    // Terminal or live: either way it answers, and `close` ends it.
    watch.drain()?;
    watch.against(server)?;
    let info = check_inspect(&hub, &id, &queue_limits, &watch)?;
    if let Some(s) = watch.state.filter(|s| s.is_terminal()) {
        if watch.reconnects == 0 && info.state != s {
            return Err(watch.fail(format!(
                "the last frame says {}, inspect says {}",
                s.name(),
                info.state.name()
            )));
        }
    }
    if let Err(e) = hub.close(&id, OWNER, None, None) {
        return Err(watch.fail(format!("close refused: {e}")));
    }
    let closing = Instant::now();
    while hub.live_tasks() > 0 {
        if let Some(p) = engine_panicked() {
            return Err(watch.fail(p));
        }
        if closing.elapsed() > CLOSE_BOUND {
            return Err(watch.fail(format!(
                "close did not end the connection within {CLOSE_BOUND:?}: {} tasks left (state was {:?})",
                hub.live_tasks(),
                watch.state
            )));
        }
        sleep(TICK).await;
    }
    match hub.inspect(Some(OWNER), Some(&id)) {
        Err(Error::UnknownConnection(_)) => {}
        other => return Err(watch.fail(format!("inspect after close: {other:?}"))),
    }
    // Sends still waiting for room are answered once the connection is gone.
    for flood in floods {
        match timeout(CLOSE_BOUND, flood).await {
            Err(_) => {
                return Err(watch.fail(format!(
                    "a send still had no answer {CLOSE_BOUND:?} after close"
                )))
            }
            Ok(Err(e)) => return Err(watch.fail(format!("the sending task failed: {e}"))),
            Ok(Ok(Err(e))) => return Err(watch.fail(e)),
            Ok(Ok(Ok(()))) => {}
        }
    }
    watch.drain()?;
    watch.against(server)?;
    shut_down(&hub).await
}

async fn shut_down(hub: &Hub) -> Result<(), String> {
    if !hub.shutdown(Duration::from_secs(3)).await {
        return Err(format!(
            "shutdown left {} tasks after 3 s",
            hub.live_tasks()
        ));
    }
    if hub.live_tasks() != 0 {
        return Err(format!("{} tasks alive after shutdown", hub.live_tasks()));
    }
    Ok(())
}

/// `inspect` answers, within the queue limits, with the connection's two tasks alive.
fn check_inspect(
    hub: &Hub,
    id: &str,
    limits: &QueueOptions,
    watch: &Watch,
) -> Result<tauri_plugin_realtime_core::ConnectionInfo, String> {
    let infos = hub
        .inspect(Some(OWNER), Some(id))
        .map_err(|e| watch.fail(format!("inspect failed while subscribed: {e}")))?;
    let [info] = <[_; 1]>::try_from(infos)
        .map_err(|v| watch.fail(format!("inspect gave {} entries for one id", v.len())))?;
    if info.queued > limits.max_messages || info.queued_bytes > limits.max_bytes {
        return Err(watch.fail(format!(
            "queue over its limits: {} messages / {} bytes held, limits {} / {}",
            info.queued, info.queued_bytes, limits.max_messages, limits.max_bytes
        )));
    }
    if info.last_error.as_deref().is_some_and(mentions_panic) {
        return Err(watch.fail(format!("inspect reports a panic: {:?}", info.last_error)));
    }
    // The connection task and the delivery task, no more (nothing leaks per attempt) and no fewer (the
    // connection task does not end while subscribed).
    if info.tasks != 2 || hub.live_tasks() != 2 {
        return Err(watch.fail(format!(
            "{} tasks for the connection ({} in the hub), expected 2: state {}",
            info.tasks,
            hub.live_tasks(),
            info.state.name()
        )));
    }
    Ok(info)
}

proptest! {
    #![proptest_config(config())]

    /// A generated server script against generated options: no panic, terminal or live, contiguous seq,
    /// bounded memory.
    #[test]
    fn engine_survives_generated_servers(case in case()) {
        run_case(&case)?;
    }
}
