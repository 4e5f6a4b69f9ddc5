//! The URL scope: which URLs a webview may reach, from the `allow` and `deny` entries of its capabilities
//! (as tauri's http plugin does it). Deny wins; no entry means no URL.
//!
//! An allow entry must match the URL as given. A deny entry refuses the URL if it matches the URL as given or
//! any other spelling of it that a common server routes to the same place ([`deny_forms`]): a deny is never
//! narrower than the server's routing, so `/%61dmin`, `//admin`, `/ADMIN` or `localhost` cannot slip past a
//! deny written for `/admin` on `127.0.0.1`.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use tauri::ipc::{CommandScope, GlobalScope};
use url::{Host, Url};
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions};

use crate::core::UrlGuard;

/// One scope entry: `{ "url": "<URL pattern>" }`, e.g. `"wss://chat.example.com/*"`.
#[derive(Debug)]
pub struct Entry {
    pub url: UrlPattern,
    /// The same pattern with its path in lower case, matched case-insensitively: a deny is checked with both.
    folded: UrlPattern,
    /// A loopback host that this entry's host part matches, if any: as a deny it names every loopback host.
    loopback: Option<String>,
    raw: String,
}

impl Entry {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = |e: urlpattern::Error| format!("`{raw}` is not a valid URL pattern: {e}");
        let init =
            UrlPatternInit::parse_constructor_string::<regex::Regex>(raw, None).map_err(bad)?;
        let url = UrlPattern::parse(init.clone(), UrlPatternOptions::default()).map_err(bad)?;
        // urlpattern 0.3 compares a pattern's literal prefix case-sensitively even with `ignore_case`, so the
        // path pattern is lowercased too (its regexp groups excepted: the flag covers them).
        let folded_init = UrlPatternInit {
            pathname: init.pathname.as_deref().map(fold_case),
            ..init
        };
        let folded =
            UrlPattern::parse(folded_init, UrlPatternOptions { ignore_case: true }).map_err(bad)?;
        Ok(Self {
            loopback: loopback_named_by(&url),
            url,
            folded,
            raw: raw.to_owned(),
        })
    }

    /// Does the URL, as given, match? (Allow entries, and secret headers per URL pattern.)
    pub(crate) fn matches(&self, url: &Url) -> bool {
        self.url
            .test(UrlPatternMatchInput::Url(url.clone()))
            .unwrap_or_default()
    }

    pub fn pattern(&self) -> &str {
        &self.raw
    }

    /// As a deny entry: does it match any of `forms` (from [`deny_forms`]), or, for a URL on a loopback host,
    /// any of them moved to the loopback host this entry names?
    fn denies(&self, forms: &[Url], on_loopback: bool) -> bool {
        // A match that cannot be evaluated counts as a match: a deny fails closed.
        let hit = |u: &Url| {
            let test =
                |p: &UrlPattern| p.test(UrlPatternMatchInput::Url(u.clone())).unwrap_or(true);
            test(&self.url) || test(&self.folded)
        };
        if forms.iter().any(hit) {
            return true;
        }
        match (&self.loopback, on_loopback) {
            (Some(host), true) => forms.iter().any(|f| {
                let mut f = f.clone();
                f.set_host(Some(host)).is_err() || hit(&f)
            }),
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            url: String,
        }
        let raw = Raw::deserialize(deserializer)?;
        Entry::parse(&raw.url).map_err(serde::de::Error::custom)
    }
}

/// The scope of one command call: its command-level and global entries together.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    allowed: Vec<Arc<Entry>>,
    denied: Vec<Arc<Entry>>,
}

impl Scope {
    pub fn new(allowed: Vec<Arc<Entry>>, denied: Vec<Arc<Entry>>) -> Self {
        Self { allowed, denied }
    }

    pub(crate) fn from_ipc(command: &CommandScope<Entry>, global: &GlobalScope<Entry>) -> Self {
        Self::new(
            command
                .allows()
                .iter()
                .chain(global.allows())
                .cloned()
                .collect(),
            command
                .denies()
                .iter()
                .chain(global.denies())
                .cloned()
                .collect(),
        )
    }

