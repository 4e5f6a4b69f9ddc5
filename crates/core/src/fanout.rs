//! A connection's subscribers: every frame numbered once (`seq` rises by exactly one per frame, across
//! reconnects) and handed to each subscriber in order, waiting for room in its queue, which is what pauses the
//! upstream's read when a subscriber falls behind. A subscriber that joins late is told the current state at
//! once, with a copy of the last state frame marked as a snapshot.

use std::sync::Arc;

use crate::{
    frame::{Frame, FrameBody},
    sink::Outlet,
};

/// A subscriber's end of the frame queue.
pub(crate) struct Subscriber {
    pub id: Arc<str>,
    pub out: Outlet,
}

pub(crate) struct Fanout {
    subs: Vec<Subscriber>,
    seq: u64,
    /// The last state frame, for late joiners.
    last_state: Option<Arc<Frame>>,
}

impl Fanout {
    pub(crate) fn new(first: Subscriber) -> Self {
        Self {
            subs: vec![first],
            seq: 0,
            last_state: None,
        }
    }

    /// Numbers a frame and hands it to every subscriber, waiting for room in each queue. A subscriber whose
    /// delivery task is gone is dropped.
    pub(crate) async fn emit(&mut self, body: FrameBody) -> Arc<Frame> {
        self.seq += 1;
        let frame = Arc::new(body.number(self.seq));
        let mut gone = false;
        for sub in &mut self.subs {
            if sub.out.send(frame.clone()).await.is_err() {
                gone = true;
            }
        }
        if gone {
            self.subs.retain(|s| !s.out.is_closed());
        }
        if matches!(*frame, Frame::State { .. }) {
            self.last_state = Some(frame.clone());
        }
        frame
    }

    /// Adds a subscriber, which first gets the current state.
    pub(crate) async fn join(&mut self, mut sub: Subscriber) {
        if let Some(f) = &self.last_state {
            let _ = sub.out.send(Arc::new(f.as_snapshot())).await;
        }
        self.subs.push(sub);
    }

    pub(crate) fn leave(&mut self, id: &str) {
        self.subs.retain(|s| &*s.id != id);
    }

    /// Adds a subscriber as is: after a fault, when there is no current state worth repeating.
    pub(crate) fn push(&mut self, sub: Subscriber) {
        self.subs.push(sub);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{frame::State, sink::queue};

    fn state(state: State) -> FrameBody {
        FrameBody::State {
            state,
            transport: None,
            attempt: None,
            delay_ms: None,
            reason: None,
            protocol: None,
        }
    }

    #[tokio::test]
    async fn frames_are_numbered_once_and_a_late_joiner_gets_the_state_first() {
        let (out, mut first) = queue(16, 1 << 20);
        let mut fan = Fanout::new(Subscriber {
            id: "a".into(),
            out,
        });
        fan.emit(state(State::Connecting)).await;
        fan.emit(state(State::Connected)).await;
        let (out, mut late) = queue(16, 1 << 20);
        fan.join(Subscriber {
            id: "b".into(),
            out,
        })
        .await;
        fan.emit(state(State::Reconnecting)).await;
        let seqs = |inlet: &mut crate::sink::Inlet| {
            let mut v = Vec::new();
            while let Some(f) = inlet.try_next() {
                v.push((f.seq(), matches!(&*f, Frame::State { snapshot: true, .. })));
            }
            v
        };
        assert_eq!(seqs(&mut first), [(1, false), (2, false), (3, false)]);
        // The joiner's snapshot repeats seq 2; the next frame continues the shared numbering.
        assert_eq!(seqs(&mut late), [(2, true), (3, false)]);
        // A subscriber whose delivery is gone is dropped, not waited for.
        drop(late);
        fan.emit(state(State::Connected)).await;
        assert_eq!(fan.subs.len(), 1);
    }
}
