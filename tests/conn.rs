//! Connections: slow clients are cut off at the header deadline, and at
//! most `HTTP_MAX_CONNECTIONS` are open at once, WebSockets included.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::AppOptions;
use crate::support::ws::WsClient;

/// Generous: these tests wait for the server to act, never race it.
const PATIENCE: Duration = Duration::from_secs(30);

/// A request for the liveness probe, keeping the connection open.
const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: giftdrop.test\r\n\r\n";

/// Reads one whole response (headers, and a body as long as its
/// `Content-Length`) off `tcp`; returns its status line.
async fn response(tcp: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return text.lines().next().unwrap_or_default().to_owned();
            }
        }
        let read = tokio::time::timeout(PATIENCE, tcp.read(&mut chunk))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(read > 0, "the connection closed before a whole response");
        bytes.extend_from_slice(&chunk[..read]);
    }
}

/// Connects and completes one request on a connection kept open.
async fn served(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    tcp.write_all(LIVE).await.expect("write");
    assert_eq!(response(&mut tcp).await, "HTTP/1.1 200 OK");
    tcp
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_client_that_stops_halfway_through_its_header_is_disconnected() {
    let app = AppOptions::new()
        .await
        .quiet()
        .config(|c| c.http_header_timeout_ms = 300)
        .spawn()
        .await;
    let addr = app.addr.expect("serving");
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(addr).await.expect("connects");
        tcp.write_all(b"GET /health/live HTTP/1.1\r\nHost: giftd")
            .await
            .expect("write");
        slow.push(tcp);
    }
    // So is a connection that sent nothing, or went idle after a request.
    slow.push(TcpStream::connect(addr).await.expect("connects"));
    slow.push(served(addr).await);
    for mut tcp in slow {
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut rest)).await;
        // End of stream or a reset: either way, closed.
        assert!(
            ended.is_ok(),
            "the server closes a connection whose header never comes"
        );
    }
    // Whole requests are served as before.
    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("request");
    assert_eq!(live.status(), 200);
}

#[tokio::test(crate = "crate::support::harness")]
async fn connections_over_the_cap_wait_until_one_closes() {
    let app = AppOptions::new()
        .await
        .quiet()
        .config(|c| c.http_max_connections = 3)
        .spawn()
        .await;
    let addr = app.addr.expect("serving");
    // Two keep-alive connections and a WebSocket hold the three permits.
    let first = served(addr).await;
    let _second = served(addr).await;
    let mut socket = WsClient::ready(&app.ws_url(), None).await;
    socket.subscribe("1", "{ platform { currency } }").await;
    assert_eq!(socket.next_of("next", "1").await["type"], "next");

    let mut waiting = TcpStream::connect(addr)
        .await
        .expect("the kernel queues it");
    waiting.write_all(LIVE).await.expect("write");
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut byte))
            .await
            .is_err(),
        "no fourth connection is served while three are open"
    );
    drop(first);
    assert_eq!(response(&mut waiting).await, "HTTP/1.1 200 OK");

    // A WebSocket holds its permit until it closes.
    let mut last = TcpStream::connect(addr)
        .await
        .expect("the kernel queues it");
    last.write_all(LIVE).await.expect("write");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), last.read(&mut byte))
            .await
            .is_err(),
        "the WebSocket still counts"
    );
    drop(socket);
    assert_eq!(response(&mut last).await, "HTTP/1.1 200 OK");
}

#[tokio::test(crate = "crate::support::harness")]
async fn shutdown_finishes_the_request_in_flight_and_closes_websockets() {
    let mut app = AppOptions::new().await.quiet().spawn().await;
    let addr = app.addr.expect("serving");
    let mut socket = WsClient::ready(&app.ws_url(), None).await;
    let body = br#"{"query":"{ platform { currency } }"}"#;
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: giftdrop.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    // The server asks for the body once the handler reads it: in flight.
    assert_eq!(response(&mut tcp).await, "HTTP/1.1 100 Continue");

    let stopped = tokio::spawn(async move { app.stop().await });
    assert_eq!(
        socket.closed().await,
        1001,
        "sockets are told the server goes away"
    );
    tcp.write_all(body).await.expect("write");
    assert_eq!(response(&mut tcp).await, "HTTP/1.1 200 OK");
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the connection closes after its request");
    tokio::time::timeout(PATIENCE, stopped)
        .await
        .expect("the app stops")
        .expect("no panic")
        .expect("a clean stop");
}
