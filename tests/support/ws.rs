//! A minimal GraphQL WebSocket client for tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One client socket.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects offering `protocols` (a `Sec-WebSocket-Protocol` value, or
    /// none); returns the client and the subprotocol the server chose.
    pub async fn offering(url: &str, protocols: Option<&str>) -> (Self, Option<String>) {
        let mut request = url.into_client_request().expect("valid ws url");
        if let Some(protocols) = protocols {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(protocols).expect("header"),
            );
        }
        // tungstenite checks Sec-WebSocket-Accept against its key.
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connects");
        let chosen = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (Self { socket }, chosen)
    }

    /// Connects with `protocol` (`graphql-transport-ws` or `graphql-ws`).
    pub async fn connect(url: &str, protocol: &str) -> Self {
        let (client, chosen) = Self::offering(url, Some(protocol)).await;
        assert_eq!(
            chosen.as_deref(),
            Some(protocol),
            "the server selects the requested protocol"
        );
        client
    }

    /// Connects with graphql-transport-ws and completes the handshake.
    pub async fn ready(url: &str, token: Option<&str>) -> Self {
        let mut client = Self::connect(url, "graphql-transport-ws").await;
        client.init(token).await;
        assert_eq!(client.next().await["type"], "connection_ack");
        client
    }

    /// Sends connection_init with an optional bearer token.
    pub async fn init(&mut self, token: Option<&str>) {
        let payload = token.map_or(
            json!({}),
            |t| json!({ "authorization": format!("Bearer {t}") }),
        );
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, value: Value) {
        self.socket
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("ws send");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("ws send");
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.socket
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("ws send");
    }

    /// Subscribes `id` to `query`.
    pub async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query } }))
            .await;
    }

    /// The next JSON message (server pings are skipped); panics after 10 s.
    pub async fn next(&mut self) -> Value {
        loop {
            let value = self.next_raw().await;
            if value["type"] != "ping" && value["type"] != "ka" {
                return value;
            }
        }
    }

    /// The next JSON message, which must be of `kind` for operation `id`.
    pub async fn next_of(&mut self, kind: &str, id: &str) -> Value {
        let message = self.next().await;
        assert_eq!(
            (message["type"].as_str(), message["id"].as_str()),
            (Some(kind), Some(id)),
            "{message}"
        );
        message
    }

    /// The next JSON message of any type, pings included.
    pub async fn next_raw(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("a message within 10 s")
                .expect("socket open")
                .expect("valid frame");
            match frame {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("JSON message");
                }
                Message::Close(frame) => panic!("closed unexpectedly: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Waits for the server to close; returns the close code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("closed within 10 s");
            match frame {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 0,
                Some(Ok(_)) => {}
            }
        }
    }
}
