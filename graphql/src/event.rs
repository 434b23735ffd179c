//! Giveaway events: drafts, publishing, cancelling, reading (FLOWS.md §5).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::DomainError;
use giftdrop_domain::giveaway::events::{
    self, EventChanges, EventFilter as DomainFilter, EventView, NewEvent,
    PrizeInput as DomainPrize, PrizeView,
};
use giftdrop_domain::giveaway::participants::{
    self, ParticipantView, WinnerView, display_name_for, sees_in_full,
};
use giftdrop_domain::giveaway::{attempt, disqualify, publish};
use giftdrop_domain::money::Amount;
use uuid::Uuid;

use crate::auth::{request, require_viewer, services, viewer};
use crate::card::Card;
use crate::connection;
use crate::error::Gql;
use crate::identity::User;
use crate::ids;
use crate::loaders::{
    EventKey, ParticipantKey, PrizeKey, PrizesKey, ProductKey, UserKey, WinnersKey, referenced,
};
use crate::merchant::CardProduct;
use crate::money::Money;
use crate::page::{cursor, page_size};

/// `EventStatus`.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(
    name = "EventStatus",
    remote = "giftdrop_domain::giveaway::events::EventStatus"
)]
pub enum EventStatusGql {
    /// Being edited by its host.
    Draft,
    /// Published and funded, not started.
    Scheduled,
    /// Between `startsAt` and `endsAt`.
    Live,
    /// Over.
    Ended,
    /// Called off.
    Cancelled,
}

/// `WinnerSelection`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "WinnerSelection",
    remote = "giftdrop_domain::giveaway::events::WinnerSelection"
)]
pub enum WinnerSelectionGql {
    /// Participants try during the live window; a per-time-slot budget caps awards.
    Instant,
    /// Winners are drawn at random from verified participants when the event ends.
    Draw,
}

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

/// A giveaway event, as a viewer who may see it sees it.
#[derive(Clone)]
pub struct Event(pub EventView);

/// A prize of an event.
#[derive(Clone)]
pub struct Prize(pub PrizeView);

/// A participant of an event.
#[derive(Clone)]
pub struct Participant(pub ParticipantView);

/// A winner of an event.
#[derive(Clone)]
pub struct Winner(pub WinnerView);

connection!(EventConnection, EventEdge, Event);

/// One participant with its cursor.
#[derive(async_graphql::SimpleObject)]
pub struct ParticipantEdge {
    cursor: String,
    node: Participant,
}

/// A page of participants, with how many there are in all.
#[derive(async_graphql::SimpleObject)]
pub struct ParticipantConnection {
    edges: Vec<ParticipantEdge>,
    nodes: Vec<Participant>,
    page_info: crate::page::PageInfo,
    total_count: i32,
}

/// The event `id`, which a visible row refers to.
async fn event_of(ctx: &Context<'_>, id: Uuid) -> Result<EventView> {
    referenced(ctx, EventKey(id)).await
}

#[Object]
impl Event {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn description(&self) -> &str {
        &self.0.description
    }

    async fn social_post_url(&self) -> Option<&str> {
        self.0.social_post_url.as_deref()
    }

    async fn host(&self, ctx: &Context<'_>) -> Result<User> {
        let host = referenced(ctx, UserKey(self.0.host_id)).await?;
        Ok(User::seen_by(host, viewer(ctx)?))
    }

    async fn status(&self) -> EventStatusGql {
        self.0.status.into()
    }

    async fn selection(&self) -> WinnerSelectionGql {
        self.0.selection.into()
    }

    /// INSTANT only: chance in percent (1-100) that an attempt within budget wins.
    async fn win_chance_percent(&self) -> Option<i32> {
        self.0.win_chance_percent
    }

