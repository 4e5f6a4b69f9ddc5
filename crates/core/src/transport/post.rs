//! Sends over HTTP: each message POSTed to `sendUrl` with the connection's headers (and the app's secret
//! ones for that URL), one at a time, so that the server gets them in the order they were sent.

use std::{future::Future, pin::Pin, sync::Arc};

use url::Url;

use super::{request::error_chain, Env, Notes};
use crate::{options::Resolved, queue::Outgoing};

type Posting = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// POSTs messages to one URL, one at a time.
pub(crate) struct Poster {
    opts: Arc<Resolved>,
    env: Arc<Env>,
    notes: Arc<Notes>,
    url: Url,
    in_flight: Option<Posting>,
}

impl Poster {
    pub(crate) fn new(opts: Arc<Resolved>, env: Arc<Env>, notes: Arc<Notes>, url: Url) -> Self {
        Self {
            opts,
            env,
            notes,
            url,
            in_flight: None,
        }
    }

    pub(crate) fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts POSTing `msg`; [`Poster::done`] tells how it ended.
    pub(crate) fn start(&mut self, msg: Outgoing) {
        let (body, content_type) = match msg {
            Outgoing::Text(t) => (t.into_bytes(), "text/plain; charset=utf-8"),
            Outgoing::Binary(b) => (b, "application/octet-stream"),
        };
        let mut post = self
            .env
            .http
            .post(self.url.clone())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        for (n, v) in self
            .env
            .headers_for(&self.opts.headers, &self.url, &self.notes)
        {
            post = post.header(n, v);
        }
        let limit = self.opts.connect_timeout;
        self.in_flight = Some(Box::pin(async move {
            match tokio::time::timeout(limit, post.send()).await {
                Ok(Ok(r)) if r.status().is_success() => Ok(()),
                Ok(Ok(r)) => Err(format!("sendUrl answered HTTP {}", r.status().as_u16())),
                Ok(Err(e)) => Err(error_chain(&e)),
                Err(_) => Err("sendUrl did not answer in time".into()),
            }
        }));
    }

    /// How the POST in flight ended; never, while none is. Cancel-safe: the POST stays in flight.
    pub(crate) async fn done(&mut self) -> Result<(), String> {
        let Some(posting) = self.in_flight.as_mut() else {
            return std::future::pending().await;
        };
        let result = posting.await;
        self.in_flight = None;
        result
    }
}
