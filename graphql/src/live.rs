//! Subscriptions fed by the process's pub/sub hub.
//!
//! Each starts with the current state from the database, then follows the
//! topic; a [`Delivery::Resync`] (slow subscriber, Redis reconnect) re-reads
//! the state, so a subscriber never silently misses a change.

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{Context, Result, Subscription};
use futures_util::{Stream, StreamExt};
use giftdrop_domain::identity;
use giftdrop_domain::ledger::{self, WalletOwner};
use giftdrop_domain::{DomainError, Services, Viewer};

use crate::auth::{require_viewer, services};
use crate::error::Gql;
use crate::identity::User;
use crate::wallet::Wallet;

/// Live updates.
#[derive(Default)]
pub struct LiveSubscription;

#[Subscription]
impl LiveSubscription {
    /// The signed-in user now, then again after every change to their
    /// account (roles granted or revoked). Not in the base contract: front
    /// ends use it to refresh permissions without polling.
    async fn me_updated(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = User> + use<>> {
        let viewer = require_viewer(ctx)?.clone();
        let s = services(ctx)?;
        // Boxed: the subscribe and first read run once, and their futures
        // must not size the stream the execution keeps for its lifetime.
        Box::pin(me_updates(s, viewer)).await
    }

    /// The signed-in user's wallet now, then after every change.
    async fn wallet_updated(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Wallet> + use<>> {
        let owner = WalletOwner::User(require_viewer(ctx)?.user_id);
        let s = services(ctx)?;
        Box::pin(wallet_updates(s, owner)).await
    }
}

/// The stream of `meUpdated`. It holds only what it needs (the database
/// pool and the viewer), not a copy of every service: an idle
/// subscription's memory is what it keeps.
async fn me_updates(s: &Services, viewer: Viewer) -> Result<impl Stream<Item = User> + use<>> {
    let id = viewer.user_id;
    let updates = s.hub.subscribe(&identity::user_topic(id)).await.gql()?;
    let current = identity::find_user(&s.db, id)
        .await
        .gql()?
        .ok_or(DomainError::Unauthenticated)
        .gql()?;
    let db = s.db.clone();
    let reload = move || {
        let db = db.clone();
        async move { identity::find_user(&db, id).await }
    };
    Ok(updates
        .snapshots(current, reload)
        .map(move |view| User::seen_by(view, Some(&viewer))))
}

/// The stream of `walletUpdated`.
async fn wallet_updates(
    s: &Services,
    owner: WalletOwner,
) -> Result<impl Stream<Item = Wallet> + use<>> {
    let updates = s.hub.subscribe(&ledger::wallet_topic(owner)).await.gql()?;
    // Read from Postgres, not the cache: this is the baseline every
    // later message builds on.
    let current = ledger::wallet_of(&s.db, owner).await.gql()?;
    let db = s.db.clone();
    let reload = move || {
        let db = db.clone();
        async move { ledger::wallet_of(&db, owner).await.map(Some) }
    };
    // Messages relayed after the first read may be older than it.
    let mut shown = -1;
    Ok(updates
        .snapshots(current, reload)
        .filter(move |wallet| {
            let newer = wallet.version > shown;
            if newer {
                shown = wallet.version;
            }
            std::future::ready(newer)
        })
        .map(Wallet))
}

/// Subscription fields whose every message is the whole current state, so a
/// subscriber that joins late, or skips ahead after falling behind, loses
/// nothing by receiving only the latest message. Subscribers that send the
/// same operation as the same viewer may share one execution of these.
/// Event-log subscriptions (each message a new fact, replayed from a cursor)
/// must never be listed here.
pub const SNAPSHOT_SUBSCRIPTIONS: &[&str] = &[
    "meUpdated",
    "walletUpdated",
    "eventUpdated",
    "eventCountdown",
];

/// True when the operation `document` runs (with `operation_name`) is a
/// subscription selecting only [`SNAPSHOT_SUBSCRIPTIONS`] fields at its
/// root. Anything unusual (fragments at the root, no such operation)
/// answers false: the caller then executes it on its own, which is always
/// correct.
pub fn is_snapshot_subscription(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) -> bool {
    root_fields(document, operation_name).is_some_and(|fields| {
        !fields.is_empty() && fields.iter().all(|f| SNAPSHOT_SUBSCRIPTIONS.contains(f))
    })
}

/// Subscription fields that are an event log: each message is one new fact
/// at a position (its `sequence`), the field replays from a cursor, then
/// goes live, and its resolver honours a [`LogTap`]. Subscribers that send
/// the same operation as the same viewer share one live execution, each
/// replaying on its own (see the WebSocket layer).
pub const LOG_SUBSCRIPTIONS: &[&str] = &["winnerAnnounced"];

/// True when the operation is a subscription of exactly one root field, a
/// [`LOG_SUBSCRIPTIONS`] one (the tap follows one stream of positions).
pub fn is_log_subscription(document: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    root_fields(document, operation_name).is_some_and(
        |fields| matches!(fields.as_slice(), [field] if LOG_SUBSCRIPTIONS.contains(field)),
    )
}

/// The names of the root fields of the subscription operation the request
/// runs; `None` for any other operation, or a root with fragments.
fn root_fields<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<Vec<&'a str>> {
    let operation = crate::operation::selected(document, operation_name)?;
    if operation.node.ty != OperationType::Subscription {
        return None;
    }
    operation
        .node
        .selection_set
        .node
        .items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => Some(field.node.name.node.as_str()),
            Selection::FragmentSpread(_) | Selection::InlineFragment(_) => None,
        })
        .collect()
}