    /// Allowed: an allow entry matches the URL as given, and no deny entry matches any spelling of it.
    pub fn is_allowed(&self, url: &Url) -> bool {
        self.allowed.iter().any(|e| e.matches(url)) && !self.is_denied(url)
    }

    fn is_denied(&self, url: &Url) -> bool {
        if self.denied.is_empty() {
            return false;
        }
        let Some(forms) = deny_forms(url) else {
            return true;
        };
        let on_loopback = url.host().is_some_and(|h| is_loopback(&h));
        self.denied.iter().any(|e| e.denies(&forms, on_loopback))
    }
}

impl UrlGuard for Scope {
    fn check(&self, url: &Url) -> Result<(), String> {
        if self.is_allowed(url) {
            Ok(())
        } else {
            Err(url.to_string())
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The spellings a deny is checked against.

/// The URL as given, then every combination of:
/// - its scheme, and its twin (`ws` and `http`, `wss` and `https`): a WebSocket handshake is a GET that the
///   server routes like any other;
/// - its host spelled each way ([`host_spellings`]);
/// - each form of its path ([`path_forms`]).
///
/// Query and fragment are left as they are (patterns match any unless they name one). `None` when a form
/// cannot be built, which the caller treats as denied; it does not happen for a URL with a host.
fn deny_forms(url: &Url) -> Option<Vec<Url>> {
    let mut forms = vec![url.clone()];
    // No host: not a URL a server routes (nor one the engine opens).
    let Some(host) = url.host() else {
        return Some(forms);
    };
    let hosts = host_spellings(&host);
    let paths = path_forms(url.path());
    let scheme = url.scheme();
    let twin = match scheme {
        "ws" => Some("http"),
        "wss" => Some("https"),
        "http" => Some("ws"),
        "https" => Some("wss"),
        _ => None,
    };
    for scheme in std::iter::once(scheme).chain(twin) {
        for host in &hosts {
            for path in &paths {
                let mut f = url.clone();
                f.set_scheme(scheme).ok()?;
                f.set_host(Some(host)).ok()?;
                f.set_path(path);
                if !forms.contains(&f) {
                    forms.push(f);
                }
            }
        }
    }
    Some(forms)
}

/// A host and its other spellings: a domain with and without its trailing dot (DNS reads `example.com.` as
/// `example.com`), an IPv4 address and its IPv4-mapped IPv6 form (`[::ffff:7f00:1]` reaches 127.0.0.1).
/// The `url` crate has already folded case and read `127.1`, `2130706433` and `0x7f.1` as `127.0.0.1`.
fn host_spellings(host: &Host<&str>) -> Vec<String> {
    match *host {
        Host::Domain(d) => match d.trim_end_matches('.') {
            "" => vec![d.to_owned()],
            bare => vec![bare.to_owned(), format!("{bare}.")],
        },
        Host::Ipv4(a) => vec![a.to_string(), format!("[{}]", a.to_ipv6_mapped())],
        Host::Ipv6(a) => match a.to_ipv4_mapped() {
            Some(v4) => vec![v4.to_string(), format!("[{a}]")],
            None => vec![format!("[{a}]")],
        },
    }
}

/// The loopback family, one host for a deny: `localhost`, `*.localhost`, 127.0.0.0/8, `::1`, and the
/// unspecified `0.0.0.0` and `::`, which reach loopback on Linux; IPv4-mapped forms included.
fn is_loopback<S: AsRef<str>>(host: &Host<S>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.as_ref().trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(a) => a.is_loopback() || a.is_unspecified(),
        Host::Ipv6(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
        }
    }
}

/// Spellings of the loopback family that a host part with wildcards (`*`, `*.localhost`, a regexp) is tried with.
const LOOPBACK_PROBES: [&str; 6] = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "0.0.0.0",
    "[::]",
    "probe.localhost",
];

/// A loopback host that the pattern's host part matches: the host it writes out (`127.0.0.5`,
/// `api.localhost`, `[\:\:1]`) if that is one, else the first of [`LOOPBACK_PROBES`] it matches.
fn loopback_named_by(pattern: &UrlPattern) -> Option<String> {
    let hostname = pattern.hostname();
    let host_only: UrlPattern = UrlPattern::parse(
        UrlPatternInit {
            hostname: Some(hostname.to_owned()),
            ..Default::default()
        },
        UrlPatternOptions::default(),
    )
    .ok()?;
    // Written out: no pattern syntax once an IPv6 address's escaped colons are set aside.
    let is_literal = !hostname
        .replace("\\:", "")
        .contains(['*', '(', ')', '{', '}', '?', '+', ':']);
    let written = is_literal
        .then(|| Host::parse(&hostname.replace('\\', "")).ok())
        .flatten()
        .filter(is_loopback)
        .map(|h| h.to_string());
    written
        .into_iter()
        .chain(LOOPBACK_PROBES.iter().map(|p| p.to_string()))
        .find(|h| {
            Url::parse(&format!("http://{h}/")).is_ok_and(|u| {
                host_only
                    .test(UrlPatternMatchInput::Url(u))
                    .unwrap_or_default()
            })
        })
}

/// Every path a common server may route `path` (as the `url` crate serialised it, its own dot segments
/// resolved) to, in ASCII lower case (a deny's path pattern is matched so: Express and IIS ignore case):
/// - the escapes of unreserved characters decoded (`%61` is `a`, `%2e` is `.`; RFC 3986 says they are the
///   same), or every ASCII escape decoded once (nginx matches locations so: `%2F` is a `/`);
/// - then split at `/` (and `\`, as Windows servers do), empty segments dropped (`//` is `/`, as nginx's
///   `merge_slashes`), with and without each segment's `;parameters` (`/admin;x` is `/admin` to Tomcat and
///   Jetty), and `.` and `..` resolved (decoding may have made them);
/// - each with and without a trailing `/` (Express routes `/admin/` and `/admin` alike).
fn path_forms(path: &str) -> Vec<String> {
    let mut forms: Vec<String> = Vec::new();
    for decoded in [decode(path, is_unreserved), decode(path, |b| b.is_ascii())] {
        for drop_params in [false, true] {
            let mut segments: Vec<&str> = Vec::new();
            for seg in decoded.split(['/', '\\']) {
                let seg = match seg.split_once(';') {
                    Some((name, _)) if drop_params => name,
                    _ => seg,
                };
                match seg {
                    "" | "." => {}
                    ".." => {
                        segments.pop();
                    }
                    s => segments.push(s),
                }
            }
            let bare = format!("/{}", segments.join("/")).to_ascii_lowercase();
            let slashed = format!("{bare}/");
            for p in [bare, slashed] {
                if p != "//" && !forms.contains(&p) {
                    forms.push(p);
                }
            }
        }
    }
    forms
}

/// RFC 3986 unreserved: ALPHA, DIGIT, `-`, `.`, `_`, `~`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `path` with each `%XX` whose byte `wanted` accepts decoded, once; every other byte as it was.
fn decode(path: &str, wanted: impl Fn(u8) -> bool) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&h), Some(&l)) => hex(h)
                .zip(hex(l))
                .map(|(h, l)| (h * 16 + l) as u8)
                .filter(|&b| wanted(b)),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.extend(bytes.get(i));
                i += 1;
            }
        }
    }
    // Only ASCII bytes are decoded, so the result stays UTF-8; lossy is never lossy here.
    String::from_utf8_lossy(&out).into_owned()
}

