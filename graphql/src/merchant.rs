//! Merchants, branches and card products (FLOWS.md §2, §4).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::giftcard::merchants::{self, AdminChange, BranchView, MerchantView};
use giftdrop_domain::giftcard::products::{self, NewProduct, ProductView};
use giftdrop_domain::ledger::{self, WalletOwner};
use giftdrop_domain::{DomainError, identity::Role};
use uuid::Uuid;

use crate::auth::{reach, request, require_role, require_viewer, services};
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

/// `registerMerchant` input.
#[derive(InputObject)]
pub struct RegisterMerchantInput {
    name: String,
    /// Where payouts go, as the payment provider names a bank account.
    payout_account: String,
}

/// `addBranch` input.
#[derive(InputObject)]
pub struct BranchInput {
    name: String,
    address: String,
}

/// `createCardProduct` input.
#[derive(InputObject)]
pub struct CardProductInput {
    merchant_id: ID,
    name: String,
    description: String,
    denominations: Vec<Money>,
    validity_days: i32,
}

impl CardProductInput {
    fn validate(self) -> Result<NewProduct, DomainError> {
        let denominations = self
            .denominations
            .iter()
            .enumerate()
            .map(|(i, d)| d.positive(&format!("input.denominations[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(NewProduct {
            merchant_id: ids::parse(&self.merchant_id, "input.merchantId")?,
            name: self.name,
            description: self.description,
            denominations,
            validity_days: self.validity_days,
        })
    }
}

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

/// Marketplace mutations.
#[derive(Default)]
pub struct MerchantMutation;

#[Object]
impl MerchantMutation {
    /// Creates a PENDING merchant; the caller becomes its staff and gains MERCHANT.
    async fn register_merchant(
        &self,
        ctx: &Context<'_>,
        input: RegisterMerchantInput,
    ) -> Result<Merchant> {
        let viewer = require_viewer(ctx)?;
        let view = merchants::register(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            &input.name,
            &input.payout_account,
        )
        .await
        .gql()?;
        Ok(Merchant(view))
    }

    async fn add_branch(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        input: BranchInput,
    ) -> Result<Branch> {
        let viewer = require_viewer(ctx)?;
        let merchant_id = ids::parse(&merchant_id, "merchantId").gql()?;
        let view = merchants::add_branch(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            merchant_id,
            &input.name,
            &input.address,
        )
        .await
        .gql()?;
        Ok(Branch(view))
    }

    /// Adds an existing user, by email, to the merchant's staff.
    async fn add_merchant_staff(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        email: String,
    ) -> Result<Merchant> {
        let viewer = require_viewer(ctx)?;
        let merchant_id = ids::parse(&merchant_id, "merchantId").gql()?;
        let view = merchants::add_staff(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            merchant_id,
            &email,
        )
        .await
        .gql()?;
        Ok(Merchant(view))
    }

    async fn create_card_product(
        &self,
        ctx: &Context<'_>,
        input: CardProductInput,
    ) -> Result<CardProduct> {
        let viewer = require_viewer(ctx)?;
        let input = input.validate().gql()?;
        let view = products::create(services(ctx)?, &request(ctx)?.meta, viewer, input)
            .await
            .gql()?;
        Ok(CardProduct(view))
    }

    async fn set_card_product_active(
        &self,
        ctx: &Context<'_>,
        id: ID,
        active: bool,
    ) -> Result<CardProduct> {
        let viewer = require_viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        let view = products::set_active(services(ctx)?, &request(ctx)?.meta, viewer, id, active)
            .await
            .gql()?;
        Ok(CardProduct(view))
    }

    /// Admin only.
    async fn approve_merchant(&self, ctx: &Context<'_>, id: ID) -> Result<Merchant> {
        admin_change(ctx, &id, AdminChange::Approve).await
    }

    /// Admin only.
    async fn suspend_merchant(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> Result<Merchant> {
        admin_change(ctx, &id, AdminChange::Suspend(reason)).await
    }

    /// Admin only.
    async fn set_merchant_service_rate(
        &self,
        ctx: &Context<'_>,
        id: ID,
        bps: i32,
    ) -> Result<Merchant> {
        admin_change(ctx, &id, AdminChange::ServiceRate(bps)).await
    }
}

async fn admin_change(ctx: &Context<'_>, id: &ID, change: AdminChange) -> Result<Merchant> {
    let admin = require_role(ctx, Role::Admin)?;
    let id = ids::parse(id, "id").gql()?;
    let view = merchants::change_as_admin(services(ctx)?, &request(ctx)?.meta, admin, id, change)
        .await
        .gql()?;
    Ok(Merchant(view))
}
