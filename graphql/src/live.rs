//! Subscriptions fed by the process's pub/sub hub.
//!
//! Each starts with the current state from the database, then follows the
//! topic; a [`Delivery::Resync`] (slow subscriber, Redis reconnect) re-reads
//! the state, so a subscriber never silently misses a change.

use async_graphql::{Context, Result, Subscription};
use futures_util::{Stream, StreamExt, stream};
use giftdrop_domain::identity::{self, UserView};
use giftdrop_domain::pubsub::Delivery;
use giftdrop_domain::{DomainError, Services};

use crate::auth::{require_viewer, services};
use crate::error::Gql;
use crate::identity::User;

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
        let s: Services = services(ctx)?.clone();
        let id = viewer.user_id;
        let updates = s.hub.subscribe(&identity::user_topic(id)).await.gql()?;
        let current = identity::find_user(&s.db, id)
            .await
            .gql()?
            .ok_or(DomainError::Unauthenticated)
            .gql()?;
        let changes = updates.into_stream().filter_map(move |delivery| {
            let s = s.clone();
            async move {
                match delivery {
                    Delivery::Message(json) => serde_json::from_str::<UserView>(&json)
                        .inspect_err(
                            |e| tracing::error!(error = %e, "malformed user update on pub/sub"),
                        )
                        .ok(),
                    Delivery::Resync => identity::find_user(&s.db, id).await.ok().flatten(),
                }
            }
        });
        Ok(stream::once(async move { current })
            .chain(changes)
            .map(move |view| User::seen_by(view, Some(&viewer))))
    }
}
