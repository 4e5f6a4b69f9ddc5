//! The calling webview's cookie store as the engine's [`CookieJar`], for connections opened with
//! `withCredentials: true`: `Webview::cookies_for_url` for the `Cookie` header, `Webview::set_cookie` for
//! every `Set-Cookie` a response brings.
//!
//! Both Tauri calls go through the GUI thread (and deadlock on Windows from a synchronous command): the
//! engine makes them from its blocking pool, never from a command or the main thread. A `Set-Cookie` is
//! parsed by the `cookie` crate that Tauri re-exports and checked as RFC 6265 section 5.3 asks (the Domain
//! must cover the host, the default path), so that a server cannot plant cookies for other sites in the
//! webview's store.

use std::net::IpAddr;

use http::HeaderValue;
use tauri::{
    webview::{
        cookie::{time::OffsetDateTime, Expiration},
        Cookie,
    },
    Runtime, Webview,
};
use url::Url;

use crate::core::CookieJar;

/// One webview's cookie store.
pub(crate) struct WebviewJar<R: Runtime>(pub(crate) Webview<R>);

impl<R: Runtime> CookieJar for WebviewJar<R> {
    fn cookie_header(&self, url: &Url) -> Result<Option<HeaderValue>, String> {
        let cookies = self
            .0
            .cookies_for_url(url.clone())
            .map_err(|e| format!("the webview's cookie store could not be read ({e})"))?;
        header(url, cookies, OffsetDateTime::now_utc())
    }

    fn store(&self, url: &Url, set_cookie: &[HeaderValue]) -> Vec<String> {
        let mut refused = Vec::new();
        for value in set_cookie {
            let stored = parse(url, value, OffsetDateTime::now_utc()).and_then(|(name, c)| {
                self.0
                    .set_cookie(c)
                    .map_err(|e| format!("{name}: the webview's cookie store refused it ({e})"))
            });
            if let Err(why) = stored {
                refused.push(why);
            }
        }
        refused
    }
}

/// The `Cookie` header for `url` from what the store gave. The store has matched the host already; path,
/// `Secure` and expiry are checked again because not every platform's lookup does (WKWebView's compares
/// the domain only). Longer paths go first, as RFC 6265 section 5.4 orders them.
fn header(
    url: &Url,
    mut cookies: Vec<Cookie<'static>>,
    now: OffsetDateTime,
) -> Result<Option<HeaderValue>, String> {
    let secure_ok = url.scheme() == "https" || is_loopback(url);
    cookies.retain(|c| {
        path_matches(url.path(), c.path().unwrap_or("/"))
            && (secure_ok || !c.secure().unwrap_or(false))
            && c.expires_datetime().is_none_or(|at| at > now)
    });
    if cookies.is_empty() {
        return Ok(None);
    }
    cookies.sort_by_key(|c| std::cmp::Reverse(c.path().map_or(0, str::len)));
    let line = cookies
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ");
    HeaderValue::from_str(&line)
        .map(Some)
        .map_err(|_| "the webview holds a cookie that HTTP cannot carry".to_owned())
}

