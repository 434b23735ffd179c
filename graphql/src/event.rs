//! Giveaway events and their prizes as read (FLOWS.md §5); participants
//! and winners are in `participant`, the mutations in `event_mutation`.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::DomainError;
use giftdrop_domain::giveaway::events::{self, EventFilter as DomainFilter};
use giftdrop_domain::giveaway::{participants, winners};

use crate::auth::{require_viewer, services, viewer};
use crate::connection;
use crate::error::Gql;
use crate::identity::User;
use crate::ids;
use crate::loaders::{PrizesKey, ProductKey, UserKey, WinnersKey, referenced};
use crate::merchant::CardProduct;
use crate::money::Money;
pub use crate::nodes::{Event, Winner};
use crate::nodes::{Participant, Prize};
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

/// `events` filter.
#[derive(InputObject)]
pub struct EventFilter {
    status: Option<EventStatusGql>,
    host_id: Option<ID>,
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
        let wins = winners::wins_of(&services(ctx)?.db, viewer.user_id)
            .await
            .gql()?;
        Ok(wins.into_iter().map(Winner).collect())
    }
}
