//! Property tests: the SSE parser and the option parsing never panic on any input, the parser does not care
//! how its input is cut into chunks, it reads generated well-formed streams back exactly, a resolved option set
//! always pairs its URL scheme with a matching transport, and the compact batch encoding reads back exactly.
//!
//! Bounded: 256 cases per property, inputs of a few hundred bytes; the whole file runs in a few seconds.

use std::collections::BTreeMap;

use proptest::{collection::vec, prelude::*, sample::Index};
use serde_json::{json, Map, Value};
use tauri_plugin_realtime_core::{
    testing::is_forbidden_header,
    testing::{SseError, SseEvent, SseParser},
    wire, ConnectOptions, Frame, Limits, Transport,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Shrinking stays bounded as well.
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

// ---------------------------------------------------------------------------------------------------------
// The SSE parser.

/// Everything observable after feeding some chunks.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<SseEvent>,
    error: Option<SseError>,
    retry: Option<u64>,
    last_id: String,
}

fn feed_all(max: usize, chunks: &[&[u8]]) -> Outcome {
    let mut parser = SseParser::new(max);
    let mut events = Vec::new();
    let mut error = None;
    for chunk in chunks {
        if let Err(e) = parser.feed(chunk, &mut events) {
            error = Some(e);
            break;
        }
    }
    Outcome {
        events,
        error,
        retry: parser.take_retry(),
        last_id: parser.last_event_id().to_owned(),
    }
}

/// Cuts `bytes` at the given points (any number, any order, duplicates allowed: empty chunks too).
fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::with_capacity(at.len() + 1);
    let mut from = 0;
    for to in at {
        chunks.push(&bytes[from..to]);
        from = to;
    }
    chunks.push(&bytes[from..]);
    chunks
}

/// Bytes that look like an event stream often enough to reach every branch of the parser: field names,
/// colons, spaces, all three line endings, BOM pieces, NUL, digits, invalid UTF-8 and random bytes.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => Just(b"data".to_vec()),
        3 => Just(b"data: ".to_vec()),
        2 => Just(b"\n\n".to_vec()),
        2 => Just(b"event".to_vec()),
        2 => Just(b"id".to_vec()),
        2 => Just(b"retry".to_vec()),
        4 => Just(b":".to_vec()),
        3 => Just(b" ".to_vec()),
        5 => Just(b"\n".to_vec()),
        4 => Just(b"\r".to_vec()),
        3 => Just(b"\r\n".to_vec()),
        1 => Just(BOM.to_vec()),
        1 => Just(BOM[..1].to_vec()),
        1 => Just(b"\0".to_vec()),
        2 => "[0-9]{1,4}".prop_map(String::into_bytes),
        1 => Just(b"\xff\xfe\xc3".to_vec()),
        1 => Just("é€😀".as_bytes().to_vec()),
        4 => vec(any::<u8>(), 1..6),
        3 => "[a-z ]{1,6}".prop_map(String::into_bytes),
    ];
    vec(piece, 0..64).prop_map(|pieces| pieces.concat())
}

fn max_size() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(1 << 20), 1 => 1usize..48]
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes, cut anywhere: no panic, and exactly what feeding the whole input at once gives (events,
    /// the error if any, `retry`, the last event id).
    #[test]
    fn sse_chunking_never_changes_the_outcome(
        bytes in stream_bytes(),
        cuts in vec(any::<Index>(), 0..12),
        max in max_size(),
    ) {
        let whole = feed_all(max, &[&bytes]);
        let chunked = feed_all(max, &split(&bytes, &cuts));
        prop_assert_eq!(&chunked, &whole);
        // Byte by byte is the finest cut of all.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&feed_all(max, &singles), &whole);

        for ev in &whole.events {
            prop_assert!(ev.data.len() <= max, "data over the limit: {:?}", ev);
            prop_assert!(!ev.event.is_empty());
            prop_assert!(!ev.event.contains(['\r', '\n']));
            prop_assert!(!ev.last_event_id.contains(['\0', '\r', '\n']), "bad id in {:?}", ev);
        }
        prop_assert!(!whole.last_id.contains(['\0', '\r', '\n']));
    }

    /// After an error the parser refuses everything until `reset_stream`, then parses a fresh stream as a
    /// new parser would (apart from the last event id, which it keeps).
    #[test]
    fn sse_parser_recovers_after_reset(
        bytes in stream_bytes(),
        max in max_size(),
    ) {
        let mut parser = SseParser::new(max);
        let mut events = Vec::new();
        if parser.feed(&bytes, &mut events).is_err() {
            prop_assert!(parser.feed(b"data: x\n\n", &mut events).is_err());
        }
        parser.reset_stream();
        let mut after = Vec::new();
        let fresh = parser.feed(b"data: x\n\n", &mut after);
        if max >= 7 {
            prop_assert!(fresh.is_ok());
            prop_assert_eq!(after.len(), 1);
            prop_assert_eq!(&after[0].data, "x");
        } else {
            prop_assert_eq!(fresh, Err(SseError::TooLarge { limit: max }));
        }
    }
}

