//! The compact batch encoding: how a batch of frames travels to the guest bindings (the Tauri layer writes it
//! into the script that calls the page's receiver; `guest-js/wire.ts` expands it).
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
    let approx: usize = frames.iter().map(|f| f.approx_len() + 8).sum();
    let mut out = String::with_capacity(approx + 2);
    push_batch(&mut out, frames);
    out.into_bytes()
}

/// Appends `frames` (in `seq` order) to `out` as one compact JSON array, so that a caller can write the batch
/// straight into a larger text (a script) without a copy.
pub fn push_batch(out: &mut String, frames: &[Arc<Frame>]) {
    out.push('[');
    let mut prev: Option<&Frame> = None;
    for frame in frames {
        if prev.is_some() {
            out.push(',');
        }
        match prev.and_then(|p| continues(p, frame)) {
            Some(data) => push_json_str(out, data),
            // Serialising a `Frame` cannot fail: every field is a string, a number or a boolean.
            None => out.push_str(&serde_json::to_string(frame.as_ref()).unwrap_or_default()),
        }
        prev = Some(frame);
    }
    out.push(']');
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

    /// The frames of the batch in `guest-js/tests/fixtures/batch.json` (checked against the fixture itself by
    /// `tests/wire.rs`, which, unlike this file, is not in the published crate).
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
        assert_eq!(encode(&[]), b"[]");
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::<Frame>::new());
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

    #[test]
    fn decode_rejects_a_leading_string() {
        let err = decode(br#"["a"]"#).unwrap_err();
        assert!(err.0.contains("does not follow a message frame"), "{err}");
    }

    /// Data with what needs escaping (quotes, backslashes, control characters) and what does not.
    const DATA: &str = "(\\PC|[\\x00-\\x1f\"\\\\]){0,12}";

    /// Where a message comes from, read by [`built`] (transport, event type, last event id): mostly an SSE stream
    /// or a socket, so that runs form, and sometimes a source that differs from them in one field.
    fn sources() -> proptest::sample::Select<u8> {
        proptest::sample::select(vec![1, 1, 1, 0, 0, 2, 4, 7, 10])
    }

    /// A frame made from generated parts: mostly messages from a few alike sources, so that runs form and break
    /// on every field.
    fn built(seq: u64, (kind, source, binary, data): (u8, u8, bool, String)) -> Frame {
        let transport =
            [Transport::Websocket, Transport::Sse, Transport::Poll][usize::from(source % 3)];
        let sse = transport != Transport::Websocket;
        match kind {
            0 => Frame::State {
                seq,
                state: State::Connected,
                transport: Some(transport),
                attempt: None,
                delay_ms: None,
                reason: None,
                protocol: None,
                snapshot: false,
            },
            1 => Frame::Error {
                seq,
                message: data,
                fatal: binary,
            },
            2 => Frame::Close {
                seq,
                code: 1000,
                reason: data,
            },
            _ => Frame::Message {
                seq,
                transport,
                event: sse.then(|| ["message", "token"][usize::from(source / 3 % 2)].to_owned()),
                data,
                last_event_id: sse.then(|| ["", "7"][usize::from(source / 6 % 2)].to_owned()),
                binary: binary && !sse,
            },
        }
    }

    proptest::proptest! {
        #[test]
        fn escaping_matches_serde_json(s in "(\\PC|[\\x00-\\x1f\"\\\\]){0,40}") {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            proptest::prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }

        /// Whatever the frames: the batch decodes back to them, a message is a bare string exactly when it
        /// continues the frame before it, and `push_batch` writes the same bytes after any text.
        #[test]
        fn batches_round_trip_and_append_after_any_text(
            parts in proptest::collection::vec((0u8..8, sources(), proptest::bool::weighted(0.2), DATA), 0..24),
            jumps in proptest::collection::vec(proptest::bool::weighted(0.1), 24),
            start in 0u64..1_000_000,
            prefix in "\\PC{0,8}",
        ) {
            let mut seq = start;
            let frames: Vec<Frame> = parts
                .into_iter()
                .zip(&jumps)
                .map(|(p, jump)| {
                    seq += if *jump { 3 } else { 1 };
                    built(seq, p)
                })
                .collect();
            let arcs: Vec<Arc<Frame>> = frames.iter().cloned().map(Arc::new).collect();
            let bytes = encode(&arcs);
            proptest::prop_assert_eq!(decode(&bytes).unwrap(), frames.clone());

            let items: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
            for (i, item) in items.iter().enumerate() {
                // Alike: the previous frame is this message with the `seq` before and other data.
                let alike = i > 0 && match (&frames[i - 1], frames[i].clone()) {
                    (prev @ Frame::Message { data: d0, .. }, Frame::Message { seq, transport, event, last_event_id, binary, .. }) => {
                        *prev == Frame::Message { seq: seq - 1, transport, event, data: d0.clone(), last_event_id, binary }
                    }
                    _ => false,
                };
                proptest::prop_assert_eq!(item.is_string(), alike, "element {}", i);
            }

            let mut out = prefix.clone();
            push_batch(&mut out, &arcs);
            proptest::prop_assert_eq!(out.as_bytes(), [prefix.as_bytes(), &bytes].concat());
        }
    }
}
