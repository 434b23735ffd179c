//! A WebSocket connection's account, kept current while the socket is open.
//!
//! connection_init's token is checked once, but a socket lives for hours,
//! and a role change takes effect on the next request (FLOWS.md §2):
//! - the token bounds the connection: when it stops being accepted, the
//!   connection closes with 4403, as a bad token at init does, and a
//!   subscribe that arrives then is refused the same way;
//! - every subscribe runs as the account is now: its roles are read again
//!   (one indexed read), so a revoked role no longer authorizes it;
//! - an admin's running subscriptions may show what only admins see (other
//!   hosts' DRAFT events), so an admin's connection follows the account's
//!   change topic and closes with 4403 once ADMIN is revoked. No other
//!   role widens what a subscription shows (a host follows its own drafts
//!   as their owner), so other connections pay nothing for this.

use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use giftdrop_domain::identity::{self, user_topic};
use giftdrop_domain::pubsub::Delivery;
use giftdrop_domain::{DomainError, Services, Viewer};
use giftdrop_graphql::auth::Auth;
use uuid::Uuid;

use crate::http::auth::resolve_auth;

/// The signed-in account of a connection.
pub(super) struct Account {
    user_id: Uuid,
    /// When the token stops being accepted.
    valid_until: DateTime<Utc>,
    /// An admin's account changes (see the module doc); `None` otherwise.
    changes: Option<BoxStream<'static, Delivery>>,
    /// The account may have changed before `changes` was listening: read
    /// it once more.
    recheck: bool,
}

/// Who connection_init's `authorization` value signs in, and the account
/// to keep current when it is a user.
pub(super) async fn sign_in(
    services: &Services,
    authorization: Option<&str>,
) -> Result<(Auth, Option<Account>), DomainError> {
    let auth = resolve_auth(services, authorization).await?;
    let Auth::User(viewer) = &auth else {
        return Ok((auth, None));
    };
    // The token was just accepted; it can only have expired since.
    let Some(verified) = authorization.and_then(|h| services.tokens.check_bearer(h).ok()) else {
        return Ok((Auth::Invalid, None));
    };
    let mut account = Account {
        user_id: verified.user_id,
        valid_until: verified.valid_until,
        changes: None,
        recheck: false,
    };
    account.follow(services, viewer).await?;
    Ok((auth, Some(account)))
}

impl Account {
    /// Time left until the token stops being accepted.
    pub(super) fn remaining(&self) -> Duration {
        (self.valid_until - Utc::now()).to_std().unwrap_or_default()
    }

    /// The account as it is now: [`Auth::Invalid`] once the token has
    /// expired or the user is gone.
    pub(super) async fn current(&mut self, services: &Services) -> Result<Auth, DomainError> {
        if Utc::now() >= self.valid_until {
            return Ok(Auth::Invalid);
        }
        match identity::load_viewer(&services.db, self.user_id).await {
            Ok(viewer) => {
                self.follow(services, &viewer).await?;
                Ok(Auth::User(viewer))
            }
            Err(DomainError::Unauthenticated) => Ok(Auth::Invalid),
            Err(err) => Err(err),
        }
    }

    /// Follows the account's changes while `viewer` is an admin.
    async fn follow(&mut self, services: &Services, viewer: &Viewer) -> Result<(), DomainError> {
        if !viewer.is_admin() {
            self.changes = None;
        } else if self.changes.is_none() {
            let changes = services.hub.subscribe(&user_topic(self.user_id)).await?;
            self.changes = Some(changes.into_stream().boxed());
            // `viewer` was read before the subscription listened.
            self.recheck = true;
        }
        Ok(())
    }

    /// Ready when the account changed, or may have: read it again with
    /// [`Account::current`].
    pub(super) fn poll_changed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::take(&mut self.recheck) {
            return Poll::Ready(());
        }
        let Some(changes) = self.changes.as_mut() else {
            return Poll::Pending;
        };
        match changes.poll_next_unpin(cx) {
            Poll::Ready(Some(_)) => Poll::Ready(()),
            // The hub has shut down; so is the process.
            Poll::Ready(None) => {
                self.changes = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
