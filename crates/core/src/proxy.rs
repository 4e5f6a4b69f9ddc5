//! Proxies: one decision for every request the engine makes. The HTTP client (SSE, polls, sends) asks it
//! through `reqwest::Proxy::custom`, the WebSocket asks it before opening its socket, so both always agree.
//! The decision is hyper-util's `Matcher`, the one reqwest makes by itself: the environment the way curl reads
//! it, then (macOS, Windows) the OS's settings.
//!
//! The WebSocket goes through an HTTP proxy in a `CONNECT` tunnel (for `ws://` too, as browsers do), opened with
//! hyper's HTTP/1 client so that the proxy's status is known (hyper-util's `Tunnel` folds every refusal but 407
//! into one error); through a SOCKS5 proxy with hyper-util's `SocksV5`, the client reqwest uses.

use std::{sync::Arc, time::Duration};

use http::{header, HeaderValue, Uri};
use hyper_util::{
    client::{
        legacy::connect::{proxy::SocksV5, HttpConnector},
        proxy::matcher::{Intercept, Matcher},
    },
    rt::TokioIo,
};
use tokio::net::TcpStream;
use tower_service::Service;

use crate::{
    error::Error,
    transport::{request::classify_status, request::retry_after, AttemptError},
};

/// Which proxy the engine's requests go through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxySetting {
    /// The environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, upper or lower case, as
    /// reqwest reads them), and where none is set the OS's settings (macOS, Windows). The default.
    #[default]
    System,
    /// This proxy for every request: `http://[user:password@]host[:port]`, `socks5://…` (names resolved
    /// here) or `socks5h://…` (names resolved by the proxy). `NO_PROXY` from the environment still applies,
    /// as with curl's `--proxy`, unless [`ProxyConfig::no_proxy`] gives the list.
    Url(String),
    /// No proxy, whatever the environment or the OS says.
    None,
}

/// Where requests go: the proxy and the hosts that bypass it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    pub proxy: ProxySetting,
    /// Hosts reached without the proxy, in curl's `NO_PROXY` syntax: comma-separated names (each also
    /// matches its subdomains), IP addresses, CIDR ranges, or `*` for every host. With
    /// [`ProxySetting::Url`] it replaces the environment's `NO_PROXY`; with [`ProxySetting::System`] it is
    /// added to what the environment and the OS say. Default: none.
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A proxy URL may hold a password: print where it points only.
        let proxy = match &self.proxy {
            ProxySetting::Url(url) => format!("Url({})", describe_url(url)),
            other => format!("{other:?}"),
        };
        f.debug_struct("ProxyConfig")
            .field("proxy", &proxy)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfig {
    /// Checks the proxy URL as [`Hub::new`](crate::Hub::new) would, saying what is wrong (never echoing
    /// a password): for a command line that wants to refuse it as a usage error.
    pub fn check(&self) -> Result<(), Error> {
        match &self.proxy {
            ProxySetting::Url(url) => check_url(url),
            _ => Ok(()),
        }
    }
}

/// `host:port` of a proxy URL as given, without its credentials, for messages.
fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(unparsable URL)".into(),
    }
}

/// The decision, made once per request.
pub(crate) struct Proxies {
    matcher: Option<Matcher>,
    /// Hosts that never go through a proxy (the config's `no_proxy` over the system's decision): a matcher
    /// that proxies everything else, so that hyper-util parses the list exactly as it parses `NO_PROXY`.
    bypass: Option<Matcher>,
}

