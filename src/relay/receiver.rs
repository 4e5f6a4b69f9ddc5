//! The page's receiver: the global through which the guest bindings take the batches of the direct route, and
//! how a batch reaches it. Tauri's side of the contract with `guest-js/receiver.ts`; the batch inside is the
//! engine's compact encoding ([`crate::core::wire`]).

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use tauri::{Runtime, WebviewWindow};

use crate::core::{wire, Frame};

/// The global object through which the guest bindings receive batches evaluated in the page.
pub(crate) const RECEIVER: &str = "__TAURI_PLUGIN_REALTIME__";

/// Hands a batch to the page's receiver, by the cheaper of two forms for the webview: a script of its own
/// ([`script`]), or on WebKitGTK, unless its frames are very large, a call of one unchanging function with the
/// batch as its argument ([`by_argument`]). Both go through the app's main thread in the order they are made, so a
/// batch never overtakes the one before it whichever form each takes.
pub fn deliver<R: Runtime>(
    webview: &WebviewWindow<R>,
    id: &str,
    frames: &[Arc<Frame>],
) -> tauri::Result<()> {
    #[cfg(webkitgtk)]
    if by_argument(frames) {
        return argument::deliver(webview, id, frames);
    }
    webview.eval(script(id, frames))
}

/// Mean size of a batch's frames (as [`Frame::approx_len`] counts them) up to which a batch goes as an argument:
/// the default of [`set_argument_max_frame`].
///
/// Why: the script form makes the web process compile the batch and atomize every string literal in it; the
/// argument form arrives as a string the web process parses with `JSON.parse`, and costs the app a conversion of
/// the text for WebKit on the main thread. In the `micro` diagnostic (docs/BENCHMARKS.md) the argument form took
/// 0.3-0.7x the web process's time at every size measured, 64 B to 256 KiB, for about the same app time up to
/// 1 KiB and 5-60 % more above, and less time in all. Above 256 KiB it was not measured, and a single conversion of several MiB would hold the
/// main thread, which every window event and command waits on, for milliseconds: such batches stay scripts.
pub(crate) const ARGUMENT_MAX_FRAME: usize = 256 * 1024;

static ARGUMENT_MAX: AtomicUsize = AtomicUsize::new(ARGUMENT_MAX_FRAME);

/// Frames a batch needs to go as an argument: the default of [`set_argument_min_batch`]. A lone frame (every frame
/// at a low rate) goes as a script: what the argument form saves is per frame, and a call of the function costs
/// more than a one-frame script. In the bench's latency workload at 1 000 messages/s, every frame a batch of its
/// own, the argument form's p50 was about 10 % above the official plugin's, which evaluates a script per message,
/// and the script form's level with it (docs/BENCHMARKS.md).
pub(crate) const ARGUMENT_MIN_BATCH: usize = 2;

static ARGUMENT_MIN: AtomicUsize = AtomicUsize::new(ARGUMENT_MIN_BATCH);

/// Sets the number of frames a batch needs to go as an argument, for the benchmark to compare. Not part of the
/// API.
pub fn set_argument_min_batch(frames: usize) {
    ARGUMENT_MIN.store(frames, Ordering::Relaxed);
}

/// Sets the mean frame size up to which a batch goes as an argument (0: never), for the benchmark to compare the
/// two forms in one build. Not part of the API.
pub fn set_argument_max_frame(bytes: usize) {
    ARGUMENT_MAX.store(bytes, Ordering::Relaxed);
}

/// Whether a batch goes as a function argument rather than a script of its own (on WebKitGTK).
#[cfg(webkitgtk)]
pub(crate) fn by_argument(frames: &[Arc<Frame>]) -> bool {
    if frames.len() < ARGUMENT_MIN.load(Ordering::Relaxed) {
        return false;
    }
    let total: usize = frames.iter().map(|f| f.approx_len()).sum();
    let max = ARGUMENT_MAX.load(Ordering::Relaxed);
    max > 0 && total <= max.saturating_mul(frames.len())
}

