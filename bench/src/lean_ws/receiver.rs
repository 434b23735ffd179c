//! The one thread that receives on every subscriber (see the module's
//! documentation): it reads whole frames, notes when each came, and
//! answers pings.

use std::io::{IoSliceMut, Write};
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

use super::framing::frame_pending;
use super::subscriber::{READ_CHUNK, Subscriber};

/// Room kept per expected text frame (a winner's is about 120 bytes).
const FRAME_ROOM: usize = 192;

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
