//! The WebSocket upgrade (RFC 6455 §4.2.1, HTTP/1.1), checked as axum's
//! extractor checks it, and the subprotocol chosen by our preference.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::protocol::{PROTOCOLS, Protocol};

/// A valid WebSocket upgrade request (RFC 6455 §4.2.1, HTTP/1.1).
pub(super) struct Handshake {
    accept: String,
    /// The subprotocol chosen among the client's, if it offered one we serve.
    protocol: Option<(&'static str, Protocol)>,
    pub(super) upgrade: OnUpgrade,
}

/// True if the comma-separated `name` header lists `token` (any case).
fn lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

impl Handshake {
    /// Checks the upgrade request as axum's extractor does, with its
    /// answers: 400 for a request that is not a WebSocket upgrade, 426 for
    /// a connection that cannot be upgraded.
    pub(super) fn of(request: &mut Request) -> Result<Self, (StatusCode, &'static str)> {
        let headers = request.headers();
        if !lists(headers, header::CONNECTION, "upgrade") {
            return Err((
                StatusCode::BAD_REQUEST,
                "Connection header did not include 'upgrade'",
            ));
        }
        if !lists(headers, header::UPGRADE, "websocket") {
            return Err((
                StatusCode::BAD_REQUEST,
                "`Upgrade` header did not include 'websocket'",
            ));
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
            return Err((
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Version` header did not include '13'",
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err((
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` header missing",
            ));
        };
        let accept = derive_accept_key(key.as_bytes());
        let protocol = PROTOCOLS
            .into_iter()
            .find(|(name, _)| lists(headers, header::SEC_WEBSOCKET_PROTOCOL, name));
        let Some(upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
            return Err((
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket request couldn't be upgraded since no upgrade state was present",
            ));
        };
        Ok(Self {
            accept,
            protocol,
            upgrade,
        })
    }

    /// The `101 Switching Protocols` answer.
    pub(super) fn response(&self) -> Response {
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&self.accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some((name, _)) = self.protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(name),
            );
        }
        response
    }

    /// The subprotocol to speak: graphql-transport-ws when the client
    /// offered none we serve.
    pub(super) fn protocol(&self) -> Protocol {
        self.protocol
            .map_or(Protocol::TransportWs, |(_, protocol)| protocol)
    }
}
