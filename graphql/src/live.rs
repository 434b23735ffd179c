//! Subscriptions fed by the process's pub/sub hub.
//!
//! Each starts with the current state from the database, then follows the
//! topic; a [`Delivery::Resync`] (slow subscriber, Redis reconnect) re-reads
//! the state, so a subscriber never silently misses a change.
//!
//! Also which subscription fields are snapshots and which are event logs:
//! what their messages are, which a transport may build on (sharing one
//! execution among subscribers); the resolvers never know how they are
//! served.

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
/// nothing by receiving only the latest message. A transport may share one
/// execution of these among subscribers that send the same operation as
/// the same viewer. Event-log subscriptions (each message a new fact,
/// replayed from a cursor) must never be listed here.
pub const SNAPSHOT_SUBSCRIPTIONS: &[&str] = &[
    "meUpdated",
    "walletUpdated",
    "eventUpdated",
    "eventCountdown",
];

/// A subscription field that is an event log. Each item is one new fact at
/// a position, and positions are consecutive integers from 1. The field
/// sends the items after its cursor argument (all of them when the cursor
/// is omitted or null), in position order, then every later one as it
/// comes, without a gap or a repeat.
///
/// What a transport may build on, without the resolver knowing: two
/// executions of one operation send the same item at the same position, so
/// subscribers may share one execution's items, each telling from the
/// positions where it is, and one that fell behind may catch up with an
/// execution of its own from its last position.
#[derive(Clone, Copy, Debug)]
pub struct LogSubscription {
    /// The field's name.
    pub field: &'static str,
    /// Its argument: the position the items start after.
    pub cursor: &'static str,
    /// The field of each item that holds its position.
    pub position: &'static str,
}

/// The event-log subscription fields.
pub const LOG_SUBSCRIPTIONS: &[LogSubscription] = &[LogSubscription {
    field: "winnerAnnounced",
    cursor: "after",
    position: "sequence",
}];
