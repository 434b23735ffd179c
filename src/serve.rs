//! The HTTP/1.1 server loop: accepting connections under a cap, a deadline
//! on request headers, WebSocket upgrades, and graceful shutdown.
//!
//! `axum::serve` offers no header-read timeout and no connection cap, so a
//! client that sends half a request header and stops held its socket (and a
//! file descriptor) forever: a few hundred of them starve the process.
//! Here hyper's HTTP/1.1 connection runs with a timer, so a request whose
//! header is not complete within the deadline (an idle keep-alive
//! connection too) is closed; and every connection, upgraded WebSockets
//! included, holds a permit of a semaphore sized by `HTTP_MAX_CONNECTIONS`:
//! at the cap, the loop stops accepting, new connections wait in the
//! kernel's backlog and are served as soon as one closes. A request whose
//! header is complete but whose body trickles is bounded by the router's
//! request timeout (see [`crate::http::router`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// How the server treats connections.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Most connections open at once, WebSockets included.
    pub max_connections: usize,
    /// Time a client has to send a whole request header (and how long an
    /// idle keep-alive connection stays open).
    pub header_timeout: Duration,
}

/// At most one warning this often while connections wait at the cap.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown`; then stops accepting,
/// lets in-flight requests finish, and returns once every HTTP connection
/// has closed (upgraded WebSockets close on the same token, by themselves).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    // Every connection task holds a receiver; the loop waits for the last.
    let (open_tx, open_rx) = watch::channel(());
    let mut last_warning: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            permit = permit(&permits, &mut last_warning) => permit,
            () = shutdown.cancelled() => break,
        };
        // The semaphore is never closed.
        let Some(permit) = permit else { break };
        let (tcp, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = shutdown.cancelled() => break,
        };
        // No Nagle delay: a response or a batch of subscription frames is
        // written whole, and must leave at once.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let io = TokioIo::new(Counted::new(tcp, permit));
        tokio::spawn(connection(
            builder.clone(),
            io,
            peer,
            router.clone(),
            shutdown.clone(),
            open_rx.clone(),
        ));
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// A connection permit, waiting for one (and saying so, now and then)
/// when every one is taken.
async fn permit(
    permits: &Arc<Semaphore>,
    last_warning: &mut Option<Instant>,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = Arc::clone(permits).try_acquire_owned() {
        return Some(permit);
    }
    if last_warning.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
        *last_warning = Some(Instant::now());
        tracing::warn!("HTTP_MAX_CONNECTIONS connections are open: new ones wait until one closes");
    }
    metrics::counter!("giftdrop_http_connection_cap_reached_total").increment(1);
    Arc::clone(permits).acquire_owned().await.ok()
}

/// The next connection. A failure that concerns one connection is skipped;
/// any other (out of file descriptors, most likely) is logged and retried
/// after a second, as `axum::serve` does.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                tracing::error!(error = %err, "could not accept a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it closes, is upgraded, or shuts down
/// gracefully (in-flight requests finish, keep-alive ends).
async fn connection(
    builder: http1::Builder,
    io: TokioIo<Counted>,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    _open: watch::Receiver<()>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return log_end(result),
        () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    log_end(conn.await);
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        // A client that went away or timed out its header: nothing to fix.
        tracing::debug!(error = %err, "HTTP connection ended with an error");
    }
}

/// A TCP connection that holds its permit and counts itself in
/// `giftdrop_http_connections` for as long as it is open, through an
/// upgrade to a WebSocket.
struct Counted {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Counted {
    fn new(tcp: TcpStream, permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!("giftdrop_http_connections").increment(1.0);
        Self {
            tcp,
            _permit: permit,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::gauge!("giftdrop_http_connections").decrement(1.0);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
