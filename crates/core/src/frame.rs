//! The event envelope: every frame a subscriber receives, tagged by `kind` and numbered by `seq`.
//!
//! These types are the wire contract with the webview (mirrored in `guest-js/types.ts`); change both together.

use serde::{Deserialize, Serialize};

/// How a connection reaches its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `ws://` or `wss://`, tokio-tungstenite.
    Websocket,
    /// Server-Sent Events over `http://` or `https://`.
    Sse,
    /// HTTP polling (the degraded path, or forced with `transport: "poll"`).
    Poll,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Sse => "sse",
            Transport::Poll => "poll",
        }
    }
}

/// The observable state of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// An attempt to open the stream is under way.
    Connecting,
    /// The stream is open and delivering.
    Connected,
    /// The stream dropped; waiting `delayMs` before the next attempt.
    Reconnecting,
    /// Degraded but delivering: HTTP polling instead of a stream.
    Polling,
    /// Terminal until `reconnect` is called: a fatal error, or retries exhausted.
    Failed,
    /// Closed on purpose, by the app or by the server.
    Disconnected,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Reconnecting => "reconnecting",
            State::Polling => "polling",
            State::Failed => "failed",
            State::Disconnected => "disconnected",
        }
    }

    /// No further frames will come without an explicit `reconnect`.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Failed | State::Disconnected)
    }
}

/// One frame of the envelope. `seq` starts at 1 per connection and rises by exactly one per frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum Frame {
    /// A state transition.
    State {
        seq: u64,
        state: State,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transport: Option<Transport>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// On `connected` over WebSocket: the subprotocol the server chose, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
        /// True on the copy of the current state that a subscriber joining a live upstream gets first. It
        /// repeats an earlier `seq`, so it is not a gap, and the next frame has a later `seq`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        snapshot: bool,
    },
    /// Data from the server.
    Message {
        seq: u64,
        transport: Transport,
        /// SSE event type (`"message"` when the server named none); absent for WebSocket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<String>,
        /// The text, or base64 when `binary` is true.
        data: String,
        /// SSE last event id (`""` when none was set); absent for WebSocket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_event_id: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        binary: bool,
    },
    /// Something went wrong. `fatal: true` is followed by a `failed` state.
    Error {
        seq: u64,
        message: String,
        fatal: bool,
    },
    /// A WebSocket close handshake (from either side), with its code and reason.
    Close { seq: u64, code: u16, reason: String },
}

impl Frame {
    /// The same state frame marked as a late joiner's snapshot; other frames unchanged.
    pub fn as_snapshot(&self) -> Frame {
        let mut copy = self.clone();
        if let Frame::State { snapshot, .. } = &mut copy {
            *snapshot = true;
        }
        copy
    }

    pub fn seq(&self) -> u64 {
        match self {
            Frame::State { seq, .. }
            | Frame::Message { seq, .. }
            | Frame::Error { seq, .. }
            | Frame::Close { seq, .. } => *seq,
        }
    }

    /// Rough size on the wire, used to cap a batch by bytes without serialising it twice.
    pub fn approx_len(&self) -> usize {
        match self {
            Frame::Message {
                data,
                event,
                last_event_id,
                ..
            } => {
                64 + data.len()
                    + event.as_ref().map_or(0, String::len)
                    + last_event_id.as_ref().map_or(0, String::len)
            }
            Frame::State { reason, .. } => 96 + reason.as_ref().map_or(0, String::len),
            Frame::Error { message, .. } => 48 + message.len(),
            Frame::Close { reason, .. } => 48 + reason.len(),
        }
    }
}

/// A frame before it is numbered; the connection assigns `seq` when it emits it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FrameBody {
    State {
        state: State,
        transport: Option<Transport>,
        attempt: Option<u32>,
        delay_ms: Option<u64>,
        reason: Option<String>,
        protocol: Option<String>,
    },
    Message {
        transport: Transport,
        event: Option<String>,
        data: String,
        last_event_id: Option<String>,
        binary: bool,
    },
    Error {
        message: String,
        fatal: bool,
    },
    Close {
        code: u16,
        reason: String,
    },
}

impl FrameBody {
    pub(crate) fn number(self, seq: u64) -> Frame {
        match self {
            FrameBody::State {
                state,
                transport,
                attempt,
                delay_ms,
                reason,
                protocol,
            } => Frame::State {
                seq,
                state,
                transport,
                attempt,
                delay_ms,
                reason,
                protocol,
                snapshot: false,
            },
            FrameBody::Message {
                transport,
                event,
                data,
                last_event_id,
                binary,
            } => Frame::Message {
                seq,
                transport,
                event,
                data,
                last_event_id,
                binary,
            },
            FrameBody::Error { message, fatal } => Frame::Error {
                seq,
                message,
                fatal,
            },
            FrameBody::Close { code, reason } => Frame::Close { seq, code, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_matches_the_documented_json() {
        let cases = vec![
            (
                Frame::State {
                    seq: 1,
                    state: State::Connecting,
                    transport: Some(Transport::Sse),
                    attempt: Some(0),
                    delay_ms: None,
                    reason: None,
                    protocol: None,
                    snapshot: false,
                },
                json!({"kind":"state","seq":1,"state":"connecting","transport":"sse","attempt":0}),
            ),
            (
                Frame::Message {
                    seq: 3,
                    transport: Transport::Sse,
                    event: Some("summary".into()),
                    data: "hi".into(),
                    last_event_id: Some("42".into()),
                    binary: false,
                },
                json!({"kind":"message","seq":3,"transport":"sse","event":"summary","data":"hi","lastEventId":"42"}),
            ),
            (
                Frame::Message {
                    seq: 4,
                    transport: Transport::Websocket,
                    event: None,
                    data: "AAEC".into(),
                    last_event_id: None,
                    binary: true,
                },
                json!({"kind":"message","seq":4,"transport":"websocket","data":"AAEC","binary":true}),
            ),
            (
                Frame::State {
                    seq: 5,
                    state: State::Reconnecting,
                    transport: None,
                    attempt: Some(1),
                    delay_ms: Some(1000),
                    reason: Some("stream ended".into()),
                    protocol: None,
                    snapshot: false,
                },
                json!({"kind":"state","seq":5,"state":"reconnecting","attempt":1,"delayMs":1000,"reason":"stream ended"}),
            ),
            (
                Frame::Error {
                    seq: 10,
                    message: "HTTP 401 Unauthorized".into(),
                    fatal: true,
                },
                json!({"kind":"error","seq":10,"message":"HTTP 401 Unauthorized","fatal":true}),
            ),
            (
                Frame::Close {
                    seq: 12,
                    code: 1000,
                    reason: "bye".into(),
                },
                json!({"kind":"close","seq":12,"code":1000,"reason":"bye"}),
            ),
        ];
        for (frame, expected) in cases {
            let got = serde_json::to_value(&frame).unwrap();
            assert_eq!(got, expected, "expected {expected}, got {got}");
            let back: Frame = serde_json::from_value(got).unwrap();
            assert_eq!(back, frame);
        }
    }
}
