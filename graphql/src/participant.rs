//! Participants and winners of giveaway events as read (FLOWS.md §5),
//! names masked as the viewer may see them.

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::giveaway::events::EventView;
use giftdrop_domain::giveaway::participants::{display_name_for, sees_in_full};
use uuid::Uuid;

use crate::auth::{services, viewer};
use crate::error::Gql;
use crate::ids;
use crate::loaders::{EventKey, ParticipantKey, PrizeKey, referenced};
use crate::nodes::{Card, Event, Participant, Prize, Winner};

/// `ParticipantStatus`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "ParticipantStatus",
    remote = "giftdrop_domain::giveaway::participants::ParticipantStatus"
)]
pub enum ParticipantStatusGql {
    /// Joined; the social handle is being checked.
    PendingVerification,
    /// May win.
    Verified,
    /// The social check failed.
    Rejected,
    /// Removed by the host or an admin.
    Disqualified,
}

/// The event `id`, which a visible row refers to.
async fn event_of(ctx: &Context<'_>, id: Uuid) -> Result<EventView> {
    referenced(ctx, EventKey(id)).await
}

/// `name` of `user_id` in an event of `host_id`, as the viewer may see it.
fn shown_name(ctx: &Context<'_>, host_id: Uuid, user_id: Uuid, name: &str) -> Result<String> {
    Ok(display_name_for(viewer(ctx)?, host_id, user_id, name))
}

#[Object]
impl Participant {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn event(&self, ctx: &Context<'_>) -> Result<Event> {
        Ok(Event(event_of(ctx, self.0.event_id).await?))
    }

    /// Masked for everyone but the participant, the host and admins: 'Ada L.'
    async fn display_name(&self, ctx: &Context<'_>) -> Result<String> {
        shown_name(ctx, self.0.host_id, self.0.user_id, &self.0.display_name)
    }

    /// In full for the participant, the host and admins; others see its
    /// first two characters, as the name is masked.
    async fn social_handle(&self, ctx: &Context<'_>) -> Result<String> {
        if sees_in_full(viewer(ctx)?, self.0.host_id, self.0.user_id) {
            return Ok(self.0.social_handle.clone());
        }
        let first: String = self.0.social_handle.chars().take(2).collect();
        Ok(format!("{first}***"))
    }

    async fn status(&self) -> ParticipantStatusGql {
        self.0.status.into()
    }

    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }

    /// True once this participant has won a prize in this event.
    async fn won(&self) -> bool {
        self.0.won
    }
}

#[Object]
impl Winner {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn event(&self, ctx: &Context<'_>) -> Result<Event> {
        Ok(Event(event_of(ctx, self.0.event_id).await?))
    }

    async fn participant(&self, ctx: &Context<'_>) -> Result<Participant> {
        Ok(Participant(
            referenced(ctx, ParticipantKey(self.0.participant_id)).await?,
        ))
    }

    /// Masked like Participant.displayName.
    async fn display_name(&self, ctx: &Context<'_>) -> Result<String> {
        shown_name(ctx, self.0.host_id, self.0.user_id, &self.0.display_name)
    }

    async fn prize(&self, ctx: &Context<'_>) -> Result<Prize> {
        Ok(Prize(referenced(ctx, PrizeKey(self.0.prize_id)).await?))
    }

    /// The gift card issued for this win; null unless the viewer is the winner or an admin.
    async fn card(&self, ctx: &Context<'_>) -> Result<Option<Card>> {
        let allowed = viewer(ctx)?.is_some_and(|v| v.user_id == self.0.user_id || v.is_admin());
        if !allowed {
            return Ok(None);
        }
        let view = giftdrop_domain::giftcard::cards::find(&services(ctx)?.db, self.0.card_id)
            .await
            .gql()?;
        match view {
            Some(view) => Card::seen(ctx, view).await,
            None => Ok(None),
        }
    }

    /// Position in the order winners were announced, from 1.
    async fn sequence(&self) -> i32 {
        self.0.sequence
    }

    async fn announced_at(&self) -> DateTime<Utc> {
        self.0.announced_at
    }

    async fn disqualified_at(&self) -> Option<DateTime<Utc>> {
        self.0.disqualified_at
    }
}