/// One generated event block.
#[derive(Debug, Clone)]
struct Block {
    comment: Option<String>,
    unknown_field: bool,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
    id_first: bool,
    retry: Option<u64>,
    /// How each data line is written when that is possible: `data: v`, `data:v`, or bare `data` (empty).
    style: u8,
}

fn block() -> impl Strategy<Value = Block> {
    (
        proptest::option::weighted(0.3, "[^\r\n]{0,10}"),
        proptest::bool::weighted(0.2),
        proptest::option::weighted(0.4, "[A-Za-z0-9_.\\-]{1,8}"),
        vec("[^\r\n]{0,12}", 0..4),
        proptest::option::weighted(0.5, "[^\\r\\n\\x00]{0,8}"),
        any::<bool>(),
        proptest::option::weighted(0.2, any::<u64>()),
        0u8..3,
    )
        .prop_map(
            |(comment, unknown_field, event, data, id, id_first, retry, style)| Block {
                comment,
                unknown_field,
                event,
                data,
                id,
                id_first,
                retry,
                style,
            },
        )
}

/// Writes lines with the chosen line endings (0: LF, 1: CR, 2: CRLF). A blank line after a CR is never
/// written as a lone LF, which would read as the second half of a CRLF.
struct Writer<'a> {
    out: Vec<u8>,
    eols: &'a [u8],
    n: usize,
    after_cr: bool,
}

impl Writer<'_> {
    fn line(&mut self, text: &[u8]) {
        let mut eol: &[u8] = match self.eols[self.n % self.eols.len()] {
            0 => b"\n",
            1 => b"\r",
            _ => b"\r\n",
        };
        self.n += 1;
        if text.is_empty() && self.after_cr && eol == b"\n" {
            eol = b"\r\n";
        }
        self.out.extend_from_slice(text);
        self.out.extend_from_slice(eol);
        self.after_cr = eol == b"\r";
    }
}

/// The stream and what a conforming parser must read from it: (events, last `retry`).
fn render(
    blocks: &[Block],
    bom: bool,
    eols: &[u8],
    tail: Option<&str>,
) -> (Vec<u8>, Vec<SseEvent>, Option<u64>) {
    let mut w = Writer {
        out: if bom { BOM.to_vec() } else { Vec::new() },
        eols,
        n: 0,
        after_cr: false,
    };
    let mut expected = Vec::new();
    let mut last_id = String::new();
    let mut retry = None;
    for b in blocks {
        if let Some(c) = &b.comment {
            w.line(format!(":{c}").as_bytes());
        }
        if b.unknown_field {
            w.line(b"x-unknown: ignored");
        }
        if b.id_first {
            if let Some(id) = &b.id {
                w.line(format!("id: {id}").as_bytes());
            }
        }
        if let Some(e) = &b.event {
            w.line(format!("event: {e}").as_bytes());
        }
        for d in &b.data {
            let line = match b.style {
                0 => format!("data: {d}"),
                1 if !d.starts_with(' ') => format!("data:{d}"),
                2 if d.is_empty() => "data".to_owned(),
                _ => format!("data: {d}"),
            };
            w.line(line.as_bytes());
        }
        if !b.id_first {
            if let Some(id) = &b.id {
                // Without the optional space where the id itself does not start with one.
                let line = if id.starts_with(' ') {
                    format!("id: {id}")
                } else {
                    format!("id:{id}")
                };
                w.line(line.as_bytes());
            }
        }
        if let Some(r) = b.retry {
            w.line(format!("retry: {r}").as_bytes());
            retry = Some(r);
        }
        w.line(b"");
        if let Some(id) = &b.id {
            last_id.clone_from(id);
        }
        if !b.data.is_empty() {
            expected.push(SseEvent {
                event: b.event.clone().unwrap_or_else(|| "message".into()),
                data: b.data.join("\n"),
                last_event_id: last_id.clone(),
            });
        }
    }
    if let Some(t) = tail {
        // An event that never ends: it must not be dispatched.
        w.line(format!("data: {t}").as_bytes());
    }
    (w.out, expected, retry)
}

