//! Merchants, branches and card products as read (FLOWS.md §2, §4); the
//! mutations are in `merchant_mutation`.

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::giftcard::merchants::{self, BranchView, MerchantView};
use giftdrop_domain::giftcard::products::{self, ProductView};
use giftdrop_domain::ledger::{self, WalletOwner};
use uuid::Uuid;

use crate::auth::{reach, services};
use crate::error::Gql;
use crate::ids;
use crate::loaders::{BranchesKey, MerchantKey, loaded, referenced};
use crate::money::Money;
use crate::page::{cursor, page_size};
use crate::wallet::Wallet;

/// `MerchantStatus`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "MerchantStatus",
    remote = "giftdrop_domain::giftcard::merchants::MerchantStatus"
)]
pub enum MerchantStatusGql {
    /// Waiting for an admin's approval.
    Pending,
    /// Selling and redeeming.
    Active,
    /// Stopped by an admin.
    Suspended,
}

/// A merchant.
#[derive(Clone)]
pub struct Merchant(pub MerchantView);

/// The merchant `id`, which a visible row refers to (so it exists).
pub async fn by_id(ctx: &Context<'_>, id: Uuid) -> Result<Merchant> {
    Ok(Merchant(referenced(ctx, MerchantKey(id)).await?))
}

#[Object]
impl Merchant {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn status(&self) -> MerchantStatusGql {
        self.0.status.into()
    }

    /// Service rate applied to this merchant's settlements, in basis points.
    async fn service_rate_bps(&self) -> i32 {
        i32::try_from(self.0.service_rate_bps).unwrap_or(i32::MAX)
    }

    async fn branches(&self, ctx: &Context<'_>) -> Result<Vec<Branch>> {
        let found = loaded(ctx, BranchesKey(self.0.id)).await?;
        Ok(found.unwrap_or_default().into_iter().map(Branch).collect())
    }

    /// Oldest first; products off sale only for staff and admins.
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<CardProductConnection> {
        let first = page_size(first.unwrap_or(20)).gql()?;
        let after = cursor(after).gql()?;
        let include_inactive = reach(ctx).await?.manages(self.0.id);
        let limit = u64::try_from(first + 1).unwrap_or(u64::MAX);
        let found = products::of_merchant(
            &services(ctx)?.db,
            self.0.id,
            include_inactive,
            after,
            limit,
        )
        .await
        .gql()?;
        Ok(CardProductConnection::from_fetched(
            found.into_iter().map(CardProduct).collect(),
            first,
            |p| p.0.id.to_string(),
        ))
    }

    /// Null unless the viewer is staff of this merchant or an admin.
    async fn wallet(&self, ctx: &Context<'_>) -> Result<Option<Wallet>> {
        if !reach(ctx).await?.manages(self.0.id) {
            return Ok(None);
        }
        let view = ledger::wallet(services(ctx)?, WalletOwner::Merchant(self.0.id))
            .await
            .gql()?;
        Ok(Some(Wallet(view)))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

crate::connection!(MerchantConnection, MerchantEdge, Merchant);

/// A branch.
#[derive(Clone)]
pub struct Branch(pub BranchView);

#[Object]
impl Branch {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn merchant(&self, ctx: &Context<'_>) -> Result<Merchant> {
        by_id(ctx, self.0.merchant_id).await
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn address(&self) -> &str {
        &self.0.address
    }
}

/// A card product.
#[derive(Clone)]
pub struct CardProduct(pub ProductView);

#[Object]
impl CardProduct {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn merchant(&self, ctx: &Context<'_>) -> Result<Merchant> {
        by_id(ctx, self.0.merchant_id).await
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> &str {
        &self.0.description
    }

    /// The face values a card of this product can be bought or awarded at.
    async fn denominations(&self) -> Vec<Money> {
        self.0
            .denominations
            .iter()
            .copied()
            .map(Money::from)
            .collect()
    }

    /// A card expires this many days after it is issued.
    async fn validity_days(&self) -> i32 {
        self.0.validity_days
    }

    async fn active(&self) -> bool {
        self.0.active
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

crate::connection!(CardProductConnection, CardProductEdge, CardProduct);

/// Marketplace queries.
#[derive(Default)]
pub struct MerchantQuery;

#[Object]
impl MerchantQuery {
    /// A merchant; PENDING ones only for their staff and admins.
    async fn merchant(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Merchant>> {
        let id = ids::parse(&id, "id").gql()?;
        let reach = reach(ctx).await?;
        let found = merchants::find_visible(&services(ctx)?.db, reach, id)
            .await
            .gql()?;
        Ok(found.map(Merchant))
    }

    /// Newest first. Admins see every merchant; others ACTIVE and SUSPENDED
    /// ones and the PENDING ones they are staff of.
    async fn merchants(
        &self,
        ctx: &Context<'_>,
        status: Option<MerchantStatusGql>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<MerchantConnection> {
        let first = page_size(first.unwrap_or(20)).gql()?;
        let after = cursor(after).gql()?;
        let reach = reach(ctx).await?;
        let limit = u64::try_from(first + 1).unwrap_or(u64::MAX);
        let found = merchants::list(
            &services(ctx)?.db,
            reach,
            status.map(Into::into),
            after,
            limit,
        )
        .await
        .gql()?;
        Ok(MerchantConnection::from_fetched(
            found.into_iter().map(Merchant).collect(),
            first,
            |m| m.0.id.to_string(),
        ))
    }

    /// A product on sale, or any product of a merchant the viewer manages.
    async fn card_product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<CardProduct>> {
        let id = ids::parse(&id, "id").gql()?;
        let reach = reach(ctx).await?;
        let found = products::find_visible(&services(ctx)?.db, reach, id)
            .await
            .gql()?;
        Ok(found.map(CardProduct))
    }
}
