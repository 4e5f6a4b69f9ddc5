//! The messages an upstream writes right after every open, before anything queued: topic subscriptions,
//! auth handshakes, whatever the server must have back before the app's own messages arrive.
//!
//! The set belongs to the upstream, and each entry to the subscription that set it (its id and a key of
//! its choosing): subscriptions that share an upstream keep their keys apart, and a subscription's entries
//! go when it leaves. Entries keep the order in which their keys were first set; setting a key again replaces
//! its data in place. The set is bounded in count and bytes, all subscriptions together, because all of it
//! is written on every open. It never writes anything itself: the connection asks it for the messages.

use std::sync::Arc;

use crate::{error::Error, queue::Outgoing};

/// Longest on-connect key, in bytes.
pub const MAX_ON_CONNECT_KEY: usize = 256;

struct Entry {
    sub: Arc<str>,
    key: String,
    msg: Outgoing,
}

#[derive(Default)]
pub(crate) struct OnConnect {
    entries: Vec<Entry>,
    bytes: usize,
}

/// Bounds of the set, from the hub's [`Limits`](crate::Limits).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnConnectLimits {
    pub messages: usize,
    pub bytes: usize,
}

/// A key as a page may give it: 1 to [`MAX_ON_CONNECT_KEY`] bytes.
pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_ON_CONNECT_KEY {
        return Err(Error::InvalidOnConnect(format!(
            "the key must be 1 to {MAX_ON_CONNECT_KEY} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

impl OnConnect {
    /// Sets `sub`'s entry `key` to `msg`: in place when it exists, else last. Refused beyond the limits,
    /// leaving the set as it was.
    pub(crate) fn set(
        &mut self,
        sub: &Arc<str>,
        key: &str,
        msg: Outgoing,
        limits: OnConnectLimits,
    ) -> Result<(), Error> {
        let at = self
            .entries
            .iter()
            .position(|e| e.sub == *sub && e.key == key);
        let replaced = at.map_or(0, |i| self.entries[i].msg.len());
        let bytes = self.bytes - replaced + msg.len();
        if at.is_none() && self.entries.len() >= limits.messages {
            return Err(Error::OnConnectFull(format!(
                "{} messages are set, the limit is {}",
                self.entries.len(),
                limits.messages
            )));
        }
        if bytes > limits.bytes {
            return Err(Error::OnConnectFull(format!(
                "they would hold {bytes} bytes, the limit is {}",
                limits.bytes
            )));
        }
        self.bytes = bytes;
        match at {
            Some(i) => self.entries[i].msg = msg,
            None => self.entries.push(Entry {
                sub: sub.clone(),
                key: key.to_owned(),
                msg,
            }),
        }
        Ok(())
    }

    /// Removes `sub`'s entry `key`; returns whether there was one.
    pub(crate) fn remove(&mut self, sub: &str, key: &str) -> bool {
        let before = self.entries.len();
        self.retain(|e| !(&*e.sub == sub && e.key == key));
        self.entries.len() != before
    }

    /// Removes every entry of `sub`: it left the upstream.
    pub(crate) fn leave(&mut self, sub: &str) {
        self.retain(|e| &*e.sub != sub);
    }

    /// What to write after an open, in order.
    pub(crate) fn messages(&self) -> Vec<Outgoing> {
        self.entries.iter().map(|e| e.msg.clone()).collect()
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        self.entries.retain(keep);
        self.bytes = self.entries.iter().map(|e| e.msg.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Outgoing {
        Outgoing::Text(s.into())
    }

    const ROOMY: OnConnectLimits = OnConnectLimits {
        messages: 8,
        bytes: 1 << 10,
    };

    #[test]
    fn first_insertion_order_replace_in_place_and_per_subscription_keys() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut set = OnConnect::default();
        set.set(&a, "auth", text("login"), ROOMY).unwrap();
        set.set(&a, "topic:x", text("sub x"), ROOMY).unwrap();
        set.set(&b, "topic:x", text("sub x from b"), ROOMY).unwrap();
        set.set(&a, "auth", text("login again"), ROOMY).unwrap();
        assert_eq!(
            set.messages(),
            [text("login again"), text("sub x"), text("sub x from b")]
        );
        assert!(set.remove("a", "topic:x"));
        assert!(!set.remove("a", "topic:x"), "removed already");
        set.leave("b");
        assert_eq!(set.messages(), [text("login again")]);
        assert_eq!(set.bytes, "login again".len());
    }

    #[test]
    fn bounded_by_count_and_bytes_and_a_refusal_changes_nothing() {
        let a: Arc<str> = "a".into();
        let limits = OnConnectLimits {
            messages: 2,
            bytes: 10,
        };
        let mut set = OnConnect::default();
        set.set(&a, "1", text("abcd"), limits).unwrap();
        set.set(&a, "2", text("efgh"), limits).unwrap();
        let e = set.set(&a, "3", text("i"), limits).unwrap_err();
        assert!(e.to_string().contains("2 messages are set"), "got {e}");
        let e = set.set(&a, "1", text("abcdefgh"), limits).unwrap_err();
        assert!(e.to_string().contains("12 bytes"), "got {e}");
        // Replacing within the budget is fine.
        set.set(&a, "1", text("abcdef"), limits).unwrap();
        assert_eq!(set.messages(), [text("abcdef"), text("efgh")]);
        assert!(check_key("").is_err() && check_key(&"k".repeat(MAX_ON_CONNECT_KEY + 1)).is_err());
        assert!(check_key("topic:prices").is_ok());
    }
}
