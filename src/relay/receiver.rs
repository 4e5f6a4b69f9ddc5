//! The page's receiver: the global through which the guest bindings take the batches of the direct route, and
//! the script that calls it. Tauri's side of the contract with `guest-js/receiver.ts`; the batch inside is the
//! engine's compact encoding ([`crate::core::wire`]).

use std::sync::Arc;

use crate::core::{wire, Frame};

/// The global object through which the guest bindings receive batches evaluated in the page.
pub(crate) const RECEIVER: &str = "__TAURI_PLUGIN_REALTIME__";

/// The script that hands a batch to the bindings' receiver: `<receiver>.deliver("<id>", <compact batch>)`.
///
/// Why a script of its own: JSON is a JavaScript expression, so the batch arrives as an array literal of string
/// literals that the webview compiles once, with no second parse (`JSON.parse` of a JSON string), and in one
/// evaluation however large (Tauri's channels evaluate a message directly only under 8 KiB and fetch anything
/// larger). Measured in docs/BENCHMARKS.md. The batch holds only string, number, boolean and null literals and
/// objects with the fixed keys of [`Frame`], so it can carry nothing that runs. A page without the receiver
/// (reloaded, or not using the bindings) ignores the call.
pub fn script(id: &str, frames: &[Arc<Frame>]) -> String {
    let approx: usize = frames.iter().map(|f| f.approx_len() + 8).sum();
    let mut out = String::with_capacity(approx + RECEIVER.len() * 2 + id.len() + 40);
    out.push_str("window.");
    out.push_str(RECEIVER);
    out.push_str("&&window.");
    out.push_str(RECEIVER);
    out.push_str(".deliver(");
    wire::push_json_str(&mut out, id);
    out.push(',');
    wire::push_batch(&mut out, frames);
    out.push(')');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// The fixture the bindings' test evaluates (`guest-js/tests/wire.test.ts`); the engine's test checks its
    /// `wire` and `frames`, this one its `script`.
    fn fixture() -> (Value, Vec<Arc<Frame>>) {
        let fixture: Value =
            serde_json::from_str(include_str!("../../guest-js/tests/fixtures/batch.json"))
                .expect("the fixture is JSON");
        let frames: Vec<Frame> = serde_json::from_value(fixture["frames"].clone())
            .expect("the fixture's frames are frames");
        (fixture, frames.into_iter().map(Arc::new).collect())
    }

    /// The batch inside a script, checked to be the receiver call around it.
    fn batch_of<'a>(script: &'a str, id: &str) -> &'a str {
        let prefix = format!("window.{RECEIVER}&&window.{RECEIVER}.deliver({id:?},");
        script
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("expected the receiver call for {id:?}, got {script}"))
    }

    #[test]
    fn the_script_is_the_one_the_bindings_test_evaluates() {
        let (fixture, frames) = fixture();
        let id = fixture["id"].as_str().expect("an id");
        assert_eq!(
            fixture["script"].as_str().expect("a script"),
            script(id, &frames)
        );
    }

    #[test]
    fn a_script_is_the_receiver_call_around_the_compact_batch() {
        let (_, frames) = fixture();
        let s = script("a-1_B", &frames);
        let batch = batch_of(&s, "a-1_B");
        assert_eq!(batch.as_bytes(), wire::encode(&frames));
        let expected: Vec<Frame> = frames.iter().map(|f| (**f).clone()).collect();
        assert_eq!(wire::decode(batch.as_bytes()).unwrap(), expected);
        assert_eq!(batch_of(&script("x", &[]), "x"), "[]");
    }

    #[test]
    fn a_frames_data_stays_inside_a_string_literal() {
        let hostile = "\")]);alert(1);//</script>\u{2028}\u{0}";
        let frames = [Arc::new(Frame::Message {
            seq: 1,
            transport: crate::core::Transport::Websocket,
            event: None,
            data: hostile.into(),
            last_event_id: None,
            binary: false,
        })];
        let s = script("x", &frames);
        let batch = batch_of(&s, "x");
        assert!(!batch.contains('\0'), "control characters are escaped");
        match &wire::decode(batch.as_bytes()).unwrap()[..] {
            [Frame::Message { data, .. }] => assert_eq!(data, hostile),
            other => panic!("expected the one message back, got {other:?}"),
        }
    }
}