proptest! {
    #![proptest_config(config())]

    /// Generated well-formed streams (named and unnamed events, multi-line data, ids, comments, unknown
    /// fields, retry, a BOM, LF/CR/CRLF mixed) read back as the events that were written, however cut.
    #[test]
    fn sse_well_formed_streams_round_trip(
        blocks in vec(block(), 0..8),
        bom in any::<bool>(),
        eols in vec(0u8..3, 1..16),
        tail in proptest::option::weighted(0.3, "[^\r\n]{0,8}"),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let (bytes, expected, retry) = render(&blocks, bom, &eols, tail.as_deref());
        let whole = feed_all(1 << 20, &[&bytes]);
        prop_assert_eq!(&whole.error, &None);
        prop_assert_eq!(&whole.events, &expected, "stream {:?}", String::from_utf8_lossy(&bytes));
        prop_assert_eq!(whole.retry, retry);
        let chunked = feed_all(1 << 20, &split(&bytes, &cuts));
        prop_assert_eq!(&chunked.events, &expected);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Options.

const FIELDS: &[&str] = &[
    "url",
    "transport",
    "headers",
    "protocols",
    "method",
    "body",
    "lastEventId",
    "sendUrl",
    "reconnect",
    "heartbeat",
    "queue",
    "fallback",
    "share",
    "maxMessageSize",
    "connectTimeoutMs",
];

const INNER_FIELDS: &[&str] = &[
    "initialDelayMs",
    "multiplier",
    "maxDelayMs",
    "jitter",
    "maxRetries",
    "stableAfterMs",
    "onNormalClose",
    "pingIntervalMs",
    "pongTimeoutMs",
    "idleTimeoutMs",
    "maxMessages",
    "maxBytes",
    "pollUrl",
    "sendUrl",
    "intervalMs",
    "afterFailures",
    "probeIntervalMs",
];

/// URL-ish strings: mostly well-formed URLs of every scheme we take, then odd schemes, hosts and ports, then
/// anything at all.
fn url_string() -> impl Strategy<Value = String> {
    let good = (
        prop_oneof![
            Just("ws"),
            Just("wss"),
            Just("http"),
            Just("https"),
            Just("WSS"),
            Just("HtTp")
        ],
        prop_oneof![
            Just("127.0.0.1"),
            Just("localhost"),
            Just("[::1]"),
            Just("example.com"),
            Just("例え.jp"),
            Just("user:pw@127.0.0.1"),
        ],
        proptest::option::of(1u16..),
        "(/[a-zA-Z0-9_.%~-]{0,6}){0,3}",
        "(\\?[a-z=&]{0,8})?(#[a-z]{0,4})?",
    )
        .prop_map(|(scheme, host, port, path, query)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{host}{port}{path}{query}")
        });
    let odd = (
        prop_oneof![
            Just("ws"),
            Just("https"),
            Just("ftp"),
            Just("file"),
            Just("javascript"),
            Just("data"),
        ],
        prop_oneof![Just("://"), Just(":"), Just(":///")],
        prop_oneof![
            Just(""),
            Just("a b"),
            Just("%41"),
            Just("[::1"),
            Just("127.0.0.1")
        ],
        "(:[0-9]{0,6})?",
        "[ -~]{0,12}",
    )
        .prop_map(|(s, sep, h, port, path)| format!("{s}{sep}{h}{port}{path}"));
    prop_oneof![6 => good, 2 => odd, 1 => any::<String>()]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
        3 => proptest::sample::select(INNER_FIELDS).prop_map(str::to_owned),
        1 => "[a-zA-Z]{0,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        prop_oneof![Just(0u64), Just(1), Just(2), Just(1000), Just(u64::MAX)]
            .prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![Just(0.0f64), Just(0.5), Just(1.0), Just(-1.0), Just(1e300)]
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        prop_oneof![
            Just("websocket"),
            Just("sse"),
            Just("poll"),
            Just("GET"),
            Just("post"),
            Just("bad method"),
        ]
        .prop_map(|s| Value::String(s.into())),
        url_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value of the right type for a field (edge values included), or any JSON at all.
fn field_value(field: &'static str) -> BoxedStrategy<Value> {
    let millis = || {
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(50),
            Just(30_000),
            Just(u32::MAX as u64),
            Just(u64::MAX),
            any::<u64>(),
        ]
        .prop_map(|n| json!(n))
    };
    let size = || {
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(1024),
            Just(64 << 20),
            Just((64 << 20) + 1),
            Just(u64::MAX),
            0u64..100_000,
        ]
        .prop_map(|n| json!(n))
    };
    let ratio = || {
        prop_oneof![
            Just(-1.0f64),
            Just(0.0),
            Just(0.2),
            Just(1.0),
            Just(1.5),
            Just(2.0),
            Just(1e300),
            any::<f64>(),
        ]
        .prop_map(|f| json!(f))
    };
    let inner = |pairs: Vec<(&'static str, BoxedStrategy<Value>)>| {
        let n = pairs.len();
        pairs
            .into_iter()
            .map(|(k, v)| proptest::option::of(v.prop_map(move |v| (k, v))))
            .collect::<Vec<_>>()
            .prop_map(move |kv| {
                let mut m = Map::new();
                for (k, v) in kv.into_iter().flatten().take(n) {
                    m.insert(k.into(), v);
                }
                Value::Object(m)
            })
    };
    let plausible: BoxedStrategy<Value> = match field {
        "url" | "sendUrl" => url_string().prop_map(Value::String).boxed(),
        "transport" => prop_oneof![Just("websocket"), Just("sse"), Just("poll"), Just("SSE")]
            .prop_map(|s| json!(s))
            .boxed(),
        "headers" => vec(
            (
                prop_oneof![
                    "[A-Za-z0-9-]{1,10}",
                    Just("Authorization".to_owned()),
                    any::<String>()
                ],
                prop_oneof!["[ -~]{0,16}", any::<String>()],
            ),
            0..4,
        )
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k, json!(v))).collect()))
        .boxed(),
        "protocols" => vec(prop_oneof!["[a-z0-9.]{1,8}", any::<String>()], 0..3)
            .prop_map(|v| json!(v))
            .boxed(),
        "method" => prop_oneof![
            Just("GET".to_owned()),
            Just("post".to_owned()),
            Just("BAD METHOD".to_owned()),
            Just(String::new()),
            any::<String>()
        ]
        .prop_map(|s| json!(s))
        .boxed(),
        "body" | "lastEventId" => {
            prop_oneof!["[ -~]{0,8}", any::<String>(), Just("a\nb".to_owned())]
                .prop_map(|s| json!(s))
                .boxed()
        }
        "reconnect" => prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            inner(vec![
                ("initialDelayMs", millis().boxed()),
                ("multiplier", ratio().boxed()),
                ("maxDelayMs", millis().boxed()),
                ("jitter", ratio().boxed()),
                (
                    "maxRetries",
                    prop_oneof![Just(Value::Null), (0u32..5).prop_map(|n| json!(n))].boxed()
                ),
                ("stableAfterMs", millis().boxed()),
                ("onNormalClose", any::<bool>().prop_map(Value::Bool).boxed()),
            ]),
        ]
        .boxed(),
        "heartbeat" => prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            inner(vec![
                ("pingIntervalMs", millis().boxed()),
                ("pongTimeoutMs", millis().boxed()),
                ("idleTimeoutMs", millis().boxed()),
            ]),
        ]
        .boxed(),
        "queue" => inner(vec![
            ("maxMessages", size().boxed()),
            ("maxBytes", size().boxed()),
        ])
        .boxed(),
        "fallback" => prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            inner(vec![
                ("pollUrl", url_string().prop_map(Value::String).boxed()),
                ("sendUrl", url_string().prop_map(Value::String).boxed()),
                ("intervalMs", millis().boxed()),
                ("afterFailures", (0u32..5).prop_map(|n| json!(n)).boxed()),
                ("probeIntervalMs", millis().boxed()),
            ]),
        ]
        .boxed(),
        "share" => prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![Just(String::new()), "[a-z]{1,6}"].prop_map(Value::String),
        ]
        .boxed(),
        "maxMessageSize" => size().boxed(),
        "connectTimeoutMs" => millis().boxed(),
        _ => json_value().boxed(),
    };
    prop_oneof![4 => plausible, 1 => json_value()].boxed()
}