impl Proxies {
    pub(crate) fn new(config: &ProxyConfig) -> Result<Self, Error> {
        let bypass = |list: &str| {
            Matcher::builder()
                .all("http://bypass.invalid:1")
                .no(list)
                .build()
        };
        let env_no = || {
            ["NO_PROXY", "no_proxy"]
                .iter()
                .find_map(|name| std::env::var(name).ok())
        };
        let none = Self {
            matcher: None,
            bypass: None,
        };
        // curl's `*` is every host; hyper-util's matches names only, not IP addresses.
        let every_host = |list: Option<&str>| {
            list.is_some_and(|l| l.split(',').any(|entry| entry.trim() == "*"))
        };
        let no_list = match (&config.proxy, &config.no_proxy) {
            (_, Some(list)) => Some(list.clone()),
            (ProxySetting::System | ProxySetting::Url(_), None) => env_no(),
            (ProxySetting::None, None) => None,
        };
        if let ProxySetting::Url(url) = &config.proxy {
            check_url(url)?;
        }
        if every_host(no_list.as_deref()) {
            return Ok(none);
        }
        Ok(match &config.proxy {
            ProxySetting::None => none,
            ProxySetting::System => Self {
                matcher: Some(Matcher::from_system()),
                bypass: config.no_proxy.as_deref().map(bypass),
            },
            ProxySetting::Url(url) => Self {
                matcher: Some(
                    Matcher::builder()
                        .all(url.as_str())
                        .no(no_list.unwrap_or_default())
                        .build(),
                ),
                bypass: None,
            },
        })
    }

    /// The proxy a request to `url` goes through, if any. A WebSocket URL is asked as its HTTP twin
    /// (`wss` as `https`), so that `HTTPS_PROXY` covers both, as in browsers.
    pub(crate) fn for_url(&self, url: &url::Url) -> Option<Intercept> {
        let matcher = self.matcher.as_ref()?;
        let scheme = match url.scheme() {
            "ws" => "http",
            "wss" => "https",
            other => other,
        };
        let host = match url.host()? {
            url::Host::Ipv6(a) => format!("[{a}]"),
            h => h.to_string(),
        };
        let uri: Uri = format!("{scheme}://{host}/").parse().ok()?;
        if let Some(bypass) = &self.bypass {
            bypass.intercept(&uri)?;
        }
        matcher.intercept(&uri)
    }

    /// The proxy for reqwest: the same decision, as the URL reqwest parses again (credentials in it).
    pub(crate) fn reqwest(self: &Arc<Self>) -> reqwest::Proxy {
        let me = self.clone();
        reqwest::Proxy::custom(move |url| me.for_url(url).map(|i| with_credentials(&i)))
    }
}

/// Checks a proxy URL the app gave, saying what is wrong (never echoing a password).
fn check_url(url: &str) -> Result<(), Error> {
    let shown = describe_url(url);
    let parsed = url::Url::parse(url).map_err(|e| {
        Error::InvalidProxy(format!(
            "{shown}: {e}; write it as http://host:port (or socks5://host:port)"
        ))
    })?;
    match parsed.scheme() {
        "http" | "socks5" | "socks5h" => {}
        "https" => {
            return Err(Error::InvalidProxy(format!(
                "{shown}: a TLS connection to the proxy itself (https://) is not supported; use http://host:port (the requests inside stay encrypted)"
            )))
        }
        other => {
            return Err(Error::InvalidProxy(format!(
                "{shown}: scheme {other:?} is not supported; use http://, socks5:// or socks5h://"
            )))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidProxy(format!("{shown}: no host")));
    }
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
        return Err(Error::InvalidProxy(format!(
            "{shown}: a proxy URL has no path or query; write it as http://host:port"
        )));
    }
    // hyper-util's own parse (the one every request uses) must accept it too.
    if Matcher::builder()
        .all(url)
        .build()
        .intercept(&Uri::from_static("http://example.com/"))
        .is_none()
    {
        return Err(Error::InvalidProxy(format!(
            "{shown}: not a usable proxy URL; write it as http://[user:password@]host:port"
        )));
    }
    Ok(())
}

/// The proxy's URL with its credentials, for reqwest (which reads them back into `Proxy-Authorization`).
///
/// A URI that the URL parser would not take (hyper-util's parse is laxer) goes to reqwest as it is: its
/// request then fails with reqwest's error instead of going around the proxy.
fn with_credentials(i: &Intercept) -> String {
    let uri = i.uri().to_string();
    let Ok(mut url) = url::Url::parse(&uri) else {
        return uri;
    };
    let (user, pass) = match (i.basic_auth(), i.raw_auth()) {
        (Some(basic), _) => match decode_basic(basic) {
            Some(pair) => pair,
            None => return url.into(),
        },
        (None, Some((u, p))) => (u.to_owned(), p.to_owned()),
        (None, None) => return url.into(),
    };
    // `set_username`/`set_password` percent-encode; hyper-util decodes again.
    let _ = url.set_username(&user);
    let _ = url.set_password(Some(&pass));
    url.into()
}

