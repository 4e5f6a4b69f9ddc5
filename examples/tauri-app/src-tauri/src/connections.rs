//! The app commands of the components panel and the POST + SSE chat: they read and restart the demo server's
//! room and feed counters over HTTP on loopback, as the status commands in `lib.rs` do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{demo::DemoUrls, DemoClient};

/// What the panels show from the server's side: the room's counters (its messages left out) and the open
/// `/feed/stream?via=...` responses per name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomFeedsStatus {
    pub room: RoomCounts,
    pub feeds: BTreeMap<String, usize>,
}

/// `RoomLog` without its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomCounts {
    pub posts: u64,
    pub replays: u64,
    /// POSTs refused during a restart.
    pub refused: u64,
    pub streams: usize,
    pub restarts: u64,
    pub down: bool,
    /// Messages stored.
    pub stored: usize,
}

fn base(urls: &DemoUrls) -> &str {
    urls.status.trim_end_matches("/status")
}

impl DemoClient {
    async fn room_counts(&self, request: reqwest::RequestBuilder) -> Result<RoomCounts, String> {
        let log: crate::demo::RoomLog = self.json(request).await?;
        Ok(RoomCounts {
            posts: log.posts,
            replays: log.replays,
            refused: log.refused_posts,
            streams: log.streams,
            restarts: log.restarts,
            down: log.down,
            stored: log.messages.len(),
        })
    }
}

/// The room's counters and who holds the feed, as the demo server sees them.
#[tauri::command]
pub(crate) async fn demo_room_feeds_status(
    urls: tauri::State<'_, DemoUrls>,
    client: tauri::State<'_, DemoClient>,
) -> Result<RoomFeedsStatus, String> {
    let base = base(&urls);
    let room = client
        .room_counts(client.0.get(format!("{base}/room/log")))
        .await?;
    let feeds = client.json(client.0.get(format!("{base}/feeds"))).await?;
    Ok(RoomFeedsStatus { room, feeds })
}

/// Restarts the chat room: its streams end and it refuses streams and POSTs for a moment (3 s).
#[tauri::command]
pub(crate) async fn demo_room_restart(
    urls: tauri::State<'_, DemoUrls>,
    client: tauri::State<'_, DemoClient>,
) -> Result<RoomCounts, String> {
    let request = client
        .0
        .post(format!("{}/control/room", base(&urls)))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{}");
    client.room_counts(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::DemoServer;
    use serde_json::{json, Value};
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, INVOKE_KEY};
    use tauri::webview::InvokeRequest;

    #[test]
    fn panels_commands_read_and_restart_the_room_over_http() {
        let server = tauri::async_runtime::block_on(DemoServer::start()).expect("demo server");
        let app = crate::register(mock_builder(), server.urls())
            .build(mock_context(noop_assets()))
            .expect("expected the app to build on the mock runtime");
        let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("expected a mock webview");
        let invoke = |cmd: &str| -> Value {
            get_ipc_response(
                &webview,
                InvokeRequest {
                    cmd: cmd.into(),
                    callback: CallbackFn(0),
                    error: CallbackFn(1),
                    url: "tauri://localhost".parse().unwrap(),
                    body: InvokeBody::Json(json!({})),
                    headers: Default::default(),
                    invoke_key: INVOKE_KEY.to_string(),
                },
            )
            .unwrap_or_else(|e| panic!("expected {cmd} to succeed, got {e:?}"))
            .deserialize::<Value>()
            .expect("expected a JSON answer")
        };

        let status: RoomFeedsStatus =
            serde_json::from_value(invoke("demo_room_feeds_status")).unwrap();
        assert_eq!(
            status,
            RoomFeedsStatus::default(),
            "expected nothing yet, got {status:?}"
        );

        let restarted: RoomCounts = serde_json::from_value(invoke("demo_room_restart")).unwrap();
        assert!(
            restarted.down && restarted.restarts == 1,
            "expected the room down after one restart, got {restarted:?}"
        );
        let status: RoomFeedsStatus =
            serde_json::from_value(invoke("demo_room_feeds_status")).unwrap();
        assert_eq!(
            status.room.restarts, 1,
            "expected the restart counted, got {status:?}"
        );
        drop(server);
    }
}
