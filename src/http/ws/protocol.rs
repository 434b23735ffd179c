//! The two subprotocols' vocabulary: what a client may send, what the
//! server answers, and why it closes (each close code in one place).

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::http::fanout::{Frame, Wire, framed_message, text_frame};

/// A GraphQL-over-WebSocket subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    /// graphql-transport-ws (the graphql-ws library's protocol).
    TransportWs,
    /// The legacy subscriptions-transport-ws protocol, named graphql-ws.
    LegacyWs,
}

/// The subprotocols served, most preferred first.
pub(super) const PROTOCOLS: [(&str, Protocol); 2] = [
    ("graphql-transport-ws", Protocol::TransportWs),
    ("graphql-ws", Protocol::LegacyWs),
];

/// Why the server closes a connection: a WebSocket close code and reason
/// (which must fit a control frame, 123 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Close {
    pub(super) code: u16,
    pub(super) reason: &'static str,
}

impl Close {
    /// 4400: a message the protocol does not allow.
    pub(super) const INVALID: Close = Close {
        code: 4400,
        reason: "Invalid message received",
    };
    /// 4400: a binary message.
    pub(super) const BINARY: Close = Close {
        code: 4400,
        reason: "Binary messages are not supported",
    };
    /// 4401: a subscribe before connection_init was acknowledged.
    pub(super) const UNAUTHORIZED: Close = Close {
        code: 4401,
        reason: "Unauthorized",
    };
    /// 4403: a bad token at init, or one that stopped being accepted.
    pub(super) const FORBIDDEN: Close = Close {
        code: 4403,
        reason: "Forbidden",
    };
    /// 4408: no connection_init in time.
    pub(super) const INIT_TIMEOUT: Close = Close {
        code: 4408,
        reason: "Connection initialisation timeout",
    };
    /// 4409: a subscribe whose id is already active.
    pub(super) const DUPLICATE_ID: Close = Close {
        code: 4409,
        reason: "Subscriber for this id already exists",
    };
    /// 4429: a second connection_init.
    pub(super) const SECOND_INIT: Close = Close {
        code: 4429,
        reason: "Too many initialisation requests",
    };
    /// 1011: credentials could not be read (an infrastructure failure).
    pub(super) const INTERNAL: Close = Close {
        code: 1011,
        reason: "Internal error",
    };
    /// 1001: the process is shutting down.
    pub(super) const SHUTDOWN: Close = Close {
        code: 1001,
        reason: "Server is shutting down",
    };
    /// 1001: the client answered no ping for two periods.
    pub(super) const SILENT: Close = Close {
        code: 1001,
        reason: "No response to pings",
    };
    /// 1000: the legacy client's connection_terminate.
    pub(super) const NORMAL: Close = Close {
        code: 1000,
        reason: "Normal closure",
    };
}

/// A message from the client.
pub(super) enum ClientMessage {
    /// connection_init, with the `authorization` its payload names.
    Init(Option<String>),
    /// A protocol-level ping (graphql-transport-ws).
    Ping,
    /// A protocol-level pong (graphql-transport-ws).
    Pong,
    /// Start the operation `request` under `id`.
    Subscribe {
        id: String,
        request: Box<async_graphql::Request>,
    },
    /// Stop the operation under `id`.
    Complete { id: String },
    /// The legacy client closes the connection.
    Terminate,
}

