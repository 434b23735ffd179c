//! Escrows (FLOWS.md §3): reading them, and the admin's release.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::giftcard::{
    self,
    escrow::{self, EscrowFilter},
};
use giftdrop_domain::identity::Role;

use crate::auth::{reach, request, require_role, require_viewer, services};
use crate::error::Gql;
use crate::ids;
use crate::merchant::{self, Merchant};
use crate::money::Money;
use crate::nodes::{Card, Escrow, Event};
use crate::page::{cursor, page_size};

/// `EscrowStatus`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "EscrowStatus",
    remote = "giftdrop_domain::giftcard::escrow::EscrowStatus"
)]
pub enum EscrowStatusGql {
    /// Held.
    Reserved,
    /// Paid to the merchant.
    Settled,
    /// Returned to the funder.
    Released,
}

/// `EscrowSource`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "EscrowSource",
    remote = "giftdrop_domain::giftcard::escrow::EscrowSource"
)]
pub enum EscrowSourceGql {
    /// A giveaway prize unit.
    EventPrize,
    /// A card bought in the marketplace.
    CardPurchase,
}

/// Money held between a funder's wallet and a merchant. RESERVED -> SETTLED
/// (card redeemed at a branch) or RESERVED -> RELEASED (refunded to the
/// funder). Both transitions are final.
#[Object]
impl Escrow {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn status(&self) -> EscrowStatusGql {
        self.0.status.into()
    }

    async fn source(&self) -> EscrowSourceGql {
        self.0.source.into()
    }

    async fn amount(&self) -> Money {
        self.0.amount.into()
    }

    async fn merchant(&self, ctx: &Context<'_>) -> Result<Merchant> {
        merchant::by_id(ctx, self.0.merchant_id).await
    }

    /// Service rate snapshotted when the escrow was reserved.
    async fn service_rate_bps(&self) -> i32 {
        i32::try_from(self.0.service_rate_bps).unwrap_or(i32::MAX)
    }

    /// Set when SETTLED: amount x depositFeeBps, rounded half up.
    async fn deposit_fee(&self) -> Option<Money> {
        self.0.settlement.map(|s| s.deposit_fee.into())
    }

    /// Set when SETTLED: (amount - depositFee) x serviceRateBps, rounded half up.
    async fn service_fee(&self) -> Option<Money> {
        self.0.settlement.map(|s| s.service_fee.into())
    }

    /// Set when SETTLED: amount - depositFee - serviceFee.
    async fn merchant_payout(&self) -> Option<Money> {
        self.0.settlement.map(|s| s.merchant_payout.into())
    }

    /// The event whose prize unit it backs.
    async fn event(&self, ctx: &Context<'_>) -> Result<Option<Event>> {
        match self.0.event_id {
            Some(id) => Ok(crate::loaders::loaded(ctx, crate::loaders::EventKey(id))
                .await?
                .map(Event)),
            None => Ok(None),
        }
    }

    /// The card it backs, if issued and the viewer may see it.
    async fn card(&self, ctx: &Context<'_>) -> Result<Option<Card>> {
        Card::of_escrow(ctx, self.0.id).await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn settled_at(&self) -> Option<DateTime<Utc>> {
        self.0.settled_at
    }

    async fn released_at(&self) -> Option<DateTime<Utc>> {
        self.0.released_at
    }

    async fn release_reason(&self) -> Option<&str> {
        self.0.release_reason.as_deref()
    }
}

crate::connection!(EscrowConnection, EscrowEdge, Escrow);

/// `escrows` filter.
#[derive(InputObject, Default)]
#[graphql(name = "EscrowFilter")]
pub struct EscrowFilterInput {
    status: Option<EscrowStatusGql>,
    merchant_id: Option<ID>,
    event_id: Option<ID>,
}

/// Escrow queries.
#[derive(Default)]
pub struct EscrowQuery;

#[Object]
impl EscrowQuery {
    /// An escrow the viewer funded or whose merchant they are staff of
    /// (admins: any); null otherwise.
    async fn escrow(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Escrow>> {
        require_viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        let reach = reach(ctx).await?;
        let found = escrow::find(&services(ctx)?.db, id).await.gql()?;
        Ok(found.filter(|e| e.visible_to(reach)).map(Escrow))
    }

    /// Admins see all; merchant staff their merchant's; hosts those they funded.
    async fn escrows(
        &self,
        ctx: &Context<'_>,
        filter: Option<EscrowFilterInput>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<EscrowConnection> {
        require_viewer(ctx)?;
        let first = page_size(first.unwrap_or(20)).gql()?;
        let after = cursor(after).gql()?;
        let filter = filter.unwrap_or_default();
        let filter = EscrowFilter {
            status: filter.status.map(Into::into),
            merchant_id: filter
                .merchant_id
                .map(|id| ids::parse(&id, "filter.merchantId"))
                .transpose()
                .gql()?,
            event_id: filter
                .event_id
                .map(|id| ids::parse(&id, "filter.eventId"))
                .transpose()
                .gql()?,
        };
        let reach = reach(ctx).await?;
        let limit = u64::try_from(first + 1).unwrap_or(u64::MAX);
        let found = escrow::list(&services(ctx)?.db, reach, &filter, after, limit)
            .await
            .gql()?;
        Ok(EscrowConnection::from_fetched(
            found.into_iter().map(Escrow).collect(),
            first,
            |e| e.0.id.to_string(),
        ))
    }
}

/// Escrow mutations.
#[derive(Default)]
pub struct EscrowMutation;

#[Object]
impl EscrowMutation {
    /// Admin only.
    async fn release_escrow(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Escrow> {
        let admin = require_role(ctx, Role::Admin)?;
        let id = ids::parse(&id, "id").gql()?;
        let view =
            giftcard::release_as_admin(services(ctx)?, &request(ctx)?.meta, admin, id, &reason)
                .await
                .gql()?;
        Ok(Escrow(view))
    }
}
