//! Sharing and lifecycle of upstreams in the hub, against real loopback servers that count what they see:
//! TCP sockets accepted and still open, WebSocket upgrades and SSE requests, live sessions and the close
//! frames they receive.
//!
//! - identical subscriptions of one owner share one upstream, another owner's get their own; late joiners are
//!   told the current state at once; `share: false` opts out; `share: "<key>"` joins across owners with the
//!   same options, and the key held with other options is an error;
//! - an upstream lingers after its last subscriber leaves, a re-join within the linger reuses it, and after
//!   the linger it closes with the app's code and leaves no task behind;
//! - `release_owner` (a destroyed or reloaded webview) drops only that owner's subscriptions;
//! - `shutdown` closes every upstream with 1001 and leaves no task or socket;
//! - a soak of 10 000 subscriptions leaves no task, upstream or socket, and bounded memory growth.
//!
//! The soak measures the process's RSS, so it takes this file's lock for writing and every other test takes
//! it for reading: the tests of this file run in parallel with each other, but never beside the soak.

mod common;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use common::{hub_with, opts, subscribe, wait_until, CountingServer, Frames, Kind, WAIT};
use tauri_plugin_realtime_core::{
    AllowAll, ConnectOptions, Error, Hub, HubConfig, Share, State, Toggle, UrlGuard,
};
use tokio::{
    sync::RwLock,
    time::{sleep, Instant},
};

/// Readers: every test but the soak. Writer: the soak, which measures the whole process.
static SERIAL: RwLock<()> = RwLock::const_new(());

// ---------------------------------------------------------------------------------------------------------
// Subscriptions with an owner of the test's choosing, to the kit's counting server.

fn join(hub: &Hub, owner: &str, options: ConnectOptions) -> Frames {
    try_join(hub, owner, options, Arc::new(AllowAll))
        .unwrap_or_else(|e| panic!("expected connect to succeed, got {e:?}"))
}

fn try_join(
    hub: &Hub,
    owner: &str,
    options: ConnectOptions,
    guard: Arc<dyn UrlGuard>,
) -> Result<Frames, Error> {
    subscribe(hub, None, options, owner, guard).map(|(_, frames)| frames)
}

fn config(linger: Duration) -> HubConfig {
    HubConfig {
        linger,
        ..Default::default()
    }
}

/// Waits until the hub has no task, no upstream, and the server holds no socket.
async fn all_gone(hub: &Hub, srv: &CountingServer) {
    wait_until("no upstream in the hub", || hub.upstream_count() == 0).await;
    wait_until("no live task in the hub", || hub.live_tasks() == 0).await;
    wait_until("no open socket at the server", || srv.tcp_open() == 0).await;
}

// ---------------------------------------------------------------------------------------------------------
// 1. Identical subscriptions share one upstream.

