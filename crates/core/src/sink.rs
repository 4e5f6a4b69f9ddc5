//! Where frames go: the [`FrameSink`] trait, and the delivery loop that coalesces ready frames into batches.
//!
//! The loop never waits for more frames than are ready (no timer): it takes what is queued now, up to a cap
//! by count and by bytes, and hands it to the sink in one call. It never drops a frame.
//!
//! A lone frame (its queue empty, nothing held by the delivery task, none just before it) skips the loop: the
//! upstream hands it to the sink itself, which saves waking the delivery task at low rates. Frames that come
//! in runs still go through the loop, to be batched.

use std::{
    collections::VecDeque,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, Notify, Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;

use super::frame::Frame;

/// The receiver is gone for good (a closed webview, a dropped channel): stop delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkGone;

/// Receives a subscription's frames, in `seq` order, one batch at a time.
pub trait FrameSink: Send + Sync + 'static {
    /// Delivers a batch of one or more frames. Called from one task at a time per subscription: the
    /// subscription's delivery task, or for a lone frame the upstream's own task, so it must hand the frames
    /// on and return, not wait (a slow call holds up the upstream and whoever else shares it).
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

/// Largest ack window in frames: the window keeps a mark per unacknowledged batch, so its size bounds that
/// memory too.
pub const MAX_ACK_FRAMES: u64 = 1 << 16;
/// Largest ack window in bytes.
pub const MAX_ACK_BYTES: u64 = 256 << 20;

impl AckWindow {
    /// A window of `frames` frames and `bytes` bytes, each at least 1 and at most [`MAX_ACK_FRAMES`] and
    /// [`MAX_ACK_BYTES`].
    pub fn new(frames: u64, bytes: u64) -> Self {
        Self {
            frames: frames.clamp(1, MAX_ACK_FRAMES),
            bytes: bytes.clamp(1, MAX_ACK_BYTES),
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

/// A subscriber's queue, between its upstream and its delivery task: bounded in frames (the channel) and in
/// bytes (permits of a semaphore), so that a slow receiver holds at most `bytes` of waiting frames plus one
/// frame, whatever the message size. A frame weighs its approximate size, at most `bytes`, so one larger
/// than the whole budget still passes once the queue is empty.
pub(crate) fn queue(frames: usize, bytes: usize) -> (Outlet, Inlet) {
    let (tx, rx) = mpsc::channel(frames.max(1));
    // `acquire_many` counts in u32; a budget above that is no budget worth keeping apart.
    let cap = bytes.clamp(1, u32::MAX as usize);
    let room = Arc::new(Semaphore::new(cap));
    let shared = Arc::new(Shared::default());
    (
        Outlet {
            tx,
            room: room.clone(),
            cap,
            shared: shared.clone(),
            last: None,
        },
        Inlet {
            rx,
            room,
            cap,
            shared,
        },
    )
}

/// A frame that follows the previous one this closely is taken for part of a run, and queued to be batched:
/// delivered alone, each frame of a run would cost the webview a script of its own. At 100 µs, the first
/// frame of each read at full rate went alone and cost SSE throughput at 64 B (docs/BENCHMARKS.md); 500 µs
/// still takes paced streams of up to ~1 000 messages/s.
const LONE_GAP: Duration = Duration::from_micros(500);

/// What a subscriber's upstream and its delivery task share for the lone-frame path.
#[derive(Default)]
struct Shared {
    /// Frames queued or held by the delivery task, not yet delivered: while any is, a frame handed to the
    /// sink directly would overtake it.
    pending: AtomicUsize,
    /// The sink, once the delivery task runs; taken away when it ends, so the sink lives no longer than before.
    direct: Mutex<Option<Direct>>,
    /// A direct delivery found the sink gone (or it panicked): the delivery task ends as if its own had.
    failed: CancellationToken,
}

#[derive(Clone)]
struct Direct {
    sink: Arc<dyn FrameSink>,
    window: Option<Arc<AckWindow>>,
    token: CancellationToken,
}

fn weight(frame: &Frame, cap: usize) -> usize {
    frame.approx_len().min(cap)
}

/// The upstream's end of a subscriber's queue.
pub(crate) struct Outlet {
    tx: mpsc::Sender<Arc<Frame>>,
    room: Arc<Semaphore>,
    cap: usize,
    shared: Arc<Shared>,
    /// When the previous frame came.
    last: Option<Instant>,
}

impl Outlet {
    /// Hands a lone frame to the sink, or waits for room and queues the frame; `Err` when the delivery task
    /// or the sink is gone.
    pub(crate) async fn send(&mut self, frame: Arc<Frame>) -> Result<(), SinkGone> {
        if self.shared.failed.is_cancelled() {
            return Err(SinkGone);
        }
        let now = Instant::now();
        let lone = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= LONE_GAP);
        self.last = Some(now);
        if lone {
            if let Some(direct) = self.direct() {
                return self.deliver_directly(&direct, &frame);
            }
        }
        // `weight` is at most `cap`, which fits in u32.
        let n = weight(&frame, self.cap) as u32;
        match self.room.try_acquire_many(n) {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::Closed) => return Err(SinkGone),
            Err(TryAcquireError::NoPermits) => match self.room.acquire_many(n).await {
                Ok(permit) => permit.forget(),
                Err(_) => return Err(SinkGone),
            },
        }
        // Counted before it is queued, so the delivery task never counts it off first.
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        self.tx.send(frame).await.map_err(|_| SinkGone)
    }

    /// The sink, when a frame may go to it now: the delivery task runs and holds nothing (this task is the
    /// only one that queues, so nothing can come between), the subscription is open and its window has room.
    fn direct(&self) -> Option<Direct> {
        if self.shared.pending.load(Ordering::Acquire) != 0 {
            return None;
        }
        let direct = self
            .shared
            .direct
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let open = !direct.token.is_cancelled();
        let room = direct.window.as_ref().is_none_or(|w| w.has_room());
        (open && room).then_some(direct)
    }

    /// As the delivery task would deliver a batch of one, but a sink that panics ends only its subscription,
    /// not the upstream that other subscribers share.
    fn deliver_directly(&self, direct: &Direct, frame: &Arc<Frame>) -> Result<(), SinkGone> {
        if let Some(w) = &direct.window {
            w.sent(1, frame.approx_len() as u64);
        }
        let delivered = catch_unwind(AssertUnwindSafe(|| {
            direct.sink.deliver(std::slice::from_ref(frame))
        }));
        match delivered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(SinkGone)) | Err(_) => {
                self.shared.failed.cancel();
                Err(SinkGone)
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.shared.failed.is_cancelled()
    }
}

/// The delivery task's end of a subscriber's queue. Dropping it wakes an upstream waiting for room.
pub(crate) struct Inlet {
    rx: mpsc::Receiver<Arc<Frame>>,
    room: Arc<Semaphore>,
    cap: usize,
    shared: Arc<Shared>,
}

#[cfg(test)]
impl Inlet {
    /// A frame already waiting, if any.
    pub(crate) fn try_next(&mut self) -> Option<Arc<Frame>> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Inlet {
    fn drop(&mut self) {
        self.room.close();
        *self.shared.direct.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Drains `inlet` into `sink` until the queue closes, the token is cancelled or the sink is gone.
/// Returns `Err(SinkGone)` only in the last case, so the owner can release the subscription.
pub(crate) async fn deliver_loop(
    mut inlet: Inlet,
    sink: Arc<dyn FrameSink>,
    limits: BatchLimits,
    token: CancellationToken,
) -> Result<(), SinkGone> {
    // Grown by the first batch that needs it and kept: a stream that stays idle never needs it.
    let mut batch: Vec<Arc<Frame>> = Vec::new();
    let window = sink.ack_window();
    let shared = inlet.shared.clone();
    *shared.direct.lock().unwrap_or_else(|p| p.into_inner()) = Some(Direct {
        sink: sink.clone(),
        window: window.clone(),
        token: token.clone(),
    });
    loop {
        if let Some(w) = &window {
            tokio::select! {
                biased;
                _ = token.cancelled() => return Ok(()),
                _ = shared.failed.cancelled() => return Err(SinkGone),
                _ = w.wait_for_room() => {}
            }
        }
        let first = tokio::select! {
            biased;
            _ = token.cancelled() => return Ok(()),
            _ = shared.failed.cancelled() => return Err(SinkGone),
            f = inlet.rx.recv() => match f {
                Some(f) => f,
                None => return Ok(()),
            },
        };
        let mut bytes = first.approx_len();
        let mut weights = weight(&first, inlet.cap);
        batch.push(first);
        while batch.len() < limits.frames && bytes < limits.bytes {
            match inlet.rx.try_recv() {
                Ok(f) => {
                    bytes += f.approx_len();
                    weights += weight(&f, inlet.cap);
                    batch.push(f);
                }
                Err(_) => break,
            }
        }
        // Counted as in flight before it is handed over: a receiver may process the batch and acknowledge it
        // before `deliver` even returns (a webview runs the script at once), and an acknowledgement of frames
        // not yet counted would be cut short, leaving the window full for good.
        if let Some(w) = &window {
            w.sent(batch.len() as u64, bytes as u64);
        }
        sink.deliver(&batch)?;
        inlet.room.add_permits(weights);
        // After the delivery: the upstream, seeing none pending, may hand the next frame to the sink itself.
        shared.pending.fetch_sub(batch.len(), Ordering::AcqRel);
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

    fn sized(seq: u64, len: usize) -> Arc<Frame> {
        Arc::new(Frame::Close {
            seq,
            code: 1000,
            reason: "x".repeat(len),
        })
    }

    #[tokio::test]
    async fn a_queue_holds_its_byte_budget_plus_one_frame() {
        let (mut out, mut inlet) = queue(1024, 3000);
        // Each weighs 48 + 1000 bytes: two fit in 3000, the third waits for room.
        out.send(sized(1, 1000)).await.unwrap();
        out.send(sized(2, 1000)).await.unwrap();
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            out.send(sized(3, 1000)),
        );
        assert!(
            third.await.is_err(),
            "expected the third frame to wait for room"
        );
        // Delivered frames give their room back.
        let delivered = [
            inlet.rx.recv().await.unwrap(),
            inlet.rx.recv().await.unwrap(),
        ];
        inlet
            .room
            .add_permits(delivered.iter().map(|f| weight(f, inlet.cap)).sum());
        out.send(sized(3, 1000)).await.unwrap();
        // A frame larger than the whole budget passes once the queue is empty...
        let _ = inlet.rx.recv().await.unwrap();
        inlet.room.add_permits(weight(&sized(3, 1000), inlet.cap));
        out.send(sized(4, 10_000)).await.unwrap();
        // ...and a gone delivery task is an error, not a wait.
        drop(inlet);
        assert_eq!(out.send(sized(5, 10)).await, Err(SinkGone));
    }

    #[test]
    fn a_window_is_bounded_whatever_the_page_asks() {
        let w = AckWindow::new(u64::MAX, u64::MAX);
        assert_eq!((w.frames, w.bytes), (MAX_ACK_FRAMES, MAX_ACK_BYTES));
        let w = AckWindow::new(0, 0);
        assert_eq!((w.frames, w.bytes), (1, 1));
    }

    /// A receiver that processes each batch and acknowledges it before `deliver` returns, as a webview may.
    #[tokio::test]
    async fn an_acknowledgement_during_delivery_counts_in_full() {
        struct Eager(
            Arc<AckWindow>,
            std::sync::atomic::AtomicU64,
            mpsc::UnboundedSender<usize>,
        );
        impl FrameSink for Eager {
            fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone> {
                let done = self
                    .1
                    .fetch_add(frames.len() as u64, std::sync::atomic::Ordering::SeqCst);
                self.0.ack(done + frames.len() as u64);
                self.2.send(frames.len()).map_err(|_| SinkGone)
            }
            fn ack_window(&self) -> Option<Arc<AckWindow>> {
                Some(self.0.clone())
            }
        }
        let window = Arc::new(AckWindow::new(4, 1 << 20));
        let (mut tx, rx) = queue(64, 1 << 20);
        let (out, mut delivered) = mpsc::unbounded_channel();
        let limits = BatchLimits {
            frames: 2,
            bytes: 1 << 20,
        };
        let token = CancellationToken::new();
        let sink = Eager(window.clone(), Default::default(), out);
        let task = tokio::spawn(deliver_loop(rx, Arc::new(sink), limits, token.clone()));
        for seq in 1..=40 {
            tx.send(sized(seq, 1)).await.unwrap();
        }
        let mut got = 0;
        while got < 40 {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), delivered.recv())
                .await
                .expect("expected delivery to go on: every batch was acknowledged")
                .unwrap();
            got += n;
        }
        assert_eq!(window.in_flight(), (0, 0));
        token.cancel();
        task.await.unwrap().unwrap();
    }

    /// A sink that records each batch's seqs, or panics when told to.
    struct Recording(mpsc::UnboundedSender<Vec<u64>>, bool);
    impl FrameSink for Recording {
        fn deliver(&self, frames: &[Arc<Frame>]) -> Result<(), SinkGone> {
            assert!(!self.1, "injected sink fault");
            let seqs = frames.iter().map(|f| f.seq()).collect();
            self.0.send(seqs).map_err(|_| SinkGone)
        }
    }

    #[tokio::test]
    async fn a_lone_frame_goes_to_the_sink_at_once_and_never_overtakes_a_queued_one() {
        let (mut tx, rx) = queue(64, 1 << 20);
        let (out, mut delivered) = mpsc::unbounded_channel();
        let token = CancellationToken::new();
        let sink = Arc::new(Recording(out, false));
        let task = tokio::spawn(deliver_loop(
            rx,
            sink,
            BatchLimits::default(),
            token.clone(),
        ));
        tokio::task::yield_now().await;
        while tx.shared.direct.lock().unwrap().is_none() {
            tokio::task::yield_now().await;
        }
        // Lone: delivered within `send`, by this task.
        tx.send(sized(1, 1)).await.unwrap();
        assert_eq!(delivered.try_recv().unwrap(), [1]);
        // A run: queued behind each other, in order, whatever went directly.
        for seq in 2..=50 {
            tx.send(sized(seq, 1)).await.unwrap();
        }
        tokio::time::sleep(LONE_GAP * 2).await;
        tx.send(sized(51, 1)).await.unwrap();
        let mut seqs = Vec::new();
        while seqs.len() < 50 {
            seqs.extend(delivered.recv().await.unwrap());
        }
        assert_eq!(seqs, (2..=51).collect::<Vec<_>>());
        token.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_sink_that_panics_on_a_lone_frame_ends_its_delivery_not_the_upstream() {
        let (mut tx, rx) = queue(64, 1 << 20);
        let (out, _delivered) = mpsc::unbounded_channel();
        let token = CancellationToken::new();
        let sink = Arc::new(Recording(out, true));
        let task = tokio::spawn(deliver_loop(rx, sink, BatchLimits::default(), token));
        while tx.shared.direct.lock().unwrap().is_none() {
            tokio::task::yield_now().await;
        }
        assert_eq!(tx.send(sized(1, 1)).await, Err(SinkGone));
        assert!(tx.is_closed());
        assert_eq!(task.await.unwrap(), Err(SinkGone));
        assert_eq!(tx.send(sized(2, 1)).await, Err(SinkGone));
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
        let (mut tx, rx) = queue(64, 1 << 20);
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
