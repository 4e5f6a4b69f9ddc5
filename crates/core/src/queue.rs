//! The bounded outbound queue: what the app sends while the connection is not up, in order.

use std::collections::VecDeque;

use super::{error::Error, options::QueueOptions};

/// A message from the app to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
}

impl Outgoing {
    /// A binary message from its base64 text (how a page sends bytes), with the error the app needs.
    pub fn from_base64(data: &str) -> Result<Self, Error> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map(Outgoing::Binary)
            .map_err(|e| Error::InvalidBase64(e.to_string()))
    }

    pub fn len(&self) -> usize {
        match self {
            Outgoing::Text(t) => t.len(),
            Outgoing::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// FIFO bounded by count and bytes. Overflow is refused, never dropped silently.
#[derive(Debug)]
pub struct OutQueue {
    limits: QueueOptions,
    items: VecDeque<Outgoing>,
    bytes: usize,
}

impl OutQueue {
    pub fn new(limits: QueueOptions) -> Self {
        Self {
            limits,
            items: VecDeque::new(),
            bytes: 0,
        }
    }

    pub fn push(&mut self, msg: Outgoing) -> Result<(), Error> {
        if self.items.len() >= self.limits.max_messages {
            return Err(Error::QueueFull(format!(
                "{} messages held",
                self.items.len()
            )));
        }
        if self.bytes + msg.len() > self.limits.max_bytes {
            return Err(Error::QueueFull(format!(
                "{} bytes held, this message adds {}, limit {}",
                self.bytes,
                msg.len(),
                self.limits.max_bytes
            )));
        }
        self.bytes += msg.len();
        self.items.push_back(msg);
        Ok(())
    }

    pub fn pop(&mut self) -> Option<Outgoing> {
        let msg = self.items.pop_front()?;
        self.bytes -= msg.len();
        Some(msg)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Empties the queue, returning how many messages were dropped (so the app can be told).
    pub fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        self.bytes = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count_and_bytes_in_order() {
        let mut q = OutQueue::new(QueueOptions {
            max_messages: 2,
            max_bytes: 10,
        });
        q.push(Outgoing::Text("abcd".into())).unwrap();
        assert!(matches!(
            q.push(Outgoing::Binary(vec![0; 7])),
            Err(Error::QueueFull(_))
        ));
        q.push(Outgoing::Binary(vec![1; 6])).unwrap();
        assert!(matches!(
            q.push(Outgoing::Text("x".into())),
            Err(Error::QueueFull(_))
        ));
        assert_eq!((q.len(), q.bytes()), (2, 10));
        assert_eq!(q.pop(), Some(Outgoing::Text("abcd".into())));
        assert_eq!(q.pop(), Some(Outgoing::Binary(vec![1; 6])));
        assert_eq!((q.len(), q.bytes()), (0, 0));
    }
}