/// How one execution of a log subscription runs, chosen by the layer that
/// shares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogMode {
    /// Live only: skip the replay and start after the newest position now
    /// stored, which the tap records as the start.
    Live,
    /// Replay only: the stored items after `after` (the request's own
    /// cursor when `None`), then complete; the tap records the cursor used
    /// as the start.
    Replay {
        /// Replaces the request's `after` argument.
        after: Option<i32>,
    },
}

/// Attached to the request data of a shared log execution: the mode the
/// resolver runs in, and what it reports back, namely where its stream
/// starts and the position of every item, in the order the execution
/// turns them into responses (one response per item).
#[derive(Debug)]
pub struct LogTap {
    mode: LogMode,
    state: std::sync::Mutex<TapState>,
}

#[derive(Debug, Default)]
struct TapState {
    start: Option<i32>,
    positions: std::collections::VecDeque<i32>,
}

impl LogTap {
    /// A tap for an execution in `mode`.
    pub fn new(mode: LogMode) -> Self {
        Self {
            mode,
            state: std::sync::Mutex::default(),
        }
    }

    /// The mode the resolver must run in.
    pub fn mode(&self) -> LogMode {
        self.mode
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TapState> {
        // Each critical section is one assignment or push: nothing half-done
        // survives a panic.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The resolver: the stream starts after `position`.
    pub fn start(&self, position: i32) {
        self.state().start = Some(position);
    }

    /// The resolver: the next item is at `position`.
    pub fn push(&self, position: i32) {
        self.state().positions.push_back(position);
    }

    /// The position the stream starts after, once the resolver set it.
    pub fn started(&self) -> Option<i32> {
        self.state().start
    }

    /// The position of the response just received; `None` for a response
    /// that is not an item (a failure before the stream started).
    pub fn pop(&self) -> Option<i32> {
        self.state().positions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    /// Parses `query` and asks; an unparseable query is never shareable.
    fn is_snapshot_subscription(query: &str, operation_name: Option<&str>) -> bool {
        async_graphql::parser::parse_query(query)
            .is_ok_and(|document| super::is_snapshot_subscription(&document, operation_name))
    }

    #[test]
    fn only_snapshot_fields_at_the_root_are_shareable() {
        assert!(is_snapshot_subscription(
            "subscription { meUpdated { id } }",
            None
        ));
        assert!(is_snapshot_subscription(
            "subscription A { meUpdated { id } } subscription B { x: meUpdated { roles } }",
            Some("B")
        ));
        assert!(!is_snapshot_subscription(
            "subscription A { meUpdated { id } } subscription B { meUpdated { id } }",
            None
        ));
        assert!(!is_snapshot_subscription(
            "subscription { __typename }",
            None
        ));
        assert!(!is_snapshot_subscription(
            "subscription { ... on Subscription { meUpdated { id } } }",
            None
        ));
        assert!(!is_snapshot_subscription("subscription {", None));
        assert!(!is_snapshot_subscription(
            "query { meUpdated { id } }",
            None
        ));
        assert!(is_snapshot_subscription(
            "subscription Only { meUpdated { id } }",
            None
        ));
        assert!(!is_snapshot_subscription(
            "subscription A { meUpdated { id } }",
            Some("B")
        ));
    }

    fn is_log_subscription(query: &str) -> bool {
        async_graphql::parser::parse_query(query)
            .is_ok_and(|document| super::is_log_subscription(&document, None))
    }

    #[test]
    fn a_log_subscription_is_one_log_field_alone() {
        assert!(is_log_subscription(
            r#"subscription { winnerAnnounced(eventId: "x") { sequence } }"#
        ));
        assert!(is_log_subscription(
            r#"subscription W($e: ID!) { w: winnerAnnounced(eventId: $e, after: 3) { id } }"#
        ));
        assert!(!is_log_subscription(
            r#"subscription { a: winnerAnnounced(eventId: "x") { id } b: winnerAnnounced(eventId: "y") { id } }"#
        ));
        assert!(!is_log_subscription(
            r#"subscription { winnerAnnounced(eventId: "x") { id } meUpdated { id } }"#
        ));
        assert!(!is_log_subscription("subscription { meUpdated { id } }"));
        assert!(!is_log_subscription(
            r#"subscription { ... on Subscription { winnerAnnounced(eventId: "x") { id } } }"#
        ));
        assert!(!is_log_subscription(
            r#"query { winnerAnnounced(eventId: "x") { id } }"#
        ));
    }
}
