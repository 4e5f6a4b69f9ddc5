//! The compact batch encoding used between the relay and the guest bindings: the array literal of a script the
//! webview evaluates, or a channel message.
//!
//! A batch is a JSON array. Each element is either a frame object, exactly as documented in [`Frame`], or a JSON
//! string: a message frame whose `data` is that string, whose `seq` is the previous element's plus one, and whose
//! other fields (`transport`, `event`, `lastEventId`, `binary`) are the previous element's, which is a message
//! frame. The first element is always an object.
//!
//! Why: a webview pays per object and per key when it parses a batch, and most batches are runs of alike
//! messages. Strings alone parse about 3x faster than full objects in WebKitGTK (see docs/BENCHMARKS.md).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::frame::Frame;

/// Encodes `frames` (in `seq` order) as one compact JSON array.
pub fn encode(frames: &[Arc<Frame>]) -> Vec<u8> {
    encode_text(frames).into_bytes()
}

fn encode_text(frames: &[Arc<Frame>]) -> String {
    let mut e = Encoder::default();
    for f in frames {
        e.push(f);
    }
    e.take_text()
}

/// The global object through which the guest bindings receive batches evaluated in the page.
pub const RECEIVER: &str = "__TAURI_PLUGIN_REALTIME__";

/// The script that hands a batch to the bindings' receiver: `<receiver>.deliver("<id>", <compact batch>)`.
///
/// Why a script of its own: JSON is a JavaScript expression, so the batch arrives as an array literal of string
/// literals that the webview compiles once, with no second parse (`JSON.parse` of a JSON string), and in one
/// evaluation however large (Tauri's channel cuts at 8 KiB and fetches beyond). Measured in
/// docs/BENCHMARKS.md: 1.3-4x less webview CPU per frame than the channel (runs differ). The batch holds only
/// string, number, boolean and null literals and objects with the fixed keys of [`Frame`], so it can carry
/// nothing that runs. A page without the receiver (reloaded, or not using the bindings) ignores the call.
pub fn script(id: &str, frames: &[Arc<Frame>]) -> String {
    let approx: usize = frames.iter().map(|f| f.approx_len() + 8).sum();
    let mut out = String::with_capacity(approx + RECEIVER.len() * 2 + id.len() + 40);
    out.push_str("window.");
    out.push_str(RECEIVER);
    out.push_str("&&window.");
    out.push_str(RECEIVER);
    out.push_str(".deliver(");
    push_json_str(&mut out, id);
    out.push(',');
    let mut e = Encoder { out, prev: None };
    for f in frames {
        e.push(f);
    }
    let mut out = e.take_text();
    out.push(')');
    out
}

/// Appends `s` to `out` as a JSON string literal, quotes included, byte for byte as serde_json writes it.
///
/// Why not serde_json: it looks at every byte on its own, and escaping was half of the relay's CPU time for
/// 16 KiB frames. This skips eight bytes at a time while none of them needs an escape.
pub fn push_json_str(out: &mut String, s: &str) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Exact for "some byte of `w` is zero" (classic SWAR test); `has_below_32` likewise for "some byte < 0x20".
    let has_zero = |w: u64| w.wrapping_sub(LO) & !w & HI != 0;
    let has_below_32 = |w: u64| w.wrapping_sub(LO * 0x20) & !w & HI != 0;
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            if !(has_below_32(w) || has_zero(w ^ (LO * 0x22)) || has_zero(w ^ (LO * 0x5c))) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Builds one compact batch frame by frame, so a sender can cut batches by their encoded size.
#[derive(Default)]
pub struct Encoder {
    out: String,
    prev: Option<Arc<Frame>>,
}

impl Encoder {
    /// Appends `frame`, the next in `seq` order.
    pub fn push(&mut self, frame: &Arc<Frame>) {
        self.out.push(if self.prev.is_none() { '[' } else { ',' });
        match self.prev.as_deref().and_then(|p| continues(p, frame)) {
            Some(data) => push_json_str(&mut self.out, data),
            // Serialising a `Frame` cannot fail: every field is a string, a number or a boolean.
            None => self
                .out
                .push_str(&serde_json::to_string(frame.as_ref()).unwrap_or_default()),
        }
        self.prev = Some(frame.clone());
    }

