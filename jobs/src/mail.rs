//! Mail transports: SMTP in production, one `.eml` file per message in
//! development and tests (SMTP is a third party we do not run).

use std::path::PathBuf;

use anyhow::Context;
use giftdrop_domain::jobs::SendEmail;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Sends one rendered email.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Delivers `email`; errors are retried by the job runner.
    async fn send(&self, email: &SendEmail) -> anyhow::Result<()>;
}

fn build(from: &Mailbox, email: &SendEmail) -> anyhow::Result<Message> {
    Message::builder()
        .from(from.clone())
        .to(email.to.parse().context("invalid recipient address")?)
        .subject(email.subject.clone())
        // Stable across re-deliveries, so mail systems can drop a duplicate.
        .message_id(Some(format!("<{}@giftdrop>", token(&email.dedupe_key))))
        .body(email.body.clone())
        .context("failed to build the message")
}

/// `dedupe_key` with every character but ASCII letters, digits and `-`
/// replaced by `_`: safe in a file name and in a Message-ID.
fn token(dedupe_key: &str) -> String {
    dedupe_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// SMTP delivery through lettre.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A mailer for `smtp[s]://user:pass@host:port`.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        Ok(Self {
            transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .context("SMTP_URL is not a valid SMTP URL")?
                .build(),
            from: from.parse().context("MAIL_FROM is not a valid mailbox")?,
        })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &SendEmail) -> anyhow::Result<()> {
        self.transport
            .send(build(&self.from, email)?)
            .await
            .context("SMTP delivery failed")?;
        Ok(())
    }
}

/// Writes each message to `{dir}/{dedupe_key}.eml`; a re-delivery rewrites
/// the same file, so it is idempotent by construction.
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl FileMailer {
    /// A mailer writing under `dir` (created on first send).
    pub fn new(dir: impl Into<PathBuf>, from: &str) -> anyhow::Result<Self> {
        Ok(Self {
            dir: dir.into(),
            from: from.parse().context("MAIL_FROM is not a valid mailbox")?,
        })
    }

    /// The file a message with `dedupe_key` is written to.
    pub fn path_of(&self, dedupe_key: &str) -> PathBuf {
        self.dir.join(format!("{}.eml", token(dedupe_key)))
    }
}

#[async_trait::async_trait]
impl Mailer for FileMailer {
    async fn send(&self, email: &SendEmail) -> anyhow::Result<()> {
        let message = build(&self.from, email)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .with_context(|| format!("failed to create mail directory {}", self.dir.display()))?;
        let path = self.path_of(&email.dedupe_key);
        tokio::fs::write(&path, message.formatted())
            .await
            .with_context(|| format!("failed to write {}", path.display()))?;
        tracing::info!(to = %email.to, subject = %email.subject, file = %path.display(), "email written to file");
        Ok(())
    }
}
