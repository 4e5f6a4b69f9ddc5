//! Server-Sent Events framing: bytes in, events out, as the WHATWG HTML standard's "Parsing an event
//! stream" and "Interpreting an event stream" define it.
//!
//! This module owns the byte-level grammar of `text/event-stream`: the leading BOM, the three line
//! endings (including a CR and its LF arriving in different chunks), lossy UTF-8 decoding, field
//! interpretation, the last-event-id buffer, `retry:` and event dispatch, all under a size limit so a
//! hostile or broken server cannot grow memory without bound.
//!
//! It never does I/O, never keeps timers and never decides when to reconnect: the caller feeds the
//! chunks it read, applies `take_retry`, sends `last_event_id` as `Last-Event-ID` when it reconnects,
//! and calls `reset_stream` when a connection ends.

use std::borrow::Cow;
use std::fmt;

/// UTF-8 encoding of U+FEFF; the decoder drops one at the start of a stream.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Buffer capacity kept across `reset_stream`, so an idle connection does not pin a max-size buffer.
const KEEP_CAPACITY: usize = 64 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// event type; "message" when the event had no `event:` field
    pub event: String,
    /// data lines joined with "\n" (the final trailing LF removed, per spec)
    pub data: String,
    /// the parser's last-event-id buffer at dispatch time ("" when never set)
    pub last_event_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// a single line, or the data of one event, exceeded the limit given to `new`
    TooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::TooLarge { limit } => write!(
                f,
                "sse line or event data larger than {limit} bytes; raise maxMessageSize or fix the server"
            ),
        }
    }
}

impl std::error::Error for SseError {}

/// Incremental `text/event-stream` parser for one logical event source (it survives reconnects).
#[derive(Debug)]
pub struct SseParser {
    max_size: usize,
    /// Head of a line that began in an earlier chunk; never longer than `max_size`.
    line: Vec<u8>,
    /// The spec's data buffer: each `data:` value followed by LF.
    data: String,
    /// The spec's event type buffer.
    event_type: String,
    /// The spec's last event ID buffer: updated by `id:` as soon as the line is read.
    id_buffer: String,
    /// The spec's "last event ID string": the buffer's value at the most recent blank line. It is what
    /// a browser resends on reconnect, so `reset_stream` rolls the buffer back to it.
    committed_id: String,
    retry: Option<u64>,
    /// The previous chunk ended in CR, so an LF opening the next chunk completes that line ending.
    after_cr: bool,
    /// `Some(n)` while the stream start may still be a BOM, with `n` of its bytes already seen.
    bom_matched: Option<usize>,
    /// A limit was exceeded; the stream can no longer be framed, so every `feed` fails until reset.
    failed: bool,
}

impl SseParser {
    /// `max_size`: the largest line and the largest event data (bytes) accepted. Memory stays bounded
    /// by about this size whatever the input: an endless line fails as soon as the pending part
    /// exceeds the limit.
    pub fn new(max_size: usize) -> Self {
        SseParser {
            max_size,
            line: Vec::new(),
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            committed_id: String::new(),
            retry: None,
            after_cr: false,
            bom_matched: Some(0),
            failed: false,
        }
    }

    /// Start with a last-event-id (used when resuming); must not contain NUL/CR/LF (caller checks).
    pub fn with_last_event_id(mut self, id: String) -> Self {
        debug_assert!(
            !id.contains(['\0', '\r', '\n']),
            "last-event-id must not contain NUL, CR or LF"
        );
        self.id_buffer.clone_from(&id);
        self.committed_id = id;
        self
    }

    /// Sets the last-event-id between streams, e.g. from events that arrived by polling; same rules as
    /// [`SseParser::with_last_event_id`].
    pub fn set_last_event_id(&mut self, id: String) {
        debug_assert!(
            !id.contains(['\0', '\r', '\n']),
            "last-event-id must not contain NUL, CR or LF"
        );
        self.id_buffer.clone_from(&id);
        self.committed_id = id;
    }

