//! Redis key naming: every key, channel and queue name is prefixed with the
//! process's `REDIS_NAMESPACE`, so several deployments (or parallel tests)
//! can share one Redis without seeing each other.

use std::sync::Arc;

/// The `REDIS_NAMESPACE` prefix, applied to every Redis name the app uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace(Arc<str>);

impl Namespace {
    /// Wraps a prefix such as `giftdrop:` (used verbatim, so include the separator).
    pub fn new(prefix: impl Into<Arc<str>>) -> Self {
        Self(prefix.into())
    }

    /// The raw prefix.
    pub fn prefix(&self) -> &str {
        &self.0
    }

    /// `name` with the namespace prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }

    /// The pub/sub channel for a topic such as `user:{id}`.
    pub fn channel(&self, topic: &str) -> String {
        format!("{}ch:{topic}", self.0)
    }

    /// The apalis queue name for a job kind.
    pub fn queue(&self, kind: &str) -> String {
        format!("{}jobs:{kind}", self.0)
    }
}