async fn one_upstream_for_identical_subscriptions(kind: Kind) {
    let _serial = SERIAL.read().await;
    let srv = CountingServer::start().await;
    let hub = hub_with(config(Duration::ZERO));
    let url = srv.url(kind, "room=1");

    let mut first = join(&hub, "a", opts(&url));
    assert!(
        !first.connected.shared,
        "expected the first connect to open the upstream (shared: false), got {:?}",
        first.connected
    );
    let connected = first.state(State::Connected).await;
    wait_until("the server's session", || srv.live(kind) == 1).await;

    // Four more from the same webview (its components, say): all join.
    let mut subs = vec![first];
    for owner in ["a", "a", "a", "a"] {
        let s = join(&hub, owner, opts(&url));
        assert!(
            s.connected.shared && s.connected.state == State::Connected,
            "expected a joiner to get shared: true in state connected, got {:?}",
            s.connected
        );
        subs.push(s);
    }
    // A late joiner is told the current state at once: the very frame the first subscriber saw, marked as
    // a snapshot (its seq repeats an earlier one, so it is not a gap).
    let snapshot = connected.as_snapshot();
    for s in &mut subs[1..] {
        let f = s.first().await;
        assert_eq!(
            f, snapshot,
            "expected the late joiner's first frame to be {snapshot:?}, got {f:?}"
        );
    }

    for text in ["m1", "m2", "m3"] {
        srv.say(text);
    }
    for s in &mut subs {
        s.message("m3").await;
    }
    let want = subs[0].numbered_messages();
    assert_eq!(
        want.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(),
        ["m1", "m2", "m3"],
        "expected the three messages in order, got {want:?}"
    );
    for s in &subs[1..] {
        assert_eq!(
            s.numbered_messages(),
            want,
            "expected {} ({}) to see the same message frames with the same seq, got {:?}",
            s.id,
            s.owner,
            s.numbered_messages()
        );
    }
    // Exactly one upstream: one stream and one socket at the server.
    assert_eq!(
        (srv.streams(kind), srv.tcp_accepted(), hub.upstream_count()),
        (1, 1, 1),
        "expected one stream, one socket and one upstream, got (streams, sockets, upstreams)"
    );

    let info = hub.inspect(None, Some(&subs[0].id)).unwrap();
    let want_owners = BTreeMap::from([("a".to_owned(), 5)]);
    assert!(
        info.len() == 1
            && info[0].subscribers == 5
            && info[0].owners == want_owners
            && info[0].joinable,
        "expected subscribers: 5 and owners {want_owners:?}, got {info:?}"
    );
    let of_a = hub.inspect(Some("a"), None).unwrap();
    assert!(
        of_a.len() == 5 && of_a.iter().all(|i| i.subscribers == 5),
        "expected a to see its 5 subscriptions of the 5-subscriber upstream, got {of_a:?}"
    );

    // A joiner after messages flowed: told the current state at once, same frame and seq as the last state
    // frame the others saw; then the same frames as everyone.
    let mut late = join(&hub, "a", opts(&url));
    assert!(late.connected.shared, "got {:?}", late.connected);
    let last = subs[0].last_state().expect("a state frame").as_snapshot();
    let f = late.first().await;
    assert_eq!(
        f, last,
        "expected the late joiner to get {last:?} at once, got {f:?}"
    );
    srv.say("m4");
    let m4 = late.message("m4").await;
    for s in &mut subs {
        let got = s.message("m4").await;
        assert_eq!(got, m4, "expected the same frame for everyone, got {got:?}");
    }
    subs.push(late);

    // Another webview with identical options gets an upstream of its own: without an explicit key, no page
    // reads or writes a stream another page opened.
    let mut other_page = join(&hub, "b", opts(&url));
    assert!(
        !other_page.connected.shared,
        "expected another owner's identical options to open their own upstream, got {:?}",
        other_page.connected
    );
    other_page.state(State::Connected).await;
    wait_until("a second stream at the server", || {
        srv.streams(kind) == 2 && srv.live(kind) == 2
    })
    .await;

    // `share: false` opts out: another stream at the server.
    let mut private = opts(&url);
    private.share = Some(Share::Enabled(false));
    let mut own = join(&hub, "a", private.clone());
    assert!(
        !own.connected.shared,
        "expected share: false to open its own upstream, got {:?}",
        own.connected
    );
    own.state(State::Connected).await;
    wait_until("a third stream at the server", || {
        srv.streams(kind) == 3 && srv.live(kind) == 3
    })
    .await;
    // Even identical `share: false` options do not join each other.
    let mut own2 = join(&hub, "a", private);
    assert!(!own2.connected.shared, "got {:?}", own2.connected);
    own2.state(State::Connected).await;
    wait_until("a fourth stream at the server", || srv.streams(kind) == 4).await;
    let info = hub.inspect(None, Some(&own.id)).unwrap();
    assert!(
        info[0].subscribers == 1 && !info[0].joinable,
        "expected a private upstream with one subscriber, got {info:?}"
    );

    // `share: "<key>"` joins across webviews when the options are the same; the key held with other
    // options is an error, not a join into a stream the caller did not ask for.
    let mut keyed = opts(srv.url(kind, "keyed=1"));
    keyed.share = Some(Share::Key("room".into()));
    let mut k1 = join(&hub, "a", keyed.clone());
    assert!(!k1.connected.shared, "got {:?}", k1.connected);
    let k1_connected = k1.state(State::Connected).await;
    wait_until("the keyed stream at the server", || {
        srv.streams(kind) == 5 && srv.live(kind) == 5
    })
    .await;
    let mut other = opts(srv.url(kind, "keyed=2&other=options"));
    other.headers.insert("x-other".into(), "1".into());
    other.heartbeat = Some(Toggle::Enabled(false));
    other.share = Some(Share::Key("room".into()));
    match try_join(&hub, "b", other, Arc::new(AllowAll)) {
        Err(Error::ShareKeyConflict(k)) => assert_eq!(k, "room"),
        Err(e) => panic!("expected a share key conflict, got {e:?}"),
        Ok(s) => panic!(
            "expected a share key conflict, got a join {:?}",
            s.connected
        ),
    }
    let mut k2 = join(&hub, "b", keyed);
    assert!(
        k2.connected.shared,
        "expected another webview to join by the same key and options, got {:?}",
        k2.connected
    );
    let f = k2.first().await;
    let k1_connected = k1_connected.as_snapshot();
    assert_eq!(
        f, k1_connected,
        "expected the keyed joiner to get {k1_connected:?}, got {f:?}"
    );
    srv.say("m5");
    let m5 = k1.message("m5").await;
    let got = k2.message("m5").await;
    assert_eq!(
        got, m5,
        "expected the keyed joiner to get k1's frame, got {got:?}"
    );
    own.message("m5").await;
    own2.message("m5").await;
    other_page.message("m5").await;
    assert_eq!(
        (srv.streams(kind), hub.upstream_count()),
        (5, 5),
        "expected 5 streams (shared, the other page's, 2 private, keyed) and 5 upstreams, got (streams, upstreams)"
    );

    for s in subs.iter().chain([&own, &own2, &k1, &k2, &other_page]) {
        hub.close(&s.id, &s.owner, None, None).unwrap();
    }
    all_gone(&hub, &srv).await;
    assert_eq!(srv.live(kind), 0, "expected no live stream at the server");
}

