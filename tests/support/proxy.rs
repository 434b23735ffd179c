//! A TCP proxy in front of the real Redis, for outage tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::redis_url;

/// A TCP proxy in front of the real Redis that can be cut and restored,
/// standing in for a Redis outage, or deafened: commands still reach
/// Redis and run, but their replies are lost on the way back.
pub struct RedisProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    deaf: Arc<AtomicBool>,
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
        let deaf = Arc::new(AtomicBool::new(false));
        let deafened = deaf.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let deaf = deafened.clone();
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let (mut from_client, mut to_client) = client.into_split();
                        let (mut from_server, mut to_server) = server.into_split();
                        let requests = async {
                            tokio::io::copy(&mut from_client, &mut to_server).await?;
                            to_server.shutdown().await
                        };
                        let replies = async {
                            let mut buf = vec![0u8; 16 * 1024];
                            loop {
                                let n = from_server.read(&mut buf).await?;
                                if n == 0 {
                                    return Ok::<_, std::io::Error>(());
                                }
                                if !deaf.load(Ordering::SeqCst) {
                                    to_client.write_all(&buf[..n]).await?;
                                }
                            }
                        };
                        let _ = tokio::join!(requests, replies);
                    }
                });
            }
        });
        Self {
            addr,
            task: Some(task),
            deaf,
        }
    }

    /// From now on, replies from Redis are dropped: every command still
    /// runs, and its caller waits in vain.
    pub fn deafen(&self) {
        self.deaf.store(true, Ordering::SeqCst);
    }

    /// Closes the listener and every proxied connection.
    pub fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