/// Objects shaped like `ConnectOptions`: a URL and some known fields, mostly with values of the right type,
/// so that most of them parse and many resolve.
fn options_like() -> impl Strategy<Value = Value> {
    (
        url_string(),
        vec(
            proptest::sample::select(&FIELDS[1..]).prop_flat_map(|f| (Just(f), field_value(f))),
            0..6,
        ),
        proptest::option::weighted(0.1, (key(), json_value())),
    )
        .prop_map(|(url, fields, extra)| {
            let mut m = Map::new();
            m.insert("url".into(), Value::String(url));
            for (k, v) in fields {
                m.insert(k.to_owned(), v);
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => Just(Limits::default()),
        1 => (0usize..4, 0usize..64, 1usize..4096, 0usize..8, 0usize..4096, 0u64..200).prop_map(
            |(max_headers, max_header_bytes, max_message_size, max_queue_messages, max_queue_bytes, min_interval_ms)| Limits {
                max_headers,
                max_header_bytes,
                max_message_size,
                max_queue_messages,
                max_queue_bytes,
                min_interval_ms,
                ..Default::default()
            }
        ),
    ]
}

/// What must hold of every option set that resolves.
fn check_resolved(o: &ConnectOptions, limits: &Limits) -> Result<(), TestCaseError> {
    let Ok(r) = o.resolve(limits) else {
        return Ok(());
    };
    let scheme = r.url.scheme();
    let fits = match r.transport {
        Transport::Websocket => matches!(scheme, "ws" | "wss"),
        Transport::Sse | Transport::Poll => matches!(scheme, "http" | "https"),
    };
    prop_assert!(
        fits,
        "transport {:?} with a {}: url ({:?})",
        r.transport,
        scheme,
        o
    );
    prop_assert!(r.url.host_str().is_some_and(|h| !h.is_empty()));
    prop_assert!(r.headers.len() <= limits.max_headers);
    prop_assert!((1..=limits.max_message_size).contains(&r.max_message_size));
    prop_assert!(!r.connect_timeout.is_zero());
    prop_assert!(r.queue.max_messages <= limits.max_queue_messages);
    prop_assert!(r.queue.max_bytes <= limits.max_queue_bytes);
    if r.transport != Transport::Websocket {
        prop_assert!(r.protocols.is_empty());
    }
    if let Some(rc) = &r.reconnect {
        prop_assert!(rc.multiplier.is_finite() && rc.multiplier >= 1.0);
        prop_assert!((0.0..=1.0).contains(&rc.jitter));
        prop_assert!(rc.max_delay_ms >= rc.initial_delay_ms);
    }
    if let Some(id) = &r.last_event_id {
        prop_assert!(!id.contains(['\0', '\r', '\n']));
    }
    // No interval under the floor: a page cannot make a request storm.
    let floor = limits.min_interval_ms.max(1);
    prop_assert!(r.connect_timeout.as_millis() >= u128::from(floor));
    if let Some(rc) = &r.reconnect {
        prop_assert!(rc.initial_delay_ms >= floor);
    }
    if let Some(h) = &r.heartbeat {
        prop_assert!(
            h.ping_interval_ms
                .min(h.pong_timeout_ms)
                .min(h.idle_timeout_ms)
                >= floor
        );
    }
    if let Some(f) = &r.fallback {
        prop_assert!(f.interval_ms.min(f.probe_interval_ms) >= floor);
    }
    // Sends are only ever POSTed over HTTP.
    if let Some(u) = r.post_url() {
        prop_assert!(matches!(u.scheme(), "http" | "https"), "sendUrl {u}");
    }
    // No header the Fetch standard forbids to pages, and subprotocols within the header budget.
    for (n, v) in &r.headers {
        prop_assert!(
            !is_forbidden_header(n, v.to_str().unwrap_or("")),
            "{n} passed"
        );
    }
    let header_bytes: usize = o
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len())
        .sum::<usize>()
        + r.protocols.iter().map(|p| p.len() + 2).sum::<usize>();
    prop_assert!(header_bytes <= limits.max_header_bytes);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any JSON at all: parsing never panics, and neither does resolving what parsed.
    #[test]
    fn options_from_arbitrary_json_never_panic(value in json_value(), limits in limits()) {
        if let Ok(o) = serde_json::from_value::<ConnectOptions>(value) {
            check_resolved(&o, &limits)?;
        }
    }

    /// Objects shaped like the options: what parses resolves without panic, with a matching scheme and
    /// transport, and survives a JSON round trip unchanged.
    #[test]
    fn options_shaped_json_resolves_consistently(value in options_like(), limits in limits()) {
        if let Ok(o) = serde_json::from_value::<ConnectOptions>(value) {
            check_resolved(&o, &limits)?;
            let again: ConnectOptions = serde_json::from_value(serde_json::to_value(&o).unwrap())
                .expect("serialised options parse again");
            prop_assert_eq!(&again, &o);
            prop_assert_eq!(
                again.resolve(&limits).map(|r| (r.sharing, r.fingerprint)).ok(),
                o.resolve(&limits).map(|r| (r.sharing, r.fingerprint)).ok()
            );
        }
    }

    /// Arbitrary strings in the free-text fields: `resolve` never panics, and refuses or accepts with a
    /// consistent result.
    #[test]
    fn options_with_arbitrary_strings_never_panic(
        url in url_string(),
        transport in proptest::option::of(prop_oneof![
            Just(Transport::Websocket),
            Just(Transport::Sse),
            Just(Transport::Poll),
        ]),
        headers in vec((any::<String>(), any::<String>()), 0..4),
        header_like in vec(("[A-Za-z0-9\\-]{0,12}", "[ -~\t]{0,16}"), 0..4),
        protocols in vec(prop_oneof![any::<String>(), "[!-~]{0,8}"], 0..3),
        method in proptest::option::of(prop_oneof![any::<String>(), "[A-Za-z]{0,8}"]),
        body in proptest::option::of(any::<String>()),
        last_event_id in proptest::option::of(any::<String>()),
        limits in limits(),
    ) {
        let o = ConnectOptions {
            url,
            transport,
            headers: headers.into_iter().chain(header_like).collect::<BTreeMap<_, _>>(),
            protocols,
            method,
            body,
            last_event_id,
            ..ConnectOptions::default()
        };
        check_resolved(&o, &limits)?;
        if let Ok(r) = o.resolve(&limits) {
            for p in &r.protocols {
                prop_assert!(!p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The compact batch encoding between the relay and the bindings.

fn frame() -> impl Strategy<Value = Frame> {
    let text = || "[a-z\"\\\\é\n]{0,6}";
    let transport = prop_oneof![
        Just(Transport::Websocket),
        Just(Transport::Sse),
        Just(Transport::Poll)
    ];
    prop_oneof![
        4 => (
            transport,
            prop::option::of(prop_oneof![Just("message".to_owned()), text().prop_map(String::from)]),
            text(),
            prop::option::of(prop_oneof![Just(String::new()), Just("7".to_owned())]),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(transport, event, data, last_event_id, binary)| Frame::Message {
                seq: 0,
                transport,
                event,
                data,
                last_event_id,
                binary,
            }),
        1 => text().prop_map(|reason| Frame::Close { seq: 0, code: 1000, reason }),
        1 => (text(), any::<bool>()).prop_map(|(message, fatal)| Frame::Error { seq: 0, message, fatal }),
    ]
}

/// Frames numbered from `start`, each one after the last or (with `jumps`) a few further on.
fn numbered(mut frames: Vec<Frame>, start: u64, jumps: &[bool]) -> Vec<Frame> {
    let mut next = start;
    for (f, jump) in frames
        .iter_mut()
        .zip(jumps.iter().chain(std::iter::repeat(&false)))
    {
        next += if *jump { 3 } else { 1 };
        let (Frame::State { seq, .. }
        | Frame::Message { seq, .. }
        | Frame::Error { seq, .. }
        | Frame::Close { seq, .. }) = f;
        *seq = next;
    }
    frames
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the batch, the bindings' reading of the compact form (mirrored by `wire::decode`) gives back
    /// exactly the frames, and a run of alike messages costs no more than the frames themselves.
    #[test]
    fn compact_batches_round_trip(
        frames in vec(frame(), 0..40),
        start in 0u64..1_000_000,
        jumps in vec(prop::bool::weighted(0.1), 0..40),
    ) {
        let frames = numbered(frames, start, &jumps);
        let arcs: Vec<std::sync::Arc<Frame>> = frames.iter().cloned().map(std::sync::Arc::new).collect();
        let bytes = wire::encode(&arcs);
        prop_assert_eq!(wire::decode(&bytes).unwrap(), frames);
        prop_assert!(bytes.len() <= serde_json::to_vec(&arcs).unwrap().len());
    }
}
