//! Sleep, wake and network changes: noticing them, and telling every connection to check its link.
//!
//! The timers run on the monotonic clock, which on Linux and macOS stops while the machine sleeps: after a
//! wake a backoff resumes where it stopped and a dead link shows only at the next heartbeat. So one task per
//! hub compares, every [`TICK`], a clock that counts sleep with the one the timers use; when the first ran
//! ahead by [`SLEEP_THRESHOLD`] or more, the machine slept. It also watches the OS's network addresses
//! (`if-watch`: Linux netlink, macOS SystemConfiguration, Windows IP Helper) and takes the app's own signals
//! ([`crate::Hub::check_links`]). Whatever the source, the connections hear one [`Signal`] through a `watch`
//! channel, at most one per [`MIN_GAP`] (signals in between are merged and sent at its end).
//!
//! It never touches a connection: what a check does is the supervisor's (`connection.rs`).

use std::{collections::HashSet, net::IpAddr, sync::Arc, time::Duration};

use futures_util::{stream::BoxStream, StreamExt};
use tokio::{
    sync::{mpsc, watch},
    time::{sleep_until, Instant},
};
use tokio_util::sync::CancellationToken;

/// How often the clocks are compared.
pub(crate) const TICK: Duration = Duration::from_secs(2);
/// The smallest gap between the clocks taken as a sleep. Shorter naps kill no link, and a wall clock (where
/// it is the only clock that counts sleep) that an NTP step moves forward by less is no false alarm.
pub(crate) const SLEEP_THRESHOLD: Duration = Duration::from_secs(5);
/// Signals closer together than this are merged: an app that forwards every focus event cannot make its
/// connections skip their backoff more often.
pub(crate) const MIN_GAP: Duration = Duration::from_secs(2);
/// Addresses come and go in bursts (IPv4, IPv6, temporary addresses, the route after the address): a network
/// change is told this long after its first event, once for the burst.
pub(crate) const SETTLE: Duration = Duration::from_secs(1);
/// The addresses reported this soon after the watcher starts are the machine's inventory, not a change.
pub(crate) const INVENTORY: Duration = Duration::from_secs(1);
/// After the OS's address watcher fails, it is started again this much later.
const WATCHER_RETRY: Duration = Duration::from_secs(30);

/// Why every live connection checks its link now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkCheck {
    /// The machine woke from sleep (detected by the engine, or told by the app).
    Woke,
    /// The network changed: an address came or went (told by the OS, or by the app).
    NetworkChanged,
}

impl LinkCheck {
    /// Said in the reason when a check finds the link dead.
    pub(crate) fn cause(self) -> &'static str {
        match self {
            LinkCheck::Woke => "checked after the machine woke",
            LinkCheck::NetworkChanged => "checked after a network change",
        }
    }
}

/// What the connections hear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signal {
    pub why: LinkCheck,
    /// How long the machine slept, when known (zero otherwise): a wait a server asked for is shortened by it.
    pub slept: Duration,
}

impl Signal {
    /// Two signals within [`MIN_GAP`] as one: a wake wins over a network change, the longer sleep counts.
    fn merge(self, other: Signal) -> Signal {
        let why = if self.why == LinkCheck::Woke || other.why == LinkCheck::Woke {
            LinkCheck::Woke
        } else {
            LinkCheck::NetworkChanged
        };
        Signal {
            why,
            slept: self.slept.max(other.slept),
        }
    }
}

/// The two clocks read at one moment, each since its own origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// A clock that counts time asleep: Linux `CLOCK_BOOTTIME`, Darwin `CLOCK_MONOTONIC_RAW`, elsewhere the
    /// wall clock.
    pub with_sleep: Duration,
    /// A clock that does not, the one the timers run on: Linux `CLOCK_MONOTONIC`, Darwin
    /// `CLOCK_UPTIME_RAW`, elsewhere `std::time::Instant`.
    pub awake: Duration,
}

/// Where readings come from: the machine ([`SystemClocks`]), or a test.
pub trait Clocks: Send + Sync + 'static {
    /// `None` when a clock cannot be read now (a wall clock before 1970): that tick is skipped.
    fn read(&self) -> Option<Reading>;
}