/// A `Set-Cookie` from a response of `url`, made ready for the webview's store; `Err` names the cookie (never
/// its value) and says why it is refused.
fn parse(
    url: &Url,
    value: &HeaderValue,
    now: OffsetDateTime,
) -> Result<(String, Cookie<'static>), String> {
    let text = value
        .to_str()
        .map_err(|_| "a Set-Cookie that is not plain ASCII text".to_owned())?;
    let mut c = Cookie::parse(text)
        .map_err(|e| format!("a Set-Cookie that cannot be parsed ({e})"))?
        .into_owned();
    let name = c.name().to_owned();
    let host = url
        .host_str()
        .ok_or_else(|| format!("{name}: the response's URL has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    // Host-only without `Domain`; with it, the domain must cover the host, and an IP address or a single label
    // (`com`, `localhost`) may only name the host itself.
    match c.domain().map(str::to_ascii_lowercase) {
        None => c.set_domain(host.clone()),
        Some(d) if d == host => c.set_domain(d),
        Some(d) => {
            let covers = host.ends_with(&format!(".{d}"));
            if !covers || d.parse::<IpAddr>().is_ok() || host.parse::<IpAddr>().is_ok() {
                return Err(format!("{name}: its Domain={d} does not cover {host}"));
            }
            if !d.contains('.') {
                return Err(format!(
                    "{name}: its Domain={d} names a whole top-level domain"
                ));
            }
            c.set_domain(format!(".{d}"));
        }
    }
    if !c.path().is_some_and(|p| p.starts_with('/')) {
        c.set_path(default_path(url.path()));
    }
    if c.secure() == Some(true) && url.scheme() != "https" && !is_loopback(url) {
        return Err(format!("{name}: a Secure cookie set over plain http"));
    }
    // Max-Age wins over Expires (RFC 6265 section 5.3); given as an instant too, whichever of the two a platform's
    // conversion reads, the lifetime is the same.
    if let Some(age) = c.max_age() {
        c.set_expires(Expiration::DateTime(now.saturating_add(age)));
    }
    Ok((name, c))
}

/// RFC 6265 section 5.1.4: the directory of the request's path.
fn default_path(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

/// RFC 6265 section 5.1.4: `/a` matches `/a`, `/a/` and `/a/b`, not `/ab`.
fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

/// `localhost` and loopback addresses, where browsers let `Secure` cookies travel over http.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tauri::webview::cookie::{time::Duration, SameSite};

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    fn set(u: &str, v: &str) -> Result<Cookie<'static>, String> {
        parse(&url(u), &HeaderValue::from_str(v).unwrap(), now()).map(|(_, c)| c)
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn set_cookie_keeps_its_attributes_and_gets_the_defaults_rfc_6265_gives() {
        let c = set(
            "https://api.example.com/v1/stream",
            "sid=abc; Secure; HttpOnly; SameSite=Strict; Max-Age=60",
        )
        .unwrap();
        assert_eq!((c.name(), c.value()), ("sid", "abc"));
        assert_eq!(c.domain(), Some("api.example.com"), "host-only");
        assert_eq!(c.path(), Some("/v1"), "the default path");
        assert_eq!((c.secure(), c.http_only()), (Some(true), Some(true)));
        assert_eq!(c.same_site(), Some(SameSite::Strict));
        assert_eq!(c.expires_datetime(), Some(now() + Duration::seconds(60)));

        let c = set(
            "https://api.example.com/",
            "a=1; Domain=.Example.com; Path=/x",
        )
        .unwrap();
        assert_eq!(c.domain(), Some("example.com"));
        assert_eq!(c.path(), Some("/x"));
        let c = set(
            "http://127.0.0.1:9/",
            "a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
        )
        .unwrap();
        assert_eq!(c.domain(), Some("127.0.0.1"));
        assert!(c.expires_datetime().is_some());
    }

    #[test]
    fn a_set_cookie_for_another_site_or_a_whole_domain_is_refused_by_name() {
        for (u, v, says) in [
            (
                "https://a.example.com/",
                "s=secret; Domain=other.com",
                "does not cover",
            ),
            (
                "https://a.example.com/",
                "s=secret; Domain=com",
                "top-level",
            ),
            (
                "http://127.0.0.1/",
                "s=secret; Domain=0.0.1",
                "does not cover",
            ),
            ("http://example.com/", "s=secret; Secure", "plain http"),
            ("http://example.com/", "no-equals-sign", "cannot be parsed"),
        ] {
            let e = set(u, v).unwrap_err();
            assert!(e.contains(says), "{v}: expected {says:?}, got {e}");
            assert!(!e.contains("secret"), "a value leaked: {e}");
        }
        // Secure over http on loopback, as browsers allow.
        assert!(set("http://localhost:1/", "s=1; Secure").is_ok());
    }

    #[test]
    fn the_header_holds_what_matches_the_url_longest_path_first() {
        let mk = |s: &str| Cookie::parse(s.to_owned()).unwrap();
        let cookies = vec![
            mk("a=1; Path=/"),
            mk("b=2; Path=/api"),
            mk("c=3; Path=/apiary"),
            mk("d=4; Path=/; Secure"),
            mk("e=5; Path=/; Expires=Wed, 21 Oct 2015 07:28:00 GMT"),
        ];
        let h = header(
            &url("http://example.com/api/stream"),
            cookies.clone(),
            now(),
        )
        .unwrap();
        assert_eq!(h.unwrap(), "b=2; a=1");
        let h = header(&url("https://example.com/api"), cookies, now()).unwrap();
        assert_eq!(h.unwrap(), "b=2; a=1; d=4");
        assert_eq!(header(&url("https://x/"), vec![], now()).unwrap(), None);
    }
}
