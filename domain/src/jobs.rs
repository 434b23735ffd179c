//! Payloads of background jobs, shared by the use cases that enqueue them
//! (through the outbox) and the `jobs` crate that runs them.

use serde::{Deserialize, Serialize};

/// A job payload type with its stable queue name.
pub trait JobPayload: Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static {
    /// Stable name of the job kind; also names its queue (see `Namespace::queue`).
    const KIND: &'static str;
}

/// An email to send, rendered by the use case that caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Business key that makes re-delivery harmless, e.g. `welcome:{user_id}`.
    pub dedupe_key: String,
}

impl JobPayload for SendEmail {
    const KIND: &'static str = "send_email";
}
