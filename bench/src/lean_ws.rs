//! A lean graphql-transport-ws subscriber, for the scenario that measures
//! delivery to thousands of sockets on the server's own machine.
//!
//! The load generator shares the server's two cores, so every microsecond
//! it spends on a delivery is taken from the server it measures: with
//! tungstenite and a typed parse of every frame as it arrived, it used
//! about 40% of the CPU while winners were announced (BENCHMARKS.md), and
//! with a tokio task per socket its reads still cost five times what a C
//! reader's do (`bench/loopback-floor.c`). So sockets are opened and
//! subscribed with tokio, then handed to a [`Receiver`]: ONE thread that
//! epolls them all and does, while deliveries are in flight, only what a
//! subscriber must: read whole frames off each socket, note when each read
//! returned, keep the text frames' bytes and answer pings. What the frames
//! say is checked afterwards, from [`Received`].
//!
//! It speaks plain `ws://` only, reads unfragmented server frames (all the
//! server sends) and masks what it sends, as RFC 6455 asks of a client.

use std::io::{IoSliceMut, Write};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, Utc};
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::errno::Errno;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
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

/// One socket with one subscription, opened and subscribed.
pub(crate) struct Subscriber {
    stream: TcpStream,
    /// Bytes read and not framed yet.
    pending: Vec<u8>,
}

/// The text frames one subscriber received, in order, and its socket,
/// still open: closing thousands of sockets while others still receive
/// would spend both sides' CPU on teardown in the middle of a measurement,
/// so they close when the caller drops these, after it.
pub(crate) struct Received(Socket);

/// When a frame came to its subscriber.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Came {
    /// When the kernel received the packet that completed it
    /// (`SO_TIMESTAMPNS`): when the server's write reached the socket,
    /// whenever this one thread got round to reading it.
    pub(crate) arrived: DateTime<Utc>,
    /// When the read that completed it returned.
    pub(crate) read: DateTime<Utc>,
}

