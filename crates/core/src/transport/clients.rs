//! The HTTP clients every request goes through, chosen per request URL: one set per client certificate (rustls
//! gives a client certificate without being told the server's name, so each identity needs a TLS configuration,
//! and so connections, of its own), and within a set, lanes for long-lived streams over HTTP/2.
//!
//! A lane is a client with its own connection pool. Over HTTP/2, one connection carries every request to an
//! origin, and hyper queues a request beyond the server's `SETTINGS_MAX_CONCURRENT_STREAMS` until a stream ends,
//! which an event stream never does. So an event stream that gets no answer while its connection already
//! carries others marks that connection full (`Slot::full`): the streams it carries are the origin's limit, and
//! further streams (and the polls and sends beside them) go to the next lane, that is another connection.
//! Over HTTP/1.1 every stream has a connection anyway, and lanes never fill.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::watch;
use url::Url;

use crate::{
    error::Error,
    tls::{http_alpn, with_identity, ClientIdentity},
};

/// Event streams one lane carries before the next is used, while the origin's own limit is not known: the
/// smallest `SETTINGS_MAX_CONCURRENT_STREAMS` RFC 9113 recommends, so a server that follows it never makes a
/// stream wait.
const STREAMS_PER_CONNECTION: usize = 100;

/// How long a stream waits for the first answer on its lane before it goes ahead on its own.
const FIRST_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The HTTP clients, per client identity and lane.
pub(crate) struct Clients {
    /// The TLS configuration per identity: `[0]` without a client certificate, `[i + 1]` with identity `i`.
    tls: Vec<rustls::ClientConfig>,
    identities: Vec<ClientIdentity>,
    http1_only: bool,
    /// The engine's one proxy decision, which every client asks instead of reading the environment itself.
    proxy: reqwest::Proxy,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By (identity, lane); lane 0 of every identity is built up front, the others when first needed.
    clients: HashMap<(usize, usize), reqwest::Client>,
    /// Event streams per (identity, origin).
    origins: HashMap<(usize, String), Origin>,
}

#[derive(Default)]
struct Origin {
    lanes: Vec<Lane>,
    /// Streams one connection takes, once a full one showed it.
    limit: Option<usize>,
}

struct Lane {
    /// Event streams open or opening.
    live: usize,
    /// Of those, the ones answered.
    answered: usize,
    /// The last answer came over HTTP/2 (one connection for all the lane's streams).
    h2: bool,
    /// A stream of this lane is being opened first: the others wait for its answer (`ready`), which tells
    /// whether they can share its connection. Without that wait, streams opened at once would each connect,
    /// and hyper would throw away all connections but one once ALPN said h2.
    opening: bool,
    /// `true` once the lane's first answer (or failure) is in.
    ready: watch::Sender<bool>,
}

impl Origin {
    /// The first lane with room for one more stream.
    fn lane_with_room(&self) -> usize {
        let limit = self.limit.unwrap_or(STREAMS_PER_CONNECTION);
        self.lanes
            .iter()
            .position(|l| l.live < limit)
            .unwrap_or(self.lanes.len())
    }
}

