//! Answers of event pages kept while the events they read stand.
//!
//! A query whose answer is a function of the viewer and of the `version`s
//! of the events it reads ([`versioned`]: `event(id:)` with its prizes,
//! winners and host, nothing viewer-specific beyond name masking) is
//! answered from memory when the versions it was answered at are still the
//! versions in Postgres. Every request reads those versions (one
//! statement, [`events::versions`]) before it is answered, so a read that
//! starts after a change commits (whose transaction raised the version)
//! never gets an answer from before it, on this instance or any other.
//! A query of the platform's settings alone reads no version: its answer
//! stands for the life of the process.
//!
//! An answer is kept under the versions read *before* its execution began:
//! the execution sees those versions' state or a newer one, so whoever
//! later reads the same versions gets nothing older than what they would
//! have read themselves. The key is the coalescing key ([`Query`]): the
//! viewer with their roles, the document, the operation and the variables.
//! Answers with errors, and answers about ids that are no event's, are
//! never kept.

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;
use giftdrop_domain::giveaway::events;
use giftdrop_domain::memo::Remembered;
use giftdrop_graphql::versioned;
use metrics::Counter;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::http::queries::{Answer, Query};

/// The `version` of each event a query reads that exists, by id.
pub type Versions = Vec<(Uuid, i32)>;

/// Kept answers of event pages, by query.
pub struct Pages {
    kept: Remembered<Query, Arc<Page>>,
    /// `giftdrop_page_cache_total{outcome="hit"}`, registered once.
    hits: Counter,
    /// `giftdrop_page_cache_total{outcome="miss"}`.
    misses: Counter,
}

/// One kept answer and the versions it was answered at.
struct Page {
    versions: Versions,
    answer: Arc<Answer>,
}

impl Default for Pages {
    /// Empty; its counters are registered with the process's recorder,
    /// which `app::start` installs before it builds any state.
    fn default() -> Self {
        Self {
            kept: Remembered::new(Self::CAPACITY),
            hits: metrics::counter!("giftdrop_page_cache_total", "outcome" => "hit"),
            misses: metrics::counter!("giftdrop_page_cache_total", "outcome" => "miss"),
        }
    }
}

impl Pages {
    /// Most answers kept (with [`Self::MAX_BODY`], at most 128 MiB).
    const CAPACITY: usize = 2_000;
    /// Largest answer kept: an event of about 300 winners.
    const MAX_BODY: usize = 64 * 1024;

    /// The events `request` (of `document`) reads when its answer may be
    /// kept, and their versions now; `None` when it may not, when one of
    /// them does not exist, or when the versions could not be read (the
    /// execution then runs and reports what is wrong).
    pub async fn versions(
        db: &DatabaseConnection,
        request: &async_graphql::Request,
        document: Option<&ExecutableDocument>,
    ) -> Option<Versions> {
        let reads = versioned::event_reads(document?, request.operation_name.as_deref())?;
        let ids = reads.ids(&request.variables)?;
        if ids.is_empty() {
            return Some(Versions::new());
        }
        // Boxed: a query of the settings alone reads nothing (see
        // `graphql::execute`).
        match Box::pin(events::versions(db, &ids)).await {
            // An unknown id is never kept: answering it costs one
            // statement, and keeping it would let made-up ids crowd the
            // real pages out.
            Ok(versions) => (versions.len() == ids.len()).then_some(versions),
            Err(error) => {
                tracing::debug!(%error, "event versions unread; the page runs uncached");
                None
            }
        }
    }

    /// The answer kept for `key` at exactly `versions`.
    pub fn get(&self, key: &Query, versions: &Versions) -> Option<Arc<Answer>> {
        let page = self.kept.get(key).filter(|page| page.versions == *versions);
        let outcome = if page.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        outcome.increment(1);
        page.map(|page| Arc::clone(&page.answer))
    }

    /// Keeps `answer` for `key`, answered at `versions` or later, unless it
    /// has errors or is too large.
    pub fn keep(&self, key: Query, versions: Versions, answer: &Arc<Answer>) {
        if answer.errors || answer.body.len() > Self::MAX_BODY {
            return;
        }
        let page = Page {
            versions,
            answer: Arc::clone(answer),
        };
        self.kept.insert(key, Arc::new(page));
    }
}
