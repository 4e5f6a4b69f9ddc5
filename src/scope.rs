//! The URL scope: which URLs a webview may reach, from the `allow` and `deny` entries of its capabilities
//! (as tauri's http plugin does it). Deny wins; no entry means no URL.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use tauri::ipc::{CommandScope, GlobalScope};
use url::Url;
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput};

use crate::core::UrlGuard;

/// One scope entry: `{ "url": "<URL pattern>" }`, e.g. `"wss://chat.example.com/*"`.
#[derive(Debug)]
pub struct Entry {
    pub url: UrlPattern,
    raw: String,
}

impl Entry {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let init = UrlPatternInit::parse_constructor_string::<regex::Regex>(raw, None)
            .map_err(|e| format!("`{raw}` is not a valid URL pattern: {e}"))?;
        let url = UrlPattern::parse(init, Default::default())
            .map_err(|e| format!("`{raw}` is not a valid URL pattern: {e}"))?;
        Ok(Self {
            url,
            raw: raw.to_owned(),
        })
    }

    pub(crate) fn matches(&self, url: &Url) -> bool {
        self.url
            .test(UrlPatternMatchInput::Url(url.clone()))
            .unwrap_or_default()
    }

    pub fn pattern(&self) -> &str {
        &self.raw
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

    pub fn is_allowed(&self, url: &Url) -> bool {
        !self.denied.iter().any(|e| e.matches(url)) && self.allowed.iter().any(|e| e.matches(url))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(allow: &[&str], deny: &[&str]) -> Scope {
        let e = |v: &[&str]| {
            v.iter()
                .map(|p| Arc::new(Entry::parse(p).unwrap()))
                .collect()
        };
        Scope::new(e(allow), e(deny))
    }

    #[test]
    fn allow_deny_table() {
        let s = scope(
            &["ws://127.0.0.1:*/*", "https://*.example.com/*"],
            &["https://evil.example.com/*"],
        );
        for (url, ok) in [
            ("ws://127.0.0.1:4000/chat", true),
            ("ws://127.0.0.1/chat", true),
            ("wss://127.0.0.1:4000/chat", false),
            ("ws://localhost:4000/chat", false),
            ("https://api.example.com/stream", true),
            ("https://evil.example.com/stream", false),
            ("http://api.example.com/stream", false),
        ] {
            assert_eq!(
                s.is_allowed(&url.parse().unwrap()),
                ok,
                "expected {ok} for {url}"
            );
        }
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
}
