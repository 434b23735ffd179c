//! The runtime WebSocket connections run on.

/// The runtime WebSocket connections run on (their shared executions run
/// on the requests' runtime, see [`Feeds`](crate::http::fanout::Feeds)),
/// apart from requests, jobs and the outbox relay: a bulkhead. Announcing
/// one winner to 5,000 sockets queues 5,000 tasks; on one runtime, every
/// step of the next attempt and of the relay that announces it would wait
/// behind all of them. On their own threads, the kernel shares the cores
/// between the two, and a request is never queued behind a fan-out.
pub struct LiveRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl LiveRuntime {
    /// A runtime with one worker per core.
    pub fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("giftdrop-live")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Spawns onto it.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}

impl Drop for LiveRuntime {
    fn drop(&mut self) {
        // Dropped from async code (the process's end, a test's app): never
        // block there. Sockets were closed by the shutdown token already.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