#[tokio::test]
async fn websocket_subscriptions_share_one_upstream() {
    one_upstream_for_identical_subscriptions(Kind::Ws).await;
}

#[tokio::test]
async fn sse_subscriptions_share_one_upstream() {
    one_upstream_for_identical_subscriptions(Kind::Sse).await;
}

// ---------------------------------------------------------------------------------------------------------
// 2. Linger.

const LINGER: Duration = Duration::from_millis(400);

async fn upstream_lingers_then_closes(kind: Kind) {
    let _serial = SERIAL.read().await;
    let srv = CountingServer::start().await;
    let hub = hub_with(config(LINGER));
    let url = srv.url(kind, "linger");

    let mut s1 = join(&hub, "a", opts(&url));
    let connected = s1.state(State::Connected).await;
    wait_until("the server's session", || srv.live(kind) == 1).await;
    hub.close(&s1.id, "a", Some(4001), Some("first leave".into()))
        .unwrap();

    // Back within the linger (a reloading page): the same upstream, no new connection.
    sleep(LINGER / 4).await;
    let mut s2 = join(&hub, "a", opts(&url));
    assert!(
        s2.connected.shared && s2.connected.state == State::Connected,
        "expected a re-join within the linger to share the lingering upstream, got {:?}",
        s2.connected
    );
    let f = s2.first().await;
    let connected = connected.as_snapshot();
    assert_eq!(
        f, connected,
        "expected the re-joiner to get {connected:?} at once, got {f:?}"
    );
    // The first linger must not fire later: wait past it and look again.
    sleep(LINGER + LINGER / 2).await;
    assert_eq!(
        (srv.streams(kind), srv.live(kind), hub.upstream_count()),
        (1, 1, 1),
        "expected the re-joined upstream to stay the only one, got (streams, live, upstreams)"
    );
    assert_eq!(
        srv.counts.closes.all(),
        Vec::<String>::new(),
        "expected no close at the server"
    );
    srv.say("still here");
    s2.message("still here").await;

    // Leave again: it lingers, then closes with the app's code.
    hub.close(&s2.id, "a", Some(4002), Some("second leave".into()))
        .unwrap();
    let left = Instant::now();
    sleep(LINGER / 4).await;
    assert_eq!(
        (hub.upstream_count(), srv.live(kind)),
        (1, 1),
        "expected the upstream to linger, got (upstreams, live at the server)"
    );
    match kind {
        Kind::Ws => {
            srv.counts
                .closes
                .wait_for("close 4002 second leave", |c| {
                    c == "close 4002 second leave"
                })
                .await;
            assert_eq!(
                srv.counts.closes.all(),
                ["close 4002 second leave"],
                "expected exactly one close, with the app's code"
            );
        }
        Kind::Sse => {
            wait_until("the SSE request to end at the server", || {
                srv.live(kind) == 0
            })
            .await
        }
    }
    let after = left.elapsed();
    assert!(
        after >= LINGER,
        "expected the upstream to close no sooner than the linger ({LINGER:?}), got {after:?}"
    );
    all_gone(&hub, &srv).await;
    assert_eq!(
        srv.streams(kind),
        1,
        "expected one stream over the whole test"
    );
}

