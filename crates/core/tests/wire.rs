//! The compact batch encoding against the fixture the bindings' own test decodes
//! (`guest-js/tests/fixtures/batch.json`): the bytes Rust writes are the bytes the page expands, into the very
//! frames the fixture lists. The Tauri layer checks the receiver's script around it against the same file.

use std::sync::Arc;

use serde_json::Value;
use tauri_plugin_realtime_core::{wire, Frame};

#[test]
fn the_fixture_round_trips_and_expands_to_its_frames() {
    let fixture: Value =
        serde_json::from_str(include_str!("../../../guest-js/tests/fixtures/batch.json")).unwrap();
    let bytes = fixture["wire"].as_str().expect("a wire string").as_bytes();
    let frames: Vec<Frame> = wire::decode(bytes).expect("the fixture decodes");
    let expanded: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::to_value(f).unwrap())
        .collect();
    assert_eq!(
        fixture["frames"],
        Value::Array(expanded),
        "expected the fixture's wire to expand to its frames"
    );
    let again: Vec<Arc<Frame>> = frames.into_iter().map(Arc::new).collect();
    assert_eq!(
        String::from_utf8(wire::encode(&again)).unwrap(),
        fixture["wire"].as_str().unwrap(),
        "expected Rust to encode the fixture's frames to exactly its wire"
    );
}