    /// Bytes of the batch so far, with its closing bracket.
    pub fn len(&self) -> usize {
        self.out.len().max(1) + 1
    }

    /// No frame yet.
    pub fn is_empty(&self) -> bool {
        self.prev.is_none()
    }

    /// The batch, and a fresh start for the next one.
    pub fn take(&mut self) -> Vec<u8> {
        self.take_text().into_bytes()
    }

    fn take_text(&mut self) -> String {
        let mut out = std::mem::take(&mut self.out);
        if self.prev.take().is_none() {
            out.push('[');
        }
        out.push(']');
        out
    }

    /// The batch.
    pub fn finish(mut self) -> Vec<u8> {
        self.take()
    }
}

/// Parts encoded smaller than this go as a JSON string the webview evaluates; larger ones as raw bytes, which
/// Tauri hands over through its IPC protocol (a fetch): dearer per message, cheaper per byte.
pub const DIRECT_MAX: usize = 7168;
/// Tauri evaluates a channel's JSON message directly below this size, and fetches it otherwise.
pub const TAURI_DIRECT_MAX: usize = 8192;
/// Encoded size at which a part of a split batch is cut.
pub const PART: usize = 6144;
/// Batches of about this size and more (see [`Frame::approx_len`]) go whole, as bytes in one fetch; smaller
/// ones are split into parts that the webview evaluates directly.
pub const SPLIT_MAX: usize = 64 << 10;

/// One message of a batch on its way into a webview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A compact batch as a JSON string literal (under [`TAURI_DIRECT_MAX`]), for the webview to evaluate.
    Literal(String),
    /// A compact batch as UTF-8 bytes, for the webview to fetch.
    Bytes(Vec<u8>),
}

/// Cuts a batch into the messages that carry it, in order: parts of about [`PART`] bytes evaluated directly
/// (cheaper for a webview than a fetch, measured in docs/BENCHMARKS.md), or, for a batch of about
/// [`SPLIT_MAX`] and more, the whole as bytes (per byte, a fetch is cheaper than a script).
pub fn parts(frames: &[Arc<Frame>]) -> Vec<Part> {
    let total: usize = frames.iter().map(|f| f.approx_len()).sum();
    if total >= SPLIT_MAX {
        return vec![part(encode_text(frames))];
    }
    let mut out = Vec::new();
    let mut e = Encoder::default();
    for f in frames {
        e.push(f);
        if e.len() >= PART {
            out.push(part(e.take_text()));
        }
    }
    if !e.is_empty() {
        out.push(part(e.take_text()));
    }
    out
}

fn part(text: String) -> Part {
    if text.len() < DIRECT_MAX {
        let mut literal = String::with_capacity(text.len() + text.len() / 8 + 2);
        push_json_str(&mut literal, &text);
        if literal.len() < TAURI_DIRECT_MAX {
            return Part::Literal(literal);
        }
        // Escapes made it too long to be evaluated directly.
    }
    Part::Bytes(text.into_bytes())
}

/// `frame`'s data when it is a message frame that differs from `prev` only by `seq` + 1 and `data`.
fn continues<'a>(prev: &Frame, frame: &'a Frame) -> Option<&'a str> {
    match (prev, frame) {
        (
            Frame::Message {
                seq: s0,
                transport: t0,
                event: e0,
                last_event_id: l0,
                binary: b0,
                ..
            },
            Frame::Message {
                seq,
                transport,
                event,
                last_event_id,
                binary,
                data,
            },
        ) if *seq == s0 + 1
            && transport == t0
            && event == e0
            && last_event_id == l0
            && binary == b0 =>
        {
            Some(data)
        }
        _ => None,
    }
}

