//! One upgraded socket: small buffers, a read side polled only when it
//! has something, and shared frames written straight to the kernel.
//!
//! Subscription messages skip tungstenite's framing: a server's frames are
//! not masked, so the frame of one winner under one subscription id is the
//! same bytes for every socket, built once
//! ([`Payload::into_wire`](crate::http::fanout::Payload::into_wire)); each
//! socket hands the kernel those shared bytes, a batch of them in one
//! vectored write. tungstenite reads the client's frames and writes the
//! rest (acknowledgements, pings, closes), and its buffer is always flushed
//! before shared bytes go out, so frames never interleave.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Wake;

use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::task::AtomicWaker;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::protocol::Close;
use crate::http::fanout::Wire;

/// Read buffer: clients send a few small messages (init, subscribe,
/// pongs), and every idle socket holds this much; a larger message is
/// read in several chunks into a buffer that grows to fit it.
const READ_BUFFER: usize = 1024;
/// Writes are gathered up to this much before they reach the socket.
const WRITE_BUFFER: usize = 4 * 1024;
/// Largest message a client may send.
const MAX_MESSAGE: usize = 64 * 1024;
/// Most slices one vectored write takes (Linux's `UIO_MAXIOV`).
const IOVECS: usize = 1024;

/// An upgraded connection, speaking WebSocket.
pub(super) type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A broken socket: stop serving it.
pub(super) struct Gone;

/// The WebSocket side of an upgraded connection, with small buffers.
pub(super) async fn open(upgraded: Upgraded) -> Socket {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(4 * MAX_MESSAGE)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await
}

/// Sends one text message.
pub(super) async fn send(socket: &mut Socket, text: impl Into<Utf8Bytes>) -> Result<(), Gone> {
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| Gone)
}

/// Sends a WebSocket ping, which every client (browsers included) answers.
pub(super) async fn ping(socket: &mut Socket) -> Result<(), Gone> {
    socket
        .send(Message::Ping(Bytes::new()))
        .await
        .map_err(|_| Gone)
}

/// Closes with `close`'s code and reason.
pub(super) async fn close(socket: &mut Socket, close: Close) {
    let frame = CloseFrame {
        code: CloseCode::from(close.code),
        reason: close.reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Writes whole frames, already encoded, straight to the socket, in as few
/// vectored writes as it takes. Whatever tungstenite still holds goes first,
/// so its frames and these never interleave.
pub(super) async fn write_frames(socket: &mut Socket, frames: Vec<Wire>) -> Result<(), Gone> {
    socket.flush().await.map_err(|_| Gone)?;
    let tcp = socket.get_mut();
    // The first frame not wholly written, and how much of it was.
    let (mut first, mut offset) = (0, 0);
    let mut slices = Vec::with_capacity(frames.len().min(IOVECS));
    while let Some(rest) = frames.get(first..).filter(|rest| !rest.is_empty()) {
        slices.clear();
        slices.extend(rest.iter().take(IOVECS).enumerate().map(|(n, frame)| {
            let bytes = frame.bytes();
            std::io::IoSlice::new(if n == 0 {
                bytes.get(offset..).unwrap_or_default()
            } else {
                bytes
            })
        }));
        let mut written = tcp.write_vectored(&slices).await.map_err(|_| Gone)?;
        if written == 0 {
            return Err(Gone);
        }
        for frame in rest {
            let left = frame.bytes().len() - offset;
            if written < left {
                offset += written;
                break;
            }
            written -= left;
            offset = 0;
            first += 1;
        }
    }
    Ok(())
}

/// The waker the socket's read side is polled with: it wakes the task and
/// notes that the socket has something to read. A socket is mostly woken
/// to write a frame, and reading it then would cost a buffer fill and a
/// readiness check for nothing, so the task polls it only when this says.
pub(super) struct ReadWake {
    ready: AtomicBool,
    pub(super) task: AtomicWaker,
}

impl ReadWake {
    /// Ready to read at first.
    pub(super) fn new() -> Self {
        Self {
            ready: AtomicBool::new(true),
            task: AtomicWaker::new(),
        }
    }

    /// Whether the socket may have something to read; clears it.
    pub(super) fn take(&self) -> bool {
        self.ready.swap(false, Ordering::AcqRel)
    }

    /// Notes that more may be buffered: read again next turn.
    pub(super) fn again(&self) {
        self.ready.store(true, Ordering::Release);
    }
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}
