//! Merchant payouts (FLOWS.md §3).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::idempotency;
use giftdrop_domain::payments::payout::{self, PayoutView};

use crate::auth::{reach, request, require_viewer, services};
use crate::error::Gql;
use crate::ids;
use crate::merchant::{self, Merchant};
use crate::money::Money;

/// `PayoutStatus`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "PayoutStatus",
    remote = "giftdrop_domain::payments::payout::PayoutStatus"
)]
pub enum PayoutStatusGql {
    /// Sent to the provider, no answer yet.
    Pending,
    /// Paid; the merchant wallet was debited.
    Succeeded,
    /// Refused or failed at the provider; the wallet is untouched.
    Failed,
}

/// A payout.
pub struct Payout(PayoutView);

#[Object]
impl Payout {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn merchant(&self, ctx: &Context<'_>) -> Result<Merchant> {
        merchant::by_id(ctx, self.0.merchant_id).await
    }

    async fn amount(&self) -> Money {
        self.0.amount.into()
    }

    async fn status(&self) -> PayoutStatusGql {
        self.0.status.into()
    }

    /// Provider transfer reference; stable across retries.
    async fn reference(&self) -> &str {
        &self.0.reference
    }

    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
}

/// `requestPayout` input.
#[derive(InputObject)]
pub struct PayoutInput {
    merchant_id: ID,
    amount: Money,
    idempotency_key: String,
}

/// Payout queries.
#[derive(Default)]
pub struct PayoutQuery;

#[Object]
impl PayoutQuery {
    /// A payout of a merchant the viewer is staff of (admins: any); null
    /// otherwise.
    async fn payout(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Payout>> {
        require_viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        let reach = reach(ctx).await?;
        let found = payout::find_for(&services(ctx)?.db, reach, id)
            .await
            .gql()?;
        Ok(found.map(Payout))
    }
}

/// Payout mutations.
#[derive(Default)]
pub struct PayoutMutation;

#[Object]
impl PayoutMutation {
    async fn request_payout(&self, ctx: &Context<'_>, input: PayoutInput) -> Result<Payout> {
        let viewer = require_viewer(ctx)?;
        let merchant_id = ids::parse(&input.merchant_id, "input.merchantId").gql()?;
        let amount = input.amount.positive("input.amount").gql()?;
        idempotency::validate_key(&input.idempotency_key, "input.idempotencyKey").gql()?;
        let view = payout::request(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            merchant_id,
            amount,
            &input.idempotency_key,
        )
        .await
        .gql()?;
        Ok(Payout(view))
    }
}