/// How long the machine slept between two readings: how much further the clock that counts sleep went than
/// the one that does not. Zero when it went less far, or back (a wall clock set back), or when the awake
/// clock went back (no reading to trust). Checked: any two `Duration`s, however absurd, give an answer.
pub(crate) fn slept(before: Reading, after: Reading) -> Duration {
    // A `Duration` holds at most ~1.8e28 ns and an `i128` ~1.7e38: differences of two cannot overflow.
    let ns = |d: Duration| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX);
    let awake = ns(after.awake) - ns(before.awake);
    let with_sleep = ns(after.with_sleep) - ns(before.with_sleep);
    if awake < 0 {
        return Duration::ZERO;
    }
    let gap = with_sleep - awake;
    if gap <= 0 {
        return Duration::ZERO;
    }
    let secs = u64::try_from(gap / 1_000_000_000).unwrap_or(u64::MAX);
    let nanos = u32::try_from(gap % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// Compares each reading with the one before.
pub(crate) struct SleepDetector {
    clocks: Arc<dyn Clocks>,
    last: Option<Reading>,
}

impl SleepDetector {
    pub(crate) fn new(clocks: Arc<dyn Clocks>) -> Self {
        let last = clocks.read();
        Self { clocks, last }
    }

    /// How long the machine slept since the last tick, when that is a sleep at all.
    pub(crate) fn tick(&mut self) -> Option<Duration> {
        let now = self.clocks.read();
        // Each tick compares with the one before only: a clock set back once gives no alarm later either.
        let before = std::mem::replace(&mut self.last, now)?;
        let slept = slept(before, now?);
        (slept >= SLEEP_THRESHOLD).then_some(slept)
    }
}

/// The machine's clocks (see [`Reading`]).
pub struct SystemClocks {
    /// The origin of the fallback's awake clock.
    #[cfg_attr(
        any(
            target_os = "linux",
            target_os = "android",
            target_os = "macos",
            target_os = "ios"
        ),
        allow(dead_code)
    )]
    origin: std::time::Instant,
}

impl Default for SystemClocks {
    fn default() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }
}

impl Clocks for SystemClocks {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn read(&self) -> Option<Reading> {
        Some(Reading {
            with_sleep: clock(libc::CLOCK_BOOTTIME)?,
            awake: clock(libc::CLOCK_MONOTONIC)?,
        })
    }

    #[cfg(any(target_os = "macos", target_os = "ios"))]
    fn read(&self) -> Option<Reading> {
        Some(Reading {
            with_sleep: clock(libc::CLOCK_MONOTONIC_RAW)?,
            awake: clock(libc::CLOCK_UPTIME_RAW)?,
        })
    }

    /// Elsewhere (Windows above all) the wall clock against `Instant`. On Windows `Instant` counts sleep
    /// itself, so this finds little there; a wall clock set back is no sleep, one stepped forward by more than
    /// [`SLEEP_THRESHOLD`] is taken for one (the cost: one ping per connection).
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios"
    )))]
    fn read(&self) -> Option<Reading> {
        Some(Reading {
            with_sleep: std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .ok()?,
            awake: self.origin.elapsed(),
        })
    }
}

/// One POSIX clock, or `None` if it cannot be read.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios"
))]
fn clock(id: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; `clock_gettime` writes only it.
    // std offers no boot-time clock, hence this one call (see DECISIONS).
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(secs, nanos))
}

/// An address that came (`true`) or went (`false`).
pub(crate) type AddressEvent = std::io::Result<(bool, IpAddr)>;

/// Where address events come from: the OS's watcher, or a test.
pub(crate) type AddressEvents = BoxStream<'static, AddressEvent>;

/// Starts the OS's address watcher (`if-watch`); `None`, said once in the log, where it cannot run (a
/// sandbox without netlink, say): sleep detection and the app's signals still work.
fn os_addresses() -> Option<AddressEvents> {
    match if_watch::tokio::IfWatcher::new() {
        Ok(watcher) => Some(
            watcher
                .map(|e| {
                    e.map(|e| match e {
                        if_watch::IfEvent::Up(net) => (true, net.addr()),
                        if_watch::IfEvent::Down(net) => (false, net.addr()),
                    })
                })
                .boxed(),
        ),
        Err(e) => {
            log::warn!("realtime: cannot watch the network's addresses ({e}); network changes go unnoticed unless the app calls Hub::check_links");
            None
        }
    }
}

/// Whether an address can carry a connection to a server elsewhere: not loopback, link-local, multicast or
/// unspecified. Only these make a network change.
pub(crate) fn usable(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            !(a.is_loopback() || a.is_link_local() || a.is_unspecified() || a.is_multicast())
        }
        IpAddr::V6(a) => {
            let link_local = a.segments()[0] & 0xffc0 == 0xfe80;
            !(a.is_loopback() || link_local || a.is_unspecified() || a.is_multicast())
        }
    }
}