#[tokio::test]
async fn websocket_upstream_lingers_then_closes_with_the_apps_code() {
    upstream_lingers_then_closes(Kind::Ws).await;
}

#[tokio::test]
async fn sse_upstream_lingers_then_ends_the_request() {
    upstream_lingers_then_closes(Kind::Sse).await;
}

// ---------------------------------------------------------------------------------------------------------
// 3. release_owner.

#[tokio::test]
async fn release_owner_drops_only_that_owners_subscriptions() {
    let _serial = SERIAL.read().await;
    let srv = CountingServer::start().await;
    let hub = hub_with(config(Duration::ZERO));
    let shared = srv.url(Kind::Ws, "shared");

    let mut a1 = join(&hub, "a", opts(&shared));
    let mut a2 = join(&hub, "a", opts(&shared));
    // b asks for the same stream: an upstream of its own (another webview does not share by default).
    let mut b1 = join(&hub, "b", opts(&shared));
    // a also holds a stream of its own, and an SSE one.
    let mut a3 = join(&hub, "a", opts(srv.url(Kind::Ws, "a-only")));
    let mut a4 = join(&hub, "a", opts(srv.url(Kind::Sse, "a-only")));
    for s in [&mut a1, &mut a2, &mut b1, &mut a3, &mut a4] {
        s.state(State::Connected).await;
    }
    wait_until("four sessions at the server", || {
        srv.live(Kind::Ws) == 3 && srv.live(Kind::Sse) == 1
    })
    .await;

    let released = hub.release_owner("a");
    assert_eq!(
        released, 4,
        "expected 4 subscriptions of a released, got {released}"
    );
    assert_eq!(
        hub.owners(),
        ["b"],
        "expected only b left, got {:?}",
        hub.owners()
    );

    // a's streams close (1001, as a webview that went away), b's stays.
    wait_until("a's two WebSockets closed with 1001", || {
        srv.counts
            .closes
            .all()
            .iter()
            .filter(|c| c.starts_with("close 1001"))
            .count()
            == 2
    })
    .await;
    wait_until("a's SSE request to end", || srv.live(Kind::Sse) == 0).await;
    wait_until("a single upstream left", || hub.upstream_count() == 1).await;
    let info = hub.inspect(None, Some(&b1.id)).unwrap();
    assert!(
        info[0].subscribers == 1
            && info[0].owners == BTreeMap::from([("b".to_owned(), 1)])
            && info[0].state == State::Connected,
        "expected b's upstream connected with b alone, got {info:?}"
    );

    // b's stream keeps flowing; a gets nothing more and its deliveries end.
    srv.say("after a left");
    b1.message("after a left").await;
    for a in [&mut a1, &mut a2, &mut a3, &mut a4] {
        a.until_closed().await;
        assert!(
            a.numbered_messages().is_empty(),
            "expected nothing delivered to a after its release, got {:?}",
            a.numbered_messages()
        );
    }
    let e = hub.inspect(Some("a"), Some(&a1.id)).unwrap_err();
    assert!(
        matches!(e, Error::UnknownConnection(_)),
        "expected a's id to be unknown, got {e:?}"
    );
    assert_eq!(
        (
            srv.live(Kind::Ws),
            srv.streams(Kind::Ws),
            srv.counts.closes.all().len()
        ),
        (1, 3, 2),
        "expected b's WebSocket open and only a's two closed, got (live, streams, closes)"
    );

    hub.close(&b1.id, "b", None, None).unwrap();
    all_gone(&hub, &srv).await;
}

