//! Opening a subscriber: the upgrade, connection_init and the subscribe,
//! with tokio, before the socket is handed to the receiving thread.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::framing::{TEXT, frame_pending, masked};
use crate::ws::step;

/// The RFC 6455 example key and the accept value it must be answered with.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Room made for each read: a burst of batched frames (a draw's hundred
/// winners come to about 12 KiB).
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// One socket with one subscription, opened and subscribed.
pub(crate) struct Subscriber {
    pub(super) stream: TcpStream,
    /// Bytes read and not framed yet.
    pub(super) pending: Vec<u8>,
}

impl Subscriber {
    /// Connects to `ws_url` (`ws://host:port/path`), completes the
    /// graphql-transport-ws handshake anonymously and sends `subscribe`.
    pub(crate) async fn open(ws_url: &str, subscribe: &Value) -> Result<Self> {
        let rest = ws_url
            .strip_prefix("ws://")
            .with_context(|| format!("not a ws:// address: {ws_url}"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let stream = step(TcpStream::connect(authority))
            .await?
            .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        let mut socket = Self {
            stream,
            pending: Vec::with_capacity(READ_CHUNK),
        };
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        );
        socket.stream.write_all(request.as_bytes()).await?;
        step(socket.upgraded()).await??;
        socket
            .send_text(&json!({ "type": "connection_init", "payload": {} }))
            .await?;
        let ack = step(socket.next_text()).await??;
        let ack: Value = serde_json::from_slice(&ack)
            .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&ack)))?;
        ensure!(
            ack["type"] == "connection_ack",
            "expected connection_ack, got {ack}"
        );
        socket.send_text(subscribe).await?;
        Ok(socket)
    }

    /// Reads the upgrade response; what follows its head stays pending.
    async fn upgraded(&mut self) -> Result<()> {
        loop {
            if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                ensure!(
                    head.starts_with("HTTP/1.1 101") && head.contains(ACCEPT),
                    "the upgrade was refused: {head}"
                );
                self.pending.drain(..end + 4);
                return Ok(());
            }
            self.read().await?;
        }
    }

    /// Reads once more onto `pending`.
    async fn read(&mut self) -> Result<()> {
        self.pending.reserve(READ_CHUNK);
        let read = self.stream.read_buf(&mut self.pending).await?;
        ensure!(read > 0, "the server closed the socket");
        Ok(())
    }

    /// The payload of the next text frame, during the handshake.
    async fn next_text(&mut self) -> Result<Vec<u8>> {
        loop {
            let mut text = None;
            let mut replies = Vec::new();
            frame_pending(&mut self.pending, &mut replies, |bytes| {
                text = Some(bytes.to_vec());
                false
            })?;
            self.stream.write_all(&replies).await?;
            if let Some(text) = text {
                return Ok(text);
            }
            self.read().await?;
        }
    }

    async fn send_text(&mut self, message: &Value) -> Result<()> {
        let mut frame = Vec::new();
        masked(TEXT, message.to_string().as_bytes(), &mut frame)?;
        self.stream.write_all(&frame).await?;
        Ok(())
    }
}
