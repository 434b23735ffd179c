//! The task that serves one connection: it waits for whatever comes first
//! (a client message, a subscription's frame, a ping due, a deadline, an
//! account change, shutdown) and hands it to the [`Session`]; it owns the
//! timers (connection_init's deadline, pings) and every write.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::protocol::Close;
use super::session::Session;
use super::socket::{self, Gone, ReadWake, Socket};
use crate::http::fanout::{Frame, Wire};

/// Most pieces (a frame, or a shared run of them) gathered for one write:
/// what a socket behind by a burst (a draw's hundred winners) has waiting
/// goes in one write.
const BATCH: usize = 512;

/// What the connection's task was woken for.
enum Event {
    Shutdown,
    /// No connection_init in time, or, once acknowledged, the token expired.
    Deadline,
    /// The account may have changed.
    Account,
    Ping,
    Frame(Arc<str>, Frame),
    Incoming(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
}

/// Serves the connection until it closes. Not an `async fn`: that keeps a
/// second copy of its arguments for as long as it runs, in every idle
/// socket's task.
pub(super) fn run(mut session: Session, mut socket: Socket) -> impl Future<Output = ()> + Send {
    metrics::gauge!("giftdrop_ws_connections").increment(1.0);
    async move {
        // Boxed: connection_init's deadline, then the token's expiry (none
        // for an anonymous connection).
        let init_timeout = session.server().settings.init_timeout;
        let mut deadline = Some(Box::pin(tokio::time::sleep(init_timeout)));
        let mut acked = false;
        let ping_every = session.server().settings.ping_every;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_seen = Instant::now();
        // Registered once for the whole connection, not on every turn.
        let shutdown = session.server().shutdown.clone();
        let mut shutdown = std::pin::pin!(shutdown.cancelled());
        let read_wake = Arc::new(ReadWake::new());
        let read_waker = Waker::from(Arc::clone(&read_wake));
        // Whether frames are looked at first: not right after a batch, so
        // a busy feed cannot starve the client's messages and pings.
        let mut frames_first = true;
        let close: Result<Option<Close>, Gone> = loop {
            if !acked && session.acked() {
                acked = true;
                deadline = session
                    .expires_in()
                    .map(|left| Box::pin(tokio::time::sleep(left)));
            }
            let event = poll_fn(|cx| {
                if frames_first && let Some((id, frame)) = session.poll_frame(cx) {
                    return Poll::Ready(Event::Frame(id, frame));
                }
                read_wake.task.register(cx.waker());
                if read_wake.take()
                    && let Poll::Ready(message) =
                        socket.poll_next_unpin(&mut Context::from_waker(&read_waker))
                {
                    read_wake.again();
                    return Poll::Ready(Event::Incoming(message));
                }
                if ping.poll_tick(cx).is_ready() {
                    return Poll::Ready(Event::Ping);
                }
                if shutdown.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Shutdown);
                }
                if let Some(deadline) = deadline.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Event::Deadline);
                }
                if session.poll_account(cx).is_ready() {
                    return Poll::Ready(Event::Account);
                }
                if !frames_first && let Some((id, frame)) = session.poll_frame(cx) {
                    return Poll::Ready(Event::Frame(id, frame));
                }
                frames_first = true;
                Poll::Pending
            })
            .await;
            match event {
                Event::Shutdown => break Ok(Some(Close::SHUTDOWN)),
                Event::Deadline => break Ok(Some(session.on_deadline())),
                Event::Account => match Box::pin(session.on_account_change()).await {
                    None => {}
                    close => break Ok(close),
                },
                Event::Ping => {
                    if last_seen.elapsed() > ping_every * 2 {
                        break Ok(Some(Close::SILENT));
                    }
                    if let Err(gone) = keep_alive(session.keep_alive(), &mut socket).await {
                        break Err(gone);
                    }
                }
                Event::Frame(id, frame) => {
                    frames_first = false;
                    // Boxed, like message handling: inline, the batch's
                    // writes would size every idle socket's task.
                    if let Err(gone) = Box::pin(forward(&mut session, &mut socket, id, frame)).await
                    {
                        break Err(gone);
                    }
                }
                Event::Incoming(message) => {
                    last_seen = Instant::now();
                    let message = match message {
                        None | Some(Err(_) | Ok(Message::Close(_))) => break Ok(None),
                        Some(Ok(message)) => message,
                    };
                    // Boxed: handling a message (credentials lookups,
                    // starting an execution) takes large futures, and
                    // inline they would size every idle socket's task.
                    match Box::pin(session.on_message(&mut socket, &message)).await {
                        Ok(None) => {}
                        other => break other,
                    }
                }
            }
        };
        if let Ok(Some(close)) = close {
            socket::close(&mut socket, close).await;
        }
        metrics::gauge!("giftdrop_ws_subscriptions").decrement(session.running() as f64);
        metrics::gauge!("giftdrop_ws_connections").decrement(1.0);
    }
}

/// The server's ping: a WebSocket ping frame, which every client (browsers
/// included) answers, keeping the connection seen; then the protocol-level
/// `message` graphql-transport-ws clients expect.
async fn keep_alive(message: Option<&'static str>, socket: &mut Socket) -> Result<(), Gone> {
    socket::ping(socket).await?;
    match message {
        Some(message) => socket::send(socket, message).await,
        None => Ok(()),
    }
}

/// Writes `frame`, then every other frame already waiting on the
/// connection's subscriptions (up to [`BATCH`]), in one vectored write: a
/// burst of winners reaches a socket in one write, not one each.
async fn forward(
    session: &mut Session,
    socket: &mut Socket,
    id: Arc<str>,
    frame: Frame,
) -> Result<(), Gone> {
    let mut wire: Vec<Wire> = Vec::with_capacity(4);
    session.frames(&mut wire, &id, frame);
    while wire.len() < BATCH {
        let Some((id, frame)) = poll_fn(|cx| Poll::Ready(session.poll_frame(cx))).await else {
            break;
        };
        session.frames(&mut wire, &id, frame);
    }
    socket::write_frames(socket, wire).await
}