// ---------------------------------------------------------------------------------------------------------
// 4. shutdown.

#[tokio::test]
async fn shutdown_closes_every_upstream_with_1001() {
    let _serial = SERIAL.read().await;
    let srv = CountingServer::start().await;
    // The default linger (3 s): one upstream is lingering when the app exits, and must not outlive it.
    let hub = hub_with(config(Duration::from_secs(3)));
    let mut subs = Vec::new();
    for (owner, url) in [
        ("a", srv.url(Kind::Ws, "1")),
        ("a", srv.url(Kind::Ws, "1")),
        ("b", srv.url(Kind::Ws, "2")),
        ("b", srv.url(Kind::Ws, "3")),
        ("a", srv.url(Kind::Sse, "1")),
        ("b", srv.url(Kind::Sse, "2")),
    ] {
        let mut s = join(&hub, owner, opts(&url));
        s.state(State::Connected).await;
        subs.push(s);
    }
    wait_until("every session at the server", || {
        srv.live(Kind::Ws) == 3 && srv.live(Kind::Sse) == 2
    })
    .await;
    hub.close(&subs[3].id, "b", None, None).unwrap();
    assert_eq!(
        hub.upstream_count(),
        5,
        "expected 5 upstreams, one lingering"
    );

    let started = Instant::now();
    let ended = hub.shutdown(Duration::from_secs(2)).await;
    let took = started.elapsed();
    assert!(
        ended,
        "expected shutdown to end every task within 2 s, took {took:?}"
    );
    assert_eq!(
        (hub.live_tasks(), hub.upstream_count()),
        (0, 0),
        "expected no task and no upstream after shutdown, got (tasks, upstreams)"
    );
    wait_until("three close frames at the server", || {
        srv.counts.closes.all().len() >= 3
    })
    .await;
    let closes = srv.counts.closes.all();
    assert!(
        closes.len() == 3 && closes.iter().all(|c| c.starts_with("close 1001 ")),
        "expected every WebSocket (the lingering one too) to get close 1001, got {closes:?}"
    );
    wait_until("the SSE requests to end at the server", || {
        srv.live(Kind::Sse) == 0
    })
    .await;
    wait_until("no open socket at the server", || srv.tcp_open() == 0).await;
    assert_eq!(srv.live(Kind::Ws), 0, "expected no live WebSocket session");

    let e = try_join(
        &hub,
        "a",
        opts(srv.url(Kind::Ws, "late")),
        Arc::new(AllowAll),
    )
    .err()
    .expect("expected connect after shutdown to fail");
    assert!(
        matches!(e, Error::ShuttingDown),
        "expected ShuttingDown, got {e:?}"
    );
    println!("shutdown of 5 upstreams took {took:?}");
}

// ---------------------------------------------------------------------------------------------------------
// Scope and share keys.

/// Allows every URL but those whose query names `secret`.
struct DenySecret;

impl UrlGuard for DenySecret {
    fn check(&self, url: &url::Url) -> Result<(), String> {
        match url.query() {
            Some(q) if q.contains("secret") => Err(url.to_string()),
            _ => Ok(()),
        }
    }
}

