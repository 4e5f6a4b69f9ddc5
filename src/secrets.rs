//! Secret headers: attached by the app's Rust code per URL pattern, never visible to JavaScript.

use std::sync::Arc;

use url::Url;

use crate::{core::HeaderSource, scope::Entry, Error};

pub(crate) struct SecretHeaderSet {
    fixed: Vec<(Entry, http::HeaderName, http::HeaderValue)>,
    source: Option<Arc<dyn HeaderSource>>,
}

impl SecretHeaderSet {
    /// `None` when there is nothing to attach, so requests skip the lookup.
    pub(crate) fn new(
        fixed: Vec<(String, String, String)>,
        source: Option<Arc<dyn HeaderSource>>,
    ) -> Result<Option<Self>, Error> {
        if fixed.is_empty() && source.is_none() {
            return Ok(None);
        }
        let fixed = fixed
            .into_iter()
            .map(|(pattern, name, value)| {
                let entry = Entry::parse(&pattern)
                    .map_err(|e| Error::Config(format!("secret header: {e}")))?;
                let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    Error::Config(format!("secret header: invalid header name {name:?}"))
                })?;
                // The value is never echoed in the message.
                let mut value = http::HeaderValue::from_str(&value)
                    .map_err(|_| Error::Config(format!("secret header {name}: invalid value")))?;
                value.set_sensitive(true);
                Ok((entry, name, value))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Some(Self { fixed, source }))
    }
}

impl HeaderSource for SecretHeaderSet {
    fn headers_for(&self, url: &Url) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let mut out: Vec<(http::HeaderName, http::HeaderValue)> = self
            .fixed
            .iter()
            .filter(|(entry, _, _)| entry.matches(url))
            .map(|(_, n, v)| (n.clone(), v.clone()))
            .collect();
        if let Some(source) = &self.source {
            for (n, v) in source.headers_for(url) {
                out.retain(|(m, _)| *m != n);
                out.push((n, v));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_headers_by_pattern_and_source_wins() {
        struct Token;
        impl HeaderSource for Token {
            fn headers_for(&self, url: &Url) -> Vec<(http::HeaderName, http::HeaderValue)> {
                if url.path().starts_with("/v2") {
                    vec![(
                        http::header::AUTHORIZATION,
                        http::HeaderValue::from_static("Bearer fresh"),
                    )]
                } else {
                    vec![]
                }
            }
        }
        let set = SecretHeaderSet::new(
            vec![(
                "https://api.example.com/*".into(),
                "Authorization".into(),
                "Bearer old".into(),
            )],
            Some(Arc::new(Token)),
        )
        .unwrap()
        .unwrap();
        let get = |u: &str| {
            set.headers_for(&u.parse().unwrap())
                .into_iter()
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            get("https://api.example.com/v1/s"),
            ["authorization: Bearer old"]
        );
        assert_eq!(
            get("https://api.example.com/v2/s"),
            ["authorization: Bearer fresh"]
        );
        assert!(get("https://other.example.com/v1/s").is_empty());
    }

    #[test]
    fn bad_configuration_names_the_problem_not_the_value() {
        let e = SecretHeaderSet::new(
            vec![("https://x/*".into(), "bad name".into(), "v".into())],
            None,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("invalid header name"), "got {e}");
        let e = SecretHeaderSet::new(
            vec![("https://x/*".into(), "x-key".into(), "s3cret\n".into())],
            None,
        )
        .err()
        .unwrap();
        assert!(
            !e.to_string().contains("s3cret"),
            "the secret must not leak into the message: {e}"
        );
    }
}