/// A path pattern in ASCII lower case, except what is not literal text: `:name` groups (names are
/// case-sensitive) and `(regexp)` groups (`\D` is not `\d`; the `i` flag folds them instead).
fn fold_case(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                out.extend(chars.next().map(|n| {
                    if depth == 0 {
                        n.to_ascii_lowercase()
                    } else {
                        n
                    }
                }));
            }
            '(' => {
                depth += 1;
                out.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                out.push(c);
            }
            ':' if depth == 0 => {
                out.push(c);
                while let Some(n) = chars.next_if(|n| n.is_alphanumeric() || matches!(n, '_' | '$'))
                {
                    out.push(n);
                }
            }
            c if depth == 0 => out.push(c.to_ascii_lowercase()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn scope(allow: &[&str], deny: &[&str]) -> Scope {
        let e = |v: &[&str]| {
            v.iter()
                .map(|p| Arc::new(Entry::parse(p).unwrap()))
                .collect()
        };
        Scope::new(e(allow), e(deny))
    }

    /// The cases the scope gets wrong, each as "expected X, got Y".
    fn wrong<S: AsRef<str>>(s: &Scope, cases: &[(S, bool)]) -> Vec<String> {
        cases
            .iter()
            .filter_map(|(url, want)| {
                let url = url.as_ref();
                let got = Url::parse(url).map(|u| s.is_allowed(&u));
                (got != Ok(*want)).then(|| format!("{url}: expected allowed={want}, got {got:?}"))
            })
            .collect()
    }

    /// Every case at once, so that a failure lists all the wrong answers.
    fn check(s: &Scope, cases: &[(&str, bool)]) {
        let wrong = wrong(s, cases);
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    /// The example app's deny entries under an allow for every host, so that each refusal is the deny's doing.
    fn example_denies() -> Scope {
        scope(
            &["ws://*:*/*", "http://*:*/*"],
            &["http://127.0.0.1:*/admin*", "ws://127.0.0.1:*/admin*"],
        )
    }

    #[test]
    fn allow_deny_table() {
        let s = scope(
            &["ws://127.0.0.1:*/*", "https://*.example.com/*"],
            &["https://evil.example.com/*"],
        );
        check(
            &s,
            &[
                ("ws://127.0.0.1:4000/chat", true),
                ("ws://127.0.0.1/chat", true),
                ("wss://127.0.0.1:4000/chat", false),
                ("ws://localhost:4000/chat", false),
                ("https://api.example.com/stream", true),
                ("https://evil.example.com/stream", false),
                ("https://evil.example.com./stream", false),
                ("https://EVIL.example.com/stream", false),
                ("http://api.example.com/stream", false),
            ],
        );
    }

    #[test]
    fn deny_matches_every_spelling_of_the_path() {
        check(
            &example_denies(),
            &[
                // Still allowed: nothing here is the admin area.
                ("ws://127.0.0.1:1/", true),
                ("ws://127.0.0.1:1/public", true),
                ("http://127.0.0.1:1/public/admin", true),
                ("ws://127.0.0.1:1/adm", true),
                ("ws://127.0.0.1:1/public;admin", true),
                ("ws://127.0.0.1:1/public/a%2Fb", true),
                ("ws://127.0.0.1:1/public?next=/admin", true),
                // Escapes are decoded once, as servers do: this is `/%61dmin` to them.
                ("ws://127.0.0.1:1/%2561dmin", true),
                // As written.
                ("ws://127.0.0.1:1/admin", false),
                ("ws://127.0.0.1:1/administrator", false),
                ("http://127.0.0.1:1/admin/x", false),
                // Escaped unreserved characters.
                ("ws://127.0.0.1:1/%61dmin/x", false),
                ("ws://127.0.0.1:1/adm%69n", false),
                ("ws://127.0.0.1:1/%61%64%6d%69%6e", false),
                ("http://127.0.0.1:1/%41DMIN", false),
                // Dot segments, the url crate's own and those that decoding makes.
                ("ws://127.0.0.1:1/public/%2e%2e/admin", false),
                ("ws://127.0.0.1:1/public/..%2fadmin", false),
                ("ws://127.0.0.1:1/public%2F..%2Fadmin", false),
                ("ws://127.0.0.1:1/public/%2e%2e%2Fadmin", false),
                ("ws://127.0.0.1:1/x/..;y/admin", false),
                // Slashes.
                ("ws://127.0.0.1:1//admin/x", false),
                ("ws://127.0.0.1:1///admin", false),
                ("ws://127.0.0.1:1/.//admin", false),
                ("ws://127.0.0.1:1/\\admin", false),
                ("ws://127.0.0.1:1/%5Cadmin", false),
                ("ws://127.0.0.1:1/%2Fadmin", false),
                // Case.
                ("ws://127.0.0.1:1/ADMIN/x", false),
                ("http://127.0.0.1:1/Admin", false),
                // Parameters.
                ("ws://127.0.0.1:1/;x/admin", false),
                ("ws://127.0.0.1:1/%3Bx/admin", false),
                // All at once.
                ("ws://localhost.:1//%41DM%69n;x/", false),
            ],
        );
    }

    #[test]
    fn deny_matches_every_spelling_of_a_loopback_host() {
        check(
            &example_denies(),
            &[
                ("ws://localhost:1/admin", false),
                ("ws://LOCALHOST:1/admin", false),
                ("ws://localhost.:1/admin", false),
                ("ws://localhost..:1/admin", false),
                ("ws://api.localhost:1/admin", false),
                ("ws://%6cocalhost:1/admin", false),
                ("ws://\u{ff2c}\u{ff2f}\u{ff23}\u{ff21}\u{ff2c}\u{ff28}\u{ff2f}\u{ff33}\u{ff34}:1/admin", false),
                ("ws://127.0.0.1.:1/admin", false),
                ("ws://127.1:1/admin", false),
                ("ws://2130706433:1/admin", false),
                ("ws://0x7f.1:1/admin", false),
                ("ws://0177.0.0.1:1/admin", false),
                ("ws://127.0.0.2:1/admin", false),
                ("ws://127.255.255.254:1/admin", false),
                ("ws://0.0.0.0:1/admin", false),
                ("ws://0:1/admin", false),
                ("ws://[::1]:1/admin", false),
                ("ws://[0:0:0:0:0:0:0:1]:1/admin", false),
                ("ws://[::]:1/admin", false),
                ("ws://[::ffff:127.0.0.1]:1/admin", false),
                ("ws://[::ffff:7f00:1]:1/admin", false),
                ("ws://[::ffff:0.0.0.0]:1/admin", false),
                ("http://[0:0:0:0:0:ffff:127.0.0.1]:1/%61dmin", false),
                // The same paths elsewhere, and the loopback hosts elsewhere, stay allowed.
                ("ws://localhost:1/public", true),
                ("ws://[::1]:1/public", true),
                ("ws://0.0.0.0:1/public", true),
                ("ws://10.0.0.1:1/admin", true),
                ("ws://128.0.0.1:1/admin", true),
                ("ws://example.com:1/admin", true),
                ("ws://localhost.example.com:1/admin", true),
                ("ws://localhostx:1/admin", true),
                ("ws://[::2]:1/admin", true),
                ("ws://[::ffff:10.0.0.1]:1/admin", true),
                ("ws://[::127.0.0.1]:1/admin", true),
            ],
        );
    }

    #[test]
    fn a_deny_naming_any_loopback_host_denies_them_all() {
        let hosts = [
            "127.0.0.1",
            "127.0.0.5",
            "localhost",
            "localhost.",
            "api.localhost",
            "*.localhost",
            r"[\:\:1]",
            r"[\:\:]",
            r"[\:\:ffff\:7f00\:1]",
            "0.0.0.0",
            r"(127\..*)",
        ];
        let urls = [
            "127.0.0.1",
            "127.0.0.9",
            "localhost",
            "localhost.",
            "x.localhost",
            "[::1]",
            "[::]",
            "0.0.0.0",
            "[::ffff:127.0.0.1]",
        ];
        let mut all = Vec::new();
        for host in hosts {
            let s = scope(&["ws://*:*/*"], &[&format!("ws://{host}:*/admin*")]);
            let mut cases = vec![
                ("ws://example.com:1/admin".to_owned(), true),
                ("ws://10.0.0.1:1/admin".to_owned(), true),
            ];
            for url in urls {
                cases.push((format!("ws://{url}:1/admin/x"), false));
                cases.push((format!("ws://{url}:1/public"), true));
            }
            all.extend(
                wrong(&s, &cases)
                    .into_iter()
                    .map(|w| format!("deny on {host}: {w}")),
            );
        }
        assert!(all.is_empty(), "\n{}", all.join("\n"));
    }

    #[test]
    fn deny_matches_other_host_spellings_both_ways() {
        check(
            &scope(
                &["ws://*:*/*"],
                &[
                    "ws://example.com/*",
                    "ws://other.example.",
                    "ws://10.0.0.5/*",
                    r"ws://[\:\:ffff\:a00\:6]/*",
                ],
            ),
            &[
                ("ws://example.com./x", false),
                ("ws://EXAMPLE.COM/x", false),
                ("ws://other.example/", false),
                ("ws://[::ffff:10.0.0.5]/x", false),
                ("ws://[::ffff:a00:5]/x", false),
                ("ws://167772165/x", false),
                ("ws://10.0.0.6/x", false),
                ("ws://sub.example.com/x", true),
                ("ws://10.0.0.7/x", true),
            ],
        );
    }

    #[test]
    fn deny_reads_ws_and_http_as_one_route_and_ignores_a_trailing_slash() {
        check(
            &scope(
                &["ws://*:*/*", "wss://*:*/*", "http://*:*/*", "https://*:*/*"],
                &["http://h/admin", "wss://h/panel/*", "http://h/exact"],
            ),
            &[
                ("ws://h/admin", false),
                ("ws://h/admin/", false),
                ("http://h/admin;jsessionid=1", false),
                ("https://h/panel/x", false),
                ("https://h/panel", false),
                ("ws://h/panel/x", true),
                ("https://h/admin", true),
                ("http://h/admin/x", true),
                ("http://h/exact/", false),
                ("http://h/exactly", true),
                ("http://h/panelx", true),
            ],
        );
    }

    #[test]
    fn allow_stays_strict() {
        check(
            &scope(&["ws://127.0.0.1:*/public/*"], &[]),
            &[
                ("ws://127.0.0.1:1/public/x", true),
                ("ws://127.0.0.1:1/%70ublic/x", false),
                ("ws://127.0.0.1:1/PUBLIC/x", false),
                ("ws://127.0.0.1:1//public/x", false),
                ("ws://localhost:1/public/x", false),
                ("ws://[::ffff:127.0.0.1]:1/public/x", false),
                ("http://127.0.0.1:1/public/x", false),
            ],
        );
        // Secret headers go by the URL as given, too.
        let e = Entry::parse("ws://127.0.0.1:*/admin*").unwrap();
        assert!(e.matches(&"ws://127.0.0.1:1/admin".parse().unwrap()));
        for url in [
            "ws://127.0.0.1:1/ADMIN",
            "ws://127.0.0.1:1/%61dmin",
            "ws://localhost:1/admin",
        ] {
            assert!(
                !e.matches(&url.parse().unwrap()),
                "expected no match for {url}"
            );
        }
    }

    #[test]
    fn path_forms_are_the_decodings_merges_and_slash_variants() {
        assert_eq!(path_forms("/"), vec!["/"]);
        assert_eq!(path_forms("/a"), vec!["/a", "/a/"]);
        assert_eq!(
            path_forms("//%61b;p/%2Fc/"),
            vec![
                "/ab;p/%2fc",
                "/ab;p/%2fc/",
                "/ab/%2fc",
                "/ab/%2fc/",
                "/ab;p/c",
                "/ab;p/c/",
                "/ab/c",
                "/ab/c/"
            ]
        );
        assert_eq!(path_forms("/a/%2e%2e/b/%2E/"), vec!["/b", "/b/"]);
        assert_eq!(path_forms("/%2e%2e/%2e%2e/x"), vec!["/x", "/x/"]);
        assert_eq!(
            decode("%zz%4%%41%e2%82%ac", is_unreserved),
            "%zz%4%A%e2%82%ac"
        );
        assert_eq!(decode("%25%2f%00", |b| b.is_ascii()), "%/\0");
    }

    #[test]
    fn a_deny_pattern_in_any_case_matches_any_case() {
        check(
            &scope(
                &["ws://*:*/*"],
                &[
                    "ws://h/Admin*",
                    "ws://h/:Section/Secret",
                    r"ws://h/(\d+)/Edit",
                    "ws://h/caf%C3%A9",
                ],
            ),
            &[
                ("ws://h/admin", false),
                ("ws://h/ADMIN/x", false),
                ("ws://h/a/SECRET", false),
                ("ws://h/12/edit", false),
                ("ws://h/ab/edit", true),
                ("ws://h/caf%c3%a9", false),
                ("ws://h/caf\u{e9}", false),
                ("ws://h/public", true),
            ],
        );
        assert_eq!(
            fold_case(r"/Admin/:Id/(\D+)/\X{Y}?"),
            r"/admin/:Id/(\D+)/\x{y}?"
        );
    }

    #[test]
    fn a_deny_on_a_url_without_a_host_is_checked_as_given() {
        let s = scope(&["data:*"], &["data:*admin*"]);
        check(
            &s,
            &[
                ("data:,admin", false),
                ("data:,Admin", false),
                ("data:,x", true),
            ],
        );
    }

    #[test]
    fn empty_scope_allows_nothing() {
        assert!(!Scope::default().is_allowed(&"ws://127.0.0.1:1/".parse().unwrap()));
    }

    #[test]
    fn bad_pattern_is_a_clear_error() {
        let e = serde_json::from_str::<Entry>(r#"{"url":"ws://[::1"}"#).unwrap_err();
        assert!(e.to_string().contains("not a valid URL pattern"), "got {e}");
    }

    proptest! {
        /// Disguising a denied URL (escapes, case, extra slashes, `;parameters`, a trailing slash, another
        /// loopback host) never gets it through.
        #[test]
        fn a_disguised_denied_url_stays_denied(
            segments in prop::collection::vec(prop::sample::select(vec!["admin", "x", "public", "admins"]), 1..4),
            disguise in prop::collection::vec(0u8..8, 1..40),
            host in prop::sample::select(vec!["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "127.1", "localhost."]),
        ) {
            let s = example_denies();
            let plain = format!("ws://127.0.0.1:1/{}", segments.join("/"));
            let mut path = String::new();
            let mut d = disguise.iter().copied().cycle();
            for seg in &segments {
                path.push('/');
                if d.next() == Some(1) {
                    path.push('/');
                }
                for c in seg.chars() {
                    match d.next() {
                        Some(2) => path.push(c.to_ascii_uppercase()),
                        Some(3) => path.push_str(&format!("%{:02x}", c as u32)),
                        Some(4) => path.push_str(&format!("%{:02X}", c.to_ascii_uppercase() as u32)),
                        _ => path.push(c),
                    }
                }
                if d.next() == Some(5) {
                    path.push_str(";p=1");
                }
            }
            if d.next() == Some(6) {
                path.push('/');
            }
            let disguised = format!("ws://{host}:1{path}");
            let (plain, disguised) = (Url::parse(&plain).unwrap(), Url::parse(&disguised).unwrap());
            if !s.is_allowed(&plain) {
                prop_assert!(!s.is_allowed(&disguised), "{plain} is denied, {disguised} got through");
            }
        }

        /// Whatever the path, checking it neither panics nor lets a URL through that the deny matches as given.
        #[test]
        fn any_path_is_checked_without_panic(path in "[/%a-zA-Z0-9.;\\\\:@~_-]{0,40}") {
            let s = example_denies();
            for host in ["127.0.0.1:1", "localhost", "[::ffff:7f00:1]", "example.com."] {
                if let Ok(url) = Url::parse(&format!("ws://{host}/{path}")) {
                    let denied_as_given = url.path().starts_with("/admin") && host.starts_with("127.");
                    let allowed = s.is_allowed(&url);
                    prop_assert!(!(denied_as_given && allowed), "{url}");
                }
            }
        }
    }
}
