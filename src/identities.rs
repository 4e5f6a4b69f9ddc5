//! Client certificates (mutual TLS): given by the app's Rust code per URL pattern, checked when the plugin is
//! set up, and handed to the engine as identities with a matcher of the scope's pattern type.

use crate::{
    core::{self, ClientIdentity},
    scope::Entry,
    Error,
};

/// Builds the identities in the order given (the first whose pattern matches a URL is the one presented).
/// A bad pattern, no certificate, no key or a key that is not the certificate's fails with a message saying
/// which, and naming the pattern, never the key.
pub(crate) fn client_identities(
    given: Vec<(String, Vec<u8>, Vec<u8>)>,
) -> Result<Vec<ClientIdentity>, Error> {
    given
        .into_iter()
        .map(|(pattern, cert, key)| {
            let entry = Entry::parse(&pattern)
                .map_err(|e| Error::Config(format!("client identity: {e}")))?;
            ClientIdentity::from_pem(&cert, &key, move |url| entry.matches(url)).map_err(|e| {
                let why = match e {
                    core::Error::Tls(m) => m,
                    other => other.to_string(),
                };
                Error::Config(format!("client identity for `{pattern}`: {why}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate, its key, and another key.
    fn pem() -> (String, String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        (cert.pem(), key.serialize_pem(), other.serialize_pem())
    }

    fn one(pattern: &str, cert: &str, key: &str) -> Result<Vec<ClientIdentity>, Error> {
        client_identities(vec![(pattern.into(), cert.into(), key.into())])
    }

    #[test]
    fn a_valid_identity_matches_its_pattern_only() {
        let (cert, key, _) = pem();
        let ids = one("https://api.example.com/*", &cert, &key).unwrap();
        assert!(ids[0].matches(&"https://api.example.com/v1/stream".parse().unwrap()));
        assert!(!ids[0].matches(&"https://other.example.com/v1/stream".parse().unwrap()));
        // Certificate and key in one text.
        let both = format!("{cert}{key}");
        assert!(one("https://api.example.com/*", &both, &both).is_ok());
    }

    #[test]
    fn bad_input_fails_the_setup_saying_which() {
        let (cert, key, other) = pem();
        let key_body = key.lines().nth(1).unwrap().to_owned();
        for (what, pattern, c, k, want) in [
            (
                "a bad pattern",
                "wss://[::1",
                cert.as_str(),
                key.as_str(),
                "not a valid URL pattern",
            ),
            (
                "no certificate",
                "https://x/*",
                "",
                key.as_str(),
                "no certificate found",
            ),
            (
                "no key",
                "https://x/*",
                cert.as_str(),
                cert.as_str(),
                "no private key found",
            ),
            (
                "another key",
                "https://x/*",
                cert.as_str(),
                other.as_str(),
                "does not match the certificate",
            ),
        ] {
            let e = one(pattern, c, k)
                .err()
                .unwrap_or_else(|| panic!("{what}: expected an error"));
            let msg = e.to_string();
            assert!(
                msg.contains(want) && msg.contains("client identity"),
                "{what}: expected {want:?}, got {msg}"
            );
            assert!(!msg.contains(&key_body), "{what}: the key leaked: {msg}");
        }
    }
}