/// A malformed compact batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed batch: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a compact batch back into frames (the bindings do the same in TypeScript; Rust consumers and
/// tests use this one).
pub fn decode(bytes: &[u8]) -> Result<Vec<Frame>, DecodeError> {
    let items: Vec<Value> =
        serde_json::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))?;
    let mut frames: Vec<Frame> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let frame = match item {
            Value::String(data) => match frames.last() {
                Some(Frame::Message {
                    seq,
                    transport,
                    event,
                    last_event_id,
                    binary,
                    ..
                }) => Frame::Message {
                    seq: seq + 1,
                    transport: *transport,
                    event: event.clone(),
                    data,
                    last_event_id: last_event_id.clone(),
                    binary: *binary,
                },
                _ => {
                    return Err(DecodeError(format!(
                        "element {i} is a string but does not follow a message frame"
                    )))
                }
            },
            other => {
                Frame::deserialize(other).map_err(|e| DecodeError(format!("element {i}: {e}")))?
            }
        };
        frames.push(frame);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{State, Transport};

    fn msg(seq: u64, data: &str) -> Frame {
        Frame::Message {
            seq,
            transport: Transport::Websocket,
            event: None,
            data: data.into(),
            last_event_id: None,
            binary: false,
        }
    }

    fn sse(seq: u64, data: &str, id: &str) -> Frame {
        Frame::Message {
            seq,
            transport: Transport::Sse,
            event: Some("message".into()),
            data: data.into(),
            last_event_id: Some(id.into()),
            binary: false,
        }
    }

    /// The batch in `guest-js/tests/fixtures/batch.json`: the bindings' test decodes the same bytes.
    fn fixture_frames() -> Vec<Frame> {
        vec![
            Frame::State {
                seq: 1,
                state: State::Connected,
                transport: Some(Transport::Websocket),
                attempt: None,
                delay_ms: None,
                reason: None,
                protocol: None,
                snapshot: false,
            },
            msg(2, "a"),
            msg(3, "b \"quoted\" \u{e9}\n"),
            msg(4, ""),
            Frame::Message {
                seq: 5,
                transport: Transport::Websocket,
                event: None,
                data: "AAEC".into(),
                last_event_id: None,
                binary: true,
            },
            sse(6, "x", ""),
            sse(7, "y", ""),
            sse(8, "z", "8"),
            msg(10, "after a gap"),
            Frame::Close {
                seq: 11,
                code: 1000,
                reason: "bye".into(),
            },
        ]
    }

    #[test]
    fn fixture_matches_the_bindings_test() {
        let fixture: Value =
            serde_json::from_str(include_str!("../../../guest-js/tests/fixtures/batch.json"))
                .unwrap();
        let frames: Vec<Arc<Frame>> = fixture_frames().into_iter().map(Arc::new).collect();
        let wire = String::from_utf8(encode(&frames)).unwrap();
        assert_eq!(fixture["wire"].as_str().unwrap(), wire);
        let id = fixture["id"].as_str().unwrap();
        assert_eq!(fixture["script"].as_str().unwrap(), script(id, &frames));
        let expanded: Vec<Value> = frames
            .iter()
            .map(|f| serde_json::to_value(f.as_ref()).unwrap())
            .collect();
        assert_eq!(fixture["frames"], Value::Array(expanded));
    }

    #[test]
    fn runs_of_alike_messages_become_strings() {
        let frames: Vec<Arc<Frame>> = fixture_frames().into_iter().map(Arc::new).collect();
        let items: Vec<Value> = serde_json::from_slice(&encode(&frames)).unwrap();
        let kinds: Vec<&str> = items
            .iter()
            .map(|v| if v.is_string() { "s" } else { "o" })
            .collect();
        // state, msg 2 (after a state), 3, 4, binary 5, sse 6, 7, id change 8, gap 10, close
        assert_eq!(kinds, ["o", "o", "s", "s", "o", "o", "s", "o", "o", "o"]);
    }

    #[test]
    fn decode_inverts_encode() {
        let frames = fixture_frames();
        let arcs: Vec<Arc<Frame>> = frames.iter().cloned().map(Arc::new).collect();
        assert_eq!(decode(&encode(&arcs)).unwrap(), frames);
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::<Frame>::new());
    }

    #[test]
    fn an_encoder_cut_anywhere_gives_batches_that_each_decode_alone() {
        let frames = fixture_frames();
        let arcs: Vec<Arc<Frame>> = frames.iter().cloned().map(Arc::new).collect();
        for cut in 0..=arcs.len() {
            let mut e = Encoder::default();
            let mut got = Vec::new();
            for (i, f) in arcs.iter().enumerate() {
                if i == cut {
                    got.extend(decode(&e.take()).unwrap());
                    assert!(e.is_empty());
                }
                e.push(f);
                assert!(e.len() > 2);
            }
            got.extend(decode(&e.finish()).unwrap());
            assert_eq!(got, frames, "cut before frame {cut}");
        }
    }

    #[test]
    fn small_batches_go_in_evaluated_parts_and_large_ones_whole_as_bytes() {
        let decode_all = |parts: Vec<Part>| -> Vec<Frame> {
            parts
                .into_iter()
                .flat_map(|p| match p {
                    Part::Literal(l) => {
                        assert!(l.len() < TAURI_DIRECT_MAX);
                        decode(serde_json::from_str::<String>(&l).unwrap().as_bytes()).unwrap()
                    }
                    Part::Bytes(b) => decode(&b).unwrap(),
                })
                .collect()
        };
        let small: Vec<Frame> = (1..=256).map(|s| msg(s, &"x".repeat(64))).collect();
        let arcs: Vec<Arc<Frame>> = small.iter().cloned().map(Arc::new).collect();
        let p = parts(&arcs);
        assert!(
            p.len() > 1 && p.iter().all(|p| matches!(p, Part::Literal(_))),
            "{p:?}"
        );
        assert_eq!(decode_all(p), small);

        // Quotes double under escaping: a part that outgrows direct evaluation goes as bytes.
        let quoted: Vec<Frame> = (1..=200).map(|s| msg(s, &"\"".repeat(60))).collect();
        let arcs: Vec<Arc<Frame>> = quoted.iter().cloned().map(Arc::new).collect();
        let p = parts(&arcs);
        assert!(p.iter().any(|p| matches!(p, Part::Bytes(_))), "{p:?}");
        assert_eq!(decode_all(p), quoted);

        let large: Vec<Frame> = (1..=8).map(|s| msg(s, &"y".repeat(16 << 10))).collect();
        let arcs: Vec<Arc<Frame>> = large.iter().cloned().map(Arc::new).collect();
        let p = parts(&arcs);
        assert!(
            matches!(&p[..], [Part::Bytes(_)]),
            "one fetch for a large batch"
        );
        assert_eq!(decode_all(p), large);
        assert!(parts(&[]).is_empty());
    }

    #[test]
    fn a_script_is_the_receiver_call_around_the_compact_batch() {
        let frames: Vec<Arc<Frame>> = fixture_frames().into_iter().map(Arc::new).collect();
        let s = script("a-1_B", &frames);
        let prefix = format!("window.{RECEIVER}&&window.{RECEIVER}.deliver(\"a-1_B\",");
        let batch = s
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unexpected script {s}"));
        assert_eq!(batch.as_bytes(), encode(&frames));
        assert_eq!(decode(batch.as_bytes()).unwrap(), fixture_frames());
        // A frame's data can hold anything: it stays inside a string literal.
        let hostile = [Arc::new(msg(1, "\")]);alert(1);//</script>\u{2028}\u{0}"))];
        let s = script("x", &hostile);
        let batch = &s[s.find(",[").unwrap() + 1..s.len() - 1];
        assert_eq!(
            decode(batch.as_bytes()).unwrap(),
            vec![msg(1, "\")]);alert(1);//</script>\u{2028}\u{0}")]
        );
        assert!(!batch.contains('\0'), "control characters are escaped");
        assert_eq!(
            script("x", &[]),
            format!("window.{RECEIVER}&&window.{RECEIVER}.deliver(\"x\",[])")
        );
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let mut every_byte = String::new();
        for c in (0u8..=0x7f)
            .map(char::from)
            .chain(['\u{e9}', '\u{2028}', '\u{1f600}'])
        {
            every_byte.push(c);
            every_byte.push_str("abcdefgh");
        }
        for s in [
            "",
            "a",
            "\"",
            "01234567\"",
            "0123456\\x",
            &"x".repeat(1000),
            &every_byte,
        ] {
            let mut out = String::from("pre");
            push_json_str(&mut out, s);
            assert_eq!(
                out,
                format!("pre{}", serde_json::to_string(s).unwrap()),
                "{s:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn escaping_matches_serde_json(s in "(\\PC|[\\x00-\\x1f\"\\\\]){0,40}") {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            proptest::prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn decode_rejects_a_leading_string() {
        let err = decode(br#"["a"]"#).unwrap_err();
        assert!(err.0.contains("does not follow a message frame"), "{err}");
    }
}