    /// INSTANT only: the live window is cut into this many equal slots.
    async fn slot_count(&self) -> i32 {
        self.0.slot_count
    }

    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }

    async fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }

    async fn prizes(&self, ctx: &Context<'_>) -> Result<Vec<Prize>> {
        let prizes = referenced(ctx, PrizesKey(self.0.id)).await?;
        Ok(prizes.into_iter().map(Prize).collect())
    }

    async fn prize_count(&self) -> i32 {
        self.0.prize_count
    }

    async fn prizes_awarded(&self) -> i32 {
        self.0.prizes_awarded
    }

    /// Sum of all prize face values: what publishing debits from the host wallet.
    async fn total_cost(&self) -> Money {
        self.0.total_cost.into()
    }

    async fn participant_count(&self) -> i32 {
        self.0.participant_count
    }

    /// Host and admins only.
    async fn participants(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<ParticipantConnection> {
        if !self.0.managed_by(viewer(ctx)?) {
            return Err(DomainError::Forbidden).gql();
        }
        let first = page_size(first.unwrap_or(20)).gql()?;
        let after = cursor(after).gql()?;
        let db = &services(ctx)?.db;
        let limit = u64::try_from(first + 1).unwrap_or(u64::MAX);
        let found = participants::list(db, self.0.id, after, limit)
            .await
            .gql()?;
        let total = participants::count(db, self.0.id).await.gql()?;
        let (nodes, has_next_page) = crate::page::split_page(found, first);
        let nodes: Vec<Participant> = nodes.into_iter().map(Participant).collect();
        let edges: Vec<ParticipantEdge> = nodes
            .iter()
            .map(|node| ParticipantEdge {
                cursor: node.0.id.to_string(),
                node: node.clone(),
            })
            .collect();
        Ok(ParticipantConnection {
            page_info: crate::page::PageInfo::new(
                has_next_page,
                edges.last().map(|e| e.cursor.clone()),
            ),
            edges,
            nodes,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// Oldest first.
    async fn winners(&self, ctx: &Context<'_>) -> Result<Vec<Winner>> {
        let winners = referenced(ctx, WinnersKey(self.0.id)).await?;
        Ok(winners.into_iter().map(Winner).collect())
    }

    /// The viewer's own participation, if any.
    async fn my_participation(&self, ctx: &Context<'_>) -> Result<Option<Participant>> {
        let Some(viewer) = viewer(ctx)? else {
            return Ok(None);
        };
        let found = participants::of_user(&services(ctx)?.db, self.0.id, viewer.user_id)
            .await
            .gql()?;
        Ok(found.map(Participant))
    }

    /// DRAW only: hex SHA-256 of the draw seed, fixed when the event is published.
    async fn draw_commitment(&self) -> Option<&str> {
        self.0.draw_commitment.as_deref()
    }

    /// DRAW only: the seed, revealed once winners are drawn.
    async fn draw_seed(&self) -> Option<&str> {
        self.0.draw_seed.as_deref()
    }

    /// DRAW only, with `drawSeed`: the VERIFIED participants the draw
    /// shuffled, ascending, so that anyone can repeat the draw (FLOWS.md §5)
    /// with the seed and the prizes.
    async fn draw_participants(&self, ctx: &Context<'_>) -> Result<Option<Vec<ID>>> {
        if self.0.draw_seed.is_none() {
            return Ok(None);
        }
        let drawn = participants::drawn(&services(ctx)?.db, self.0.id)
            .await
            .gql()?;
        let mut ids: Vec<String> = drawn.iter().map(|p| p.id.to_string()).collect();
        ids.sort();
        Ok(Some(ids.into_iter().map(ID).collect()))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at
    }

    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }

    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
}

#[Object]
impl Prize {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn card_product(&self, ctx: &Context<'_>) -> Result<CardProduct> {
        Ok(CardProduct(
            referenced(ctx, ProductKey(self.0.card_product_id)).await?,
        ))
    }

    async fn face_value(&self) -> Money {
        self.0.face_value.into()
    }

    async fn quantity(&self) -> i32 {
        self.0.quantity
    }

    async fn awarded(&self) -> i32 {
        self.0.awarded
    }
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

/// `events` filter.
#[derive(InputObject)]
pub struct EventFilter {
    status: Option<EventStatusGql>,
    host_id: Option<ID>,
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

/// Event queries.
#[derive(Default)]
pub struct EventQuery;

#[Object]
impl EventQuery {
    /// A published event, or a draft of the viewer's (admins: any).
    async fn event(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Event>> {
        let id = ids::parse(&id, "id").gql()?;
        let found = events::find_visible(&services(ctx)?.db, viewer(ctx)?, id)
            .await
            .gql()?;
        Ok(found.map(Event))
    }

    /// Newest first: published events, and the viewer's own drafts.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<EventConnection> {
        let first = page_size(first.unwrap_or(20)).gql()?;
        let after = cursor(after).gql()?;
        let filter = match filter {
            Some(f) => DomainFilter {
                status: f.status.map(Into::into),
                host_id: f
                    .host_id
                    .map(|id| ids::parse(&id, "filter.hostId"))
                    .transpose()
                    .gql()?,
            },
            None => DomainFilter::default(),
        };
        let limit = u64::try_from(first + 1).unwrap_or(u64::MAX);
        let found = events::list(&services(ctx)?.db, viewer(ctx)?, &filter, after, limit)
            .await
            .gql()?;
        Ok(EventConnection::from_fetched(
            found.into_iter().map(Event).collect(),
            first,
            |e| e.0.id.to_string(),
        ))
    }

    /// The viewer's wins across events, newest first.
    async fn my_wins(&self, ctx: &Context<'_>) -> Result<Vec<Winner>> {
        let viewer = require_viewer(ctx)?;
        let wins = participants::wins_of(&services(ctx)?.db, viewer.user_id)
            .await
            .gql()?;
        Ok(wins.into_iter().map(Winner).collect())
    }
}

/// Event mutations.
#[derive(Default)]
pub struct EventMutation;

#[Object]
impl EventMutation {
    async fn create_event(&self, ctx: &Context<'_>, input: CreateEventInput) -> Result<Event> {
        let viewer = require_viewer(ctx)?;
        let event = events::create(
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
        let event = events::update(
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
        let joined = participants::join(
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
        let event = publish::cancel(services(ctx)?, &request(ctx)?.meta, viewer, id, &reason)
            .await
            .gql()?;
        Ok(Event(event))
    }
}
