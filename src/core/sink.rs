//! Where frames go: the [`FrameSink`] trait, and the delivery loop that coalesces ready frames into batches.
//!
//! The loop never waits for more frames than are ready (no timer): it takes what is queued now, up to a cap
//! by count and by bytes, and hands it to the sink in one call. It never drops a frame.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::frame::Frame;

/// The receiver is gone for good (a closed webview, a dropped channel): stop delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkGone;

/// Receives a subscription's frames, in `seq` order, one batch at a time.
pub trait FrameSink: Send + Sync + 'static {
    /// Delivers a batch of one or more frames. Called from one task at a time per subscription.
    fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone>;

    /// A receiver that acknowledges what it has processed gets a window: delivery pauses while that much
    /// is unacknowledged, which pauses the upstream read. Default: none (deliver as fast as frames come).
    fn ack_window(&self) -> Option<Arc<AckWindow>> {
        None
    }
}

/// Flow control for a receiver that cannot push back by itself (a webview runs every event it is sent, and
/// queues what it cannot run yet without bound). The receiver acknowledges the number of frames it has
/// processed; at most `frames` frames and about `bytes` bytes are in flight.
#[derive(Debug)]
pub struct AckWindow {
    frames: u64,
    bytes: u64,
    state: Mutex<WindowState>,
    room: Notify,
}

#[derive(Debug, Default)]
struct WindowState {
    sent_frames: u64,
    sent_bytes: u64,
    acked_frames: u64,
    acked_bytes: u64,
    /// (frames sent, bytes sent) after each batch still unacknowledged, to turn a frame count into bytes.
    batches: VecDeque<(u64, u64)>,
}

impl AckWindow {
    /// A window of `frames` frames and `bytes` bytes (each at least one batch's worth).
    pub fn new(frames: u64, bytes: u64) -> Self {
        Self {
            frames: frames.max(1),
            bytes: bytes.max(1),
            state: Mutex::default(),
            room: Notify::new(),
        }
    }

    /// The receiver has processed `frames` frames in all since the subscription began.
    pub fn ack(&self, frames: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let frames = frames.min(st.sent_frames);
        if frames <= st.acked_frames {
            return;
        }
        st.acked_frames = frames;
        while let Some(&(f, b)) = st.batches.front() {
            if f > frames {
                break;
            }
            st.acked_bytes = b;
            st.batches.pop_front();
        }
        drop(st);
        self.room.notify_one();
    }

    /// Frames and bytes delivered but not acknowledged yet.
    pub fn in_flight(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (
            st.sent_frames - st.acked_frames,
            st.sent_bytes - st.acked_bytes,
        )
    }

    fn has_room(&self) -> bool {
        let (frames, bytes) = self.in_flight();
        frames < self.frames && bytes < self.bytes
    }

    async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }

    fn sent(&self, frames: u64, bytes: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.sent_frames += frames;
        st.sent_bytes += bytes;
        let mark = (st.sent_frames, st.sent_bytes);
        st.batches.push_back(mark);
    }
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
    let window = sink.ack_window();
    loop {
        if let Some(w) = &window {
            tokio::select! {
                biased;
                _ = token.cancelled() => return Ok(()),
                _ = w.wait_for_room() => {}
            }
        }
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
        if let Some(w) = &window {
            w.sent(batch.len() as u64, bytes as u64);
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_frames_and_bytes_in_flight() {
        let w = AckWindow::new(10, 1000);
        w.sent(4, 400);
        w.sent(4, 500);
        assert!(w.has_room());
        w.sent(2, 10);
        assert_eq!(w.in_flight(), (10, 910));
        assert!(!w.has_room(), "10 frames in flight fill a 10-frame window");
        // Acknowledging part of a batch frees only the batches wholly acknowledged, in bytes.
        w.ack(6);
        assert_eq!(w.in_flight(), (4, 510));
        w.ack(8);
        assert_eq!(w.in_flight(), (2, 10));
        w.ack(3); // stale: ignored
        assert_eq!(w.in_flight(), (2, 10));
        w.ack(99); // more than was sent: clamped
        assert_eq!(w.in_flight(), (0, 0));
    }

    #[tokio::test]
    async fn delivery_pauses_until_acknowledged() {
        struct Windowed(mpsc::UnboundedSender<usize>, Arc<AckWindow>);
        impl FrameSink for Windowed {
            fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone> {
                self.0.send(frames.len()).map_err(|_| SinkGone)
            }
            fn ack_window(&self) -> Option<Arc<AckWindow>> {
                Some(self.1.clone())
            }
        }
        let window = Arc::new(AckWindow::new(4, 1 << 20));
        let (tx, rx) = mpsc::channel(64);
        let (out, mut delivered) = mpsc::unbounded_channel();
        let limits = BatchLimits {
            frames: 2,
            bytes: 1 << 20,
        };
        let token = CancellationToken::new();
        let task = tokio::spawn(deliver_loop(
            rx,
            Arc::new(Windowed(out, window.clone())),
            limits,
            token.clone(),
        ));
        for seq in 1..=10 {
            let f = Frame::Close {
                seq,
                code: 1000,
                reason: String::new(),
            };
            tx.send(Arc::new(f)).await.unwrap();
        }
        let mut got = 0;
        while got < 4 {
            got += delivered.recv().await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            delivered.try_recv().is_err(),
            "expected a pause at 4 unacknowledged frames"
        );
        window.ack(4);
        while got < 8 {
            got += delivered.recv().await.unwrap();
        }
        assert_eq!(got, 8);
        token.cancel();
        task.await.unwrap().unwrap();
    }
}