    /// Feed a chunk; complete events are pushed to `out` in order. Chunks may split anywhere: inside
    /// a line, between CR and LF, inside a UTF-8 sequence.
    ///
    /// On `Err`, events completed before the offending line are already in `out`; the parser then
    /// refuses further input until `reset_stream`, since the rest of the stream cannot be framed.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.failed {
            return Err(self.too_large());
        }
        let result = self.feed_inner(chunk, out);
        if result.is_err() {
            self.failed = true;
            // Nothing held can be used any more; give the memory back at once.
            self.line = Vec::new();
            self.data = String::new();
            self.event_type.clear();
        }
        result
    }

    /// The reconnection time (ms) from the most recent valid `retry:` field since the last call, if
    /// any. Values are not clamped: anything up to `u64::MAX` can come back.
    pub fn take_retry(&mut self) -> Option<u64> {
        self.retry.take()
    }

    /// The spec's "last event ID string": the id as of the most recent blank line, which is what a reconnect
    /// sends as `Last-Event-ID`. Unlike [`SseParser::last_event_id`], never an `id:` whose event is incomplete.
    pub fn committed_id(&self) -> &str {
        &self.committed_id
    }

    /// The current last-event-id buffer. Mid-event it may hold an `id:` whose event has not been
    /// dispatched yet; after `reset_stream` it is the value to send as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        &self.id_buffer
    }

    /// Called when the stream ends: discards any partial event / partial line (an incomplete event
    /// at end of stream is not dispatched) and resets per-connection state (BOM handling restarts).
    /// The last-event-id buffer is kept as of the last blank line: an `id:` from the discarded
    /// partial event is dropped, as the spec only commits the id at a blank line.
    pub fn reset_stream(&mut self) {
        self.line.clear();
        self.line.shrink_to(KEEP_CAPACITY);
        self.data.clear();
        self.data.shrink_to(KEEP_CAPACITY);
        self.event_type.clear();
        self.id_buffer.clone_from(&self.committed_id);
        self.after_cr = false;
        self.bom_matched = Some(0);
        self.failed = false;
    }

    fn too_large(&self) -> SseError {
        SseError::TooLarge {
            limit: self.max_size,
        }
    }

    fn check_line_len(&self, len: usize) -> Result<(), SseError> {
        if len > self.max_size {
            Err(self.too_large())
        } else {
            Ok(())
        }
    }

    fn feed_inner(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = self.skip_bom(chunk)?;
        if self.after_cr {
            if let Some((&first, tail)) = rest.split_first() {
                self.after_cr = false;
                if first == b'\n' {
                    rest = tail;
                }
            }
        }
        while let Some(pos) = find_eol(rest) {
            if self.line.is_empty() {
                // The whole line is in this chunk: parse it in place, no copy.
                self.check_line_len(pos)?;
                self.process_line(&rest[..pos], out)?;
            } else {
                self.check_line_len(self.line.len() + pos)?;
                self.line.extend_from_slice(&rest[..pos]);
                // Moved out (not cloned) so `process_line` can borrow `self` mutably; the
                // allocation is put back for the next split line.
                let line = std::mem::take(&mut self.line);
                let result = self.process_line(&line, out);
                self.line = line;
                self.line.clear();
                result?;
            }
            let eol = rest[pos];
            rest = &rest[pos + 1..];
            if eol == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    // The LF, if any, is in the next chunk: CR LF must count as one line ending.
                    None => self.after_cr = true,
                }
            }
        }
        self.check_line_len(self.line.len() + rest.len())?;
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// Drops a BOM at the start of the stream, even one split across chunks. Bytes held back that
    /// turn out not to be a BOM become the head of the first line.
    fn skip_bom<'a>(&mut self, chunk: &'a [u8]) -> Result<&'a [u8], SseError> {
        let Some(mut matched) = self.bom_matched else {
            return Ok(chunk);
        };
        let mut rest = chunk;
        while let Some((&b, tail)) = rest.split_first() {
            if b != BOM[matched] {
                self.bom_matched = None;
                self.check_line_len(matched)?;
                self.line.extend_from_slice(&BOM[..matched]);
                return Ok(rest);
            }
            matched += 1;
            rest = tail;
            if matched == BOM.len() {
                self.bom_matched = None;
                return Ok(rest);
            }
        }
        self.bom_matched = Some(matched);
        Ok(rest)
    }

    /// One line, without its line ending.
    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return Ok(()), // comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        // Names are matched as bytes: a name with invalid UTF-8 decodes to U+FFFD and could never
        // equal one of these, so decoding it first would change nothing.
        match name {
            b"data" => {
                let value = decode(value);
                // Bounds the dispatched data (buffer minus its final LF) by `max_size`.
                if self.data.len() + value.len() > self.max_size {
                    return Err(self.too_large());
                }
                // One allocation for value and LF, not a second one for the LF.
                self.data.reserve(value.len() + 1);
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&decode(value));
            }
            // A NUL byte is exactly a U+0000 in the decoded value: lossy decoding never yields one.
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.push_str(&decode(value));
            }
            b"retry" => {
                if let Some(ms) = parse_retry(value) {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The blank-line step of "interpreting an event stream".
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        // The last event ID string follows the buffer at every blank line, even one that dispatches
        // nothing (an `id:`-only block still moves the resume point).
        if self.committed_id != self.id_buffer {
            self.committed_id.clone_from(&self.id_buffer);
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        // Taking the buffers hands their allocations to the event and leaves them reset.
        let data = std::mem::take(&mut self.data);
        let event = if self.event_type.is_empty() {
            String::from("message")
        } else {
            std::mem::take(&mut self.event_type)
        };
        out.push(SseEvent {
            event,
            data,
            last_event_id: self.committed_id.clone(),
        });
    }
}

/// Index of the first CR or LF. Whole blocks are tested without an early exit, which LLVM turns
/// into SIMD compares; only a block that holds a hit is scanned byte by byte.
fn find_eol(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let is_eol = |b: &u8| *b == b'\n' || *b == b'\r';
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut offset = 0;
    for block in &mut blocks {
        if block.iter().fold(false, |hit, b| hit | is_eol(b)) {
            return block.iter().position(is_eol).map(|i| offset + i);
        }
        offset += BLOCK;
    }
    blocks
        .remainder()
        .iter()
        .position(is_eol)
        .map(|i| offset + i)
}

/// Lossy UTF-8 decoding, trying the fast validator first: `from_utf8` has an ASCII fast path that
/// `from_utf8_lossy` lacks, and almost every value is valid.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// A `retry:` value: only non-empty ASCII digits count. One too large for `u64` is ignored (as
/// Chromium does) rather than saturated, which would disable reconnection for good.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: usize = 1 << 20;

    /// Expected events as (type, data, last-event-id).
    type Expected = &'static [(&'static str, &'static str, &'static str)];

    fn ev(event: &str, data: &str, id: &str) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            last_event_id: id.to_owned(),
        }
    }

    fn evs(list: &[(&str, &str, &str)]) -> Vec<SseEvent> {
        list.iter().map(|&(e, d, i)| ev(e, d, i)).collect()
    }

    /// Everything observable after feeding a sequence of chunks.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        events: Vec<SseEvent>,
        error: Option<SseError>,
        retry: Option<u64>,
        last_id: String,
    }

    fn run_with(mut p: SseParser, chunks: &[&[u8]]) -> Outcome {
        let mut events = Vec::new();
        let mut error = None;
        for chunk in chunks {
            if let Err(e) = p.feed(chunk, &mut events) {
                error = Some(e);
                break;
            }
        }
        Outcome {
            events,
            error,
            retry: p.take_retry(),
            last_id: p.last_event_id().to_owned(),
        }
    }

    fn run(max: usize, chunks: &[&[u8]]) -> Outcome {
        run_with(SseParser::new(max), chunks)
    }

    /// Feeds `input` whole, split in two at every index, and byte by byte; all must agree.
    fn run_all_splits(max: usize, input: &[u8], name: &str) -> Outcome {
        let whole = run(max, &[input]);
        for i in 0..=input.len() {
            let split = run(max, &[&input[..i], &input[i..]]);
            assert_eq!(split, whole, "{name}: split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(max, &bytes), whole, "{name}: byte by byte");
        whole
    }

    struct Case {
        name: &'static str,
        input: &'static [u8],
        events: Expected,
        last_id: &'static str,
    }

    const CASES: &[Case] = &[
        Case {
            name: "simple",
            input: b"data: hello\n\n",
            events: &[("message", "hello", "")],
            last_id: "",
        },
        Case {
            name: "data lines joined with LF",
            input: b"data: a\ndata: b\ndata: c\n\n",
            events: &[("message", "a\nb\nc", "")],
            last_id: "",
        },
        Case {
            name: "field without colon is a name with empty value",
            input: b"data\n\ndata\ndata\n\ndata: x\ndata\n\n",
            events: &[
                ("message", "", ""),
                ("message", "\n", ""),
                ("message", "x\n", ""),
            ],
            last_id: "",
        },
        Case {
            name: "empty data value still dispatches",
            input: b"data:\n\n",
            events: &[("message", "", "")],
            last_id: "",
        },
        Case {
            name: "only one leading space stripped",
            input: b"data:x\n\ndata:  x\n\ndata:\tx\n\ndata: a:b\n\ndata::\n\n",
            events: &[
                ("message", "x", ""),
                ("message", " x", ""),
                ("message", "\tx", ""),
                ("message", "a:b", ""),
                ("message", ":", ""),
            ],
            last_id: "",
        },
        Case {
            name: "event type set then reset after dispatch",
            input: b"event: add\ndata: 1\n\ndata: 2\n\n",
            events: &[("add", "1", ""), ("message", "2", "")],
            last_id: "",
        },
        Case {
            name: "empty event value means message",
            input: b"event:\ndata: 1\n\n",
            events: &[("message", "1", "")],
            last_id: "",
        },
        Case {
            name: "block without data resets type, dispatches nothing",
            input: b"event: x\n\ndata: y\n\n",
            events: &[("message", "y", "")],
            last_id: "",
        },
        Case {
            name: "comments ignored",
            input: b": hi\n:\ndata: x\n: mid\ndata: y\n\n:\n\n",
            events: &[("message", "x\ny", "")],
            last_id: "",
        },
        Case {
            name: "unknown and miscased fields ignored",
            input: b"foo: bar\nData: no\nDATA: no\ndata : no\ndata: x\n\n",
            events: &[("message", "x", "")],
            last_id: "",
        },
        Case {
            name: "line endings CRLF, CR, LF mixed",
            input: b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\rdata: e\n\n",
            events: &[
                ("message", "a\nb\nc", ""),
                ("message", "d", ""),
                ("message", "e", ""),
            ],
            last_id: "",
        },
        Case {
            name: "LF CR is two line endings",
            input: b"data: a\n\rdata: b\r\n\r\n",
            events: &[("message", "a", ""), ("message", "b", "")],
            last_id: "",
        },
        Case {
            name: "CR CR LF is two line endings",
            input: b"data: a\r\r\ndata: b\r\n\r\n",
            events: &[("message", "a", ""), ("message", "b", "")],
            last_id: "",
        },
        Case {
            name: "id persists across events",
            input: b"id: 1\ndata: a\n\ndata: b\n\n",
            events: &[("message", "a", "1"), ("message", "b", "1")],
            last_id: "1",
        },
        Case {
            name: "id after data applies to that event",
            input: b"data: a\nid: 9\n\n",
            events: &[("message", "a", "9")],
            last_id: "9",
        },
        Case {
            name: "empty id resets",
            input: b"id: 3\ndata: x\n\nid\ndata: y\n\nid:\ndata: z\n\n",
            events: &[
                ("message", "x", "3"),
                ("message", "y", ""),
                ("message", "z", ""),
            ],
            last_id: "",
        },
        Case {
            name: "id-only block updates buffer, dispatches nothing",
            input: b"id: 5\n\n",
            events: &[],
            last_id: "5",
        },
        Case {
            name: "id with NUL ignored",
            input: b"id: 1\n\nid: a\0b\ndata: x\n\n",
            events: &[("message", "x", "1")],
            last_id: "1",
        },
        Case {
            name: "id keeps spaces after the first",
            input: b"id:  2 \ndata: x\n\n",
            events: &[("message", "x", " 2 ")],
            last_id: " 2 ",
        },
        Case {
            name: "utf-8 multibyte",
            input: "data: h\u{e9}llo \u{2713} \u{1F600}\nevent: \u{e9}t\u{e9}\n\n".as_bytes(),
            events: &[("\u{e9}t\u{e9}", "h\u{e9}llo \u{2713} \u{1F600}", "")],
            last_id: "",
        },
        Case {
            name: "invalid utf-8 replaced",
            input: b"data: a\xffb\ndata: \xe2\x9c\n\n",
            events: &[("message", "a\u{FFFD}b\n\u{FFFD}", "")],
            last_id: "",
        },
        Case {
            name: "leading BOM stripped",
            input: b"\xEF\xBB\xBFdata: x\n\n",
            events: &[("message", "x", "")],
            last_id: "",
        },
        Case {
            name: "second BOM is part of the field name",
            input: b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n",
            events: &[("message", "y", "")],
            last_id: "",
        },
        Case {
            name: "BOM after the start is not stripped",
            input: b"data: x\n\n\xEF\xBB\xBFdata: y\n\n",
            events: &[("message", "x", "")],
            last_id: "",
        },
        Case {
            name: "partial BOM is line content",
            input: b"\xEF\xBBdata: x\n\ndata: y\n\n",
            events: &[("message", "y", "")],
            last_id: "",
        },
        Case {
            name: "partial BOM before a line ending",
            input: b"\xEF\xBB\ndata: y\n\n",
            events: &[("message", "y", "")],
            last_id: "",
        },
        Case {
            name: "BOM then blank line",
            input: b"\xEF\xBB\xBF\ndata: y\n\n",
            events: &[("message", "y", "")],
            last_id: "",
        },
        Case {
            name: "lines longer than one scan block",
            input: b"data: 0123456789012345678901234567890123456789012345678901234567890123\r\ndata: 01234567890123456789012345678901234567890123456789012345678901234567\r\r",
            events: &[(
                "message",
                "0123456789012345678901234567890123456789012345678901234567890123\n01234567890123456789012345678901234567890123456789012345678901234567",
                "",
            )],
            last_id: "",
        },
        Case {
            name: "no blank line: nothing dispatched",
            input: b"data: a\ndata: b\n",
            events: &[],
            last_id: "",
        },
    ];

    #[test]
    fn cases_under_every_split() {
        for case in CASES {
            let got = run_all_splits(BIG, case.input, case.name);
            assert_eq!(got.events, evs(case.events), "{}", case.name);
            assert_eq!(got.error, None, "{}", case.name);
            assert_eq!(got.last_id, case.last_id, "{}", case.name);
        }
    }

    #[test]
    fn find_eol_at_every_position() {
        for len in 0..100 {
            let plain = vec![b'a'; len];
            assert_eq!(find_eol(&plain), None, "len {len}");
            for pos in 0..len {
                for eol in [b'\n', b'\r'] {
                    let mut bytes = plain.clone();
                    bytes[pos] = eol;
                    // A second hit later must not win over the first.
                    if let Some(last) = bytes.last_mut().filter(|_| pos + 1 < len) {
                        *last = b'\n';
                    }
                    assert_eq!(find_eol(&bytes), Some(pos), "len {len}, pos {pos}");
                }
            }
        }
    }

    #[test]
    fn multi_event_stream_every_split() {
        let input: &[u8] = b"\xEF\xBB\xBF: welcome\r\nretry: 2500\r\nid: 1\r\nevent: greet\r\ndata: h\xC3\xA9llo\r\ndata: w\xF0\x9F\x98\x80rld\r\n\r\ndata: two\rid: 2\r\rid: 3\n\n: keepalive\n\nevent: e\ndata\ndata: \xE2\x9C\x93\n\ndata: partial";
        let expected = evs(&[
            ("greet", "h\u{e9}llo\nw\u{1F600}rld", "1"),
            ("message", "two", "2"),
            ("e", "\n\u{2713}", "3"),
        ]);
        let whole = run_all_splits(BIG, input, "multi-event");
        assert_eq!(whole.events, expected);
        assert_eq!(whole.retry, Some(2500));
        assert_eq!(whole.last_id, "3");
        // Three chunks at every pair of cut points.
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = run(BIG, &[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, whole, "cuts at {i}, {j}");
            }
        }
    }

    #[test]
    fn explicit_chunkings() {
        let cases: &[(&str, &[&[u8]], Expected)] = &[
            (
                "CR | LF is one line ending",
                &[b"data: a\r", b"\ndata: b\r\n\r\n"],
                &[("message", "a\nb", "")],
            ),
            (
                "CR | empty chunk | LF is still one line ending",
                &[b"data: a\r", b"", b"\ndata: b\n\n"],
                &[("message", "a\nb", "")],
            ),
            (
                "CR | CR is two",
                &[b"data: a\r", b"\rdata: b\n\n"],
                &[("message", "a", ""), ("message", "b", "")],
            ),
            (
                "utf-8 char split",
                &[b"data: \xF0\x9F", b"\x98", b"\x80!\n\n"],
                &[("message", "\u{1F600}!", "")],
            ),
            (
                "BOM split in three",
                &[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"],
                &[("message", "x", "")],
            ),
            (
                "BOM split, then a second BOM",
                &[b"\xEF\xBB", b"\xBF\xEF", b"\xBB\xBFdata: x\n\ndata: y\n\n"],
                &[("message", "y", "")],
            ),
            (
                "empty chunks anywhere",
                &[b"", b"\xEF\xBB\xBF", b"", b"data: x", b"", b"\n", b"\n"],
                &[("message", "x", "")],
            ),
        ];
        for &(name, chunks, expected) in cases {
            let got = run(BIG, chunks);
            assert_eq!(got.events, evs(expected), "{name}");
            assert_eq!(got.error, None, "{name}");
        }
    }

    #[test]
    fn retry_field() {
        let cases: &[(&str, &[u8], Option<u64>)] = &[
            ("digits", b"retry:5000\n", Some(5000)),
            ("with space", b"retry: 5000\n", Some(5000)),
            ("trailing letter", b"retry: 1a\n", None),
            ("empty", b"retry:\n", None),
            ("no colon", b"retry\n", None),
            ("negative", b"retry: -1\n", None),
            ("trailing space", b"retry: 10 \n", None),
            ("two spaces", b"retry:  10\n", None),
            ("decimal", b"retry: 1.5\n", None),
            ("zero", b"retry: 0\n", Some(0)),
            ("leading zeros", b"retry: 007\n", Some(7)),
            ("last valid wins", b"retry: 1000\nretry: 2000\n", Some(2000)),
            (
                "invalid keeps previous",
                b"retry: 1000\nretry: x\n",
                Some(1000),
            ),
            ("u64 max", b"retry: 18446744073709551615\n", Some(u64::MAX)),
            ("overflow ignored", b"retry: 18446744073709551616\n", None),
            ("no dispatch needed", b"data: x\nretry: 3\n", Some(3)),
        ];
        for &(name, input, expected) in cases {
            assert_eq!(run_all_splits(BIG, input, name).retry, expected, "{name}");
        }
    }

    #[test]
    fn take_retry_returns_once() {
        let mut p = SseParser::new(BIG);
        let mut out = Vec::new();
        assert_eq!(p.feed(b"retry: 10\nretry: 20\n", &mut out), Ok(()));
        assert_eq!(p.take_retry(), Some(20));
        assert_eq!(p.take_retry(), None);
        assert_eq!(p.feed(b"retry: 30\n", &mut out), Ok(()));
        assert_eq!(p.take_retry(), Some(30));
    }

    #[test]
    fn reset_stream() {
        // (name, chunks before reset, chunks after reset, events, last id at the end)
        type ResetCase = (
            &'static str,
            &'static [&'static [u8]],
            &'static [&'static [u8]],
            Expected,
            &'static str,
        );
        let cases: &[ResetCase] = &[
            (
                "partial event discarded",
                &[b"data: a\n"],
                &[b"data: b\n\n"],
                &[("message", "b", "")],
                "",
            ),
            (
                "partial line discarded",
                &[b"data: abc"],
                &[b"\n\ndata: b\n\n"],
                &[("message", "b", "")],
                "",
            ),
            (
                "pending event type discarded",
                &[b"event: x\n"],
                &[b"data: b\n\n"],
                &[("message", "b", "")],
                "",
            ),
            (
                "pending CR forgotten: LF after reset is a blank line",
                &[b"data: a\r"],
                &[b"\ndata: b\n\n"],
                &[("message", "b", "")],
                "",
            ),
            (
                "dispatched id kept",
                &[b"id: 7\ndata: a\n\n"],
                &[b"data: b\n\n"],
                &[("message", "a", "7"), ("message", "b", "7")],
                "7",
            ),
            (
                "id-only block kept",
                &[b"id: 8\n\n"],
                &[b"data: b\n\n"],
                &[("message", "b", "8")],
                "8",
            ),
            (
                "id of an undispatched block rolled back",
                &[b"id: 1\ndata: a\n\nid: 2\ndata: b\n"],
                &[b"data: c\n\n"],
                &[("message", "a", "1"), ("message", "c", "1")],
                "1",
            ),
            (
                "BOM stripped again on the next stream",
                &[b"\xEF\xBB\xBFdata: a\n\n"],
                &[b"\xEF\xBB\xBFdata: b\n\n"],
                &[("message", "a", ""), ("message", "b", "")],
                "",
            ),
            (
                "half a BOM discarded, next stream starts fresh",
                &[b"\xEF\xBB"],
                &[b"\xEF\xBB\xBFdata: b\n\n"],
                &[("message", "b", "")],
                "",
            ),
        ];
        for &(name, before, after, expected, last_id) in cases {
            let mut p = SseParser::new(BIG);
            let mut out = Vec::new();
            for chunk in before {
                assert_eq!(p.feed(chunk, &mut out), Ok(()), "{name}");
            }
            p.reset_stream();
            for chunk in after {
                assert_eq!(p.feed(chunk, &mut out), Ok(()), "{name}");
            }
            assert_eq!(out, evs(expected), "{name}");
            assert_eq!(p.last_event_id(), last_id, "{name}");
        }
    }

    #[test]
    fn with_last_event_id() {
        let p = SseParser::new(BIG).with_last_event_id("42".to_owned());
        assert_eq!(p.last_event_id(), "42");
        let got = run_with(p, &[b"data: x\n\nid: 43\ndata: y\n"]);
        assert_eq!(got.events, evs(&[("message", "x", "42")]));

        let mut p = SseParser::new(BIG).with_last_event_id("42".to_owned());
        let mut out = Vec::new();
        assert_eq!(p.feed(b"id: 43\ndata: y\n", &mut out), Ok(()));
        p.reset_stream();
        assert_eq!(p.last_event_id(), "42");
    }

    #[test]
    fn limits() {
        let too_large = Some(SseError::TooLarge { limit: 10 });
        // (name, input, events before any error, error)
        type LimitCase = (&'static str, &'static [u8], Expected, Option<SseError>);
        let cases: &[LimitCase] = &[
            (
                "line of exactly max",
                b"data: 1234\n\n",
                &[("message", "1234", "")],
                None,
            ),
            ("line over max", b"data: 12345\n\n", &[], too_large.clone()),
            (
                "unterminated line over max",
                b"data: 12345",
                &[],
                too_large.clone(),
            ),
            ("comment over max", b":1234567890\n", &[], too_large.clone()),
            (
                "data of exactly max",
                b"data:1234\ndata:12345\n\n",
                &[("message", "1234\n12345", "")],
                None,
            ),
            (
                "data over max",
                b"data:12345\ndata:12345\n\n",
                &[],
                too_large.clone(),
            ),
            (
                "data over max by its separators",
                b"data:123\ndata:123\ndata:123\n\n",
                &[],
                too_large.clone(),
            ),
            (
                "earlier events still delivered",
                b"data: a\n\ndata: 0123456789\n\ndata: b\n\n",
                &[("message", "a", "")],
                too_large.clone(),
            ),
            (
                "BOM does not count",
                b"\xEF\xBB\xBFdata: 1234\n\n",
                &[("message", "1234", "")],
                None,
            ),
            (
                "held-back BOM bytes count",
                b"\xEF\xBBdata:1234\n",
                &[],
                too_large.clone(),
            ),
            (
                "replacement characters count against data",
                b"data:\xff\xff\xff\xff\n\n",
                &[],
                too_large.clone(),
            ),
        ];
        for &(name, input, expected, ref error) in cases {
            let got = run_all_splits(10, input, name);
            assert_eq!(got.events, evs(expected), "{name}");
            assert_eq!(&got.error, error, "{name}");
        }
    }

    #[test]
    fn endless_line_fails_early() {
        const MAX: usize = 1 << 20;
        const CHUNK: usize = 64 << 10;
        let chunk = vec![b'a'; CHUNK];
        let mut p = SseParser::new(MAX);
        let mut out = Vec::new();
        assert_eq!(p.feed(b"data: ", &mut out), Ok(()));
        let mut fed = 6;
        let mut failed = false;
        while fed < 10_000_000 {
            fed += CHUNK;
            if p.feed(&chunk, &mut out).is_err() {
                failed = true;
                break;
            }
            assert!(p.line.len() <= MAX, "buffered {} bytes", p.line.len());
            assert!(p.line.capacity() <= 2 * MAX + CHUNK);
        }
        assert!(failed, "no error after {fed} bytes");
        assert!(fed <= MAX + CHUNK + 6, "error only after {fed} bytes");
        assert!(out.is_empty());
        // The held memory is released and the parser stays failed until reset.
        assert_eq!(p.line.capacity(), 0);
        assert_eq!(
            p.feed(b"\n\ndata: x\n\n", &mut out),
            Err(SseError::TooLarge { limit: MAX })
        );
        assert!(out.is_empty());
        p.reset_stream();
        assert_eq!(p.feed(b"data: x\n\n", &mut out), Ok(()));
        assert_eq!(out, evs(&[("message", "x", "")]));
    }

    #[test]
    fn endless_data_fails_early() {
        const MAX: usize = 1 << 20;
        let line = [b"data: ".as_slice(), &[b'a'; 1000], b"\n"].concat();
        let mut p = SseParser::new(MAX);
        let mut out = Vec::new();
        let mut fed = 0;
        let result = loop {
            if let Err(e) = p.feed(&line, &mut out) {
                break e;
            }
            fed += 1000;
            assert!(fed <= MAX, "data grew to {fed} bytes");
        };
        assert_eq!(result, SseError::TooLarge { limit: MAX });
        assert!(out.is_empty());
    }

    #[test]
    fn error_display() {
        let msg = SseError::TooLarge { limit: 1024 }.to_string();
        assert_eq!(
            msg,
            "sse line or event data larger than 1024 bytes; raise maxMessageSize or fix the server"
        );
    }
}
