//! `GET /topics`: a WebSocket app server of the usual kind. It speaks JSON objects with a `type` field, keeps each
//! socket's topic subscriptions (lost when the socket closes, so a client must subscribe again after every
//! reconnect), publishes typed messages on each subscribed topic, and answers an application heartbeat
//! (`{"type":"ping"}` gets `{"type":"pong"}`) while treating protocol pings as nothing.
//!
//! In: `{"type":"subscribe","topic":T}` (answered by `{"type":"subscribed","topic":T}`), `{"type":"unsubscribe",
//! "topic":T}` (`unsubscribed`), `{"type":"ping"}` (`pong`, unless `/control/pings` says not to); anything else
//! gets `{"type":"error","message":...}`.
//!
//! Out, every [`PUBLISH_EVERY`], one message per subscribed topic, `n` rising per socket: `news` gives
//! `{"type":"headline","topic":"news","n":..,"title":..}`, `prices` gives `{"type":"price","topic":"prices",
//! "n":..,"symbol":"TAURI","value":..}`, `weather` gives `{"type":"reading","topic":"weather","n":..,
//! "celsius":..}`, any other topic `{"type":"notice","topic":T,"n":..,"text":..}`.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use axum::{
    extract::{
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
    routing::get,
    Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{faults::Cut, AppState, Shared};

/// How often each subscribed topic gets a message.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(1000);

/// The longest topic name accepted, and the most topics one socket may hold.
const MAX_TOPIC_LEN: usize = 64;
const MAX_TOPICS: usize = 16;

/// One open `/topics` socket as `/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicSocket {
    /// Rises by one per accepted socket, from 1.
    pub id: u64,
    /// Subscribed topics, in the order they were subscribed.
    pub topics: Vec<String>,
    /// `subscribe` messages received (a repeat of a held topic counts too).
    pub subscribes: u64,
    pub unsubscribes: u64,
    /// `{"type":"ping"}` messages received, answered or not.
    pub pings: u64,
    /// Typed messages published to this socket.
    pub published: u64,
}

/// The `/topics` sockets and their counters, for `/status`.
#[derive(Default)]
pub(super) struct Topics {
    open: Mutex<BTreeMap<u64, TopicSocket>>,
    pub(super) accepted: AtomicU64,
    pub(super) pings_answered: AtomicU64,
    pub(super) pings_ignored: AtomicU64,
    pub(super) protocol_pings: AtomicU64,
}

impl Topics {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, TopicSocket>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn sockets(&self) -> Vec<TopicSocket> {
        self.lock().values().cloned().collect()
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut TopicSocket)) {
        if let Some(socket) = self.lock().get_mut(&id) {
            change(socket);
        }
    }
}

/// Removes a socket from the open ones when its handler ends, however it ends.
struct Registered<'a>(&'a Topics, u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/topics", get(topics))
}

async fn topics(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    if !state.control.streaming() {
        return state.control.refuse();
    }
    ws.on_upgrade(move |socket| async move { serve(socket, &state).await })
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    topic: Option<String>,
}

fn publication(topic: &str, n: u64) -> Value {
    match topic {
        "news" => {
            json!({ "type": "headline", "topic": topic, "n": n, "title": format!("Headline #{n}: streams stay open") })
        }
        "prices" => {
            json!({ "type": "price", "topic": topic, "n": n, "symbol": "TAURI", "value": 100 + (n * 7) % 23 })
        }
        "weather" => json!({ "type": "reading", "topic": topic, "n": n, "celsius": 12 + (n % 9) }),
        _ => {
            json!({ "type": "notice", "topic": topic, "n": n, "text": format!("notice #{n} on {topic}") })
        }
    }
}

