//! The registry: every live upstream, every subscription to it, and the keys by which upstreams are joined.
//! What is kept here is bookkeeping only: it never starts or waits on a task (the hub does) and never touches
//! a socket (the connection tasks do).

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering, Arc},
};

use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    connection::{Control, Stats},
    error::Error,
    frame::Transport,
    outbox::SendRequest,
    sink::{AckWindow, FrameSink},
};

pub(super) struct Upstream {
    /// This upstream's connection and delivery tasks, also counted by the hub's tracker.
    pub(super) tasks: TaskTracker,
    pub(super) ctl: mpsc::UnboundedSender<Box<Control>>,
    pub(super) sends: mpsc::Sender<Box<SendRequest>>,
    pub(super) stats: Arc<Stats>,
    pub(super) url: String,
    /// Every URL this upstream may reach (stream, poll, send): a joiner's scope must allow them all.
    pub(super) reaches: Vec<url::Url>,
    pub(super) transport: Transport,
    /// Its name in `Registry::by_key`, when it can be joined.
    pub(super) key: Option<String>,
    /// The options it was opened with, in canonical form: a joiner by share key must bring the same.
    pub(super) fingerprint: String,
    pub(super) subs: HashSet<Arc<str>>,
    /// Set while it has no subscriber and waits out the linger.
    pub(super) linger: Option<Lingering>,
    pub(super) max_message_size: usize,
    /// The owner whose cookies it carries (`withCredentials`): only that owner may join it.
    pub(super) credentials_of: Option<String>,
}

/// An upstream with no subscriber, waiting out the linger before it closes with `code` and `reason`.
pub(super) struct Lingering {
    /// When it began, in registry order: the oldest goes first when the app-wide limit is reached.
    pub(super) order: u64,
    pub(super) token: CancellationToken,
    pub(super) code: u16,
    pub(super) reason: String,
}

pub(super) struct Sub {
    pub(super) upstream: u64,
    pub(super) owner: String,
    /// It joined an upstream another subscription had opened (`Connected::shared`).
    pub(super) joined: bool,
    /// Tells this subscription apart from a later one with the same id.
    pub(super) serial: u64,
    pub(super) token: CancellationToken,
    pub(super) window: Option<Arc<AckWindow>>,
}

#[derive(Default)]
pub(super) struct Registry {
    /// Counter for upstream ids, subscription serials and linger order.
    pub(super) next: u64,
    pub(super) upstreams: HashMap<u64, Upstream>,
    pub(super) by_key: HashMap<String, u64>,
    pub(super) subs: HashMap<Arc<str>, Sub>,
}

impl Registry {
    pub(super) fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

pub(super) fn owned_upstream<'a>(
    reg: &'a Registry,
    id: &str,
    owner: &str,
) -> Result<&'a Upstream, Error> {
    // Another owner's id is reported exactly like an unknown one: no probing across webviews.
    let sub = reg
        .subs
        .get(id)
        .filter(|s| s.owner == owner)
        .ok_or_else(|| Error::UnknownConnection(id.to_owned()))?;
    reg.upstreams
        .get(&sub.upstream)
        .ok_or_else(|| Error::Closed(id.to_owned()))
}

/// The live upstream this connect may join, if any. A key held with other options is an error, not a join;
/// an upstream whose task has ended is forgotten here, so the connect opens a fresh one.
pub(super) fn joinable(
    reg: &mut Registry,
    key: Option<&str>,
    fingerprint: &str,
) -> Result<Option<u64>, Error> {
    let Some(key) = key else { return Ok(None) };
    let Some(&uid) = reg.by_key.get(key) else {
        return Ok(None);
    };
    let Some(up) = reg.upstreams.get(&uid) else {
        reg.by_key.remove(key);
        return Ok(None);
    };
    if up.stats.ended.load(Ordering::Acquire) {
        drop_upstream(reg, uid);
        return Ok(None);
    }
    if up.fingerprint != fingerprint {
        let name = key.strip_prefix("key\0").unwrap_or(key);
        return Err(Error::ShareKeyConflict(name.to_owned()));
    }
    Ok(Some(uid))
}

/// Records the subscription; returns its delivery token (a child of `root`, so that shutdown also ends a
/// delivery that waits for an acknowledgement), its serial and its upstream's task tracker.
pub(super) fn register(
    reg: &mut Registry,
    root: &CancellationToken,
    (id, joined): (&Arc<str>, bool),
    upstream: u64,
    owner: &str,
    sink: &dyn FrameSink,
) -> (CancellationToken, u64, TaskTracker) {
    let token = root.child_token();
    let serial = reg.next();
    reg.subs.insert(
        id.clone(),
        Sub {
            upstream,
            owner: owner.to_owned(),
            joined,
            serial,
            token: token.clone(),
            window: sink.ack_window(),
        },
    );
    (token, serial, reg.upstreams[&upstream].tasks.clone())
}

/// When the app-wide limit is reached, the upstream that has lingered longest makes room: lingering ones
/// serve nobody, and must not lock other webviews out. Returns whether one was closed.
pub(super) fn evict_lingering(reg: &mut Registry) -> bool {
    let oldest = reg
        .upstreams
        .iter()
        .filter_map(|(uid, u)| u.linger.as_ref().map(|l| (l.order, *uid)))
        .min();
    let Some((_, uid)) = oldest else { return false };
    let (code, reason) = reg.upstreams[&uid]
        .linger
        .as_ref()
        .map(|l| (l.code, l.reason.clone()))
        .unwrap_or((1000, String::new()));
    close_upstream(reg, uid, code, &reason);
    true
}

/// Removes an upstream from the registry and tells its task to close.
pub(super) fn close_upstream(reg: &mut Registry, uid: u64, code: u16, reason: &str) {
    if let Some(up) = drop_upstream(reg, uid) {
        if let Some(l) = up.linger {
            l.token.cancel();
        }
        let _ = up.ctl.send(Box::new(Control::Close {
            code,
            reason: reason.to_owned(),
        }));
    }
}

/// Removes an upstream and its key from the registry.
pub(super) fn drop_upstream(reg: &mut Registry, uid: u64) -> Option<Upstream> {
    let up = reg.upstreams.remove(&uid)?;
    if let Some(k) = &up.key {
        if reg.by_key.get(k) == Some(&uid) {
            reg.by_key.remove(k);
        }
    }
    Some(up)
}
