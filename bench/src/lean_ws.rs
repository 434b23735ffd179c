//! A lean graphql-transport-ws subscriber, for the scenario that measures
//! delivery to thousands of sockets on the server's own machine.
//!
//! The load generator shares the server's two cores, so every microsecond
//! it spends on a delivery is taken from the server it measures: with
//! tungstenite and a typed parse of every frame as it arrived, it used
//! about 40% of the CPU while winners were announced (BENCHMARKS.md). This
//! client does, while deliveries are in flight, only what a subscriber
//! must: read whole frames off the socket, note when each read returned,
//! keep the text frames' bytes and answer pings. What the frames say is
//! checked afterwards, from [`Received`].
//!
//! It speaks plain `ws://` only, reads unfragmented server frames (all the
//! server sends) and masks what it sends, as RFC 6455 asks of a client.

use std::ops::Range;

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ws::step;

/// The RFC 6455 example key and the accept value it must be answered with.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Room made for each read: a burst of batched frames (a draw's hundred
/// winners come to about 12 KiB).
const READ_CHUNK: usize = 16 * 1024;
/// Room kept per expected text frame (a winner's is about 120 bytes).
const FRAME_ROOM: usize = 192;

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// One socket with one subscription, between reads.
pub(crate) struct Subscriber {
    stream: TcpStream,
    /// Bytes read and not framed yet.
    pending: Vec<u8>,
}

/// The text frames one subscriber received, in order, and its socket,
/// still open: closing thousands of sockets while others still receive
/// would spend both sides' CPU on teardown in the middle of a measurement,
/// so they close when the caller drops these, after it.
pub(crate) struct Received {
    _socket: Subscriber,
    /// Their payloads, back to back.
    bytes: Vec<u8>,
    /// Per frame: where its payload ends in `bytes`, and when the read
    /// that completed it returned.
    frames: Vec<(usize, DateTime<Utc>)>,
}

impl Received {
    /// Each frame's text and the moment it was read.
    pub(crate) fn frames(&self) -> impl Iterator<Item = Result<(&str, DateTime<Utc>)>> {
        let starts = std::iter::once(0).chain(self.frames.iter().map(|(end, _)| *end));
        starts.zip(&self.frames).map(|(start, (end, at))| {
            let bytes = self
                .bytes
                .get(start..*end)
                .context("a frame past the bytes")?;
            let text = std::str::from_utf8(bytes).context("a text frame that is not UTF-8")?;
            Ok((text, *at))
        })
    }
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
            self.frame_pending(|bytes| {
                text = Some(bytes.to_vec());
                false
            })
            .await?;
            if let Some(text) = text {
                return Ok(text);
            }
            self.read().await?;
        }
    }

    /// Reads until `count` text frames other than protocol pings came,
    /// answering pings meanwhile.
    pub(crate) async fn receive(mut self, count: usize) -> Result<Received> {
        let mut bytes = Vec::new();
        let mut frames = Vec::new();
        // Touched now, before the deliveries: first touches of fresh pages
        // would fault in the middle of the measurement.
        bytes.resize(count * FRAME_ROOM, 0);
        bytes.clear();
        let framed = self.pending.len();
        self.pending.resize(framed + READ_CHUNK, 0);
        self.pending.truncate(framed);
        frames.resize(count, (0, DateTime::<Utc>::MIN_UTC));
        frames.clear();
        loop {
            let at = Utc::now();
            self.frame_pending(|text| {
                bytes.extend_from_slice(text);
                frames.push((bytes.len(), at));
                true
            })
            .await?;
            if frames.len() >= count {
                return Ok(Received {
                    _socket: self,
                    bytes,
                    frames,
                });
            }
            self.read().await?;
        }
    }

    /// Frames what is pending, in order: answers WebSocket and protocol
    /// pings, and hands every other text frame's payload to `text` until
    /// it answers `false`; what was framed is dropped, the rest stays.
    async fn frame_pending(&mut self, mut text: impl FnMut(&[u8]) -> bool) -> Result<()> {
        let mut framed = 0;
        let mut wanted = true;
        while wanted {
            let Some((opcode, payload)) = frame(&self.pending[framed..])? else {
                break;
            };
            let payload = framed + payload.start..framed + payload.end;
            framed = payload.end;
            let bytes = &self.pending[payload];
            if opcode != TEXT {
                let bytes = bytes.to_vec();
                self.control(opcode, &bytes).await?;
            } else if bytes.starts_with(br#"{"type":"ping""#) {
                self.send_text(&json!({ "type": "pong" })).await?;
            } else {
                wanted = text(bytes);
            }
        }
        self.pending.drain(..framed);
        Ok(())
    }

    /// Answers a WebSocket ping; fails on a close.
    async fn control(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        match opcode {
            PING => self.send(PONG, payload).await,
            PONG => Ok(()),
            CLOSE => bail!(
                "closed by the server: {}",
                String::from_utf8_lossy(payload.get(2..).unwrap_or_default())
            ),
            other => bail!("an unexpected frame (opcode {other})"),
        }
    }

    async fn send_text(&mut self, message: &Value) -> Result<()> {
        self.send(TEXT, message.to_string().as_bytes()).await
    }

    /// Writes one final, masked frame.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        const MASKED: u8 = 0x80;
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        let length = payload.len();
        if let Ok(short @ 0..=125) = u8::try_from(length) {
            frame.push(MASKED | short);
        } else if let Ok(medium) = u16::try_from(length) {
            frame.push(MASKED | 126);
            frame.extend_from_slice(&medium.to_be_bytes());
        } else {
            frame.push(MASKED | 127);
            frame.extend_from_slice(&u64::try_from(length)?.to_be_bytes());
        }
        let mask: [u8; 4] = rand::random();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.stream.write_all(&frame).await?;
        Ok(())
    }
}

/// The first whole frame of `bytes`, if all of it is there: its opcode and
/// where its payload lies (which ends where the frame does).
fn frame(bytes: &[u8]) -> Result<Option<(u8, Range<usize>)>> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    ensure!(second & 0x80 == 0, "a masked frame from the server");
    ensure!(
        first & 0x80 != 0,
        "a fragmented message (this client reads whole frames only)"
    );
    let (length, header) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(&[high, low]) => (usize::from(u16::from_be_bytes([high, low])), 4),
            _ => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(length) => (usize::try_from(u64::from_be_bytes(length.try_into()?))?, 10),
            None => return Ok(None),
        },
        short => (usize::from(short), 2),
    };
    let end = header + length;
    Ok((bytes.len() >= end).then_some((first & 0x0F, header..end)))
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn frames_are_found_only_once_whole() {
        // A short text frame, then the start of a 300-byte one.
        let mut bytes = vec![0x81, 3, b'a', b'b', b'c', 0x81, 126, 0x01, 0x2C];
        assert_eq!(frame(&bytes).expect("valid"), Some((1, 2..5)));
        assert_eq!(frame(&bytes[5..]).expect("valid"), None);
        bytes.extend(std::iter::repeat_n(b'x', 300));
        assert_eq!(frame(&bytes[5..]).expect("valid"), Some((1, 4..304)));
        assert_eq!(frame(&bytes[..1]).expect("valid"), None);
    }

    #[test]
    fn masked_and_fragmented_server_frames_are_refused() {
        assert!(frame(&[0x81, 0x83, 0, 0, 0, 0]).is_err());
        assert!(frame(&[0x01, 1, b'a']).is_err());
    }
}
