//! Giveaway mutations: drafts, publishing, joining, attempts,
//! disqualifying, cancelling (FLOWS.md §5).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::giveaway::draft::{self, EventChanges, NewEvent};
use giftdrop_domain::giveaway::rules::PrizeInput as DomainPrize;
use giftdrop_domain::giveaway::{attempt, cancel, disqualify, join, publish};
use giftdrop_domain::money::Amount;

use crate::auth::{request, require_viewer, services};
use crate::error::Gql;
use crate::event::WinnerSelectionGql;
use crate::ids;
use crate::money::Money;
use crate::nodes::{Event, Participant, Winner};

/// `AttemptOutcome`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "AttemptOutcome",
    remote = "giftdrop_domain::giveaway::attempt::AttemptOutcome"
)]
pub enum AttemptOutcomeGql {
    /// Won a prize.
    Won,
    /// Within budget, but not this time.
    NotThisTime,
    /// The current slot's budget is spent.
    SlotBudgetSpent,
    /// Every prize is awarded.
    NoPrizesLeft,
    /// This participant already tried.
    AlreadyAttempted,
}

/// What `attemptPrize` came to.
#[derive(async_graphql::SimpleObject)]
pub struct PrizeAttempt {
    outcome: AttemptOutcomeGql,
    /// Set when outcome is WON.
    winner: Option<Winner>,
}

/// `joinEvent` input.
#[derive(InputObject)]
pub struct JoinEventInput {
    event_id: ID,
    social_handle: String,
}

/// A prize as sent.
#[derive(InputObject)]
pub struct PrizeInput {
    card_product_id: ID,
    face_value: Money,
    quantity: i32,
}

/// `createEvent` input.
#[derive(InputObject)]
pub struct CreateEventInput {
    title: String,
    description: String,
    social_post_url: Option<String>,
    selection: WinnerSelectionGql,
    win_chance_percent: Option<i32>,
    slot_count: Option<i32>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    prizes: Vec<PrizeInput>,
}

/// `updateEvent` input.
#[derive(InputObject)]
pub struct UpdateEventInput {
    title: Option<String>,
    description: Option<String>,
    social_post_url: Option<String>,
    win_chance_percent: Option<i32>,
    slot_count: Option<i32>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    prizes: Option<Vec<PrizeInput>>,
}

/// The domain form of sent prizes, with `input.prizes[i].field` paths.
fn prizes(sent: Vec<PrizeInput>) -> Result<Vec<DomainPrize>> {
    sent.into_iter()
        .enumerate()
        .map(|(i, p)| {
            let field = |name: &str| format!("input.prizes[{i}].{name}");
            let face_value: Amount = p.face_value.positive(&field("faceValue")).gql()?;
            Ok(DomainPrize {
                card_product_id: ids::parse(&p.card_product_id, &field("cardProductId")).gql()?,
                face_value,
                quantity: p.quantity,
            })
        })
        .collect()
}

/// Event mutations.
#[derive(Default)]
pub struct EventMutation;

#[Object]
impl EventMutation {
    async fn create_event(&self, ctx: &Context<'_>, input: CreateEventInput) -> Result<Event> {
        let viewer = require_viewer(ctx)?;
        let event = draft::create(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            NewEvent {
                title: input.title,
                description: input.description,
                social_post_url: input.social_post_url,
                selection: input.selection.into(),
                win_chance_percent: input.win_chance_percent,
                slot_count: input.slot_count,
                starts_at: input.starts_at,
                ends_at: input.ends_at,
                prizes: prizes(input.prizes)?,
            },
        )
        .await
        .gql()?;
        Ok(Event(event))
    }

    async fn update_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateEventInput,
    ) -> Result<Event> {
        let viewer = require_viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        let event = draft::update(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            id,
            EventChanges {
                title: input.title,
                description: input.description,
                social_post_url: input.social_post_url,
                win_chance_percent: input.win_chance_percent,
                slot_count: input.slot_count,
                starts_at: input.starts_at,
                ends_at: input.ends_at,
                prizes: input.prizes.map(prizes).transpose()?,
            },
        )
        .await
        .gql()?;
        Ok(Event(event))
    }

    /// Funds the event from the host wallet and reserves one escrow per prize unit.
    async fn publish_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        idempotency_key: String,
    ) -> Result<Event> {
        let viewer = require_viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        let event = publish::publish(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            id,
            &idempotency_key,
        )
        .await
        .gql()?;
        Ok(Event(event))
    }

    async fn join_event(&self, ctx: &Context<'_>, input: JoinEventInput) -> Result<Participant> {
        let viewer = require_viewer(ctx)?;
        let event_id = ids::parse(&input.event_id, "input.eventId").gql()?;
        let joined = join::join(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            event_id,
            &input.social_handle,
        )
        .await
        .gql()?;
        Ok(Participant(joined))
    }

    async fn attempt_prize(&self, ctx: &Context<'_>, event_id: ID) -> Result<PrizeAttempt> {
        let viewer = require_viewer(ctx)?;
        let event_id = ids::parse(&event_id, "eventId").gql()?;
        let attempt = attempt::attempt(services(ctx)?, &request(ctx)?.meta, viewer, event_id)
            .await
            .gql()?;
        Ok(PrizeAttempt {
            outcome: attempt.outcome.into(),
            winner: attempt.winner.map(Winner),
        })
    }

    /// Host or admin: voids the winner's card and returns the prize to the pool.
    async fn disqualify_winner(
        &self,
        ctx: &Context<'_>,
        winner_id: ID,
        reason: String,
    ) -> Result<Winner> {
        let viewer = require_viewer(ctx)?;
        let winner_id = ids::parse(&winner_id, "winnerId").gql()?;
        let winner = disqualify::disqualify(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            winner_id,
            &reason,
        )
        .await
        .gql()?;
        Ok(Winner(winner))
    }

    async fn cancel_event(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Event> {
        let viewer = require_viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        let event = cancel::cancel(services(ctx)?, &request(ctx)?.meta, viewer, id, &reason)
            .await
            .gql()?;
        Ok(Event(event))
    }
}