impl Received {
    /// Each frame's text and when it came.
    pub(crate) fn frames(&self) -> impl Iterator<Item = Result<(&str, Came)>> {
        let Socket { bytes, frames, .. } = &self.0;
        let starts = std::iter::once(0).chain(frames.iter().map(|(end, _)| *end));
        starts.zip(frames).map(|(start, (end, came))| {
            let bytes = bytes.get(start..*end).context("a frame past the bytes")?;
            let text = std::str::from_utf8(bytes).context("a text frame that is not UTF-8")?;
            Ok((text, *came))
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

/// The thread that receives on every subscriber handed to it (see the
/// module's documentation), until each has its text frames.
pub(crate) struct Receiver {
    sockets: mpsc::Sender<Subscriber>,
    waker: Arc<Waker>,
    received: mpsc::Receiver<Result<Vec<Received>>>,
    done: Arc<AtomicUsize>,
    added: usize,
}

/// The waker's token; a socket's is its index.
const WAKE: Token = Token(usize::MAX);

impl Receiver {
    /// Starts the thread; each subscriber it is given must receive `count`
    /// text frames other than protocol pings.
    pub(crate) fn start(count: usize) -> Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (sockets, incoming) = mpsc::channel();
        let (results, received) = mpsc::channel();
        let done = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&done);
        std::thread::Builder::new()
            .name("lean-ws".into())
            .spawn(move || {
                // The caller gave up if nobody listens any more.
                let _ = results.send(receive(poll, &incoming, count, &counted));
            })?;
        Ok(Self {
            sockets,
            waker,
            received,
            done,
            added: 0,
        })
    }

    /// Hands `subscriber` to the thread, which answers its pings from now on.
    pub(crate) fn add(&mut self, subscriber: Subscriber) -> Result<()> {
        self.sockets
            .send(subscriber)
            .context("the receiving thread stopped")?;
        self.waker.wake()?;
        self.added += 1;
        Ok(())
    }

    /// Every subscriber's frames, in the order they were added, once each
    /// had all of them; fails after `timeout`.
    pub(crate) fn finish(self, timeout: Duration) -> Result<Vec<Received>> {
        let Self {
            sockets,
            waker,
            received,
            done,
            added,
        } = self;
        drop(sockets);
        waker.wake()?;
        match received.recv_timeout(timeout) {
            Ok(received) => received,
            Err(_) => bail!(
                "{} of {added} subscribers had every frame within {timeout:?}",
                done.load(Ordering::Relaxed)
            ),
        }
    }
}

/// One subscriber on the receiving thread.
struct Socket {
    stream: MioStream,
    /// Bytes read and not framed yet.
    pending: Vec<u8>,
    /// The text frames' payloads, back to back.
    bytes: Vec<u8>,
    /// Per frame: where its payload ends in `bytes`, and when it came.
    frames: Vec<(usize, Came)>,
}

impl Socket {
    fn new(subscriber: Subscriber, count: usize) -> Result<Self> {
        let Subscriber {
            stream,
            mut pending,
        } = subscriber;
        let stream = MioStream::from_std(stream.into_std()?);
        setsockopt(&stream, sockopt::ReceiveTimestampns, &true)?;
        // Touched now, before the deliveries: first touches of fresh pages
        // would fault in the middle of the measurement (so not `vec![0; n]`,
        // whose zeroed pages the kernel maps on first use).
        let mut bytes = Vec::with_capacity(count * FRAME_ROOM);
        bytes.resize(count * FRAME_ROOM, 1);
        bytes.clear();
        let framed = pending.len();
        pending.resize(framed + 2 * READ_CHUNK, 1);
        pending.truncate(framed);
        let never = Came {
            arrived: DateTime::<Utc>::MIN_UTC,
            read: DateTime::<Utc>::MIN_UTC,
        };
        let mut frames = vec![(0, never); count];
        frames.clear();
        Ok(Self {
            stream,
            pending,
            bytes,
            frames,
        })
    }

    /// Reads all the socket has (edge-triggered: until a read comes back
    /// short or would block), then frames it.
    fn readable(&mut self, buffer: &mut [u8]) -> Result<()> {
        let mut arrived = None;
        loop {
            let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let mut into = [IoSliceMut::new(buffer)];
            let received = recvmsg::<()>(
                self.stream.as_raw_fd(),
                &mut into,
                Some(&mut control),
                MsgFlags::empty(),
            );
            match received {
                Ok(message) => {
                    let read = message.bytes;
                    ensure!(read > 0, "the server closed the socket");
                    for control in message.cmsgs()? {
                        if let ControlMessageOwned::ScmTimestampns(at) = control {
                            arrived =
                                DateTime::from_timestamp(at.tv_sec(), u32::try_from(at.tv_nsec())?);
                        }
                    }
                    self.pending.extend_from_slice(&buffer[..read]);
                    if read < buffer.len() {
                        break;
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.frame(arrived)
    }

    /// Keeps the text frames pending as read now, as arrived `arrived`
    /// (now, when the kernel did not say); answers pings.
    fn frame(&mut self, arrived: Option<DateTime<Utc>>) -> Result<()> {
        let read = Utc::now();
        let at = Came {
            arrived: arrived.unwrap_or(read),
            read,
        };
        let mut replies = Vec::new();
        let (bytes, frames) = (&mut self.bytes, &mut self.frames);
        frame_pending(&mut self.pending, &mut replies, |text| {
            bytes.extend_from_slice(text);
            frames.push((bytes.len(), at));
            true
        })?;
        // A few bytes to a socket that sends nothing else: never blocks.
        self.stream.write_all(&replies).context("answering a ping")
    }
}

/// The receiving thread's loop.
fn receive(
    mut poll: Poll,
    incoming: &mpsc::Receiver<Subscriber>,
    count: usize,
    done: &AtomicUsize,
) -> Result<Vec<Received>> {
    let mut sockets: Vec<Socket> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0; 4 * READ_CHUNK];
    let mut open = true;
    let mut complete = 0;
    // Counts `socket` once it has every frame.
    let mut finished = |socket: &Socket| {
        if socket.frames.len() >= count {
            complete += 1;
            done.store(complete, Ordering::Relaxed);
        }
    };
    while open || done.load(Ordering::Relaxed) < sockets.len() {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == WAKE {
                loop {
                    match incoming.try_recv() {
                        Ok(subscriber) => {
                            let mut socket = Socket::new(subscriber, count)?;
                            poll.registry().register(
                                &mut socket.stream,
                                Token(sockets.len()),
                                Interest::READABLE,
                            )?;
                            // What came with the handshake.
                            socket.frame(None)?;
                            finished(&socket);
                            sockets.push(socket);
                        }
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                continue;
            }
            let Some(socket) = sockets.get_mut(event.token().0) else {
                continue;
            };
            if socket.frames.len() >= count {
                continue;
            }
            socket.readable(&mut buffer)?;
            finished(socket);
        }
    }
    Ok(sockets.into_iter().map(Received).collect())
}

/// Frames what is `pending`, in order: answers WebSocket and protocol
/// pings onto `replies`, and hands every other text frame's payload to
/// `text` until it answers `false`; what was framed is dropped, the rest
/// stays. Fails on a close.
fn frame_pending(
    pending: &mut Vec<u8>,
    replies: &mut Vec<u8>,
    mut text: impl FnMut(&[u8]) -> bool,
) -> Result<()> {
    let mut framed = 0;
    let mut wanted = true;
    while wanted {
        let Some((opcode, payload)) = frame(&pending[framed..])? else {
            break;
        };
        let payload = framed + payload.start..framed + payload.end;
        framed = payload.end;
        let bytes = &pending[payload];
        match opcode {
            TEXT if bytes.starts_with(br#"{"type":"ping""#) => {
                masked(TEXT, br#"{"type":"pong"}"#, replies)?;
            }
            TEXT => wanted = text(bytes),
            PING => masked(PONG, bytes, replies)?,
            PONG => {}
            CLOSE => bail!(
                "closed by the server: {}",
                String::from_utf8_lossy(bytes.get(2..).unwrap_or_default())
            ),
            other => bail!("an unexpected frame (opcode {other})"),
        }
    }
    pending.drain(..framed);
    Ok(())
}

/// Appends one final, masked frame to `out`.
fn masked(opcode: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    const MASKED: u8 = 0x80;
    out.push(0x80 | opcode);
    let length = payload.len();
    if let Ok(short @ 0..=125) = u8::try_from(length) {
        out.push(MASKED | short);
    } else if let Ok(medium) = u16::try_from(length) {
        out.push(MASKED | 126);
        out.extend_from_slice(&medium.to_be_bytes());
    } else {
        out.push(MASKED | 127);
        out.extend_from_slice(&u64::try_from(length)?.to_be_bytes());
    }
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    Ok(())
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