impl Protocol {
    /// The type of the message that carries a result.
    fn next(self) -> &'static str {
        match self {
            Protocol::TransportWs => "next",
            Protocol::LegacyWs => "data",
        }
    }

    /// The client message `message` is; `None` for a WebSocket control
    /// frame. Anything the protocol does not allow closes with 4400.
    pub(super) fn parse(self, message: &Message) -> Result<Option<ClientMessage>, Close> {
        let text = match message {
            Message::Text(text) => text.as_str(),
            Message::Binary(_) => return Err(Close::BINARY),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Close(_) => {
                return Ok(None);
            }
        };
        let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(text) else {
            return Err(Close::INVALID);
        };
        let kind = message.get("type").and_then(Value::as_str);
        let id = message
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let parsed = match (self, kind) {
            (_, Some("connection_init")) => {
                let token = message
                    .get("payload")
                    .and_then(|p| p.get("authorization").or_else(|| p.get("Authorization")))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                ClientMessage::Init(token)
            }
            (Protocol::TransportWs, Some("ping")) => ClientMessage::Ping,
            (Protocol::TransportWs, Some("pong")) => ClientMessage::Pong,
            (Protocol::TransportWs, Some("subscribe")) | (Protocol::LegacyWs, Some("start")) => {
                let payload = message.remove("payload").ok_or(Close::INVALID)?;
                let request = serde_json::from_value(payload).map_err(|_| Close::INVALID)?;
                ClientMessage::Subscribe {
                    id: id.ok_or(Close::INVALID)?,
                    request: Box::new(request),
                }
            }
            (Protocol::TransportWs, Some("complete")) | (Protocol::LegacyWs, Some("stop")) => {
                ClientMessage::Complete {
                    id: id.ok_or(Close::INVALID)?,
                }
            }
            (Protocol::LegacyWs, Some("connection_terminate")) => ClientMessage::Terminate,
            _ => return Err(Close::INVALID),
        };
        Ok(Some(parsed))
    }

    /// What acknowledges connection_init.
    pub(super) fn acknowledgement(self) -> &'static [&'static str] {
        match self {
            Protocol::TransportWs => &[r#"{"type":"connection_ack"}"#],
            Protocol::LegacyWs => &[r#"{"type":"connection_ack"}"#, r#"{"type":"ka"}"#],
        }
    }

    /// What precedes the close of a refused connection_init.
    pub(super) fn refusal(self) -> Option<&'static str> {
        match self {
            Protocol::TransportWs => None,
            Protocol::LegacyWs => {
                Some(r#"{"type":"connection_error","payload":{"message":"Forbidden"}}"#)
            }
        }
    }

    /// The protocol-level keep-alive sent with every WebSocket ping, once
    /// `acked` (graphql-ws sends none before).
    pub(super) fn keep_alive(self, acked: bool) -> Option<&'static str> {
        match self {
            Protocol::TransportWs => Some(r#"{"type":"ping"}"#),
            Protocol::LegacyWs if acked => Some(r#"{"type":"ka"}"#),
            Protocol::LegacyWs => None,
        }
    }

    /// What answers a protocol-level ping.
    pub(super) fn pong() -> &'static str {
        r#"{"type":"pong"}"#
    }

    /// What answers the client's complete (stop) of a running operation.
    pub(super) fn stopped(self, id: &str) -> Option<String> {
        match self {
            Protocol::TransportWs => None,
            Protocol::LegacyWs => Some(complete(id)),
        }
    }

    /// The error that refuses a subscribe under `id` and leaves the
    /// connection up.
    pub(super) fn refused(id: &str, message: &str, code: &str, retry_after_seconds: u32) -> String {
        let error = json!({
            "message": message,
            "extensions": { "code": code, "retryAfterSeconds": retry_after_seconds }
        });
        json!({ "type": "error", "id": id, "payload": [error] }).to_string()
    }

    /// Adds the WebSocket frames of `frame`, a result of the operation
    /// under `id`, to `wire`.
    pub(super) fn frames(self, wire: &mut Vec<Wire>, id: &str, frame: Frame) {
        let text = |message: String| Wire::Own(text_frame(&message));
        let failed = matches!(frame, Frame::Error(_));
        let last = frame.is_final();
        match (frame, self) {
            (Frame::Next(payload), protocol) => wire.push(payload.into_wire(protocol.next(), id)),
            (Frame::Run(run), protocol) => wire.push(run.into_wire(protocol.next(), id)),
            // graphql-transport-ws: an `error` message ends the operation.
            (Frame::Error(errors), Protocol::TransportWs) => {
                wire.push(text(framed_message("error", id, &errors)));
            }
            // graphql-ws: the failed result as `data`, then `complete`.
            (Frame::Error(errors), Protocol::LegacyWs) => wire.push(text(framed_message(
                "data",
                id,
                &format!(r#"{{"data":null,"errors":{errors}}}"#),
            ))),
            (Frame::Complete, _) => {}
        }
        if last && !(failed && self == Protocol::TransportWs) {
            wire.push(text(complete(id)));
        }
    }
}

/// The `complete` of the operation under `id`.
fn complete(id: &str) -> String {
    json!({ "type": "complete", "id": id }).to_string()
}
