//! What the app sends: the bounded queue of messages that wait for a connection, in order, and the one message
//! being written. Messages are written at most once: one whose write did not finish is reported, never sent
//! again (it may or may not have reached the server). After an open, the on-connect messages (`on_connect.rs`)
//! go first, before the queue: the round.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use crate::{
    error::Error,
    options::QueueOptions,
    queue::{OutQueue, Outgoing},
    transport::PostFailed,
};

/// A message from the app; the reply says whether it was queued (`true`) or written (`false`).
pub(crate) struct SendRequest {
    pub msg: Outgoing,
    /// The `Content-Type` of its POST, when it is POSTed; by its kind when `None`.
    pub content_type: Option<http::HeaderValue>,
    pub reply: oneshot::Sender<Result<bool, Error>>,
}

/// The message being written.
enum Writing {
    /// A send whose caller waits for the answer.
    Send {
        len: usize,
        reply: oneshot::Sender<Result<bool, Error>>,
    },
    /// A message from the queue; its caller was told `queued: true`.
    Queued { len: usize },
    /// An on-connect message: nobody waits for it, and it goes again after the next open.
    OnConnect { len: usize },
}

pub(crate) struct Outbox {
    queue: OutQueue,
    /// The on-connect messages still to write since the last open, before the queue.
    round: VecDeque<Outgoing>,
    writing: Option<Writing>,
}

/// How a write ended, for the connection to count and report.
pub(crate) enum Wrote {
    /// This many bytes went out.
    Out(usize),
    /// A queued message whose write did not finish: this says so, for an `error` frame.
    Lost(String),
    /// A send whose write did not finish: its caller has been told.
    Refused,
    /// An on-connect message whose write did not finish: nobody to tell, it goes again after the next open.
    Cut,
    /// A send the send URL did not take: its caller has been told, and this says which, for an `error` frame.
    Failed(String),
}

impl Outbox {
    pub(crate) fn new(limits: QueueOptions) -> Self {
        Self {
            queue: OutQueue::new(limits),
            round: VecDeque::new(),
            writing: None,
        }
    }

    /// Nothing is being written.
    pub(crate) fn idle(&self) -> bool {
        self.writing.is_none()
    }

    /// Holds a send for later, or refuses it when the queue is full. Answers the caller either way.
    pub(crate) fn hold(&mut self, req: SendRequest) {
        let result = self.queue.push(req.msg).map(|()| true);
        let _ = req.reply.send(result);
    }

    /// The send to write now; its caller is answered when the write ends.
    pub(crate) fn write(&mut self, req: SendRequest) -> Outgoing {
        self.writing = Some(Writing::Send {
            len: req.msg.len(),
            reply: req.reply,
        });
        req.msg
    }

    /// The link opened: these on-connect messages go first, in order, replacing what an earlier open left.
    pub(crate) fn start_round(&mut self, msgs: Vec<Outgoing>) {
        self.round = msgs.into();
    }

    /// An on-connect message set while the link is open: it goes now too, after the round's others.
    pub(crate) fn add_to_round(&mut self, msg: Outgoing) {
        self.round.push_back(msg);
    }

    /// The link is gone: what the round did not write waits for the next open.
    pub(crate) fn end_round(&mut self) {
        self.round.clear();
    }

    /// The next on-connect message, else the oldest queued one, to write now.
    pub(crate) fn write_queued(&mut self) -> Option<Outgoing> {
        if let Some(msg) = self.round.pop_front() {
            self.writing = Some(Writing::OnConnect { len: msg.len() });
            return Some(msg);
        }
        let msg = self.queue.pop()?;
        self.writing = Some(Writing::Queued { len: msg.len() });
        Some(msg)
    }

    /// The write in flight ended: written (`Ok`), or not, saying why.
    pub(crate) fn written(&mut self, result: Result<(), String>) -> Option<Wrote> {
        let writing = self.writing.take()?;
        Some(match (writing, result) {
            (Writing::Send { len, reply }, Ok(())) => {
                let _ = reply.send(Ok(false));
                Wrote::Out(len)
            }
            (Writing::Queued { len } | Writing::OnConnect { len }, Ok(())) => Wrote::Out(len),
            (Writing::OnConnect { .. }, Err(_)) => Wrote::Cut,
            (Writing::Send { reply, .. }, Err(why)) => {
                let _ = reply.send(Err(Error::SendFailed(format!(
                    "{why}; it may not have reached the server"
                ))));
                Wrote::Refused
            }
            (Writing::Queued { .. }, Err(why)) => Wrote::Lost(format!(
                "a queued message may not have reached the server: {why}"
            )),
        })
    }

    /// The POST in flight ended: taken (`Ok`), or not, saying which message and why.
    pub(crate) fn posted(&mut self, result: Result<(), PostFailed>) -> Option<Wrote> {
        let PostFailed { what, why } = match result {
            Ok(()) => return self.written(Ok(())),
            Err(failed) => failed,
        };
        let frame = format!("{what} failed: {why}; later sends go on");
        Some(match self.writing.take()? {
            Writing::Send { reply, .. } => {
                let _ = reply.send(Err(Error::SendFailed(why)));
                Wrote::Failed(frame)
            }
            Writing::Queued { .. } => Wrote::Lost(frame),
            // Never POSTed (on-connect messages are for the WebSocket), and gone again after the next open.
            Writing::OnConnect { .. } => Wrote::Cut,
        })
    }