fn decode_basic(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine;
    let b64 = value.to_str().ok()?.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// `host:port` of the proxy, for messages: never its credentials (hyper-util keeps them out of the URI).
pub(crate) fn name(i: &Intercept) -> String {
    let uri = i.uri();
    let port = uri.port_u16().unwrap_or_else(|| default_port(uri));
    format!(
        "{}://{}:{port}",
        uri.scheme_str().unwrap_or("http"),
        uri.host().unwrap_or("")
    )
}

fn default_port(uri: &Uri) -> u16 {
    match uri.scheme_str() {
        Some("https") => 443,
        Some("http") | None => 80,
        _ => 1080,
    }
}

/// A socket to the target: direct, through a CONNECT tunnel, or through SOCKS5.
pub(crate) type Stream = tokio_util::either::Either<TcpStream, TokioIo<hyper::upgrade::Upgraded>>;

/// Opens a TCP stream to `host:port` of `url`, through its proxy when the decision says so.
pub(crate) async fn connect(proxies: &Proxies, url: &url::Url) -> Result<Stream, AttemptError> {
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        None => {
            return Err(AttemptError::Fatal {
                reason: "the URL has no host".into(),
            })
        }
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let Some(proxy) = proxies.for_url(url) else {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((bare, port))
            .await
            .map_err(|e| AttemptError::Retry {
                reason: format!("network error: {e}"),
                retry_after: None,
            })?;
        let _ = tcp.set_nodelay(true);
        return Ok(tokio_util::either::Either::Left(tcp));
    };
    match proxy.uri().scheme_str() {
        Some("http") => tunnel(&proxy, &host, port)
            .await
            .map(tokio_util::either::Either::Right),
        Some("socks5" | "socks5h") => socks(&proxy, &host, port)
            .await
            .map(tokio_util::either::Either::Left),
        other => Err(AttemptError::Fatal {
            reason: format!(
                "proxy {}: a WebSocket cannot go through a {} proxy; use an http:// or socks5:// proxy",
                name(&proxy),
                other.unwrap_or("?")
            ),
        }),
    }
}

/// Why `proxy` does not open a tunnel to `url`'s host, asked with a `CONNECT` of the engine's own; `None` when
/// it opens one now.
pub(crate) async fn why_no_tunnel(proxy: &Intercept, url: &url::Url) -> Option<AttemptError> {
    let host = match url.host()? {
        url::Host::Ipv6(a) => format!("[{a}]"),
        h => h.to_string(),
    };
    let port = url.port_or_known_default()?;
    tunnel(proxy, &host, port).await.err()
}

/// The proxy could not be reached: a proxy that is down may come back, so retry, and say which it was.
fn unreachable(proxy: &Intercept, e: impl std::fmt::Display) -> AttemptError {
    AttemptError::Retry {
        reason: format!(
            "network error: could not reach the proxy {}: {e}; check that it runs at that address, or set NO_PROXY / no proxy for this host",
            name(proxy)
        ),
        retry_after: None,
    }
}

async fn tcp_to(proxy: &Intercept) -> Result<TcpStream, AttemptError> {
    let uri = proxy.uri();
    let host = uri.host().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or_else(|| default_port(uri));
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|e| unreachable(proxy, e))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// `CONNECT host:port` through an HTTP proxy, with its Basic credentials when the URL has some.
async fn tunnel(
    proxy: &Intercept,
    host: &str,
    port: u16,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, AttemptError> {
    let tcp = tcp_to(proxy).await?;
    let broken = |e: hyper::Error| AttemptError::Retry {
        reason: format!(
            "network error: the proxy {} broke off the tunnel: {e}",
            name(proxy)
        ),
        retry_after: None,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(broken)?;
    // The connection runs beside the request and hands its socket over at the upgrade. It ends with this
    // attempt, whatever the proxy does (an answer that never comes, a timeout of the open).
    let _driver = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(conn.with_upgrades()));
    let authority = format!("{host}:{port}");
    let mut request = http::Request::connect(authority.as_str())
        .header(header::HOST, authority.as_str())
        .body(String::new())
        .map_err(|e| AttemptError::Fatal {
            reason: format!("invalid CONNECT request for {authority}: {e}"),
        })?;
    if let Some(auth) = proxy.basic_auth() {
        request
            .headers_mut()
            .insert(header::PROXY_AUTHORIZATION, auth.clone());
    }
    let response = sender.send_request(request).await.map_err(broken)?;
    let status = response.status();
    if status.is_success() {
        let upgraded = hyper::upgrade::on(response).await.map_err(broken)?;
        return Ok(TokioIo::new(upgraded));
    }
    Err(refused(
        proxy,
        &authority,
        status,
        retry_after(response.headers()),
    ))
}

/// The proxy answered `CONNECT` with something else than 2xx: say which proxy, what it said and what to do.
fn refused(
    proxy: &Intercept,
    target: &str,
    status: http::StatusCode,
    retry: Option<Duration>,
) -> AttemptError {
    let who = name(proxy);
    let said = format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let said = said.trim_end();
    // Only the proxy answers a CONNECT: a 401 there (tinyproxy sends one) is about its credentials too.
    match status.as_u16() {
        401 | 407 if proxy.basic_auth().is_some() => AttemptError::Fatal {
            reason: format!(
                "the proxy {who} refused its credentials ({said}): the user or password in the proxy URL is wrong"
            ),
        },
        401 | 407 => AttemptError::Fatal {
            reason: format!(
                "the proxy {who} asks for credentials ({said}): put them in the proxy URL, http://user:password@host:port"
            ),
        },
        _ => match classify_status(status, retry) {
            AttemptError::Retry {
                retry_after: r, ..
            } => AttemptError::Retry {
                reason: format!(
                    "the proxy {who} could not open a tunnel to {target} ({said}); retrying"
                ),
                retry_after: r,
            },
            _ => AttemptError::Fatal {
                reason: format!(
                    "the proxy {who} refused a tunnel to {target} ({said}): it does not allow this destination or port; ask its administrator, or list the host in NO_PROXY"
                ),
            },
        },
    }
}

/// Through a SOCKS5 proxy (`socks5h`: the proxy resolves the name), with its credentials when the URL has some.
async fn socks(proxy: &Intercept, host: &str, port: u16) -> Result<TcpStream, AttemptError> {
    let who = name(proxy);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // It is asked for the proxy's `socks5://` URI.
    connector.enforce_http(false);
    let mut svc = SocksV5::new(proxy.uri().clone(), connector)
        .local_dns(proxy.uri().scheme_str() == Some("socks5"));
    if let Some((user, pass)) = proxy.raw_auth() {
        svc = svc.with_auth(user.to_owned(), pass.to_owned());
    }
    let dst: Uri = format!("http://{host}:{port}/")
        .parse()
        .map_err(|e| AttemptError::Fatal {
            reason: format!("invalid destination {host}:{port} for the proxy {who}: {e}"),
        })?;
    // Tower's contract: ready before the call (the TCP connector always is).
    std::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .map_err(|e| unreachable(proxy, crate::transport::request::error_chain(&e)))?;
    let io = svc.call(dst).await.map_err(|e| {
        socks_failed(
            proxy,
            &format!("{host}:{port}"),
            &e.to_string(),
            &format!("{e:?}"),
        )
    })?;
    Ok(io.into_inner())
}

/// What a SOCKS5 failure means (`said`: the error's text, `detail`: its debug form). hyper-util's error
/// type is not public: read its words.
pub(crate) fn socks_failed(
    proxy: &Intercept,
    target: &str,
    said: &str,
    detail: &str,
) -> AttemptError {
    let who = name(proxy);
    if said.contains("underlying connection") {
        return unreachable(
            proxy,
            if detail.contains("ConnectionRefused") {
                "connection refused"
            } else {
                "could not connect"
            },
        );
    }
    if said.contains("credentials not accepted") {
        return AttemptError::Fatal {
            reason: format!(
                "the SOCKS proxy {who} refused its credentials: the user or password in the proxy URL is wrong"
            ),
        };
    }
    if said.contains("authentication") {
        return AttemptError::Fatal {
            reason: format!(
                "the SOCKS proxy {who} asks for credentials ({said}): put them in the proxy URL, socks5h://user:password@host:port"
            ),
        };
    }
    if said.contains("not allowed") {
        return AttemptError::Fatal {
            reason: format!(
                "the SOCKS proxy {who} does not allow a connection to {target} ({said}); ask its administrator, or list the host in NO_PROXY"
            ),
        };
    }
    AttemptError::Retry {
        reason: format!("network error: the SOCKS proxy {who} did not connect to {target}: {said}"),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(url: &str, no: Option<&str>) -> Proxies {
        Proxies::new(&ProxyConfig {
            proxy: ProxySetting::Url(url.into()),
            no_proxy: no.map(str::to_owned),
        })
        .expect("valid proxy")
    }

    fn via(p: &Proxies, url: &str) -> Option<String> {
        p.for_url(&url::Url::parse(url).unwrap()).map(|i| name(&i))
    }

    #[test]
    fn websocket_urls_are_asked_as_http_ones() {
        let p = fixed("http://proxy.test:3128", Some("direct.test, 10.0.0.0/8"));
        assert_eq!(
            via(&p, "wss://a.test/x").as_deref(),
            Some("http://proxy.test:3128")
        );
        assert_eq!(
            via(&p, "ws://a.test/x").as_deref(),
            Some("http://proxy.test:3128")
        );
        assert_eq!(via(&p, "https://direct.test/").as_deref(), None);
        assert_eq!(via(&p, "wss://sub.direct.test/").as_deref(), None);
        assert_eq!(via(&p, "ws://10.1.2.3:80/").as_deref(), None);
        assert!(via(&fixed("http://proxy.test:3128", Some("*")), "ws://a.test/").is_none());
    }

    #[test]
    fn credentials_go_to_reqwest_and_never_into_messages() {
        let p = fixed("http://us%40er:p%3Ass@proxy.test:3128", Some(""));
        let i = p
            .for_url(&url::Url::parse("https://a.test/").unwrap())
            .unwrap();
        assert_eq!(name(&i), "http://proxy.test:3128");
        let url = with_credentials(&i);
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.username(), "us%40er");
        assert_eq!(parsed.password(), Some("p%3Ass"));
        let again = Matcher::builder().all(url).build();
        let j = again
            .intercept(&Uri::from_static("https://a.test/"))
            .unwrap();
        assert_eq!(j.basic_auth(), i.basic_auth());
        let shown = format!(
            "{:?}",
            ProxyConfig {
                proxy: ProxySetting::Url("http://u:secret@proxy.test:1".into()),
                no_proxy: None
            }
        );
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn bad_urls_are_refused_saying_why_without_the_password() {
        for bad in [
            "ftp://u:secret@proxy.test:21",
            "https://u:secret@proxy.test:443",
            "http://u:secret@proxy.test:1/path",
            "not a url secret",
            "http://",
        ] {
            let e = Proxies::new(&ProxyConfig {
                proxy: ProxySetting::Url(bad.into()),
                no_proxy: None,
            })
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"))
            .to_string();
            assert!(e.contains("proxy"), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
        assert!(Proxies::new(&ProxyConfig {
            proxy: ProxySetting::Url("socks5h://proxy.test".into()),
            no_proxy: None,
        })
        .is_ok());
    }

    #[test]
    fn none_is_none() {
        let p = Proxies::new(&ProxyConfig {
            proxy: ProxySetting::None,
            no_proxy: None,
        })
        .unwrap();
        assert!(via(&p, "wss://a.test/").is_none());
    }
}