/// A webview whose scope denies a URL must not read that URL's stream by naming another webview's share
/// key: the joiner's scope has to allow the upstream's URL too, not only the URL in its own options.
#[tokio::test]
async fn a_share_key_does_not_bypass_the_joiners_scope() {
    let _serial = SERIAL.read().await;
    let srv = CountingServer::start().await;
    let hub = hub_with(config(Duration::ZERO));
    let mut secret = opts(srv.url(Kind::Ws, "secret"));
    secret.share = Some(Share::Key("room".into()));
    let mut a = join(&hub, "a", secret);
    a.state(State::Connected).await;
    wait_until("the session", || srv.live(Kind::Ws) == 1).await;

    // b may not open ?secret itself ...
    let e = try_join(
        &hub,
        "b",
        opts(srv.url(Kind::Ws, "secret")),
        Arc::new(DenySecret),
    )
    .err()
    .expect("expected the scope to refuse ?secret");
    assert!(matches!(e, Error::UrlNotAllowed(_)), "got {e:?}");
    // ... nor join it with an allowed URL and the same share key (other options: a conflict) ...
    let mut allowed = opts(srv.url(Kind::Ws, "public"));
    allowed.share = Some(Share::Key("room".into()));
    let mut same = opts(srv.url(Kind::Ws, "secret"));
    same.share = Some(Share::Key("room".into()));
    // ... nor with the same options (its own scope refuses them).
    for (what, o, guard) in [
        (
            "other options",
            allowed.clone(),
            Arc::new(DenySecret) as Arc<dyn UrlGuard>,
        ),
        ("the same options", same, Arc::new(DenySecret)),
    ] {
        match try_join(&hub, "b", o, guard) {
            Err(Error::UrlNotAllowed(_) | Error::ShareKeyConflict(_)) => {}
            Err(e) => panic!("{what}: expected a refusal, got {e:?}"),
            Ok(s) => panic!("{what}: expected a refusal, got a join {:?}", s.connected),
        }
    }
    match try_join(&hub, "b", allowed, Arc::new(DenySecret)) {
        Err(e) => assert!(
            matches!(e, Error::ShareKeyConflict(_)),
            "expected ShareKeyConflict, got {e:?}"
        ),
        Ok(mut b) => {
            srv.say("for a only");
            a.message("for a only").await;
            sleep(Duration::from_millis(200)).await;
            b.drain();
            panic!(
                "expected b's connect to be refused or to get its own upstream, got {:?} and frames {:?}",
                b.connected, b.seen
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// A repeated connect.

/// Tauri may run a `connect` twice (an invoke re-sent as a page reloads), and a page may retry one whose
/// answer it lost: the same id, owner and options are the subscription already made, not a second upstream
/// or an error. Tried private (a join would hide a second upstream) and shared, on both transports, and with
/// the repeat racing the first from another thread.
async fn the_same_connect_again_is_the_same_subscription(kind: Kind, share: Share) {
    let _serial = SERIAL.read().await;
    let srv = CountingServer::start().await;
    let hub = hub_with(config(Duration::ZERO));
    let mut o = opts(srv.url(kind, "room=1"));
    o.share = Some(share.clone());

    let (id, mut first) =
        subscribe(&hub, Some("chat-1"), o.clone(), "a", Arc::new(AllowAll)).unwrap();
    first.state(State::Connected).await;
    let (_, again) = subscribe(&hub, Some("chat-1"), o.clone(), "a", Arc::new(AllowAll))
        .unwrap_or_else(|e| panic!("{share:?}: expected the repeat to be answered, got {e:?}"));
    assert_eq!(
        (
            again.connected.id.as_str(),
            again.connected.state,
            again.connected.shared
        ),
        (id.as_str(), State::Connected, false),
        "{share:?}: expected the first subscription's id and state, not a join"
    );
    // Racing repeats, from other threads, while it is live.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let (hub, o) = (hub.clone(), o.clone());
            std::thread::spawn(move || {
                subscribe(&hub, Some("chat-1"), o, "a", Arc::new(AllowAll)).map(|(i, _)| i)
            })
        })
        .collect();
    for r in racers {
        let answered = r.join().expect("the racing thread");
        assert_eq!(
            answered.ok().as_deref(),
            Some(id.as_str()),
            "{share:?}: a racing repeat"
        );
    }
    srv.say("m1");
    first.message("m1").await;
    assert_eq!(hub.upstream_count(), 1, "{share:?}: expected one upstream");
    assert_eq!(
        srv.streams(kind),
        1,
        "{share:?}: expected one stream at the server: {}",
        srv.summary()
    );
    let info = hub.inspect(Some("a"), None).unwrap();
    assert_eq!(
        info.len(),
        1,
        "{share:?}: expected one subscription, got {info:?}"
    );

    // The id with other options is still refused, and says nothing another webview's refusal would not.
    let mut other = o.clone();
    other.url = srv.url(kind, "room=2");
    let own = subscribe(&hub, Some("chat-1"), other, "a", Arc::new(AllowAll)).err();
    let foreign = subscribe(&hub, Some("chat-1"), o, "b", Arc::new(AllowAll)).err();
    assert!(
        matches!(own, Some(Error::IdRefused(_))),
        "{share:?}: expected other options to be refused, got {own:?}"
    );
    assert_eq!(
        own.map(|e| e.to_string()),
        foreign.map(|e| e.to_string()),
        "{share:?}: expected the same refusal for another webview"
    );
    hub.close(&id, "a", None, None).unwrap();
    all_gone(&hub, &srv).await;
}

/// Private, shared by options, shared under a key.
fn every_share() -> [Share; 3] {
    [
        Share::Enabled(false),
        Share::Enabled(true),
        Share::Key("k".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_websocket_connect_again_is_the_same_subscription() {
    for share in every_share() {
        the_same_connect_again_is_the_same_subscription(Kind::Ws, share).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_sse_connect_again_is_the_same_subscription() {
    for share in every_share() {
        the_same_connect_again_is_the_same_subscription(Kind::Sse, share).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// 5. Soak.

/// VmRSS of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

const WAVE: usize = 200;

#[derive(Default)]
struct Tally {
    subs: usize,
    upstreams: usize,
    peak_tasks: usize,
    peak_upstreams: usize,
}

/// Connects one wave: half WebSocket, half SSE, every third joining the one before it.
fn open_wave(hub: &Hub, srv: &CountingServer, n: usize, t: &mut Tally) -> Vec<Frames> {
    let start = t.subs;
    let mut subs = Vec::with_capacity(WAVE);
    for i in 0..WAVE {
        let k = start + i;
        let joins = i % 3 == 2;
        let key = if joins { k - 1 } else { k };
        let kind = if key % 2 == 0 { Kind::Ws } else { Kind::Sse };
        let mut o = opts(srv.url(kind, &format!("soak={key}")));
        // No heartbeat timers: the soak is about opening and closing.
        o.heartbeat = Some(Toggle::Enabled(false));
        let s = join(hub, "soak", o);
        assert_eq!(
            s.connected.shared, joins,
            "wave {n}: expected shared: {joins} for subscription {k}, got {:?}",
            s.connected
        );
        if !joins {
            t.upstreams += 1;
        }
        subs.push(s);
    }
    t.subs += WAVE;
    subs
}

/// Waits for every subscription of the wave to be connected, closes them all, and waits until the wave
/// left nothing behind. Returns the (tasks, upstreams) the wave had at its peak.
async fn finish_wave(
    hub: &Hub,
    srv: &CountingServer,
    n: usize,
    mut subs: Vec<Frames>,
) -> (usize, usize) {
    for s in &mut subs {
        s.state(State::Connected).await;
    }
    let peak = (hub.live_tasks(), hub.upstream_count());
    for s in &subs {
        hub.close(&s.id, "soak", None, None).unwrap();
    }
    let wave_end = Instant::now() + WAIT;
    while hub.live_tasks() > 0 || hub.upstream_count() > 0 || srv.tcp_open() > 0 {
        assert!(
            Instant::now() < wave_end,
            "wave {n}: expected no task, upstream or socket left within {WAIT:?}, got {} tasks, {} upstreams, {} sockets",
            hub.live_tasks(),
            hub.upstream_count(),
            srv.tcp_open()
        );
        sleep(Duration::from_millis(2)).await;
    }
    peak
}

/// Opens and closes 10 000 subscriptions in waves of 200 (connect all, wait for `connected`, close all,
/// wait until the wave left nothing behind), half WebSocket and half SSE, every third joining the one
/// before it (so about 6 700 upstreams), and checks that nothing is left and memory did not grow much.
///
/// File descriptors: a wave holds at most about 135 upstreams at once, each a client and a server socket
/// in this process (about 270 descriptors), far below the usual soft limit of 1024; a wave ends only when
/// the server has dropped every socket, so waves do not pile up. Closed loopback sockets sit in TIME_WAIT
/// (no descriptor) on about 6 700 of the 28 000 ephemeral ports; running this test many times a minute could
/// exhaust them.
///
/// Memory bound: 64 MiB. The warm-up wave (not counted) allocates what stays for the process's life (the
/// HTTP client, runtime workers, allocator arenas). What the allocator keeps after that is bounded by one
/// wave's peak: each WebSocket has read and write buffers of tens of KiB on both ends, so a wave peaks
/// around 10-20 MiB. A leak of one subscription's state (its channels, task and at least one socket
/// buffer, several KiB) over 10 000 subscriptions would pass 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_ten_thousand_subscriptions_leave_nothing_behind() {
    const TOTAL: usize = 10_000;
    const RSS_BOUND_KIB: u64 = 64 * 1024;
    let _serial = SERIAL.write().await;
    let deadline = Instant::now() + Duration::from_secs(100);
    let srv = CountingServer::start().await;
    let hub = hub_with(HubConfig {
        linger: Duration::ZERO,
        max_connections: 100_000,
        max_subscriptions_per_owner: 100_000,
        ..Default::default()
    });

    // Warm-up, not counted (its keys start at TOTAL, so nothing is shared with the waves that follow).
    let mut warm = Tally {
        subs: TOTAL,
        ..Tally::default()
    };
    let subs = open_wave(&hub, &srv, 0, &mut warm);
    finish_wave(&hub, &srv, 0, subs).await;
    let mut tally = Tally::default();
    let accepted_before = srv.tcp_accepted();
    let rss_before = rss_kib();

    let started = Instant::now();
    for n in 1..=TOTAL / WAVE {
        assert!(
            Instant::now() < deadline,
            "expected the soak to finish within 100 s, got to wave {n} of {}",
            TOTAL / WAVE
        );
        let subs = open_wave(&hub, &srv, n, &mut tally);
        let (tasks, upstreams) = finish_wave(&hub, &srv, n, subs).await;
        tally.peak_tasks = tally.peak_tasks.max(tasks);
        tally.peak_upstreams = tally.peak_upstreams.max(upstreams);
    }
    let took = started.elapsed();
    let rss_after = rss_kib();

    assert_eq!(
        (hub.live_tasks(), hub.upstream_count(), srv.tcp_open()),
        (0, 0, 0),
        "expected no task, upstream or socket at the end, got (tasks, upstreams, sockets)"
    );
    let accepted = srv.tcp_accepted() - accepted_before;
    assert_eq!(
        accepted, tally.upstreams,
        "expected one socket per upstream ({}), got {accepted}",
        tally.upstreams
    );
    let growth = rss_after.saturating_sub(rss_before);
    println!(
        "soak: {} subscriptions ({} upstreams, {} WebSocket closes) in {:.2?}: {:.0} subscriptions/s, {:.0} upstreams/s",
        tally.subs,
        tally.upstreams,
        srv.counts.closes.all().len(),
        took,
        tally.subs as f64 / took.as_secs_f64(),
        tally.upstreams as f64 / took.as_secs_f64()
    );
    println!(
        "soak: peak {} live tasks, {} upstreams, {} server sockets; RSS before {} KiB, after {} KiB, growth {} KiB (bound {} KiB)",
        tally.peak_tasks,
        tally.peak_upstreams,
        srv.tcp_peak(),
        rss_before,
        rss_after,
        growth,
        RSS_BOUND_KIB
    );
    assert!(
        growth < RSS_BOUND_KIB,
        "expected RSS growth below {RSS_BOUND_KIB} KiB, got {growth} KiB ({rss_before} -> {rss_after})"
    );
}