/// The usable addresses the machine has, as the watcher reported them.
#[derive(Debug)]
pub(crate) struct Addresses {
    known: HashSet<IpAddr>,
    /// Events before this are the watcher's inventory of the addresses already there.
    inventory_until: Instant,
}

impl Addresses {
    pub(crate) fn new(started: Instant) -> Self {
        Self {
            known: HashSet::new(),
            inventory_until: started.checked_add(INVENTORY).unwrap_or(started),
        }
    }

    /// Takes one event; whether it is a network change.
    pub(crate) fn take(&mut self, up: bool, addr: IpAddr, now: Instant) -> bool {
        if !usable(addr) {
            return false;
        }
        let changed = if up {
            self.known.insert(addr)
        } else {
            self.known.remove(&addr)
        };
        changed && now >= self.inventory_until
    }
}

/// What the task watches.
pub(crate) struct Sources {
    pub clocks: Option<Arc<dyn Clocks>>,
    /// `Some(None)`: the OS's watcher, started inside the task (it needs the runtime). `Some(Some(s))`: these
    /// events (tests). `None`: no network watching.
    pub network: Option<Option<AddressEvents>>,
}

impl Sources {
    /// What the machine offers, or nothing when the app turned detection off.
    pub(crate) fn system(detect: bool) -> Self {
        if !detect {
            return Self {
                clocks: None,
                network: None,
            };
        }
        Self {
            clocks: Some(Arc::new(SystemClocks::default())),
            network: Some(None),
        }
    }
}

/// The task: until the hub goes (`app` closes) or shuts down (`token`).
pub(crate) async fn run(
    sources: Sources,
    mut app: mpsc::UnboundedReceiver<LinkCheck>,
    out: Arc<watch::Sender<Signal>>,
    token: CancellationToken,
) {
    let mut detector = sources.clocks.map(SleepDetector::new);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch_os = matches!(sources.network, Some(None));
    let mut network = match sources.network {
        Some(Some(events)) => Some(events),
        Some(None) => os_addresses(),
        None => None,
    };
    let mut addresses = Addresses::new(Instant::now());
    let mut restart_watcher: Option<Instant> = None;
    let mut settle: Option<Instant> = None;
    let mut pending: Option<Signal> = None;
    let mut next_allowed = Instant::now();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            asked = app.recv() => match asked {
                Some(why) => pending = Some(add(pending, Signal { why, slept: Duration::ZERO })),
                None => return,
            },
            _ = tick.tick(), if detector.is_some() => {
                if let Some(slept) = detector.as_mut().and_then(SleepDetector::tick) {
                    log::info!("realtime: the machine slept about {} s; checking every connection", slept.as_secs());
                    pending = Some(add(pending, Signal { why: LinkCheck::Woke, slept }));
                }
            }
            event = next_event(&mut network) => match event {
                Some(Ok((up, addr))) => {
                    if addresses.take(up, addr, Instant::now()) && settle.is_none() {
                        settle = Some(Instant::now() + SETTLE);
                    }
                }
                ended => {
                    if let Some(Err(e)) = ended {
                        log::warn!("realtime: the network watcher stopped ({e}); starting it again in {} s", WATCHER_RETRY.as_secs());
                    }
                    network = None;
                    if watch_os {
                        restart_watcher = Some(Instant::now() + WATCHER_RETRY);
                    }
                }
            },
            _ = sleep_until(restart_watcher.unwrap_or_else(Instant::now)), if restart_watcher.is_some() => {
                restart_watcher = None;
                network = os_addresses();
                addresses = Addresses::new(Instant::now());
            }
            _ = sleep_until(settle.unwrap_or_else(Instant::now)), if settle.is_some() => {
                settle = None;
                log::info!("realtime: the network changed; checking every connection");
                pending = Some(add(pending, Signal { why: LinkCheck::NetworkChanged, slept: Duration::ZERO }));
            }
            _ = sleep_until(next_allowed), if pending.is_some() => {}
        }
        if let Some(signal) = pending {
            let now = Instant::now();
            if now >= next_allowed {
                pending = None;
                out.send_replace(signal);
                next_allowed = now + MIN_GAP;
            }
        }
    }
}

fn add(pending: Option<Signal>, signal: Signal) -> Signal {
    pending.map_or(signal, |p| p.merge(signal))
}

