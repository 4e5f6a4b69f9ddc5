//! Opening a WebSocket with tokio-tungstenite over rustls.

use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{self, client::IntoClientRequest, protocol::WebSocketConfig},
    Connector, MaybeTlsStream, WebSocketStream,
};

use super::{classify_status, request_headers, tls_failure, AttemptError, Notes};
use crate::{backoff::retry_after, connection::Env, error::Error, options::Resolved};

/// Longest close reason a close frame can carry (125 bytes of payload less the 2-byte code).
pub const MAX_CLOSE_REASON: usize = 123;

/// A close an app may ask for: code 1000 or 3000-4999 (the others are the protocol's own), a short reason.
pub fn check_close(code: u16, reason: &str) -> Result<(), Error> {
    if code != 1000 && !(3000..=4999).contains(&code) {
        return Err(Error::InvalidClose(format!(
            "code {code} is not allowed; use 1000 or 3000-4999"
        )));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(Error::InvalidClose(format!(
            "reason is {} bytes; at most {MAX_CLOSE_REASON} are allowed",
            reason.len()
        )));
    }
    Ok(())
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Performs the opening handshake, returning the stream and the subprotocol the server chose.
pub(crate) async fn open(
    opts: &Resolved,
    env: &Env,
    notes: &Notes,
) -> Result<(Ws, Option<String>), AttemptError> {
    let mut request = opts
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| AttemptError::Fatal {
            reason: format!("invalid WebSocket request: {e}"),
        })?;
    let headers = request.headers_mut();
    for (name, value) in request_headers(&opts.headers, env.secrets.as_deref(), &opts.url, notes) {
        headers.append(name, value);
    }
    if !opts.protocols.is_empty() {
        let joined = opts.protocols.join(", ");
        let value = http::HeaderValue::from_str(&joined).map_err(|_| AttemptError::Fatal {
            reason: "invalid subprotocol list".into(),
        })?;
        headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(opts.max_message_size))
        .max_frame_size(Some(opts.max_message_size));
    let connector = Connector::Rustls(env.tls.clone());
    match tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    )
    .await
    {
        Ok((ws, response)) => {
            let protocol = response
                .headers()
                .get(http::header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((ws, protocol))
        }
        Err(e) => Err(classify(e)),
    }
}

fn classify(e: tungstenite::Error) -> AttemptError {
    use tungstenite::Error as E;
    match e {
        E::Http(response) => {
            let status = response.status();
            let retry_after = retry_after(response.headers());
            match classify_status(status, retry_after) {
                // Anything else than a transient status means this endpoint will not upgrade.
                AttemptError::Fatal { reason } => AttemptError::NoStream {
                    reason: format!("WebSocket upgrade refused: {reason}"),
                },
                other => other,
            }
        }
        E::Tls(e) => AttemptError::Fatal {
            reason: format!("TLS error: {e}"),
        },
        E::Url(e) => AttemptError::Fatal {
            reason: format!("invalid WebSocket URL: {e}"),
        },
        // Closed before the answer, or an answer that is not HTTP at all: a server or proxy in trouble, not
        // one that refuses to stream. Retry.
        E::Protocol(
            e @ (tungstenite::error::ProtocolError::HandshakeIncomplete
            | tungstenite::error::ProtocolError::HttparseError(_)),
        ) => AttemptError::Retry {
            reason: format!("network error: WebSocket handshake failed: {e}"),
            retry_after: None,
        },
        E::Protocol(e) => AttemptError::NoStream {
            reason: format!("WebSocket handshake failed: {e}"),
        },
        // tokio-tungstenite reports rustls handshake failures as I/O errors.
        E::Io(e) => match tls_failure(&e) {
            Some(reason) => AttemptError::Fatal { reason },
            None => AttemptError::Retry {
                reason: format!("network error: {e}"),
                retry_after: None,
            },
        },
        other => AttemptError::Retry {
            reason: other.to_string(),
            retry_after: None,
        },
    }
}