/// The body of the function that takes a batch as its argument: the same call as [`script`] makes, with the
/// batch as JSON text (WebKit takes strings, numbers and dictionaries as arguments, not arrays). Its text never
/// changes, so the webview compiles it once.
#[cfg(webkitgtk)]
pub(crate) const FUNCTION: &str = "window.__TAURI_PLUGIN_REALTIME__&&window.__TAURI_PLUGIN_REALTIME__.deliver(id,JSON.parse(batch))";

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

/// The argument form on WebKitGTK: `webkit_web_view_call_async_javascript_function` with [`FUNCTION`] and the
/// id and the batch as string arguments. The arguments are values, never code; the batch's JSON escapes every
/// control character, so it holds no NUL, which a GVariant string cannot.
#[cfg(webkitgtk)]
pub(crate) mod argument {
    use std::sync::Arc;

    use tauri::{Runtime, WebviewWindow};
    use webkit2gtk::{
        gio::Cancellable,
        glib::{ToVariant, VariantDict},
        WebViewExt,
    };

    use super::FUNCTION;
    use crate::core::{wire, Frame};

    pub fn deliver<R: Runtime>(
        webview: &WebviewWindow<R>,
        id: &str,
        frames: &[Arc<Frame>],
    ) -> tauri::Result<()> {
        let approx: usize = frames.iter().map(|f| f.approx_len() + 8).sum();
        let mut batch = String::with_capacity(approx + 2);
        wire::push_batch(&mut batch, frames);
        // Made here, not on the main thread, which every delivery and command waits on.
        let args = VariantDict::new(None);
        args.insert_value("id", &id.to_variant());
        args.insert_value("batch", &batch.to_variant());
        let args = args.end();
        webview.with_webview(move |platform| {
            platform.inner().call_async_javascript_function(
                FUNCTION,
                Some(&args),
                None,
                None,
                None::<&Cancellable>,
                // As with a script: a page without the receiver, or whose handler threw, is the page's affair.
                |_| {},
            );
        })
    }
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

    fn messages(size: usize, n: usize) -> Vec<Arc<Frame>> {
        (1..=n as u64)
            .map(|seq| {
                Arc::new(Frame::Message {
                    seq,
                    transport: crate::core::Transport::Websocket,
                    event: None,
                    data: "x".repeat(size),
                    last_event_id: None,
                    binary: false,
                })
            })
            .collect()
    }

    #[test]
    #[cfg(webkitgtk)]
    fn batches_go_as_an_argument_unless_lone_or_their_frames_are_very_large() {
        assert!(by_argument(&messages(64, 256)));
        assert!(by_argument(&messages(64, 2)));
        assert!(!by_argument(&messages(64, 1)), "a lone frame is a script");
        assert!(!by_argument(&[]));
        assert!(by_argument(&messages(16 * 1024, 64)));
        assert!(by_argument(&messages(ARGUMENT_MAX_FRAME - 64, 3)));
        assert!(!by_argument(&messages(ARGUMENT_MAX_FRAME, 3)));
        assert!(!by_argument(&messages(4 << 20, 1)));
        // By the mean: a very large frame among small ones goes as an argument when they are many enough.
        let mut mixed = messages(64, 1);
        mixed.extend(messages(600_000, 1));
        assert!(!by_argument(&mixed));
        mixed.extend(messages(64, 8));
        assert!(by_argument(&mixed));
        let (_, fixture) = fixture();
        assert!(
            by_argument(&fixture),
            "the fixture's small frames go as an argument"
        );
    }

    #[test]
    #[cfg(webkitgtk)]
    fn the_function_calls_the_receiver_as_the_script_does() {
        let call = format!("window.{RECEIVER}&&window.{RECEIVER}.deliver(");
        assert!(FUNCTION.starts_with(&call), "{FUNCTION}");
        assert!(FUNCTION.ends_with("(id,JSON.parse(batch))"), "{FUNCTION}");
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
