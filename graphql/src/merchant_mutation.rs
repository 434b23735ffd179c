//! Marketplace mutations: merchants, branches, staff, card products
//! (FLOWS.md §2, §4).

use async_graphql::{Context, ID, InputObject, Object, Result};
use giftdrop_domain::giftcard::merchants::{self, AdminChange};
use giftdrop_domain::giftcard::products::{self, NewProduct};
use giftdrop_domain::{DomainError, identity::Role};

use crate::auth::{request, require_role, require_viewer, services};
use crate::error::Gql;
use crate::ids;
use crate::merchant::{Branch, CardProduct, Merchant};
use crate::money::Money;

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