    /// Empties the queue, returning how many messages were dropped (so the app can be told).
    pub(crate) fn clear(&mut self) -> usize {
        self.queue.clear()
    }

    pub(crate) fn queued(&self) -> (usize, usize) {
        (self.queue.len(), self.queue.bytes())
    }

    /// Nothing is being written and nothing waits to be: a new send may go straight out.
    pub(crate) fn clear_to_send(&self) -> bool {
        self.idle() && self.queue.is_empty() && self.round.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> (SendRequest, oneshot::Receiver<Result<bool, Error>>) {
        let (reply, answer) = oneshot::channel();
        let msg = Outgoing::Text(text.into());
        let content_type = None;
        (
            SendRequest {
                msg,
                content_type,
                reply,
            },
            answer,
        )
    }

    #[tokio::test]
    async fn queued_first_in_order_and_a_cut_write_is_reported_not_repeated() {
        let mut ob = Outbox::new(QueueOptions::default());
        let (a, answer_a) = req("a");
        ob.hold(a);
        assert!(answer_a.await.unwrap().unwrap(), "held: queued");
        let (b, _) = req("b");
        ob.hold(b);
        assert_eq!(ob.write_queued(), Some(Outgoing::Text("a".into())));
        assert!(!ob.idle());
        assert!(matches!(ob.written(Ok(())), Some(Wrote::Out(1))));
        assert_eq!(ob.write_queued(), Some(Outgoing::Text("b".into())));
        // The link dropped mid-write: reported once, and not back in the queue.
        assert!(
            matches!(ob.written(Err("dropped".into())), Some(Wrote::Lost(m)) if m.contains("dropped"))
        );
        assert!(ob.clear_to_send());
        // A send's caller hears the outcome itself.
        let (c, answer_c) = req("c");
        assert_eq!(ob.write(c), Outgoing::Text("c".into()));
        assert!(matches!(
            ob.written(Err("dropped".into())),
            Some(Wrote::Refused)
        ));
        let e = answer_c.await.unwrap().unwrap_err();
        assert!(
            e.to_string().contains("may not have reached the server"),
            "got {e}"
        );
        assert!(ob.written(Ok(())).is_none(), "nothing in flight");
    }

    #[tokio::test]
    async fn the_round_goes_before_the_queue_and_a_cut_one_is_not_reported() {
        let mut ob = Outbox::new(QueueOptions::default());
        let (a, _) = req("queued");
        ob.hold(a);
        ob.start_round(vec![Outgoing::Text("sub 1".into())]);
        ob.add_to_round(Outgoing::Text("sub 2".into()));
        assert!(!ob.clear_to_send());
        assert_eq!(ob.write_queued(), Some(Outgoing::Text("sub 1".into())));
        assert!(matches!(ob.written(Ok(())), Some(Wrote::Out(5))));
        assert_eq!(ob.write_queued(), Some(Outgoing::Text("sub 2".into())));
        assert!(matches!(
            ob.written(Err("dropped".into())),
            Some(Wrote::Cut)
        ));
        ob.start_round(vec![Outgoing::Text("sub 1".into())]);
        ob.end_round();
        assert_eq!(ob.write_queued(), Some(Outgoing::Text("queued".into())));
        assert!(matches!(ob.written(Ok(())), Some(Wrote::Out(6))));
        assert!(ob.clear_to_send());
    }

    #[tokio::test]
    async fn a_refused_post_fails_its_send_alone_and_says_which() {
        let mut ob = Outbox::new(QueueOptions::default());
        let (a, answer_a) = req("a");
        ob.write(a);
        let failed = PostFailed {
            what: "send #1 (1 bytes of text/plain)".into(),
            why: "http://h/send answered HTTP 400 Bad Request".into(),
        };
        match ob.posted(Err(failed.clone())) {
            Some(Wrote::Failed(m)) => assert!(
                m.starts_with("send #1 (1 bytes")
                    && m.contains("HTTP 400")
                    && m.contains("later sends go on"),
                "got {m}"
            ),
            _ => panic!("expected a failed send"),
        }
        let e = answer_a.await.unwrap().unwrap_err().to_string();
        assert!(
            e.contains("http://h/send answered HTTP 400 Bad Request"),
            "got {e}"
        );
        // A queued message that fails is reported as lost: nobody waits for it.
        ob.hold(req("b").0);
        ob.write_queued();
        assert!(matches!(ob.posted(Err(failed)), Some(Wrote::Lost(m)) if m.contains("send #1")));
        let (c, answer_c) = req("c");
        ob.write(c);
        assert!(matches!(ob.posted(Ok(())), Some(Wrote::Out(1))));
        assert!(!answer_c.await.unwrap().unwrap(), "posted, not queued");
    }
}