async fn next_event(network: &mut Option<AddressEvents>) -> Option<AddressEvent> {
    match network {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(with_sleep: Duration, awake: Duration) -> Reading {
        Reading { with_sleep, awake }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_gap_between_the_clocks_is_the_sleep() {
        let cases = [
            // (before, after, slept)
            (at(S(100), S(50)), at(S(102), S(52)), Duration::ZERO),
            (at(S(100), S(50)), at(S(3702), S(52)), S(3600)),
            // The clock that counts sleep set back by an hour: no sleep.
            (at(S(10_000), S(50)), at(S(6_402), S(52)), Duration::ZERO),
            // The awake clock went back: nothing to trust.
            (at(S(100), S(50)), at(S(9_000), S(40)), Duration::ZERO),
            (
                at(S(1), Duration::from_millis(1_500)),
                at(S(2), S(2)),
                Duration::from_millis(500),
            ),
        ];
        for (before, after, want) in cases {
            assert_eq!(
                slept(before, after),
                want,
                "expected {want:?} for {before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn absurd_readings_neither_overflow_nor_panic() {
        let max = Duration::MAX;
        let zero = Duration::ZERO;
        assert_eq!(slept(at(zero, zero), at(max, zero)), max);
        assert_eq!(slept(at(max, zero), at(zero, zero)), zero);
        assert_eq!(slept(at(zero, max), at(max, zero)), zero);
        assert_eq!(slept(at(max, max), at(max, max)), zero);
        assert_eq!(slept(at(zero, zero), at(max, max)), zero);
        assert_eq!(
            slept(at(zero, zero), at(max, Duration::from_nanos(1))),
            max - Duration::from_nanos(1)
        );
    }

    struct Fixed(std::sync::Mutex<Vec<Option<Reading>>>);

    impl Clocks for Fixed {
        fn read(&self) -> Option<Reading> {
            let mut r = self.0.lock().unwrap();
            if r.is_empty() {
                None
            } else {
                r.remove(0)
            }
        }
    }

    #[test]
    fn the_detector_compares_each_tick_with_the_last() {
        let readings = vec![
            Some(at(S(0), S(0))),
            Some(at(S(2), S(2))),
            // Four seconds asleep: under the threshold.
            Some(at(S(8), S(4))),
            // An hour.
            Some(at(S(3_610), S(6))),
            // Set back a day, then on as usual: never a wake.
            Some(at(S(10), S(8))),
            Some(at(S(12), S(10))),
            // Unreadable, then readable again: the unreadable tick breaks the chain.
            None,
            Some(at(S(99_999), S(12))),
            Some(at(S(100_001), S(14))),
        ];
        let mut d = SleepDetector::new(Arc::new(Fixed(std::sync::Mutex::new(readings))));
        let got: Vec<_> = (0..8).map(|_| d.tick()).collect();
        assert_eq!(
            got,
            vec![None, None, Some(S(3_600)), None, None, None, None, None]
        );
    }

    #[test]
    fn the_machines_clocks_read() {
        let clocks = SystemClocks::default();
        let a = clocks.read().expect("the clocks read");
        let b = clocks.read().expect("the clocks read");
        assert!(
            b.awake >= a.awake,
            "expected the awake clock not to go back"
        );
        assert!(
            slept(a, b) < SLEEP_THRESHOLD,
            "expected no sleep between two reads, got {:?}",
            slept(a, b)
        );
    }

    #[test]
    fn only_usable_addresses_change_the_network_and_the_inventory_is_no_change() {
        let t0 = Instant::now();
        let mut a = Addresses::new(t0);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        // The inventory.
        assert!(!a.take(true, v4, t0));
        let later = t0 + INVENTORY;
        for local in [
            "127.0.0.1",
            "169.254.1.1",
            "fe80::1",
            "::1",
            "0.0.0.0",
            "ff02::1",
        ] {
            assert!(
                !a.take(true, local.parse().unwrap(), later),
                "expected {local} to be no change"
            );
        }
        assert!(
            !a.take(true, v4, later),
            "expected a known address to be no change"
        );
        assert!(a.take(true, v6, later));
        assert!(a.take(false, v4, later));
        assert!(
            !a.take(false, v4, later),
            "expected a second Down to be no change"
        );
        assert!(a.take(true, v4, later));
    }

    #[test]
    fn signals_merge() {
        let woke = Signal {
            why: LinkCheck::Woke,
            slept: S(60),
        };
        let net = Signal {
            why: LinkCheck::NetworkChanged,
            slept: Duration::ZERO,
        };
        assert_eq!(net.merge(woke), woke);
        assert_eq!(woke.merge(net), woke);
        assert_eq!(net.merge(net), net);
    }
}