impl Clients {
    pub(crate) fn new(
        base: &rustls::ClientConfig,
        identities: &[ClientIdentity],
        http1_only: bool,
        proxy: reqwest::Proxy,
    ) -> Result<Self, Error> {
        let alpn = http_alpn(http1_only);
        let tls: Vec<_> = std::iter::once(None)
            .chain(identities.iter().map(Some))
            .map(|identity| with_identity(base, identity, alpn.clone()))
            .collect();
        let mut clients = HashMap::new();
        for (i, config) in tls.iter().enumerate() {
            clients.insert((i, 0), build(config.clone(), http1_only, &proxy)?);
        }
        Ok(Self {
            tls,
            identities: identities.to_vec(),
            http1_only,
            proxy,
            state: Mutex::new(State {
                clients,
                origins: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which identity a request to `url` presents: the first whose matcher accepts it (`0`: none).
    pub(crate) fn identity(&self, url: &Url) -> usize {
        self.identities
            .iter()
            .position(|id| id.matches(url))
            .map_or(0, |i| i + 1)
    }

    fn client(&self, st: &mut State, identity: usize, lane: usize) -> reqwest::Client {
        if let Some(c) = st.clients.get(&(identity, lane)) {
            return c.clone();
        }
        // Lane 0 was built with the same configuration, so this cannot fail where it did not; should it,
        // lane 0 still answers (queued behind its streams, but answered).
        match build(self.tls[identity].clone(), self.http1_only, &self.proxy) {
            Ok(c) => {
                st.clients.insert((identity, lane), c.clone());
                c
            }
            Err(_) => st.clients[&(identity, 0)].clone(),
        }
    }

    /// The client for one request to `url` (a poll, a send, a redirect hop): with the identity `url` asks for,
    /// on the first lane of its origin with room.
    pub(crate) fn for_request(&self, url: &Url) -> reqwest::Client {
        let identity = self.identity(url);
        let mut st = self.lock();
        let lane = st
            .origins
            .get(&(identity, origin(url)))
            .map_or(0, Origin::lane_with_room);
        self.client(&mut st, identity, lane)
    }

    /// The client for a request to `url` on a given lane (a stream's redirect hop stays on its lane).
    pub(crate) fn on_lane(&self, url: &Url, lane: usize) -> reqwest::Client {
        let identity = self.identity(url);
        self.client(&mut self.lock(), identity, lane)
    }

    /// A place for an event stream to `url`, on the first lane of its origin with room, held until dropped.
    pub(crate) fn stream(self: &Arc<Self>, url: &Url) -> Slot {
        let key = (self.identity(url), origin(url));
        // Only TLS may negotiate HTTP/2, and only when it is on.
        let may_share = url.scheme() == "https" && !self.http1_only;
        let (lane, first) = {
            let mut st = self.lock();
            let o = st.origins.entry(key.clone()).or_default();
            let lane = o.lane_with_room();
            if lane == o.lanes.len() {
                o.lanes.push(Lane {
                    live: 0,
                    answered: 0,
                    h2: false,
                    opening: false,
                    ready: watch::channel(!may_share).0,
                });
            }
            let l = &mut o.lanes[lane];
            l.live += 1;
            let first = !*l.ready.borrow() && !l.opening;
            l.opening |= first;
            (lane, first)
        };
        Slot {
            clients: self.clone(),
            key,
            lane,
            first,
            answered: false,
        }
    }
}

/// Builds one HTTP client (one connection pool).
fn build(
    tls: rustls::ClientConfig,
    http1_only: bool,
    proxy: &reqwest::Proxy,
) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .proxy(proxy.clone())
        // With the ALPN of the configuration: h2 and http/1.1, or http/1.1 alone.
        .use_preconfigured_tls(tls)
        // Redirects are followed by hand, so that every hop is checked against the scope.
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().map_err(|e| Error::Tls(e.to_string()))
}

/// An origin as a key: scheme, host and port.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// An event stream's place on a lane, from its first request to its end.
pub(crate) struct Slot {
    clients: Arc<Clients>,
    key: (usize, String),
    lane: usize,
    /// The lane's first stream: the others wait for its answer.
    first: bool,
    answered: bool,
}

impl Slot {
    /// The client for the stream's first request.
    pub(crate) fn client(&self) -> reqwest::Client {
        let mut st = self.clients.lock();
        self.clients.client(&mut st, self.key.0, self.lane)
    }

    /// Waits, when another stream is opening the lane's first connection, until it has its answer (at most
    /// [`FIRST_ANSWER_WAIT`], and not after `until`): then this stream knows whether it can share that
    /// connection. A server slower than that costs a connection of its own, not a failed attempt.
    pub(crate) async fn turn(&self, until: tokio::time::Instant) {
        let until = until.min(crate::time::deadline(FIRST_ANSWER_WAIT));
        let mut ready = {
            let st = self.clients.lock();
            match st.origins.get(&self.key) {
                Some(o) if !self.first => o.lanes[self.lane].ready.subscribe(),
                _ => return,
            }
        };
        let _ = tokio::time::timeout_at(until, ready.wait_for(|r| *r)).await;
    }

    /// The lane's first answer is in (or will not come): the streams waiting for it go.
    fn release(&self, lane: &mut Lane) {
        if self.first {
            lane.opening = false;
            lane.ready.send_replace(true);
        }
    }

    pub(crate) fn lane(&self) -> usize {
        self.lane
    }

    /// The origin, for a message.
    pub(crate) fn origin(&self) -> &str {
        &self.key.1
    }

    /// Whether this stream's request shares an HTTP/2 connection with other streams that were answered (and
    /// so may be queued behind them by the server's stream limit).
    pub(crate) fn shares_h2(&self) -> bool {
        let st = self.clients.lock();
        st.origins.get(&self.key).is_some_and(|o| {
            let l = &o.lanes[self.lane];
            l.h2 && l.answered > usize::from(self.answered)
        })
    }

    /// The stream was answered, over `version`.
    pub(crate) fn answered(&mut self, version: http::Version) {
        let mut st = self.clients.lock();
        if let Some(o) = st.origins.get_mut(&self.key) {
            let lane = &mut o.lanes[self.lane];
            lane.h2 = version == http::Version::HTTP_2;
            if !self.answered {
                lane.answered += 1;
                self.answered = true;
            }
            self.release(lane);
        }
    }

    /// The stream's connection takes no more streams: the answered streams on it are the origin's limit from
    /// now on. Returns that limit.
    pub(crate) fn full(&self) -> usize {
        let mut st = self.clients.lock();
        let Some(o) = st.origins.get_mut(&self.key) else {
            return 1;
        };
        let others = o.lanes[self.lane].answered.max(1);
        let limit = o.limit.map_or(others, |l| l.min(others));
        o.limit = Some(limit);
        limit
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.clients.lock();
        if let Some(o) = st.origins.get_mut(&self.key) {
            let lane = &mut o.lanes[self.lane];
            lane.live = lane.live.saturating_sub(1);
            if self.answered {
                lane.answered = lane.answered.saturating_sub(1);
            }
            self.release(lane);
            // An origin with no stream and nothing learned is forgotten, so the map does not grow.
            if o.limit.is_none() && o.lanes.iter().all(|l| l.live == 0) {
                st.origins.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> Arc<Clients> {
        let base = crate::tls::client_config(&Default::default()).unwrap();
        let no_proxy = reqwest::Proxy::custom(|_| None::<url::Url>);
        Arc::new(Clients::new(&base, &[], false, no_proxy).unwrap())
    }

    #[tokio::test]
    async fn a_full_connection_sends_further_streams_to_another_lane() {
        let c = clients();
        let url: Url = "https://a.example/s".parse().unwrap();
        let mut slots: Vec<_> = (0..6).map(|_| c.stream(&url)).collect();
        assert!(slots.iter().all(|s| s.lane() == 0));
        for s in &mut slots[..4] {
            s.answered(http::Version::HTTP_2);
        }
        assert!(slots[4].shares_h2() && slots[5].shares_h2());
        // Only the answered count: two waiting streams still make the limit four.
        drop(slots.pop());
        // The fifth waited: four is the limit, and its next attempt goes to another lane.
        assert_eq!(slots[4].full(), 4);
        drop(slots.pop());
        let fifth = c.stream(&url);
        assert_eq!(fifth.lane(), 1);
        let more: Vec<_> = (0..4).map(|_| c.stream(&url)).collect();
        assert_eq!(
            more.iter().map(Slot::lane).collect::<Vec<_>>(),
            [1, 1, 1, 2]
        );
        // A stream that ends on lane 0 makes room there first.
        drop(slots.pop());
        assert_eq!(c.stream(&url).lane(), 0);
        // Another origin knows nothing of this one's limit.
        let other: Url = "https://b.example/s".parse().unwrap();
        let b: Vec<_> = (0..6).map(|_| c.stream(&other)).collect();
        assert!(b.iter().all(|s| s.lane() == 0));
    }

    #[tokio::test]
    async fn a_lane_takes_a_hundred_streams_while_the_limit_is_unknown() {
        let c = clients();
        let url: Url = "https://a.example/s".parse().unwrap();
        let slots: Vec<_> = (0..101).map(|_| c.stream(&url)).collect();
        assert_eq!(slots[99].lane(), 0);
        assert_eq!(slots[100].lane(), 1);
    }

    #[tokio::test]
    async fn streams_wait_for_the_first_answer_of_their_lane_over_tls_only() {
        let c = clients();
        let url: Url = "https://a.example/s".parse().unwrap();
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let first = c.stream(&url);
        first.turn(until).await;
        let mut first = first;
        let second = c.stream(&url);
        let waiting = tokio::spawn(async move {
            second.turn(until).await;
            second
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "the second must wait for the first answer"
        );
        first.answered(http::Version::HTTP_2);
        let second = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("released by the answer")
            .unwrap();
        assert!(second.shares_h2());
        // Cleartext never waits.
        let plain: Url = "http://a.example/s".parse().unwrap();
        let (a, b) = (c.stream(&plain), c.stream(&plain));
        tokio::time::timeout(std::time::Duration::from_secs(1), b.turn(until))
            .await
            .expect("no wait over cleartext");
        drop(a);
    }

    #[tokio::test]
    async fn origins_without_streams_are_forgotten() {
        let c = clients();
        let url: Url = "https://a.example/s".parse().unwrap();
        drop(c.stream(&url));
        assert!(c.lock().origins.is_empty());
    }
}
