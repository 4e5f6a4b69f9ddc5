//! Opening a Server-Sent Events stream with reqwest: the request a browser's EventSource would make, plus the
//! app's method, headers and body; redirects followed by hand so that every hop is checked against the scope.

use http::{header, Method, StatusCode};
use url::Url;

use super::{
    classify_status, last_event_id_header, request_failed, request_headers, AttemptError, Notes,
    UrlGuard,
};
use crate::{backoff::retry_after, connection::Env, options::Resolved};

/// Hops followed before giving up, as browsers do.
const MAX_REDIRECTS: usize = 10;

/// Sends the request and checks the response: 200 with `text/event-stream`, or a classified error.
pub(crate) async fn open(
    env: &Env,
    opts: &Resolved,
    last_event_id: Option<&str>,
    guard: &dyn UrlGuard,
    notes: &Notes,
) -> Result<reqwest::Response, AttemptError> {
    let mut url = opts.url.clone();
    let mut method = opts.method.clone();
    let mut body = opts.body.clone();
    let mut same_origin = true;
    for _hop in 0..=MAX_REDIRECTS {
        let mut req = env
            .http
            .request(method.clone(), url.clone())
            .header(header::ACCEPT, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache");
        // Secret headers go by the URL of each hop; the app's own credentials do not follow a redirect to
        // another origin, as in browsers.
        let own: Vec<_> = opts
            .headers
            .iter()
            .filter(|(name, _)| same_origin || !is_credential(name))
            .cloned()
            .collect();
        for (name, value) in request_headers(&own, env.secrets.as_deref(), &url, notes) {
            req = req.header(name, value);
        }
        if let Some(id) = last_event_id.and_then(last_event_id_header) {
            req = req.header("last-event-id", id);
        }
        if let Some(b) = &body {
            req = req.body(b.clone());
        }
        let response = req
            .send()
            .await
            .map_err(|e| request_failed("network error", &e))?;
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let next = redirect_target(&url, &response)?;
            guard.check(&next).map_err(|_| AttemptError::Fatal {
                reason: format!(
                    "redirect to {next} is not allowed by the realtime scope; add it to the capability's allow list"
                ),
            })?;
            same_origin &= next.origin() == opts.url.origin();
            // Fetch's rule: 303, and 301/302 after a POST, continue as a GET without a body.
            if status == StatusCode::SEE_OTHER
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::POST)
            {
                method = Method::GET;
                body = None;
            }
            url = next;
            continue;
        }
        return check_response(response);
    }
    Err(AttemptError::Fatal {
        reason: format!("too many redirects (more than {MAX_REDIRECTS})"),
    })
}

fn check_response(response: reqwest::Response) -> Result<reqwest::Response, AttemptError> {
    let status = response.status();
    if status == StatusCode::NO_CONTENT {
        return Err(AttemptError::Stop {
            reason: "server answered 204 No Content: it asks the client to stop".into(),
        });
    }
    if status != StatusCode::OK {
        let retry_after = retry_after(response.headers());
        return Err(classify_status(status, retry_after));
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_event_stream(content_type) {
        return Err(AttemptError::NoStream {
            reason: format!(
                "server answered with content type {:?}, not text/event-stream",
                if content_type.is_empty() {
                    "(none)"
                } else {
                    content_type
                }
            ),
        });
    }
    Ok(response)
}

/// `text/event-stream`, ignoring case, parameters and white space.
pub fn is_event_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
}

fn is_credential(name: &http::HeaderName) -> bool {
    name == header::AUTHORIZATION || name == header::COOKIE || name == header::PROXY_AUTHORIZATION
}

fn redirect_target(base: &Url, response: &reqwest::Response) -> Result<Url, AttemptError> {
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AttemptError::Fatal {
            reason: format!(
                "HTTP {} redirect without a Location header",
                response.status().as_u16()
            ),
        })?;
    let next = base.join(location).map_err(|e| AttemptError::Fatal {
        reason: format!("redirect to an invalid URL {location:?}: {e}"),
    })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(AttemptError::Fatal {
            reason: format!("redirect to an unsupported scheme: {next}"),
        });
    }
    Ok(next)
}

/// reqwest hides the cause (connection refused, timed out) behind its source chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        source = s_source(source);
    }
    msg
}

fn s_source<'a>(
    e: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    e.and_then(|e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_essence() {
        for (ct, ok) in [
            ("text/event-stream", true),
            ("Text/Event-Stream; charset=utf-8", true),
            (" text/event-stream ;x=y", true),
            ("application/json", false),
            ("text/event-streams", false),
            ("", false),
        ] {
            assert_eq!(is_event_stream(ct), ok, "expected {ok} for {ct:?}");
        }
    }
}
