//! A TCP proxy in front of the real Redis, for outage tests.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::redis_url;

/// A TCP proxy in front of the real Redis that can be cut and restored,
/// standing in for a Redis outage.
pub struct RedisProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl RedisProxy {
    /// Listens on `addr` (any free port when `None`).
    pub async fn start(addr: Option<SocketAddr>) -> Self {
        let listener =
            TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr")))
                .await
                .expect("proxy binds");
        let addr = listener.local_addr().expect("addr");
        let upstream = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            addr,
            task: Some(task),
        }
    }

    /// Closes the listener and every proxied connection.
    pub fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