async fn serve(mut socket: WebSocket, state: &Shared) {
    let topics = &state.topics;
    let id = topics.accepted.fetch_add(1, Ordering::SeqCst) + 1;
    topics.lock().insert(
        id,
        TopicSocket {
            id,
            ..TopicSocket::default()
        },
    );
    let _registered = Registered(topics, id);
    let cut = state.faults.cut();
    tokio::pin!(cut);
    let shutdown = state.shutdown.clone();
    let mut streaming = state.control.watch();
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        let replies: Vec<Value> = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => answer(state, id, text.as_str()),
                Some(Ok(Message::Ping(_))) => {
                    // The library answers it; the application does not count it as a sign of life.
                    topics.protocol_pings.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                Some(Ok(Message::Binary(_))) => vec![json!({ "type": "error", "message": "send JSON text" })],
                Some(Ok(Message::Close(frame))) => {
                    state.control.closed_with(frame.map_or(1005, |f| f.code));
                    continue;
                }
                Some(Ok(Message::Pong(_))) => continue,
                Some(Err(_)) | None => return,
            },
            _ = publish.tick() => {
                let held = topics.lock().get(&id).map(|s| s.topics.clone()).unwrap_or_default();
                let out: Vec<Value> = held.iter().map(|topic| { n += 1; publication(topic, n) }).collect();
                topics.update(id, |s| s.published += out.len() as u64);
                out
            }
            how = &mut cut => {
                if how == Cut::Stopped {
                    let bye = CloseFrame { code: 1001, reason: "server stopping".into() };
                    let _ = socket.send(Message::Close(Some(bye))).await;
                }
                return;
            }
            () = shutdown.cancelled() => {
                let bye = CloseFrame { code: 1001, reason: "server shutting down".into() };
                let _ = socket.send(Message::Close(Some(bye))).await;
                return;
            }
            () = super::control::streaming_off(&mut streaming) => {
                let bye = CloseFrame { code: super::CLOSE_STREAMING_OFF, reason: "streaming switched off".into() };
                let _ = socket.send(Message::Close(Some(bye))).await;
                return;
            }
        };
        for reply in replies {
            state.faults.pace().await;
            if socket
                .send(Message::Text(reply.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// The replies to one text message from socket `id`.
fn answer(state: &Shared, id: u64, text: &str) -> Vec<Value> {
    let topics = &state.topics;
    let Ok(incoming) = serde_json::from_str::<Incoming>(text) else {
        return vec![
            json!({ "type": "error", "message": "expected a JSON object with a string \"type\"" }),
        ];
    };
    let topic = incoming
        .topic
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOPIC_LEN);
    match (incoming.kind.as_str(), topic) {
        ("ping", _) => {
            topics.update(id, |s| s.pings += 1);
            if state.faults.answer_pings() {
                topics.pings_answered.fetch_add(1, Ordering::SeqCst);
                vec![json!({ "type": "pong" })]
            } else {
                topics.pings_ignored.fetch_add(1, Ordering::SeqCst);
                Vec::new()
            }
        }
        ("subscribe", Some(topic)) => {
            let mut full = false;
            topics.update(id, |s| {
                s.subscribes += 1;
                if !s.topics.contains(&topic) {
                    full = s.topics.len() >= MAX_TOPICS;
                    if !full {
                        s.topics.push(topic.clone());
                    }
                }
            });
            if full {
                vec![
                    json!({ "type": "error", "message": format!("at most {MAX_TOPICS} topics per socket") }),
                ]
            } else {
                vec![json!({ "type": "subscribed", "topic": topic })]
            }
        }
        ("unsubscribe", Some(topic)) => {
            topics.update(id, |s| {
                s.unsubscribes += 1;
                s.topics.retain(|t| *t != topic);
            });
            vec![json!({ "type": "unsubscribed", "topic": topic })]
        }
        ("subscribe" | "unsubscribe", None) => {
            vec![
                json!({ "type": "error", "message": format!("a topic of 1 to {MAX_TOPIC_LEN} bytes is needed") }),
            ]
        }
        (other, _) => {
            vec![json!({ "type": "error", "message": format!("unknown type {other:?}") })]
        }
    }
}
