//! Where frames go: the [`FrameSink`] trait, and the delivery loop that coalesces ready frames into batches.
//!
//! The loop never waits for more frames than are ready (no timer): it takes what is queued now, up to a cap
//! by count and by bytes, and hands it to the sink in one call. It never drops a frame.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::frame::Frame;

/// The receiver is gone for good (a closed webview, a dropped channel): stop delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkGone;

/// Receives a subscription's frames, in `seq` order, one batch at a time.
pub trait FrameSink: Send + Sync + 'static {
    /// Delivers a batch of one or more frames. Called from one task at a time per subscription.
    fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone>;
}

/// A sink that forwards each batch into a Tokio channel: handy for Rust consumers and tests.
pub struct ChannelSink(pub mpsc::UnboundedSender<Vec<Arc<Frame>>>);

impl FrameSink for ChannelSink {
    fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone> {
        self.0.send(frames.to_vec()).map_err(|_| SinkGone)
    }
}

/// Caps of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Frames per batch. Default: 256.
    pub frames: usize,
    /// Approximate bytes per batch. Default: 1 MiB.
    pub bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            frames: 256,
            bytes: 1 << 20,
        }
    }
}

/// Drains `rx` into `sink` until the channel closes, the token is cancelled or the sink is gone.
/// Returns `Err(SinkGone)` only in the last case, so the owner can release the subscription.
pub(crate) async fn deliver_loop(
    mut rx: mpsc::Receiver<Arc<Frame>>,
    sink: Arc<dyn FrameSink>,
    limits: BatchLimits,
    token: CancellationToken,
) -> Result<(), SinkGone> {
    let mut batch: Vec<Arc<Frame>> = Vec::with_capacity(limits.frames.min(64));
    loop {
        let first = tokio::select! {
            biased;
            _ = token.cancelled() => return Ok(()),
            f = rx.recv() => match f {
                Some(f) => f,
                None => return Ok(()),
            },
        };
        let mut bytes = first.approx_len();
        batch.push(first);
        while batch.len() < limits.frames && bytes < limits.bytes {
            match rx.try_recv() {
                Ok(f) => {
                    bytes += f.approx_len();
                    batch.push(f);
                }
                Err(_) => break,
            }
        }
        sink.deliver(&batch)?;
        batch.clear();
    }
}
